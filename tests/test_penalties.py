"""Penalties: EM weights majorize, exact M-step solvers against scipy, optimality residuals."""

import numpy as np
import pytest
import scipy.optimize

from smem_dask.penalties import (
    PENALTIES,
    Group,
    _active_set_elastic_net,
    _block_coordinate_descent,
    get_penalty,
)

EXAMPLES = [get_penalty("l2"), get_penalty("l1"), get_penalty("elasticnet", l1_ratio=0.3),
            get_penalty("bridge", q=0.5), get_penalty("bridge", q=1.5),
            get_penalty("scad", lam=0.7), get_penalty("mcp", lam=0.7, gamma=2.5),
            get_penalty("log", eps=0.3), get_penalty("group", groups=[0, 0, 1, 2, 2, 2])]


@pytest.mark.parametrize("penalty", EXAMPLES, ids=repr)
def test_em_weights_give_a_quadratic_majorizer(penalty, rng):
    """P(β') ≤ P(β) + ½ Σ d_j(β)(β'_j² − β_j²) for all β', β (equality at β' = β)."""
    for _ in range(300):
        beta = rng.normal(size=6) * rng.choice([0.05, 1.0, 10.0])
        other = rng.normal(size=6) * rng.choice([0.05, 1.0, 10.0])
        d = penalty.weights(beta)
        bound = penalty.value(beta) + 0.5 * np.sum(d * (other**2 - beta**2))
        assert penalty.value(other) <= bound + 1e-12 * (1 + abs(bound))


@pytest.mark.parametrize("penalty", EXAMPLES, ids=repr)
def test_value_difference_is_the_difference(penalty, rng):
    for scale in (1e-9, 1e-4, 1e-1, 3.0):
        beta = rng.normal(size=6)
        other = beta + rng.normal(size=6) * scale
        exact = penalty.value(other) - penalty.value(beta)
        got = penalty.value_difference(other, beta)
        assert got == pytest.approx(exact, rel=1e-6, abs=1e-14 * (1 + abs(penalty.value(beta))))


@pytest.mark.parametrize("penalty", [p for p in EXAMPLES if not isinstance(p, Group)], ids=repr)
def test_optimality_is_the_gradient_where_smooth(penalty, rng):
    beta = rng.normal(size=6) + np.sign(rng.normal(size=6))  # away from 0 and from the knots
    grad_loss, alpha, h = rng.normal(size=6), 0.3, 1e-7
    fd = np.array([(penalty.value(beta + h * e) - penalty.value(beta - h * e)) / (2 * h)
                   for e in np.eye(6)])
    np.testing.assert_allclose(penalty.optimality(beta, grad_loss, alpha), grad_loss + alpha * fd,
                               rtol=1e-6, atol=1e-7)


def test_optimality_at_zero_is_the_subgradient_gap():
    beta = np.zeros(3)
    g = np.array([0.5, -2.0, 0.1])
    np.testing.assert_allclose(get_penalty("l1").optimality(beta, g, 1.0), [0.0, 1.0, 0.0])
    group = get_penalty("group", groups=[0, 0, 1])
    out = group.optimality(beta, g, 1.0)
    np.testing.assert_allclose(out, [np.hypot(0.5, 2.0) - np.sqrt(2), np.hypot(0.5, 2.0) - np.sqrt(2), 0.0])


def _random_qp(rng, q):
    M = rng.normal(size=(q + 3, q)) * np.exp(rng.normal(0, 2, q))
    return M.T @ M, rng.normal(size=q) * 5


def _lbfgs_split(H, b, l1):
    """min ½zᵀHz − bᵀz + l1ᵀ|z| with z = z⁺ − z⁻, z± ≥ 0: an independent oracle."""
    q = len(b)

    def fun(v):
        z = v[:q] - v[q:]
        g = H @ z - b
        return 0.5 * z @ H @ z - b @ z + l1 @ (v[:q] + v[q:]), np.r_[g + l1, -g + l1]

    bounds = [(0, None) if l1[j] > 0 else (None, None) for j in range(q)]
    bounds += [(0, None) if l1[j] > 0 else (0, 0) for j in range(q)]
    res = scipy.optimize.minimize(fun, np.zeros(2 * q), jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"ftol": 1e-16, "gtol": 1e-12, "maxiter": 50000})
    return res.fun


@pytest.mark.parametrize("seed", range(40))
def test_active_set_elastic_net_is_exact(seed):
    rng = np.random.default_rng(seed)
    q = int(rng.integers(2, 12))
    A, b = _random_qp(rng, q)
    l1 = np.abs(rng.normal(size=q)) * rng.choice([0.1, 1, 5])
    l1[-1] = 0.0  # an unpenalized intercept
    l2 = np.where(l1 > 0, rng.choice([0.0, 0.5]), 0.0)
    beta = _active_set_elastic_net(A, b, rng.normal(size=q) * rng.choice([0, 1]), l1, l2)
    H = A + np.diag(l2)
    ours = 0.5 * beta @ H @ beta - b @ beta + l1 @ np.abs(beta)
    assert ours <= _lbfgs_split(H, b, l1) + 1e-12 * max(1.0, abs(ours))


@pytest.mark.parametrize("seed", range(15))
def test_group_block_descent_reaches_the_minimum(seed):
    rng = np.random.default_rng(seed)
    q = 7
    A, b = _random_qp(rng, q)
    A += np.eye(q)  # keep the blocks well conditioned for the oracle
    groups = [np.array([0, 1]), np.array([2, 3, 4]), np.array([5])]
    weights = np.abs(rng.normal(size=3)) * rng.choice([0.5, 3.0, 20.0])
    blocks = list(zip(groups, weights, strict=True)) + [(np.array([6]), 0.0)]
    beta = _block_coordinate_descent(A, b, np.zeros(q), blocks, max_sweeps=100_000)

    def Q(z):
        return 0.5 * z @ A @ z - b @ z + sum(w * np.linalg.norm(z[m]) for m, w in zip(groups, weights,
                                                                                         strict=True))

    best = min(scipy.optimize.minimize(Q, x0, method="Powell",
                                       options={"xtol": 1e-12, "ftol": 1e-15, "maxfev": 10**6}).fun
               for x0 in (np.zeros(q), beta, rng.normal(size=q)))
    assert Q(beta) <= best + 1e-10 * max(1.0, abs(best))


@pytest.mark.parametrize("name, params, match", [
    ("elasticnet", {"l1_ratio": 1.5}, "l1_ratio must be in"),
    ("bridge", {"q": 2.0}, "q must be in"),
    ("scad", {"a": 1.5}, "scad needs lam > 0 and a > 2"),
    ("mcp", {"gamma": 0.5}, "mcp needs lam > 0 and gamma > 1"),
    ("log", {"eps": 0.0}, "eps must be positive"),
    ("group", {}, "needs groups"),
    ("l1", {"l1_ratio": 0.5}, "does not take the parameters"),
])
def test_bad_penalty_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_penalty(name, **params)


def test_group_labels_must_cover_every_coefficient():
    with pytest.raises(ValueError, match="groups has 3 labels but there are 4 coefficients"):
        Group(groups=[0, 0, 1]).value(np.ones(4))


def test_every_penalty_is_listed():
    assert set(PENALTIES) == {"l2", "l1", "elasticnet", "group", "bridge", "scad", "mcp", "log"}
