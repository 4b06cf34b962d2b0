"""dask DataFrames (from parquet) and xarray DataArrays are used lazily: fitted where their partitions live,
never gathered into the client's memory, with the in-memory answer."""

import tracemalloc

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from smem_dask import SMEMClassifier, SMEMRegressor, make_problem

pytestmark = pytest.mark.distributed

N, P = 400_000, 20  # X: 64 MB of float64


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    X, y = make_problem(N, P, seed=5, cond=1e3)
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(P)])
    frame["label"] = y
    frame["weight"] = 1.0 + (np.arange(N) % 3)
    path = tmp_path_factory.mktemp("pq") / "data.parquet"
    dd.from_pandas(frame, npartitions=8).to_parquet(path)
    return path


def _columns():
    return [f"f{j}" for j in range(P)]


def test_a_parquet_file_fits_on_a_cluster_without_reaching_the_client_s_memory(parquet):
    from distributed import Client, LocalCluster

    memory = pd.read_parquet(parquet)
    oracle = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(memory[_columns()], memory["label"],
                                                       sample_weight=memory["weight"])
    frame = dd.read_parquet(parquet)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        est = SMEMClassifier(alpha=1e-3, tol=1e-10, persist=False)
        tracemalloc.start()
        try:
            est.fit(frame[_columns()], frame["label"], sample_weight=frame["weight"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        accuracy = est.score(frame[_columns()], frame["label"])
    x_bytes = N * P * 8
    # the whole fit allocated less on the client than a quarter of X (8 MB measured, most of it the
    # in-process scheduler's state): X was never gathered here; before, the frame became a numpy array
    assert peak < x_bytes / 4, (peak, x_bytes)
    np.testing.assert_allclose(est.coef_, oracle.coef_, rtol=0, atol=1e-10)
    assert est.intercept_ == pytest.approx(oracle.intercept_, abs=1e-10)
    assert list(est.feature_names_in_) == _columns()
    assert accuracy == pytest.approx(oracle.score(memory[_columns()], memory["label"]), abs=1e-12)


def test_a_dask_frame_with_feature_names_is_checked_at_predict(parquet):
    frame = dd.read_parquet(parquet)
    est = SMEMClassifier(alpha=1e-2, tol=1e-6).fit(frame[_columns()[:3]], frame["label"])
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        est.predict(frame[_columns()[:3][::-1]])
    memory = pd.read_parquet(parquet, columns=_columns()[:3])
    np.testing.assert_array_equal(np.asarray(est.predict(frame[_columns()[:3]])),
                                  est.predict(memory))


def test_columns_that_are_not_numbers_are_one_hot_encoded():
    """(Refused before issue 19; tests/test_categoricals.py has the encoding against get_dummies.)"""
    frame = pd.DataFrame({"a": np.arange(40.0), "city": ["x", "y"] * 20,
                          "kind": pd.Categorical(["u", "v", "w", "u"] * 10)})
    lazy = dd.from_pandas(frame, npartitions=2)
    est = SMEMRegressor().fit(lazy, lazy["a"])
    assert est.coef_names_ == ["a", "city[x]", "city[y]", "kind[u]", "kind[v]", "kind[w]"]


def test_nullable_columns_with_missing_values_are_refused_as_missing():
    frame = pd.DataFrame({"a": pd.array([1.0, None, 3.0, 4.0] * 10, dtype="Float64"),
                          "b": np.arange(40.0)})
    lazy = dd.from_pandas(frame, npartitions=2)
    with pytest.raises(ValueError, match="X contains 10 NaN or infinite values"):
        SMEMRegressor().fit(lazy, lazy["b"])


def test_an_xarray_data_array_backed_by_dask_is_fitted_lazily():
    X, y = make_problem(3000, 4, seed=2, task="regression")
    lazy = xr.DataArray(da.from_array(X, chunks=(700, 4)), dims=("row", "feature"))
    est = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(lazy, xr.DataArray(y, dims="row"))
    oracle = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(X, y)
    np.testing.assert_allclose(est.coef_, oracle.coef_, rtol=0, atol=1e-10)
    assert isinstance(est.predict(lazy), da.Array)
    in_memory = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(xr.DataArray(X), y)
    np.testing.assert_allclose(in_memory.coef_, oracle.coef_, rtol=0, atol=1e-12)


def test_an_xarray_dataset_is_refused_with_what_to_pass():
    X, y = make_problem(200, 2, seed=2)
    ds = xr.Dataset({"X": (("row", "feature"), X)})
    with pytest.raises(ValueError, match=r"X is an xarray Dataset; pass one of its DataArrays"):
        SMEMClassifier().fit(ds, y)


def test_boolean_columns_next_to_numbers_are_fitted_as_numbers():
    """A dask DataFrame of float, int and bool columns becomes an object array in dask: it is taken as
    float64, as pandas input is."""
    frame = pd.DataFrame({"y": np.sin(np.arange(60.0)), "flag": [True, False, False] * 20,
                          "count": np.arange(60) % 7})
    lazy = dd.from_pandas(frame, npartitions=3)
    est = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(lazy[["flag", "count"]], lazy["y"])
    oracle = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(frame[["flag", "count"]], frame["y"])
    np.testing.assert_allclose(est.coef_, oracle.coef_, rtol=0, atol=1e-12)
