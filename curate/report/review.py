"""The review section's figures: decisions by stage and reason, how often reviewers confirmed a flag,
who reviewed, how far reviewers agree where they judged the same items, and what is still pending."""

from __future__ import annotations

from collections import Counter, defaultdict
from itertools import combinations

from curate.decisions import open_decisions
from curate.report.gather import RunData
from curate.report.outcome import Outcomes

UNNAMED = "(no name)"


def _kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two reviewers' accepted/rejected decisions on the same items."""
    n = len(pairs)
    if n == 0:
        return None
    po = sum(a == b for a, b in pairs) / n
    ca, cb = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    pe = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return None if pe >= 1 else (po - pe) / (1 - pe)


def review_summary(data: RunData, outcomes: Outcomes) -> dict:
    """Counts for the review section (``{"exists": False}`` when nobody reviewed)."""
    pending = Counter(r for rs, f in zip(outcomes.reasons, outcomes.fate.tolist()) if f == "review" for r in rs)
    pending_items = int((outcomes.fate == "review").sum())
    store = open_decisions(data.run.root)
    base = {"pending_items": pending_items, "pending_by_reason": dict(pending.most_common())}
    if store is None:
        return {"exists": False, **base}
    try:
        history = store.history()
        latest = store.latest()
    finally:
        store.close()
    row_of = {item: i for i, item in enumerate(data.ids)}
    edit = {f"{s.entry.dir}:{f}" for s in data.stages for f in s.outputs.edit_flags}
    by_reason: dict[str, Counter] = defaultdict(Counter)
    unflagged: Counter = Counter()
    group_kinds: Counter = Counter()
    for item, d in latest.items():
        if d.kind is not None:
            group_kinds[f"{d.kind} {d.decision}"] += 1
        if d.decision == "pending" or d.kind not in (None, "flag"):
            continue
        row = row_of.get(item)
        if row is None:
            continue
        rs = outcomes.reasons[row]
        if not rs:
            unflagged[d.decision] += 1
        for r in rs:
            by_reason[r][d.decision] += 1
    rows = []
    for reason, c in sorted(by_reason.items()):
        acc, rej = c["accepted"], c["rejected"]
        is_edit = reason in edit
        confirmed = acc if is_edit else rej
        rows.append({"reason": reason, "accepted": acc, "rejected": rej, "pending": pending.get(reason, 0),
                     "kind": "proposed edit" if is_edit else "flag",
                     "confirmed": (confirmed / (acc + rej)) if acc + rej else None})
    # each reviewer's current decision per item (their latest row; an undo row counts as theirs)
    per_reviewer: dict[str, dict[str, str]] = defaultdict(dict)
    for d in history:
        if d.kind is None:
            per_reviewer[d.reviewer or UNNAMED][d.item_id] = d.decision
    rows_by = Counter(d.reviewer or UNNAMED for d in history)
    reviewers = []
    for name in sorted(rows_by):
        c = Counter(v for v in per_reviewer.get(name, {}).values() if v != "pending")
        reviewers.append({"reviewer": name, "accepted": c["accepted"], "rejected": c["rejected"], "rows": rows_by[name]})
    pairs = []
    for a, b in combinations(sorted(per_reviewer), 2):
        da, db = per_reviewer[a], per_reviewer[b]
        both = [(da[i], db[i]) for i in da.keys() & db.keys() if da[i] != "pending" and db[i] != "pending"]
        if both:
            agree = sum(x == y for x, y in both)
            pairs.append({"a": a, "b": b, "overlap": len(both), "agree": agree, "agreement": agree / len(both),
                          "kappa": _kappa(both)})
    decided = Counter(d.decision for d in latest.values() if d.kind in (None, "flag"))
    return {"exists": True, **base, "decided_items": decided["accepted"] + decided["rejected"],
            "accepted": decided["accepted"], "rejected": decided["rejected"], "rows": len(history),
            "by_reason": rows, "unflagged": dict(unflagged), "other_kinds": dict(group_kinds), "reviewers": reviewers, "pairs": pairs}
