"""Cross-validation folds: which fold each row is held out in (engine layer: it may build dask arrays).

A fold id is an integer 0 … K−1 per row, aligned with X. Two ways to have one:

* :func:`generated_folds` — a deterministic function of the row's *global* index and a seed, never
  of the block layout, so the same data in other chunks get the same folds. Rows are taken in
  groups of K consecutive rows and each group is spread over the K folds in an order drawn from a
  hash of (group, seed): fold sizes differ by at most one, and any row's fold is computed from its
  index alone (a block computes its own rows' folds, nothing of size n is ever made).
* :func:`given_folds` — the user's own labels (numpy, dask or zarr; e.g. groups or time blocks),
  any integers, mapped to 0 … K−1 in sorted order of the distinct labels (their one read is of the
  labels alone, never of X).
"""

from __future__ import annotations

import numbers

import dask.array as da
import numpy as np

from .arrays import as_array, is_lazy, unique

__all__ = ["folds_of_splits", "generated_folds", "given_folds", "row_folds"]

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, a bijection of uint64 that scrambles every bit (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def check_n_folds(n_folds) -> int:
    if isinstance(n_folds, bool) or not isinstance(n_folds, numbers.Integral) or n_folds < 2:
        raise ValueError(f"cv (the number of folds) must be an integer ≥ 2, got {n_folds!r}")
    return int(n_folds)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or not 0 <= seed < 2**63:
        raise ValueError(f"the fold seed must be an integer in [0, 2**63), got {seed!r}")
    return int(seed)


def row_folds(start: int, stop: int, n_folds: int, seed: int = 0) -> np.ndarray:
    """The folds of global rows ``start`` … ``stop − 1`` (int64, 0 … n_folds − 1).

    Each group of ``n_folds`` consecutive rows (g·K … g·K + K − 1) is a permutation of the folds:
    the rows' ranks among the hashes of (row, seed). A row's fold depends on its index and the seed
    only, so any split into blocks gives the same folds."""
    K = check_n_folds(n_folds)
    seed = _check_seed(seed)
    if stop <= start:
        return np.zeros(0, dtype=np.int64)
    first, last = (start // K) * K, -(-stop // K) * K
    rows = np.arange(first, last, dtype=np.uint64)
    keys = _splitmix64(rows ^ _splitmix64(np.full(1, seed, dtype=np.uint64)))
    ranks = np.argsort(np.argsort(keys.reshape(-1, K), axis=1, kind="stable"), axis=1, kind="stable")
    return ranks.ravel()[start - first: stop - first].astype(np.int64)


def _block_folds(index: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    if index.size == 0:
        return np.zeros(0, dtype=np.int64)
    return row_folds(int(index[0]), int(index[-1]) + 1, n_folds, seed)


def generated_folds(n_rows: int, n_folds: int, seed: int = 0, row_chunks=None):
    """Fold ids of ``n_rows`` rows: a numpy array, or (given ``row_chunks``, X's row blocks) a lazy
    dask array whose every block computes its own rows' folds (see :func:`row_folds`)."""
    K, seed = check_n_folds(n_folds), _check_seed(seed)
    if n_rows < K:
        raise ValueError(f"cv={K} folds need at least {K} samples, got n_samples = {n_rows}")
    if row_chunks is None:
        return row_folds(0, n_rows, K, seed)
    index = da.arange(n_rows, chunks=(tuple(row_chunks),), dtype=np.int64)
    return index.map_blocks(_block_folds, K, seed, dtype=np.int64)


def _encode(block: np.ndarray, labels: np.ndarray) -> np.ndarray:
    return np.searchsorted(labels, block).astype(np.int64)


def given_folds(folds, n_rows: int):
    """The user's fold labels as ids 0 … K−1: ``(ids, labels)`` with ``labels`` the K distinct
    labels in sorted order (label ``labels[k]`` is fold k). ``ids`` is numpy for numpy input and a
    lazy dask array for dask or zarr input (the labels are read once to find the distinct ones).
    Refused: another length than X's rows, non-integer labels, fewer than two folds."""
    f = as_array(folds, "folds")
    f = f if is_lazy(f) else np.asarray(f)
    if f.ndim != 1 or f.shape[0] != n_rows:
        raise ValueError(f"folds has shape {tuple(f.shape)}; expected ({n_rows},), one fold label per "
                         "row of X")
    if not (np.issubdtype(f.dtype, np.integer) or np.issubdtype(f.dtype, np.bool_)):
        raise ValueError(f"fold labels must be integers, got dtype {f.dtype}")
    labels = unique(f)
    if labels.size < 2:
        raise ValueError(f"folds must hold at least two distinct labels, got {labels.size}")
    if is_lazy(f):
        return f.map_blocks(_encode, labels, dtype=np.int64), labels
    return _encode(f, labels), labels


def folds_of_splits(splits, n_rows: int) -> np.ndarray:
    """Fold ids from (train, test) index pairs (e.g. a scikit-learn splitter's ``split``): row i
    is in fold k when it is in the k-th test set. The test sets must partition the rows (every row
    held out exactly once) and each training set must be the rows outside its test set, since a
    fit of fold k is the fit on every row but those of fold k."""
    ids = np.full(n_rows, -1, dtype=np.int64)
    splits = list(splits)
    if len(splits) < 2:
        raise ValueError(f"cv must give at least two (train, test) splits, got {len(splits)}")
    for k, split in enumerate(splits):
        try:
            train, test = split
        except (TypeError, ValueError):
            raise ValueError("cv must be an integer, a splitter with split(), or (train, test) index "
                             f"pairs; split {k} is {type(split).__name__}") from None
        test = np.asarray(test)
        test = np.flatnonzero(test) if test.dtype == bool else test.astype(np.int64)
        if np.any(ids[test] >= 0):
            raise ValueError(f"the test sets of cv overlap (split {k}): every row must be held out "
                             "exactly once")
        ids[test] = k
        rest = np.setdiff1d(np.arange(n_rows), test)
        train = np.asarray(train)
        train = np.flatnonzero(train) if train.dtype == bool else np.sort(train.astype(np.int64))
        if not np.array_equal(np.unique(train), rest):
            raise ValueError(f"the training set of cv split {k} is not every row outside its test set; "
                             "a cross-validated path trains fold k on all other rows")
    missing = np.flatnonzero(ids < 0)
    if missing.size:
        raise ValueError(f"{missing.size} rows are in no test set of cv (e.g. row {missing[0]}): every "
                         "row must be held out exactly once")
    return ids

