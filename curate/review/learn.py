"""Learning thresholds from reviewers' decisions.

For a flag with a declared score (:class:`curate.manifest.ScoreSpec`), a **random-sample queue** draws
items uniformly from two strata: the items the flag marked, and the unflagged items *just past* its
threshold (the ones nearest to it on the unflagged side; as many as there are flagged items, at least
``size``). A reviewer judges each: *reject* means the item is bad (the flag is right, or it missed one),
*accept* means the item is fine.

**Precision by score bin.** The score range of both strata is cut into bins (quantiles, the current
threshold always an edge). In bin ``b`` with ``N_b`` items, ``k_b`` rejected and ``a_b`` accepted among
its decided items, the share of bad items has the posterior ``Beta(k_b + 1/2, a_b + 1/2)`` (Jeffreys
prior). The precision of a threshold ``t`` (the share of bad items among the items it would flag) is
``sum(N_b p_b) / sum(N_b)`` over the bins it flags; drawing ``p_b`` from the posteriors gives its median
and a 90 % interval. With ``evidence="sample"`` only decisions on sampled items count, and as the sample
is uniform within each stratum (and each bin lies in one stratum) the estimate is unbiased; with
``"all"`` every decision in the two strata counts (more data, but the order a reviewer worked in may
bias it).

**Suggestion.** The threshold that flags the most items whose estimated precision meets the target,
among thresholds whose bins all have at least one decision (no extrapolation past the evidence).
The evidence and the suggestion are written to ``RUN/review/thresholds.json`` (one entry per
``<stage dir>:<flag>``), for the report.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from curate.errors import CurateError
from curate.review.reviewers import review_dir
from curate.rundir import RunDir, write_json

DEFAULT_SAMPLE = 50
DEFAULT_TARGET = 0.9


@dataclass
class Sample:
    """A random-sample queue for one flag."""

    stage: str
    flag: str
    positions: np.ndarray        # the sampled items, shuffled
    stratum: np.ndarray          # per sampled item: "flagged" or "near"
    flagged: np.ndarray          # every item the flag marked (positions)
    near: np.ndarray             # the unflagged items just past the threshold (positions)


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(parts).encode(), digest_size=8).digest(), "big")


def _spec(queue, stage: str, flag: str):
    sv = queue.by_dir.get(stage)
    if sv is None:
        raise CurateError(f"no finished stage {stage!r} in this run; stages: {', '.join(queue.stage_dirs)}")
    spec = sv.score_for(flag)
    if spec is None:
        raise CurateError(f"{stage}: flag {flag!r} has no declared score; flags with one: "
                          f"{', '.join(s.flag for s in sv.scores) or 'none'}")
    return sv, spec


def learnable_reasons(queue) -> list[str]:
    """``<stage dir>:<flag>`` of every flag with a declared score that flagged at least one item."""
    have = queue.reasons("all")
    return [f"{sv.dir}:{s.flag}" for sv in queue.stages for s in sv.scores if f"{sv.dir}:{s.flag}" in have]


def sample_queue(queue, stage: str, flag: str, *, size: int = DEFAULT_SAMPLE, seed: str = "") -> Sample:
    """Draw the random-sample queue of a flag (the same draw every time for the same run and ``seed``)."""
    sv, spec = _spec(queue, stage, flag)
    v = queue.index[f"{stage}.{spec.column}"].to_numpy(np.float64)
    flags = queue.flags_of(stage)
    is_flag = flags == flag
    flagged = np.flatnonzero(is_flag)
    thr = sv.threshold(spec)
    below = spec.flags_when == "below"
    if thr is None and len(flagged):
        fv = v[flagged][np.isfinite(v[flagged])]
        thr = float(fv.max() if below else fv.min()) if len(fv) else None
    others = np.flatnonzero(~is_flag & np.isfinite(v) & pd.isna(flags))
    if thr is not None:
        others = others[(v[others] >= thr) if below else (v[others] <= thr)]
    order = np.argsort(v[others] if below else -v[others], kind="stable")
    near = others[order[:max(len(flagged), size)]]
    rng = np.random.default_rng(_seed(str(queue.run.root.name), stage, flag, seed))
    a = rng.choice(flagged, min(size, len(flagged)), replace=False) if len(flagged) else np.array([], np.int64)
    b = rng.choice(near, min(size, len(near)), replace=False) if len(near) else np.array([], np.int64)
    pos = np.concatenate([a, b]).astype(np.int64)
    stratum = np.array(["flagged"] * len(a) + ["near"] * len(b), dtype=object)
    perm = rng.permutation(len(pos))
    return Sample(stage, flag, pos[perm], stratum[perm], flagged, np.sort(near))


def precision_evidence(queue, stage: str, flag: str, *, evidence: str = "sample", size: int = DEFAULT_SAMPLE,
                       bins: int = 8, target: float = DEFAULT_TARGET, draws: int = 4000) -> dict:
    """Estimated precision of the flag by score bin and against the threshold, and the suggested threshold
    (see the module docstring). Returns a JSON-ready dict."""
    if evidence not in ("sample", "all"):
        raise CurateError(f"evidence: expected sample or all, got {evidence!r}")
    sv, spec = _spec(queue, stage, flag)
    queue.refresh()
    s = sample_queue(queue, stage, flag, size=size)
    v = queue.index[f"{stage}.{spec.column}"].to_numpy(np.float64)
    region = np.concatenate([s.flagged, s.near])
    region = region[np.isfinite(v[region])]
    below = spec.flags_when == "below"
    current = sv.threshold(spec)
    out = {"stage": stage, "flag": flag, "score": spec.column, "score_label": spec.label or spec.column,
           "param": spec.param, "flags_when": spec.flags_when, "threshold": current, "evidence": evidence,
           "target": target, "flagged_items": int(len(s.flagged)), "near_items": int(len(s.near)),
           "sample": {"size": size, "flagged": int((s.stratum == "flagged").sum()), "near": int((s.stratum == "near").sum())},
           "bins": [], "curve": [], "suggested": None}
    if len(region) == 0:
        return out
    # who counts: decided items (item decisions or manual flags), in the sample or anywhere in the strata
    pool = s.positions if evidence == "sample" else region
    kinds_ok = np.array([(queue.latest.get(queue.ids[p]) is None) or (queue.latest[queue.ids[p]].kind in (None, "flag"))
                         for p in pool], bool)
    pool = pool[kinds_ok & np.isfinite(v[pool])]
    bad = pool[queue.status[pool] == 2]
    fine = pool[queue.status[pool] == 1]
    out["decisions"] = {"rejected": int(len(bad)), "accepted": int(len(fine))}
    rv = v[region]
    edges = np.unique(np.quantile(rv, np.linspace(0, 1, bins + 1)))
    if current is not None and rv.min() < current < rv.max():
        edges = np.unique(np.append(edges, current))
    if len(edges) < 2:
        edges = np.array([rv.min(), rv.min() + 1.0])
    nb = len(edges) - 1

    def which(x):
        return np.clip(np.searchsorted(edges, x, side="right") - 1, 0, nb - 1)

    n_b = np.bincount(which(rv), minlength=nb)
    k_b = np.bincount(which(v[bad]), minlength=nb) if len(bad) else np.zeros(nb, int)
    a_b = np.bincount(which(v[fine]), minlength=nb) if len(fine) else np.zeros(nb, int)
    rng = np.random.default_rng(_seed(stage, flag, "draws"))
    p = rng.beta(k_b + 0.5, a_b + 0.5, size=(draws, nb))
    for b in range(nb):
        lo, hi = np.quantile(p[:, b], [0.05, 0.95])
        out["bins"].append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "items": int(n_b[b]),
                            "rejected": int(k_b[b]), "accepted": int(a_b[b]),
                            "bad_share": float(np.median(p[:, b])), "low": float(lo), "high": float(hi)})
    # candidate thresholds: the bin edges; a threshold flags the bins on its flagged side
    best = None
    for j, t in enumerate(edges):
        inc = np.arange(nb) < j if below else np.arange(nb) >= j
        if not inc.any() or n_b[inc].sum() == 0:
            continue
        prec = (p[:, inc] * n_b[inc]).sum(axis=1) / n_b[inc].sum()
        covered = bool(((k_b + a_b)[inc] > 0).all())
        point = {"threshold": float(t), "flagged_items": int(n_b[inc].sum()), "precision": float(np.median(prec)),
                 "low": float(np.quantile(prec, 0.05)), "high": float(np.quantile(prec, 0.95)), "covered": covered}
        out["curve"].append(point)
        if covered and point["precision"] >= target and (best is None or point["flagged_items"] > best["flagged_items"]):
            best = point
    out["suggested"] = best
    return out


def thresholds_path(run: RunDir) -> Path:
    return review_dir(run) / "thresholds.json"


def write_evidence(run: RunDir, entry: dict, *, saved_pipeline: str | None = None) -> Path:
    """Merge one flag's :func:`precision_evidence` into ``RUN/review/thresholds.json``."""
    path = thresholds_path(run)
    doc = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    reasons = doc.get("reasons") or {}
    key = f"{entry['stage']}:{entry['flag']}"
    entry = dict(entry, updated=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if saved_pipeline is not None:
        entry["saved_pipeline"] = saved_pipeline
    elif reasons.get(key, {}).get("saved_pipeline"):
        entry["saved_pipeline"] = reasons[key]["saved_pipeline"]
    reasons[key] = entry
    doc = {"method": "precision of each flag by score bin from reviewers' accept/reject; Beta(k+1/2, a+1/2) per bin, "
                     "90% interval by sampling; see docs/review.md", "reasons": reasons}
    write_json(doc, path)
    return path
