"""scipy sparse X (CSR, CSC, any format scikit-learn converts): the same fits, paths, cross-validations and
predictions as on the dense array, with the kernel's products and Grams computed sparse."""

import numpy as np
import pytest
import scipy.sparse as sp

from smem_dask import SMEMClassifier, SMEMClassifierCV, SMEMRegressor
from smem_dask.engine import NumpyEngine
from smem_dask.losses import Logistic
from smem_dask.stats import Request, block_stats_many


def _data(n=20_000, p=40, density=0.01, seed=0, task="logistic"):
    rng = np.random.default_rng(seed)
    Xs = sp.random(n, p, density=density, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    eta = Xs @ rng.normal(size=p) * 3.0
    if task == "logistic":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    elif task == "poisson":
        y = rng.poisson(np.exp(0.5 * eta)).astype(float)
    else:
        y = eta + rng.normal(size=n)
    return Xs, y


@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_a_one_percent_csr_fit_equals_the_dense_fit(fmt):
    Xs, y = _data()
    est = SMEMClassifier(alpha=1e-4, tol=1e-12).fit(Xs.asformat(fmt), y)
    ref = SMEMClassifier(alpha=1e-4, tol=1e-12).fit(Xs.toarray(), y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=1e-10)
    assert est.intercept_ == pytest.approx(ref.intercept_, abs=1e-10)
    assert est.n_passes_ == ref.n_passes_
    np.testing.assert_allclose(est.predict_proba(Xs.asformat(fmt)), ref.predict_proba(Xs.toarray()),
                               rtol=1e-10)
    # what a pass reads: the stored values and their indices, not n × p
    assert est.bytes_read_ < 0.05 * Xs.shape[0] * Xs.shape[1] * 8 * est.n_passes_


@pytest.mark.parametrize(("task", "kw"), [("poisson", dict(loss="poisson", penalty="l1", alpha=1e-3)),
                                          ("squared", dict(penalty="elasticnet", l1_ratio=0.5, alpha=1e-3)),
                                          ("squared", dict(loss="huber", alpha=1e-3))])
def test_other_losses_and_penalties_equal_dense(task, kw):
    Xs, y = _data(task=task, seed=1)
    est = SMEMRegressor(tol=1e-12, **kw).fit(Xs, y)
    ref = SMEMRegressor(tol=1e-12, **kw).fit(Xs.toarray(), y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.predict(Xs), ref.predict(Xs.toarray()), rtol=1e-10)


def test_paths_cross_validation_hinge_and_multinomial_equal_dense():
    Xs, y = _data(8000, 20, density=0.05, seed=2)
    X = Xs.toarray()
    a = SMEMClassifier(penalty="l1", tol=1e-10).path(Xs, y, n_alphas=8)
    b = SMEMClassifier(penalty="l1", tol=1e-10).path(X, y, n_alphas=8)
    np.testing.assert_allclose(a.coefs, b.coefs, atol=1e-10)
    cv_a = SMEMClassifierCV(penalty="l1", n_alphas=6, cv=3, tol=1e-10).fit(Xs, y)
    cv_b = SMEMClassifierCV(penalty="l1", n_alphas=6, cv=3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(cv_a.cv_mean_, cv_b.cv_mean_, rtol=1e-10)
    hinge_a = SMEMClassifier(loss="hinge", alpha=1e-3, tol=1e-10).fit(Xs, y)  # duality-gap certificate
    hinge_b = SMEMClassifier(loss="hinge", alpha=1e-3, tol=1e-10).fit(X, y)
    assert hinge_a.converged_ and hinge_b.converged_
    np.testing.assert_allclose(hinge_a.coef_, hinge_b.coef_, atol=1e-9)
    yk = np.arange(len(y)) % 3
    m_a = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(Xs, yk)
    m_b = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(X, yk)
    np.testing.assert_allclose(m_a.coef_, m_b.coef_, atol=1e-10)


@pytest.mark.parametrize("density", [0.02, 0.2])  # the sparse kernel, and tiles made dense
def test_the_kernel_on_csr_tiles_and_folds_equals_dense(density):
    Xs, y = _data(5000, 12, density=density, seed=3)
    s = np.random.default_rng(4).uniform(0, 2, 5000)
    folds = np.arange(5000) % 3
    q = 13
    b = 0.1 * np.random.default_rng(5).normal(size=(q, 2))
    requests = [Request(b, b[:, 1].copy(), hessian=True, reference_known=True),
                Request(b[:, :1], b[:, 0].copy(), fold=1), Request(b[:, :1], b[:, 0].copy(), fold=2,
                                                                  held_out=True)]
    for threads in (False, True):
        got = block_stats_many(Xs, y, s, Logistic(), requests, True, threads, folds)
        want = block_stats_many(Xs.toarray(), y, s, Logistic(), requests, True, threads, folds)
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g.gram, w.gram, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g.rhs, w.rhs, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g.grad, w.grad, rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(g.loss, w.loss, rtol=1e-12)


def test_sparse_data_checksum_and_refusals():
    Xs, y = _data(300, 5, density=0.2)
    dense = NumpyEngine(Xs.toarray(), y)
    assert NumpyEngine(Xs, y).nbytes < dense.nbytes
    assert NumpyEngine(Xs, y).data_checksum() == NumpyEngine(Xs.copy(), y).data_checksum()
    bad = Xs.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SMEMClassifier().fit(bad, y)


def _sparse_blocks(Xs, rows, cols=None, fmt="csr"):
    """A dask array of scipy sparse blocks (``fmt``) of ``Xs``."""
    import dask.array as da

    return da.from_array(Xs.asformat(fmt), chunks=(rows, cols or Xs.shape[1]), asarray=False)


@pytest.mark.parametrize("chunks", [(5000, None, "csr"), (3000, 15, "csr"), (7000, None, "csc")])
def test_dask_arrays_of_sparse_blocks_equal_the_in_memory_fit(chunks):
    rows, cols, fmt = chunks
    Xs, y = _data()
    Xd = _sparse_blocks(Xs, rows, cols, fmt)
    ref = SMEMClassifier(alpha=1e-4, tol=1e-12).fit(Xs, y)
    est = SMEMClassifier(alpha=1e-4, tol=1e-12).fit(Xd, y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=1e-10)
    assert est.intercept_ == pytest.approx(ref.intercept_, abs=1e-10)
    assert est.n_passes_ == ref.n_passes_
    np.testing.assert_allclose(est.predict_proba(Xd).compute(), ref.predict_proba(Xs), rtol=1e-10)
    # the bytes of sparse blocks are not known before they are read
    assert np.isnan(est.bytes_read_)


def test_sparse_blocks_on_a_cluster_with_weights_offset_cv_and_standard_errors(cluster_client):
    import dask
    import dask.array as da

    from smem_dask import SMEMRegressorCV

    Xs, y = _data(6000, 20, density=0.03, seed=2, task="poisson")
    rng = np.random.default_rng(3)
    s, o = rng.integers(1, 3, len(y)).astype(float), 0.1 * rng.normal(size=len(y))
    Xd = _sparse_blocks(Xs, 1500)
    with dask.config.set(scheduler=cluster_client):
        ref = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12).fit(Xs, y, sample_weight=s, offset=o)
        for persist in (False, True):
            est = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12, persist=persist).fit(
                Xd, da.from_array(y, chunks=1500), sample_weight=s, offset=o)
            np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(est.std_errors(Xd, y, s, offset=o), ref.std_errors(Xs, y, s, offset=o),
                                   rtol=1e-10)
        cv = SMEMRegressorCV(loss="poisson", n_alphas=5, cv=3).fit(Xd, y)
    cv_ref = SMEMRegressorCV(loss="poisson", n_alphas=5, cv=3).fit(Xs, y)
    np.testing.assert_allclose(cv.cv_mean_, cv_ref.cv_mean_, rtol=1e-10)
    np.testing.assert_allclose(cv.coef_, cv_ref.coef_, rtol=1e-10, atol=1e-12)


def test_sparse_blocks_with_nan_are_refused_at_fit_and_predict():
    Xs, y = _data(2000, 10, density=0.05)
    bad = Xs.copy()
    bad.data[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SMEMClassifier().fit(_sparse_blocks(bad, 500), y)
    est = SMEMClassifier().fit(_sparse_blocks(Xs, 500), y)
    with pytest.raises(ValueError, match="NaN or infinite values in a block"):
        est.predict(_sparse_blocks(bad, 500)).compute()
