"""The inputs as arrays: numpy, dask, zarr (read refusing missing or damaged chunks), dask
DataFrames and xarray, with the checks of their shapes. Part of the engine layer (imports dask).

A zarr array becomes a lazy dask array whose blocks are read by :func:`_read_zarr`: what zarr would
fill in silently (a missing chunk, a chunk the workers cannot see) and a chunk failing its checksum
are errors naming the array, the chunk and its rows. A dask array the user made from a zarr array
(``da.from_zarr``), which dask reads with its own getter, has its chunks checked before the first pass
(:func:`check_chunks_stored`).
"""

from __future__ import annotations

import functools
import itertools
import os
import socket

import dask
import dask.array as da
import numpy as np
import zarr
from zarr.core.sync import sync

from .resources import _compute_watched

__all__ = [
    "as_array",
    "check_chunks_stored",
    "check_shapes",
    "compute",
    "frame_as_array",
    "frame_meta",
    "is_dask_frame",
    "is_lazy",
    "is_lazy_input",
    "is_xarray",
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
    return with_counted_rows(frame.to_dask_array())


def with_counted_rows(arr: da.Array, meta=None) -> da.Array:
    """``arr`` (blocks made from a frame's partitions) with its row chunks known, and ``meta`` (a
    block type other than numpy's, such as scipy CSR) when given. Unknown row counts are counted
    by one read of the partitions, watched like a pass (only each block's row count comes back)."""
    chunks = arr.chunks
    if any(np.isnan(c) for c in arr.chunks[0]):
        counts = arr.map_blocks(_n_rows, chunks=((1,) * arr.numblocks[0],),
                                drop_axis=list(range(1, arr.ndim)), dtype=np.int64,
                                meta=np.empty((0,), dtype=np.int64))
        (lengths,) = _compute_watched(counts)
        chunks = (tuple(int(n) for n in lengths), *arr.chunks[1:])
    elif meta is None:
        return arr
    # the same graph with the counted row chunks (``to_dask_array(lengths=…)`` would check them
    # against the frame's partitions before read optimizations merged some)
    return da.Array(arr.dask, arr.name, chunks, dtype=arr.dtype if meta is None else meta.dtype, meta=meta)


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


def factorize(labels, n_rows: int):
    """Integer codes 0 … G − 1 of 1-D labels (numpy or dask: then lazy codes, after one pass over the
    labels alone for their distinct values) and G. Refused: another length than ``n_rows``, missing
    labels (NaN, None)."""
    lazy = is_lazy_input(labels)
    a = as_array(labels, "clusters") if lazy else np.asarray(labels)
    if a.ndim != 1 or a.shape[0] != n_rows:
        raise ValueError(f"clusters must be one label per row: shape ({n_rows},), got {tuple(a.shape)}")
    if a.dtype.kind == "O" and not lazy:
        if any(v is None or (isinstance(v, float) and np.isnan(v)) for v in a):
            raise ValueError("clusters contains missing labels (None or NaN)")
        a = a.astype(str)
    levels = unique(a)
    if levels.dtype.kind == "f" and np.isnan(levels).any():
        raise ValueError("clusters contains missing labels (NaN)")
    if lazy:
        codes = a.map_blocks(lambda b: np.searchsorted(levels, b).astype(np.int64), dtype=np.int64)
    else:
        codes = np.searchsorted(levels, a).astype(np.int64)
    return codes, int(levels.size)


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
    if isinstance(store, zarr.storage.FsspecStore):  # what da.from_zarr(path) opens
        protocol = store.fs.protocol
        protocol = protocol if isinstance(protocol, str) else protocol[0]
        return store.path if protocol in ("file", "local") else f"{protocol}://{store.path}"
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
    if _every_chunk_written(z):
        _refuse_missing(z, [c for c in _units(z, index) if not sync(z.store.exists(_key(z, c)))],
                        name)


def _refuse_missing(z, missing, name: str) -> None:
    """The one refusal of missing chunks (grid coordinates ``missing``, the first one named) of an
    array written with every chunk."""
    if missing:
        raise ValueError(
            f"{_chunk_text(z, missing[0], name)} is missing from {_store_name(z)}: the store is "
            "incomplete (it was written with every chunk and a checksum per chunk)")


def check_chunks_stored(**arrays) -> None:
    """Refuse, before any pass, a missing chunk of a zarr array behind each (dask) array of
    ``arrays`` (name=array), also when dask reads it with its own getter (an array made with
    ``da.from_zarr`` or ``da.from_array(zarr_array)``, perhaps rechunked or sliced), which would
    return the fill value. The rule of :func:`_check_stored`: only in arrays written with every
    chunk (a chunk checksum); other stores follow zarr's rule (a chunk not written is the fill
    value). The whole zarr array is checked, also where a slice of it is not read.

    Costs one listing of each array's keys in its store (no chunk is read); this is the client's
    view of the store — what the workers see is checked by the sampled block of the first pass."""
    for name, a in arrays.items():
        _refuse_inlined_zarr(a, name)
        for z in _zarr_behind(a):
            if _every_chunk_written(z):
                listed = set(sync(_listed(z)))
                every = _units(z, (slice(None),) * z.ndim)
                _refuse_missing(z, [c for c in every if _key(z, c) not in listed], name)


def _refuse_inlined_zarr(a, name: str) -> None:
    """``da.from_zarr(..., inline_array=True)`` puts the zarr array inside each task, where no public
    API finds it, so its chunks cannot be verified: refused, saying how to make it checkable."""
    if not is_lazy(a):
        return
    layers = a.dask.layers
    if any(n.startswith("from-zarr-") and f"original-{n}" not in layers for n in layers):
        raise ValueError(
            f"{name} reads a zarr array inlined in its dask graph (da.from_zarr(..., inline_array=True)), "
            "whose chunks cannot be verified before the first pass: make it with inline_array=False "
            "(the default), or pass the zarr array or the store's path itself")


async def _listed(z) -> list[str]:
    """The keys of the store under the array's path (its metadata and stored chunks)."""
    return [k async for k in z.store.list_prefix(z.store_path.path)]


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
