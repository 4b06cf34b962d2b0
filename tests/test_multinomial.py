"""The multinomial loss (more than two classes): the loss against scipy and finite differences, the
pass against a direct numpy sum, and fits against scikit-learn's multinomial LogisticRegression
(tol 1e-12) on wine, digits and a synthetic ill-conditioned 5-class problem."""

import warnings

import dask.array as da
import mpmath
import numpy as np
import pytest
import sklearn
from scipy.special import logsumexp
from sklearn.datasets import load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from smem_dask import SMEMClassifier
from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.losses import Multinomial, log_softmax, softmax
from smem_dask.multinomial import fit_multinomial
from smem_dask.penalties import L2
from smem_dask.solver import SingularSystemWarning, SolverConfig
from smem_dask.stats import BlockStats, Request, block_stats_many

LOSS = Multinomial()
_SKLEARN = tuple(int(v) for v in sklearn.__version__.split(".")[:2])


def _objective(X, y, coef, intercept, alpha, s=None):
    """F = Σ s ℓ / Σ s + α/2 ‖B‖², independently of the package."""
    eta = X @ coef.T + intercept
    rows = logsumexp(eta, axis=1) - eta[np.arange(len(y)), y]
    s = np.ones(len(y)) if s is None else s
    return float(s @ rows / s.sum() + 0.5 * alpha * (coef**2).sum())


def _standardized(loader):
    X, y = loader(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[:, X.std(axis=0) > 0], y


def _ill_conditioned(n=3000, p=8, K=5, cond=1e6, seed=0):
    """Correlated features with cond(XᵀX) ≈ ``cond`` and classes drawn from a multinomial model."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((p, p)))
    X = rng.standard_normal((n, p)) @ np.diag(np.logspace(0, -0.5 * np.log10(cond), p)) @ Q.T
    B = rng.standard_normal((p, K))
    probs = softmax(X @ B + rng.standard_normal(K))
    y = (probs.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return X, y


# -- the loss ------------------------------------------------------------------------------------

def test_loss_against_scipy_and_finite_differences():
    rng = np.random.default_rng(0)
    eta = 3 * rng.standard_normal((50, 4))
    y = rng.integers(0, 4, 50).astype(float)
    expected = logsumexp(eta, axis=1) - eta[np.arange(50), y.astype(int)]
    np.testing.assert_allclose(LOSS.value(y, eta), expected, rtol=1e-14, atol=1e-14)
    h = 1e-6
    fd = np.stack([(LOSS.value(y, eta + h * e) - LOSS.value(y, eta - h * e)) / (2 * h) for e in np.eye(4)],
                  axis=1)
    np.testing.assert_allclose(LOSS.derivative(y, eta), fd, atol=1e-8)
    assert np.abs(LOSS.derivative(y, eta).sum(axis=1)).max() < 1e-15  # rows sum to 0 over the classes


@pytest.mark.parametrize("scale", [1e-9, 1e-4, 0.5, 30.0])
def test_value_difference_is_accurate(scale):
    """Against ℓ(η + δ) − ℓ(η) in 50-digit arithmetic (mpmath): for small steps a float64
    difference of two losses would lose every digit."""
    rng = np.random.default_rng(1)
    eta = 2 * rng.standard_normal((40, 3))
    delta = scale * rng.standard_normal((40, 3))
    y = rng.integers(0, 3, 40)
    got = LOSS.value_difference(y.astype(float), eta, delta)
    with mpmath.workdps(50):
        def loss(e, label):
            return mpmath.log(sum(mpmath.exp(v) for v in e)) - e[label]

        ref = [float(loss([mpmath.mpf(a) + mpmath.mpf(b) for a, b in zip(e, d, strict=True)], label)
                     - loss([mpmath.mpf(a) for a in e], label))
               for e, d, label in zip(eta, delta, y, strict=True)]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-300)


def test_softmax_in_the_tails():
    eta = np.array([[1000.0, 0.0, -1000.0], [-800.0, -800.0, -800.0]])
    p = softmax(eta)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-15)
    assert np.isfinite(log_softmax(eta)).all()
    assert log_softmax(eta)[0, 2] == -2000.0


# -- the pass ------------------------------------------------------------------------------------

def test_pass_against_a_direct_sum():
    """Loss at point 0, its change at point 1, gradients at both, the fixed-curvature Gram, with
    sample weights; and block statistics add up (the monoid)."""
    rng = np.random.default_rng(2)
    n, p, K = 700, 4, 3
    X = rng.standard_normal((n, p))
    y = rng.integers(0, K, n).astype(float)
    s = rng.random(n)
    T0, T1 = rng.standard_normal((p + 1, K)), rng.standard_normal((p + 1, K))
    req = Request(np.column_stack([T0, T1]), T0[:, 0], curvature=0.5, classes=K)
    st = block_stats_many(X, y, s, LOSS, [req], True)[0]
    Xt = np.column_stack([X, np.ones(n)])
    lab = y.astype(int)

    def loss_sum(T):
        eta = Xt @ T
        return s @ (logsumexp(eta, axis=1) - eta[np.arange(n), lab])

    def grad(T):
        G = softmax(Xt @ T)
        G[np.arange(n), lab] -= 1
        return Xt.T @ (s[:, None] * G)

    np.testing.assert_allclose(st.loss[0], loss_sum(T0), rtol=1e-13)
    np.testing.assert_allclose(st.loss_delta[0], loss_sum(T1) - loss_sum(T0), rtol=1e-11)
    np.testing.assert_allclose(st.grad, np.column_stack([grad(T0), grad(T1)]), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(st.gram, 0.5 * Xt.T @ (s[:, None] * Xt), rtol=1e-13)
    np.testing.assert_array_equal(st.rhs, 0.0)
    assert st.weight == pytest.approx(s.sum(), rel=1e-15) and st.n == n
    # split into two blocks: the sums add up
    parts = [block_stats_many(X[r], y[r], s[r], LOSS, [req], True)[0] for r in (slice(0, 300), slice(300, n))]
    total = BlockStats.zero(p + 1, 2, 2 * K) + parts[0] + parts[1]
    np.testing.assert_allclose(total.pack(), st.pack(), rtol=1e-12, atol=1e-10)


def test_hessian_pass_against_finite_differences():
    """The Newton request's (qK × qK) Hessian, class-major, against central differences of the
    pass's own gradient (and threads=True's numpy Gram against dsyrk's)."""
    rng = np.random.default_rng(3)
    n, p, K = 400, 3, 4
    q = p + 1
    X = rng.standard_normal((n, p))
    y = rng.integers(0, K, n).astype(float)
    s = rng.random(n)
    T = 0.5 * rng.standard_normal((q, K))
    st = block_stats_many(X, y, s, LOSS, [Request(T, T, hessian=True, classes=K)], True)[0]
    assert st.gram.shape == (q * K, q * K)
    threaded = block_stats_many(X, y, s, LOSS, [Request(T, T, hessian=True, classes=K)], True, True)[0]
    np.testing.assert_allclose(threaded.gram, st.gram, rtol=1e-12, atol=1e-12)
    h = 1e-5
    fd = np.empty((q * K, q * K))
    for c in range(q * K):
        E = np.zeros(q * K)
        E[c] = h
        E = E.reshape((q, K), order="F")  # class-major: entry c is (c % q, c // q)
        plus = block_stats_many(X, y, s, LOSS, [Request(T + E, classes=K)], True)[0].grad
        minus = block_stats_many(X, y, s, LOSS, [Request(T - E, classes=K)], True)[0].grad
        fd[:, c] = ((plus - minus) / (2 * h)).ravel(order="F")
    np.testing.assert_allclose(st.gram, fd, atol=1e-6 * np.abs(fd).max())
    np.testing.assert_allclose(st.gram, st.gram.T, rtol=0, atol=1e-12)


def test_request_checks():
    with pytest.raises(ValueError, match="multiple of classes"):
        Request(np.zeros((3, 5)), classes=3)
    with pytest.raises(ValueError, match="fixed-curvature Gram"):
        Request(np.zeros((3, 3)), np.zeros(3), classes=3)  # an E-step system: none exists
    with pytest.raises(ValueError, match=r"is a \(q, 3\) matrix"):
        Request(np.zeros((3, 3)), np.zeros(3), hessian=True, classes=3)
    with pytest.raises(ValueError, match="binary ones"):
        block_stats_many(np.zeros((4, 2)), np.zeros(4), None, LOSS,
                         [Request(np.zeros((3, 3)), classes=3), Request(np.zeros(3))], True)


# -- fits against scikit-learn -------------------------------------------------------------------

CASES = {
    "wine": lambda: _standardized(load_wine),
    "digits": lambda: _standardized(load_digits),
    "synthetic-5-class": lambda: _ill_conditioned(),
}


@pytest.mark.parametrize("name", CASES)
def test_l2_matches_scikit_learn(name):
    """Objective within 1e-9 relative and coefficients to 1e-5 of scikit-learn's multinomial fit
    (lbfgs, tol 1e-12), the history monotone, sklearn's symmetric parametrization."""
    X, y = CASES[name]()
    n, C = len(y), 1.0 if name != "digits" else 0.1
    alpha = 1.0 / (C * n)
    ref = LogisticRegression(C=C, tol=1e-12, max_iter=20000).fit(X, y)
    est = SMEMClassifier(alpha=alpha, tol=1e-10, max_iter=20000).fit(X, y)
    assert est.converged_ and est.coef_.shape == ref.coef_.shape
    assert est.intercept_.shape == (len(ref.classes_),)
    F_ours, F_ref = (_objective(X, y, est.coef_, est.intercept_, alpha),
                     _objective(X, y, ref.coef_, ref.intercept_, alpha))
    assert F_ours <= F_ref * (1 + 1e-9)
    assert abs(F_ours - F_ref) <= 1e-9 * F_ref
    assert est.objective_ == pytest.approx(F_ours, rel=1e-12)  # the reported F is the documented F
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-5 * scale)
    np.testing.assert_allclose(est.intercept_, ref.intercept_,
                               atol=1e-5 * max(1.0, np.abs(ref.intercept_).max()))
    np.testing.assert_allclose(est.coef_.sum(axis=0), 0.0, atol=1e-10 * scale)
    assert abs(est.intercept_.sum()) < 1e-10 * max(1.0, np.abs(est.intercept_).max())
    history = np.asarray(est.objective_history_)
    assert (np.diff(history) <= 0).all()
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))


# odd K: with an even number of classes the lasso's best shift of a row is an interval (any point
# between its two middle entries), and two exact solvers may pick different points of it
SPARSE_CASES = {  # the data and scikit-learn's C
    "wine": (lambda: _standardized(load_wine), 0.5),
    "synthetic-5-class": (lambda: _ill_conditioned(n=1500, p=6, K=5, cond=10, seed=9), 0.01),
}


@pytest.mark.parametrize("curvature", ["newton", "fixed"])
@pytest.mark.parametrize("l1_ratio", [1.0, 0.5], ids=["l1", "elasticnet"])
@pytest.mark.parametrize("name", SPARSE_CASES)
def test_l1_and_elastic_net_match_saga(name, l1_ratio, curvature):
    """Against scikit-learn's saga at tol 1e-10: the same objective (1e-9 relative), coefficients to
    1e-5, exactly the same zeros; every accepted iterate lowers F."""
    data, C = SPARSE_CASES[name]
    X, y = data()
    n = len(y)
    alpha = 1.0 / (C * n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (saga's and scikit-learn's deprecation warnings)
        ref = LogisticRegression(C=C, solver="saga", l1_ratio=l1_ratio, tol=1e-10, max_iter=100000,
                                 **({} if _SKLEARN >= (1, 8) else {"penalty": "elasticnet"})).fit(X, y)
    params = {"penalty": "l1"} if l1_ratio == 1 else {"penalty": "elasticnet", "l1_ratio": l1_ratio}
    est = SMEMClassifier(alpha=alpha, tol=1e-10, max_iter=5000, curvature=curvature, **params).fit(X, y)
    assert est.converged_

    def F(coef, intercept):
        eta = X @ coef.T + intercept
        P = l1_ratio * np.abs(coef).sum() + 0.5 * (1 - l1_ratio) * (coef**2).sum()
        return float((logsumexp(eta, axis=1) - eta[np.arange(n), y]).mean() + alpha * P)

    F_ours, F_ref = F(est.coef_, est.intercept_), F(ref.coef_, ref.intercept_)
    assert F_ours <= F_ref * (1 + 1e-12) and abs(F_ours - F_ref) <= 1e-9 * F_ref
    assert est.objective_ == pytest.approx(F_ours, rel=1e-12)
    np.testing.assert_array_equal(est.coef_ == 0, ref.coef_ == 0)
    assert (est.coef_ == 0).sum() >= 3  # a sparse answer, not a trivially dense one
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(est.intercept_, ref.intercept_, atol=1e-5)
    assert (np.diff(est.objective_history_) <= 0).all()
    if curvature == "newton":
        assert est.n_passes_ <= 15


@pytest.mark.parametrize("curvature", ["newton", "fixed"])
def test_group_across_classes_is_certified_by_its_kkt(curvature):
    """One group per feature, across the K classes (glmnet's grouped multinomial): a feature is in
    or out for every class at once. The KKT conditions, computed here from the formula: for a zero
    group ‖∇_G L‖ ≤ α√K, else ∇_G L + α√K θ_G/‖θ_G‖ = 0 (to 1e-8); the intercepts' gradient 0."""
    X, y = _ill_conditioned(n=2000, p=8, K=3, cond=100, seed=10)
    n, K, p = len(y), 3, 8
    alpha = 0.02
    est = SMEMClassifier(alpha=alpha, penalty="group", penalty_params={"groups": list(range(p))},
                         tol=1e-12, max_iter=5000, curvature=curvature).fit(X, y)
    B, b = est.coef_, est.intercept_
    G = softmax(X @ B.T + b)
    G[np.arange(n), y] -= 1
    grad_B, grad_b = (X.T @ G / n).T, G.mean(axis=0)  # (K, p), (K,)
    zero = np.all(B == 0, axis=0)
    assert 1 <= zero.sum() < p  # some features out, some in
    w = alpha * np.sqrt(K)
    for j in range(p):
        if zero[j]:
            assert np.linalg.norm(grad_B[:, j]) <= w + 1e-8
        else:
            np.testing.assert_allclose(grad_B[:, j] + w * B[:, j] / np.linalg.norm(B[:, j]), 0, atol=1e-8)
    np.testing.assert_allclose(grad_b, 0, atol=1e-8)
    assert (np.diff(est.objective_history_) <= 0).all()
    np.testing.assert_allclose(B.sum(axis=0), 0, atol=1e-10)  # the group penalty's best shift: centred


def test_unpenalized_matches_scikit_learn():
    """α = 0 on non-separable data: the minimizer is unique up to a shift common to the classes,
    which both fix by the symmetric parametrization (Σ_k θ_k = 0)."""
    X, y = _ill_conditioned(n=4000, p=4, K=4, cond=1e2, seed=3)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=20000).fit(X, y)
    est = SMEMClassifier(alpha=0.0, tol=1e-10, max_iter=20000).fit(X, y)
    assert est.converged_
    F_ours, F_ref = (_objective(X, y, est.coef_, est.intercept_, 0.0),
                     _objective(X, y, ref.coef_, ref.intercept_, 0.0))
    assert abs(F_ours - F_ref) <= 1e-10 * F_ref
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(est.intercept_, ref.intercept_, atol=1e-5)


def test_labels_weights_and_class_weights():
    """String labels in sklearn's sorted order; integer sample weights give the fit of the repeated
    rows; class_weight="balanced" is n / (K · count) as in scikit-learn."""
    X, y = _standardized(load_wine)
    names = np.array(["red", "rose", "white"])[y]
    n = len(y)
    alpha = 1.0 / n
    est = SMEMClassifier(alpha=alpha, tol=1e-10).fit(X, names)
    np.testing.assert_array_equal(est.classes_, ["red", "rose", "white"])
    assert set(est.predict(X)) <= set(names)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, n)
    weighted = SMEMClassifier(alpha=alpha, tol=1e-11).fit(X, y, sample_weight=w.astype(float))
    repeated = SMEMClassifier(alpha=alpha, tol=1e-11).fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(weighted.intercept_, repeated.intercept_, atol=1e-7)
    ref = LogisticRegression(C=1.0, class_weight="balanced", tol=1e-12, max_iter=20000).fit(X, y)
    # scikit-learn scales C by the weights' sum: α = 1/(C·Σ s)
    counts = np.bincount(y)
    s = (n / (3 * counts))[y]
    ours = SMEMClassifier(alpha=1.0 / s.sum(), class_weight="balanced", tol=1e-10).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, atol=1e-5 * np.abs(ref.coef_).max())


def test_engines_agree():
    """numpy, dask with uneven chunks: the same fit to 1e-10."""
    X, y = _ill_conditioned(n=2000, p=5, K=3, cond=1e3, seed=4)
    est = SMEMClassifier(alpha=1e-3, tol=1e-10)
    a = est.fit(X, y)
    coef, icpt = a.coef_.copy(), a.intercept_.copy()
    Xd = da.from_array(X, chunks=((700, 500, 800), 5))
    yd = da.from_array(y, chunks=((700, 500, 800),))
    b = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(Xd, yd)
    np.testing.assert_allclose(b.coef_, coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.intercept_, icpt, rtol=1e-10, atol=1e-12)
    proba = b.predict_proba(Xd)
    assert isinstance(proba, da.Array)
    np.testing.assert_allclose(proba.compute(), a.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(b.predict(Xd).compute(), a.predict(X))


def test_engine_level_fit_counts_passes():
    """fit_multinomial on an engine: one first pass (Gram), then one gradient pass per iteration
    and one per restart, and nothing else."""
    X, y = _ill_conditioned(n=1500, p=4, K=3, cond=1e2, seed=5)
    eng = NumpyEngine(X, y.astype(float))
    r = fit_multinomial(eng, 3, L2(), 1e-3, config=SolverConfig(tol=1e-9))
    assert r.converged and eng.n_passes == r.n_passes == 1 + r.n_iter + r.n_restarts


def test_the_binary_loop_refuses_the_multinomial_loss():
    from smem_dask.solver import fit_em

    X, y = _ill_conditioned(n=100, p=2, K=3, seed=8)
    with pytest.raises(ValueError, match="fit_multinomial"):
        fit_em(NumpyEngine(X, y.astype(float)), LOSS, L2(), 1e-3)


def test_unsupported_settings_are_refused():
    X, y = _standardized(load_wine)
    with pytest.raises(ValueError, match="penalty 'scad' with the multinomial loss"):
        SMEMClassifier(penalty="scad", alpha=1e-3).fit(X, y)
    with pytest.raises(ValueError, match="does not apply to the multinomial loss"):
        SMEMClassifier(curvature="cached").fit(X, y)
    with pytest.raises(ValueError, match="does not keep multinomial paths"):
        SMEMClassifier().path(X, y, n_alphas=3, store="somewhere")
    with pytest.raises(ValueError, match="penalty_solver='exact' does not apply"):
        SMEMClassifier(loss="multinomial", penalty_solver="exact").fit(X, y)
    with pytest.raises(ValueError, match="penalty_solver='em' does not apply"):
        SMEMClassifier(loss="multinomial", penalty="l1", penalty_solver="em").fit(X, y)
    with pytest.raises(ValueError, match="one label per feature"):
        SMEMClassifier(penalty="group", penalty_params={"groups": [0] * 39}).fit(X, y)
    with pytest.raises(ValueError, match="needs exactly two"):
        SMEMClassifier(loss="hinge").fit(X, y)


def test_separable_data_reach_the_infimum():
    """Unpenalized, separable classes: F has no minimizer, its infimum is 0. The fit ends with F
    within tol of it (as the binary logistic fit does), monotonically, every row classified."""
    X = np.array([[0.0], [1.0], [2.0], [3.0], [4.0], [5.0]])
    y = np.array([0, 0, 1, 1, 2, 2])
    with warnings.catch_warnings():
        # (the Hessian vanishes as the coefficients grow: said by a SingularSystemWarning)
        warnings.simplefilter("ignore", SingularSystemWarning)
        est = SMEMClassifier(alpha=0.0, tol=1e-8).fit(X, y)
    assert est.objective_ <= 1e-8
    # (a float64 log-sum-exp rounds these rows' losses to 0; the pass sums their stable changes)
    assert abs(_objective(X, y, est.coef_, est.intercept_, 0.0) - est.objective_) <= 1e-12
    assert (np.diff(est.objective_history_) <= 0).all()
    np.testing.assert_array_equal(est.predict(X), y)


def test_dask_engine_directly():
    X, y = _ill_conditioned(n=1200, p=3, K=4, cond=10, seed=6)
    eng = DaskEngine(da.from_array(X, chunks=(300, 3)), da.from_array(y.astype(float), chunks=300))
    r = fit_multinomial(eng, 4, L2(), 1e-2, config=SolverConfig(tol=1e-10))
    ref = fit_multinomial(NumpyEngine(X, y.astype(float)), 4, L2(), 1e-2, config=SolverConfig(tol=1e-10))
    np.testing.assert_allclose(r.coef, ref.coef, rtol=1e-10, atol=1e-13)


@pytest.mark.distributed
def test_local_cluster_agrees(cluster_client, tmp_path):
    """A LocalCluster of worker processes, with uneven dask chunks and from a zarr store (integer
    labels, read by the workers): the in-memory fit to 1e-10; predictions come back lazily."""
    import dask
    import zarr

    X, y = _ill_conditioned(n=3000, p=6, K=4, cond=1e4, seed=7)
    ref = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X, y)
    group = zarr.open_group(str(tmp_path / "multi.zarr"), mode="w")
    group.create_array("X", data=X, chunks=(700, 6))
    group.create_array("y", data=y.astype(np.int64), chunks=(700,))
    with dask.config.set(scheduler=cluster_client):
        Xd = da.from_array(X, chunks=((1000, 300, 1700), 6))
        yd = da.from_array(y, chunks=((1000, 300, 1700),))
        uneven = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(Xd, yd)
        proba = uneven.predict_proba(Xd)
        assert isinstance(proba, da.Array)
        proba = proba.compute()
        stored = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(group["X"], group["y"])
    for est in (uneven, stored):
        np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(est.intercept_, ref.intercept_, rtol=1e-10, atol=1e-12)
        assert est.n_passes_ == ref.n_passes_
    np.testing.assert_allclose(proba, ref.predict_proba(X), rtol=1e-9)
    np.testing.assert_array_equal(stored.classes_, ref.classes_)


def test_bohning_mode():
    """curvature="fixed": Böhning's bound alone — the same optimum as Newton's (to 1e-6 in the
    coefficients at tol 1e-10), a monotone history, and its passes counted: one Gram pass, then one
    gradient pass per iteration and per discarded step; Newton's far fewer."""
    X, y = _standardized(load_wine)
    alpha = 1.0 / len(y)
    newton = SMEMClassifier(alpha=alpha, tol=1e-10).fit(X, y)
    fixed = SMEMClassifier(alpha=alpha, tol=1e-10, curvature="fixed").fit(X, y)
    assert newton.curvature_ == "newton" and fixed.curvature_ == "fixed"
    assert newton.converged_ and fixed.converged_
    np.testing.assert_allclose(fixed.coef_, newton.coef_, atol=1e-6 * np.abs(newton.coef_).max())
    assert (np.diff(fixed.objective_history_) <= 0).all()
    assert fixed.n_passes_ == 1 + fixed.n_iter_ + fixed.n_restarts_
    assert newton.n_passes_ < fixed.n_passes_ / 10


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_path_costs_about_one_cold_fit(penalty):
    """A 40-α path (lockstep) costs at most 4× the passes of one cold fit at its smallest α — here
    about 1× — and every α agrees with its own cold fit; at α_max the lasso's coefficients are all
    zero and one step below some are not."""
    from smem_dask.multinomial_path import solve_multinomial_path
    from smem_dask.penalties import get_penalty

    X, y = _ill_conditioned(n=5000, p=8, K=5, cond=1e6, seed=11)
    pen = get_penalty(penalty)
    config = SolverConfig(tol=1e-10, max_iter=2000)
    res = solve_multinomial_path(NumpyEngine(X, y.astype(float)), 5, pen, n_alphas=40, config=config)
    assert res.converged.all() and res.coefs.shape == (40, 5, 8) and res.intercepts.shape == (40, 5)
    cold = [fit_multinomial(NumpyEngine(X, y.astype(float)), 5, pen, a, config=config)
            for a in res.alphas[[0, 13, 27, 39]]]
    assert res.total_passes <= 4 * cold[-1].n_passes
    for i, fit in zip([0, 13, 27, 39], cold, strict=True):
        np.testing.assert_allclose(res.coefs[i], fit.coef, atol=1e-7 * max(1.0, np.abs(fit.coef).max()))
        assert res.objectives[i] == pytest.approx(fit.objective, rel=1e-12)
    if penalty == "l1":
        assert not res.coefs[0].any() and res.coefs[1].any()


def test_estimator_path_and_fit_path():
    """SMEMClassifier.path on three classes: fitted at the smallest α like a fit there; fit_path too."""
    from smem_dask import fit_path

    X, y = _standardized(load_wine)
    est = SMEMClassifier(penalty="l1", tol=1e-10)
    res = est.path(X, y, n_alphas=10)
    single = SMEMClassifier(penalty="l1", alpha=res.alphas[-1], tol=1e-10).fit(X, y)
    np.testing.assert_allclose(est.coef_, single.coef_, atol=1e-7)
    np.testing.assert_allclose(est.intercept_, single.intercept_, atol=1e-7)
    again = fit_path(X, y, penalty="l1", n_alphas=10, tol=1e-10)
    np.testing.assert_allclose(again.coefs, res.coefs, rtol=0, atol=0)


@pytest.mark.parametrize("r", [1.0, 0.7, 0.2])
@pytest.mark.parametrize("K", [3, 4, 5])
def test_best_shift_against_a_fine_grid(K, r):
    """The shift of a row that minimizes the elastic net's penalty, against the minimum over a grid
    of 2e5 shifts (the penalty to 1e-9); for the lasso with K even, the middle of the flat
    interval."""
    from smem_dask.multinomial import _best_shift

    rng = np.random.default_rng(K * 10 + int(10 * r))
    for _ in range(20):
        b = rng.standard_normal(K)

        def f(c, b=b):
            return r * np.abs(b + c).sum(axis=-1) + 0.5 * (1 - r) * ((b + c) ** 2).sum(axis=-1)

        c = _best_shift(b, r)
        grid = np.linspace(-4, 4, 200001)[:, None]
        assert f(c) <= f(grid).min() + 1e-9
        if r == 1.0 and K % 2 == 0:
            middle = np.sort(-b)[K // 2 - 1: K // 2 + 1]
            assert c == pytest.approx(middle.mean(), abs=1e-12)
    # two middle entries of equal size and opposite sign: the flat piece's middle is 0
    assert _best_shift(np.array([-2.406, 0.5652, 2.6242, -0.5652]), 1.0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("penalty", ["l1", "l2"])
def test_cross_validation_against_a_hand_written_loop(penalty):
    """Every fold's held-out loss and misclassification rate at each α, against fits on that fold's
    training rows alone scored here by the formula; the all-rows path against its own path; the
    selection by glmnet's rule from those scores."""
    from smem_dask.cv import cv_selection
    from smem_dask.multinomial_cv import solve_multinomial_cv
    from smem_dask.penalties import get_penalty

    X, y = _ill_conditioned(n=1200, p=5, K=3, cond=1e3, seed=12)
    folds = np.arange(len(y)) % 3
    pen = get_penalty(penalty)
    config = SolverConfig(tol=1e-11, max_iter=3000)
    res = solve_multinomial_cv(NumpyEngine(X, y.astype(float), folds=folds), 3, pen, 3, n_alphas=6,
                               config=config)
    assert res.path.converged.all() and all(fp.converged.all() for fp in res.fold_paths)
    for k in range(3):
        train, test = folds != k, folds == k
        for i in (0, 3, 5):
            fit = fit_multinomial(NumpyEngine(X[train], y[train].astype(float)), 3, pen, res.alphas[i],
                                  config=config)
            np.testing.assert_allclose(res.fold_paths[k].coefs[i], fit.coef, atol=1e-7)
            eta = X[test] @ fit.coef.T + fit.intercept
            loss = (logsumexp(eta, axis=1) - eta[np.arange(test.sum()), y[test]]).mean()
            wrong = (eta.argmax(axis=1) != y[test]).mean()
            assert res.scores["loss"][k, i] == pytest.approx(loss, rel=1e-8)
            assert res.scores["misclassification"][k, i] == pytest.approx(wrong, abs=1e-12)
    mean, se, i_min, i_1se = cv_selection(res.scores["loss"], res.fold_weights)
    assert (res.index_min, res.index_1se) == (i_min, i_1se)
    np.testing.assert_allclose(res.fold_weights, [400, 400, 400])


def test_classifier_cv_on_three_classes():
    """SMEMClassifierCV on wine: the all-rows fit at the selected α, as a plain fit there; its
    nonzero counts are of all K·p coefficients."""
    from smem_dask import SMEMClassifierCV

    X, y = _standardized(load_wine)
    cv = SMEMClassifierCV(penalty="l1", n_alphas=8, cv=3, tol=1e-10).fit(X, y)
    assert cv.coef_.shape == (3, 13) and cv.cv_scores_.shape == (3, 8)
    single = SMEMClassifier(penalty="l1", alpha=cv.alpha_, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(cv.coef_, single.coef_, atol=1e-7)
    assert cv.cv_result_.n_nonzero[0] == 0 and cv.cv_result_.n_nonzero[-1] == np.count_nonzero(
        cv.path_.coefs[-1])
    assert cv.score(X, y) > 0.9


def test_collinear_columns_at_alpha_zero_take_least_squares_newton_steps():
    """A full set of dummy columns beside the intercept, α = 0: the Newton system is singular. The
    fit says so once (SingularSystemWarning) and takes least-squares Newton steps — a handful of
    iterations, the same probabilities as scikit-learn (whose coefficients differ along the
    collinear direction)."""
    rng = np.random.default_rng(0)
    n = 3000
    G = rng.standard_normal((n, 3))
    D = 10.0 * np.eye(4)[rng.integers(0, 4, n)]
    X = np.c_[G, D]
    y = (G @ rng.standard_normal((3, 3)) + rng.gumbel(size=(n, 3))).argmax(axis=1)
    with pytest.warns(SingularSystemWarning):
        est = SMEMClassifier(alpha=0.0, tol=1e-10).fit(X, y)
    assert est.converged_ and est.n_iter_ <= 15
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=20000).fit(X, y)
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-6)


def test_bad_scale_and_labels_are_refused():
    """X whose squares underflow float64 is refused as for two classes; the solver layer refuses
    targets that are not class indices 0 … K − 1."""
    X, y = _ill_conditioned(n=600, p=3, K=3, seed=13)
    with pytest.raises(ValueError, match="underflows the float64 Gram"):
        SMEMClassifier(alpha=0.0).fit(X * 1e-160, y)
    for bad in (3.0, -1.0, 0.5):
        labels = y.astype(float)
        labels[7] = bad
        with pytest.raises(ValueError, match=f"class indices 0 … 2; found {bad!r}"):
            fit_multinomial(NumpyEngine(X, labels), 3, L2(), 1e-3)
