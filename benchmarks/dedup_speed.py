"""MinHash signature throughput and accuracy, and the minhash_dedup stage end to end on 1M rows.

1. Engines on the same shingles (word 5-grams, 128 permutations), 5,000 IMDB reviews: curate's
   vectorised one-permutation MinHash (from raw text, i.e. tokenising and shingling included; and
   from the shingle hashes alone), datasketch's per-token ``update()`` loop (on 1,000 reviews: it is
   slow), ``MinHash.bulk``, rensa's ``RMinHash`` (one object per document, as its docs show) and its
   batch ``digest_matrix_*`` functions. The baselines get ready-made shingle strings (building them in
   Python is timed separately and not charged to them). Accuracy of every engine: RMSE of its Jaccard
   estimates against the exact Jaccard of the same shingle sets, on pairs of a review and an edited
   copy (Jaccard spread over 0..1).
2. 1M rows of real text: IMDB test reviews split into sentences and recombined (3-12 sentences per
   row), 10% of the rows planted near duplicates of another row (one or two words replaced). Signature
   throughput of curate's engine and of rensa on all rows.
3. The ``minhash_dedup`` stage on those rows from YAML (``curate run``, 2 workers): wall time, the
   stage's seconds from the manifest, peak RSS of the whole process tree, and precision/recall of
   the planted near duplicates.

    nice -n 10 python benchmarks/dedup_speed.py [--rows 1000000] [--skip-stage] [--executors local,ray]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import REPO, machine, shared_data
from curate.dedup.minhash import estimate_jaccard, signatures, text_signatures
from curate.dedup.shingles import shingle_hashes

K = 128
NGRAM = 5
_WORD = re.compile(r"[a-z0-9\u0080-\U0010ffff]+")  # the same words as curate's tokenizer (lower-cased)


def reviews() -> list[str]:
    with gzip.open(shared_data("imdb-test") / "imdb_test.jsonl.gz", "rt") as f:
        return [json.loads(line)["text"] for line in f]


def py_shingles(text: str) -> list[str]:
    words = _WORD.findall(text.lower())
    if len(words) < NGRAM:
        return [" ".join(words)] if words else []
    return [" ".join(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)]


def edited_pairs(texts: list[str], rng) -> list[tuple[str, str]]:
    """A text and a copy with a random share of its words replaced (Jaccard from ~0 to 1)."""
    out = []
    for t in texts:
        words = t.split()
        share = rng.uniform(0, 0.3)
        for i in rng.choice(len(words), size=int(share * len(words)), replace=False):
            words[i] = "zz" + str(rng.integers(1 << 30))
        out.append((t, " ".join(words)))
    return out


def timed(fn, repeat: int = 3):
    """Result and best wall time of ``repeat`` runs (the machine is shared: the best run is the least disturbed)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def engines_on_sample(texts, rng):
    import datasketch
    import rensa

    n = len(texts)
    shingles, t_shingle = timed(lambda: [py_shingles(t) for t in texts], repeat=1)
    encoded = [[s.encode() for s in sh] for sh in shingles]
    print(f"sample: {n} IMDB reviews, {np.mean([len(s) for s in shingles]):.1f} word 5-grams each on average; "
          f"building shingle strings in Python: {n / t_shingle:,.0f} docs/s (not charged to the baselines)")
    results = {}
    load0 = os.getloadavg()[0]

    def ours_raw():
        return text_signatures(texts, num_perm=K, ngram=NGRAM)

    timed(ours_raw)  # warm-up (power tables)
    _, t = timed(ours_raw)
    results["curate OPH, from raw text (tokenise + shingle + sign)"] = n / t
    hashed = [shingle_hashes(texts[s:s + 512], ngram=NGRAM) for s in range(0, n, 512)]
    _, t = timed(lambda: [signatures(h, o, num_perm=K) for h, o in hashed])
    results["curate OPH, signatures from shingle hashes"] = n / t
    m = min(n, 1000)

    def update_loop():
        for sh in encoded[:m]:
            mh = datasketch.MinHash(num_perm=K)
            for s in sh:
                mh.update(s)

    _, t = timed(update_loop, repeat=1)
    results[f"datasketch MinHash.update loop ({m} docs)"] = m / t
    _, t = timed(lambda: datasketch.MinHash.bulk(encoded, num_perm=K))
    results["datasketch MinHash.bulk"] = n / t

    def rensa_objects():
        for sh in shingles:
            r = rensa.RMinHash(K, 42)
            r.update(sh)
            r.digest()

    _, t = timed(rensa_objects)
    results["rensa RMinHash (one per doc, update + digest)"] = n / t
    _, t = timed(lambda: rensa.RMinHash.digest_matrix_from_token_sets(shingles, K, 42))
    results["rensa digest_matrix_from_token_sets (batch)"] = n / t
    flat = np.concatenate([h for h, _ in hashed])
    offs = np.concatenate([[0]] + [o[1:] + sum(len(h) for h, _ in hashed[:i]) for i, (_, o) in enumerate(hashed)])
    _, t = timed(lambda: rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat, offs.astype(np.uint64), K, 42))
    results["rensa digest_matrix_from_flat_token_hashes (our shingle hashes)"] = n / t
    base = results["rensa RMinHash (one per doc, update + digest)"]
    print(f"\nload average before: {load0:.1f}, after: {os.getloadavg()[0]:.1f} (2 cores, shared)")
    print(f"{'engine':66s} {'docs/s':>10s} {'vs rensa RMinHash':>17s}")
    for k, v in results.items():
        print(f"{k:66s} {v:10,.0f} {v / base:16.2f}x")

    # accuracy on edited pairs
    pairs = edited_pairs(texts[:1000], rng)
    left, right = [a for a, _ in pairs], [b for _, b in pairs]
    sl, sr = [set(py_shingles(t)) for t in left], [set(py_shingles(t)) for t in right]
    exact = np.array([len(a & b) / len(a | b) if a | b else 1.0 for a, b in zip(sl, sr)])
    sig, _ = signatures(*shingle_hashes(left + right, ngram=NGRAM), num_perm=K)
    est = {"curate OPH": estimate_jaccard(sig[:1000], sig[1000:])}
    ml = datasketch.MinHash.bulk([[s.encode() for s in x] for x in sl], num_perm=K)
    mr = datasketch.MinHash.bulk([[s.encode() for s in x] for x in sr], num_perm=K)
    est["datasketch MinHash (classic)"] = np.array([a.jaccard(b) for a, b in zip(ml, mr)])
    rl = np.array(rensa.RMinHash.digest_matrix_from_token_sets([list(x) for x in sl], K, 42).to_rows())
    rr = np.array(rensa.RMinHash.digest_matrix_from_token_sets([list(x) for x in sr], K, 42).to_rows())
    est["rensa RMinHash"] = np.mean(rl == rr, axis=1)
    print(f"\naccuracy on {len(pairs)} (review, edited copy) pairs, exact Jaccard mean {exact.mean():.2f} "
          f"(min {exact.min():.2f}, max {exact.max():.2f}):")
    for k, e in est.items():
        err = e - exact
        print(f"  {k:30s} RMSE {np.sqrt(np.mean(err ** 2)):.4f}  bias {err.mean():+.4f}  max |err| {np.abs(err).max():.3f}")
    print(f"  (theory for classic MinHash at K={K}: RMSE {np.sqrt(np.mean(exact * (1 - exact) / K)):.4f})")


def build_rows(texts, n_rows, rng):
    sentences = [s for t in texts for s in re.split(r"(?<=[.!?])\s+", t.replace("<br />", " ")) if len(s) > 3]
    n_dup = n_rows // 10
    n_base = n_rows - n_dup
    counts = rng.integers(3, 13, size=n_base)
    picks = rng.integers(0, len(sentences), size=int(counts.sum()))
    rows, pos = [], 0
    for c in counts.tolist():
        rows.append(" ".join(sentences[i] for i in picks[pos:pos + c]))
        pos += c
    sources = rng.integers(0, n_base, size=n_dup)
    dup_of = {}
    for k, src in enumerate(sources.tolist()):
        words = rows[src].split()
        for i in rng.choice(len(words), size=min(len(words), int(rng.integers(1, 3))), replace=False):
            words[i] = "zz" + str(rng.integers(1 << 30))
        dup_of[n_base + k] = src
        rows.append(" ".join(words))
    return rows, dup_of, len(sentences)


def throughput_1m(rows):
    """Blocks of 10,000 rows; on each block curate's engine and rensa run back to back, so load from
    other jobs on the shared machine hits both alike."""
    import rensa

    n = len(rows)
    text_signatures(rows[:1000], num_perm=K, ngram=NGRAM)
    t_ours = t_rensa = t_py = 0.0
    for s in range(0, n, 10000):
        block = rows[s:s + 10000]
        t0 = time.perf_counter()
        text_signatures(block, num_perm=K, ngram=NGRAM)
        t1 = time.perf_counter()
        sh = [py_shingles(t) for t in block]
        t2 = time.perf_counter()
        for x in sh:
            r = rensa.RMinHash(K, 42)
            r.update(x)
            r.digest()
        t3 = time.perf_counter()
        t_ours, t_py, t_rensa = t_ours + t1 - t0, t_py + t2 - t1, t_rensa + t3 - t2
    print(f"\n{n:,} rows, word 5-grams, 128 permutations, one process (load average now {os.getloadavg()[0]:.1f}):")
    print(f"  curate OPH from raw text     {n / t_ours:10,.0f} docs/s ({t_ours:.1f} s)")
    print(f"  rensa RMinHash               {n / t_rensa:10,.0f} docs/s ({t_rensa:.1f} s) + {t_py:.1f} s building its shingle strings "
          f"-> {n / (t_rensa + t_py):,.0f} docs/s from raw text")
    print(f"  curate / rensa: {t_rensa / t_ours:.2f}x (rensa given ready shingles), {(t_rensa + t_py) / t_ours:.2f}x (both from raw text)")


def planted_jaccard(rows, dup_of):
    """Exact Jaccard of every planted pair on curate's shingles."""
    from curate.dedup.shingles import shingle_sets

    copies = np.array(list(dup_of))
    out = np.empty(len(copies))
    for s in range(0, len(copies), 10000):
        c = copies[s:s + 10000]
        sets = shingle_sets([rows[i] for i in c] + [rows[dup_of[i]] for i in c.tolist()], ngram=NGRAM)
        m = len(c)
        out[s:s + m] = [len(sets[i] & sets[m + i]) / len(sets[i] | sets[m + i]) for i in range(m)]
    return copies, out


def tree_peak_rss(proc, interval: float = 0.1) -> tuple[int, int, int]:
    """Peak resident memory of a running subprocess, of its descendants and of both (see :func:`tree_usage`)."""
    return tree_usage(proc, interval)[:3]


def tree_usage(proc, interval: float = 0.1) -> tuple[int, int, int, float]:
    """Peak resident memory of a running subprocess (the driver), of its descendants (workers, Ray's
    processes) and of both together, sampled until it exits; and the CPU seconds (user + sys) of the
    tree, from each process's last sample (a process's last interval before it exits is missed)."""
    import psutil

    root = psutil.Process(proc.pid)
    peak = main_peak = child_peak = 0
    cpu: dict[int, float] = {}
    while proc.poll() is None:
        main = children = 0
        try:
            main = root.memory_info().rss
            t = root.cpu_times()
            cpu[root.pid] = t.user + t.system
            for p in root.children(recursive=True):
                try:
                    children += p.memory_info().rss
                    t = p.cpu_times()
                    cpu[p.pid] = t.user + t.system
                except psutil.Error:
                    pass
        except psutil.Error:
            break
        main_peak, child_peak, peak = max(main_peak, main), max(child_peak, children), max(peak, main + children)
        time.sleep(interval)
    return main_peak, child_peak, peak, sum(cpu.values())


def stage_end_to_end(rows, dup_of, workdir: Path, executor: str = "local"):
    import pyarrow as pa
    import pyarrow.parquet as pq

    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "rows.parquet"
    if not data.exists():
        pq.write_table(pa.table({"text": rows, "key": list(range(len(rows)))}), data, row_group_size=50_000)
    run_dir = workdir / f"run-{executor}"
    pipeline = workdir / f"pipeline-{executor}.yaml"
    pipeline.write_text(
        f"name: dedup-bench\ninput: {{format: parquet, path: {data}, shard_size: 20000}}\noutput: {run_dir}\n"
        f"workers: 2\nexecutor: {executor}\nstages:\n"
        "  - minhash_dedup: {field: text, threshold: 0.8, num_perm: 128, ngram: 5, "
        "tokens: word, verify: true, keep: first, action: review}\n")
    cmd = [str(Path(sys.executable).parent / "curate"), "run", str(pipeline), "--force"]
    t0 = time.perf_counter()
    err_log = workdir / f"curate-run-{executor}.stderr"
    with open(err_log, "w") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
    main_peak, child_peak, peak, cpu = tree_usage(proc)
    out_text = proc.stdout.read()
    wall = time.perf_counter() - t0
    if proc.wait():
        sys.exit(f"curate run failed:\n{out_text}\n{err_log.read_text()[-3000:]}")
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stage = manifest["stages"][0]
    from curate.rundir import RunDir
    from curate.shards import read_records, read_stage

    rd = RunDir(run_dir)
    meta = read_records(rd, ["meta"]).column("meta").to_pylist()
    keys = np.array([json.loads(m)["key"] for m in meta])
    out = read_stage(rd, stage["dir"], ["cluster_id", "flag"])
    cluster = np.array(out.column("cluster_id").to_pylist(), dtype=object)
    flagged = np.array([f is not None for f in out.column("flag").to_pylist()])
    row_of = np.empty(len(keys), dtype=np.int64)
    row_of[keys] = np.arange(len(keys))
    copies, jac = planted_jaccard(rows, dup_of)
    same = np.array([cluster[row_of[c]] == cluster[row_of[dup_of[c]]] for c in copies.tolist()])
    planted_copies = np.zeros(len(keys), dtype=bool)
    planted_copies[row_of[copies]] = True
    planted_rows = planted_copies.copy()
    planted_rows[row_of[np.array([dup_of[c] for c in copies.tolist()])]] = True
    print(f"\nminhash_dedup stage end to end on {len(rows):,} rows (curate run, executor {executor}, 2 workers, "
          f"ingest included; load average {os.getloadavg()[0]:.1f}):")
    print(f"  wall {wall:.0f} s; ingest {manifest['input']['seconds']:.0f} s; stage {stage['seconds']:.0f} s "
          f"({len(rows) / stage['seconds']:,.0f} rows/s); peak RSS: driver {main_peak / 2**30:.2f} GiB, "
          f"workers {child_peak / 2**30:.2f} GiB, all {peak / 2**30:.2f} GiB")
    print(f"  CPU (user + sys of the run's process tree, sampled): {cpu:.0f} s "
          f"({cpu / wall:.2f} cores busy on average)")
    print(f"  summary: {json.dumps(stage['summary'])}")
    hi = jac >= 0.8
    print(f"  planted pairs: {len(copies):,}; exact Jaccard >= 0.8: {int(hi.sum()):,} (median Jaccard {np.median(jac):.2f})")
    print(f"  recall (copy in its source's cluster): {same[hi].mean():.4f} of pairs with Jaccard >= 0.8, "
          f"{same[~hi].mean() if (~hi).any() else float('nan'):.4f} of those below, {same.mean():.4f} overall")
    print(f"  flagged rows {int(flagged.sum()):,}; flagged rows outside the planted pairs: {int((flagged & ~planted_rows).sum()):,}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sample", type=int, default=5000)
    ap.add_argument("--workdir", default="/tmp/curate-dedup-bench")
    ap.add_argument("--skip-stage", action="store_true")
    ap.add_argument("--skip-1m-throughput", action="store_true")
    ap.add_argument("--skip-sample", action="store_true")
    ap.add_argument("--executors", default="local", help="comma-separated: local,ray")
    args = ap.parse_args()
    print(f"machine: {machine()}")
    rng = np.random.default_rng(0)
    texts = reviews()
    if not args.skip_sample:
        engines_on_sample(texts[:args.sample], rng)
    else:
        edited_pairs(texts[:1000], rng)  # the same random draws, so the 1M rows are the same
    rows, dup_of, n_sent = build_rows(texts, args.rows, rng)
    print(f"\nbuilt {len(rows):,} rows from {n_sent:,} IMDB sentences ({len(dup_of):,} planted near duplicates)")
    if not args.skip_1m_throughput:
        throughput_1m(rows)
    if not args.skip_stage:
        for executor in args.executors.split(","):
            stage_end_to_end(rows, dup_of, Path(args.workdir), executor)


if __name__ == "__main__":
    main()
