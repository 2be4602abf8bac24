"""``label_noise``'s reduce as shard tasks: folds as tasks, cleanlab from global statistics.

The driver reduce (``curate/stages/label_noise.py``) is cross-validated probabilities -> cleanlab's
``find_label_issues`` and quality scores -> the trust guard -> the summary. Here every step that
touches rows runs in tasks over files under ``_map/_dist/`` (``S`` map shards, ``P`` partitions,
``N`` scored rows, ``K`` classes, ``D`` feature dimensions):

A. **scan** (one task per map shard): label values and their counts, feature presence and list
   lengths. The driver builds the class map, picks the feature column as the driver reduce does
   (``features: auto``), drops classes that are too small, and gives each scored row its position.
   Pixels: a sample of at most about ``PCA_SAMPLE`` rows (a hash of the row number) is fitted by PCA
   in one task, which writes the mean and components.
T. **tfidf vocabulary** (the rule of :func:`curate.label_noise.features.tfidf_vocabulary`, over the
   texts that have a label): each shard task counts its texts' terms (document frequency and total
   count per word 1-2 gram, scikit-learn's tokens) and sends them to ``hash(term) % P``; each
   partition task sums them, keeps the terms within the document-frequency bounds (``min_df`` 2,
   ``max_df`` 90%) and returns the counts of the total counts among its ``max_features`` most frequent
   terms (a few hundred distinct values); the driver finds the count at the ``max_features`` cut; if
   the terms of that count cross the cut, one task merges each partition's first ``need`` of them
   (alphabetical) and returns the last one taken; one task writes the vocabulary (alphabetical, at
   most ``TFIDF_MAX_FEATURES`` = 200,000 terms) with its IDF. **Global and vocabulary-sized, not
   row-sized**: a partition task holds ``1/P`` of the distinct terms of all the texts (most of them
   1-grams and 2-grams seen once); the vocabulary file is at most 200,000 terms (a few MB), read by
   every prepare task; the driver holds ``P`` short lists of counts and one term. (The 25,000 IMDB
   test reviews: 1.48M distinct terms, 2.7M shuffled, 0.43M within the bounds,
   ``docs/benchmarks/ray.md``; by Heaps' law about 25M distinct terms at 1M such documents, 2.5 GB
   over the partitions, and 800M at 100M, 80 GB: hundreds of partitions. The vocabulary stays at
   200,000 terms.) A dense classifier (``mlp``, ``knn``, ``lda``, ``logistic+knn``...) on tfidf: each
   shard task writes the TF-IDF rows of the labelled texts a hash of the row number picks (at most
   about ``PCA_SAMPLE`` rows over all shards, the driver reduce's sample); one task fits the truncated
   SVD on them (:func:`curate.label_noise.features.fit_svd`: sparse rows, about 275 non-zeros each for
   an IMDB review, 0.2 GB at 100,000) and writes its ``pca_components`` x V components (51 MB at 64 x
   200,000), which every prepare task reads.
B. **prepare** (one task per map shard): each scored row's position, compact class, fold
   (:func:`curate.label_noise.crossval.fold_of`: a hash of the row number) and features (pixels
   projected batch-independently; ``features: [a, b, ...]``: each column scaled to unit length row by
   row and the columns side by side, by the driver's own :func:`curate.label_noise.features.unit_concat`
   (the scan gives each column's width, so a shard where a column has no value still gets its width);
   tfidf rows by the fixed vocabulary and IDF, as CSR rows with sorted
   column indices, :func:`curate.label_noise.features.tfidf_transform`; for a dense classifier
   projected on the SVD's components, :func:`curate.label_noise.features.project_sparse`), or its
   given probabilities.
C. **C** (one task, ``logistic_c`` unset): the logistic ``C`` chosen on the same sample of the first
   fold's training rows as the driver reduce (:func:`curate.label_noise.crossval.c_selection_split`):
   ``N`` labels plus at most 25,000 rows of features.
D. **folds** (one task per fold): the fold's training rows' features are read from every shard (tfidf:
   one CSR matrix, the rows in the driver's order) and the classifier(s) fitted; the held-out rows are
   read again and predicted in the same blocks of ``PREDICT_BLOCK`` rows as the driver reduce;
   probabilities go to their shards' files. **A fold task holds its training features,
   ``N x D x 4 x (folds-1)/folds`` bytes** (tfidf: 8 bytes per non-zero, e.g. ~200 per IMDB review)
   (worker memory), plus the classifier's working copy (the logistic pipeline standardises a copy) and
   one block. ``rounds`` > 1 repeats C and D fitting only on the rows the previous round's cleanlab
   kept.
E. **cleanlab** (radix passes over the shards, :func:`curate.distributed.select.select`): per-class
   thresholds from exact sums of the self-confidences (K x 256 integers per task,
   :func:`curate.label_noise.detect.exact_sums`), the confident joint (K x K counts), calibrated and
   turned into per-cell prune counts on the driver with cleanlab's own functions; then each pruned
   cell's cut-off on the margin ``p[j] - p[given]`` (``prune_by_noise_rate``) or on ``p[given]``
   (``prune_by_class``) is found exactly by four 8-bit radix passes (256 counts per cell per task).
   Rows tied at a cut-off are split as cleanlab splits them: where the ties cross the cut, one task
   gathers that class's values in row order and runs cleanlab's own ``np.argsort`` (class-sized worker
   memory, only for such cells). ``confident_learning``: per row, the off-diagonal rows of the
   confident joint at the global thresholds (:func:`curate.label_noise.detect.off_diagonal`).
   ``low_normalized_margin`` / ``low_self_confidence``: the number of issues is the global count of
   those rows (cleanlab's ``num_label_issues``), the cut-off the score at that rank (radix passes),
   the rows tied at it taken from the earliest shards (:func:`curate.label_noise.detect.lowest`).
   ``round_count: calibrated`` (:func:`curate.label_noise.detect.calibrated_round_count`): per round
   (the last and the first) the temperature by a global NLL over the fixed grid
   :data:`curate.label_noise.detect.TEMPERATURES` (each task returns exact sums, ``grid x 256``
   integers), the joint of the scaled probabilities (scaled inside the threshold and joint tasks), and
   the smaller off-diagonal count of the two; the flags are that many lowest label qualities of the last
   round (the same radix passes and tie rule as ``low_*``).
F. **guard** (more passes of the same kind): the kept accuracy, the class cap, the top fraction and,
   with ``rounds`` > 1 and ``round_count: first``, the first round's cleanlab count (global top-k cuts
   on the label quality, lowest first, ties to the earliest rows, as
   :func:`curate.label_noise.detect.guard`'s ``flag_top_fraction`` and ``max_flags``; the count is the
   rows the second round was not fitted on), then the issue ranks by one
   range-partitioned sort of the flagged rows.
G. **assemble** (one task per map shard): the output shard, built by the stage's own ``_result``.

Driver memory: K- and K x K-sized tables, 256 counts per pruned cell and radix pass, ``S`` counts, the
``C`` candidates, ``P`` lists of term-count counts; no row, no term list and no model (models live in
their fold task). Results are identical to the driver reduce (``tests/test_distributed_label_noise.py``:
every output column and the summary, but the timings), for every setting: nothing is declined.
"""

from __future__ import annotations

import logging
import time
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import storage
from curate.distributed.select import digit_counts, select, sortable
from curate.distributed.shuffle import ReduceJob, read_partition, write_partitions
from curate.distributed.vectors import matrix, one_thread, vector_array
from curate.errors import CurateError
from curate.rundir import shard_name

log = logging.getLogger(__name__)

#: the filter methods whose flags are the off-diagonal rows of the confident joint, or the lowest scores
#: up to their count (:func:`curate.label_noise.detect.off_diagonal`)
OFF_DIAGONAL = ("confident_learning", "low_normalized_margin", "low_self_confidence")
def _tfidf_dense(params) -> bool:
    """Whether the classifier needs dense features (tfidf then goes through a truncated SVD)."""
    from curate.label_noise.crossval import resolve_classifier

    return resolve_classifier(params.classifier, sparse=True) != "logistic"


# -- small helpers ---------------------------------------------------------------------------------
def _path(job: ReduceJob, *parts: str):
    return storage.join(job.work, *parts)


def _labels(t: pa.Table) -> pa.ChunkedArray:
    col = t.column("label")
    return col if pa.types.is_string(col.type) else col.cast(pa.string())


def _present(col) -> np.ndarray:
    """Rows whose list is non-null and non-empty (as :func:`curate.vectors.list_column_to_matrix`)."""
    if pa.types.is_null(col.type):
        return np.zeros(len(col), dtype=bool)
    valid = np.asarray(col.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = pc.list_value_length(col).fill_null(0).to_numpy(zero_copy_only=False)
    return valid & (np.asarray(lengths) > 0)


def _value_counts(labels: pa.ChunkedArray, mask: np.ndarray | None = None) -> dict[str, int]:
    if mask is not None:
        labels = labels.filter(pa.array(mask))
    out = {}
    for row in pc.value_counts(labels).to_pylist():
        if row["values"] is not None:
            out[row["values"]] = int(row["counts"])
    return out


def _codes(labels: pa.ChunkedArray, code_of: dict[str, int]) -> np.ndarray:
    values = labels.to_pylist()
    return np.array([-1 if v is None else code_of[v] for v in values], dtype=np.int64)


# -- A. scan ---------------------------------------------------------------------------------------
def _scan_task(arg) -> dict:
    job, s, n_candidates, text_candidate, combine = arg
    columns = ["label", *(f"f{j}" for j in range(n_candidates))]
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=columns)
    labels = _labels(t)
    out = {"shard": s, "rows": t.num_rows, "labels": _value_counts(labels), "nulls": labels.null_count,
           "candidates": []}
    for j in range(n_candidates):
        col = t.column(f"f{j}").combine_chunks() if t.num_rows else t.column(f"f{j}")
        if j == text_candidate:
            from curate.label_noise.features import text_present

            n_text = int(pc.sum(pc.greater(pc.utf8_length(col), 0)).as_py() or 0) if t.num_rows else 0
            present = text_present(col.to_pylist())
            out["candidates"].append({"nonnull": t.num_rows - col.null_count, "n_text": n_text, "dims": [],
                                      "present": int(present.sum()), "values": _value_counts(labels, present)})
            continue
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type) or pa.types.is_fixed_size_list(col.type)
                or pa.types.is_null(col.type)):
            out["candidates"].append({"nonnull": t.num_rows - col.null_count, "bad_type": str(col.type)})
            continue
        present = _present(col) if t.num_rows else np.zeros(0, dtype=bool)
        dims = sorted(set(np.asarray(pc.list_value_length(col).to_numpy(zero_copy_only=False))[present].tolist())) \
            if present.any() else []
        out["candidates"].append({"nonnull": t.num_rows - col.null_count, "present": int(present.sum()), "dims": dims,
                                  "values": _value_counts(labels, present), "mask": present})
    if combine:  # features: [a, b, ...]: a row has features when every column has a value
        present = np.logical_and.reduce([c.get("mask", np.zeros(t.num_rows, bool)) for c in out["candidates"]])
        out["combined"] = {"present": int(present.sum()), "values": _value_counts(labels, present)}
    for c in out["candidates"]:
        c.pop("mask", None)
    return out


def _features_of(t: pa.Table, column, kind: str, pca) -> tuple[np.ndarray, np.ndarray]:
    """The shard's feature matrix (or probabilities) and which rows have one, as the driver reduce makes
    them (``concat``: ``column`` is ``(columns, names, dims)`` of :func:`curate.label_noise.features.unit_concat`)."""
    from curate.label_noise.features import project, unit_concat
    from curate.vectors import list_column_to_matrix

    if kind == "concat":
        columns, names, dims = column
        x, present, _ = unit_concat([t.column(c) for c in columns], names, dims)
        return x[present], present
    col = t.column(column)
    present = _present(col.combine_chunks() if t.num_rows else col)
    if kind == "pixels":
        x, _ = list_column_to_matrix(col, what="pixels")
        x = x[present] / 255.0
        if pca is not None:
            x = project(x, *pca)
        return x, present
    x, _ = list_column_to_matrix(col, what=f"pred_probs:{column}" if kind == "pred_probs" else f"features {column}")
    return x[present], present


def _pca_sample_task(arg) -> dict:
    job, s, column, n_present, seed = arg
    from curate.embeddings.semantic_dedup import sample_mask
    from curate.label_noise.features import PCA_SAMPLE

    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=[column])
    x, present = _features_of(t, column, "pixels", None)
    pick = sample_mask(np.flatnonzero(present) + job.offsets[s], n_present, PCA_SAMPLE, seed=seed)
    if pick.any():
        storage.write_table(pa.table({"x": vector_array(x[pick])}), _path(job, "S", f"{s:05d}.parquet"),
                            compression="lz4")
    return {"rows": t.num_rows}


@one_thread
def _pca_fit_task(arg) -> dict:
    job, components, seed = arg
    from curate.label_noise.features import fit_pca, pca_info

    folder = _path(job, "S")
    x = np.concatenate([matrix(storage.read_table(f), "x") for f in sorted(folder.glob("*.parquet"))])
    pca = fit_pca(x, components=components, seed=seed)
    if pca is not None:
        storage.write_table(pa.table({"mean": vector_array(pca.mean_[None, :]), "components": vector_array(
            np.asarray(pca.components_).reshape(1, -1))}), _path(job, "S", "pca.parquet"))
    shape = list(np.asarray(pca.components_).shape) if pca is not None else None
    return {"info": pca_info(pca, x.shape[1]), "shape": shape}


def _read_pca(job: ReduceJob, shape):
    if shape is None:
        return None
    t = storage.read_table(_path(job, "S", "pca.parquet"))
    return matrix(t, "mean")[0], matrix(t, "components")[0].reshape(shape)


# -- T. the tfidf vocabulary ----------------------------------------------------------------------
def _docs(job: ReduceJob, s: int, column: str, code_of: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """Map shard ``s``'s texts, which have a text (:func:`curate.label_noise.features.text_present`) and
    their label codes."""
    from curate.label_noise.features import text_present

    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["label", column])
    texts = t.column(column).to_pylist()
    return texts, text_present(texts), _codes(_labels(t), code_of)


def _term_partition(terms: pa.Array, partitions: int) -> np.ndarray:
    """Partition of each term: a hash of its UTF-8 bytes."""
    from curate.dedup.hashing import substring_hashes
    from curate.distributed.shuffle import partition_of

    terms = pa.array(terms, pa.large_string()) if not isinstance(terms, pa.Array) else terms.cast(pa.large_string())
    offsets = np.frombuffer(terms.buffers()[1], np.int64)[terms.offset:terms.offset + len(terms) + 1]
    data = np.frombuffer(terms.buffers()[2], np.uint8) if terms.buffers()[2] is not None else np.zeros(0, np.uint8)
    return partition_of(substring_hashes(data, offsets[:-1], offsets[1:]), partitions=partitions)


def _terms_task(arg) -> dict:
    """Shard ``s``'s term counts over its vocabulary documents (a text and a label), to the term partitions."""
    job, s, column, code_of = arg
    from curate.label_noise.features import count_terms

    texts, present, codes = _docs(job, s, column, code_of)
    docs = np.flatnonzero(present & (codes >= 0))
    terms, df, tf, _ = count_terms([texts[i] for i in docs])
    if len(terms):
        table = pa.table({"term": pa.array(terms.tolist(), pa.large_string()), "df": df, "tf": tf})
        write_partitions(table, _term_partition(table.column("term").combine_chunks(), job.partitions),
                         _path(job, "T"), s)
    return {"docs": len(docs)}


def _candidates_task(arg) -> dict:
    """Term partition ``q``: the terms' global counts, those within the document-frequency bounds kept
    (alphabetical, to ``C/``); returns their number and the counts of the ``tf`` values of its
    ``max_features`` most frequent (all of the values tied with the last)."""
    job, q, n_docs, max_features = arg
    from curate.label_noise.features import alphabetical, df_keep

    t = read_partition(_path(job, "T"), q)
    if t is None:
        return {"candidates": 0, "tf": np.zeros(0, np.int64), "count": np.zeros(0, np.int64)}
    t = t.group_by("term").aggregate([("df", "sum"), ("tf", "sum")]).rename_columns(["term", "df", "tf"])
    t = t.filter(pa.array(df_keep(t.column("df").to_numpy(), n_docs)))
    t = t.take(pa.array(alphabetical(t.column("term"))))
    storage.write_table(t, _path(job, "C", f"{q:05d}.parquet"), compression="lz4")
    tf = t.column("tf").to_numpy()
    if len(tf) > max_features:
        tf = tf[tf >= np.partition(tf, len(tf) - max_features)[len(tf) - max_features]]
    values, count = np.unique(tf, return_counts=True)
    return {"candidates": t.num_rows, "tf": values, "count": count}


def _candidates(job: ReduceJob, q: int) -> pa.Table | None:
    path = _path(job, "C", f"{q:05d}.parquet")
    return storage.read_table(path) if path.exists() else None


@one_thread
def _cut_task(arg) -> dict:
    """The alphabetically ``need``-th of the terms whose total count is ``tf`` (the ties at the
    ``max_features`` cut): each partition's first ``need`` of them, merged."""
    job, tf, need = arg
    first = []
    for q in range(job.partitions):
        t = _candidates(job, q)
        if t is not None:
            first += t.filter(pc.equal(t.column("tf"), tf)).column("term").to_pylist()[:need]
    return {"last": sorted(first)[need - 1]}


@one_thread
def _vocab_task(arg) -> dict:
    """The vocabulary (alphabetical) and its IDF, from every partition's chosen candidates, to ``V.parquet``."""
    job, n_docs, tf, last = arg
    from curate.label_noise.features import alphabetical, tfidf_idf

    parts = []
    for q in range(job.partitions):
        t = _candidates(job, q)
        if t is None:
            continue
        if tf is not None:
            above = pc.greater(t.column("tf"), tf)
            if last is not None:
                above = pc.or_(above, pc.and_(pc.equal(t.column("tf"), tf), pc.less_equal(t.column("term"), last)))
            else:
                above = pc.or_(above, pc.equal(t.column("tf"), tf))
            t = t.filter(above)
        parts.append(t.select(["term", "df"]))
    t = pa.concat_tables(parts) if parts else pa.table({"term": pa.array([], pa.large_string()),
                                                         "df": pa.array([], pa.int64())})
    t = t.take(pa.array(alphabetical(t.column("term"))))
    idf = tfidf_idf(t.column("df").to_numpy(), n_docs)
    storage.write_table(pa.table({"term": t.column("term"), "idf": idf}), _path(job, "V", "vocabulary.parquet"))
    return {"size": t.num_rows}


def _vocabulary(stage, job: ReduceJob, executor, column: str, code_of: dict, n_docs: int) -> int:
    """Phases T: the vocabulary of the labelled texts by scikit-learn's rule as
    :func:`curate.label_noise.features.tfidf_vocabulary` states it, written to ``V.parquet``; its size."""
    from curate.label_noise import features

    run, S, P = executor.map_unordered, job.n_shards, job.partitions
    features.df_bounds(n_docs)
    list(run(_terms_task, [(job, s, column, code_of) for s in range(S)], desc=f"{stage.name} (tfidf terms)",
             total_rows=job.offsets[-1]))
    limit = features.TFIDF_MAX_FEATURES
    parts = list(run(_candidates_task, [(job, q, n_docs, limit) for q in range(P)], desc=f"{stage.name} (tfidf df)"))
    total = sum(r["candidates"] for r in parts)
    if not total:
        raise features.no_vocabulary(n_docs)
    tf = last = None
    if total > limit:  # the cut: the limit-th largest total count, and the alphabetical cut among its ties
        values = np.concatenate([r["tf"] for r in parts])
        counts = np.concatenate([r["count"] for r in parts])
        order = np.argsort(-values, kind="stable")
        values, counts = values[order], counts[order]
        uniq, starts = np.unique(-values, return_index=True)
        sums = np.add.reduceat(counts, starts)
        above = np.concatenate([[0], np.cumsum(sums)[:-1]])
        at = int(np.searchsorted(np.cumsum(sums), limit, side="left"))
        tf, need, tied = int(-uniq[at]), int(limit - above[at]), int(sums[at])
        if need < tied:
            last = next(iter(run(_cut_task, [(job, tf, need)], desc=f"{stage.name} (tfidf cut)")))["last"]
    return next(iter(run(_vocab_task, [(job, n_docs, tf, last)], desc=f"{stage.name} (tfidf vocabulary)")))["size"]


def _read_vocab(job: ReduceJob) -> tuple[list[str], np.ndarray]:
    t = storage.read_table(_path(job, "V", "vocabulary.parquet"))
    return t.column("term").to_pylist(), t.column("idf").to_numpy()


def _svd_sample_task(arg) -> dict:
    """Shard ``s``'s part of the truncated SVD's sample: the TF-IDF rows of its vocabulary documents that
    the hash of the row number picks (as the driver reduce picks them), to ``S/``."""
    job, s, column, code_of, n_docs, seed = arg
    from curate.embeddings.semantic_dedup import sample_mask
    from curate.label_noise.features import PCA_SAMPLE, tfidf_transform

    texts, present, codes = _docs(job, s, column, code_of)
    docs = np.flatnonzero(present & (codes >= 0))
    pick = docs[sample_mask(docs + job.offsets[s], n_docs, PCA_SAMPLE, seed=seed)]
    if len(pick):
        x = tfidf_transform([texts[i] for i in pick], *_read_vocab(job))
        storage.write_table(pa.table(_sparse_columns(x)), _path(job, "S", f"{s:05d}.parquet"), compression="lz4")
    return {"rows": len(pick)}


@one_thread
def _svd_fit_task(arg) -> dict:
    """The truncated SVD fitted on the sample (rows in the driver's order), its components to ``S/svd.parquet``."""
    job, vocabulary, components, seed = arg
    from curate.label_noise.features import fit_svd

    files = [_path(job, "S", f"{s:05d}.parquet") for s in range(job.n_shards)]
    x = _csr(pa.concat_tables([storage.read_table(f) for f in files if f.exists()]), vocabulary)
    comps = fit_svd(x, components=components, seed=seed)
    storage.write_table(pa.table({"components": vector_array(comps.reshape(1, -1))}), _path(job, "S", "svd.parquet"))
    return {"rows": x.shape[0], "shape": list(comps.shape)}


def _sparse_columns(x) -> dict[str, pa.Array]:
    """CSR rows as two list columns: column indices ``xi`` and values ``xv``."""
    offsets = pa.array(np.asarray(x.indptr, dtype=np.int32))
    return {"xi": pa.ListArray.from_arrays(offsets, pa.array(np.asarray(x.indices, np.int32))),
            "xv": pa.ListArray.from_arrays(offsets, pa.array(np.asarray(x.data, np.float32)))}


def _csr(table: pa.Table, dim: int):
    """:func:`_sparse_columns` back as a CSR matrix (rows in table order)."""
    import scipy.sparse as sp

    xi, xv = table.column("xi").combine_chunks(), table.column("xv").combine_chunks()
    indptr = np.asarray(xi.offsets, dtype=np.int64)
    indptr = (indptr - indptr[0]).astype(np.int32)
    return sp.csr_matrix((xv.flatten().to_numpy(), xi.flatten().to_numpy(), indptr), shape=(table.num_rows, dim))


def _x_columns(sparse: bool) -> list[str]:
    return ["xi", "xv"] if sparse else ["x"]


def _x(table: pa.Table, c):
    """The feature rows of ``table``: dense, or CSR for tfidf (``c.sparse``)."""
    return _csr(table, c.dim) if c.sparse else matrix(table, "x")


# -- B. prepare ------------------------------------------------------------------------------------
def _prepare_task(arg) -> dict:
    job, s, c = arg  # c: SimpleNamespace of the plan (column, kind, code_of, to_compact, pos0, folds, seed, pca)
    from curate.label_noise.crossval import fold_of

    if c.kind == "tfidf":
        return _prepare_texts(job, s, c)
    columns = c.column[0] if c.kind == "concat" else [c.column]
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["label", *columns])
    codes = _codes(_labels(t), c.code_of)
    if t.num_rows:
        x, present = _features_of(t, c.column, c.kind, _read_pca(job, c.pca))
    else:
        x, present = np.zeros((0, c.dim), np.float32), np.zeros(0, dtype=bool)
    compact = np.where(codes >= 0, c.to_compact[np.maximum(codes, 0)], -1)
    usable = present & (compact >= 0)
    local = np.flatnonzero(usable)
    x = x[usable[present]] if x.shape[1] else np.zeros((int(present.sum()), c.dim), np.float32)[usable[present]]
    row = local + job.offsets[s]
    y = compact[local]
    table = {"pos": np.arange(len(local), dtype=np.int64) + c.pos0[s], "row": row, "y": y.astype(np.int32),
             "fold": fold_of(row, c.folds, c.seed).astype(np.int16), "x": vector_array(x)}
    storage.write_table(pa.table(table), _path(job, "X", f"{s:05d}.parquet"), compression="lz4")
    raw_hits = int((x.argmax(1) == y).sum()) if c.kind == "pred_probs" and len(local) else 0
    return {"rows": t.num_rows, "raw_hits": raw_hits}


def _prepare_texts(job: ReduceJob, s: int, c) -> dict:
    """:func:`_prepare_task` for tfidf: the scored rows' TF-IDF on the global vocabulary, as CSR rows."""
    from curate.label_noise.crossval import fold_of
    from curate.label_noise.features import tfidf_transform

    texts, present, codes = _docs(job, s, c.column, c.code_of)
    compact = np.where(codes >= 0, c.to_compact[np.maximum(codes, 0)], -1)
    local = np.flatnonzero(present & (compact >= 0))
    terms, idf = _read_vocab(job)
    x = tfidf_transform([texts[i] for i in local], terms, idf)
    if c.svd is not None:  # a dense classifier: the rows projected on the SVD's components
        from curate.label_noise.features import project_sparse

        comps = matrix(storage.read_table(_path(job, "S", "svd.parquet")), "components")[0].reshape(c.svd)
        x = {"x": vector_array(project_sparse(x, comps) if len(local) else np.zeros((0, c.svd[0]), np.float32))}
    else:
        x = _sparse_columns(x)
    row = local + job.offsets[s]
    table = {"pos": np.arange(len(local), dtype=np.int64) + c.pos0[s], "row": row,
             "y": compact[local].astype(np.int32), "fold": fold_of(row, c.folds, c.seed).astype(np.int16), **x}
    storage.write_table(pa.table(table), _path(job, "X", f"{s:05d}.parquet"), compression="lz4")
    return {"rows": len(texts), "raw_hits": 0}


def _rows(job: ReduceJob, s: int, columns=None) -> pa.Table:
    return storage.read_table(_path(job, "X", f"{s:05d}.parquet"), columns=columns)


def _mask(job: ReduceJob, rnd: int, s: int, n: int) -> np.ndarray:
    """Rows of shard ``s`` round ``rnd`` fits on (round 0: all; later: those the previous round kept)."""
    if rnd == 0:
        return np.ones(n, dtype=bool)
    issue = storage.read_table(_path(job, "I", _itag(rnd - 1), f"{s:05d}.parquet")).column("issue").to_numpy(
        zero_copy_only=False)
    return ~np.asarray(issue, dtype=bool)


# -- C. the logistic C -----------------------------------------------------------------------------
@one_thread
def _c_task(arg) -> dict:
    job, rnd, seed, c = arg  # c: sparse, dim
    from curate.label_noise.crossval import c_selection_split, select_c_on

    ys, train = [], []
    for s in range(job.n_shards):
        t = _rows(job, s, ["pos", "y", "fold"])
        ys.append(t.column("y").to_numpy())
        fits = _mask(job, rnd, s, t.num_rows)
        train.append(t.column("pos").to_numpy()[(t.column("fold").to_numpy() != 0) & fits])
    y = np.concatenate(ys).astype(np.int64)
    fit, val = c_selection_split(y, np.concatenate(train), seed=seed)
    wanted = np.union1d(fit, val)
    parts = []
    for s in range(job.n_shards):
        t = _rows(job, s, ["pos", *_x_columns(c.sparse)])
        pos = t.column("pos").to_numpy()
        take = np.flatnonzero(np.isin(pos, wanted))
        if len(take):
            parts.append(t.take(pa.array(take)))
    x = _x(pa.concat_tables(parts), c)  # rows of `wanted`, ascending
    at = np.searchsorted(wanted, fit), np.searchsorted(wanted, val)
    value, tried = select_c_on(x[at[0]], y[fit], x[at[1]], y[val], sparse=c.sparse, seed=seed)
    return {"c": value, "tried": tried}


# -- D. folds --------------------------------------------------------------------------------------
@one_thread
def _fold_task(arg) -> dict:
    job, rnd, f, c = arg  # c: classifier, n_classes, seed, knn_neighbors, n_jobs, logistic_c
    from curate.label_noise.crossval import PREDICT_BLOCK, combine_members, fit_members, make_members, predict_members

    trains, n_test = [], 0
    for s in range(job.n_shards):  # which rows train, then their features into one preallocated matrix
        t = _rows(job, s, ["fold"])
        fold = t.column("fold").to_numpy()
        trains.append(np.flatnonzero((fold != f) & _mask(job, rnd, s, t.num_rows)))
        n_test += int(np.sum(fold == f))
    y_train = np.zeros(sum(len(r) for r in trains), dtype=np.int64)
    if c.sparse:  # CSR rows in the same order: one concatenation of the shards' rows
        parts = [_rows(job, s, ["y", "xi", "xv"]).take(pa.array(train)) for s, train in enumerate(trains) if len(train)]
        joined = pa.concat_tables(parts) if parts else None
        x_train = _csr(joined, c.dim) if joined is not None else None
        if joined is not None:
            y_train[:] = joined.column("y").to_numpy()
        del parts, joined
    else:
        x_train = np.zeros((len(y_train), c.dim), dtype=np.float32)
        at = 0
        for s, train in enumerate(trains):
            if len(train):
                t = _rows(job, s, ["y", "x"]).take(pa.array(train))
                x_train[at:at + len(train)] = matrix(t, "x")
                y_train[at:at + len(train)] = t.column("y").to_numpy()
                at += len(train)
    k = c.n_classes
    stats = {"fold": f, "n": n_test, "hits": 0, "member_hits": {}, "agree": 0, "a": np.zeros(k, np.int64),
             "b": np.zeros(k, np.int64), "rows": 0}
    if not n_test:
        return stats
    if len(np.unique(y_train)) < 2:
        raise CurateError("train_mask leaves fewer than two classes to fit in a fold" if rnd
                          else "a fold's training rows hold fewer than two classes; use fewer folds")
    bases = make_members(c.classifier, sparse=c.sparse, seed=c.seed, knn_neighbors=c.knn_neighbors, n_jobs=c.n_jobs,
                         logistic_c=c.logistic_c, lda_shrinkage=c.lda_shrinkage)
    models = fit_members(bases, x_train, y_train)
    del x_train
    present = np.arange(k)
    pending: list[pa.Table] = []  # held-out rows waiting for a full block
    out: dict[int, list[pa.Table]] = {}

    def predict(block: pa.Table) -> None:
        preds = predict_members(models, _x(block, c), k)
        members = list(preds)
        pred = combine_members(preds, present)
        y = block.column("y").to_numpy()
        stats["hits"] += int((pred.argmax(1) == y).sum())
        for m in members:
            stats["member_hits"][m] = stats["member_hits"].get(m, 0) + int((preds[m].argmax(1) == y).sum())
        if len(members) > 1:
            a, b = preds[members[0]].argmax(1), preds[members[1]].argmax(1)
            stats["agree"] += int((a == b).sum())
            stats["a"] += np.bincount(a, minlength=k)
            stats["b"] += np.bincount(b, minlength=k)
        shard = block.column("shard").to_numpy()
        res = pa.table({"pos": block.column("pos"), "y": block.column("y"), "p": vector_array(pred)})
        for s in np.unique(shard).tolist():
            out.setdefault(s, []).append(res.filter(pa.array(shard == s)))

    for s in range(job.n_shards):
        t = _rows(job, s, ["pos", "y", "fold", *_x_columns(c.sparse)])
        test = np.flatnonzero(t.column("fold").to_numpy() == f)
        if len(test):
            t = t.take(pa.array(test)).drop(["fold"])
            pending.append(t.append_column("shard", pa.array(np.full(t.num_rows, s, np.int32))))
        while pending and sum(b.num_rows for b in pending) >= PREDICT_BLOCK:
            joined = pa.concat_tables(pending).combine_chunks()
            predict(joined.slice(0, PREDICT_BLOCK))
            pending = [joined.slice(PREDICT_BLOCK)] if joined.num_rows > PREDICT_BLOCK else []
    if pending:
        predict(pa.concat_tables(pending).combine_chunks())
    for s, parts in out.items():
        storage.write_table(pa.concat_tables(parts), _path(job, "P", str(rnd), f"{s:05d}", f"from-{f:05d}.parquet"),
                            compression="lz4")
    return stats


# -- E. cleanlab -----------------------------------------------------------------------------------
def _probs(job: ReduceJob, rnd: int | None, s: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, compact classes and cleanlab-ready probabilities of shard ``s``'s scored rows (round
    ``rnd``'s out-of-fold ones, or the given ones for ``rnd=None``), in row order."""
    from curate.label_noise.detect import check_pred_probs

    if rnd is None:
        t = _rows(job, s, ["pos", "y", "x"])
        p = matrix(t, "x")
    else:
        t = read_partition(_path(job, "P", str(rnd)), s)
        if t is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        t = t.take(pa.array(np.argsort(t.column("pos").to_numpy(), kind="stable")))
        p = matrix(t, "p")
    y = t.column("y").to_numpy().astype(np.int64)
    return t.column("pos").to_numpy(), y, check_pred_probs(np.array(p, dtype=np.float32), y, copy=False)


def _keys(v: np.ndarray) -> np.ndarray:
    return sortable(v).astype(np.uint64)


#: radix digit width of the cut-off passes: 256 counts per value set and pass (up to K x K sets at once)
BITS = 8


def _cell_values(p: np.ndarray, y: np.ndarray, cell) -> np.ndarray:
    """Values that rank one cleanlab cell's rows, in row order: ``p[j] - p[k]`` of the rows given ``k``
    (``prune_by_noise_rate``, cell ``(k, j)``), or ``p[k]`` (``prune_by_class``, cell ``(k, k)``)."""
    k, j = cell
    rows = p[y == k]
    return rows[:, j] - rows[:, k] if j != k else rows[:, k]


def _stats_task(arg) -> dict:
    job, rnd, s, k, thresholds, temperature = arg
    from curate.label_noise.detect import exact_sums, temper

    _, y, p = _probs(job, rnd, s)
    if temperature is not None:  # round_count: calibrated (curate.label_noise.detect.calibrated_round_count)
        p = temper(p, temperature)
    if not len(y):
        return {"sums": np.zeros((k, 256), np.int64), "joint": np.zeros((k, k), np.int64)}
    if thresholds is None:
        return {"counts": np.bincount(y, minlength=k), "sums": exact_sums(p[np.arange(len(y)), y], y, k)}
    # cleanlab.count.compute_confident_joint, row by row
    confident = p >= thresholds - 1e-6
    n_conf = confident.sum(axis=1)
    guess = np.where(n_conf > 1, p.argmax(axis=1), confident.argmax(axis=1))
    some = n_conf > 0
    return {"joint": np.bincount(y[some] * k + guess[some], minlength=k * k).reshape(k, k)}


def _cells_task(arg) -> dict:
    job, rnd, s, cells, queries, shift = arg
    _, y, p = _probs(job, rnd, s)
    return {"counts": digit_counts([_cell_values(p, y, c) if len(y) else np.zeros(0, np.float32) for c in cells],
                                   queries, shift, BITS)}


@one_thread
def _tie_task(arg) -> dict:
    """One cell whose ties cross its cut: cleanlab's own argsort over the class's rows in row order."""
    job, rnd, cell, take, key = arg
    vals, pos = [], []
    for s in range(job.n_shards):
        ps, y, p = _probs(job, rnd, s)
        if len(y):
            vals.append(_cell_values(p, y, cell))
            pos.append(ps[y == cell[0]])
    v, pos = np.concatenate(vals), np.concatenate(pos)
    order = np.argsort(-v) if cell[0] != cell[1] else np.argsort(v)  # as cleanlab.filter._prune_by_count / _class
    chosen = order[:take]
    tied = chosen[_keys(v[chosen]) == np.uint64(key)]
    return {"cell": cell, "pos": np.sort(pos[tied])}


def _nll_task(arg) -> dict:
    """Shard ``s``'s :func:`curate.label_noise.detect.temperature_nll_sums` of round ``rnd``."""
    job, rnd, s = arg
    from curate.label_noise.detect import TEMPERATURES, temperature_nll_sums

    _, y, p = _probs(job, rnd, s)
    return {"sums": temperature_nll_sums(y, p) if len(y) else np.zeros((len(TEMPERATURES), 256), np.int64)}


#: the pseudo-method of ``round_count: calibrated``'s flags: the lowest label quality (the stage's ``rank_by``)
QUALITY = "quality:"


def _low_scores(y: np.ndarray, p: np.ndarray, method: str) -> np.ndarray:
    """The scores a lowest-n cut ranks: a ``low_*`` method's, or ``quality:<rank_by>`` (the label quality,
    as in :func:`_scores`)."""
    from curate.label_noise.detect import label_quality, label_scores

    if method.startswith(QUALITY):
        return label_quality(y, p, method[len(QUALITY):])
    return label_scores(y, p, method)


def _low_task(arg) -> dict:
    """``low_*`` methods: shard ``s``'s count of off-diagonal rows (``count``), radix counts of its scores
    (``radix``), or how many of its scores equal the cut-off key (``ties``)."""
    job, rnd, s, method, thresholds, mode, extra = arg
    from curate.label_noise.detect import off_diagonal

    _, y, p = _probs(job, rnd, s)
    if mode == "count":
        return {"off": int(off_diagonal(y, p, thresholds).sum()) if len(y) else 0}
    scores = _low_scores(y, p, method)
    if mode == "radix":
        return {"counts": digit_counts([scores], extra["queries"], extra["shift"], BITS)}
    return {"shard": s, "ties": int(np.sum(_keys(scores) == np.uint64(extra["key"])))}


def _issue_task(arg) -> dict:
    """Shard ``s``'s cleanlab flags from the cells' cut-offs (and cleanlab's per-row last step)."""
    job, rnd, s, k, method, cuts, thresholds = arg
    from cleanlab.filter import _reduce_issues, find_predicted_neq_given

    from curate.label_noise.detect import off_diagonal

    pos, y, p = _probs(job, rnd, s)
    if not len(y):
        storage.write_table(pa.table({"pos": pos, "issue": np.zeros(0, bool)}),
                            _path(job, "I", _itag(rnd), f"{s:05d}.parquet"))
        return {"issues": np.zeros(k, np.int64), "rows": 0}
    if method == "predicted_neq_given":
        issue = np.asarray(find_predicted_neq_given(y, p), dtype=bool)
    elif method == "confident_learning":
        issue = off_diagonal(y, p, thresholds)
    elif method in OFF_DIAGONAL or method.startswith(QUALITY):  # the lowest scores: below the cut-off key, and
        key, quota = cuts                                            # this shard's quota of ties
        keys = _keys(_low_scores(y, p, method))
        issue = keys < np.uint64(key)
        issue[np.flatnonzero(keys == np.uint64(key))[:quota]] = True
    else:
        by_noise, by_class = np.zeros(len(y), bool), np.zeros(len(y), bool)
        for (ck, cj), (key, mode, tied) in cuts.items():
            rows = np.flatnonzero(y == ck)
            keys = _keys(_cell_values(p, y, (ck, cj)))
            sel = keys > np.uint64(key) if mode == "top" else keys < np.uint64(key)
            if tied is None:
                sel |= keys == np.uint64(key)
            elif len(tied):
                sel |= np.isin(pos[rows], tied)
            (by_noise if ck != cj else by_class)[rows[sel]] = True
        issue = {"prune_by_noise_rate": by_noise, "prune_by_class": by_class, "both": by_noise & by_class}[method]
    if method not in OFF_DIAGONAL and not method.startswith(QUALITY):  # cleanlab's last step (confident_learning's
        # is in off_diagonal; the calibrated count's lowest qualities have none)
        issue[_reduce_issues(p, y)] = False
    storage.write_table(pa.table({"pos": pos, "issue": issue}), _path(job, "I", _itag(rnd), f"{s:05d}.parquet"))
    return {"issues": np.bincount(y[issue], minlength=k), "rows": len(y)}


def _lowest_cuts(stage, job: ReduceJob, executor, rnd, thresholds, method: str | None = None,
                 n_issues: int | None = None) -> list[tuple[int, int]]:
    """``low_normalized_margin`` / ``low_self_confidence`` (:func:`curate.label_noise.detect.lowest`):
    the number of issues is the global count of off-diagonal rows (or ``n_issues``); the cut-off is the
    score of that rank (radix passes); rows tied at it go to the earliest shards first. Per shard:
    (key, quota). ``method``: default the stage's; ``quality:<rank_by>`` ranks by the label quality."""
    run, S = executor.map_unordered, job.n_shards
    method = method or stage.params.method
    if n_issues is None:
        n_issues = sum(r["off"] for r in run(_low_task, [(job, rnd, s, method, thresholds, "count", {})
                                                         for s in range(S)], desc=f"{stage.name} (issue count)"))
    if not n_issues:
        return [(0, 0)] * S  # below key 0 is nothing

    def passes(queries, shift):
        return (r["counts"] for r in run(
            _low_task, [(job, rnd, s, method, thresholds, "radix", {"queries": queries, "shift": shift})
                        for s in range(S)], desc=f"{stage.name} (cut-off)"))

    (key, below, _), = select(passes, [n_issues - 1], bits=BITS)
    ties = sorted(run(_low_task, [(job, rnd, s, method, thresholds, "ties", {"key": key}) for s in range(S)],
                      desc=f"{stage.name} (ties)"), key=lambda r: r["shard"])
    remaining, out = n_issues - below, []
    for r in ties:
        take = min(remaining, r["ties"])
        out.append((key, take))
        remaining -= take
    return out


def _joint(stage, job: ReduceJob, executor, rnd: int | None, k: int, counts: np.ndarray,
           temperature: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab's calibrated confident joint of round ``rnd``'s probabilities (scaled by ``temperature``
    when given) and its per-class thresholds, as :func:`cleanlab.count.compute_confident_joint`."""
    from cleanlab.internal.constants import TINY_VALUE
    from cleanlab.internal.util import round_preserving_row_totals

    from curate.label_noise.detect import confident_thresholds

    run, S = executor.map_unordered, job.n_shards
    parts = list(run(_stats_task, [(job, rnd, s, k, None, temperature) for s in range(S)],
                     desc=f"{stage.name} (thresholds)"))
    sums = sum(r["sums"] for r in parts)
    thresholds = confident_thresholds(counts, sums)
    joint = sum(r["joint"] for r in run(_stats_task, [(job, rnd, s, k, thresholds, temperature) for s in range(S)],
                                         desc=f"{stage.name} (confident joint)"))
    np.fill_diagonal(joint, joint.diagonal().clip(min=1))
    # cleanlab.count.calibrate_confident_joint from the label counts
    cal = (joint.T / np.clip(joint.sum(axis=1), a_min=TINY_VALUE, a_max=None) * counts).T
    cal = cal / np.clip(np.sum(cal), a_min=TINY_VALUE, a_max=None) * sum(counts)
    return round_preserving_row_totals(cal), thresholds


def _calibrated(stage, job: ReduceJob, executor, final: int, k: int, counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, float, dict]:
    """``round_count: calibrated`` (:func:`curate.label_noise.detect.calibrated_round_count`): per round
    (the last, and the first when it is another) the temperature by a global NLL over the fixed grid
    (each shard's exact sums), the joint of the scaled probabilities; then the count's lowest label
    qualities of the last round as its flags (``I/<final>/``). Returns the last round's (unscaled)
    joint, the flags per class, the seconds and the summary's ``calibrated_count``."""
    from curate.label_noise.detect import calibrated_count, calibration_summary, fit_temperature

    t0 = time.perf_counter()
    run, S, n = executor.map_unordered, job.n_shards, int(counts.sum())
    temps, estimates = [], []
    for rnd in ([final] if final == 0 else [final, 0]):
        sums = sum(r["sums"] for r in run(_nll_task, [(job, rnd, s) for s in range(S)],
                                          desc=f"{stage.name} (temperature)"))
        t = fit_temperature(sums, n)
        temps.append(t)
        estimates.append(calibrated_count(_joint(stage, job, executor, rnd, k, counts, t)[0]))
    calibration = calibration_summary(temps, estimates)
    cj, thresholds = _joint(stage, job, executor, final, k, counts)
    method = QUALITY + stage.params.rank_by
    shard_cuts = _lowest_cuts(stage, job, executor, final, thresholds, method=method, n_issues=calibration["count"])
    parts = list(run(_issue_task, [(job, final, s, k, method, shard_cuts[s], thresholds) for s in range(S)],
                     desc=f"{stage.name} (flags)"))
    return cj, np.asarray(sum(r["issues"] for r in parts)), time.perf_counter() - t0, calibration


def _cleanlab(stage, job: ReduceJob, executor, rnd: int | None, k: int, counts: np.ndarray) -> tuple[np.ndarray, float]:
    """cleanlab's ``find_label_issues`` (the stage's method) over round ``rnd``'s probabilities; writes
    each shard's flags to ``I/<rnd>/`` and returns the calibrated confident joint and the seconds."""
    from cleanlab.filter import _keep_at_least_n_per_class

    p = stage.params
    t0 = time.perf_counter()
    run, S = executor.map_unordered, job.n_shards
    cj, thresholds = _joint(stage, job, executor, rnd, k, counts)
    cuts: dict = {}
    shard_cuts = [cuts] * S
    if p.method in OFF_DIAGONAL[1:]:
        shard_cuts = _lowest_cuts(stage, job, executor, rnd, thresholds)
    elif p.method not in ("predicted_neq_given", "confident_learning"):
        prune = _keep_at_least_n_per_class(prune_count_matrix=cj.T, n=p.min_examples_per_class, frac_noise=1.0)
        wanted = []  # (cell, ascending rank of the cut, "top" / "bottom" rows taken, how many)
        for given in range(k):
            if counts[given] <= p.min_examples_per_class:
                continue  # cleanlab: too few examples to prune
            if p.method in ("prune_by_noise_rate", "both"):  # cleanlab.filter._prune_by_count
                wanted += [((given, j), int(counts[given]) - int(prune[j, given]), "top", int(prune[j, given]))
                           for j in range(k) if j != given and prune[j, given] > 0]
            if p.method in ("prune_by_class", "both"):  # cleanlab.filter._prune_by_class
                m = int(counts[given] - prune[given, given])
                if m >= 1:
                    wanted.append(((given, given), m - 1, "bottom", m))
        cells = [w[0] for w in wanted]

        def passes(queries, shift):
            return (r["counts"] for r in run(_cells_task, [(job, rnd, s, cells, queries, shift) for s in range(S)],
                                             desc=f"{stage.name} (cut-offs)"))

        ties = []
        for (cell, _, mode, m), (key, below, equal) in zip(wanted, select(passes, [w[1] for w in wanted], bits=BITS)):
            beyond = int(counts[cell[0]]) - below - equal if mode == "top" else below
            need = m - beyond  # rows tied at the cut that cleanlab flags
            cuts[cell] = (key, mode, None if need == equal else [])
            if need != equal:
                ties.append((job, rnd, cell, m, key))
        for r in run(_tie_task, ties, desc=f"{stage.name} (ties)"):
            cuts[r["cell"]] = (cuts[r["cell"]][0], cuts[r["cell"]][1], r["pos"])
    parts = list(run(_issue_task, [(job, rnd, s, k, p.method, shard_cuts[s], thresholds) for s in range(S)],
                     desc=f"{stage.name} (flags)"))
    return cj, np.asarray(sum(r["issues"] for r in parts)), time.perf_counter() - t0


# -- F. guard --------------------------------------------------------------------------------------
def _scores(job: ReduceJob, rnd, s: int, rank_by: str):
    """Shard ``s``'s final per-row results: positions, classes, quality, suggestion and cleanlab's flag."""
    from curate.label_noise.detect import label_quality

    pos, y, p = _probs(job, rnd, s)
    issue = np.asarray(storage.read_table(_path(job, "I", _itag(rnd), f"{s:05d}.parquet")).column("issue")
                       .to_numpy(zero_copy_only=False), dtype=bool)
    if not len(y):
        z = np.zeros(0, np.float32)
        return pos, y, z, np.zeros(0, np.int64), z, z, issue
    quality = label_quality(y, p, rank_by)
    suggested = p.argmax(axis=1)
    rows = np.arange(len(y))
    return pos, y, quality, suggested, p[rows, suggested], p[rows, y], issue


def _itag(rnd) -> str:
    return "given" if rnd is None else str(rnd)


#: the guard's steps that keep the lowest label quality first, in the order :func:`curate.label_noise.detect.guard`
#: applies them: per class, of all scored rows, of the first round's count (``round_count: first``)
GUARD_CUTS = ("over_class_cap", "over_top_fraction", "over_first_round_count")


def _guard_flags(g, y, quality, suggested, suggested_prob, issue, shard_cuts):
    """The guard's flags of one shard after its steps so far; ``shard_cuts`` holds this shard's part of
    the class-cap and top-fraction cuts decided so far. Returns the flags after each step."""
    flags = issue.copy()
    steps = {}
    if g.abstained:
        steps["abstained"] = np.zeros(len(y), bool)
        return flags & steps["abstained"], steps
    steps["not_confident"] = (suggested != y) & (suggested_prob >= g.min_confidence)
    if g.min_quality is not None:
        steps["above_min_quality"] = quality < g.min_quality
    out = flags.copy()
    for name, keep in steps.items():
        out &= keep
    for name in GUARD_CUTS:
        if name not in shard_cuts:
            continue
        keep = _cut_keep(out, y if name == "over_class_cap" else np.zeros(len(y), np.int64), quality, shard_cuts[name])
        steps[name] = keep
        out &= keep
    return out, steps


def _cut_keep(flags, group, quality, cut) -> np.ndarray:
    """Rows kept by a cut: per group, quality below its cut-off key, plus the first ``quota`` rows tied
    at it (earliest rows first); ``cut`` maps group -> (key or None for "all", quota)."""
    keep = np.zeros(len(flags), bool)
    keys = _keys(quality)
    for gr, (key, quota) in cut.items():
        rows = flags & (group == gr)
        if key is None:
            keep |= rows
            continue
        keep |= rows & (keys < np.uint64(key))
        tied = np.flatnonzero(rows & (keys == np.uint64(key)))[:quota]
        keep[tied] = True
    return keep


def _guard_task(arg) -> dict:
    job, rnd, s, k, g, shard_cuts, mode, extra = arg
    pos, y, quality, suggested, sprob, _gprob, issue = _scores(job, rnd, s, g.rank_by)
    flags, steps = _guard_flags(g, y, quality, suggested, sprob, issue, shard_cuts)
    group = y if extra["step"] == "over_class_cap" else np.zeros(len(y), np.int64)
    if mode == "kept":
        kept = ~issue
        return {"kept": int(kept.sum()), "kept_hits": int((suggested[kept] == y[kept]).sum()),
                "flagged": np.bincount(y[flags], minlength=k)}
    if mode == "radix":
        return {"counts": digit_counts([quality[flags & (group == gr)] for gr in extra["groups"]], extra["queries"],
                                       extra["shift"], BITS)}
    if mode == "ties":
        keys = _keys(quality)
        return {"shard": s, "ties": {gr: int(np.sum(flags & (group == gr) & (keys == np.uint64(key))))
                                     for gr, key in extra["keys"].items()}}
    # mode == "final": per-step removals, and the flagged rows' quality keys to the rank partitions
    removed, cur = {}, issue.copy()
    for name, keep in steps.items():
        removed[name] = int((cur & ~keep).sum())
        cur &= keep
    keys = _keys(quality[flags]).astype(np.int64)
    if extra["hist"]:  # the flagged rows' quality histogram (top 16 bits) that places the rank partitions
        return {"histogram": np.bincount(keys >> 16, minlength=1 << 16)}
    ranked = pa.table({"pos": pos[flags], "key": keys})
    write_partitions(ranked, np.searchsorted(np.asarray(extra["bounds"], np.int64), keys >> 16, side="right"),
                     _path(job, "K"), s)
    return {"removed": removed}


def _rank_task(arg) -> dict:
    job, q, first, pos0 = arg
    t = read_partition(_path(job, "K"), q)
    if t is None:
        return {"rows": 0}
    order = np.lexsort((t.column("pos").to_numpy(), t.column("key").to_numpy()))
    t = t.take(pa.array(order))
    ranks = pa.table({"pos": t.column("pos"), "rank": np.arange(first + 1, first + 1 + t.num_rows, dtype=np.int32)})
    shard = np.searchsorted(np.asarray(pos0), t.column("pos").to_numpy(), side="right") - 1
    write_partitions(ranks, shard, _path(job, "Q"), q)
    return {"rows": t.num_rows}


# -- G. assemble -----------------------------------------------------------------------------------
def _assemble_task(arg) -> dict:
    job, s, rnd, k, g, shard_cuts, plan = arg
    from curate.label_noise.detect import IssueResult
    from curate.runner import _instantiate, empty_output, finalize

    stage = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
    t = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id", "label"])
    ids, n = t.column("id"), t.num_rows
    if n == 0:
        storage.write_table(empty_output(stage, ids), storage.join(job.stage_dir, shard_name(s)))
        return {"rows": 0}
    codes = _codes(_labels(t), plan.code_of)
    if plan.scored is False:
        result = stage._result(n, plan.names, codes, None, None, None, None)
    else:
        pos, y, quality, suggested, sprob, gprob, issue = _scores(job, rnd, s, g.rank_by)
        flags, _ = _guard_flags(g, y, quality, suggested, sprob, issue, shard_cuts)
        local = _rows(job, s, ["row"]).column("row").to_numpy() - job.offsets[s]
        ranks = np.zeros(len(pos), np.int32)
        rt = read_partition(_path(job, "Q"), s)
        if rt is not None:
            ranks[np.searchsorted(pos, rt.column("pos").to_numpy())] = rt.column("rank").to_numpy()
        res = IssueResult(is_issue=issue, quality=quality, suggested=suggested, suggested_prob=sprob, given_prob=gprob,
                          confident_joint=None)
        result = stage._result(n, plan.names, codes, local, res, plan.back, flags, ranks=ranks)
    storage.write_table(finalize(stage, ids, result), storage.join(job.stage_dir, shard_name(s)))
    return {"rows": n}


# -- the driver's plan -----------------------------------------------------------------------------
def reduce(stage, job: ReduceJob, executor) -> None:
    """Run phases A-G (module docstring) on ``executor``; the summary goes to ``stage.summary``."""
    from curate.label_noise.classes import encode_labels
    from curate.label_noise.crossval import resolve_classifier
    from curate.label_noise.detect import (abstain_reasons, noise_rate, summary_from_counts, trust_from_counts)
    from curate.label_noise.features import FeatureSpec, svd_info, svd_reduces

    p = stage.params
    S, run = job.n_shards, executor.map_unordered
    storage.rmtree(job.work)
    if job.offsets[-1] == 0:
        from curate.runner import _instantiate, empty_output

        st = _instantiate(job.stage_name, job.stage_module, job.params, job.ctx, job.key)
        for s in range(S):
            ids = storage.read_table(storage.join(job.map_dir, shard_name(s)), columns=["id"]).column("id")
            storage.write_table(empty_output(st, ids), storage.join(job.stage_dir, shard_name(s)))
        return
    names = stage.feature_candidates()
    text = 1 if (p.spec.kind == "auto" and names == ["image", "text"]) else (0 if p.spec.kind == "tfidf" else -1)
    concat = not isinstance(p.features, str)  # features: [a, b, ...]
    scans = sorted(run(_scan_task, [(job, s, len(names), text, concat) for s in range(S)], desc=f"{stage.name} (scan)",
                       total_rows=job.offsets[-1]), key=lambda r: r["shard"])
    n = job.offsets[-1]
    # the feature column, as LabelNoise._choose picks it
    nonnull = [sum(r["candidates"][j]["nonnull"] for r in scans) for j in range(len(names))]
    if p.spec.kind != "auto":
        spec, feature_name, j = p.spec, p.feature_name, 0
    elif names == ["image", "text"]:
        n_text = sum(r["candidates"][1]["n_text"] for r in scans)
        spec, feature_name, j = (FeatureSpec("tfidf"), "tfidf", 1) if nonnull[0] == 0 and n_text > 0 \
            else (FeatureSpec("pixels"), "pixels", 0)
    else:
        j = int(np.argmax(nonnull))
        spec, feature_name = FeatureSpec("column", names[j]), names[j]
    widths = []  # each used column's list length (none: no row has one)
    for jj in (range(len(names)) if concat else [j]):
        cand = [r["candidates"][jj] for r in scans]
        what = f"features {p.features[jj]}" if concat else "pixels" if spec.kind == "pixels" else (
            f"pred_probs:{spec.column}" if spec.kind == "pred_probs" else f"features {spec.column}")
        if any("bad_type" in c for c in cand):
            raise CurateError(f"{what}: expected a column of number lists (an embedding or probabilities), got type "
                              f"{next(c['bad_type'] for c in cand if 'bad_type' in c)}")
        dims = sorted({d for c in cand for d in c["dims"]})
        if len(dims) > 1:
            raise CurateError(f"{what}: rows have lists of different lengths ({', '.join(map(str, dims[:5]))}); "
                              f"every row needs the same length")
        widths.append(dims[0] if dims else 0)
    if concat:
        cand, dims = [r["combined"] for r in scans], [sum(widths)]
    n_present = sum(c["present"] for c in cand)
    all_labels: dict[str, int] = {}
    present_labels: dict[str, int] = {}
    for r, c in zip(scans, cand):
        for v, m in r["labels"].items():
            all_labels[v] = all_labels.get(v, 0) + m
        for v, m in c["values"].items():
            present_labels[v] = present_labels.get(v, 0) + m
    summary: dict = {"features": feature_name, "rows": n}
    if p.spec.kind == "auto":
        summary["features_chosen_by"] = "auto"
    given = spec.kind == "pred_probs"
    if given and n_present == 0:
        raise CurateError(f"pred_probs:{spec.column}: the column is empty in every row")
    distinct = sorted(all_labels)
    dist_codes, cmap = encode_labels(distinct, classes=p.classes, n_columns=dims[0] if given else None)
    code_of = dict(zip(distinct, dist_codes.tolist()))
    n_codes = len(cmap)
    usable_counts = np.zeros(n_codes, np.int64)
    for v, m in present_labels.items():
        usable_counts[code_of[v]] += m
    kind = "concat" if concat else spec.kind if spec.kind in ("pixels", "tfidf") else (
        "pred_probs" if given else "column")
    pca_shape, vocabulary, svd_shape = None, None, None
    if not given:
        info = {"dim": int(dims[0]) if dims else 0}
        if kind == "concat":
            from curate.label_noise.features import unit_concat_info

            info = unit_concat_info(widths)
        elif kind == "tfidf":  # the vocabulary of the texts with a label (the small classes' too)
            n_docs = int(sum(present_labels.values()))
            info = {"vocabulary": _vocabulary(stage, job, executor, f"f{j}", code_of, n_docs)} if n_docs else {}
            vocabulary = info.get("vocabulary", 0)
            if n_docs and _tfidf_dense(p) and svd_reduces(p.pca_components, vocabulary):
                list(run(_svd_sample_task, [(job, s, f"f{j}", code_of, n_docs, p.seed) for s in range(S)],
                         desc=f"{stage.name} (svd sample)", total_rows=n))
                fit = next(iter(run(_svd_fit_task, [(job, vocabulary, p.pca_components, p.seed)],
                                    desc=f"{stage.name} (svd)")))
                info.update(svd_info(p.pca_components, fit["rows"]))
                svd_shape = fit["shape"]
        elif kind == "pixels":
            info = {"pixels": f"{p.pixel_size}x{p.pixel_size} {p.pixel_mode}"}
            if n_present:
                list(run(_pca_sample_task, [(job, s, f"f{j}", n_present, p.seed) for s in range(S)],
                         desc=f"{stage.name} (pca sample)"))
                fit = next(iter(run(_pca_fit_task, [(job, p.pca_components, p.seed)], desc=f"{stage.name} (pca)")))
                info.update(fit["info"])
                pca_shape = fit["shape"]
            else:
                info.update({"input_dim": 0})
        summary["feature_info"] = info
    summary["classes"] = cmap.to_json()
    summary["unlabelled"] = int(sum(r["nulls"] for r in scans))
    summary["missing_features"] = int(n - n_present)
    minimum = max(p.min_examples_per_class, 1 if given else p.folds)
    small = [int(c) for c in np.flatnonzero((usable_counts > 0) & (usable_counts < minimum))]
    if small and not given:
        summary["classes_skipped"] = {cmap.name(c): int(usable_counts[c]) for c in small}
        log.warning("label_noise: %d class(es) have fewer than %d labelled examples and are left out: %s",
                    len(small), minimum, ", ".join(f"{cmap.name(c)} ({usable_counts[c]})" for c in small[:10]))
        usable_counts[small] = 0
    kept = np.flatnonzero(usable_counts > 0)
    summary["scored"] = int(usable_counts.sum())
    plan = SimpleNamespace(code_of=code_of, names=cmap.names, scored=True, back=None)
    if len(kept) < (1 if given else 2):
        summary["warning"] = (f"label_noise needs at least two classes with {minimum}+ labelled examples; "
                              "nothing was scored"
                              if not given else "no row has both a label and probabilities; nothing was scored")
        log.warning("label_noise: %s", summary["warning"])
        stage.summary.update(summary)
        plan.scored = False
        list(run(_assemble_task, [(job, s, None, 0, None, {}, plan) for s in range(S)], desc=f"{stage.name} (write)",
                 total_rows=n))
        return
    to_compact = np.full(n_codes, -1, dtype=np.int64)
    if given:  # given probabilities: the class codes as they are
        to_compact = np.arange(n_codes)
        k = n_codes
        plan.back = np.arange(n_codes)
        class_names = cmap.names
    else:
        to_compact[kept] = np.arange(len(kept))
        k = len(kept)
        plan.back = kept
        class_names = [cmap.name(int(c)) for c in kept]
    counts = usable_counts[kept] if not given else usable_counts.copy()
    # per-shard scored rows -> positions (the driver reduce's compact row order)
    shard_scored = []
    for r, c in zip(scans, cand):
        m = 0
        for v, cnt in c["values"].items():
            code = code_of[v]
            if usable_counts[code] > 0:
                m += cnt
        shard_scored.append(m)
    pos0 = [0, *np.cumsum(shard_scored).tolist()]
    dim = (int(svd_shape[0]) if svd_shape else vocabulary) if kind == "tfidf" else int(pca_shape[0]) if pca_shape else (int(dims[0]) if dims else 0)
    column = ([f"f{jj}" for jj in range(len(names))], list(p.features), widths) if concat else f"f{j}"
    prep = SimpleNamespace(column=column, kind=kind, code_of=code_of, to_compact=to_compact, pos0=pos0, folds=p.folds,
                           seed=p.seed, pca=pca_shape, svd=svd_shape, dim=dim)
    raw_hits = sum(r["raw_hits"] for r in run(_prepare_task, [(job, s, prep) for s in range(S)],
                                              desc=f"{stage.name} (prepare)", total_rows=n))
    N = int(counts.sum())
    agreement, first_count = None, None
    if not given:
        sparse = kind == "tfidf" and svd_shape is None
        classifier = resolve_classifier(p.classifier, sparse=sparse)
        members = classifier.split("+")
        history, stopped = [], None
        first, fitted_on = None, N
        rnd = 0
        t_cv = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            c_value, c_tried = p.logistic_c, {}
            if "logistic" in members and c_value is None:
                r = next(iter(run(_c_task, [(job, rnd, p.seed, SimpleNamespace(sparse=sparse, dim=dim))],
                                  desc=f"{stage.name} (logistic C)")))
                c_value, c_tried = r["c"], r["tried"]
            conf = SimpleNamespace(classifier=classifier, n_classes=k, seed=p.seed, knn_neighbors=p.knn_neighbors,
                                   n_jobs=p.n_jobs, logistic_c=c_value, dim=dim, sparse=sparse,
                                   lda_shrinkage=p.lda_shrinkage)
            folds = sorted(run(_fold_task, [(job, rnd, f, conf) for f in range(p.folds)], desc=f"{stage.name} (folds)"),
                           key=lambda r: r["fold"])
            hits = sum(r["hits"] for r in folds)
            cv = {"accuracy": hits / N, "fold_accuracy": [r["hits"] / r["n"] for r in folds if r["n"]],
                  "seconds": time.perf_counter() - t0, "logistic_c": c_value if "logistic" in members else None,
                  "c_tried": c_tried}
            if len(members) > 1:
                cv["member_accuracy"] = {m: sum(r["member_hits"].get(m, 0) for r in folds) / N for m in members}
                agree = sum(r["agree"] for r in folds)
                a, b = sum(r["a"] for r in folds), sum(r["b"] for r in folds)
                cv["agreement"] = agree / N
                p_o = agree / N
                p_e = float((a * b).sum()) / N ** 2
                cv["kappa"] = (p_o - p_e) / (1.0 - p_e) if p_e < 1.0 else 0.0
            if first is None:
                first = cv
                history.append({"accuracy": round(cv["accuracy"], 4), "seconds": round(cv["seconds"], 2)})
            else:
                history.append({"accuracy": round(cv["accuracy"], 4), "seconds": round(cv["seconds"], 2),
                                "fitted_on": fitted_on})
            last = cv
            if rnd + 1 >= p.rounds:
                break
            _, issues, _ = _cleanlab(stage, job, executor, rnd, k, counts)
            if (counts - issues).min() < p.folds:
                stopped = "a class would keep fewer rows than folds"
                break
            fitted_on = int(N - issues.sum())
            rnd += 1
        final = rnd
        if p.round_count == "first" and len(history) > 1:  # at most the first round's cleanlab count
            first_count = N - history[1]["fitted_on"]
        if p.rounds > 1:
            summary["rounds"] = history
            if stopped:
                summary["rounds_stopped"] = stopped
        summary.update({"classifier": classifier, "folds": p.folds, "cv_seconds": round(time.perf_counter() - t_cv, 2),
                        "fold_accuracy": [round(a, 4) for a in last["fold_accuracy"]]})
        if first["logistic_c"] is not None:
            summary["logistic_c"] = first["logistic_c"]
            if first["c_tried"]:
                summary["logistic_c_tried"] = first["c_tried"]
        if "member_accuracy" in first:
            summary["member_accuracy"] = {m: round(a, 4) for m, a in first["member_accuracy"].items()}
            summary["member_agreement"] = round(first["agreement"], 4)
            summary["member_agreement_kappa"] = round(first["kappa"], 4)
            agreement = first["kappa"]
        accuracy = last["accuracy"]
    else:
        final = None
        accuracy = raw_hits / N

    if p.round_count == "calibrated":  # (the params rule out given probabilities and a single round)
        cj, issues, cl_seconds, summary["calibrated_count"] = _calibrated(stage, job, executor, final, k, counts)
    else:
        cj, issues, cl_seconds = _cleanlab(stage, job, executor, final, k, counts)
    g = SimpleNamespace(rank_by=p.rank_by, min_confidence=p.min_confidence, min_quality=p.min_quality, abstained=False)
    kept_stats = list(run(_guard_task, [(job, final, s, k, g, {}, "kept", {"step": None}) for s in range(S)],
                          desc=f"{stage.name} (guard)"))
    n_kept = sum(r["kept"] for r in kept_stats)
    kept_accuracy = sum(r["kept_hits"] for r in kept_stats) / n_kept if n_kept else 0.0
    noise = noise_rate(cj)
    reasons = abstain_reasons(agreement=agreement, min_agreement=p.min_agreement, kept_accuracy=kept_accuracy,
                              min_kept_accuracy=p.min_kept_accuracy, noise=noise, max_noise_rate=p.max_noise_rate)
    g.abstained = bool(reasons)
    shard_cuts: list[dict] = [{} for _ in range(S)]
    if not g.abstained:
        steps = [("over_class_cap",
                  {c: int(np.floor(p.max_class_fraction * counts[c])) for c in np.flatnonzero(counts)})]
        if p.flag_top_fraction is not None:
            steps.append(("over_top_fraction", {0: int(np.floor(p.flag_top_fraction * N))}))
        if first_count is not None:
            steps.append(("over_first_round_count", {0: first_count}))
        for name, caps in steps:
            flagged = sum(r["flagged"] for r in run(
                _guard_task, [(job, final, s, k, g, shard_cuts[s], "kept", {"step": name}) for s in range(S)],
                desc=f"{stage.name} (guard)"))
            per_group = {c: int(flagged[c]) for c in caps} if name == "over_class_cap" else {0: int(flagged.sum())}
            cut = {c: (None, 0) for c in caps if per_group[c] <= caps[c]}
            groups = [c for c in caps if per_group[c] > caps[c] and caps[c] > 0]
            for c in caps:
                if per_group[c] > caps[c] and caps[c] == 0:
                    cut[c] = (0, 0)  # nothing kept: below key 0 is nothing, no ties taken

            def passes(queries, shift, groups=groups, name=name):
                return (r["counts"] for r in run(
                    _guard_task, [(job, final, s, k, g, shard_cuts[s], "radix",
                                   {"step": name, "groups": groups, "queries": queries, "shift": shift})
                                  for s in range(S)],
                    desc=f"{stage.name} (guard cut-offs)"))

            found = dict(zip(groups, select(passes, [caps[c] - 1 for c in groups], bits=BITS)))
            quotas = [{} for _ in range(S)]
            if found:
                ties = sorted(run(_guard_task, [(job, final, s, k, g, shard_cuts[s], "ties",
                                                 {"step": name, "keys": {c: found[c][0] for c in groups}})
                                                for s in range(S)], desc=f"{stage.name} (guard ties)"),
                              key=lambda r: r["shard"])
                for c in groups:
                    remaining = caps[c] - found[c][1]  # tied rows kept, earliest first
                    for r in ties:
                        take = min(remaining, r["ties"][c])
                        quotas[r["shard"]][c] = take
                        remaining -= take
            for s in range(S):
                mine = {c: (found[c][0], quotas[s].get(c, 0)) for c in groups}
                shard_cuts[s] = {**shard_cuts[s], name: {**cut, **mine}}
    # final flags: removals per step, the flagged rows' quality histogram, then ranks by a range-partitioned sort
    hist = None
    parts = list(run(_guard_task, [(job, final, s, k, g, shard_cuts[s], "final", {"step": None, "bounds": [],
                                                                                      "hist": True}) for s in range(S)],
                     desc=f"{stage.name} (ranks)"))
    for r in parts:
        hist = r["histogram"] if hist is None else hist + r["histogram"]
    n_flagged = int(hist.sum())
    P = max(1, job.partitions)
    cum = np.cumsum(hist)
    bounds = [int(np.searchsorted(cum, n_flagged * q / P, side="left")) + 1 for q in range(1, P)] if n_flagged else []
    storage.rmtree(_path(job, "K"))
    parts = list(run(_guard_task, [(job, final, s, k, g, shard_cuts[s], "final", {"step": None, "bounds": bounds,
                                                                                  "hist": False}) for s in range(S)],
                     desc=f"{stage.name} (ranks)"))
    removed: dict[str, int] = {}
    for r in parts:
        for name, m in r["removed"].items():
            removed[name] = removed.get(name, 0) + m
    edges = [0, *bounds, 1 << 16]
    firsts = [int(cum[e - 1]) if e else 0 for e in edges[:-1]]
    list(run(_rank_task, [(job, q, firsts[q], pos0) for q in range(len(edges) - 1)], desc=f"{stage.name} (ranks)"))
    list(run(_assemble_task, [(job, s, final, k, g, shard_cuts[s], plan) for s in range(S)],
             desc=f"{stage.name} (write)", total_rows=n))
    flagged_per_class = sum(r["flagged"] for r in run(
        _guard_task, [(job, final, s, k, g, shard_cuts[s], "kept", {"step": "done"}) for s in range(S)],
        desc=f"{stage.name} (summary)"))
    summary.update(trust_from_counts(accuracy, counts))
    summary.update(summary_from_counts(cj, counts, flagged_per_class, int(flagged_per_class.sum()), class_names))
    summary.update({"kept_accuracy": round(kept_accuracy, 4), "cleanlab_issues": int(issues.sum()),
                    "guard_removed": removed, "abstained": g.abstained})
    if reasons:
        summary["abstain_reasons"] = reasons
    if g.abstained:
        gr = SimpleNamespace(reasons=reasons, cleanlab_flags=int(issues.sum()))
        summary["warning"] = stage._abstain_warning(spec, gr, N)
        log.warning("label_noise: %s", summary["warning"])
    summary["cleanlab_seconds"] = round(cl_seconds, 2)
    stage.summary.update(summary)
    log.info("label_noise: %d of %d scored rows flagged (cleanlab %d; held-out accuracy %.3f, %.3f on the labels "
             "cleanlab keeps)", int(flagged_per_class.sum()), N, int(issues.sum()), accuracy, kept_accuracy)
