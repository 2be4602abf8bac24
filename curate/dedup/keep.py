"""Choosing one representative per duplicate cluster (``keep:``) and the cluster columns.

``keep`` values:

* ``first``: the earliest row in dataset order;
* ``longest_text``: the longest text (characters) of the stage's text field;
* ``largest_image``: the most pixels (``width * height`` from the record);
* ``score:<column>``: the highest value of a numeric column of an earlier stage (``column`` or
  ``stage.column``), e.g. ``score:clip_score.clip_score``. Rows without a value come last.

Ties go to the earliest row. The map side computes one float score per row (:func:`keep_scores`), so
the reduce never needs the texts or images.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator

KEEP_RULES = ("first", "longest_text", "largest_image", "score:<column>")
SCORE_COLUMN = "keep_score"


def _check_keep(value: str) -> str:
    if value in ("first", "longest_text", "largest_image"):
        return value
    if value.startswith("score:") and len(value) > len("score:"):
        return value
    raise ValueError(f"keep must be one of {', '.join(KEEP_RULES)}; got {value!r}")


#: Type of a stage's ``keep`` parameter (validated, with the allowed values in the error).
KeepRule = Annotated[str, AfterValidator(_check_keep)]


def keep_input_columns(keep: str, text_column: str = "text") -> list[str]:
    """Columns the map step must read to score rows for ``keep``."""
    if keep == "longest_text":
        return [text_column]
    if keep == "largest_image":
        return ["width", "height"]
    if keep.startswith("score:"):
        return [keep[len("score:"):]]
    return []


def keep_scores(batch: pa.Table, keep: str, text_column: str = "text") -> pa.Array:
    """One float64 per row: higher is a better representative (null = worst)."""
    n = batch.num_rows
    if keep == "first":
        return pa.array(np.zeros(n), pa.float64())
    if keep == "longest_text":
        return pc.cast(pc.utf8_length(batch.column(text_column)), pa.float64())
    if keep == "largest_image":
        w = pc.cast(batch.column("width"), pa.float64())
        h = pc.cast(batch.column("height"), pa.float64())
        return pc.multiply(w, h)
    col = batch.column(keep[len("score:"):])
    try:
        return pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        from curate.errors import CurateError

        raise CurateError(f"keep: {keep!r} needs a numeric column, but it has type {col.type}") from exc


def representatives(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """For each row, the row index of its cluster's representative.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Cluster label per row (:func:`curate.dedup.unionfind.components`).
    scores : ndarray of float, shape (N,)
        Higher wins; NaN loses to any number; ties go to the smallest row index.
    """
    n = len(labels)
    s = np.where(np.isnan(scores), -np.inf, scores)
    order = np.lexsort((np.arange(n), -s, labels))
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    best_of_label = np.empty(n, dtype=np.int64)  # indexed by label value (labels are row indices)
    best_of_label[labels[order][first]] = order[first]
    return best_of_label[labels]


def cluster_columns(ids: list[str] | np.ndarray, labels: np.ndarray, scores: np.ndarray) -> dict[str, np.ndarray]:
    """The columns every dedup stage writes, plus ``rep`` (row index of the representative).

    ``cluster_id`` is the representative's id (a row's own id when it has no duplicate),
    ``cluster_size`` the number of rows in the cluster, ``is_representative`` whether the row is kept
    as the cluster's representative.
    """
    rep = representatives(labels, scores)
    ids = np.asarray(ids, dtype=object)
    sizes = np.bincount(labels, minlength=len(labels))[labels]
    return {"cluster_id": ids[rep], "cluster_size": sizes.astype(np.int32),
            "is_representative": rep == np.arange(len(labels)), "rep": rep}


def short_id(item_id: str) -> str:
    """A short form of an id for details ("3f2a9c1e…")."""
    return item_id[:10] + "…" if len(item_id) > 10 else item_id


def duplicate_flags(ids, labels: np.ndarray, scores: np.ndarray, *, flag: str,
                    describe) -> tuple[dict[str, np.ndarray], list[str | None], list[str | None]]:
    """Cluster columns, flags and details for a dedup stage's result.

    Every member of a cluster of two or more rows except its representative gets ``flag`` and the
    detail ``describe(row, rep_row)`` (a sentence naming the representative and the similarity).
    Returns ``(columns, flags, details)``; ``columns['rep']`` is the representative row per row.
    """
    cols = cluster_columns(ids, labels, scores)
    rep = cols["rep"]
    flagged = np.flatnonzero(rep != np.arange(len(rep)))
    flags: list[str | None] = [None] * len(rep)
    details: list[str | None] = [None] * len(rep)
    for i in flagged.tolist():
        flags[i] = flag
        details[i] = describe(i, int(rep[i]))
    return cols, flags, details
