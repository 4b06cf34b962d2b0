"""The ``smem-dask`` command: ``demo``, ``make-data``, ``fit``, ``path``, ``cv``. Thin: parse, call,
print.

Errors are one line on stderr (``smem-dask: error: …``) with exit code 2, never a traceback.
SIGINT or SIGTERM during ``fit``, ``path`` or ``cv`` stops the fit after its current iteration,
writes what exists to ``--out`` (marked not converged) and exits 130 or 143 (128 + the signal); a
second signal aborts at once.

Light to import: the parser and the checks of the output paths need neither dask, zarr nor
scikit-learn, so those (the estimators, the data, the cluster) are imported by the commands, after
the checks — a refusal costs a fraction of a second.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from .cli_parser import build_parser, parse_params

_EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, TimeoutError, KeyError, MemoryError)


def _estimator(loss: str, cross_validated: bool = False, **params):
    from .losses import LOSSES

    if cross_validated:
        from .cv_estimators import SMEMClassifierCV as Classifier
        from .cv_estimators import SMEMRegressorCV as Regressor
    else:
        from .estimators import SMEMClassifier as Classifier
        from .estimators import SMEMRegressor as Regressor
    return (Classifier if LOSSES[loss].is_classifier else Regressor)(loss=loss, **params)


def _solver_params(args) -> dict:
    params = dict(acceleration=args.acceleration, tol=args.tol, max_iter=args.max_iter,
                  max_time=_max_time(args.max_time))
    if hasattr(args, "alpha"):
        params["alpha"] = args.alpha
    return params


def _model_estimator(args, cross_validated: bool = False, **params):
    """The estimator of ``fit``, ``path`` and ``cv`` (``cross_validated``: SMEM…CV, with its
    ``params``) from the model, solver and cluster options."""
    if getattr(args, "drop_first", False):
        params["categorical_drop"] = "first"
    return _estimator(args.loss, cross_validated, penalty=args.penalty, persist=args.persist,
                      loss_params=parse_params(args.loss_param, "loss"),
                      penalty_params=parse_params(args.penalty_param, "penalty"),
                      penalty_solver=args.penalty_solver, curvature=args.curvature,
                      verbose=1 if args.command == "fit" and not args.quiet else 0,
                      **_solver_params(args), **params)


def _max_time(text: str | None) -> float | None:
    """``--max-time`` in seconds (None when not given)."""
    if text is None:
        return None
    from .solver import check_max_time

    try:
        value = float(text)
        check_max_time(value)
    except ValueError:
        raise ValueError(f"--max-time takes a positive number of seconds, got {text!r}") from None
    return value


#: the stop signals received during this ``fit``, ``path`` or ``cv`` (see :func:`_stop_on_signals`)
_RECEIVED: list[int] = []


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM ask the running fit to stop after its current iteration (its data pass
    finishes), so that what exists is saved; a second one aborts at once (KeyboardInterrupt)."""

    from .solver import STOP_REQUESTED

    def stop(signum, frame):
        _RECEIVED.append(signum)
        if len(_RECEIVED) > 1:
            raise KeyboardInterrupt
        STOP_REQUESTED.set()

    _RECEIVED.clear()
    if threading.current_thread() is not threading.main_thread():  # main() called from a thread
        yield
        return
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        STOP_REQUESTED.clear()


def _stopped_by_signal(what: str, out: str | None, note: str) -> int:
    """The one line after a fit stopped by a signal; the exit code 128 + that signal."""
    signum = _RECEIVED[0] if _RECEIVED else signal.SIGINT
    how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
    said = f"wrote {out} ({note})" if out else f"{note}; nothing written (no --out)"
    print(f"smem-dask: {how} after {what}; {said}", file=sys.stderr)
    return 128 + signum


def _write_json(path: str, result: dict) -> None:
    """Write ``result`` to ``path`` whole or not at all (a temporary file renamed over it)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".smem-dask-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(result, fh, indent=1)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # as open() would create it, not mkstemp's 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _summary(est, seconds: float) -> str:
    return (f"{est.n_iter_} iterations ({est.curvature_} curvature), {est.n_passes_} data passes "
            f"({est.n_restarts_} restarts), "
            f"{seconds:.1f} s, final objective {est.objective_:.12f}, "
            f"{'converged' if est.converged_ else 'NOT converged'}"
            + ("" if np.isnan(est.duality_gap_) else f" (duality gap {est.duality_gap_:.2g})"))


def _demo(args) -> int:
    from distributed import Client, LocalCluster

    from .data import open_store, write_zarr
    from .estimators import SMEMClassifier

    model = ("logistic regression" if args.classes <= 2
             else f"multinomial logistic regression ({args.classes} classes)")
    print(f"smem-dask demo: {model} + ridge (alpha={args.alpha:g}) on a synthetic "
          f"problem of {args.n:,} × {args.p}, cond(XᵀX) = {args.cond:.0e}")
    with tempfile.TemporaryDirectory(prefix="smem-demo-") as tmp:
        path = os.path.join(tmp, "demo.zarr")
        t0 = time.perf_counter()
        write_zarr(path, args.n, args.p, cond=args.cond, seed=args.seed, classes=args.classes,
                   chunk_rows=args.chunk_rows)
        size = args.n * args.p * 8 / 1e6
        print(f"wrote X ({size:,.0f} MB, {-(-args.n // args.chunk_rows)} chunks) and y to {path} "
              f"in {time.perf_counter() - t0:.1f} s")
        with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            print(f"local cluster: {args.workers} worker processes, scheduler {client.scheduler.address}")
            X, y = open_store(path)
            print("fitting from the zarr store (streamed every pass):")
            est = SMEMClassifier(verbose=1, **_solver_params(args))
            t0 = time.perf_counter()
            est.fit(X, y)
            seconds = time.perf_counter() - t0
            accuracy = est.score(X, y)
        print(f"done: {_summary(est, seconds)}")
        print(f"      mean pass {seconds / est.n_passes_:.2f} s, "
              f"{size * est.n_passes_ / seconds:,.0f} MB/s; training accuracy {accuracy:.4f}")
    return 0


def _make_data(args) -> int:
    from .data import write_zarr

    t0 = time.perf_counter()
    write_zarr(args.out, args.n, args.p, cond=args.cond, seed=args.seed, task=args.task,
               classes=args.classes, chunk_rows=args.chunk_rows, dtype=args.dtype,
               overwrite=args.overwrite)
    kind = f"{args.classes}-class" if args.classes > 2 else args.task
    print(f"wrote {kind} problem {args.n:,} × {args.p} ({args.dtype}, cond {args.cond:g}, "
          f"seed {args.seed}) "
          f"to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _is_parquet(path: str) -> bool:
    """A parquet file, or a directory of parquet files (not a zarr store)."""
    path = os.fspath(path)
    if path.endswith((".parquet", ".pq")):
        return True
    return (os.path.isdir(path) and not os.path.exists(os.path.join(path, "zarr.json"))
            and any(f.endswith(".parquet") for f in os.listdir(path)))


def _names(text: str | None) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()] if text else []


def _load_data(args, target: bool = True):
    """X, y, sample weights, offset and cluster labels as the options name them (None when not
    named; y None without ``target``): arrays of a zarr store, or columns of a parquet dataset read
    lazily with dask (categorical and text columns are one-hot encoded by the estimator)."""
    named = {"y": (getattr(args, "y", None) or "y") if target else None,
             "weights": getattr(args, "weights", None), "offset": args.offset,
             "clusters": getattr(args, "clusters", None)}
    if not _is_parquet(args.data):
        from .data import open_arrays

        if args.categorical:
            raise ValueError("--categorical applies to parquet data; a zarr store's X holds numbers")
        wanted = {"X": args.x or "X", **{k: v for k, v in named.items() if v}}
        arrays = dict(zip(wanted, open_arrays(args.data, *wanted.values()), strict=True))
        return tuple(arrays.get(k) for k in ("X", "y", "weights", "offset", "clusters"))
    import dask.dataframe as dd

    path = os.path.abspath(args.data)
    try:
        frame = dd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the parquet data {args.data}: {exc}") from exc
    others = [v for v in named.values() if v]
    features = _names(args.x) or [c for c in frame.columns if c not in others]
    missing = [c for c in features + others + _names(args.categorical) if c not in frame.columns]
    if missing:
        raise ValueError(f"{args.data} has no columns {missing}; it has {list(frame.columns)[:20]}")
    for c in _names(args.categorical):
        if c not in features:
            raise ValueError(f"--categorical {c}: not one of the feature columns")
        frame[c] = frame[c].astype("category")
    return (frame[features],) + tuple(None if not named[k] else frame[named[k]]
                                      for k in ("y", "weights", "offset", "clusters"))


def _fit(args) -> int:
    from .cli_cluster import scheduler

    if args.clusters and args.cov_type != "cluster":
        raise ValueError("--clusters is used by --cov-type cluster")
    if (args.cov_type != "nonrobust" or args.clusters) and not args.summary:
        raise ValueError("--cov-type and --clusters choose the covariance of --summary; add --summary")
    if args.summary and args.alpha != 0:
        raise ValueError("--summary reports standard errors of unpenalized fits: use --alpha 0 (a "
                         "penalized estimate is biased toward zero, which the usual standard errors do "
                         "not describe)")
    if args.summary:  # before any read: a loss without standard errors is refused now, not after the fit
        from .inference import check_loss
        from .losses import get_loss

        check_loss(get_loss(args.loss, **parse_params(args.loss_param, "loss")))
    X, y, s, offset, clusters = _load_data(args)
    est = _model_estimator(args)
    with _stop_on_signals(), scheduler(args):  # signals count from the start (connecting included)
        t0 = time.perf_counter()
        est.fit(X, y, sample_weight=s, offset=offset)
        seconds = time.perf_counter() - t0
        print(f"done: {_summary(est, seconds)}")
        table = None
        if args.summary and est.stopped_ != "interrupted":
            table = est.coef_table(X, y, s, cov_type=args.cov_type, clusters=clusters, offset=offset)
    if table is not None:
        import pandas as pd

        with pd.option_context("display.max_rows", None, "display.width", 120):
            print(f"coefficients ({args.cov_type} standard errors, 95% intervals):")
            print(table.to_string(float_format=lambda v: f"{v:.6g}"))
    if args.out:
        result = {
            "model": "smem_dask", "kind": est._kind, "loss_name": est.loss_.name,
            "loss_params": parse_params(args.loss_param, "loss"),
            "fit_intercept": bool(est.fit_intercept), "n_features_in": int(est.n_features_in_),
            "feature_names": (None if not hasattr(est, "feature_names_in_")
                              else [str(c) for c in est.feature_names_in_]),
            "coef_names": est.coef_names_,
            "encoding": (None if getattr(est, "encoding_", None) is None else
                         {"columns": [str(c) for c in est.encoding_.columns],
                          "drop_first": bool(est.encoding_.drop_first),
                          "levels": [None if lv is None else [_plain(v) for v in lv]
                                     for lv in est.encoding_.levels]}),
            "offset": args.offset,
            "loss": repr(est.loss_), "penalty": args.penalty, "alpha": args.alpha,
            "penalty_params": parse_params(args.penalty_param, "penalty"),
            "coef": est.coef_.tolist(), "intercept": np.asarray(est.intercept_).tolist(),
            "n_iter": est.n_iter_, "n_passes": est.n_passes_, "objective": est.objective_,
            "curvature": est.curvature_, "converged": bool(est.converged_),
            "objective_history": est.objective_history_,
            "duality_gap": float(est.duality_gap_) if np.isfinite(est.duality_gap_) else None,
            "stopped": est.stopped_,
        }
        if hasattr(est, "classes_"):
            result["classes"] = np.asarray(est.classes_).tolist()
        _write_json(args.out, result)
        print(f"wrote {args.out}")
    if est.stopped_ == "interrupted":
        return _stopped_by_signal(f"iteration {est.n_iter_}", args.out, "not converged")
    return 0


def _plain(v):
    """A level as JSON keeps it (numpy scalars as Python numbers)."""
    return v.item() if isinstance(v, np.generic) else v


def load_model(path: str):
    """The estimator a ``fit --out`` file describes, ready to predict (its fitted attributes set)."""
    from .frames import Encoding
    from .losses import get_loss

    try:
        with open(path) as fh:
            m = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the model {path}: {exc}") from exc
    if not isinstance(m, dict) or m.get("model") != "smem_dask" or "coef" not in m:
        raise ValueError(f"{path} is not a model written by smem-dask fit --out")
    loss = get_loss(m["loss_name"], **(m.get("loss_params") or {}))
    if m["kind"] == "classifier":
        from .estimators import SMEMClassifier as Estimator
    else:
        from .estimators import SMEMRegressor as Estimator
    est = Estimator(loss="logistic" if loss.name == "multinomial" else loss.name,
                    loss_params=m.get("loss_params") or None, fit_intercept=m["fit_intercept"])
    est.loss_ = loss
    est.coef_ = np.asarray(m["coef"], dtype=np.float64)
    est.intercept_ = (np.asarray(m["intercept"], dtype=np.float64) if np.ndim(m["intercept"])
                      else float(m["intercept"]))
    est.n_features_in_ = int(m["n_features_in"])
    if m.get("feature_names"):
        est.feature_names_in_ = np.asarray(m["feature_names"], dtype=object)
    if m.get("classes") is not None:
        est.classes_ = np.asarray(m["classes"])
    if m.get("encoding"):
        enc = m["encoding"]
        est.encoding_ = Encoding(tuple(enc["columns"]),
                                 tuple(None if lv is None else tuple(lv) for lv in enc["levels"]),
                                 bool(enc.get("drop_first", False)))
    return est, m


def _predict(args) -> int:
    from .cli_cluster import scheduler

    est, model = load_model(args.model)
    if model.get("offset") and not args.offset:
        raise ValueError(f"the model was fitted with an offset ({model['offset']}); name the new data's "
                         "with --offset")
    if args.proba and model["kind"] != "classifier":
        raise ValueError("--proba applies to classifiers")
    out = os.fspath(args.out)
    if not out.endswith((".npy", ".csv", ".zarr", ".parquet")):
        raise ValueError(f"--out {out}: write predictions to a .npy, .csv, .zarr or .parquet path")
    if out.endswith(".parquet") and os.path.exists(out):
        raise ValueError(f"--out {out} exists; name a new parquet path")
    X, _, _, offset, _ = _load_data(args, target=False)
    with scheduler(args):
        pred = (est.predict_proba(X, offset=offset) if args.proba else est.predict(X, offset=offset))
        if out.endswith((".zarr", ".parquet")):
            import dask.array as da

            lazy = pred if isinstance(pred, da.Array) else da.from_array(np.asarray(pred))
            if out.endswith(".zarr"):
                lazy.to_zarr(out, overwrite=False)
            else:  # written by the workers, block by block: one column, or one per class
                import dask.dataframe as dd

                columns = ([f"proba[{c}]" for c in est.classes_] if args.proba else ["prediction"])
                dd.from_dask_array(lazy, columns=columns).to_parquet(out, write_index=False)
        else:
            values = np.asarray(pred.compute() if hasattr(pred, "compute") else pred)
            if out.endswith(".npy"):
                np.save(out, values)
            else:
                np.savetxt(out, values.reshape(len(values), -1), delimiter=",",
                           fmt="%s" if values.dtype.kind in "OUS" else "%.17g")
    print(f"wrote {len(pred)} predictions to {out}")
    return 0


def _coef_names(est, X) -> list[str]:
    """The names of a path's or a cross-validation's coefficients (per class for multinomial fits):
    the encoded columns of a frame, its column names, else x0, x1, …"""
    encoding = getattr(est, "encoding_", None)
    if encoding is not None:
        return encoding.names_out
    names = getattr(est, "feature_names_in_", None)
    return [str(c) for c in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]


def _pyplot():
    """matplotlib's pyplot drawing to files (Agg), or the one-line error saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'smem_dask[plot]'") from None
    return plt


def _path(args) -> int:
    plt = _pyplot() if args.plot else None
    from .cli_cluster import scheduler

    X, y, s, offset, _ = _load_data(args)
    est = _model_estimator(args)
    n_alphas = args.n_alphas

    def progress(i, alpha, fit):
        print(f"alpha {i + 1:3d}/{n_alphas}  {alpha:.4e}  objective {fit.objective:.12f}  "
              f"nonzero {np.count_nonzero(fit.coef):4d}/{fit.coef.size}  iterations "
              f"{fit.n_iter:4d}  passes {fit.n_passes:4d}"
              f"{'' if fit.converged else '  NOT converged'}", flush=True)

    with _stop_on_signals(), scheduler(args):  # signals count from the start (connecting included)
        t0 = time.perf_counter()
        path = est.path(X, y, s, offset=offset, n_alphas=n_alphas, eps=args.eps, batch=args.batch,
                        store=args.store, callback=None if args.quiet else progress)
        seconds = time.perf_counter() - t0
    n_resumed = int(path.resumed.sum())
    print(f"done: {len(path.alphas)} alphas from {path.alphas[0]:.4e} to {path.alphas[-1]:.4e}, "
          f"{path.total_passes} data passes, {seconds:.1f} s"
          f"{f', {n_resumed} read from the store' if n_resumed else ''}; "
          f"{int(path.converged.sum())}/{len(path.alphas)} converged")
    if args.out:
        # α not reached (a stopped path) are null, not NaN (which is not JSON)
        reached = [f is not None for f in path.fits]
        _write_json(args.out, {
            "loss": repr(est.loss_), "penalty": args.penalty, "coef_names": _coef_names(est, X),
            "alphas": path.alphas.tolist(),
            "coefs": [c.tolist() if r else None for c, r in zip(path.coefs, reached, strict=True)],
            "intercepts": [np.asarray(b).tolist() if r else None
                           for b, r in zip(path.intercepts, reached, strict=True)],
            "objectives": [float(f) if r else None for f, r in zip(path.objectives, reached, strict=True)],
            "n_iter": path.n_iter.tolist(), "n_passes": path.n_passes.tolist(),
            "converged": path.converged.tolist(), "finished": path.finished.tolist(),
            "stopped": path.stopped, "total_passes": path.total_passes})
        print(f"wrote {args.out}")
    if args.plot:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(path.alphas, path.coefs.reshape(len(path.alphas), -1), lw=1.2)  # (K classes: K·p lines)
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.axhline(0.0, color="0.6", lw=0.6)
        ax.set_xlabel("α (log scale, decreasing)")
        ax.set_ylabel("coefficient")
        ax.set_title(f"{est.loss_.name} + {args.penalty}: coefficient paths "
                     f"({len(path.alphas)} α, {path.total_passes} data passes)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        print(f"wrote {args.plot}")
    if path.stopped == "interrupted":
        n_done, n = int(path.finished.sum()), len(path.alphas)
        return _stopped_by_signal(f"{n_done} of {n} alphas", args.out,
                                  f"{n - n_done} not finished" + (
                                      "; rerun with the same --store to resume" if args.store else ""))
    return 0


#: what ``cv`` calls each held-out score (its lines, its summary and its plot's y label)
_SCORE_NAMES = {"misclassification": "misclassification rate", "squared_error": "mean squared error",
                "absolute_error": "mean absolute error"}


def _score_name(scoring: str, loss_name: str) -> str:
    return f"{loss_name} loss" if scoring == "loss" else _SCORE_NAMES[scoring]


def _fold_ids(data: str, name: str, n_rows: int):
    """``--fold-ids NAME``: the integer array NAME of the data store, one fold label per row of X
    (read lazily; a file or another store is not accepted: the labels live beside X and y)."""
    import zarr

    hint = ("--fold-ids takes the name of an integer array inside DATA.zarr, one label per row of X "
            "(write it there, e.g. zarr.open_group(DATA, mode='a').create_array(NAME, data=labels))")
    try:
        node = zarr.open_group(data if "://" in data else os.path.abspath(data), mode="r")[name]
    except KeyError:
        node = None
    if not isinstance(node, zarr.Array):
        if node is None and (os.path.exists(name) or name.endswith((".npy", ".zarr"))):
            raise ValueError(f"--fold-ids {name}: a file or store of its own is not read; {hint}")
        what = "a group, not an array" if node is not None else "no such array"
        raise ValueError(f"--fold-ids {name}: the data store {data} has {what}; {hint}")
    if node.ndim != 1 or node.shape[0] != n_rows:
        raise ValueError(f"--fold-ids {name} has shape {tuple(node.shape)}; expected ({n_rows},), one "
                         "fold label per row of X")
    if not (np.issubdtype(node.dtype, np.integer) or np.issubdtype(node.dtype, np.bool_)):
        raise ValueError(f"--fold-ids {name} holds {node.dtype} values; fold labels must be integers")
    return node


def _cv(args) -> int:
    if args.fold_ids is not None and args.seed is not None:
        raise ValueError("--seed draws generated folds; it does not apply with --fold-ids")
    plt = _pyplot() if args.plot else None
    from .cli_cluster import scheduler
    from .cv import NothingToSelectError, scorings_for
    from .losses import get_loss

    loss = get_loss(args.loss, **parse_params(args.loss_param, "loss"))
    if args.scoring not in scorings_for(loss):
        raise ValueError(f"--scoring {args.scoring} does not apply to the {loss.name} loss; choose "
                         f"one of {', '.join(scorings_for(loss))}")
    if args.fold_ids is not None and _is_parquet(args.data):
        raise ValueError("--fold-ids names an integer array of a zarr store; with parquet data use "
                         "generated folds (--folds K)")
    X, y, s, offset, _ = _load_data(args)
    folds = None if args.fold_ids is None else _fold_ids(args.data, args.fold_ids, X.shape[0])
    est = _model_estimator(args, cross_validated=True, cv=args.folds or 5, random_state=args.seed or 0,
                           n_alphas=args.n_alphas, eps=args.eps, scoring=args.scoring,
                           selection=args.selection, batch=args.batch)
    def score_name() -> str:  # (more than two classes in y: the multinomial loss's)
        k = len(getattr(est, "classes_", ()))
        return _score_name(args.scoring, "multinomial" if k > 2 else loss.name)
    n_alphas = args.n_alphas

    def n_coefs() -> int:
        """Coefficients of a fit: p (the encoded columns of a frame), or K·p with K > 2 classes (the
        multinomial loss)."""
        k = len(getattr(est, "classes_", ()))
        encoding = getattr(est, "encoding_", None)
        p = X.shape[1] if encoding is None else encoding.n_out
        return p * (k if k > 2 else 1)

    def progress(i, alpha, row):
        print(f"alpha {i + 1:3d}/{n_alphas}  {alpha:.4e}  held-out {score_name()} "
              f"{row[f'{args.scoring}_mean']:.6f} ± {row[f'{args.scoring}_se']:.2e}  "
              f"nonzero {row['nonzero']:4d}/{n_coefs()}", flush=True)

    with _stop_on_signals(), scheduler(args):  # signals count from the start (connecting included)
        t0 = time.perf_counter()
        try:
            est.fit(X, y, s, folds=folds, store=args.store, offset=offset,
                    callback=None if args.quiet else progress)
        except NothingToSelectError:
            # stopped before any α was finished by every path: there is nothing to select
            before = "before any alpha was finished by every fold; nothing to select"
            if _RECEIVED:
                signum = _RECEIVED[0]
                how = ("interrupted" if signum == signal.SIGINT
                       else f"stopped by {signal.Signals(signum).name}")
                print(f"smem-dask: {how} {before}, nothing written"
                      + ("; rerun with the same --store to resume" if args.store else ""),
                      file=sys.stderr)
                return 128 + signum
            raise ValueError(f"--max-time {args.max_time}: the cross-validation stopped {before} "
                             "(allow more time" + (", or rerun with the same --store to resume)"
                                                   if args.store else ")")) from None
        seconds = time.perf_counter() - t0
    result = est.cv_result_
    path, K, n = result.path, result.n_folds, len(result.alphas)
    # an α is done when every path finished it (and its folds are scored)
    done = np.isfinite(result.cv_mean) & path.finished
    n_resumed, n_fits = int(result.resumed.sum()), result.resumed.size
    among = f"; chosen among the {int(done.sum())} alphas every fold finished" if result.stopped else ""
    print(f"done: {K}-fold cross-validation of {n} alphas from {result.alphas[0]:.4e} to "
          f"{result.alphas[-1]:.4e}, {result.total_passes} data passes, {seconds:.1f} s"
          f"{f', {n_resumed} of {n_fits} fits read from the store' if n_resumed else ''}{among}")
    for rule, i in (("min", result.index_min), ("1se", result.index_1se)):
        print(f"      alpha_{rule} {result.alphas[i]:.4e}  held-out {score_name()} {result.cv_mean[i]:.6f} ± "
              f"{result.cv_se[i]:.2e}  nonzero {int(result.n_nonzero[i])}/{n_coefs()}"
              f"{f'  (chosen: --selection {rule})' if rule == args.selection else ''}")
    if args.out:
        def finite(values):
            return [float(v) if np.isfinite(v) else None for v in values]

        out = {
            "loss": repr(est.loss_), "penalty": args.penalty, "coef_names": _coef_names(est, X),
            "penalty_params": parse_params(args.penalty_param, "penalty"),
            "scoring": args.scoring, "selection": args.selection, "n_folds": K,
            "folds": ({"fold_ids": args.fold_ids,
                       "labels": np.asarray(est.fold_labels_).tolist()} if folds is not None
                      else {"generated": K, "seed": args.seed or 0}),
            "fold_rows": [int(r) for r in result.fold_rows],
            "alphas": result.alphas.tolist(), "cv_mean": finite(result.cv_mean),
            "cv_se": finite(result.cv_se), "cv_scores": [finite(row) for row in result.cv_scores],
            "n_nonzero": [int(c) if f else None for c, f in zip(result.n_nonzero, path.finished,
                                                                  strict=True)],
            "finished": done.tolist(),
            "alpha_min": result.alpha_min, "alpha_1se": result.alpha_1se, "alpha": est.alpha_,
            "coef": est.coef_.tolist(), "intercept": np.asarray(est.intercept_).tolist(),
            "total_passes": result.total_passes, "stopped": result.stopped}
        if hasattr(est, "classes_"):
            out["classes"] = np.asarray(est.classes_).tolist()
        _write_json(args.out, out)
        print(f"wrote {args.out}")
    if args.plot:
        _cv_plot(plt, result, f"{est.loss_.name} + {args.penalty}", score_name(), args.selection, args.plot)
        print(f"wrote {args.plot}")
    if result.stopped == "interrupted":
        n_done = int(done.sum())
        return _stopped_by_signal(f"{n_done} of {n} alphas", args.out,
                                  f"{n - n_done} not finished by every fold" + (
                                      "; rerun with the same --store to resume" if args.store else ""))
    return 0


def _cv_plot(plt, result, model: str, score: str, selection: str, target: str) -> None:
    """cv.glmnet's figure: the mean held-out score (red dots) ± one standard error (grey bars)
    against log α, dashed lines at α_min and α_1se, the all-rows fit's nonzero coefficients along
    the top. α decreases to the right, as the path is fitted (glmnet's log λ axis, mirrored)."""
    from matplotlib.transforms import blended_transform_factory, offset_copy

    alphas, mean, se = result.alphas, result.cv_mean, result.cv_se
    ok = np.isfinite(mean) & np.isfinite(se) & result.path.finished
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.errorbar(alphas[ok], mean[ok], yerr=se[ok], fmt="o", color="red", ms=5, ecolor="0.6",
                elinewidth=1.0, capsize=2.5, capthick=1.0,
                label=f"mean over {result.n_folds} folds ± 1 standard error")
    ax.set_xscale("log")
    margin = (alphas.max() / alphas.min()) ** 0.03 if alphas.size > 1 else 2.0
    ax.set_xlim(alphas.max() * margin, alphas.min() / margin)  # decreasing α to the right
    # the dashed lines, labelled along their length (just left of them) at the top of the plot
    # (right of them when they are near the left edge)
    along = blended_transform_factory(ax.transData, ax.transAxes)
    left, right = np.log(ax.get_xlim())
    for name, i in (("min", result.index_min), ("1se", result.index_1se)):
        chosen = " (chosen)" if name == selection else ""
        ax.axvline(alphas[i], color="0.2", ls="--", lw=1.0, zorder=0)
        near_left = (np.log(alphas[i]) - left) / (right - left) < 0.06
        ax.text(alphas[i], 0.97, rf"$\alpha_{{\mathrm{{{name}}}}}$ = {alphas[i]:.3g}{chosen}",
                transform=offset_copy(along, fig, x=3.0 if near_left else -2.5, units="points"),
                rotation=90, ha="left" if near_left else "right", va="top", fontsize=9, color="0.2")
    ax.set_xlabel("α (log scale, decreasing to the right)")
    ax.set_ylabel(f"held-out {score}")
    ax.legend(loc="best", fontsize=8.5, frameon=False)
    # the number of nonzero coefficients of the all-rows fit at (about a dozen) α, along the top
    top = ax.twiny()
    top.set_xscale("log")
    top.set_xlim(ax.get_xlim())
    shown = np.flatnonzero(result.path.finished)
    shown = shown[np.unique(np.linspace(0, shown.size - 1, min(shown.size, 12)).round().astype(int))]
    top.set_xticks(alphas[shown], [str(int(v)) for v in result.n_nonzero[shown]], fontsize=8.5)
    top.minorticks_off()
    top.set_xlabel("nonzero coefficients", fontsize=9)
    n_resumed = int(result.resumed.sum())
    resumed = f" ({n_resumed} fits from the store)" if n_resumed else ""
    stopped = "" if result.stopped is None else f", stopped early ({result.stopped})"
    ax.set_title(f"{model}: {result.n_folds}-fold cross-validation, {len(alphas)} α, "
                 f"{result.total_passes} data passes{resumed}{stopped}", fontsize=10.5)
    fig.tight_layout()
    fig.savefig(target, dpi=120)
    plt.close(fig)


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    # the solver as far as it is imported (not at all before a command imports it: then no fit ran)
    solver = sys.modules.get(f"{__package__}.solver")
    stop, warning = (getattr(solver, name, None) for name in ("STOP_REQUESTED", "ConvergenceWarning"))
    if stop is not None and stop.is_set() and issubclass(category, warning) and "interrupted" in str(message):
        return  # said by the line on the interruption
    print(f"smem-dask: warning: {message}", file=sys.stderr)


def _check_outputs(args) -> None:
    """Result files (``--out`` of fit, path and cv, ``--plot``) can be written, checked before any data
    pass: a missing or read-only directory is an error now, not after the whole fit."""
    if args.command not in ("fit", "path", "cv", "predict"):
        return
    for option in ("out", "plot"):
        target = getattr(args, option, None)
        if not target:
            continue
        folder = os.path.dirname(os.path.abspath(target))
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise ValueError(f"--{option} {target}: {folder} is a file, not a directory")
        if not os.path.isdir(folder):
            raise ValueError(f"--{option} {target}: the directory {folder} does not exist")
        if os.path.isdir(target):
            raise ValueError(f"--{option} {target} is a directory; give a file name")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"--{option} {target}: the directory {folder} is not writable")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _RECEIVED.clear()
    handler = {"demo": _demo, "make-data": _make_data, "fit": _fit, "predict": _predict, "path": _path,
               "cv": _cv}[args.command]
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        _check_outputs(args)
        if args.command in ("fit", "path", "cv"):
            _max_time(args.max_time)  # checked before any data pass
        return handler(args)
    except _EXPECTED_ERRORS as exc:
        text = str(exc).strip().splitlines()
        print(f"smem-dask: error: {text[0] if text else type(exc).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smem-dask: interrupted", file=sys.stderr)
        return 128 + (_RECEIVED[-1] if _RECEIVED else signal.SIGINT)
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
