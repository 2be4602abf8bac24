"""Out-of-sample predicted probabilities by K-fold cross-validation.

The fold of a row is a hash of its row number (:func:`fold_of`), not a stratified split of all rows,
so a process that sees one shard knows its rows' folds, and every fold's held-out rows are predicted
in blocks of :data:`PREDICT_BLOCK` rows: the driver reduce and the distributed one
(:mod:`curate.distributed.label_noise`) fit and predict on the same matrices and give the same
probabilities.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from curate.errors import CurateError, require

log = logging.getLogger(__name__)

Classifier = Literal["auto", "logistic", "mlp", "knn", "lda", "logistic+knn", "logistic+knn+lda", "lda+knn"]
CLASSIFIERS: tuple[str, ...] = Classifier.__args__  # type: ignore[attr-defined]
#: Single models; a value with ``+`` averages the probabilities of its members (same folds).
BASE_CLASSIFIERS: tuple[str, ...] = ("logistic", "mlp", "knn", "lda")
#: ``lda``: how far its within-class covariance is shrunk towards the identity (standardised features)
LDA_SHRINKAGE = 0.5
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


#: held-out rows are predicted this many at a time (a multiple of scikit-learn's 256-row distance chunks):
#: matrix products round differently with the matrix shape, so every path predicts the same blocks
PREDICT_BLOCK = 16_384


def fold_of(rows: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """The fold (``0..folds-1``) of each dataset row number in ``rows``: a hash of the row number and
    ``seed``, so it is known row by row (any shard, any process). Folds are not stratified: class
    shares per fold vary by about ``sqrt(n_class / folds)`` rows."""
    from curate.dedup.hashing import mix64

    rows = np.asarray(rows, dtype=np.int64).astype(np.uint64)
    salt = mix64(np.array([seed], dtype=np.uint64) ^ np.uint64(0x6C61626E6F697365))[0]  # "labnoise"
    return (mix64(rows ^ salt) % np.uint64(folds)).astype(np.int64)


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


class ShrunkLDA:
    """Linear discriminant analysis with a shrunk covariance: one Gaussian per class with a shared
    within-class covariance, estimated on standardised features and shrunk towards the identity,
    ``(1 - shrinkage) * S + shrinkage * trace(S) / D * I``. Class means average the noise out: under
    heavy label noise it is a better out-of-sample model than logistic regression (CIFAR-10N ``worse``,
    docs/benchmarks/label_noise.md). scikit-learn's estimator interface (``fit``, ``predict_proba``,
    ``classes_``), computed in float64 in blocks of rows. It is the model of scikit-learn's
    ``make_pipeline(StandardScaler(), LinearDiscriminantAnalysis(solver="lsqr", shrinkage=s))`` (which
    shrinks on the raw scale unless the features are standardised first); this class computes it in
    float64 row blocks without copies of the float32 features (with ``shrinkage=0`` the two agree,
    ``tests/test_label_noise.py``). Replacing it by that pipeline is a candidate clean-up, to be
    re-measured (rounding moves a few flags)."""

    def __init__(self, shrinkage: float = LDA_SHRINKAGE):
        self.shrinkage = shrinkage

    def get_params(self, deep: bool = True) -> dict:  # for sklearn.base.clone
        return {"shrinkage": self.shrinkage}

    def set_params(self, **params) -> "ShrunkLDA":
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def fit(self, x, y) -> "ShrunkLDA":
        x = np.asarray(x)
        y = np.asarray(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        k, d = len(self.classes_), x.shape[1]
        counts = np.bincount(yi, minlength=k).astype(np.float64)
        blocks = range(0, len(x), PREDICT_BLOCK)
        sums = np.zeros((k, d))
        for a in blocks:  # per-class sums as a one-hot product
            yb = yi[a:a + PREDICT_BLOCK]
            sums += (np.arange(k)[:, None] == yb[None, :]).astype(np.float64) @ x[a:a + PREDICT_BLOCK].astype(np.float64)
        mean = sums.sum(0) / len(x)
        var = np.zeros(d)
        for a in blocks:
            var += ((x[a:a + PREDICT_BLOCK].astype(np.float64) - mean) ** 2).sum(0)
        sd = np.sqrt(var / len(x))
        sd[sd == 0] = 1.0
        mu = (sums / counts[:, None] - mean) / sd  # class means, standardised
        cov = np.zeros((d, d))
        for a in blocks:
            xc = (x[a:a + PREDICT_BLOCK].astype(np.float64) - mean) / sd - mu[yi[a:a + PREDICT_BLOCK]]
            cov += xc.T @ xc
        cov /= len(x)
        target = np.trace(cov) / d
        cov *= 1.0 - self.shrinkage
        cov[np.diag_indices(d)] += self.shrinkage * target
        w = np.linalg.solve(cov, mu.T)  # (D, K) in standardised space
        self.coef_ = w / sd[:, None]
        self.intercept_ = -0.5 * (mu * w.T).sum(1) + np.log(counts / counts.sum()) - (mean / sd) @ w
        return self

    def predict_proba(self, x) -> np.ndarray:
        z = np.asarray(x, dtype=np.float64) @ self.coef_ + self.intercept_
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, x) -> np.ndarray:
        return self.classes_[self.predict_proba(x).argmax(axis=1)]


def _make_classifier(kind: str, *, sparse: bool, seed: int, knn_neighbors: int, n_jobs: int | None, c: float = 1.0,
                     lda_shrinkage: float = LDA_SHRINKAGE):
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
    if kind == "lda":
        if sparse:
            raise CurateError("classifier: lda needs dense features (pixels or an embedding), not tfidf")
        return ShrunkLDA(lda_shrinkage)
    raise CurateError(f"classifier: unknown classifier {kind!r}; allowed: {', '.join(CLASSIFIERS)}")


def c_selection_split(labels: np.ndarray, rows: np.ndarray, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The rows :func:`select_logistic_c` fits (``fit``) and scores (``val``) its candidates on: at most
    :data:`C_SELECTION_ROWS` * 1.25 of ``rows``, a stratified 80/20 split."""
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(seed)
    rows = np.asarray(rows)
    if len(rows) > C_SELECTION_ROWS * 1.25:
        rows = rng.choice(rows, int(C_SELECTION_ROWS * 1.25), replace=False)
    counts = np.bincount(labels[rows])
    strat = labels[rows] if counts[counts > 0].min() >= 2 else None
    fit, val = train_test_split(rows, test_size=0.2, random_state=seed, stratify=strat)
    return fit, val


def select_logistic_c(x, labels: np.ndarray, rows: np.ndarray, *, sparse: bool, seed: int = 0) -> tuple[float, dict]:
    """The logistic regression ``C`` with the best accuracy on a held-out quarter of ``rows`` (against the
    given labels: under label noise that still ranks the candidates as the clean labels would).

    ``rows`` are training rows only (the first fold's), so the choice sees no row it later predicts.
    ``x`` and ``labels`` are indexed by row (only the rows of :func:`c_selection_split` are read).
    Returns ``C`` and the accuracy of each candidate tried.
    """
    fit, val = c_selection_split(labels, rows, seed=seed)
    return select_c_on(x[fit], labels[fit], x[val], labels[val], sparse=sparse, seed=seed)


def select_c_on(x_fit, y_fit: np.ndarray, x_val, y_val: np.ndarray, *, sparse: bool,
                seed: int = 0) -> tuple[float, dict]:
    """:func:`select_logistic_c`'s search on ready fit / validation matrices."""
    from threadpoolctl import threadpool_limits

    tried: dict[float, float] = {}

    def score(c: float) -> float:
        if c not in tried:
            model = _make_classifier("logistic", sparse=sparse, seed=seed, knn_neighbors=1, n_jobs=1, c=c)
            with threadpool_limits(1, user_api="blas"):
                model.fit(x_fit, y_fit)
                tried[c] = float((model.predict(x_val) == y_val).mean())
        return tried[c]

    grid = C_GRID["sparse" if sparse else "dense"]
    best = max(grid, key=lambda c: (score(c), -abs(np.log10(c))))
    for c in (best / 3, best * 3):  # refine between the x10 steps
        score(c)
    best = max(tried, key=lambda c: (tried[c], -abs(np.log10(c))))
    return best, {f"{c:g}": round(a, 4) for c, a in sorted(tried.items())}


def make_members(classifier: str, *, sparse: bool, seed: int, knn_neighbors: int, n_jobs: int | None,
                 logistic_c: float | None, lda_shrinkage: float = LDA_SHRINKAGE) -> dict:
    """The unfitted model of each member of ``classifier`` (``logistic+knn``: two)."""
    return {m: _make_classifier(m, sparse=sparse, seed=seed, knn_neighbors=knn_neighbors, n_jobs=n_jobs,
                                c=logistic_c if logistic_c is not None else 1.0, lda_shrinkage=lda_shrinkage)
            for m in classifier.split("+")}


def fit_members(bases: dict, x_train, y_train: np.ndarray) -> dict:
    """Each member fitted on one fold's training rows."""
    from sklearn.base import clone
    from threadpoolctl import threadpool_limits

    models = {}
    for m, base in bases.items():
        model = clone(base)
        # logistic and mlp do many small matrix products: one BLAS thread is 1.5-3x faster than several
        # fighting over the cores (measured on 2 shared cores); knn's large distance products keep them
        with threadpool_limits(1 if m in ("logistic", "mlp") else None, user_api="blas"):
            model.fit(x_train, y_train)
        models[m] = model
    return models


def predict_members(models: dict, x, n_classes: int) -> dict[str, np.ndarray]:
    """Each fitted member's probabilities ``(n, n_classes)`` float32 for the rows of ``x``, one block of at
    most :data:`PREDICT_BLOCK` rows (callers split held-out rows into those blocks)."""
    from threadpoolctl import threadpool_limits

    out = {}
    for m, model in models.items():
        p = np.zeros((x.shape[0], n_classes), dtype=np.float32)
        with threadpool_limits(1 if m in ("logistic", "mlp") else None, user_api="blas"):
            proba = model.predict_proba(x)
        cls = model.classes_ if not hasattr(model, "steps") else model.steps[-1][1].classes_
        p[:, np.asarray(cls, dtype=np.int64)] = proba
        out[m] = p
    return out


def combine_members(preds: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
    """Row-wise: kNN's exact zeros lifted on the ``present`` classes, each member renormalised, then the
    members averaged (in place on ``preds``; float32)."""
    for m, p in preds.items():
        if m == "knn":  # neighbour votes give exact zeros; keep every class possible
            p[:, present] = 0.999 * p[:, present] + 0.001 / len(present)
        p /= p.sum(axis=1, keepdims=True)
    members = list(preds)
    return preds[members[0]] if len(members) == 1 else np.mean([preds[m] for m in members], axis=0, dtype=np.float32)


def cross_val_pred_probs(x, labels: np.ndarray, *, n_classes: int, classifier: Classifier = "auto",
                         folds: int = 5, seed: int = 0, knn_neighbors: int = 30, n_jobs: int | None = None,
                         progress: bool = True, train_mask: np.ndarray | None = None,
                         logistic_c: float | None = None, rows: np.ndarray | None = None,
                         lda_shrinkage: float = LDA_SHRINKAGE) -> CVResult:
    """Out-of-sample class probabilities for every row by K-fold cross-validation.

    Parameters
    ----------
    x : np.ndarray or scipy.sparse matrix, shape (N, D)
        Features.
    labels : np.ndarray of int, shape (N,)
        Given class indices in ``0..n_classes-1``. Every class present needs at least ``folds`` examples
        (drop smaller ones first, see :func:`small_classes`).
    n_classes : int, keyword-only
        ``K``, the width of the result (classes absent from ``labels`` get probability 0).
    classifier : {'auto', 'logistic', 'mlp', 'knn', 'lda', 'logistic+knn', 'logistic+knn+lda', 'lda+knn'}, keyword-only
        A value with ``+`` averages its members' probabilities (fitted on the same folds); ``auto`` is
        ``logistic+knn`` on dense features and ``logistic`` on sparse ones (:data:`AUTO_CLASSIFIER`).
    folds : int, keyword-only
        ``K`` of K-fold, at least 2. The fold of row ``i`` is ``fold_of(rows[i], folds, seed)``.
    train_mask : np.ndarray of bool, shape (N,), optional, keyword-only
        Rows the models may be fitted on (default all): e.g. the rows a first round did not flag, so a
        second round learns from cleaner labels. Every row is still predicted by models that did not see
        it (the folds are the same as without a mask).
    logistic_c : float, optional, keyword-only
        Inverse regularisation strength of the logistic regression; default: chosen on the first fold's
        training rows (:func:`select_logistic_c`), reported as ``CVResult.logistic_c``.
    rows : np.ndarray of int, shape (N,), optional, keyword-only
        The dataset row number of each row, which fixes its fold (default ``0..N-1``).
    lda_shrinkage : float, keyword-only
        ``lda``: covariance shrinkage in [0, 1] (:class:`ShrunkLDA`).

    Returns
    -------
    CVResult
        ``pred_probs`` of shape (N, n_classes): each row predicted by models that did not see it.
    """
    require("sklearn.model_selection", "labels", "cross-validation")
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
    rows = np.arange(n) if rows is None else np.asarray(rows)
    if rows.shape != (n,):
        raise CurateError(f"rows: expected shape ({n},), got {rows.shape}")
    fold = fold_of(rows, folds, seed)
    sparse = hasattr(x, "tocsr")
    classifier = resolve_classifier(classifier, sparse=sparse)
    members = classifier.split("+")
    t0 = time.perf_counter()
    if train_mask is not None:
        train_mask = np.asarray(train_mask, dtype=bool)
        if train_mask.shape != (n,):
            raise CurateError(f"train_mask: expected shape ({n},), got {train_mask.shape}")
    fits = np.ones(n, dtype=bool) if train_mask is None else train_mask
    c_tried: dict = {}
    if "logistic" in members and logistic_c is None:
        logistic_c, c_tried = select_logistic_c(x, labels, np.flatnonzero((fold != 0) & fits), sparse=sparse, seed=seed)
    bases = make_members(classifier, sparse=sparse, seed=seed, knn_neighbors=knn_neighbors, n_jobs=n_jobs,
                         logistic_c=logistic_c, lda_shrinkage=lda_shrinkage)
    preds = {m: np.zeros((n, n_classes), dtype=np.float32) for m in members}
    for f in tqdm(range(folds), total=folds, desc=f"cross-validation ({classifier})", unit="fold", file=sys.stderr,
                  disable=not progress, leave=False):
        train, test = np.flatnonzero((fold != f) & fits), np.flatnonzero(fold == f)
        if not len(test):
            continue
        if len(np.unique(labels[train])) < 2:
            raise CurateError("train_mask leaves fewer than two classes to fit in a fold" if train_mask is not None
                              else "a fold's training rows hold fewer than two classes; use fewer folds")
        models = fit_members(bases, x[train], labels[train])
        for a in range(0, len(test), PREDICT_BLOCK):
            block = test[a:a + PREDICT_BLOCK]
            for m, p in predict_members(models, x[block], n_classes).items():
                preds[m][block] = p
    pred = combine_members(preds, present)
    hit = pred.argmax(1) == labels
    fold_acc = [float(hit[fold == f].mean()) for f in range(folds) if (fold == f).any()]
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
