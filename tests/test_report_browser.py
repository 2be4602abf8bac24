"""The report in a real browser: Playwright drives Debian's Chromium over ``file://`` for the demo run and
a run with every stage. No console errors, no request leaves the file, every section and chart is drawn,
gallery counts match the run, pages turn, and the ``<img src=x onerror=...>`` caption shows literally and
runs nothing. A 1280x800 screenshot of each is kept under the pytest temporary directory (and copied to
``$CURATE_TEST_ARTIFACTS`` when set)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (apt-get install chromium chromium-driver; "
                "see .ci/install-browser.sh)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="needs the 'dev' extra (playwright)")
pytest.importorskip("altair", reason="needs the 'report' extra")
pytest.importorskip("vl_convert", reason="needs the 'report' extra")

from playwright.sync_api import sync_playwright  # noqa: E402

from curate.report import build_report  # noqa: E402
from curate.rundir import RunDir  # noqa: E402
from tests.embedding_fixtures import tiny_clip_dir  # noqa: E402,F401
from tests.report_runs import PAYLOAD, demo_run, full_run  # noqa: E402

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]
SECTIONS = ["summary", "stages", "galleries", "review", "evaluation"]


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def _open(browser, path: Path):
    """The page after every chart is drawn, with what it logged and requested."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    log = {"console": [], "requests": [], "alerts": []}
    page.on("console", lambda m: log["console"].append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: log["console"].append(f"pageerror: {e}"))
    page.on("request", lambda r: log["requests"].append(r.url))
    page.on("dialog", lambda d: (log["alerts"].append(d.message), d.dismiss()))
    page.add_init_script("window.__alerts = []; window.alert = (m) => window.__alerts.push(String(m));")
    page.goto(path.resolve().as_uri())
    page.wait_for_function("document.body.dataset.chartsDrawn !== undefined", timeout=90_000)
    return page, log


def _keep_screenshot(page, tmp_path_factory, name: str) -> Path:
    out = tmp_path_factory.getbasetemp() / "artifacts" / f"{name}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(out))
    dest = os.environ.get("CURATE_TEST_ARTIFACTS")
    if dest:
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copy(out, Path(dest) / out.name)
    print(f"screenshot: {out}")
    return out


def _check_page(page, log, root: Path) -> None:
    assert log["console"] == []
    own = root.joinpath("report", "index.html").resolve().as_uri()
    assert [u for u in log["requests"] if not u.startswith("data:")] == [own]
    assert log["alerts"] == [] and page.evaluate("window.__alerts") == []
    for sec in SECTIONS:
        assert page.locator(f"section#{sec}").is_visible()
    n_charts = page.locator(".chart[data-chart]").count()
    assert n_charts > 0 and page.evaluate("document.body.dataset.chartsDrawn") == str(n_charts)
    assert page.locator(".chart[data-chart] svg").count() == n_charts
    # per stage and reason: the gallery counts the run's flagged items and holds top + sample cards
    manifest = RunDir(root).manifest()
    for s in manifest.finished_stages():
        for flag, n in s.stats.reasons.items():
            g = page.locator(f'.gallery[data-stage="{s.dir}"][data-flag="{flag}"]')
            assert g.count() == 1
            assert int(g.get_attribute("data-total")) == n
            cards = g.locator(".cards > *")
            assert cards.count() == int(g.get_attribute("data-shown")) == min(n, 48)
            visible = g.locator(".cards > *:visible").count()
            assert visible == min(cards.count(), int(g.get_attribute("data-page-size")))
    # thumbnails of the first page are filled in, from data: URIs
    shown = page.locator(".gallery .cards > *:visible img[data-t]")
    assert shown.count() > 0
    assert all(src.startswith("data:image/") for src in shown.evaluate_all("els => els.map(e => e.getAttribute('src') || '')"))


def test_demo_report_in_chromium(browser, tmp_path_factory):
    root = demo_run(tmp_path_factory.getbasetemp())
    build_report(root, quiet=True)
    page, log = _open(browser, root / "report" / "index.html")
    try:
        _check_page(page, log, root)
        # the payload caption is text: shown as typed, no element made from it
        hits = page.locator(".card .text", has_text="onerror")
        assert hits.count() >= 1
        assert PAYLOAD in hits.first.inner_text()
        assert page.locator('img[src="x"]').count() == 0
        _keep_screenshot(page, tmp_path_factory, "report-demo")
        page.locator("#galleries").scroll_into_view_if_needed()
        _keep_screenshot(page, tmp_path_factory, "report-demo-galleries")
    finally:
        page.close()


def test_every_stage_report_pages_turn(browser, tmp_path_factory, tiny_clip_dir):  # noqa: F811
    pytest.importorskip("open_clip")
    pytest.importorskip("cleanlab")
    root = full_run(tmp_path_factory.getbasetemp(), tiny_clip_dir)
    build_report(root, quiet=True, page_size=6)  # small pages, so galleries page
    page, log = _open(browser, root / "report" / "index.html")
    try:
        assert log["console"] == []
        assert page.locator("article.stage").count() == 11
        g = page.locator('.gallery[data-stage="10-label_noise"][data-flag="label_issue"]')
        assert int(g.get_attribute("data-shown")) > 6 and g.locator(".cards > *:visible").count() == 6
        before = g.locator(".cards > *:visible").first.get_attribute("data-id")
        g.locator(".pager button", has_text="next").click()
        assert g.locator(".cards > *:visible").count() == min(6, int(g.get_attribute("data-shown")) - 6)
        after = g.locator(".cards > *:visible").first.get_attribute("data-id")
        assert g.locator(".cards > *:visible img[data-t]").first.get_attribute("src").startswith("data:image/")
        assert before != after
        assert g.locator(".pager button.on").inner_text() == "2"
        for sel in ("#stage-10-label_noise", "#galleries"):
            page.locator(sel).scroll_into_view_if_needed()
            _keep_screenshot(page, tmp_path_factory, f"report-full-{sel.strip('#')}")
    finally:
        page.close()
