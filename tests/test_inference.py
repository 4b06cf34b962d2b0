"""Standard errors against published R/Stata results (as stored in statsmodels' test suite) and against
statsmodels' own covariances, on numpy, dask and zarr inputs; and the refusals."""

import dask.array as da
import numpy as np
import pytest
import statsmodels.api as sm
from statsmodels.stats import sandwich_covariance as sw

from smem_dask import SMEMClassifier, SMEMRegressor

pd = pytest.importorskip("pandas")


def _spector():
    data = sm.datasets.spector.load()
    return np.asarray(data.exog, dtype=float), np.asarray(data.endog, dtype=float)


def _cpunish():
    data = sm.datasets.cpunish.load()
    X = np.array(data.exog, dtype=float)
    X[:, 3] = np.log(X[:, 3])  # as in statsmodels' test of the R results
    return X, np.asarray(data.endog, dtype=float)


def test_logit_standard_errors_equal_stata_on_spector():
    from statsmodels.discrete.tests.results.results_discrete import Spector

    X, y = _spector()
    est = SMEMClassifier(alpha=0.0, tol=1e-12).fit(X, y)
    ref = Spector.logit
    np.testing.assert_allclose(est.std_errors(X, y), ref.bse, rtol=1e-6)
    np.testing.assert_allclose(est.covariance_matrix(X, y), ref.cov_params, rtol=1e-6)


def _r_glm_fit_poisson(X, y):
    """R's ``glm.fit`` for the Poisson family, step by step: mustart = y + 0.1, then weighted least
    squares on the working response until |dev − dev_old| / (|dev| + 0.1) < 1e-8. Returns the
    coefficients and the point whose IRLS weights R's ``summary.glm`` takes its covariance from —
    the iterate before the last solve (R keeps that solve's QR), not the returned coefficients."""
    Xc = np.column_stack([X, np.ones(len(y))])

    def deviance(mu):
        return 2.0 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0) - (y - mu))

    mu = y + 0.1
    eta = np.log(mu)
    weights_at, dev_old = None, deviance(mu)
    for _ in range(25):
        z = eta + (y - mu) / mu
        w = np.sqrt(mu)
        weights_at = eta
        beta = np.linalg.lstsq(Xc * w[:, None], z * w, rcond=None)[0]
        eta = Xc @ beta
        mu = np.exp(eta)
        dev = deviance(mu)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < 1e-8:
            break
        dev_old = dev
    # the point with the linear predictor the last weights came from (Xc has full column rank)
    return beta, np.linalg.lstsq(Xc, weights_at, rcond=None)[0]


def test_poisson_standard_errors_equal_r_on_cpunish():
    from statsmodels.genmod.tests.results.results_glm import Cpunish

    from smem_dask.engine import NumpyEngine
    from smem_dask.inference import coefficient_covariance
    from smem_dask.losses import Poisson

    X, y = _cpunish()
    ref = Cpunish()
    est = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12).fit(X, y)
    se = est.std_errors(X, y)
    glm = sm.GLM(y, sm.add_constant(X, prepend=False), family=sm.families.Poisson()).fit(tol=1e-13)
    np.testing.assert_allclose(se, glm.bse, rtol=1e-9)
    # R prints its standard errors from the IRLS weights of its last iteration — one iterate before
    # the coefficients it reports, 1.8e-6 to 8.5e-6 away from the exact ones at its optimum (which
    # statsmodels and we give). The same formula at R's point gives R's numbers to their 7 digits.
    beta_r, at_r = _r_glm_fit_poisson(X, y)  # (the intercept last, as statsmodels stores R's results)
    np.testing.assert_allclose(beta_r, ref.params, rtol=1e-6)
    assert np.abs(se / ref.bse - 1).max() > 1e-6  # our standard errors are not at R's point
    cov = coefficient_covariance(NumpyEngine(X, y), Poisson(), at_r, True)
    np.testing.assert_allclose(np.sqrt(np.diag(cov.matrix)), ref.bse, rtol=1e-6)


def _problem(loss, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * np.array([1.0, 2.0, 0.5, 1.0])
    eta = X @ np.array([0.5, -0.25, 0.8, 0.0]) + 0.3
    if loss == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif loss == "poisson":
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    elif loss == "negbin":  # shape H, mean H·e^η: NB(H, 1/(1 + e^η)) counts
        y = rng.negative_binomial(H, 1.0 / (1.0 + np.exp(0.5 * eta))).astype(float)
    else:
        y = eta + rng.standard_t(3, n)  # heavy-tailed: robust and plain standard errors differ
    clusters = rng.integers(0, 40, n)
    return X, y, clusters


#: the negative binomial's shape in these tests
H = 2.0


def _glm(loss, y, Xc, **kwargs):
    """statsmodels' GLM of the same model; the negative binomial's log link on the mean H·e^η is
    statsmodels' NegativeBinomial(alpha=1/H) with the offset log H."""
    if loss == "negbin":
        return sm.GLM(y, Xc, family=sm.families.NegativeBinomial(alpha=1.0 / H),
                      offset=np.full(len(y), np.log(H)), **kwargs)
    family = {"logistic": sm.families.Binomial(), "poisson": sm.families.Poisson(),
              "squared": sm.families.Gaussian()}[loss]
    return sm.GLM(y, Xc, family=family, **kwargs)


def _glm_fit(model, **kwargs):
    """statsmodels' fit restarted from its own optimum: its IRLS reports the covariance at the weights
    of its last iterate, which for the negative binomial (Fisher scoring, linear convergence) is
    about 1e-7 from the optimum after a cold fit; restarted there, it is the optimum."""
    start = model.fit(tol=1e-14).params
    return model.fit(tol=1e-14, start_params=start, **kwargs)


def _estimator(loss):
    if loss == "logistic":
        return SMEMClassifier(alpha=0.0, tol=1e-12)
    return SMEMRegressor(loss=loss, alpha=0.0, tol=1e-12, loss_params={"h": H} if loss == "negbin" else None)


def _inputs(kind, X, y, clusters, tmp_path):
    if kind == "numpy":
        return X, y, clusters
    if kind == "dask":
        return (da.from_array(X, chunks=(700, 4)), da.from_array(y, chunks=700),
                da.from_array(clusters, chunks=700))
    import zarr

    root = zarr.open_group(str(tmp_path / "data.zarr"), mode="w")
    for name, a in (("X", X), ("y", y), ("g", clusters)):
        arr = root.create_array(name, shape=a.shape, chunks=(1000,) + a.shape[1:], dtype=a.dtype)
        arr[...] = a
    return (da.from_zarr(str(tmp_path / "data.zarr"), component="X"),
            da.from_zarr(str(tmp_path / "data.zarr"), component="y"),
            da.from_zarr(str(tmp_path / "data.zarr"), component="g"))


@pytest.mark.parametrize("loss", ["logistic", "poisson", "squared", "negbin"])
@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr"])
def test_covariances_equal_statsmodels(loss, kind, tmp_path):
    X, y, clusters = _problem(loss)
    est = _estimator(loss).fit(X, y)
    Xc = sm.add_constant(X, prepend=False)
    model = _glm(loss, y, Xc)
    plain = _glm_fit(model)
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], plain.params, rtol=1e-7, atol=1e-9)
    Xi, yi, gi = _inputs(kind, X, y, clusters, tmp_path)
    hc0 = _glm_fit(model, cov_type="HC0")
    clustered = _glm_fit(model, cov_type="cluster", cov_kwds={"groups": clusters})
    # HC1 = n/(n − q)·HC0 (statsmodels' GLM(cov_type="HC1") applies no factor; its OLS and
    # cov_white_simple(use_correction=True) do)
    hc1 = np.sqrt(np.diag(sw.cov_white_simple(hc0, use_correction=True)))
    np.testing.assert_allclose(est.std_errors(Xi, yi), plain.bse, rtol=1e-8)
    np.testing.assert_allclose(est.covariance_matrix(Xi, yi), plain.cov_params(), rtol=1e-8,
                               atol=1e-12 * np.abs(plain.cov_params()).max())
    np.testing.assert_allclose(est.std_errors(Xi, yi, cov_type="HC0"), hc0.bse, rtol=1e-8)
    np.testing.assert_allclose(est.std_errors(Xi, yi, cov_type="HC1"), hc1, rtol=1e-8)
    np.testing.assert_allclose(est.std_errors(Xi, yi, cov_type="cluster", clusters=gi), clustered.bse,
                               rtol=1e-8)
    if loss == "squared":  # OLS's own HC1 and residual variance
        ols = sm.OLS(y, Xc).fit(cov_type="HC1")
        np.testing.assert_allclose(est.std_errors(X, y, cov_type="HC1"), ols.bse, rtol=1e-8)
        np.testing.assert_allclose(est.std_errors(X, y), sm.OLS(y, Xc).fit().bse, rtol=1e-8)


@pytest.mark.parametrize("loss", ["logistic", "poisson", "squared", "negbin"])
def test_weights_are_frequency_weights(loss):
    X, y, _ = _problem(loss, n=800, seed=3)
    s = np.random.default_rng(4).integers(1, 4, X.shape[0]).astype(float)
    est = _estimator(loss).fit(X, y, sample_weight=s)
    ref = _glm_fit(_glm(loss, y, sm.add_constant(X, prepend=False), freq_weights=s))
    np.testing.assert_allclose(est.std_errors(X, y, s), ref.bse, rtol=1e-8)
    # the same as repeating each row s times
    rows = np.repeat(np.arange(X.shape[0]), s.astype(int))
    np.testing.assert_allclose(est.std_errors(X[rows], y[rows]), ref.bse, rtol=1e-8)


def test_coef_table_matches_statsmodels():
    X, y = _spector()
    frame = pd.DataFrame(X, columns=["gpa", "tuce", "psi", "other"][:X.shape[1]])
    est = SMEMClassifier(alpha=0.0, tol=1e-12).fit(frame, y)
    table = est.coef_table(frame, y, level=0.9)
    ref = sm.Logit(y, sm.add_constant(X, prepend=False)).fit(disp=False, tol=1e-14)
    assert list(table.index) == ["gpa", "tuce", "psi", "intercept"]
    assert list(table.columns) == ["coef", "std_err", "z", "p_value", "ci_lower", "ci_upper"]
    np.testing.assert_allclose(table["coef"], ref.params, rtol=1e-7)
    np.testing.assert_allclose(table["std_err"], ref.bse, rtol=1e-7)
    np.testing.assert_allclose(table["z"], ref.tvalues, rtol=1e-7)
    np.testing.assert_allclose(table["p_value"], ref.pvalues, rtol=1e-6)
    np.testing.assert_allclose(table[["ci_lower", "ci_upper"]], ref.conf_int(alpha=0.1), rtol=1e-7)


def test_refusals_name_the_reason():
    X, y, g = _problem("logistic", n=500)
    fitted = SMEMClassifier(alpha=0.0, tol=1e-10).fit(X, y)
    with pytest.raises(ValueError, match="unpenalized"):
        SMEMClassifier(alpha=1e-3).fit(X, y).std_errors(X, y)
    with pytest.raises(ValueError, match="hinge"):
        SMEMClassifier(loss="hinge", alpha=0.0).fit(X, y).std_errors(X, y)
    with pytest.raises(ValueError, match="huber"):
        SMEMRegressor(loss="huber", alpha=0.0).fit(X, y).std_errors(X, y)
    with pytest.raises(ValueError, match="cov_type must be one of"):
        fitted.std_errors(X, y, cov_type="HC3")
    with pytest.raises(ValueError, match="needs clusters"):
        fitted.std_errors(X, y, cov_type="cluster")
    with pytest.raises(ValueError, match="cluster' only"):
        fitted.std_errors(X, y, clusters=g)
    with pytest.raises(ValueError, match="sample weights"):
        fitted.std_errors(X, y, np.ones(len(y)), cov_type="HC0")
    with pytest.raises(ValueError, match="one label per row"):
        fitted.std_errors(X, y, cov_type="cluster", clusters=g[:-1])
    with pytest.raises(ValueError, match="not the optimum on these data"):
        fitted.std_errors(X[::-1], y)  # other data: the coefficients are not its optimum
    with pytest.warns(UserWarning, match="did not meet tol"):
        unconverged = SMEMClassifier(alpha=0.0, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="did not converge"):
        unconverged.std_errors(X, y)
    with pytest.raises(ValueError, match="class_weight"):
        SMEMClassifier(alpha=0.0, class_weight="balanced").fit(X, y).std_errors(X, y)
    with pytest.raises(ValueError, match="labels the fit did not see"):
        fitted.std_errors(X, np.where(y > 0, 2.0, 0.0))
    with pytest.raises(ValueError, match="multinomial"):
        yk = np.arange(len(y)) % 3
        SMEMClassifier(alpha=0.0).fit(X, yk).std_errors(X, yk)
    Xd = np.column_stack([X, X[:, 0]])  # a duplicated column: the Hessian is singular
    with pytest.warns(UserWarning, match="singular"):
        collinear = SMEMClassifier(alpha=0.0, tol=1e-10, max_iter=500).fit(Xd, y)
    with pytest.raises(ValueError, match="Hessian at the fit is singular"):
        collinear.std_errors(Xd, y)


def test_negbin_information_is_the_expected_one():
    """The negative binomial's standard errors come from the expected information Σ h σ(η) x̃x̃ᵀ
    (statsmodels' GLM and R's glm.nb), which on these data differs from the observed one Σ (y + h)
    σ(η)(1 − σ(η)) x̃x̃ᵀ by more than the tolerance of the comparison with statsmodels."""
    from smem_dask.blockstats import Request

    X, y, _ = _problem("negbin", n=2000, seed=5)
    est = _estimator("negbin").fit(X, y)
    se = est.std_errors(X, y)
    Xc = np.column_stack([X, np.ones(len(y))])
    eta = Xc @ np.r_[est.coef_, est.intercept_]
    sig = 1.0 / (1.0 + np.exp(-eta))
    expected = np.sqrt(np.diag(np.linalg.inv(Xc.T @ ((H * sig)[:, None] * Xc))))
    observed = np.sqrt(np.diag(np.linalg.inv(Xc.T @ (((y + H) * sig * (1 - sig))[:, None] * Xc))))
    np.testing.assert_allclose(se, expected, rtol=1e-9)
    assert np.abs(observed / expected - 1).max() > 1e-3
    np.testing.assert_allclose(se, _glm_fit(_glm("negbin", y, Xc)).bse, rtol=1e-8)
    with pytest.raises(ValueError, match="Hessian system only"):
        Request(np.zeros(3), np.zeros(3), expected=True)
