"""Interrupted runs keep their work: SIGINT and SIGTERM stop ``fit`` and ``path`` after the current
iteration and save what exists; ``max_time`` / ``--max-time`` stop on a deadline the same way.

Oracles: a fit stopped after k iterations equals the same fit run with ``max_iter=k``; the finished α of
a stopped path equal the same α of a path that was not stopped."""

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from test_misuse import refused, run

from smem_dask import ConvergenceWarning, SMEMClassifier, fit_path
from smem_dask.data import open_store, write_zarr
from smem_dask.engine import make_engine
from smem_dask.losses import get_loss
from smem_dask.penalties import get_penalty
from smem_dask.solver import STOP_REQUESTED, SolverConfig, Stop, fit_em
from smem_dask.store import read_path_store

# lasso by EM weights creeps towards its zeros: hundreds of iterations, each a pass over 10 chunks
SLOW_FIT = ("--penalty", "l1", "--penalty-solver", "em", "--alpha", "3e-2", "--acceleration", "none",
            "--tol", "1e-14", "--max-iter", "1000")
SLOW_PARAMS = dict(penalty="l1", penalty_solver="em", alpha=3e-2, acceleration="none", tol=1e-14)
# a long path, one α at a time (each in a few passes): it is far from its end when the signal comes
N_ALPHAS = 200
PATH = ("--n-alphas", N_ALPHAS, "--eps", "1e-3", "--batch", "1", "--tol", "1e-12")
PATH_PARAMS = dict(n_alphas=N_ALPHAS, eps=1e-3, batch=1, tol=1e-12)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("interrupt") / "d.zarr"
    write_zarr(path, 20000, 8, seed=7, chunk_rows=2000)
    return path


class Lines:
    """A subprocess's stdout read line by line in a thread, so that waits can time out."""

    def __init__(self, proc):
        self.proc, self.seen, self._queue = proc, [], queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern, timeout=180):
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s; seen {self.seen[-5:]}")
            if line is None:
                pytest.fail(f"the process ended before a line matching {pattern!r}; seen {self.seen[-5:]}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def rest(self, timeout=180):
        self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.seen.append(line)
        return "".join(self.seen)


def interrupted(args, after, sig, timeout=180, group=False):
    """Run the CLI, send ``sig`` once a stdout line matches ``after`` (``group``: to its whole process
    group, as a terminal's Ctrl-C does); (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "smem_dask", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=group)
    try:
        lines = Lines(proc)
        lines.wait_for(after, timeout)
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
        stdout = lines.rest(timeout)
        return proc.returncode, stdout, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def fit_of(store, **params):
    """The in-process fit of the data store (the same engine as the command line's)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SMEMClassifier(**params).fit(*open_store(store))


@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"),
                                             (signal.SIGTERM, 143, "stopped by SIGTERM")])
def test_a_signal_stops_fit_after_the_iteration_and_writes_it(store, tmp_path, sig, code, word):
    out = tmp_path / "o.json"
    returncode, stdout, stderr = interrupted(["fit", store, *SLOW_FIT, "--out", out], r"^iter +2 ", sig)
    assert returncode == code, stderr
    result = json.loads(out.read_text())
    k = result["n_iter"]
    assert 2 <= k < 1000 and result["converged"] is False and result["stopped"] == "interrupted"
    assert stderr.strip().splitlines() == [f"smem-dask: {word} after iteration {k}; wrote {out} "
                                           "(not converged)"]
    assert "Traceback" not in stderr and f"iter {k:4d}" in stdout and f"iter {k + 1:4d}" not in stdout
    # the oracle: the same fit run for exactly k iterations
    ref = fit_of(store, max_iter=k, **SLOW_PARAMS)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-12, atol=1e-15)
    assert result["intercept"] == pytest.approx(ref.intercept_, rel=1e-12, abs=1e-15)
    assert result["objective"] == pytest.approx(ref.objective_, rel=1e-12)
    assert result["objective_history"] == pytest.approx(ref.objective_history_, rel=1e-12)


@pytest.mark.distributed
def test_ctrl_c_to_the_process_group_spares_the_local_workers(store, tmp_path):
    """A terminal's Ctrl-C reaches the --workers processes too; they survive it, so the fit is saved."""
    out = tmp_path / "w.json"
    returncode, _, stderr = interrupted(["fit", store, *SLOW_FIT, "--workers", 2, "--out", out],
                                        r"^iter +2 ", signal.SIGINT, group=True)
    assert returncode == 130, stderr
    result = json.loads(out.read_text())
    k = result["n_iter"]
    assert stderr.strip().splitlines() == [f"smem-dask: interrupted after iteration {k}; wrote {out} "
                                           "(not converged)"]
    np.testing.assert_allclose(result["coef"], fit_of(store, max_iter=k, **SLOW_PARAMS).coef_,
                               rtol=1e-12, atol=1e-15)


def test_sigint_stops_path_after_the_finished_alphas(store, tmp_path):
    out, pstore = tmp_path / "p.json", tmp_path / "p.zarr"
    returncode, stdout, stderr = interrupted(["path", store, *PATH, "--store", pstore, "--out", out],
                                             rf"^alpha +2/{N_ALPHAS} ", signal.SIGINT)
    assert returncode == 130, stderr
    result = json.loads(out.read_text())
    finished = np.array(result["finished"])
    m = int(finished.sum())
    assert 2 <= m < N_ALPHAS and finished[:m].all() and not finished[m:].any()  # finished first, in order
    assert result["stopped"] == "interrupted"
    assert stderr.strip().splitlines() == [
        f"smem-dask: interrupted after {m} of {N_ALPHAS} alphas; wrote {out} ({N_ALPHAS - m} not finished; "
        "rerun with "
        "the same --store to resume)"]
    # the α being solved holds the iterate it stopped at, not converged (unless the signal came
    # between two α: then none was started); later α were not computed
    partial = int(result["coefs"][m] is not None)
    assert result["converged"][m] is False and (result["n_iter"][m] >= 1) == bool(partial)
    rest = N_ALPHAS - m - partial
    assert result["coefs"][m + partial:] == [None] * rest and result["n_iter"][m + partial:] == [0] * rest
    assert result["intercepts"][m + partial:] == [None] * rest
    # the oracle: a path not stopped, its first m α (a callback ends it there)
    reference = []

    class Enough(Exception):
        pass

    def keep(i, alpha, fit):
        reference.append((alpha, fit))
        if len(reference) == m:
            raise Enough

    with pytest.raises(Enough):
        fit_path(*open_store(store), "logistic", "l2", callback=keep, **PATH_PARAMS)
    for i, (alpha, fit) in enumerate(reference):
        assert result["alphas"][i] == alpha and result["converged"][i] == fit.converged
        np.testing.assert_allclose(result["coefs"][i], fit.coef, rtol=1e-12, atol=1e-15)
        assert result["intercepts"][i] == pytest.approx(fit.intercept, rel=1e-12, abs=1e-15)
    # the store holds exactly the finished α (a rerun resumes at the first unfinished one)
    stored = read_path_store(pstore)
    assert stored["done"].tolist() == finished.tolist()


def test_estimator_max_time_stops_after_the_first_iteration(logistic_problem):
    X, y = logistic_problem
    with pytest.warns(ConvergenceWarning, match=r"stopped after 1 iterations.*max_time=1e-09 s"):
        est = SMEMClassifier(alpha=1e-3, max_time=1e-9).fit(X, y)
    ref = fit_of_memory(X, y, alpha=1e-3, max_iter=1)
    assert est.n_iter_ == 1 and not est.converged_ and est.stopped_ == "max_time"
    np.testing.assert_array_equal(est.coef_, ref.coef_)
    assert est.intercept_ == ref.intercept_
    # a limit that is not reached changes nothing
    full = SMEMClassifier(alpha=1e-3, max_time=1e6).fit(X, y)
    assert full.converged_ and full.stopped_ is None
    np.testing.assert_array_equal(full.coef_, SMEMClassifier(alpha=1e-3).fit(X, y).coef_)


def fit_of_memory(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SMEMClassifier(**params).fit(X, y)


def test_path_max_time_keeps_the_store_resumable(logistic_problem, tmp_path):
    X, y = logistic_problem
    params = dict(n_alphas=5, eps=1e-2, batch=1, tol=1e-10)
    with pytest.warns(ConvergenceWarning, match=r"path stopped early: the time limit max_time=1e-09 s"):
        path = fit_path(X, y, "logistic", "l2", store=tmp_path / "s.zarr", max_time=1e-9, **params)
    full = fit_path(X, y, "logistic", "l2", **params)
    assert path.stopped == "max_time" and not path.finished.any() and not path.converged.any()
    np.testing.assert_array_equal(path.alphas, full.alphas)  # the grid's start is never cut short
    # the first α holds its first iterate, the others were not computed
    assert path.n_iter.tolist() == [1, 0, 0, 0, 0]
    assert np.isfinite(path.coefs[0]).all() and np.isnan(path.coefs[1:]).all()
    assert np.isnan(path.intercepts[1:]).all() and np.isnan(path.objectives[1:]).all()
    assert path.fits[1:] == [None] * 4
    # nothing unfinished was stored: the rerun computes every α, equal to the path never stopped
    again = fit_path(X, y, "logistic", "l2", store=tmp_path / "s.zarr", **params)
    assert again.stopped is None and again.finished.all() and not again.resumed.any()
    np.testing.assert_array_equal(again.coefs, full.coefs)
    np.testing.assert_array_equal(again.converged, full.converged)


def test_fit_em_stops_on_request_and_the_grid_start_does_not(logistic_problem):
    X, y = logistic_problem
    eng = make_engine(X, y.astype(float), None, persist=False, split_every=8)
    loss, penalty = get_loss("logistic"), get_penalty("l2")
    STOP_REQUESTED.set()
    try:
        with pytest.warns(ConvergenceWarning, match=r"stopped after 1 iterations.*\(interrupted\)"):
            stopped = fit_em(eng, loss, penalty, 1e-3)
        # a stop that does not listen to the request (the start of a path) runs its course
        whole = fit_em(eng, loss, penalty, 1e-3, stop=Stop(interruptible=False))
    finally:
        STOP_REQUESTED.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        one = fit_em(eng, loss, penalty, 1e-3, config=SolverConfig(max_iter=1))
    assert stopped.stopped == "interrupted" and stopped.n_iter == 1 and not stopped.converged
    np.testing.assert_array_equal(stopped.coef, one.coef)
    assert whole.converged and whole.stopped is None
    # SolverConfig.max_time works on its own
    with pytest.warns(ConvergenceWarning, match="increase max_time"):
        timed = fit_em(eng, loss, penalty, 1e-3, config=SolverConfig(max_time=1e-9))
    assert timed.stopped == "max_time" and timed.n_iter == 1
    np.testing.assert_array_equal(timed.coef, one.coef)


@pytest.mark.parametrize("bad", [0, -1, np.nan, np.inf, "10", True])
def test_max_time_is_validated(bad, logistic_problem):
    with pytest.raises(ValueError, match="max_time must be None or a positive finite number"):
        SolverConfig(max_time=bad)
    X, y = logistic_problem
    with pytest.raises(ValueError, match="max_time must be None or a positive finite number"):
        SMEMClassifier(max_time=bad).fit(X, y)


def test_cli_max_time_writes_the_unconverged_fit(store, tmp_path):
    out = tmp_path / "t.json"
    proc = run("fit", store, "--alpha", "1e-3", "--max-time", "1e-9", "--out", out)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and re.match(r"smem-dask: warning: SM-EM stopped after 1 iterations.*"
                                        r"max_time=1e-09 s.*increase max_time$", lines[0]), lines
    result = json.loads(out.read_text())
    assert result["converged"] is False and result["stopped"] == "max_time" and result["n_iter"] == 1
    ref = fit_of(store, alpha=1e-3, max_iter=1)
    np.testing.assert_allclose(result["coef"], ref.coef_, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("command, value", [("fit", "-1"), ("fit", "abc"), ("path", "0")])
def test_cli_bad_max_time_is_refused(store, tmp_path, command, value):
    out = tmp_path / "never.json"
    refused(run(command, store, "--max-time", value, "--out", out),
            rf"--max-time takes a positive number of seconds, got '{value}'")
    assert not out.exists()
