"""The store of a cross-validated path: one path store per path and the held-out scores, resumable.

Layout of the directory::

    all/          the path store (:mod:`smem_dask.store`) of the all-rows path
    fold<k>/      the path store of fold k's training path (k = 0 … K−1)
    scores/       zarr group (format ``smem_dask.cv/1``): ``fold_rows`` and ``fold_weights`` (K,);
                  one array per held-out score (K, n_alphas), one chunk per fit, NaN until scored

Each path store holds its own start (the same β, each over its own rows), fits and lock, and keeps
the guarantees of a path store: every fit written as it finishes and marked done last, refused
when made from other data (the checksum covers the fold ids) or other settings, damage refused
with a message. A score is written after its fit is done; a fit done but not scored is scored by
the next run in a pass it makes anyway (or one pass).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import zarr

from .data import check_format
from .solver import FitResult, WarmStart
from .store import _ARRAY_OPTIONS, LOCK_NAME, PathStore, StoreDamagedError, StoreMismatchError, _root

__all__ = ["CVStore", "read_cv_store"]

FORMAT = "smem_dask.cv/1"


def _path_name(j: int) -> str:
    """The directory of path j (0: all rows; j ≥ 1: fold j − 1's training rows)."""
    return "all" if j == 0 else f"fold{j - 1}"


def _check_ours(root: Path, K: int) -> None:
    """Refuse, before anything is written, a directory that is not a CV store of K folds."""
    if not root.exists():
        return
    if not root.is_dir():
        raise StoreMismatchError(f"{root} is a file, not a cross-validation store; use an empty or new "
                                 "directory")
    entries = set(os.listdir(root)) - {LOCK_NAME}
    ours = {"scores", *(_path_name(j) for j in range(K + 1))}
    if entries - ours:
        if "scores" in entries:
            folds = sorted(e for e in entries if e.startswith("fold"))
            raise StoreMismatchError(f"the cross-validation store {root} was made with another number "
                                     f"of folds ({len(folds)}, now {K}); use a new store")
        shown = ", ".join(sorted(entries - ours)[:3])
        raise StoreMismatchError(f"{root} is not a cross-validation store (it holds {shown}); use an "
                                 "empty or new directory")


class CVStore:
    """A cross-validated path's store opened for writing (the path stores hold their locks until
    :meth:`close`)."""

    def __init__(self, location, fingerprint: dict, settings: dict, n_folds: int, scores: tuple[str, ...]):
        self.root = _root(location)
        self.K = int(n_folds)
        self.names = tuple(scores)  # the held-out scores kept
        _check_ours(self.root, self.K)
        self.root.mkdir(parents=True, exist_ok=True)
        self.paths: list[PathStore] = []
        try:
            for j in range(self.K + 1):
                self.paths.append(PathStore(self.root / _path_name(j), fingerprint,
                                            {**settings, "rows": _path_name(j)}))
            self.scores_group = zarr.open_group(self.root / "scores", mode="a")
            attrs = dict(self.scores_group.attrs)
            if attrs:
                check_format(attrs.get("format"), FORMAT, f"the cross-validation store {self.root}",
                             StoreMismatchError)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for store in self.paths:
            store.close()

    def has_start(self) -> bool:
        return (all(s.has_start() for s in self.paths)
                and bool(self.scores_group.attrs.get("complete")))

    def check_data(self, checksum: str) -> None:
        for s in self.paths:
            s.check_data(checksum)

    def save_start(self, alphas, warms: list[WarmStart], n_passes: int, n_features: int,
                   fold_rows, fold_weights) -> None:
        for j, (s, warm) in enumerate(zip(self.paths, warms, strict=True)):
            s.save_start(alphas, warm, n_passes if j == 0 else 0, n_features)
        g = self.scores_group
        g.create_array("fold_rows", data=np.asarray(fold_rows, np.float64), overwrite=True,
                       **_ARRAY_OPTIONS)
        g.create_array("fold_weights", data=np.asarray(fold_weights, np.float64), overwrite=True,
                       **_ARRAY_OPTIONS)
        for name in self.names:
            g.create_array(name, shape=(self.K, len(alphas)), chunks=(1, 1), dtype="f8",
                           fill_value=np.nan, overwrite=True, **_ARRAY_OPTIONS)
        g.attrs.update({"format": FORMAT, "n_folds": self.K, "complete": True})

    def load_start(self, n_features: int):
        alphas, warm0, start_passes = self.paths[0].load_start(n_features)
        warms = [warm0] + [s.load_start(n_features)[1] for s in self.paths[1:]]
        g = self.scores_group
        try:
            fold_rows, fold_weights = g["fold_rows"][...], g["fold_weights"][...]
        except Exception as exc:
            raise StoreDamagedError(f"the cross-validation store {self.root} is damaged (scores: "
                                    f"{exc}); delete it and rerun") from None
        return alphas, warms, start_passes, fold_rows, fold_weights

    def done(self) -> np.ndarray:
        """(K + 1, n_alphas) bool: the fits finished and stored (row 0: all rows)."""
        return np.array([s.done() for s in self.paths])

    def save_alpha(self, j: int, i: int, fit: FitResult, keep_warm: bool) -> None:
        self.paths[j].save_alpha(i, fit, keep_warm)

    def load_alpha(self, j: int, i: int) -> FitResult:
        return self.paths[j].load_alpha(i)

    def load_warm(self, j: int, i: int) -> WarmStart:
        return self.paths[j].load_warm(i)

    def save_score(self, k: int, i: int, row: dict) -> None:
        for name in self.names:
            self.scores_group[name][k, i] = row[name]

    def scores(self, names) -> dict[str, np.ndarray]:
        out = {}
        for name in names:
            try:
                out[name] = self.scores_group[name][...]
            except Exception as exc:
                raise StoreDamagedError(f"the cross-validation store {self.root} is damaged (scores/"
                                        f"{name}: {exc}); delete scores/{name} to rescore, or the store"
                                        ) from None
        return out


def read_cv_store(location) -> dict:
    """The finished part of a cross-validation store, read-only: ``alphas``, ``fold_rows``,
    ``fold_weights``, one (K, n_alphas) array per score (NaN: not scored) and ``paths``, the
    :func:`~smem_dask.store.read_path_store` dict of each path (all rows first)."""
    from .store import read_path_store

    root = _root(location)
    g = zarr.open_group(root / "scores", mode="r")
    check_format(g.attrs.get("format"), FORMAT, f"the cross-validation store {root}")
    K = int(g.attrs["n_folds"])
    paths = [read_path_store(root / _path_name(j)) for j in range(K + 1)]
    out = {"alphas": paths[0]["alphas"], "paths": paths}
    for name in g.array_keys():
        out[name] = g[name][...]
    return out
