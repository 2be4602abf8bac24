"""Label-noise detection: features, cross-validated probabilities, cleanlab, a dataset summary.

The algorithmic core behind the ``label_noise`` stage (``curate/stages/label_noise.py``), usable on
plain arrays too::

    from curate.label_noise import cross_val_pred_probs, find_issues, guard, summarize
    cv = cross_val_pred_probs(X, labels, n_classes=10, classifier="auto", folds=5)   # 1. fit folds, predict
    issues = find_issues(labels, cv.pred_probs, method="prune_by_noise_rate")      # 2. cleanlab
    kept = guard(labels, issues, agreement=cv.agreement_kappa)                     # 3. the trust guard
    summarize(labels, issues, class_names, flags=kept.flags)

The stage (``curate/stages/label_noise.py``) is exactly these steps (plus :func:`refit_rounds` when
``rounds`` > 1); its distributed reduce (:mod:`curate.distributed.label_noise`) computes the same from
per-shard statistics.

Heavy dependencies (scikit-learn, cleanlab) are imported inside the functions.
"""

from __future__ import annotations

from curate.label_noise.classes import ClassMap, encode_label_column, encode_labels
from curate.label_noise.crossval import (CLASSIFIERS, CVResult, cross_val_pred_probs, refit_rounds, select_logistic_c,
                                         small_classes)
from curate.label_noise.detect import FILTER_METHODS, RANK_METHODS, GuardResult, IssueResult, find_issues, guard, summarize
from curate.label_noise.features import FeatureSpec, pixel_vectors, reduce_dims, tfidf_matrix
from curate.vectors import list_column_to_matrix

__all__ = [
    "CLASSIFIERS", "CVResult", "ClassMap", "FILTER_METHODS", "FeatureSpec", "GuardResult", "IssueResult", "RANK_METHODS",
    "cross_val_pred_probs", "encode_label_column", "encode_labels", "find_issues", "guard", "list_column_to_matrix",
    "pixel_vectors", "reduce_dims", "refit_rounds", "select_logistic_c", "small_classes", "summarize", "tfidf_matrix",
]
