"""``curate export --format hf``: a ``datasets`` dataset that ``load_from_disk`` reads back item for item
(compared with the Parquet export of the same run), typed features, stage columns on request."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

datasets = pytest.importorskip("datasets", reason="needs the 'hf' extra")

from curate.cli import main  # noqa: E402
from curate.decisions import DecisionStore  # noqa: E402
from curate.export import export_run  # noqa: E402
from curate.rundir import RunDir  # noqa: E402
from tests.report_runs import demo_run  # noqa: E402
from tests.review_fixture import LABELS, make_review_run  # noqa: E402

RECORD = ["id", "source", "text", "label", "width", "height", "meta"]


def _parquet_rows(out) -> dict[str, dict]:
    t = pq.read_table(sorted(out.glob("part-*.parquet")))
    return {r["id"]: r for r in t.to_pylist()}


def _roundtrip(run_root, tmp_path, **kw) -> tuple[datasets.Dataset, dict[str, dict], dict]:
    em = export_run(run_root, tmp_path / "hf", fmt="hf", quiet=True, **kw)
    export_run(run_root, tmp_path / "pq", fmt="parquet", quiet=True,
               **{k: v for k, v in kw.items() if k != "annotations"})
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    return ds, _parquet_rows(tmp_path / "pq"), em


def test_demo_round_trip_every_item(tmp_path_factory, tmp_path):
    root = demo_run(tmp_path_factory.getbasetemp())
    r = CliRunner().invoke(main, ["export", str(root), "--format", "hf", "--out", str(tmp_path / "cli"), "-q",
                                  "--pending", "keep"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli" / "export_manifest.json").is_file()
    ds, expected, em = _roundtrip(root, tmp_path, pending="keep")
    assert len(ds) == em["counts"]["kept"] == len(expected) > 40
    assert isinstance(ds.features["image"], datasets.Image)
    assert ds.features["text"] == datasets.Value("string") and ds.features["width"] == datasets.Value("int32")
    raw = ds.cast_column("image", datasets.Image(decode=False))
    seen = set()
    for row in raw:
        want = expected[row["id"]]
        assert {k: row[k] for k in RECORD} == {k: want[k] for k in RECORD}
        assert row["image"]["bytes"] == want["image"]  # the source bytes, not re-encoded
        seen.add(row["id"])
    assert seen == set(expected)
    assert ds[0]["image"].size == (expected[ds[0]["id"]]["width"], expected[ds[0]["id"]]["height"])
    # the chosen caption: the demo's repaired captions are pending, so the original text goes out
    em_file = json.loads((tmp_path / "hf" / "export_manifest.json").read_text())
    assert em_file["format"] == "hf" and em_file["counts"] == em["counts"]


def test_labels_are_a_class_label_over_the_run(tmp_path):
    run = make_review_run(tmp_path / "run", n=120)
    ids = [i for p in run.data_shards() for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    store = DecisionStore(run.review_db)
    store.decide([ids[3]], "accepted", reviewer="ana", label=LABELS[0])  # accept item 3 relabelled "cat"
    store.close()
    ds, expected, _ = _roundtrip(run.root, tmp_path, pending="keep")
    feat = ds.features["label"]
    assert isinstance(feat, datasets.ClassLabel) and feat.names == sorted(LABELS)
    assert {r["id"]: feat.int2str(r["label"]) for r in ds.select_columns(["id", "label"])} == \
        {i: r["label"] for i, r in expected.items()}
    row3 = next(r for r in ds if r["id"] == ids[3])
    assert feat.int2str(row3["label"]) == LABELS[0] != LABELS[3 % 4]


def test_annotations_on_request(tmp_path):
    run = make_review_run(tmp_path / "run", n=120)
    ds, expected, _ = _roundtrip(run.root, tmp_path, pending="keep", annotations=True)
    manifest = RunDir(run.root).manifest()
    for s in manifest.finished_stages():
        assert f"{s.dir}.flag" in ds.column_names and f"{s.dir}.detail" in ds.column_names
        for score in s.outputs.scores:
            assert f"{s.dir}.{score.column}" in ds.column_names
    # values are the stage's, for the same item
    st = pq.read_table(sorted((run.root / "stages" / "01-near_dup").glob("part-*.parquet")), columns=["id", "flag", "similarity"])
    truth = {i: (f, v) for i, f, v in zip(*(st.column(c).to_pylist() for c in ("id", "flag", "similarity")))}
    for r in ds.select_columns(["id", "01-near_dup.flag", "01-near_dup.similarity"]):
        f, v = truth[r["id"]]
        assert r["01-near_dup.flag"] == f
        assert (r["01-near_dup.similarity"] is None and v is None) or abs(r["01-near_dup.similarity"] - v) < 1e-6
    # not asked: no stage columns
    export_run(run.root, tmp_path / "plain", fmt="hf", quiet=True)
    assert not any("." in c for c in datasets.load_from_disk(str(tmp_path / "plain")).column_names)


def test_annotations_need_hf(tmp_path):
    run = make_review_run(tmp_path / "run", n=20)
    r = CliRunner().invoke(main, ["export", str(run.root), "--format", "parquet", "--out", str(tmp_path / "o"),
                                  "--annotations"])
    assert r.exit_code == 1 and "only --format hf" in r.output


def test_nothing_kept_is_an_empty_dataset(tmp_path):
    run = make_review_run(tmp_path / "run", n=5)  # no item whose only flag is a proposed edit (those always stay)
    ids = [i for p in run.data_shards() for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()]
    store = DecisionStore(run.review_db)
    store.decide(ids, "rejected", reviewer="ana")
    store.close()
    em = export_run(run.root, tmp_path / "hf", fmt="hf", quiet=True)
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert em["counts"]["kept"] == len(ds) == 0 and "image" in ds.features and "label" in ds.features
