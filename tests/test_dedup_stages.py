"""The dedup stages from YAML: planted duplicates in the demo data, text near duplicates, keep rules,
cluster columns, config errors."""

import json
import shutil

import numpy as np
import pytest

from curate.config import load_pipeline
from curate.errors import ConfigError
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_records, read_stage
from tests.conftest import EXAMPLES, REPO

pytest.importorskip("datasketch")
pytest.importorskip("imagehash")

COCO = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 16}
DEDUP_STAGES = [
    {"exact_dedup": {"on": ["image"], "action": "drop"}},
    {"minhash_dedup": {"field": "text", "threshold": 0.8, "num_perm": 128, "ngram": 5, "tokens": "word",
                       "verify": True, "keep": "longest_text", "action": "review"}},
    {"image_dedup": {"hash": "phash", "hash_size": 8, "max_distance": 6, "keep": "largest_image", "action": "review"}},
]


def run(path, **kw):
    runner = Runner(load_pipeline(path), quiet=True, **kw)
    return runner, runner.execute()


def flagged_by_source(run_dir, stage_dir):
    rd = RunDir(run_dir)
    rec = read_records(rd, ["id", "source"]).to_pylist()
    src = {r["id"]: r["source"].rsplit("/", 1)[-1] for r in rec}
    table = read_stage(rd, stage_dir).to_pylist()
    return {src[r["id"]]: r for r in table if r["flag"]}, {src[r["id"]]: r for r in table}, src


@pytest.mark.slow
def test_demo_planted_duplicates_are_found_and_clean_items_are_not(make_pipeline, tmp_path):
    planted = json.loads((EXAMPLES / "coco" / "planted.json").read_text())
    p = make_pipeline(COCO, DEDUP_STAGES, workers=2)
    _, manifest = run(p)
    exact, exact_all, src = flagged_by_source(tmp_path / "run", "00-exact_dedup")
    near, near_all, _ = flagged_by_source(tmp_path / "run", "02-image_dedup")
    exact_planted = {x["file_name"]: x["of"] for x in planted if x["problem"] == "exact_duplicate"}
    near_planted = {x["file_name"]: x["of"] for x in planted if x["problem"] == "near_duplicate"}
    # other planted copies of an image (darkened, 24x16) are near duplicates too, and rightly flagged
    other_copies = {x["file_name"]: x["of"] for x in planted if "of" in x and x["problem"] not in ("exact_duplicate", "near_duplicate")}
    assert len(exact_planted) == 2 and len(near_planted) == 3

    assert set(exact) == set(exact_planted)
    for copy, original in exact_planted.items():
        row = exact[copy]
        assert row["action"] == "drop" and row["flag"] == "exact_duplicate"
        orig_row = exact_all[original]
        assert row["cluster_id"] == orig_row["id"] == orig_row["cluster_id"]  # the original is kept
        assert orig_row["is_representative"] and not row["is_representative"] and row["cluster_size"] == 2
        assert orig_row["id"][:10] in row["detail"]

    all_copies = {**exact_planted, **near_planted, **other_copies}
    assert set(near_planted) <= set(near) <= set(all_copies)
    for copy in near_planted:
        row = near[copy]
        original = near_all[all_copies[copy]]
        assert row["flag"] == "near_duplicate" and row["action"] == "review"
        assert row["cluster_id"] == original["id"] and original["is_representative"]
        assert 0 <= row["hamming"] <= 6 and f"{row['hamming']}/64 bits" in row["detail"]
    # every flagged item is a planted copy; no clean item and no original is flagged
    clean = set(src.values()) - set(all_copies)
    assert not clean & (set(near) | set(exact))
    assert all(near_all[c]["cluster_size"] == 1 for c in clean - set(all_copies.values()))
    # the demo captions hold no text near duplicates
    text_flagged, text_all, _ = flagged_by_source(tmp_path / "run", "01-minhash_dedup")
    assert not text_flagged and all(r["shingles"] > 0 for r in text_all.values())
    summary = {s.name: s.summary for s in manifest.stages}
    assert summary["image_dedup"]["near_duplicates"] == len(near)
    assert summary["minhash_dedup"]["bands"] * summary["minhash_dedup"]["rows"] <= 128


def test_demo_pipeline_has_the_dedup_stages():
    names = [s.name for s in load_pipeline(REPO / "pipelines" / "demo.yaml").stages]
    assert {"exact_dedup", "minhash_dedup", "image_dedup"} <= set(names)


def _text_dataset(tmp_path, n=120, seed=0):
    rng = np.random.default_rng(seed)
    vocab = [f"word{i}" for i in range(4000)]
    rows, dups = [], {}
    for i in range(n):
        rows.append(" ".join(rng.choice(vocab, size=int(rng.integers(100, 160)))))
    for k, i in enumerate(range(0, n, 12)):  # 10 near copies: one word changed, one appended
        words = rows[i].split()
        words[len(words) // 2] = "CHANGED"
        dups[n + k] = i
        rows.append(" ".join(words) + " extra")
    rows.append("")  # empty text: no shingles, never a duplicate
    rows.append("")
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t, "key": j}) + "\n" for j, t in enumerate(rows)))
    return path, rows, dups


def test_minhash_dedup_flags_planted_text_near_duplicates_with_keep_rules(make_pipeline, tmp_path):
    path, rows, dups = _text_dataset(tmp_path)
    stages = [{"text_quality": {"min_words": 1, "action": "keep"}},
              {"minhash_dedup": {"threshold": 0.7, "keep": "longest_text"}},
              {"minhash_dedup": {"threshold": 0.7, "keep": "score:text_quality.n_words", "action": "drop"}},
              {"minhash_dedup": {"threshold": 0.7}}]
    p = make_pipeline({"format": "jsonl", "path": str(path), "shard_size": 50}, stages, workers=1)
    run(p)
    rd = RunDir(tmp_path / "run")
    keys = [json.loads(m)["key"] for m in read_records(rd, ["meta"]).column("meta").to_pylist()]
    ids = read_records(rd, ["id"]).column("id").to_pylist()
    row_of_key = {k: i for i, k in enumerate(keys)}
    for stage_dir, copy_kept in (("01-minhash_dedup", True), ("02-minhash_dedup", True), ("03-minhash_dedup", False)):
        t = read_stage(rd, stage_dir).to_pylist()
        flagged = {keys[i] for i, r in enumerate(t) if r["flag"]}
        if copy_kept:  # the copies are longer (one word appended): they are kept, the originals flagged
            assert flagged == set(dups.values()), stage_dir
        else:  # keep: first
            assert flagged == set(dups), stage_dir
        for copy, orig in dups.items():
            a, b = t[row_of_key[copy]], t[row_of_key[orig]]
            assert a["cluster_id"] == b["cluster_id"] and a["cluster_size"] == b["cluster_size"] == 2
            member = b if copy_kept else a
            assert member["cluster_id"] == ids[row_of_key[orig if not copy_kept else copy]]
            assert 0.7 <= member["jaccard"] < 1.0 and f"Jaccard {member['jaccard']:.2f}" in member["detail"]
            assert member["action"] == ("drop" if stage_dir == "02-minhash_dedup" else "review")
        assert [r["shingles"] for r in t][-2:] == [0, 0]
        assert sum(r["is_representative"] for r in t) == len(t) - len(dups)


def test_exact_dedup_on_normalised_text_and_on_pairs(make_pipeline, tmp_path):
    texts = ["A cat on the mat.", "a CAT, on the   mat", "A dog on the mat.", "", "!!!", "a cat on the mat"]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    p = make_pipeline({"format": "jsonl", "path": str(path)}, [
        {"exact_dedup": {"on": ["text"], "keep": "longest_text"}}])
    run(p)
    t = read_stage(RunDir(tmp_path / "run"), "00-exact_dedup").to_pylist()
    assert [r["flag"] for r in t] == ["exact_duplicate", None, None, None, None, "exact_duplicate"]
    assert t[0]["cluster_id"] == t[1]["id"] and t[1]["cluster_size"] == 3 and t[0]["action"] == "drop"


def test_image_dedup_on_ukbench_variants(shared_data, make_pipeline, tmp_path):
    src = shared_data / "imagededup-ukbench"
    root = tmp_path / "imgs"
    root.mkdir()
    lines = []
    for f in sorted((src / "base_images").glob("*.jpg")) + sorted((src / "mixed_images").glob("*.jpg")):
        name = f"{f.parent.name}__{f.name}"
        shutil.copy(f, root / name)
        lines.append(json.dumps({"image": name}))
    (root / "m.jsonl").write_text("\n".join(lines) + "\n")
    p = make_pipeline({"format": "jsonl", "path": str(root / "m.jsonl")},
                      [{"image_dedup": {"max_distance": 10, "keep": "first"}}])
    run(p)
    flagged, every, _ = flagged_by_source(tmp_path / "run", "00-image_dedup")
    flagged = {k.split(":")[0] for k in flagged}
    # the same photo in both folders and its resized copy are found; other objects are not flagged
    assert {"mixed_images__ukbench00120.jpg", "mixed_images__ukbench00120_resize.jpg",
            "mixed_images__ukbench09268.jpg"} <= flagged
    assert not any("base_images" in f for f in flagged)
    assert all(("00120" in f or "09268" in f) for f in flagged)


@pytest.mark.parametrize("stage, message", [
    ({"minhash_dedup": {"bands": 8}}, "bands and rows go together"),
    ({"minhash_dedup": {"bands": 20, "rows": 10}}, "must be <= num_perm"),
    ({"minhash_dedup": {"keep": "biggest"}}, "keep must be one of first, longest_text"),
    ({"minhash_dedup": {"threshold": 1.5}}, "threshold"),
    ({"image_dedup": {"max_distance": 64}}, "max_distance must be < 64"),
    ({"image_dedup": {"hash": "md5"}}, "phash"),
    ({"exact_dedup": {"on": ["label"]}}, "image"),
    ({"exact_dedup": {"of": ["image"]}}, "unknown key 'of'"),
])
def test_config_errors_name_the_problem(make_pipeline, stage, message):
    p = make_pipeline(COCO, [stage])
    with pytest.raises(ConfigError) as exc:
        load_pipeline(p)
    assert message in str(exc.value)


def test_unquoted_yaml_on_key_is_read(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text(f"name: t\ninput: {{format: coco, path: {EXAMPLES / 'coco'}}}\n"
                 "stages:\n  - exact_dedup: {on: [image, text], action: drop}\n")
    (spec,) = load_pipeline(p).stages
    assert spec.params.on == ["image", "text"]
