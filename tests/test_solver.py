"""The EM loop: the preconditioned-gradient identity, monotonicity, closed forms, KKT."""

import warnings

import numpy as np
import pytest
from scipy.special import expit

from smem_dask.engine import NumpyEngine
from smem_dask.losses import Logistic, Squared
from smem_dask.penalties import L2
from smem_dask.solver import (
    ConvergenceWarning,
    SingularSystemWarning,
    SolverConfig,
    fit_em,
    m_step,
    objective,
    optimality,
)


def _logistic_F(X, y, s, alpha, beta, b):
    """F of docs/method.md ("The objective") written directly (independent of the package)."""
    eta = X @ beta + b
    return np.sum(s * (np.logaddexp(0, eta) - y * eta)) / s.sum() + 0.5 * alpha * beta @ beta


@pytest.mark.parametrize("seed", range(5))
def test_em_step_is_a_preconditioned_gradient_step(seed):
    """β_new = β − (XᵀSΩX + WαD)⁻¹ · W∇F(β), with Ω and ∇F written independently here."""
    rng = np.random.default_rng(seed)
    n, p = 400, 6
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 3, p)
    y = rng.integers(0, 2, n).astype(float)
    s = rng.uniform(0.2, 2.0, n)
    alpha = 10 ** rng.uniform(-4, -1)
    beta = np.append(rng.normal(size=p), rng.normal())  # coefficients, then intercept
    eta = X @ beta[:p] + beta[p]
    Xa = np.column_stack([X, np.ones(n)])
    W = s.sum()

    omega = (expit(eta) - 0.5) / eta  # = tanh(η/2)/(2η), another formula
    H = Xa.T @ (Xa * (s * omega)[:, None]) + W * alpha * np.diag(np.r_[np.ones(p), 0.0])
    grad_F = Xa.T @ (s * (expit(eta) - y)) / W + alpha * np.r_[beta[:p], 0.0]
    expected = beta - np.linalg.solve(H, W * grad_F)

    eng = NumpyEngine(X, y, s)
    st = eng.stats(Logistic(), beta[:, None], beta, True)
    got = m_step(st, beta, L2(), alpha, p)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-11)

    # the solver's objective and gradient are the documented F's (finite differences of the direct F)
    assert objective(st.loss[0], st.weight, beta, L2(), alpha, p) == pytest.approx(
        _logistic_F(X, y, s, alpha, beta[:p], beta[p]), rel=1e-13)
    g = optimality(st.grad[:, 0], st.weight, beta, L2(), alpha, p)
    h = 1e-6
    for j in range(p + 1):
        e = np.zeros(p + 1)
        e[j] = h
        fd = (_logistic_F(X, y, s, alpha, (beta + e)[:p], (beta + e)[p])
              - _logistic_F(X, y, s, alpha, (beta - e)[:p], (beta - e)[p])) / (2 * h)
        assert g[j] == pytest.approx(fd, rel=1e-6, abs=1e-9)


def _problems():
    rng = np.random.default_rng(7)
    out = []
    for cond in (1.0, 1e4, 1e8):
        n, p = 500, 5
        U, _ = np.linalg.qr(rng.normal(size=(n, p)))
        V, _ = np.linalg.qr(rng.normal(size=(p, p)))
        X = np.sqrt(n) * U @ np.diag(cond ** (-0.5 * np.arange(p) / (p - 1))) @ V.T
        eta = X @ rng.normal(0, 2, p) + 0.3
        out.append((X, (rng.random(n) < expit(eta)).astype(float), rng.uniform(0.5, 2, n)))
    return out


@pytest.mark.parametrize("acceleration", ["none", "nesterov-restart"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("case", range(3))
def test_objective_never_increases(acceleration, fit_intercept, case):
    X, y, s = _problems()[case]
    res = fit_em(NumpyEngine(X, y, s), Logistic(), L2(), 1e-3, fit_intercept=fit_intercept,
                 config=SolverConfig(acceleration, tol=1e-9, max_iter=5000))
    F = np.array(res.objective_history)
    assert len(F) == res.n_iter + 1 and len(F) > 3
    assert np.all(np.diff(F) <= 0), np.diff(F).max()
    assert res.converged
    # each recorded objective is F of docs/method.md at that iterate: check the last one directly
    b = res.intercept if fit_intercept else 0.0
    assert F[-1] == pytest.approx(_logistic_F(X, y, s, 1e-3, res.coef, b), rel=1e-13)


def test_all_accelerations_reach_the_same_optimum_which_satisfies_kkt():
    X, y, s = _problems()[1]
    alpha = 1e-3
    results = {}
    for acc in ("none", "nesterov", "nesterov-restart"):
        res = fit_em(NumpyEngine(X, y, s), Logistic(), L2(), alpha,
                     config=SolverConfig(acc, tol=1e-10, max_iter=20000))
        results[acc] = res
        eta = X @ res.coef + res.intercept
        kkt = np.r_[X.T @ (s * (expit(eta) - y)) / s.sum() + alpha * res.coef,
                    np.sum(s * (expit(eta) - y)) / s.sum()]
        assert np.abs(kkt).max() < 1e-9
    ref = results["nesterov-restart"]
    for res in results.values():
        np.testing.assert_allclose(res.coef, ref.coef, rtol=1e-6, atol=1e-8)
    # accounting: one pass per iteration, one to start, two per restart
    assert ref.n_passes == ref.n_iter + 1 + 2 * ref.n_restarts


@pytest.mark.parametrize("weighted", [False, True])
def test_squared_ridge_matches_closed_form_in_one_step(weighted, rng):
    n, p = 300, 6
    X = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    y = X @ rng.normal(size=p) + 2.0 + rng.normal(size=n)
    s = rng.uniform(0, 2, n) if weighted else np.ones(n)
    alpha, W = 0.05, s.sum()
    Xa = np.column_stack([X, np.ones(n)])
    A = Xa.T @ (Xa * s[:, None]) + W * alpha * np.diag(np.r_[np.ones(p), 0.0])
    closed = np.linalg.solve(A, Xa.T @ (s * y))
    res = fit_em(NumpyEngine(X, y, s if weighted else None), Squared(), L2(), alpha,
                 config=SolverConfig("none", tol=1e-12))
    np.testing.assert_allclose(np.r_[res.coef, res.intercept], closed, rtol=1e-10, atol=1e-12)
    assert res.n_iter <= 2  # exact majorizer: the first M-step is the answer


def test_singular_system_warns_and_returns_a_least_squares_solution(rng):
    n = 100
    x = rng.normal(size=n)
    X = np.column_stack([x, x, rng.normal(size=n)])  # duplicated column, alpha = 0
    y = 1.5 * x - X[:, 2] + 0.1 * rng.normal(size=n)
    with pytest.warns(SingularSystemWarning, match="singular"):
        res = fit_em(NumpyEngine(X, y), Squared(), L2(), 0.0,
                     config=SolverConfig("none", tol=1e-12))
    Xa = np.column_stack([X, np.ones(n)])
    lstsq = np.linalg.lstsq(Xa, y, rcond=None)[0]
    np.testing.assert_allclose(Xa @ np.r_[res.coef, res.intercept], Xa @ lstsq, atol=1e-10)


def test_max_iter_gives_a_convergence_warning(logistic_problem):
    X, y = logistic_problem
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        res = fit_em(NumpyEngine(X, y), Logistic(), L2(), 1e-4, config=SolverConfig(max_iter=3))
    assert not res.converged and res.n_iter == 3


@pytest.mark.parametrize("kwargs, match", [
    ({"acceleration": "adam"}, "unknown acceleration 'adam'; choose one of none, nesterov"),
    ({"tol": 0.0}, "tol must be a positive"),
    ({"tol": float("nan")}, "tol must be a positive"),
    ({"max_iter": 0}, "max_iter must be a positive integer"),
    ({"max_iter": 2.5}, "max_iter must be a positive integer"),
    ({"curvature": "flat"}, "unknown curvature 'flat'; choose one of auto, adaptive, fixed, cached, newton"),
])
def test_bad_solver_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SolverConfig(**kwargs)


def test_negative_alpha_is_refused(logistic_problem):
    X, y = logistic_problem
    with pytest.raises(ValueError, match="alpha must be a finite number"):
        fit_em(NumpyEngine(X, y), Logistic(), L2(), -1.0)


def test_warm_start_from_the_optimum_stops_immediately(logistic_problem):
    X, y = logistic_problem
    eng = NumpyEngine(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = fit_em(eng, Logistic(), L2(), 1e-3, config=SolverConfig(tol=1e-10))
        again = fit_em(eng, Logistic(), L2(), 1e-3, config=SolverConfig(tol=1e-10),
                       beta0=np.r_[first.coef, first.intercept])
    assert again.n_iter <= 2
    assert again.objective <= first.objective


@pytest.mark.parametrize("loss_name", ["logistic", "squared", "huber"])
@pytest.mark.parametrize("penalty_name", ["l2", "l1"])
def test_fixed_curvature_reaches_the_same_optimum(logistic_problem, regression_problem, loss_name,
                                                  penalty_name):
    """The bound majorizer ω = b converges to the optimum of the same F (scipy oracle), with
    gradient-only passes: one first pass, one per iteration, and restarts cost no pass."""
    import scipy.optimize

    from smem_dask import SMEMClassifier, SMEMRegressor

    X, y = logistic_problem if loss_name == "logistic" else regression_problem
    cls = SMEMClassifier if loss_name == "logistic" else SMEMRegressor
    alpha = 1e-2
    kw = dict(loss=loss_name, penalty=penalty_name, alpha=alpha, tol=1e-12, max_iter=20000)
    fixed = cls(curvature="fixed", **kw).fit(X, y)
    adaptive = cls(**kw).fit(X, y)
    assert fixed.converged_
    assert fixed.objective_ == pytest.approx(adaptive.objective_, rel=1e-10)
    assert fixed.n_passes_ == 1 + fixed.n_iter_ + fixed.n_restarts_
    if penalty_name == "l2":
        loss = fixed.loss_

        def F(theta):
            eta = X @ theta[:-1] + theta[-1]
            g = loss.derivative(y, eta)
            val = np.mean(loss.value(y, eta)) + 0.5 * alpha * theta[:-1] @ theta[:-1]
            grad = np.r_[X.T @ g / len(y) + alpha * theta[:-1], g.mean()]
            return val, grad

        ref = scipy.optimize.minimize(F, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                                      options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10**5})
        assert fixed.objective_ == pytest.approx(ref.fun, rel=1e-9)


def test_fixed_curvature_ridge_solve_equals_a_direct_solve(rng):
    from smem_dask.solver import FixedCurvature

    for q, p in ((6, 5), (5, 5)):
        A = rng.normal(size=(50, q))
        G = A.T @ A
        fc = FixedCurvature(G, 3.0, p)
        D = np.diag([1.0] * p + [0.0] * (q - p))
        for alpha in (1e-6, 1e-2, 10.0):
            r = rng.normal(size=q)
            np.testing.assert_allclose(fc.solve_ridge(r, alpha),
                                       np.linalg.solve(G + 3.0 * alpha * D, r), rtol=1e-9)


def test_fixed_curvature_needs_a_bounded_loss(regression_problem):
    from smem_dask import SMEMRegressor

    X, y = regression_problem
    with pytest.raises(ValueError, match="the quantile loss has none"):
        SMEMRegressor(loss="quantile", curvature="fixed").fit(X, y)


@pytest.mark.parametrize("acceleration", ["none", "nesterov", "nesterov-restart"])
@pytest.mark.parametrize("loss_name,penalty_name", [("logistic", "l2"), ("logistic", "l1"),
                                                    ("squared", "l2"), ("student_t", "l2")])
def test_cached_curvature_reaches_the_same_optimum_monotonely(logistic_problem, regression_problem,
                                                              acceleration, loss_name, penalty_name):
    """A stale E-step Gram as the M-step matrix: the same optimum as the adaptive E-step (whose
    optimum the scipy oracle checks for logistic ridge), F never rises, and fewer Gram passes."""
    import scipy.optimize

    from smem_dask import SMEMClassifier, SMEMRegressor

    X, y = logistic_problem if loss_name == "logistic" else regression_problem
    cls = SMEMClassifier if loss_name == "logistic" else SMEMRegressor
    alpha = 1e-2
    kw = dict(loss=loss_name, penalty=penalty_name, alpha=alpha, tol=1e-12, max_iter=20000,
              acceleration=acceleration)
    cached = cls(curvature="cached", **kw).fit(X, y)
    adaptive = cls(**kw).fit(X, y)
    assert cached.converged_
    assert cached.objective_ == pytest.approx(adaptive.objective_, rel=1e-10)
    if acceleration != "nesterov":
        assert np.all(np.diff(cached.objective_history_) <= 0)
    if (loss_name, penalty_name) == ("logistic", "l2"):
        def F(theta):
            eta = X @ theta[:-1] + theta[-1]
            g = expit(eta) - y
            val = np.mean(np.logaddexp(0, eta) - y * eta) + 0.5 * alpha * theta[:-1] @ theta[:-1]
            return val, np.r_[X.T @ g / len(y) + alpha * theta[:-1], g.mean()]

        ref = scipy.optimize.minimize(F, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                                      options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10**5})
        assert cached.objective_ == pytest.approx(ref.fun, rel=1e-9)


def test_cached_curvature_forms_few_grams(logistic_problem):
    """Grams only at the start, at iterations 1, 2, 4, 8, … and on rises: count them through the
    engine's requests."""
    from smem_dask.losses import Logistic

    X, y = logistic_problem
    eng = NumpyEngine(X, y)
    grams = []
    inner = eng.stats_many

    def counting(loss, requests, fit_intercept):
        grams.append(sum(r.system for r in requests))
        return inner(loss, requests, fit_intercept)

    eng.stats_many = counting
    res = fit_em(eng, Logistic(), L2(), 1e-2, config=SolverConfig(tol=1e-12, curvature="cached"))
    scheduled = 1 + sum(1 for k in range(1, res.n_iter + 1) if k & (k - 1) == 0)
    assert len(grams) == res.n_passes
    assert sum(grams) <= scheduled + res.n_restarts
    assert sum(grams) < res.n_passes / 2


def test_m_step_takes_the_exact_solver_as_a_keyword_bool():
    """``exact`` is keyword-only and a bool: a solver name passed where the old signature had it is
    refused, not read as True."""
    from smem_dask.stats import BlockStats
    st = BlockStats.system_only(3, 3.0, np.eye(2), np.ones(2))
    np.testing.assert_allclose(m_step(st, np.zeros(2), L2(), 0.0, 1), np.ones(2), rtol=1e-15)
    with pytest.raises(TypeError):
        m_step(st, np.zeros(2), L2(), 0.0, 1, "em")
    with pytest.raises(TypeError, match="exact must be True or False, got 'em'"):
        m_step(st, np.zeros(2), L2(), 0.0, 1, exact="em")


def test_settings_are_checked_before_any_pass_by_every_entry_point(tmp_path):
    """fit_penalized (whose non-convex ridge start came first) and solve_path (whose start and store
    came first) refuse a combination that cannot be fitted before reading anything or writing a store."""
    from smem_dask.losses import Hinge
    from smem_dask.path import solve_path
    from smem_dask.penalties import SCAD
    from smem_dask.solver import fit_penalized
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, 50).astype(float)
    eng = NumpyEngine(X, y)
    with pytest.raises(ValueError, match="penalty 'scad' has no exact solver"):
        fit_penalized(eng, Logistic(), SCAD(), 1e-2, config=SolverConfig(penalty_solver="exact"))
    with pytest.raises(ValueError, match="penalty 'l2' has no exact solver"):
        solve_path(eng, Logistic(), L2(), n_alphas=3, config=SolverConfig(penalty_solver="exact"),
                   store=tmp_path / "s.zarr")
    with pytest.raises(ValueError, match="curvature='fixed' needs a loss with bounded"):
        solve_path(eng, Hinge(), L2(), n_alphas=3, config=SolverConfig(curvature="fixed"))
    assert eng.n_passes == 0 and not (tmp_path / "s.zarr").exists()
