"""The path store (smem_dask/store.py) as a unit, with no data pass: end states and results made by
hand, written, reopened and read back bitwise; the identity checks and their messages; one writer at
a time, and the lock of a killed writer taken over; damage refused by name.

The estimator- and CLI-level store tests (resume after SIGKILL, racing takeovers, damaged chunks on
disk) are in test_store.py and test_store_integrity.py; these drive ``PathStore`` directly."""

import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import zarr

from smem_dask.curvature import FixedCurvature
from smem_dask.solver import FitResult, WarmStart
from smem_dask.stats import BlockStats
from smem_dask.store import (
    PathStore,
    StoreDamagedError,
    StoreLockedError,
    StoreMismatchError,
    read_path_store,
)

P = 3
Q = P + 1  # coefficients, then the intercept
N_ROWS, WEIGHT = 40.0, 37.25
FINGERPRINT = {"shape": [40, P], "dtype": "float64", "chunks": [20, 20]}
SETTINGS = {"loss": "logistic", "penalty": "l1", "tol": 1e-10, "n_alphas": 3}
ALPHAS = np.array([0.5, 0.05, 0.005])
LOCK = ".smem_dask.lock"


def _warm(rng, fixed=None):
    """A WarmStart of random numbers (nothing checks they come from a fit): every array distinct, so
    a field read back into the wrong slot shows."""
    A = rng.standard_normal((12, Q))
    system = BlockStats.system_only(N_ROWS, WEIGHT, A.T @ A, rng.standard_normal(Q))
    return WarmStart(rng.standard_normal(Q), float(rng.uniform(1, 10)), rng.standard_normal(Q), system,
                     rng.standard_normal(Q), fixed)


def _fixed(rng):
    A = rng.standard_normal((12, Q))
    return FixedCurvature(0.25 * A.T @ A, WEIGHT, P, N_ROWS)


def _fit(rng, warm, converged=True):
    return FitResult(coef=rng.standard_normal(P), intercept=float(rng.standard_normal()),
                     n_iter=int(rng.integers(1, 100)), n_passes=int(rng.integers(100, 200)),
                     objective=float(rng.uniform(0.1, 1.0)), grad_norm=1e-9, converged=converged,
                     n_restarts=2, warm=warm)


def _same_warm(got: WarmStart, want: WarmStart):
    """Bitwise: every array and scalar of the end state, the fixed Gram excepted (checked apart)."""
    for name in ("beta", "loss_grad", "expand"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), strict=True)
    np.testing.assert_array_equal(got.system.gram, want.system.gram, strict=True)
    np.testing.assert_array_equal(got.system.rhs, want.system.rhs, strict=True)
    assert (got.loss_sum, got.system.weight, got.system.n) == (want.loss_sum, want.system.weight,
                                                                want.system.n)
    assert type(got.loss_sum) is float


def _same_fixed(got: FixedCurvature, want: FixedCurvature):
    assert isinstance(got, FixedCurvature)
    np.testing.assert_array_equal(got.gram, want.gram, strict=True)
    assert (got.weight, got.n, got.p) == (want.weight, want.n, want.p)


def _open(root, fingerprint=FINGERPRINT, settings=SETTINGS):
    return PathStore(root, fingerprint, settings)


# -- round trip ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_fixed", [False, True], ids=["adaptive", "fixed-gram"])
def test_the_start_round_trips_bitwise_through_a_reopened_store(tmp_path, with_fixed):
    rng = np.random.default_rng(1)
    fixed = _fixed(rng) if with_fixed else None
    start = _warm(rng, fixed)
    root = tmp_path / "s.zarr"
    with _open(root) as store:
        assert not store.has_start()
        store.save_start(ALPHAS, start, 3, P)
        assert store.has_start()
        assert not store.done().any() and store.done().shape == (3,)
    assert not (root / LOCK).exists()  # closed: the lock file is gone
    with _open(root) as store:
        assert store.has_start()
        alphas, warm, n_passes = store.load_start(P)
    np.testing.assert_array_equal(alphas, ALPHAS, strict=True)
    assert n_passes == 3 and type(n_passes) is int
    _same_warm(warm, start)
    if with_fixed:
        _same_fixed(warm.fixed, fixed)
    else:
        assert warm.fixed is None


@pytest.mark.parametrize("with_fixed", [False, True], ids=["adaptive", "fixed-gram"])
def test_each_alpha_and_its_warm_state_round_trip_bitwise(tmp_path, with_fixed):
    rng = np.random.default_rng(2)
    fixed = _fixed(rng) if with_fixed else None
    root = tmp_path / "s.zarr"
    fits = {0: _fit(rng, _warm(rng, fixed)), 2: _fit(rng, _warm(rng, fixed), converged=False)}
    with _open(root) as store:
        store.save_start(ALPHAS, _warm(rng, fixed), 1, P)
        for i, fit in fits.items():
            store.save_alpha(i, fit, keep_warm=True)
        np.testing.assert_array_equal(store.done(), [True, False, True])
    with _open(root) as store:
        np.testing.assert_array_equal(store.done(), [True, False, True])
        store.load_start(P)
        for i, fit in fits.items():
            got = store.load_alpha(i)
            np.testing.assert_array_equal(got.coef, fit.coef, strict=True)
            assert (got.intercept, got.objective, got.n_iter, got.n_passes, got.converged) == (
                fit.intercept, fit.objective, fit.n_iter, fit.n_passes, fit.converged)
            assert type(got.converged) is bool and type(got.n_iter) is int
            warm = store.load_warm(i)
            _same_warm(warm, fit.warm)
            if with_fixed:  # the path's one shared Gram, the same for every α
                _same_fixed(warm.fixed, fixed)
            else:
                assert warm.fixed is None
    # the read-only view gives the same numbers, unfinished entries as their fill values
    view = read_path_store(root)
    assert view["settings"] == SETTINGS and view["fingerprint"] == FINGERPRINT
    np.testing.assert_array_equal(view["alphas"], ALPHAS, strict=True)
    np.testing.assert_array_equal(view["coefs"][[0, 2]], np.array([fits[0].coef, fits[2].coef]))
    assert np.isnan(view["coefs"][1]).all() and view["n_iter"][1] == -1
    np.testing.assert_array_equal(view["converged"], [True, False, False])
    np.testing.assert_array_equal(view["objectives"][[0, 2]], [fits[0].objective, fits[2].objective])


def test_an_alpha_saved_without_its_warm_state_keeps_the_result_only(tmp_path):
    rng = np.random.default_rng(3)
    root = tmp_path / "s.zarr"
    with _open(root) as store:
        store.save_start(ALPHAS, _warm(rng), 1, P)
        fit = _fit(rng, _warm(rng))
        store.save_alpha(1, fit, keep_warm=False)
        np.testing.assert_array_equal(store.load_alpha(1).coef, fit.coef, strict=True)
    assert not (root / "warm").exists()


def _store_with_warm_alpha(root, rng, fixed):
    fit = _fit(rng, _warm(rng, fixed))
    with _open(root) as store:
        store.save_start(ALPHAS, _warm(rng, fixed), 1, P)
        store.save_alpha(1, fit, keep_warm=True)
    return fit


def test_load_warm_on_a_freshly_reopened_store_without_a_fixed_gram(tmp_path):
    rng = np.random.default_rng(4)
    fit = _store_with_warm_alpha(tmp_path / "s.zarr", rng, None)
    with _open(tmp_path / "s.zarr") as store:  # load_start is not called
        warm = store.load_warm(1)
    _same_warm(warm, fit.warm)
    assert warm.fixed is None


def test_load_warm_on_a_freshly_reopened_store_carries_the_fixed_gram(tmp_path):
    rng = np.random.default_rng(5)
    fixed = _fixed(rng)
    fit = _store_with_warm_alpha(tmp_path / "s.zarr", rng, fixed)
    with _open(tmp_path / "s.zarr") as store:  # load_start is not called
        warm = store.load_warm(1)
    _same_warm(warm, fit.warm)
    _same_fixed(warm.fixed, fixed)  # read on first use: no call-order dependency on load_start


# -- identity -----------------------------------------------------------------------------------------

@pytest.fixture
def saved(tmp_path):
    root = tmp_path / "s.zarr"
    with _open(root) as store:
        store.save_start(ALPHAS, _warm(np.random.default_rng(6)), 1, P)
    return root


@pytest.mark.parametrize("fingerprint, differs", [
    ({**FINGERPRINT, "shape": [41, P]}, "shape: [40, 3] in the store, [41, 3] now"),
    ({**FINGERPRINT, "dtype": "float32"}, "dtype: 'float64' in the store, 'float32' now"),
    ({**FINGERPRINT, "chunks": [40]}, "chunks: [20, 20] in the store, [40] now"),
    ({**FINGERPRINT, "extra": 1}, "extra: None in the store, 1 now"),
])
def test_a_store_of_other_data_is_refused_naming_what_differs(saved, fingerprint, differs):
    with pytest.raises(StoreMismatchError) as info:
        _open(saved, fingerprint=fingerprint)
    assert not isinstance(info.value, StoreDamagedError)
    assert str(info.value) == (f"the path store {saved} was made from other data ({differs}); use a new "
                               "store for these data")
    assert not (saved / LOCK).exists()  # the refused writer released the lock


@pytest.mark.parametrize("settings, differs", [
    ({**SETTINGS, "tol": 1e-8}, "tol: 1e-10 in the store, 1e-08 now"),
    ({**SETTINGS, "penalty": "l2", "n_alphas": 4},
     "n_alphas: 3 in the store, 4 now; penalty: 'l1' in the store, 'l2' now"),
    ({k: v for k, v in SETTINGS.items() if k != "loss"}, "loss: 'logistic' in the store, None now"),
])
def test_a_store_of_other_settings_is_refused_naming_what_differs(saved, settings, differs):
    with pytest.raises(StoreMismatchError) as info:
        _open(saved, settings=settings)
    assert str(info.value) == (f"the path store {saved} was made with other settings ({differs}); rerun "
                               "with the same settings to resume, or use a new store")
    with _open(saved) as store:  # nothing was changed by the refusals
        np.testing.assert_array_equal(store.load_start(P)[0], ALPHAS, strict=True)


def test_settings_are_compared_as_json(tmp_path):
    """A tuple and a list are the same setting once stored (JSON has no tuples)."""
    root = tmp_path / "s.zarr"
    _open(root, settings={**SETTINGS, "groups": (0, 0, 1)}).close()
    _open(root, settings={**SETTINGS, "groups": [0, 0, 1]}).close()
    assert read_path_store(root)["settings"]["groups"] == [0, 0, 1]


def test_check_data_records_the_checksum_then_refuses_another(tmp_path):
    root = tmp_path / "s.zarr"
    with _open(root) as store:
        store.check_data("0123abcd")
        store.check_data("0123abcd")  # the same data: no objection
        store.save_start(ALPHAS, _warm(np.random.default_rng(7)), 1, P)
    with _open(root) as store:
        store.check_data("0123abcd")
        with pytest.raises(StoreMismatchError) as info:
            store.check_data("0123abce")
    assert str(info.value) == (f"the path store {root} was made from other data (block checksums differ: "
                               "0123abcd in the store, 0123abce now); use a new store for these data")


def test_check_data_refuses_a_started_store_that_recorded_no_checksum(saved):
    with _open(saved) as store, pytest.raises(StoreMismatchError,
                                             match=r"block checksums differ: none recorded, by an older "
                                                   r"smem_dask in the store, 0123abcd now"):
        store.check_data("0123abcd")


# -- one writer ---------------------------------------------------------------------------------------

def test_a_second_writer_is_refused_while_the_first_holds_the_lock(saved):
    first = _open(saved)
    try:
        with pytest.raises(StoreLockedError) as info:
            _open(saved)
        message = str(info.value)
        assert message.startswith(f"the path store {saved} is being written by pid {os.getpid()} on "
                                  f"{socket.gethostname()} since ")
        assert message.endswith("; wait for it to finish, or use another store")
        assert isinstance(info.value, OSError) and isinstance(info.value, RuntimeError)
        # the refused writer took nothing from the holder, which goes on writing
        first.save_alpha(0, _fit(np.random.default_rng(8), _warm(np.random.default_rng(9))), False)
    finally:
        first.close()
    with _open(saved) as again:  # released: the next writer opens it and sees the α
        np.testing.assert_array_equal(again.done(), [True, False, False])


_HOLDER = textwrap.dedent("""
    import sys
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_path_store import ALPHAS, P, _fit, _open, _warm
    store = _open(sys.argv[1])
    rng = np.random.default_rng(10)
    store.save_start(ALPHAS, _warm(rng), 4, P)
    store.save_alpha(0, _fit(rng, _warm(rng)), keep_warm=True)
    print("holding", flush=True)
    sys.stdin.read()  # never closed: the process holds the store until it is killed
""")


def test_the_lock_of_a_writer_killed_by_sigkill_is_taken_over(tmp_path):
    root = tmp_path / "s.zarr"
    child = subprocess.Popen([sys.executable, "-c", _HOLDER, str(root), os.path.dirname(__file__)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "holding\n"
        with pytest.raises(StoreLockedError, match=rf"is being written by pid {child.pid} on "):
            _open(root)
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdin.close()
        child.stdout.close()
    assert (root / LOCK).exists()  # left behind by the killed writer, naming it; no obstacle
    with _open(root) as store:
        assert f'"pid": {os.getpid()}' in (root / LOCK).read_text()  # ours now
        assert store.has_start() and store.load_start(P)[2] == 4
        np.testing.assert_array_equal(store.done(), [True, False, False])
        # what the killed writer finished reads back exactly (the same draws as in the child)
        rng = np.random.default_rng(10)
        _warm(rng)
        fit = _fit(rng, _warm(rng))
        np.testing.assert_array_equal(store.load_alpha(0).coef, fit.coef, strict=True)
        _same_warm(store.load_warm(0), fit.warm)
    assert not (root / LOCK).exists()


# -- damage -------------------------------------------------------------------------------------------

def _finished_alpha_store(root):
    rng = np.random.default_rng(11)
    fit = _fit(rng, _warm(rng))
    with _open(root) as store:
        store.save_start(ALPHAS, _warm(rng), 1, P)
        store.save_alpha(1, fit, keep_warm=True)
    return fit


def test_a_nan_written_into_a_stored_coefficient_is_refused_by_name(tmp_path):
    root = tmp_path / "s.zarr"
    _finished_alpha_store(root)
    zarr.open_group(root, mode="a")["coefs"][1, 2] = np.nan  # through zarr: the checksum stays valid
    done_chunk = root / "done" / "c" / "1"
    expected = (f"the path store {root} is damaged (coefs of α 2 of 3: NaN or infinite where a finished "
                f"α has a number); delete {done_chunk} to recompute that α, or delete {root}, and rerun")
    with _open(root) as store:
        with pytest.raises(StoreDamagedError) as info:
            store.load_alpha(1)
        assert str(info.value) == expected
        assert isinstance(info.value, StoreMismatchError)
    with pytest.raises(StoreDamagedError) as info:
        read_path_store(root)
    assert str(info.value) == expected
    # the fix the message names works: that α is no longer finished, the others are untouched
    assert done_chunk.is_file()
    done_chunk.unlink()
    with _open(root) as store:
        assert not store.done().any()


@pytest.mark.parametrize("name, value, what", [
    ("n_iter", -5, "n_iter of α 2 of 3: -5, not a count"),
    # the fill value: zarr drops a chunk equal to it when written through a reopened array
    ("n_iter", -1, "n_iter of α 2 of 3: its chunk file n_iter/c/1 is missing"),
    ("converged", 3, "converged of α 2 of 3: 3, not 0 or 1"),
    ("objectives", np.inf, "objectives of α 2 of 3: NaN or infinite where a finished α has a number"),
])
def test_an_impossible_per_alpha_value_is_refused_by_name(tmp_path, name, value, what):
    root = tmp_path / "s.zarr"
    _finished_alpha_store(root)
    zarr.open_group(root, mode="a")[name][1] = value
    with _open(root) as store, pytest.raises(StoreDamagedError) as info:
        store.load_alpha(1)
    assert str(info.value).startswith(f"the path store {root} is damaged ({what}); delete ")


def test_a_nan_in_a_stored_warm_state_is_refused_by_name(tmp_path):
    root = tmp_path / "s.zarr"
    fit = _finished_alpha_store(root)
    zarr.open_group(root, mode="a")["warm/1/expand"][0] = np.nan
    with _open(root) as store:
        np.testing.assert_array_equal(store.load_alpha(1).coef, fit.coef)  # the result itself is sound
        with pytest.raises(StoreDamagedError,
                           match=r"damaged \(warm/1/expand: 1 NaN or infinite values where numbers "
                                 r"were written\); delete .*done/c/1 to recompute that α"):
            store.load_warm(1)


def test_a_damaged_start_is_refused_with_the_whole_store_to_delete(tmp_path):
    root = tmp_path / "s.zarr"
    _finished_alpha_store(root)
    zarr.open_group(root, mode="a")["start/loss_grad"][3] = np.inf
    with _open(root) as store, pytest.raises(StoreDamagedError) as info:
        store.load_start(P)
    assert str(info.value) == (f"the path store {root} is damaged (start/loss_grad: 1 NaN or infinite "
                               f"values where numbers were written); delete {root} and rerun")
