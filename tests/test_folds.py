"""Fold ids: generated folds depend on the row index and the seed only (never on the chunking), are
balanced and differ between seeds; given labels map to 0 … K−1 in sorted order; bad input is refused."""

import math

import dask
import dask.array as da
import numpy as np
import pytest

from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.folds import generated_folds, given_folds, row_folds

N = 2003  # not a multiple of any K below: the last group of K rows is incomplete
CHUNKINGS = [(700, 700, 603), (1, 499, 3, 1000, 250, 250)]


@pytest.mark.parametrize("n_folds", [2, 3, 5, 10])
@pytest.mark.parametrize("seed", [0, 7, 2**62 + 3])
def test_generated_folds_do_not_depend_on_the_chunking(n_folds, seed):
    ref = generated_folds(N, n_folds, seed)
    assert isinstance(ref, np.ndarray) and ref.dtype == np.int64 and ref.shape == (N,)
    with dask.config.set(scheduler="sync"):
        for chunks in CHUNKINGS:
            lazy = generated_folds(N, n_folds, seed, row_chunks=chunks)
            assert isinstance(lazy, da.Array) and lazy.chunks == (chunks,)
            np.testing.assert_array_equal(lazy.compute(), ref, strict=True)
    # any row range computed on its own (as one block does) is the same slice
    for start, stop in [(0, 1), (3, 4), (4, 17), (1000, 2003), (1998, 2003)]:
        np.testing.assert_array_equal(row_folds(start, stop, n_folds, seed), ref[start:stop])


@pytest.mark.parametrize("n_folds", [2, 3, 5, 10])
def test_generated_folds_are_balanced_permutations_of_each_group(n_folds):
    ids = generated_folds(N, n_folds, seed=11)
    sizes = np.bincount(ids, minlength=n_folds)
    assert sizes.size == n_folds and sizes.max() - sizes.min() <= 1 and sizes.sum() == N
    whole = N // n_folds * n_folds
    groups = ids[:whole].reshape(-1, n_folds)
    np.testing.assert_array_equal(np.sort(groups, axis=1), np.tile(np.arange(n_folds), (len(groups), 1)))
    # and not one permutation repeated: the groups are shuffled differently
    distinct = {tuple(g) for g in groups}
    assert len(distinct) >= min(math.factorial(n_folds), 20)
    # every prefix stays balanced too (the groups are consecutive rows)
    for n in (1, n_folds - 1, n_folds + 1, 999):
        counts = np.bincount(ids[:n], minlength=n_folds)
        assert counts.max() - counts.min() <= 1


def test_generated_folds_depend_on_the_seed():
    a, b = generated_folds(N, 5, seed=0), generated_folds(N, 5, seed=1)
    np.testing.assert_array_equal(generated_folds(N, 5, seed=0), a)  # deterministic
    # two seeds agree on about 1/5 of the rows, as independent shuffles would
    assert 0.1 < np.mean(a == b) < 0.3
    # and the fold of a row is not a function of its position in its group alone
    assert 0.1 < np.mean(a == np.arange(N) % 5) < 0.3


@pytest.mark.parametrize("call, match", [
    (lambda: generated_folds(4, 5), r"cv=5 folds need at least 5 samples, got n_samples = 4"),
    (lambda: generated_folds(100, 1), r"must be an integer ≥ 2, got 1"),
    (lambda: generated_folds(100, True), r"must be an integer ≥ 2, got True"),
    (lambda: generated_folds(100, 5.0), r"must be an integer ≥ 2, got 5.0"),
    (lambda: generated_folds(100, 5, seed=-1), r"seed must be an integer in \[0, 2\*\*63\), got -1"),
    (lambda: generated_folds(100, 5, seed=1.5), r"seed must be an integer in \[0, 2\*\*63\), got 1.5"),
    (lambda: generated_folds(100, 5, seed=2**63), r"seed must be an integer in \[0, 2\*\*63\)"),
])
def test_bad_generated_fold_arguments_are_refused(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_given_labels_map_to_fold_ids_in_sorted_order():
    labels = np.array([30, -2, 30, 7, -2, 1000, 7, 7])
    ids, distinct = given_folds(labels, 8)
    np.testing.assert_array_equal(distinct, [-2, 7, 30, 1000])
    np.testing.assert_array_equal(ids, [2, 0, 2, 1, 0, 3, 1, 1], strict=False)
    assert ids.dtype == np.int64
    np.testing.assert_array_equal(distinct[ids], labels)  # label labels[k] is fold k
    with dask.config.set(scheduler="sync"):
        lazy, lazy_distinct = given_folds(da.from_array(labels, chunks=3), 8)
        assert isinstance(lazy, da.Array)
        np.testing.assert_array_equal(lazy.compute(), ids)
    np.testing.assert_array_equal(lazy_distinct, distinct)
    booleans, distinct = given_folds(labels > 10, 8)  # booleans are two labels
    np.testing.assert_array_equal(booleans, (labels > 10).astype(int))


@pytest.mark.parametrize("labels, n_rows, match", [
    (np.array([0.0, 1.0, 0.5, 1.0]), 4, r"fold labels must be integers, got dtype float64"),
    (np.array([0.0, 1.0, 0.0, 1.0]), 4, r"fold labels must be integers, got dtype float64"),
    (np.array(["a", "b", "a", "b"]), 4, r"fold labels must be integers, got dtype <U1"),
    (np.array([0, 1, 0]), 4, r"folds has shape \(3,\); expected \(4,\), one fold label per row of X"),
    (np.array([[0, 1], [0, 1]]), 4, r"folds has shape \(2, 2\); expected \(4,\)"),
    (np.array([3, 3, 3, 3]), 4, r"folds must hold at least two distinct labels, got 1"),
])
def test_bad_given_labels_are_refused(labels, n_rows, match):
    with pytest.raises(ValueError, match=match):
        given_folds(labels, n_rows)


def test_engines_refuse_fold_ids_of_another_length_or_not_integers():
    X, y = np.ones((6, 2)), np.zeros(6)
    with pytest.raises(ValueError, match=r"folds has shape \(5,\); expected \(6,\), one fold id per row"):
        NumpyEngine(X, y, folds=np.arange(5))
    with pytest.raises(ValueError, match=r"fold ids must be integers, got dtype float64"):
        NumpyEngine(X, y, folds=np.array([0, 1, 0.5, 1, 0, 1]))
    with pytest.raises(ValueError, match=r"folds has shape \(5,\); expected \(6,\), one fold id per row"):
        DaskEngine(da.from_array(X, chunks=3), y, folds=da.arange(5, chunks=3))
    with pytest.raises(ValueError, match=r"folds has shape \(7,\); expected \(6,\), one fold id per row"):
        DaskEngine(da.from_array(X, chunks=3), y, folds=np.arange(7))
