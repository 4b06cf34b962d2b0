"""The cross-validated estimators' ``fit(callback=…)``: one call per α as every path finishes it; and
``fit_path(cv=…)``, which is ``fit_cv``."""

import numpy as np

from smem_dask import SMEMClassifierCV, fit_cv


def test_fit_callback_reports_every_alpha_with_the_fitted_scores(logistic_problem, capsys):
    X, y = logistic_problem
    rows = {}
    est = SMEMClassifierCV(penalty="l1", cv=3, n_alphas=6, verbose=1).fit(
        X, y, callback=lambda i, alpha, row: rows.setdefault(i, (alpha, row)))
    assert sorted(rows) == list(range(6))
    # verbose still prints its own line for each α, and the callback runs too
    assert len(capsys.readouterr().out.strip().splitlines()) == 6
    for i, (alpha, row) in rows.items():
        assert alpha == row["alpha"] == est.alphas_[i]
        assert row["loss_mean"] == est.cv_mean_[i] and row["loss_se"] == est.cv_std_[i]
        assert row["nonzero"] == np.count_nonzero(est.path_.coefs[i])
        assert row["objective"] == est.path_.objectives[i]


def test_fit_cv_passes_the_callback(regression_problem):
    X, y = regression_problem
    seen = []
    result = fit_cv(X, y, "squared", "l1", cv=3, n_alphas=4, scoring="squared_error",
                    callback=lambda i, alpha, row: seen.append((i, row["squared_error_mean"])))
    assert sorted(i for i, _ in seen) == [0, 1, 2, 3]
    for i, mean in seen:
        assert mean == result.cv_mean[i]


def test_fit_path_with_cv_is_fit_cv():
    """fit_path(cv=…) returns the same CVResult as fit_cv (the same folds, grid and selection)."""
    from smem_dask import fit_path
    from smem_dask.data import make_problem

    X, y = make_problem(600, 4, cond=10.0, seed=3)
    a = fit_path(X, y, "logistic", "l1", n_alphas=6, cv=3)
    b = fit_cv(X, y, "logistic", "l1", n_alphas=6, cv=3)
    assert a.index_min == b.index_min and a.index_1se == b.index_1se
    np.testing.assert_array_equal(a.scores["loss"], b.scores["loss"])
    np.testing.assert_array_equal(a.path.coefs, b.path.coefs)
