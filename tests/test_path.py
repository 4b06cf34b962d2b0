"""Regularization paths: every α equals an independent cold fit; α_max; passes; lazy inputs."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from smem_dask import SMEMClassifier, SMEMRegressor, fit_path
from smem_dask.data import make_problem
from smem_dask.path import RIDGE_ALPHA_MAX_FACTOR, alpha_grid


@pytest.fixture(scope="module")
def paths(logistic_problem):
    X, y = logistic_problem
    return {pen: fit_path(X, y, penalty=pen, tol=1e-11) for pen in ("l2", "l1")}


@pytest.mark.parametrize("penalty", ["l2", "l1"])
def test_every_alpha_of_a_40_point_path_equals_a_cold_fit(paths, logistic_problem, penalty):
    X, y = logistic_problem
    path = paths[penalty]
    assert len(path.alphas) == 40 and np.all(np.diff(path.alphas) < 0)
    assert path.alphas[-1] / path.alphas[0] == pytest.approx(1e-3)
    assert path.converged.all()
    for k, alpha in enumerate(path.alphas):
        cold = SMEMClassifier(penalty=penalty, alpha=alpha, tol=1e-11).fit(X, y)
        assert path.objectives[k] == pytest.approx(cold.objective_, rel=1e-8)
        if penalty == "l1":
            np.testing.assert_array_equal(path.coefs[k] == 0, cold.coef_ == 0)


def test_path_points_match_sklearn(paths, logistic_problem):
    X, y = logistic_problem
    n = len(y)
    for penalty, ks in (("l2", (5, 39)), ("l1", (10, 39))):
        path = paths[penalty]
        for k in ks:
            C = 1 / (path.alphas[k] * n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = (LogisticRegression(C=C, tol=1e-12, solver="newton-cholesky", max_iter=1000)
                       if penalty == "l2" else
                       LogisticRegression(C=C, l1_ratio=1.0, solver="saga", tol=1e-12,
                                          max_iter=10**6)).fit(X, y)
            np.testing.assert_allclose(path.coefs[k], ref.coef_.ravel(), rtol=1e-5, atol=1e-6)


def test_alpha_max_is_the_lasso_threshold(paths, logistic_problem):
    X, y = logistic_problem
    a_max = paths["l1"].alphas[0]
    assert not paths["l1"].coefs[0].any()
    below = SMEMClassifier(penalty="l1", alpha=0.99 * a_max, tol=1e-11).fit(X, y)
    assert below.coef_.any()
    # ridge starts at RIDGE_ALPHA_MAX_FACTOR × max|∇| at β = 0: the same gradient as the lasso's
    assert paths["l2"].alphas[0] == pytest.approx(RIDGE_ALPHA_MAX_FACTOR * a_max, rel=1e-8)


def test_passes_are_counted_and_warm_starts_save_them(logistic_problem):
    X, y = logistic_problem
    # the E-step (a restart costs a pass there: the system at β)
    seq = fit_path(X, y, tol=1e-11, batch=1, curvature="adaptive")
    # sequential: passes add up (α_0 carries the shared start), and no α needs a first pass
    assert seq.total_passes == seq.n_passes.sum()
    assert all(f.n_passes == f.n_iter + 2 * f.n_restarts for f in seq.fits)
    cold_total = sum(SMEMClassifier(alpha=a, tol=1e-11, curvature="adaptive").fit(X, y).n_passes_
                     for a in seq.alphas)
    assert seq.total_passes < cold_total
    # lockstep: one batch, so the path takes the start plus as many passes as its slowest α
    lock = fit_path(X, y, tol=1e-11, batch=40, curvature="adaptive")
    start = lock.n_passes[0] - lock.fits[0].n_passes
    assert lock.total_passes == start + max(f.n_passes for f in lock.fits)
    assert lock.total_passes < seq.total_passes / 5
    np.testing.assert_allclose(lock.objectives, seq.objectives, rtol=1e-12)


@pytest.mark.parametrize("curvature", ["adaptive", "fixed"])
def test_40_point_ridge_path_costs_at_most_4_cold_fits(curvature):
    """Issue 4: n ≥ 1e5, cond(XᵀX) ≥ 1e6, 40-point logistic-ridge path ≤ 4× the passes of one cold
    fit at the smallest α (counted passes), every α within 1e-8 of that cold fit's objective."""
    X, y = make_problem(100_000, 20, cond=1e6, seed=1)
    path = fit_path(X, y, penalty="l2", tol=1e-8, curvature=curvature)
    cold = SMEMClassifier(penalty="l2", alpha=path.alphas[-1], tol=1e-8).fit(X, y)
    assert path.converged.all() and cold.converged_
    assert path.total_passes <= 4 * cold.n_passes_, (path.total_passes, cold.n_passes_)
    assert path.objectives[-1] == pytest.approx(cold.objective_, rel=1e-8)


@pytest.mark.parametrize("penalty", ["l2", "l1"])
def test_sharing_modes_agree(logistic_problem, penalty):
    """Sequential, lockstep batches and fixed curvature reach the same path."""
    X, y = logistic_problem
    ref = fit_path(X, y, penalty=penalty, n_alphas=12, tol=1e-11, batch=1)
    for kwargs in ({"batch": 5}, {"batch": 12}, {"curvature": "fixed", "batch": 1},
                   {"curvature": "fixed"}):
        other = fit_path(X, y, penalty=penalty, n_alphas=12, tol=1e-11, **kwargs)
        np.testing.assert_allclose(other.objectives, ref.objectives, rtol=1e-9, err_msg=str(kwargs))
        np.testing.assert_allclose(other.coefs, ref.coefs, rtol=1e-5, atol=1e-7, err_msg=str(kwargs))


def test_path_on_dask_equals_in_memory(logistic_problem):
    X, y = logistic_problem
    alphas = [1e-2, 1e-3, 1e-4]
    ref = fit_path(X, y, penalty="elasticnet", penalty_params={"l1_ratio": 0.5}, alphas=alphas,
                   tol=1e-10)
    with dask.config.set(scheduler="threads"):
        lazy = fit_path(da.from_array(X, chunks=(700, -1)), da.from_array(y, chunks=700),
                        penalty="elasticnet", penalty_params={"l1_ratio": 0.5}, alphas=alphas,
                        tol=1e-10)
    np.testing.assert_allclose(lazy.coefs, ref.coefs, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(lazy.alphas, alphas)


def test_estimator_path_leaves_it_fitted_at_the_smallest_alpha(regression_problem):
    X, y = regression_problem
    est = SMEMRegressor(penalty="l1", tol=1e-12)
    path = est.path(X, y, n_alphas=5, eps=1e-2)
    np.testing.assert_array_equal(est.coef_, path.coefs[-1])
    np.testing.assert_array_equal(est.alpha_path_, path.alphas)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_alphas": 0}, "n_alphas must be ≥ 1"),
    ({"eps": 1.5}, r"eps must be in \(0, 1\)"),
    ({"alphas": [1.0, -1.0]}, "alphas must be a non-empty sequence of finite numbers ≥ 0"),
    ({"alphas": []}, "alphas must be a non-empty sequence"),
    ({"penalty": "scad"}, "paths of the non-convex penalty 'scad' are not supported yet"),
    ({"batch": 0}, "batch must be a positive integer or 'auto'"),
    ({"loss": "quantile", "curvature": "fixed"}, "curvature='fixed' needs a loss with bounded"),
])
def test_bad_path_arguments(regression_problem, kwargs, match):
    X, y = regression_problem
    kwargs = {"loss": "squared", **kwargs}
    with pytest.raises(ValueError, match=match):
        fit_path(X, y, **kwargs)


def test_alpha_grid_is_log_even():
    grid = alpha_grid(2.0, 5, 1e-4)
    np.testing.assert_allclose(grid, [2.0, 2e-1, 2e-2, 2e-3, 2e-4])


@pytest.mark.parametrize("curvature", ["adaptive", "fixed"])
def test_a_path_on_given_alphas_starts_with_one_pass(logistic_problem, curvature):
    """With α given, the shared start is one pass at β = 0 (fixed curvature: with the bound's Gram,
    which every α then shares — it used to take a second pass); each α equals its cold fit."""
    X, y = logistic_problem
    alphas = [1e-2, 1e-3]
    path = fit_path(X, y, alphas=alphas, batch=1, tol=1e-11, curvature=curvature)
    assert path.n_passes[0] - path.fits[0].n_passes == 1
    assert path.total_passes == 1 + sum(f.n_passes for f in path.fits)
    for a, coef in zip(alphas, path.coefs, strict=True):
        cold = SMEMClassifier(alpha=a, tol=1e-11, curvature=curvature).fit(X, y)
        np.testing.assert_allclose(coef, cold.coef_, rtol=1e-7, atol=1e-9)


def test_solve_path_over_an_engine_equals_cold_fits_of_the_solver_layer():
    """The path layer alone (no estimator): solve_path over a NumpyEngine gives, at every α, the
    solver layer's own cold fit (fit_em from β = 0) to 1e-8, with one lockstep batch."""
    from smem_dask.engine import NumpyEngine
    from smem_dask.losses import Logistic
    from smem_dask.path import solve_path
    from smem_dask.penalties import L1
    from smem_dask.solver import SolverConfig, fit_em
    X, y = make_problem(800, 6, seed=5, cond=1e2)
    config = SolverConfig(tol=1e-10, penalty_solver="exact")
    path = solve_path(NumpyEngine(X, y), Logistic(), L1(), n_alphas=5, eps=1e-2, config=config)
    assert path.converged.all() and path.total_passes < sum(path.n_passes) + 1
    for a, coef, b in zip(path.alphas, path.coefs, path.intercepts, strict=True):
        cold = fit_em(NumpyEngine(X, y), Logistic(), L1(), a, config=config)
        assert cold.converged
        np.testing.assert_allclose(coef, cold.coef, atol=1e-8)
        assert b == pytest.approx(cold.intercept, abs=1e-8)
