"""Nothing lost, nothing read from the wrong place: overwrites that cannot destroy, store paths that mean
the same on every worker, result files checked before any pass."""

import os
import time

import dask
import dask.array as da
import numpy as np
import pytest
from test_misuse import refused, run, snapshot

from smem_dask.data import make_problem, open_store, write_zarr


def _project(folder):
    """A directory of the user's that is not a store: source files and a sub-folder."""
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "model.py").write_text("print('precious')\n")
    (folder / "notes.txt").write_text("keep me\n")
    return folder


def test_make_data_overwrite_refuses_a_directory_that_is_not_our_store(tmp_path):
    folder = _project(tmp_path / "project")
    before = snapshot(folder)
    refused(run("make-data", folder, "--n", 100, "--p", 2, "--overwrite"),
            "is not a data store written by smem_dask; refusing to overwrite it")
    assert snapshot(folder) == before
    with pytest.raises(ValueError, match="not a data store written by smem_dask"):
        write_zarr(folder, 100, 2, overwrite=True)
    assert snapshot(folder) == before


def test_make_data_overwrite_replaces_our_own_store_and_an_empty_directory(tmp_path):
    store = tmp_path / "d.zarr"
    write_zarr(store, 100, 2, seed=1)
    write_zarr(store, 150, 3, seed=2, overwrite=True)
    X, y = open_store(store)
    want = make_problem(150, 3, seed=2)
    np.testing.assert_array_equal(X[:], want[0])
    np.testing.assert_array_equal(y[:], want[1])
    empty = tmp_path / "empty"
    empty.mkdir()
    write_zarr(empty, 50, 2, overwrite=True)
    assert open_store(empty)[0].shape == (50, 2)


def test_a_relative_store_path_reads_the_same_data_from_another_directory(tmp_path, monkeypatch):
    """Workers resolve a store's path in their own working directory: open_store makes it absolute,
    so a worker started elsewhere reads the store the user named (here: this process after chdir)."""
    monkeypatch.chdir(tmp_path)
    write_zarr("rel.zarr", 300, 3, chunk_rows=100, seed=4)
    X, y = open_store("rel.zarr")
    lazy = da.from_zarr(X)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(lazy.compute(), make_problem(300, 3, seed=4)[0])


@pytest.mark.parametrize("command, option", [("fit", "--out"), ("path", "--out"), ("path", "--plot")])
def test_a_result_file_in_a_missing_directory_fails_before_any_pass(tmp_path, command, option):
    store = tmp_path / "d.zarr"
    write_zarr(store, 2000, 3, seed=5)
    before = snapshot(store)
    target = tmp_path / "missing" / ("r.png" if option == "--plot" else "r.json")
    extra = ["--n-alphas", 3] if command == "path" else []
    t0 = time.perf_counter()
    proc = run(command, store, option, target, *extra)
    assert time.perf_counter() - t0 < 30  # the interpreter's start-up; no data pass ran
    refused(proc, f"{option} .*: the directory .*missing does not exist")
    assert "iter" not in proc.stdout and not os.path.exists(target.parent)
    assert snapshot(store) == before


def test_a_result_file_under_a_file_is_refused_naming_the_file(tmp_path):
    """``--out afile/r.json`` with ``afile`` a regular file: refused before any pass, and the
    message says the parent is a file (it used to say the directory did not exist)."""
    store = tmp_path / "d.zarr"
    write_zarr(store, 2000, 3, seed=5)
    (tmp_path / "afile").write_text("not a directory")
    before = snapshot(store)
    proc = run("fit", store, "--out", tmp_path / "afile" / "r.json")
    refused(proc, r"--out .*afile/r\.json: .*afile is a file, not a directory")
    assert snapshot(store) == before and (tmp_path / "afile").read_text() == "not a directory"
