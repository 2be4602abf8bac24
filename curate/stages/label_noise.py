"""``label_noise``: find likely label errors with a cross-validated classifier and cleanlab.

::

    - label_noise:
        features: embed.image_embedding   # or: pixels | tfidf | pred_probs:<column> | meta.<key>
        classifier: logistic               # logistic | mlp | knn
        folds: 5
        method: prune_by_noise_rate        # cleanlab filter_by
        rank_by: self_confidence
        min_examples_per_class: 5
        action: review

Map: per shard, the given label plus the features (decoded, downsampled pixels; an earlier stage's
embedding; user probabilities). Reduce: all rows at once: out-of-sample probabilities by stratified
K-fold cross-validation (unless ``pred_probs`` are given), then ``cleanlab.filter.find_label_issues``
and ``cleanlab.rank.get_label_quality_scores``. The algorithmic core is :mod:`curate.labelnoise`.

Scaling: the reduce holds the feature matrix (N x D float32: 2 GiB per million rows at D=512; pixels
and tfidf are reduced to ``pca_components`` first) and the probabilities (N x K float32: 400 MB per
million rows at K=100) in one process. On the ray executor the map runs on the cluster and the reduce on
the driver, which must hold those arrays.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar, Literal, Optional

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from curate.errors import CurateError
from curate.labelnoise.classes import encode_label_column
from curate.labelnoise.crossval import Classifier
from curate.labelnoise.detect import FilterMethod, RankMethod
from curate.labelnoise.features import FeatureSpec
from curate.stages.base import Column, GlobalStage, Outputs, Score, StageParams, flag_table, register_stage

log = logging.getLogger(__name__)

OUTPUTS = Outputs(
    columns=(
        Column("given_label", pa.string(), description="the label as given"),
        Column("suggested_label", pa.string(), "suggested_label", "the classifier's most likely label"),
        Column("suggested_prob", pa.float32(), "label_confidence", "out-of-sample probability of the suggested label"),
        Column("given_prob", pa.float32(), "score", "out-of-sample probability of the given label"),
        Column("label_quality", pa.float32(), "score", "cleanlab label quality (low: likely wrong)"),
        Column("issue_rank", pa.int32(), description="rank among the label issues (1: most likely wrong)"),
    ),
    scores=(Score(column="label_quality", flag="label_issue", param=None, flags_when="below",
                  label="label quality"),),
)
OUTPUT_SCHEMA = OUTPUTS.schema


class LabelNoiseParams(StageParams):
    """Parameters of ``label_noise``."""

    features: str = Field(
        "pixels",
        description="what the classifier sees: 'pixels' (downsampled image, PCA), 'tfidf' (text), a list column of an "
                    "earlier stage such as 'embed.image_embedding' (or 'meta.<key>'), or 'pred_probs:<column>' for "
                    "out-of-sample probabilities you computed (then no classifier runs)")
    label: str = Field("label", description="column holding the given label (a record column or 'stage.column')")
    classifier: Classifier = Field("logistic", description="model trained in the cross-validation: logistic | mlp | knn")
    folds: int = Field(5, ge=2, le=50, description="K of the stratified K-fold cross-validation")
    method: FilterMethod = Field("prune_by_noise_rate", description="cleanlab find_label_issues filter_by")
    rank_by: RankMethod = Field("self_confidence", description="cleanlab get_label_quality_scores method")
    min_examples_per_class: int = Field(
        5, ge=1, description="classes with fewer labelled examples than this (or than 'folds') are left out of the "
                             "classifier and reported; cleanlab also leaves this many examples of each class unflagged")
    classes: Optional[list[str]] = Field(
        None, description="class order (index i = classes[i]); needed with pred_probs when labels are names, "
                          "default: integer labels as indices, else sorted names")
    pixel_size: int = Field(16, ge=4, le=128, description="pixels: images are resized to this many pixels square")
    pixel_mode: Literal["gray", "rgb"] = Field("rgb", description="pixels: gray (1 channel) or rgb (3 channels)")
    pca_components: int = Field(64, ge=0, description="pixels/tfidf: reduce to this many dimensions (0: keep all)")
    knn_neighbors: int = Field(10, ge=1, description="knn: number of neighbours")
    min_adjusted_accuracy: float = Field(
        0.5, ge=0.0, le=1.0,
        description="warn when held-out accuracy, adjusted for chance as (acc - majority) / (1 - majority), is below this")
    seed: int = Field(0, description="seed of the fold split, PCA and the mlp")
    n_jobs: Optional[int] = Field(None, ge=1, description="processes for cleanlab and knn (default: all cores)")

    runtime_fields: ClassVar[frozenset[str]] = StageParams.runtime_fields | {"n_jobs"}

    @field_validator("features")
    @classmethod
    def _check_features(cls, value: str) -> str:
        FeatureSpec.parse(value)
        return value

    @property
    def spec(self) -> FeatureSpec:
        return FeatureSpec.parse(self.features)


@register_stage
class LabelNoise(GlobalStage):
    """Likely label errors: out-of-sample probabilities (K-fold classifier or given) + cleanlab."""

    name = "label_noise"
    Params = LabelNoiseParams
    flags = ("label_issue",)
    extra = "labels"
    version = "1"

    params: LabelNoiseParams

    def input_columns(self) -> list[str]:
        return list(dict.fromkeys([self.params.label, self.params.spec.input_column]))

    OUTPUTS = OUTPUTS

    # -- map: per shard --------------------------------------------------------------------------
    def map(self, batch: pa.Table) -> pa.Table:
        from curate.labelnoise.features import meta_lists, pixel_vectors

        p, spec = self.params, self.params.spec
        labels = batch.column(p.label)
        if not pa.types.is_string(labels.type):
            labels = labels.cast(pa.string())
        col = batch.column(spec.input_column)
        if spec.kind == "pixels":
            feats = pixel_vectors(col.to_pylist(), size=p.pixel_size, mode=p.pixel_mode)
        elif spec.meta_key is not None:
            feats = meta_lists(col.to_pylist(), spec.meta_key)
        else:
            feats = col
        return pa.table({"id": batch.column("id"), "label": labels, "features": feats})

    # -- reduce: the whole dataset -----------------------------------------------------------------
    def reduce(self, mapped: pa.Table) -> pa.Table:
        p, spec = self.params, self.params.spec
        n = mapped.num_rows
        summary: dict[str, Any] = {"features": p.features, "rows": n}
        label_col = mapped.column("label")
        feats = mapped.column("features")

        if spec.kind == "pred_probs":
            from curate.labelnoise.features import list_column_to_matrix

            probs, present = list_column_to_matrix(feats, what=f"pred_probs:{spec.column}")
            if not present.any():
                raise CurateError(f"pred_probs:{spec.column}: the column is empty in every row")
            codes, cmap = encode_label_column(label_col, classes=p.classes, n_columns=probs.shape[1])
            usable = present & (codes >= 0)
            x = None
        else:
            codes, cmap = encode_label_column(label_col, classes=p.classes)
            x, present, info = self._features(feats, codes >= 0)
            summary["feature_info"] = info
            usable = present & (codes >= 0)
            probs = None
        summary["classes"] = cmap.to_json()
        summary["unlabelled"] = int(label_col.null_count)
        summary["missing_features"] = int((~present).sum())

        # classes too small to cross-validate (or for cleanlab's minimum) are reported, not crashed on
        counts = np.bincount(codes[usable], minlength=len(cmap))
        minimum = max(p.min_examples_per_class, p.folds if probs is None else 1)
        small = [int(k) for k in np.flatnonzero((counts > 0) & (counts < minimum))]
        if small and probs is None:
            summary["classes_skipped"] = {cmap.name(k): int(counts[k]) for k in small}
            log.warning("label_noise: %d class(es) have fewer than %d labelled examples and are left out: %s",
                        len(small), minimum, ", ".join(f"{cmap.name(k)} ({counts[k]})" for k in small[:10]))
            usable &= ~np.isin(codes, small)
        kept = np.flatnonzero(np.bincount(codes[usable], minlength=len(cmap)) > 0)
        summary["scored"] = int(usable.sum())

        if len(kept) < (2 if probs is None else 1):
            summary["warning"] = (f"label_noise needs at least two classes with {minimum}+ labelled examples; nothing was scored"
                                  if probs is None else "no row has both a label and probabilities; nothing was scored")
            log.warning("label_noise: %s", summary["warning"])
            self.summary.update(summary)
            return self._result(n, cmap.names, codes, None, None, None)

        idx = np.flatnonzero(usable)
        if probs is None:
            from curate.labelnoise.crossval import cross_val_pred_probs

            # compact class indices 0..len(kept)-1 for the classifier and cleanlab
            to_compact = np.full(len(cmap), -1, dtype=np.int64)
            to_compact[kept] = np.arange(len(kept))
            y = to_compact[codes[idx]]
            cv = cross_val_pred_probs(x[idx], y, n_classes=len(kept), classifier=p.classifier,
                                      folds=p.folds, seed=p.seed, knn_neighbors=p.knn_neighbors, n_jobs=p.n_jobs)
            pp = cv.pred_probs
            names = [cmap.name(int(k)) for k in kept]
            summary.update({"classifier": p.classifier, "folds": p.folds, "cv_seconds": round(cv.seconds, 2),
                            "fold_accuracy": [round(a, 4) for a in cv.fold_accuracy]})
            accuracy = cv.accuracy
            back = kept
        else:
            y = codes[idx]
            pp = probs if len(idx) == n else probs[idx]
            names = cmap.names
            accuracy = float((pp.argmax(1) == y).mean())
            back = np.arange(len(cmap))

        from curate.labelnoise.detect import find_issues, summarize, trust

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*too few examples.*")
            res = find_issues(y, pp, copy=False, method=p.method, rank_by=p.rank_by,
                              min_examples_per_class=p.min_examples_per_class, n_jobs=p.n_jobs)
        summary.update(trust(accuracy, y, p.min_adjusted_accuracy))
        if "warning" in summary:
            log.warning("label_noise: %s", summary["warning"])
        summary.update(summarize(y, res, names))
        summary["cleanlab_seconds"] = round(res.seconds, 2)
        self.summary.update(summary)
        log.info("label_noise: %d of %d scored rows flagged (held-out accuracy %.3f)",
                 int(res.is_issue.sum()), len(idx), accuracy)
        return self._result(n, cmap.names, codes, idx, res, back)

    def _features(self, feats: pa.ChunkedArray, labelled: np.ndarray):
        """The feature matrix (rows aligned with the dataset, or with the labelled rows for tfidf)."""
        from curate.labelnoise.features import list_column_to_matrix, reduce_dims, tfidf_matrix

        p, spec = self.params, self.params.spec
        if spec.kind == "tfidf":
            texts = feats.to_pylist()
            present = np.array([bool(t and t.strip()) for t in texts], dtype=bool)
            rows = np.flatnonzero(present & labelled)
            if len(rows) == 0:
                return np.zeros((len(texts), 0), np.float32), present, {}
            # vocabulary from the labelled rows only (the unlabelled ones are never scored)
            x, info = tfidf_matrix([texts[i] for i in rows], components=p.pca_components,
                                   sparse_ok=p.classifier == "logistic", seed=p.seed)
            # rows of x follow `rows`; scatter to full length by index map (sparse stays sparse)
            full_index = np.full(len(texts), -1, dtype=np.int64)
            full_index[rows] = np.arange(len(rows))
            return _RowView(x, full_index), present, info
        what = "pixels" if spec.kind == "pixels" else f"features {spec.column}"
        x, present = list_column_to_matrix(feats, what=what)
        info: dict[str, Any] = {"dim": int(x.shape[1])}
        if spec.kind == "pixels":
            info = {"pixels": f"{p.pixel_size}x{p.pixel_size} {p.pixel_mode}"}
            # scaled to [0, 1], not standardised per pixel (that amplifies near-constant border pixels)
            reduced, pinfo = reduce_dims(x[present] / 255.0, components=p.pca_components, seed=p.seed,
                                         standardize=False)
            info.update(pinfo)
            x = np.zeros((len(present), reduced.shape[1]), dtype=np.float32)
            x[present] = reduced
        return x, present, info

    @staticmethod
    def _result(n: int, names: list[str], codes: np.ndarray, idx, res, back) -> pa.Table:
        """The result table, built column-wise (a million rows in well under a second)."""
        names_arr = pa.array(names, pa.string())

        def named(code: np.ndarray, valid: np.ndarray) -> pa.Array:
            ind = pa.array(np.where(valid, code, 0).astype(np.int32), mask=~valid)
            return pa.DictionaryArray.from_arrays(ind, names_arr).cast(pa.string())

        def masked(values: np.ndarray, valid: np.ndarray, typ) -> pa.Array:
            return pa.array(values, type=typ, mask=~valid)

        given = named(codes, codes >= 0)
        scored = np.zeros(n, dtype=bool)
        issue = np.zeros(n, dtype=bool)
        if res is None:
            nulls = {f.name: pa.nulls(n, f.type) for f in OUTPUT_SCHEMA if f.name != "given_label"}
            return flag_table({"given_label": given, **nulls}, pa.nulls(n, pa.string()), pa.nulls(n, pa.string()),
                              schema=OUTPUT_SCHEMA)
        scored[idx] = True
        issue[idx] = res.is_issue
        sugg = np.zeros(n, dtype=np.int64)
        sugg[idx] = back[res.suggested]
        cols: dict[str, Any] = {"given_label": given, "suggested_label": named(sugg, scored)}
        for name, values in (("suggested_prob", res.suggested_prob), ("given_prob", res.given_prob),
                             ("label_quality", res.quality)):
            full = np.zeros(n, dtype=np.float32)
            full[idx] = values
            cols[name] = masked(full, scored, pa.float32())
        rank = np.zeros(n, dtype=np.int32)
        rank[idx] = res.ranks()
        cols["issue_rank"] = masked(rank, issue, pa.int32())
        flags = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32), mask=~issue),
                                               pa.array(["label_issue"])).cast(pa.string())
        details: list[Any] = [None] * n
        for j in np.flatnonzero(res.is_issue).tolist():
            i = int(idx[j])
            g, s = names[codes[i]], names[int(back[res.suggested[j]])]
            if s != g:
                details[i] = f'labelled "{g}", model says "{s}" (p={res.suggested_prob[j]:.2f})'
            else:
                details[i] = (f'labelled "{g}", model is unsure (p={res.given_prob[j]:.2f} for the given '
                              f'label, label quality {res.quality[j]:.2f})')
        return flag_table(cols, flags, pa.array(details, pa.string()), schema=OUTPUT_SCHEMA)


class _RowView:
    """Rows of a (sparse) matrix addressed by dataset row: ``view[rows]`` -> the matrix rows for them."""

    def __init__(self, x, full_index: np.ndarray):
        self.x = x
        self.full_index = full_index
        self.shape = (len(full_index), x.shape[1])

    def __getitem__(self, rows):
        return self.x[self.full_index[rows]]
