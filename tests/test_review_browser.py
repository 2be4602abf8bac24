"""End to end in a real browser: Playwright drives Debian's Chromium against ``curate review`` on the
demo run (``pipelines/demo.yaml``): keyboard decisions, a bulk rejection of a filtered page, reload,
everything persisted; a caption with HTML shows literally."""

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
import yaml

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

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

HTML = "<img src=x onerror=alert(1)>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    """``pipelines/demo.yaml`` run into a temporary directory (the bundled example data, offline)."""
    tmp = tmp_path_factory.mktemp("demo")
    doc = yaml.safe_load((REPO / "pipelines" / "demo.yaml").read_text())
    doc["input"]["path"] = str(REPO / doc["input"]["path"])
    doc["output"] = str(tmp / "run")
    pipe = tmp / "demo.yaml"
    pipe.write_text(yaml.safe_dump(doc, sort_keys=False))
    Runner(load_pipeline(pipe), quiet=True).execute()
    return tmp / "run"


@pytest.fixture(scope="module")
def server(demo_run, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("log") / "review.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "curate", "review", str(demo_run), "--port", str(port),
                                 "--reviewer", "e2e"], stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise AssertionError(f"curate review did not start:\n{log.read_text(errors='replace')}")
            time.sleep(0.3)
        yield url, log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


def _progress(page, done: int, total: int) -> None:
    expect(page.get_by_text(f"Reviewed {done} / {total}", exact=True)).to_be_visible(timeout=30_000)


def test_keyboard_bulk_reload_and_literal_html(server, browser, demo_run):
    url, log = server
    assert "Open http://localhost:" in log.read_text()
    from curate.review import ReviewQueue

    queue = ReviewQueue(demo_run)
    review_ids = queue.index.loc[queue.index["action"] == "review", "id"].tolist()
    total = len(review_ids)
    assert total >= 9, "the demo run should give at least 9 items to review"

    page = browser.new_page(viewport={"width": 1600, "height": 1200})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(url)
    _progress(page, 0, total)

    # the HTML caption is text on the page, not markup
    expect(page.get_by_text(HTML, exact=False).first).to_be_visible()
    assert page.locator("img[src='x']").count() == 0

    # keyboard: accept 3 (A), reject 2 (X); each decision moves to the next item. Streamlit's frontend
    # registers button shortcuts a moment after the page is drawn: a key pressed before is lost.
    page.wait_for_timeout(1500)
    for k, key in enumerate(["a", "a", "a", "x", "x"], start=1):
        page.keyboard.press(key)
        _progress(page, k, total)
    store = DecisionStore(demo_run / "review.db")
    got = {i: d.decision for i, d in store.latest().items()}
    assert got == {**{i: "accepted" for i in review_ids[:3]}, **{i: "rejected" for i in review_ids[3:5]}}
    assert {d.reviewer for d in store.history()} == {"e2e"}

    # filter (search by reason), then reject the whole page with confirmation
    from curate.review import Query

    filtered = queue.index["id"].to_numpy()[queue.select(Query(search="00-image_quality"))].tolist()[:24]
    assert filtered, "the demo run should have items flagged by image_quality"
    n = len(filtered)
    search = page.get_by_label("Search text, label, id, reason")
    search.fill("00-image_quality")
    search.press("Enter")
    expect(page.get_by_text(re.compile(rf"{n}\s+matching"))).to_be_visible(timeout=30_000)
    page.get_by_role("button", name="Reject page").click()
    expect(page.get_by_text(f"Reject {n} items on this page?")).to_be_visible(timeout=30_000)
    page.get_by_role("button", name=f"Confirm: reject {n}").click()
    want = {**{i: "accepted" for i in review_ids[:3]}, **{i: "rejected" for i in review_ids[3:5]},
            **{i: "rejected" for i in filtered}}
    _progress(page, len(want), total)
    got = {i: d.decision for i, d in store.latest().items()}
    assert got == want

    # reload: a new session shows the same statuses
    page.reload()
    _progress(page, len(want), total)
    expect(page.get_by_text("accepted", exact=True).first).to_be_visible()
    expect(page.get_by_text("rejected", exact=True).first).to_be_visible()
    assert dialogs == []
    page.close()
