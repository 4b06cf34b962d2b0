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


def test_poisson_standard_errors_equal_r_on_cpunish():
    from statsmodels.genmod.tests.results.results_glm import Cpunish

    X, y = _cpunish()
    est = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12).fit(X, y)
    se = est.std_errors(X, y)
    # R's values are printed to 7 digits and differ from the exact ones by up to 8.5e-6 relative:
    # statsmodels' own GLM differs from them by as much (its test compares 4 decimals)
    ref = np.asarray(Cpunish().bse)
    np.testing.assert_allclose(se, ref, rtol=1e-5)
    glm = sm.GLM(y, sm.add_constant(X, prepend=False), family=sm.families.Poisson()).fit(tol=1e-13)
    np.testing.assert_allclose(np.abs(glm.bse / ref - 1).max(), np.abs(se / ref - 1).max(), rtol=1e-6)
    np.testing.assert_allclose(se, glm.bse, rtol=1e-9)


def _problem(loss, n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * np.array([1.0, 2.0, 0.5, 1.0])
    eta = X @ np.array([0.5, -0.25, 0.8, 0.0]) + 0.3
    if loss == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif loss == "poisson":
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    else:
        y = eta + rng.standard_t(3, n)  # heavy-tailed: robust and plain standard errors differ
    clusters = rng.integers(0, 40, n)
    return X, y, clusters


def _family(loss):
    return {"logistic": sm.families.Binomial(), "poisson": sm.families.Poisson(),
            "squared": sm.families.Gaussian()}[loss]


def _estimator(loss):
    if loss == "logistic":
        return SMEMClassifier(alpha=0.0, tol=1e-12)
    return SMEMRegressor(loss=loss, alpha=0.0, tol=1e-12)


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


@pytest.mark.parametrize("loss", ["logistic", "poisson", "squared"])
@pytest.mark.parametrize("kind", ["numpy", "dask", "zarr"])
def test_covariances_equal_statsmodels(loss, kind, tmp_path):
    X, y, clusters = _problem(loss)
    est = _estimator(loss).fit(X, y)
    Xc = sm.add_constant(X, prepend=False)
    model = sm.GLM(y, Xc, family=_family(loss))
    plain = model.fit(tol=1e-14)
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], plain.params, rtol=1e-7, atol=1e-9)
    Xi, yi, gi = _inputs(kind, X, y, clusters, tmp_path)
    hc0 = model.fit(cov_type="HC0", tol=1e-14)
    clustered = model.fit(cov_type="cluster", cov_kwds={"groups": clusters}, tol=1e-14)
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


@pytest.mark.parametrize("loss", ["logistic", "poisson", "squared"])
def test_weights_are_frequency_weights(loss):
    X, y, _ = _problem(loss, n=800, seed=3)
    s = np.random.default_rng(4).integers(1, 4, X.shape[0]).astype(float)
    est = _estimator(loss).fit(X, y, sample_weight=s)
    ref = sm.GLM(y, sm.add_constant(X, prepend=False), family=_family(loss), freq_weights=s).fit(tol=1e-14)
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
