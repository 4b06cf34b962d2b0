"""Sparse X: the pass kernel on a scipy CSR block against the same block dense, across densities.

    python -m benchmarks sparse [--n 200000 --p 100 --densities 0.001,0.003,0.01,0.03,0.1,0.3]
                                [--repeats 7] [--quick] [--out DIR]

One thread (BLAS limited to one), the steady pass of the default logistic fit (the Newton request:
the loss change and gradient at a candidate, the Hessian's Gram there) on an n × p block whose
entries are nonzero with the given probability (standard normal values). For each density: the
median of ``--repeats`` interleaved runs of the kernel on the CSR block and on the dense one, their
ratio, and the crossover (the density above which the dense kernel is faster), with the bytes each
reads. Then one default fit (α = 1e-4, tol 1e-10) on CSR and on dense at 1% density: seconds and the
largest coefficient difference. Then a DataFrame with two numeric columns and a categorical column
of ``--levels`` levels (``--n`` rows): its default fit with the one-hot columns as CSR (what the
estimator makes of such a frame) against the same fit on ``pandas.get_dummies``' dense array, seconds,
passes and the largest coefficient difference. Writes ``results/sparse.md`` (``--quick``: a small run
to a temporary directory, never the published results).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ._common import add_out_option, header, parse_args, write


def _block(n, p, density, seed):
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    Xs = sp.random(n, p, density=density, format="csr", random_state=seed, data_rvs=rng.standard_normal)
    beta = rng.normal(size=p) / np.sqrt(max(density * p, 1.0))
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(Xs @ beta)))).astype(float)
    return Xs, y


def _one_hot_fits(n: int, levels: int) -> dict:
    """The default logistic fit on a frame with a categorical column of ``levels`` levels: encoded
    by the estimator (CSR) and on ``get_dummies``' dense array; seconds, passes, their difference."""
    import pandas as pd

    from smem_dask import SMEMClassifier

    rng = np.random.default_rng(5)
    names = np.array([f"l{i:05d}" for i in range(levels)])
    codes = rng.integers(0, levels, n)
    frame = pd.DataFrame({"x1": rng.standard_normal(n), "x2": rng.standard_normal(n),
                          "group": pd.Categorical(names[codes], categories=names)})
    eta = frame["x1"].to_numpy() - 0.5 * frame["x2"].to_numpy() + rng.normal(0, 0.5, levels)[codes]
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)
    dense = pd.get_dummies(frame, columns=["group"], dtype=float).to_numpy()
    out = {"p": dense.shape[1], "density": float(np.count_nonzero(dense)) / dense.size}
    fitted = {}
    for name, data in (("csr", frame), ("dense", dense)):
        t = time.perf_counter()
        est = SMEMClassifier(alpha=1e-4, tol=1e-10).fit(data, y)
        out[name] = (time.perf_counter() - t, est.n_passes_)
        fitted[name] = est
        if name == "csr" and not est.encoding_.sparse:
            raise RuntimeError("the frame was not encoded sparse: raise --levels")
    out["diff"] = float(np.max(np.abs(fitted["csr"].coef_ - fitted["dense"].coef_)))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks sparse", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--p", type=int, default=100)
    parser.add_argument("--densities", default="0.001,0.003,0.01,0.03,0.1,0.3")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--levels", type=int, default=1000,
                        help="levels of the one-hot fit's categorical column")
    parser.add_argument("--quick", action="store_true", help="2e4 × 30, three densities, 3 repeats")
    add_out_option(parser)
    args = parse_args(parser, "sparse", argv)
    if args.quick:
        args.n, args.p, args.densities, args.repeats, args.levels = 20_000, 30, "0.01,0.1,0.5", 3, 100
    densities = [float(d) for d in args.densities.split(",")]

    from threadpoolctl import threadpool_limits

    from smem_dask import SMEMClassifier
    from smem_dask import stats as kernel
    from smem_dask.losses import Logistic
    from smem_dask.stats import Request, block_stats_many

    threshold = kernel.SPARSE_MAX_DENSITY

    def forced(limit, data, y):
        """The kernel with its sparse path forced on (limit 1) or off (limit 0)."""
        kernel.SPARSE_MAX_DENSITY = limit
        try:
            return block_stats_many(data, y, None, Logistic(), request, True)
        finally:
            kernel.SPARSE_MAX_DENSITY = threshold

    q = args.p + 1
    rng = np.random.default_rng(1)
    beta = 0.01 * rng.standard_normal(q)
    step = beta + 1e-3 * rng.standard_normal(q)
    request = [Request(np.column_stack([beta, step]), step, reference_known=True, hessian=True)]
    rows = []
    with threadpool_limits(1):
        for density in densities:
            Xs, y = _block(args.n, args.p, density, seed=int(density * 1e6))
            X = Xs.toarray()
            kernels = {"csr": lambda Xs=Xs, y=y: forced(1.0, Xs, y),
                       "csr tiles made dense": lambda Xs=Xs, y=y: forced(0.0, Xs, y),
                       "dense": lambda X=X, y=y: block_stats_many(X, y, None, Logistic(), request, True)}
            a, b = kernels["csr"](), kernels["dense"]()  # warm-up, and the same statistics
            kernels["csr tiles made dense"]()
            diff = float(np.max(np.abs(a[0].gram - b[0].gram)) / np.max(np.abs(b[0].gram)))
            times = {k: [] for k in kernels}
            for _ in range(args.repeats):
                for name in rng.permutation(list(kernels)):
                    t = time.perf_counter()
                    kernels[name]()
                    times[name].append(time.perf_counter() - t)
            med = {k: float(np.median(v)) for k, v in times.items()}
            rows.append({"density": density, "csr": med["csr"], "dense": med["dense"],
                         "tiles": med["csr tiles made dense"],
                         "csr_bytes": Xs.data.nbytes + Xs.indices.nbytes + Xs.indptr.nbytes,
                         "dense_bytes": X.nbytes, "gram_diff": diff})
            print(f"density {density:g}: csr {med['csr']:.4f} s, dense {med['dense']:.4f} s "
                  f"(dense ÷ csr {med['dense'] / med['csr']:.2f})", flush=True)
        # one default fit at 1%
        Xs, y = _block(args.n, args.p, 0.01, seed=7)
        X = Xs.toarray()
        fits = {}
        for name, data in (("csr", Xs), ("dense", X)):
            t = time.perf_counter()
            est = SMEMClassifier(alpha=1e-4, tol=1e-10).fit(data, y)
            fits[name] = (time.perf_counter() - t, est)
        onehot = _one_hot_fits(args.n, args.levels)
    fit_diff = float(np.max(np.abs(fits["csr"][1].coef_ - fits["dense"][1].coef_)))
    faster = [r["density"] for r in rows if r["csr"] < r["dense"]]
    slower = [r["density"] for r in rows if r["csr"] >= r["dense"]]
    if faster and slower:
        crossover = f"between {max(faster):g} and {min(slower):g}"
    elif faster:
        crossover = f"above {max(faster):g} (CSR was faster at every density measured)"
    else:
        crossover = f"below {min(slower):g} (dense was faster at every density measured)"

    lines = [header("Sparse X: the pass kernel on CSR against dense", args.command)]
    lines.append(f"- block: {args.n:,} × {args.p}, standard normal nonzeros; one thread; the default "
                 "logistic fit's steady pass (Newton request: loss change, gradient, Hessian Gram); "
                 f"medians of {args.repeats} interleaved runs\n")
    lines.append("*CSR s*: the sparse kernel (sparse products, one sparse XᵀDX per block); *CSR, dense "
                 "tiles s*: the CSR block made dense one tile at a time; the kernel takes the first up to "
                 f"density {threshold:g} (`SPARSE_MAX_DENSITY`), the second above.\n")
    lines.append("| density | CSR s | CSR, dense tiles s | dense s | dense ÷ CSR | CSR MB | dense MB | Gram "
                 "difference (relative) |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for r in rows:
        lines.append(f"| {r['density']:g} | {r['csr']:.4f} | {r['tiles']:.4f} | {r['dense']:.4f} "
                     f"| {r['dense'] / r['csr']:.2f} | {r['csr_bytes'] / 1e6:.1f} "
                     f"| {r['dense_bytes'] / 1e6:.1f} "
                     f"| {r['gram_diff']:.1e} |")
    lines.append(f"\nCrossover: the sparse kernel is the faster one below a density {crossover}.\n")
    lines.append(f"One default fit (α = 1e-4, tol 1e-10) at density 0.01: CSR {fits['csr'][0]:.2f} s "
                 f"({fits['csr'][1].n_passes_} passes), dense {fits['dense'][0]:.2f} s "
                 f"({fits['dense'][1].n_passes_} passes); largest coefficient difference {fit_diff:.1e}.\n")
    lines.append(f"## One-hot columns\n\nA DataFrame of {args.n:,} rows: two standard normal columns "
                 f"and a categorical column of {args.levels} levels (uniform), {onehot['p']} columns "
                 f"once encoded ({onehot['density']:.2%} nonzero); the default fit (α = 1e-4, tol "
                 "1e-10), one thread. *csr*: the frame given to the estimator, which encodes it as CSR "
                 f"(its density is below {threshold:g}); *dense*: the same fit on `pandas.get_dummies` "
                 "of the frame as a dense array.\n")
    lines.append("| X | seconds | passes | seconds per pass |\n|---|---|---|---|")
    for name in ("csr", "dense"):
        sec, passes = onehot[name]
        lines.append(f"| {name} | {sec:.2f} | {passes} | {sec / passes:.3f} |")
    lines.append(f"\ndense ÷ CSR: {onehot['dense'][0] / onehot['csr'][0]:.1f}× the time; largest coefficient "
                 f"difference {onehot['diff']:.1e}.\n")
    path = write("sparse.md", "\n".join(lines), args.out)
    print(f"wrote {path}")
