"""End to end in a real browser: Playwright drives Debian's Chromium against ``curate review``.

On the demo run (``pipelines/demo.yaml``, real images): a review by keyboard, a bulk rejection of a
filtered page, reload, everything persisted, a caption with HTML shown literally, no toolbar. On a
synthetic run (``tests/review_fixture.py``): a duplicate group's keeper changed in the app and honoured by
``curate export``, a manual flag from browse-all, the random-sample queue, a threshold suggested from
planted decisions. Screenshots at 1280x800 and 1920x1080 of every view, in which no button label is cut
(each label's text width is compared with its box), are kept in ``build/review-screenshots/`` (or
``$CURATE_SCREENSHOTS``)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("CURATE_SCREENSHOTS") or REPO / "build" / "review-screenshots")
SIZES = ((1280, 800), (1920, 1080))

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium chromium-driver; "
                "see .ci/install-browser.sh)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="needs the 'dev' extra (playwright)")
pytest.importorskip("streamlit", reason="needs the 'app' extra (streamlit)")

from playwright.sync_api import expect, sync_playwright  # noqa: E402

from curate.config import load_pipeline  # noqa: E402
from curate.decisions import DecisionStore  # noqa: E402
from curate.runner import Runner  # noqa: E402
from curate.rundir import RunDir  # noqa: E402
from curate.review.app import DEFAULT_PAGE_SIZE  # noqa: E402
from tests.review_fixture import item_ids, make_review_run  # noqa: E402

HTML = "<img src=x onerror=alert(1)>"

#: Every visible button whose label is cut: its text (measured over its text nodes) wider than the button's
#: box or reaching past it, an inner element clipping its content, or the button past the window's edge.
_CUT_BUTTONS = """() => [...document.querySelectorAll('button')].filter(b => b.offsetParent !== null && b.innerText.trim())
  .map(b => {
    const r = b.getBoundingClientRect();
    let left = Infinity, right = -Infinity;
    const walk = document.createTreeWalker(b, NodeFilter.SHOW_TEXT);
    while (walk.nextNode()) {
      if (!walk.currentNode.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(walk.currentNode);
      for (const q of range.getClientRects()) { left = Math.min(left, q.left); right = Math.max(right, q.right); }
    }
    const clipped = [...b.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1
                                                       && getComputedStyle(e).overflowX !== 'visible');
    const cut = left < r.left - 1 || right > r.right + 1 || r.right > window.innerWidth + 1 || clipped
                || b.scrollWidth > b.clientWidth + 1;
    return {text: b.innerText.trim(), cut, text_width: Math.round(right - left), box: Math.round(r.width)};
  }).filter(x => x.cut)"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(run_dir: Path, log: Path):
    port = _free_port()
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "curate", "review", str(run_dir), "--port", str(port),
                             "--reviewer", "e2e"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.terminate()
            raise AssertionError(f"curate review did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.3)


def _stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """``pipelines/demo.yaml`` run into a temporary directory (the bundled example data, offline)."""
    tmp = tmp_path_factory.mktemp("demo")
    text = (REPO / "pipelines" / "demo.yaml").read_text()  # as written (a YAML round trip would turn 'on' into true)
    text = re.sub(r"(?m)^(\s+path:\s*)(\S+)", lambda m: m.group(1) + str((REPO / "pipelines" / m.group(2)).resolve()), text)
    text = re.sub(r"(?m)^output:.*$", f"output: {tmp / 'run'}", text)
    pipe = tmp / "demo.yaml"
    pipe.write_text(text)
    Runner(load_pipeline(pipe), quiet=True).execute()
    return tmp / "run"


@pytest.fixture(scope="module")
def demo_server(demo_run, tmp_path_factory):
    proc, url = _serve(demo_run, tmp_path_factory.mktemp("log") / "demo.log")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory) -> Path:
    return make_review_run(tmp_path_factory.mktemp("synth") / "run", n=600, shard_size=200).root


@pytest.fixture(scope="module")
def synth_server(synth_run, tmp_path_factory):
    proc, url = _serve(synth_run, tmp_path_factory.mktemp("log") / "synth.log")
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def _open(browser, url: str, size=(1280, 800)):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(url)
    expect(page.get_by_role("button", name=re.compile("Page"))).to_have_count(2, timeout=60_000)
    page.wait_for_timeout(1200)  # Streamlit registers button shortcuts a moment after the page is drawn
    return page


def _view(page, label: str) -> None:
    page.locator("[data-testid=stSidebar]").get_by_text(label, exact=True).click()
    page.wait_for_timeout(300)
    _settled(page)


def _select(page, label: str, option: str) -> None:
    """Choose ``option`` in the selectbox labelled ``label`` (type to filter, click the option)."""
    box = page.locator("[data-testid=stSelectbox]").filter(has=page.get_by_text(label, exact=True)).first
    for attempt in range(5):  # a rerun that lands while the list is open can close it or undo the pick: retry
        box.locator("input").click()
        page.keyboard.press("ControlOrMeta+a")
        page.keyboard.type(option)
        try:
            page.get_by_role("option", name=option).click(timeout=3_000)
        except Exception:  # noqa: BLE001 - the list closed under us; try again
            page.keyboard.press("Escape")
        _settled(page)
        if box.locator("input").input_value() == option:
            break
    page.evaluate("document.activeElement && document.activeElement.blur()")  # keys go to the shortcuts again
    expect(box.locator("input")).to_have_value(option, timeout=10_000)


def _progress(page, done: int, total: int) -> None:
    expect(page.get_by_text(f"Reviewed {done} / {total}", exact=True)).to_be_visible(timeout=30_000)
    _settled(page)


def _settled(page) -> None:
    """Wait until the script run is over and its buttons (and their shortcuts) are in place again."""
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=30_000)
    page.wait_for_timeout(400)


def _shoot(page, name: str) -> None:
    """Screenshot the page and fail if any button label is cut."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_function("() => [...document.images].every(i => i.complete)", timeout=30_000)
    page.wait_for_timeout(600)
    w = page.viewport_size["width"]
    page.screenshot(path=str(SHOTS / f"{name}-{w}.png"))
    cut = page.evaluate(_CUT_BUTTONS)
    assert cut == [], f"{name} at {w}px: button labels cut: {cut}"


def test_keyboard_bulk_reload_literal_html_and_no_toolbar(demo_server, browser, demo_run):
    from curate.review import Query, ReviewQueue

    queue = ReviewQueue(demo_run)
    review_ids = queue.ids[queue.view_mask("review")].tolist()
    total = len(review_ids)
    assert total >= 9, "the demo run should give at least 9 items to review"
    page = _open(browser, demo_server, (1600, 1000))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    _progress(page, 0, total)
    assert page.get_by_text("Deploy", exact=True).count() == 0  # client.toolbarMode minimal
    expect(page.get_by_text(HTML, exact=False).first).to_be_visible()  # text, not markup
    assert page.locator("img[src='x']").count() == 0
    for k, key in enumerate(["a", "a", "a", "x", "x"], start=1):
        page.keyboard.press(key)
        _progress(page, k, total)
    store = DecisionStore(demo_run / "review.db")
    got = {i: d.decision for i, d in store.latest().items()}
    assert got == {**{i: "accepted" for i in review_ids[:3]}, **{i: "rejected" for i in review_ids[3:5]}}
    assert {d.reviewer for d in store.history()} == {"e2e"}
    # filter (search by reason), then reject the whole page with confirmation
    filtered = queue.ids[queue.select(Query(search="image_quality"))].tolist()[:DEFAULT_PAGE_SIZE]
    assert filtered, "the demo run should have items flagged by image_quality"
    n = len(filtered)
    search = page.get_by_label("Search text, label, id, reason")
    search.fill("image_quality")
    search.press("Enter")
    expect(page.get_by_text(re.compile(rf"of \d+ · {n} matching$"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Bulk decisions").click()
    page.get_by_role("button", name="Reject this page").click()
    expect(page.get_by_text(f"Reject {n} items on this page?")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name=f"Confirm: reject {n}").click()
    want = {**{i: "accepted" for i in review_ids[:3]}, **{i: "rejected" for i in review_ids[3:5]},
            **{i: "rejected" for i in filtered}}
    _progress(page, len(want), total)
    assert {i: d.decision for i, d in store.latest().items()} == want
    page.reload()
    _progress(page, len(want), total)
    expect(page.get_by_text("accepted", exact=True).first).to_be_visible()
    assert dialogs == []
    page.close()


def test_cluster_keeper_change_is_exported(synth_server, browser, synth_run, tmp_path):
    from click.testing import CliRunner

    import pyarrow.parquet as pq

    from curate.cli import main

    ids = item_ids(RunDir(synth_run))
    page = _open(browser, synth_server)
    _view(page, "Duplicate groups")
    expect(page.get_by_role("button", name="Keep #2 instead").first).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Keep #2 instead").first.click()  # group c0: keep item 1 instead of item 0
    expect(page.get_by_text(f"kept {ids[1][:8]} instead of its duplicates")).to_be_visible(timeout=30_000)
    page.close()
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["export", str(synth_run), "--format", "parquet", "--out", str(out), "--pending", "keep"])
    assert res.exit_code == 0, res.output
    kept = {i for p in out.glob("*.parquet") for i in pq.read_table(p, columns=["id"]).column("id").to_pylist()}
    assert ids[1] in kept and ids[0] not in kept


def test_manual_flag_from_browse_all(synth_server, browser, synth_run):
    from tests.review_fixture import stage_flags

    ids = item_ids(RunDir(synth_run))
    k = next(i for i in range(2, 600) if not stage_flags(i))
    page = _open(browser, synth_server)
    _view(page, "Browse all")
    search = page.get_by_label("Search text, label, id, reason")
    search.fill(f"item-{k:06d}.png")
    search.press("Enter")
    expect(page.get_by_text(re.compile(r"of \d+ · 1 matching$"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Flag by hand").click()
    reason = page.get_by_label("What is wrong with it?")
    reason.fill("watermark in the corner")
    reason.press("Enter")
    page.get_by_role("button", name="Flag for review").click()
    expect(page.get_by_text("flagged by hand").first).to_be_visible(timeout=30_000)
    d = DecisionStore(synth_run / "review.db").latest()[ids[k]]
    assert (d.kind, d.decision, d.note, d.reviewer) == ("flag", "pending", "watermark in the corner", "e2e")
    page.close()


def test_random_sample_queue_and_suggested_threshold(synth_server, browser, synth_run):
    from curate.review import ReviewQueue
    from curate.review.learn import sample_queue

    page = _open(browser, synth_server)
    _view(page, "Random sample")
    _select(page, "Flag", "04-image_quality:blurry")
    expect(page.get_by_text("sample: near threshold").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("sample: flagged").first).to_be_visible()
    queue = ReviewQueue(synth_run)
    s = sample_queue(queue, "04-image_quality", "blurry")
    page.wait_for_timeout(1000)
    page.keyboard.press("x")  # the first sampled item
    expect(page.get_by_text(f"rejected {queue.ids[s.positions[0]][:8]}")).to_be_visible(timeout=30_000)
    # plant the rest of the sample's decisions as reviewers would: bad below sharpness 15, fine above
    v = queue.index["04-image_quality.sharpness"].to_numpy()
    store = DecisionStore(synth_run / "review.db")
    store.decide([queue.ids[p] for p in s.positions[1:] if v[p] < 15], "rejected", reviewer="ana")
    store.decide([queue.ids[p] for p in s.positions[1:] if v[p] >= 15], "accepted", reviewer="ana")
    if v[s.positions[0]] >= 15:
        store.decide([queue.ids[s.positions[0]]], "accepted", reviewer="ana")
    _view(page, "Thresholds")
    _select(page, "Flag", "04-image_quality:blurry")
    expect(page.get_by_text(re.compile(r"Suggested threshold: 1[0-6]\b"))).to_be_visible(timeout=30_000)
    assert (synth_run / "review" / "thresholds.json").is_file()
    page.close()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_screenshots_no_button_label_cut(demo_server, synth_server, browser, size):
    """Runs last: the views show the decisions the flows above made."""
    page = _open(browser, demo_server, size)
    _shoot(page, "demo-review-queue")
    # the check itself sees a cut label: squeeze a copy of a real button and look
    page.evaluate("""() => { const b = [...document.querySelectorAll('button')].find(x => x.innerText.includes('Bulk decisions'));
        const c = b.cloneNode(true); c.id = 'squeezed'; c.style.width = '28px'; c.style.minWidth = '28px'; c.style.maxWidth = '28px'; c.style.overflow = 'hidden';
        c.querySelectorAll('p').forEach(p => { p.style.overflow = 'hidden'; p.style.whiteSpace = 'nowrap'; });
        b.parentElement.appendChild(c); }""")
    assert page.evaluate(_CUT_BUTTONS), "the cut-label check should see the squeezed button"
    page.evaluate("() => document.getElementById('squeezed').remove()")
    page.get_by_role("button", name="Bulk decisions").click()
    _shoot(page, "demo-bulk-menu")
    page.keyboard.press("Escape")
    page.close()
    page = _open(browser, synth_server, size)
    _shoot(page, "synthetic-review-queue")
    for label, name in (("Browse all", "browse-all"), ("Duplicate groups", "duplicate-groups"),
                        ("Random sample", "random-sample"), ("Thresholds", "thresholds"), ("Reviewers", "reviewers")):
        _view(page, label)
        if label == "Thresholds":  # planted decisions (the test before this one) give it a curve
            _select(page, "Flag", "04-image_quality:blurry")
            page.wait_for_selector(".vega-embed canvas, .vega-embed svg", timeout=30_000)
        _shoot(page, name)
    page.close()
