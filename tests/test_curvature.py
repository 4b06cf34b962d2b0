"""The curvature modes (smem_dask/curvature.py) driven directly with hand-made statistics: what each asks
of a pass, what system it gives, what it holds and hands to a warm start."""

import numpy as np
import pytest

from smem_dask.curvature import MODES, Adaptive, Cached, FixedBound, FixedCurvature, Newton, make_curvature
from smem_dask.losses import Logistic, Poisson, Squared
from smem_dask.solver import CURVATURES, SolverConfig, WarmStart
from smem_dask.stats import BlockStats

RNG = np.random.default_rng(3)
P = 3
Q = P + 1
A = RNG.standard_normal((20, Q))
GRAM = A.T @ A  # symmetric positive definite, intercept last
WEIGHT, ROWS = 20.0, 20.0


def _system(gram=GRAM, rhs=None):
    return BlockStats.system_only(ROWS, WEIGHT, gram, np.arange(Q, dtype=float) if rhs is None else rhs)


def _warm(expand, fixed=None):
    beta = np.linspace(-1.0, 1.0, Q)
    return WarmStart(beta, 3.5, np.ones(Q), _system(), np.asarray(expand, float), fixed)


def test_the_mode_names_are_the_solver_settings():
    assert CURVATURES == ("auto", "adaptive", "fixed", "cached", "newton") == ("auto", *MODES)
    assert [type(make_curvature(n, Logistic())) for n in MODES] == [Adaptive, FixedBound, Cached, Newton]
    assert [SolverConfig(curvature=n).fixed_curvature for n in MODES] == [False, True, False, False]
    assert [SolverConfig(curvature=n).grams_per_pass(5) for n in MODES] == [5, 1, 5, 5]
    # "auto" is a choice of one of them, made for a loss before anything asks what the mode does
    with pytest.raises(RuntimeError, match="resolved for a loss first"):
        SolverConfig(curvature="auto").fixed_curvature  # noqa: B018
    assert SolverConfig(curvature="auto").resolved(Logistic()).curvature == "newton"


def test_adaptive_forms_the_e_step_system_in_every_pass():
    curv = Adaptive(Logistic())
    assert curv.bound is None and not curv.stale and not curv.systems_from_gradient
    assert curv.needs_first_pass(None) and not curv.needs_first_pass(_warm(np.zeros(Q)))
    assert not any(curv.gradient_pass(it) or curv.refreshes(it) for it in range(20))
    warm = _warm(np.zeros(Q))
    system, expand, exact = curv.resume(warm, warm.beta, warm.loss_grad, P)
    assert system is warm.system and expand is warm.expand and exact
    same = _warm(np.linspace(-1.0, 1.0, Q))  # expanded at β itself: the step from β is a plain one
    assert curv.resume(same, same.beta, same.loss_grad, P)[1] is same.beta
    assert curv.majorizes_after(False) and curv.warm_gram() is None


def test_the_fixed_bound_holds_one_gram_and_solves_ridge_for_any_alpha():
    assert FixedBound(Logistic()).bound == 0.25 and FixedBound(Squared()).bound == 1.0
    with pytest.raises(ValueError, match="the poisson loss has none — use curvature='adaptive'"):
        FixedBound(Poisson())
    curv = FixedBound(Logistic())
    assert curv.needs_first_pass(None) and curv.needs_first_pass(_warm(np.zeros(Q)))
    curv.hold(_system(), P)
    point, grad = RNG.standard_normal(Q), RNG.standard_normal(Q)
    np.testing.assert_allclose(curv.system_from_gradient(point, grad).rhs, GRAM @ point - grad, rtol=1e-14)
    assert all(curv.gradient_pass(it) and not curv.refreshes(it) for it in range(20))
    assert curv.systems_from_gradient and curv.majorizes_after(False)
    held = curv.warm_gram()
    assert isinstance(held, FixedCurvature)
    # a warm start carrying the Gram needs no pass; its system is the Gram's at β
    again = FixedBound(Logistic(), _warm(np.zeros(Q), held))
    assert not again.needs_first_pass(_warm(np.zeros(Q), held))
    warm = _warm(np.zeros(Q), held)
    system, expand, exact = again.resume(warm, warm.beta, warm.loss_grad, P)
    np.testing.assert_allclose(system.rhs, GRAM @ warm.beta - warm.loss_grad, rtol=1e-14)
    assert expand is warm.beta and exact
    # (G + W·α·D) x = r with D = I on the coefficients, 0 on the intercept: against a dense solve
    rhs = RNG.standard_normal(Q)
    for alpha in (1e-3, 0.1, 10.0):
        dense = np.linalg.solve(GRAM + WEIGHT * alpha * np.diag([1.0] * P + [0.0]), rhs)
        np.testing.assert_allclose(held.solve_ridge(rhs, alpha), dense, rtol=1e-10, atol=1e-12)


def test_cached_refreshes_at_iterations_1_2_4_8_and_is_stale_between():
    curv = Cached(Logistic())
    refreshed = [it + 1 for it in range(40) if curv.refreshes(it)]
    assert refreshed == [1, 2, 4, 8, 16, 32]
    assert all(curv.gradient_pass(it) != curv.refreshes(it) for it in range(40))
    assert curv.stale and not curv.systems_from_gradient
    assert curv.majorizes_after(True) and not curv.majorizes_after(False)
    warm = _warm(np.zeros(Q))
    system, expand, exact = curv.resume(warm, warm.beta, warm.loss_grad, P)
    assert system is warm.system and not exact  # the warm system's Gram is held, not at β
    point, grad = RNG.standard_normal(Q), RNG.standard_normal(Q)
    np.testing.assert_allclose(curv.system_from_gradient(point, grad).rhs, GRAM @ point - grad, rtol=1e-14)
    assert curv.warm_gram() is None  # a path's next α forms its own
