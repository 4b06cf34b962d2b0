"""How the ``smem-dask`` command reaches dask: a running scheduler (``--scheduler``, ``--scheduler-file``,
TLS), a local cluster of ``--workers`` processes, or threads in this process."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time

from .resources import require_workers

__all__ = ["scheduler"]


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
def scheduler(args):
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
