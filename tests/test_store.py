"""The path store: resume after SIGKILL, fingerprint and settings checks, one writer at a time."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zarr

from smem_dask import fit_path
from smem_dask.data import make_problem
from smem_dask.store import StoreLockedError, StoreMismatchError, read_path_store

N, P, SEED = 20_000, 8, 3
KW = dict(penalty="l1", tol=1e-10, n_alphas=16)


@pytest.fixture(scope="module")
def data():
    return make_problem(N, P, cond=1e4, seed=SEED)


def _run_in_subprocess(store, batch, stop_after, action):
    """Run the path in a fresh interpreter; after `stop_after` α are finished (and stored), the
    callback either SIGKILLs the process or sleeps holding the store (for the lock test)."""
    script = textwrap.dedent(f"""
        import os, signal, time
        from smem_dask import fit_path
        from smem_dask.data import make_problem
        X, y = make_problem({N}, {P}, cond=1e4, seed={SEED})
        finished = []
        def callback(i, alpha, fit):
            finished.append(i)
            if len(finished) == {stop_after}:
                if {action!r} == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                time.sleep(600)
        fit_path(X, y, store={str(store)!r}, batch={batch}, callback=callback, **{KW!r})
    """)
    return subprocess.Popen([sys.executable, "-c", script])


@pytest.mark.parametrize("batch", [1, 6])
def test_path_killed_with_sigkill_resumes_without_recomputing(data, tmp_path, batch):
    X, y = data
    ref = fit_path(X, y, batch=batch, **KW)  # uninterrupted, no store
    store = tmp_path / "path.zarr"
    proc = _run_in_subprocess(store, batch, stop_after=8, action="kill")
    assert proc.wait(timeout=300) == -signal.SIGKILL
    before = read_path_store(store)
    assert before["done"].sum() == 8

    resumed = fit_path(X, y, batch=batch, store=store, **KW)
    np.testing.assert_array_equal(resumed.resumed, before["done"])
    np.testing.assert_allclose(resumed.coefs, ref.coefs, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(resumed.objectives, ref.objectives, rtol=1e-12)
    np.testing.assert_array_equal(resumed.alphas, ref.alphas)
    # finished α were not recomputed: the rerun made exactly the passes of the unfinished ones
    # (each lockstep batch costs its slowest member; the start came from the store)
    expected = 0
    for first in range(0, len(ref.alphas), batch):
        todo = [i for i in range(first, min(first + batch, len(ref.alphas))) if not before["done"][i]]
        expected += max((ref.fits[i].n_passes for i in todo), default=0)
    # (plus one pass verifying the data's checksum before anything stored was used)
    assert resumed.total_passes == expected + 1
    assert 0 < expected < ref.total_passes
    # and once complete, a rerun reads everything back after the verification pass alone
    again = fit_path(X, y, batch=batch, store=store, **KW)
    assert again.total_passes == 1 and again.resumed.all()
    np.testing.assert_array_equal(again.coefs, resumed.coefs)


def test_a_second_writer_is_refused_and_the_store_stays_readable(data, tmp_path):
    X, y = data
    store = tmp_path / "path.zarr"
    proc = _run_in_subprocess(store, 1, stop_after=3, action="hold")
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            if (store / "done").exists() and read_path_store(store)["done"].sum() >= 3:
                break
            time.sleep(0.2)
        with pytest.raises(StoreLockedError, match=rf"being written by pid {proc.pid} on "):
            fit_path(X, y, batch=1, store=store, **KW)
        assert read_path_store(store)["done"].sum() == 3  # readable, nothing lost
    finally:
        proc.kill()
        proc.wait()
    # the writer is gone (killed): its lock is stale, the next run takes over and finishes
    done = fit_path(X, y, batch=1, store=store, **KW)
    assert done.resumed.sum() == 3 and done.converged.all()


def test_store_from_other_data_or_settings_is_refused(data, tmp_path):
    X, y = data
    store = tmp_path / "path.zarr"
    first = fit_path(X, y, batch=1, store=store, **{**KW, "n_alphas": 4})
    X2 = X.copy()
    X2[0, 0] += 1e-9
    with pytest.raises(StoreMismatchError, match="was made from other data .*checksum"):
        fit_path(X2, y, batch=1, store=store, **{**KW, "n_alphas": 4})
    with pytest.raises(StoreMismatchError, match="was made from other data .*shape"):
        fit_path(X[:-1], y[:-1], batch=1, store=store, **{**KW, "n_alphas": 4})
    with pytest.raises(StoreMismatchError, match=r"other settings \(tol: 1e-10 in the store, 1e-08 now"):
        fit_path(X, y, batch=1, store=store, **{**KW, "n_alphas": 4, "tol": 1e-8})
    # refused runs wrote nothing and left no lock: the store reads back, and resumes with 0 passes
    stored = read_path_store(store)
    assert stored["done"].all()
    np.testing.assert_array_equal(stored["coefs"], first.coefs)
    assert not (store / ".smem_dask.lock").exists()
    assert fit_path(X, y, batch=1, store=store, **{**KW, "n_alphas": 4}).total_passes == 1


def test_store_location_errors(data, tmp_path):
    X, y = data
    with pytest.raises(ValueError, match="a zarr group in a local directory"):
        fit_path(X, y, store=zarr.open_group(zarr.storage.MemoryStore()), **KW)
    other = zarr.open_group(tmp_path / "other.zarr", mode="w")
    other.create_array("X", data=np.zeros(3))
    with pytest.raises(StoreMismatchError, match="is a zarr group but not a path store"):
        fit_path(X, y, store=other, **KW)
    # a group in a local directory works like its path
    group = zarr.open_group(tmp_path / "g.zarr", mode="w").require_group("path")
    res = fit_path(X, y, store=group, **{**KW, "n_alphas": 3})
    np.testing.assert_array_equal(read_path_store(tmp_path / "g.zarr" / "path")["coefs"], res.coefs)


def test_dask_input_fingerprint_includes_chunks(data, tmp_path):
    import dask
    import dask.array as da

    X, y = data
    store = tmp_path / "path.zarr"
    kw = {**KW, "n_alphas": 3}
    with dask.config.set(scheduler="synchronous"):
        fit_path(da.from_array(X, chunks=(5000, -1)), da.from_array(y, chunks=5000), store=store, **kw)
        with pytest.raises(StoreMismatchError, match="chunks"):
            fit_path(da.from_array(X, chunks=(4000, -1)), da.from_array(y, chunks=4000), store=store,
                     **kw)
    assert os.path.isdir(store)
