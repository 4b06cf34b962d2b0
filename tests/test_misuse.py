"""Bad input and misuse through the command line: each a one-line error naming the problem, and the
data store and the path store left byte for byte as they were (issue 7's list on top of the core
cases)."""

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from smem_dask.data import DATA_FORMAT, write_zarr
from smem_dask.store import FORMAT


def run(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def snapshot(path: Path) -> dict:
    """Every file under ``path`` (the lock file included) with its SHA-256."""
    return {str(f.relative_to(path)): hashlib.sha256(f.read_bytes()).hexdigest()
            for f in sorted(path.rglob("*")) if f.is_file()}


def refused(proc, match):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smem-dask: error: "), proc.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "done:" not in proc.stdout


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.zarr"
    write_zarr(path, 3000, 4, seed=3, chunk_rows=700)
    return path


def _edit(path: Path, **changes) -> None:
    """Overwrite arrays of the data store (each a {name: (index, value)})."""
    group = zarr.open_group(path, mode="r+")
    for name, (index, value) in changes.items():
        group[name][index] = value


@pytest.mark.parametrize("case, edit, args, match", [
    ("nan", dict(X=((17, 2), np.nan)), (), "X contains 1 NaN or infinite values"),
    ("inf", dict(X=((2500, 0), np.inf)), (), "X contains 1 NaN or infinite values"),
    # (the default logistic loss fits three labels by the multinomial loss; hinge needs two)
    ("three-labels", dict(y=(5, 2.0)), ("--loss", "hinge"),
     r"y has 3 classes \(0\.0, 1\.0, 2\.0\); loss 'hinge' needs exactly two"),
    ("nan-label", dict(y=(9, np.nan)), (), "y contains NaN"),
])
def test_bad_values_in_the_data_store(data, case, edit, args, match):
    _edit(data, **edit)
    before = snapshot(data)
    refused(run("fit", data, *args), match)
    assert snapshot(data) == before


def test_X_and_y_of_different_lengths(data, tmp_path):
    group = zarr.open_group(data, mode="r+")
    group.create_array("y", data=np.zeros(2999), chunks=(700,), overwrite=True)
    before = snapshot(data)
    refused(run("fit", data), "X and y have different lengths: X has 3000 rows, y has 2999")
    assert snapshot(data) == before


def test_a_data_store_from_a_newer_version(data):
    group = zarr.open_group(data, mode="r+")
    meta = dict(group.attrs["smem_dask"])
    assert meta["format"] == DATA_FORMAT
    group.attrs["smem_dask"] = {**meta, "format": "smem_dask.data/2"}
    before = snapshot(data)
    refused(run("fit", data), r"written by a newer version of smem_dask \(format smem_dask.data/2; "
                              r"this version reads smem_dask.data/1\): upgrade")
    assert snapshot(data) == before


@pytest.fixture
def path_store(data, tmp_path):
    store = tmp_path / "path.zarr"
    proc = run("path", data, "--n-alphas", 4, "--store", store, "--quiet")
    assert proc.returncode == 0, proc.stderr
    return store


def test_a_path_store_from_another_dataset(path_store, tmp_path):
    other = tmp_path / "other.zarr"
    write_zarr(other, 3000, 4, seed=4, chunk_rows=700)  # same shape, other numbers
    before, before_data = snapshot(path_store), snapshot(other)
    refused(run("path", other, "--n-alphas", 4, "--store", path_store),
            "was made from other data .*checksum")
    assert snapshot(path_store) == before and snapshot(other) == before_data


def test_a_path_store_from_a_newer_version(path_store, data):
    group = zarr.open_group(path_store, mode="r+")
    assert group.attrs["format"] == FORMAT
    group.attrs["format"] = "smem_dask.path/2"
    before = snapshot(path_store)
    refused(run("path", data, "--n-alphas", 4, "--store", path_store),
            r"the path store .* was written by a newer version of smem_dask \(format smem_dask.path/2")
    assert snapshot(path_store) == before


def test_a_scheduler_that_cannot_be_reached(data, path_store):
    before, before_path = snapshot(data), snapshot(path_store)
    refused(run("fit", data, "--scheduler", "tcp://127.0.0.1:9", "--connect-timeout", 2),
            "cannot reach the dask scheduler at tcp://127.0.0.1:9")
    refused(run("path", data, "--n-alphas", 4, "--store", path_store, "--scheduler",
                "tcp://127.0.0.1:9", "--connect-timeout", 2),
            "cannot reach the dask scheduler at tcp://127.0.0.1:9")
    assert snapshot(data) == before and snapshot(path_store) == before_path


def test_a_gram_too_large_for_the_client_is_refused_before_any_pass(tmp_path):
    """p = 400 000: the Gram alone is 1.2 TiB, four copies of it 4.7 TiB — more than any machine
    this runs on has available. Refused at once, with the sizes, before the data are read."""
    path = tmp_path / "wide.zarr"
    group = zarr.open_group(path, mode="w")
    p = 400_000
    group.create_array("X", data=np.random.default_rng(0).standard_normal((4, p)), chunks=(2, p))
    group.create_array("y", data=np.array([0.0, 1.0, 0.0, 1.0]), chunks=(2,))
    before = snapshot(path)
    q = p + 1
    gib = 8 * q * q / 2**30
    proc = run("fit", path, "--quiet")
    refused(proc, rf"400,000 features need a 400,001 × 400,001 float64 Gram \({gib:,.1f} GiB\); the "
                  rf"client needs about {4 * gib:,.1f} GiB .* is available here")
    assert "iter" not in proc.stdout
    assert snapshot(path) == before


def test_a_gram_too_large_for_the_workers_is_refused_before_any_pass(tmp_path):
    """p = 3000 on workers limited to 300 MiB: each reduction task would hold 18 Grams of 69 MiB."""
    path = tmp_path / "wide.zarr"
    write_zarr(path, 3100, 3000, chunk_rows=1000, cond=10.0)
    before = snapshot(path)
    proc = run("fit", path, "--workers", 2, "--memory-limit", "300MiB", "--quiet")
    gram = 8 * 3001**2 / 2**20
    refused(proc, rf"3,000 features need a 3,001 × 3,001 float64 Gram \({gram:,.1f} MiB\); a worker "
                  rf"reducing them needs about {18 * gram / 1024:,.1f} GiB, but the workers' memory "
                  r"limit is 300.0 MiB")
    assert snapshot(path) == before


def test_an_automatic_lockstep_batch_shrinks_to_what_the_workers_hold(tmp_path):
    """p = 1000 on 400 MiB workers: the 64 MiB lockstep budget would put 8 Grams of 7.6 MiB in a
    pass, 18 × 61 MiB per reduction task — over the limit; batch "auto" takes 2 instead (what
    fits), and the path equals the in-memory one. An explicit --batch 8 is refused with the sizes.
    (At 300 MiB the workers, which take about 205 MiB themselves once they have read zarr, were
    sometimes killed: the Gram check counts the memory limit, not what the worker already uses.)"""
    from smem_dask import fit_path, make_problem

    path = tmp_path / "p1000.zarr"
    write_zarr(path, 1500, 1000, chunk_rows=500, cond=10.0, seed=2)
    out = tmp_path / "path.json"
    # (the E-step: a logistic path's default, the fixed bound, carries one Gram whatever the batch)
    proc = run("path", path, "--n-alphas", 3, "--eps", 0.1, "--workers", 2, "--memory-limit", "400MiB",
               "--curvature", "adaptive", "--quiet", "--out", out)
    assert proc.returncode == 0, proc.stderr
    X, y = make_problem(1500, 1000, cond=10.0, seed=2)
    ref = fit_path(X, y, n_alphas=3, eps=0.1, curvature="adaptive")
    np.testing.assert_allclose(json.loads(out.read_text())["coefs"], ref.coefs, rtol=1e-7, atol=1e-10)
    refused(run("path", path, "--n-alphas", 8, "--batch", 8, "--workers", 2, "--memory-limit",
                "400MiB", "--curvature", "adaptive", "--quiet"),
            r"1,000 features need 8 1,001 × 1,001 float64 Grams .* use fewer α per pass \(batch\)")


def test_tls_options_are_checked_before_connecting(data, tmp_path):
    refused(run("fit", data, "--scheduler", "tls://127.0.0.1:9"),
            r"the scheduler at tls://127.0.0.1:9 uses TLS: pass --tls-ca, --tls-cert and --tls-key")
    refused(run("fit", data, "--scheduler", "tls://127.0.0.1:9", "--tls-ca", data / "zarr.json"),
            "--tls-ca, --tls-cert and --tls-key go together; missing --tls-cert, --tls-key")
    refused(run("fit", data, "--scheduler", "tls://127.0.0.1:9", "--tls-ca", tmp_path / "no.pem",
                "--tls-cert", tmp_path / "no.pem", "--tls-key", tmp_path / "no.pem"),
            r"--tls-ca .*no.pem: no such file")
    pem = data / "zarr.json"  # any existing file: the address is checked first
    refused(run("fit", data, "--scheduler", "tcp://127.0.0.1:9", "--tls-ca", pem, "--tls-cert", pem,
                "--tls-key", pem), "the scheduler address tcp://127.0.0.1:9 is not tls://")
    refused(run("fit", data, "--memory-limit", "1GiB"), "--memory-limit .* needs --workers")
    refused(run("fit", data, "--workers", 2, "--memory-limit", "lots"),
            "--memory-limit takes a size such as 2GiB")
    (tmp_path / "s.json").write_text(json.dumps({"nothing": 1}))
    refused(run("fit", data, "--scheduler-file", tmp_path / "s.json", "--connect-timeout", 1),
            r"is not a dask scheduler file \(not JSON with an 'address', after waiting 1 s\)")
    (tmp_path / "s.json").write_text(json.dumps({"address": 5}))
    refused(run("fit", data, "--scheduler-file", tmp_path / "s.json", "--connect-timeout", 1),
            r"is not a dask scheduler file \(its 'address' is 5")
    (tmp_path / "s.json").write_text(json.dumps({"address": "tcp://127.0.0.1:9"}))
    refused(run("fit", data, "--scheduler-file", tmp_path / "s.json", "--tls-ca", pem, "--tls-cert",
                pem, "--tls-key", pem), "the scheduler address tcp://127.0.0.1:9 is not tls://")
