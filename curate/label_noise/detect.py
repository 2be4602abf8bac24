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
# filter methods computed here from cleanlab's parts, with the exact thresholds (:func:`off_diagonal`)
_OFF_DIAGONAL = {"confident_learning", "low_normalized_margin", "low_self_confidence"}


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

    def ranks(self, flags: np.ndarray | None = None) -> np.ndarray:
        """1-based rank of each flagged row by quality (1 = most likely wrong), 0 for unflagged rows.
        ``flags`` (default: ``is_issue``) says which rows are flagged, e.g. the guard's."""
        out = np.zeros(len(self.is_issue), dtype=np.int32)
        idx = np.flatnonzero(self.is_issue if flags is None else flags)
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


def exact_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """Exact, order-independent sums of non-negative float32 ``values`` per group, as integer parts:
    ``(n_groups, 256)`` int64 sums of the 24-bit significands per exponent. Sums of several shards' parts
    add up exactly (integers), so any split of the rows gives the same total (:func:`exact_means`)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    exponent = (bits >> np.uint32(23)) & np.uint32(0xFF)
    significand = (bits & np.uint32(0x7FFFFF)) | ((exponent > 0).astype(np.uint32) << np.uint32(23))
    flat = np.asarray(groups, dtype=np.int64) * 256 + exponent.astype(np.int64)
    # float64 weights are exact here: each is < 2**24, and a shard's partial sums stay below 2**53
    sums = np.bincount(flat, weights=significand.astype(np.float64), minlength=n_groups * 256)
    return sums.astype(np.int64).reshape(n_groups, 256)


def exact_means(sums: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The means (float64, correctly rounded) from :func:`exact_sums` parts and the row counts per group
    (NaN where a group has no rows)."""
    from fractions import Fraction

    out = np.full(len(counts), np.nan)
    for g in np.flatnonzero(counts):
        # a float32 with biased exponent e and significand m is m * 2**(max(e, 1) - 150)
        total = sum(int(v) << (max(e, 1) - 1) for e, v in enumerate(sums[g].tolist()) if v)
        out[g] = float(Fraction(total, (1 << 149) * int(counts[g])))
    return out


def confident_thresholds(label_counts: np.ndarray, self_confidence_sums: np.ndarray) -> np.ndarray:
    """cleanlab's per-class thresholds (the mean probability of the given class over the rows given that
    class, at least ``CONFIDENT_THRESHOLDS_LOWER_BOUND``, 2 for absent classes) from the counts and the
    :func:`exact_sums` of the self-confidences. cleanlab takes that mean with ``np.mean`` in float32,
    whose rounding depends on the row order; this one is exact, so every split of the rows agrees. They
    differ by float32 rounding only (a few units in the last place)."""
    from cleanlab.internal.constants import CONFIDENT_THRESHOLDS_LOWER_BOUND

    # float32 means in a float64 array, as cleanlab's (its comparisons then run in float64)
    means = exact_means(self_confidence_sums, label_counts).astype(np.float32).astype(np.float64)
    means[np.asarray(label_counts) == 0] = 2.0
    return np.clip(means, CONFIDENT_THRESHOLDS_LOWER_BOUND, None)


def thresholds_for(labels: np.ndarray, p: np.ndarray) -> np.ndarray:
    """:func:`confident_thresholds` of rows with class indices ``labels`` and probabilities ``p`` (N, K)."""
    k = p.shape[1]
    self_confidence = p[np.arange(len(labels)), labels]
    return confident_thresholds(np.bincount(labels, minlength=k), exact_sums(self_confidence, labels, k))


def off_diagonal(labels: np.ndarray, p: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """cleanlab's ``confident_learning`` flags, whose count is also its ``num_label_issues``: the rows
    counted off the confident joint's diagonal (given ``thresholds``), less the rows whose prediction is
    their given label (cleanlab's ``_reduce_issues``). Row by row once the thresholds are known."""
    from cleanlab.count import _reduce_issues, compute_confident_joint

    mask = np.zeros(len(labels), dtype=bool)
    if not len(labels):
        return mask
    _, off = compute_confident_joint(labels, p, thresholds=thresholds, calibrate=False,
                                     return_indices_of_off_diagonals=True)
    mask[off] = True
    mask[_reduce_issues(p, labels)] = False
    return mask


def label_scores(labels: np.ndarray, p: np.ndarray, method: str) -> np.ndarray:
    """The score ``low_normalized_margin`` / ``low_self_confidence`` flags the lowest of, as cleanlab
    computes it (row by row)."""
    from cleanlab.rank import get_label_quality_scores

    if not len(labels):
        return np.zeros(0, np.float32)
    return get_label_quality_scores(labels, p, method=method[4:], adjust_pred_probs=False)


def label_quality(labels: np.ndarray, p: np.ndarray, rank_by: str) -> np.ndarray:
    """cleanlab's label quality score of each row (``rank_by``: a ``get_label_quality_scores`` method), float32:
    the stage's ``label_quality`` column and what its flags are ranked by (the same on the distributed reduce)."""
    from cleanlab.rank import get_label_quality_scores

    if not len(labels):
        return np.zeros(0, np.float32)
    return get_label_quality_scores(labels, p, method=rank_by).astype(np.float32)


def lowest(scores: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` rows with the lowest ``scores``, ties to the earliest rows. (cleanlab's ``low_*`` methods
    take ``np.argsort(scores)[:n]``, whose order among ties is numpy's unstable, CPU-dependent sort.)"""
    mask = np.zeros(len(scores), dtype=bool)
    mask[np.argsort(scores, kind="stable")[:n]] = True
    return mask


def find_issues(labels: np.ndarray, pred_probs: np.ndarray, *, method: FilterMethod = "prune_by_noise_rate",
                rank_by: RankMethod = "self_confidence", min_examples_per_class: int = 1,
                n_jobs: int | None = None, copy: bool = True, flag_lowest: int | None = None) -> IssueResult:
    """Flag likely label errors with cleanlab and score every label.

    Parameters
    ----------
    labels : np.ndarray of int, shape (N,)
        Given class indices in ``0..K-1``.
    pred_probs : np.ndarray, shape (N, K)
        Out-of-sample predicted probabilities (rows sum to 1).
    method : {'prune_by_noise_rate', 'prune_by_class', 'both', 'confident_learning', 'predicted_neq_given', \
'low_normalized_margin', 'low_self_confidence'}, keyword-only
        ``filter_by`` of :func:`cleanlab.filter.find_label_issues`. Every method uses per-class thresholds
        from an exact mean (:func:`confident_thresholds`); the last three are computed from cleanlab's
        parts (:func:`off_diagonal`, :func:`label_scores`, :func:`lowest`: ties to the earliest rows).
    rank_by : {'self_confidence', 'normalized_margin', 'confidence_weighted_entropy'}, keyword-only
        ``method`` of :func:`cleanlab.rank.get_label_quality_scores`.
    min_examples_per_class : int, keyword-only
        cleanlab leaves at least this many examples of each class unflagged.
    n_jobs : int, optional, keyword-only
        Processes cleanlab may use (default: all cores).
    copy : bool, keyword-only
        False lets a float32 ``pred_probs`` be renormalised in place instead of copied.
    flag_lowest : int, optional, keyword-only
        Flag this many rows, the lowest label quality first (ties to the earliest rows), in place of
        ``method``'s filter (``round_count: calibrated``'s count, :func:`calibrated_round_count`).
    """
    require("cleanlab", "labels", "label-noise detection")
    from cleanlab.count import compute_confident_joint
    from cleanlab.filter import find_label_issues

    if method not in FILTER_METHODS:
        raise CurateError(f"method: unknown method {method!r}; allowed: {', '.join(FILTER_METHODS)}")
    if rank_by not in RANK_METHODS:
        raise CurateError(f"rank_by: unknown method {rank_by!r}; allowed: {', '.join(RANK_METHODS)}")
    labels = np.asarray(labels, dtype=np.int64)
    p = check_pred_probs(pred_probs, labels, copy=copy)
    t0 = time.perf_counter()
    # thresholds by an exact sum (any split of the rows agrees: curate.distributed.label_noise)
    thresholds = thresholds_for(labels, p)
    cj = compute_confident_joint(labels, p, thresholds=thresholds, calibrate=True)
    quality = label_quality(labels, p, rank_by)
    if flag_lowest is not None:
        is_issue = lowest(quality, flag_lowest)
    elif method in _OFF_DIAGONAL:
        is_issue = off_diagonal(labels, p, thresholds)
        if method != "confident_learning":
            is_issue = lowest(label_scores(labels, p, method), int(is_issue.sum()))
    else:
        is_issue = find_label_issues(labels, p, filter_by=method, min_examples_per_class=min_examples_per_class,
                                     confident_joint=cj if method in _USES_JOINT else None, n_jobs=n_jobs)
    suggested = p.argmax(axis=1)
    rows = np.arange(len(labels))
    return IssueResult(is_issue=np.asarray(is_issue, dtype=bool), quality=quality, suggested=suggested,
                       suggested_prob=p[rows, suggested], given_prob=p[rows, labels], confident_joint=cj,
                       seconds=time.perf_counter() - t0)


#: The temperatures :func:`fit_temperature` chooses from: log-spaced, 1.25% apart, from 0.05 to 20. A fixed
#: grid, so that any split of the rows (:mod:`curate.distributed.label_noise`) finds the same one.
TEMPERATURES = np.geomspace(0.05, 20.0, 481)
#: values per block of :func:`temperature_nll_sums` (temperatures x rows x classes float64: 32 MB)
_NLL_BLOCK = 1 << 22


def _log_probs(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, None))


def temperature_nll_sums(labels: np.ndarray, pred_probs: np.ndarray,
                         temperatures: np.ndarray = TEMPERATURES) -> np.ndarray:
    """The negative log-likelihood of ``labels`` under ``pred_probs`` (N, K) scaled by each temperature
    (``softmax(log p / T)``), summed exactly: ``(len(temperatures), 256)`` :func:`exact_sums` parts of the
    per-row float32 values. Parts of several row sets add up to the parts of all of them."""
    labels = np.asarray(labels, dtype=np.int64)
    g = len(temperatures)
    out = np.zeros((g, 256), np.int64)
    inv = (1.0 / np.asarray(temperatures, dtype=np.float64))[:, None, None]
    block = max(1, _NLL_BLOCK // (g * max(1, pred_probs.shape[1])))
    for start in range(0, len(labels), block):
        y = labels[start:start + block]
        z = _log_probs(pred_probs[start:start + block])[None] * inv  # (G, B, K)
        top = z.max(axis=2, keepdims=True)
        lse = np.log(np.exp(z - top).sum(axis=2)) + top[..., 0]
        nll = np.clip(lse - z[:, np.arange(len(y)), y], 0.0, None).astype(np.float32)
        out += exact_sums(nll.reshape(-1), np.repeat(np.arange(g), len(y)), g)
    return out


def fit_temperature(nll_sums: np.ndarray, n_rows: int, temperatures: np.ndarray = TEMPERATURES) -> float:
    """The temperature of :func:`temperature_nll_sums` parts (over ``n_rows`` rows) with the lowest mean
    negative log-likelihood (the first of equal ones); 1.0 for no rows."""
    if n_rows == 0:
        return 1.0
    means = exact_means(nll_sums, np.full(len(temperatures), n_rows))
    return float(temperatures[int(np.argmin(means))])


def temper(pred_probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` of probabilities (N, K), row by row: float32 rows that sum to 1, ready for
    cleanlab as :func:`check_pred_probs` leaves them."""
    z = _log_probs(pred_probs) / temperature
    if len(z):
        z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
    p /= p.sum(axis=1, keepdims=True)
    return p


def calibrated_count(*joints: np.ndarray) -> int:
    """``round_count: calibrated``: how many rows to flag, the smallest off-diagonal count of the calibrated
    confident joints of the temperature-scaled probabilities (each joint sums to the rows it counts, so
    this is the number of rows times its estimated noise rate). Given the last and the first round's
    joints: the later round's models, fitted on the rows the first kept, can count more errors than
    there are."""
    return min(int(round(float(np.sum(j) - np.trace(j)))) for j in joints)


def calibration_summary(temperatures: list[float], estimates: list[int]) -> dict[str, Any]:
    """The summary's ``calibrated_count``: per round (the last, then the first when it is another) the
    fitted temperature and the off-diagonal count of the scaled probabilities' joint, and the count used."""
    out: dict[str, Any] = {"temperature": round(temperatures[0], 4), "estimate": int(estimates[0])}
    if len(temperatures) > 1:
        out.update({"first_temperature": round(temperatures[1], 4), "first_estimate": int(estimates[1])})
    out["count"] = int(min(estimates))  # as calibrated_count over the rounds' joints
    return out


def calibrated_round_count(labels: np.ndarray, last: np.ndarray, first: np.ndarray | None = None) -> dict[str, Any]:
    """``round_count: calibrated`` on one machine: each round's probabilities (N, K) scaled by the
    temperature fitted to ``labels`` (:func:`fit_temperature` over :data:`TEMPERATURES`), then
    :func:`calibrated_count` of their calibrated confident joints. Returns :func:`calibration_summary`
    (its ``count`` is how many rows to flag). ``first``: the first round's, when there were several."""
    from cleanlab.count import compute_confident_joint

    labels = np.asarray(labels, dtype=np.int64)
    temps, estimates = [], []
    for p in ([last] if first is None else [last, first]):
        p = check_pred_probs(p, labels)
        t = fit_temperature(temperature_nll_sums(labels, p), len(labels))
        tp = temper(p, t)
        joint = compute_confident_joint(labels, tp, thresholds=thresholds_for(labels, tp), calibrate=True)
        temps.append(t)
        estimates.append(calibrated_count(joint))
    return calibration_summary(temps, estimates)


def trust(accuracy: float, labels: np.ndarray) -> dict[str, Any]:
    """Held-out accuracy against the given labels, the majority-class baseline and the chance-adjusted
    accuracy ``(acc - majority) / (1 - majority)``, for the summary.

    These are figures against the *given* labels, so label noise caps them (at 40% wrong labels even a
    perfect classifier scores 0.6): they are not a verdict on the classifier. The guard's verdict uses
    the accuracy on the labels cleanlab keeps (:func:`guard`).
    """
    return trust_from_counts(accuracy, np.bincount(labels))


def trust_from_counts(accuracy: float, counts: np.ndarray) -> dict[str, Any]:
    """:func:`trust` from the number of rows per class."""
    majority = float(counts.max() / counts.sum()) if counts.sum() else 0.0
    adjusted = (accuracy - majority) / (1.0 - majority) if majority < 1.0 else 0.0
    return {"heldout_accuracy": round(accuracy, 4), "majority_baseline": round(majority, 4),
            "adjusted_accuracy": round(adjusted, 4)}


def summarize(labels: np.ndarray, result: IssueResult, class_names: list[str], *, top_pairs: int = 10,
              flags: np.ndarray | None = None) -> dict[str, Any]:
    """Dataset-level figures for the manifest (``flags``: the rows flagged, default cleanlab's).

    ``noise_rate``: per given class, the estimated fraction of its examples whose true label is another
    class (from the calibrated confident joint). ``confused_pairs``: the largest off-diagonal entries of
    the confident joint, as (given, likely true, estimated count).
    """
    k = np.asarray(result.confident_joint).shape[0]
    flags = result.is_issue if flags is None else flags
    return summary_from_counts(result.confident_joint, np.bincount(labels, minlength=k),
                               np.bincount(labels[flags], minlength=k), int(flags.sum()), class_names,
                               top_pairs=top_pairs)


def summary_from_counts(confident_joint: np.ndarray, counts: np.ndarray, issues_per_class: np.ndarray, flagged: int,
                        class_names: list[str], *, top_pairs: int = 10) -> dict[str, Any]:
    """:func:`summarize` from the confident joint, the rows and the flagged rows per class (K-sized)."""
    cj = np.asarray(confident_joint, dtype=np.float64)
    k = cj.shape[0]
    row = cj.sum(axis=1)
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
    n = int(counts.sum())
    return {
        "label_issues": int(flagged),
        "label_issue_rate": round(flagged / n if n else 0.0, 4),
        "estimated_noise_rate": round(float(1.0 - np.trace(cj) / cj.sum()) if cj.sum() else 0.0, 4),
        "noise_rate_per_class": noise,
        "issues_per_class": {class_names[i]: int(issues_per_class[i]) for i in range(k) if counts[i]},
        "confused_pairs": pairs,
    }


@dataclass
class GuardResult:
    """The flags that survive the trust guard, and what each step removed."""

    flags: np.ndarray  # (N,) bool
    abstained: bool
    #: why the guard abstained (empty when it did not): plain sentences for the summary and warning
    reasons: list[str]
    removed: dict[str, int]  # step -> rows the step unflagged
    cleanlab_flags: int
    kept_accuracy: float  # held-out accuracy on the rows cleanlab does not flag
    estimated_noise_rate: float


#: Default of ``max_noise_rate``: cleanlab estimating at least this share of wrong labels usually means the
#: classifier, not the labels, is the problem (a dataset with most labels wrong has no usable labels to correct)
MAX_NOISE_RATE = 0.5


def guard(labels: np.ndarray, result: IssueResult, *, min_confidence: float = 0.0, max_class_fraction: float = 0.5,
          min_kept_accuracy: float = 0.7, agreement: float | None = None, min_agreement: float = 0.6,
          min_quality: float | None = None, flag_top_fraction: float | None = None,
          max_noise_rate: float = MAX_NOISE_RATE, max_flags: int | None = None,
          max_flags_reason: str = "over_max_flags") -> GuardResult:
    """Keep only the cleanlab flags a user can trust.

    The guard abstains (flags nothing) when the classifier is too weak to tell a wrong label from a hard
    example, judged by figures that label noise does not drive down (accuracy against the given labels
    does: at 40% wrong labels a perfect classifier scores 0.6):

    * ``agreement`` (ensembles): Cohen's kappa between the members' predicted classes. Two different
      models trained on the same noisy labels still agree on the true class where the features carry it;
      on weak features they disagree.
    * the held-out accuracy on the rows cleanlab keeps (the wrongly labelled rows are the ones removed),
    * cleanlab's estimated noise rate: at ``max_noise_rate`` or more it is the classifier that is wrong.

    Otherwise it keeps the flags whose suggested class differs from the given one with probability at
    least ``min_confidence``, at most ``max_class_fraction`` of each given class, then applies
    ``min_quality``, ``flag_top_fraction`` and ``max_flags`` (lowest label quality first; what
    ``max_flags`` removes is counted under ``max_flags_reason``).

    Parameters
    ----------
    labels : np.ndarray of int, shape (N,)
        Given class indices.
    result : IssueResult
        :func:`find_issues` on the same rows.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    flags = result.is_issue.copy()
    removed: dict[str, int] = {}
    kept = ~result.is_issue
    kept_accuracy = float((result.suggested[kept] == labels[kept]).mean()) if kept.any() else 0.0
    cj = np.asarray(result.confident_joint, dtype=np.float64)
    noise = noise_rate(cj)

    def step(name: str, keep: np.ndarray) -> None:
        removed[name] = int((flags & ~keep).sum())
        flags[:] &= keep

    reasons = abstain_reasons(agreement=agreement, min_agreement=min_agreement, kept_accuracy=kept_accuracy,
                              min_kept_accuracy=min_kept_accuracy, noise=noise, max_noise_rate=max_noise_rate)
    if reasons:
        step("abstained", np.zeros(n, dtype=bool))
        return GuardResult(flags, True, reasons, removed, int(result.is_issue.sum()), kept_accuracy, noise)
    step("not_confident", (result.suggested != labels) & (result.suggested_prob >= min_confidence))
    if min_quality is not None:
        step("above_min_quality", result.quality < min_quality)
    order = np.argsort(result.quality, kind="stable")  # lowest quality (most likely wrong) first
    cap = np.zeros(n, dtype=bool)
    counts = np.bincount(labels, minlength=cj.shape[0])
    for k in np.flatnonzero(counts):
        rows = order[(labels[order] == k) & flags[order]]
        cap[rows[: int(np.floor(max_class_fraction * counts[k]))]] = True
    step("over_class_cap", cap)
    def lowest_first(name: str, limit: int) -> None:
        top = np.zeros(n, dtype=bool)
        top[order[flags[order]][:limit]] = True
        step(name, top)

    if flag_top_fraction is not None:
        lowest_first("over_top_fraction", int(np.floor(flag_top_fraction * n)))
    if max_flags is not None:
        lowest_first(max_flags_reason, max_flags)
    return GuardResult(flags, False, reasons, removed, int(result.is_issue.sum()), kept_accuracy, noise)


def noise_rate(confident_joint: np.ndarray) -> float:
    """cleanlab's estimated share of wrong labels: the off-diagonal mass of the calibrated joint."""
    cj = np.asarray(confident_joint, dtype=np.float64)
    return float(1.0 - np.trace(cj) / cj.sum()) if cj.sum() else 0.0


def abstain_reasons(*, agreement: float | None, min_agreement: float, kept_accuracy: float, min_kept_accuracy: float,
                    noise: float, max_noise_rate: float) -> list[str]:
    """Why :func:`guard` abstains (empty: it does not)."""
    reasons = []
    if agreement is not None and agreement < min_agreement:
        reasons.append(f"its two models agree on only kappa {agreement:.2f} (min_agreement {min_agreement})")
    if kept_accuracy < min_kept_accuracy:
        reasons.append(f"it agrees with only {kept_accuracy:.1%} of the labels cleanlab would keep "
                       f"(min_kept_accuracy {min_kept_accuracy})")
    if noise >= max_noise_rate:
        reasons.append(f"cleanlab would call {noise:.0%} of the labels wrong (max_noise_rate {max_noise_rate})")
    return reasons
