"""Offsets (a known term of each row's linear predictor, η = Xβ + b + o): fits against statsmodels'
GLM(offset=…) in every curvature mode and on numpy, dask and zarr inputs; paths; predictions; refusals."""

import dask.array as da
import numpy as np
import pytest
import statsmodels.api as sm

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.engine import NumpyEngine


def _counts(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) * np.array([1.0, 0.5, 2.0, 1.0])
    exposure = rng.uniform(0.1, 20.0, n)
    y = rng.poisson(exposure * np.exp(X @ np.array([0.3, -0.5, 0.1, 0.0]) - 1.0)).astype(float)
    return X, y, np.log(exposure)


def _binary(n=4000, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    offset = rng.normal(scale=1.5, size=n)
    eta = X @ np.array([0.8, -0.4, 0.0, 0.3]) + 0.2 + offset
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return X, y, offset


@pytest.mark.parametrize("curvature", ["auto", "newton", "cached", "adaptive"])
def test_poisson_offset_equals_statsmodels(curvature):
    X, y, log_t = _counts()
    est = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12, max_iter=5000, curvature=curvature)
    est.fit(X, y, offset=log_t)
    ref = sm.GLM(y, sm.add_constant(X, prepend=False), family=sm.families.Poisson(), offset=log_t).fit(
        tol=1e-14)
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], ref.params, rtol=1e-8, atol=1e-10)
    # the fit without the offset is another model: the offset was used
    plain = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-10).fit(X, y)
    assert np.abs(plain.intercept_ - est.intercept_) > 0.1


@pytest.mark.parametrize("curvature", ["auto", "cached", "adaptive", "fixed"])
def test_logistic_offset_equals_statsmodels(curvature):
    X, y, offset = _binary()
    est = SMEMClassifier(alpha=0.0, tol=1e-12, max_iter=5000, curvature=curvature).fit(X, y, offset=offset)
    ref = sm.GLM(y, sm.add_constant(X, prepend=False), family=sm.families.Binomial(), offset=offset).fit(
        tol=1e-14)
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], ref.params, rtol=1e-8, atol=1e-10)
    # probabilities with the offset, and the standard errors (one more pass, offset included)
    np.testing.assert_allclose(est.predict_proba(X, offset=offset)[:, 1], ref.fittedvalues, rtol=1e-8)
    np.testing.assert_allclose(est.std_errors(X, y, offset=offset), ref.bse, rtol=1e-7)


def test_squared_offset_is_regression_on_y_minus_offset():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 3))
    offset = rng.normal(size=500)
    y = X @ np.array([1.0, -2.0, 0.5]) + offset + rng.normal(size=500)
    est = SMEMRegressor(alpha=0.0, tol=1e-12).fit(X, y, offset=offset)
    Xa = np.column_stack([X, np.ones(500)])
    closed = np.linalg.lstsq(Xa, y - offset, rcond=None)[0]
    np.testing.assert_allclose(np.r_[est.coef_, est.intercept_], closed, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(est.predict(X, offset=offset), Xa @ closed + offset, rtol=1e-9)


@pytest.mark.parametrize("kind", ["dask", "zarr"])
def test_offset_on_lazy_inputs_equals_numpy(kind, tmp_path):
    X, y, log_t = _counts(3000, seed=4)
    kw = dict(loss="poisson", alpha=1e-3, penalty="l1", tol=1e-12)
    ref = SMEMRegressor(**kw).fit(X, y, offset=log_t)
    if kind == "dask":
        Xi, yi, oi = (da.from_array(X, chunks=(700, 4)), da.from_array(y, chunks=700),
                      da.from_array(log_t, chunks=500))
    else:
        import zarr

        root = zarr.open_group(str(tmp_path / "d.zarr"), mode="w")
        for name, a in (("X", X), ("y", y), ("o", log_t)):
            root.create_array(name, shape=a.shape, chunks=(1000,) + a.shape[1:], dtype=a.dtype)[...] = a
        Xi, yi, oi = (da.from_zarr(str(tmp_path / "d.zarr"), component=c) for c in ("X", "y", "o"))
    est = SMEMRegressor(**kw).fit(Xi, yi, offset=oi)
    np.testing.assert_allclose(est.coef_, ref.coef_, atol=1e-10)
    assert est.intercept_ == pytest.approx(ref.intercept_, abs=1e-10)
    pred = est.predict(Xi, offset=oi)
    assert isinstance(pred, da.Array)
    np.testing.assert_allclose(pred.compute(), ref.predict(X, offset=log_t), rtol=1e-10)
    np.testing.assert_allclose(ref.predict(X, offset=log_t),
                               np.exp(X @ ref.coef_ + ref.intercept_ + log_t), rtol=1e-12)


def test_path_with_offset_equals_cold_fits():
    X, y, log_t = _counts(2000, seed=5)
    est = SMEMRegressor(loss="poisson", penalty="l1", tol=1e-10)
    result = est.path(X, y, offset=log_t, n_alphas=12)
    for i in (0, 5, 11):
        cold = SMEMRegressor(loss="poisson", penalty="l1", alpha=result.alphas[i], tol=1e-12).fit(
            X, y, offset=log_t)
        np.testing.assert_allclose(result.coefs[i], cold.coef_, atol=1e-6)
    # the path's start: at α_max every coefficient is zero, and the intercept is the offset model's
    # intercept-only optimum: log(Σ y / Σ t)
    assert not np.any(result.coefs[0])
    assert result.intercepts[0] == pytest.approx(np.log(y.sum() / np.exp(log_t).sum()), rel=1e-6)


def test_offset_changes_the_data_checksum():
    X, y, log_t = _counts(300)
    plain = NumpyEngine(X, y).data_checksum()
    assert NumpyEngine(X, y, offset=log_t).data_checksum() != plain
    assert NumpyEngine(X, y, offset=None).data_checksum() == plain


def test_offset_refusals():
    X, y, offset = _binary(300)
    with pytest.raises(ValueError, match="does not apply to the hinge loss"):
        SMEMClassifier(loss="hinge").fit(X, y, offset=offset)
    with pytest.raises(ValueError, match="does not apply to the quantile loss"):
        SMEMRegressor(loss="quantile").fit(X, y, offset=offset)
    with pytest.raises(ValueError, match="does not apply to the multinomial loss"):
        SMEMClassifier().fit(X, np.arange(300) % 3, offset=offset)
    with pytest.raises(ValueError, match="one value per row"):
        SMEMClassifier().fit(X, y, offset=offset[:-1])
    with pytest.raises(ValueError, match="NaN or infinite"):
        SMEMClassifier().fit(X, y, offset=np.where(np.arange(300) == 7, np.nan, offset))
    fitted = SMEMClassifier().fit(X, y, offset=offset)
    with pytest.raises(ValueError, match="one value per row"):
        fitted.predict(X, offset=offset[:5])


def test_cross_validation_with_offset_scores_the_offset_model():
    """Each α's pooled held-out loss equals cold fits on the training rows (with their offsets)
    scored on the held-out rows; the selected fit equals a plain fit at its α."""
    from smem_dask import SMEMRegressorCV
    from smem_dask.losses import get_loss

    X, y, log_t = _counts(1500, seed=8)
    folds = np.arange(1500) % 3
    alphas = [3e-2, 1e-2, 3e-3]
    cv = SMEMRegressorCV(loss="poisson", penalty="l1", alphas=alphas, tol=1e-12).fit(
        X, y, folds=folds, offset=log_t)
    loss = get_loss("poisson")
    for i, a in enumerate(alphas):
        total = 0.0
        for k in range(3):
            train, test = folds != k, folds == k
            fit = SMEMRegressor(loss="poisson", penalty="l1", alpha=a, tol=1e-12).fit(
                X[train], y[train], offset=log_t[train])
            eta = X[test] @ fit.coef_ + fit.intercept_ + log_t[test]
            total += loss.value(y[test], eta).sum()
        assert cv.cv_mean_[i] == pytest.approx(total / 1500, rel=1e-7)
    plain = SMEMRegressor(loss="poisson", penalty="l1", alpha=cv.alpha_, tol=1e-12).fit(X, y, offset=log_t)
    np.testing.assert_allclose(cv.coef_, plain.coef_, atol=1e-7)
