"""Hinge and quantile fits are converged only on a duality-gap certificate, checked against LP optima.

Oracles: ``scipy.optimize.linprog(method="highs")`` on the exact linear programs (quantile with α = 0
or an l1 penalty, hinge with an l1 penalty); for ridge (l2) the dual box-QP by SLSQP, polished by an
active-set KKT solve and accepted only when its own duality gap is at rounding (:func:`ridge_oracle`).
Every fit must end in one of two states: converged and
within 1e-8 (relative) of the LP optimum, or not converged with a ``ConvergenceWarning``.
"""

import warnings

import numpy as np
import pytest
import scipy.linalg
import scipy.optimize
import statsmodels.datasets.engel as engel

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.engine import NumpyEngine
from smem_dask.losses import Hinge, Quantile
from smem_dask.penalties import L1, L2, get_penalty
from smem_dask.solver import ConvergenceWarning, dual_correction, duality_gap, smoothing_width
from smem_dask.stats import DualCandidate, DualStats, Request, pack_many, unpack_many


def lp_optimum(X, t, lo, hi, alpha, fit_intercept=True):
    """min over (β, b) of (1/n) Σ max(lo_i r_i, hi_i r_i) + α‖β‖₁, r = t − Xβ − b, as an LP.

    With r = u⁺ − u⁻ (u± ≥ 0) the loss is hi·u⁺ − lo·u⁻ (lo ≤ 0 ≤ hi); β = β⁺ − β⁻. Covers the
    quantile loss (t = y, [τ − 1, τ]) and the hinge loss (t = ỹ, [0, 1]·ỹ).
    """
    n, p = X.shape
    k = int(fit_intercept)
    A = np.column_stack([X, -X, np.ones((n, k)), -np.ones((n, k)), np.eye(n), -np.eye(n)])
    c = np.r_[alpha * np.ones(2 * p), np.zeros(2 * k), hi / n, -lo / n]
    res = scipy.optimize.linprog(c, A_eq=A, b_eq=t, bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    z = res.x
    beta = z[:p] - z[p:2 * p]
    b = z[2 * p] - z[2 * p + 1] if fit_intercept else 0.0
    return float(res.fun), beta, b


def objective(loss, X, y, alpha, penalty, coef, intercept):
    return float(np.mean(loss.value(y, X @ coef + intercept)) + alpha * penalty.value(coef))


def outcome(fit, F_lp, tol=1e-8):
    """Fit the model; 'certified' or 'warned', and fail on any third state."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = fit()
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    off = (est.objective_ - F_lp) / max(1.0, abs(F_lp))
    assert off >= -1e-12, off  # nothing beats the LP optimum
    if est.converged_:
        assert not warned
        assert off <= tol, f"converged_ is True {off:.3g} above the LP optimum"
        return "certified"
    assert warned, "converged_ is False without a ConvergenceWarning"
    return "warned"


@pytest.fixture(scope="module")
def engel_data():
    d = engel.load_pandas().data
    return d[["income"]].to_numpy(), d["foodexp"].to_numpy()


CONFIGS = [{"acceleration": "none"}, {"acceleration": "nesterov"}, {"acceleration": "nesterov-restart"},
           {"acceleration": "none", "curvature": "cached"}]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(c.values()))
@pytest.mark.parametrize("tau", [0.1, 0.5, 0.9])
def test_engel_quantile_is_certified_at_the_lp_optimum(engel_data, tau, config):
    X, y = engel_data
    loss = Quantile(tau)
    F_lp, beta_lp, b_lp = lp_optimum(X, *loss.dual_box(y), 0.0)

    def fit():
        return SMEMRegressor(loss="quantile", loss_params={"tau": tau}, penalty="l2", alpha=0.0,
                             **config).fit(X, y)

    # measured: every τ and acceleration certifies (the users' report: stopped 1.1e-5 above)
    assert outcome(fit, F_lp) == "certified"
    est = fit()
    np.testing.assert_allclose([est.coef_[0], est.intercept_], [beta_lp[0], b_lp], rtol=1e-6)


def _classes(rng, X, w):
    return (X @ w + 0.5 * rng.normal(size=len(X)) > 0).astype(float)


def _wide_or_tall(shape, seed):
    rng = np.random.default_rng(seed)
    n, p = shape
    X = rng.normal(size=(n, p))
    w = np.zeros(p)
    w[:5] = [1.5, -2.0, 1.0, 0.5, -1.0]
    return rng, X, w


@pytest.mark.parametrize("shape, alpha", [((400, 5), 0.01), ((40, 60), 0.02)], ids=["tall", "wide"])
def test_hinge_l1_certified_or_warned_against_the_lp(shape, alpha):
    rng, X, w = _wide_or_tall(shape, 1)
    y = _classes(rng, X, w)
    F_lp = lp_optimum(X, *Hinge().dual_box(y), alpha)[0]
    state = outcome(lambda: SMEMClassifier(loss="hinge", penalty="l1", alpha=alpha).fit(X, y), F_lp)
    assert state == "certified"


@pytest.mark.parametrize("penalty_solver", ["exact", "em"])
@pytest.mark.parametrize("tau", [0.2, 0.5])
def test_wide_quantile_l1_certified_or_warned_against_the_lp(tau, penalty_solver):
    rng, X, w = _wide_or_tall((40, 60), 2)
    y = X @ w + rng.standard_t(3, 40)
    F_lp = lp_optimum(X, *Quantile(tau).dual_box(y), 0.05)[0]

    def fit():
        return SMEMRegressor(loss="quantile", loss_params={"tau": tau}, penalty="l1", alpha=0.05,
                             penalty_solver=penalty_solver).fit(X, y)

    assert outcome(fit, F_lp) in ("certified", "warned")


@pytest.mark.parametrize("seed", range(6))
def test_no_fit_is_converged_short_of_the_optimum(seed):
    """The third state — converged_ True but more than 1e-8 above the LP optimum — never occurs,
    also with loose tolerances and small iteration budgets."""
    rng = np.random.default_rng(100 + seed)
    n, p = (60, 3) if seed % 2 else (30, 45)
    X = rng.normal(size=(n, p))
    y = X[:, 0] - X[:, 1] + rng.standard_t(2, n)
    tau, alpha = [0.1, 0.5, 0.9][seed % 3], [0.0, 0.02][seed % 2] if n > p else 0.03
    loss = Quantile(tau)
    F_lp = lp_optimum(X, *loss.dual_box(y), alpha)[0]
    states = set()
    for acceleration in ("none", "nesterov-restart"):
        for tol, max_iter in ((1e-8, 1000), (1e-12, 1000), (1e-8, 5)):
            def fit(acceleration=acceleration, tol=tol, max_iter=max_iter):
                return SMEMRegressor(loss="quantile", loss_params={"tau": tau}, penalty="l1",
                                     alpha=alpha, acceleration=acceleration, tol=tol,
                                     max_iter=max_iter).fit(X, y)
            states.add(outcome(fit, F_lp, tol=max(tol, 1e-8)))
    assert states <= {"certified", "warned"}


def _certificate(X, y, loss, penalty, alpha, beta, width):
    """The solver's two certificate passes at β, made by hand: the best of the two duals' gaps."""
    eng = NumpyEngine(X, y)
    q = len(beta)
    p = q - 1
    first = Request(beta, dual_point=beta, dual_width=width)
    st = eng.stats_many(loss, [first], True)[0]
    F = st.loss[0] / st.weight + alpha * penalty.value(beta[:p])
    dual = DualStats.parse(st.extra, q, first)
    gap1 = duality_gap(dual, F, st.weight, st.n, penalty, alpha, p)
    lam, _ = dual_correction(dual, st.weight, beta, penalty, alpha, p)
    second = Request(beta, dual_point=beta, dual_width=width, dual_lam=lam)
    st2 = eng.stats_many(loss, [second], True)[0]
    gap2 = duality_gap(DualStats.parse(st2.extra, q, second), F, st.weight, st.n, penalty, alpha, p)
    return F, min(gap1, gap2)


@pytest.mark.parametrize("loss, penalty, alpha",
                         [(Quantile(0.3), L2(), 0.0), (Quantile(0.7), L1(), 0.01), (Hinge(), L1(), 0.01)],
                         ids=["quantile", "quantile-l1", "hinge-l1"])
def test_the_gap_bounds_the_suboptimality_and_vanishes_at_the_optimum(loss, penalty, alpha):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(80, 3))
    y = (X @ [1.0, -1.0, 0.5] + rng.standard_t(3, 80))
    if loss.is_classifier:
        y = (y > 0).astype(float)
    t, lo, hi = loss.dual_box(y)
    F_lp, beta, b = lp_optimum(X, t, lo, hi, alpha)
    opt = np.r_[beta, b]
    for k in range(8):
        point = opt + rng.normal(size=4) * 10.0 ** -rng.uniform(0, 6)
        for width in (1e-8, 1e-3, 1.0):
            F, gap = _certificate(X, y, loss, penalty, alpha, point, width)
            assert gap >= (F - F_lp) - 1e-12 * abs(F_lp), (k, width, gap, F - F_lp)
    # at the LP optimum the residuals of the rows on their kink are at rounding: δ from the histogram
    eta = X @ beta + b
    hist = (np.abs(t - eta)[:, None] < 10.0 ** np.arange(-16, 9)).sum(axis=0)
    F, gap = _certificate(X, y, loss, penalty, alpha, opt, smoothing_width(hist, 4))
    assert F == pytest.approx(F_lp, rel=1e-12)
    assert -1e-14 * max(1.0, F_lp) <= gap <= 1e-10 * max(1.0, F_lp)  # zero, to the rounding of F


def test_the_kernel_sums_the_smoothed_dual_as_written(engel_data):
    """DualStats against a direct evaluation with an explicit design matrix."""
    X, y = engel_data
    rng = np.random.default_rng(0)
    s = rng.uniform(0.5, 2.0, len(y))
    loss, beta, width, lam = Quantile(0.3), np.array([0.5, 80.0]), 30.0, np.array([0.01, -1.0])
    Xa = np.column_stack([X, np.ones(len(y))])
    r = y - Xa @ beta
    a0 = (0.3 - 0.5) + 0.5 * np.clip(r / width, -1, 1)
    w = 0.5 * np.maximum(0, 1 - np.abs(r) / width)
    a = np.clip(a0 + w * (Xa @ lam), -0.7, 0.3)
    eng = NumpyEngine(X, y, s, block_rows=50)
    first = Request(beta, dual_point=beta, dual_width=width, histogram=0)
    second = Request(beta, dual_point=beta, dual_width=width, dual_lam=lam)
    st1, st2 = eng.stats_many(loss, [first, second], True)
    d1, d2 = DualStats.parse(st1.extra, 2, first), DualStats.parse(st2.extra, 2, second)
    np.testing.assert_allclose(d1.value, np.sum(s * a0 * y), rtol=1e-12)
    np.testing.assert_allclose(d1.moment, Xa.T @ (s * a0), rtol=1e-12)
    np.testing.assert_allclose(d1.gram, Xa.T @ (Xa * (s * w)[:, None]), rtol=1e-12)
    np.testing.assert_allclose(d1.rhs, Xa.T @ (s * w * y), rtol=1e-12)
    np.testing.assert_array_equal(d1.hist, (np.abs(r)[:, None] < 10.0 ** np.arange(-16, 9)).sum(0))
    np.testing.assert_allclose(d2.value, np.sum(s * a * y), rtol=1e-12)
    np.testing.assert_allclose(d2.moment, Xa.T @ (s * a), rtol=1e-12)
    np.testing.assert_allclose(d2.scale, np.abs(Xa).T @ (s * np.abs(a)), rtol=1e-12)
    assert d2.gram is None and d2.hist is None
    # packed with an M-step system and several points, as a dask block returns them
    both = Request(np.c_[beta, beta + 1], beta, dual_point=beta, dual_width=width, histogram=1)
    st = eng.stats_many(loss, [both], True)[0]
    back = unpack_many(pack_many([st], [both]), 2, [both])[0]
    np.testing.assert_array_equal(back.pack(), st.pack())
    np.testing.assert_array_equal(back.extra, st.extra)


def test_dask_engine_certifies_like_numpy(engel_data):
    da = pytest.importorskip("dask.array")
    X, y = engel_data
    ref = SMEMRegressor(loss="quantile", loss_params={"tau": 0.5}, penalty="l2", alpha=0.0).fit(X, y)
    est = SMEMRegressor(loss="quantile", loss_params={"tau": 0.5}, penalty="l2", alpha=0.0).fit(
        da.from_array(X, chunks=(60, -1)), da.from_array(y, chunks=60))
    assert est.converged_ and ref.converged_
    np.testing.assert_allclose([est.coef_[0], est.intercept_], [ref.coef_[0], ref.intercept_], rtol=1e-9)
    assert est.n_passes_ == ref.n_passes_


def test_a_penalty_without_conjugate_is_never_certified():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 3))
    y = X @ [1.0, 0.0, -1.0] + rng.normal(size=100)
    with pytest.warns(ConvergenceWarning, match="no optimality certificate exists for the scad"):
        est = SMEMRegressor(loss="quantile", penalty="scad", penalty_params={"lam": 0.1},
                            alpha=0.05).fit(X, y)
    assert not est.converged_


def test_max_iter_warning_says_how_far_off(engel_data):
    X, y = engel_data
    with pytest.warns(ConvergenceWarning, match=r"max_iter=3 was reached \(duality gap"):
        est = SMEMRegressor(loss="quantile", penalty="l2", alpha=0.0, acceleration="none",
                            max_iter=3).fit(X, y)
    assert not est.converged_


@pytest.mark.parametrize("penalty", [L2(), L1(), get_penalty("elasticnet", l1_ratio=0.3),
                                     get_penalty("group", groups=(0, 0, 1, 1, 1)),
                                     get_penalty("bridge", q=1.5), get_penalty("bridge", q=1.0)],
                         ids=lambda pen: pen.name + str(getattr(pen, "q", "")))
def test_conjugates_are_the_sup_over_beta(penalty):
    """P*(z) ≥ zᵀβ − P(β) for every β (Fenchel–Young), with equality at the maximizer, which a
    numerical sup finds; the dual scale brings z into the domain of P*."""
    rng = np.random.default_rng(9)
    for _ in range(5):
        z = rng.normal(size=5) * 0.6
        c = penalty.dual_scale(z)
        assert 0 < c <= 1 and np.isfinite(penalty.conjugate(c * z))
        value = penalty.conjugate(c * z)
        for beta in rng.normal(size=(20, 5)) * 3:
            assert value >= c * z @ beta - penalty.value(beta) - 1e-12
        best = scipy.optimize.minimize(lambda b, c=c, z=z: penalty.value(b) - c * z @ b, np.zeros(5),
                                       method="Powell", options={"xtol": 1e-10, "ftol": 1e-14})
        assert value == pytest.approx(-best.fun, abs=1e-6)


@pytest.mark.parametrize("acceleration", ["none", "nesterov", "nesterov-restart"])
@pytest.mark.parametrize("shape", [(400, 5), (40, 60)], ids=["tall", "wide"])
@pytest.mark.parametrize("loss", ["hinge", "quantile"])
def test_every_acceleration_is_certified_or_warned(loss, shape, acceleration):
    """hinge and quantile (l1, so the optimum is an LP) under every acceleration, n ≫ p and p > n:
    certified within 1e-8 of the LP optimum, or converged_ False with a warning — nothing else."""
    rng, X, w = _wide_or_tall(shape, 3)
    if loss == "hinge":
        y, alpha, est = _classes(rng, X, w), 0.02, SMEMClassifier
        F_lp = lp_optimum(X, *Hinge().dual_box(y), alpha)[0]
    else:
        y, alpha, est = X @ w + rng.standard_t(3, len(X)), 0.05, SMEMRegressor
        F_lp = lp_optimum(X, *Quantile(0.3).dual_box(y), alpha)[0]
    params = {"loss_params": {"tau": 0.3}} if loss == "quantile" else {}
    state = outcome(lambda: est(loss=loss, penalty="l1", alpha=alpha, acceleration=acceleration,
                                **params).fit(X, y), F_lp)
    # measured: all certify (base EM on the tall problems stopped 2e-6 above the optimum at a
    # neighbouring vertex before the E-step's clamp followed a continuation in its width)
    assert state == "certified"


def ridge_oracle(X, t, lo, hi, alpha, fit_intercept=True):
    """min (1/n) Σ max(lo r, hi r) + (α/2)‖β‖², r = t − Xβ − b: (F, gap) of the best primal-dual pair.

    The dual box-QP max_a tᵀa/n − ‖Xᵀa/n‖²/(2α) (a in the box, Σ a = 0 with an intercept) by
    SLSQP; then, for the rows strictly inside their box (on the kink), the KKT system
    nαβ = Xᵀa, Σ a = 0, x_iᵀβ + b = t_i solved exactly with the other rows at their edge. The gap
    F(β, b) − D(a) of the pair (a clipped to the box, Σ a = 0 checked to 1e-13) certifies the oracle.
    """
    n, p = X.shape
    Q = X @ X.T / (alpha * n * n)
    cons = ([{"type": "eq", "fun": lambda a: a.sum() / n, "jac": lambda a: np.ones(n) / n}]
            if fit_intercept else [])
    res = scipy.optimize.minimize(lambda a: (0.5 * a @ Q @ a - t @ a / n, Q @ a - t / n), np.zeros(n),
                                  jac=True, bounds=list(zip(lo, hi, strict=True)), constraints=cons,
                                  method="SLSQP",
                                  options={"ftol": 1e-16, "maxiter": 2000})
    a0 = np.clip(res.x, lo, hi)
    best = (np.inf, np.inf)
    m = p + int(fit_intercept)
    for thr in (1e-3, 1e-5, 1e-7):
        K = (a0 > lo + thr * (hi - lo)) & (a0 < hi - thr * (hi - lo))
        k = int(K.sum())
        A, rhs = np.zeros((m + k, m + k)), np.zeros(m + k)
        A[:p, :p], A[:p, m:], rhs[:p] = alpha * n * np.eye(p), -X[K].T, X[~K].T @ a0[~K]
        if fit_intercept:
            A[p, m:], rhs[p], A[m:, p] = -1.0, a0[~K].sum(), 1.0
        A[m:, :p], rhs[m:] = X[K], t[K]
        z = scipy.linalg.lstsq(A, rhs)[0]
        beta, b, a = z[:p], z[p] if fit_intercept else 0.0, a0.copy()
        a[K] = np.clip(z[m:], lo[K], hi[K])
        r = t - X @ beta - b
        F = np.mean(np.maximum(lo * r, hi * r)) + 0.5 * alpha * beta @ beta
        v = X.T @ a / n
        D = t @ a / n - v @ v / (2 * alpha)
        if (not fit_intercept or abs(a.sum()) / n <= 1e-13) and F - D < best[1]:
            best = (F, F - D)
    return best


@pytest.mark.parametrize("alpha", [1e-4, 1e-2])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("shape", [(300, 5), (40, 60)], ids=["tall", "wide"])
@pytest.mark.parametrize("loss_name", ["hinge", "quantile"])
def test_ridge_certified_or_warned_against_a_qp_oracle(loss_name, shape, fit_intercept, alpha):
    """hinge and quantile with the l2 penalty: certified within 1e-8 of the QP oracle, or warned."""
    rng, X, w = _wide_or_tall(shape, 1)
    if loss_name == "hinge":
        y, loss, Est = _classes(rng, X, w), Hinge(), SMEMClassifier
    else:
        y, loss, Est = X @ w + rng.standard_t(3, shape[0]), Quantile(0.5), SMEMRegressor
    F_qp, gap_qp = ridge_oracle(X, *loss.dual_box(y), alpha, fit_intercept)
    assert gap_qp <= 1e-12 * max(1.0, F_qp)  # the oracle certifies itself
    state = outcome(lambda: Est(loss=loss_name, penalty="l2", alpha=alpha,
                                fit_intercept=fit_intercept).fit(X, y), F_qp)
    assert state in ("certified", "warned")
    if shape[0] > shape[1]:  # measured: every tall case certifies
        assert state == "certified"


def test_sign_scaling_meets_the_intercept_equality_inside_the_box():
    """A box-feasible candidate with Σ s a ≠ 0 has no bound as summed; scaling its positive part
    by c = S⁻/S⁺ gives an exactly feasible point, whose D is checked directly."""
    rng = np.random.default_rng(4)
    n, p, alpha = 30, 3, 0.1
    X = rng.normal(size=(n, p))
    Xa = np.column_stack([X, np.ones(n)])
    t = rng.normal(size=n)
    a = rng.uniform(-0.3, 0.7, n)  # the quantile box of τ = 0.7, Σ a > 0
    pos, neg = np.maximum(a, 0), np.maximum(-a, 0)
    cand = DualCandidate(np.array([pos @ t, neg @ t]), np.vstack([Xa.T @ pos, Xa.T @ neg]),
                         np.abs(Xa).T @ np.abs(a))
    F = 10.0
    dual = DualStats(cand.value, cand.moment, cand.scale, None, None, None)
    assert duality_gap(dual, F, n, n, L2(), alpha, p) == np.inf
    scaled = pos * (neg.sum() / pos.sum()) - neg
    assert abs(scaled.sum()) < 1e-12 and np.all((-0.3 <= scaled) & (scaled <= 0.7))
    v = X.T @ scaled / n
    D = scaled @ t / n - v @ v / (2 * alpha)
    gap = duality_gap(dual._replace(candidates=(cand,)), F, n, n, L2(), alpha, p)
    assert gap == pytest.approx(F - D, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-8, 1.0, 1e8])
def test_certificate_does_not_depend_on_the_units_of_X(engel_data, scale):
    """Columns of scale 1e8 (or 1e-8) beside the intercept's 1 certify like scale 1, at the LP optimum."""
    X, y = engel_data
    F_lp, beta_lp, b_lp = lp_optimum(X, *Quantile(0.5).dual_box(y), 0.0)
    est = SMEMRegressor(loss="quantile", alpha=0.0).fit(X * scale, y)
    assert est.converged_
    assert est.objective_ == pytest.approx(F_lp, rel=1e-8)
    np.testing.assert_allclose([est.coef_[0] * scale, est.intercept_], [beta_lp[0], b_lp], rtol=1e-6)


def test_an_optimum_with_no_row_at_its_kink_certifies_at_once():
    """β = 0 is optimal for a large l1 penalty without intercept; every margin is 1 (no row at the
    kink). The first certificate attempt proves it: converged after 0 iterations."""
    rng = np.random.default_rng(4)
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(float)
    est = SMEMClassifier(loss="hinge", penalty="l1", alpha=10.0, fit_intercept=False).fit(X, y)
    assert est.converged_ and est.n_iter_ == 0
    np.testing.assert_array_equal(est.coef_, 0.0)
    assert est.objective_ == pytest.approx(lp_optimum(X, *Hinge().dual_box(y), 10.0, False)[0], rel=1e-12)


def test_a_cached_curvature_warm_start_certifies_like_a_cold_fit(engel_data):
    from smem_dask.solver import SolverConfig, fit_em

    X, y = engel_data
    eng, loss = NumpyEngine(X, y), Quantile(0.5)
    config = SolverConfig(acceleration="none", curvature="cached", max_iter=7)
    with pytest.warns(ConvergenceWarning):
        first = fit_em(eng, loss, L2(), 0.0, config=config)
    warm = fit_em(eng, loss, L2(), 0.0, config=SolverConfig(acceleration="none", curvature="cached"),
                  warm=first.warm)
    assert warm.converged
    assert warm.objective == pytest.approx(lp_optimum(X, *loss.dual_box(y), 0.0)[0], rel=1e-8)


@pytest.mark.parametrize("max_iter", [2, 3, 5])
def test_n_iter_never_exceeds_max_iter(engel_data, max_iter):
    X, y = engel_data
    with pytest.warns(ConvergenceWarning, match=f"max_iter={max_iter} was reached"):
        est = SMEMRegressor(loss="quantile", alpha=0.0, max_iter=max_iter).fit(X, y)
    assert est.n_iter_ <= max_iter and not est.converged_


def test_the_final_gap_is_reported_and_bounds_the_suboptimality(engel_data):
    X, y = engel_data
    F_lp = lp_optimum(X, *Quantile(0.5).dual_box(y), 0.0)[0]
    est = SMEMRegressor(loss="quantile", alpha=0.0).fit(X, y)
    assert est.converged_ and 0.0 <= est.objective_ - F_lp <= est.duality_gap_ + 1e-12
    assert est.duality_gap_ <= 1e-8 * max(1.0, est.objective_)
    with pytest.warns(ConvergenceWarning):
        short = SMEMRegressor(loss="quantile", alpha=0.0, max_iter=3).fit(X, y)
    assert short.objective_ - F_lp <= short.duality_gap_ and short.duality_gap_ > 1e-8 * short.objective_
    assert np.isnan(SMEMRegressor(alpha=1e-3).fit(X, y).duality_gap_)
