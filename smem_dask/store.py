"""The zarr store of a regularization path: shared statistics and per-α results, resumable.

Layout of the group (zarr v3)::

    zarr.json             attrs: format, fingerprint (of the data), settings (of the path)
    alphas                (n_alphas,)
    start/…               where every α of the first batch starts: β, loss sum and gradient, the
                          M-step system (Gram, right-hand side), W and n; passes it took
    shared/fixed_gram     b·Σ s x̃x̃ᵀ of the fixed-curvature mode (one Gram for the whole path)
    coefs                 (n_alphas, p), one chunk per α
    intercepts, objectives, n_iter, n_passes, converged
    done                  (n_alphas,) int8 — set to 1 only after everything of that α is written
    warm/<i>/…            the end state of α i when a later batch starts from it

Every α is written as it finishes and marked ``done`` last, so a path killed at any moment (SIGKILL
included) leaves a store whose ``done`` entries are complete; a rerun skips them and resumes. A
store made from other data (fingerprint) or other settings is refused, never silently reused, and
so is a directory that is not a path store (checked before anything is written into it).

Damage is refused, not read back as numbers. Every array is written with a CRC-32C of each chunk
(zarr's ``crc32c`` codec after zstd) and with every chunk on disk: arrays are created with
``write_empty_chunks`` and no value a finished α stores equals its array's fill value (NaN, −1, 0
for ``done``; zarr does not keep that setting when an array is reopened, so a future array whose
stored values can equal its fill value must be written through the handle that created it).
Every value read back is verified: a failed checksum, a missing chunk, or a value a finished α
cannot have (NaN coefficients or objective, ``n_iter`` −1, the fill values) raises
:class:`StoreDamagedError` naming what is damaged. The fix it names: delete that α's ``done`` chunk
(the α is recomputed) or the whole store. Arrays written without checksums (same format,
``smem_dask.path/1``: checksums change how chunks are encoded, which zarr records per array, not
the layout) are read and checked by value only: a missing chunk still shows as its fill value, but
an altered one cannot be told from a true one. Stores of earlier versions, whose fingerprint
sampled three blocks of the data, are not resumed (their data cannot be verified; they are still
read by :func:`read_path_store`); a store records ``data_checksum``, the data's full checksum.

One writer at a time: the writer holds the lock of :mod:`smem_dask.locks` on the lock file
``.smem_dask.lock`` (a lock left by a killed process is free at once; limitations there).
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from .curvature import FixedCurvature
from .data import check_format
from .locks import FileLock, StoreLockedError
from .solver import FitResult, WarmStart

__all__ = ["PathStore", "StoreDamagedError", "StoreLockedError", "StoreMismatchError", "read_path_store"]

FORMAT = "smem_dask.path/1"
LOCK_NAME = ".smem_dask.lock"
_RESULTS = ("intercepts", "objectives", "n_iter", "n_passes", "converged")

#: how every array is written: zstd, then a CRC-32C of the compressed chunk (checked on every read),
#: and every chunk stored even when it equals the fill value, so a missing chunk is damage
_ARRAY_OPTIONS = {"compressors": (ZstdCodec(), Crc32cCodec()), "config": {"write_empty_chunks": True}}


class StoreMismatchError(ValueError):
    """The store was made from other data or with other settings."""


class StoreDamagedError(StoreMismatchError):
    """Part of the store was lost or altered after it was written."""


def _root(location) -> Path:
    if isinstance(location, zarr.Group):
        store = location.store
        if not isinstance(store, zarr.storage.LocalStore):
            raise ValueError(f"store= must be a directory or a zarr group in a local directory "
                             f"(the lock is a file); got a group in a {type(store).__name__}")
        return Path(store.root) / location.path
    if isinstance(location, (str, os.PathLike)):
        return Path(location)
    raise ValueError(f"store= must be a directory path or a zarr group, got {type(location).__name__}")


def _normalized(d: dict) -> dict:
    return json.loads(json.dumps(d))


def _differences(stored: dict, now: dict) -> list[str]:
    keys = sorted(set(stored) | set(now))
    return [f"{k}: {stored.get(k)!r} in the store, {now.get(k)!r} now" for k in keys
            if stored.get(k) != now.get(k)]


def _check_ours(root: Path) -> None:
    """Refuse, before anything is written into it, a directory that is not a path store (or a
    newer one): only a missing or empty directory, an empty zarr group or a path store will do."""
    if not root.exists():
        return
    if not root.is_dir():
        raise StoreMismatchError(f"{root} is a file, not a path store; use an empty or new directory")
    entries = sorted(set(os.listdir(root)) - {LOCK_NAME})
    if not entries:
        return
    try:
        meta = json.loads((root / "zarr.json").read_text())
        kind, attrs = meta.get("node_type"), meta.get("attributes") or {}
    except (OSError, ValueError, AttributeError):
        if {"start", "done", "coefs"} <= set(entries):
            raise StoreDamagedError(f"the path store {root} is damaged (its zarr.json is missing or "
                                    f"unreadable); delete {root} and rerun") from None
        shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
        raise StoreMismatchError(f"{root} is not a path store (it holds {shown}); use an empty or "
                                 "new directory") from None
    if kind == "group" and not attrs and entries == ["zarr.json"]:
        return  # an empty group, e.g. made for the path by the caller
    if kind != "group" or "format" not in attrs:
        raise StoreMismatchError(f"{root} is a zarr {kind or 'store'} but not a path store; use an empty or "
                                 "new directory")
    check_format(attrs["format"], FORMAT, f"the path store {root}", StoreMismatchError)


_REQUIRED = object()
_UNREAD = object()  # PathStore._fixed before the shared Gram is read


class _Reader:
    """Values of a path store read back verified (see the module docstring), or
    :class:`StoreDamagedError` naming what is damaged."""

    def __init__(self, root: Path, group: zarr.Group):
        self.root, self.group = root, group

    def damaged(self, what: str, alpha: int | None = None) -> StoreDamagedError:
        fix = f"delete {self.root} and rerun"
        if alpha is not None:
            try:
                done = self.group["done"]
                key = self.root / done.path / done.metadata.encode_chunk_key((alpha,))
                fix = f"delete {key} to recompute that α, or delete {self.root}, and rerun"
            except Exception:  # the fix for the whole store is right in any case
                pass
        return StoreDamagedError(f"the path store {self.root} is damaged ({what}); {fix}")

    def _array(self, name: str, what: str, alpha: int | None = None):
        try:
            return self.group[name]
        except Exception as exc:  # a missing or unreadable node is damage
            raise self.damaged(f"{what}: {_why(exc, 'missing')}", alpha) from None

    def _missing_chunk(self, arr, rows: range | None) -> str | None:
        """The key of a chunk that should be on disk and is not (only arrays written with a
        checksum are written with every chunk)."""
        if not any(isinstance(c, Crc32cCodec) for c in arr.metadata.codecs):
            return None
        grid = [range(n) for n in arr.cdata_shape]
        if rows is not None:
            grid[0] = range(rows.start // arr.chunks[0], (rows.stop - 1) // arr.chunks[0] + 1)
        for coords in itertools.product(*grid):
            key = arr.metadata.encode_chunk_key(coords)
            if not (self.root / arr.path / key).is_file():
                return f"{arr.path}/{key}"
        return None

    def _read(self, arr, selection, what: str, alpha: int | None, rows: range | None):
        try:
            values = np.asarray(arr[selection])
        except Exception as exc:  # a chunk that does not decode is damage
            raise self.damaged(f"{what}: {_why(exc, 'unreadable')}", alpha) from None
        missing = self._missing_chunk(arr, rows)
        if missing is not None:
            raise self.damaged(f"{what}: its chunk file {missing} is missing", alpha)
        return values

    def whole(self, name: str, alpha: int | None = None) -> np.ndarray:
        """A whole array of numbers (alphas, start/…, warm/i/…, shared/fixed_gram); ``alpha``:
        the α whose recomputation would write it again."""
        arr = self._array(name, name, alpha)
        values = self._read(arr, slice(None), name, alpha, None)
        if not np.all(np.isfinite(values)):
            raise self.damaged(f"{name}: {np.size(values) - np.isfinite(values).sum()} NaN or "
                               "infinite values where numbers were written", alpha)
        return values

    def row(self, name: str, i: int, n: int):
        """Entry ``i`` of a per-α array, for a finished α ``i`` of ``n``."""
        what = f"{name} of α {i + 1} of {n}"
        arr = self._array(name, what, i)
        value = self._read(arr, i, what, i, range(i, i + 1))
        self._check(name, value, what, i)
        return value

    def _check(self, name: str, value, what: str, i: int) -> None:
        value = np.asarray(value)
        if name in ("coefs", "intercepts", "objectives"):
            bad = None if np.all(np.isfinite(value)) else "NaN or infinite where a finished α has a number"
        elif name in ("n_iter", "n_passes"):
            bad = None if np.all(value >= 0) else f"{value.item()}, not a count"
        else:  # converged
            bad = None if np.all((value == 0) | (value == 1)) else f"{value.item()}, not 0 or 1"
        if bad is not None:
            raise self.damaged(f"{what}: {bad}", i)

    def done(self) -> np.ndarray:
        """Which α are finished. A missing ``done`` chunk reads as not finished (the α is then
        recomputed): that is how one α is cleared."""
        arr = self._array("done", "done")
        try:
            done = np.asarray(arr[:])
        except Exception as exc:
            raise self.damaged(f"done: {_why(exc, 'unreadable')}") from None
        bad = np.flatnonzero((done != 0) & (done != 1))
        if bad.size:
            raise self.damaged(f"done of α {bad[0] + 1} of {done.size}: {done[bad[0]]}, not 0 or 1")
        return done.astype(bool)

    def results(self, done: np.ndarray) -> dict:
        """Every per-α array, verified at the finished α (unfinished entries are as stored)."""
        n = done.size
        out = {}
        for name in ("coefs", *_RESULTS):
            arr = self._array(name, name)
            try:
                values = np.asarray(arr[:])
            except Exception:  # a chunk does not decode: read α by α to name the damaged one
                values = np.full(arr.shape, arr.fill_value, arr.dtype)
                for i in range(n):
                    if done[i]:
                        values[i] = self.row(name, i, n)
                    else:
                        try:
                            values[i] = arr[i]
                        except Exception:  # an unfinished α's chunk is never used
                            pass
            for i in np.flatnonzero(done):
                what = f"{name} of α {i + 1} of {n}"
                missing = self._missing_chunk(arr, range(i, i + 1))
                if missing is not None:
                    raise self.damaged(f"{what}: its chunk file {missing} is missing", int(i))
                self._check(name, values[i], what, int(i))
            out[name] = values
        return out

    def attr(self, group: str, key: str, default=_REQUIRED, alpha: int | None = None):
        try:
            attrs = self.group[group].attrs
            return attrs[key] if default is _REQUIRED else attrs.get(key, default)
        except Exception as exc:
            raise self.damaged(f"{group}: its attribute {key} is {_why(exc, 'missing')}", alpha) from None


def _why(exc: BaseException, default: str) -> str:
    if isinstance(exc, KeyError):
        return default
    text = str(exc).strip().splitlines()
    if "checksum" in (text[0] if text else "").lower():
        return "checksum mismatch (the chunk was altered)"
    return f"{default} ({text[0] if text else type(exc).__name__})"


class PathStore:
    """A path's store opened for writing (holds the lock until :meth:`close`)."""

    def __init__(self, location, fingerprint: dict, settings: dict):
        self.root = _root(location)
        self._fixed: FixedCurvature | None | object = _UNREAD  # the shared fixed-curvature Gram
        self._lock_path = self.root / LOCK_NAME
        _check_ours(self.root)  # before anything (the lock file included) is written into it
        self.root.mkdir(parents=True, exist_ok=True)
        self._acquire()
        try:
            self.group = zarr.open_group(self.root, mode="a")
            self._read = _Reader(self.root, self.group)
            self._check_or_init(_normalized(fingerprint), _normalized(settings))
        except BaseException:
            self.close()
            raise

    # -- lock ----------------------------------------------------------------------------------
    def _acquire(self) -> None:
        self._lock = FileLock(self._lock_path, self.root)
        self._lock.acquire()

    def close(self) -> None:
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- identity --------------------------------------------------------------------------------
    def _check_or_init(self, fingerprint: dict, settings: dict) -> None:
        attrs = dict(self.group.attrs)
        if not attrs:
            if set(os.listdir(self.root)) - {LOCK_NAME, "zarr.json"}:
                raise StoreMismatchError(f"{self.root} is a zarr group but not a path store; "
                                         "use an empty or new directory")
            self.group.attrs.update({"format": FORMAT, "fingerprint": fingerprint,
                                     "settings": settings})
            return
        check_format(attrs.get("format"), FORMAT, f"the path store {self.root}", StoreMismatchError)
        if "checksum" in attrs["fingerprint"]:  # sampled blocks only: its data cannot be verified
            raise StoreMismatchError(
                f"the path store {self.root} was written by an earlier smem_dask that checksummed only "
                "three blocks of the data, so what it holds cannot be verified against these data; "
                "delete it and rerun")
        diff = _differences(attrs["fingerprint"], fingerprint)
        if diff:
            raise StoreMismatchError(
                f"the path store {self.root} was made from other data ({'; '.join(diff)}); use a "
                "new store for these data"
            )
        diff = _differences(attrs["settings"], settings)
        if diff:
            raise StoreMismatchError(
                f"the path store {self.root} was made with other settings ({'; '.join(diff)}); "
                "rerun with the same settings to resume, or use a new store"
            )

    # -- start and shared statistics ----------------------------------------------------------
    def has_start(self) -> bool:
        try:
            return "start" in self.group and bool(self.group["start"].attrs.get("complete"))
        except Exception as exc:  # an unreadable start/zarr.json
            raise self._read.damaged(f"start: {_why(exc, 'unreadable')}") from None

    def save_start(self, alphas: np.ndarray, warm: WarmStart, n_passes: int, n_features: int) -> None:
        g = self.group
        n = len(alphas)
        g.create_array("alphas", data=np.asarray(alphas, np.float64), overwrite=True, **_ARRAY_OPTIONS)
        for name, dtype, fill in (("intercepts", "f8", np.nan), ("objectives", "f8", np.nan),
                                  ("n_iter", "i8", -1), ("n_passes", "i8", -1),
                                  ("converged", "i1", -1), ("done", "i1", 0)):
            g.create_array(name, shape=(n,), chunks=(1,), dtype=dtype, fill_value=fill,
                           overwrite=True, **_ARRAY_OPTIONS)
        g.create_array("coefs", shape=(n, n_features), chunks=(1, n_features), dtype="f8",
                       fill_value=np.nan, overwrite=True, **_ARRAY_OPTIONS)
        if warm.fixed is not None:
            arrays, scalars = warm.fixed.pack()
            shared = g.require_group("shared")
            shared.create_array("fixed_gram", data=arrays["gram"], overwrite=True, **_ARRAY_OPTIONS)
            shared.attrs.update(scalars)
        self._fixed = warm.fixed
        start = g.require_group("start")
        self._write_warm(start, warm)
        start.attrs.update({"n_passes": int(n_passes), "complete": True})

    def load_start(self, n_features: int) -> tuple[np.ndarray, WarmStart, int]:
        r = self._read
        self._shared_fixed(n_features)
        alphas = r.whole("alphas")
        if alphas.ndim != 1 or np.any(alphas < 0):
            raise r.damaged("alphas: not a grid of numbers ≥ 0")
        return alphas, self._read_warm("start", None), int(r.attr("start", "n_passes"))

    def _shared_fixed(self, n_features: int | None = None) -> FixedCurvature | None:
        """The path's shared fixed-curvature Gram (None if it has none), read when first needed;
        ``n_features``: p (by default the width of ``coefs``)."""
        if self._fixed is _UNREAD:
            r, fixed = self._read, None
            if "shared" in self.group and "fixed_gram" in self.group["shared"]:
                if n_features is None:
                    n_features = int(r._array("coefs", "coefs").shape[1])
                # rows summed: kept with the Gram since checksums; before, the start system's (the same)
                n_rows = r.attr("shared", "n", r.attr("start", "n"))
                arrays = {"gram": r.whole("shared/fixed_gram")}
                fixed = FixedCurvature.unpack(arrays, {"weight": r.attr("shared", "weight"), "n": n_rows},
                                              n_features)
            self._fixed = fixed
        return self._fixed

    @staticmethod
    def _write_warm(g: zarr.Group, warm: WarmStart) -> None:
        arrays, scalars = warm.pack()
        for name, value in arrays.items():
            g.create_array(name, data=value, overwrite=True, **_ARRAY_OPTIONS)
        g.attrs.update(scalars)

    def _read_warm(self, path: str, alpha: int | None) -> WarmStart:
        """A stored end state; ``alpha``: the α whose recomputation writes it again (None: the
        start, written only with the store)."""
        r = self._read
        arrays = {name: r.whole(f"{path}/{name}", alpha) for name in WarmStart.ARRAYS}
        scalars = {key: r.attr(path, key, alpha=alpha) for key in WarmStart.SCALARS}
        return WarmStart.unpack(arrays, scalars, self._shared_fixed())

    # -- per-α results ---------------------------------------------------------------------------
    def done(self) -> np.ndarray:
        return self._read.done()

    def save_alpha(self, i: int, fit: FitResult, keep_warm: bool) -> None:
        g = self.group
        g["coefs"][i] = fit.coef
        for name, value in zip(_RESULTS, (fit.intercept, fit.objective, fit.n_iter, fit.n_passes,
                                          int(fit.converged)), strict=True):
            g[name][i] = value
        if keep_warm:
            self._write_warm(g.require_group(f"warm/{i}"), fit.warm)
        g["done"][i] = 1  # last: the α counts as finished only once all of it is on disk

    def load_warm(self, i: int) -> WarmStart:
        return self._read_warm(f"warm/{i}", i)

    def load_alpha(self, i: int) -> FitResult:
        n = int(self._read._array("done", "done").shape[0])
        row = {name: self._read.row(name, i, n) for name in ("coefs", *_RESULTS)}
        return FitResult(coef=row["coefs"], intercept=float(row["intercepts"]),
                         n_iter=int(row["n_iter"]), n_passes=int(row["n_passes"]),
                         objective=float(row["objectives"]), grad_norm=float("nan"),
                         converged=bool(row["converged"]), n_restarts=0)

    def check_data(self, checksum: str) -> None:
        """Record the data's full checksum (``engine.data_checksum()``) in a store without a start;
        refuse a store whose recorded checksum differs (made from other data)."""
        stored = self.group.attrs.get("data_checksum")
        if stored is None and not self.has_start():
            self.group.attrs["data_checksum"] = checksum
        elif stored != checksum:
            raise StoreMismatchError(
                f"the path store {self.root} was made from other data (block checksums differ: "
                f"{stored or 'none recorded, by an older smem_dask'} in the store, {checksum} now); "
                "use a new store for these data")


def read_path_store(location) -> dict:
    """The finished part of a path store, read-only (no lock, no data needed): a dict with
    ``alphas``, ``done`` (bool per α), ``coefs``, ``intercepts``, ``objectives``, ``n_iter``,
    ``n_passes``, ``converged``, ``settings`` and ``fingerprint``. Every finished α is verified
    (:class:`StoreDamagedError` if damaged); unfinished entries are as stored (NaN, −1)."""
    root = _root(location)
    g = zarr.open_group(root, mode="r")
    check_format(g.attrs.get("format"), FORMAT, f"the path store {root}")
    out = {"settings": dict(g.attrs["settings"]), "fingerprint": dict(g.attrs["fingerprint"])}
    if "done" not in g:
        return {**out, "alphas": np.zeros(0), "done": np.zeros(0, bool)}
    r = _Reader(root, g)
    out["done"] = r.done()
    out["alphas"] = r.whole("alphas")
    out.update(r.results(out["done"]))
    out["converged"] = out["converged"] == 1
    return out
