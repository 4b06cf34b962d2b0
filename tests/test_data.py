"""Synthetic problems: the promised condition number, reproducibility, chunk independence."""

import numpy as np
import pytest

from smem_dask.data import GEN_ROWS, Problem, make_problem, open_store, write_zarr


@pytest.mark.parametrize("cond", [1.0, 1e4, 1e6, 1e8])
def test_condition_number_of_gram_is_as_requested(cond):
    X, _ = make_problem(5000, 12, cond=cond, seed=3)
    eig = np.linalg.eigvalsh(X.T @ X)
    assert eig.max() / eig.min() == pytest.approx(cond, rel=1e-6)
    assert eig.max() == pytest.approx(5000, rel=1e-8)  # XᵀX = n·V diag(σ²) Vᵀ with σ_max = 1


def test_classification_labels_follow_the_true_model():
    problem = Problem(200_000, 5, cond=1e2, seed=4)
    X, y = problem.rows(0, problem.n)
    assert set(np.unique(y)) == {0.0, 1.0}
    eta = X @ problem.coef + problem.intercept
    assert np.std(eta) == pytest.approx(problem.signal, rel=0.02)
    # calibration: mean label within bins of the true probability (binomial standard error ~0.003)
    prob = 1 / (1 + np.exp(-eta))
    bins = np.digitize(prob, np.linspace(0, 1, 11))
    for b in np.unique(bins):
        sel = bins == b
        if sel.sum() > 2000:
            assert abs(y[sel].mean() - prob[sel].mean()) < 0.02


def test_rows_are_reproducible_and_independent_of_ranges():
    problem = Problem(3 * GEN_ROWS + 17, 4, cond=1e3, seed=9)
    X, y = problem.rows(0, problem.n)
    X2, y2 = make_problem(problem.n, 4, cond=1e3, seed=9)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    a, b = GEN_ROWS - 5, 2 * GEN_ROWS + 3  # a range across two generation blocks
    xr, yr = problem.rows(a, b)
    np.testing.assert_array_equal(xr, X[a:b])
    np.testing.assert_array_equal(yr, y[a:b])
    X3, _ = make_problem(problem.n, 4, cond=1e3, seed=10)
    assert not np.allclose(X3, X)


def test_zarr_store_content_does_not_depend_on_chunking(tmp_path):
    n, p = 70_000, 3
    write_zarr(tmp_path / "a.zarr", n, p, chunk_rows=1000, seed=2, task="regression")
    write_zarr(tmp_path / "b.zarr", n, p, chunk_rows=33_333, seed=2, task="regression")
    Xa, ya = open_store(tmp_path / "a.zarr")
    Xb, yb = open_store(tmp_path / "b.zarr")
    assert Xa.chunks == (1000, p) and Xb.chunks == (33_333, p)
    np.testing.assert_array_equal(Xa[:], Xb[:])
    np.testing.assert_array_equal(ya[:], yb[:])
    X, y = make_problem(n, p, seed=2, task="regression")
    np.testing.assert_array_equal(Xa[:], X)
    meta = __import__("zarr").open_group(tmp_path / "a.zarr", mode="r").attrs["smem_dask"]
    assert meta["n"] == n and meta["task"] == "regression" and len(meta["coef"]) == p


def test_existing_store_is_not_overwritten_by_accident(tmp_path):
    write_zarr(tmp_path / "a.zarr", 100, 2)
    with pytest.raises(ValueError, match="already exists"):
        write_zarr(tmp_path / "a.zarr", 100, 2)
    write_zarr(tmp_path / "a.zarr", 50, 2, overwrite=True)
    assert open_store(tmp_path / "a.zarr")[0].shape == (50, 2)


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0, "p": 2}, "n and p must be ≥ 1"),
    ({"n": 10, "p": 2, "cond": 0.5}, "cond must be ≥ 1"),
    ({"n": 10, "p": 2, "task": "ranking"}, "task must be one of"),
    ({"n": 3, "p": 5}, "too small to whiten"),
])
def test_bad_problem_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Problem(**kwargs)
