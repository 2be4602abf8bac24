"""The review app's logic through ``streamlit.testing.v1.AppTest``: filters, paging, decisions, undo,
bulk decisions with confirmation, the item view, the audit view and thresholds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

pytest.importorskip("streamlit", reason="the review app needs the 'app' extra (streamlit)")
from streamlit.testing.v1 import AppTest  # noqa: E402

from curate.decisions import DecisionStore  # noqa: E402
from curate.review import Query, ReviewQueue  # noqa: E402
from tests.review_fixture import HTML_CAPTION, expected_actions, item_ids, make_review_run  # noqa: E402

N = 120


def _app(run_dir: str) -> None:
    from curate.app.review import render

    render(run_dir, "tester")


@pytest.fixture
def run(tmp_path):
    return make_review_run(tmp_path / "run", n=N, shard_size=50)


@pytest.fixture
def at(run):
    return AppTest.from_function(_app, kwargs={"run_dir": str(run.root)}, default_timeout=60).run()


def page_ids(at) -> list[str]:
    """Ids of the cards on the page (each card has an Open button keyed open_<id>)."""
    return [b.key[5:] for b in at.button if b.key and b.key.startswith("open_") and len(b.key) == 37]


def current_id(at) -> str:
    return next(t.value for t in at.text if t.value.startswith("current:")).rsplit(" ", 1)[-1]


def latest(run) -> dict[str, str]:
    return {k: v.decision for k, v in DecisionStore(run.review_db).latest().items()}


def test_first_page_progress_and_captions_as_text(at, run):
    assert not at.exception
    ids = item_ids(run)
    review = [ids[i] for i, a in sorted(expected_actions(N).items()) if a == "review"]
    assert page_ids(at) == review[:24]
    assert at.get("progress")[0].proto.text == f"Reviewed 0 / {len(review)}"
    texts = [t.value for t in at.text]
    assert any(t.startswith(HTML_CAPTION + "\n") for t in texts)  # drawn by st.text: literal, never HTML or Markdown
    assert not any(HTML_CAPTION in m.value for m in at.markdown)


def test_paging(at, run):
    first = page_ids(at)
    at.button(key="next_page").click().run()
    second = page_ids(at)
    assert len(second) == 24 and not set(first) & set(second)
    assert current_id(at) == second[0]
    at.selectbox(key="page_size").set_value(12).run()  # changing the page size goes back to page 1
    assert page_ids(at) == first[:12]
    assert at.button(key="prev_page").disabled
    at.button(key="next_page").click().run()
    at.button(key="prev_page").click().run()
    assert page_ids(at) == first[:12]
    for _ in range(10):  # the last page (120 items, 48 to review: 4 pages of 12)
        if at.button(key="next_page").disabled:
            break
        at.button(key="next_page").click().run()
    assert len(page_ids(at)) == 12 and any("page **4** of **4**" in m.value for m in at.markdown)


def test_filters_by_reason_stage_status_score_and_search(at, run):
    queue = ReviewQueue(run.root)
    at.multiselect(key="f_reasons").set_value(["02-label_noise:label_issue"]).run()
    shown = page_ids(at)
    want = queue.index.loc[queue.index["02-label_noise:flag"] == "label_issue"]
    want = want[want["action"] == "review"]["id"].tolist()
    assert shown == want[:24] and len(shown) == len(want)
    at.multiselect(key="f_reasons").set_value([]).run()
    at.multiselect(key="f_stages").set_value(["01-near_dup"]).run()
    dups = page_ids(at)
    assert dups and all("near-duplicate" in queue.index.set_index("id").loc[i, "details"] for i in dups)
    at.multiselect(key="f_stages").set_value([]).run()

    at.text_input(key="f_search").input("ONERROR").run()
    assert len(page_ids(at)) == 1 and any(HTML_CAPTION in t.value for t in at.text)
    at.text_input(key="f_search").input("").run()

    at.selectbox(key="f_sort").set_value("02-label_noise.label_quality").run()
    at.checkbox(key="f_desc").check().run()
    scores = queue.index.set_index("id").loc[page_ids(at), "02-label_noise.label_quality"].to_numpy()
    assert np.all(np.diff(scores) <= 0) and scores[0] == queue.index.loc[queue.index["action"] == "review", "02-label_noise.label_quality"].max()

    at.selectbox(key="f_score").set_value("02-label_noise.label_quality").run()
    at.slider(key="f_range").set_value((0.2, 0.4)).run()
    shown = queue.index.set_index("id").loc[page_ids(at), "02-label_noise.label_quality"].to_numpy()
    assert len(shown) and np.all((shown >= 0.2) & (shown <= 0.4))

    # status: decide one with the card's own button, then filter on it
    at.checkbox(key="card_buttons").check().run()
    at.button(key=f"rej_{page_ids(at)[0]}").click().run()
    at.multiselect(key="f_status").set_value(["rejected"]).run()
    assert len(page_ids(at)) == 1


def test_keyboard_buttons_decide_the_current_item_and_advance(at, run):
    ids = page_ids(at)
    at.button(key="acc_cur").click().run()
    at.button(key="acc_cur").click().run()
    at.button(key="rej_cur").click().run()
    assert latest(run) == {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "rejected"}
    assert current_id(at) == ids[3]
    at.button(key="prev_item").click().run()
    assert current_id(at) == ids[2]
    assert at.get("progress")[0].proto.text.startswith("Reviewed 3 / ")
    rows = DecisionStore(run.review_db).history()
    assert {r.reviewer for r in rows} == {"tester"}


def test_undo_restores_the_previous_status(at, run):
    ids = page_ids(at)
    at.checkbox(key="card_buttons").check().run()
    at.button(key=f"acc_{ids[5]}").click().run()
    at.button(key=f"rej_{ids[5]}").click().run()
    at.button(key="undo").click().run()
    assert latest(run)[ids[5]] == "accepted"
    at.button(key="undo").click().run()
    assert latest(run)[ids[5]] == "pending"
    assert len(DecisionStore(run.review_db).history(ids[5])) == 4  # append-only
    assert at.button(key="undo").disabled


def test_bulk_decisions_need_confirmation(at, run):
    at.multiselect(key="f_reasons").set_value(["00-text_quality:too_short"]).run()
    matching = ReviewQueue(run.root).select(Query(reasons=["00-text_quality:too_short"]))
    at.button(key="rej_all").click().run()
    assert at.warning[0].value == f"Reject {len(matching)} items matching the current filter?"
    assert latest(run) == {}  # nothing written before confirming
    at.button(key="cancel_bulk").click().run()
    assert not at.warning and latest(run) == {}
    at.button(key="rej_all").click().run()
    at.button(key="confirm_bulk").click().run()
    got = latest(run)
    assert len(got) == len(matching) and set(got.values()) == {"rejected"}
    # accept the page, then undo the whole bulk action at once
    at.multiselect(key="f_reasons").set_value([]).run()
    page = page_ids(at)
    at.button(key="acc_page").click().run()
    assert at.warning[0].value == f"Accept {len(page)} items on this page?"
    at.button(key="confirm_bulk").click().run()
    assert all(latest(run)[i] == "accepted" for i in page)
    at.button(key="undo").click().run()
    after = latest(run)
    assert all(after[i] == ("rejected" if i in got else "pending") for i in page)


def test_item_view_cluster_suggestion_and_caption_choice(at, run):
    queue = ReviewQueue(run.root)
    ids = item_ids(run)
    # item 1 is a near-duplicate of item 0 (the representative)
    at.text_input(key="f_search").input("item-000001.png").run()
    texts = [t.value for t in at.text]
    assert any(t.startswith("★ representative") and ids[0][:12] in t for t in texts)
    assert any(t.startswith("duplicate · this item") and ids[1][:12] in t for t in texts)
    # item 3 has a label issue (and the HTML caption)
    at.text_input(key="f_search").input("item-000003.png").run()
    assert any("labelled ship, suggested label cat" in t for t in (x.value for x in at.text))
    # item 5 has a repaired caption: choose it and accept with a note
    at.text_input(key="f_search").input("item-000005.png").run()
    assert any("repaired: a picture number 5" in t.value for t in at.text)
    at.radio(key=f"cap_{ids[5]}_03-caption_repair").set_value("repaired").run()
    at.text_input(key=f"note_{ids[5]}").input("caption fixed").run()
    at.button(key=f"iacc_{ids[5]}").click().run()
    d = DecisionStore(run.review_db).latest()[ids[5]]
    assert (d.decision, d.note, d.caption) == ("accepted", "caption fixed", "a picture number 5 of a small dog on grass")
    assert any("\nchosen caption: a picture number 5 of a small dog on grass\n" in t.value for t in at.text)
    # the keyboard's accept on the current item uses the item view's choice too
    at.radio(key=f"cap_{ids[5]}_03-caption_repair").set_value("original").run()
    at.button(key="acc_cur").click().run()
    d = DecisionStore(run.review_db).latest()[ids[5]]
    assert (d.decision, d.note, d.caption) == ("accepted", "caption fixed", None)
    at.button(key="undo").click().run()
    assert DecisionStore(run.review_db).latest()[ids[5]].caption.startswith("a picture")
    assert queue.captions == {}  # another process-wide queue object syncs on its next refresh
    queue.refresh()
    assert queue.captions[ids[5]].startswith("a picture")


def test_audit_view_lists_auto_dropped_items(at, run):
    at.sidebar.radio(key="view").set_value("audit").run()
    ids = item_ids(run)
    dropped = [ids[i] for i, a in sorted(expected_actions(N).items()) if a == "drop"]
    assert page_ids(at) == dropped
    at.button(key=f"open_{dropped[1]}").click().run()  # Open makes a card the current item
    assert current_id(at) == dropped[1]
    at.button(key="acc_cur").click().run()
    assert latest(run) == {dropped[1]: "accepted"}
    at.checkbox(key="card_buttons").check().run()
    at.button(key=f"acc_{dropped[0]}").click().run()
    assert latest(run) == {dropped[0]: "accepted", dropped[1]: "accepted"}


def test_thresholds_count_and_save_as_pipeline(at, run):
    at.sidebar.radio(key="view").set_value("thresholds").run()
    at.selectbox(key="t_stage").set_value("02-label_noise").run()
    assert at.selectbox(key="t_param_02-label_noise_label_quality").value == "min_quality"  # shared word
    at.selectbox(key="t_stage").set_value("04-image_quality").run()
    assert at.selectbox(key="t_param_04-image_quality_luma_mean").value is None  # no name in common: no guess
    assert not [b for b in at.button if b.key == "t_save"]  # nothing to save without a parameter
    at.selectbox(key="t_param_04-image_quality_luma_mean").set_value("dark_below").run()
    assert at.radio(key="t_dir_04-image_quality_luma_mean_dark_below").value == "below"
    assert at.slider(key="t_val_04-image_quality_luma_mean_dark_below").value == 15.0  # starts at the pipeline's value
    assert at.metric[0].value == f"{sum(1 for i in range(N) if (i % 255) < 15)} of {N}"
    at.slider(key="t_val_04-image_quality_luma_mean_dark_below").set_value(30.0).run()
    want = sum(1 for i in range(N) if (i % 255) < 30)
    assert at.metric[0].value == f"{want} of {N}"
    at.radio(key="t_dir_04-image_quality_luma_mean_dark_below").set_value("above").run()
    assert at.metric[0].value == f"{sum(1 for i in range(N) if (i % 255) > 30)} of {N}"
    at.button(key="t_save").click().run()
    path = next(run.root.glob("pipelines/*.yaml"))
    doc = yaml.safe_load(path.read_text())
    assert doc["stages"][4] == {"image_quality": {"dark_below": 30.0, "action": "drop"}}
    assert doc["stages"][0] == {"text_quality": {"min_words": 3, "action": "review"}}


def test_item_view_follows_dup_of_and_ignores_a_coarse_cluster(run):
    """semantic_dedup writes a k-means ``cluster`` and ``dup_of``: the group is the item and its original."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from curate.rundir import shard_name, write_table

    ids = item_ids(run)
    manifest = run.load_manifest()
    for s in range(len(run.data_shards())):
        shard_ids = pq.read_table(run.data_shard(s), columns=["id"]).column("id").to_pylist()
        n0 = s * 50
        dup = [n0 + k == 9 for k in range(len(shard_ids))]  # item 9 duplicates item 4
        write_table(pa.table({"id": shard_ids, "cluster": pa.array([0] * len(shard_ids), pa.int32()),
                              "dup_of": pa.array([ids[4] if d else None for d in dup], pa.string()),
                              "flag": pa.array(["semantic_duplicate" if d else None for d in dup], pa.string()),
                              "action": pa.array(["review" if d else None for d in dup], pa.string()),
                              "detail": pa.array(["cosine 0.99 to item 4" if d else None for d in dup], pa.string())}),
                    run.stage_dir("05-semantic_dedup") / shard_name(s))
    manifest["stages"].append({"index": 5, "name": "semantic_dedup", "dir": "05-semantic_dedup", "fingerprint": "x",
                               "status": "done", "columns": ["cluster", "dup_of"], "params": {"action": "review"},
                               "finished": "2026-01-02T00:00:00+00:00"})
    run.save_manifest(manifest)
    queue = ReviewQueue(run.root)
    pos = int(np.flatnonzero(queue.index["id"].to_numpy() == ids[9])[0])
    (group,) = queue.details(pos)["clusters"]
    assert group["stage"] == "05-semantic_dedup" and group["column"] == "dup_of"
    assert [(m["id"], m["representative"], m["this"]) for m in group["members"]] == [(ids[4], True, False),
                                                                                     (ids[9], False, True)]
    assert group["members"][0]["image"][:4] == b"\x89PNG"


def test_review_command_checks_the_run_and_binds_localhost(run, tmp_path):
    from click.testing import CliRunner

    from curate.cli import main
    from curate.commands.review import streamlit_command

    cmd = streamlit_command(str(run.root), host="127.0.0.1", port=8600)
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1" and cmd[cmd.index("--server.port") + 1] == "8600"
    assert cmd[-1] == str(run.root) and Path(cmd[4]).name == "review.py" and Path(cmd[4]).is_file()
    manifest = run.load_manifest()
    manifest["status"] = "running"
    run.save_manifest(manifest)
    res = CliRunner().invoke(main, ["review", str(run.root)])
    assert res.exit_code == 1 and "did not finish" in res.output
    res = CliRunner().invoke(main, ["review", str(tmp_path / "missing")])
    assert res.exit_code == 1 and "not a run directory" in res.output
