"""Regularization path: data passes and wall time of each sharing mode versus 40 independent cold fits.

    python -m benchmarks path [--n 500000 --p 50 --cond 1e6 --workers 2] [--quick]

Writes ``benchmarks/results/path.md`` (table, command, machine, date) and ``path.png``. The data are a
synthetic logistic problem written to a zarr store and streamed from it every pass by a local cluster
of worker processes (as in ``smem-dask demo``). Every mode runs in this one invocation on the same
store, so ratios compare like with like. For each penalty (ridge, lasso):

* 40 cold fits — ``SMEMClassifier(alpha=a, curvature="adaptive").fit`` from zero at each α of the
  grid;
* the path in each sharing mode: sequential warm starts (``batch=1``), lockstep batches
  (``batch=10``, ``batch=40``: several α per pass) — all with the E-step — and fixed curvature
  (sequential and all-in-one). (The default ``curvature="auto"`` is the fixed bound on a logistic
  path and Newton for one fit: see ``python -m benchmarks scale``.)

Accuracy column: the largest relative difference between the path's objective and the cold fit's at
the same α (the cold fits are the reference).
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time

import numpy as np

from smem_dask import SMEMClassifier, fit_path
from smem_dask.data import make_problem, open_store, write_zarr

from ._common import RESULTS, header, write

# the E-step (curvature="adaptive") unless named: the modes and cold fits these results were
# measured with, before "auto" became the default (it picks Newton for one fit, the fixed bound for
# a logistic path)
MODES = [
    ("sequential warm starts", {"batch": 1, "curvature": "adaptive"}),
    ("lockstep, 10 α per pass", {"batch": 10, "curvature": "adaptive"}),
    ("lockstep, all 40 α per pass", {"batch": 40, "curvature": "adaptive"}),
    ("fixed curvature, sequential", {"batch": 1, "curvature": "fixed"}),
    ("fixed curvature, all 40 α per pass", {"batch": 40, "curvature": "fixed"}),
]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks path",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000)
    parser.add_argument("--p", type=int, default=50)
    parser.add_argument("--cond", type=float, default=1e6)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--workers", type=int, default=2,
                        help="worker processes of the local cluster; 0: numpy arrays in this process")
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--penalties", default="l2,l1")
    parser.add_argument("--quick", action="store_true",
                        help="a small in-memory problem (n 20000, p 10, ridge only, no cluster): seconds")
    parser.add_argument("--out", default=RESULTS, help="directory for path.md and path.png")
    args = parser.parse_args(argv)
    args.command = "python -m benchmarks path " + " ".join(shlex.quote(a) for a in (argv or []))
    if args.quick:
        args.n, args.p, args.chunk_rows, args.penalties, args.workers = 20_000, 10, 5_000, "l2", 0

    from distributed import Client, LocalCluster

    rows = []
    if args.workers == 0:
        X, y = make_problem(args.n, args.p, cond=args.cond, seed=0)
        for penalty in args.penalties.split(","):
            rows += run_penalty(X, y, penalty, args.tol)
        report(args, rows)
        return
    with tempfile.TemporaryDirectory(prefix="smem-bench-path-") as tmp:
        store = os.path.join(tmp, "data.zarr")
        write_zarr(store, args.n, args.p, cond=args.cond, seed=0, chunk_rows=args.chunk_rows)
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            X, y = open_store(store)
            for penalty in args.penalties.split(","):
                rows += run_penalty(X, y, penalty, args.tol)
    report(args, rows)


def run_penalty(X, y, penalty: str, tol: float) -> list[dict]:
    results = []
    t0 = time.perf_counter()
    first = fit_path(X, y, penalty=penalty, tol=tol, **MODES[0][1])
    seconds = time.perf_counter() - t0
    alphas = first.alphas
    print(f"[{penalty}] {MODES[0][0]}: {first.total_passes} passes, {seconds:.1f} s", flush=True)

    cold_passes, cold_objectives, cold_seconds = [], [], 0.0
    for a in alphas:
        t0 = time.perf_counter()
        est = SMEMClassifier(penalty=penalty, alpha=a, tol=tol, curvature="adaptive").fit(X, y)
        cold_seconds += time.perf_counter() - t0
        cold_passes.append(est.n_passes_)
        cold_objectives.append(est.objective_)
    cold_objectives = np.array(cold_objectives)
    print(f"[{penalty}] 40 cold fits: {sum(cold_passes)} passes, {cold_seconds:.1f} s "
          f"(smallest α: {cold_passes[-1]} passes)", flush=True)
    base = {"penalty": penalty, "cold_passes": sum(cold_passes), "cold_seconds": cold_seconds,
            "cold_last": cold_passes[-1]}
    results.append({**base, "mode": "40 independent cold fits", "passes": sum(cold_passes),
                    "seconds": cold_seconds, "error": 0.0, "converged": True})

    def add(mode, path, seconds):
        error = float(np.max(np.abs(path.objectives - cold_objectives) / np.abs(cold_objectives)))
        results.append({**base, "mode": mode, "passes": path.total_passes, "seconds": seconds,
                        "error": error, "converged": bool(path.converged.all())})

    add(MODES[0][0], first, seconds)
    for mode, kwargs in MODES[1:]:
        t0 = time.perf_counter()
        path = fit_path(X, y, penalty=penalty, tol=tol, **kwargs)  # α_max and grid included
        seconds = time.perf_counter() - t0
        assert np.array_equal(path.alphas, alphas)
        print(f"[{penalty}] {mode}: {path.total_passes} passes, {seconds:.1f} s", flush=True)
        add(mode, path, seconds)
    return results


def report(args, rows: list[dict]) -> None:
    names = {"l2": "ridge", "l1": "lasso"}
    mb = args.n * args.p * 8 / 1e6
    lines = [header("Regularization path: sharing modes versus 40 cold fits", args.command.strip()), ""]
    where = ("in memory (numpy, this process)" if args.workers == 0 else
             f"in a zarr store, {args.chunk_rows:,}-row chunks, no compression), streamed from the "
             f"store every pass by a LocalCluster of {args.workers} worker processes (1 thread each")
    lines.append(
        f"Logistic regression, synthetic problem n = {args.n:,}, p = {args.p}, cond(XᵀX) = "
        f"{args.cond:.0e} ({mb:,.0f} MB of float64 {where}). 40 α from α_max down to α_max·1e-3, "
        f"tol = {args.tol:g}. Every mode computes its own α_max (the same grid). The data fit in "
        "memory here, so a pass costs a read from memory, not from disk: on data larger than memory "
        "the pass ratios below become the time ratios.\n")
    lines.append("| penalty | mode | data passes | passes ÷ 40 cold fits | passes ÷ cold fit at "
                 "smallest α | wall time (s) | time ÷ 40 cold fits | max rel. objective diff. "
                 "vs cold | all converged |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(
            f"| {names.get(r['penalty'], r['penalty'])} | {r['mode']} | {r['passes']} | "
            f"{r['passes'] / r['cold_passes']:.3f} | {r['passes'] / r['cold_last']:.1f} | "
            f"{r['seconds']:.1f} | {r['seconds'] / r['cold_seconds']:.3f} | {r['error']:.1e} | "
            f"{'yes' if r['converged'] else 'NO'} |")
    lines.append("")
    lines.append("Lockstep modes compute one Gram per α still running in each pass (and fixed "
                 "curvature none), so their passes cost more CPU than a single fit's; the wall-time "
                 "column shows what that costs here, where reads are cheap.")
    path_md = write("path.md", "\n".join(lines) + "\n", args.out)
    print(f"wrote {path_md}")
    plot(rows, names, os.path.join(args.out, "path.png"))


def plot(rows, names, out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    penalties = list(dict.fromkeys(r["penalty"] for r in rows))
    fig, axes = plt.subplots(1, len(penalties), figsize=(6 * len(penalties), 4.5), squeeze=False)
    for ax, penalty in zip(axes[0], penalties, strict=True):
        sub = [r for r in rows if r["penalty"] == penalty]
        x = np.arange(len(sub))
        ax.bar(x - 0.2, [r["passes"] / r["cold_passes"] for r in sub], 0.4, label="data passes")
        ax.bar(x + 0.2, [r["seconds"] / r["cold_seconds"] for r in sub], 0.4, label="wall time")
        ax.set_xticks(x, [r["mode"] for r in sub], rotation=30, ha="right", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("relative to 40 independent cold fits")
        ax.set_title(f"logistic + {names.get(penalty, penalty)}, 40-point path")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
