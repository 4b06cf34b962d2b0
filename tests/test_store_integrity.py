"""The path store under attack: locks that hold against racing takeovers, damage (a deleted or
altered chunk) refused by name instead of read back as numbers, and directories that are not ours
left exactly as they were."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_misuse import refused, run, snapshot

from smem_dask import fit_path, make_problem
from smem_dask import store as store_module
from smem_dask.data import write_zarr
from smem_dask.store import (
    LOCK_NAME,
    StoreDamagedError,
    StoreLockedError,
    StoreMismatchError,
    read_path_store,
)

N_ALPHAS = 5


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A data store and a finished path store of it (adaptive curvature), made once: tests copy."""
    folder = tmp_path_factory.mktemp("made")
    data = folder / "d.zarr"
    write_zarr(data, 3000, 4, seed=3, chunk_rows=700)
    store = folder / "s.zarr"
    proc = run("path", data, "--n-alphas", N_ALPHAS, "--store", store, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert f"{N_ALPHAS}/{N_ALPHAS} converged" in proc.stdout
    return data, store


@pytest.fixture
def copy(made, tmp_path):
    data, store = made
    shutil.copytree(store, tmp_path / "s.zarr")
    return data, tmp_path / "s.zarr"


def _flip_bit(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def _resume(data, store, *extra):
    return run("path", data, "--n-alphas", N_ALPHAS, "--store", store, "--quiet", *extra)


# -- locks --------------------------------------------------------------------------------------------

_RACE = textwrap.dedent("""
    import json, multiprocessing as mp, os, socket, subprocess, sys, time
    from pathlib import Path
    from smem_dask.store import LOCK_NAME, PathStore, StoreLockedError

    root, rounds = Path(sys.argv[1]), int(sys.argv[2])
    lock, marker = root / LOCK_NAME, root / "holder"
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer exists: the lock written below is stale

    def racer(k, barrier, out):
        held, overlaps = [], 0
        for r in range(rounds):
            barrier.wait()
            if k == 0:
                lock.write_text(json.dumps({"pid": gone.pid, "host": socket.gethostname(),
                                            "since": 0}))
            barrier.wait()
            s = PathStore.__new__(PathStore)
            s.root, s._lock_path = root, lock
            try:
                s._acquire()
            except StoreLockedError:
                continue
            try:
                try:
                    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    overlaps += 1  # someone else holds the lock right now
                else:
                    os.close(fd)
                    time.sleep(0.01)
                    os.unlink(marker)
            finally:
                s.close()
            held.append(r)
        out.put((held, overlaps))

    if __name__ == "__main__":
        ctx = mp.get_context("fork")
        barrier, out = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=racer, args=(k, barrier, out)) for k in range(3)]
        for p in procs:
            p.start()
        results = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join()
        print(json.dumps(results))
""")


def test_three_processes_racing_for_a_stale_lock_never_hold_it_together(tmp_path):
    rounds = 50
    proc = subprocess.run([sys.executable, "-c", _RACE, str(tmp_path), str(rounds)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert sum(overlaps for _, overlaps in results) == 0, results
    held = [r for rounds_held, _ in results for r in rounds_held]
    assert set(held) == set(range(rounds))  # every round, the stale lock was taken over


_HOLD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from smem_dask.store import LOCK_NAME, PathStore
    s = PathStore.__new__(PathStore)
    s.root = Path(sys.argv[1])
    s._lock_path = s.root / LOCK_NAME
    s._acquire()
    print("holding", flush=True)
    sys.stdin.read()  # until the test closes our stdin
    s.close()
""")


def test_a_live_holder_refuses_a_second_writer_by_name_and_nothing_changes(copy):
    data, store = copy
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(store)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        before = snapshot(store)
        assert LOCK_NAME in before
        refused(_resume(data, store),
                rf"the path store {store} is being written by pid {holder.pid} on "
                rf"{socket.gethostname()} since ")
        assert snapshot(store) == before  # the holder's lock file included
        with pytest.raises(StoreLockedError, match=f"pid {holder.pid}") as caught:
            fit_path(*make_problem(3000, 4, seed=3), store=store, n_alphas=N_ALPHAS)
        assert isinstance(caught.value, RuntimeError)  # catchable as before
        assert snapshot(store) == before
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    assert not (store / LOCK_NAME).exists()  # released by its holder
    done = _resume(data, store)
    assert done.returncode == 0 and f"{N_ALPHAS} read from the store" in done.stdout, done.stderr


@pytest.fixture(scope="module")
def problem():
    return make_problem(3000, 4, seed=3)


@pytest.mark.parametrize("content", [b"", b"\x00\xff{garbage"])
def test_a_lock_file_left_behind_does_not_refuse_the_next_run(problem, tmp_path, content):
    """An empty lock file (a full disk while writing it) or garbage: what decides is the lock
    itself, not the file's contents."""
    store = tmp_path / "s.zarr"
    first = fit_path(*problem, n_alphas=N_ALPHAS, store=store)
    (store / LOCK_NAME).write_bytes(content)
    again = fit_path(*problem, n_alphas=N_ALPHAS, store=store)
    assert again.total_passes == 1 and again.resumed.all()  # the resume's verification pass
    np.testing.assert_array_equal(again.coefs, first.coefs)
    assert not (store / LOCK_NAME).exists()


# -- damage ---------------------------------------------------------------------------------------------

def _open_for_resume(store):
    """The path store opened as a resume opens it (its own fingerprint and settings)."""
    attrs = json.loads((store / "zarr.json").read_text())["attributes"]
    return store_module.PathStore(store, attrs["fingerprint"], attrs["settings"])


def _resume_in_process(store):
    with _open_for_resume(store) as opened:
        opened.load_start(4)
        for i in np.flatnonzero(opened.done()):
            opened.load_alpha(int(i))
        opened.load_warm(N_ALPHAS - 1)


@pytest.mark.parametrize("attack, what, through_cli", [
    ("delete coefs/c/3/0", r"coefs of α 4 of 5: its chunk file coefs/c/3/0 is missing", True),
    ("flip coefs/c/3/0", r"coefs of α 4 of 5: checksum mismatch", True),
    ("flip start/gram/c/0/0", r"start/gram: checksum mismatch", True),
    ("delete n_iter/c/2", r"n_iter of α 3 of 5: its chunk file n_iter/c/2 is missing", False),
    ("delete converged/c/1", r"converged of α 2 of 5: its chunk file converged/c/1 is missing", False),
    ("flip objectives/c/0", r"objectives of α 1 of 5: checksum mismatch", False),
    ("delete start/rhs/c/0", r"start/rhs: its chunk file start/rhs/c/0 is missing", False),
    ("flip alphas/c/0", r"alphas: checksum mismatch", False),
    ("flip warm/4/beta/c/0", r"warm/4/beta: checksum mismatch", False),
])
def test_a_damaged_path_store_is_refused_by_name_and_left_unchanged(copy, attack, what, through_cli):
    data, store = copy
    action, chunk = attack.split()
    if action == "delete":
        (store / chunk).unlink()
    else:
        _flip_bit(store / chunk)
    before = snapshot(store)
    per_alpha = re.match(r"\w+ of α (\d+)", what) or chunk.startswith("warm/")
    fix = (rf"delete {store / 'done/c'}/\d to recompute that α, or delete {store}, and rerun$"
           if per_alpha else rf"delete {store} and rerun$")
    with pytest.raises(StoreDamagedError, match=rf"^the path store {store} is damaged \({what}.*\); {fix}"):
        _resume_in_process(store)
    if through_cli:
        refused(_resume(data, store), rf"the path store {store} is damaged \({what}.*\); {fix}")
    if not chunk.startswith(("start/", "warm/")):  # read_path_store reads the results
        with pytest.raises(StoreDamagedError, match=what):
            read_path_store(store)
    assert snapshot(store) == before
    assert isinstance(StoreDamagedError("x"), StoreMismatchError)


def test_a_damaged_alpha_is_recomputed_once_unmarked_as_the_message_says(copy, made):
    data, store = copy
    (store / "coefs/c/3/0").unlink()
    refused(_resume(data, store), rf"delete {store / 'done/c/3'} to recompute that α")
    (store / "done/c/3").unlink()
    again = _resume(data, store)
    assert again.returncode == 0, again.stderr
    assert f"{N_ALPHAS - 1} read from the store" in again.stdout
    got, want = read_path_store(store), read_path_store(made[1])
    assert got["done"].all()
    np.testing.assert_allclose(got["coefs"], want["coefs"], rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(got["alphas"], want["alphas"])


def test_a_damaged_fixed_curvature_gram_is_refused(problem, tmp_path):
    store = tmp_path / "fixed.zarr"
    first = fit_path(*problem, n_alphas=N_ALPHAS, store=store, curvature="fixed")
    again = fit_path(*problem, n_alphas=N_ALPHAS, store=store, curvature="fixed")
    np.testing.assert_array_equal(again.coefs, first.coefs)
    _flip_bit(store / "shared/fixed_gram/c/0/0")
    before = snapshot(store)
    with pytest.raises(StoreDamagedError, match=r"is damaged \(shared/fixed_gram: checksum mismatch"):
        fit_path(*problem, n_alphas=N_ALPHAS, store=store, curvature="fixed")
    assert snapshot(store) == before


def test_every_path_store_array_carries_a_checksum(made):
    _, store = made
    arrays = [f.parent for f in store.rglob("zarr.json")
              if json.loads(f.read_text())["node_type"] == "array"]
    assert len(arrays) >= 16
    for array in arrays:
        codecs = [c["name"] for c in json.loads((array / "zarr.json").read_text())["codecs"]]
        assert codecs[-1] == "crc32c", (array, codecs)


def test_a_store_of_the_previous_version_is_read_and_its_damage_still_found(problem, tmp_path,
                                                                             monkeypatch):
    """Arrays written without chunk checksums (zstd only, chunks equal to the fill value not written,
    as earlier versions wrote them) are read and resumed; a deleted chunk is still found through its
    fill value (NaN, -1)."""
    X, y = problem
    store = tmp_path / "old.zarr"
    with monkeypatch.context() as m:
        m.setattr(store_module, "_ARRAY_OPTIONS", {})
        first = fit_path(X, y, n_alphas=N_ALPHAS, store=store)
    codecs = json.loads((store / "coefs/zarr.json").read_text())["codecs"]
    assert [c["name"] for c in codecs] == ["bytes", "zstd"]
    again = fit_path(X, y, n_alphas=N_ALPHAS, store=store)
    assert again.total_passes == 1 and again.resumed.all()  # the resume's verification pass
    np.testing.assert_array_equal(again.coefs, first.coefs)
    np.testing.assert_array_equal(read_path_store(store)["coefs"], first.coefs)
    (store / "coefs/c/1/0").unlink()
    before = snapshot(store)
    with pytest.raises(StoreDamagedError, match=r"coefs of α 2 of 5: NaN"):
        fit_path(X, y, n_alphas=N_ALPHAS, store=store)
    with pytest.raises(StoreDamagedError, match=r"coefs of α 2 of 5: NaN"):
        read_path_store(store)
    assert snapshot(store) == before


def test_a_store_fingerprinted_by_sampled_blocks_is_refused_but_still_readable(problem, tmp_path):
    """Earlier versions fingerprinted three sampled blocks (a "checksum" in the fingerprint): such a
    store cannot be verified against the data, so it is not resumed; its results can still be read."""
    X, y = problem
    store = tmp_path / "sampled.zarr"
    first = fit_path(X, y, n_alphas=N_ALPHAS, store=store)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["fingerprint"]["checksum"] = "0" * 64
    del meta["attributes"]["data_checksum"]
    (store / "zarr.json").write_text(json.dumps(meta))
    before = snapshot(store)
    with pytest.raises(StoreMismatchError, match=r"written by an earlier smem_dask that checksummed only "
                                                 r"three blocks .* delete it and rerun"):
        fit_path(X, y, n_alphas=N_ALPHAS, store=store)
    assert snapshot(store) == before
    np.testing.assert_array_equal(read_path_store(store)["coefs"], first.coefs)


# -- directories that are not ours ----------------------------------------------------------------------

def test_a_directory_that_is_not_a_path_store_is_refused_untouched(made, tmp_path):
    data, _ = made
    folder = tmp_path / "project"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "model.py").write_text("print('precious')\n")
    (folder / "notes.txt").write_text("keep me\n")
    before = snapshot(folder)
    refused(_resume(data, folder), rf"{folder} is not a path store .*use an empty or new directory")
    assert snapshot(folder) == before
    assert sorted(os.listdir(folder)) == ["notes.txt", "src"]
    # a data store is not a path store either
    before = snapshot(data)
    refused(_resume(data, data), rf"{data} is a zarr group but not a path store")
    assert snapshot(data) == before
    assert not (data / LOCK_NAME).exists()


def test_an_empty_directory_becomes_a_path_store(made, tmp_path):
    data, store = made
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = _resume(data, empty)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(read_path_store(empty)["coefs"], read_path_store(store)["coefs"])


def test_a_path_store_whose_own_metadata_is_garbled_is_refused_as_damaged(problem, tmp_path):
    store = tmp_path / "s.zarr"
    fit_path(*problem, n_alphas=N_ALPHAS, store=store)
    (store / "zarr.json").write_text('{"zarr_format": 3, "node_ty')
    before = snapshot(store)
    with pytest.raises(StoreDamagedError, match=rf"the path store {store} is damaged \(its zarr.json "
                                                rf"is missing or unreadable\); delete {store} and rerun"):
        fit_path(*problem, n_alphas=N_ALPHAS, store=store)
    assert snapshot(store) == before
