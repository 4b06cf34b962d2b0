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
store made from other data (fingerprint) or other settings is refused, never silently reused. One
writer at a time: a lock file (``.smem_dask.lock``, created atomically, holding pid and host) refuses
a second writer; a lock left by a process that no longer exists on this host is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import zarr

from .data import check_format
from .solver import FitResult, FixedCurvature, WarmStart
from .stats import BlockStats

__all__ = ["PathStore", "StoreLockedError", "StoreMismatchError", "read_path_store"]

FORMAT = "smem_dask.path/1"
LOCK_NAME = ".smem_dask.lock"
_RESULTS = ("intercepts", "objectives", "n_iter", "n_passes", "converged")


class StoreMismatchError(ValueError):
    """The store was made from other data or with other settings."""


class StoreLockedError(RuntimeError):
    """Another process is writing the store."""


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


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class PathStore:
    """A path's store opened for writing (holds the lock until :meth:`close`)."""

    def __init__(self, location, fingerprint: dict, settings: dict):
        self.root = _root(location)
        self._fixed: FixedCurvature | None = None  # the shared fixed-curvature Gram, once loaded
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / LOCK_NAME
        self._acquire()
        try:
            self.group = zarr.open_group(self.root, mode="a")
            self._check_or_init(_normalized(fingerprint), _normalized(settings))
        except BaseException:
            self.close()
            raise

    # -- lock ----------------------------------------------------------------------------------
    def _acquire(self) -> None:
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        for _ in range(2):
            try:
                fd = os.open(self._lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                stale = (holder is not None and holder.get("host") == me["host"]
                         and not _pid_alive(int(holder.get("pid", -1))))
                if stale:
                    self._lock_path.unlink(missing_ok=True)  # its writer died (e.g. SIGKILL)
                    continue
                who = ("an unknown writer" if holder is None else
                       f"pid {holder.get('pid')} on {holder.get('host')} since "
                       f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(holder.get('since', 0)))}")
                raise StoreLockedError(
                    f"the path store {self.root} is being written by {who}; wait for it to finish "
                    f"or, if that process is gone, delete {self._lock_path}"
                ) from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self._locked = True
            return
        raise StoreLockedError(f"could not take the lock {self._lock_path}")  # pragma: no cover

    def _holder(self) -> dict | None:
        try:
            return json.loads(self._lock_path.read_text())
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        if getattr(self, "_locked", False):
            self._lock_path.unlink(missing_ok=True)
            self._locked = False

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
        return "start" in self.group and bool(self.group["start"].attrs.get("complete"))

    def save_start(self, alphas: np.ndarray, warm: WarmStart, n_passes: int, n_features: int) -> None:
        g = self.group
        n = len(alphas)
        g.create_array("alphas", data=np.asarray(alphas, np.float64), overwrite=True)
        for name, dtype, fill in (("intercepts", "f8", np.nan), ("objectives", "f8", np.nan),
                                  ("n_iter", "i8", -1), ("n_passes", "i8", -1),
                                  ("converged", "i1", 0), ("done", "i1", 0)):
            g.create_array(name, shape=(n,), chunks=(1,), dtype=dtype, fill_value=fill,
                           overwrite=True)
        g.create_array("coefs", shape=(n, n_features), chunks=(1, n_features), dtype="f8",
                       fill_value=np.nan, overwrite=True)
        if warm.fixed is not None:
            shared = g.require_group("shared")
            shared.create_array("fixed_gram", data=warm.fixed.gram, overwrite=True)
            shared.attrs.update({"weight": warm.fixed.weight})
        start = g.require_group("start")
        self._write_warm(start, warm)
        start.attrs.update({"n_passes": int(n_passes), "complete": True})

    def load_start(self, n_features: int) -> tuple[np.ndarray, WarmStart, int]:
        fixed = None
        if "shared" in self.group and "fixed_gram" in self.group["shared"]:
            shared = self.group["shared"]
            fixed = FixedCurvature(shared["fixed_gram"][:], shared.attrs["weight"], n_features)
        self._fixed = fixed
        start = self.group["start"]
        return self.group["alphas"][:], self._read_warm(start), int(start.attrs["n_passes"])

    @staticmethod
    def _write_warm(g: zarr.Group, warm: WarmStart) -> None:
        for name, value in (("beta", warm.beta), ("loss_grad", warm.loss_grad),
                            ("gram", warm.system.gram), ("rhs", warm.system.rhs),
                            ("expand", warm.expand)):
            g.create_array(name, data=np.asarray(value, np.float64), overwrite=True)
        g.attrs.update({"loss_sum": float(warm.loss_sum), "weight": float(warm.system.weight),
                        "n": float(warm.system.n)})

    def _read_warm(self, g: zarr.Group) -> WarmStart:
        system = BlockStats.system_only(g.attrs["n"], g.attrs["weight"], g["gram"][:], g["rhs"][:])
        return WarmStart(g["beta"][:], g.attrs["loss_sum"], g["loss_grad"][:], system,
                         g["expand"][:], self._fixed)

    # -- per-α results ---------------------------------------------------------------------------
    def done(self) -> np.ndarray:
        return self.group["done"][:].astype(bool)

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
        return self._read_warm(self.group[f"warm/{i}"])

    def load_alpha(self, i: int) -> FitResult:
        g = self.group
        coef = g["coefs"][i]
        return FitResult(coef=coef, intercept=float(g["intercepts"][i]),
                         n_iter=int(g["n_iter"][i]), n_passes=int(g["n_passes"][i]),
                         objective=float(g["objectives"][i]), grad_norm=float("nan"),
                         converged=bool(g["converged"][i]), n_restarts=0)

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
    ``n_passes``, ``converged``, ``settings`` and ``fingerprint``."""
    g = zarr.open_group(_root(location), mode="r")
    check_format(g.attrs.get("format"), FORMAT, f"the path store {_root(location)}")
    out = {"settings": dict(g.attrs["settings"]), "fingerprint": dict(g.attrs["fingerprint"])}
    if "done" not in g:
        return {**out, "alphas": np.zeros(0), "done": np.zeros(0, bool)}
    out.update({name: g[name][:] for name in ("alphas", "coefs", *_RESULTS)})
    out["done"] = g["done"][:].astype(bool)
    out["converged"] = out["converged"].astype(bool)
    return out
