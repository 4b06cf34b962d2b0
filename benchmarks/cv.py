"""Cross-validated paths: our lockstep CV (K training paths + the all-rows path in the same passes)
versus K + 1 separate SM-EM paths and scikit-learn's LogisticRegressionCV.

    python -m benchmarks cv [--n 500000 --p 50 --cond 1e4 --folds 5] [--stream-n 200000 --workers 2]
                            [--saga-max-iter 100] [--quick] [--out DIR]

Writes ``benchmarks/results/cv.md`` (tables, command, machine, date) and ``cv.png``; ``--quick`` writes
into a temporary directory unless ``--out`` is given, never over the published results. Logistic
regression on a synthetic problem (:func:`smem_dask.data.make_problem`, cond(XᵀX) = ``--cond``), K
folds from :func:`smem_dask.folds.generated_folds` (seed 0: the same fold ids for every competitor;
n divisible by K, so every training set has n − n/K rows), the 40-α grid of our CV (α_max from all
rows down to α_max·1e-3). For each penalty (ridge, lasso):

1. **In memory** (numpy arrays in this process, n × p):
   * our CV — :func:`smem_dask.cv.solve_cv` over a ``NumpyEngine`` with the fold ids, for each
     curvature mode (adaptive, fixed, cached): data passes and wall time;
   * K + 1 separate SM-EM paths — :func:`smem_dask.path.solve_path` on each training subset (a
     copy of its rows, made before the clock starts) at the CV's α, and on all rows (its own α_max:
     the same grid), for each curvature mode: the sum of their passes and wall times; their
     held-out log loss (computed here from their coefficients) against our CV's scores;
   * scikit-learn ``LogisticRegressionCV`` with the same folds (a list of (train, test) index
     pairs), ``Cs`` = 1/(α·n_train) for the CV's α, ``scoring="neg_log_loss"``: ridge with
     ``newton-cholesky``, lasso with ``saga`` (capped by ``--saga-max-iter`` epochs per fit: it is
     slow here; whether it converged is reported). Its fold scores against ours, its ``C_`` against
     our α_min.
2. **Streamed** from a zarr store (n = ``--stream-n``; chunks of ``--chunk-rows`` rows, uncompressed)
   by a ``LocalCluster`` of ``--workers`` worker processes (1 thread each), ``persist=False``: our CV
   and the K + 1 separate paths (each a ``DaskEngine`` over the whole store with sample weights
   [fold ≠ k] — a fold's training rows lie in every chunk, so a path over them reads every chunk
   anyway): passes, bytes of X read (passes × X's bytes) and wall time, for each curvature mode.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings

import numpy as np

from ._common import add_out_option, header, parse_args, write

NAMES = {"l2": "ridge", "l1": "lasso"}
CURVATURES = ("adaptive", "fixed", "cached")


def _config(curvature: str, tol: float, penalty: str):
    """SM-EM's settings as the estimators make them: the penalty's default solver ("exact" for
    l1: the lower-level ``SolverConfig()`` default "em" is far slower for the lasso, see cv.md)."""
    from smem_dask.penalties import get_penalty
    from smem_dask.solver import SolverConfig

    return SolverConfig(curvature=curvature, tol=tol,
                        penalty_solver=get_penalty(penalty).default_solver)


def _held_out_loss(X, y, folds, coefs, intercepts, k) -> np.ndarray:
    """Mean log loss on the rows of fold k of each (α) fit: (n_alphas,)."""
    rows = folds == k
    eta = X[rows] @ coefs.T + intercepts  # (rows, n_alphas)
    return np.mean(np.logaddexp(0.0, eta) - y[rows, None] * eta, axis=0)


def _not_converged(result) -> int:
    return int(np.sum(~np.asarray(result.converged)))


# ---------------------------------------------------------------------------------------------
# in memory

def run_ours(X, y, folds, penalty, curvature, args, log) -> dict:
    from smem_dask.cv import solve_cv
    from smem_dask.engine import NumpyEngine
    from smem_dask.losses import get_loss
    from smem_dask.penalties import get_penalty

    engine = NumpyEngine(X, y, folds=folds)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cv = solve_cv(engine, get_loss("logistic"), get_penalty(penalty), args.folds,
                      n_alphas=args.n_alphas, eps=args.eps,
                      config=_config(curvature, args.tol, penalty))
    seconds = time.perf_counter() - t0
    bad = sum(_not_converged(r) for r in [cv.path, *cv.fold_paths])
    log(f"[{penalty}] our CV, {curvature}: {cv.total_passes} passes, {seconds:.1f} s, "
        f"α_min {cv.alpha_min:.4g}, {bad} fits not converged")
    notes = [str(w.message) for w in caught if "converge" in str(w.message)]
    return {"cv": cv, "passes": cv.total_passes, "seconds": seconds, "unconverged": bad,
            "notes": notes}


def run_separate(X, y, folds, penalty, curvature, alphas, args, log) -> dict:
    """K + 1 separate paths (training subsets, then all rows); the subsets are copied first."""
    from smem_dask.cv import cv_selection
    from smem_dask.engine import NumpyEngine
    from smem_dask.losses import get_loss
    from smem_dask.path import solve_path
    from smem_dask.penalties import get_penalty

    loss, pen = get_loss("logistic"), get_penalty(penalty)
    config = _config(curvature, args.tol, penalty)
    passes, seconds, paths, bad = 0, 0.0, [], 0
    for k in range(args.folds):
        train = folds != k
        Xk, yk = np.ascontiguousarray(X[train]), y[train]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            path = solve_path(NumpyEngine(Xk, yk), loss, pen, alphas=alphas, config=config)
        seconds += time.perf_counter() - t0
        passes += path.total_passes
        bad += _not_converged(path)
        paths.append(path)
        del Xk, yk
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = solve_path(NumpyEngine(X, y), loss, pen, n_alphas=args.n_alphas, eps=args.eps,
                          config=config)
    seconds += time.perf_counter() - t0
    passes += full.total_passes
    bad += _not_converged(full)
    if not np.allclose(full.alphas, alphas, rtol=1e-12, atol=0):
        raise AssertionError("the all-rows path's α grid differs from the CV's")
    scores = np.array([_held_out_loss(X, y, folds, P.coefs, P.intercepts, k)
                       for k, P in enumerate(paths)])
    weights = np.array([np.sum(folds == k) for k in range(args.folds)], dtype=float)
    _, _, i_min, _ = cv_selection(scores, weights)
    log(f"[{penalty}] {args.folds + 1} separate paths, {curvature}: {passes} passes, "
        f"{seconds:.1f} s, {bad} fits not converged")
    return {"paths": paths, "full": full, "passes": passes, "seconds": seconds, "scores": scores,
            "index_min": i_min, "unconverged": bad}


def run_sklearn(X, y, folds, penalty, alphas, args, log) -> dict:
    from sklearn.linear_model import LogisticRegressionCV

    K = args.folds
    n_train = X.shape[0] - X.shape[0] // K
    Cs = 1.0 / (alphas * n_train)  # α decreasing: C increasing, the order sklearn warm-starts in
    splits = [(np.flatnonzero(folds != k), np.flatnonzero(folds == k)) for k in range(K)]
    if penalty == "l2":
        solver, kw = "newton-cholesky", {"tol": args.tol, "max_iter": 100, "l1_ratios": (0.0,)}
    else:
        solver, kw = "saga", {"tol": args.saga_tol, "max_iter": args.saga_max_iter,
                              "l1_ratios": (1.0,), "random_state": 0}
    model = LogisticRegressionCV(Cs=list(Cs), cv=splits, solver=solver, scoring="neg_log_loss",
                                 refit=True, n_jobs=args.sklearn_jobs, use_legacy_attributes=False,
                                 **kw)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y)
    seconds = time.perf_counter() - t0
    scores = -np.asarray(model.scores_)[:, 0, :]  # (K, n_Cs): mean held-out log loss
    n_iter = np.asarray(model.n_iter_)[:, 0, :]
    hit = int(np.sum(n_iter >= kw["max_iter"]))
    index = int(np.argmin(np.abs(np.log(Cs / float(model.C_)))))
    log(f"[{penalty}] scikit-learn LogisticRegressionCV {solver}: {seconds:.1f} s, "
        f"{hit} of {n_iter.size} fold fits at max_iter, C_ {float(model.C_):.4g}")
    convergence_warnings = sum("converge" in str(w.message).lower() for w in caught)
    return {"solver": solver, "seconds": seconds, "scores": scores, "n_iter": n_iter,
            "at_max_iter": hit, "C_": float(model.C_), "index_min": index, "n_train": n_train,
            "max_iter": kw["max_iter"], "tol": kw["tol"], "warnings": convergence_warnings,
            "refit_iter": int(np.max(np.asarray(model.n_iter_)))}


def bench_memory(args, log) -> dict:
    from smem_dask.data import make_problem
    from smem_dask.folds import generated_folds

    X, y = make_problem(args.n, args.p, cond=args.cond, seed=0)
    folds = generated_folds(args.n, args.folds, seed=0)
    out = {}
    for penalty in args.penalties:
        res = {"ours": {}, "separate": {}}
        for curvature in args.curvatures:
            res["ours"][curvature] = run_ours(X, y, folds, penalty, curvature, args, log)
        alphas = res["ours"][args.curvatures[0]]["cv"].alphas
        for curvature in args.curvatures:
            if not np.array_equal(res["ours"][curvature]["cv"].alphas, alphas):
                raise AssertionError("the curvature modes computed different α grids")
        for curvature in args.separate_curvatures:
            res["separate"][curvature] = run_separate(X, y, folds, penalty, curvature, alphas,
                                                      args, log)
        if not args.no_sklearn:
            res["sklearn"] = run_sklearn(X, y, folds, penalty, alphas, args, log)
        out[penalty] = res
    return out


# ---------------------------------------------------------------------------------------------
# streamed from a zarr store

def bench_stream(args, log) -> dict:
    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    from smem_dask.cv import solve_cv
    from smem_dask.data import write_zarr
    from smem_dask.engine import DaskEngine
    from smem_dask.folds import generated_folds
    from smem_dask.losses import get_loss
    from smem_dask.path import solve_path
    from smem_dask.penalties import get_penalty

    loss = get_loss("logistic")
    out = {}
    with tempfile.TemporaryDirectory(prefix="smem-bench-cv-", dir=args.data) as tmp:
        store = os.path.join(tmp, "data.zarr")
        write_zarr(store, args.stream_n, args.p, cond=args.cond, seed=0, chunk_rows=args.chunk_rows)
        group = zarr.open_group(store, mode="r")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            X, y = da.from_zarr(group["X"]), da.from_zarr(group["y"])
            folds = generated_folds(args.stream_n, args.folds, seed=0, row_chunks=X.chunks[0])
            for penalty in args.penalties:
                pen = get_penalty(penalty)
                res = {"ours": {}, "separate": {}}
                for curvature in args.stream_curvatures:
                    config = _config(curvature, args.tol, penalty)
                    engine = DaskEngine(X, y, folds=folds, persist=False)
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        cv = solve_cv(engine, loss, pen, args.folds, n_alphas=args.n_alphas,
                                      eps=args.eps, config=config)
                    seconds = time.perf_counter() - t0
                    bad = sum(_not_converged(r) for r in [cv.path, *cv.fold_paths])
                    res["ours"][curvature] = {"passes": cv.total_passes, "seconds": seconds,
                                              "alpha_min": cv.alpha_min, "unconverged": bad}
                    log(f"[{penalty}] streamed, our CV, {curvature}: {cv.total_passes} passes, "
                        f"{seconds:.1f} s")
                    passes, seconds, bad, diff = 0, 0.0, 0, 0.0
                    for k in [*range(args.folds), None]:
                        if k is None:
                            engine, kw = DaskEngine(X, y, persist=False), {
                                "n_alphas": args.n_alphas, "eps": args.eps}
                        else:
                            weights = (folds != k).astype(np.float64)
                            engine, kw = DaskEngine(X, y, weights, persist=False), {
                                "alphas": cv.alphas}
                        t0 = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            path = solve_path(engine, loss, pen, config=config, **kw)
                        seconds += time.perf_counter() - t0
                        passes += path.total_passes
                        bad += _not_converged(path)
                        ref = cv.path if k is None else cv.fold_paths[k]
                        diff = max(diff, float(np.max(np.abs(path.coefs - ref.coefs))))
                    res["separate"][curvature] = {"passes": passes, "seconds": seconds,
                                                  "unconverged": bad, "coef_diff": diff}
                    log(f"[{penalty}] streamed, {args.folds + 1} separate paths, {curvature}: "
                        f"{passes} passes, {seconds:.1f} s")
                out[penalty] = res
    return out


# ---------------------------------------------------------------------------------------------
# report

def _s(x: float) -> str:
    return f"{x:.1f}" if x < 1000 else f"{x:,.0f}"


def report(args, memory: dict, stream: dict, loads: tuple) -> str:
    K = args.folds
    lines = [header("Cross-validated paths: lockstep CV versus K + 1 separate paths and "
                    "scikit-learn", args.command.strip()), ""]
    lines.append(
        f"- machine load: 1-minute load average {loads[0]:.2f} at the start, {loads[1]:.2f} at "
        "the end (2 cores; other work may run on this machine at the same time as the benchmark, "
        "so wall times carry its noise; passes do not)")
    lines.append(
        f"- problem: logistic regression, synthetic (`make_problem`, seed 0), p = {args.p}, "
        f"cond(XᵀX) = {args.cond:g}; K = {K} folds (`generated_folds(n, {K}, seed=0)`, the same "
        f"ids for every method; n divisible by K: every training set has n − n/K rows); "
        f"{args.n_alphas} α from α_max (all rows) down to α_max·{args.eps:g}, the CV's grid for "
        f"every method; SM-EM tol = {args.tol:g}, acceleration nesterov-restart (the default), "
        "penalty solver as the estimators choose it (the penalty's `default_solver`: \"exact\" "
        "for the lasso, \"em\" for ridge)")
    lines.append(
        "- our CV: `solve_cv` (the K training paths and the all-rows path in lockstep, held-out "
        "scores riding on the passes); separate paths: `solve_path` on each training subset at the "
        "CV's α plus one on all rows (its own α_max: the same grid), run one after the other")
    lines.append("")

    if memory:
        mb = args.n * args.p * 8 / 1e6
        lines.append(f"## In memory: n = {args.n:,}, p = {args.p} ({mb:,.0f} MB of float64, numpy "
                     "arrays in this process; `NumpyEngine`, 2 threads)\n")
        lines.append("Ratios are to our CV with the current default curvature (adaptive) for "
                     "the same penalty. Selected α: α_min (the smallest mean held-out log loss).\n")
        lines.append("| penalty | method | data passes | wall s | passes ÷ our CV | wall ÷ our CV | "
                     "selected α (α_min) | notes |")
        lines.append("|---|---|---|---|---|---|---|---|")
        for penalty, res in memory.items():
            name = NAMES.get(penalty, penalty)
            ref_key = "adaptive" if "adaptive" in res["ours"] else next(iter(res["ours"]))
            ref = res["ours"][ref_key]
            cv_ref = ref["cv"]
            for curvature, r in res["ours"].items():
                cv = r["cv"]
                note = (f"α_1se {cv.alpha_1se:.4g}; all {(K + 1) * len(cv.alphas)} fits converged"
                        if r["unconverged"] == 0 else f"{r['unconverged']} fits NOT converged")
                if cv.index_min == len(cv.alphas) - 1:
                    note += "; α_min is the grid's smallest α"
                lines.append(f"| {name} | our CV, {curvature} curvature | {r['passes']} | "
                             f"{_s(r['seconds'])} | {r['passes'] / ref['passes']:.2f} | "
                             f"{r['seconds'] / ref['seconds']:.2f} | {cv.alpha_min:.4g} | {note} |")
            for curvature, r in res["separate"].items():
                cv = res["ours"].get(curvature, ref)["cv"]
                diff = float(np.max(np.abs(r["scores"] - cv.scores["loss"])))
                coef = max(float(np.max(np.abs(P.coefs - Q.coefs)))
                           for P, Q in zip([r["full"], *r["paths"]], [cv.path, *cv.fold_paths],
                                           strict=True))
                note = (f"held-out loss vs our CV ({curvature}): max diff {diff:.1e}; "
                        f"coefficients max diff {coef:.1e}"
                        + ("" if r["unconverged"] == 0 else f"; {r['unconverged']} fits NOT converged"))
                lines.append(f"| {name} | {K + 1} separate SM-EM paths, {curvature} curvature | "
                             f"{r['passes']} | {_s(r['seconds'])} | {r['passes'] / ref['passes']:.2f} "
                             f"| {r['seconds'] / ref['seconds']:.2f} | "
                             f"{cv.alphas[r['index_min']]:.4g} | {note} |")
            if "sklearn" in res:
                s = res["sklearn"]
                diff = float(np.max(np.abs(s["scores"] - cv_ref.scores["loss"])))
                same = s["index_min"] == cv_ref.index_min
                a_sel = 1.0 / (s["C_"] * s["n_train"])
                conv = (f"all {s['n_iter'].size} fold fits below max_iter = {s['max_iter']}"
                        if s["at_max_iter"] == 0 else
                        f"{s['at_max_iter']} of {s['n_iter'].size} fold fits stopped at max_iter = "
                        f"{s['max_iter']} (NOT converged to tol {s['tol']:g})")
                note = (f"C_ = {s['C_']:.4g} = 1/(α·n_train) at α {a_sel:.4g}: "
                        f"{'the same' if same else 'NOT the same'} α as our α_min "
                        f"(grid index {s['index_min']} vs {cv_ref.index_min}); held-out loss vs ours: "
                        f"max diff {diff:.1e}; {conv}; tol {s['tol']:g}; "
                        f"n_jobs {args.sklearn_jobs}; refit on all rows at C_ included")
                lines.append(f"| {name} | scikit-learn LogisticRegressionCV ({s['solver']}) | — | "
                             f"{_s(s['seconds'])} | — | {s['seconds'] / ref['seconds']:.2f} | "
                             f"{a_sel:.4g} | {note} |")
        lines.append("")
        lines += _fastest_table("in memory", memory)

    if stream:
        mb = args.stream_n * args.p * 8 / 1e6
        lines.append(f"## Streamed from a zarr store: n = {args.stream_n:,}, p = {args.p} "
                     f"({mb:,.0f} MB of X; {args.chunk_rows:,}-row chunks, uncompressed, CRC32C "
                     f"checksum), LocalCluster of {args.workers} worker processes × 1 thread, "
                     "`DaskEngine(persist=False)`\n")
        lines.append("Every pass reads all of X from the store (from the page cache here: the "
                     "store fits in memory, so wall time understates what the passes cost on "
                     "data larger than memory, where bytes read become the time). Ratios are to our "
                     "CV with the same curvature.\n")
        lines.append("| penalty | method | data passes | X read (GB) | wall s | passes ÷ our CV | "
                     "wall ÷ our CV | selected α (α_min) | notes |")
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for penalty, res in stream.items():
            name = NAMES.get(penalty, penalty)
            for curvature, r in res["ours"].items():
                sep = res["separate"][curvature]
                note = ("all fits converged" if r["unconverged"] == 0
                        else f"{r['unconverged']} fits NOT converged")
                lines.append(f"| {name} | our CV, {curvature} curvature | {r['passes']} | "
                             f"{r['passes'] * mb / 1e3:.2f} | {_s(r['seconds'])} | 1.00 | 1.00 | "
                             f"{r['alpha_min']:.4g} | {note} |")
                note = (f"coefficients vs our CV: max diff {sep['coef_diff']:.1e}"
                        + ("" if sep["unconverged"] == 0
                           else f"; {sep['unconverged']} fits NOT converged"))
                lines.append(f"| {name} | {K + 1} separate SM-EM paths, {curvature} curvature | "
                             f"{sep['passes']} | {sep['passes'] * mb / 1e3:.2f} | "
                             f"{_s(sep['seconds'])} | {sep['passes'] / r['passes']:.2f} | "
                             f"{sep['seconds'] / r['seconds']:.2f} | — | {note} |")
        lines.append("")
        lines += _fastest_table("streamed", stream)
    return "\n".join(lines) + "\n"


def _fastest_table(where: str, results: dict) -> list[str]:
    """Markdown lines: each curvature mode's wall time (passes) for our CV, and the fastest."""
    first = results[next(iter(results))]["ours"]
    lines = [f"### Which curvature mode is fastest for our CV ({where})\n",
             "| penalty | " + " | ".join(f"{c} wall s (passes)" for c in first)
             + " | fastest | adaptive ÷ fastest (wall) |",
             "|---|" + "---|" * (len(first) + 2)]
    for penalty, res in results.items():
        ours = res["ours"]
        best = min(ours, key=lambda c: ours[c]["seconds"])
        ratio = (f"{ours['adaptive']['seconds'] / ours[best]['seconds']:.2f}"
                 if "adaptive" in ours else "—")
        lines.append(f"| {NAMES.get(penalty, penalty)} | "
                     + " | ".join(f"{_s(r['seconds'])} ({r['passes']})" for r in ours.values())
                     + f" | {best} | {ratio} |")
    return lines + [""]


def plot(args, memory: dict, stream: dict, out: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    penalties = list(memory) or list(stream)
    fig, axes = plt.subplots(len(penalties), 2, figsize=(13, 4.6 * len(penalties)), squeeze=False)
    for row, penalty in zip(axes, penalties, strict=True):
        name = NAMES.get(penalty, penalty)
        ax = row[0]
        labels, seconds, passes = [], [], []
        if penalty in memory:
            res = memory[penalty]
            for c, r in res["ours"].items():
                labels.append(f"ours CV {c}\n(memory)")
                seconds.append(r["seconds"])
                passes.append(r["passes"])
            for c, r in res["separate"].items():
                labels.append(f"{args.folds + 1} paths {c}\n(memory)")
                seconds.append(r["seconds"])
                passes.append(r["passes"])
            if "sklearn" in res:
                labels.append(f"sklearn\n{res['sklearn']['solver']}")
                seconds.append(res["sklearn"]["seconds"])
                passes.append(None)
        if penalty in stream:
            for c, r in stream[penalty]["ours"].items():
                labels.append(f"ours CV {c}\n(streamed)")
                seconds.append(r["seconds"])
                passes.append(r["passes"])
                sep = stream[penalty]["separate"][c]
                labels.append(f"{args.folds + 1} paths {c}\n(streamed)")
                seconds.append(sep["seconds"])
                passes.append(sep["passes"])
        x = np.arange(len(labels))
        colors = ["C0" if lab.startswith("ours") else "C1" if "paths" in lab else "C2" for lab in labels]
        bars = ax.bar(x, seconds, color=colors)
        for b, ps in zip(bars, passes, strict=True):
            if ps is not None:
                ax.annotate(f"{ps}", (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("wall time (s); data passes above the bars")
        ax.set_title(f"logistic + {name}: {args.folds}-fold CV over {args.n_alphas} α "
                     f"(memory n={args.n:,}, streamed n={args.stream_n:,})", fontsize=9)
        ax = row[1]
        if penalty in memory:
            res = memory[penalty]
            ref = res["ours"]["adaptive" if "adaptive" in res["ours"] else next(iter(res["ours"]))]
            cv = ref["cv"]
            ax.errorbar(cv.alphas, cv.cv_mean, yerr=cv.cv_se, fmt="o-", ms=3, capsize=2,
                        label="ours (mean ± se)")
            if "sklearn" in res:
                s = res["sklearn"]["scores"]
                w = cv.fold_weights[:, None]
                m = (w * s).sum(0) / w.sum()
                se = np.sqrt((w * (s - m) ** 2).sum(0) / w.sum() / (args.folds - 1))
                ax.errorbar(cv.alphas * 1.03, m, yerr=se, fmt="s--", ms=3, capsize=2,
                            label=f"scikit-learn {res['sklearn']['solver']} (mean ± se)")
            ax.axvline(cv.alpha_min, color="k", lw=0.8, ls=":", label="our α_min")
            ax.set_xscale("log")
            ax.set_xlabel("α  (scikit-learn: C = 1/(α·n_train))")
            ax.set_ylabel("held-out mean log loss")
            ax.set_title(f"logistic + {name}: held-out loss along the path (in memory)", fontsize=9)
            ax.legend(fontsize=7)
        else:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks cv",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500_000, help="rows, in memory")
    parser.add_argument("--p", type=int, default=50)
    parser.add_argument("--cond", type=float, default=1e4)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--n-alphas", type=int, default=40)
    parser.add_argument("--eps", type=float, default=1e-3)
    parser.add_argument("--tol", type=float, default=1e-8, help="SM-EM's and newton-cholesky's tol")
    parser.add_argument("--penalties", default="l2,l1")
    parser.add_argument("--curvatures", default=",".join(CURVATURES), help="our CV in memory")
    parser.add_argument("--separate-curvatures", default=",".join(CURVATURES),
                        help="the K + 1 separate paths in memory")
    parser.add_argument("--stream-curvatures", default=",".join(CURVATURES),
                        help="our CV and the separate paths, streamed")
    parser.add_argument("--saga-max-iter", type=int, default=10,
                        help="epochs per saga fit (scikit-learn lasso), a cap: saga takes ~0.4 s an "
                             "epoch at 4e5 × 50 here, and 200 fold fits")
    parser.add_argument("--saga-tol", type=float, default=1e-4,
                        help="saga's tol (scikit-learn's default; 1e-8 is out of its reach here)")
    parser.add_argument("--sklearn-jobs", type=int, default=2,
                        help="LogisticRegressionCV's n_jobs (its folds in parallel; our numpy "
                             "engine uses both cores too)")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--stream-n", type=int, default=200_000, help="rows, streamed; 0: skip")
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", default=None, help="directory for the temporary zarr store")
    parser.add_argument("--quick", action="store_true",
                        help="n 10000 in memory and 5000 streamed (adaptive curvature only), p 10, "
                             "20 α: about a minute")
    add_out_option(parser)
    args = parse_args(parser, "cv", argv)
    if args.quick:
        args.n, args.p, args.stream_n, args.chunk_rows, args.n_alphas = 10_000, 10, 5_000, 1_250, 20
        args.stream_curvatures = "adaptive"
    for name in ("n", "stream_n"):
        if getattr(args, name) % args.folds:
            parser.error(f"--{name.replace('_', '-')} must be divisible by --folds")
    args.penalties = args.penalties.split(",")
    args.curvatures = [c for c in args.curvatures.split(",") if c]
    args.separate_curvatures = [c for c in args.separate_curvatures.split(",") if c]
    args.stream_curvatures = [c for c in args.stream_curvatures.split(",") if c]

    def log(msg):
        print(msg, flush=True)

    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    memory = bench_memory(args, log) if args.n else {}
    stream = bench_stream(args, log) if args.stream_n else {}
    loads = (load0, os.getloadavg()[0])
    text = report(args, memory, stream, loads)
    text += f"\nTotal running time of the benchmark: {time.perf_counter() - t0:,.0f} s.\n"
    md = write("cv.md", text, args.out)
    print(text)
    print(f"wrote {md}")
    plot(args, memory, stream, os.path.join(args.out, "cv.png"))


if __name__ == "__main__":
    main()
