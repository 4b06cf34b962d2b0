"""The block-statistics kernel against direct formulas, and its monoid law."""

import numpy as np
import pytest

from smem_dask.losses import Logistic, Squared
from smem_dask.stats import BlockStats, block_stats


def _direct(X, y, s, loss, coefs, expand, fit_intercept):
    """The statistics written out with an explicit design matrix x̃ = (x, 1)."""
    Xa = np.column_stack([X, np.ones(len(X))]) if fit_intercept else X.astype(float)
    eta = Xa @ coefs
    loss_sum = np.array([np.sum(s * loss.value(y, eta[:, j])) for j in range(coefs.shape[1])])
    grad = np.column_stack([Xa.T @ (s * loss.derivative(y, eta[:, j])) for j in range(coefs.shape[1])])
    omega, u = loss.e_step(y, Xa @ expand)
    gram = Xa.T @ np.diag(s * omega) @ Xa
    rhs = Xa.T @ (s * u)
    return loss_sum, grad, gram, rhs


@pytest.mark.parametrize("loss", [Logistic(), Squared()], ids=lambda loss: loss.name)
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
def test_kernel_matches_direct_formulas(loss, fit_intercept, weighted, rng):
    n, p = 300, 5
    X = rng.normal(size=(n, p))
    y = rng.integers(0, 2, n).astype(float) if loss.is_classifier else rng.normal(size=n)
    s = rng.uniform(0, 3, n) if weighted else None
    q = p + fit_intercept
    coefs = rng.normal(size=(q, 3))
    expand = rng.normal(size=q)
    st = block_stats(X, y, s, loss, coefs, expand, fit_intercept)
    loss_sum, grad, gram, rhs = _direct(X, y, np.ones(n) if s is None else s, loss, coefs, expand,
                                        fit_intercept)
    np.testing.assert_allclose(st.loss, loss_sum, rtol=1e-12)
    np.testing.assert_allclose(st.grad, grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(st.gram, gram, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.rhs, rhs, rtol=1e-12, atol=1e-12)
    assert st.n == n
    assert st.weight == pytest.approx(n if s is None else s.sum(), rel=1e-14)


def test_integer_and_float32_blocks_accumulate_in_float64(rng):
    Xi = rng.integers(-5, 6, size=(200, 4))
    y = rng.integers(0, 2, 200).astype(float)
    coefs, expand = rng.normal(size=(5, 1)), rng.normal(size=5)
    ref = block_stats(Xi.astype(np.float64), y, None, Logistic(), coefs, expand, True)
    for X in (Xi, Xi.astype(np.float32)):
        st = block_stats(X, y, None, Logistic(), coefs, expand, True)
        np.testing.assert_array_equal(st.pack(), ref.pack())


def test_statistics_of_whole_equal_sum_over_any_split(rng):
    n, p = 1000, 7
    X = rng.normal(size=(n, p))
    y = rng.integers(0, 2, n).astype(float)
    s = rng.uniform(0.5, 2, n)
    coefs, expand = rng.normal(size=(p + 1, 2)), rng.normal(size=p + 1)
    whole = block_stats(X, y, s, Logistic(), coefs, expand, True)
    cuts = np.sort(rng.choice(np.arange(1, n), 9, replace=False))
    total = BlockStats.zero(p + 1, 2)
    for rows in np.split(np.arange(n), cuts):
        total = total + block_stats(X[rows], y[rows], s[rows], Logistic(), coefs, expand, True)
    np.testing.assert_allclose(total.pack(), whole.pack(), rtol=1e-12, atol=1e-10)


def test_empty_block_is_zero_and_pack_round_trips(rng):
    st = block_stats(np.zeros((0, 3)), np.zeros(0), None, Logistic(), np.zeros((4, 1)), np.zeros(4), True)
    np.testing.assert_array_equal(st.pack(), BlockStats.zero(4, 1).pack())
    X = rng.normal(size=(50, 3))
    full = block_stats(X, np.ones(50), None, Squared(), rng.normal(size=(4, 2)), rng.normal(size=4), True)
    back = BlockStats.unpack(full.pack(), 4, 2)
    np.testing.assert_array_equal(back.pack(), full.pack())
    with pytest.raises(ValueError, match="expected"):
        BlockStats.unpack(full.pack()[:-1], 4, 2)


def test_no_expansion_point_gives_gradient_only(rng):
    X = rng.normal(size=(40, 3))
    st = block_stats(X, rng.normal(size=40), None, Squared(), rng.normal(size=(3, 1)), None, False)
    assert not st.gram.any() and not st.rhs.any()
    assert st.grad.any()


def test_several_requests_in_one_pass_equal_separate_passes(rng):
    from smem_dask.stats import Request, block_stats_many

    X = rng.normal(size=(500, 4))
    y = rng.integers(0, 2, 500).astype(float)
    s = rng.uniform(0.5, 2, 500)
    requests = [Request(rng.normal(size=(5, 3)), rng.normal(size=5)),
                Request(rng.normal(size=(5, 1))),
                Request(rng.normal(size=(5, 2)), rng.normal(size=5))]
    many = block_stats_many(X, y, s, Logistic(), requests, True)
    for r, st in zip(requests, many, strict=True):
        one = block_stats(X, y, s, Logistic(), r.coefs, r.expand, True)
        np.testing.assert_allclose(st.pack(), one.pack(), rtol=1e-12, atol=1e-12)


def test_fixed_curvature_request_is_the_bound_majorizer(rng):
    """ω = b, u = b·η̃ − ℓ'(η̃): Gram b·XᵀSX and right-hand side Gram·β̃ − Σ s ℓ' x̃."""
    from smem_dask.stats import Request, block_stats_many

    X = rng.normal(size=(300, 3))
    y = rng.integers(0, 2, 300).astype(float)
    s = rng.uniform(0.5, 2, 300)
    beta = rng.normal(size=4)
    (st,) = block_stats_many(X, y, s, Logistic(), [Request(beta[:, None], beta, 0.25)], True)
    Xa = np.column_stack([X, np.ones(300)])
    gram = 0.25 * Xa.T @ (s[:, None] * Xa)
    grad = Xa.T @ (s * (1 / (1 + np.exp(-(Xa @ beta))) - y))
    np.testing.assert_allclose(st.gram, gram, rtol=1e-12)
    np.testing.assert_allclose(st.rhs, gram @ beta - grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(st.grad[:, 0], grad, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_row_tiles_do_not_change_the_statistics(dtype, rng, monkeypatch):
    """The kernel walks a block in cache-sized row tiles; a block of several tiles (the last one
    partial) gives the statistics of the direct formulas."""
    import smem_dask.stats as stats

    monkeypatch.setattr(stats, "TILE_BYTES", 1)  # → the minimum of 256 rows per tile
    n, p = 1000, 6
    X = rng.normal(size=(n, p)).astype(dtype)
    y = rng.integers(0, 2, n).astype(float)
    s = rng.uniform(0.5, 2, n)
    coefs, expand = rng.normal(size=(p + 1, 2)), rng.normal(size=p + 1)
    assert stats.gram_tile_rows(p) == 256
    st = block_stats(X, y, s, Logistic(), coefs, expand, True)
    loss_sum, grad, gram, rhs = _direct(X.astype(np.float64), y, s, Logistic(), coefs, expand, True)
    np.testing.assert_allclose(st.loss, loss_sum, rtol=1e-12)
    np.testing.assert_allclose(st.grad, grad, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(st.gram, gram, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(st.rhs, rhs, rtol=1e-12, atol=1e-12)


def test_known_reference_point_is_not_recomputed(rng):
    """reference_known: point 0's loss and gradient come back as zeros, everything else (the
    changes from point 0, gradients at the other points, the system) is unchanged."""
    from smem_dask.stats import Request, block_stats_many

    X = rng.normal(size=(400, 5))
    y = rng.integers(0, 2, 400).astype(float)
    coefs, expand = rng.normal(size=(6, 3)), rng.normal(size=6)
    full, known = block_stats_many(X, y, None, Logistic(), [Request(coefs, expand),
                                                           Request(coefs, expand, reference_known=True)],
                                   True)
    assert known.loss[0] == 0.0 and not known.grad[:, 0].any()
    np.testing.assert_allclose(known.loss_delta, full.loss_delta, rtol=1e-13)
    np.testing.assert_allclose(known.loss[1:], full.loss_delta, rtol=1e-13)
    np.testing.assert_allclose(known.grad[:, 1:], full.grad[:, 1:], rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(known.gram, full.gram)
    np.testing.assert_allclose(known.rhs, full.rhs, rtol=1e-13)


@pytest.mark.parametrize("name", ["logistic", "poisson", "negbin", "squared"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("weighted", [True, False])
@pytest.mark.parametrize("threads", [True, False])
def test_newton_system_at_its_candidate_matches_direct_formulas(name, fit_intercept, weighted, threads,
                                                                rng):
    """The Newton mode's pass: the Hessian's system at the request's last point. Its right-hand
    side is formed from the Gram (the Gram times the point less the gradient) instead of a column
    of its own; it must equal Σ s x̃ (ℓ''·η − ℓ') written out — as must the same system asked at a
    point that is not the last one (the column path), and a held-out fold's."""
    from smem_dask.losses import get_loss
    from smem_dask.stats import Request, block_stats_many

    loss = get_loss(name)
    n, p = 500, 4
    X = rng.normal(size=(n, p))
    if loss.is_classifier:
        y = rng.integers(0, 2, n).astype(float)
    elif loss.nonnegative_target:
        y = rng.poisson(2.0, n).astype(float)
    else:
        y = rng.normal(size=n)
    s = rng.uniform(0, 3, n) if weighted else None
    folds = rng.integers(0, 3, n)
    q = p + fit_intercept
    coefs = 0.3 * rng.normal(size=(q, 2))
    last, other = coefs[:, 1], 0.3 * rng.normal(size=q)
    requests = [Request(coefs, last.copy(), hessian=True, reference_known=True),
                Request(coefs, other, hessian=True, reference_known=True),
                Request(coefs, last.copy(), hessian=True, reference_known=True, fold=1, held_out=True)]
    got = block_stats_many(X, y, s, loss, requests, fit_intercept, threads, folds)
    Xa = np.column_stack([X, np.ones(n)]) if fit_intercept else X
    base = np.ones(n) if s is None else s
    for st, point, sw in ((got[0], last, base), (got[1], other, base),
                          (got[2], last, np.where(folds == 1, base, 0.0))):
        eta = Xa @ point
        h = loss.hessian(y, eta)
        gram = Xa.T @ ((sw * h)[:, None] * Xa)
        rhs = Xa.T @ (sw * (h * eta - loss.derivative(y, eta)))
        scale = np.abs(Xa).T @ (sw * np.abs(h * eta - loss.derivative(y, eta)))
        np.testing.assert_allclose(st.gram, gram, rtol=1e-12, atol=1e-12)
        assert np.all(np.abs(st.rhs - rhs) <= 1e-12 * (scale + 1.0))
    # the candidate's gradient (the second point's) is the same in the three forms
    np.testing.assert_allclose(got[0].grad[:, 1], got[1].grad[:, 1], rtol=1e-13, atol=1e-13)
