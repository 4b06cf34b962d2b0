"""Zarr codec and chunk size by measurement: bytes on disk, a read pass and an EM pass per store.

    python -m benchmarks chunks [--n 2e6 --p 100] [--chunk-mb 10,20,40,80,160]
                                [--codecs none,zstd-1,zstd,blosc-lz4,crc32c] [--repeats 5]
                                [--workers 2 --memory-limit 2GiB] [--data DIR] [--quick] [--out DIR]

Writes ``benchmarks/results/chunks.md`` (table, command, machine, date) and ``chunks.png`` (time
ratio versus chunk size, one line per codec); ``--quick`` writes into a temporary directory unless
``--out`` is given, never over the published results. One synthetic logistic problem (n × p, cond(XᵀX) =
``--cond``) is written by :func:`smem_dask.data.write_zarr` once per (chunk size, codec) into
``--data`` (reused across runs when the parameters match). Chunk sizes are MB (10⁶ bytes) of
uncompressed float64 X per row chunk. Codecs: ``none`` (the current default), ``zstd-1``
(ZstdCodec(level=1)), ``zstd`` (zarr's default compressor, ZstdCodec(level=0), i.e. zstd's level 3),
``blosc-lz4`` (BloscCodec lz4, clevel 5, byte shuffle), ``crc32c`` (uncompressed with zarr's
Crc32cCodec chunk checksum: what ``write_zarr`` writes by default; the other codecs carry no
checksum). y gets the same codec and chunks.

In one run on one fresh LocalCluster (``--workers`` single-threaded worker processes, ``--memory-limit``
each), for every store:

* **bytes on disk**: the summed sizes of X's chunk files, as a ratio to the raw n·p·8 bytes;
* **cold read** (if ``os.posix_fadvise`` exists): X's chunk files are fsynced and dropped from the
  page cache with ``POSIX_FADV_DONTNEED`` (no root needed; the fraction of their pages still resident
  is checked with ``mincore``), then one pure read pass over X (each block read and decoded, nothing
  else: the ``read`` pass of the scale benchmark);
* **warm read**: the same pass again, right after, so X is in the page cache;
* **EM pass**: one steady-state EM pass streamed from the store — the scale benchmark's ``EM pass``.

After one untimed warm-up (read + EM pass) per store, ``--repeats`` rounds each visit every store
once, in a fresh random order per round, so that drifts hit all configurations alike; each time is the
median over the rounds. Ratios are to the reference: uncompressed, the chunk size closest to
``--reference-mb`` (80 MB: 100 000 rows at p = 100, today's ``--chunk-rows`` default).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from ._common import DATA, add_out_option, header, parse_args, write
from .scale import em_pass, ensure_store, pass_graphs

FULL_CODECS = "none,zstd-1,zstd,blosc-lz4"
FULL_CHUNK_MB = "10,20,40,80,160"


def make_codec(name: str):
    """The zarr v3 compressor of a name (None: uncompressed) and whether chunks carry a CRC32C
    checksum."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if name == "none":
        return None, False
    if name == "crc32c":
        return None, True
    if name == "zstd-1":
        return ZstdCodec(level=1), False
    if name == "zstd":
        return ZstdCodec(), False  # zarr's default compressor (compressors="auto")
    if name == "blosc-lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"), False
    raise ValueError(f"unknown codec {name!r}; choose from {FULL_CODECS},crc32c")


# ---------------------------------------------------------------------------------------------
# files of a store and the page cache

def chunk_files(store: str, array: str = "X") -> list[str]:
    """The chunk files of one array of a zarr v3 directory store (its metadata left out)."""
    out = []
    for root, _, files in os.walk(os.path.join(store, array)):
        out += [os.path.join(root, f) for f in files if f != "zarr.json"]
    return sorted(out)


def disk_bytes(files: list[str]) -> int:
    return sum(os.path.getsize(f) for f in files)


def drop_from_page_cache(files: list[str]) -> None:
    """fsync each file (dirty pages cannot be dropped) and ask the kernel to evict its pages."""
    for f in files:
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_fraction(files: list[str]) -> float | None:
    """Fraction of the files' pages in the page cache (``mincore`` on a shared read-only mapping);
    None where that cannot be asked."""
    import ctypes
    import mmap

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    except (OSError, AttributeError):
        return None
    resident = total = 0
    for f in files:
        size = os.path.getsize(f)
        if size == 0:
            continue
        pages = -(-size // mmap.PAGESIZE)
        vec = (ctypes.c_ubyte * pages)()
        fd = os.open(f, os.O_RDONLY)
        try:
            addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
            if addr in (None, ctypes.c_void_p(-1).value):
                return None
            try:
                if libc.mincore(addr, size, vec) != 0:
                    return None
            finally:
                libc.munmap(addr, size)
        finally:
            os.close(fd)
        resident += int(np.count_nonzero(np.frombuffer(vec, dtype=np.uint8) & 1))
        total += pages
    return resident / total if total else 0.0


# ---------------------------------------------------------------------------------------------

def _ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return math.nan


def chunk_rows_for(mb: float, p: int, n: int) -> int:
    return max(1, min(n, round(mb * 1e6 / (8 * p))))


def measure(configs: list[dict], args, log) -> dict:
    """Time every store's passes on one fresh cluster, interleaved across the stores."""
    import dask
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    cold = hasattr(os, "posix_fadvise")
    notes = {"cold": cold, "resident_after_drop": []}
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                      memory_limit=args.memory_limit, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client, dask.config.set(scheduler=client):
        for c in configs:
            group = zarr.open_group(c["path"], mode="r")
            X, y = da.from_zarr(group["X"]), da.from_zarr(group["y"])
            c["read"] = pass_graphs(X, y)["read"].compute
            c["em"] = em_pass(X, y)
            c["times"] = {"cold read": [], "warm read": [], "EM pass": []}
        t0 = time.perf_counter()
        for c in configs:  # warm-up: imports, first-pass costs
            c["read"]()
            c["em"]()
        log(f"warm-up {time.perf_counter() - t0:.0f} s")
        rng = np.random.default_rng(0)
        for r in range(args.repeats):
            t0 = time.perf_counter()
            for i in rng.permutation(len(configs)):
                c = configs[i]
                files = c["files"]
                if cold:
                    drop_from_page_cache(files)
                    notes["resident_after_drop"].append(resident_fraction(files))
                    t = time.perf_counter()
                    c["read"]()
                    c["times"]["cold read"].append(time.perf_counter() - t)
                else:
                    c["read"]()  # untimed: brings X into the page cache for the warm read
                t = time.perf_counter()
                c["read"]()
                c["times"]["warm read"].append(time.perf_counter() - t)
                t = time.perf_counter()
                c["em"]()
                c["times"]["EM pass"].append(time.perf_counter() - t)
            log(f"round {r + 1}/{args.repeats}: {time.perf_counter() - t0:.0f} s")
    for c in configs:
        del c["read"], c["em"]
    return notes


def report(configs: list[dict], ref: dict, notes: dict, args) -> str:
    med = lambda c, k: float(np.median(c["times"][k])) if c["times"][k] else math.nan  # noqa: E731
    raw = args.n * args.p * 8
    lines = [header("Zarr codec and chunk size: bytes on disk, read pass, EM pass", args.command)]
    lines.append(f"- data: synthetic logistic, n = {args.n:,}, p = {args.p}, cond(XᵀX) = {args.cond:g}, "
                 f"float64 X of {raw / 1e6:,.0f} MB raw, written by `smem_dask.data.write_zarr`; "
                 f"cluster: LocalCluster, {args.workers} worker processes × 1 thread, memory limit "
                 f"{args.memory_limit} each; median of {args.repeats} interleaved rounds after one "
                 "warm-up per store")
    lines.append(f"- reference (ratios = 1): codec none, {ref['mb']:g} MB chunks "
                 f"({ref['rows']:,} rows); ratio columns are this store's median ÷ the reference's")
    lines.append("- bytes / raw: summed size of X's chunk files ÷ n·p·8\n")
    lines.append("| chunk MB | rows / chunk | chunks | codec | X on disk MB | bytes / raw | "
                 "cold read s | warm read s | EM pass s (min–max) | cold read / ref | "
                 "warm read / ref | EM pass / ref |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def ratio(c, k):
        a, b = med(c, k), med(ref, k)
        return "—" if math.isnan(a) or math.isnan(b) else f"{a / b:.2f}"

    for c in sorted(configs, key=lambda c: (c["mb"], c["order"])):
        em = c["times"]["EM pass"]
        cold_s = "—" if math.isnan(med(c, "cold read")) else f"{med(c, 'cold read'):.3f}"
        lines.append(f"| {c['mb']:g} | {c['rows']:,} | {c['chunks']} | {c['codec']} | "
                     f"{c['bytes'] / 1e6:,.1f} | {c['bytes'] / raw:.3f} | {cold_s} | "
                     f"{med(c, 'warm read'):.3f} | {med(c, 'EM pass'):.3f} ({min(em):.3f}–{max(em):.3f}) "
                     f"| {ratio(c, 'cold read')} | {ratio(c, 'warm read')} | {ratio(c, 'EM pass')} |")
    best = min(configs, key=lambda c: med(c, "EM pass"))
    smallest = min(configs, key=lambda c: c["bytes"])
    lines.append(f"\nFastest EM pass: {best['codec']}, {best['mb']:g} MB chunks "
                 f"({med(best, 'EM pass') / med(ref, 'EM pass'):.2f} × the reference). Fewest bytes: "
                 f"{smallest['codec']}, {smallest['mb']:g} MB chunks "
                 f"({smallest['bytes'] / raw:.3f} of raw).\n")
    resident = [f for f in notes["resident_after_drop"] if f is not None]
    if notes["cold"]:
        check = (f"after every drop at most {100 * max(resident):.1f}% of X's pages were still "
                 "resident (mincore)" if resident else "residency after the drop not checked "
                 "(mincore unavailable)")
        cold_txt = (f"*Cold read* drops X's chunk files from the page cache first "
                    f"(`posix_fadvise(POSIX_FADV_DONTNEED)` after `fsync`; {check}), so it reads "
                    "from the block device — here a virtual disk, whose host may still cache it, so "
                    "cold-ish, not a measurement of a given disk.")
    else:
        cold_txt = "*Cold read* not measured: `os.posix_fadvise` is not available here."
    lines.append(
        "**What was and wasn't measured.** *Warm read* and *EM pass* run right after X was read, "
        f"with X in the OS page cache (X is {raw / 1e6:,.0f} MB per store, read just before; "
        f"{_ram_gib():.0f} GiB RAM): they measure memory bandwidth, decoding and compute, not the disk. "
        f"{cold_txt} Each time is one pass over all of X (and y for the EM pass) by the cluster, "
        "including Dask's scheduling. Not measured: the time to write the stores, other shapes "
        "(p), float32, zarr sharding, more threads per worker, network or object storage (S3, GCS), "
        "where fewer bytes may matter more than here.\n")
    return "\n".join(lines) + "\n"


def plot(configs, ref, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [k for k in ("EM pass", "warm read", "cold read") if ref["times"][k]]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.5 * len(kinds), 3.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        base = float(np.median(ref["times"][kind]))
        for codec in dict.fromkeys(c["codec"] for c in configs):
            cs = sorted((c for c in configs if c["codec"] == codec), key=lambda c: c["mb"])
            ax.semilogx([c["mb"] for c in cs], [np.median(c["times"][kind]) / base for c in cs],
                        "o-", ms=4, label=codec)
        ax.axhline(1.0, color="k", lw=0.6, ls="--")
        ax.set_title(f"{kind} time ÷ reference")
        ax.set_xlabel("chunk size (MB of X)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ratio (none, ~80 MB = 1)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks chunks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=float, default=2e6, help="rows")
    parser.add_argument("--p", type=int, default=100, help="columns")
    parser.add_argument("--cond", type=float, default=1e6)
    parser.add_argument("--chunk-mb", default=None, help=f"MB of X per chunk (default {FULL_CHUNK_MB})")
    parser.add_argument("--codecs", default=None, help=f"default {FULL_CODECS}")
    parser.add_argument("--reference-mb", type=float, default=80.0,
                        help="the reference is uncompressed with the chunk size closest to this")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB", help="per worker")
    parser.add_argument("--data", default=DATA,
                        help="directory of the zarr stores (reused across runs)")
    parser.add_argument("--quick", action="store_true",
                        help="n 50000, p 20, chunks of 0.5 and 2 MB, codecs none and zstd, "
                             "2 rounds: about 20 s")
    add_out_option(parser)
    args = parse_args(parser, "chunks", argv)
    if args.quick:
        args.n, args.p, args.repeats = 50_000, 20, 2
        args.chunk_mb = args.chunk_mb or "0.5,2"
        args.codecs = args.codecs or "none,zstd"
    args.n = int(args.n)
    mbs = [float(m) for m in (args.chunk_mb or FULL_CHUNK_MB).split(",")]
    codecs = (args.codecs or FULL_CODECS).split(",")
    os.makedirs(args.data, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    configs = []
    for mb in mbs:
        rows = chunk_rows_for(mb, args.p, args.n)
        for order, codec in enumerate(codecs):
            t0 = time.perf_counter()
            compressor, checksum = make_codec(codec)
            path = ensure_store(args.data, args.n, args.p, rows, args.cond, compressors=compressor,
                                checksum=checksum, tag=f"_r{rows}_{codec}")
            files = chunk_files(path)
            configs.append({"mb": mb, "rows": rows, "chunks": -(-args.n // rows), "codec": codec,
                            "order": order, "path": path, "files": files,
                            "bytes": disk_bytes(files)})
            log(f"{mb:g} MB {codec}: {path} ({time.perf_counter() - t0:.0f} s)")
    plain = [c for c in configs if c["codec"] == "none"] or configs
    ref = min(plain, key=lambda c: (abs(math.log(c["mb"] / args.reference_mb)), c["order"]))
    notes = measure(configs, args, log)
    text = report(configs, ref, notes, args)
    md = write("chunks.md", text, args.out)
    try:
        plot(configs, ref, os.path.join(args.out, "chunks.png"))
        png = " and chunks.png"
    except ImportError:
        png = " (no plot: matplotlib not installed)"
    print(text)
    print(f"wrote {md}{png}")
