"""Ingest benchmark: the 50,000 CIFAR-10 training JPEGs (read from train.zip) into record shards.

Compares, in the same run, ``curate``'s ingest (header-only size probe, streaming shards, a process
pool) against a naive baseline: a Python loop that opens each image with PIL and one
``pandas.DataFrame.to_parquet`` at the end. Each side runs in its own fresh subprocess so their peak
memory is measured separately.

    python benchmarks/ingest.py [--workers 2] [--n 50000]
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRSS, machine, shared_data  # noqa: E402


def naive(zip_path: Path, out: Path, n: int) -> dict:
    import pandas as pd
    from PIL import Image

    rows = []
    t0 = time.perf_counter()
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(i.filename for i in zf.infolist() if i.filename.endswith(".jpg"))[:n]
        for name in names:
            data = zf.read(name)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
            rows.append({"source": name, "image": data, "label": name.split("/")[-2], "width": w, "height": h})
    pd.DataFrame(rows).to_parquet(out / "naive.parquet")
    return {"rows": len(rows), "seconds": time.perf_counter() - t0}


def curate_ingest(zip_path: Path, out: Path, n: int, workers: int) -> dict:
    from curate.config import parse_pipeline
    from curate.runner import Runner

    pipe = parse_pipeline({"name": "bench", "input": {"format": "imagefolder", "path": str(zip_path), "limit": n},
                           "output": str(out / "run"), "workers": workers, "stages": []})
    t0 = time.perf_counter()
    m = Runner(pipe, quiet=True).execute()
    return {"rows": m["input"]["rows"], "seconds": time.perf_counter() - t0, "shards": m["input"]["shards"]}


def _child(which: str, zip_path: str, n: int, workers: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as mem:
        if which == "naive":
            res = naive(Path(zip_path), Path(tmp), n)
        else:
            res = curate_ingest(Path(zip_path), Path(tmp), n, workers)
    res["peak_rss"] = mem.peak
    print(json.dumps(res))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--child", choices=["naive", "curate"], help=argparse.SUPPRESS)
    ap.add_argument("--zip", default=str(shared_data("cifar10-jpg") / "train.zip"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.zip, args.n, args.workers)
        return
    with zipfile.ZipFile(args.zip) as zf:
        mb = sum(i.file_size for i in sorted(zf.infolist(), key=lambda i: i.filename) if i.filename.endswith(".jpg")) / 1e6
    mb *= min(1.0, args.n / 50_000)
    results = {}
    for which in ("naive", "curate"):
        out = subprocess.run([sys.executable, __file__, "--child", which, "--n", str(args.n), "--workers", str(args.workers),
                              "--zip", args.zip], check=True, capture_output=True, text=True)
        results[which] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"machine: {machine()}")
    print(f"input: {args.zip} ({args.n:,} JPEGs, {mb:.1f} MB)")
    print(f"{'method':<32} {'rows':>8} {'seconds':>8} {'rows/s':>9} {'MB/s':>7} {'peak RSS':>9}")
    for which, label in (("naive", "naive loop (PIL.open + to_parquet)"), ("curate", f"curate ingest, {args.workers} workers")):
        r = results[which]
        print(f"{label:<32} {r['rows']:>8,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>9,.0f} "
              f"{mb / r['seconds']:>7.1f} {r['peak_rss'] / 2**20:>7.0f} MiB")
    speedup = results["naive"]["seconds"] / results["curate"]["seconds"]
    print(f"speed-up over the naive loop: {speedup:.2f}x")


if __name__ == "__main__":
    main()
