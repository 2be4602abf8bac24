"""cleanlab calls: which rows are label issues, how good each label is, and a dataset summary."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

FilterMethod = Literal["prune_by_noise_rate", "prune_by_class", "both", "confident_learning",
                       "predicted_neq_given", "low_normalized_margin", "low_self_confidence"]
FILTER_METHODS: tuple[str, ...] = FilterMethod.__args__  # type: ignore[attr-defined]
RankMethod = Literal["self_confidence", "normalized_margin", "confidence_weighted_entropy"]
RANK_METHODS: tuple[str, ...] = RankMethod.__args__  # type: ignore[attr-defined]
# filter methods that use the (calibrated) confident joint we compute once
_USES_JOINT = {"prune_by_noise_rate", "prune_by_class", "both"}


@dataclass
class IssueResult:
    """Per-row results for N rows with K classes."""

    is_issue: np.ndarray  # (N,) bool
    quality: np.ndarray  # (N,) float32 label-quality score in [0, 1], low = likely wrong
    suggested: np.ndarray  # (N,) int64 argmax class
    suggested_prob: np.ndarray  # (N,) float32
    given_prob: np.ndarray  # (N,) float32 probability of the given label
    confident_joint: np.ndarray  # (K, K) calibrated counts: rows = given label, columns = likely true label
    seconds: float = 0.0

    def ranks(self) -> np.ndarray:
        """1-based rank of each flagged row by quality (1 = most likely wrong), 0 for unflagged rows."""
        out = np.zeros(len(self.is_issue), dtype=np.int32)
        idx = np.flatnonzero(self.is_issue)
        order = idx[np.argsort(self.quality[idx], kind="stable")]
        out[order] = np.arange(1, len(order) + 1, dtype=np.int32)
        return out


def check_pred_probs(pred_probs: np.ndarray, labels: np.ndarray, *, copy: bool = True) -> np.ndarray:
    """Validate ``pred_probs`` (N, K) against ``labels`` (N,); returns float32 rows that sum to 1.

    Rows off by a rounding error (like the published IMDB probabilities, which sum to 1.00002) are
    clipped and renormalised; anything else is an error that says what is wrong. With ``copy=False`` a
    float32 input is fixed in place (saves N x K floats).
    """
    p = np.asarray(pred_probs)
    if p.ndim != 2:
        raise CurateError(f"pred_probs must be a matrix (N, K), got shape {p.shape}")
    if p.shape[0] != labels.shape[0]:
        raise CurateError(f"pred_probs has {p.shape[0]} rows but there are {labels.shape[0]} labels")
    if labels.size and labels.max() >= p.shape[1]:
        raise CurateError(f"pred_probs must have at least {labels.max() + 1} columns, based on the largest class "
                          f"index which appears in labels; it has {p.shape[1]}")
    if not np.isfinite(p).all():
        raise CurateError("pred_probs holds NaN or infinite values")
    if (p < -1e-6).any():
        raise CurateError("pred_probs holds negative values; pass probabilities, not logits")
    sums = p.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1.0))) if len(sums) else 0
    if len(sums) and abs(sums[worst] - 1.0) > 1e-2:
        raise CurateError(f"pred_probs rows must sum to 1 (row {worst} sums to {sums[worst]:.4f}); "
                          f"pass softmax probabilities, not scores")
    p = p.astype(np.float32, copy=copy)
    np.clip(p, 0.0, 1.0, out=p)
    p /= p.sum(axis=1, keepdims=True)
    return p


def find_issues(labels: np.ndarray, pred_probs: np.ndarray, *, method: FilterMethod = "prune_by_noise_rate",
                rank_by: RankMethod = "self_confidence", min_examples_per_class: int = 1,
                n_jobs: int | None = None, copy: bool = True) -> IssueResult:
    """Flag likely label errors with cleanlab and score every label.

    Parameters
    ----------
    labels : np.ndarray of int, shape (N,)
        Given class indices in ``0..K-1``.
    pred_probs : np.ndarray, shape (N, K)
        Out-of-sample predicted probabilities (rows sum to 1).
    method : {'prune_by_noise_rate', 'prune_by_class', 'both', 'confident_learning', 'predicted_neq_given', \
'low_normalized_margin', 'low_self_confidence'}, keyword-only
        ``filter_by`` of :func:`cleanlab.filter.find_label_issues`.
    rank_by : {'self_confidence', 'normalized_margin', 'confidence_weighted_entropy'}, keyword-only
        ``method`` of :func:`cleanlab.rank.get_label_quality_scores`.
    min_examples_per_class : int, keyword-only
        cleanlab leaves at least this many examples of each class unflagged.
    n_jobs : int, optional, keyword-only
        Processes cleanlab may use (default: all cores).
    copy : bool, keyword-only
        False lets a float32 ``pred_probs`` be renormalised in place instead of copied.
    """
    require("cleanlab", "labels", "label-noise detection")
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    if method not in FILTER_METHODS:
        raise CurateError(f"method: unknown method {method!r}; allowed: {', '.join(FILTER_METHODS)}")
    if rank_by not in RANK_METHODS:
        raise CurateError(f"rank_by: unknown method {rank_by!r}; allowed: {', '.join(RANK_METHODS)}")
    labels = np.asarray(labels, dtype=np.int64)
    p = check_pred_probs(pred_probs, labels, copy=copy)
    t0 = time.perf_counter()
    cj = compute_confident_joint(labels, p, calibrate=True)
    is_issue = find_label_issues(labels, p, filter_by=method, min_examples_per_class=min_examples_per_class,
                                 confident_joint=cj if method in _USES_JOINT else None, n_jobs=n_jobs)
    quality = get_label_quality_scores(labels, p, method=rank_by).astype(np.float32)
    suggested = p.argmax(axis=1)
    rows = np.arange(len(labels))
    return IssueResult(is_issue=np.asarray(is_issue, dtype=bool), quality=quality, suggested=suggested,
                       suggested_prob=p[rows, suggested], given_prob=p[rows, labels], confident_joint=cj,
                       seconds=time.perf_counter() - t0)


def trust(accuracy: float, labels: np.ndarray, floor: float) -> dict[str, Any]:
    """Chance-adjusted held-out accuracy: ``(acc - majority) / (1 - majority)``, with a warning below ``floor``.

    ``majority`` is the accuracy of always predicting the most common class (the chance level). A
    classifier no better than that cannot tell a wrong label from a hard example.
    """
    counts = np.bincount(labels)
    majority = float(counts.max() / counts.sum()) if counts.sum() else 0.0
    adjusted = (accuracy - majority) / (1.0 - majority) if majority < 1.0 else 0.0
    out: dict[str, Any] = {"heldout_accuracy": round(accuracy, 4), "majority_baseline": round(majority, 4),
                           "adjusted_accuracy": round(adjusted, 4)}
    if adjusted < floor:
        out["warning"] = (f"held-out accuracy {accuracy:.3f} is only {adjusted:.2f} of the way from chance "
                          f"({majority:.3f}) to perfect (floor {floor}): the features may be too weak to trust "
                          f"the label_issue flags")
    return out


def summarize(labels: np.ndarray, result: IssueResult, class_names: list[str], *, top_pairs: int = 10) -> dict[str, Any]:
    """Dataset-level figures for the manifest.

    ``noise_rate``: per given class, the estimated fraction of its examples whose true label is another
    class (from the calibrated confident joint). ``confused_pairs``: the largest off-diagonal entries of
    the confident joint, as (given, likely true, estimated count).
    """
    cj = np.asarray(result.confident_joint, dtype=np.float64)
    k = cj.shape[0]
    row = cj.sum(axis=1)
    counts = np.bincount(labels, minlength=k)
    noise = {class_names[i]: round(float(1.0 - cj[i, i] / row[i]), 4) for i in range(k) if counts[i] and row[i] > 0}
    off = cj.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None)[::-1][:top_pairs]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), k)
        if off[i, j] < 0.5:
            break
        pairs.append({"given": class_names[i], "likely": class_names[j], "count": int(round(off[i, j])),
                      "fraction_of_given": round(float(off[i, j] / max(row[i], 1e-12)), 4)})
    issues_per_class = np.bincount(labels[result.is_issue], minlength=k)
    n = len(labels)
    return {
        "label_issues": int(result.is_issue.sum()),
        "label_issue_rate": round(float(result.is_issue.mean()) if n else 0.0, 4),
        "estimated_noise_rate": round(float(1.0 - np.trace(cj) / cj.sum()) if cj.sum() else 0.0, 4),
        "noise_rate_per_class": noise,
        "issues_per_class": {class_names[i]: int(issues_per_class[i]) for i in range(k) if counts[i]},
        "confused_pairs": pairs,
    }
