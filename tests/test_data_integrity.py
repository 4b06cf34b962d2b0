"""Verified data: what the passes read is the data the user named. A missing chunk is an error (not
zarr's fill value), a damaged chunk fails its checksum, the first pass checksums every block (a path
store refuses other data, wherever they changed), and workers that read something else than the
client are stopped."""

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr
from test_misuse import refused, run, snapshot

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.arrays import as_array
from smem_dask.data import make_problem, open_store, write_zarr
from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.losses import Logistic
from smem_dask.path import solve_path
from smem_dask.penalties import L2
from smem_dask.solver import SolverConfig, fit_em
from smem_dask.store import StoreMismatchError, read_path_store

N, P, ROWS = 3500, 4, 700  # 5 chunks of 700 rows
ROOT = Path(__file__).resolve().parents[1]


def run_in(cwd, *args, timeout=240):
    """The command line run in the directory ``cwd`` (this checkout of smem_dask on its path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "d.zarr"
    write_zarr(path, N, P, seed=3, chunk_rows=ROWS)
    return path


def _oracle_checksum(X, y, s, rows):
    """The data's checksum by its definition: Σ_b BLAKE2b-64(b, shape, weights?, X, y, s) mod 2⁶⁴."""
    total = 0
    for b, start in enumerate(range(0, len(y), rows)):
        xb, yb = X[start:start + rows], y[start:start + rows]
        h = hashlib.blake2b(digest_size=8)
        h.update(struct.pack("<qqq?", b, xb.shape[0], xb.shape[1], s is not None))
        h.update(np.ascontiguousarray(xb).tobytes())
        h.update(np.ascontiguousarray(yb, dtype="<f8").tobytes())
        if s is not None:
            h.update(np.ascontiguousarray(s[start:start + rows], dtype="<f8").tobytes())
        total += int.from_bytes(h.digest(), "little")
    return f"blake2b-64-sum:{total % 2**64:016x}"


# -- 1. missing chunks ----------------------------------------------------------------------------

def test_a_missing_chunk_of_X_or_y_is_an_error_naming_it(data):
    (data / "X" / "c" / "3" / "0").unlink()
    before = snapshot(data)
    refused(run("fit", data), r"X chunk 3 \(rows 2100–2799\) is missing from \S*d\.zarr: the store is "
                              "incomplete")
    assert snapshot(data) == before
    # the same through the Python API, with the zarr array opened by hand (not open_store)
    X = zarr.open_array(data / "X", mode="r")
    y = zarr.open_group(data, mode="r")["y"]
    with dask.config.set(scheduler="sync"), pytest.raises(ValueError, match=r"X chunk 3 \(rows 2100–2799\)"):
        SMEMClassifier().fit(X, y)
    write_zarr(data, N, P, seed=3, chunk_rows=ROWS, overwrite=True)
    (data / "y" / "c" / "1").unlink()
    refused(run("fit", data, "--loss", "squared"), r"y chunk 1 \(rows 700–1399\) is missing from")


def test_stores_we_write_have_every_chunk_so_all_zero_chunks_are_not_missing(tmp_path):
    """zarr leaves out a chunk that equals the fill value unless told otherwise; write_zarr writes
    every chunk, so a y chunk of only 0-labels is there and the fit is the in-memory fit."""
    path = tmp_path / "z.zarr"
    write_zarr(path, 400, 2, seed=1, chunk_rows=3)
    X, y = open_store(path)
    labels = y[:]
    zero_chunks = [c for c in range(-(-400 // 3)) if not labels[3 * c:3 * c + 3].any()]
    assert zero_chunks  # the case zarr would not write
    assert all((path / "y" / "c" / str(c)).is_file() for c in zero_chunks)
    with dask.config.set(scheduler="sync"):
        lazy = SMEMClassifier(tol=1e-10).fit(X, y)
    ref = SMEMClassifier(tol=1e-10).fit(*make_problem(400, 2, seed=1))
    np.testing.assert_allclose(lazy.coef_, ref.coef_, rtol=1e-10)
    # a store written by zarr's defaults (no chunk files for all-zero chunks, no checksums) follows
    # zarr's rule: a chunk not written holds the fill value, so the fit is the in-memory fit too
    foreign = zarr.open_group(tmp_path / "f.zarr", mode="w")
    foreign.create_array("X", data=X[:], chunks=(3, 2))
    foreign.create_array("y", data=labels, chunks=(3,))
    assert not any((tmp_path / "f.zarr" / "y" / "c" / str(c)).exists() for c in zero_chunks)
    with dask.config.set(scheduler="sync"):
        theirs = SMEMClassifier(tol=1e-10).fit(*open_store(tmp_path / "f.zarr"))
    np.testing.assert_allclose(theirs.coef_, ref.coef_, rtol=1e-10)


# -- 4. chunk checksums ----------------------------------------------------------------------------

def test_a_flipped_bit_in_an_X_chunk_is_reported_as_damage(data):
    X, _ = open_store(data)
    assert any(isinstance(c, zarr.codecs.Crc32cCodec) for c in X.compressors)
    chunk = data / "X" / "c" / "2" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[1234] ^= 0x10  # one bit of one float of rows 1400–2099
    chunk.write_bytes(bytes(raw))
    before = snapshot(data)
    refused(run("fit", data), r"X chunk 2 \(rows 1400–2099\) of \S*d\.zarr failed its checksum: the store "
                              "is damaged")
    assert snapshot(data) == before
    # without the codec the same flip would have changed the data silently
    plain = data.parent / "plain.zarr"
    write_zarr(plain, N, P, seed=3, chunk_rows=ROWS, checksum=False)
    assert open_store(plain)[0].compressors == ()


# -- 2. the full checksum of the first pass ---------------------------------------------------------

def test_the_checksum_sums_every_blocks_hash_alike_on_both_engines():
    X, y = make_problem(N, P, seed=3)
    s = np.linspace(0.5, 2.0, N)
    want = _oracle_checksum(X, y, s, ROWS)
    numpy_engine = NumpyEngine(X, y, s, block_rows=ROWS)
    assert numpy_engine.data_checksum() == want and numpy_engine.n_passes == 1
    dask_engine = DaskEngine(da.from_array(X, chunks=(ROWS, -1)), y, s)
    with dask.config.set(scheduler="sync"):
        assert dask_engine.data_checksum() == want and dask_engine.n_passes == 1
    assert _oracle_checksum(X, y, None, ROWS) != want  # weights or not: other data
    X2 = X.copy()
    X2[800, 1] = np.nextafter(X2[800, 1], 1.0)  # one ulp in block 1
    assert NumpyEngine(X2, y, s, block_rows=ROWS).data_checksum() != want
    # the sum is exact in float64 up to 2³⁷ blocks: 16-bit pieces, each summed below 2⁵³
    assert (2**16 - 1) * 2**37 < 2**53


def test_the_sampled_block_is_compared_by_the_crc32_of_the_checksums_bytes():
    """The first pass's comparison of one block (workers against client) is the CRC-32 of the bytes
    the checksum hashes, by its definition; one ulp of one value changes it."""
    from smem_dask.checksum import _sample_hash

    X, y = make_problem(N, P, seed=3)
    s = np.linspace(0.5, 2.0, N)
    xb, yb, sb = X[ROWS:2 * ROWS], y[ROWS:2 * ROWS], s[ROWS:2 * ROWS]
    data = (struct.pack("<qqq?", 1, xb.shape[0], xb.shape[1], True) + xb.tobytes()
            + yb.astype("<f8").tobytes() + sb.astype("<f8").tobytes())
    assert _sample_hash(1, xb, yb, sb) == zlib.crc32(data)
    assert _sample_hash(1, xb, yb, None) != _sample_hash(1, xb, yb, sb)
    changed = xb.copy()
    changed[5, 1] = np.nextafter(changed[5, 1], 1.0)
    assert _sample_hash(1, changed, yb, sb) != _sample_hash(1, xb, yb, sb)


def test_the_first_pass_computes_the_checksum_at_no_extra_cost(data):
    X, y = open_store(data)
    config = SolverConfig(tol=1e-10)
    with dask.config.set(scheduler="sync"):
        plain = DaskEngine(as_array(X, "X"), as_array(y, "y"))
        ref = fit_em(plain, Logistic(), L2(), 1e-3, config=config)
        engine = DaskEngine(as_array(X, "X"), as_array(y, "y"))
        engine.request_checksum()
        fit = fit_em(engine, Logistic(), L2(), 1e-3, config=config)
        graph = engine.pass_graph(Logistic(), [], True, checksum=True)
        (optimized,) = dask.optimize(graph)
    assert plain.checksum is None and engine.n_passes == plain.n_passes == ref.n_passes
    np.testing.assert_array_equal(fit.coef, ref.coef)  # the statistics are untouched
    assert engine.checksum == _oracle_checksum(X[:], y[:], None, ROWS)
    assert engine.data_checksum() == engine.checksum and engine.n_passes == ref.n_passes
    # one fused task per block (read X, read y, hash, kernel) + the reduction
    tasks = [key for key in dict(optimized.__dask_graph__()) if isinstance(key, tuple)]
    assert len(tasks) == engine.n_blocks + 1


def test_a_resume_on_data_changed_outside_the_old_sampled_blocks_is_refused(data, tmp_path):
    """The old fingerprint hashed blocks 0, 2 and 4 of 5: change block 1, and the resume of a path
    store made from the old data is refused before it uses anything stored."""
    pstore = tmp_path / "path.zarr"
    args = ["path", data, "--n-alphas", 5, "--tol", 1e-10, "--store", pstore, "--quiet"]
    first = run(*args, "--out", tmp_path / "first.json")
    assert first.returncode == 0, first.stderr
    assert read_path_store(pstore)["done"].all()
    group = zarr.open_group(data, mode="r+")
    group["X"][900, 2] += 1e-6  # row 900: block 1
    before = snapshot(pstore)
    refused(run(*args), r"the path store \S+ was made from other data \(block checksums differ")
    assert snapshot(pstore) == before


def test_a_resume_on_the_same_data_costs_one_pass_and_gives_the_same_path(data, tmp_path):
    X, y = open_store(data)
    pstore = tmp_path / "path.zarr"
    kw = dict(penalty="l1", n_alphas=5, tol=1e-10)
    with dask.config.set(scheduler="sync"):
        first = SMEMClassifier(**{k: v for k, v in kw.items() if k == "penalty" or k == "tol"}).path(
            X, y, n_alphas=5, store=pstore)
        again = SMEMClassifier(penalty="l1", tol=1e-10).path(X, y, n_alphas=5, store=pstore)
    assert again.resumed.all() and again.total_passes == 1  # the verification pass
    np.testing.assert_array_equal(again.coefs, first.coefs)
    np.testing.assert_array_equal(again.alphas, first.alphas)
    stored = zarr.open_group(pstore, mode="r").attrs["data_checksum"]
    assert stored == _oracle_checksum(X[:], y[:], None, ROWS)


def test_other_shapes_are_refused_without_a_pass(data, tmp_path):
    X, y = open_store(data)
    pstore = tmp_path / "path.zarr"
    with dask.config.set(scheduler="sync"):
        engine = DaskEngine(as_array(X, "X"), as_array(y, "y"))
        solve_path(engine, Logistic(), L2(), n_alphas=2, store=pstore)
        other = DaskEngine(as_array(X, "X")[:-1], as_array(y, "y")[:-1])
        with pytest.raises(StoreMismatchError, match=r"other data \(.*shape"):
            solve_path(other, Logistic(), L2(), n_alphas=2, store=pstore)
    assert other.n_passes == 0


def test_a_store_without_a_recorded_checksum_is_not_trusted(data, tmp_path):
    X, y = open_store(data)
    pstore = tmp_path / "path.zarr"
    with dask.config.set(scheduler="sync"):
        SMEMRegressor(penalty="l2").path(X, y, n_alphas=2, store=pstore)
        group = zarr.open_group(pstore, mode="r+")
        del group.attrs["data_checksum"]  # as an older smem_dask left it
        with pytest.raises(StoreMismatchError, match="none recorded, by an older smem_dask"):
            SMEMRegressor(penalty="l2").path(X, y, n_alphas=2, store=pstore)


# -- 3. workers read what the client sees ------------------------------------------------------------

def _cluster_in(directory, monkeypatch):
    from test_cluster import Cluster

    with monkeypatch.context() as m:
        m.chdir(directory)  # the workers' working directory
        return Cluster(directory)


@pytest.mark.distributed
def test_workers_in_another_directory_fit_a_store_named_by_a_relative_path(tmp_path, monkeypatch):
    here, there = tmp_path / "client", tmp_path / "workers"
    here.mkdir()
    there.mkdir()
    write_zarr(here / "d.zarr", 6000, 5, seed=7, cond=1e4, chunk_rows=1500)
    cluster = _cluster_in(there, monkeypatch)
    try:
        out = here / "fit.json"
        proc = run_in(here, "fit", "d.zarr", "--alpha", 1e-3, "--tol", 1e-12, "--quiet", "--out",
                      "fit.json", "--scheduler", cluster.address)
        assert proc.returncode == 0, proc.stderr
        ref = SMEMClassifier(alpha=1e-3, tol=1e-12).fit(*make_problem(6000, 5, seed=7, cond=1e4))
        np.testing.assert_allclose(json.loads(out.read_text())["coef"], ref.coef_, rtol=1e-10, atol=1e-12)

        # a zarr array opened by hand with a relative path: the workers, elsewhere, find another
        # store of that name (other data, same shape) — the first pass is stopped
        write_zarr(there / "d.zarr", 6000, 5, seed=8, cond=1e4, chunk_rows=1500)
        monkeypatch.chdir(here)
        group = zarr.open_group("d.zarr", mode="r")
        with cluster.client() as client, dask.config.set(scheduler=client), \
                pytest.raises(ValueError, match=r"the workers read different data from d\.zarr than this "
                                                r"client \(block 2\): do the workers see the same file"):
            SMEMRegressor().fit(group["X"], group["y"])
        # and with no store there at all: the read says so instead of reading zeros
        shutil.rmtree(there / "d.zarr" / "y")
        with cluster.client() as client, dask.config.set(scheduler=client), \
                pytest.raises(ValueError, match=r"y cannot be read from d\.zarr on .*: the array is not "
                                                "there; do the workers see the same file system"):
            SMEMRegressor().fit(group["X"], group["y"])
    finally:
        cluster.close()
