"""Vectors stored in Arrow list columns (embeddings, probabilities, features) as numpy matrices."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.errors import CurateError


def list_column_to_matrix(column: pa.Array | pa.ChunkedArray, *, what: str = "features",
                          dtype=np.float32, allow_nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Stack a list column into a matrix.

    Returns
    -------
    matrix : np.ndarray, shape (N, D)
        Rows of missing (null or empty) entries are zero.
    present : np.ndarray of bool, shape (N,)
        False where the entry was null.

    Raises CurateError when the lists do not all have the same length (or hold NaN, unless ``allow_nan``).
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks else pa.array([], pa.list_(pa.float32()))
    n = len(column)
    if pa.types.is_null(column.type):
        return np.zeros((n, 0), dtype=dtype), np.zeros(n, dtype=bool)
    if pa.types.is_fixed_size_list(column.type):
        column = column.cast(pa.list_(column.type.value_type))
    if not (pa.types.is_list(column.type) or pa.types.is_large_list(column.type)):
        raise CurateError(f"{what}: expected a column of number lists (an embedding or probabilities), "
                          f"got type {column.type}")
    present = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    lengths = np.asarray(column.value_lengths().fill_null(0).to_numpy(zero_copy_only=False))
    present &= lengths > 0
    if not present.any():
        return np.zeros((n, 0), dtype=dtype), present
    dims = np.unique(lengths[present])
    if len(dims) != 1:
        raise CurateError(f"{what}: rows have lists of different lengths ({', '.join(map(str, dims[:5]))}); "
                          f"every row needs the same number of values")
    d = int(dims[0])
    values = column.flatten().to_numpy(zero_copy_only=False)
    if not allow_nan and np.issubdtype(values.dtype, np.floating) and np.isnan(values).any():
        raise CurateError(f"{what}: the column holds NaN values")
    matrix = np.zeros((n, d), dtype=dtype)
    matrix[present] = values.astype(dtype, copy=False).reshape(-1, d)
    return matrix, present
