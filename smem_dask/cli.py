"""The ``smem-dask`` command: ``demo``, ``make-data``, ``fit``, ``path``. Thin: parse, call, print.

Errors are one line on stderr (``smem-dask: error: …``) with exit code 2, never a traceback.
SIGINT or SIGTERM during ``fit`` or ``path`` stops the fit after its current iteration, writes what
exists to ``--out`` (marked not converged) and exits 130 or 143 (128 + the signal); a second signal
aborts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from .data import open_store, write_zarr
from .estimators import SMEMClassifier, SMEMRegressor
from .losses import LOSSES
from .penalties import PENALTIES
from .resources import require_workers
from .solver import ACCELERATIONS, CURVATURES, STOP_REQUESTED, ConvergenceWarning, check_max_time

_EXPECTED_ERRORS = (ValueError, OSError, FloatingPointError, TimeoutError, KeyError, MemoryError)


def _positive_int(text: str) -> int:
    value = int(float(text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _batch(text: str):
    return text if text == "auto" else _positive_int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smem-dask",
        description="Regularized linear models on larger-than-memory data by Scale Mixture EM on Dask.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def solver_options(p, alpha=True):
        if alpha:
            p.add_argument("--alpha", type=float, default=1e-4, help="penalty strength α")
        p.add_argument("--acceleration", choices=ACCELERATIONS, default="nesterov-restart")
        p.add_argument("--tol", type=float, default=1e-8)
        p.add_argument("--max-iter", type=_positive_int, default=1000)
        p.add_argument("--max-time", metavar="SECONDS",
                       help="stop after the iteration during which this much wall time has passed; "
                            "the result is written, not converged (exit code 0)")

    def model_options(p):
        p.add_argument("data", metavar="DATA.zarr", help="zarr store with arrays X (n × p) and y (n)")
        p.add_argument("--loss", choices=sorted(LOSSES), default="logistic")
        p.add_argument("--penalty", choices=sorted(PENALTIES), default="l2")
        p.add_argument("--loss-param", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter of the loss, e.g. tau=0.9 (repeatable)")
        p.add_argument("--penalty-param", action="append", default=[], metavar="NAME=VALUE",
                       help="a parameter of the penalty, e.g. l1_ratio=0.5 or groups=0,0,1,1")
        p.add_argument("--penalty-solver", choices=("em", "exact"), default=None,
                       help="how the penalty enters the M-step (default: the penalty's own)")
        p.add_argument("--curvature", choices=CURVATURES, default="adaptive",
                       help="the loss's E-step; the fixed bound ω = ¼ (logistic) / 1 "
                            "(squared, huber): one Gram, then gradient-only passes; or cached: "
                            "the E-step Gram reused for gradient-only passes, refreshed at "
                            "iterations 1, 2, 4, 8, … and when F would rise")

    def cluster_options(p):
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

    demo = sub.add_parser(
        "demo", help="fit a synthetic ill-conditioned logistic problem from zarr on a local cluster"
    )
    demo.add_argument("--n", type=_positive_int, default=1_000_000, help="rows (default 1e6)")
    demo.add_argument("--p", type=_positive_int, default=50, help="columns (default 50)")
    demo.add_argument("--cond", type=float, default=1e6, help="condition number of XᵀX")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    demo.add_argument("--workers", type=_positive_int, default=2, help="worker processes")
    solver_options(demo)

    make = sub.add_parser("make-data", help="write a synthetic problem to a zarr v3 store")
    make.add_argument("out", help="path of the new store (e.g. data.zarr)")
    make.add_argument("--n", type=_positive_int, default=100_000)
    make.add_argument("--p", type=_positive_int, default=20)
    make.add_argument("--cond", type=float, default=1e4, help="condition number of XᵀX")
    make.add_argument("--seed", type=int, default=0)
    make.add_argument("--task", choices=("classification", "regression"), default="classification")
    make.add_argument("--chunk-rows", type=_positive_int, default=100_000)
    make.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                      help="storage type of X: float32 halves the bytes read per pass (the fit "
                           "still accumulates in float64)")
    make.add_argument("--overwrite", action="store_true", help="replace an existing store")

    fit = sub.add_parser("fit", help="fit a model to the arrays X and y of a zarr store")
    model_options(fit)
    solver_options(fit)
    cluster_options(fit)
    fit.add_argument("--out", metavar="JSON", help="write coefficients and fit summary here")
    fit.add_argument("--quiet", action="store_true", help="no per-iteration lines")

    path = sub.add_parser("path", help="fit a regularization path (α_max down to α_max·eps)")
    model_options(path)
    solver_options(path, alpha=False)
    cluster_options(path)
    path.add_argument("--n-alphas", type=_positive_int, default=40, help="number of α (default 40)")
    path.add_argument("--eps", type=float, default=1e-3, help="smallest α / α_max (default 1e-3)")
    path.add_argument("--batch", type=_batch, default="auto", metavar="N|auto",
                      help="α solved in lockstep per data pass (default auto: as many as fit)")
    path.add_argument("--store", metavar="PATH",
                      help="zarr directory keeping shared statistics and finished α; rerun with "
                           "the same store to resume an interrupted path")
    path.add_argument("--plot", metavar="PNG",
                      help="draw the coefficient paths against log α (needs matplotlib: "
                           "pip install 'smem_dask[plot]')")
    path.add_argument("--out", metavar="JSON", help="write the path (alphas, coefs, …) here")
    path.add_argument("--quiet", action="store_true", help="no per-α lines")
    return parser


def _parse_params(items: list[str], what: str) -> dict:
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


def _estimator(loss: str, **params):
    cls = SMEMClassifier if LOSSES[loss].is_classifier else SMEMRegressor
    return cls(loss=loss, **params)


def _solver_params(args) -> dict:
    params = dict(acceleration=args.acceleration, tol=args.tol, max_iter=args.max_iter,
                  max_time=_max_time(args.max_time))
    if hasattr(args, "alpha"):
        params["alpha"] = args.alpha
    return params


def _model_estimator(args):
    """The estimator of ``fit`` and ``path`` from the model, solver and cluster options."""
    return _estimator(args.loss, penalty=args.penalty, persist=args.persist,
                      loss_params=_parse_params(args.loss_param, "loss"),
                      penalty_params=_parse_params(args.penalty_param, "penalty"),
                      penalty_solver=args.penalty_solver, curvature=args.curvature,
                      verbose=0 if args.quiet or args.command == "path" else 1,
                      **_solver_params(args))


def _security(args):
    """``distributed`` security settings from ``--tls-ca/--tls-cert/--tls-key`` (None without)."""
    given = {"--tls-ca": args.tls_ca, "--tls-cert": args.tls_cert, "--tls-key": args.tls_key}
    if not any(given.values()):
        return None
    missing = [name for name, value in given.items() if not value]
    if missing:
        raise ValueError(f"--tls-ca, --tls-cert and --tls-key go together; missing {', '.join(missing)}")
    for name, value in given.items():
        if not os.path.isfile(value):
            raise ValueError(f"{name} {value}: no such file")
    if args.workers:
        raise ValueError("--tls-* options are for --scheduler/--scheduler-file, not --workers")
    from distributed.security import Security

    return Security(tls_ca_file=args.tls_ca, tls_client_cert=args.tls_cert,
                    tls_client_key=args.tls_key, require_encryption=True)


@contextlib.contextmanager
def _scheduler(args):
    """A distributed Client for ``--scheduler``/``--scheduler-file``, a local cluster for
    ``--workers``, else nothing (threads in this process)."""
    security = _security(args)
    if args.memory_limit != "auto" and not args.workers:
        raise ValueError("--memory-limit sets the memory of --workers processes; it needs --workers")
    with contextlib.ExitStack() as stack:
        if args.workers:
            from dask.utils import parse_bytes
            from distributed import Client, LocalCluster

            if args.memory_limit != "auto":
                try:
                    parse_bytes(args.memory_limit)
                except (ValueError, TypeError):
                    raise ValueError(f"--memory-limit takes a size such as 2GiB or 500MB, got "
                                     f"{args.memory_limit!r}") from None
            try:
                with _sigint_ignored():
                    cluster = stack.enter_context(LocalCluster(
                        n_workers=args.workers, threads_per_worker=1, processes=True,
                        memory_limit=args.memory_limit, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                        silence_logs=logging.ERROR))  # the workers' warnings are not for the user
            except (TypeError, ValueError) as exc:
                raise ValueError(f"cannot start {args.workers} local workers with --memory-limit "
                                 f"{args.memory_limit}: {exc}") from exc
            stack.enter_context(Client(cluster))
        elif args.scheduler or args.scheduler_file:
            from distributed import Client

            address = args.scheduler or _address_in(args.scheduler_file, args.connect_timeout)
            if security is None and address.startswith("tls://"):
                raise ValueError(f"the scheduler at {address} uses TLS: pass --tls-ca, --tls-cert "
                                 "and --tls-key (see cluster/README.md)")
            if security is not None and not address.startswith("tls://"):
                raise ValueError(f"TLS certificates were given but the scheduler address {address} "
                                 "is not tls://…; use tls://HOST:PORT")
            # the client's own log lines (lost connection, reconnecting…, also while it closes)
            # would come on top of the one-line error of the watchdog in smem_dask.resources
            stack.enter_context(_quiet_logger("distributed"))
            try:
                _probe(address, args.connect_timeout, security)
                client = stack.enter_context(Client(address, timeout=args.connect_timeout,
                                                    security=security))
            except (OSError, TimeoutError, TypeError, ValueError) as exc:
                why = str(exc).strip() or f"no answer within {args.connect_timeout:g} s"
                raise OSError(f"cannot reach the dask scheduler at {address}: {why}") from exc
            require_workers(client)
        yield


@contextlib.contextmanager
def _quiet_logger(name: str):
    """No records from logger ``name`` and its children inside the block (each has its own
    level in dask's logging config, so they are disabled one by one)."""
    loggers = [logging.getLogger(name)] + [
        logger for key, logger in logging.root.manager.loggerDict.items()
        if key.startswith(name + ".") and isinstance(logger, logging.Logger)]
    was = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, was, strict=True):
            logger.disabled = disabled


def _address_in(scheduler_file: str, timeout: float) -> str:
    """The address in a scheduler file, waiting up to ``timeout`` seconds for a scheduler started
    just before to write it (it appears empty or partly written at first)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(scheduler_file) as fh:
                address = json.load(fh)["address"]
            if isinstance(address, str) and "://" in address:
                return address
            problem = f"its 'address' is {address!r}"
        except FileNotFoundError as exc:
            problem = exc.strerror
        except OSError as exc:
            raise ValueError(f"--scheduler-file {scheduler_file}: {exc.strerror or exc}") from None
        except (ValueError, KeyError, TypeError):
            problem = "not JSON with an 'address'"
        if time.monotonic() >= deadline:
            raise ValueError(f"--scheduler-file {scheduler_file} is not a dask scheduler file "
                             f"({problem}, after waiting {timeout:g} s)")
        time.sleep(0.2)


def _probe(address: str, timeout: float, security) -> None:
    """Ask the scheduler at ``address`` who it is, giving up after ``timeout`` seconds in all.

    ``distributed.Client(timeout=…)`` waits forever on a port that accepts connections but never
    answers (measured with distributed 2026.8); this probe cannot: it is one ``asyncio.wait_for``.
    """
    import asyncio

    from distributed.comm import connect
    from distributed.security import Security

    async def identity():
        comm = await connect(address, timeout=timeout,
                             **(security or Security()).get_connection_args("client"))
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    try:
        answer = asyncio.run(asyncio.wait_for(identity(), timeout))
    except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    if not (isinstance(answer, dict) and answer.get("type") == "Scheduler"):
        raise OSError(f"the process there is not a dask scheduler (it says {answer!r:.80})")


def _max_time(text: str | None) -> float | None:
    """``--max-time`` in seconds (None when not given)."""
    if text is None:
        return None
    try:
        value = float(text)
        check_max_time(value)
    except ValueError:
        raise ValueError(f"--max-time takes a positive number of seconds, got {text!r}") from None
    return value


#: the stop signals received during this ``fit`` or ``path`` (see :func:`_stop_on_signals`)
_RECEIVED: list[int] = []


@contextlib.contextmanager
def _stop_on_signals():
    """SIGINT and SIGTERM ask the running fit to stop after its current iteration (its data pass
    finishes), so that what exists is saved; a second one aborts at once (KeyboardInterrupt)."""

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


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while the ``--workers`` processes start: they inherit it, so the Ctrl-C a terminal
    sends to the whole process group reaches only this process (which stops the fit and saves it)
    instead of killing the workers under a running fit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


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
    return (f"{est.n_iter_} iterations, {est.n_passes_} data passes ({est.n_restarts_} restarts), "
            f"{seconds:.1f} s, final objective {est.objective_:.12f}, "
            f"{'converged' if est.converged_ else 'NOT converged'}"
            + ("" if np.isnan(est.duality_gap_) else f" (duality gap {est.duality_gap_:.2g})"))


def _demo(args) -> int:
    from distributed import Client, LocalCluster

    print(f"smem-dask demo: logistic regression + ridge (alpha={args.alpha:g}) on a synthetic "
          f"problem of {args.n:,} × {args.p}, cond(XᵀX) = {args.cond:.0e}")
    with tempfile.TemporaryDirectory(prefix="smem-demo-") as tmp:
        path = os.path.join(tmp, "demo.zarr")
        t0 = time.perf_counter()
        write_zarr(path, args.n, args.p, cond=args.cond, seed=args.seed,
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
    t0 = time.perf_counter()
    write_zarr(args.out, args.n, args.p, cond=args.cond, seed=args.seed, task=args.task,
               chunk_rows=args.chunk_rows, dtype=args.dtype, overwrite=args.overwrite)
    print(f"wrote {args.task} problem {args.n:,} × {args.p} ({args.dtype}, cond {args.cond:g}, "
          f"seed {args.seed}) "
          f"to {args.out} in {time.perf_counter() - t0:.1f} s")
    return 0


def _fit(args) -> int:
    X, y = open_store(args.data)
    est = _model_estimator(args)
    with _stop_on_signals(), _scheduler(args):  # signals count from the start (connecting included)
        t0 = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - t0
    print(f"done: {_summary(est, seconds)}")
    if args.out:
        result = {
            "loss": repr(est.loss_), "penalty": args.penalty, "alpha": args.alpha,
            "penalty_params": _parse_params(args.penalty_param, "penalty"),
            "coef": est.coef_.tolist(), "intercept": est.intercept_,
            "n_iter": est.n_iter_, "n_passes": est.n_passes_, "objective": est.objective_,
            "converged": bool(est.converged_), "objective_history": est.objective_history_,
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


def _path(args) -> int:
    if args.plot:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            raise ValueError("--plot needs matplotlib: pip install 'smem_dask[plot]'") from None
    X, y = open_store(args.data)
    est = _model_estimator(args)
    n_alphas = args.n_alphas

    def progress(i, alpha, fit):
        print(f"alpha {i + 1:3d}/{n_alphas}  {alpha:.4e}  objective {fit.objective:.12f}  "
              f"nonzero {np.count_nonzero(fit.coef):4d}/{fit.coef.size}  iterations "
              f"{fit.n_iter:4d}  passes {fit.n_passes:4d}"
              f"{'' if fit.converged else '  NOT converged'}", flush=True)

    with _stop_on_signals(), _scheduler(args):  # signals count from the start (connecting included)
        t0 = time.perf_counter()
        path = est.path(X, y, n_alphas=n_alphas, eps=args.eps, batch=args.batch, store=args.store,
                        callback=None if args.quiet else progress)
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
            "loss": repr(est.loss_), "penalty": args.penalty, "alphas": path.alphas.tolist(),
            "coefs": [c.tolist() if r else None for c, r in zip(path.coefs, reached, strict=True)],
            "intercepts": [float(b) if r else None for b, r in zip(path.intercepts, reached, strict=True)],
            "objectives": [float(f) if r else None for f, r in zip(path.objectives, reached, strict=True)],
            "n_iter": path.n_iter.tolist(), "n_passes": path.n_passes.tolist(),
            "converged": path.converged.tolist(), "finished": path.finished.tolist(),
            "stopped": path.stopped, "total_passes": path.total_passes})
        print(f"wrote {args.out}")
    if args.plot:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.plot(path.alphas, path.coefs, lw=1.2)
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


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    if STOP_REQUESTED.is_set() and issubclass(category, ConvergenceWarning) and "interrupted" in str(message):
        return  # said by the line on the interruption
    print(f"smem-dask: warning: {message}", file=sys.stderr)


def _check_outputs(args) -> None:
    """Result files (``--out`` of fit and path, ``--plot``) can be written, checked before any data
    pass: a missing or read-only directory is an error now, not after the whole fit."""
    if args.command not in ("fit", "path"):
        return
    for option in ("out", "plot"):
        target = getattr(args, option, None)
        if not target:
            continue
        folder = os.path.dirname(os.path.abspath(target))
        if not os.path.isdir(folder):
            raise ValueError(f"--{option} {target}: the directory {folder} does not exist")
        if os.path.isdir(target):
            raise ValueError(f"--{option} {target} is a directory; give a file name")
        if not os.access(folder, os.W_OK):
            raise ValueError(f"--{option} {target}: the directory {folder} is not writable")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _RECEIVED.clear()
    handler = {"demo": _demo, "make-data": _make_data, "fit": _fit, "path": _path}[args.command]
    previous = warnings.showwarning
    warnings.showwarning = _one_line_warning
    try:
        _check_outputs(args)
        if args.command in ("fit", "path"):
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
