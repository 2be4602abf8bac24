"""Several reviewers on one run: the queue split between them by a stable hash, and their agreement.

The split (``RUN/review/reviewers.json``: ``{"reviewers": [...], "overlap": 0.1}``) gives each item one
reviewer from a hash of its id, and a share ``overlap`` of the items (also by hash) a second one, the
next name in the list: the same item always goes to the same people, on any machine, however the
list of items is ordered. On the overlap, Cohen's kappa between each pair of reviewers (on accept /
reject, each reviewer's own latest decision per item) says how far they agree beyond chance; it is
written to ``RUN/review/agreement.json`` for the report.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path

import numpy as np

from curate.decisions import DecisionStore
from curate.errors import CurateError
from curate.rundir import RunDir, write_json


def review_dir(run: RunDir) -> Path:
    return run.root / "review"


def load_roster(run: RunDir) -> dict:
    """``{"reviewers": [names], "overlap": share}`` (no reviewers when nobody split the queue)."""
    path = review_dir(run) / "reviewers.json"
    if not path.is_file():
        return {"reviewers": [], "overlap": 0.0}
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {"reviewers": list(doc.get("reviewers") or []), "overlap": float(doc.get("overlap") or 0.0)}


def save_roster(run: RunDir, reviewers: list[str], overlap: float) -> Path:
    names = [r.strip() for r in reviewers if r and r.strip()]
    if len(set(names)) != len(names):
        raise CurateError("reviewers: each name once, please")
    if not 0.0 <= overlap <= 1.0:
        raise CurateError(f"overlap: a share between 0 and 1, got {overlap}")
    path = review_dir(run) / "reviewers.json"
    write_json({"reviewers": names, "overlap": overlap}, path)
    return path


def _unit(ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per id, from a hash of the id (stable everywhere)."""
    out = np.empty(len(ids), np.float64)
    for i, item in enumerate(ids):
        h = hashlib.blake2b(f"{salt}:{item}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "big") / 2.0 ** 64
    return out


def assignment(ids: np.ndarray, reviewers: list[str], overlap: float = 0.0) -> dict[str, np.ndarray]:
    """Per reviewer, a boolean mask over ``ids``: the items in their share of the queue."""
    k = len(reviewers)
    if k == 0:
        return {}
    first = np.minimum((_unit(ids, "reviewer") * k).astype(np.int64), k - 1)
    second_too = _unit(ids, "overlap") < overlap if k > 1 else np.zeros(len(ids), bool)
    second = (first + 1) % k
    return {name: (first == j) | (second_too & (second == j)) for j, name in enumerate(reviewers)}


def cohen_kappa(a: list[str], b: list[str]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (None with no items; 1.0 when both always
    give one and the same label)."""
    if not a:
        return None
    cats = sorted(set(a) | set(b))
    n = len(a)
    po = sum(x == y for x, y in zip(a, b)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    if pe == 1.0:
        return 1.0
    return (po - pe) / (1 - pe)


def per_reviewer_latest(store: DecisionStore) -> dict[str, dict[str, str]]:
    """reviewer -> item -> their own latest accept/reject (undone decisions count as none)."""
    out: dict[str, dict[str, str]] = {}
    for d in store.history():
        name = d.reviewer or "(unnamed)"
        mine = out.setdefault(name, {})
        if d.decision == "pending":
            mine.pop(d.item_id, None)
        else:
            mine[d.item_id] = d.decision
    return out


def agreement(store: DecisionStore) -> dict:
    """Cohen's kappa for every pair of reviewers who decided the same items."""
    latest = per_reviewer_latest(store)
    pairs = []
    for x, y in combinations(sorted(latest), 2):
        both = sorted(set(latest[x]) & set(latest[y]))
        if not both:
            continue
        a, b = [latest[x][i] for i in both], [latest[y][i] for i in both]
        pairs.append({"reviewers": [x, y], "items": len(both), "agree": sum(p == q for p, q in zip(a, b)),
                      "kappa": cohen_kappa(a, b)})
    return {"pairs": pairs, "decided": {r: len(v) for r, v in latest.items()}}


def write_agreement(run: RunDir, store: DecisionStore) -> tuple[dict, Path]:
    """Compute :func:`agreement` and write it, with the split, to ``RUN/review/agreement.json``."""
    doc = {"updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), **load_roster(run),
           **agreement(store),
           "method": "Cohen's kappa on accept/reject, each reviewer's own latest decision, items both decided"}
    path = review_dir(run) / "agreement.json"
    write_json(doc, path)
    return doc, path
