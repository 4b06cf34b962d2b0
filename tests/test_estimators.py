"""Estimators against scikit-learn at tight tolerance."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from smem_dask import SMEMClassifier, SMEMRegressor


def _sklearn_logistic(X, y, alpha, sample_weight=None, fit_intercept=True):
    W = len(y) if sample_weight is None else sample_weight.sum()
    return LogisticRegression(C=1 / (alpha * W), tol=1e-12, solver="newton-cholesky",
                              max_iter=1000, fit_intercept=fit_intercept
                              ).fit(X, y, sample_weight=sample_weight)


def _assert_coef_close(est, ref, rtol=1e-6):
    scale = np.abs(ref.coef_).max()
    np.testing.assert_allclose(est.coef_, ref.coef_.ravel(), rtol=rtol, atol=rtol * scale)
    assert est.intercept_ == pytest.approx(float(np.ravel(ref.intercept_)[0]), rel=rtol,
                                           abs=rtol * scale)


@pytest.fixture(scope="module")
def breast_cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.mark.parametrize("alpha", [1e-2, 1e-4])
@pytest.mark.parametrize("acceleration", ["nesterov-restart", "nesterov", "none"])
def test_breast_cancer_matches_sklearn(breast_cancer, alpha, acceleration):
    X, y = breast_cancer
    est = SMEMClassifier(alpha=alpha, acceleration=acceleration, tol=1e-11, max_iter=10000).fit(X, y)
    ref = _sklearn_logistic(X, y, alpha)
    assert est.converged_
    _assert_coef_close(est, ref)
    # the same model: sklearn's C·Σℓ + ½‖β‖² is n·C·F, so our F at sklearn's solution is no lower
    assert est.objective_ <= _objective(X, y, alpha, ref.coef_.ravel(), ref.intercept_[0]) + 1e-15
    np.testing.assert_allclose(est.predict_proba(X), ref.predict_proba(X), atol=1e-7)


def _objective(X, y, alpha, coef, intercept):
    eta = X @ coef + intercept
    return np.mean(np.logaddexp(0, eta) - y * eta) + 0.5 * alpha * coef @ coef


def test_ill_conditioned_synthetic_matches_sklearn(logistic_problem):
    X, y = logistic_problem
    assert np.linalg.cond(X.T @ X) >= 1e6
    for alpha in (1e-3, 1e-5):
        est = SMEMClassifier(alpha=alpha, tol=1e-11).fit(X, y)
        _assert_coef_close(est, _sklearn_logistic(X, y, alpha))


def test_sample_weights_and_no_intercept_match_sklearn(logistic_problem, rng):
    X, y = logistic_problem
    s = rng.uniform(0.0, 3.0, len(y))
    est = SMEMClassifier(alpha=1e-3, tol=1e-11).fit(X, y, sample_weight=s)
    _assert_coef_close(est, _sklearn_logistic(X, y, 1e-3, sample_weight=s))
    est = SMEMClassifier(alpha=1e-3, tol=1e-11, fit_intercept=False).fit(X, y)
    ref = _sklearn_logistic(X, y, 1e-3, fit_intercept=False)
    _assert_coef_close(est, ref)
    assert est.intercept_ == 0.0


def test_integer_weights_equal_repeated_rows(rng):
    X = rng.normal(size=(200, 4))
    y = (rng.random(200) < 0.4).astype(int)
    s = rng.integers(0, 4, 200)
    weighted = SMEMClassifier(alpha=1e-3, tol=1e-11).fit(X, y, sample_weight=s)
    repeated = SMEMClassifier(alpha=1e-3, tol=1e-11).fit(np.repeat(X, s, axis=0), np.repeat(y, s))
    np.testing.assert_allclose(weighted.coef_, repeated.coef_, rtol=1e-8, atol=1e-10)


def test_any_two_labels_are_mapped_and_predicted(breast_cancer):
    X, y = breast_cancer
    labels = np.where(y == 1, "benign", "malignant")
    est = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X, labels)
    ref = LogisticRegression(C=1 / (1e-3 * len(y)), tol=1e-12, solver="newton-cholesky").fit(X, labels)
    assert list(est.classes_) == list(ref.classes_) == ["benign", "malignant"]
    np.testing.assert_array_equal(est.predict(X), ref.predict(X))
    np.testing.assert_allclose(est.decision_function(X), ref.decision_function(X), rtol=1e-6,
                               atol=1e-6)
    assert est.score(X, labels) == pytest.approx(ref.score(X, labels))


def test_regressor_matches_ridge(regression_problem, rng):
    X, y = regression_problem
    s = rng.uniform(0.5, 2.0, len(y))
    alpha = 1e-2
    est = SMEMRegressor(alpha=alpha, tol=1e-12).fit(X, y, sample_weight=s)
    ref = Ridge(alpha=alpha * s.sum(), tol=1e-14, solver="cholesky").fit(X, y, sample_weight=s)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=1e-10, atol=1e-12)
    assert est.intercept_ == pytest.approx(ref.intercept_, rel=1e-10, abs=1e-12)
    assert est.score(X, y) == pytest.approx(r2_score(y, ref.predict(X)), rel=1e-10)
    assert est.score(X, y, sample_weight=s) == pytest.approx(
        r2_score(y, ref.predict(X), sample_weight=s), rel=1e-10)


def test_history_attributes(logistic_problem):
    X, y = logistic_problem
    est = SMEMClassifier(alpha=1e-3).fit(X, y)
    assert len(est.objective_history_) == est.n_iter_ + 1
    assert est.objective_history_[-1] == est.objective_
    assert est.n_passes_ == est.n_iter_ + 1 + 2 * est.n_restarts_
    assert est.bytes_read_ == est.n_passes_ * X.nbytes
    assert [r.iteration for r in est.history_] == list(range(est.n_iter_ + 1))
    assert est.coef_.shape == (X.shape[1],) and isinstance(est.intercept_, float)


def test_sklearn_parameter_protocol():
    est = SMEMClassifier(alpha=0.5, tol=1e-6)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params()
    assert cloned.set_params(max_iter=7).max_iter == 7
    assert "alpha=0.5" in repr(est)
    with pytest.raises(ValueError, match="Invalid parameter 'C'"):
        est.set_params(C=1.0)


@pytest.mark.parametrize("make, kwargs, match", [
    (SMEMClassifier, {"loss": "squared"}, "loss 'squared' is not for SMEMClassifier; use SMEMRegressor"),
    (SMEMRegressor, {"loss": "logistic"}, "loss 'logistic' is not for SMEMRegressor"),
    (SMEMClassifier, {"penalty": "l0"}, "unknown penalty 'l0'; supported penalties: bridge, elasticnet"),
    (SMEMClassifier, {"acceleration": "momentum"}, "unknown acceleration 'momentum'"),
    (SMEMClassifier, {"alpha": -1.0}, "alpha must be a finite number"),
    (SMEMClassifier, {"fit_intercept": "yes"}, "fit_intercept must be True or False"),
    (SMEMClassifier, {"penalty": "bridge", "penalty_solver": "exact"},
     r"penalty 'bridge' has no exact solver \(penalties with one: elasticnet, group, l1\)"),
    (SMEMClassifier, {"penalty_solver": "admm"}, "unknown penalty_solver 'admm'"),
    (SMEMClassifier, {"loss": "hinge", "loss_params": {"tau": 0.3}}, "does not take the parameters"),
    (SMEMRegressor, {"loss": "quantile", "loss_params": {"tau": 1.0}}, r"tau must be in \(0, 1\)"),
])
def test_bad_parameters_are_refused_in_fit(make, kwargs, match, logistic_problem):
    X, y = logistic_problem
    est = make(**kwargs)  # stored as given
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)


def test_predict_before_fit_is_refused():
    with pytest.raises(ValueError, match="not fitted yet"):
        SMEMClassifier().predict(np.zeros((2, 2)))


def test_predict_checks_the_number_of_features(logistic_problem):
    X, y = logistic_problem
    est = SMEMClassifier().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but SMEMClassifier is expecting 8 features"):
        est.predict(X[:, :3])


def test_hinge_has_no_probabilities_and_counts_must_be_nonnegative(logistic_problem):
    X, y = logistic_problem
    svm = SMEMClassifier(loss="hinge", alpha=1e-2).fit(X, y)
    with pytest.raises(AttributeError, match="has no attribute 'predict_proba'"):
        svm.predict_proba(X)
    assert set(np.unique(svm.predict(X))) == {0.0, 1.0}
    with pytest.raises(ValueError, match=r"loss 'negbin' needs counts y ≥ 0"):
        SMEMRegressor(loss="negbin").fit(X, y - 1)


def test_losses_and_penalties_by_name_or_object_agree(regression_problem):
    from smem_dask.losses import Huber
    from smem_dask.penalties import ElasticNet

    X, y = regression_problem
    by_name = SMEMRegressor(loss="huber", loss_params={"delta": 0.7}, penalty="elasticnet",
                            penalty_params={"l1_ratio": 0.2}, alpha=0.01, tol=1e-10).fit(X, y)
    by_object = SMEMRegressor(loss=Huber(delta=0.7), penalty=ElasticNet(l1_ratio=0.2), alpha=0.01,
                              tol=1e-10).fit(X, y)
    np.testing.assert_array_equal(by_name.coef_, by_object.coef_)
