"""Shared by the benchmarks: the machine description and writing results with their provenance."""

from __future__ import annotations

import datetime
import os
import platform
import shlex
import sys
import tempfile
from importlib.metadata import version

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
#: the default directory of the benchmarks' zarr stores (``--data``)
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".data")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = float("nan")
    versions = ", ".join(f"{name} {version(name)}" for name in ("dask", "distributed", "numpy", "zarr"))
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}; {versions}")


def header(title: str, command: str | None = None) -> str:
    """Title, the command that made the results, the machine and the date (markdown)."""
    if command is None:
        command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"# {title}\n\n- command: `{command}` (from the repository root)\n"
            f"- machine: {machine()}\n- date: {now}\n")


def write(name: str, text: str, directory: str = RESULTS) -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, name)
    with open(path, "w") as fh:
        fh.write(text)
    return path


def add_out_option(parser) -> None:
    """``--out``: the directory of the results — ``results/`` by default, a temporary one with
    ``--quick``, so that a quick run never overwrites the published results."""
    parser.add_argument("--out", default=None,
                        help=f"directory of the results (default {RESULTS}; with --quick a temporary "
                             "one, never the published results)")


def parse_args(parser, name: str, argv: list[str] | None):
    """``parser``'s arguments (it has ``--quick`` and :func:`add_out_option`'s ``--out``), with
    ``command``, the command line that made the results, and ``out`` decided."""
    args = parser.parse_args(argv)
    args.command = f"python -m benchmarks {name} " + " ".join(shlex.quote(a) for a in (argv or []))
    if args.out is None:
        args.out = (tempfile.mkdtemp(prefix=f"smem-{name.replace('_', '-')}-quick-") if args.quick
                    else RESULTS)
    return args
