"""Reproducible synthetic ill-conditioned problems, and zarr v3 stores holding ``X`` and ``y``.

The design matrix is X = Z·M with Z standard normal rows whitened exactly (ZᵀZ = n·I) and
M = diag(σ)·Vᵀ for a random orthogonal V and singular values σ_j spaced log-evenly from 1 down to
cond^(−1/2); so XᵀX = n·V·diag(σ²)·Vᵀ has condition number exactly ``cond`` (up to rounding).
Rows are generated in fixed blocks of ``GEN_ROWS`` with their own seeds, so the data depend only on
(n, p, cond, seed, task, …), never on how they are chunked or written. Generation and writing are
streamed: memory stays bounded by one chunk whatever n is.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import zarr

from .losses import sigmoid, softmax

__all__ = ["Problem", "make_problem", "write_zarr", "open_store", "check_format", "GEN_ROWS",
           "DATA_FORMAT"]

DATA_FORMAT = "smem_dask.data/1"  # written by write_zarr into the group's attrs["smem_dask"]
GEN_ROWS = 65536  # rows per generation block (fixed: the data must not depend on chunking)
_TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Problem:
    """Parameters of a synthetic problem; ``rows(start, stop)`` generates any row range."""

    n: int
    p: int
    cond: float = 1e4
    seed: int = 0
    task: str = "classification"
    signal: float = 2.0  # standard deviation of the true linear predictor Xβ*
    intercept: float = 0.25  # true intercept b*
    noise: float = 1.0  # regression noise standard deviation
    classes: int = 2  # classification: K > 2 draws y ∈ {0, …, K − 1} from a multinomial model

    def __post_init__(self):
        if int(self.n) < 1 or int(self.p) < 1:
            raise ValueError(f"n and p must be ≥ 1, got n={self.n}, p={self.p}")
        if not self.cond >= 1:
            raise ValueError(f"cond must be ≥ 1, got {self.cond}")
        if self.task not in _TASKS:
            raise ValueError(f"task must be one of {_TASKS}, got {self.task!r}")
        if isinstance(self.classes, bool) or int(self.classes) != self.classes or self.classes < 2:
            raise ValueError(f"classes must be an integer ≥ 2, got {self.classes!r}")
        if self.classes > 2 and self.task != "classification":
            raise ValueError("classes > 2 needs task='classification'")
        object.__setattr__(self, "classes", int(self.classes))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "p", int(self.p))
        # the whitening and rotation need one streamed pass over Z: done once, here
        gram = np.zeros((self.p, self.p))
        for b in range(self._n_gen_blocks):
            z = self._z(b)
            gram += z.T @ z
        evals, evecs = np.linalg.eigh(gram / self.n)
        if self.n <= self.p or evals.min() <= 1e-12 * evals.max():
            raise ValueError(f"n={self.n} is too small to whiten p={self.p} columns; use n > p")
        whiten = (evecs / np.sqrt(evals)) @ evecs.T
        rng = np.random.default_rng([self.seed, 2])
        v, r = np.linalg.qr(rng.standard_normal((self.p, self.p)))
        v *= np.sign(np.diag(r))
        sv = self.singular_values
        object.__setattr__(self, "_map", whiten @ (sv[:, None] * v.T))
        if self.classes > 2:
            # K columns, each giving its class a linear predictor of standard deviation `signal`
            beta = np.random.default_rng([self.seed, 3]).standard_normal((self.p, self.classes))
            beta *= self.signal / np.linalg.norm(sv[:, None] * (v.T @ beta), axis=0)
        else:
            beta = np.random.default_rng([self.seed, 3]).standard_normal(self.p)
            beta *= self.signal / np.linalg.norm(sv * (v.T @ beta))
        object.__setattr__(self, "coef", beta)

    @property
    def singular_values(self) -> np.ndarray:
        """σ_j of X/√n: 1 down to cond^(−1/2), log-evenly spaced."""
        if self.p == 1:
            return np.ones(1)
        return self.cond ** (-0.5 * np.arange(self.p) / (self.p - 1))

    @property
    def _n_gen_blocks(self) -> int:
        return -(-self.n // GEN_ROWS)

    def _z(self, b: int) -> np.ndarray:
        m = min(GEN_ROWS, self.n - b * GEN_ROWS)
        return np.random.default_rng([self.seed, 0, b]).standard_normal((m, self.p))

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        X = self._z(b) @ self._map
        rng = np.random.default_rng([self.seed, 1, b])
        if self.classes > 2:
            # class intercepts spread around `intercept`; y: the class whose cumulative
            # probability first exceeds a uniform draw
            eta = X @ self.coef + self.intercept * np.linspace(-1.0, 1.0, self.classes)
            cumulative = softmax(eta).cumsum(axis=1)
            y = np.minimum((cumulative < rng.random(eta.shape[0])[:, None]).sum(axis=1),
                           self.classes - 1).astype(np.float64)
            return X, y
        eta = X @ self.coef + self.intercept
        if self.task == "classification":
            prob = sigmoid(eta)
            y = (rng.random(eta.shape[0]) < prob).astype(np.float64)
        else:
            y = eta + self.noise * rng.standard_normal(eta.shape[0])
        return X, y

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """(X, y) for rows start ≤ i < stop."""
        start, stop = max(0, start), min(self.n, stop)
        first, last = start // GEN_ROWS, max(start, stop - 1) // GEN_ROWS
        parts = [self._block(b) for b in range(first, last + 1)]
        X = np.concatenate([x for x, _ in parts])
        y = np.concatenate([y for _, y in parts])
        offset = first * GEN_ROWS
        return X[start - offset : stop - offset], y[start - offset : stop - offset]

    def metadata(self) -> dict:
        meta = asdict(self)
        meta["coef"] = self.coef.tolist()
        if self.classes == 2:
            del meta["classes"]  # binary stores keep the attributes they always had
        return meta


def make_problem(n: int, p: int, **kwargs) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) in memory for a :class:`Problem` (``cond``, ``seed``, ``task``, ``signal``, …)."""
    return Problem(n, p, **kwargs).rows(0, n)


def write_zarr(path, n: int, p: int, *, chunk_rows: int = 100_000, dtype="float64",
               compressors=None, checksum: bool = True, overwrite: bool = False,
               **kwargs) -> Problem:
    """Write a :class:`Problem` to a zarr v3 group at ``path`` with arrays ``X`` and ``y``.

    ``X`` is chunked by rows (``chunk_rows`` × p); the problem's parameters and true coefficients
    are kept in the group's attributes under ``"smem_dask"``. Memory stays bounded by one chunk.
    No compression by default: random floats barely compress. Measured by ``python -m benchmarks
    chunks`` (``benchmarks/results/chunks.md``: 2e6 × 100, 2 single-threaded workers, X in the page
    cache, medians of 5): zstd (level 1 or zarr's default) kept 95.5% of the bytes and made the EM
    pass 1.8× slower, blosc-lz4 with byte shuffle kept 93.8% and made it 1.3× slower; uncompressed
    chunks of 40, 80 and 160 MB were within 2% of each other (10 MB: 1.3× slower), so the default
    ``chunk_rows`` (100 000 rows: 80 MB at p = 100) stays. Pass ``compressors="auto"`` for zarr's
    default codec.
    Every chunk carries a CRC32C checksum (``zarr.codecs.Crc32cCodec``, after the compressor) unless
    ``checksum=False``: a damaged chunk is a read error, not other numbers. Measured by ``python -m
    benchmarks chunks --codecs none,crc32c`` (``benchmarks/results/crc32c/chunks.md``: 1e6 × 50, 40 MB
    chunks, 2 single-threaded workers on an otherwise idle machine, medians of 15): the EM pass 1.06×
    (fastest rounds 1.03×) and a warm read 1.15× the time without it, a cold read 1.01×. Every chunk
    is written, also one that is all zeros (zarr would leave it out by default), so a missing chunk
    file always means an incomplete store (reading refuses it, see :func:`smem_dask.arrays.as_array`).
    Refuses to overwrite an existing store unless ``overwrite=True``, and even then replaces only a
    data store that ``write_zarr`` wrote (or an empty directory): anything else is left untouched.
    """
    problem = Problem(n, p, **kwargs)
    if os.path.exists(path):
        if not overwrite:
            raise ValueError(f"{path} already exists; choose another path or pass overwrite=True")
        _check_replaceable(path)
    chunk_rows = int(min(max(1, chunk_rows), problem.n))
    codecs = _with_checksum(compressors, checksum)
    config = {"write_empty_chunks": True}
    group = zarr.open_group(path, mode="w")
    X = group.create_array(
        "X", shape=(problem.n, problem.p), chunks=(chunk_rows, problem.p), dtype=dtype,
        compressors=codecs, config=config,
    )
    y = group.create_array("y", shape=(problem.n,), chunks=(chunk_rows,), dtype="float64",
                           compressors=codecs, config=config)
    for start in range(0, problem.n, chunk_rows):
        xb, yb = problem.rows(start, start + chunk_rows)
        X[start : start + xb.shape[0]] = xb.astype(dtype, copy=False)
        y[start : start + yb.shape[0]] = yb
    group.attrs["smem_dask"] = {"format": DATA_FORMAT, "kind": "synthetic", **problem.metadata()}
    return problem


def _with_checksum(compressors, checksum: bool):
    """The bytes-to-bytes codecs of ``write_zarr``: ``compressors`` (None, "auto", a codec or a
    list of them), then ``Crc32cCodec`` when ``checksum``."""
    if isinstance(compressors, str) and compressors == "auto":
        compressors = [zarr.codecs.ZstdCodec()]  # zarr's default compressor
    elif compressors is None:
        compressors = []
    elif not isinstance(compressors, (list, tuple)):
        compressors = [compressors]
    codecs = [c for c in compressors if not isinstance(c, zarr.codecs.Crc32cCodec)]
    return codecs + [zarr.codecs.Crc32cCodec()] if checksum else (codecs or None)


def _check_replaceable(path) -> None:
    """Only an empty directory or a data store of ours may be overwritten (``write_zarr`` deletes the
    whole tree): refuse anything else, touching nothing."""
    if os.path.isdir(path) and not os.listdir(path):
        return
    try:
        meta = zarr.open_group(path, mode="r").attrs.get("smem_dask") if os.path.isdir(path) else None
    except Exception:  # not a zarr group at all
        meta = None
    if not (isinstance(meta, dict) and str(meta.get("format", "")).startswith("smem_dask.data/")):
        raise ValueError(f"{path} exists and is not a data store written by smem_dask; refusing to "
                         "overwrite it (remove it yourself or choose another path)")


def check_format(found, expected: str, where, error: type[ValueError] = ValueError) -> None:
    """Refuse (raise ``error``) a store whose format tag (``name/version``) is another kind or a
    newer version."""
    if found == expected:
        return
    name, _, version = expected.rpartition("/")
    found_name, _, found_version = str(found).rpartition("/")
    if found_name == name and found_version.isdigit() and int(found_version) > int(version):
        raise error(
            f"{where} was written by a newer version of smem_dask (format {found}; this version "
            f"reads {expected}): upgrade smem_dask (pip install -U smem-dask) to use it"
        )
    raise error(f"{where} is not a store of this kind (format {found!r}, expected {expected!r})")


def open_store(path, x: str = "X", y: str = "y") -> tuple[zarr.Array, zarr.Array]:
    """The arrays ``X`` and ``y`` of a zarr store (or those named ``x`` and ``y``), with a clear error
    if either is missing or the store was written by a newer smem_dask. Opened read-only: nothing
    here can change the store. A local path is made absolute first, so that workers started in
    another directory read the same store (a relative path would be resolved against each worker's
    own directory)."""
    return tuple(open_arrays(path, x, y))


def open_arrays(path, *names: str) -> list[zarr.Array]:
    """The arrays ``names`` of a zarr store, checked as :func:`open_store` checks X and y."""
    if isinstance(path, (str, os.PathLike)) and "://" not in os.fspath(path):
        path = os.path.abspath(path)
    try:
        group = zarr.open_group(path, mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError) as exc:
        raise ValueError(f"no zarr group at {path!s}: {exc}") from exc
    meta = group.attrs.get("smem_dask")
    if isinstance(meta, dict) and "format" in meta:  # stores of other tools carry no such tag
        check_format(meta["format"], DATA_FORMAT, f"the data store {path!s}")
    arrays = []
    for name in names:
        try:
            node = group[name]
        except KeyError:
            node = None
        if not isinstance(node, zarr.Array):
            raise ValueError(f"zarr store {path!s} has no array {name!r}")
        arrays.append(node)
    return arrays
