"""An item's fate: the one rule that turns stage flags and reviewer decisions into kept or dropped.

``export``, ``status``, ``decisions``, the review app, the report and ``eval`` all call it, so they can
never disagree. Three steps, per item:

1. **Stage outcome.** Flags are either *about the item* (duplicates, quality, label issues) or *about a
   proposed edit* (a repaired caption: the stage's declared ``edit_flags``). The stage outcome is the
   strongest action among the item's flags about the item: ``drop`` > ``review`` > ``keep``. A flag whose
   action is ``keep`` only annotates.
2. **Reviewer decision** (the latest row of ``review.db`` for the item; what each kind means is tabled in
   :mod:`curate.decisions`): ``accepted`` keeps the item (also over a stage ``drop``) and applies its
   proposed edits; ``rejected`` drops it; a ``keeper`` / ``not_duplicate`` decision voids one stage's flags;
   a manual ``flag`` puts the item up for review.
3. **Pending rule.** An item still up for review with no decision follows ``pending`` (``keep`` or
   ``drop``; export's default is ``drop``).

Proposed edits never decide whether an item stays: an item whose only flags are edits is kept; its edit
applies when a reviewer accepts it (the decision's ``caption`` / ``label`` overrides the proposed value)
or when the edit flag's action is ``keep`` (apply without review); pending or rejected, the item keeps
its original value. An accepted decision with a ``label`` relabels the item (e.g. a label-noise
suggestion). Works shard by shard: memory stays bounded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np

from curate.decisions import Decision, open_decisions
from curate.manifest import StageEntry
from curate.rundir import RunDir
from curate.shards import read_annotation_shard, read_data_shard

Pending = Literal["keep", "drop"]
PENDING_RULES = ("keep", "drop")

_RANK = {None: 0, "keep": 0, "review": 1, "drop": 2}
_ACTION = {0: "keep", 1: "review", 2: "drop"}


@dataclass
class ShardFates:
    """The fate of every row of one data shard (row-aligned lists)."""

    shard: int
    ids: list[str]
    #: The stages' verdict before any decision: keep | review | drop (review also when an edit awaits review).
    stage_action: list[str]
    #: ``<stage dir>:<flag>`` for every flag on the row (about the item or about an edit).
    reasons: list[list[str]]
    details: list[list[str]]
    #: The latest decision's status (accepted | rejected | pending) or None when nobody decided.
    status: list[str | None]
    kept: np.ndarray
    #: Why the row ends as it does: e.g. ``01-exact_dedup:exact_duplicate``, ``reviewer``, ``pending``; None
    #: for a row kept without any finding.
    why: list[str | None]
    #: Record column -> new value per row (None: keep the original), for kept rows.
    replacements: dict[str, list] = field(default_factory=dict)
    #: The reasons that count for keeping or dropping the row (flags about the item, not voided by a reviewer).
    causes: list[list[str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class _StageFlags:
    entry: StageEntry
    flags: list
    actions: list
    details: list
    edits: dict[str, list]  # edit flag -> proposed values (from the declared column)


def _read_stage_flags(run: RunDir, entry: StageEntry, shard: int) -> _StageFlags:
    cols = ["flag", "action", "detail", *entry.outputs.edit_flags.values()]
    t = read_annotation_shard(run, entry, shard, cols)
    edits = {flag: (t.column(col).to_pylist() if col in t.column_names else [None] * t.num_rows)
             for flag, col in entry.outputs.edit_flags.items()}
    return _StageFlags(entry, t.column("flag").to_pylist(), t.column("action").to_pylist(),
                       t.column("detail").to_pylist(), edits)


def _edit_target(entry: StageEntry, flag: str) -> str:
    """The record column an edit flag proposes a new value for (from the column's role)."""
    col = entry.outputs.edit_flags[flag]
    role = next((c.role for c in entry.outputs.columns if c.name == col), None)
    return {"suggested_label": "label"}.get(role, "text")


def shard_fates(run: RunDir, shard: int, stages: list[StageEntry], decisions: dict[str, Decision] | None = None,
                *, pending: Pending = "drop") -> ShardFates:
    """The fate of every row of data shard ``shard`` under ``stages`` (finished, in order) and ``decisions``."""
    ids = read_data_shard(run, shard, ["id"]).column("id").to_pylist()
    per_stage = [_read_stage_flags(run, e, shard) for e in stages]
    decisions = decisions or {}
    n = len(ids)
    out = ShardFates(shard, ids, [], [[] for _ in ids], [[] for _ in ids], [None] * n, np.zeros(n, dtype=bool),
                     [None] * n, {"text": [None] * n, "label": [None] * n}, [[] for _ in ids])
    for i, item_id in enumerate(ids):
        d = decisions.get(item_id)
        if d is not None and d.decision == "pending" and d.kind is None:
            d = None  # undone: as if never decided
        void_stage = d.stage if d is not None and d.kind in ("keeper", "not_duplicate") and d.decision == "accepted" else None
        rank, first_reason = 0, {0: None, 1: None, 2: None}
        auto_edits, review_edits = [], []
        for s in per_stage:
            f = s.flags[i]
            if f is None:
                continue
            reason = f"{s.entry.dir}:{f}"
            out.reasons[i].append(reason)
            out.details[i].append(s.details[i] or "")
            if s.entry.dir == void_stage:
                continue
            if f in s.edits:
                edit = (_edit_target(s.entry, f), s.edits[f][i])
                (auto_edits if s.actions[i] == "keep" else review_edits).append(edit)
                continue
            r = _RANK.get(s.actions[i], 0)
            if r:
                out.causes[i].append(reason)
            if r and first_reason[r] is None:
                first_reason[r] = reason
            rank = max(rank, r)
        if d is not None and d.kind == "flag" and d.decision == "pending":
            out.reasons[i].append("reviewer:flag")
            out.details[i].append(d.note or "flagged by a reviewer")
            out.causes[i].append("reviewer:flag")
            if rank < 1:
                rank, first_reason[1] = 1, "reviewer:flag"
        out.stage_action.append(_ACTION[max(rank, 1 if review_edits else 0)])
        out.status[i] = d.decision if d is not None else None
        edits = list(auto_edits)
        if d is not None and d.kind is None and d.decision == "accepted":
            kept, why = True, "reviewer" if (rank or review_edits) else None
            edits += review_edits
            if d.caption is not None:
                edits.append(("text", d.caption))
            if d.label is not None:
                edits.append(("label", d.label))
        elif d is not None and d.kind == "keeper" and d.decision == "rejected":
            kept, why = False, "reviewer:duplicate"
        elif d is not None and d.decision == "rejected" and (rank or not review_edits or d.kind == "flag"):
            kept, why = False, "reviewer"
        elif rank == 2:
            kept, why = False, first_reason[2]
        elif rank == 1:
            kept, why = pending == "keep", "pending"
        else:
            kept, why = True, None
        out.kept[i] = kept
        out.why[i] = why
        if kept:
            for col, value in edits:
                if value is not None:
                    out.replacements[col][i] = value
    return out


def load_decisions(run: RunDir) -> dict[str, Decision]:
    """The latest decision per item of the run (empty when nobody reviewed)."""
    store = open_decisions(run.root)
    if store is None:
        return {}
    try:
        return store.latest()
    finally:
        store.close()


def iter_fates(run: RunDir, *, pending: Pending = "drop", decisions: dict[str, Decision] | None = None,
               stages: list[StageEntry] | None = None) -> Iterator[ShardFates]:
    """The fates of every shard of a run, in shard order (decisions from ``review.db`` unless given;
    ``decisions={}`` ignores reviewers, e.g. for the stages' own verdict)."""
    manifest = run.require()
    stages = manifest.finished_stages() if stages is None else stages
    decisions = load_decisions(run) if decisions is None else decisions
    for shard in range(len(run.data_shards())):
        yield shard_fates(run, shard, stages, decisions, pending=pending)


def summarize_fates(run: RunDir, *, pending: Pending = "drop", decisions: dict[str, Decision] | None = None) -> dict:
    """Counts over the run: the stages' verdict (keep / review / drop with reasons), the reviewers'
    decisions, and the final fate under ``pending`` (kept, dropped by why, edits applied)."""
    verdict: Counter = Counter()
    drop_reasons: Counter = Counter()
    review_reasons: Counter = Counter()
    status: Counter = Counter()
    dropped_by: Counter = Counter()
    edits: Counter = Counter()
    kept = 0
    for f in iter_fates(run, pending=pending, decisions=decisions):
        verdict.update(f.stage_action)
        status.update(s or "undecided" for s, a in zip(f.status, f.stage_action) if a != "keep" or s)
        kept += int(f.kept.sum())
        for i, (a, rs) in enumerate(zip(f.stage_action, f.reasons)):
            if a == "drop":
                drop_reasons.update(rs)
            elif a == "review":
                review_reasons.update(rs)
            if not f.kept[i]:
                dropped_by[f.why[i] or "unknown"] += 1
        for col, values in f.replacements.items():
            edits[col] += sum(v is not None for v in values)
    items = sum(verdict.values())
    return {"items": items, "keep": verdict.get("keep", 0), "review": verdict.get("review", 0),
            "drop": verdict.get("drop", 0), "drop_reasons": dict(drop_reasons.most_common()),
            "review_reasons": dict(review_reasons.most_common()), "decisions": dict(status),
            "pending_rule": pending, "kept": kept, "dropped": items - kept,
            "dropped_by": dict(dropped_by.most_common()), "edits_applied": {k: v for k, v in edits.items() if v}}
