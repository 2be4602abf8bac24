"""Out-of-sample predicted probabilities by stratified K-fold cross-validation."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

Classifier = Literal["auto", "logistic", "mlp", "knn", "logistic+knn"]
CLASSIFIERS: tuple[str, ...] = Classifier.__args__  # type: ignore[attr-defined]
#: Single models; a value with ``+`` averages the probabilities of its members (same folds).
BASE_CLASSIFIERS: tuple[str, ...] = ("logistic", "mlp", "knn")
#: ``classifier: auto`` per feature kind, chosen by measurement (docs/benchmarks/label_noise.md): the
#: logistic + kNN average on dense features (pixels, embeddings), sparse logistic on TF-IDF.
AUTO_CLASSIFIER: dict[str, str] = {"dense": "logistic+knn", "sparse": "logistic"}


def resolve_classifier(classifier: str, *, sparse: bool) -> str:
    """The concrete classifier for ``auto`` (else ``classifier`` itself)."""
    if classifier == "auto":
        return AUTO_CLASSIFIER["sparse" if sparse else "dense"]
    if classifier not in CLASSIFIERS:
        raise CurateError(f"classifier: unknown classifier {classifier!r}; allowed: {', '.join(CLASSIFIERS)}")
    return classifier


@dataclass
class CVResult:
    """Out-of-sample probabilities and how good the classifier is on held-out folds."""

    pred_probs: np.ndarray  # (N, K) float32, rows sum to 1
    accuracy: float  # held-out accuracy against the given (possibly noisy) labels
    fold_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    classifier: str = ""  # the concrete classifier (``auto`` resolved)
    #: ensembles: held-out accuracy of each member, and how often the first two members' argmax agree
    #: (raw, and as Cohen's kappa: 0 = chance agreement, 1 = always the same class)
    member_accuracy: dict[str, float] = field(default_factory=dict)
    agreement: float | None = None
    agreement_kappa: float | None = None
    #: the logistic regression's C, and the held-out accuracy of each candidate when it was chosen
    logistic_c: float | None = None
    logistic_c_tried: dict[str, float] = field(default_factory=dict)


def small_classes(labels: np.ndarray, n_classes: int, minimum: int) -> list[int]:
    """Class indices that have at least one but fewer than ``minimum`` examples."""
    counts = np.bincount(labels, minlength=n_classes)
    return [int(k) for k in np.flatnonzero((counts > 0) & (counts < minimum))]


#: ``logistic_c: auto`` tries these inverse regularisation strengths (x10 steps, then the x3 steps beside
#: the best): on standardised dense features noisy labels need strong regularisation (CIFAR-10N worse, 5k
#: EfficientNet features: C=1 scores 0.46 against the clean labels, C=3e-4 0.71), on TF-IDF the usual C=1.
C_GRID: dict[str, tuple[float, ...]] = {"dense": (1e-4, 1e-3, 1e-2, 1e-1, 1.0), "sparse": (0.1, 1.0, 10.0)}
#: at most this many rows fit each candidate C (and a quarter as many score it)
C_SELECTION_ROWS = 20_000


def _make_classifier(kind: str, *, sparse: bool, seed: int, knn_neighbors: int, n_jobs: int | None, c: float = 1.0):
    require("sklearn", "labels", "the label_noise classifier")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        steps = [] if sparse else [StandardScaler()]
        return make_pipeline(*steps, LogisticRegression(C=c, max_iter=300, tol=1e-3))
    if kind == "mlp":
        from sklearn.neural_network import MLPClassifier

        return make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(256,), alpha=1e-3, batch_size="auto",
                                                             learning_rate_init=1e-3, max_iter=40, early_stopping=True,
                                                             n_iter_no_change=5, random_state=seed))
    if kind == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        # unit-length rows: Euclidean neighbours are cosine neighbours
        return make_pipeline(Normalizer(), KNeighborsClassifier(n_neighbors=knn_neighbors, weights="distance", n_jobs=n_jobs))
    raise CurateError(f"classifier: unknown classifier {kind!r}; allowed: {', '.join(CLASSIFIERS)}")


def select_logistic_c(x, labels: np.ndarray, rows: np.ndarray, *, sparse: bool, seed: int = 0) -> tuple[float, dict]:
    """The logistic regression ``C`` with the best accuracy on a held-out quarter of ``rows`` (against the
    given labels: under label noise that still ranks the candidates as the clean labels would).

    ``rows`` are training rows only (the first fold's), so the choice sees no row it later predicts.
    Returns ``C`` and the accuracy of each candidate tried.
    """
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    if len(rows) > C_SELECTION_ROWS * 1.25:
        rows = rng.choice(rows, int(C_SELECTION_ROWS * 1.25), replace=False)
    counts = np.bincount(labels[rows])
    strat = labels[rows] if counts[counts > 0].min() >= 2 else None
    fit, val = train_test_split(rows, test_size=0.2, random_state=seed, stratify=strat)
    tried: dict[float, float] = {}

    def score(c: float) -> float:
        if c not in tried:
            model = _make_classifier("logistic", sparse=sparse, seed=seed, knn_neighbors=1, n_jobs=1, c=c)
            with threadpool_limits(1, user_api="blas"):
                model.fit(x[fit], labels[fit])
                tried[c] = float((model.predict(x[val]) == labels[val]).mean())
        return tried[c]

    grid = C_GRID["sparse" if sparse else "dense"]
    best = max(grid, key=lambda c: (score(c), -abs(np.log10(c))))
    for c in (best / 3, best * 3):  # refine between the x10 steps
        score(c)
    best = max(tried, key=lambda c: (tried[c], -abs(np.log10(c))))
    return best, {f"{c:g}": round(a, 4) for c, a in sorted(tried.items())}


def cross_val_pred_probs(x, labels: np.ndarray, *, n_classes: int, classifier: Classifier = "auto",
                         folds: int = 5, seed: int = 0, knn_neighbors: int = 30, n_jobs: int | None = None,
                         progress: bool = True, train_mask: np.ndarray | None = None,
                         logistic_c: float | None = None) -> CVResult:
    """Out-of-sample class probabilities for every row by stratified K-fold cross-validation.

    Parameters
    ----------
    x : np.ndarray or scipy.sparse matrix, shape (N, D)
        Features.
    labels : np.ndarray of int, shape (N,)
        Given class indices in ``0..n_classes-1``. Every class present needs at least ``folds`` examples
        (drop smaller ones first, see :func:`small_classes`).
    n_classes : int, keyword-only
        ``K``, the width of the result (classes absent from ``labels`` get probability 0).
    classifier : {'auto', 'logistic', 'mlp', 'knn', 'logistic+knn'}, keyword-only
        ``logistic+knn`` averages the two models' probabilities (fitted on the same folds); ``auto`` is
        ``logistic+knn`` on dense features and ``logistic`` on sparse ones (:data:`AUTO_CLASSIFIER`).
    folds : int, keyword-only
        ``K`` of K-fold, at least 2.
    train_mask : np.ndarray of bool, shape (N,), optional, keyword-only
        Rows the models may be fitted on (default all): e.g. the rows a first round did not flag, so a
        second round learns from cleaner labels. Every row is still predicted by models that did not see
        it (the folds are the same as without a mask).
    logistic_c : float, optional, keyword-only
        Inverse regularisation strength of the logistic regression; default: chosen on the first fold's
        training rows (:func:`select_logistic_c`), reported as ``CVResult.logistic_c``.

    Returns
    -------
    CVResult
        ``pred_probs`` of shape (N, n_classes): each row predicted by models that did not see it.
    """
    model_selection = require("sklearn.model_selection", "labels", "cross-validation")
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits  # a dependency of scikit-learn
    from tqdm.auto import tqdm

    labels = np.asarray(labels, dtype=np.int64)
    n = labels.shape[0]
    if x.shape[0] != n:
        raise CurateError(f"features have {x.shape[0]} rows but there are {n} labels")
    if folds < 2:
        raise CurateError(f"folds: expected an integer >= 2, got {folds}")
    present = np.unique(labels)
    if len(present) < 2:
        raise CurateError("cross-validation needs at least two classes with labels")
    too_small = small_classes(labels, n_classes, folds)
    if too_small:
        raise CurateError(f"classes {too_small[:5]} have fewer examples than folds ({folds}); drop them first")
    sparse = hasattr(x, "tocsr")
    classifier = resolve_classifier(classifier, sparse=sparse)
    members = classifier.split("+")
    splitter = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    t0 = time.perf_counter()
    if train_mask is not None:
        train_mask = np.asarray(train_mask, dtype=bool)
        if train_mask.shape != (n,):
            raise CurateError(f"train_mask: expected shape ({n},), got {train_mask.shape}")
    c_tried: dict = {}
    if "logistic" in members and logistic_c is None:
        first = next(iter(splitter.split(np.zeros(n), labels)))[0]
        logistic_c, c_tried = select_logistic_c(x, labels, first if train_mask is None else first[train_mask[first]],
                                                sparse=sparse, seed=seed)
    bases = {m: _make_classifier(m, sparse=sparse, seed=seed, knn_neighbors=knn_neighbors, n_jobs=n_jobs,
                                 c=logistic_c if logistic_c is not None else 1.0) for m in members}
    preds = {m: np.zeros((n, n_classes), dtype=np.float32) for m in members}
    for train, test in tqdm(splitter.split(np.zeros(n), labels), total=folds, desc=f"cross-validation ({classifier})",
                            unit="fold", file=sys.stderr, disable=not progress, leave=False):
        if train_mask is not None:
            train = train[train_mask[train]]
            if len(np.unique(labels[train])) < 2:
                raise CurateError("train_mask leaves fewer than two classes to fit in a fold")
        for m, base in bases.items():
            model = clone(base)
            # logistic and mlp do many small matrix products: one BLAS thread is 1.5-3x faster than several
            # fighting over the cores (measured on 2 shared cores); knn's large distance products keep them
            with threadpool_limits(1 if m in ("logistic", "mlp") else None, user_api="blas"):
                model.fit(x[train], labels[train])
                proba = model.predict_proba(x[test])
            cls = model.classes_ if not hasattr(model, "steps") else model.steps[-1][1].classes_
            preds[m][np.ix_(test, np.asarray(cls, dtype=np.int64))] = proba
    for m, p in preds.items():
        if m == "knn":  # neighbour votes give exact zeros; keep every class possible
            p[:, present] = 0.999 * p[:, present] + 0.001 / len(present)
        p /= p.sum(axis=1, keepdims=True)
    pred = preds[members[0]] if len(members) == 1 else np.mean([preds[m] for m in members], axis=0, dtype=np.float32)
    hit = pred.argmax(1) == labels
    fold_acc = [float(hit[test].mean()) for _, test in splitter.split(np.zeros(n), labels)]
    out = CVResult(pred_probs=pred, accuracy=float(hit.mean()), fold_accuracy=fold_acc,
                   seconds=time.perf_counter() - t0, classifier=classifier,
                   logistic_c=logistic_c if "logistic" in members else None, logistic_c_tried=c_tried)
    if len(members) > 1:
        out.member_accuracy = {m: float((p.argmax(1) == labels).mean()) for m, p in preds.items()}
        a, b = preds[members[0]].argmax(1), preds[members[1]].argmax(1)
        out.agreement = float((a == b).mean())
        out.agreement_kappa = cohen_kappa(a, b, n_classes)
    return out


def refit_rounds(x, labels: np.ndarray, first: CVResult, *, rounds: int, flag, n_classes: int, folds: int = 5,
                 **cv_kwargs) -> tuple[CVResult, list[dict], str | None]:
    """Rounds 2..``rounds`` of :func:`cross_val_pred_probs`: each fits only on the rows ``flag`` (e.g.
    cleanlab on the previous round's probabilities, returning a bool mask of suspected errors) did not
    flag, with the same folds, so every row is still predicted out of sample by a model that learnt from
    cleaner labels.

    Returns the last round's result, one ``{accuracy, seconds, fitted_on}`` entry per round, and why it
    stopped early (a class would keep fewer rows than ``folds``), else ``None``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    present = np.bincount(labels, minlength=n_classes) > 0
    cv, history = first, [{"accuracy": round(first.accuracy, 4), "seconds": round(first.seconds, 2)}]
    for _ in range(1, rounds):
        keep = ~np.asarray(flag(cv.pred_probs), dtype=bool)
        if np.bincount(labels[keep], minlength=n_classes)[present].min() < folds:
            return cv, history, "a class would keep fewer rows than folds"
        cv = cross_val_pred_probs(x, labels, n_classes=n_classes, folds=folds, train_mask=keep, **cv_kwargs)
        history.append({"accuracy": round(cv.accuracy, 4), "seconds": round(cv.seconds, 2), "fitted_on": int(keep.sum())})
    return cv, history, None


def cohen_kappa(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Agreement of two label vectors beyond chance: ``(p_o - p_e) / (1 - p_e)``."""
    p_o = float((a == b).mean())
    p_e = float((np.bincount(a, minlength=n_classes) * np.bincount(b, minlength=n_classes)).sum()) / len(a) ** 2
    return (p_o - p_e) / (1.0 - p_e) if p_e < 1.0 else 0.0
