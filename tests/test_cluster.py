"""Real clusters: ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, run as the recipes of
cluster/README.md start them; ``smem-dask fit/path --scheduler`` against them; a worker SIGKILLed
mid-fit; TLS with and without certificates; bitwise determinism."""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import numpy as np
import pytest

from smem_dask import SMEMClassifier, fit_path, make_problem
from smem_dask.data import open_store, write_zarr

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_README = ROOT / "cluster" / "README.md"
MAKE_CERTS = ROOT / "cluster" / "tls" / "make-certs.sh"

# the recipes' commands, as cluster/README.md prints them ($DIR: the directory of the scheduler file
# and certificates); the tests run exactly these, plus --name for telling workers apart and
# --no-nanny so that a killed worker stays dead
SCHEDULER = ("dask scheduler --host 127.0.0.1 --port 0 --dashboard-address 127.0.0.1:0 --no-dashboard "
             "--scheduler-file $DIR/scheduler.json")
WORKER = ("dask worker --scheduler-file $DIR/scheduler.json --host 127.0.0.1 --dashboard-address "
          "127.0.0.1:0 --nthreads 1 --memory-limit 1GiB --no-dashboard")
TLS_SCHEDULER = (SCHEDULER + " --protocol tls --tls-ca-file $DIR/ca.pem --tls-cert $DIR/scheduler.pem "
                 "--tls-key $DIR/scheduler-key.pem")
TLS_WORKER = (WORKER + " --tls-ca-file $DIR/ca.pem --tls-cert $DIR/worker.pem "
              "--tls-key $DIR/worker-key.pem")
TLS_CLIENT = "--tls-ca $DIR/ca.pem --tls-cert $DIR/client.pem --tls-key $DIR/client-key.pem"


def _argv(template: str, directory: Path) -> list[str]:
    return shlex.split(template.replace("$DIR", str(directory)))


def _dask_command(argv: list[str]) -> list[str]:
    # ``dask`` of this interpreter (the console script may belong to another Python on PATH)
    assert argv[0] == "dask"
    return [sys.executable, "-m", "dask", *argv[1:]]


class Cluster:
    """A scheduler and ``n_workers`` worker processes (no nanny: a killed worker stays dead)."""

    def __init__(self, directory: Path, n_workers: int = 2, tls: bool = False):
        self.dir = directory
        self.log = directory / "cluster.log"
        self._log = open(self.log, "ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.scheduler = subprocess.Popen(
            _dask_command(_argv(TLS_SCHEDULER if tls else SCHEDULER, directory)),
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        self.workers = []
        try:
            info = directory / "scheduler.json"
            deadline = time.monotonic() + 60
            self.address = None
            while self.address is None:  # the file appears before it is whole
                try:
                    self.address = json.loads(info.read_text())["address"]
                except (OSError, ValueError, KeyError):
                    if time.monotonic() > deadline or self.scheduler.poll() is not None:
                        raise RuntimeError(
                            f"scheduler did not start:\n{self.log.read_text()[-3000:]}") from None
                    time.sleep(0.1)
            for i in range(n_workers):
                argv = _argv(TLS_WORKER if tls else WORKER, directory) + ["--name", f"w{i}", "--no-nanny"]
                self.workers.append(subprocess.Popen(_dask_command(argv), stdout=self._log,
                                                     stderr=subprocess.STDOUT, env=env))
            self._wait_for_workers(n_workers, tls)
        except BaseException:
            self.close()
            raise

    def security(self):
        from distributed.security import Security

        d = self.dir
        return Security(tls_ca_file=str(d / "ca.pem"), tls_client_cert=str(d / "client.pem"),
                        tls_client_key=str(d / "client-key.pem"), require_encryption=True)

    def client(self, tls: bool = False):
        from distributed import Client

        return Client(self.address, timeout=30, set_as_default=False,
                      security=self.security() if tls else None)

    def _wait_for_workers(self, n: int, tls: bool) -> None:
        with self.client(tls) as client:
            client.wait_for_workers(n, timeout=60)

    def close(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.terminate()
        for proc in [*self.workers, self.scheduler]:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "d.zarr"
    write_zarr(path, 30_000, 6, cond=1e5, seed=21, chunk_rows=4000)
    return path


def smem(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _in_memory(n, p, seed, cond, **kw):
    X, y = make_problem(n, p, cond=cond, seed=seed)
    return X, y, SMEMClassifier(**kw).fit(X, y)


def test_the_readme_prints_the_commands_the_tests_run():
    text = CLUSTER_README.read_text()
    for command in (SCHEDULER, WORKER, "--protocol tls --tls-ca-file $DIR/ca.pem",
                    "--tls-ca-file $DIR/ca.pem --tls-cert $DIR/worker.pem --tls-key $DIR/worker-key.pem",
                    TLS_CLIENT, "cluster/tls/make-certs.sh $DIR"):
        assert command in text, command


def test_fit_and_path_against_scheduler_and_worker_processes(cluster, store, tmp_path):
    out = tmp_path / "fit.json"
    proc = smem("fit", store, "--alpha", 1e-3, "--tol", 1e-12, "--quiet", "--stream", "--out", out,
                "--scheduler", cluster.address)
    assert proc.returncode == 0, proc.stderr
    _, _, ref = _in_memory(30_000, 6, 21, 1e5, alpha=1e-3, tol=1e-12)
    fit = json.loads(out.read_text())
    np.testing.assert_allclose(fit["coef"], ref.coef_, rtol=1e-10, atol=1e-12)
    assert fit["intercept"] == pytest.approx(ref.intercept_, rel=1e-10)
    assert fit["n_iter"] == ref.n_iter_

    # the same through the scheduler file, for a path
    out = tmp_path / "path.json"
    proc = smem("path", store, "--n-alphas", 5, "--tol", 1e-12, "--quiet", "--out", out,
                "--scheduler-file", cluster.dir / "scheduler.json")
    assert proc.returncode == 0, proc.stderr
    X, y = make_problem(30_000, 6, cond=1e5, seed=21)
    ref_path = fit_path(X, y, n_alphas=5, tol=1e-12)
    np.testing.assert_allclose(json.loads(out.read_text())["coefs"], ref_path.coefs,
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("persist", ["--stream", "--persist"])
def test_a_worker_killed_after_the_second_iteration_changes_nothing(tmp_path, persist):
    """SIGKILL one of two workers once the fit has printed iteration 2: the scheduler reruns what
    was lost (blocks in flight, and with --persist the blocks it held) from the zarr store."""
    path = tmp_path / "big.zarr"
    n, p = 400_000, 20
    write_zarr(path, n, p, cond=1e6, seed=8, chunk_rows=10_000)
    c = Cluster(tmp_path)
    try:
        out, err = tmp_path / "fit.json", tmp_path / "fit.err"
        with open(err, "w") as stderr:  # a file: an unread stderr pipe could fill and block
            proc = subprocess.Popen(
                [sys.executable, "-m", "smem_dask", "fit", str(path), "--alpha", "1e-4", "--tol",
                 "1e-12", persist, "--out", str(out), "--scheduler", c.address],
                stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            lines, killed_after = [], None
            for line in proc.stdout:
                lines.append(line)
                if killed_after is None and re.match(r"iter\s+2\s", line):
                    c.workers[1].send_signal(signal.SIGKILL)
                    killed_after = len(lines)
            assert proc.wait(timeout=300) == 0, err.read_text()
        finally:
            proc.kill()
            proc.wait()
        assert killed_after is not None and c.workers[1].wait(timeout=10) == -signal.SIGKILL
        # the fit went on after the kill (more iterations were printed) and finished on one worker
        after = [ln for ln in lines[killed_after:] if ln.startswith("iter")]
        assert len(after) >= 3, "".join(lines)
        with c.client() as client:
            assert len(client.scheduler_info()["workers"]) == 1
    finally:
        c.close()
    assert "Remove worker" in c.log.read_text()
    _, _, ref = _in_memory(n, p, 8, 1e6, alpha=1e-4, tol=1e-12)
    fit = json.loads(out.read_text())
    np.testing.assert_allclose(fit["coef"], ref.coef_, rtol=1e-10, atol=1e-12)
    assert fit["n_iter"] == ref.n_iter_


def test_tls_cluster_fits_with_the_certificates_and_refuses_without(tmp_path, store):
    certs = subprocess.run(["bash", str(MAKE_CERTS), str(tmp_path)], capture_output=True, text=True)
    assert certs.returncode == 0, certs.stderr
    c = Cluster(tmp_path, tls=True)
    try:
        assert c.address.startswith("tls://127.0.0.1:")
        out = tmp_path / "fit.json"
        proc = smem("fit", store, "--alpha", 1e-3, "--tol", 1e-12, "--quiet", "--out", out,
                    "--scheduler", c.address, *_argv(TLS_CLIENT, tmp_path))
        assert proc.returncode == 0, proc.stderr
        _, _, ref = _in_memory(30_000, 6, 21, 1e5, alpha=1e-3, tol=1e-12)
        np.testing.assert_allclose(json.loads(out.read_text())["coef"], ref.coef_, rtol=1e-10,
                                   atol=1e-12)

        def refused(*args, match):
            t0 = time.monotonic()
            proc = smem("fit", store, "--quiet", "--connect-timeout", 5, *args, timeout=120)
            assert proc.returncode == 2, proc.stdout + proc.stderr
            assert re.search(match, proc.stderr), proc.stderr
            assert "Traceback" not in proc.stderr and "done:" not in proc.stdout
            assert time.monotonic() - t0 < 60

        # no certificates at all
        refused("--scheduler", c.address, match="uses TLS: pass --tls-ca, --tls-cert and --tls-key")
        # plain TCP to the TLS port
        refused("--scheduler", c.address.replace("tls://", "tcp://"),
                match="cannot reach the dask scheduler at tcp://127.0.0.1")
        # certificates of another authority: the scheduler does not let this client in
        other = tmp_path / "other"
        assert subprocess.run(["bash", str(MAKE_CERTS), str(other)], capture_output=True).returncode == 0
        refused("--scheduler", c.address, *_argv(TLS_CLIENT, other),
                match=r"cannot reach the dask scheduler at tls://.*(certificate|TLS|SSL)")
        # and the authority's certificate alone (no client certificate) is not enough either
        from distributed import Client
        from distributed.security import Security

        with pytest.raises(Exception):  # noqa: B017 - distributed raises TypeError or OSError here
            Client(c.address, timeout=5, security=Security(tls_ca_file=str(tmp_path / "ca.pem"),
                                                           require_encryption=True))
    finally:
        c.close()


def test_same_beta_bitwise_across_runs_and_to_1e10_across_chunkings_and_worker_counts(
        cluster, store, tmp_path):
    kw = dict(alpha=1e-3, tol=1e-12)
    other = tmp_path / "rechunked.zarr"
    write_zarr(other, 30_000, 6, cond=1e5, seed=21, chunk_rows=7000)
    with cluster.client() as client, dask.config.set(scheduler=client):
        X, y = open_store(store)
        runs = [SMEMClassifier(persist=False, **kw).fit(X, y) for _ in range(2)]
        runs.append(SMEMClassifier(persist=True, **kw).fit(X, y))
        X2, y2 = open_store(other)
        rechunked = SMEMClassifier(**kw).fit(X2, y2)
    # bitwise: the same blocks reduced in the same tree order, whichever worker ran them
    np.testing.assert_array_equal(runs[1].coef_, runs[0].coef_)
    np.testing.assert_array_equal(runs[2].coef_, runs[0].coef_)
    assert runs[1].intercept_ == runs[0].intercept_
    # one worker process, and threads in this process
    (tmp_path / "one").mkdir()
    c1 = Cluster(tmp_path / "one", n_workers=1)
    try:
        with c1.client() as client, dask.config.set(scheduler=client):
            one = SMEMClassifier(**kw).fit(*open_store(store))
    finally:
        c1.close()
    with dask.config.set(scheduler="threads"):
        threads = SMEMClassifier(**kw).fit(*open_store(store))
    np.testing.assert_array_equal(one.coef_, runs[0].coef_)
    for other_fit in (rechunked, threads):
        np.testing.assert_allclose(other_fit.coef_, runs[0].coef_, rtol=1e-10, atol=1e-12)


def test_a_silent_scheduler_address_times_out_with_a_message(store):
    """A port that accepts connections but never speaks: the client gives up after
    --connect-timeout, with the address in the message, instead of hanging."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        t0 = time.monotonic()
        proc = smem("fit", store, "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", 3,
                    timeout=120)
        seconds = time.monotonic() - t0
    finally:
        stop.set()
        thread.join()
        for s in held:
            s.close()
        server.close()
    assert proc.returncode == 2, proc.stderr
    assert re.search(rf"cannot reach the dask scheduler at tcp://127.0.0.1:{port}", proc.stderr)
    assert seconds < 60


def test_local_cluster_recipe_with_memory_limits(store, tmp_path):
    out = tmp_path / "fit.json"
    proc = smem("fit", store, "--alpha", 1e-3, "--tol", 1e-12, "--quiet", "--out", out,
                "--workers", 2, "--memory-limit", "1GiB")
    assert proc.returncode == 0, proc.stderr
    _, _, ref = _in_memory(30_000, 6, 21, 1e5, alpha=1e-3, tol=1e-12)
    np.testing.assert_allclose(json.loads(out.read_text())["coef"], ref.coef_, rtol=1e-10, atol=1e-12)


def test_a_path_resumes_after_its_client_is_killed(cluster, store, tmp_path):
    """SIGKILL the smem-dask process of a path (batch 1) after its third α; the same command
    again reads those three from the store and computes the rest; all equal the in-memory path."""
    pstore, out = tmp_path / "path.zarr", tmp_path / "path.json"
    args = [sys.executable, "-m", "smem_dask", "path", str(store), "--n-alphas", "8", "--batch", "1",
            "--tol", "1e-12", "--store", str(pstore), "--out", str(out), "--scheduler", cluster.address]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("alpha   3/8"):
                proc.kill()
                break
    finally:
        proc.kill()
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert not out.exists()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert re.search(r"done: 8 alphas .*, ([3-7]) read from the store", again.stdout), again.stdout
    X, y = make_problem(30_000, 6, cond=1e5, seed=21)
    ref = fit_path(X, y, n_alphas=8, batch=1, tol=1e-12)
    np.testing.assert_allclose(json.loads(out.read_text())["coefs"], ref.coefs, rtol=1e-9, atol=1e-12)
