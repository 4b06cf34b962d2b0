"""DataFrames with categorical and text columns, one-hot encoded as pandas.get_dummies does: the same fit
as on the dummies, from parquet on a cluster without gathering the encoded X, and the same predictions
whatever the order of the columns at predict."""

import tracemalloc

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from smem_dask import SMEMClassifier, SMEMRegressor

N = 200_000
REGIONS = [f"r{j:02d}" for j in range(60)]


def _frame(n=N, seed=0):
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, n)
    kind = pd.Categorical(rng.choice(["b", "a", "d", "c"], n), categories=["d", "c", "b", "a"])
    frame = pd.DataFrame({
        "x1": rng.normal(size=n),
        "region": region,
        "x2": rng.normal(size=n) * 2.0,
        "kind": kind,
        "flag": rng.random(n) < 0.3,
    })
    effect = {r: 0.02 * j - 0.6 for j, r in enumerate(REGIONS)}
    eta = (0.5 * frame["x1"] - 0.25 * frame["x2"] + frame["region"].map(effect)
           + frame["kind"].cat.codes * 0.3 + 0.4 * frame["flag"])
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return frame


def _dummies(frame):
    """pandas' own encoding, with our names ``column[level]``."""
    d = pd.get_dummies(frame, columns=["region", "kind"], dtype=float)
    return d.rename(columns=lambda c: c.replace("region_", "region[").replace("kind_", "kind[") + "]"
                    if c.startswith(("region_", "kind_")) else c)


FEATURES = ["x1", "region", "x2", "kind", "flag"]


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    path = tmp_path_factory.mktemp("cat") / "data.parquet"
    dd.from_pandas(_frame(), npartitions=6).to_parquet(path)
    return path


def test_a_parquet_frame_with_categoricals_equals_get_dummies_on_a_cluster(parquet):
    from distributed import Client, LocalCluster

    memory = pd.read_parquet(parquet)
    dummies = _dummies(memory.drop(columns="label"))
    oracle = SMEMClassifier(alpha=1e-4, tol=1e-12).fit(dummies, memory["label"])
    frame = dd.read_parquet(parquet)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        est = SMEMClassifier(alpha=1e-4, tol=1e-12, persist=False)
        tracemalloc.start()
        try:
            est.fit(frame[FEATURES], frame["label"])
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # a new frame, its columns in another order: the same predictions
        new = _frame(5000, seed=9)
        shuffled = dd.from_pandas(new[FEATURES[::-1]], npartitions=3)
        lazy_proba = est.predict_proba(shuffled).compute()
    encoded_bytes = N * len(est.coef_names_) * 8
    assert peak < encoded_bytes / 4, (peak, encoded_bytes)  # X was never gathered on the client
    # (dask reads the categorical column from parquet with its categories unknown: sorted levels)
    assert est.coef_names_ == ["x1"] + [f"region[{r}]" for r in REGIONS] + ["x2"] + [
        f"kind[{k}]" for k in ["a", "b", "c", "d"]] + ["flag"]
    ours = pd.Series(est.coef_, index=est.coef_names_)
    theirs = pd.Series(oracle.coef_, index=list(dummies.columns))
    np.testing.assert_allclose(ours[theirs.index], theirs, rtol=0, atol=1e-10)
    assert est.intercept_ == pytest.approx(oracle.intercept_, abs=1e-10)
    expected = oracle.predict_proba(_dummies(new[FEATURES]))
    np.testing.assert_allclose(lazy_proba, expected, rtol=1e-9)
    np.testing.assert_allclose(est.predict_proba(new[FEATURES[::-1]]), expected, rtol=1e-9)


def test_a_pandas_frame_with_categoricals_equals_get_dummies():
    frame = _frame(20_000, seed=3)
    y = frame["x1"] * 2 + frame["region"].str[1:].astype(float) * 0.1 + frame["kind"].cat.codes
    est = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(frame[FEATURES], y)
    dummies = _dummies(frame[FEATURES])
    oracle = SMEMRegressor(alpha=1e-3, tol=1e-12).fit(dummies, y)
    ours = pd.Series(est.coef_, index=est.coef_names_)
    np.testing.assert_allclose(ours[list(dummies.columns)], oracle.coef_, atol=1e-10)
    np.testing.assert_allclose(est.predict(frame[FEATURES]), oracle.predict(dummies), rtol=1e-10)
    assert list(est.feature_names_in_) == FEATURES and est.n_features_in_ == 5


def test_unseen_levels_missing_values_and_arrays_are_refused():
    frame = _frame(2000, seed=4)
    est = SMEMClassifier(alpha=1e-2).fit(frame[FEATURES], frame["label"])
    new = frame[FEATURES].copy()
    new.loc[5, "region"] = "elsewhere"
    with pytest.raises(ValueError, match=r"column 'region' has levels not seen at fit: \['elsewhere'\]"):
        est.predict(new)
    new = frame[FEATURES].copy()
    new.loc[7, "region"] = None
    with pytest.raises(ValueError, match="column 'region' has 1 missing values"):
        est.predict(new)
    with pytest.raises(ValueError, match="fitted on a DataFrame with encoded columns"):
        est.predict(np.zeros((3, len(est.coef_names_))))
    with pytest.raises(ValueError, match="seen at fit time, yet now missing:\n- kind"):
        est.predict(frame[FEATURES].drop(columns="kind").assign(other=1.0))
    lazy = dd.from_pandas(new, npartitions=2)
    with pytest.raises(ValueError, match="missing values"):
        SMEMClassifier().fit(lazy, dd.from_pandas(frame["label"], npartitions=2))


def test_a_refit_on_numbers_forgets_the_encoding():
    frame = _frame(1000, seed=5)
    est = SMEMClassifier(alpha=1e-2).fit(frame[FEATURES], frame["label"])
    est.fit(frame[["x1", "x2"]], frame["label"])
    assert not hasattr(est, "encoding_") and est.coef_names_ == ["x1", "x2"]
    est.predict(frame[["x1", "x2"]].to_numpy())


def test_drop_first_is_reference_coding_with_statsmodels_standard_errors():
    import statsmodels.api as sm

    frame = _frame(20_000, seed=6)
    est = SMEMClassifier(alpha=0.0, tol=1e-12, categorical_drop="first").fit(frame[FEATURES], frame["label"])
    dummies = _dummies_first(frame[FEATURES])
    ref = sm.Logit(frame["label"], sm.add_constant(dummies, prepend=False)).fit(disp=False, tol=1e-14)
    assert "region[r00]" not in est.coef_names_ and "kind[d]" not in est.coef_names_  # the first levels
    ours = pd.Series(np.r_[est.coef_, est.intercept_], index=est.coef_names_ + ["intercept"])
    np.testing.assert_allclose(ours[list(dummies.columns) + ["intercept"]], ref.params, rtol=1e-7, atol=1e-9)
    se = pd.Series(est.std_errors(frame[FEATURES], frame["label"]), index=ours.index)
    np.testing.assert_allclose(se[list(dummies.columns) + ["intercept"]], ref.bse, rtol=1e-7)
    with pytest.raises(ValueError, match="categorical_drop must be None or 'first'"):
        SMEMClassifier(categorical_drop="last").fit(frame[FEATURES], frame["label"])


def _dummies_first(frame):
    d = pd.get_dummies(frame, columns=["region", "kind"], drop_first=True, dtype=float)
    d = d.rename(columns=lambda c: c.replace("region_", "region[").replace("kind_", "kind[") + "]"
                 if c.startswith(("region_", "kind_")) else c)
    d["flag"] = d["flag"].astype(float)
    return d.rename(columns={"const": "intercept"})


def _many_levels(n=8000, levels=300, seed=4):
    rng = np.random.default_rng(seed)
    names = np.array([f"s{j:03d}" for j in range(levels)])
    codes = rng.integers(0, levels, n)
    frame = pd.DataFrame({"x1": rng.normal(size=n), "store": names[codes], "x2": rng.normal(size=n)})
    eta = 0.5 * frame["x1"] - 0.3 * frame["x2"] + rng.normal(0, 0.4, levels)[codes]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    dummies = pd.get_dummies(frame, columns=["store"], dtype=float)
    return frame, y, dummies.rename(columns=lambda c: c.replace("store_", "store[") + "]"
                                    if c.startswith("store_") else c)


def test_a_column_of_many_levels_is_encoded_sparse_with_the_dense_answer(cluster_client, tmp_path):
    """3 nonzeros in 302 columns: X is CSR (blocks of CSR for a dask frame, from memory or parquet),
    with the fit, the predictions and the standard errors of get_dummies' dense array."""
    import dask
    import scipy.sparse as sp

    frame, y, dummies = _many_levels()
    est = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(frame, y)
    assert est.encoding_.sparse and sp.issparse(est.encoding_.transform(frame))
    assert sorted(est.coef_names_) == sorted(dummies.columns)
    dummies = dummies[est.coef_names_]  # (get_dummies puts the indicators last)
    ref = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(dummies, y)
    np.testing.assert_allclose(est.coef_, ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(est.predict_proba(frame[["x2", "store", "x1"]]), ref.predict_proba(dummies),
                               rtol=1e-10)
    lazy = dd.from_pandas(frame, npartitions=4)
    path = tmp_path / "many.parquet"
    lazy.to_parquet(path)
    with dask.config.set(scheduler=cluster_client):
        fitted = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(lazy, y)
        proba = fitted.predict_proba(lazy[["x2", "x1", "store"]]).compute()
        read = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(dd.read_parquet(path), y)
    np.testing.assert_allclose(fitted.coef_, ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(read.coef_, ref.coef_, rtol=0, atol=1e-10)
    np.testing.assert_allclose(proba, ref.predict_proba(dummies), rtol=1e-10)
    # the CSR blocks' bytes are bounded by the encoding (3 values and indices a row), not unknown
    bound = fitted.encoding_.sparse_nbytes(len(frame))
    assert bound == len(frame) * (12 * 3 + 4) + 4 < 0.2 * dummies.to_numpy().nbytes
    assert fitted.bytes_read_ == fitted.n_passes_ * bound
    # reference coding, unpenalized: the standard errors of the dense dummies' fit
    first = SMEMClassifier(alpha=0.0, tol=1e-12, categorical_drop="first").fit(frame, y)
    dense_first = dummies.drop(columns="store[s000]")
    ref_first = SMEMClassifier(alpha=0.0, tol=1e-12).fit(dense_first, y)
    np.testing.assert_allclose(first.coef_, ref_first.coef_, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(first.std_errors(frame, y), ref_first.std_errors(dense_first, y), rtol=1e-8)
