"""The run-directory contract: typed manifest, declared outputs and roles, per-run stage instances,
summaries from pool workers, extras checked before ingest, and a plug-in stage through review and export."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

import tests.plugin_stages  # noqa: F401  (registers the plug-in stages)
from curate.config import load_pipeline
from curate.decisions import DecisionStore
from curate.errors import CurateError
from curate.export import export_run
from curate.fate import iter_fates
from curate.rundir import RunDir
from curate.runner import Runner
from curate.stages import base
from tests.conftest import EXAMPLES, write_pipeline

COCO = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 16}


def _run(tmp_path, stages, *, output=None, workers=1, **kw):
    p = write_pipeline(tmp_path, COCO, stages, workers=workers, **kw)
    runner = Runner(load_pipeline(p), output=str(output or tmp_path / "run"), quiet=True)
    return runner, runner.execute()


def test_manifest_is_typed_and_carries_the_declared_outputs(tmp_path):
    runner, m = _run(tmp_path, [{"image_quality": {"min_side": 64}}, {"image_dedup": {}}])
    assert m.finished and m.input.rows == 58
    iq = m.stage("image_quality")
    assert iq.outputs.score_for("too_small").param == "min_side" and iq.outputs.score_for("too_small").flags_when == "below"
    assert m.stage("01-image_dedup").outputs.column_with_role("duplicate_group") == "cluster_id"
    assert m.stage(1).outputs.column_with_role("representative") == "is_representative"
    # the JSON on disk is the same contract
    raw = json.loads((runner.run.root / "manifest.json").read_text())
    assert raw["stages"][1]["outputs"]["columns"][1]["role"] == "duplicate_group"
    with pytest.raises(CurateError, match="no stage 'nope'.*00-image_quality, 01-image_dedup"):
        m.stage("nope")


def test_empty_shards_carry_the_full_declared_schema():
    import pyarrow as pa

    from curate.runner import empty_output
    from curate.stages.image_quality import ImageQuality

    stage = ImageQuality(ImageQuality.Params(), None)
    t = empty_output(stage, pa.array([], pa.string()))
    assert t.column_names == ["id", *stage.output_schema().names, "flag", "action", "detail"]
    assert t.schema.field("sharpness").type == pa.float32()


def test_two_runs_in_one_process_keep_their_own_context_and_summaries(tmp_path):
    stages = [{"where_am_i": {}}]
    _, a = _run(tmp_path, stages, output=tmp_path / "runA")
    _, b = _run(tmp_path, stages, output=tmp_path / "runB")
    assert a.stage("where_am_i").summary["cache_dir"] == str(tmp_path / "runA" / "cache")
    assert b.stage("where_am_i").summary["cache_dir"] == str(tmp_path / "runB" / "cache")
    assert (tmp_path / "runB" / "cache" / "where_am_i.txt").is_file()
    # a forced rerun in the same process records its summary again (it used to record {})
    runner = Runner(load_pipeline(write_pipeline(tmp_path, COCO, stages)), output=str(tmp_path / "runB"),
                    force=True, quiet=True)
    c = runner.execute()
    assert c.stage("where_am_i").summary["batches"] == 4  # 58 items in shards of 16


def test_a_summary_written_in_pool_workers_reaches_the_manifest(tmp_path):
    _, m = _run(tmp_path, [{"count_rows": {}}], workers=2)
    s = m.stage("count_rows").summary
    assert s["rows_seen"] == m.input.rows == 58
    assert sum(s["pids"].values()) == m.input.shards == 4


def test_a_missing_extra_fails_before_ingest(tmp_path, monkeypatch):
    monkeypatch.setitem(base.EXTRA_MODULES, "fake_extra_for_tests", ("no_such_module_for_curate_tests",))
    with pytest.raises(CurateError, match=r"needs the 'fake_extra_for_tests' extra.*pip install 'curate\[fake_extra_for_tests\]'"):
        _run(tmp_path, [{"text_quality": {}}, {"needs_fake_extra": {}}])
    assert not (tmp_path / "run" / "data").exists()


def _texts(paths) -> dict[str, str]:
    rows = {}
    for p in paths:
        t = pq.read_table(p, columns=["id", "text"])
        rows.update(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    return rows


def test_a_plugin_stage_with_a_replacement_text_role_flows_through_review_and_export(tmp_path):
    runner, m = _run(tmp_path, [{"shout": {"action": "review"}}])
    run = runner.run
    entry = m.stage("shout")
    assert entry.outputs.edits() == {"text": "loud"} and entry.outputs.edit_flags == {"shouted": "loud"}
    flagged = [(i, r) for f in iter_fates(run) for i, r in zip(f.ids, f.reasons) if r]
    assert len(flagged) > 3
    # the review side sees the plug-in's flag like any other
    from curate.review.queue import build_index

    index = build_index(run, use_cache=False)
    assert set(index["id"]) >= {i for i, _ in flagged}
    a, b, c = (i for i, _ in flagged[:3])
    store = DecisionStore(run.review_db)
    store.decide([a], "accepted", reviewer="t")
    store.decide([b], "rejected", reviewer="t")
    em = export_run(run.root, tmp_path / "out", quiet=True)
    got = _texts(sorted((tmp_path / "out").glob("part-*.parquet")))
    original = _texts(run.data_shards())
    # every item stays (edits never decide whether an item goes); only the accepted edit is applied
    assert len(got) == m.input.rows and em["counts"]["kept"] == m.input.rows
    assert got[a] == original[a].upper() != original[a]
    assert got[b] == original[b] and got[c] == original[c]
    assert em["review"]["captions_replaced"] == 1
    # with action keep the edit applies without review
    runner2, _ = _run(tmp_path, [{"shout": {"action": "keep"}}], output=tmp_path / "run2")
    export_run(runner2.run.root, tmp_path / "out2", quiet=True)
    got2 = _texts(sorted((tmp_path / "out2").glob("part-*.parquet")))
    assert all(t == t.upper() for t in got2.values() if t)


def test_require_finished_says_how_to_finish(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(CurateError, match="not a run directory"):
        run.require_finished("export")
    runner, m = _run(tmp_path, [{"text_quality": {}}])
    m.status = None
    runner.run.save_manifest(m)
    with pytest.raises(CurateError, match="did not finish.*before you export"):
        runner.run.require_finished("export")
