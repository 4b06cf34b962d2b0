"""The EM loop (smem_dask.solver.em_iterations) driven by hand, with no engine: each yielded Request is
answered here, either with statistics made up outright (to pin down what the loop does with them) or
with the stats layer's kernel on small numpy arrays (to check where the loop ends against closed
forms and scipy)."""

import math
import time
import warnings

import numpy as np
import pytest
import scipy.optimize
from scipy.special import expit

from smem_dask.losses import Logistic, Poisson, Squared
from smem_dask.penalties import L1, L2
from smem_dask.solver import (
    STOP_REQUESTED,
    ConvergenceWarning,
    SolverConfig,
    Stop,
    em_iterations,
    run_lockstep,
)
from smem_dask.stats import BlockStats, Request, block_stats_many


def answer(X, y, s, loss, request, fit_intercept):
    """One data pass for one request, as NumpyEngine.stats_many makes it with a single block: the
    kernel's statistics of the block added to the zero statistics."""
    q = X.shape[1] + int(fit_intercept)
    return BlockStats.zero(q, request.k) + block_stats_many(X, y, s, loss, [request], fit_intercept)[0]


def drive(gen, X, y, s, loss, fit_intercept=True):
    """Run the generator to its end, answering every request from (X, y, s). Returns the FitResult
    and the requests in the order they were yielded."""
    requests = []
    try:
        request = next(gen)
        while True:
            assert isinstance(request, Request)
            requests.append(request)
            request = gen.send(answer(X, y, s, loss, request, fit_intercept))
    except StopIteration as stop:
        return stop.value, requests


def _next_t(t):
    """FISTA's t_{k+1} = (1 + √(1 + 4 t_k²)) / 2, written here."""
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))


def _logistic_F(X, y, s, alpha, theta, penalty="l2"):
    """F = (1/W) Σ s ℓ + α P(β) for logistic loss, written directly (intercept last in θ)."""
    eta = X @ theta[:-1] + theta[-1]
    P = 0.5 * theta[:-1] @ theta[:-1] if penalty == "l2" else np.abs(theta[:-1]).sum()
    return np.sum(s * (np.logaddexp(0.0, eta) - y * eta)) / s.sum() + alpha * P


@pytest.fixture(scope="module")
def logistic_data():
    rng = np.random.default_rng(21)
    n, p = 600, 5
    X = rng.normal(size=(n, p)) * np.array([1.0, 0.5, 2.0, 1.0, 0.3])
    y = (rng.random(n) < expit(X @ np.array([1.0, -0.5, 0.4, 0.0, 2.0]) + 0.3)).astype(float)
    return X, y, rng.uniform(0.5, 2.0, n)


@pytest.fixture(scope="module")
def ill_conditioned():
    """A logistic problem on which Nesterov momentum overshoots (restarts happen)."""
    rng = np.random.default_rng(7)
    n, p, cond = 800, 6, 1e6
    U, _ = np.linalg.qr(rng.normal(size=(n, p)))
    V, _ = np.linalg.qr(rng.normal(size=(p, p)))
    X = np.sqrt(n) * U @ np.diag(cond ** (-0.5 * np.arange(p) / (p - 1))) @ V.T
    y = (rng.random(n) < expit(X @ rng.normal(0, 2, p) + 0.3)).astype(float)
    return X, y, np.ones(n)


# -- answered by the kernel ---------------------------------------------------------------------------

@pytest.mark.parametrize("acceleration", ["none", "nesterov-restart"])
@pytest.mark.parametrize("weighted", [False, True])
def test_squared_ridge_reaches_the_closed_form_and_counts_the_passes_it_yielded(acceleration, weighted):
    rng = np.random.default_rng(3)
    n, p, alpha = 250, 5, 0.07
    X = rng.normal(size=(n, p)) @ rng.normal(size=(p, p))
    y = X @ rng.normal(size=p) - 1.5 + rng.normal(size=n)
    s = rng.uniform(0.1, 3.0, n) if weighted else None
    w = np.ones(n) if s is None else s
    Xa = np.column_stack([X, np.ones(n)])
    closed = np.linalg.solve(Xa.T @ (Xa * w[:, None]) + w.sum() * alpha * np.diag(np.r_[np.ones(p), 0.0]),
                             Xa.T @ (w * y))
    gen = em_iterations(Squared(), L2(), alpha, p, config=SolverConfig(acceleration, tol=1e-12))
    res, requests = drive(gen, X, y, s, Squared())
    np.testing.assert_allclose(np.r_[res.coef, res.intercept], closed, rtol=1e-10, atol=1e-12)
    assert res.converged
    assert res.n_passes == len(requests) and res.history[-1].n_passes == len(requests)
    # the squared loss is its own majorizer: the first M-step is the answer, the second confirms it
    # (with momentum, the step from the extrapolated point returns β bitwise, and one more pass
    # forms the system at β for the plain step)
    assert res.n_iter <= 2 and res.n_passes <= 4 and res.n_restarts == 0
    F = 0.5 * np.sum(w * (y - Xa @ closed) ** 2) / w.sum() + 0.5 * alpha * closed[:p] @ closed[:p]
    assert res.objective == pytest.approx(F, rel=1e-13)


@pytest.mark.parametrize("beta0", [None, "given"])
def test_the_first_request_evaluates_at_beta0_and_asks_for_the_e_step_system(beta0, logistic_data):
    X, y, s = logistic_data
    start = None if beta0 is None else np.array([0.1, -0.2, 0.3, 0.0, 0.5, -1.0])
    gen = em_iterations(Logistic(), L2(), 1e-3, 5, config=SolverConfig(tol=1e-10), beta0=start)
    first = next(gen)
    want = np.zeros(6) if start is None else start
    np.testing.assert_array_equal(first.coefs, want[:, None], strict=True)
    np.testing.assert_array_equal(first.expand, want, strict=True)
    assert first.k == 1 and first.system and first.curvature is None and not first.reference_known
    # the second evaluates the M-step's candidate from that system, against point 0 = β0 (known)
    st = answer(X, y, s, Logistic(), first, True)
    second = gen.send(st)
    assert second.k == 2 and second.reference_known
    np.testing.assert_array_equal(second.coefs[:, 0], want, strict=True)
    # the candidate is the preconditioned gradient step β0 − (G + WαD)⁻¹ W∇F(β0), with the E-step
    # Gram written here: ω = tanh(η/2)/(2η) (¼ at η = 0)
    eta = X @ want[:5] + want[5]
    omega = np.where(eta == 0, 0.25, np.tanh(eta / 2) / (2 * np.where(eta == 0, 1.0, eta)))
    Xa = np.column_stack([X, np.ones(len(y))])
    W = s.sum()
    H = Xa.T @ (Xa * (s * omega)[:, None]) + W * 1e-3 * np.diag([1.0] * 5 + [0.0])
    grad = Xa.T @ (s * (expit(eta) - y)) + W * 1e-3 * np.r_[want[:5], 0.0]
    np.testing.assert_allclose(second.coefs[:, 1], want - np.linalg.solve(H, grad), rtol=1e-11, atol=1e-13)
    # with acceleration, the system is asked at the FISTA point c + m (c − β0), m = (t1 − 1)/t2
    t1 = _next_t(1.0)
    m = (t1 - 1.0) / _next_t(t1)
    c = second.coefs[:, 1]
    np.testing.assert_allclose(second.expand, c + m * (c - want), rtol=1e-15, atol=1e-16)
    gen.close()


@pytest.mark.parametrize("acceleration", ["none", "nesterov-restart"])
def test_fixed_curvature_asks_for_one_gram_then_gradients_only(acceleration, logistic_data):
    X, y, s = logistic_data
    kw = dict(config=SolverConfig(acceleration, tol=1e-11, max_iter=5000, curvature="fixed"))
    res, requests = drive(em_iterations(Logistic(), L2(), 1e-2, 5, **kw), X, y, s, Logistic())
    first, rest = requests[0], requests[1:]
    assert first.system and first.curvature == 0.25 and first.k == 1
    assert len(rest) > 5
    assert all(r.expand is None and not r.system and r.curvature is None and r.reference_known
               for r in rest)
    # restarts cost no pass: the system at β comes from the held Gram and the known gradient
    assert res.n_passes == len(requests) == 1 + res.n_iter + res.n_restarts
    assert res.converged
    adaptive, _ = drive(em_iterations(Logistic(), L2(), 1e-2, 5, config=SolverConfig(acceleration,
                                                                                     tol=1e-11)),
                        X, y, s, Logistic())
    np.testing.assert_allclose(res.coef, adaptive.coef, rtol=1e-8, atol=1e-10)
    # the fixed Gram the loop held is ¼·Σ s x̃x̃ᵀ, formed by the first pass
    Xa = np.column_stack([X, np.ones(len(y))])
    np.testing.assert_allclose(res.warm.fixed.gram, 0.25 * Xa.T @ (Xa * s[:, None]), rtol=1e-13)


def _iterates(requests, res, q):
    """The accepted iterates in order: β0, each new point 0 of a later request, the result."""
    points = [requests[0].coefs[:, 0]]
    for r in requests[1:]:
        if not np.array_equal(r.coefs[:, 0], points[-1]):
            points.append(r.coefs[:, 0])
    final = np.r_[res.coef, res.intercept]
    if not np.array_equal(final, points[-1]):
        points.append(final)
    return points


@pytest.mark.parametrize("acceleration", ["none", "nesterov-restart"])
def test_restarts_happen_only_when_f_would_rise_and_the_history_never_rises(acceleration, ill_conditioned):
    X, y, s = ill_conditioned
    alpha = 1e-4
    res, requests = drive(em_iterations(Logistic(), L2(), alpha, 6,
                                        config=SolverConfig(acceleration, tol=1e-10, max_iter=5000)),
                          X, y, s, Logistic())
    assert res.converged and res.n_passes == len(requests)
    history = np.array(res.objective_history)
    assert np.all(np.diff(history) <= 0), np.diff(history).max()
    # each recorded objective is F at that iterate, computed here
    iterates = _iterates(requests, res, 7)
    assert len(iterates) == len(history) == res.n_iter + 1
    direct = np.array([_logistic_F(X, y, s, alpha, b) for b in iterates])
    np.testing.assert_allclose(history, direct, rtol=1e-12)
    # a restart is a one-point request at the current β after the first pass; it follows exactly
    # the evaluations whose candidate would have raised F (F computed here, decided where resolved)
    restarts = [i for i, r in enumerate(requests) if i > 0 and r.k == 1]
    assert len(restarts) == res.n_restarts
    if acceleration == "none":
        assert res.n_restarts == 0
    else:
        assert res.n_restarts >= 2  # this problem makes momentum overshoot
    for i, r in enumerate(requests[:-1]):
        if i == 0 or r.k == 1:
            continue
        beta, candidate = r.coefs[:, 0], r.coefs[:, 1]
        F_beta = _logistic_F(X, y, s, alpha, beta)
        rise = _logistic_F(X, y, s, alpha, candidate) - F_beta
        if abs(rise) <= 1e-13 * abs(F_beta):
            continue  # below what a difference of two F's can resolve
        restarted = (i + 1) in restarts
        assert restarted == (rise > 0), (i, rise)
        if restarted:  # the candidate is discarded: the system is formed at β itself
            np.testing.assert_array_equal(requests[i + 1].coefs[:, 0], beta)
            np.testing.assert_array_equal(requests[i + 1].expand, beta)
            np.testing.assert_array_equal(requests[i + 2].coefs[:, 0], beta)
    assert sum(rec.restarted for rec in res.history) >= min(1, res.n_restarts)


@pytest.mark.parametrize("curvature", ["adaptive", "fixed", "cached"])
def test_a_warm_start_issues_no_first_pass(curvature, logistic_data):
    X, y, s = logistic_data
    config = SolverConfig(tol=1e-11, curvature=curvature)
    first, _ = drive(em_iterations(Logistic(), L2(), 1e-2, 5, config=config), X, y, s, Logistic())
    cold, _ = drive(em_iterations(Logistic(), L2(), 1e-3, 5, config=config), X, y, s, Logistic())
    res, requests = drive(em_iterations(Logistic(), L2(), 1e-3, 5, config=config, warm=first.warm),
                          X, y, s, Logistic())
    assert requests[0].k >= 2 and requests[0].reference_known  # a candidate's pass straight away
    np.testing.assert_array_equal(requests[0].coefs[:, 0], first.warm.beta)
    if curvature == "fixed":
        assert not any(r.system for r in requests)  # the warm start carried the Gram too
    assert res.n_passes == len(requests) and res.history[0].n_passes == 0
    assert res.history[0].objective == pytest.approx(_logistic_F(X, y, s, 1e-3, first.warm.beta), rel=1e-13)
    assert res.converged
    np.testing.assert_allclose(res.coef, cold.coef, rtol=1e-8, atol=1e-10)
    assert res.n_passes < cold.n_passes


@pytest.mark.parametrize("penalty", ["l2", "l1"])
@pytest.mark.parametrize("acceleration", ["none", "nesterov-restart"])
def test_logistic_reaches_the_scipy_optimum(penalty, acceleration, logistic_data):
    X, y, s = logistic_data
    alpha = 5e-3
    pen = L2() if penalty == "l2" else L1()
    res, requests = drive(em_iterations(Logistic(), pen, alpha, 5,
                                        config=SolverConfig(acceleration, tol=1e-12, max_iter=10000)),
                          X, y, s, Logistic())
    assert res.converged and res.n_passes == len(requests)
    W = s.sum()
    Xa = np.column_stack([X, np.ones(len(y))])
    if penalty == "l2":
        def F(theta):
            eta = Xa @ theta
            return (_logistic_F(X, y, s, alpha, theta),
                    Xa.T @ (s * (expit(eta) - y)) / W + alpha * np.r_[theta[:5], 0.0])
        bounds = None
        x0 = np.zeros(6)
    else:  # l1 as a smooth problem over θ = (β⁺, β⁻, b), β± ≥ 0
        def F(v):
            theta = np.r_[v[:5] - v[5:10], v[10]]
            eta = Xa @ theta
            g = Xa.T @ (s * (expit(eta) - y)) / W
            val = np.sum(s * (np.logaddexp(0.0, eta) - y * eta)) / W + alpha * v[:10].sum()
            return val, np.r_[g[:5] + alpha, -g[:5] + alpha, g[5]]
        bounds = [(0, None)] * 10 + [(None, None)]
        x0 = np.zeros(11)
    ref = scipy.optimize.minimize(F, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 10**5, "maxcor": 30})
    theta = ref.x if penalty == "l2" else np.r_[ref.x[:5] - ref.x[5:10], ref.x[10]]
    assert res.objective == pytest.approx(ref.fun, rel=1e-11)
    assert res.objective <= ref.fun + 1e-14
    np.testing.assert_allclose(np.r_[res.coef, res.intercept], theta, rtol=1e-7, atol=1e-7)


# -- answered with made-up statistics -----------------------------------------------------------------

Q, P, W_MADE, N_MADE = 4, 3, 8.0, 10.0
ALPHA = 0.3
_R = np.random.default_rng(5)
_A = _R.standard_normal((12, Q))
G_MADE = _A.T @ _A  # SPD
D = np.diag([1.0] * P + [0.0])


def _first_stats(beta, grad, loss_sum=5.0):
    """A first pass's statistics: loss and gradient at β, the tangent system (G, Gβ − ∇) there."""
    return BlockStats(N_MADE, W_MADE, np.array([loss_sum]), np.zeros(0), grad[:, None], G_MADE,
                      G_MADE @ beta - grad)


def _step_stats(delta, grad_at_candidate, k=2):
    """A candidate's pass: the loss change Σ s Δℓ from point 0 (known), the gradients, a system."""
    grad = np.zeros((Q, k))
    grad[:, 1:] = grad_at_candidate[:, None]
    return BlockStats(N_MADE, W_MADE, np.r_[0.0, [delta] * (k - 1)], np.full(k - 1, delta), grad,
                      G_MADE, np.ones(Q))

#: the made-up start of the tests below: β0 and the loss gradient there
BETA0_MADE = np.array([0.5, -1.0, 2.0, 0.25])
GRAD_MADE = np.array([1.0, -2.0, 0.5, 3.0])


def _after_first_pass(config: SolverConfig):
    """A generator from BETA0_MADE past its first pass (answered with made-up statistics), and the
    request of its first candidate's pass."""
    gen = em_iterations(Squared(), L2(), ALPHA, P, config=config, beta0=BETA0_MADE)
    first = next(gen)
    np.testing.assert_array_equal(first.expand, BETA0_MADE)
    return gen, gen.send(_first_stats(BETA0_MADE, GRAD_MADE))



def _penalty_change(new, old):
    return ALPHA * 0.5 * (new[:P] @ new[:P] - old[:P] @ old[:P])


def test_the_m_step_of_a_made_up_system_is_its_linear_solve():
    beta0, grad = BETA0_MADE, GRAD_MADE
    gen, second = _after_first_pass(SolverConfig("none"))
    # β1 = β0 − (G + WαD)⁻¹ (∇ + WαDβ0): the minimizer of the made-up quadratic plus the ridge
    step = np.linalg.solve(G_MADE + W_MADE * ALPHA * D, grad + W_MADE * ALPHA * D @ beta0)
    np.testing.assert_allclose(second.coefs[:, 1], beta0 - step, rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(second.coefs[:, 0], beta0)
    np.testing.assert_array_equal(second.expand, second.coefs[:, 1])  # no momentum: expand = candidate
    gen.close()


def test_a_plain_step_that_would_raise_f_ends_the_fit_at_beta():
    """No momentum: a rise from the plain EM step is the rounding floor; β is kept, no restart."""
    beta0, grad = BETA0_MADE, GRAD_MADE
    gen, second = _after_first_pass(SolverConfig("nesterov-restart"))
    candidate = second.coefs[:, 1]
    rise = 1.0 - W_MADE * _penalty_change(candidate, beta0)  # so that ΔF = 1/W > 0
    with pytest.warns(ConvergenceWarning, match="reached a fixed point or the floating-point floor"):
        with pytest.raises(StopIteration) as stop:
            gen.send(_step_stats(rise, grad))
    res = stop.value.value
    np.testing.assert_array_equal(np.r_[res.coef, res.intercept], beta0)
    assert (res.n_iter, res.n_passes, res.n_restarts, res.converged) == (0, 2, 0, False)
    F0 = 5.0 / W_MADE + ALPHA * 0.5 * beta0[:P] @ beta0[:P]
    assert res.objective == F0 and res.objective_history == [F0]


def test_a_rise_from_an_extrapolated_point_restarts_at_beta():
    """Accepted step 1 (F falls), then the step from the FISTA point raises F: the candidate is
    discarded, the system is asked at β1 (one pass), and the next step is the plain one from β1."""
    beta0, grad = BETA0_MADE, GRAD_MADE
    gen, second = _after_first_pass(SolverConfig("nesterov-restart"))
    beta1 = second.coefs[:, 1]
    fall = -1.0 - W_MADE * _penalty_change(beta1, beta0)  # ΔF = −1/W
    third = gen.send(_step_stats(fall, 0.5 * grad))
    np.testing.assert_array_equal(third.coefs[:, 0], beta1)  # accepted
    assert not np.array_equal(second.expand, beta1)  # the system came from the extrapolated point
    beta2 = third.coefs[:, 1]
    rise = 2.0 - W_MADE * _penalty_change(beta2, beta1)  # ΔF = 2/W > 0
    restart = gen.send(_step_stats(rise, 0.25 * grad))
    assert restart.k == 1 and not restart.reference_known
    np.testing.assert_array_equal(restart.coefs[:, 0], beta1)
    np.testing.assert_array_equal(restart.expand, beta1)
    # answered with the tangent system at β1, the next step is the plain M-step from β1
    g1 = 0.5 * grad
    after = gen.send(BlockStats(N_MADE, W_MADE, np.array([0.0]), np.zeros(0), g1[:, None], G_MADE,
                                G_MADE @ beta1 - g1))
    np.testing.assert_array_equal(after.coefs[:, 0], beta1)
    step = np.linalg.solve(G_MADE + W_MADE * ALPHA * D, g1 + W_MADE * ALPHA * D @ beta1)
    np.testing.assert_allclose(after.coefs[:, 1], beta1 - step, rtol=1e-13, atol=1e-15)
    # the momentum starts over: the first FISTA factor m = (t1 − 1)/t2 again, as at the fit's start
    t1 = _next_t(1.0)
    m = (t1 - 1.0) / _next_t(t1)
    c = after.coefs[:, 1]
    np.testing.assert_allclose(after.expand, c + m * (c - beta1), rtol=1e-15, atol=1e-16)
    gen.close()


def test_plain_nesterov_accepts_the_rise_that_nesterov_restart_refuses():
    beta0, grad = BETA0_MADE, GRAD_MADE
    gen, second = _after_first_pass(SolverConfig("nesterov", max_iter=2))
    beta1 = second.coefs[:, 1]
    third = gen.send(_step_stats(-1.0 - W_MADE * _penalty_change(beta1, beta0), 0.5 * grad))
    beta2 = third.coefs[:, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter=2 is the point
        with pytest.raises(StopIteration) as stop:
            gen.send(_step_stats(2.0 - W_MADE * _penalty_change(beta2, beta1), 0.25 * grad))
    res = stop.value.value
    np.testing.assert_array_equal(np.r_[res.coef, res.intercept], beta2)
    F = np.array(res.objective_history)
    np.testing.assert_allclose(np.diff(F), [-1.0 / W_MADE, 2.0 / W_MADE], rtol=1e-12)
    assert (res.n_iter, res.n_restarts, res.n_passes) == (2, 0, 3)


def test_a_local_majorizer_halves_a_plain_step_that_would_raise_f():
    """Poisson's E-step bound holds only near β: a rising plain step is halved (one pass each), not
    taken as the floor; the halved step that lowers F is accepted."""
    beta0 = np.array([0.2, -0.1, 0.3, 0.5])
    grad = np.array([1.0, -2.0, 0.5, 3.0])
    gen = em_iterations(Poisson(), L2(), ALPHA, P, config=SolverConfig("none"), beta0=beta0)
    next(gen)
    second = gen.send(_first_stats(beta0, grad))
    candidate = second.coefs[:, 1]
    points = [candidate]
    request = second
    for _ in range(2):  # two rises: the step is halved twice
        request = gen.send(_step_stats(1.0 - W_MADE * _penalty_change(points[-1], beta0), grad))
        assert request.k == 2 and request.reference_known
        np.testing.assert_array_equal(request.coefs[:, 0], beta0)
        points.append(request.coefs[:, 1])
        np.testing.assert_allclose(points[-1], beta0 + 0.5 * (points[-2] - beta0), rtol=1e-15, atol=1e-16)
        np.testing.assert_array_equal(request.expand, points[-1])
    np.testing.assert_allclose(points[-1], beta0 + 0.25 * (candidate - beta0), rtol=1e-15, atol=1e-16)
    # the quarter step lowers F: accepted, and the next request starts from it
    after = gen.send(_step_stats(-1.0 - W_MADE * _penalty_change(points[-1], beta0), 0.5 * grad))
    np.testing.assert_array_equal(after.coefs[:, 0], points[-1])
    gen.close()


def _accepted_before(requests):
    """For each request, how many iterations had been accepted when it was yielded (an iteration is
    accepted when point 0 of a later request moves)."""
    counts, it, beta = [], 0, requests[0].coefs[:, 0]
    for r in requests:
        if not np.array_equal(r.coefs[:, 0], beta):
            it, beta = it + 1, r.coefs[:, 0]
        counts.append(it)
    return counts


def test_cached_curvature_forms_its_gram_exactly_at_1_2_4_8_and_on_rises(ill_conditioned):
    X, y, s = ill_conditioned
    config = SolverConfig("nesterov-restart", tol=1e-10, max_iter=5000, curvature="cached")
    res, requests = drive(em_iterations(Logistic(), L2(), 1e-4, 6, config=config), X, y, s, Logistic())
    assert res.converged and res.n_passes == len(requests) and res.n_restarts >= 1
    for r, it in zip(requests[1:], _accepted_before(requests)[1:], strict=True):
        if r.k == 1:  # a restart (or a step that left β unchanged): the E-step system at β
            assert r.system
            np.testing.assert_array_equal(r.expand, r.coefs[:, 0])
        else:  # the pass after `it` accepted iterations refreshes iff it + 1 is a power of two
            assert r.system == (((it + 1) & it) == 0), it
    refreshed_at = {it for r, it in zip(requests[1:], _accepted_before(requests)[1:], strict=True)
                    if r.k > 1 and r.system}
    assert {0, 1, 3, 7} <= refreshed_at <= {0, 1, 3, 7, 15, 31, 63}
    assert sum(r.k == 1 for r in requests[1:]) >= res.n_restarts
    assert sum(r.system for r in requests) < len(requests) / 2
    adaptive, _ = drive(em_iterations(Logistic(), L2(), 1e-4, 6, config=SolverConfig(tol=1e-10)),
                        X, y, s, Logistic())
    assert res.objective == pytest.approx(adaptive.objective, rel=1e-12)


@pytest.mark.parametrize("why", ["max_time", "interrupted"])
def test_a_stop_ends_the_fit_after_its_first_accepted_iteration(why, logistic_data):
    X, y, s = logistic_data
    if why == "max_time":
        stop, match = Stop(deadline=time.monotonic() - 1.0, max_time=0.5), "the time limit max_time=0.5 s"
    else:
        stop, match = Stop(), r"a stop was requested \(interrupted\)"
        STOP_REQUESTED.set()
    try:
        gen = em_iterations(Logistic(), L2(), 1e-3, 5, config=SolverConfig(tol=1e-12), stop=stop)
        with pytest.warns(ConvergenceWarning, match=f"stopped after 1 iterations, unconverged: {match}"):
            res, requests = drive(gen, X, y, s, Logistic())
    finally:
        STOP_REQUESTED.clear()
    assert (res.stopped, res.n_iter, res.n_passes, len(requests), res.converged) == (why, 1, 2, 2, False)
    np.testing.assert_array_equal(np.r_[res.coef, res.intercept], requests[1].coefs[:, 1])


class _KernelEngine:
    """The smallest engine: every request of a pass answered by the kernel (as in `answer`)."""

    def __init__(self, X, y, s):
        self.X, self.y, self.s = X, y, s
        self.n_features, self.n_passes, self.calls = X.shape[1], 0, []

    def stats_many(self, loss, requests, fit_intercept):
        self.n_passes += 1
        self.calls.append(len(requests))
        return [answer(self.X, self.y, self.s, loss, r, fit_intercept) for r in requests]


def test_run_lockstep_serves_every_running_fit_in_each_pass_and_changes_no_fit(logistic_data):
    X, y, s = logistic_data
    alphas = [1e-1, 1e-2, 1e-3, 1e-4]
    config = SolverConfig(tol=1e-11)
    alone = [drive(em_iterations(Logistic(), L1(), a, 5, config=config), X, y, s, Logistic())[0]
             for a in alphas]
    engine, finished = _KernelEngine(X, y, s), []
    together = run_lockstep(engine, Logistic(), True,
                            [em_iterations(Logistic(), L1(), a, 5, config=config) for a in alphas],
                            on_done=lambda i, fit: finished.append((i, fit.n_passes)))
    for a, b in zip(alone, together, strict=True):  # bitwise: lockstep only batches the passes
        np.testing.assert_array_equal(b.coef, a.coef, strict=True)
        assert (b.intercept, b.n_passes, b.n_iter, b.objective_history) == (
            a.intercept, a.n_passes, a.n_iter, a.objective_history)
    passes = [fit.n_passes for fit in alone]
    assert len(set(passes)) > 1  # the fits end at different passes
    # one engine call per pass of the longest fit, each serving every fit still running
    assert engine.n_passes == len(engine.calls) == max(passes)
    assert engine.calls == [sum(n > k for n in passes) for k in range(max(passes))]
    # each fit is reported as it finishes, in the order the fits finish
    assert sorted(finished) == sorted(enumerate(passes))
    assert [n for _, n in finished] == sorted(passes)
