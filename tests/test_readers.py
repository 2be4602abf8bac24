"""Every input format, streaming into shards, with bad items quarantined (never lost)."""

import io
import json
import tarfile
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.config import InputConfig
from curate.errors import InputError
from curate.readers import build_shard, make_reader
from tests.conftest import EXAMPLES, image_bytes


def read_all(cfg: dict):
    """Plan and read every task of a reader; returns (records table, quarantine table, n tasks)."""
    reader = make_reader(InputConfig(**cfg))
    tasks = list(reader.tasks())
    recs, quas = [], []
    for t in tasks:
        res = build_shard(reader.read(t), max_pixels=InputConfig(**cfg).max_image_pixels)
        recs.append(res.records)
        quas.append(res.quarantine)
    return pa.concat_tables(recs), pa.concat_tables(quas), len(tasks)


def quarantine_reasons(q: pa.Table) -> dict:
    return dict(zip(q.column("source").to_pylist(), q.column("reason").to_pylist()))


@pytest.fixture
def image_tree(tmp_path):
    root = tmp_path / "ds"
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            (root / label / f"{i}.jpg").write_bytes(image_bytes(20 + i, 10, seed=i + (10 if label == "dog" else 0)))
    (root / "dog" / "empty.jpg").write_bytes(b"")
    (root / "dog" / "cut.png").write_bytes(image_bytes(fmt="PNG")[:-30])
    (root / "dog" / "notes.txt").write_text("not an image, skipped by extension")
    (root / "dog" / "fake.jpg").write_bytes(b"GIF? no: plain text")
    return root


def test_imagefolder_labels_sizes_and_quarantine(image_tree):
    recs, q, n_tasks = read_all({"format": "imagefolder", "path": str(image_tree), "shard_size": 4})
    assert n_tasks == 3  # 9 image files in shards of 4
    assert recs.num_rows == 6
    assert sorted(set(recs.column("label").to_pylist())) == ["cat", "dog"]
    row = [r for r in recs.to_pylist() if r["source"] == "cat/2.jpg"][0]
    assert (row["width"], row["height"]) == (22, 10)
    assert row["image"] == (image_tree / "cat" / "2.jpg").read_bytes()  # bytes exactly as in the source
    assert quarantine_reasons(q) == {"dog/empty.jpg": "empty_file", "dog/cut.png": "truncated_image",
                                     "dog/fake.jpg": "not_an_image"}


def test_imagefolder_from_zip_matches_folder(image_tree, tmp_path):
    z = tmp_path / "ds.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in sorted(image_tree.rglob("*")):
            if p.is_file():
                zf.write(p, "train/" + p.relative_to(image_tree).as_posix())
    recs_dir, _, _ = read_all({"format": "imagefolder", "path": str(image_tree)})
    recs_zip, q, _ = read_all({"format": "imagefolder", "path": str(z)})
    assert recs_zip.num_rows == recs_dir.num_rows == 6
    assert sorted(recs_zip.column("label").to_pylist()) == sorted(recs_dir.column("label").to_pylist())
    assert q.num_rows == 3


def test_ids_are_stable_and_order_independent(image_tree):
    a, _, _ = read_all({"format": "imagefolder", "path": str(image_tree), "shard_size": 2})
    b, _, _ = read_all({"format": "imagefolder", "path": str(image_tree), "shard_size": 100})
    assert dict(zip(a.column("source").to_pylist(), a.column("id").to_pylist())) == \
        dict(zip(b.column("source").to_pylist(), b.column("id").to_pylist()))
    assert len(set(a.column("id").to_pylist())) == a.num_rows


def test_captions_sidecars_and_non_utf8(tmp_path):
    root = tmp_path / "caps"
    root.mkdir()
    (root / "a.jpg").write_bytes(image_bytes(seed=1))
    (root / "a.txt").write_text("a red square\n", encoding="utf-8")
    (root / "b.jpg").write_bytes(image_bytes(seed=2))
    (root / "b.txt").write_bytes(b"caf\xe9 latin-1 text")
    (root / "c.jpg").write_bytes(image_bytes(seed=3))  # no caption: kept, text null
    recs, q, _ = read_all({"format": "captions", "path": str(root)})
    texts = dict(zip(recs.column("source").to_pylist(), recs.column("text").to_pylist()))
    assert texts == {"a.jpg": "a red square", "c.jpg": None}
    assert quarantine_reasons(q) == {"b.jpg": "text_not_utf8"}


def test_csv_manifest_paths_stay_inside_root(tmp_path):
    root = tmp_path / "m"
    (root / "img").mkdir(parents=True)
    (root / "img" / "x.jpg").write_bytes(image_bytes(seed=4))
    (root / "manifest.csv").write_text(
        "file,caption,cls,extra\n"
        "img/x.jpg,a photo,cat,1\n"
        "../../etc/passwd,escape,cat,2\n"
        "/etc/passwd,absolute,cat,3\n"
        "img/missing.jpg,gone,dog,4\n"
    )
    recs, q, _ = read_all({"format": "csv", "path": str(root / "manifest.csv"),
                           "columns": {"image": "file", "text": "caption", "label": "cls"}})
    assert recs.num_rows == 1
    r = recs.to_pylist()[0]
    assert (r["text"], r["label"], json.loads(r["meta"])) == ("a photo", "cat", {"extra": "1"})
    reasons = sorted(q.column("reason").to_pylist())
    assert reasons == ["missing_file", "outside_root", "outside_root"]


def test_csv_unknown_column_is_named(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("file,caption\nx.jpg,hi\n")
    with pytest.raises(InputError, match="input.columns.text: column 'text_col' is not in m.csv; its columns: file, caption"):
        read_all({"format": "csv", "path": str(p), "columns": {"text": "text_col"}})


def test_jsonl_text_only_with_bad_lines(tmp_path):
    p = tmp_path / "docs.jsonl"
    with open(p, "wb") as f:
        f.write(b'{"text": "first document", "label": "pos"}\n')
        f.write(b'{"text": "broken json"\n')
        f.write(b'{"text": "caf\xe9"}\n')
        f.write(b"\n")
        f.write(b'{"text": "second", "label": 1, "lang": "en"}\n')
    recs, q, _ = read_all({"format": "jsonl", "path": str(p)})
    assert recs.column("text").to_pylist() == ["first document", "second"]
    assert recs.column("label").to_pylist() == ["pos", "1"]
    assert recs.column("image").null_count == 2
    assert sorted(q.column("reason").to_pylist()) == ["bad_row", "bad_row"]


def test_parquet_with_image_bytes(tmp_path):
    p = tmp_path / "d.parquet"
    imgs = [image_bytes(seed=i) for i in range(3)] + [b"\x00\x01"]
    pq.write_table(pa.table({"image": imgs, "caption": ["a", "b", "c", "d"]}), p)
    recs, q, _ = read_all({"format": "parquet", "path": str(p), "columns": {"text": "caption"}})
    assert recs.column("text").to_pylist() == ["a", "b", "c"]
    assert recs.column("image").to_pylist()[1] == imgs[1]
    assert q.column("reason").to_pylist() == ["not_an_image"]


def test_webdataset_shards(tmp_path):
    for s in range(2):
        with tarfile.open(tmp_path / f"shard-{s:03d}.tar", "w") as tf:
            for k in range(3):
                key = f"s{s}_{k:03d}"
                for ext, data in (("jpg", image_bytes(seed=s * 10 + k)), ("txt", f"caption {key}".encode()),
                                  ("cls", b"7"), ("json", json.dumps({"url": key}).encode())):
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
    recs, q, n = read_all({"format": "webdataset", "path": str(tmp_path / "shard-{000..001}.tar")})
    assert n == 2 and recs.num_rows == 6 and q.num_rows == 0
    r = recs.to_pylist()[0]
    assert r["source"] == "shard-000.tar:s0_000" and r["text"] == "caption s0_000" and r["label"] == "7"
    assert json.loads(r["meta"]) == {"url": "s0_000"}


def test_coco_example_first_caption_and_siblings():
    recs, q, _ = read_all({"format": "coco", "path": str(EXAMPLES / "coco")})
    planted = json.loads((EXAMPLES / "coco" / "planted.json").read_text())
    n_images = len(list((EXAMPLES / "coco" / "images").iterdir()))
    assert recs.num_rows + q.num_rows == n_images
    corrupt = [p["file_name"] for p in planted if p["problem"] == "corrupt_file"]
    assert q.column("source").to_pylist() == corrupt
    meta = json.loads(recs.to_pylist()[0]["meta"])
    assert len(meta["other_captions"]) == 4


def test_coco_all_captions(tmp_path):
    recs, _, _ = read_all({"format": "coco", "path": str(EXAMPLES / "coco"), "captions": "all"})
    assert recs.num_rows > 200
    assert len(set(recs.column("id").to_pylist())) == recs.num_rows


def test_missing_path_and_unknown_format(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        make_reader(InputConfig(format="imagefolder", path=str(tmp_path / "nope")))
    with pytest.raises(Exception, match="format"):
        InputConfig(format="tiff", path=str(tmp_path))


def test_hf_reader(tmp_path):
    datasets = pytest.importorskip("datasets", reason="the hf reader needs 'pip install curate[hf]'")
    ds = datasets.Dataset.from_dict({"text": ["a b c", "d e f"], "label": [0, 1]},
                                    features=datasets.Features({"text": datasets.Value("string"),
                                                                "label": datasets.ClassLabel(names=["neg", "pos"])}))
    ds.save_to_disk(str(tmp_path / "hf"))
    recs, _, _ = read_all({"format": "hf", "path": str(tmp_path / "hf")})
    assert recs.column("label").to_pylist() == ["neg", "pos"]


def _both_paths(cfg: dict):
    """(vectorised shards, per-row shards, how many tasks took the vectorised path) of every task."""
    reader = make_reader(InputConfig(**cfg))
    fast, slow, vectorised = [], [], 0
    for t in reader.tasks():
        vectorised += reader._columnar(t) is not None
        fast.append(reader.build(t))
        slow.append(build_shard(reader.read(t), limits=reader.limits))
    return fast, slow, vectorised


def _assert_same_shards(fast, slow):
    for f, s in zip(fast, slow, strict=True):
        assert f.records.equals(s.records), (f.records.slice(0, 3).to_pylist(), s.records.slice(0, 3).to_pylist())
        assert f.quarantine.equals(s.quarantine)


TRICKY = ["plain", "", None, 'quote " and \\ backslash', "tab\tnew\nline", "ünï cödé ✓ 漢字", "ctl \x01 char", "x" * 50]


def test_parquet_vectorised_shards_equal_the_per_row_path(tmp_path):
    n = 230
    p = tmp_path / "m.parquet"
    pq.write_table(pa.table({"text": [TRICKY[i % 7] for i in range(n)], "label": [i % 3 for i in range(n)],
                             "n": list(range(n)), "flag": [i % 2 == 0 for i in range(n)],
                             "note": [TRICKY[(i + 1) % 7] for i in range(n)]}), p, row_group_size=64)
    fast, slow, vectorised = _both_paths({"format": "parquet", "path": str(p), "shard_size": 50})
    assert len(fast) == 5 and vectorised == 0  # "ctl \x01" in a meta column: json writes \u0001
    _assert_same_shards(fast, slow)
    q = tmp_path / "q.parquet"
    pq.write_table(pa.table({"text": [TRICKY[i % 6] for i in range(n)], "label": [str(i % 3) for i in range(n)],
                             "id": [None if i % 5 == 0 else f"s{i // 2}" for i in range(n)],
                             "n": list(range(n)), "note": [TRICKY[(i + 2) % 6] for i in range(n)]}), q, row_group_size=64)
    cfg = {"format": "parquet", "path": str(q), "shard_size": 50, "columns": {"source": "id"}}
    fast, slow, vectorised = _both_paths(cfg)
    assert vectorised == 5 and sum(f.records.num_rows for f in fast) == n
    _assert_same_shards(fast, slow)
    limited = make_reader(InputConfig(**cfg)).limit_task(next(make_reader(InputConfig(**cfg)).tasks()), 7)
    assert limited.items == 7 and make_reader(InputConfig(**cfg)).build(limited).records.num_rows == 7


def test_jsonl_vectorised_shards_equal_the_per_row_path(tmp_path):
    lines = []
    for i in range(120):
        lines.append(json.dumps({"text": TRICKY[i % 6], "label": i % 4, "n": i, "ok": i % 3 == 0}, ensure_ascii=i % 2 == 0))
        if i % 17 == 0:
            lines.append("   ")  # blank lines: skipped, but they count in the line numbers
    p = tmp_path / "a.jsonl"
    p.write_text("\n".join(lines))  # no newline at the end
    fast, slow, vectorised = _both_paths({"format": "jsonl", "path": str(p), "shard_size": 40})
    assert vectorised == len(fast) == 4
    _assert_same_shards(fast, slow)
    assert sum(f.records.num_rows for f in fast) == 120
    # a missing key, a float, a bad line: those shards take the per-row path, with the same result
    lines[3] = json.dumps({"text": "no n here", "label": 1})
    lines[50] = json.dumps({"text": "float", "label": 1, "n": 1.0, "ok": True})
    lines[100] = "{not json"
    p.write_text("\n".join(lines) + "\n")
    fast, slow, vectorised = _both_paths({"format": "jsonl", "path": str(p), "shard_size": 40})
    assert vectorised == 1
    _assert_same_shards(fast, slow)
    assert sum(f.quarantine.num_rows for f in fast) == 1


def test_make_ids_unique_numbers_repeats_across_shards_and_only_them(tmp_path):
    """64-bit keys find the candidates; whole ids decide (two ids sharing their first 16 hex digits
    are not repeats); repeats are numbered in shard order."""
    from curate.readers.ids import make_ids_unique

    a, b, c = "a" * 16 + "1" * 16, "a" * 16 + "2" * 16, "b" * 32
    shards = [[a, c], [b, a], [a, "c" * 32]]
    paths = []
    for i, ids in enumerate(shards):
        paths.append(tmp_path / f"part-{i}.parquet")
        pq.write_table(pa.table({"id": ids, "text": [f"t{i}{j}" for j in range(len(ids))]}), paths[-1])
    assert make_ids_unique(paths) == 2
    got = [pq.read_table(p).to_pydict() for p in paths]
    assert [g["id"] for g in got] == [[a, c], [b, a + "-2"], [a + "-3", "c" * 32]]
    assert [g["text"] for g in got] == [["t00", "t01"], ["t10", "t11"], ["t20", "t21"]]
    assert make_ids_unique(paths) == 2 and [pq.read_table(p).column("id").to_pylist() for p in paths] == [g["id"] for g in got]


def test_csv_byte_ranges_and_vectorised_shards_equal_the_per_row_path(tmp_path):
    """Tasks are byte ranges found by the driver's one parse (a quoted field spanning lines stays in its
    record); ranges without quotes are parsed by pyarrow, the others by Python's csv, same shards."""
    plain = [f"text number {i} ünï,{i % 3},{'' if i % 5 else 'x'}" for i in range(90)]
    plain[10:10] = [""]  # a blank line: skipped, not counted
    p = tmp_path / "plain.csv"
    p.write_text("text,label,extra\n" + "\n".join(plain) + "\n")
    fast, slow, vectorised = _both_paths({"format": "csv", "path": str(p), "shard_size": 40})
    assert vectorised == len(fast) == 3
    _assert_same_shards(fast, slow)
    assert [f.records.num_rows for f in fast] == [40, 40, 10]
    assert fast[2].records.column("source").to_pylist()[0] == "plain.csv:row81"
    quoted = ['"a ""quoted"", multi\nline field",1,z'] + [f"row {i},{i},y" for i in range(50)] + ["too,many,fields,here"]
    q = tmp_path / "quoted.csv"
    q.write_text("text,label,extra\r\n" + "\r\n".join(quoted) + "\r\n")
    fast, slow, vectorised = _both_paths({"format": "csv", "path": str(q), "shard_size": 20})
    assert vectorised == 1  # the middle range: no quote, no bad row
    _assert_same_shards(fast, slow)
    recs = pa.concat_tables([f.records for f in fast])
    assert recs.num_rows == 51 and recs.column("text")[0].as_py() == 'a "quoted", multi\nline field'
    assert fast[2].quarantine.column("source").to_pylist() == ["quoted.csv:row52"]
    reader = make_reader(InputConfig(format="csv", path=str(q), shard_size=20))
    cut = reader.limit_task(next(reader.tasks()), 3)
    assert cut.items == 3 and reader.build(cut).records.column("label").to_pylist() == ["1", "0", "1"]
