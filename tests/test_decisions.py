"""review.db: append-only decisions, latest wins, undo, two writers at once, CSV, export honours them."""

from __future__ import annotations

import csv
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from curate.cli import main
from curate.decisions import DecisionStore
from curate.errors import CurateError
from curate.export import export_run
from tests.review_fixture import _caption, expected_actions, item_ids, make_review_run, stage_flags


def test_latest_decision_wins_and_rows_are_never_updated(tmp_path):
    store = DecisionStore(tmp_path / "review.db")
    store.decide(["a", "b"], "accepted", reviewer="ana")
    store.decide(["a"], "rejected", reviewer="bo", note="blurry")
    latest = store.latest()
    assert latest["a"].decision == "rejected" and latest["a"].reviewer == "bo" and latest["a"].note == "blurry"
    assert latest["b"].decision == "accepted"
    assert [d.decision for d in store.history("a")] == ["accepted", "rejected"]
    assert store.counts() == {"pending": 0, "accepted": 1, "rejected": 1}
    assert sqlite3.connect(tmp_path / "review.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_undo_appends_the_previous_status_and_respects_later_decisions(tmp_path):
    store = DecisionStore(tmp_path / "review.db")
    first = store.decide(["a"], "accepted", reviewer="ana", caption="fixed caption")
    second = store.decide(["a"], "rejected", reviewer="ana")
    new, skipped = store.undo(second, reviewer="ana")
    assert skipped == [] and len(new) == 1
    d = store.latest()["a"]
    assert d.decision == "accepted" and d.caption == "fixed caption" and d.undoes == second[0]
    # undoing the very first decision makes the item pending again
    store.undo(new, reviewer="ana")
    new2, _ = store.undo(first)  # 'first' is no longer the latest row: nothing happens
    assert new2 == []
    assert len(store.history("a")) == 4
    # another reviewer decided since: undo leaves their decision alone
    mine = store.decide(["b"], "accepted", reviewer="ana")
    store.decide(["b"], "rejected", reviewer="bo")
    new, skipped = store.undo(mine, reviewer="ana")
    assert new == [] and skipped == ["b"]
    assert store.latest()["b"].decision == "rejected"


def test_incremental_sync_sees_only_new_rows(tmp_path):
    store = DecisionStore(tmp_path / "review.db")
    store.decide(["a", "b"], "accepted")
    mark = store.max_id()
    store.decide(["b"], "rejected")
    assert set(store.latest(since=mark)) == {"b"}
    assert store.latest(since=store.max_id()) == {}


def test_bad_decision_and_missing_db_are_clear_errors(tmp_path):
    store = DecisionStore(tmp_path / "review.db")
    with pytest.raises(CurateError, match="expected one of pending, accepted, rejected"):
        store.decide(["a"], "maybe")
    with pytest.raises(CurateError, match="no review decisions yet"):
        DecisionStore(tmp_path / "other.db", create=False)


_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from curate.decisions import DecisionStore
    db, name, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    store = DecisionStore(db)
    (ready / name).touch()  # a barrier: start writing only once both processes are ready
    deadline = time.time() + 60
    while len(list(ready.iterdir())) < 2 and time.time() < deadline:
        time.sleep(0.0005)
    for i in range(1000):
        store.decide([f"item-{i % 300}"], "accepted" if name == "p0" else "rejected", reviewer=name, note=str(i))
        time.sleep(0.002)  # a reviewer pauses between clicks; without it SQLite's busy wait (sleeping 1, 2, 5,
        #                    ... 100 ms) can lose every race to a writer that takes the lock back at once
""")


@pytest.mark.slow
def test_two_processes_writing_1000_decisions_each_lose_nothing(tmp_path):
    db = tmp_path / "review.db"
    DecisionStore(db)
    ready = tmp_path / "ready"  # both processes start writing at the same moment, however slow their start-up
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), f"p{k}", str(ready)],
                              stderr=subprocess.PIPE) for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = DecisionStore(db)
    rows = store.history()
    assert len(rows) == 2000
    for name in ("p0", "p1"):
        assert sorted(int(r.note) for r in rows if r.reviewer == name) == list(range(1000))
    # the writes really interleaved, and the latest row per item is the one with the highest id
    switches = sum(1 for a, b in zip(rows, rows[1:]) if a.reviewer != b.reviewer)
    assert switches > 1
    last = {}
    for r in rows:
        last[r.item_id] = r
    assert {k: v.id for k, v in store.latest().items()} == {k: v.id for k, v in last.items()}


@pytest.fixture
def run(tmp_path):
    return make_review_run(tmp_path / "run", n=120, shard_size=50)


def test_decisions_command_prints_counts_and_writes_csv(run, tmp_path):
    ids = item_ids(run)
    actions = expected_actions(120)
    review = [i for i, a in actions.items() if a == "review"]
    store = DecisionStore(run.review_db)
    store.decide([ids[i] for i in review[:3]], "accepted", reviewer="ana")
    store.decide([ids[review[3]]], "rejected", reviewer="bo", note='says "no", really')
    out = tmp_path / "d.csv"
    res = CliRunner().invoke(main, ["decisions", str(run.root), "--out", str(out)])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("to review"))
    assert line.split()[2:] == [str(len(review)), "3", "1", str(len(review) - 4)]
    assert any(ln.split() == ["ana", "3", "0", "0"] for ln in res.output.splitlines())
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 4 and {r["item_id"] for r in rows} == {ids[i] for i in review[:4]}
    assert next(r for r in rows if r["decision"] == "rejected")["note"] == 'says "no", really'
    res = CliRunner().invoke(main, ["decisions", str(tmp_path / "nope")])
    assert res.exit_code == 1 and "not a run directory" in res.output


def _exported(out: Path) -> dict[str, str]:
    t = pa.concat_tables([pq.read_table(p, columns=["id", "text"]) for p in sorted(out.glob("*.parquet"))])
    return dict(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))


def test_export_applies_decisions(run, tmp_path):
    ids = item_ids(run)
    actions = expected_actions(120)
    # a repaired caption is a proposed edit: the item stays whatever the decision; only its text depends on it
    edit_only = [i for i in actions if set(stage_flags(i)) == {"03-caption_repair"}]
    review = [i for i, a in actions.items() if a == "review" and i not in edit_only]
    dropped = [i for i, a in actions.items() if a == "drop"]
    kept_by_stages = [i for i in range(120) if i not in actions] + edit_only
    store = DecisionStore(run.review_db)
    store.decide([ids[edit_only[0]]], "accepted", reviewer="ana")
    store.decide([ids[edit_only[1]]], "rejected", reviewer="ana")
    store.decide([ids[review[0]], ids[review[1]]], "accepted", reviewer="ana")
    store.decide([ids[review[2]]], "accepted", reviewer="ana", caption="a better caption")
    store.decide([ids[review[3]]], "rejected", reviewer="ana")
    store.decide([ids[dropped[0]]], "accepted", reviewer="ana")  # overriding a stage drop (audit view)
    rows = store.decide([ids[review[4]]], "rejected", reviewer="ana")
    store.undo(rows)  # back to pending

    em = export_run(run.root, tmp_path / "out", fmt="parquet", quiet=True)
    got = _exported(tmp_path / "out")
    want = {ids[i] for i in kept_by_stages} | {ids[review[0]], ids[review[1]], ids[review[2]], ids[dropped[0]]}
    assert set(got) == want
    assert got[ids[review[2]]] == "a better caption"
    repaired = _caption(edit_only[0]).replace("photo", "picture")
    assert repaired != _caption(edit_only[0]) and got[ids[edit_only[0]]] == repaired  # accepted edit applied
    assert got[ids[edit_only[1]]] == _caption(edit_only[1])  # rejected edit: original text, item kept
    assert got[ids[edit_only[2]]] == _caption(edit_only[2])  # pending edit: original text, item kept
    assert em["pending_review"] == "drop"
    assert em["review"]["accepted"] == 5 and em["review"]["rejected"] == 2
    assert em["review"]["pending"] == len(review) - 4 + len(edit_only) - 2
    assert "undecided review items: drop" in em["review"]["rule"]
    assert any(k.startswith("rejected_by_reviewer:") for k in em["dropped_by_reason"])
    manifest = json.loads((tmp_path / "out" / "export_manifest.json").read_text())
    assert manifest["counts"]["kept"] == len(want)

    res = CliRunner().invoke(main, ["export", str(run.root), "--out", str(tmp_path / "out2"), "--pending", "keep", "-q"])
    assert res.exit_code == 0, res.output
    got = _exported(tmp_path / "out2")
    assert set(got) == want | {ids[i] for i in review[4:]}
    assert ids[review[3]] not in got
