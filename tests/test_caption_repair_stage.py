"""caption_repair from YAML on the demo data: planted broken captions are repaired with provenance,
clean captions are left alone."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from curate.config import load_yaml, parse_pipeline
from curate.errors import ConfigError, CurateError
from curate.runner import Runner
from curate.shards import read_records, read_stage
from curate.rundir import RunDir

from tests.conftest import EXAMPLES, REPO


def _demo(tmp_path, stages=None):
    doc = load_yaml((REPO / "pipelines" / "demo.yaml").read_text())  # "on:" is a key, as curate reads it
    doc["input"]["path"] = str(EXAMPLES / "coco")
    doc["output"] = str(tmp_path / "run")
    if stages is not None:
        doc["stages"] = stages
    return parse_pipeline(doc)


def _run_rows(tmp_path, pipeline) -> dict[str, dict]:
    manifest = Runner(pipeline, quiet=True).execute()
    run = RunDir(tmp_path / "run")
    entry = next(s for s in manifest.stages if s.name == "caption_repair")
    out = read_stage(run, entry.dir)
    rec = read_records(run, ["id", "source", "text", "meta"])
    assert out.column("id").to_pylist() == rec.column("id").to_pylist()
    return {r["source"]: {**r, **o} for r, o in zip(rec.to_pylist(), out.to_pylist())}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    pipeline = _demo(tmp)
    assert "caption_repair" in [s.name for s in pipeline.stages], "the demo pipeline runs caption_repair"
    return tmp / "run", _run_rows(tmp, pipeline)


@pytest.fixture(scope="module")
def demo_rows(demo_run):
    return demo_run[1]


def _planted():
    return json.loads((EXAMPLES / "coco" / "planted.json").read_text())


@pytest.mark.slow
def test_demo_planted_broken_captions_are_repaired(demo_rows):
    broken = [p for p in _planted() if p["problem"] == "broken_caption"]
    assert len(broken) >= 7
    for p in broken:
        row = demo_rows[p["file_name"]]
        assert row["caption_original"] == p["caption"] == row["text"]
        assert row["flag"] == "caption_repaired", (p, row["detail"])
        assert row["action"] == "review"
        assert row["rules_applied"], p
        if p["kind"] == "filename":
            # nothing is left of "IMG_2031.JPG": another human caption of the same image takes its place
            siblings = json.loads(row["meta"])["other_captions"]
            assert row["caption_source"] == "sibling" and row["caption"] in siblings
        else:
            assert row["caption_source"] == "rules"
            assert row["caption"] == p["human_caption"], (p["kind"], row["caption"])
        # the change is in the detail, both ways, for the reviewer's diff
        assert row["caption"] in row["detail"] and p["caption"].strip()[:20] in row["detail"]


@pytest.mark.slow
def test_demo_clean_captions_are_left_alone(demo_rows):
    broken = {p["file_name"] for p in _planted() if p["problem"] == "broken_caption"}
    clean = [r for src, r in demo_rows.items() if src not in broken]
    assert len(clean) >= 40
    for r in clean:
        assert r["caption"] == r["caption_original"] == r["text"]
        assert r["caption_source"] == "original" and r["flag"] is None and r["rules_applied"] == []
        assert r["score_original"] is None  # no embed stage in the demo: no CLIP scores
        assert [c["source"] for c in r["candidates"]][0] == "original"


def test_junk_caption_without_siblings_is_flagged(tmp_path):
    (tmp_path / "data").mkdir()
    rows = [{"file": None, "caption": "IMG_2031.JPG"}, {"file": None, "caption": "A dog &amp; a cat"},
            {"file": None, "caption": "A dog on the grass."}]
    manifest = tmp_path / "data" / "m.jsonl"
    manifest.write_text("".join(json.dumps({"caption": r["caption"], "k": i}) + "\n" for i, r in enumerate(rows)))
    doc = {"name": "t", "input": {"format": "jsonl", "path": str(manifest), "columns": {"text": "caption"}},
           "output": str(tmp_path / "run"), "workers": 1,
           "stages": [{"caption_repair": {"rules": ["html", "filenames"], "action": {"caption_junk": "drop",
                                                                                    "default": "keep"}}}]}
    out = _run_rows(tmp_path, parse_pipeline(doc))
    by_text = {r["caption_original"]: r for r in out.values()}
    junk = by_text["IMG_2031.JPG"]
    assert (junk["flag"], junk["action"], junk["caption"]) == ("caption_junk", "drop", "")
    fixed = by_text["A dog &amp; a cat"]
    assert (fixed["flag"], fixed["action"], fixed["caption"]) == ("caption_repaired", "keep", "A dog & a cat")
    assert by_text["A dog on the grass."]["flag"] is None


def test_bad_params_are_clear_config_errors():
    base = {"name": "t", "input": {"format": "coco", "path": str(EXAMPLES / "coco")}}
    with pytest.raises(ConfigError, match=r"stages\[0\]\.caption_repair\.rules\[0\]: expected one of"):
        parse_pipeline({**base, "stages": [{"caption_repair": {"rules": ["htlm"]}}]})
    with pytest.raises(ConfigError, match="min_gain: expected a number >= 0"):
        parse_pipeline({**base, "stages": [{"caption_repair": {"min_gain": -0.5}}]})
    with pytest.raises(ConfigError, match="generated' is not in candidates"):
        parse_pipeline({**base, "stages": [{"caption_repair": {"generate": {"only_below": 0.2}}}]})
    with pytest.raises(ConfigError, match="unknown key 'onyl_below'"):
        parse_pipeline({**base, "stages": [{"caption_repair": {"candidates": ["generated"],
                                                               "generate": {"onyl_below": 0.2}}}]})


def test_generated_candidates_without_an_embed_stage_is_an_error(tmp_path):
    pipeline = _demo(tmp_path, stages=[{"caption_repair": {"candidates": ["rules", "generated"]}}])
    with pytest.raises(CurateError, match="needs CLIP scores.*embed"):
        Runner(pipeline, quiet=True).execute()


@pytest.mark.slow
def test_export_applies_accepted_repairs_and_can_keep_the_original(demo_run, tmp_path):
    from click.testing import CliRunner

    from curate.cli import main
    from curate.decisions import DecisionStore

    run_dir, rows = demo_run
    broken = {p["file_name"]: p for p in _planted() if p["problem"] == "broken_caption"}

    def export(out, *extra):
        res = CliRunner().invoke(main, ["export", str(run_dir), "--format", "jsonl", "--out", str(out), "--pending",
                                        "keep", *extra, "-q"])
        assert res.exit_code == 0, res.output
        return {r["source"]: r for r in map(json.loads, (out / "data.jsonl").read_text(encoding="utf-8").splitlines())}

    # a repair is a proposed edit: unreviewed, the item goes out with its original caption
    before = export(tmp_path / "before", "--keep-original-caption")
    assert set(broken) <= set(before)
    assert all(r["text"] == r["caption_original"] == rows[src]["caption_original"] for src, r in before.items())
    # accepted, the repaired caption replaces it
    repaired = [rows[src]["id"] for src in broken]
    store = DecisionStore(RunDir(run_dir).review_db)
    rows_written = store.decide(repaired, "accepted", reviewer="test")
    try:
        exported = export(tmp_path / "out", "--keep-original-caption")
        for src, r in exported.items():
            assert r["text"] == rows[src]["caption"]
            assert r["caption_original"] == rows[src]["caption_original"]
            if src in broken:
                assert r["caption_original"] == broken[src]["caption"] != r["text"]
            else:
                assert r["text"] == r["caption_original"]

        # without the option: no caption_original column, still the accepted caption
        from curate.export import export_run

        export_run(run_dir, tmp_path / "pq", fmt="parquet", pending="keep", quiet=True)
        import pyarrow.parquet as pq

        t = pa.concat_tables([pq.read_table(p) for p in sorted((tmp_path / "pq").glob("part-*.parquet"))])
        assert "caption_original" not in t.column_names
        got = dict(zip(t.column("source").to_pylist(), t.column("text").to_pylist()))
        assert got["000000234748.jpg"] == "A man talking on a phone standing behind a blue car."
    finally:  # the run is shared by this module's tests: take the decisions back
        store.undo(rows_written)
