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

Classifier = Literal["logistic", "mlp", "knn"]
CLASSIFIERS: tuple[str, ...] = ("logistic", "mlp", "knn")


@dataclass
class CVResult:
    """Out-of-sample probabilities and how good the classifier is on held-out folds."""

    pred_probs: np.ndarray  # (N, K) float32, rows sum to 1
    accuracy: float  # held-out accuracy against the given (possibly noisy) labels
    fold_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0


def small_classes(labels: np.ndarray, n_classes: int, minimum: int) -> list[int]:
    """Class indices that have at least one but fewer than ``minimum`` examples."""
    counts = np.bincount(labels, minlength=n_classes)
    return [int(k) for k in np.flatnonzero((counts > 0) & (counts < minimum))]


def _make_classifier(kind: str, *, sparse: bool, seed: int, knn_neighbors: int, n_jobs: int | None):
    require("sklearn", "labels", "the label_noise classifier")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import Normalizer, StandardScaler

    if kind == "logistic":
        from sklearn.linear_model import LogisticRegression

        steps = [] if sparse else [StandardScaler()]
        return make_pipeline(*steps, LogisticRegression(C=1.0, max_iter=300, tol=1e-3))
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


def cross_val_pred_probs(x, labels: np.ndarray, *, n_classes: int, classifier: Classifier = "logistic",
                         folds: int = 5, seed: int = 0, knn_neighbors: int = 10, n_jobs: int | None = None,
                         progress: bool = True) -> CVResult:
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
    classifier : {'logistic', 'mlp', 'knn'}, keyword-only
    folds : int, keyword-only
        ``K`` of K-fold, at least 2.

    Returns
    -------
    CVResult
        ``pred_probs`` of shape (N, n_classes): each row predicted by the model that did not see it.
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
    base = _make_classifier(classifier, sparse=sparse, seed=seed, knn_neighbors=knn_neighbors, n_jobs=n_jobs)
    pred = np.zeros((n, n_classes), dtype=np.float32)
    splitter = model_selection.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_acc: list[float] = []
    t0 = time.perf_counter()
    for train, test in tqdm(splitter.split(np.zeros(n), labels), total=folds, desc=f"cross-validation ({classifier})",
                            unit="fold", file=sys.stderr, disable=not progress, leave=False):
        model = clone(base)
        # logistic and mlp do many small matrix products: one BLAS thread is 1.5-3x faster than several
        # fighting over the cores (measured on 2 shared cores); knn's large distance products keep them
        with threadpool_limits(1 if classifier in ("logistic", "mlp") else None, user_api="blas"):
            model.fit(x[train], labels[train])
            proba = model.predict_proba(x[test])
        cls = model.classes_ if not hasattr(model, "steps") else model.steps[-1][1].classes_
        pred[np.ix_(test, np.asarray(cls, dtype=np.int64))] = proba
        fold_acc.append(float((np.asarray(cls)[proba.argmax(1)] == labels[test]).mean()))
    if classifier == "knn":  # neighbour votes give exact zeros; keep every class possible
        pred[:, present] = 0.999 * pred[:, present] + 0.001 / len(present)
    pred /= pred.sum(axis=1, keepdims=True)
    acc = float((pred.argmax(1) == labels).mean())
    return CVResult(pred_probs=pred, accuracy=acc, fold_accuracy=fold_acc, seconds=time.perf_counter() - t0)
