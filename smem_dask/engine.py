"""Engines: where the data lives and how one pass over it is made. The only module importing dask.

Both engines have one interface — ``stats_many(loss, requests, fit_intercept) -> [BlockStats]`` makes
one pass over the data serving every request (e.g. every α of a path running in lockstep) and counts
it in ``n_passes``; ``stats(loss, coefs, expand, fit_intercept)`` is the one-request case — and compute
the same pure-numpy kernel (:func:`smem_dask.stats.block_stats_many`) on row blocks:

* :class:`NumpyEngine` — arrays in memory, blocks summed in a loop. The oracle for the dask path.
* :class:`DaskEngine` — a row-chunked dask array (from dask, or a zarr array read lazily). One fused
  ``blockwise`` task per block reads the block and returns its packed statistics; a tree reduction
  (``sum(split_every=…)``) brings p×p + p + a few scalars to the client; one ``compute`` per pass.
  Inputs are streamed from their source each pass unless ``persist=True``.

The engine never names a concrete loss: the loss object is handed to the kernel.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import numbers
import os
import socket
import struct
import time
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import zarr
from dask.layers import ArrayBlockIdDep
from threadpoolctl import ThreadpoolController
from zarr.core.sync import sync

from .losses import Loss
from .stats import BlockStats, Request, block_stats_many, pack_many, request_size, unpack_many

__all__ = [
    "NumpyEngine",
    "DaskEngine",
    "ClusterError",
    "WorkerMemoryError",
    "no_worker_timeout",
    "require_workers",
    "as_array",
    "check_gram_fits",
    "check_memory_fits",
    "gram_systems_that_fit",
    "check_shapes",
    "compute",
    "frame_meta",
    "is_xarray",
    "is_lazy",
    "is_lazy_input",
    "linear_predictor",
    "make_engine",
    "unique",
]


def as_array(a, name: str):
    """Numpy arrays stay numpy, dask stays dask, a zarr array becomes a lazy dask array whose
    blocks are read with :func:`_read_zarr` (a missing or damaged chunk is an error, not zeros), a
    dask DataFrame or Series (e.g. from ``dask.dataframe.read_parquet``) a lazy dask array with known
    chunk sizes (:func:`frame_as_array`), and an xarray DataArray its data (lazy when it holds a
    dask array). A masked array is refused when it masks values (fitting the values under its mask
    would be wrong), and is its data otherwise."""
    if isinstance(a, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(a))
        if n_masked:
            raise ValueError(
                f"{name} is a masked array with {n_masked} masked values; drop or impute them, or "
                "pass sample_weight=0 for those rows"
            )
        return np.asarray(a.data)
    if isinstance(a, da.Array):
        return a
    if isinstance(a, zarr.Array):
        return _from_zarr(a, name)
    if isinstance(a, zarr.Group):
        raise ValueError(
            f"{name} is a zarr group; pass its array (e.g. group['{name}']) or open the store "
            "with smem_dask.data.open_store"
        )
    if is_dask_frame(a):
        return frame_as_array(a, name)
    if is_xarray(a):
        if not hasattr(a, "dims") or hasattr(a, "data_vars"):
            raise ValueError(f"{name} is an xarray Dataset; pass one of its DataArrays "
                             f"(e.g. ds['{name}'])")
        return a.data if isinstance(a.data, da.Array) else np.asarray(a.data)
    try:
        return np.asarray(a)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name} cannot be converted to an array: {exc}") from exc


def is_dask_frame(a) -> bool:
    """A dask DataFrame or Series."""
    return not isinstance(a, da.Array) and dask.is_dask_collection(a) and hasattr(a, "to_dask_array")


def is_xarray(a) -> bool:
    """An xarray object (DataArray or Dataset), recognized without importing xarray."""
    return type(a).__module__.partition(".")[0] == "xarray"


def frame_meta(a):
    """The empty pandas frame describing a dask DataFrame (its column names and dtypes), else None."""
    return a._meta if is_dask_frame(a) else None


def frame_as_array(frame, name: str) -> da.Array:
    """A dask DataFrame (or Series) as a row-chunked dask array, never computed on the client.

    Columns must be numeric or boolean (categorical and text columns need an encoding first). A
    frame's partitions have unknown lengths: they are counted by one extra read of its partitions
    (only each partition's row count comes back), since rows of X, y and the weights are matched by
    position."""
    import pandas as pd

    columns = frame._meta if frame.ndim == 2 else frame._meta.to_frame()
    bad = [f"{c!r} ({t})" for c, t in columns.dtypes.items()
           if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_bool_dtype(t))]
    if bad:
        raise ValueError(
            f"{name} has columns that are not numbers: {', '.join(bad[:5])}"
            f"{', …' if len(bad) > 5 else ''}; encode them as numbers first (or drop them)"
        )
    dtypes = set(columns.dtypes)
    if len(dtypes) > 1 or not all(isinstance(t, np.dtype) for t in dtypes):
        # mixed columns (bool with numbers becomes object) and nullable pandas dtypes (Int64,
        # Float64, boolean: missing values become NaN) are taken as float64
        frame = frame.astype("float64")
    arr = frame.to_dask_array()
    if any(np.isnan(c) for c in arr.chunks[0]):
        # each partition's row count (one read of the partitions, watched like a pass)
        counts = arr.map_blocks(_n_rows, chunks=((1,) * arr.numblocks[0],),
                                drop_axis=list(range(1, arr.ndim)), dtype=np.int64)
        (lengths,) = _compute_watched(counts)
        # the same graph with the counted row chunks (``to_dask_array(lengths=…)`` would check them
        # against the frame's partitions before read optimizations merged some)
        arr = da.Array(arr.dask, arr.name, (tuple(int(n) for n in lengths), *arr.chunks[1:]),
                       dtype=arr.dtype)
    return arr


def _n_rows(block) -> np.ndarray:
    return np.array([block.shape[0]], dtype=np.int64)


def is_lazy(a) -> bool:
    return isinstance(a, da.Array)


def is_lazy_input(a) -> bool:
    """A dask or zarr array (or a zarr group, which :func:`as_array` explains), a dask DataFrame or
    Series, or an xarray DataArray holding a dask array: used lazily, never read whole into memory."""
    return (isinstance(a, (da.Array, zarr.Array, zarr.Group)) or is_dask_frame(a)
            or (is_xarray(a) and isinstance(getattr(a, "data", None), da.Array)))


def compute(*args):
    """Evaluate any dask arrays among ``args`` in one go; numpy values pass through."""
    if any(is_lazy(a) for a in args):
        return _compute_watched(*args)
    return args


def unique(a) -> np.ndarray:
    """Sorted distinct values of a 1-D numpy or dask array, as numpy."""
    if is_lazy(a):
        return np.asarray(_compute_watched(da.unique(a))[0])
    return np.unique(a)


def check_shapes(X, y, sample_weight) -> None:
    """Dimensions and lengths of the inputs, with messages naming what is wrong."""
    for name, a in (("X", X), ("y", y), ("sample_weight", sample_weight)):
        if a is not None and any(np.isnan(d) for d in a.shape):
            raise ValueError(f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
    if y.ndim != 1:
        raise ValueError(f"y must be 1-dimensional (n_samples,), got shape {y.shape}")
    if X.shape[1] < 1:
        raise ValueError("X has no columns")
    if X.shape[0] != y.shape[0]:
        raise ValueError(
            f"X and y have different lengths: X has {X.shape[0]} rows, y has {y.shape[0]}"
        )
    if sample_weight is not None and sample_weight.shape != y.shape:
        raise ValueError(
            f"sample_weight must have shape ({y.shape[0]},), got {sample_weight.shape}"
        )


# -- reading zarr chunks: what zarr would fill in silently is an error -------------------------

def _from_zarr(z: zarr.Array, name: str) -> da.Array:
    """``da.from_zarr(z)`` (one block per zarr chunk), read by :func:`_read_zarr`."""
    key = "from-zarr-" + dask.base.tokenize(z, z.chunks, name, "checked")
    return da.from_array(z, chunks=z.chunks, name=key,
                         getitem=functools.partial(_read_zarr, name=name))


def _store_name(z: zarr.Array) -> str:
    """The directory (or URL) of the store holding ``z``, as the user named it."""
    store = z.store
    if isinstance(store, zarr.storage.LocalStore):
        return str(store.root)
    return str(store)


def _read_zarr(z, index, asarray=True, lock=None, *, name="X"):
    """dask's getter for one block of a zarr array, refusing what zarr would silently fill in.

    zarr reads a chunk whose file is missing as its fill value (0): a block that equals the fill
    value everywhere (checked on its first entry first, so real data cost nothing) is looked up in
    the store, and a missing chunk is an error naming the array, the chunk and its rows. A chunk
    that fails its checksum (``Crc32cCodec``, which :func:`smem_dask.data.write_zarr` writes) is
    reported as damage of the store, not as zarr's bare message.
    """
    try:
        if lock:
            with lock:
                block = z[index]
        else:
            block = z[index]
        block = np.asarray(block) if asarray else block
    except ValueError as exc:
        if "checksum" not in str(exc):
            raise
        raise ValueError(f"{_chunks_text(z, index, name)} of {_store_name(z)} failed its checksum: "
                         "the store is damaged") from None
    if np.size(block) and _all_fill(block, z.fill_value):
        _check_stored(z, index, name)
    return block


def _all_fill(block: np.ndarray, fill) -> bool:
    """Whether every entry of ``block`` is the fill value (NaN included); the first entry first."""
    fill = np.asarray(0 if fill is None else fill)
    first = block.flat[0]
    if fill.dtype.kind in "fc" and np.isnan(fill):
        return bool(np.isnan(first)) and bool(np.isnan(block).all())
    return bool(first == fill) and bool((block == fill).all())


def _units(z, index) -> list[tuple[int, ...]]:
    """Grid coordinates of the stored objects (shards, else chunks) under the block ``index``."""
    unit = z.shards or z.chunks
    ranges = []
    for sl, size, n in zip(index, unit, z.shape, strict=False):
        start, stop, _ = sl.indices(n)
        ranges.append(range(start // size, -(-stop // size)))
    return list(itertools.product(*ranges))


def _key(z, coords) -> str:
    key = z.metadata.encode_chunk_key(coords)
    return f"{z.store_path.path}/{key}" if z.store_path.path else key


def _chunk_text(z, coords, name: str) -> str:
    """e.g. "X chunk 3 (rows 2100–2799)" — a shard when the array is sharded."""
    unit = z.shards or z.chunks
    kind = "shard" if z.shards else "chunk"
    at = coords[0] if all(c == 0 for c in coords[1:]) else tuple(coords)
    first = coords[0] * unit[0]
    last = min(first + unit[0], z.shape[0]) - 1
    return f"{name} {kind} {at} (rows {first}–{last})"


def _chunks_text(z, index, name: str) -> str:
    units = _units(z, index)
    if len(units) == 1:
        return _chunk_text(z, units[0], name)
    return f"{_chunk_text(z, units[0], name)} … {_chunk_text(z, units[-1], name)}"


def _check_stored(z, index, name: str) -> None:
    """Refuse a block of fill values read from a store where the array is not (a worker that does
    not see the client's files), or whose chunk file does not exist in an array written with every
    chunk (one carrying a chunk checksum, as :func:`smem_dask.data.write_zarr` writes them). Other
    arrays follow zarr's own rule: a chunk equal to the fill value is not written (e.g. an all-zero
    block of labels), so a missing chunk there means the fill value."""
    meta = "zarr.json" if z.metadata.zarr_format == 3 else ".zarray"
    meta = f"{z.store_path.path}/{meta}" if z.store_path.path else meta
    if not sync(z.store.exists(meta)):
        raise ValueError(
            f"{name} cannot be read from {_store_name(z)} on {socket.gethostname()} (pid "
            f"{os.getpid()}): the array is not there; do the workers see the same file system / "
            "path as this client?")
    if not _every_chunk_written(z):
        return
    missing = [c for c in _units(z, index) if not sync(z.store.exists(_key(z, c)))]
    if missing:
        raise ValueError(
            f"{_chunk_text(z, missing[0], name)} is missing from {_store_name(z)}: the store is "
            "incomplete (it was written with every chunk and a checksum per chunk)")


def _every_chunk_written(z) -> bool:
    """Whether ``z`` carries a chunk checksum: arrays written so (by ``write_zarr``) have every
    chunk on disk, even one equal to the fill value."""
    return any(isinstance(c, zarr.codecs.Crc32cCodec) for c in getattr(z.metadata, "codecs", ()))


def _zarr_behind(*arrays) -> list[zarr.Array]:
    """The zarr arrays a dask array reads (through ``from_zarr``/``from_array``: the graph layer
    holding the array itself)."""
    found = []
    for a in arrays:
        if not is_lazy(a):
            continue
        for layer_name, layer in a.dask.layers.items():
            if layer_name.startswith("original-"):
                found += [v for v in layer.values() if isinstance(v, zarr.Array)]
    return found


# -- the checksum of the data -------------------------------------------------------------------
#
# Every block b (its row chunk of X, y and the weights) has a 64-bit BLAKE2b hash of (b, its shape,
# whether there are weights, the bytes of X in its dtype, little-endian, and of y and the weights as
# float64). The data's checksum is the sum of the blocks' hashes modulo 2⁶⁴. A pass carries each
# block's hash as four 16-bit pieces in float64 columns of its packed row: the tree reduction sums
# them exactly (each column's sum stays below 2¹⁶ · 2³⁷ blocks = 2⁵³), whatever its order.

#: float64 columns a checksummed pass appends: the four pieces of the sum over all blocks, then the
#: four pieces of the one sampled block (zeros elsewhere), compared with what the client reads
CHECKSUM_COLUMNS = 8
_MAX_BLOCKS = 2**37


def _block_hash(b: int, xb, yb, sb) -> int:
    """The 64-bit hash of block ``b`` (see above)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(struct.pack("<qqq?", int(b), int(xb.shape[0]), int(xb.shape[1]), sb is not None))
    xb = np.asarray(xb)
    h.update(np.ascontiguousarray(xb, dtype=xb.dtype.newbyteorder("<")).data)
    for v in (yb, sb):
        if v is not None:
            h.update(np.ascontiguousarray(v, dtype="<f8").data)
    return int.from_bytes(h.digest(), "little")


def _pieces(h: int) -> np.ndarray:
    return np.array([(h >> shift) & 0xFFFF for shift in (48, 32, 16, 0)], dtype=np.float64)


def _joined(pieces) -> int:
    """The 64-bit sum (mod 2⁶⁴) from its four summed 16-bit piece columns."""
    total = 0
    for value, shift in zip(pieces, (48, 32, 16, 0), strict=True):
        if not (float(value).is_integer() and 0 <= value < 2**53):
            raise ValueError(f"a checksum column summed to {value!r}, not an exact integer")
        total += int(value) << shift
    return total % 2**64


def _hex(h: int) -> str:
    return f"blake2b-64-sum:{h:016x}"


def _checked(stats: list[BlockStats], engine) -> list[BlockStats]:
    """Stop with a message naming the problem when a pass produced non-finite statistics."""
    if all(st.is_finite() for st in stats):
        return stats
    n_x, n_y = engine.count_nonfinite()
    if n_x:
        raise ValueError(f"X contains {n_x} NaN or infinite values")
    if n_y:
        raise ValueError(f"y contains {n_y} NaN or infinite values")
    # squares summed over the rows (the Gram, the squared loss) overflow beyond this size
    limit = float(np.sqrt(np.finfo(np.float64).max / (1e3 * max(engine.n_samples, 1))))
    for name, what, largest in zip(("X", "y"), ("Gram", "loss"), engine.largest_abs(), strict=True):
        if largest > limit:
            raise ValueError(
                f"{name}'s scale overflows the float64 {what}: |{name}| reaches {largest:.3g}, and "
                f"sums of squares over {engine.n_samples} rows exceed float64's {np.finfo(float).max:.3g}; "
                f"rescale {name} (e.g. sklearn's StandardScaler)"
            )
    largest_x, largest_y = engine.largest_abs()
    raise ValueError(
        f"a data pass overflowed float64 although X and y are finite (|X| up to {largest_x:.3g}, |y| up "
        f"to {largest_y:.3g}): products of X with the loss's weights exceed {np.finfo(float).max:.3g}; "
        "rescale X and y (e.g. sklearn's StandardScaler)"
    )


class ClusterError(ConnectionError):
    """A distributed cluster cannot make the pass: no worker for :func:`no_worker_timeout`
    seconds, or the connection to the scheduler lost."""


class WorkerMemoryError(MemoryError):
    """A block, or persisted data, does not fit the workers' memory (found before any pass, or
    when workers died or stayed paused during one)."""


#: seconds a pass on a distributed cluster waits while no worker is running (none connected, all
#: lost, or all paused at their memory limit) before it stops with an error; dask config key
#: ``smem_dask.no-worker-timeout`` (e.g. environment ``DASK_SMEM_DASK__NO_WORKER_TIMEOUT=60``)
NO_WORKER_TIMEOUT = 20.0

#: seconds between two looks of the watchdog at the client's connection and the scheduler's workers
WATCH_INTERVAL = 1.0


def no_worker_timeout() -> float:
    """The configured ``smem_dask.no-worker-timeout`` in seconds (default
    :data:`NO_WORKER_TIMEOUT`; a number of seconds or a duration such as "1min")."""
    from dask.utils import parse_timedelta

    value = dask.config.get("smem_dask.no-worker-timeout", NO_WORKER_TIMEOUT)
    try:
        seconds = float(parse_timedelta(value, default="seconds"))
    except (TypeError, ValueError, KeyError):
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"the dask config smem_dask.no-worker-timeout must be a positive duration, "
                         f"got {value!r}")
    return seconds


def _no_workers(address: str, seconds: float, had: int) -> ClusterError:
    lost = f" (the {had} worker{'s' if had > 1 else ''} of this pass left)" if had else ""
    return ClusterError(f"no dask workers connected to the scheduler at {address} for {seconds:g} s"
                        f"{lost}: start workers (see cluster/README.md)")


def _scheduler_lost(address: str, why: str) -> ClusterError:
    return ClusterError(f"lost the dask scheduler at {address}: {why}; start a scheduler and its "
                        "workers again and rerun (a path with --store resumes)")


def require_workers(client) -> None:
    """Wait until the scheduler of ``client`` has a worker, at most :func:`no_worker_timeout`
    seconds, then stop with :class:`ClusterError` (a scheduler started without workers)."""
    grace = no_worker_timeout()
    try:
        client.wait_for_workers(1, timeout=grace)
    except TimeoutError:
        raise _no_workers(client.scheduler.address, grace, 0) from None


def _memory_advice(engine, client) -> str:
    """The block size and the workers' memory limit, for messages about workers out of memory."""
    parts = []
    if engine is not None:
        parts.append(f"{_describe_block(engine.X, engine.y, engine.sample_weight)} and a data "
                     f"pass needs about {PASS_MEMORY_FACTOR}× that per worker thread")
    try:
        limits = [w["limit"] for w in _workers(client) if w["limit"]]
    except Exception:  # noqa: BLE001 - only for the message; the cluster may be gone
        limits = []
    if limits:
        parts.append(f"the workers' memory limit is {_size(min(limits))}")
    return "; ".join(parts + ["use smaller chunks (chunk_rows) or workers with more memory"])


def _compute_watched(*args, engine=None) -> tuple:
    """``dask.compute(*args)``, watched when it runs on a distributed client.

    Without a client (dask's threads) this is ``dask.compute``. With one, the graphs are
    submitted (``client.compute``, the same graph) and waited for in steps of
    :data:`WATCH_INTERVAL`; after each step the watchdog looks at the client's connection and at
    the scheduler's workers, and stops with a one-line error instead of waiting for ever:
    :class:`ClusterError` when the scheduler is lost, or when no worker has been running for
    :func:`no_worker_timeout` seconds (none connected, all died); :class:`WorkerMemoryError` when
    all workers stayed paused at their memory limit that long, or a worker running a block died
    ``distributed.scheduler.allowed-failures`` + 1 times (``KilledWorker``: out of memory, most
    likely). ``engine`` names the block size in those messages. Errors of the tasks themselves
    come through unchanged.
    """
    client = _distributed_client(args)
    if client is None:
        return dask.compute(*args)
    from distributed import KilledWorker, wait

    address = client.scheduler.address if client.scheduler is not None else "(unknown)"
    if client.status != "running":
        raise _scheduler_lost(address, f"the client is {client.status}")
    lazy = [i for i, a in enumerate(args) if dask.is_dask_collection(a)]
    grace = no_worker_timeout()
    futures = client.compute([args[i] for i in lazy])
    idle_since, had = None, 0
    try:
        while True:
            try:
                with client.as_current():  # wait() uses the current client, maybe another one
                    wait(futures, timeout=WATCH_INTERVAL)
            except TimeoutError:
                pass
            except Exception:  # the connection broke under the wait (the futures are cancelled)
                if client.status == "running":
                    raise
                raise _scheduler_lost(address, "the connection closed during a data pass") from None
            if client.status != "running" or any(f.status == "cancelled" for f in futures):
                raise _scheduler_lost(address, "the connection closed during a data pass"
                                      if client.status != "running"
                                      else "the data pass was cancelled on the scheduler")
            if all(f.done() for f in futures):
                break
            try:
                workers = _workers(client)
            except OSError:
                raise _scheduler_lost(address, "it does not answer") from None
            had = max(had, len(workers))
            if any(w["status"] == "running" for w in workers):
                idle_since = None
                continue
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since < grace:
                continue
            if workers:  # there are workers, but every one is paused
                who = "the dask worker has" if len(workers) == 1 else f"all {len(workers)} dask workers have"
                raise WorkerMemoryError(
                    f"{who} been paused at their memory limit for {grace:g} s: "
                    f"{_memory_advice(engine, client)}")
            raise _no_workers(address, grace, had)
        try:
            results = client.gather(futures)
        except KilledWorker as exc:
            what = "a block of a data pass" if engine is not None else "one task"
            raise WorkerMemoryError(
                f"dask workers died {exc.allowed_failures + 1} times running {what} (KilledWorker), "
                f"most likely out of memory: {_memory_advice(engine, client)}") from None
    finally:
        if client.status == "running" and not all(f.done() for f in futures):
            with contextlib.suppress(Exception):
                client.cancel(futures)
        del futures
    out = list(args)
    for i, value in zip(lazy, results, strict=True):
        out[i] = value
    return tuple(out)


class _Engine:
    """What both engines share: the one-request pass on top of ``stats_many``, and the data's
    checksum (``checksum``: None until a pass computed it)."""

    checksum: str | None = None
    _checksum_wanted: bool = False

    def stats(self, loss: Loss, coefs, expand, fit_intercept: bool) -> BlockStats:
        """One pass for one request: statistics at ``coefs`` (q × k) and the system at ``expand``."""
        return self.stats_many(loss, [Request(coefs, expand)], fit_intercept)[0]

    def request_checksum(self) -> None:
        """Have the next pass also compute the data's checksum (no extra pass: each block's hash
        is taken where the block is read; see :meth:`data_checksum`)."""
        self._checksum_wanted = True

    def _checksumming(self) -> bool:
        return self.checksum is None and self._checksum_wanted

    def data_checksum(self) -> str:
        """The checksum of all the data (the sum of the blocks' 64-bit hashes, mod 2⁶⁴): the one a
        pass computed after :meth:`request_checksum`, else one pass of its own reading every
        block (counted in ``n_passes``)."""
        if self.checksum is None:
            self.request_checksum()
            self.stats_many(None, [], False)
        return self.checksum

    def fingerprint(self) -> dict:
        """Shape, dtype and row blocks of the data: known without reading it. The data themselves
        are identified by :meth:`data_checksum`, which is defined on these blocks."""
        return {"shape": [int(self.n_samples), int(self.n_features)],
                "dtype": str(np.dtype(self.X.dtype)), "chunks": [int(c) for c in self.row_chunks]}


class NumpyEngine(_Engine):
    """In-memory engine: blocks of ``block_rows`` rows, statistics summed in order.

    Parameters
    ----------
    X : (n, p) array, any real dtype (accumulated in float64)
    y : (n,) float array
    sample_weight : (n,) array or None
    block_rows : int — rows per block (bounds the temporary memory of a pass)
    n_threads : int or None — blocks computed concurrently by this many threads (numpy and BLAS
        release the GIL; None: one per CPU). The sum is taken in block order, so the result does
        not depend on the number of threads.
    """

    def __init__(self, X, y, sample_weight=None, *, block_rows: int = 65536,
                 n_threads: int | None = None):
        X, y = np.asarray(X), np.asarray(y, dtype=np.float64)
        s = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        check_shapes(X, y, s)
        self.X, self.y, self.sample_weight = X, y, s
        self.block_rows = int(block_rows)
        if n_threads is None:
            n_threads = os.cpu_count() or 1
        if not (isinstance(n_threads, numbers.Integral) and n_threads >= 1):
            raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
        self.n_threads = int(n_threads)
        self.n_samples, self.n_features = X.shape
        self.n_passes = 0

    @property
    def nbytes(self) -> int:
        return int(self.X.nbytes)

    def stats_many(self, loss: Loss, requests: list[Request], fit_intercept: bool) -> list[BlockStats]:
        """One pass serving every request."""
        q = self.n_features + int(fit_intercept)

        starts = range(0, max(self.n_samples, 1), self.block_rows)
        threads = self.n_threads > 1 and len(starts) > 1

        checksum = self._checksumming()

        def block(start):
            rows = slice(start, start + self.block_rows)
            s = None if self.sample_weight is None else self.sample_weight[rows]
            parts = (block_stats_many(self.X[rows], self.y[rows], s, loss, requests, fit_intercept,
                                      threads) if requests else [])
            return parts, (_block_hash(start // self.block_rows, self.X[rows], self.y[rows], s)
                           if checksum else 0)

        totals = [BlockStats.zero(q, r.k) for r in requests]
        hashes = 0
        if threads:
            # one BLAS thread per block thread: BLAS's own threads would compete with ours
            with _blas_controller().limit(limits=1, user_api="blas"), \
                    ThreadPoolExecutor(min(self.n_threads, len(starts))) as pool:
                blocks = pool.map(block, starts)  # in order: the sum does not depend on timing
                for parts, h in blocks:
                    totals = [t + b for t, b in zip(totals, parts, strict=True)]
                    hashes += h
        else:
            for start in starts:
                parts, h = block(start)
                totals = [t + b for t, b in zip(totals, parts, strict=True)]
                hashes += h
        if checksum:
            self.checksum = _hex(hashes % 2**64)
        self.n_passes += 1
        return _checked(totals, self)

    @property
    def row_chunks(self) -> tuple[int, ...]:
        """Rows of each block of a pass."""
        starts = range(0, max(self.n_samples, 1), self.block_rows)
        return tuple(min(self.block_rows, self.n_samples - start) for start in starts)

    def count_nonfinite(self) -> tuple[int, int]:
        """Non-finite entries of (X, y)."""
        return int(np.size(self.X) - np.isfinite(self.X).sum()), int(
            np.size(self.y) - np.isfinite(self.y).sum()
        )

    def largest_abs(self) -> tuple[float, float]:
        """max |X| and max |y| (0 when empty)."""
        return (float(np.abs(self.X).max(initial=0)), float(np.abs(self.y).max(initial=0)))


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _aligned(a):
    """``a`` itself, or an aligned copy when its data do not start on a multiple of the item size:
    blocks moved between workers arrive in buffers at any byte offset, and BLAS and numpy sum
    misaligned data in another order (measured: 1e-13 differences in the Gram; and slower). A copy
    makes every pass bitwise identical wherever its blocks were computed."""
    return a if a is None or a.flags.aligned else np.array(a)


def _pass_kernel(xb, yb, sb, block_index=None, *, loss, requests, fit_intercept, full=True, sampled=-1):
    """One block of one pass: read, compute, and pack its statistics into a (1, L) row. Given its
    ``block_index`` (a checksummed pass: the block's (row, column) block numbers), the row ends
    with the block's hash in :data:`CHECKSUM_COLUMNS` columns: its four 16-bit pieces (when
    ``full``; zeros otherwise), and again when it is the block ``sampled`` (zeros otherwise).
    Only the hashes asked for are taken."""
    xb, yb, sb = _aligned(xb), _aligned(yb), _aligned(sb)
    packed = (pack_many(block_stats_many(xb, yb, sb, loss, requests, fit_intercept, _shared_process()),
                        requests) if requests else np.zeros(0))
    if block_index is not None:
        b = int(block_index[0])  # (row block, column block)
        pieces = _pieces(_block_hash(b, xb, yb, sb)) if full or b == sampled else np.zeros(4)
        packed = np.concatenate([packed, pieces if full else np.zeros(4),
                                 pieces if b == sampled else np.zeros(4)])
    return packed[None, :]


def _shared_process() -> bool:
    """Whether other threads of this process may run pass kernels at the same time: false only on
    a distributed worker with one thread (there the GIL-holding ``dsyrk`` is fastest)."""
    try:
        from distributed import get_worker

        return get_worker().state.nthreads > 1
    except (ImportError, ValueError):
        return True  # dask's local threaded scheduler, or no worker


class DaskEngine(_Engine):
    """Engine over row-chunked dask arrays (each block holds all columns).

    Awkward inputs are fixed rather than refused: X chunked along columns is rechunked to whole
    rows; y and sample weights are rechunked to X's row chunks.

    Parameters
    ----------
    X : (n, p) dask array
    y : (n,) dask or numpy array
    sample_weight : (n,) dask or numpy array, or None
    persist : bool or "auto" — keep X, y, weights in (cluster) memory after the first read; otherwise
        every pass streams them from their source (e.g. a zarr store). "auto": persist when the
        inputs take at most :data:`PERSIST_FRACTION` of the memory they would live in (the sum of
        the workers' memory limits less what the workers already use, with a distributed client;
        else the machine's available memory), stream otherwise. ``self.persist`` holds the
        decision. On a distributed cluster a block too large for a worker, or ``persist=True`` on
        data larger than the workers' free memory, is refused here, before any pass (see
        :func:`_plan_memory`).
    split_every : int — fan-in of the tree reduction of block statistics.
    """

    def __init__(self, X, y, sample_weight=None, *, persist: bool | str = False,
                 split_every: int = 8):
        if not (isinstance(split_every, numbers.Integral) and split_every >= 2):
            raise ValueError(f"split_every must be an integer ≥ 2, got {split_every!r}")
        if persist not in (True, False, "auto"):
            raise ValueError(f"persist must be True, False or 'auto', got {persist!r}")
        # arrays handed over in memory are wrapped and persisted once, so that no pass graph
        # carries their data to the scheduler again
        in_memory = {name for name, a in (("X", X), ("y", y), ("s", sample_weight))
                     if a is not None and not is_lazy(a)}
        X = X if is_lazy(X) else da.from_array(np.asarray(X))
        check_shapes(X, y, sample_weight)
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        row_chunks = X.chunks[0]
        y = _rechunk_like(y, row_chunks)
        s = None if sample_weight is None else _rechunk_like(sample_weight, row_chunks)
        # the zarr arrays read, and the data as read from them (not persisted): after the first
        # pass of a distributed fit the client reads one block itself and compares its hash with
        # the workers' (see _compare_sampled)
        self._zarr = _zarr_behind(X, y, s)
        self._source = (X, y, s)
        persist = _plan_memory(X, y, s, persist)
        if persist or "X" in in_memory:
            X, y, s = dask.persist(X, y, s)
        elif in_memory:
            y, s = (dask.persist(a)[0] if name in in_memory else a
                    for name, a in (("y", y), ("s", s)))
        self.X, self.y, self.sample_weight = X, y, s
        self.persist = bool(persist)
        self.split_every = int(split_every)
        self.n_samples, self.n_features = X.shape
        self.n_passes = 0
        # the workers' view of the store is checked in the first pass (one block hashed)
        self.sampled_block = self.n_blocks // 2 if self._zarr and _distributed_client() else None
        self._sample_pending = self.sampled_block is not None

    @property
    def nbytes(self) -> int:
        return int(self.X.nbytes)

    @property
    def n_blocks(self) -> int:
        return len(self.X.chunks[0])

    @property
    def row_chunks(self) -> tuple[int, ...]:
        return tuple(self.X.chunks[0])

    def pass_graph(self, loss: Loss, requests: list[Request], fit_intercept: bool,
                   checksum: bool = False, full: bool = True) -> da.Array:
        """The lazy packed statistics of one pass (exposed for graph inspection in tests); with
        ``checksum``, followed by the blocks' hashes (:data:`CHECKSUM_COLUMNS`, see
        :func:`_pass_kernel`; every block's when ``full``, else the sampled block's alone) — in
        the same one task per block."""
        q = self.n_features + int(fit_intercept)
        size = sum(request_size(q, r) for r in requests)
        s_args = (None, None) if self.sample_weight is None else (self.sample_weight, "i")
        hash_args, hash_kw = (), {}
        if checksum:
            if self.n_blocks >= _MAX_BLOCKS:
                raise ValueError(f"{self.n_blocks} blocks are too many to checksum exactly; use "
                                 "larger chunks")
            size += CHECKSUM_COLUMNS
            # each block's number, given to its task as map_blocks(block_id=…) gives it (dask's own
            # ArrayBlockIdDep: an index array of one-element blocks would add a task per block)
            hash_args = (ArrayBlockIdDep(self.X.chunks), "ij")
            hash_kw = {"full": bool(full),
                       "sampled": -1 if self.sampled_block is None else self.sampled_block}
        # output blocks (1, size) indexed like X's blocks ("ij", one column block): no contraction
        # and no new axis, so the read of each block and the kernel fuse into one task
        parts = da.blockwise(
            _pass_kernel, "ij",
            self.X, "ij",
            self.y, "i",
            *s_args,
            *hash_args,
            adjust_chunks={"i": 1, "j": size},
            align_arrays=False,  # y and the weights have X's row chunks (made so in __init__)
            dtype=np.float64,
            meta=np.empty((0, 0), dtype=np.float64),
            token="smem-pass",
            loss=loss, requests=list(requests), fit_intercept=fit_intercept, **hash_kw,
        )
        return parts.sum(axis=0, split_every=self.split_every)

    def stats_many(self, loss: Loss, requests: list[Request], fit_intercept: bool) -> list[BlockStats]:
        """One pass (one ``compute``) serving every request."""
        q = self.n_features + int(fit_intercept)
        full = self._checksumming()
        hashed = full or self._sample_pending
        packed = _compute_watched(self.pass_graph(loss, requests, fit_intercept, hashed, full),
                                  engine=self)[0]
        if hashed:
            packed = self._take_checksum(packed, full)
        self.n_passes += 1
        return _checked(unpack_many(packed, q, requests), self)

    def _take_checksum(self, packed: np.ndarray, full: bool) -> np.ndarray:
        """Keep the data's checksum (``full``) from the end of a checksummed pass's result, and
        check the sampled block against the client's own read; the statistics before them."""
        tail = packed[-CHECKSUM_COLUMNS:]
        if self._sample_pending:
            self._compare_sampled(_joined(tail[4:]))
            self._sample_pending = False
        if full:
            self.checksum = _hex(_joined(tail[:4]))
        return packed[:-CHECKSUM_COLUMNS]

    def _compare_sampled(self, theirs: int) -> None:
        """The client reads the sampled block from the store itself (one chunk of each input) and
        refuses when its hash differs from what the workers read there: workers that see another
        file system, or another copy of the store under the same path."""
        b = self.sampled_block
        blocks = [None if a is None else a.blocks[b] for a in self._source]
        xb, yb, sb = dask.compute(*blocks, scheduler="sync")
        if _block_hash(b, xb, yb, sb) != theirs:
            stores = ", ".join(dict.fromkeys(_store_name(z) for z in self._zarr))
            raise ValueError(
                f"the workers read different data from {stores} than this client (block {b}): do "
                "the workers see the same file system / path?")

    def count_nonfinite(self) -> tuple[int, int]:
        """Non-finite entries of (X, y) — one extra pass, used only to explain a failure."""
        nx, ny = _compute_watched((~da.isfinite(self.X)).sum(), (~da.isfinite(self.y)).sum())
        return int(nx), int(ny)

    def largest_abs(self) -> tuple[float, float]:
        """max |X| and max |y| — one extra pass, used only to explain a failure."""
        x, y = _compute_watched(abs(self.X).max(), abs(self.y).max())
        return float(x), float(y)


#: ``persist="auto"`` keeps the data in memory when it takes at most this fraction of the memory
#: available to hold it (the rest is for the pass's temporaries and everything else)
PERSIST_FRACTION = 0.5


def memory_available() -> float:
    """Bytes that persisted data could occupy: with a distributed client, the sum over the workers
    of their memory limit (a worker without one counts the machine's memory) less the memory the
    worker process takes itself (:func:`_own`); else the memory available on
    this machine."""
    import psutil

    client = _distributed_client()
    if client is None:
        return float(psutil.virtual_memory().available)
    total = psutil.virtual_memory().total
    return float(sum(max((w["limit"] or total) - _own(w), 0.0) for w in _workers(client)))


#: q×q float64 Grams the client holds at once per system solved: the reduced result of a pass, the
#: unpacked system, its Cholesky factor and the previous (or cached) system
CLIENT_GRAM_COPIES = 4

#: a worker thread computing one block of a pass holds about this many times the block's bytes
#: (rows × columns × item size of X, with y and the weights): measured with tracemalloc on a
#: 100 000 × 50 float64 block read from zarr (``python`` with ``tracemalloc`` around one pass on
#: dask's synchronous scheduler): 2.0× uncompressed (the bytes read and the array decoded from
#: them), 3.0× with zstd (the compressed bytes as well); the kernel's own row tiles and Grams add
#: under 3% (1, 4 and 16 requests alike)
PASS_MEMORY_FACTOR = 3


#: the memory a worker process takes for itself once it has run a pass (python, dask, zarr,
#: numpy, scipy and BLAS loaded): counted instead of what it reports when that is less. Measured
#: with distributed 2026.8 and zarr 3.1: a fresh worker reports 62 MiB, 166 MiB after reading one
#: zarr array, 223 MiB after a fit on 2000 rows (psutil RSS through ``client.run``)
WORKER_OWN_BYTES = 224 * 2**20


def _distributed_client(collections=()):
    """The distributed Client that ``dask.compute`` would run ``collections`` on (chosen as dask
    chooses: ``scheduler=`` in dask's config, else the current client), or None (threads)."""
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - distributed is a dependency
        return None
    try:
        get = dask.base.get_scheduler(collections=list(collections) or None)
    except (RuntimeError, ValueError):
        return None
    client = getattr(get, "__self__", None)
    return client if isinstance(client, Client) else None


def _workers(client) -> list[dict]:
    """Each worker of ``client``'s cluster: its memory ``limit`` in bytes (None without one), the
    memory its process ``used`` (resident set, as the worker last reported it), ``nthreads`` and
    ``status`` ("running", "paused", …)."""
    workers = client.scheduler_info(n_workers=-1)["workers"].values()
    return [{"limit": float(w["memory_limit"]) if w.get("memory_limit") else None,
             "used": float(w.get("metrics", {}).get("memory") or 0),
             "nthreads": int(w.get("nthreads") or 1), "status": str(w.get("status", "running"))}
            for w in workers]


def _own(worker: dict) -> float:
    """The memory a worker process takes for itself while it reads and computes blocks: what it
    uses now, at least :data:`WORKER_OWN_BYTES`."""
    return max(worker["used"], WORKER_OWN_BYTES)


def _worker_memory_limits(client) -> list:
    """Each worker's memory limit in bytes (None for a worker without one)."""
    return [w["limit"] for w in _workers(client)]


def _pause_fraction() -> float:
    """The fraction of its memory limit at which a worker stops taking tasks (dask's
    ``distributed.worker.memory.pause``, read from this process's config: workers usually share
    it), or the fraction at which it is restarted when pausing is off."""
    memory = dask.config.get("distributed.worker.memory", {}) or {}
    for key in ("pause", "terminate"):
        value = memory.get(key)
        if value:
            return float(value)
    return 1.0


def _block_nbytes(X, y=None, s=None) -> float:
    """Bytes of the largest row block of X with its y and weights."""
    per_row = X.shape[1] * X.dtype.itemsize + sum(np.dtype(a.dtype).itemsize for a in (y, s)
                                                  if a is not None)
    return float(max(X.chunks[0], default=0) * per_row)


def _describe_block(X, y=None, s=None) -> str:
    rows = max(X.chunks[0], default=0)
    return (f"a block of {rows:,} rows (X: {X.shape[1]:,} {X.dtype} columns, with y"
            f"{'' if s is None else ' and the weights'}) takes {_size(_block_nbytes(X, y, s))}")


def check_memory_fits(X, y, sample_weight=None, *, persist: bool | str = "auto") -> None:
    """Refuse, before any task runs, inputs that cannot fit the workers of a distributed cluster
    (nothing to check for numpy inputs, dask's threads, or a cluster without workers yet).

    Each worker thread computing a block holds about :data:`PASS_MEMORY_FACTOR` × the block (X's
    rows with their y and weights); a worker has room for its memory limit × the pause fraction
    (:func:`_pause_fraction`, 80% by default: above it a worker stops taking tasks) less what its
    process takes itself (:func:`_own`). A block that does not fit the worker with the least
    room is refused (:class:`WorkerMemoryError`, with both sizes), as is ``persist=True`` on inputs
    larger than the workers' room less a block per thread.
    """
    if not is_lazy(X):
        return
    client = _distributed_client((X,))
    workers = [] if client is None else _workers(client)
    if not workers:
        return
    import psutil

    total = psutil.virtual_memory().total
    pause = _pause_fraction()
    need = PASS_MEMORY_FACTOR * _block_nbytes(X, y, sample_weight)

    def room(w):  # for the blocks its threads compute at once
        return (w["limit"] or total) * pause - _own(w)

    tight = min(workers, key=lambda w: room(w) / w["nthreads"])
    if need * tight["nthreads"] > room(tight):
        per_thread = "" if tight["nthreads"] == 1 else f" per thread ({tight['nthreads']} threads)"
        raise WorkerMemoryError(
            f"{_describe_block(X, y, sample_weight)} and a data pass needs about "
            f"{PASS_MEMORY_FACTOR}× that ({_size(need)}){per_thread}; the workers' memory limit is "
            f"{_size(tight['limit'] or total)}, {pause:.0%} usable, of which the worker process "
            f"takes {_size(_own(tight))} itself: use smaller chunks (chunk_rows) or workers with "
            "more memory")
    nbytes = sum(float(a.nbytes) for a in (X, y, sample_weight) if a is not None)
    free = sum(room(w) - need * w["nthreads"] for w in workers)
    if persist not in (False, "auto") and bool(persist) and nbytes > free:
        limits = sum(w["limit"] or total for w in workers)
        who = "the 1 worker has" if len(workers) == 1 else f"the {len(workers)} workers have"
        raise WorkerMemoryError(
            f"persist: the data take {_size(nbytes)} but {who} about "
            f"{_size(max(free, 0))} free for them (memory limits {_size(limits)}, {pause:.0%} usable, "
            f"less {_size(sum(_own(w) for w in workers))} the worker processes take themselves and "
            "room for each thread's block): stream the data (--stream, persist=False) or add "
            "workers or memory")


def _plan_memory(X, y, s, persist) -> bool:
    """Whether to persist the inputs, after :func:`check_memory_fits` refused what cannot fit.
    "auto" persists when the inputs take at most :data:`PERSIST_FRACTION` of
    :func:`memory_available`; on a cluster without workers yet, it streams."""
    check_memory_fits(X, y, s, persist=persist)
    if persist != "auto":
        return bool(persist)
    nbytes = sum(float(a.nbytes) for a in (X, y, s) if a is not None)
    return nbytes <= PERSIST_FRACTION * memory_available()


def _gram_limits(split_every: int, workers: bool) -> list[tuple[str, int, float]]:
    """(who, Gram copies held per system, bytes it has) for the client, and for the workers when
    passes run on a distributed cluster (the smallest memory limit). What the workers use already
    is not subtracted: the copies counted for a reduction task (2·split_every + 2) are a bound
    reached only with many blocks per task, and counting both refused fits that work (a path of
    p = 1000 on 300 MiB workers holding 166 MiB after reading y: 137.6 MiB counted, 134 MiB
    free; it runs)."""
    import psutil

    if isinstance(split_every, bool) or not isinstance(split_every, numbers.Integral) or split_every < 2:
        raise ValueError(f"split_every must be an integer ≥ 2, got {split_every!r}")
    limits = [("client", CLIENT_GRAM_COPIES, float(psutil.virtual_memory().available))]
    client = _distributed_client() if workers else None
    if client is not None:
        worker_limits = [m for m in _worker_memory_limits(client) if m]
        if worker_limits:
            limits.append(("worker", 2 * int(split_every) + 2, float(min(worker_limits))))
    return limits


def gram_systems_that_fit(n_features: int, fit_intercept: bool, *, split_every: int = 8,
                          workers: bool = True) -> int:
    """How many q×q systems (a lockstep path's α) one pass can carry within the memory of the
    client and of the workers (see :func:`check_gram_fits`); 0 when not even one fits."""
    q = int(n_features) + int(fit_intercept)
    return int(min(have // (copies * 8.0 * q * q)
                   for _, copies, have in _gram_limits(split_every, workers)))


def check_gram_fits(n_features: int, fit_intercept: bool, *, n_systems: int = 1,
                    split_every: int = 8, workers: bool = True) -> None:
    """Refuse, before any data pass, a problem whose Grams would not fit in memory.

    Every pass brings ``n_systems`` q×q float64 Grams (q = p + intercept) to the client, which
    holds :data:`CLIENT_GRAM_COPIES` of each; on a distributed cluster (``workers``: the passes run
    there) each worker's reduction task holds up to 2·``split_every`` + 2 of them (its inputs,
    their concatenation, its output). The client's bound is the memory available on this machine;
    a worker's, its memory limit.
    """
    q = int(n_features) + int(fit_intercept)
    gram = 8.0 * q * q * n_systems
    what = (f"{n_features:,} features need {'a' if n_systems == 1 else n_systems} "
            f"{q:,} × {q:,} float64 Gram{'s' if n_systems > 1 else ''} ({_size(gram)})")
    fewer = "fewer α per pass (batch), " if n_systems > 1 else ""
    for who, copies, have in _gram_limits(split_every, workers):
        need = copies * gram
        if need <= have:
            continue
        if who == "client":
            raise MemoryError(
                f"{what}; the client needs about {_size(need)} for them and their working copies, "
                f"but {_size(have)} is available here; use {fewer}fewer features or a client with "
                "more memory")
        raise MemoryError(
            f"{what}; a worker reducing them needs about {_size(need)}, but the workers' memory "
            f"limit is {_size(have)}; use {fewer}fewer features, workers with more memory, or a "
            "smaller split_every")


def _size(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:,.1f} MiB"


def _rechunk_like(v, row_chunks):
    if not is_lazy(v):
        return da.from_array(np.asarray(v), chunks=(row_chunks,))
    return v if v.chunks[0] == row_chunks else v.rechunk((row_chunks,))


def make_engine(X, y, sample_weight=None, *, persist: bool | str = False, split_every: int = 8,
                block_rows: int = 65536):
    """A :class:`DaskEngine` when X is lazy (dask or zarr), else a :class:`NumpyEngine`."""
    if is_lazy(X):
        return DaskEngine(X, y, sample_weight, persist=persist, split_every=split_every)
    if is_lazy(y) or is_lazy(sample_weight):
        y, sample_weight = compute(y, sample_weight)
    return NumpyEngine(X, y, sample_weight, block_rows=block_rows)


def _linear_block(xb, coef, intercept, transform):
    xb = np.asarray(xb, dtype=np.float64)
    n_bad = int(xb.size - np.count_nonzero(np.isfinite(xb)))
    if n_bad:
        raise ValueError(f"X contains {n_bad} NaN or infinite values in a block of {xb.shape[0]} rows; "
                         "predictions need finite features")
    eta = xb @ coef + intercept
    return eta if transform is None else transform(eta)


def linear_predictor(X, coef: np.ndarray, intercept: float, transform=None, dtype=np.float64):
    """``transform(Xβ + b)`` (η itself if no transform): numpy in, numpy out; dask or zarr in,
    lazy dask out (one task per block)."""
    X = as_array(X, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
    if X.shape[1] != coef.shape[0]:
        raise ValueError(
            f"X has {X.shape[1]} features, but the model was fitted with {coef.shape[0]}"
        )
    if not is_lazy(X):
        return _linear_block(X, coef, intercept, transform)
    if len(X.chunks[1]) > 1:
        X = X.rechunk({1: -1})
    return X.map_blocks(
        _linear_block, coef, intercept, transform, drop_axis=1, dtype=dtype,
        meta=np.empty((0,), dtype=dtype),
    )
