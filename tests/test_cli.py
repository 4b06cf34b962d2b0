"""The smem-dask command, run as a user would: a subprocess, its output and exit code."""

import json
import re
import shutil
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
    # one line per iteration (0 … n_iter), then the summary
    assert len(re.findall(r"^iter +\d+", proc.stdout, flags=re.M)) == ref.n_iter_ + 1
    assert "converged" in proc.stdout


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


def test_path_plot_without_matplotlib_fails_before_any_work(tmp_path, monkeypatch, capsys):
    from smem_dask import cli

    data = tmp_path / "d.zarr"
    write_zarr(data, 500, 3, seed=1, chunk_rows=500)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code = cli.main(["path", str(data), "--store", str(tmp_path / "s.zarr"), "--plot",
                     str(tmp_path / "p.png")])
    assert code == 2
    assert "--plot needs matplotlib: pip install 'smem_dask[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "s.zarr").exists() and not (tmp_path / "p.png").exists()
