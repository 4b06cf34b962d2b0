"""Engines: where the data lives and how one pass over it is made. With :mod:`smem_dask.arrays`,
:mod:`smem_dask.checksum` and :mod:`smem_dask.resources`, the engine layer: the only modules
importing dask.

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

import functools
import numbers
import os
from concurrent.futures import ThreadPoolExecutor

import dask
import dask.array as da
import numpy as np
import scipy.sparse
from dask.layers import ArrayBlockIdDep
from dask.optimization import cull
from threadpoolctl import ThreadpoolController

from .arrays import _store_name, _zarr_behind, as_array, check_chunks_stored, check_shapes, compute, is_lazy
from .checksum import _MAX_BLOCKS, CHECKSUM_COLUMNS, _block_hash, _hex, _joined, _pieces, _sample_hash
from .losses import Loss
from .resources import (
    _compute_watched,
    _distributed_client,
    _plan_memory,
    check_gram_fits,
    gram_systems_that_fit,
    has_sparse_blocks,
)
from .stats import BlockStats, Request, block_stats_many, pack_many, request_size, unpack_many

__all__ = [
    "NumpyEngine",
    "DaskEngine",
    "linear_predictor",
    "make_engine",
]


def _checked(stats: list[BlockStats], engine, requests: list[Request]) -> list[BlockStats]:
    """Stop with a message naming the problem when a pass produced non-finite statistics (except
    where a request says that overflow at its points is its caller's to judge: a Newton step that
    overshoots is a rise of F)."""
    if all(r.overflow_is_rise or st.is_finite() for st, r in zip(stats, requests, strict=True)):
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


class _Engine:
    """What both engines share: the one-request pass on top of ``stats_many``, and the data's
    checksum (``checksum``: None until a pass computed it)."""

    checksum: str | None = None
    _checksum_wanted: bool = False
    #: fan-in of the reduction of block statistics, and whether that reduction runs on the workers
    #: of a cluster (whose memory limits then bound the Grams a pass carries)
    split_every: int = 8
    reduces_on_workers: bool = False

    def grams_that_fit(self, fit_intercept: bool) -> int:
        """How many q×q Grams one pass can carry in the memory of the client (and of the workers
        that reduce them); see :func:`smem_dask.resources.check_gram_fits`."""
        return gram_systems_that_fit(self.n_features, fit_intercept, split_every=self.split_every,
                                     workers=self.reduces_on_workers)

    def check_grams_fit(self, fit_intercept: bool, n_systems: int) -> None:
        """Refuse, before any pass, ``n_systems`` Grams per pass that would not fit in memory."""
        check_gram_fits(self.n_features, fit_intercept, n_systems=n_systems,
                        split_every=self.split_every, workers=self.reduces_on_workers)

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
    folds : (n,) integers or None — row labels: fold ids (cross-validation) or cluster codes.
    offset : (n,) array or None — a known term of each row's linear predictor, η = x̃ᵀβ + o.
    """

    def __init__(self, X, y, sample_weight=None, *, block_rows: int = 65536,
                 n_threads: int | None = None, folds=None, offset=None):
        X = scipy.sparse.csr_matrix(X) if scipy.sparse.issparse(X) else np.asarray(X)
        y = np.asarray(y, dtype=np.float64)
        s = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        check_shapes(X, y, s)
        self.folds = _fold_ids(folds, X.shape[0])
        self.offset = _offset(offset, X.shape[0])
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
        if scipy.sparse.issparse(self.X):  # what a pass reads: the values and their indices
            return int(self.X.data.nbytes + self.X.indices.nbytes + self.X.indptr.nbytes)
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
            f = None if self.folds is None else self.folds[rows]
            o = None if self.offset is None else self.offset[rows]
            parts = (block_stats_many(self.X[rows], self.y[rows], s, loss, requests, fit_intercept,
                                      threads, f, o) if requests else [])
            return parts, (_block_hash(start // self.block_rows, self.X[rows], self.y[rows], s, f, o)
                           if checksum else 0)

        totals = [BlockStats.zero(q, r.k, r.width, r.system_size(q)) for r in requests]
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
        return _checked(totals, self, requests)

    @property
    def row_chunks(self) -> tuple[int, ...]:
        """Rows of each block of a pass."""
        starts = range(0, max(self.n_samples, 1), self.block_rows)
        return tuple(min(self.block_rows, self.n_samples - start) for start in starts)

    def count_nonfinite(self) -> tuple[int, int]:
        """Non-finite entries of (X, y) (of a sparse X: of its stored values)."""
        return _count_nonfinite(self.X), _count_nonfinite(self.y)

    def largest_abs(self) -> tuple[float, float]:
        """max |X| and max |y| (0 when empty)."""
        return _largest_abs(self.X), _largest_abs(self.y)


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _aligned(a):
    """``a`` itself, or an aligned copy when its data do not start on a multiple of the item size:
    blocks moved between workers arrive in buffers at any byte offset, and BLAS and numpy sum
    misaligned data in another order (measured: 1e-13 differences in the Gram; and slower). A copy
    makes every pass bitwise identical wherever its blocks were computed. A scipy sparse block (of a
    dask array of sparse blocks) becomes CSR (CSC stays: the kernel takes both), its arrays
    aligned likewise."""
    if a is None:
        return None
    if scipy.sparse.issparse(a):
        if a.format not in ("csr", "csc"):
            a = a.tocsr()
        if not all(v.flags.aligned for v in (a.data, a.indices, a.indptr)):
            a = a.copy()
        return a
    return a if a.flags.aligned else np.array(a)


def _pass_kernel(xb, yb, sb, fb=None, ob=None, block_index=None, *, loss, requests, fit_intercept,
                 full=True, sampled=-1):
    """One block of one pass: read, compute, and pack its statistics into a (1, L) row. Given its
    ``block_index`` (a checksummed pass: the block's (row, column) block numbers), the row ends
    with :data:`CHECKSUM_COLUMNS` columns: the four 16-bit pieces of the block's hash (when
    ``full``; zeros otherwise), then of its sample hash when it is the block ``sampled`` (zeros
    otherwise). Only the hashes asked for are taken. ``fb``: the block's row labels (fold ids or
    cluster codes), ``ob`` its offsets, or None."""
    xb, yb, sb, ob = _aligned(xb), _aligned(yb), _aligned(sb), _aligned(ob)
    packed = (pack_many(block_stats_many(xb, yb, sb, loss, requests, fit_intercept, _shared_process(),
                                         fb, ob), requests) if requests else np.zeros(0))
    if block_index is not None:
        b = int(block_index[0])  # (row block, column block)
        whole = _pieces(_block_hash(b, xb, yb, sb, fb, ob)) if full else np.zeros(4)
        sample = _pieces(_sample_hash(b, xb, yb, sb, fb, ob)) if b == sampled else np.zeros(4)
        packed = np.concatenate([packed, whole, sample])
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
    persist : bool or "auto" — keep X, y, weights in (cluster) memory from the first pass on; otherwise
        every pass streams them from their source (e.g. a zarr store). "auto": persist when the
        inputs take at most :data:`~smem_dask.resources.PERSIST_FRACTION` of the memory they would
        live in (the sum of the workers' memory limits less what the workers already use, with a
        distributed client, where blocks of these inputs the workers hold already count as free:
        a persist reuses them; else the machine's available memory), stream otherwise.
        ``self.persist`` holds the
        decision. On a distributed cluster a block too large for a worker, or ``persist=True`` on
        data larger than the workers' free memory, is refused here, before any pass (see
        :func:`~smem_dask.resources._plan_memory`).
    split_every : int — fan-in of the tree reduction of block statistics.
    folds : (n,) integers (numpy or dask) or None — row labels: fold ids or cluster codes.
    offset : (n,) array (numpy or dask) or None — a known term of each row's linear predictor.
    x_nbytes : int or None — for X of scipy sparse blocks, a bound of its bytes (what a one-hot
        encoding knows: one value per input column in each row); without it such an X is streamed
        under ``persist="auto"``, not checked against the workers' memory, and ``nbytes`` is NaN.
    """

    reduces_on_workers = True  # (on a distributed cluster; else this process's threads)

    def __init__(self, X, y, sample_weight=None, *, persist: bool | str = False,
                 split_every: int = 8, folds=None, offset=None, x_nbytes=None):
        if not (isinstance(split_every, numbers.Integral) and split_every >= 2):
            raise ValueError(f"split_every must be an integer ≥ 2, got {split_every!r}")
        if persist not in (True, False, "auto"):
            raise ValueError(f"persist must be True, False or 'auto', got {persist!r}")
        # arrays handed over in memory are wrapped and persisted once, so that no pass graph
        # carries their data to the scheduler again
        in_memory = {name for name, a in (("X", X), ("y", y), ("s", sample_weight), ("offset", offset))
                     if a is not None and not is_lazy(a)}
        X = X if is_lazy(X) else da.from_array(np.asarray(X))
        check_shapes(X, y, sample_weight)
        if len(X.chunks[1]) > 1:
            X = X.rechunk({1: -1})
        row_chunks = X.chunks[0]
        y = _rechunk_like(y, row_chunks)
        s = None if sample_weight is None else _rechunk_like(sample_weight, row_chunks)
        if folds is not None:
            if not is_lazy(folds):
                in_memory.add("folds")
                folds = _fold_ids(folds, X.shape[0])
            elif tuple(folds.shape) != (X.shape[0],):
                raise ValueError(f"folds has shape {tuple(folds.shape)}; expected ({X.shape[0]},), "
                                 "one fold id per row of X")
            elif folds.dtype.kind not in "biu":
                raise ValueError(f"fold ids must be integers, got dtype {folds.dtype}")
            folds = _rechunk_like(folds, row_chunks, dtype=np.int64)
        self.folds = folds
        if offset is not None:
            if not is_lazy(offset):
                offset = _offset(offset, X.shape[0])
            elif tuple(offset.shape) != (X.shape[0],):
                raise ValueError(f"offset has shape {tuple(offset.shape)}; expected ({X.shape[0]},), one "
                                 "value per row of X")
            offset = _rechunk_like(offset, row_chunks, dtype=np.float64)
        self.offset = offset
        # the zarr arrays read, and the data as read from them (not persisted): after the first
        # pass of a distributed fit the client reads one block itself and compares its hash with
        # the workers' (see _compare_sampled). Every chunk of theirs is there (a listing, no read)
        check_chunks_stored(X=X, y=y, sample_weight=s, folds=folds, offset=offset)
        self._zarr = _zarr_behind(X, y, s, folds, offset)
        self._source = (X, y, s, folds, offset)
        self._x_nbytes = None if x_nbytes is None else int(x_nbytes)
        persist = _plan_memory(X, y, s, persist, others=(folds, offset), x_nbytes=self._x_nbytes)
        # persisted at the first pass, not here (see _persist_pending): every check of the solver
        # and the path runs before any data is read
        self._to_persist = (("X", "y", "s", "folds", "offset") if persist or "X" in in_memory
                            else tuple(name for name in ("y", "s", "folds", "offset") if name in in_memory))
        self.X, self.y, self.sample_weight = X, y, s
        self.persist = bool(persist)
        self.split_every = int(split_every)
        self.n_samples, self.n_features = X.shape
        self.n_passes = 0
        # the workers' view of the store is checked in the first pass (one block hashed)
        self.sampled_block = self.n_blocks // 2 if self._zarr and _distributed_client() else None
        self._sample_pending = self.sampled_block is not None

    @property
    def nbytes(self) -> int | float:
        """Bytes of X as stored. For a dask array of sparse blocks: the bound ``x_nbytes`` given at
        construction (a one-hot encoding's), else NaN (not known before reading)."""
        if has_sparse_blocks(self.X):
            return float("nan") if self._x_nbytes is None else self._x_nbytes
        return int(self.X.nbytes)

    def _persist_pending(self) -> None:
        """Persist, once, what ``__init__`` chose to keep in memory: all inputs (``persist``, or X
        handed over in memory), else y and weights handed over in memory. Called when the first
        graph over the data is built, so constructing an engine reads nothing."""
        todo, self._to_persist = self._to_persist, ()
        if "X" in todo:
            self.X, self.y, self.sample_weight, self.folds, self.offset = _persist_rows(
                self.X, self.y, self.sample_weight, self.folds, self.offset)
        else:
            if "y" in todo:
                self.y = dask.persist(self.y)[0]
            if "s" in todo:
                self.sample_weight = dask.persist(self.sample_weight)[0]
            if "folds" in todo:
                self.folds = dask.persist(self.folds)[0]
            if "offset" in todo:
                self.offset = dask.persist(self.offset)[0]

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
        self._persist_pending()
        q = self.n_features + int(fit_intercept)
        size = sum(request_size(q, r) for r in requests)
        s_args = (None, None) if self.sample_weight is None else (self.sample_weight, "i")
        f_args = (None, None) if self.folds is None else (self.folds, "i")
        o_args = (None, None) if self.offset is None else (self.offset, "i")
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
            *f_args,
            *o_args,
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
        graph = self.pass_graph(loss, requests, fit_intercept, hashed, full)
        if self._sample_pending:
            # the client's own read of the sampled block, while the workers make the pass
            with ThreadPoolExecutor(1) as pool:
                ours = pool.submit(self._sampled_hash)
                packed = _compute_watched(graph, engine=self)[0]
                packed = self._take_checksum(packed, full, ours.result())
        else:
            packed = _compute_watched(graph, engine=self)[0]
            if hashed:
                packed = self._take_checksum(packed, full)
        self.n_passes += 1
        return _checked(unpack_many(packed, q, requests), self, requests)

    def _take_checksum(self, packed: np.ndarray, full: bool, ours: int | None = None) -> np.ndarray:
        """Keep the data's checksum (``full``) from the end of a checksummed pass's result, and
        check the sampled block against ``ours``, the client's own hash of it (the first pass of
        a fit from a store); the statistics before them."""
        tail = packed[-CHECKSUM_COLUMNS:]
        if ours is not None:
            self._compare_sampled(_joined(tail[4:]), ours)
            self._sample_pending = False
        if full:
            self.checksum = _hex(_joined(tail[:4]))
        return packed[:-CHECKSUM_COLUMNS]

    def _sampled_hash(self) -> int:
        """The client's own read of the sampled block from the store (one chunk of each input, in
        this process), hashed as the workers hash it."""
        b = self.sampled_block
        blocks = [None if a is None else a.blocks[b] for a in self._source]
        xb, yb, sb, fb, ob = dask.compute(*blocks, scheduler="sync")
        return _sample_hash(b, xb, yb, sb, fb, ob)

    def _compare_sampled(self, theirs: int, ours: int) -> None:
        """Refuse when the hash of the sampled block the workers read differs from the client's
        own (``ours``): workers that see another file system, or another copy of the store under
        the same path."""
        b = self.sampled_block
        if ours != theirs:
            stores = ", ".join(dict.fromkeys(_store_name(z) for z in self._zarr))
            raise ValueError(
                f"the workers read different data from {stores} than this client (block {b}): do "
                "the workers see the same file system / path?")

    def count_nonfinite(self) -> tuple[int, int]:
        """Non-finite entries of (X, y) — one extra pass, used only to explain a failure."""
        self._persist_pending()
        nx, ny = _compute_watched(_per_block(self.X, _count_nonfinite).sum(), (~da.isfinite(self.y)).sum())
        return int(nx), int(ny)

    def largest_abs(self) -> tuple[float, float]:
        """max |X| and max |y| — one extra pass, used only to explain a failure."""
        self._persist_pending()
        x, y = _compute_watched(_per_block(self.X, _largest_abs).max(), abs(self.y).max())
        return float(x), float(y)


def _values(xb):
    """A block's (or an in-memory X's) values: its stored ones when it is scipy sparse (the others are
    zeros; any format)."""
    if scipy.sparse.issparse(xb):
        return (xb if xb.format in ("csr", "csc", "coo") else xb.tocsr()).data
    return np.asarray(xb)


def _count_nonfinite(xb) -> int:
    v = _values(xb)
    return int(v.size - np.count_nonzero(np.isfinite(v)))


def _largest_abs(xb) -> float:
    return float(np.abs(_values(xb)).max(initial=0))


def _reduced_block(xb, reduce) -> np.ndarray:
    return np.full((1, 1), reduce(xb), dtype=np.float64)


def _per_block(X: da.Array, reduce) -> da.Array:
    """``reduce`` of each block of X (dense or scipy sparse blocks) as one number per block."""
    return X.map_blocks(_reduced_block, reduce, chunks=tuple((1,) * n for n in X.numblocks),
                        dtype=np.float64, meta=np.empty((0, 0), dtype=np.float64))


def _persist_rows(*arrays):
    """``dask.persist`` of row-blocked arrays with the same row chunks (None passes through). On a
    distributed cluster, row block i of every array is placed on one worker, and the workers get
    runs of consecutive blocks in proportion to their threads: left to itself, the scheduler may put
    every block of X on one worker (its queuing hands a worker with one thread two root tasks at
    once; seen with 2 blocks on 2 workers), and y's block apart from X's — then each pass runs on
    one worker and moves y. The placement is a preference (``allow_other_workers``): a block lost
    with its worker is recomputed elsewhere."""
    present = [a for a in arrays if a is not None]
    client = _distributed_client(present)
    workers = _running_workers(client) if client is not None else []
    if len(workers) < 2:
        done = iter(dask.persist(*present))
        return tuple(None if a is None else next(done) for a in arrays)
    present = dask.optimize(*present)
    graph = {}
    for a in present:
        graph.update(a.__dask_graph__())
    # row block i's keys in every array (2-D arrays have one column block)
    rows = [[k[0] if isinstance(k, list) else k for k in a.__dask_keys__()] for a in present]
    n_blocks = len(rows[0])
    threads = np.array([n for _, n in workers], dtype=float)
    bounds = np.rint(np.r_[0.0, np.cumsum(threads)] / threads.sum() * n_blocks).astype(int)
    futures = {}
    for (address, _), lo, hi in zip(workers, bounds[:-1], bounds[1:], strict=True):
        keys = [r[i] for i in range(lo, hi) for r in rows]
        if keys:  # (the graph culled to these blocks: data in memory go to their worker alone)
            futures.update(zip(keys, client.get(cull(graph, keys)[0], keys, workers=[address],
                                                allow_other_workers=True, sync=False), strict=True))
    done = iter([_rebuilt(a, futures) for a in present])
    return tuple(None if a is None else next(done) for a in arrays)


def _rebuilt(a, futures):
    """Collection ``a`` made of the computed ``futures`` of its keys, as ``persist`` makes it."""
    rebuild, args = a.__dask_postpersist__()
    return rebuild({k: futures[k] for k in dask.core.flatten(a.__dask_keys__())}, *args)


def _running_workers(client) -> list[tuple[str, int]]:
    """(address, threads) of each running worker of ``client``'s cluster, by address."""
    info = client.scheduler_info(n_workers=-1)["workers"]
    return [(address, int(w.get("nthreads") or 1)) for address, w in sorted(info.items())
            if w.get("status", "running") == "running"]


def _rechunk_like(v, row_chunks, dtype=None):
    if not is_lazy(v):
        return da.from_array(np.asarray(v, dtype=dtype), chunks=(row_chunks,))
    if dtype is not None and v.dtype != dtype:
        v = v.astype(dtype)
    return v if v.chunks[0] == row_chunks else v.rechunk((row_chunks,))


def _offset(offset, n_rows: int) -> np.ndarray | None:
    """An offset as float64 of shape (n_rows,) (None passes through)."""
    if offset is None:
        return None
    o = np.asarray(offset, dtype=np.float64).ravel()
    if o.shape != (n_rows,):
        raise ValueError(f"offset has shape {np.shape(offset)}; expected ({n_rows},), one value per row of X")
    return o


def _fold_ids(folds, n_rows: int) -> np.ndarray | None:
    """In-memory fold ids as int64, one per row (None stays None); anything else is refused."""
    if folds is None:
        return None
    f = np.asarray(folds)
    if f.shape != (n_rows,):
        raise ValueError(f"folds has shape {f.shape}; expected ({n_rows},), one fold id per row of X")
    if not (np.issubdtype(f.dtype, np.integer) or np.issubdtype(f.dtype, np.bool_)):
        raise ValueError(f"fold ids must be integers, got dtype {f.dtype}")
    return f.astype(np.int64)


def make_engine(X, y, sample_weight=None, *, persist: bool | str = False, split_every: int = 8,
                block_rows: int = 65536, folds=None, offset=None, x_nbytes=None):
    """A :class:`DaskEngine` when X is lazy (dask or zarr), else a :class:`NumpyEngine`. ``folds``:
    an integer label per row (fold ids of a cross-validation, cluster codes), or None; ``offset``:
    a known term of each row's linear predictor, or None; ``x_nbytes``: a bound of the bytes of a
    dask array of sparse blocks (its memory planning; see :func:`~smem_dask.resources._plan_memory`)."""
    if is_lazy(X):
        return DaskEngine(X, y, sample_weight, persist=persist, split_every=split_every, folds=folds,
                          offset=offset, x_nbytes=x_nbytes)
    if is_lazy(y) or is_lazy(sample_weight) or is_lazy(folds) or is_lazy(offset):
        y, sample_weight, folds, offset = compute(y, sample_weight, folds, offset)
    return NumpyEngine(X, y, sample_weight, block_rows=block_rows, folds=folds, offset=offset)


def with_offset(eta, offset, transform=None, dtype=np.float64):
    """``transform(η + offset)`` (η + offset without a transform) for a linear predictor η of
    :func:`linear_predictor` without its transform: numpy, or lazy dask (the offset rechunked to
    η's rows, one more task per block)."""
    if is_lazy(eta):
        out = eta + _rechunk_like(offset, eta.chunks[0], dtype=np.float64)
        return out if transform is None else out.map_blocks(transform, dtype=dtype)
    if is_lazy(offset):
        (offset,) = compute(offset)
    out = eta + np.asarray(offset, dtype=np.float64)
    return out if transform is None else transform(out)


def _linear_block(xb, coef, intercept, transform):
    if not scipy.sparse.issparse(xb):
        xb = np.asarray(xb, dtype=np.float64)
    n_bad = _count_nonfinite(xb)
    if n_bad:
        raise ValueError(f"X contains {n_bad} NaN or infinite values in a block of {xb.shape[0]} rows; "
                         "predictions need finite features")
    eta = np.asarray(xb @ coef) + intercept
    return eta if transform is None else transform(eta)


def linear_predictor(X, coef: np.ndarray, intercept, transform=None, dtype=np.float64,
                     ndim: int | None = None):
    """``transform(Xβ + b)`` (η itself if no transform): numpy in, numpy out; dask or zarr in,
    lazy dask out (one task per block). ``coef`` (p,) gives one column η (n,); (p, K) with
    ``intercept`` (K,) gives η (n, K). ``ndim``: the dimensions of the transform's result (default:
    η's). A scipy sparse X gives numpy."""
    if scipy.sparse.issparse(X):
        if X.shape[1] != coef.shape[0]:
            raise ValueError(f"X has {X.shape[1]} features, but the model was fitted with {coef.shape[0]}")
        data = X.data if hasattr(X, "data") else X.tocsr().data
        if not np.isfinite(data).all():
            raise ValueError("X contains NaN or infinite values; predictions need finite features")
        eta = np.asarray(X @ coef) + intercept
        return eta if transform is None else transform(eta)
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
    ndim = coef.ndim if ndim is None else ndim
    if ndim == 2:
        return X.map_blocks(_linear_block, coef, intercept, transform, chunks=(X.chunks[0], (coef.shape[1],)),
                            dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    return X.map_blocks(
        _linear_block, coef, intercept, transform, drop_axis=1, dtype=dtype,
        meta=np.empty((0,), dtype=dtype),
    )
