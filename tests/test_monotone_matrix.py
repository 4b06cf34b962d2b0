"""Every loss × every penalty through the solver layer (fit_em over a NumpyEngine, no estimator): every
accepted iterate lowers F, and the final objective is F computed here from the formulas of
docs/method.md ("The objective"), written out in this file. (test_oracles.py runs the same matrix
through the estimators, with plain EM only.)"""

import warnings
import zlib

import numpy as np
import pytest
from conftest import simulate_targets

from smem_dask.engine import NumpyEngine
from smem_dask.losses import LOSSES, get_loss
from smem_dask.penalties import PENALTIES, get_penalty
from smem_dask.solver import ConvergenceWarning, SolverConfig, fit_em

N, P = 200, 5
ALPHA = 0.02
GROUPS = (0, 0, 1, 1, 2)

LOSS_CASES = [("logistic", {}), ("hinge", {}), ("squared", {}), ("huber", {"delta": 1.0}),
              ("quantile", {"tau": 0.3}), ("student_t", {"nu": 4.0, "sigma": 1.0}), ("poisson", {}),
              ("negbin", {"h": 3.0})]
PENALTY_CASES = [("l2", {}, "em"), ("l1", {}, "exact"), ("l1", {}, "em"),
                 ("elasticnet", {"l1_ratio": 0.5}, "exact"), ("elasticnet", {"l1_ratio": 0.5}, "em"),
                 ("group", {"groups": GROUPS}, "exact"), ("group", {"groups": GROUPS}, "em"),
                 ("bridge", {"q": 1.5}, "em"), ("bridge", {"q": 0.7}, "em"), ("scad", {"lam": 0.3}, "em"),
                 ("mcp", {"lam": 0.3}, "em"), ("log", {"eps": 1.0}, "em")]


def test_the_matrix_covers_every_registered_loss_and_penalty():
    # (the multinomial loss has its own loop, smem_dask.multinomial: tests/test_multinomial.py)
    assert {name for name, _ in LOSS_CASES} == {n for n, c in LOSSES.items()
                                                 if not getattr(c, "multiclass", False)}
    assert {name for name, _, _ in PENALTY_CASES} == set(PENALTIES)
    # every penalty with an exact solver is run with it and with the EM weights
    for name, cls in PENALTIES.items():
        solvers = {s for n, _, s in PENALTY_CASES if n == name}
        assert solvers == ({"exact", "em"} if cls.has_exact else {"em"}), name


def loss_values(name, params, y, eta):
    """ℓ(y, η) per observation, written from the formulas (not the package's code)."""
    if name == "logistic":
        return np.logaddexp(0.0, eta) - y * eta
    if name == "hinge":
        return np.maximum(0.0, 1.0 - (2.0 * y - 1.0) * eta)
    r = y - eta
    if name == "squared":
        return 0.5 * r * r
    if name == "huber":
        d = params["delta"]
        return np.where(np.abs(r) <= d, 0.5 * r * r, d * np.abs(r) - 0.5 * d * d)
    if name == "quantile":
        tau = params["tau"]
        return np.maximum(tau * r, (tau - 1.0) * r)
    if name == "student_t":
        nu, sigma = params["nu"], params["sigma"]
        return 0.5 * (nu + 1.0) * np.log1p(r * r / (nu * sigma**2))
    if name == "poisson":
        return np.exp(eta) - y * eta
    if name == "negbin":
        return (y + params["h"]) * np.logaddexp(0.0, eta) - y * eta
    raise AssertionError(name)


def penalty_value(name, params, beta):
    """P(β), written from the formulas (not the package's code)."""
    a = np.abs(beta)
    if name == "l2":
        return 0.5 * beta @ beta
    if name == "l1":
        return a.sum()
    if name == "elasticnet":
        r = params["l1_ratio"]
        return r * a.sum() + 0.5 * (1 - r) * beta @ beta
    if name == "group":
        labels = np.asarray(params["groups"])
        return sum(np.sqrt(np.sum(labels == g)) * np.linalg.norm(beta[labels == g]) for g in set(labels))
    if name == "bridge":
        return np.sum(a ** params["q"]) / params["q"]
    if name == "scad":
        lam, A = params["lam"], 3.7
        return np.sum(np.where(a <= lam, lam * a,
                               np.where(a <= A * lam, (2 * A * lam * a - a * a - lam * lam) / (2 * (A - 1)),
                                        lam * lam * (A + 1) / 2)))
    if name == "mcp":
        lam, g = params["lam"], 3.0
        return np.sum(np.where(a <= g * lam, lam * a - a * a / (2 * g), g * lam * lam / 2))
    if name == "log":
        return np.sum(np.log1p(a / params["eps"]))
    raise AssertionError(name)


def _data(loss_name):
    rng = np.random.default_rng(zlib.crc32(loss_name.encode()))
    X = rng.normal(size=(N, P)) @ np.diag([1.0, 0.5, 2.0, 1.0, 0.2])
    y = simulate_targets(loss_name, X @ np.array([0.8, 0.0, -0.5, 0.3, 0.0]) + 0.2, rng)
    return X, y, rng.uniform(0.5, 2.0, N)


@pytest.mark.parametrize("pen_name, pen_params, solver", PENALTY_CASES,
                         ids=[f"{p[0]}{p[1].get('q', '')}-{p[2]}" for p in PENALTY_CASES])
@pytest.mark.parametrize("loss_name, loss_params", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_every_pair_lowers_f_at_every_accepted_iterate(loss_name, loss_params, pen_name, pen_params,
                                                       solver):
    X, y, s = _data(loss_name)
    loss, penalty = get_loss(loss_name, **loss_params), get_penalty(pen_name, **pen_params)
    # a start away from 0, where the non-convex penalties' EM weights would pin every coefficient
    beta0 = np.r_[0.3, -0.2, 0.1, 0.25, -0.15, 0.0]
    for acceleration in ("none", "nesterov-restart"):
        config = SolverConfig(acceleration, tol=1e-10, max_iter=150, penalty_solver=solver)
        with warnings.catch_warnings():
            # a tolerance not met within max_iter is not what is tested: the monotone law is
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = fit_em(NumpyEngine(X, y, s), loss, penalty, ALPHA, config=config, beta0=beta0)
        F = np.array(res.objective_history)
        assert len(F) >= 2, (acceleration, len(F))  # squared + an exact M-step: one step solves it
        assert np.all(np.diff(F) <= 0), (acceleration, np.diff(F).max())
        eta = X @ res.coef + res.intercept
        direct = np.sum(s * loss_values(loss_name, loss_params, y, eta)) / s.sum() \
            + ALPHA * penalty_value(pen_name, pen_params, res.coef)
        assert res.objective == F[-1]
        assert res.objective == pytest.approx(direct, rel=1e-12), acceleration
        # and F at the start is F(β0), computed here too
        eta0 = X @ beta0[:P] + beta0[P]
        F0 = np.sum(s * loss_values(loss_name, loss_params, y, eta0)) / s.sum() \
            + ALPHA * penalty_value(pen_name, pen_params, beta0[:P])
        assert F[0] == pytest.approx(F0, rel=1e-13)
