"""Class maps: labels as given (strings, or ints written as strings) <-> class indices 0..K-1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from curate.errors import CurateError


def _as_int(value: str) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class ClassMap:
    """Index ``i`` <-> class name ``names[i]``. Kept in the manifest so indices can be read back."""

    names: list[str]

    def __len__(self) -> int:
        return len(self.names)

    def name(self, index: int) -> str:
        return self.names[index]

    def to_json(self) -> list[str]:
        return list(self.names)


def encode_labels(labels: Sequence[str | None], *, classes: Sequence[str] | None = None,
                  n_columns: int | None = None) -> tuple[np.ndarray, ClassMap]:
    """Map labels to class indices; ``-1`` for a missing label.

    Parameters
    ----------
    labels : sequence of str or None, length N
        Labels as given. If every label is an integer (``"0"``, ``"7"``) the class index is that integer,
        else classes are the distinct labels in sorted order.
    classes : sequence of str, optional, keyword-only
        The class order to use (index ``i`` = ``classes[i]``); every label must be in it.
    n_columns : int, optional, keyword-only
        Width ``K`` of user-supplied ``pred_probs``: the class map must then have exactly ``K`` classes.

    Returns
    -------
    codes : np.ndarray of int64, shape (N,)
    class_map : ClassMap
    """
    values = [None if v is None else str(v) for v in labels]
    present = sorted({v for v in values if v is not None})
    if classes is not None:
        names = [str(c) for c in classes]
        if len(set(names)) != len(names):
            raise CurateError("classes: the list has duplicate names")
        unknown = [v for v in present if v not in set(names)]
        if unknown:
            raise CurateError(f"classes: {len(unknown)} label(s) in the data are not in the list, e.g. {unknown[:3]}; "
                              f"add them or leave 'classes' out")
    else:
        ints = [_as_int(v) for v in present]
        if present and all(i is not None and i >= 0 for i in ints):
            top = max(ints) + 1
            if n_columns is not None:
                if top > n_columns:
                    raise CurateError(f"pred_probs has {n_columns} columns but the largest label is {top - 1}; "
                                      f"pred_probs must have at least {top} columns, one per class index")
                top = n_columns
            names = [str(i) for i in range(top)]
            # "07" and "7" are the same class
            codes = np.array([-1 if v is None else int(v) for v in values], dtype=np.int64)
            return codes, ClassMap(names)
        names = present
        if n_columns is not None and len(names) != n_columns:
            raise CurateError(f"pred_probs has {n_columns} columns but the labels name {len(names)} classes; "
                              f"give the column order with 'classes: [...]'")
    if n_columns is not None and len(names) != n_columns:
        raise CurateError(f"classes: {len(names)} names given but pred_probs has {n_columns} columns")
    index = {n: i for i, n in enumerate(names)}
    codes = np.array([-1 if v is None else index[v] for v in values], dtype=np.int64)
    return codes, ClassMap(names)


def encode_label_column(column, *, classes: Sequence[str] | None = None,
                        n_columns: int | None = None) -> tuple[np.ndarray, ClassMap]:
    """:func:`encode_labels` for a pyarrow column, vectorised (distinct values are mapped once).

    Returns ``codes`` (int64, ``-1`` where the label is null) and the class map.
    """
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.string())
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        column = column.cast(pa.string())
    encoded = column.dictionary_encode()
    distinct = encoded.dictionary.to_pylist()
    dist_codes, cmap = encode_labels(distinct, classes=classes, n_columns=n_columns)
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    valid = np.asarray(encoded.indices.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    codes = np.full(len(column), -1, dtype=np.int64)
    if len(dist_codes):
        codes[valid] = dist_codes[indices[valid].astype(np.int64)]
    return codes, cmap
