"""The ``smem-dask`` command line: the subcommands, their options, and ``NAME=VALUE`` parameters."""

from __future__ import annotations

import argparse

from .losses import LOSSES
from .penalties import PENALTIES
from .settings import ACCELERATIONS, COV_TYPES, CURVATURES, PENALTY_SOLVERS, SCORINGS, SELECTIONS

__all__ = ["build_parser", "parse_params"]


def _positive_int(text: str) -> int:
    value = int(float(text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _batch(text: str):
    return text if text == "auto" else _positive_int(text)


def _n_folds(text: str) -> int:
    value = _positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be an integer ≥ 2, got {text}")
    return value


def _seed(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"must be an integer in [0, 2**63), got {text}")
    return value


def _solver_options(p, alpha=True):
    if alpha:
        p.add_argument("--alpha", type=float, default=1e-4, help="penalty strength α")
    p.add_argument("--acceleration", choices=ACCELERATIONS, default="nesterov-restart")
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--max-iter", type=_positive_int, default=1000)
    p.add_argument("--max-time", metavar="SECONDS",
                   help="stop after the iteration during which this much wall time has passed; "
                        "the result is written, not converged (exit code 0)")


def _model_options(p):
    p.add_argument("data", metavar="DATA.zarr|DATA.parquet",
                   help="zarr store with arrays X (n × p) and y (n) (or those named by --x, --y), or "
                        "a parquet dataset (its columns named by --y, --x, …)")
    p.add_argument("--loss", choices=sorted(LOSSES), default="logistic")
    p.add_argument("--penalty", choices=sorted(PENALTIES), default="l2")
    p.add_argument("--loss-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the loss, e.g. tau=0.9 (repeatable)")
    p.add_argument("--penalty-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a parameter of the penalty, e.g. l1_ratio=0.5 or groups=0,0,1,1")
    p.add_argument("--penalty-solver", choices=PENALTY_SOLVERS, default=None,
                   help="how the penalty enters the M-step (default: the penalty's own)")
    p.add_argument("--curvature", choices=CURVATURES, default="auto",
                   help="the M-step matrix: newton (the loss's Hessian, each step checked by the "
                        "objective; logistic, poisson, negbin, squared); the loss's E-step "
                        "(adaptive); the fixed bound ω = ¼ (logistic) / 1 (squared, huber): one "
                        "Gram, then gradient-only passes; or cached: the E-step Gram reused for "
                        "gradient-only passes, refreshed at iterations 1, 2, 4, 8, … and when F "
                        "would rise. Default auto: newton for logistic, poisson, negbin; fixed for "
                        "squared; adaptive for the others — on a path or cross-validation fixed for "
                        "logistic, squared, huber")


def _cluster_options(p):
    where = p.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS",
                       help="address of a running dask scheduler, e.g. tcp://127.0.0.1:8786 or "
                            "tls://host:8786 (default: threads in this process)")
    where.add_argument("--scheduler-file", metavar="JSON",
                       help="the file a scheduler started with --scheduler-file wrote (HPC)")
    where.add_argument("--workers", type=_positive_int, metavar="N",
                       help="start a local cluster of N worker processes for this run")
    p.add_argument("--memory-limit", default="auto", metavar="BYTES",
                   help="memory limit of each --workers process, e.g. 2GiB (default: the "
                        "machine's memory shared out)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS",
                   help="give up reaching --scheduler after this long (default 10)")
    p.add_argument("--tls-ca", metavar="PEM", help="certificate authority of a TLS cluster")
    p.add_argument("--tls-cert", metavar="PEM", help="this client's certificate (TLS)")
    p.add_argument("--tls-key", metavar="PEM", help="this client's private key (TLS)")
    keep = p.add_mutually_exclusive_group()
    keep.add_argument("--persist", dest="persist", action="store_const", const=True,
                      default="auto",
                      help="keep the data in cluster memory instead of streaming it each pass "
                           "(default: when it takes at most half of the workers' memory)")
    keep.add_argument("--stream", dest="persist", action="store_const", const=False,
                      help="read the data from its store on every pass")


def _add_demo(sub) -> None:
    """``smem-dask demo``: a synthetic problem fitted on a local cluster."""
    demo = sub.add_parser(
        "demo", help="fit a synthetic ill-conditioned logistic problem from zarr on a local cluster"
    )
    demo.add_argument("--n", type=_positive_int, default=1_000_000, help="rows (default 1e6)")
    demo.add_argument("--p", type=_positive_int, default=50, help="columns (default 50)")
    demo.add_argument("--cond", type=float, default=1e6, help="condition number of XᵀX")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--classes", type=_positive_int, default=2,
                      help="K > 2: a K-class problem, fitted by the multinomial loss")
    demo.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    demo.add_argument("--workers", type=_positive_int, default=2, help="worker processes")
    _solver_options(demo)


def _add_make_data(sub) -> None:
    """``smem-dask make-data``: a synthetic problem written to a zarr store."""
    make = sub.add_parser("make-data", help="write a synthetic problem to a zarr v3 store")
    make.add_argument("out", help="path of the new store (e.g. data.zarr)")
    make.add_argument("--n", type=_positive_int, default=100_000)
    make.add_argument("--p", type=_positive_int, default=20)
    make.add_argument("--cond", type=float, default=1e4, help="condition number of XᵀX")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--task", choices=("classification", "regression"), default="classification")
    make.add_argument("--classes", type=_positive_int, default=2,
                      help="classification: K > 2 writes labels 0 … K − 1 from a multinomial model "
                           "(fitted by the multinomial loss)")
    make.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    make.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                      help="storage type of X: float32 halves the bytes read per pass (the fit "
                           "still accumulates in float64)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing store")


def _data_options(p, target: bool = True):
    """Which arrays of a zarr store, or columns of a parquet dataset, are X, y, weights and offset."""
    p.add_argument("--x", metavar="NAME",
                   help="zarr: the array of X (default X); parquet: the feature columns, comma "
                        "separated (default: every column but the others named here)")
    if target:
        p.add_argument("--y", metavar="NAME", help="the array / column of y (default y)")
        p.add_argument("--weights", metavar="NAME", help="the array / column of the sample weights")
    p.add_argument("--offset", metavar="NAME",
                   help="the array / column of the offset (a known term of the linear predictor, "
                        "e.g. log exposure)")
    p.add_argument("--categorical", metavar="COL,...",
                   help="parquet: columns to one-hot encode although they hold numbers (text and "
                        "categorical columns are encoded anyway)")


def _add_fit(sub) -> None:
    """``smem-dask fit``: one fit of a zarr store's or a parquet dataset's X and y."""
    fit = sub.add_parser("fit", help="fit a model to X and y of a zarr store or a parquet dataset")
    _model_options(fit)
    _data_options(fit)
    _solver_options(fit)
    _cluster_options(fit)
    fit.add_argument("--out", metavar="JSON", help="write the model (coefficients, names, encoding) and "
                                                   "the fit summary here (read by smem-dask predict)")
    fit.add_argument("--quiet", action="store_true", help="no per-iteration lines")
    fit.add_argument("--summary", action="store_true",
                     help="print the coefficient table (standard errors, z, p-values, 95%% intervals; "
                          "unpenalized fits: --alpha 0) — one more data pass")
    fit.add_argument("--drop-first", action="store_true",
                     help="encoded columns: no indicator for each column's first level (reference "
                          "coding; needed for --summary with an intercept)")
    fit.add_argument("--cov-type", choices=COV_TYPES, default="nonrobust",
                     help="the covariance of --summary")
    fit.add_argument("--clusters", metavar="NAME", help="the array / column of cluster labels "
                                                        "(--cov-type cluster)")


def _add_predict(sub) -> None:
    """``smem-dask predict``: a fitted model (fit --out) applied to new data."""
    pred = sub.add_parser("predict", help="predict with a model written by fit --out")
    pred.add_argument("model", metavar="MODEL.json", help="the model written by smem-dask fit --out")
    pred.add_argument("data", metavar="DATA.zarr|DATA.parquet", help="the data to predict")
    _data_options(pred, target=False)
    pred.add_argument("--out", metavar="PATH", required=True,
                      help="where to write the predictions: .npy, .csv, .zarr or .parquet (class "
                           "labels for classifiers, the mean for regressors; parquet: a column "
                           "'prediction', or 'proba[CLASS]' per class with --proba)")
    pred.add_argument("--proba", action="store_true",
                      help="classifiers: write the class probabilities (n × classes) instead")
    _cluster_options(pred)


def _grid_options(p):
    p.add_argument("--n-alphas", type=_positive_int, default=40, help="number of α (default 40)")
    p.add_argument("--eps", type=float, default=1e-3, help="smallest α / α_max (default 1e-3)")
    p.add_argument("--batch", type=_batch, default="auto", metavar="N|auto",
                   help="α solved in lockstep per data pass (default auto: as many as fit)")


def _add_path(sub) -> None:
    """``smem-dask path``: a regularization path of a zarr store's or a parquet dataset's X and y."""
    path = sub.add_parser("path", help="fit a regularization path (α_max down to α_max·eps)")
    _model_options(path)
    _data_options(path)
    _solver_options(path, alpha=False)
    _cluster_options(path)
    _grid_options(path)
    path.add_argument("--store", metavar="PATH",
                      help="zarr directory keeping shared statistics and finished α; rerun with "
                           "the same store to resume an interrupted path")
    path.add_argument("--plot", metavar="PNG",
                      help="draw the coefficient paths against log α (needs matplotlib: "
                           "pip install 'smem_dask[plot]')")
    path.add_argument("--out", metavar="JSON", help="write the path (alphas, coefs, …) here")
    path.add_argument("--quiet", action="store_true", help="no per-α lines")


def _add_cv(sub) -> None:
    """``smem-dask cv``: a K-fold cross-validated regularization path of a zarr store's or a parquet
    dataset's X and y."""
    cv = sub.add_parser(
        "cv", help="choose α by K-fold cross-validation: K training paths and the all-rows path "
                   "in the same data passes",
        description="K-fold cross-validated regularization path: the K training paths and the "
                    "all-rows path run in the same data passes; α is chosen by the mean held-out "
                    "score (--selection min) or glmnet's one-standard-error rule (1se), and the "
                    "coefficients are the all-rows fit's at that α.")
    _model_options(cv)
    _data_options(cv)
    _solver_options(cv, alpha=False)
    _cluster_options(cv)
    folds = cv.add_mutually_exclusive_group()
    folds.add_argument("--folds", type=_n_folds, default=None, metavar="K",
                       help="number of folds generated from each row's index and --seed "
                            "(default 5)")
    folds.add_argument("--fold-ids", metavar="NAME",
                       help="the name of an integer array in DATA.zarr, one label per row of X "
                            "(e.g. a group or time block); each distinct label is a fold")
    cv.add_argument("--seed", type=_seed, default=None,
                    help="seed of the generated folds (default 0; not with --fold-ids)")
    _grid_options(cv)
    cv.add_argument("--scoring", choices=SCORINGS, default="loss",
                    help="the held-out score choosing α: the loss (default), misclassification "
                         "(classifiers), squared_error or absolute_error (regressors)")
    cv.add_argument("--selection", choices=SELECTIONS, default="min",
                    help="min: the α of least mean held-out score (default); 1se: the largest α "
                         "within one standard error of it")
    cv.add_argument("--store", metavar="PATH",
                    help="directory keeping every finished fit and held-out score; rerun with the "
                         "same store to resume an interrupted cross-validation")
    cv.add_argument("--plot", metavar="PNG",
                    help="draw the mean held-out score ± 1 standard error against log α, "
                         "cv.glmnet-style (needs matplotlib: pip install 'smem_dask[plot]')")
    cv.add_argument("--out", metavar="JSON",
                    help="write the scores, the chosen α and its coefficients here")
    cv.add_argument("--quiet", action="store_true", help="no per-α lines")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand and its options."""
    parser = argparse.ArgumentParser(
        prog="smem-dask",
        description="Regularized linear models on larger-than-memory data by Scale Mixture EM on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_demo, _add_make_data, _add_fit, _add_predict, _add_path, _add_cv):
        add(sub)
    return parser


def parse_params(items: list[str], what: str) -> dict:
    """NAME=VALUE pairs: numbers become floats (ints stay ints), comma lists become tuples."""
    def number(text):
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return text

    params = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--{what}-param takes NAME=VALUE, got {item!r}")
        params[name.strip()] = (tuple(number(v) for v in value.split(",")) if "," in value
                                else number(value))
    return params
