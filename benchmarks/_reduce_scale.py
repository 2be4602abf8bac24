"""Shared by the reduce scale benchmarks (``dedup_phash_scale.py``, ``semantic_scale.py``): one global
stage's reduce over ready map shards, per arm in its own process, with wall time and peak memory.

Arms: ``local`` (the driver reduce, as ``curate run`` does it without a distributed scheme),
``distributed`` (the stage's scheme as shard tasks on the local executor, 2 workers) and ``ray`` (the
same scheme on a local Ray instance with 2 CPUs). The driver is the arm's process; the workers are
everything it starts (pool workers, or Ray's raylet, object store and workers), sampled every 0.1 s.

    python benchmarks/_reduce_scale.py ARM STAGE PARAMS_JSON MAP_DIR OUT_DIR N_SHARDS   # one arm (internal)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_arm(arm: str, stage: str, params: dict, map_dir: Path, out_dir: Path, n_shards: int, workers: int = 2) -> dict:
    """Run one arm in a subprocess; returns its summary, wall seconds and peak RSS (driver, workers)."""
    from dedup_speed import tree_peak_rss

    cmd = [sys.executable, str(HERE / "_reduce_scale.py"), arm, stage, json.dumps(params), str(map_dir), str(out_dir),
           str(n_shards), str(workers)]
    log = out_dir.parent / f"{out_dir.name}.log"
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        driver, children, both = tree_peak_rss(proc)
        stdout = proc.stdout.read()
    if proc.returncode:
        sys.exit(f"arm {arm} failed (exit {proc.returncode}); see {log}:\n" + log.read_text()[-3000:])
    result = json.loads(stdout.strip().splitlines()[-1])
    result.update(driver_peak_gib=driver / 2**30, workers_peak_gib=children / 2**30, all_peak_gib=both / 2**30)
    return result


def same_outputs(a: Path, b: Path, n_shards: int) -> bool:
    """Whether two arms wrote equal output shards (every column)."""
    from curate.rundir import shard_name
    from curate.shards import read_stage_shard

    for i in range(n_shards):
        x, y = read_stage_shard(a / shard_name(i)), read_stage_shard(b / shard_name(i))
        if x.schema != y.schema or any(not x.column(c).equals(y.column(c)) for c in x.column_names):
            return False
    return True


def read_column(out_dir: Path, n_shards: int, column: str) -> list:
    from curate.rundir import shard_name
    from curate.shards import read_stage_shard

    values: list = []
    for i in range(n_shards):
        values += read_stage_shard(out_dir / shard_name(i)).column(column).to_pylist()
    return values


def load() -> float:
    return os.getloadavg()[0]


def planted_shards(args, make):
    """The map shards under ``args.work/map`` and the planted pairs: made by ``make(map_dir)``, or those of
    an earlier run when ``args.keep_data`` is set and they exist."""
    import shutil

    import numpy as np

    pairs_file = args.work / "planted.npy"
    if args.keep_data and pairs_file.exists():
        return np.load(pairs_file)
    shutil.rmtree(args.work, ignore_errors=True)
    planted = make(args.work / "map")
    np.save(pairs_file, planted)
    return planted


def compare_arms(args, stage: str, params: dict, map_dir: Path, planted, describe, out_name: str) -> dict:
    """Run each of ``args.arms`` over the same map shards, print one line per arm (``describe(summary)``
    adds the stage's own figures), check that the arms wrote identical shards and write the results to
    ``benchmarks/.cache/<out_name>``. Arms of an earlier run over the same data (``--keep-data``) join in."""
    import numpy as np

    results = {}
    for arm in args.arms.split(","):
        load_before = load()
        r = run_arm(arm, stage, params, map_dir, args.work / arm, args.shards)
        cluster = np.asarray(read_column(args.work / arm, args.shards, "cluster_id"), dtype=object)
        r["recall"] = float(np.mean(cluster[planted[:, 0]] == cluster[planted[:, 1]]))
        r["load"] = (load_before, load())
        results[arm] = r
        (args.work / f"{arm}.json").write_text(json.dumps(r))
        print(f"{arm:12s} wall {r['seconds']:7.1f} s  driver {r['driver_peak_gib']:.2f} GiB  workers "
              f"{r['workers_peak_gib']:.2f} GiB  recall {r['recall']:.4f}  {describe(r['summary'])}  "
              f"load {r['load'][0]:.1f}-{r['load'][1]:.1f}", flush=True)
    for f in sorted(args.work.glob("*.json")):
        results.setdefault(f.stem, json.loads(f.read_text()))
    arms = list(results)
    for other in arms[1:]:
        same = same_outputs(args.work / arms[0], args.work / other, args.shards)
        print(f"{arms[0]} and {other}: output shards {'identical' if same else 'DIFFERENT'}, summaries "
              f"{'equal' if results[arms[0]]['summary'] == results[other]['summary'] else 'DIFFERENT'}")
    out = HERE / ".cache" / out_name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return results


def _main(argv: list[str]) -> None:
    arm, stage, params, map_dir, out_dir, n_shards, workers = argv
    import shutil

    from curate.distributed.compare import reduce_map_shards

    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    executor = None
    if arm == "distributed":
        from curate.executors.local import LocalExecutor

        class DistributedLocal(LocalExecutor):
            distributed_reduce = True

        executor = DistributedLocal(workers=int(workers), quiet=True, preload=("curate.runner",))
    elif arm == "ray":
        from curate.executors.ray import RayExecutor

        executor = RayExecutor(workers=int(workers), quiet=True)
    elif arm != "local":
        sys.exit(f"unknown arm {arm!r}: local, distributed, ray")
    t0 = time.perf_counter()
    try:
        summary = reduce_map_shards(stage, json.loads(params), Path(map_dir), out, int(n_shards), executor=executor)
    finally:
        if executor is not None:
            executor.close()
    seconds = time.perf_counter() - t0
    print(json.dumps({"arm": arm, "seconds": seconds, "summary": summary}))


if __name__ == "__main__":
    _main(sys.argv[1:])
