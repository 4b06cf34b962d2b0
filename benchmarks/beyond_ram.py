"""Beyond RAM, for real: one fit of a zarr store larger than this machine's memory, each EM data
pass against the disk's own read rate of the same files.

    python -m benchmarks beyond_ram [--gb 30] [--dtypes float64,float32] [--p 100] [--chunk-mb 80]
                                    [--workers 2 --memory-limit 4GiB] [--data DIR] [--keep]
                                    [--py-spy SECONDS] [--deadline HH:MM] [--quick] [--out DIR]

Writes ``benchmarks/results/beyond_ram.md`` (tables, command, machine, date; rewritten after each
dtype, so a long run leaves partial results) and ``beyond_ram.png`` (each pass's GB/s against the
disk's). For each dtype, one after the other (the store of one is deleted before the next is
written, unless ``--keep``):

1. **Store**: a synthetic logistic problem of ``--gb`` GB of X (p = ``--p`` columns, cond(XᵀX) =
   ``--cond``) written by :func:`smem_dask.data.write_zarr` in that dtype — uncompressed, CRC32C per
   chunk, row chunks of ``--chunk-mb`` MB — and synced to disk. Refused before writing when the disk
   would keep less than ``--disk-margin-gb`` free.
2. **The disk's read rate** of the same chunk files (X's and y's, in row order), measured in the
   same run with the page cache not holding them: every file's pages are dropped first
   (``posix_fadvise(POSIX_FADV_DONTNEED)``, which needs no privilege; ``/proc/sys/vm/drop_caches``
   is tried once as well and its outcome reported), then the files are read with 16 MiB unbuffered
   reads — by one reader in order, and by ``--workers`` readers taking the files in turn (as the
   workers do). The disk rate is the faster of the two.
3. **A cold read pass through dask** (scale.py's *read* graph: each block of X read from the store
   by the workers, nothing else), the store's pages dropped first: what zarr, its CRC32C and dask
   cost over the bare reads.
4. **The fit**: ``fit_em`` with the default settings of a fit (``SolverConfig(curvature="auto")``:
   Newton for the logistic loss), ridge α = ``--alpha``, on a ``DaskEngine(X, y, persist=False)``
   over the store as the library opens it (:func:`smem_dask.data.open_store`, checked reads) and a
   ``LocalCluster`` of ``--workers`` single-threaded worker processes with ``--memory-limit`` each
   (their limits together far below the store). Before every pass the store's pages are dropped, so
   each pass reads every byte from the disk (how much of the store the page cache had kept from the
   pass before is measured, by ``mincore``, and reported); each pass is timed alone (the drop is
   not in it) and its rate is the bytes of X and y on disk over its seconds.
5. **Where a pass's time goes**: on one worker, one block of the store read from the page cache
   (zarr's decoding and CRC32C, no disk) and the pass kernel on it with the fit's last requests
   (the Gram by ``dsyrk``), best of 3; times the blocks per worker, the pass the CPU alone would
   take. Each pass's block tasks (read + kernel, fused) from dask's task stream: their mean seconds
   and how busy they kept the workers. With ``--py-spy SECONDS`` (py-spy installed), one worker is
   sampled from the fit's second pass on: the seconds of its task thread waiting for zarr, in the
   kernel's Gram and the rest of it, idle, and of zarr's threads reading files, checking CRC32C and
   copying chunks.
6. **Memory**: each worker's resident set sampled every 50 ms (scale.py's sampler) from the start
   of the cluster, against its limit; this client process's too.

``--deadline HH:MM`` (UTC) skips a dtype that would end later, estimated from the one before it
(and says so in the results). ``--quick`` runs the same steps on a ~0.1 GB store (the machinery,
not the claim: the page cache could hold it; without ``--out`` the results go to a temporary
directory), and checks each streamed fit against the same fit in memory
(:class:`~smem_dask.engine.NumpyEngine`).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import glob
import json
import mmap
import os
import shutil
import threading
import time
import warnings

import numpy as np

from ._common import DATA, add_out_option, header, parse_args, write
from .scale import PeakRSS, _start_rss_sampler, _worker_peak, pass_graphs

READ_BYTES = 16 << 20  # one read() of the disk measurement
STORE_PREFIX = "beyond_ram_"


# ---------------------------------------------------------------------------------------------
# the store and its files

def store_path(directory: str, dtype: str, n: int, p: int, chunk_rows: int, cond: float) -> str:
    return os.path.join(directory, f"{STORE_PREFIX}{dtype}_n{n}_p{p}_r{chunk_rows}_c{cond:g}.zarr")


def ensure_store(path: str, n: int, p: int, chunk_rows: int, dtype: str, cond: float,
                 margin_gb: float, log) -> float | None:
    """Write the store with :func:`smem_dask.data.write_zarr` (and sync it to disk) unless a
    complete one is there; returns the seconds it took (None: reused). Other stores of this
    benchmark in the same directory are deleted first (one at a time on disk)."""
    import zarr

    from smem_dask.data import write_zarr

    for other in glob.glob(os.path.join(os.path.dirname(path), STORE_PREFIX + "*.zarr")):
        if os.path.abspath(other) != os.path.abspath(path):
            log(f"  deleting {other} (one store of this benchmark on disk at a time)")
            shutil.rmtree(other)
    if os.path.exists(path):
        try:
            g = zarr.open_group(path, mode="r")
            if (g.attrs["smem_dask"]["n"] == n and g["X"].dtype == np.dtype(dtype)
                    and g["X"].chunks[0] == chunk_rows and "complete" in g.attrs):
                return None
        except Exception:  # noqa: BLE001 - anything unreadable is rewritten
            pass
    need = n * p * np.dtype(dtype).itemsize + n * 8
    free = shutil.disk_usage(os.path.dirname(path)).free
    if free - need < margin_gb * 1e9:
        raise SystemExit(f"not writing {path}: it takes {need / 1e9:.1f} GB and {free / 1e9:.1f} GB "
                         f"are free (a margin of {margin_gb:g} GB is kept)")
    t0 = time.perf_counter()
    write_zarr(path, n, p, chunk_rows=chunk_rows, dtype=dtype, cond=cond, overwrite=True)
    os.sync()  # on disk, not in dirty pages: written means written
    zarr.open_group(path, mode="r+").attrs["complete"] = True
    return time.perf_counter() - t0


def chunk_files(path: str) -> tuple[list[str], list[str]]:
    """The chunk files of X and of y, in row order (what a pass reads)."""
    import zarr

    g = zarr.open_group(path, mode="r")
    out = []
    for name in ("X", "y"):
        z = g[name]
        nb = -(-z.shape[0] // z.chunks[0])
        coords = [(i, 0) if z.ndim == 2 else (i,) for i in range(nb)]
        out.append([os.path.join(path, name, *z.metadata.encode_chunk_key(c).split("/"))
                    for c in coords])
    return out[0], out[1]


def interleaved(x_files, y_files) -> list[str]:
    """X's and y's chunk files block by block, as a pass reads them."""
    return [f for pair in zip(x_files, y_files, strict=True) for f in pair]


# ---------------------------------------------------------------------------------------------
# the page cache

def drop_pages(files) -> None:
    """Drop the files' pages from the page cache (clean pages; works without privilege)."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


_libc = None


def _mincore_lib():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mmap.restype = ctypes.c_void_p
        _libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                               ctypes.c_int, ctypes.c_long]
        _libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        _libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
    return _libc


def resident_bytes(files) -> int | None:
    """Bytes of the files held in the page cache (``mincore`` on a mapping of each; None where
    that is not available)."""
    try:
        libc = _mincore_lib()
    except (OSError, AttributeError):
        return None
    page = mmap.PAGESIZE
    total = 0
    for f in files:
        size = os.path.getsize(f)
        if not size:
            continue
        fd = os.open(f, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                vec = ctypes.create_string_buffer(-(-size // page))
                if libc.mincore(addr, size, vec) != 0:
                    return None
                total += int(np.count_nonzero(np.frombuffer(vec.raw, np.uint8) & 1)) * page
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
    return total


def try_drop_caches() -> str:
    """``sync; echo 3 > /proc/sys/vm/drop_caches``: its outcome, as text."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return "done"
    except OSError as exc:
        return f"refused ({exc.strerror or exc})"


# ---------------------------------------------------------------------------------------------
# the disk's own read rate

def read_rate(files, streams: int, whole: bool = False, keep: bool = False) -> dict:
    """Read the files (pages dropped first) with ``streams`` readers taking them in order; bytes,
    seconds, GB/s. Each file by 16 MiB unbuffered reads into one buffer, or (``whole``) in one
    read into a new buffer, as zarr reads a chunk (``Path.read_bytes``); its pages dropped right
    after it is read (the same few pages of memory serve every file), or (``keep``) left in the page
    cache as a pass leaves them (new pages for every file, the page cache filling)."""
    drop_pages(files)
    todo = iter(list(files))
    lock = threading.Lock()
    counts = [0] * streams

    def reader(k):
        view = memoryview(bytearray(READ_BYTES))
        while True:
            with lock:
                f = next(todo, None)
            if f is None:
                return
            with open(f, "rb", buffering=0) as fh:
                if whole:
                    counts[k] += len(fh.read())
                else:
                    while True:
                        got = fh.readinto(view)
                        if not got:
                            break
                        counts[k] += got
                if not keep:
                    os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=reader, args=(k,)) for k in range(streams)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    nbytes = sum(counts)
    drop_pages(files)
    return {"streams": streams, "whole": whole, "keep": keep, "bytes": nbytes, "seconds": seconds,
            "gbps": nbytes / seconds / 1e9}


def describe_read(d) -> str:
    return (f"{d['streams']} reader{'s' if d['streams'] > 1 else ''}, "
            + ("whole-file reads" if d["whole"] else "16 MiB reads")
            + (", pages kept" if d["keep"] else ", pages dropped after each file"))


# ---------------------------------------------------------------------------------------------
# the machine's other load

class OtherLoad:
    """CPU seconds used on this machine by processes other than ours (``pids`` and this one, with
    their children) while active: the machine's busy time (``/proc/stat``) less ours."""

    def __init__(self, pids=()):
        self.pids = list(pids)

    def _ours(self) -> float:
        import psutil

        total = 0.0
        procs = [psutil.Process()] + [psutil.Process(p) for p in self.pids]
        for proc in list(procs):
            with contextlib.suppress(psutil.Error):
                procs += proc.children(recursive=True)
        for proc in {p.pid: p for p in procs}.values():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system
        return total

    @staticmethod
    def _busy() -> float:
        import psutil

        t = psutil.cpu_times()
        return t.user + t.nice + t.system + t.irq + t.softirq + getattr(t, "steal", 0.0)

    def __enter__(self):
        self.t0, self.busy0, self.ours0 = time.perf_counter(), self._busy(), self._ours()
        self.load0 = os.getloadavg()[0]
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.other = max(0.0, (self._busy() - self.busy0) - (self._ours() - self.ours0))
        self.load1 = os.getloadavg()[0]

    def result(self) -> dict:
        return {"seconds": self.seconds, "other_cpu": self.other,
                "other_cores": self.other / self.seconds, "load": (self.load0, self.load1)}


# ---------------------------------------------------------------------------------------------
# the fit, pass by pass

class TimedEngine:
    """An engine as ``fit_em`` sees it: every pass is the wrapped engine's, preceded (untimed) by a
    measure of how much of the store the page cache holds and by dropping it (``drop``); each
    pass's seconds are recorded. Everything else is the wrapped engine's."""

    def __init__(self, engine, files, nbytes: int, drop: bool = True, before_pass=None):
        self.engine, self.files, self.nbytes, self.drop = engine, files, nbytes, drop
        self.before_pass = before_pass  # called with the pass's index (0, 1, …), untimed
        self.passes: list[dict] = []
        self.untimed = 0.0
        self.last_requests = None

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def stats_many(self, loss, requests, fit_intercept):
        t0 = time.perf_counter()
        resident = resident_bytes(self.files)
        if self.drop:
            drop_pages(self.files)
        after = resident_bytes(self.files) if self.drop else resident
        if self.before_pass is not None:
            self.before_pass(len(self.passes))
        t1, wall0 = time.perf_counter(), time.time()
        out = self.engine.stats_many(loss, requests, fit_intercept)
        seconds = time.perf_counter() - t1
        self.untimed += t1 - t0
        self.last_requests = list(requests)
        self.passes.append({"seconds": seconds, "gbps": self.nbytes / seconds / 1e9,
                            "window": (wall0, time.time()),
                            "resident_before": resident, "resident_at_start": after,
                            "grams": sum(1 for r in requests if r.system)})
        return out


# ---------------------------------------------------------------------------------------------
# py-spy on one worker

PY_SPY_RATE = 50  # samples per second


def start_py_spy(pid: int, seconds: float, out: str):
    """``py-spy record`` of process ``pid`` for ``seconds`` (every thread, idle ones too, raw
    collapsed stacks into ``out``), in the background; None when py-spy is not installed."""
    import subprocess

    exe = shutil.which("py-spy")
    if exe is None:
        return None
    return subprocess.Popen([exe, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", str(PY_SPY_RATE), "--idle", "--threads", "--nonblocking",
                             "--format", "raw", "--output", out],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


#: where a worker's samples go: (thread kind, what it does), the first rule whose frame matches
_TASK_RULES = (("add_weighted_gram", "kernel: Gram (dsyrk)"),
               ("_block_stats_many", "kernel: the rest (predictors, loss, gradients)"),
               ("_pass_kernel", "kernel: the rest (predictors, loss, gradients)"),
               ("_read_zarr", "waiting for zarr to read the block"),
               ("threadpoolexecutor.py", "idle between tasks"))
_ZARR_RULES = (("read_bytes", "reading the chunk file"),
               ("Crc32c", "CRC32C"),
               ("NDBuffer.__setitem__", "copying the chunk into the block"),
               ("read_batch", "zarr's codec pipeline, other"))


def py_spy_summary(path: str) -> dict:
    """Seconds of the worker's task thread and of zarr's threads by activity, from raw py-spy
    output (``--threads``)."""
    out: dict[str, float] = {}
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            frames = stack.split(";")
            thread = frames[0].partition(": ")[2]
            if "Dask-Default-Threads" in thread:
                kind, rules = "task thread", _TASK_RULES
            elif thread.startswith(("zarr_io", "asyncio_")):
                kind, rules = "zarr's threads", _ZARR_RULES
            else:
                continue
            what = next((label for key, label in rules if any(key in f for f in frames)),
                        "other" if kind == "task thread" else None)
            if what is not None:
                out[f"{kind}: {what}"] = out.get(f"{kind}: {what}", 0.0) + int(count) / PY_SPY_RATE
    return out


def _profile_block(path: str, block: int, requests, fit_intercept: bool, repeats: int = 3) -> dict:
    """On a worker: one block of the store read from the page cache (zarr's decoding and CRC32C)
    and the pass kernel on it, best of ``repeats``."""
    from smem_dask.data import open_store
    from smem_dask.engine import _pass_kernel
    from smem_dask.losses import Logistic

    zx, zy = open_store(path)
    rows = slice(block * zx.chunks[0], (block + 1) * zx.chunks[0])
    xb, yb = zx[rows], zy[rows]  # into the page cache
    read, kernel = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        xb, yb = zx[rows], zy[rows]
        read.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _pass_kernel(xb, yb, None, loss=Logistic(), requests=requests, fit_intercept=fit_intercept)
        kernel.append(time.perf_counter() - t0)
    return {"rows": int(xb.shape[0]), "dtype": str(xb.dtype), "read": min(read),
            "kernel": min(kernel)}


def fit_store(path, files, nbytes, client, args, log) -> dict:
    import dask

    from smem_dask.arrays import as_array
    from smem_dask.data import open_store
    from smem_dask.engine import DaskEngine
    from smem_dask.losses import Logistic
    from smem_dask.penalties import L2
    from smem_dask.solver import SolverConfig, fit_em

    zx, zy = open_store(path)
    X, y = as_array(zx, "X"), as_array(zy, "y")
    config = SolverConfig(curvature="auto")
    loss, penalty = Logistic(), L2()
    spy = {}

    def before_pass(i):  # py-spy on one worker from the second pass on
        if i == 1 and args.py_spy > 0:
            pid = client.run(os.getpid)[sorted(client.scheduler_info(n_workers=-1)["workers"])[0]]
            spy["out"] = os.path.join(args.data, f"py-spy-{os.getpid()}.txt")
            spy["proc"] = start_py_spy(pid, args.py_spy, spy["out"])
            spy["from"] = time.perf_counter()

    engine = TimedEngine(DaskEngine(X, y, persist=False), files, nbytes, drop=not args.no_drop,
                         before_pass=before_pass)
    from distributed import get_task_stream

    records = []
    with dask.config.set(scheduler=client), warnings.catch_warnings(record=True) as caught, \
            get_task_stream(client) as stream:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        fit = fit_em(engine, loss, penalty, args.alpha, config=config,
                     callback=lambda rec: (records.append(rec),
                                           log(f"    iteration {rec.iteration}: F = "
                                               f"{rec.objective:.12g}, {rec.n_passes} passes, "
                                               f"{time.perf_counter() - t0:.0f} s")))
        wall = time.perf_counter() - t0
    tasks = [(t["key"], t["worker"], ss["start"], ss["stop"]) for t in stream.data
             for ss in t.get("startstops", ()) if ss.get("action") == "compute"]
    profile = None
    if spy.get("proc") is not None:
        spy["proc"].wait()
        if os.path.exists(spy["out"]):
            profile = {"seconds": args.py_spy, "summary": py_spy_summary(spy["out"]),
                       "raw": spy["out"]}
    return {"fit": fit, "engine": engine, "records": records, "wall": wall,
            "fit_seconds": wall - engine.untimed, "curvature": config.resolved(loss, penalty).curvature,
            "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:160]}" for w in caught}),
            "tasks": tasks, "py_spy": profile, "loss": loss, "penalty": penalty, "config": config}


def busy_per_pass(passes, tasks, workers: int) -> None:
    """Add to each pass its block tasks (the fused read + kernel of each block, from dask's task
    stream): how many, their mean seconds, and the workers' busy fraction (their summed seconds ÷
    workers × the pass's seconds)."""
    def block_task(key):  # the pass's blockwise task fused into the first step of the tree sum
        name = str(key[0] if isinstance(key, tuple) else key)
        return name.startswith("sum-") and not name.startswith(("sum-partial", "sum-aggregate"))

    for q in passes:
        lo, hi = q["window"]
        mine = [(stop - start) for key, _, start, stop in tasks
                if block_task(key) and lo <= start and stop <= hi]
        q["tasks"] = len(mine)
        q["task_mean"] = float(np.mean(mine)) if mine else float("nan")
        q["busy"] = sum(mine) / (workers * q["seconds"]) if mine else float("nan")


def in_memory_check(path, result, args) -> float:
    """Max |difference| of the streamed fit's θ from the same fit on the numpy engine in memory
    (X in its stored dtype), relative to max |θ|."""
    from smem_dask.data import open_store
    from smem_dask.engine import NumpyEngine
    from smem_dask.solver import fit_em

    zx, zy = open_store(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = fit_em(NumpyEngine(zx[:], zy[:]), result["loss"], result["penalty"], args.alpha,
                     config=result["config"])
    a = np.r_[result["fit"].coef, result["fit"].intercept]
    b = np.r_[ref.coef, ref.intercept]
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def bench_dtype(dtype: str, args, log) -> dict:
    import psutil
    from distributed import Client, LocalCluster

    itemsize = np.dtype(dtype).itemsize
    p = args.p
    n = int(round(args.gb * 1e9 / (itemsize * p)))
    chunk_rows = max(1000, min(n, int(args.chunk_mb * 1e6 / (itemsize * p))))
    path = store_path(args.data, dtype, n, p, chunk_rows, args.cond)
    row = {"dtype": dtype, "n": n, "p": p, "chunk_rows": chunk_rows, "path": path, "timings": {},
           "notes": []}
    t_all = time.perf_counter()
    log(f"{dtype}: {n:,} × {p} ({n * p * itemsize / 1e9:.1f} GB of X), chunks of {chunk_rows:,} rows")
    write_s = ensure_store(path, n, p, chunk_rows, dtype, args.cond, args.disk_margin_gb, log)
    row["timings"]["write (write_zarr + sync)"] = write_s
    log(f"  store {path}: " + ("reused" if write_s is None else f"written in {write_s:.0f} s"))
    x_files, y_files = chunk_files(path)
    files = interleaved(x_files, y_files)
    nbytes = sum(os.path.getsize(f) for f in files)
    x_bytes = sum(os.path.getsize(f) for f in x_files)
    paged = sum(-(-os.path.getsize(f) // mmap.PAGESIZE) * mmap.PAGESIZE for f in files)
    row.update(store_bytes=nbytes, store_paged=paged, x_bytes=x_bytes, n_blocks=len(x_files),
               ram=psutil.virtual_memory().total)
    try:
        if not args.quick and args.drop_caches:
            row["drop_caches"] = try_drop_caches()
            log(f"  sync; echo 3 > /proc/sys/vm/drop_caches: {row['drop_caches']}")
        t0 = time.perf_counter()
        drop_pages(files)
        row["resident_after_drop"] = resident_bytes(files)
        with OtherLoad() as load:
            row["disk"] = [read_rate(files, 1)]
            if args.workers > 1:
                row["disk"].append(read_rate(files, args.workers))
            row["disk"].append(read_rate(files, args.workers, whole=True))
            row["disk_kept"] = read_rate(files, args.workers, whole=True, keep=True)
        row["load_reads"] = load.result()
        row["timings"]["disk read rates"] = time.perf_counter() - t0
        for d in row["disk"] + [row["disk_kept"]]:
            log(f"  disk, {describe_read(d)}: {d['gbps']:.3f} GB/s ({d['seconds']:.1f} s)")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
                Client(cluster, set_as_default=False) as client, PeakRSS() as client_rss:
            import dask

            from smem_dask.arrays import as_array
            from smem_dask.data import open_store

            client.run(_start_rss_sampler)
            zx, zy = open_store(path)
            X, y = as_array(zx, "X"), as_array(zy, "y")
            # the read pass, cold (after one block's read: workers' imports and zarr set up)
            with dask.config.set(scheduler=client):
                pass_graphs(X.blocks[0], y.blocks[0])["read"].compute()
            t0 = time.perf_counter()
            drop_pages(files)
            with dask.config.set(scheduler=client):
                t1 = time.perf_counter()
                pass_graphs(X, y)["read"].compute()
                read_s = time.perf_counter() - t1
            row["read_pass"] = {"seconds": read_s, "gbps": x_bytes / read_s / 1e9}
            row["timings"]["dask read pass"] = time.perf_counter() - t0
            log(f"  dask read pass (X only), cold: {read_s:.1f} s, {x_bytes / read_s / 1e9:.3f} GB/s")
            # the fit
            log(f"  fit (workers: {args.workers} × {args.memory_limit}) ...")
            with OtherLoad() as load:
                res = fit_store(path, files, nbytes, client, args, log)
            row["load_fit"] = load.result()
            fit = res["fit"]
            row["timings"]["fit (passes timed alone; drops and mincore untimed)"] = res["wall"]
            row.update(curvature=res["curvature"], passes=res["engine"].passes,
                       n_passes=fit.n_passes, n_iter=fit.n_iter, converged=fit.converged,
                       objective=fit.objective, grad_norm=fit.grad_norm, fit_wall=res["wall"],
                       fit_seconds=res["fit_seconds"], warnings=res["warnings"],
                       n_restarts=fit.n_restarts)
            busy_per_pass(row["passes"], res["tasks"], args.workers)
            if res["py_spy"]:
                row["py_spy"] = res["py_spy"]
            log(f"  fit: {fit.n_passes} passes, converged={fit.converged}, "
                f"{res['wall']:.0f} s ({res['fit_seconds']:.0f} s without the drops); other "
                f"processes used {row['load_fit']['other_cores']:.2f} cores meanwhile")
            # where a pass's time goes: one block, warm, on one worker
            t0 = time.perf_counter()
            worker = sorted(client.scheduler_info(n_workers=-1)["workers"])[0]
            row["profile"] = client.submit(
                _profile_block, path, len(x_files) // 2, res["engine"].last_requests, True,
                workers=[worker], pure=False).result()
            row["timings"]["kernel profile"] = time.perf_counter() - t0
            row["worker_peaks"] = sorted(client.run(_worker_peak).values())
            row["worker_limit"] = min(w["memory_limit"] for w in
                                      client.scheduler_info(n_workers=-1)["workers"].values())
        row["client_peak"] = client_rss.peak
        if args.quick:
            row["in_memory_diff"] = in_memory_check(path, res, args)
            log(f"  streamed vs in-memory fit: max rel diff {row['in_memory_diff']:.2e}")
    finally:
        if not args.keep:
            shutil.rmtree(path, ignore_errors=True)
            log(f"  deleted {path}")
    row["timings"]["total for this dtype"] = time.perf_counter() - t_all
    return row


# ---------------------------------------------------------------------------------------------
# report

def disk_rate(row) -> float:
    return max(d["gbps"] for d in row["disk"])


def _gb(b):
    return f"{b / 1e9:.2f}"


def _gib(b):
    return f"{b / 2**30:.2f}"


def report(rows, args) -> str:
    lines = [header("Beyond RAM: fitting a zarr store larger than memory, streamed from disk",
                    args.command)]
    ram = rows[0]["ram"] if rows else 0
    lines.append(
        f"- cluster: LocalCluster, {args.workers} worker processes × 1 thread, memory limit "
        f"{args.memory_limit} each; the machine's RAM {_gib(ram)} GiB\n"
        f"- data: synthetic logistic (smem_dask.data.write_zarr), p = {args.p}, cond(XᵀX) = "
        f"{args.cond:g}, zarr v3 uncompressed + CRC32C, row chunks of ~{args.chunk_mb:g} MB; fit: "
        f"fit_em, SolverConfig(curvature=\"auto\") (tol 1e-8), logistic + ridge α = {args.alpha:g}, "
        "intercept; DaskEngine(persist=False) over smem_dask.data.open_store\n"
        "- page cache: every file's pages dropped (posix_fadvise DONTNEED) before each disk "
        "measurement, the read pass and " + ("each EM pass" if not args.no_drop else
                                             "the fit (not between passes: --no-drop)")
        + "\n- disk read rate: the same chunk files (X and y, in row order) read in this run, pages "
        "dropped first: the disk's own rate is the fastest read with the pages of each file dropped "
        "right after it (1 reader by 16 MiB reads; "
        f"{args.workers} readers so; {args.workers} readers reading each file whole as zarr does); "
        f"'page-cache-filling read': {args.workers} readers reading each file whole with its pages "
        "kept, as a pass leaves them\n"
        "- other load: CPU used by processes not of this benchmark (the machine's busy time less "
        "ours), in cores on average\n")
    for note in getattr(args, "skipped", ()):
        lines.append(f"- **{note}**\n")
    if args.quick:
        lines.append("- **--quick**: a small store the page cache could hold (it is dropped all the "
                     "same): this checks the machinery, it is not the result\n")
    lines.append("## Result\n")
    lines.append("| dtype | store GB (X + y on disk) | store ÷ RAM | disk read GB/s | page-cache-filling "
                 "read GB/s | EM pass s (median) | EM pass GB/s (median) | pass ÷ disk (median; worst) "
                 "| pass ÷ page-cache-filling read (median) | passes | converged | fit wall s | worker "
                 "peak GiB (limit) | other load during the fit (cores) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "passes" not in r:
            continue
        secs = np.array([q["seconds"] for q in r["passes"]])
        rates = np.array([q["gbps"] for q in r["passes"]])
        disk = disk_rate(r)
        peaks = ", ".join(_gib(b) for b in r["worker_peaks"])
        kept = r["disk_kept"]["gbps"] if r.get("disk_kept") else float("nan")
        lines.append(
            f"| {r['dtype']} | {_gb(r['store_bytes'])} | {r['store_bytes'] / r['ram']:.2f} | "
            f"{disk:.3f} | {kept:.3f} | {np.median(secs):.1f} | {np.median(rates):.3f} | "
            f"{np.median(rates) / disk:.2f}; {rates.min() / disk:.2f} | {np.median(rates) / kept:.2f} | "
            f"{r['n_passes']} | {'yes' if r['converged'] else 'NO'} | "
            f"{r['fit_wall']:.0f} | {peaks} ({_gib(r['worker_limit'])}) | "
            f"{r.get('load_fit', {}).get('other_cores', float('nan')):.2f} |")
    lines.append("\nfit wall: `fit_em` from call to return, the drops and page-cache measurements "
                 "before each pass included (they take well under a second); the passes' seconds "
                 "exclude them.\n")

    lines.append("## Each pass\n")
    lines.append("| dtype | pass | Grams | seconds | GB/s | ÷ disk | block tasks | mean block task s "
                 "| workers busy | store in the page cache before the drop | … after it |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        disk = disk_rate(r) if "disk" in r else float("nan")
        for i, q in enumerate(r.get("passes", []), 1):
            res = ("—" if q["resident_before"] is None
                   else f"{100 * q['resident_before'] / r['store_paged']:.1f}%")
            after = ("—" if q["resident_at_start"] is None
                     else f"{100 * q['resident_at_start'] / r['store_paged']:.1f}%")
            lines.append(f"| {r['dtype']} | {i} | {q['grams']} | {q['seconds']:.1f} | {q['gbps']:.3f} | "
                         f"{q['gbps'] / disk:.2f} | {q.get('tasks', '—')} | {q.get('task_mean', 0):.3f} | "
                         f"{100 * q.get('busy', float('nan')):.0f}% | {res} | {after} |")
    lines.append("\nblock task: dask's fused task reading one block (X and y) from the store and "
                 "running the pass kernel on it (its compute time in the task stream); workers busy: "
                 "the block tasks' summed seconds ÷ (workers × the pass's seconds).")

    lines.append("\n## Reads of the same files, and where a pass's time goes\n")
    lines.append("| dtype | read | GB/s | seconds |")
    lines.append("|---|---|---|---|")
    for r in rows:
        for d in r.get("disk", []) + ([r["disk_kept"]] if r.get("disk_kept") else []):
            lines.append(f"| {r['dtype']} | {describe_read(d)} | {d['gbps']:.3f} | {d['seconds']:.1f} |")
        if "read_pass" in r:
            rp = r["read_pass"]
            lines.append(f"| {r['dtype']} | dask read pass: {args.workers} workers read each block of X "
                         f"through zarr (X only) | {rp['gbps']:.3f} | {rp['seconds']:.1f} |")
        if "load_reads" in r:
            lines.append(f"| {r['dtype']} | (other load during these reads: "
                         f"{r['load_reads']['other_cores']:.2f} cores) | | |")
    lines.append("")
    lines.append("| dtype | blocks | per block, warm: zarr read + CRC32C s | per block: pass kernel s | "
                 f"per block, cold: mean block task s | CPU-bound pass s ({args.workers} workers) | "
                 "disk-bound pass s | median EM pass s |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "profile" not in r:
            continue
        pr = r["profile"]
        cpu = r["n_blocks"] * (pr["read"] + pr["kernel"]) / args.workers
        med = float(np.median([q["seconds"] for q in r["passes"]]))
        lines.append(f"| {r['dtype']} | {r['n_blocks']} | {pr['read']:.3f} | {pr['kernel']:.3f} | "
                     f"{np.nanmedian([q.get('task_mean', np.nan) for q in r['passes']]):.3f} | {cpu:.1f} | "
                     f"{r['store_bytes'] / disk_rate(r) / 1e9:.1f} | {med:.1f} |")

    spied = [r for r in rows if r.get("py_spy")]
    if spied:
        lines.append(f"\n### py-spy: one worker, from the fit's second pass on ({PY_SPY_RATE} samples/s, "
                     "idle threads included; seconds)\n")
        keys = sorted({k for r in spied for k in r["py_spy"]["summary"]})
        lines.append("| where | " + " | ".join(f"{r['dtype']} ({r['py_spy']['seconds']:g} s)"
                                                for r in spied) + " |")
        lines.append("|---|" + "---|" * len(spied))
        for k in keys:
            lines.append(f"| {k} | " + " | ".join(f"{r['py_spy']['summary'].get(k, 0.0):.1f}"
                                                  for r in spied) + " |")
    lines.append("\n## The fit and the run\n")
    lines.append("| dtype | rows × p | curvature (auto) | iterations | passes | restarts | converged "
                 "| F | ‖∇F‖∞ | client peak GiB | drop_caches | warnings |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "passes" not in r:
            continue
        lines.append(f"| {r['dtype']} | {r['n']:,} × {r['p']} | {r['curvature']} | {r['n_iter']} | "
                     f"{r['n_passes']} | {r['n_restarts']} | {'yes' if r['converged'] else 'NO'} | "
                     f"{r['objective']:.12g} | {r['grad_norm']:.1e} | "
                     f"{_gib(r['client_peak'])} | {r.get('drop_caches', 'not tried')} | "
                     f"{'; '.join(r['warnings']) or 'none'} |")
    if any("in_memory_diff" in r for r in rows):
        lines.append("\nstreamed fit vs the same fit in memory (NumpyEngine, X in its stored dtype), "
                     "max |Δθ| ÷ max |θ|: " + ", ".join(f"{r['dtype']} {r['in_memory_diff']:.1e}"
                                                         for r in rows if "in_memory_diff" in r))
    lines.append("\n| dtype | " + " | ".join(rows[0]["timings"]) + " |" if rows else "")
    if rows:
        lines.append("|---|" + "---|" * len(rows[0]["timings"]))
        for r in rows:
            lines.append(f"| {r['dtype']} | " + " | ".join(
                "reused" if v is None else f"{v:.0f} s" for v in r["timings"].values()) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get("passes")]
    if not rows:
        return
    fig, axes = plt.subplots(1, len(rows), figsize=(5 * len(rows), 3.8), squeeze=False)
    for ax, r in zip(axes[0], rows, strict=True):
        rates = [q["gbps"] for q in r["passes"]]
        ax.bar(range(1, len(rates) + 1), rates, color="0.6", label="EM pass")
        ax.axhline(disk_rate(r), ls="--", color="k", label="disk (fastest read, pages dropped)")
        if r.get("disk_kept"):
            ax.axhline(r["disk_kept"]["gbps"], ls=":", color="k", label="page-cache-filling read")
        ax.axhline(r["read_pass"]["gbps"], color="tab:blue", lw=1, label="dask read pass (X)")
        ax.set_title(f"{r['dtype']}: {r['store_bytes'] / 1e9:.1f} GB store, "
                     f"{r['store_bytes'] / r['ram']:.2f}× RAM")
        ax.set_xlabel("pass")
        ax.set_ylabel("GB/s")
        ax.set_ylim(0, 1.5 * disk_rate(r))
        ax.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def past_deadline(rows, dtype: str, args) -> str | None:
    """Why ``dtype`` would end after ``--deadline`` (estimated from the dtype run before it: its
    write time scaled by the rows, the rest × 1.5), or None."""
    if not (args.deadline and rows):
        return None
    import datetime

    prev = rows[-1]
    hh, mm = map(int, args.deadline.split(":"))
    now = datetime.datetime.now(datetime.timezone.utc)
    deadline = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    n = int(round(args.gb * 1e9 / (np.dtype(dtype).itemsize * args.p)))
    write_s = prev["timings"]["write (write_zarr + sync)"] or 0.0
    rest = prev["timings"]["total for this dtype"] - write_s
    estimate = write_s * n / prev["n"] + 1.5 * rest
    end = now + datetime.timedelta(seconds=estimate)
    if end <= deadline:
        return None
    return (f"estimated to take {estimate / 60:.0f} min (from the {prev['dtype']} run) and so to end at "
            f"{end:%H:%M} UTC, after --deadline {args.deadline} UTC")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks beyond_ram",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=30.0, help="GB of X per store")
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--chunk-mb", type=float, default=80.0, help="MB of X per zarr chunk")
    parser.add_argument("--cond", type=float, default=1e6)
    parser.add_argument("--alpha", type=float, default=1e-4, help="ridge α (the estimators' default)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GiB", help="per worker")
    parser.add_argument("--py-spy", type=float, default=0.0,
                        help="seconds of py-spy on one worker from the fit's second pass on (0: none)")
    parser.add_argument("--no-drop", action="store_true",
                        help="leave the page cache alone between the fit's passes")
    parser.add_argument("--no-drop-caches", dest="drop_caches", action="store_false",
                        help="do not try /proc/sys/vm/drop_caches (never tried with --quick)")
    parser.add_argument("--disk-margin-gb", type=float, default=5.0,
                        help="GB the disk must keep free after a store is written")
    parser.add_argument("--data", default=DATA,
                        help="directory of the stores (each deleted after its run)")
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--deadline", default=None,
                        help="HH:MM UTC: a dtype estimated to end later is not run (and said so)")
    parser.add_argument("--quick", action="store_true",
                        help="a 0.1 GB store per dtype, 512 MiB workers, 4 MB chunks; checks the "
                             "fits against the in-memory fit: under a minute")
    add_out_option(parser)
    args = parse_args(parser, "beyond_ram", argv)
    if args.quick:
        args.gb, args.chunk_mb, args.memory_limit = min(args.gb, 0.1), min(args.chunk_mb, 4.0), "512MiB"
    os.makedirs(args.data, exist_ok=True)

    def log(msg):
        print(f"[{time.strftime('%H:%M:%S', time.gmtime())}] {msg}", flush=True)

    rows, args.skipped = [], []
    for dtype in args.dtypes.split(","):
        late = past_deadline(rows, dtype, args)
        if late:
            args.skipped.append(f"{dtype} not run: {late}")
            log(args.skipped[-1])
            continue
        rows.append(bench_dtype(dtype, args, log))
        text = report(rows, args)
        md = write("beyond_ram.md", text, args.out)
        with open(os.path.join(args.data, "beyond_ram_rows.json"), "w") as fh:  # raw, not published
            json.dump(rows, fh, indent=1, default=str)
        plot(rows, os.path.join(args.out, "beyond_ram.png"))
    print(text)
    print(f"wrote {md} and beyond_ram.png")


if __name__ == "__main__":  # pragma: no cover
    with contextlib.suppress(KeyboardInterrupt):
        main()
