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

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import AfterValidator, Field

from curate.manifest import Column

KEEP_RULES = ("first", "longest_text", "largest_image", "score:<column>")
SCORE_COLUMN = "keep_score"


def keep_rule_type(*, extra: tuple[str, ...] = (), without: tuple[str, ...] = ()):
    """The type of a stage's ``keep`` parameter: the shared rules plus ``extra`` ones, less ``without``,
    validated with the allowed values in the error."""
    named = tuple(r for r in (*extra, *KEEP_RULES[:-1]) if r not in without)
    allowed = ", ".join([*named, KEEP_RULES[-1]])

    def check(value: str) -> str:
        if value in named or (value.startswith("score:") and len(value) > len("score:")):
            return value
        raise ValueError(f"keep must be one of {allowed}; got {value!r}")

    return Annotated[str, AfterValidator(check)]


#: Type of a stage's ``keep`` parameter (validated, with the allowed values in the error).
KeepRule = keep_rule_type()


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


#: The columns (and roles) every dedup stage writes; declare them with ``Outputs(columns=(*CLUSTER_COLUMNS, ...))``.
CLUSTER_COLUMNS = (
    Column("cluster_id", pa.string(), "duplicate_group", "id of the cluster's representative (own id when unique)"),
    Column("cluster_size", pa.int32(), "group_size", "items in the cluster"),
    Column("is_representative", pa.bool_(), "representative", "the item kept for its cluster"),
)


def keep_field(default: str, extra_rules: tuple[str, ...] = (), without: tuple[str, ...] = ()) -> Any:
    """The ``keep`` parameter of a dedup stage (pydantic Field) with its description."""
    rules = ", ".join(r for r in (*extra_rules, *KEEP_RULES) if r not in without)
    return Field(default, description=f"representative of each cluster: {rules}")


@dataclass
class Clusters:
    """A dedup stage's result before it becomes a table: cluster columns, flags and details per row.

    ``members`` are the rows that are duplicates of another row (every row of a cluster of two or more
    except its representative); ``rep[i]`` is the representative row of row ``i``.
    """

    ids: list[str]
    columns: dict[str, np.ndarray]
    rep: np.ndarray
    members: np.ndarray
    flags: list[str | None]
    details: list[str | None] = field(default_factory=list)

    def describe(self, detail: Callable[[int, int], str]) -> None:
        """Set each member's detail to ``detail(row, rep_row)``."""
        for i in self.members.tolist():
            self.details[i] = detail(i, int(self.rep[i]))

    def summary(self, duplicates_key: str = "duplicates") -> dict[str, int]:
        """Cluster counts for the manifest."""
        sizes = self.columns["cluster_size"]
        multi = self.columns["is_representative"] & (sizes > 1)
        return {"clusters": int(np.sum(multi)), duplicates_key: int(len(self.members)),
                "largest_cluster": int(sizes.max()) if len(sizes) else 0}

    def table(self, extra: dict[str, Any], schema: pa.Schema) -> pa.Table:
        """The stage result: cluster columns, the stage's own ``extra`` columns, flag and detail."""
        data = {**self.columns, **extra}
        arrays = [data[f.name] if isinstance(data[f.name], (pa.Array, pa.ChunkedArray)) else pa.array(data[f.name], f.type)
                  for f in schema]
        arrays += [pa.array(self.flags, pa.string()), pa.array(self.details, pa.string())]
        return pa.Table.from_arrays(arrays, names=[*schema.names, "flag", "detail"])


def cluster_duplicates(ids, labels: np.ndarray, scores: np.ndarray, *, flag: str) -> Clusters:
    """Clusters from union-find ``labels``: one representative per cluster (highest ``scores``), ``flag``
    on every other member. Call :meth:`Clusters.describe` to write the members' details."""
    cols = cluster_columns(ids, labels, scores)
    rep = cols.pop("rep")
    members = np.flatnonzero(rep != np.arange(len(rep)))
    flags: list[str | None] = [None] * len(rep)
    for i in members.tolist():
        flags[i] = flag
    return Clusters(list(ids), cols, rep, members, flags, [None] * len(rep))


def short_id(item_id: str) -> str:
    """A short form of an id for details ("3f2a9c1e…")."""
    return item_id[:10] + "…" if len(item_id) > 10 else item_id
