"""Numpy helpers shared by the triage tables: runs, distinct values and per-owner sums of table rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def first_of_runs(values: IntArray) -> npt.NDArray[np.bool_]:
    """True where an element differs from the one before it, and at the first (np.r_ costs more than the work
    on a single post)."""
    out = np.empty(len(values), dtype=bool)
    if len(values):
        out[0] = True
        np.not_equal(values[1:], values[:-1], out=out[1:])
    return out


def distinct(keys: IntArray) -> IntArray:
    """Sorted distinct values (np.unique without its hashing path, which is slower on these sizes)."""
    if not len(keys):
        return keys
    k = np.sort(keys)
    out: IntArray = k[first_of_runs(k)]
    return out


# Below this many rows to sum, gathering them and np.add.reduceat beats building a sparse matrix (some 20 µs each):
# a post or a few, as one-post triage sees.
SPARSE_FROM = 512


def sum_rows(
    owners: IntArray,
    rows: IntArray,
    n_owners: int,
    table: npt.NDArray[Any],
    weights: npt.NDArray[Any] | None = None,
) -> npt.NDArray[Any]:
    """Per owner, the (weighted) sum of the ``table`` rows paired with it:
    ``out[o] = sum(w * table[r] for (o, r, w) in pairs)``, in the table's dtype.

    ``owners`` must be ascending (pairs grouped by owner); an owner without pairs gets a zero row. The sums run in
    pair order either way, so both strategies give the same floats.
    """
    if len(rows) < SPARSE_FROM:
        out = np.zeros((n_owners, table.shape[1]), dtype=table.dtype)
        if len(rows):
            starts = np.flatnonzero(first_of_runs(owners))
            gathered = table[rows] if weights is None else table[rows] * weights[:, None]
            out[owners[starts]] = np.add.reduceat(gathered, starts, axis=0)
        return out
    from scipy import sparse  # imported on first use: it costs a tenth of a second, and only batches need it

    # The matrix (n_owners, n_rows) with each pair's weight at (owner, row): its product with the table gathers and
    # sums in one pass in C, several times faster than gathering the rows and np.add.reduceat, and without the copy.
    indptr = np.zeros(n_owners + 1, dtype=np.int64)
    np.cumsum(np.bincount(owners, minlength=n_owners), out=indptr[1:])
    data = np.ones(len(rows), dtype=table.dtype) if weights is None else weights.astype(table.dtype, copy=False)
    pairs = sparse.csr_matrix((data, rows, indptr), shape=(n_owners, len(table)))
    return np.asarray(pairs @ table)
