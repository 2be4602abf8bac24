"""The run directory contract: shards, manifest, skip-if-unchanged, reruns, resume after SIGKILL."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from curate.config import load_pipeline
from curate.errors import InputError
from curate.rundir import RunDir
from curate.runner import Runner
from curate.shards import read_stage
from tests.conftest import EXAMPLES, REPO, image_bytes

COCO = {"format": "coco", "path": str(EXAMPLES / "coco"), "shard_size": 8}
STAGES = [{"image_quality": {"min_side": 64}}, {"text_quality": {"min_words": 2}}]


def run(pipeline_path, **kw):
    runner = Runner(load_pipeline(pipeline_path), quiet=True, **kw)
    manifest = runner.execute()
    return runner, manifest


def test_run_directory_layout(make_pipeline):
    p = make_pipeline(COCO, STAGES)
    runner, m = run(p)
    rd = runner.run
    n = m.input.shards
    assert n == len(rd.data_shards()) > 1
    assert m.status == "done" and m.input.quarantined == 1
    assert [s.dir for s in m.stages] == ["00-image_quality", "01-text_quality"]
    for s in m.stages:
        parts = sorted((rd.stages_dir / s.dir).glob("part-*.parquet"))
        assert len(parts) == n
        for i, part in enumerate(parts):
            ann = pq.read_table(part)
            data_ids = pq.read_table(rd.data_shard(i), columns=["id"]).column("id")
            assert ann.column("id").equals(data_ids)  # row-aligned with the data shard
            assert ann.column_names[-3:] == ["flag", "action", "detail"]
            assert "image" not in ann.column_names  # image bytes never copied into annotations
    q = pq.read_table(rd.quarantine_shards()[0])
    assert q.column("reason").to_pylist() == ["truncated_image"] and q.column("image")[0].as_py()
    assert not list(rd.root.rglob("*.tmp"))


def test_second_run_is_up_to_date_and_changes_rerun_downstream_only(make_pipeline, tmp_path):
    p = make_pipeline(COCO, STAGES)
    runner, _ = run(p)
    assert {r["status"] for r in runner.report} == {"ran"}
    mtimes = {f: f.stat().st_mtime_ns for f in runner.run.root.rglob("part-*.parquet")}
    runner2, _ = run(p)
    assert {r["status"] for r in runner2.report} == {"up to date"}
    assert {f: f.stat().st_mtime_ns for f in runner2.run.root.rglob("part-*.parquet")} == mtimes
    # change the last stage only: ingest and the first stage stay
    p2 = make_pipeline(COCO, [STAGES[0], {"text_quality": {"min_words": 5}}])
    runner3, m3 = run(p2)
    assert [r["status"] for r in runner3.report] == ["up to date", "up to date", "ran"]
    assert m3.stages[1].params["min_words"] == 5
    # change the first stage: both stages rerun
    p3 = make_pipeline(COCO, [{"image_quality": {"min_side": 10}}, {"text_quality": {"min_words": 5}}])
    runner4, _ = run(p3)
    assert [r["status"] for r in runner4.report] == ["up to date", "ran", "ran"]
    # --from reruns that stage and later ones; --force redoes ingest too
    runner5, _ = run(p3, from_stage="text_quality")
    assert [r["status"] for r in runner5.report] == ["up to date", "up to date", "ran"]
    runner6, _ = run(p3, force=True)
    assert [r["status"] for r in runner6.report] == ["ran", "ran", "ran"]


def test_removed_stage_directory_is_cleaned(make_pipeline):
    runner, _ = run(make_pipeline(COCO, STAGES))
    assert (runner.run.stages_dir / "01-text_quality").is_dir()
    runner, m = run(make_pipeline(COCO, STAGES[:1]))
    assert not (runner.run.stages_dir / "01-text_quality").exists()
    assert len(m.stages) == 1


def test_changed_input_reingests(make_pipeline, tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    for i in range(3):
        (root / "a" / f"{i}.png").write_bytes(image_bytes(80, 80, fmt="PNG", seed=i))
    p = make_pipeline({"format": "imagefolder", "path": str(root)}, [{"image_quality": {}}])
    _, m = run(p)
    assert m.input.rows == 3
    (root / "a" / "3.png").write_bytes(image_bytes(80, 80, fmt="PNG", seed=9))
    runner, m = run(p)
    assert runner.report[0]["status"] == "ran" and m.input.rows == 4


def test_empty_dataset_is_a_clear_error(make_pipeline, tmp_path):
    (tmp_path / "empty").mkdir()
    p = make_pipeline({"format": "imagefolder", "path": str(tmp_path / "empty")}, [])
    with pytest.raises(InputError, match="is empty"):
        run(p)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"")
    p = make_pipeline({"format": "imagefolder", "path": str(tmp_path / "bad")}, [])
    with pytest.raises(InputError, match="no readable items"):
        run(p)


def test_parallel_and_inline_runs_agree(make_pipeline, tmp_path):
    p1 = make_pipeline(COCO, STAGES, workers=1)
    r1, _ = run(p1, output=str(tmp_path / "one"))
    r2, _ = run(p1, output=str(tmp_path / "two"), workers=2)
    for d in ("00-image_quality", "01-text_quality"):
        assert read_stage(r1.run, d).equals(read_stage(r2.run, d))


@pytest.mark.slow
def test_sigkill_mid_run_resumes_without_redoing_finished_shards(make_pipeline, tmp_path):
    stages = [{"text_quality": {}}, {"slow_copy": {"seconds": 0}}]
    cfg = {**COCO, "shard_size": 4}
    p = make_pipeline(cfg, stages, workers=2)
    out = tmp_path / "killed"
    code = ("import sys; sys.path.insert(0, %r); import tests.slow_stage; from curate.cli import main; "
            "main(['run', %r, '--output', %r, '--quiet'])") % (str(REPO), str(p), str(out))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gate = tmp_path / "gate"  # four shards of slow_copy finish, the rest wait for the kill (tests/slow_stage.py)
    gate.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            env={**env, "SLOW_COPY_GATE": str(gate), "SLOW_COPY_FREE": "4"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    slow_dir = out / "stages" / "01-slow_copy"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(slow_dir.glob("part-*.parquet"))) < 4:
        assert proc.poll() is None, "curate run exited before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {f.name: f.stat().st_mtime_ns for f in slow_dir.glob("part-*.parquet")}
    n_shards = len(list((out / "data").glob("part-*.parquet")))
    assert len(done_before) == 4 < n_shards, "the kill should land mid-stage"
    # resume (in a subprocess too, because the slow stage is registered by the test module)
    subprocess.run([sys.executable, "-c", code], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = {f.name: f.stat().st_mtime_ns for f in slow_dir.glob("part-*.parquet")}
    assert len(after) == n_shards
    assert all(after[name] == t for name, t in done_before.items()), "finished shards were redone"
    assert not list(out.rglob("*.tmp"))
    # the resumed result equals an uninterrupted run's
    ref = tmp_path / "ref"
    code_ref = code.replace(repr(str(out)), repr(str(ref)))
    subprocess.run([sys.executable, "-c", code_ref], check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for d in ("00-text_quality", "01-slow_copy"):
        assert read_stage(RunDir(out), d).equals(read_stage(RunDir(ref), d))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["group", "main"])
def test_ctrl_c_stops_cleanly_and_the_rerun_finishes(make_pipeline, tmp_path, target):
    """Ctrl-C in a terminal signals the whole process group; ``kill -INT`` of the pid reaches only the main
    process, which must stop its workers itself. Either way the run stops without waiting for the shards
    held in the workers (they would sleep two minutes)."""
    cfg = {**COCO, "shard_size": 4}
    p = make_pipeline(cfg, [{"slow_copy": {"seconds": 0}}], workers=2)
    out = tmp_path / "interrupted"
    # SIGINT as a terminal's foreground process has it (a suite started in the background ignores it)
    code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); sys.path.insert(0, %r); "
            "import tests.slow_stage; from curate.cli import main; "
            "main(['run', %r, '--output', %r, '--quiet'])") % (str(REPO), str(p), str(out))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    gate = tmp_path / "gate"  # two shards finish, the rest wait for the signal (tests/slow_stage.py)
    gate.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            env={**env, "SLOW_COPY_GATE": str(gate), "SLOW_COPY_FREE": "2"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stage_dir = out / "stages" / "00-slow_copy"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(stage_dir.glob("part-*.parquet"))) < 2:
        assert proc.poll() is None, "curate run exited before it could be interrupted"
        time.sleep(0.05)
    if target == "group":
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: finished shards are kept" in err and "Traceback" not in err
    assert not list(out.rglob("*.tmp"))
    kept = {f.name: f.stat().st_mtime_ns for f in stage_dir.glob("part-*.parquet")}
    assert len(kept) == 2, "exactly the two shards let through the gate are finished"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert len(list(stage_dir.glob("part-*.parquet"))) == len(list((out / "data").glob("part-*.parquet"))) > 2
    assert {n: (stage_dir / n).stat().st_mtime_ns for n in kept} == kept, "the rerun redid finished shards"


def test_abort_interrupts_the_shards_held_in_the_workers(tmp_path):
    """What the runner does when an exception (Ctrl-C, an error) is raised outside the executor's loop,
    while the loop waits at a ``yield``: abort() stops the shards in the workers instead of letting
    close() wait for them (they would wait a minute at the gate, then leave their ``done-`` files)."""
    from curate.executors.local import LocalExecutor
    from tests.slow_stage import gated_task

    gate = tmp_path / "gate"
    gate.mkdir()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as a terminal's foreground process
    try:
        executor = LocalExecutor(workers=2, quiet=True)
        results = executor.map_unordered(gated_task, [(str(gate), i) for i in range(6)], desc="held")
        assert next(results) == {"rows": 1}  # the one task let through the gate
    finally:
        signal.signal(signal.SIGINT, previous)
    workers = list(executor._pool._processes.values())
    executor.abort()
    executor.close()
    results.close()
    for w in workers:
        w.join(timeout=30)
    assert not any(w.is_alive() for w in workers), "a worker still holds its shard"
    assert len(list(gate.glob("done-*"))) == 1, "a held shard ran to its end"
