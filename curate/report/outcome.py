"""Every item's fate, from the one fate function (:func:`curate.fate.iter_fates`), reduced to what the
report counts: kept, awaiting review, dropped, and the reason behind each."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from curate.rundir import RunDir

#: The three outcomes the report shows. ``review``: up for review and nobody decided yet (what export does
#: with those is the pending rule).
FATES = ("kept", "review", "dropped")


@dataclass
class Outcomes:
    """Per item (data order): the stages' verdict, the final fate and why."""

    stage_action: np.ndarray            # keep | review | drop (before any decision)
    fate: np.ndarray                    # kept | review | dropped
    why: list[str]                      # a short phrase: the reason that decided the fate
    reasons: list[list[str]]            # "<stage dir>:<flag>" of every flag on the item
    status: list[str | None]            # the latest decision's status, None when nobody decided
    pending_rule: str = "drop"
    counts: dict[str, int] = field(default_factory=dict)

    def by_fate_and_why(self) -> list[dict]:
        c = Counter(zip(self.fate.tolist(), self.why))
        return [{"fate": f, "why": w, "items": n} for (f, w), n in sorted(c.items(), key=lambda kv: -kv[1])]

    def stage_reason_table(self) -> list[dict]:
        """Items by ``stage:reason`` and their final fate: how each flag played out."""
        c: Counter = Counter()
        for rs, f in zip(self.reasons, self.fate.tolist()):
            for r in rs:
                c[(r, f)] += 1
        rows: dict[str, dict] = {}
        for (r, f), n in c.items():
            rows.setdefault(r, {"reason": r, "kept": 0, "review": 0, "dropped": 0})[f] = n
        return sorted(rows.values(), key=lambda d: d["reason"])


def _why(kept: bool, why: str | None, causes: list[str], reasons: list[str]) -> tuple[str, str]:
    """(fate, phrase) from one row of :class:`curate.fate.ShardFates`."""
    if why == "pending":
        return "review", f"awaiting review: {causes[0] if causes else 'proposed edit'}"
    if kept:
        if why == "reviewer":
            return "kept", "accepted by a reviewer"
        return "kept", "flags only annotate" if reasons else "nothing found"
    if why == "reviewer":
        return "dropped", "rejected by a reviewer"
    if why == "reviewer:duplicate":
        return "dropped", "replaced as duplicate keeper by a reviewer"
    return "dropped", why or "dropped"


def collect_outcomes(run: RunDir, *, pending: str = "drop") -> Outcomes:
    """The fate of every item, shard by shard."""
    from curate.fate import iter_fates

    stage_action, fate, why, reasons, status = [], [], [], [], []
    for sf in iter_fates(run, pending=pending):
        stage_action += sf.stage_action
        reasons += sf.reasons
        status += sf.status
        for i in range(len(sf)):
            f, w = _why(bool(sf.kept[i]), sf.why[i], sf.causes[i], sf.reasons[i])
            fate.append(f)
            why.append(w)
    fate_arr = np.asarray(fate, dtype=object)
    return Outcomes(np.asarray(stage_action, dtype=object), fate_arr, why, reasons, status, pending,
                    {f: int((fate_arr == f).sum()) for f in FATES})
