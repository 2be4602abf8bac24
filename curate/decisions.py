"""Review decisions: an append-only log in ``runs/<name>/review.db`` (SQLite, WAL mode).

Every decision is a new row ``(id, item_id, decision, reviewer, at, note, caption, label, kind, stage,
grp, undoes)``; rows are never updated or deleted. The latest row per item (highest ``id``) is the
item's status. Undo appends a row that restores the row the item had before the undone one (``undoes``
points at it), and only if nobody decided that item since (so undo never overwrites another reviewer's
later decision); undoing twice walks back two steps.

Several processes may write at once: each write is one ``BEGIN IMMEDIATE`` transaction and SQLite
serialises them (``busy_timeout`` waits for the lock), so no decision is lost.

What a decision means for the item's fate (:mod:`curate.fate` applies it; the *latest* row per item is
the only one that counts):

==================  ==========  ==============================================================================
``kind``            decision    fate of the item
==================  ==========  ==============================================================================
``None`` (item)     accepted    kept, whatever the stages said (also over a stage ``drop``); an accepted
                                ``caption`` / ``label`` replaces the record's ``text`` / ``label``
``None`` (item)     rejected    dropped (reason ``reviewer``)
``None`` (item)     pending     as if never decided (only undo writes it): stage outcome, pending rule
``flag``            pending     a person flagged an item by hand (``note`` is the reason): the item is
                                ``review`` with reason ``reviewer:flag`` on top of its stage outcome (a stage
                                ``drop`` still drops); undecided it follows the pending rule
``flag``            rejected    flagged by hand and rejected at once: dropped (reason ``reviewer``)
``keeper``          accepted    the reviewer made this item the kept one of its duplicate group ``grp`` in
                                stage ``stage``: that stage's flags on it are void; its other stages' flags
                                decide as if nobody had decided (stage outcome, pending rule)
``keeper``          rejected    the group's former representative, replaced by the reviewer's keeper: dropped
                                (reason ``reviewer:duplicate``), whatever the stages said
``not_duplicate``   accepted    the reviewer says group ``grp`` of ``stage`` is not a duplicate group: that
                                stage's flags on the item are void; its other stages' flags decide as if
                                nobody had decided (stage outcome, pending rule)
==================  ==========  ==============================================================================

A later item decision (``kind`` ``None``) replaces any of these, like any later row.

>>> store = DecisionStore("runs/demo/review.db")          # doctest: +SKIP
>>> store.decide(["3f2a..."], "rejected", reviewer="ana")  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import sqlite3
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from curate.errors import CurateError

#: Statuses an item can have. ``pending`` only appears through undo (an item without rows is pending too).
STATUSES = ("pending", "accepted", "rejected")

#: Decision kinds besides a plain item decision (``None``), and the statuses each may carry.
KINDS: dict[str | None, tuple[str, ...]] = {
    None: STATUSES,
    "flag": ("pending", "rejected"),
    "keeper": ("accepted", "rejected"),
    "not_duplicate": ("accepted",),
}
#: Kinds that apply to one stage's duplicate group (``stage`` and ``grp`` are required).
GROUP_KINDS = ("keeper", "not_duplicate")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id  TEXT NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('pending', 'accepted', 'rejected')),
    reviewer TEXT,
    at       TEXT NOT NULL,
    note     TEXT,
    caption  TEXT,
    undoes   INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_item ON decisions (item_id, id);
"""

#: Columns added after the first version (added to an older review.db when it is opened).
_ADDED = {"label": "TEXT", "kind": "TEXT", "stage": "TEXT", "grp": "TEXT"}

_COLUMNS = ("id", "item_id", "decision", "reviewer", "at", "note", "caption", "undoes", "label", "kind", "stage", "grp")
_SELECT = ", ".join(_COLUMNS)
_WRITE = _COLUMNS[1:]  # every column but the row id

_INSERT = f"INSERT INTO decisions ({', '.join(_WRITE)}) VALUES ({', '.join('?' * len(_WRITE))})"

_LATEST = f"""
SELECT {", ".join("d." + c for c in _COLUMNS)}
FROM decisions d JOIN (SELECT item_id, MAX(id) AS id FROM decisions {{where}} GROUP BY item_id) m ON d.id = m.id
"""


@dataclass(frozen=True)
class Decision:
    """One row of the log."""

    id: int
    item_id: str
    decision: str
    reviewer: str | None
    at: str
    note: str | None
    caption: str | None
    undoes: int | None
    label: str | None = None     # the label the reviewer accepted (e.g. a suggested one), else None
    kind: str | None = None      # None (item decision), "flag", "keeper", "not_duplicate": see the module doc
    stage: str | None = None     # group kinds: the stage directory whose duplicate group this is about
    grp: str | None = None       # group kinds: the duplicate group's id (as text)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


class DecisionStore:
    """The decisions log of one run. Safe to share across threads and processes.

    Parameters
    ----------
    path : str or Path
        The SQLite file, normally ``RunDir(run).review_db``. Created (with its table) if missing,
        unless ``create=False``.
    create : bool
        False to raise :class:`CurateError` instead of creating a missing database.
    timeout : float
        Seconds a write waits for another writer's lock before failing.
    """

    def __init__(self, path: str | Path, *, create: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        if not self.path.exists() and not create:
            raise CurateError(f"{self.path}: no review decisions yet (start a review with 'curate review')")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._timeout = timeout
        self._local = threading.local()
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)
        self._migrate(conn)

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        """Add the columns newer versions write to a review.db made by an older one."""
        have = {r[1] for r in conn.execute("PRAGMA table_info(decisions)")}
        for name, sql_type in _ADDED.items():
            if name not in have:
                try:
                    conn.execute(f"ALTER TABLE decisions ADD COLUMN {name} {sql_type}")
                except sqlite3.OperationalError as exc:  # another process added it first
                    if "duplicate column" not in str(exc):
                        raise

    # -- connection --------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            except sqlite3.Error as exc:
                raise CurateError(f"{self.path}: cannot open the review database ({exc})") from None
            conn.execute(f"PRAGMA busy_timeout={int(self._timeout * 1000)}")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable in WAL mode except on power loss
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- writing -------------------------------------------------------------------------------
    def decide(self, item_ids: Iterable[str], decision: str, *, reviewer: str | None = None,
               note: str | None = None, caption: str | None = None, label: str | None = None,
               kind: str | None = None, stage: str | None = None, group: str | None = None) -> list[int]:
        """Append one decision per item (one transaction); returns the new row ids in order.

        ``decision`` is ``accepted``, ``rejected`` or ``pending``. ``caption`` / ``label`` are the caption
        and label chosen for the item (e.g. the repaired caption, the suggested label), ``None`` to keep
        the original. ``kind`` (with ``stage`` and ``group`` for the group kinds) says what the decision is
        about; see the module docstring for what each means for the item's fate.
        """
        if kind not in KINDS:
            raise CurateError(f"decision kind: expected one of {', '.join(str(k) for k in KINDS)}, got {kind!r}")
        if decision not in KINDS[kind]:
            raise CurateError(f"decision: expected one of {', '.join(KINDS[kind])}"
                              + (f" for a {kind!r} decision" if kind else "") + f", got {decision!r}")
        if kind in GROUP_KINDS and not (stage and group is not None):
            raise CurateError(f"a {kind!r} decision needs the stage and the duplicate group it is about")
        ids = list(item_ids)
        at = _now()
        return self._append([(i, decision, reviewer, at, note, caption, None, label, kind, stage,
                              None if group is None else str(group)) for i in ids])

    def decide_rows(self, rows: list[dict]) -> list[int]:
        """Append several different decisions in one transaction (e.g. a new keeper and the old one).

        Each row is a dict of :meth:`decide`'s arguments: ``item_id``, ``decision`` and optionally
        ``reviewer``, ``note``, ``caption``, ``label``, ``kind``, ``stage``, ``group``.
        """
        at = _now()
        out = []
        for r in rows:
            kind, decision = r.get("kind"), r["decision"]
            if kind not in KINDS or decision not in KINDS[kind]:
                raise CurateError(f"decision: {decision!r} is not allowed for kind {kind!r}")
            if kind in GROUP_KINDS and not (r.get("stage") and r.get("group") is not None):
                raise CurateError(f"a {kind!r} decision needs the stage and the duplicate group it is about")
            g = r.get("group")
            out.append((r["item_id"], decision, r.get("reviewer"), at, r.get("note"), r.get("caption"), None,
                        r.get("label"), kind, r.get("stage"), None if g is None else str(g)))
        return self._append(out)

    def _append(self, rows: list[tuple]) -> list[int]:
        if not rows:
            return []
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            start = conn.execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]
            conn.executemany(_INSERT, rows)
            end = conn.execute("SELECT MAX(id) FROM decisions").fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        # AUTOINCREMENT ids are consecutive inside one write transaction
        if end - start != len(rows):  # pragma: no cover - would mean another writer inside our lock
            raise CurateError(f"{self.path}: unexpected row ids after writing {len(rows)} decisions")
        return list(range(start + 1, end + 1))

    def undo(self, row_ids: Iterable[int], *, reviewer: str | None = None) -> tuple[list[int], list[str]]:
        """Undo the given rows: for each, append a row that restores the item's status before that row.

        A row is only undone if every decision on its item since has itself been undone (so undoing twice
        walks back two steps); items decided again since (by anyone), or rows already undone, are left
        alone and returned as the second element. Returns ``(new row ids, skipped item ids)``.
        """
        wanted = list(row_ids)
        if not wanted:
            return [], []
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            new_rows, skipped = [], []
            at = _now()
            for chunk in _chunks(wanted, 500):
                marks = ",".join("?" * len(chunk))
                targets = conn.execute(f"SELECT id, item_id FROM decisions WHERE id IN ({marks})", chunk).fetchall()
                for row_id, item in targets:
                    later = conn.execute("SELECT id, undoes FROM decisions WHERE item_id = ? AND id > ? ORDER BY id",
                                         (item, row_id)).fetchall()
                    if not _net_zero(row_id, later):
                        skipped.append(item)  # already undone, or decided again since
                        continue
                    prev = conn.execute(
                        "SELECT decision, note, caption, label, kind, stage, grp FROM decisions "
                        "WHERE item_id = ? AND id < ? ORDER BY id DESC LIMIT 1", (item, row_id)).fetchone()
                    decision, note, caption, label, kind, stage, grp = prev if prev else ("pending",) + (None,) * 6
                    cur = conn.execute(_INSERT, (item, decision, reviewer, at, note, caption, row_id, label, kind,
                                                 stage, grp))
                    new_rows.append(cur.lastrowid)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return new_rows, skipped

    # -- reading -------------------------------------------------------------------------------
    def max_id(self) -> int:
        """The id of the newest row (0 when empty): a cheap change marker."""
        return self._conn().execute("SELECT COALESCE(MAX(id), 0) FROM decisions").fetchone()[0]

    def latest(self, *, since: int = 0) -> dict[str, Decision]:
        """The latest decision per item; with ``since``, only items with a row newer than that id."""
        where = "WHERE id > ?" if since else ""
        args = (since,) if since else ()
        # items with a new row: their latest row overall is the latest among the new rows
        rows = self._conn().execute(_LATEST.format(where=where), args).fetchall()
        return {r[1]: Decision(*r) for r in rows}

    def flagged_by_hand(self) -> dict[str, str]:
        """Items someone flagged by hand (a ``flag`` row), with the latest flag's reason."""
        rows = self._conn().execute("SELECT item_id, note FROM decisions WHERE kind = 'flag' ORDER BY id").fetchall()
        return {item: note or "" for item, note in rows}

    def history(self, item_id: str | None = None) -> list[Decision]:
        """Every row (of one item, or all), oldest first."""
        if item_id is None:
            rows = self._conn().execute(f"SELECT {_SELECT} FROM decisions ORDER BY id").fetchall()
        else:
            rows = self._conn().execute(f"SELECT {_SELECT} FROM decisions WHERE item_id = ? ORDER BY id",
                                        (item_id,)).fetchall()
        return [Decision(*r) for r in rows]

    def counts(self) -> dict[str, int]:
        """Items by current status (items never decided are not counted here)."""
        c = Counter(d.decision for d in self.latest().values())
        return {s: c.get(s, 0) for s in STATUSES}

    def write_csv(self, out: str | Path, *, history: bool = False) -> int:
        """Write the latest decision per item (or every row with ``history``) as CSV; returns rows written."""
        rows = self.history() if history else sorted(self.latest().values(), key=lambda d: d.id)
        with open(out, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(_COLUMNS)
            for d in rows:
                w.writerow([getattr(d, c) for c in _COLUMNS])
        return len(rows)


def _net_zero(row_id: int, later: list[tuple[int, int | None]]) -> bool:
    """Whether the rows after ``row_id`` (``(id, undoes)``, in order) leave it in effect: every decision
    since was undone, and ``row_id`` itself was not. Undoing an undo row re-applies a decision."""
    is_undo = {i: u is not None for i, u in later}
    active: set[int] = set()
    for i, u in later:
        if u == row_id:
            return False  # already undone
        if u is None or is_undo.get(u, False):
            active.add(i)
        else:
            active.discard(u)
    return not active


def _chunks(seq: list, n: int):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def open_decisions(run_root: str | Path, *, create: bool = False) -> DecisionStore | None:
    """The run's decision store, or ``None`` if nobody reviewed yet (and ``create`` is False).

    A run directory on object storage has no review database (SQLite needs a local filesystem):
    ``None``, or a clear error when one is asked for."""
    from curate.storage import RemotePath, local_only, location

    root = location(run_root)
    if isinstance(root, RemotePath):
        if create or (root / "review.db").exists():
            local_only(root, "reviewing (the SQLite decisions database)")
        return None
    path = Path(root) / "review.db"
    if not path.exists() and not create:
        return None
    return DecisionStore(path)
