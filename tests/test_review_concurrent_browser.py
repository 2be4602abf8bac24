"""Three reviewers at once on one ``curate review`` server, in real browsers (Playwright + Chromium).

Each reviewer (own browser context and session, own name; the three driven concurrently with asyncio) decides a list of items found by id; the lists
overlap, so some items are decided by two or three people at the same time. Afterwards every decision
is in ``review.db`` with its reviewer, the latest row per item wins, and ``curate export`` counts the
same accepted and rejected items as ``curate decisions``.
"""

from __future__ import annotations

import asyncio
import json
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

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    pytest.skip("Debian's Chromium is not installed at /usr/bin/chromium (see .ci/install-browser.sh)",
                allow_module_level=True)
pytest.importorskip("playwright.async_api", reason="needs the 'dev' extra (playwright)")
pytest.importorskip("streamlit", reason="needs the 'app' extra (streamlit)")

from playwright.async_api import async_playwright, expect  # noqa: E402

from curate.decisions import DecisionStore  # noqa: E402
from tests.review_fixture import make_review_run  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    run = make_review_run(tmp_path_factory.mktemp("concurrent") / "run", n=120, shard_size=40).root
    port = _free_port()
    log = tmp_path_factory.mktemp("log") / "review.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "curate", "review", str(run), "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
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
        yield run, url
    finally:
        proc.terminate()  # curate review stops its Streamlit server and waits for it
        proc.wait(timeout=30)


async def _reviewer(browser, url: str, name: str, plan: list[tuple[str, str]], done: list, ready: asyncio.Event,
                    arrived: list, n: int) -> None:
    """One reviewer in their own browser context (own session): set the name, then decide ``plan`` in order."""
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(90_000)  # three sessions and a server on a small shared machine
    page = await context.new_page()
    await page.goto(url)
    await expect(page.get_by_role("button", name=re.compile("Page"))).to_have_count(2, timeout=90_000)
    who = page.locator("[data-testid=stSidebar]").get_by_label("Reviewer", exact=True)
    await who.fill(name)
    await who.press("Enter")
    await page.wait_for_timeout(1500)  # the rerun with the new name
    arrived.append(name)
    if len(arrived) == n:
        ready.set()
    await ready.wait()  # all three start deciding at the same moment
    search = page.get_by_label("Search text, label, id, reason")
    for item, decision in plan:
        await search.fill(item)
        await search.press("Enter")
        await expect(page.get_by_text(f"id {item}").first).to_be_visible()  # this item, not the previous one
        await expect(page.get_by_text(re.compile(r"of \d+ · 1 matching$"))).to_be_visible()
        # the item's button (its name also carries the shortcut key), not a bulk one ("Accept this page")
        label = r"^Accept\b(?!\s+(this|all))" if decision == "accepted" else r"^Reject\b(?!\s+(this|all))"
        await page.get_by_role("button", name=re.compile(label)).click()
        await expect(page.get_by_text(f"{decision} {item[:8]}").first).to_be_visible()
        done.append((name, item, decision))
    await context.close()


async def _review_all(url: str, plans: dict) -> list:
    done: list = []
    ready, arrived = asyncio.Event(), []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            await asyncio.gather(*(_reviewer(browser, url, name, plan, done, ready, arrived, len(plans))
                                   for name, plan in plans.items()))
        finally:
            await browser.close()
    return done


def test_three_reviewers_at_once_keep_every_decision(server, tmp_path):
    from click.testing import CliRunner

    from curate.cli import main
    from curate.review import ReviewQueue

    run, url = server
    queue = ReviewQueue(run)
    items = queue.ids[queue.view_mask("review")].tolist()[:10]
    assert len(items) == 10
    plans = {  # overlapping: items 3-4 by ana and ben, 5 by all three, 6-7 by ben and cy
        "ana": [(i, "accepted") for i in items[0:6]],
        "ben": [(i, "rejected") for i in items[3:8]],
        "cy": [(i, "accepted") for i in items[5:10]],
    }
    done = asyncio.run(_review_all(url, plans))
    assert sorted(done) == sorted((n, i, d) for n, plan in plans.items() for i, d in plan)

    store = DecisionStore(run / "review.db")
    history = [d for d in store.history() if d.item_id in items]
    # every decision kept, with its reviewer
    assert sorted((d.reviewer, d.item_id, d.decision) for d in history) == sorted(done)
    # the latest row per item wins
    last = {}
    for d in history:
        last[d.item_id] = d.decision
    latest = {i: d.decision for i, d in store.latest().items()}
    assert {i: latest[i] for i in items} == last
    overlapped = [i for i in items if sum(i in dict(p) for p in plans.values()) > 1]
    assert len({d.reviewer for d in history if d.item_id == items[5]}) == 3 and len(overlapped) == 5

    # curate decisions and curate export agree on the counts
    res = CliRunner().invoke(main, ["decisions", str(run)])
    assert res.exit_code == 0, res.output
    row = next(ln for ln in res.output.splitlines() if ln.startswith("to review"))
    total, accepted, rejected, pending = (int(x.replace(",", "")) for x in row.split()[2:6])
    assert (accepted, rejected) == (sum(v == "accepted" for v in last.values()), sum(v == "rejected" for v in last.values()))
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["export", str(run), "--format", "parquet", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    em = json.loads((out / "export_manifest.json").read_text())
    assert (em["review"]["accepted"], em["review"]["rejected"]) == (accepted, rejected)
