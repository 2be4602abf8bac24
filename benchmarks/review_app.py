"""Benchmark the review app on a run with 100,000 flagged items (CIFAR-10 test images, cycled).

Speed is reported as ratios to Streamlit's own floor measured in the same run, interleaved with the app's
own measurements (the machine is shared and noisy: absolute times drift, ratios much less): the floor is
a two-element Streamlit page (one button with a shortcut, one line of text).

  * building the review index (once per run state, by ``curate review`` before the server starts) vs.
    reading it back from the run's cache;
  * one decision written to ``review.db``;
  * AppTest (server side): first page, page turn, decision, duplicate-group view, thresholds view;
  * Chromium + Playwright (when /usr/bin/chromium exists), wall time until the page shows the result
    (polled every animation frame): first page (with its thumbnails), page turn (N key), decision
    (A key), duplicate-group view, thresholds view; the floor's first page and its rerun on a key.
    The first page is also timed on the page's own clock as **fully rendered**, the same definition for
    the app and the floor: from the start of navigation to the last change of the page (any DOM
    mutation, any image loaded) before it stays unchanged for 1.5 s, once its marker text is shown, no
    script run is in progress and every image on it is loaded. A third page, the first page's
    controls drawn as Streamlit widgets (what the previous version drew) with no data, is timed the same
    way in the same loop: what those widgets alone cost.

    nice -n 10 .venv/bin/python benchmarks/review_app.py [--items 100000] [--reps 7] [--no-browser]

Needs ../shared/data/cifar10-jpg/test.zip (see its SOURCE.txt).
"""

from __future__ import annotations

import argparse
import os
import socket
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

from tests.review_fixture import act, make_review_run, side  # noqa: E402


def _app(run_dir: str) -> None:
    from curate.review.app import render

    render(run_dir, "bench")


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def ms(x: float) -> str:
    return f"{x * 1000:,.0f} ms"


def cifar_images(limit: int = 10_000) -> list[bytes]:
    z = SHARED / "cifar10-jpg" / "test.zip"
    if not z.is_file():
        sys.exit(f"needs {z} (the shared evaluation data, see its SOURCE.txt)")
    with zipfile.ZipFile(z) as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:limit]
        return [zf.read(n) for n in names]


def plant_decisions(run_root: Path) -> int:
    """Reviewers' verdicts on the random sample of one flag (so the thresholds view has evidence)."""
    from curate.decisions import DecisionStore
    from curate.review import ReviewQueue
    from curate.review.learn import sample_queue

    q = ReviewQueue(run_root)
    s = sample_queue(q, "04-image_quality", "blurry")
    v = q.index["04-image_quality.sharpness"].to_numpy()
    store = DecisionStore(q.run.review_db)
    store.decide([q.ids[p] for p in s.positions if v[p] < 15], "rejected", reviewer="planted")
    store.decide([q.ids[p] for p in s.positions if v[p] >= 15], "accepted", reviewer="planted")
    return len(s.positions)


def apptest_figures(run_root: Path, reps: int) -> dict:
    from streamlit.testing.v1 import AppTest

    import curate.review.queue as rq

    def timed(fn) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    import curate.review.app as app

    script: list[float] = []  # the app's own script time per full run (AppTest adds ~1-2 s per new instance)
    render = app.render

    def timed_render(*a, **kw):
        t = time.perf_counter()
        try:
            return render(*a, **kw)
        finally:
            script.append(time.perf_counter() - t)

    app.render = timed_render
    out = {}
    rq._QUEUES.clear()
    holder = {}
    out["first_page_cold"] = timed(lambda: holder.update(at=AppTest.from_function(
        _app, kwargs={"run_dir": str(run_root)}, default_timeout=300).run()))
    at = holder["at"]
    assert not at.exception, at.exception
    out["first_page_cold_script"] = script[-1]
    script.clear()
    for _ in range(reps):
        AppTest.from_function(_app, kwargs={"run_dir": str(run_root)}, default_timeout=300).run()
    out["first_page"] = med(script)
    out["page_turn"] = med([timed(lambda: act(at, "next_page")) for _ in range(reps)])
    out["decision"] = med([timed(lambda: act(at, "accept")) for _ in range(reps)])
    cl, th = [], []
    for _ in range(reps):
        cl.append(timed(lambda: side(at, "view", "clusters")))
        th.append(timed(lambda: side(at, "view", "thresholds")))
        side(at, "view", "review")
    assert not at.exception, at.exception
    out["cluster_view"], out["thresholds_view"] = med(cl), med(th)
    app.render = render
    return out


def db_figures(tmp: Path, n: int) -> dict:
    from curate.decisions import DecisionStore

    store = DecisionStore(tmp / "wal.db")
    ts = []
    for i in range(n):
        t = time.perf_counter()
        store.decide([f"item-{i}"], "accepted", reviewer="bench")
        ts.append(time.perf_counter() - t)
    return {"db_write": med(ts), "db_write_p95": sorted(ts)[int(0.95 * n)]}


_HELLO = """
import streamlit as st
st.session_state.setdefault("c", 0)
st.button("Next", key="n", shortcut="N", on_click=lambda: st.session_state.update(c=st.session_state.c + 1))
st.text(f"clicks {st.session_state.c}")
"""


FIRST = r"current: 1 of \d+ on this page"  # the app's first page is drawn
QUIET_MS = 1500
# the time of the page's last change (DOM mutation or image load), on its own clock from the start of navigation
_LAST_CHANGE = """window.__last = 0;
new MutationObserver(() => { window.__last = performance.now(); }).observe(document,
  {subtree: true, childList: true, attributes: true, characterData: true});
document.addEventListener('load', (e) => { if (e.target.tagName === 'IMG') window.__last = Math.max(window.__last, performance.now()); }, true);"""


# the first page's controls as Streamlit widgets (sidebar, progress, page and item buttons, popovers, inputs,
# headings), with no data: what the previous version of the app drew, and what those widgets alone cost over the
# floor (the app now draws the same controls as two st.components.v2 elements; curate/review/ui.py)
_WIDGETS = _HELLO + """with st.sidebar:
    st.header("curate review"); st.text("run: x"); st.text_input("Reviewer", key="r")
    st.radio("View", ["Review queue", "Auto-dropped", "Browse all", "Duplicate groups", "Random sample", "Thresholds", "Reviewers"], key="v")
    st.text_input("Search text, label, id, reason", key="s")
    with st.popover("Filters and sorting"):
        st.multiselect("Stage", [1, 2])
    st.caption("Keys: A accept")
st.progress(0.3, text="Reviewed 0 / 92,308")
with st.container(horizontal=True):
    st.button("Page", key="p1"); st.button("Page 2", key="p2"); st.markdown("page **1** of **3,847**"); st.button("Undo", key="u")
    with st.popover("Bulk decisions"):
        st.button("Accept this page")
with st.container(border=True):
    st.html("<div><b>item</b></div>")
    with st.container(horizontal=True):
        for k in ("Accept", "Reject", "Item", "Item 2"): st.button(k, key=k)
        with st.popover("Go to card"):
            st.selectbox("Card on this page", [1, 2, 3], key="g")
        with st.popover("Flag by hand"):
            st.text_input("What")
        st.button("Details", key="d")
        st.text("current: 1 of 12 on this page")
    st.text_input("Note", key="note", width=340)
    st.markdown("**Duplicate group**"); st.html("<div>group</div>")
    with st.container(horizontal=True):
        st.button("Keep #2 instead"); st.button("These are not duplicates")
st.html("<div>grid</div>")
"""


def _serve(cmd: list[str], log_path: Path, port_flag: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(log_path, "wb")
    proc = subprocess.Popen([*cmd, port_flag, str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                            start_new_session=True)
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
    proc, url = _serve([sys.executable, "-m", "curate", "review", str(run_root)], run_root.parent / "review.log", "--port")
    hproc, hurl = _serve([sys.executable, "-m", "streamlit", "run", str(hello), "--server.headless", "true",
                          "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                         run_root.parent / "hello.log", "--server.port")
    widgets = run_root.parent / "widgets.py"
    widgets.write_text(_WIDGETS)
    wproc, wurl = _serve([sys.executable, "-m", "streamlit", "run", str(widgets), "--server.headless", "true",
                          "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                         run_root.parent / "widgets.log", "--server.port")
    out: dict[str, list[float] | float] = {k: [] for k in ("hello_first", "hello_rerun", "first_page", "page_turn",
                                                           "decision", "cluster_view", "thresholds_view",
                                                           "hello_rendered", "first_page_rendered", "widgets_rendered")}
    try:
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"]
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path=str(chromium), headless=True, args=args)
            size = {"width": 1280, "height": 800}

            def rendered(u: str, text: str) -> tuple[float, float]:
                """A first page in a fresh browser context: (wall time until ``text``, the thumbnails and no
                script run; time until fully rendered, on the page's clock)."""
                ctx = b.new_context(viewport=size)
                ctx.add_init_script(_LAST_CHANGE)
                page = ctx.new_page()
                t = time.perf_counter()
                page.goto(u)
                wait(page, text, images=u == url)
                wall = time.perf_counter() - t
                page.wait_for_function("() => [...document.images].every(i => i.complete)", polling="raf", timeout=120_000)
                page.wait_for_function(f"() => performance.now() - window.__last > {QUIET_MS}", polling=100, timeout=120_000)
                last = page.evaluate("window.__last") / 1000
                ctx.close()
                return wall, last

            def wait(page, text: str, images: bool = False) -> None:
                # polls on every animation frame; done when the text (a regex) is there, no script run is in progress
                # and (images) every card thumbnail is decoded
                js = ("([t, img]) => new RegExp(t).test(document.body.innerText) && "
                      "!document.querySelector('[data-testid=stStatusWidget]') && "
                      "(!img || (document.querySelectorAll('img.cr-thumb').length > 0 && "
                      "[...document.querySelectorAll('img.cr-thumb')].every(i => i.complete && i.naturalWidth > 0)))")
                page.wait_for_function(js, arg=[text, images], polling="raf", timeout=120_000)

            def timed(page, action, text: str, images: bool = False) -> float:
                t = time.perf_counter()
                action()
                wait(page, text, images)
                return time.perf_counter() - t

            # warm both servers (the review server loads its queue on the first session: not timed)
            for u, marker in ((hurl, "clicks 0"), (wurl, "clicks 0"), (url, FIRST)):
                page = b.new_page(viewport=size)
                page.goto(u)
                wait(page, marker)
                page.close()
            for k in range(reps):  # first pages, interleaved: floor, app, floor, app, ...
                for key, u, marker in (("hello", hurl, "clicks 0"), ("widgets", wurl, "clicks 0"), ("first_page", url, FIRST)):
                    wall, last = rendered(u, marker)
                    if key != "widgets":
                        out["hello_first" if key == "hello" else key].append(wall)
                    out[f"{key}_rendered"].append(last)
            hp, ap = b.new_page(viewport=size), b.new_page(viewport=size)
            hp.goto(hurl)
            wait(hp, "clicks 0")
            ap.goto(url)
            wait(ap, FIRST, images=True)
            hp.wait_for_timeout(1500)  # let the frontends register their shortcuts (not timed)
            for k in range(reps):  # reruns on a key, interleaved
                out["hello_rerun"].append(timed(hp, lambda: hp.keyboard.press("n"), f"clicks {k + 1}"))
                out["page_turn"].append(timed(ap, lambda: ap.keyboard.press("n"), f"page {k + 2:,} of", images=True))
                ap.wait_for_timeout(300)
            for k in range(reps):  # A accepts the current item and moves to the next one
                out["decision"].append(timed(ap, lambda: ap.keyboard.press("a"), rf"current: {k + 2} of \d+ "))
                ap.wait_for_timeout(300)
            side = ap.locator("[data-testid=stSidebar]")
            for k in range(reps):
                out["cluster_view"].append(timed(ap, lambda: side.get_by_text("Duplicate groups", exact=True).click(),
                                                 r"of [\d,]+ · [\d,]+ groups"))  # the group view's own page line
                out["thresholds_view"].append(timed(ap, lambda: side.get_by_text("Thresholds", exact=True).click(),
                                                    "Evidence and suggestion written"))
                side.get_by_text("Review queue", exact=True).click()
                wait(ap, FIRST, images=True)
            b.close()
    finally:
        for pr in (proc, hproc, wproc):
            pr.terminate()
            pr.wait(timeout=30)
    return {k: med(v) for k, v in out.items()}


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
        print(f"items: {len(index):,}, flagged: {int((index['action'] != 'keep').sum()):,} "
              f"({int((index['action'] == 'review').sum()):,} review, {int((index['action'] == 'drop').sum()):,} dropped)")
        print(f"review index: build {t_build:.2f} s (once per run state), read from cache {ms(t_cached)}")
        print(f"planted {plant_decisions(run.root)} decisions on the random sample of 04-image_quality:blurry")
        db = db_figures(tmp, 500)
        print(f"decision written to review.db: {db['db_write'] * 1000:.2f} ms median, p95 {db['db_write_p95'] * 1000:.2f} ms"
              "   goal < 50 ms")
        a = apptest_figures(run.root, args.reps)
        print(f"AppTest (server side, median of {args.reps}):")
        for k, label in (("first_page_cold", "first page, fresh process (index from cache; AppTest wall)"),
                         ("first_page_cold_script", "  of which the app's script"),
                         ("first_page", "first page, new session (the app's script)"), ("page_turn", "page turn"),
                         ("decision", "decision (click, written, redrawn)"), ("cluster_view", "duplicate-group view"),
                         ("thresholds_view", "thresholds view")):
            print(f"  {label:<52} {ms(a[k])}")
        if not args.no_browser:
            b = browser_figures(run.root, args.reps)
            if b is None:
                print("Chromium: skipped (/usr/bin/chromium not found)")
            else:
                print(f"Chromium + Playwright, 1280x800 (median of {args.reps}, floor interleaved):")
                print(f"  floor, two-element page: first page {ms(b['hello_first'])}, rerun on a key {ms(b['hello_rerun'])}")
                print(f"  first page (thumbnails drawn)  {ms(b['first_page'])}  x{b['first_page'] / b['hello_first']:.2f} "
                      "the floor's first page")
                print(f"  first page fully rendered      {ms(b['first_page_rendered'])}  "
                      f"x{b['first_page_rendered'] / b['hello_rendered']:.2f} the floor's ({ms(b['hello_rendered'])}; goal <= 1.3)")
                print(f"  its controls as st widgets, no data {ms(b['widgets_rendered'])}  "
                      f"x{b['widgets_rendered'] / b['hello_rendered']:.2f} the floor's (fully rendered)")
                print(f"  page turn (N key)              {ms(b['page_turn'])}  x{b['page_turn'] / b['hello_rerun']:.2f} "
                      "the floor's rerun (goal <= 2)")
                print(f"  decision (A key, next item)    {ms(b['decision'])}  x{b['decision'] / b['hello_rerun']:.2f} the floor's rerun")
                print(f"  duplicate-group view           {ms(b['cluster_view'])}  x{b['cluster_view'] / b['hello_rerun']:.2f}")
                print(f"  thresholds view                {ms(b['thresholds_view'])}  x{b['thresholds_view'] / b['hello_rerun']:.2f}")
    print(f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
