"""smem-dask fit on parquet (categorical columns, weights, offset) and on named zarr arrays, --summary,
and smem-dask predict with the written model — each against the in-memory estimator."""

import json
import re
import subprocess
import sys

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import zarr

from smem_dask import SMEMClassifier, SMEMRegressor


def run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _counts(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.uniform(-1, 1, n),
        "zone": rng.choice(["a", "b", "c"], n),
        "grade": rng.integers(1, 4, n),  # numbers, encoded with --categorical
    })
    exposure = rng.uniform(0.5, 5.0, n)
    eta = 0.4 * frame["age"] + frame["zone"].map({"a": 0.0, "b": 0.3, "c": -0.2}) + 0.1 * frame["grade"]
    frame["claims"] = rng.poisson(exposure * np.exp(eta - 1.0)).astype(float)
    frame["log_t"] = np.log(exposure)
    frame["w"] = rng.integers(1, 3, n).astype(float)
    return frame


def test_parquet_fit_with_categoricals_offset_and_summary_then_predict(tmp_path):
    frame = _counts()
    data = tmp_path / "claims.parquet"
    dd.from_pandas(frame, npartitions=3).to_parquet(data)
    out, pred = tmp_path / "model.json", tmp_path / "pred.npy"
    proc = run("fit", data, "--loss", "poisson", "--alpha", 0, "--tol", 1e-12, "--y", "claims",
               "--x", "age,zone,grade", "--offset", "log_t", "--categorical", "grade", "--drop-first",
               "--summary", "--out", out,
               "--quiet")
    assert proc.returncode == 0, proc.stderr
    features = frame[["age", "zone", "grade"]].assign(grade=frame["grade"].astype("category"))
    ref = SMEMRegressor(loss="poisson", alpha=0.0, tol=1e-12, categorical_drop="first").fit(
        features, frame["claims"], offset=frame["log_t"])
    model = json.loads(out.read_text())
    assert model["coef_names"] == ["age", "zone[b]", "zone[c]", "grade[2]", "grade[3]"] == ref.coef_names_
    # reference coding is statsmodels' (R's) treatment coding: the same model and standard errors
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    glm = smf.glm("claims ~ age + C(zone) + C(grade)", data=frame, offset=frame["log_t"],
                  family=sm.families.Poisson()).fit(tol=1e-14)
    theirs = ["age", "C(zone)[T.b]", "C(zone)[T.c]", "C(grade)[T.2]", "C(grade)[T.3]", "Intercept"]
    np.testing.assert_allclose(ref.std_errors(features, frame["claims"], offset=frame["log_t"]),
                               glm.bse[theirs], rtol=1e-7)
    np.testing.assert_allclose(np.r_[ref.coef_, ref.intercept_], glm.params[theirs], rtol=1e-8)
    np.testing.assert_allclose(model["coef"], ref.coef_, atol=1e-10)
    # the printed table: each coefficient's standard error as the estimator computes it
    table = ref.coef_table(features, frame["claims"], offset=frame["log_t"])
    for name in ("age", "zone[b]", "intercept"):
        line = re.search(rf"^{re.escape(name)} +(\S+) +(\S+)", proc.stdout, flags=re.M)
        assert line, proc.stdout
        assert float(line.group(2)) == pytest.approx(table.loc[name, "std_err"], rel=1e-5)
    # predict: new rows, columns in another order, the offset named again
    new = _counts(500, seed=1)
    newdata = tmp_path / "new.parquet"
    dd.from_pandas(new[["log_t", "grade", "zone", "age"]], npartitions=2).to_parquet(newdata)
    proc = run("predict", out, newdata, "--offset", "log_t", "--categorical", "grade", "--out", pred)
    assert proc.returncode == 0, proc.stderr
    expected = ref.predict(new[["age", "zone", "grade"]].assign(grade=new["grade"].astype("category")),
                           offset=new["log_t"])
    np.testing.assert_allclose(np.load(pred), expected, rtol=1e-10)
    # the model's offset must be named again
    proc = run("predict", out, newdata, "--out", tmp_path / "p2.npy")
    assert proc.returncode == 2 and "fitted with an offset" in proc.stderr


def test_zarr_arrays_named_with_weights_and_predict_probabilities(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 4))
    y = (rng.random(2000) < 1 / (1 + np.exp(-X @ [1.0, -1.0, 0.5, 0.0]))).astype(float)
    w = rng.uniform(0.5, 2.0, 2000)
    store = tmp_path / "d.zarr"
    root = zarr.open_group(str(store), mode="w")
    for name, a in (("features", X), ("label", y), ("weight", w)):
        root.create_array(name, shape=a.shape, chunks=(500,) + a.shape[1:], dtype=a.dtype)[...] = a
    out, pred = tmp_path / "m.json", tmp_path / "p.csv"
    proc = run("fit", store, "--x", "features", "--y", "label", "--weights", "weight", "--alpha", 1e-3,
               "--tol", 1e-12, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    ref = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(json.loads(out.read_text())["coef"], ref.coef_, atol=1e-10)
    proc = run("predict", out, store, "--x", "features", "--proba", "--out", pred)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_allclose(np.loadtxt(pred, delimiter=","), ref.predict_proba(X), rtol=1e-10)
    # parquet, written by dask block by block: a column per class, or the labels
    for extra, name in ((["--proba"], "p.parquet"), ([], "labels.parquet")):
        proc = run("predict", out, store, "--x", "features", *extra, "--out", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        written = pd.read_parquet(tmp_path / name)
        if extra:
            assert list(written.columns) == ["proba[0.0]", "proba[1.0]"]
            np.testing.assert_allclose(written.to_numpy(), ref.predict_proba(X), rtol=1e-10)
        else:
            assert list(written.columns) == ["prediction"]
            np.testing.assert_array_equal(written["prediction"], ref.predict(X))
    proc = run("predict", out, store, "--x", "features", "--out", tmp_path / "labels.parquet")
    assert proc.returncode == 2 and "is a directory" in proc.stderr  # (nothing overwritten)


def test_tabular_errors_are_one_line(tmp_path):
    frame = _counts(200)
    data = tmp_path / "c.parquet"
    dd.from_pandas(frame, npartitions=1).to_parquet(data)
    proc = run("fit", data, "--y", "nope")
    assert proc.returncode == 2 and "has no columns ['nope']" in proc.stderr
    proc = run("fit", data, "--y", "claims", "--loss", "poisson", "--summary")
    assert proc.returncode == 2 and "use --alpha 0" in proc.stderr
    proc = run("fit", data, "--y", "claims", "--loss", "huber", "--alpha", "0", "--summary")
    assert proc.returncode == 2 and "not 'huber'" in proc.stderr and "done:" not in proc.stdout
    proc = run("fit", data, "--y", "claims", "--cov-type", "HC0")
    assert proc.returncode == 2 and "add --summary" in proc.stderr
    proc = run("predict", tmp_path / "missing.json", data, "--out", tmp_path / "p.npy")
    assert proc.returncode == 2 and "cannot read the model" in proc.stderr


def test_path_and_cv_on_parquet_with_categoricals_weights_and_offset(tmp_path):
    """smem-dask path and cv read parquet (and named zarr arrays) as fit does: the same paths and
    cross-validation as the estimators on the same frame in memory."""
    from smem_dask import SMEMRegressorCV

    frame = _counts(2000, seed=3)
    data = tmp_path / "claims.parquet"
    dd.from_pandas(frame, npartitions=2).to_parquet(data)
    features = frame[["age", "zone", "grade"]]
    common = ("--loss", "poisson", "--penalty", "l1", "--y", "claims", "--x", "age,zone,grade",
              "--weights", "w", "--offset", "log_t", "--n-alphas", 5, "--tol", 1e-10, "--quiet")
    out = tmp_path / "path.json"
    proc = run("path", data, *common, "--out", out)
    assert proc.returncode == 0, proc.stderr
    ref = SMEMRegressor(loss="poisson", penalty="l1", tol=1e-10).path(
        features, frame["claims"], frame["w"], offset=frame["log_t"], n_alphas=5)
    written = json.loads(out.read_text())
    assert written["coef_names"] == ["age", "zone[a]", "zone[b]", "zone[c]", "grade"]
    np.testing.assert_allclose(written["alphas"], ref.alphas, rtol=1e-12)
    np.testing.assert_allclose(np.asarray(written["coefs"]), ref.coefs, rtol=1e-8, atol=1e-10)
    out = tmp_path / "cv.json"
    proc = run("cv", data, *common, "--folds", 3, "--out", out)
    assert proc.returncode == 0, proc.stderr
    cv = SMEMRegressorCV(loss="poisson", penalty="l1", tol=1e-10, n_alphas=5, cv=3).fit(
        features, frame["claims"], frame["w"], offset=frame["log_t"])
    written = json.loads(out.read_text())
    assert written["coef_names"] == cv.coef_names_
    np.testing.assert_allclose(written["cv_mean"], cv.cv_mean_, rtol=1e-8)
    assert written["alpha"] == pytest.approx(cv.alpha_, rel=1e-12)
    np.testing.assert_allclose(written["coef"], cv.coef_, rtol=1e-8, atol=1e-10)
    # counted over the encoded columns: age, zone[a], zone[b], zone[c], grade
    assert re.search(r"alpha_min .* nonzero \d+/5\b", proc.stdout), proc.stdout
    proc = run("cv", data, *common, "--fold-ids", "zone")
    assert proc.returncode == 2 and "use generated folds" in proc.stderr
    # named zarr arrays, with the offset
    store = zarr.open_group(str(tmp_path / "named.zarr"), mode="w")
    Xn = frame[["age", "grade"]].to_numpy(dtype=float)
    for name, values in (("features", Xn), ("counts", frame["claims"].to_numpy()),
                         ("exposure", frame["log_t"].to_numpy())):
        store.create_array(name, data=values, chunks=(500,) + values.shape[1:])
    out = tmp_path / "zpath.json"
    proc = run("path", tmp_path / "named.zarr", "--loss", "poisson", "--x", "features", "--y", "counts",
               "--offset", "exposure", "--n-alphas", 4, "--tol", 1e-10, "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    ref = SMEMRegressor(loss="poisson", tol=1e-10).path(Xn, frame["claims"].to_numpy(),
                                                        offset=frame["log_t"].to_numpy(), n_alphas=4)
    np.testing.assert_allclose(np.asarray(json.loads(out.read_text())["coefs"]), ref.coefs, rtol=1e-8,
                               atol=1e-10)
