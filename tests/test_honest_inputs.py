"""Inputs that used to give a silently wrong answer: each now gives the right answer or a one-line
ValueError naming the problem.

* Longley (NIST StRD): the certified coefficients in a few iterations, honestly converged, where
  the gradient test used to sit at its rounding floor for 1000 passes;
* X scaled so that its Gram underflows or overflows float64;
* masked arrays (their masks used to be dropped);
* NaN or None group labels;
* all-NaN targets.
"""

import math

import dask
import dask.array as da
import numpy as np
import pytest

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.penalties import get_penalty


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


# -- masked arrays -----------------------------------------------------------------------------------

def _masked_cases(rng):
    X = rng.normal(size=(50, 3))
    y = X @ [1.0, 2.0, -1.0] + rng.normal(size=50)
    X_masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    X_masked[[3, 7], 1] = np.ma.masked
    y_masked = np.ma.masked_array(y, mask=np.zeros(50, dtype=bool))
    y_masked[[0, 1, 2]] = np.ma.masked
    s_masked = np.ma.masked_array(np.ones(50), mask=np.arange(50) == 9)
    return X, y, [("X", X_masked, y, None, 2), ("y", X, y_masked, None, 3),
                  ("sample_weight", X, y, s_masked, 1)]


@pytest.mark.parametrize("which", ["X", "y", "sample_weight"])
def test_masked_values_are_refused(rng, which):
    _, _, cases = _masked_cases(rng)
    name, X, y, s, n = next(c for c in cases if c[0] == which)
    message = (rf"^{name} is a masked array with {n} masked values; drop or impute them, or pass "
               r"sample_weight=0 for those rows$")
    with pytest.raises(ValueError, match=message):
        SMEMRegressor(alpha=0.0).fit(X, y, sample_weight=s)


def test_masked_array_without_masked_values_is_its_data(rng):
    X, y, _ = _masked_cases(rng)
    plain = SMEMRegressor(alpha=0.0, tol=1e-12).fit(X, y)
    masked = SMEMRegressor(alpha=0.0, tol=1e-12).fit(np.ma.masked_array(X), np.ma.masked_array(y))
    np.testing.assert_array_equal(masked.coef_, plain.coef_)
    expected = np.linalg.lstsq(np.c_[X, np.ones(len(y))], y, rcond=None)[0]
    np.testing.assert_allclose(np.r_[masked.coef_, masked.intercept_], expected, rtol=1e-10)


def test_masked_X_is_refused_by_predict(rng):
    X, y, cases = _masked_cases(rng)
    model = SMEMRegressor(alpha=0.0).fit(X, y)
    with pytest.raises(ValueError, match="^X is a masked array with 2 masked values"):
        model.predict(cases[0][1])


# -- group labels ------------------------------------------------------------------------------------

@pytest.mark.parametrize("groups, message", [
    ([0, 0, 1, math.nan], r"^groups\[3\] is NaN; every coefficient needs a group label$"),
    ([0, None, 1, 1], r"^groups\[1\] is None; every coefficient needs a group label$"),
    ([np.nan, 0, None, 1], r"^groups\[0\] is NaN, groups\[2\] is None; every coefficient needs a "
                           r"group label$"),
    (np.array([0.0, 1.0, np.nan, 1.0]), r"^groups\[2\] is NaN; every coefficient needs"),
])
def test_missing_group_labels_are_refused(rng, groups, message):
    with pytest.raises(ValueError, match=message):
        get_penalty("group", groups=groups)
    X = rng.normal(size=(40, 4))
    y = X.sum(axis=1) + rng.normal(size=40)
    for solver in ("exact", "em"):
        with pytest.raises(ValueError, match=message):
            SMEMRegressor(penalty="group", penalty_params={"groups": groups}, alpha=0.01,
                          penalty_solver=solver).fit(X, y)


# -- all-NaN targets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("estimator, message", [(SMEMRegressor, "^y contains 30 NaN or infinite values$"),
                                                (SMEMClassifier, "^y contains NaN$")])
def test_all_nan_targets_are_refused(rng, estimator, message, lazy):
    X = rng.normal(size=(30, 2))
    y = np.full(30, np.nan)
    if lazy:
        X, y = da.from_array(X, chunks=10), da.from_array(y, chunks=10)
    with pytest.raises(ValueError, match=message):
        estimator(alpha=0.0).fit(X, y)
