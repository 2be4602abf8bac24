"""Report benchmark: ``curate report`` build time and file size at 10k and 100k items.

Input: CIFAR-10 JPEGs (../shared/data/cifar10-jpg, train + test: 60,000 photos; beyond that, mirrored and
re-encoded copies) with synthetic captions and planted problems (exact copies, tiny and dark images,
HTML / URL / boilerplate captions, near-duplicate captions, one-word captions), run through the demo's
six stages (pipelines/demo.yaml; min_side 24 instead of 64 because CIFAR images are 32 px).

Measured, per size: the pipeline run (for context), then ``curate report RUN -q`` as a fresh process
(wall seconds, peak memory) twice (the first may bundle the Vega runtime into the cache), the file size,
and Chromium's time to draw every chart. The obvious alternative, a report that shows every flagged item
(``--top`` unbounded, ``--sample 0``), is built at the same sizes for comparison.

    nice -n 10 python benchmarks/report_build.py --sizes 10000 100000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import subprocess
import sys
import time
import zipfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRSS, machine, shared_data  # noqa: E402

WORDS = ("red blue green small large old young wet dry bright dark happy calm running sitting standing near "
         "beside under over field road water sky forest street garden house beach snow grass city river").split()
CORRUPT = [lambda c: f"<b>{c}</b> <img src=x onerror=alert(1)>", lambda c: f"{c} https://example.com/p/{random.randint(1, 9999)}",
           lambda c: f"Stock photo: {c}. Click here to download.", lambda c: c.replace("a ", "â€œa ", 1) + "â€\x9d"]


def cifar_jpegs() -> list[tuple[bytes, str, str]]:
    base = shared_data("cifar10-jpg")
    out = []
    for name in ("train.zip", "test.zip"):
        with zipfile.ZipFile(base / name) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".jpg"):
                    out.append((zf.read(info), info.filename.split("/")[1], info.filename))
    return out


def _transform(data: bytes, how: str) -> bytes:
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data)).convert("RGB")
    if how == "mirror":
        im = ImageOps.mirror(im)
    elif how == "tiny":
        im = im.resize((12, 12))
    elif how == "dark":
        im = im.point(lambda v: v // 12)
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def make_input(n: int, path: Path, seed: int = 0) -> dict:
    """A Parquet manifest of ``n`` items (image bytes, caption, label) with planted problems."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = random.Random(seed)
    random.seed(seed)
    photos = cifar_jpegs()
    images, texts, labels, sources = [], [], [], []
    planted = {"exact_copy": 0, "tiny": 0, "dark": 0, "bad_caption": 0, "near_dup_caption": 0, "short_caption": 0}
    for i in range(n):
        data, label, src = photos[i % len(photos)]
        if i >= len(photos):
            data, src = _transform(data, "mirror"), f"mirror/{src}"
        r = rng.random()
        if r < 0.01 and i > 0:
            j = rng.randrange(i)
            data, label, src = images[j], labels[j], f"copy-of-{j}/{src}"
            planted["exact_copy"] += 1
        elif r < 0.015:
            data = _transform(data, "tiny")
            planted["tiny"] += 1
        elif r < 0.02:
            data = _transform(data, "dark")
            planted["dark"] += 1
        cap = f"a {' '.join(rng.sample(WORDS, 3))} {label} {' '.join(rng.sample(WORDS, 4))} photo {i}"
        c = rng.random()
        if c < 0.02:
            cap = rng.choice(CORRUPT)(cap)
            planted["bad_caption"] += 1
        elif c < 0.03 and i > 0:
            cap = texts[rng.randrange(i)] + " today"
            planted["near_dup_caption"] += 1
        elif c < 0.035:
            cap = label
            planted["short_caption"] += 1
        images.append(data)
        texts.append(cap)
        labels.append(label)
        sources.append(src)
    pq.write_table(pa.table({"image": pa.array(images, pa.binary()), "caption": texts, "label": labels,
                             "source": sources}), path)
    return planted


PIPELINE = """name: report-bench-{n}
input: {{format: parquet, path: {input}, columns: {{image: image, text: caption, label: label}}, shard_size: 5000}}
output: {out}
workers: 2
stages:
  - image_quality: {{min_side: 24, max_aspect: 3.0, action: {{undecodable: drop, default: review}}}}
  - text_quality: {{min_words: 2, action: review}}
  - caption_repair: {{action: review}}
  - exact_dedup: {{on: [image], action: drop}}
  - minhash_dedup: {{field: text, threshold: 0.8, num_perm: 128, ngram: 5, tokens: word, verify: true, keep: longest_text, action: review}}
  - image_dedup: {{hash: phash, hash_size: 8, max_distance: 6, keep: largest_image, action: review}}
"""


def report_once(run: Path, out: Path, extra: list[str]) -> dict:
    cmd = [sys.executable, "-m", "curate", "report", str(run), "--out", str(out), "-q", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with PeakRSS() as mem:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        _, err = p.communicate()
        secs = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode:
        raise SystemExit(f"report failed: {err}")
    # CPU seconds (user + sys) of the report process: what the wall time would be on an idle core
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(secs, 1), "cpu_seconds": round(cpu, 1), "mb": round(out.stat().st_size / 1e6, 2),
            "peak_mb": round(mem.peak / 1e6)}


def browser_draw(path: Path) -> dict | None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not Path("/usr/bin/chromium").exists():
        return None
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
        page = b.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        t = time.perf_counter()
        try:
            page.goto(path.resolve().as_uri(), timeout=300_000)
            page.wait_for_function("document.body.dataset.chartsDrawn !== undefined", timeout=300_000)
        except Exception as exc:  # noqa: BLE001 - a page too big to load is a result, not a crash
            b.close()
            return {"seconds": None, "error": str(exc).splitlines()[0][:120]}
        secs = time.perf_counter() - t
        charts = page.evaluate("document.body.dataset.chartsDrawn")
        cards = page.locator(".card").count()
        b.close()
    return {"seconds": round(secs, 1), "charts": int(charts), "cards": cards, "console_errors": len(errors)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--work", default="/tmp/curate-report-bench", help="where inputs and runs go (kept for reuse)")
    ap.add_argument("--json", help="also write the figures here")
    ap.add_argument("--everything-max", type=int, default=100_000,
                    help="build the every-flagged-item alternative only up to this many items (it is slow)")
    args = ap.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
    results = []
    for n in args.sizes:
        inp, run = work / f"input-{n}.parquet", work / f"run-{n}"
        if not inp.exists():
            planted = make_input(n, inp)
            (work / f"planted-{n}.json").write_text(json.dumps(planted))
        planted = json.loads((work / f"planted-{n}.json").read_text())
        pipe = work / f"pipeline-{n}.yaml"
        pipe.write_text(PIPELINE.format(n=n, input=inp, out=run))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "curate", "run", str(pipe), "-q"], check=True, stdout=subprocess.DEVNULL)
        run_secs = time.perf_counter() - t
        manifest = json.loads((run / "manifest.json").read_text())
        flagged = {s["dir"]: s["stats"]["flagged"] for s in manifest["stages"]}
        row = {"items": n, "planted": planted, "run_seconds_if_not_cached": round(run_secs, 1), "flagged": flagged}
        steps = [("report_first", lambda: report_once(run, work / f"report-{n}.html", [])),
                 ("report", lambda: report_once(run, work / f"report-{n}.html", [])),
                 ("browser", lambda: browser_draw(work / f"report-{n}.html")),
                 ("everything", lambda: report_once(run, work / f"report-all-{n}.html",
                                                    ["--top", "100000000", "--sample", "0"])),
                 ("everything_browser", lambda: browser_draw(work / f"report-all-{n}.html"))]
        for key, fn in steps if n <= args.everything_max else steps[:3]:
            load = os.getloadavg()[0]
            row[key] = fn()
            if row[key] is not None:
                row[key]["load_avg_1min"] = round((load + os.getloadavg()[0]) / 2, 1)
            print(key, json.dumps(row[key]), flush=True)
        results.append(row)
        print(json.dumps(row), flush=True)
    print("\n| items | flagged (sum over stages) | report build: wall s | CPU s | file MB | peak MB | "
          "Chromium: charts drawn s | every flagged item: build wall s | CPU s | MB | Chromium s | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        b, e, eb = r["browser"] or {}, r.get("everything") or {"seconds": "-", "mb": "-"}, r.get("everything_browser") or {}
        print(f"| {r['items']:,} | {sum(r['flagged'].values()):,} | {r['report']['seconds']} | {r['report']['cpu_seconds']} | "
              f"{r['report']['mb']} | {r['report']['peak_mb']} | {b.get('seconds', '-')} | {e['seconds']} | "
              f"{e.get('cpu_seconds', '-')} | {e['mb']} | "
              f"{eb.get('seconds') or eb.get('error', '-')} | {r['report'].get('load_avg_1min')} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
