"""Resources: the memory a fit needs, checked before any pass, and the watchdog that stops a pass
on a distributed cluster that cannot make it. Part of the engine layer (imports dask).

* Memory planning — whether a block fits a worker (:func:`check_memory_fits`), how many Grams a pass
  can carry (:func:`check_gram_fits`, :func:`gram_systems_that_fit`), whether to persist
  (:func:`_plan_memory`).
* The watchdog — :func:`_compute_watched` runs a computation on the cluster and ends it with a
  one-line :class:`ClusterError` or :class:`WorkerMemoryError` instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import numbers
import threading
import time

import dask
import dask.array as da
import numpy as np

__all__ = [
    "ClusterError",
    "WorkerMemoryError",
    "CLIENT_GRAM_COPIES",
    "NO_WORKER_TIMEOUT",
    "PASS_MEMORY_FACTOR",
    "PERSIST_FRACTION",
    "WORKER_OWN_BYTES",
    "check_gram_fits",
    "check_memory_fits",
    "gram_systems_that_fit",
    "memory_available",
    "no_worker_timeout",
    "require_workers",
]


# -- memory planning ------------------------------------------------------------------------------

#: ``persist="auto"`` keeps the data in memory when it takes at most this fraction of the memory
#: available to hold it (the rest is for the pass's temporaries and everything else)
PERSIST_FRACTION = 0.5


def memory_available() -> float:
    """Bytes that persisted data could occupy: with a distributed client, the sum over the workers
    of their memory limit (a worker without one counts the machine's memory) less the memory the
    worker process takes itself (:func:`_own`, its resident set asked of the worker now: one
    ``client.run``); else the memory available on this machine."""
    import psutil

    client = _distributed_client()
    if client is None:
        return float(psutil.virtual_memory().available)
    total = psutil.virtual_memory().total
    return float(sum(max((w["limit"] or total) - _own(w), 0.0)
                     for w in _workers(client, fresh=True)))


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


def _workers(client, fresh: bool = False) -> list[dict]:
    """Each worker of ``client``'s cluster: its memory ``limit`` in bytes (None without one), the
    memory its process ``used`` (resident set, as the worker last reported it; with ``fresh``, as
    it is now — :func:`_resident_now`), ``nthreads`` and ``status`` ("running", "paused", …)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    running = [a for a, w in workers.items() if w.get("status", "running") == "running"]
    now = _resident_now(client, running) if fresh and running else {}
    return [{"limit": float(w["memory_limit"]) if w.get("memory_limit") else None,
             "used": float(now.get(address) or w.get("metrics", {}).get("memory") or 0),
             "nthreads": int(w.get("nthreads") or 1), "status": str(w.get("status", "running"))}
            for address, w in workers.items()]


def _resident_now(client, addresses) -> dict:
    """The resident set now of each worker process at ``addresses``, by address (missing for a
    worker that does not answer; then the heartbeat's figure is used). The scheduler's figure is
    the worker's last heartbeat, which lags: right after a fit it still counted the fit's
    persisted blocks, freed since, and "auto" streamed the next fit for it."""
    try:
        now = client.run(_resident_set, workers=list(addresses), on_error="ignore")
    except Exception:  # noqa: BLE001 - the heartbeat's figure will do
        return {}
    return {a: v for a, v in now.items() if isinstance(v, int)}


def _resident_set() -> int:
    """This process's resident set in bytes (run on each worker by :func:`_resident_now`)."""
    import psutil

    return int(psutil.Process().memory_info().rss)


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


def _x_nbytes(X, x_nbytes=None) -> float:
    """Bytes of X: as stored, or ``x_nbytes`` (a bound the caller knows) for sparse blocks."""
    return float(x_nbytes) if x_nbytes is not None and has_sparse_blocks(X) else float(X.nbytes)


def _block_nbytes(X, y=None, s=None, others=(), x_nbytes=None) -> float:
    """Bytes of the largest row block of X with its y, weights and ``others`` (per-row arrays: fold
    ids, offsets); ``x_nbytes``: a bound of X's bytes when its blocks are sparse."""
    x_row = _x_nbytes(X, x_nbytes) / max(X.shape[0], 1)
    per_row = x_row + sum(np.dtype(a.dtype).itemsize for a in (y, s, *others) if a is not None)
    return float(max(X.chunks[0], default=0) * per_row)


def _describe_block(X, y=None, s=None, others=(), x_nbytes=None) -> str:
    rows = max(X.chunks[0], default=0)
    also = ["y"] + (["the weights"] if s is not None else []) + (["the offset or fold ids"] if others else [])
    return (f"a block of {rows:,} rows (X: {X.shape[1]:,} {X.dtype} columns"
            f"{', sparse' if has_sparse_blocks(X) else ''}, with {' and '.join(also)}) takes "
            f"{_size(_block_nbytes(X, y, s, others, x_nbytes))}")


def has_sparse_blocks(X) -> bool:
    """Whether ``X`` is a dask array whose blocks are scipy sparse matrices (its meta says so): the
    bytes it takes are then not known before it is read."""
    import scipy.sparse

    return isinstance(X, da.Array) and scipy.sparse.issparse(da.utils.meta_from_array(X))


def check_memory_fits(X, y, sample_weight=None, *, persist: bool | str = "auto", others=(),
                      x_nbytes=None) -> None:
    """Refuse, before any task runs, inputs that cannot fit the workers of a distributed cluster
    (nothing to check for numpy inputs, dask's threads, or a cluster without workers yet).

    Each worker thread computing a block holds about :data:`PASS_MEMORY_FACTOR` × the block (X's
    rows with their y, weights and ``others``: fold ids, offsets); a worker has room for its memory
    limit × the pause fraction (:func:`_pause_fraction`, 80% by default: above it a worker stops
    taking tasks) less what its process takes itself (:func:`_own`). A block that does not fit the
    worker with the least room is refused (:class:`WorkerMemoryError`, with both sizes), as is
    ``persist=True`` on inputs larger than the workers' room less a block per thread. A dask array
    of sparse blocks is checked with ``x_nbytes``, a bound of its bytes (a one-hot encoding knows
    one), and not at all without it: what its blocks take is known only once they are read.
    """
    # (is_lazy: arrays imports this module)
    if not isinstance(X, da.Array) or (x_nbytes is None and has_sparse_blocks(X)):
        return
    client = _distributed_client((X,))
    workers = [] if client is None else _workers(client)
    if not workers:
        return
    import psutil

    total = psutil.virtual_memory().total
    pause = _pause_fraction()
    others = tuple(a for a in others if a is not None)
    need = PASS_MEMORY_FACTOR * _block_nbytes(X, y, sample_weight, others, x_nbytes)

    def room(w):  # for the blocks its threads compute at once
        return (w["limit"] or total) * pause - _own(w)

    tight = min(workers, key=lambda w: room(w) / w["nthreads"])
    if need * tight["nthreads"] > room(tight):
        per_thread = "" if tight["nthreads"] == 1 else f" per thread ({tight['nthreads']} threads)"
        # when the worker process alone fills its usable memory, no chunk size can help
        advice = ("give the workers more memory: no block fits beside the process itself" if room(tight) <= 0
                  else "use smaller chunks (chunk_rows) or workers with more memory")
        raise WorkerMemoryError(
            f"{_describe_block(X, y, sample_weight, others, x_nbytes)} and a data pass needs about "
            f"{PASS_MEMORY_FACTOR}× that ({_size(need)}){per_thread}; the workers' memory limit is "
            f"{_size(tight['limit'] or total)}, {pause:.0%} usable, of which the worker process "
            f"takes {_size(_own(tight))} itself: {advice}")
    nbytes = _x_nbytes(X, x_nbytes) + sum(float(a.nbytes) for a in (y, sample_weight, *others)
                                           if a is not None)
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


def _plan_memory(X, y, s, persist, others=(), x_nbytes=None) -> bool:
    """Whether to persist the inputs, after :func:`check_memory_fits` refused what cannot fit.
    "auto" persists when the inputs take at most :data:`PERSIST_FRACTION` of
    :func:`memory_available` plus what the workers hold of these very inputs already
    (:func:`_held_bytes`); on a cluster without workers yet, or for a dask array of sparse blocks
    without ``x_nbytes`` (a bound of its bytes: its size is not known before it is read), it
    streams."""
    check_memory_fits(X, y, s, persist=persist, others=others, x_nbytes=x_nbytes)
    if persist != "auto":
        return bool(persist)
    if x_nbytes is None and has_sparse_blocks(X):  # streamed unless asked
        return False
    arrays = [a for a in (X, y, s, *others) if a is not None]
    nbytes = _x_nbytes(X, x_nbytes) + sum(float(a.nbytes) for a in arrays[1:])
    x_scale = _x_nbytes(X, x_nbytes) / max(float(X.nbytes), 1.0)  # (sparse blocks: their bound)
    return nbytes <= PERSIST_FRACTION * (memory_available() + _held_bytes(arrays, x_scale))


def _held_bytes(arrays, x_scale: float = 1.0) -> float:
    """Bytes of the blocks of ``arrays`` the workers of a distributed client hold in memory now
    (0 without one): counted in the workers' memory use, but a persist of the same keys reuses
    them rather than taking that memory again. They are there right after an earlier engine on the
    same arrays persisted them (released a moment later) or while it lives."""
    client = _distributed_client(arrays)
    if client is None:
        return 0.0
    sizes = {}
    for j, a in enumerate(arrays):
        scale = x_scale if j == 0 else 1.0  # the first array is X (``x_scale``: its bytes ÷ dense bytes)
        for index in np.ndindex(*a.numblocks):
            shape = [a.chunks[d][i] for d, i in enumerate(index)]
            sizes[(a.name, *index)] = float(np.prod(shape)) * a.dtype.itemsize * scale
    held = client.who_has()  # every key in memory (who_has of keys takes futures only)
    return sum(sizes[key] for key, where in held.items() if where and key in sizes)


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


# -- the watchdog ---------------------------------------------------------------------------------

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


def _memory_advice(engine, client, seen: tuple[float, ...] = ()) -> str:
    """The block size and the workers' memory limit, for messages about workers out of memory
    (``seen``: limits read earlier, for when no worker is left to ask)."""
    parts = []
    if engine is not None:
        parts.append(f"{_describe_block(engine.X, engine.y, engine.sample_weight)} and a data "
                     f"pass needs about {PASS_MEMORY_FACTOR}× that per worker thread")
    try:
        limits = [w["limit"] for w in _workers(client) if w["limit"]]
    except Exception:  # noqa: BLE001 - only for the message; the cluster may be gone
        limits = []
    limits = limits or list(seen)
    if limits:
        parts.append(f"the workers' memory limit is {_size(min(limits))}")
    return "; ".join(parts + ["use smaller chunks (chunk_rows) or workers with more memory"])


def _when_all_done(futures) -> threading.Event:
    """An event set once every one of ``futures`` has finished (done, erred or cancelled)."""
    finished, lock, left = threading.Event(), threading.Lock(), [len(futures)]

    def one_done(_):
        with lock:
            left[0] -= 1
            if left[0] == 0:
                finished.set()

    if not futures:
        finished.set()
    for f in futures:
        f.add_done_callback(one_done)
    return finished


def _wait_done(finished: threading.Event, futures, seconds: float) -> None:
    """Return once every one of ``futures`` is done, or after ``seconds``. ``finished`` is their
    :func:`_when_all_done` event. A result lost with its worker makes its future not done again
    after its callback has fired, and no callback comes when it is recomputed: then poll, rather
    than return at once every time (the watch would spin on the scheduler)."""
    if not finished.is_set():
        finished.wait(seconds)
        return
    deadline = time.monotonic() + seconds
    while not all(f.done() for f in futures) and time.monotonic() < deadline:
        time.sleep(0.01)


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
    from distributed import KilledWorker

    address = client.scheduler.address if client.scheduler is not None else "(unknown)"
    if client.status != "running":
        raise _scheduler_lost(address, f"the client is {client.status}")
    lazy = [i for i, a in enumerate(args) if dask.is_dask_collection(a)]
    grace = no_worker_timeout()
    futures = client.compute([args[i] for i in lazy])
    finished = _when_all_done(futures)
    idle_since, had, seen = None, 0, ()
    try:
        while True:
            # an event, not distributed's wait(timeout=): its timeout is raised through a frame
            # that keeps the exception, a reference cycle holding this frame, so the engine and
            # its persisted blocks, until Python's cycle collector runs
            _wait_done(finished, futures, WATCH_INTERVAL)
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
            seen = tuple(w["limit"] for w in workers if w["limit"]) or seen
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
                    f"{_memory_advice(engine, client, seen)}")
            raise _no_workers(address, grace, had)
        try:
            results = client.gather(futures)
        except KilledWorker as exc:
            what = "a block of a data pass" if engine is not None else "one task"
            raise WorkerMemoryError(
                f"dask workers died {exc.allowed_failures + 1} times running {what} (KilledWorker), "
                f"most likely out of memory: {_memory_advice(engine, client, seen)}") from None
    finally:
        if client.status == "running" and not all(f.done() for f in futures):
            with contextlib.suppress(Exception):
                client.cancel(futures)
        del futures
    out = list(args)
    for i, value in zip(lazy, results, strict=True):
        out[i] = value
    return tuple(out)
