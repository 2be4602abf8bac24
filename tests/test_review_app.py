"""The review app's logic through ``streamlit.testing.v1.AppTest`` and the queue underneath: cards from
declared roles, filters, paging, decisions, undo, bulk decisions, duplicate groups (keeper change and
'not duplicates' honoured by export), browse-all with a manual flag, the random-sample queue, thresholds
learnt from planted decisions, the split between reviewers and their agreement."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

pytest.importorskip("streamlit", reason="the review app needs the 'app' extra (streamlit)")
from streamlit.testing.v1 import AppTest  # noqa: E402

from curate.decisions import DecisionStore  # noqa: E402
from curate.export import export_run  # noqa: E402
from curate.review import Query, ReviewQueue  # noqa: E402
from curate.review import cards  # noqa: E402
from curate.review.app import DEFAULT_PAGE_SIZE  # noqa: E402
from curate.review.learn import precision_evidence, sample_queue  # noqa: E402
from curate.review.reviewers import assignment, cohen_kappa  # noqa: E402
from tests.review_fixture import (HTML_CAPTION, act, enabled, expected_actions, item_ids,  # noqa: E402
                                  make_review_run, sharpness, side, stage_flags, ui_html)

grid = ui_html

N = 120
PAGE = DEFAULT_PAGE_SIZE  # cards per page


def _app(run_dir: str) -> None:
    from curate.review.app import render

    render(run_dir, "tester")


@pytest.fixture
def run(tmp_path):
    return make_review_run(tmp_path / "run", n=N, shard_size=50)


@pytest.fixture
def at(run):
    return AppTest.from_function(_app, kwargs={"run_dir": str(run.root)}, default_timeout=60).run()


def page_ids(at) -> list[str]:
    return list(at.session_state["page_ids"])


def current_id(at) -> str:
    return at.session_state["current_id"]


def latest(run) -> dict[str, str]:
    return {k: v.decision for k, v in DecisionStore(run.review_db).latest().items()}


def exported_ids(run, tmp_path, **kw) -> dict[str, dict]:
    out = tmp_path / f"export-{len(list(tmp_path.glob('export-*')))}"
    export_run(run.root, out, fmt="parquet", quiet=True, **kw)
    rows = [r for p in sorted(out.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    return {r["id"]: r for r in rows}


def test_first_page_cards_read_like_sentences_and_user_data_stays_text(at, run):
    assert not at.exception
    ids = item_ids(run)
    review = [ids[i] for i, a in sorted(expected_actions(N).items()) if a == "review"]
    assert page_ids(at) == review[:PAGE]
    assert f"Reviewed 0 / {len(review)}" in ui_html(at)
    html = grid(at)
    # the reason in words with the stage's title as a chip, the score behind it with its threshold
    assert '<span class="cr-chip">Image quality</span><span class="cr-why">blurry</span>' in html
    assert f"sharpness {sharpness(4):g} &lt; 30" in html
    assert "label quality 0.03 &lt; 0.5" in html  # item 3: label_quality 0.03 < min_quality 0.5
    # given vs suggested label with the confidence; a caption repair as a highlighted word diff
    assert "label <b>ship</b> → suggested <b>cat</b> (0.97)" in html
    assert "<del>photo</del> <ins>picture</ins>" in html
    # no raw column dump, no machine reason strings
    assert "04-image_quality" not in html and "luma_mean=" not in html
    # the caption with HTML in it is text: escaped, never markup
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html
    assert not any(HTML_CAPTION in m.value for m in at.markdown)


def test_card_builders_escape_everything_and_state_thresholds():
    from curate.manifest import ScoreSpec
    from curate.review.roles import score_text

    spec = ScoreSpec(column="blur", flag="blurry", param="min_sharpness", flags_when="below")
    assert score_text(spec, 41.0, 100.0) == "blur 41 < 100"
    assert score_text(spec, 100.0, 100.0) == "blur 100 ≤ 100"
    above = ScoreSpec(column="jaccard", flag="near_duplicate", param="threshold", flags_when="above", label="Jaccard")
    assert score_text(above, 0.934, 0.8) == "Jaccard 0.934 > 0.8"
    assert cards.diff_html("a <b> cat", "a <i> cat") == "a <del>&lt;b&gt;</del> <ins>&lt;i&gt;</ins> cat"


def test_paging(at, run):
    first = page_ids(at)
    act(at, "next_page")
    second = page_ids(at)
    assert len(first) == len(second) == PAGE and not set(first) & set(second)
    assert current_id(at) == second[0]
    at.selectbox(key="page_size").set_value(2 * PAGE).run()  # changing the page size goes back to page 1
    assert page_ids(at) == first + second
    assert not enabled(at, "prev_page")
    act(at, "next_page")
    act(at, "prev_page")
    assert page_ids(at) == first + second
    n_review = sum(1 for a in expected_actions(N).values() if a == "review")
    for _ in range(20):
        if not enabled(at, "next_page"):
            break
        act(at, "next_page")
    pages = -(-n_review // (2 * PAGE))
    assert len(page_ids(at)) == n_review - 2 * PAGE * (pages - 1)
    assert f"page <b>{pages}</b> of <b>{pages}</b>" in ui_html(at)


def test_filters_by_reason_stage_status_score_and_search(at, run):
    queue = ReviewQueue(run.root)
    at.multiselect(key="f_reasons").set_value(["02-label_noise:label_issue"]).run()
    want = queue.index.loc[(queue.index["02-label_noise:flag"] == "label_issue") & (queue.index["action"] == "review"), "id"]
    assert page_ids(at) == want.tolist()[:PAGE]
    at.multiselect(key="f_reasons").set_value([]).run()
    at.multiselect(key="f_stages").set_value(["01-near_dup"]).run()
    assert page_ids(at) and all(queue.index.set_index("id").loc[i, "01-near_dup:flag"] == "near_duplicate"
                                for i in page_ids(at))
    at.multiselect(key="f_stages").set_value([]).run()
    side(at, "search", "ONERROR")
    assert len(page_ids(at)) == 1
    side(at, "search", "")
    at.selectbox(key="f_sort").set_value("02-label_noise.label_quality").run()
    at.checkbox(key="f_desc").check().run()
    scores = queue.index.set_index("id").loc[page_ids(at), "02-label_noise.label_quality"].to_numpy()
    assert np.all(np.diff(scores) <= 0)
    at.selectbox(key="f_score").set_value("02-label_noise.label_quality").run()
    at.slider(key="f_range").set_value((0.2, 0.4)).run()
    shown = queue.index.set_index("id").loc[page_ids(at), "02-label_noise.label_quality"].to_numpy()
    assert len(shown) and np.all((shown >= 0.2) & (shown <= 0.4))
    act(at, "reject")
    at.multiselect(key="f_status").set_value(["rejected"]).run()
    assert len(page_ids(at)) == 1


def test_keyboard_buttons_decide_the_current_item_and_advance(at, run):
    ids = page_ids(at)
    act(at, "accept")
    act(at, "accept")
    act(at, "reject")
    assert latest(run) == {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "rejected"}
    assert current_id(at) == ids[3]
    act(at, "prev_item")
    assert current_id(at) == ids[2]
    act(at, "pick", "6")  # a click on card 7
    assert current_id(at) == ids[6]
    assert "Reviewed 3 / " in ui_html(at)
    assert {r.reviewer for r in DecisionStore(run.review_db).history()} == {"tester"}


def test_details_button_shows_every_column_only_when_asked(at, run):
    def details_text():
        return re.findall(r'<pre class="ui-details">(.*?)</pre>', ui_html(at), re.S)

    assert details_text() == []  # no column dump on the first page
    act(at, "details")
    shown = details_text()
    assert len(shown) == 1 and f"id: {current_id(at)}" in shown[0] and "00-text_quality.n_words:" in shown[0]
    assert 'aria-label="Hide details" data-act="details"' in ui_html(at)
    act(at, "details")
    assert details_text() == [] and 'aria-label="Details" data-act="details"' in ui_html(at)


def test_undo_restores_the_previous_status(at, run):
    ids = page_ids(at)
    act(at, "accept")
    act(at, "prev_item")
    act(at, "reject")
    act(at, "undo")
    assert latest(run)[ids[0]] == "accepted"
    act(at, "undo")
    assert latest(run)[ids[0]] == "pending"
    assert len(DecisionStore(run.review_db).history(ids[0])) == 4  # append-only
    assert not enabled(at, "undo")


def test_bulk_decisions_need_confirmation(at, run):
    at.multiselect(key="f_reasons").set_value(["00-text_quality:too_short"]).run()
    matching = ReviewQueue(run.root).select(Query(reasons=["00-text_quality:too_short"]))
    act(at, "bulk", "rejected|filter")
    assert at.warning[0].value == f"Reject {len(matching)} items matching the current filter?"
    assert latest(run) == {}
    at.button(key="cancel_bulk").click().run()
    assert not at.warning and latest(run) == {}
    act(at, "bulk", "rejected|filter")
    at.button(key="confirm_bulk").click().run()
    got = latest(run)
    assert len(got) == len(matching) and set(got.values()) == {"rejected"}
    at.multiselect(key="f_reasons").set_value([]).run()
    page = page_ids(at)
    act(at, "bulk", "accepted|page")
    at.button(key="confirm_bulk").click().run()
    assert all(latest(run)[i] == "accepted" for i in page)
    act(at, "undo")
    after = latest(run)
    assert all(after[i] == ("rejected" if i in got else "pending") for i in page)


def test_caption_and_label_choices_go_into_the_decision_and_the_export(at, run, tmp_path):
    ids = item_ids(run)
    side(at, "search", "item-000005.png")  # caption repaired
    assert current_id(at) == ids[5]
    act(at, "accept", note="caption fixed")
    d = DecisionStore(run.review_db).latest()[ids[5]]
    assert (d.decision, d.note, d.caption) == ("accepted", "caption fixed", "a picture number 5 of a small dog on grass")
    side(at, "search", "item-000010.png")  # label issue: labelled frog, suggested ship
    assert 'name="lab" value="suggested" checked' in ui_html(at)
    act(at, "accept", lab="given")
    side(at, "search", "item-000017.png")  # label issue, suggestion accepted
    act(at, "accept")
    out = exported_ids(run, tmp_path)
    assert out[ids[5]]["text"] == "a picture number 5 of a small dog on grass"
    assert out[ids[10]]["label"] == "frog"
    assert out[ids[17]]["label"] == "frog"


def test_audit_view_lists_auto_dropped_items(at, run):
    side(at, "view", "audit")
    ids = item_ids(run)
    dropped = [ids[i] for i, a in sorted(expected_actions(N).items()) if a == "drop"]
    assert page_ids(at) == dropped
    act(at, "next_item")
    act(at, "accept")
    assert latest(run) == {dropped[1]: "accepted"}


def test_keeper_change_and_not_duplicates_are_honoured_by_export(at, run, tmp_path):
    ids = item_ids(run)
    side(at, "view", "clusters")
    assert at.sidebar.selectbox(key="c_stage").value == "01-near_dup"
    html = ui_html(at, "groups")
    assert "★ kept" in html and "#2" in html
    # group c0 = items 0 (the stage's representative) and 1 (its near-duplicate): keep 1 instead
    act(at, "keep", "01-near_dup|1", key="groups")
    got = DecisionStore(run.review_db).latest()
    assert (got[ids[1]].kind, got[ids[1]].decision) == ("keeper", "accepted")
    assert (got[ids[0]].kind, got[ids[0]].decision) == ("keeper", "rejected")
    # group c1 (items 10, 11): not duplicates
    act(at, "notdup", "01-near_dup|10", key="groups")
    assert DecisionStore(run.review_db).latest()[ids[11]].kind == "not_duplicate"
    out = exported_ids(run, tmp_path, pending="keep")
    assert ids[1] in out and ids[0] not in out  # the reviewer's keeper stays, the old representative goes
    assert ids[10] in out and ids[11] in out
    # the keeper change is shown: item 1 is now the kept one of its group
    queue = ReviewQueue(run.root)
    g = queue.group_of("01-near_dup", 0)
    assert queue.keepers("01-near_dup", g) == [1]
    # undo restores both rows at once
    act(at, "undo", key="groups")
    act(at, "undo", key="groups")
    assert set(latest(run).values()) == {"pending"}
    out = exported_ids(run, tmp_path, pending="keep")
    assert ids[0] in out and ids[1] in out


def test_browse_all_and_a_manual_flag_with_a_reason(at, run, tmp_path):
    ids = item_ids(run)
    unflagged = next(i for i in range(N) if not stage_flags(i))
    side(at, "view", "all")
    assert page_ids(at)[:3] == ids[:3]  # every item, in run order
    side(at, "search", f"item-{unflagged:06d}.png")
    assert current_id(at) == ids[unflagged]
    act(at, "flag_review", flag_reason="watermark in the corner")
    d = DecisionStore(run.review_db).latest()[ids[unflagged]]
    assert (d.kind, d.decision, d.note) == ("flag", "pending", "watermark in the corner")
    assert "watermark in the corner" in ui_html(at)
    # it is in the review queue now, under the reason filter "reviewer:flag"
    side(at, "search", "")
    side(at, "view", "review")
    at.multiselect(key="f_reasons").set_value(["reviewer:flag"]).run()
    assert page_ids(at) == [ids[unflagged]]
    assert ids[unflagged] not in exported_ids(run, tmp_path)  # pending: dropped under the default rule
    act(at, "reject")
    assert ids[unflagged] not in exported_ids(run, tmp_path, pending="keep")
    # a reason is required
    at.multiselect(key="f_reasons").set_value([]).run()
    act(at, "flag_review", flag_reason="")
    assert "needs a reason" in ui_html(at)


def test_random_sample_queue_draws_from_both_sides_of_the_threshold(at, run):
    queue = ReviewQueue(run.root)
    s = sample_queue(queue, "04-image_quality", "blurry", size=10)
    v = queue.index["04-image_quality.sharpness"].to_numpy()
    assert set(s.stratum) == {"flagged", "near"} and len(s.positions) == 20
    assert all(v[p] < 30 for p, t in zip(s.positions, s.stratum) if t == "flagged")
    assert all(v[p] >= 30 and queue.index["04-image_quality:flag"].isna().iat[p]
               for p, t in zip(s.positions, s.stratum) if t == "near")
    assert np.array_equal(s.positions, sample_queue(queue, "04-image_quality", "blurry", size=10).positions)
    side(at, "view", "sample")
    at.sidebar.selectbox(key="s_reason").set_value("04-image_quality:blurry").run()
    shown = page_ids(at)
    assert shown == queue.ids[sample_queue(queue, "04-image_quality", "blurry").positions][:PAGE].tolist()
    assert "sample: near threshold" in grid(at) and "sample: flagged" in grid(at)


def _plant(run, queue, cut: float) -> None:
    """Reviewers reject every sampled blurry-flag item with sharpness < cut, accept the rest."""
    s = sample_queue(queue, "04-image_quality", "blurry")
    v = queue.index["04-image_quality.sharpness"].to_numpy()
    bad = [queue.ids[p] for p in s.positions if v[p] < cut]
    fine = [queue.ids[p] for p in s.positions if v[p] >= cut]
    store = DecisionStore(run.review_db)
    store.decide(bad, "rejected", reviewer="ana")
    store.decide(fine, "accepted", reviewer="ana")


def test_thresholds_suggested_from_planted_decisions_written_and_saved(at, tmp_path):
    run = make_review_run(tmp_path / "big", n=600, shard_size=200)
    queue = ReviewQueue(run.root)
    _plant(run, queue, cut=15)
    ev = precision_evidence(queue, "04-image_quality", "blurry", target=0.9)
    assert ev["decisions"]["rejected"] > 0 and ev["decisions"]["accepted"] > 0
    sug = ev["suggested"]
    assert sug is not None and 10 <= sug["threshold"] <= 16 and sug["low"] <= sug["precision"] <= sug["high"]
    assert sug["precision"] >= 0.9
    at = AppTest.from_function(_app, kwargs={"run_dir": str(run.root)}, default_timeout=60).run()
    side(at, "view", "thresholds")
    at.selectbox(key="t_reason").set_value("04-image_quality:blurry").run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Suggested threshold: {sug['threshold']:g}")
    doc = json.loads((run.root / "review" / "thresholds.json").read_text())
    entry = doc["reasons"]["04-image_quality:blurry"]
    assert entry["suggested"]["threshold"] == sug["threshold"] and entry["bins"] and entry["param"] == "min_sharpness"
    at.button(key="t_save").click().run()
    path = next(run.root.glob("pipelines/*.yaml"))
    stage = yaml.safe_load(path.read_text())["stages"][4]["image_quality"]
    assert stage["min_sharpness"] == pytest.approx(sug["threshold"]) and stage["dark_below"] == 15.0
    entry = json.loads((run.root / "review" / "thresholds.json").read_text())["reasons"]["04-image_quality:blurry"]
    assert entry["saved_pipeline"] == str(path)


def test_no_suggestion_without_evidence(run):
    ev = precision_evidence(ReviewQueue(run.root), "04-image_quality", "blurry")
    assert ev["suggested"] is None and ev["decisions"] == {"rejected": 0, "accepted": 0}


def test_reviewers_split_by_stable_hash_with_overlap_and_kappa(at, run):
    queue = ReviewQueue(run.root)
    shares = assignment(queue.ids, ["ana", "bo"], 0.25)
    both = shares["ana"] & shares["bo"]
    assert (shares["ana"] | shares["bo"]).all() and 0.1 < both.mean() < 0.4
    again = assignment(queue.ids[::-1], ["ana", "bo"], 0.25)  # the same items, another order
    assert np.array_equal(again["ana"][::-1], shares["ana"])
    assert cohen_kappa(["a", "a", "r", "r"], ["a", "a", "r", "r"]) == 1.0
    assert cohen_kappa(["a", "r", "a", "r"], ["a", "a", "r", "r"]) == 0.0
    side(at, "view", "team")
    at.text_input(key="team_names").input("ana, bo").run()
    at.slider(key="team_overlap").set_value(25).run()
    at.button(key="team_save").click().run()
    assert json.loads((run.root / "review" / "reviewers.json").read_text()) == {"reviewers": ["ana", "bo"], "overlap": 0.25}
    overlap = queue.ids[both & queue.view_mask("review")]
    store = DecisionStore(run.review_db)
    store.decide(overlap[:4], "accepted", reviewer="ana")
    store.decide(overlap[4:6], "rejected", reviewer="ana")
    store.decide(overlap[:3], "accepted", reviewer="bo")
    store.decide(overlap[3:6], "rejected", reviewer="bo")
    at.run()
    agreement = json.loads((run.root / "review" / "agreement.json").read_text())
    (pair,) = agreement["pairs"]
    assert pair["items"] == 6 and pair["agree"] == 5
    assert pair["kappa"] == pytest.approx(cohen_kappa(["accepted"] * 4 + ["rejected"] * 2,
                                                      ["accepted"] * 3 + ["rejected"] * 3))
    assert at.dataframe[-1].value["Cohen's kappa"].iloc[0] == pytest.approx(round(pair["kappa"], 3))
    # ana's own share in the queue
    side(at, "view", "review")
    side(at, "reviewer", "ana")
    side(at, "mine", "on")
    want = queue.ids[shares["ana"] & queue.view_mask("review")][:PAGE].tolist()
    assert page_ids(at) == want


def test_roles_come_from_the_manifest_not_column_names(run):
    """Rename the duplicate-group and representative columns: the queue follows the declaration."""
    import pyarrow as pa

    from curate.rundir import write_table

    m = run.manifest()
    entry = m.stage("01-near_dup")
    for c in entry.outputs.columns:
        c.name = {"cluster_id": "zz_a", "is_representative": "zz_b"}.get(c.name, c.name)
    run.save_manifest(m)
    for p in sorted(run.stage_dir("01-near_dup").glob("part-*.parquet")):
        t = pq.read_table(p)
        write_table(t.rename_columns([{"cluster_id": "zz_a", "is_representative": "zz_b"}.get(n, n) for n in t.column_names]), p)
    queue = ReviewQueue(run.root)
    g = queue.group_of("01-near_dup", 1)
    assert g["members"] == [0, 1] and queue.keepers("01-near_dup", g) == [0]


def test_review_command_checks_the_run_and_binds_localhost(run, tmp_path):
    from click.testing import CliRunner

    from curate.cli import main
    from curate.commands.review import streamlit_command

    cmd = streamlit_command(str(run.root), host="127.0.0.1", port=8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[cmd.index("--client.toolbarMode") + 1] == "minimal"  # no Deploy button, and no redraw to hide it
    assert cmd[-1] == str(run.root) and any(Path(c).name == "app.py" and Path(c).parent.name == "review" and Path(c).is_file() for c in cmd)
    m = run.manifest()
    m.status = None
    run.save_manifest(m)
    res = CliRunner().invoke(main, ["review", str(run.root)])
    assert res.exit_code == 1 and "did not finish" in res.output
    res = CliRunner().invoke(main, ["review", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "not a run directory" in res.output


def test_an_older_review_db_gets_the_new_columns(tmp_path):
    import sqlite3

    path = tmp_path / "review.db"
    conn = sqlite3.connect(path)
    conn.executescript("""CREATE TABLE decisions (id INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL,
        decision TEXT NOT NULL, reviewer TEXT, at TEXT NOT NULL, note TEXT, caption TEXT, undoes INTEGER);
        INSERT INTO decisions (item_id, decision, reviewer, at) VALUES ('a', 'rejected', 'ana', '2026-01-01');""")
    conn.commit()
    conn.close()
    store = DecisionStore(path)
    assert store.latest()["a"].decision == "rejected" and store.latest()["a"].kind is None
    store.decide(["b"], "accepted", kind="keeper", stage="01-near_dup", group="c0")
    d = store.latest()["b"]
    assert (d.kind, d.stage, d.grp) == ("keeper", "01-near_dup", "c0")
    with pytest.raises(Exception, match="needs the stage and the duplicate group"):
        store.decide(["c"], "accepted", kind="not_duplicate")
