"""Benchmark the review app on a run with 100,000 flagged items (CIFAR-10 test images, cycled).

Measures, in the same run:
  * building the review index (once per run state, done by ``curate review`` before the server starts)
    vs. reading it back from the run's cache;
  * via ``streamlit.testing.v1.AppTest``: time to first page (fresh server process state, index cached
    on disk; and a new session on a warm server), page turn, one decision (click -> written -> page
    redrawn); against the obvious alternative: recomputing the flagged set from every stage shard on
    each rerun (no index);
  * one decision write in ``review.db`` (WAL, synchronous=NORMAL) vs. SQLite's default rollback journal
    with synchronous=FULL;
  * in Chromium with Playwright (when /usr/bin/chromium exists): first page, page turn (N key),
    decision (A key), from key press until the page shows the result.

    nice -n 10 /work/venv/bin/python benchmarks/review_app.py [--items 100000] [--no-browser]

Needs ../shared/data/cifar10-jpg/test.zip (see its SOURCE.txt).
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from tests.review_fixture import make_review_run  # noqa: E402


def _app(run_dir: str) -> None:
    from curate.app.review import render

    render(run_dir, "bench")


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ms(x: float) -> str:
    return f"{x * 1000:,.1f} ms"


def cifar_images(limit: int = 10_000) -> list[bytes]:
    z = SHARED / "cifar10-jpg" / "test.zip"
    if not z.is_file():
        sys.exit(f"needs {z} (the shared evaluation data, see its SOURCE.txt)")
    with zipfile.ZipFile(z) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:limit]
        return [zf.read(n) for n in names]


def apptest_figures(run_root: Path, reps: int) -> dict:
    from streamlit.testing.v1 import AppTest

    import curate.review.queue as rq
    from curate.review.queue import build_index

    out = {}
    rq._QUEUES.clear()
    t = time.perf_counter()
    at = AppTest.from_function(_app, kwargs={"run_dir": str(run_root)}, default_timeout=300).run()
    out["first_page_cold"] = time.perf_counter() - t
    assert not at.exception, at.exception
    firsts = []
    for _ in range(reps):
        t = time.perf_counter()
        at2 = AppTest.from_function(_app, kwargs={"run_dir": str(run_root)}, default_timeout=300).run()
        firsts.append(time.perf_counter() - t)
    out["first_page_warm"] = med(firsts)
    turns = []
    for _ in range(reps):
        t = time.perf_counter()
        at.button(key="next_page").click().run()
        turns.append(time.perf_counter() - t)
    out["page_turn"] = med(turns)
    decides = []
    for _ in range(reps):
        t = time.perf_counter()
        at.button(key="acc_cur").click().run()
        decides.append(time.perf_counter() - t)
    out["decision_roundtrip"] = med(decides)
    # the render itself (a rerun with no action), for reference
    reruns = []
    for _ in range(reps):
        t = time.perf_counter()
        at.run()
        reruns.append(time.perf_counter() - t)
    out["rerun"] = med(reruns)
    # alternative: recompute the flagged set from the shards on every rerun (no index)
    from curate.rundir import RunDir

    naive = []
    for _ in range(max(2, reps // 3)):
        t = time.perf_counter()
        build_index(RunDir(run_root), use_cache=False)
        naive.append(time.perf_counter() - t)
    out["naive_recompute"] = med(naive)
    del at2
    return out


def db_figures(tmp: Path, n: int) -> dict:
    from curate.decisions import DecisionStore

    store = DecisionStore(tmp / "wal.db")
    ts = []
    for i in range(n):
        t = time.perf_counter()
        store.decide([f"item-{i}"], "accepted", reviewer="bench")
        ts.append(time.perf_counter() - t)
    conn = sqlite3.connect(tmp / "rollback.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT, decision TEXT, "
                 "reviewer TEXT, at TEXT, note TEXT, caption TEXT, undoes INTEGER)")
    tr = []
    for i in range(n):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO decisions (item_id, decision, reviewer, at) VALUES (?,?,?,?)",
                     (f"item-{i}", "accepted", "bench", "now"))
        conn.execute("COMMIT")
        tr.append(time.perf_counter() - t)
    return {"db_write_wal": med(ts), "db_write_wal_p95": sorted(ts)[int(0.95 * n)], "db_write_rollback_full": med(tr)}


_HELLO = """
import streamlit as st
st.session_state.setdefault("c", 0)
st.button("Next", key="n", shortcut="N", on_click=lambda: st.session_state.update(c=st.session_state.c + 1))
st.text(f"clicks {st.session_state.c}")
"""


def _serve(cmd: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "wb")
    proc = subprocess.Popen([*cmd, "--port" if cmd[2] == "curate" else "--server.port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 300
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                return proc, url
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"server did not start; see {log_path}")
            time.sleep(0.3)


def browser_figures(run_root: Path, reps: int) -> dict | None:
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        return None
    from playwright.sync_api import sync_playwright

    hello = run_root.parent / "hello.py"
    hello.write_text(_HELLO)
    servers = []
    proc, url = _serve([sys.executable, "-m", "curate", "review", str(run_root)], run_root.parent / "review.log")
    servers.append(proc)
    hproc, hurl = _serve([sys.executable, "-m", "streamlit", "run", str(hello), "--server.headless", "true",
                          "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                          run_root.parent / "hello.log")
    servers.append(hproc)
    out = {}
    try:
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(chromium), headless=True, args=args)

            def wait_text(page, text: str, images: bool = False) -> None:
                # polls on every animation frame (expect() polls every 100-1000 ms, too coarse to time)
                js = ("([t, img]) => document.body.innerText.includes(t) && "
                      "!document.querySelector('[data-testid=stStatusWidget]') && "
                      "(!img || [...document.querySelectorAll('[data-testid=stImage] img')].some(i => i.complete && i.naturalWidth > 0))")
                page.wait_for_function(js, arg=[text, images], polling="raf", timeout=120_000)

            # the floor: a two-element Streamlit page on the same machine, same measurement
            hf, hr = [], []
            for k in range(reps):
                page = b.new_page()
                t = time.perf_counter()
                page.goto(hurl)
                wait_text(page, "clicks 0")
                hf.append(time.perf_counter() - t)
                page.close()
            page = b.new_page()
            page.goto(hurl)
            wait_text(page, "clicks 0")
            page.wait_for_timeout(1000)  # let the frontend register the shortcut (not timed)
            for k in range(reps):
                t = time.perf_counter()
                page.keyboard.press("n")
                wait_text(page, f"clicks {k + 1}")
                hr.append(time.perf_counter() - t)
            page.close()
            out["hello_first"], out["hello_rerun"] = med(hf), med(hr)

            firsts = []
            for k in range(reps + 1):  # the first load also builds the server's queue: reported apart
                page = b.new_page(viewport={"width": 1600, "height": 1200})
                t = time.perf_counter()
                page.goto(url)
                wait_text(page, "current: 1 of 24", images=True)
                elapsed = time.perf_counter() - t
                if k == 0:
                    out["first_page_cold_server"] = elapsed
                else:
                    firsts.append(elapsed)
                if k < reps:
                    page.close()
            out["first_page"] = med(firsts)
            page.wait_for_timeout(1000)  # let the frontend register the keyboard shortcuts (not timed)
            turns = []
            for k in range(reps):
                t = time.perf_counter()
                page.keyboard.press("n")
                wait_text(page, f"page {k + 2} of", images=True)
                turns.append(time.perf_counter() - t)
            out["page_turn"] = med(turns)
            decides = []
            for k in range(reps):  # A accepts the current item and moves the cursor to the next one
                t = time.perf_counter()
                page.keyboard.press("a")
                wait_text(page, f"current: {k + 2} of 24")
                decides.append(time.perf_counter() - t)
            out["decision"] = med(decides)
            b.close()
    finally:
        for p in servers:
            p.terminate()
            p.wait(timeout=30)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-browser", action="store_true")
    args = ap.parse_args()
    images = cifar_images()
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        t = time.perf_counter()
        run = make_review_run(tmp / "run", n=args.items, shard_size=1000, images=images, all_flagged=True)
        print(f"synthetic run: {args.items:,} items in {len(run.data_shards())} shards, 5 stages "
              f"({time.perf_counter() - t:.1f} s to write)")
        from curate.review.queue import build_index

        t = time.perf_counter()
        index = build_index(run)
        t_build = time.perf_counter() - t
        t = time.perf_counter()
        build_index(run)
        t_cached = time.perf_counter() - t
        print(f"flagged items: {len(index):,} ({int((index['action'] == 'review').sum()):,} review, "
              f"{int((index['action'] == 'drop').sum()):,} dropped)")
        print(f"review index: build {t_build:.2f} s (once per run state), read from cache {ms(t_cached)}")

        db = db_figures(tmp, 500)
        print(f"decision write in review.db: WAL {ms(db['db_write_wal'])} median (p95 {ms(db['db_write_wal_p95'])}); "
              f"rollback journal + synchronous=FULL {ms(db['db_write_rollback_full'])}: "
              f"x{db['db_write_rollback_full'] / db['db_write_wal']:.1f}")

        a = apptest_figures(run.root, args.reps)
        print("AppTest (server-side time, median of %d):" % args.reps)
        print(f"  first page, fresh server state (index from cache): {ms(a['first_page_cold'])}   goal < 2 s")
        print(f"  first page, new session on a warm server:          {ms(a['first_page_warm'])}   goal < 2 s")
        print(f"  page turn:                                         {ms(a['page_turn'])}   goal < 0.5 s")
        print(f"  decision (click -> written -> page redrawn):       {ms(a['decision_roundtrip'])}   goal < 50 ms for the write")
        print(f"  plain rerun:                                       {ms(a['rerun'])}")
        print(f"  alternative, recompute flags from the shards per rerun: {ms(a['naive_recompute'])}: "
              f"page turn x{a['naive_recompute'] / a['page_turn']:.1f} slower")
        if not args.no_browser:
            b = browser_figures(run.root, args.reps)
            if b is None:
                print("Chromium: skipped (/usr/bin/chromium not found)")
            else:
                print("Chromium + Playwright (wall time until the page shows the result, median of %d):" % args.reps)
                print(f"  first page (server already up, queue loaded): {ms(b['first_page'])}   goal < 2 s")
                print(f"  first page right after start (loads the queue): {ms(b['first_page_cold_server'])}")
                print(f"  page turn (N key):                            {ms(b['page_turn'])}   goal < 0.5 s")
                print(f"  decision (A key, until the next item is current): {ms(b['decision'])}")
                print(f"  floor, a two-element Streamlit page: first page {ms(b['hello_first'])}, "
                      f"rerun on a key {ms(b['hello_rerun'])}; review app / floor: first page "
                      f"x{b['first_page'] / b['hello_first']:.1f}, page turn x{b['page_turn'] / b['hello_rerun']:.1f}")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
