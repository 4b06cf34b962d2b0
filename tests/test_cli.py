"""The smem-dask command, run as a user would: a subprocess, its output and exit code."""

import json
import re
import shutil
import signal
import subprocess
import sys
import warnings

import numpy as np
import pytest
import zarr

from smem_dask import ConvergenceWarning, SMEMClassifier, SMEMRegressor, make_problem
from smem_dask.data import open_store, write_zarr


def run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(proc, match):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smem-dask: error: "), proc.stderr
    assert re.search(match, lines[0]), lines[0]


def test_console_script_is_installed():
    script = shutil.which("smem-dask")
    assert script, "the smem-dask console script is not on PATH"
    proc = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "demo" in proc.stdout and "make-data" in proc.stdout


def test_make_data_then_fit_writes_the_in_memory_answer(tmp_path):
    store, out = tmp_path / "d.zarr", tmp_path / "coef.json"
    proc = run("make-data", store, "--n", 5000, "--p", 6, "--cond", 1e6, "--seed", 4,
               "--chunk-rows", 1300)
    assert proc.returncode == 0, proc.stderr
    proc = run("fit", store, "--alpha", 1e-3, "--tol", 1e-10, "--out", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    X, y = make_problem(5000, 6, cond=1e6, seed=4)
    ref = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-10, atol=1e-12)
    assert result["intercept"] == pytest.approx(ref.intercept_, rel=1e-10)
    assert result["classes"] == [0.0, 1.0] and result["converged"]
    assert result["n_iter"] == ref.n_iter_
    assert result["curvature"] == ref.curvature_ == "newton"  # what the default, "auto", picked
    assert "(newton curvature)" in proc.stdout
    # one line per iteration (0 … n_iter), then the summary
    assert len(re.findall(r"^iter +\d+", proc.stdout, flags=re.M)) == ref.n_iter_ + 1
    assert "converged" in proc.stdout


def test_multiclass_store_fit_path_and_demo(tmp_path):
    """make-data --classes 4 writes labels 0 … 3 from a multinomial model; fit and path fit it by
    the multinomial loss and write the in-memory answers ((K, p) coefficients, K intercepts); demo
    --classes fits one on a local cluster."""
    store, out, path_out = tmp_path / "m.zarr", tmp_path / "fit.json", tmp_path / "path.json"
    proc = run("make-data", store, "--n", 6000, "--p", 5, "--classes", 4, "--cond", 1e4,
               "--chunk-rows", 1700)
    assert proc.returncode == 0 and "4-class problem" in proc.stdout, proc.stderr
    X, y = make_problem(6000, 5, cond=1e4, classes=4)
    assert sorted(set(y)) == [0.0, 1.0, 2.0, 3.0]
    np.testing.assert_array_equal(np.asarray(zarr.open_group(store)["y"][:]), y)
    proc = run("fit", store, "--alpha", 1e-3, "--tol", 1e-10, "--out", out)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    ref = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result["intercept"], ref.intercept_, rtol=1e-10, atol=1e-12)
    assert result["classes"] == [0.0, 1.0, 2.0, 3.0] and result["converged"]
    proc = run("path", store, "--penalty", "l1", "--n-alphas", 6, "--tol", 1e-10, "--out", path_out)
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^alpha +\d+/6", proc.stdout, flags=re.M)) == 6
    saved = json.loads(path_out.read_text())
    ref_path = SMEMClassifier(penalty="l1", tol=1e-10).path(X, y, n_alphas=6)
    np.testing.assert_allclose(saved["coefs"], ref_path.coefs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(saved["intercepts"], ref_path.intercepts, rtol=1e-10, atol=1e-12)
    cv_out = tmp_path / "cv.json"
    proc = run("cv", store, "--penalty", "l1", "--n-alphas", 5, "--folds", 3, "--tol", 1e-10,
               "--out", cv_out)
    assert proc.returncode == 0, proc.stderr
    assert "held-out multinomial loss" in proc.stdout and "/20" in proc.stdout  # K·p coefficients
    saved = json.loads(cv_out.read_text())
    assert np.asarray(saved["coef"]).shape == (4, 5) and len(saved["intercept"]) == 4
    proc = run("demo", "--n", 20000, "--p", 5, "--classes", 3, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "multinomial logistic regression (3 classes)" in proc.stdout and ", converged" in proc.stdout


def test_float32_store_fits_the_float32_data_in_float64(tmp_path):
    """--dtype float32 stores X in float32 (half the bytes per pass); the fit accumulates in float64,
    so it equals the in-memory fit of the float32 values promoted to float64."""
    store, out = tmp_path / "f.zarr", tmp_path / "f.json"
    proc = run("make-data", store, "--n", 4000, "--p", 5, "--cond", 1e4, "--seed", 3,
               "--chunk-rows", 900, "--dtype", "float32")
    assert proc.returncode == 0 and "float32" in proc.stdout, proc.stderr
    X, y = open_store(store)
    assert X.dtype == np.float32 and X.nbytes == 4000 * 5 * 4
    proc = run("fit", store, "--alpha", 1e-3, "--tol", 1e-10, "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    X64 = X[:].astype(np.float64)
    np.testing.assert_array_equal(X64, make_problem(4000, 5, cond=1e4, seed=3)[0].astype(np.float32))
    ref = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X64, y[:])
    np.testing.assert_allclose(json.loads(out.read_text())["coef"], ref.coef_, rtol=1e-10, atol=1e-12)


def test_fit_squared_loss_on_a_regression_store(tmp_path):
    store = tmp_path / "r.zarr"
    write_zarr(store, 3000, 4, task="regression", seed=8, chunk_rows=1000)
    proc = run("fit", store, "--loss", "squared", "--alpha", 1e-2, "--tol", 1e-12, "--quiet",
               "--out", tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr
    X, y = open_store(store)
    ref = SMEMRegressor(alpha=1e-2, tol=1e-12).fit(X[:], y[:])
    np.testing.assert_allclose(json.loads((tmp_path / "r.json").read_text())["coef"], ref.coef_,
                               rtol=1e-10)


@pytest.mark.distributed
def test_fit_against_a_running_scheduler(tmp_path, cluster_client):
    store = tmp_path / "d.zarr"
    write_zarr(store, 4000, 5, cond=1e5, seed=6, chunk_rows=900)
    proc = run("fit", store, "--alpha", 1e-3, "--tol", 1e-10, "--quiet", "--out",
               tmp_path / "c.json", "--scheduler", cluster_client.scheduler.address)
    assert proc.returncode == 0, proc.stderr
    X, y = make_problem(4000, 5, cond=1e5, seed=6)
    ref = SMEMClassifier(alpha=1e-3, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(json.loads((tmp_path / "c.json").read_text())["coef"], ref.coef_,
                               rtol=1e-10, atol=1e-12)


def test_errors_are_one_line_with_exit_code_2(tmp_path):
    assert_one_line_error(run("fit", tmp_path / "missing.zarr"), "no zarr group at")
    write_zarr(tmp_path / "ok.zarr", 200, 3)
    assert_one_line_error(run("make-data", tmp_path / "ok.zarr"), "already exists")
    assert_one_line_error(run("fit", tmp_path / "ok.zarr", "--alpha", -1),
                          "alpha must be a finite number")
    assert_one_line_error(run("fit", tmp_path / "ok.zarr", "--scheduler", "tcp://127.0.0.1:9",
                              "--connect-timeout", 2),
                          "cannot reach the dask scheduler at tcp://127.0.0.1:9")
    zarr.open_group(tmp_path / "noy.zarr", mode="w").create_array("X", shape=(5, 2), dtype="f8")
    assert_one_line_error(run("fit", tmp_path / "noy.zarr"), "has no array 'y'")
    # argparse's own usage errors also exit with 2
    assert run("fit").returncode == 2


def test_demo_runs_end_to_end_on_a_local_cluster():
    proc = run("demo", "--n", 20000, "--p", 5, "--chunk-rows", 5000)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "local cluster: 2 worker processes" in out
    final = float(re.search(r"final objective ([0-9.]+)", out).group(1))
    iters = int(re.search(r"done: (\d+) iterations", out).group(1))
    X, y = make_problem(20000, 5, cond=1e6, seed=0)
    ref = SMEMClassifier(alpha=1e-4).fit(X, y)
    assert final == pytest.approx(ref.objective_, abs=1e-12)
    assert iters == ref.n_iter_
    accuracy = float(re.search(r"training accuracy ([0-9.]+)", out).group(1))
    assert accuracy == pytest.approx(ref.score(X, y), abs=1e-4)


def test_fit_with_loss_and_penalty_parameters(tmp_path):
    store = tmp_path / "q.zarr"
    write_zarr(store, 2000, 4, task="regression", seed=12, chunk_rows=700)
    proc = run("fit", store, "--loss", "quantile", "--loss-param", "tau=0.8", "--penalty", "group",
               "--penalty-param", "groups=0,0,1,1", "--alpha", 0.05, "--tol", 1e-12, "--quiet",
               "--out", tmp_path / "q.json")
    assert proc.returncode == 0, proc.stderr
    X, y = open_store(store)
    with warnings.catch_warnings():
        # quantile + group at tol 1e-12: the duality gap stops near 2e-8 (a non-zero group is not
        # a vertex the certificate's polish can reach), so the fit ends unconverged, with a warning
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SMEMRegressor(loss="quantile", loss_params={"tau": 0.8}, penalty="group",
                            penalty_params={"groups": (0, 0, 1, 1)}, alpha=0.05, tol=1e-12
                            ).fit(X[:], y[:])
    result = json.loads((tmp_path / "q.json").read_text())
    # a piecewise-linear loss: the objective is pinned to rounding, the coefficients to its square
    # root (different chunkings follow rounding-different trajectories to the flat optimum)
    assert result["objective"] == pytest.approx(ref.objective_, rel=1e-10)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(np.array(result["coef"]) == 0, ref.coef_ == 0)
    assert result["penalty_params"] == {"groups": [0, 0, 1, 1]}
    assert_one_line_error(run("fit", store, "--loss", "quantile", "--loss-param", "tau"),
                          "--loss-param takes NAME=VALUE")
    assert_one_line_error(run("fit", store, "--loss", "quantile", "--loss-param", "tau=2"),
                          r"tau must be in \(0, 1\)")


def test_path_prints_one_line_per_alpha_writes_json_and_plot_and_resumes(tmp_path):
    data, store = tmp_path / "d.zarr", tmp_path / "path.zarr"
    out, png = tmp_path / "path.json", tmp_path / "path.png"
    write_zarr(data, 6000, 5, cond=1e5, seed=2, chunk_rows=2000)
    proc = run("path", data, "--penalty", "l1", "--n-alphas", 8, "--tol", 1e-10, "--store", store,
               "--out", out, "--plot", png)
    assert proc.returncode == 0, proc.stderr
    assert len(re.findall(r"^alpha +\d+/8 ", proc.stdout, flags=re.M)) == 8
    result = json.loads(out.read_text())
    from smem_dask import fit_path

    X, y = make_problem(6000, 5, cond=1e5, seed=2)
    ref = fit_path(X, y, penalty="l1", n_alphas=8, tol=1e-10)
    np.testing.assert_allclose(result["alphas"], ref.alphas, rtol=1e-12)
    np.testing.assert_allclose(result["coefs"], ref.coefs, rtol=1e-9, atol=1e-11)
    assert result["total_passes"] == ref.total_passes
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    # rerun on the same store: nothing left to compute but the pass verifying the data
    proc = run("path", data, "--penalty", "l1", "--n-alphas", 8, "--tol", 1e-10, "--store", store)
    assert proc.returncode == 0, proc.stderr
    assert "1 data passes" in proc.stdout and "8 read from the store" in proc.stdout
    # other settings on the same store: one-line error
    assert_one_line_error(run("path", data, "--penalty", "l2", "--store", store),
                          "made with other settings")


@pytest.mark.parametrize("command", ["path", "cv"])
def test_path_plot_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch, capsys, command):
    from smem_dask import cli

    data = tmp_path / "d.zarr"
    write_zarr(data, 500, 3, seed=1, chunk_rows=500)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = cli.main([command, str(data), "--store", str(tmp_path / "s.zarr"), "--plot",
                     str(tmp_path / "p.png")])
    assert code == 2
    assert "--plot needs matplotlib: pip install 'smem_dask[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "p.png").exists()


def refused_in_process(argv, capsys, match):
    """``main(argv)`` in this process (no interpreter start): exit code 2, one clear line."""
    from smem_dask import cli

    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smem-dask: error: "), err
    assert re.search(match, lines[0]), lines[0]


def _cv_reference(store, folds=None, **params):
    """The cross-validation of the data store fitted in Python (the command line's engine: zarr)."""
    from smem_dask import SMEMClassifierCV

    X, y = open_store(store)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SMEMClassifierCV(**params).fit(X, y, folds=folds)


@pytest.fixture(scope="module")
def cv_data(tmp_path_factory):
    """A small classification store made by make-data, as a user would."""
    store = tmp_path_factory.mktemp("cv") / "d.zarr"
    proc = run("make-data", store, "--n", 3000, "--p", 6, "--cond", 1e3, "--seed", 5,
               "--chunk-rows", 1000)
    assert proc.returncode == 0, proc.stderr
    return store


def test_cv_prints_each_alpha_and_selects_as_the_estimator(cv_data, tmp_path):
    out, png = tmp_path / "cv.json", tmp_path / "cv.png"
    proc = run("cv", cv_data, "--penalty", "l1", "--folds", 3, "--seed", 4, "--n-alphas", 8,
               "--selection", "1se", "--out", out, "--plot", png)
    assert proc.returncode == 0, proc.stderr
    ref = _cv_reference(cv_data, penalty="l1", cv=3, random_state=4, n_alphas=8, selection="1se")
    result = json.loads(out.read_text())
    # the selection is the estimator's, exactly
    assert result["alpha_min"] == ref.alpha_min_ and result["alpha_1se"] == ref.alpha_1se_
    assert result["alpha"] == ref.alpha_ == ref.alpha_1se_
    assert result["alphas"] == ref.alphas_.tolist()
    np.testing.assert_allclose(result["cv_mean"], ref.cv_mean_, rtol=1e-12)
    np.testing.assert_allclose(result["cv_se"], ref.cv_std_, rtol=1e-12)
    np.testing.assert_allclose(result["cv_scores"], ref.cv_scores_, rtol=1e-12)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-12, atol=1e-15)
    assert result["intercept"] == pytest.approx(ref.intercept_, rel=1e-12)
    assert result["n_nonzero"] == ref.cv_result_.n_nonzero.tolist()
    assert result["n_folds"] == 3 and result["folds"] == {"generated": 3, "seed": 4}
    assert sum(result["fold_rows"]) == 3000 and result["finished"] == [True] * 8
    assert result["total_passes"] == ref.n_passes_ and result["stopped"] is None
    assert result["scoring"] == "loss" and result["selection"] == "1se"
    # one line per α (in the order they finish), its mean ± se and nonzeros as fitted
    lines = re.findall(r"^alpha +(\d+)/8 +(\S+) +held-out logistic loss (\S+) ± (\S+) +nonzero +(\d+)/6$",
                       proc.stdout, flags=re.M)
    assert sorted(int(i) for i, *_ in lines) == list(range(1, 9))
    for i, alpha, mean, se, nonzero in lines:
        k = int(i) - 1
        assert float(alpha) == pytest.approx(ref.alphas_[k], rel=1e-4)
        assert float(mean) == pytest.approx(ref.cv_mean_[k], abs=1e-6)
        assert float(se) == pytest.approx(ref.cv_std_[k], rel=1e-2)
        assert int(nonzero) == ref.cv_result_.n_nonzero[k]
    summary = proc.stdout[proc.stdout.index("done:"):]
    assert "3-fold cross-validation of 8 alphas" in summary
    assert f"{ref.n_passes_} data passes" in summary and "read from the store" not in summary
    assert f"alpha_min {ref.alpha_min_:.4e}" in summary
    assert f"alpha_1se {ref.alpha_1se_:.4e}" in summary and "(chosen: --selection 1se)" in summary
    import matplotlib.image

    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300


def test_cv_fold_ids_name_an_integer_array_of_the_data_store(cv_data, tmp_path, capsys):
    data = tmp_path / "d.zarr"
    shutil.copytree(cv_data, data)
    group = zarr.open_group(data, mode="a")
    labels = np.repeat([3, 8, 20], 1000)[np.random.default_rng(0).permutation(3000)]
    group.create_array("blocks", data=labels, chunks=(700,))  # chunked unlike X
    group.create_array("short", data=labels[:-1])
    group.create_array("floats", data=labels.astype(np.float64))
    group.create_group("sub")
    out = tmp_path / "f.json"
    proc = run("cv", data, "--penalty", "l1", "--fold-ids", "blocks", "--n-alphas", 6, "--quiet",
               "--out", out)
    assert proc.returncode == 0, proc.stderr
    ref = _cv_reference(data, group["blocks"], penalty="l1", n_alphas=6)
    result = json.loads(out.read_text())
    assert result["alpha_min"] == ref.alpha_min_ and result["alpha_1se"] == ref.alpha_1se_
    np.testing.assert_allclose(result["cv_mean"], ref.cv_mean_, rtol=1e-12)
    assert result["n_folds"] == 3 and result["fold_rows"] == [1000, 1000, 1000]
    assert result["folds"] == {"fold_ids": "blocks", "labels": [3, 8, 20]}
    assert "3-fold cross-validation of 6 alphas" in proc.stdout
    # refused, one line each, before any data pass (the first as a user sees it, the others in
    # this process, which runs the same main())
    assert_one_line_error(run("cv", data, "--fold-ids", "short"),
                          r"--fold-ids short has shape \(2999,\); expected \(3000,\), one fold label "
                          "per row of X")
    refused_in_process(["cv", data, "--fold-ids", "floats"], capsys,
                       "--fold-ids floats holds float64 values; fold labels must be integers")
    refused_in_process(["cv", data, "--fold-ids", "nope"], capsys,
                       "--fold-ids nope: the data store .* has no such array; --fold-ids takes the "
                       "name of an integer array inside DATA.zarr")
    refused_in_process(["cv", data, "--fold-ids", "sub"], capsys, "has a group, not an array")
    np.save(tmp_path / "labels.npy", labels)
    refused_in_process(["cv", data, "--fold-ids", tmp_path / "labels.npy"], capsys,
                       "a file or store of its own is not read; --fold-ids takes the name of an "
                       "integer array inside DATA.zarr")
    refused_in_process(["cv", data, "--fold-ids", "blocks", "--seed", 1], capsys,
                       "--seed draws generated folds; it does not apply with --fold-ids")


def test_cv_errors_are_one_line_before_any_pass(cv_data, tmp_path, capsys):
    refused_in_process(["cv", cv_data, "--scoring", "squared_error"], capsys,
                       "--scoring squared_error does not apply to the logistic loss; choose one of "
                       "loss, misclassification")
    # refused before the heavy imports, as fit and path are (a fresh interpreter shows it)
    probe = subprocess.run([sys.executable, "-c", f"""
import runpy, sys
sys.argv = ["smem-dask", "cv", {str(cv_data)!r}, "--plot", {str(tmp_path / "no" / "cv.png")!r}]
try:
    runpy.run_module("smem_dask", run_name="__main__")
except SystemExit as exc:
    print(exc.code, sorted(m for m in ("dask.array", "sklearn", "zarr", "distributed") if m in sys.modules))
"""], capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "2 []", probe.stdout + probe.stderr
    assert re.match(r"smem-dask: error: --plot .*: the directory .* does not exist$", probe.stderr.strip())
    refused_in_process(["cv", cv_data, "--penalty", "scad"], capsys,
                       "cross-validation of the non-convex penalty 'scad' is not supported")
    with pytest.raises(SystemExit) as exc:  # argparse's own usage error
        from smem_dask import cli

        cli.main(["cv", str(cv_data), "--folds", "1"])
    assert exc.value.code == 2 and "--folds: must be an integer ≥ 2, got 1" in capsys.readouterr().err
    # a time limit that ends the cross-validation before any α: nothing to select, said so (after
    # the warning that the cross-validation stopped early)
    proc = run("cv", cv_data, "--max-time", "1e-9", "--out", tmp_path / "t.json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "smem-dask: error: --max-time 1e-9: the cross-validation stopped before any alpha was "
        "finished by every fold; nothing to select (allow more time)")
    assert not (tmp_path / "t.json").exists()


def test_cv_sigint_writes_what_is_finished_and_the_store_resumes(tmp_path):
    from test_interrupt import interrupted

    data, store, out = tmp_path / "d.zarr", tmp_path / "cv.zarr", tmp_path / "i.json"
    write_zarr(data, 10000, 8, seed=7, chunk_rows=2500)
    # one α at a time: the signal comes long before the 20th
    args = ["cv", data, "--penalty", "l1", "--folds", 3, "--n-alphas", 20, "--batch", 1,
            "--store", store]
    code, stdout, stderr = interrupted([*args, "--out", out], r"^alpha +2/20 ", signal.SIGINT)
    assert code == 130, stderr
    result = json.loads(out.read_text())
    m = sum(result["finished"])
    assert 2 <= m < 20 and all(result["finished"][:m]) and not any(result["finished"][m:])
    assert result["stopped"] == "interrupted" and result["cv_mean"][m:] == [None] * (20 - m)
    assert stderr.strip().splitlines() == [
        f"smem-dask: interrupted after {m} of 20 alphas; wrote {out} ({20 - m} not finished by every "
        "fold; rerun with the same --store to resume)"]
    assert f"chosen among the {m} alphas every fold finished" in stdout
    # the rerun reads every finished fit from the store and ends as a run never interrupted
    proc = run(*args, "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    n_read = int(re.search(r"(\d+) of 80 fits read from the store", proc.stdout).group(1))
    assert 4 * m <= n_read < 80
    ref = _cv_reference(data, penalty="l1", cv=3, n_alphas=20, batch=1)
    result = json.loads(out.read_text())
    assert result["alpha_min"] == ref.alpha_min_ and result["alpha_1se"] == ref.alpha_1se_
    np.testing.assert_allclose(result["cv_mean"], ref.cv_mean_, rtol=1e-12)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-12, atol=1e-15)
    assert result["stopped"] is None


def test_cv_stopped_before_any_alpha_writes_nothing(cv_data, tmp_path, monkeypatch, capsys):
    """A signal during the start (which is not cut short) stops every fit at its first iteration:
    no α is finished by every fold, so there is nothing to select or write."""
    from smem_dask import cli, cv

    start = cv._start

    def start_then_signal(*args, **kwargs):
        result = start(*args, **kwargs)
        signal.raise_signal(signal.SIGINT)
        return result

    monkeypatch.setattr(cv, "_start", start_then_signal)
    out = tmp_path / "never.json"
    with warnings.catch_warnings():
        # shown as the command shows it (a stop's warning is said by the line on the interruption)
        warnings.simplefilter("always", ConvergenceWarning)
        code = cli.main(["cv", str(cv_data), "--n-alphas", "4", "--store", str(tmp_path / "s.zarr"),
                         "--out", str(out)])
    assert code == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "smem-dask: interrupted before any alpha was finished by every fold; nothing to select, "
        "nothing written; rerun with the same --store to resume"]
    assert not out.exists()
