"""Bad input: a ValueError that names the problem, on numpy and on dask/zarr input; nothing lost."""

import functools
import hashlib
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.data import make_problem, open_store, write_zarr


@pytest.fixture(autouse=True)
def _sync_scheduler():
    with dask.config.set(scheduler="sync"):
        yield


def _lazy(a):
    return None if a is None else da.from_array(np.asarray(a), chunks=37)


def _data(rng, n=200, p=4):
    X = rng.normal(size=(n, p))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(float)
    return X, y


def _cases(rng):
    X, y = _data(rng)
    X_nan = X.copy()
    X_nan[5, 2] = np.nan
    X_inf = X.copy()
    X_inf[7, 1] = -np.inf
    X_inf[9, 0] = np.inf
    y_nan = y.copy()
    y_nan[3] = np.nan
    s_neg = np.ones(len(y))
    s_neg[4] = -0.5
    return [
        ("nan-X", SMEMClassifier, X_nan, y, None, "X contains 1 NaN or infinite values"),
        ("inf-X", SMEMClassifier, X_inf, y, None, "X contains 2 NaN or infinite values"),
        ("nan-y", SMEMClassifier, X, y_nan, None, "y contains NaN"),
        ("nan-y-regression", SMEMRegressor, X, y_nan, None, "y contains 1 NaN or infinite values"),
        ("one-class", SMEMClassifier, X, np.ones(len(y)), None, "y has only one class"),
        # (the logistic loss fits more than two classes by the multinomial loss)
        ("three-classes", functools.partial(SMEMClassifier, loss="hinge"), X, np.arange(len(y)) % 3, None,
         "y has 3 classes .* 'hinge' needs exactly two"),
        ("lengths", SMEMClassifier, X, y[:-1], None,
         "X and y have different lengths: X has 200 rows, y has 199"),
        ("negative-weight", SMEMClassifier, X, y, s_neg, "sample_weight must be non-negative"),
        ("zero-weights", SMEMClassifier, X, y, np.zeros(len(y)), "sample_weight sums to zero"),
        ("weight-shape", SMEMClassifier, X, y, np.ones(3), r"sample_weight must have shape \(200,\)"),
        ("X-1d", SMEMClassifier, X[:, 0], y, None, "X must be 2-dimensional"),
        ("y-2d", SMEMRegressor, X, X[:, :2], None, "y must be 1-dimensional"),
    ]


@pytest.mark.parametrize("lazy", [False, True], ids=["numpy", "dask"])
@pytest.mark.parametrize("case", range(12))
def test_bad_input_names_the_problem(case, lazy):
    name, cls, X, y, s, match = _cases(np.random.default_rng(case))[case]
    if lazy:
        X, y, s = _lazy(X), _lazy(y), _lazy(s)
    with pytest.raises(ValueError, match=match):
        cls(alpha=1e-2).fit(X, y, sample_weight=s)


def test_non_numeric_X_is_refused(rng):
    X, y = _data(rng)
    with pytest.raises(ValueError, match="X must hold real numbers"):
        SMEMClassifier().fit(X.astype(str), y)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(str(f.relative_to(path)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def test_store_with_nan_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / "bad.zarr"
    write_zarr(path, 1000, 3, chunk_rows=300, seed=1)
    group = zarr.open_group(path, mode="r+")
    group["X"][123, 1] = np.nan
    before = _digest(path)
    X, y = open_store(path)
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite values"):
        SMEMClassifier().fit(X, y)
    assert _digest(path) == before


def test_store_without_X_or_y(tmp_path):
    for missing in ("X", "y"):
        group = zarr.open_group(tmp_path / f"no{missing}.zarr", mode="w")
        for name in {"X", "y"} - {missing}:
            group.create_array(name, shape=(10, 2) if name == "X" else (10,), dtype="f8")
        with pytest.raises(ValueError, match=f"has no array '{missing}'"):
            open_store(tmp_path / f"no{missing}.zarr")
    with pytest.raises(ValueError, match="no zarr group at"):
        open_store(tmp_path / "does-not-exist.zarr")


def test_a_zarr_group_instead_of_an_array_is_explained(tmp_path):
    write_zarr(tmp_path / "g.zarr", 100, 2)
    group = zarr.open_group(tmp_path / "g.zarr", mode="r")
    with pytest.raises(ValueError, match="X is a zarr group; pass its array"):
        SMEMClassifier().fit(group, group["y"])


@pytest.mark.parametrize("persist", ["never", "always", 1, None])
def test_persist_takes_auto_true_or_false_only(persist):
    """"never" used to be read as True (a non-empty string): persisting what the user meant to stream."""
    X, y = make_problem(200, 3, seed=1)
    with pytest.raises(ValueError, match=r"persist must be 'auto', True or False, got "):
        SMEMClassifier(persist=persist).fit(da.from_array(X, chunks=50), da.from_array(y, chunks=50))
