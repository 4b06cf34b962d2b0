"""Cluster faults end in one line, not a hang or a traceback: a scheduler without workers, every
worker SIGKILLed mid-fit, the scheduler SIGKILLed mid-path (the store keeps the finished α and the
rerun resumes), workers too small for a block or for persisted data (refused before any pass); and
the cluster recipes of cluster/README.md listen on loopback only."""

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import dask.array
import numpy as np
import psutil
import pytest
from test_cluster import Cluster as _Cluster
from test_cluster import _argv, _dask_command
from test_misuse import refused, snapshot

from smem_dask import SMEMClassifier, fit_path, make_problem
from smem_dask.data import open_store, write_zarr
from smem_dask.resources import NO_WORKER_TIMEOUT, WorkerMemoryError

pytestmark = pytest.mark.distributed

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_README = ROOT / "cluster" / "README.md"
MAKE_CERTS = ROOT / "cluster" / "tls" / "make-certs.sh"

# every case must end within this many seconds of starting the command
BOUND = 60


class Cluster(_Cluster):
    """tests/test_cluster.py's scheduler and worker processes, allowing no workers at all."""

    def _wait_for_workers(self, n: int, tls: bool) -> None:
        if n:
            super()._wait_for_workers(n, tls)


def smem(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "smem_dask", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Long enough a fit (cond 1e6, tol 1e-13) that the second iteration comes well before the end."""
    path = tmp_path_factory.mktemp("data") / "d.zarr"
    write_zarr(path, 60_000, 12, cond=1e6, seed=5, chunk_rows=6000)
    return path


def _run_until(args, pattern, action, tmp_path, env=None):
    """Start ``smem-dask args``; when a stdout line matches ``pattern``, call ``action(process)``; return
    (the process's return code, its stdout lines, stderr, seconds from the action to its end)."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as stderr:  # a file: an unread stderr pipe could fill and block
        proc = subprocess.Popen([sys.executable, "-m", "smem_dask", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=stderr, text=True,
                                env=None if env is None else {**os.environ, **env})
    acted = None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if acted is None and re.match(pattern, line):
                action(proc)
                acted = time.monotonic()
        code = proc.wait(timeout=BOUND + 30)
    finally:
        proc.kill()
        proc.wait()
    assert acted is not None, "".join(lines) + err.read_text()
    return code, lines, err.read_text(), time.monotonic() - acted


def _one_line(code, stderr, match):
    assert code == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("smem-dask: error: "), stderr
    assert re.search(match, lines[0]), lines[0]


def test_a_scheduler_without_workers_is_an_error_after_the_grace_period(store, tmp_path):
    c = Cluster(tmp_path, n_workers=0)
    try:
        before = snapshot(store)
        t0 = time.monotonic()
        proc = smem("fit", store, "--scheduler", c.address, "--quiet", timeout=BOUND + 30)
        seconds = time.monotonic() - t0
    finally:
        c.close()
    refused(proc, rf"no dask workers connected to the scheduler at {re.escape(c.address)} for "
                  rf"{NO_WORKER_TIMEOUT:g} s: start workers \(see cluster/README.md\)")
    assert NO_WORKER_TIMEOUT <= seconds < BOUND
    assert snapshot(store) == before


def test_all_workers_killed_during_a_fit(store, tmp_path):
    """Both workers (no nanny: they stay dead) SIGKILLed after iteration 2; the grace period set
    to 8 s through dask's config (the environment) to keep the test short."""
    c = Cluster(tmp_path)
    try:
        def kill(_):
            for w in c.workers:
                w.send_signal(signal.SIGKILL)

        t0 = time.monotonic()
        code, lines, stderr, after = _run_until(
            ["fit", store, "--alpha", "1e-5", "--tol", "1e-13", "--max-iter", "100000", "--stream",
             "--scheduler", c.address], r"iter\s+2\s", kill, tmp_path,
            env={"DASK_SMEM_DASK__NO_WORKER_TIMEOUT": "8"})
        total = time.monotonic() - t0
    finally:
        c.close()
    _one_line(code, stderr, rf"no dask workers connected to the scheduler at {re.escape(c.address)} "
                            r"for 8 s")
    assert not any(line.startswith("done:") for line in lines)
    assert 8 <= after < BOUND and total < BOUND


def test_scheduler_killed_during_a_path_keeps_the_finished_alphas(store, tmp_path):
    """SIGKILL the scheduler once α 2 of 6 is printed (batch 1): one line, the store unlocked with
    at least two α in it; the same command against a new cluster resumes and gives the in-memory
    path."""
    pstore, out = tmp_path / "path.zarr", tmp_path / "path.json"
    (tmp_path / "first").mkdir()
    c = Cluster(tmp_path / "first", n_workers=1)
    try:
        args = ["path", store, "--n-alphas", "6", "--batch", "1", "--tol", "1e-11", "--store", pstore,
                "--out", out]
        code, lines, stderr, after = _run_until([*args, "--scheduler", c.address], r"alpha\s+2/6",
                                                lambda _: c.scheduler.send_signal(signal.SIGKILL),
                                                tmp_path)
    finally:
        c.close()
    _one_line(code, stderr, rf"lost the dask scheduler at {re.escape(c.address)}")
    assert after < BOUND
    assert not out.exists()
    assert not (pstore / ".smem_dask.lock").exists()
    (tmp_path / "second").mkdir()
    c2 = Cluster(tmp_path / "second", n_workers=1)
    try:
        again = smem(*args, "--quiet", "--scheduler", c2.address)
    finally:
        c2.close()
    assert again.returncode == 0, again.stderr
    resumed = re.search(r"done: 6 alphas .*, ([2-5]) read from the store", again.stdout)
    assert resumed, again.stdout
    X, y = make_problem(60_000, 12, cond=1e6, seed=5)
    ref = fit_path(X, y, n_alphas=6, batch=1, tol=1e-11)
    np.testing.assert_allclose(json.loads(out.read_text())["coefs"], ref.coefs, rtol=1e-8, atol=1e-10)


@pytest.fixture(scope="module")
def big_blocks(tmp_path_factory):
    """One block of 40 MB (100 000 × 50 float64)."""
    path = tmp_path_factory.mktemp("big") / "big.zarr"
    write_zarr(path, 100_000, 50, seed=2, chunk_rows=100_000)
    return path


def _small_cluster(memory_limit):
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit=memory_limit,
                           host="127.0.0.1", dashboard_address="127.0.0.1:0",
                           silence_logs=logging.CRITICAL)
    return cluster, Client(cluster, set_as_default=False)


def _pass_tasks(client) -> list:
    """Names of the pass tasks the scheduler has ever seen."""
    names = client.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    return [name for name in names if name.startswith("smem-pass")]


def test_a_block_too_large_for_100MiB_workers_is_refused_before_any_pass(big_blocks):
    cluster, client = _small_cluster("100MiB")
    with cluster, client, dask.config.set(scheduler=client):
        t0 = time.monotonic()
        with pytest.raises(WorkerMemoryError, match=(
                r"^a block of 100,000 rows \(X: 50 float64 columns, with y\) takes 38\.9 MiB and a "
                r"data pass needs about 3× that \(116\.7 MiB\); the workers' memory limit is "
                r"100\.0 MiB, 80% usable, of which the worker process takes \d+\.\d MiB itself: give "
                r"the workers more memory: no block fits beside the process itself$")):
            SMEMClassifier().fit(*open_store(big_blocks))
        assert time.monotonic() - t0 < 20
        assert _pass_tasks(client) == []
    # the same through the command line, with its own local cluster
    before = snapshot(big_blocks)
    t0 = time.monotonic()
    proc = smem("fit", big_blocks, "--workers", 1, "--memory-limit", "100MiB", timeout=BOUND + 30)
    refused(proc, r"a block of 100,000 rows \(X: 50 float64 columns, with y\) takes 38\.9 MiB .* "
                  r"memory limit is 100\.0 MiB, 80% usable, of which")
    assert time.monotonic() - t0 < BOUND
    assert snapshot(big_blocks) == before


def test_a_block_too_large_beside_the_worker_process_asks_for_smaller_chunks(big_blocks):
    """A 400 MiB worker has room beside its own process (320 MiB usable), but not for the 40 MB
    block's pass (117 MiB): smaller chunks would fit, and the refusal says so (where the process
    alone fills the usable memory, as at 100 MiB, it asks for more memory instead)."""
    cluster, client = _small_cluster("400MiB")
    with cluster, client, dask.config.set(scheduler=client):
        with pytest.raises(WorkerMemoryError, match=(
                r"memory limit is 400\.0 MiB, 80% usable, of which the worker process takes \d+\.\d MiB "
                r"itself: use smaller chunks \(chunk_rows\) or workers with more memory$")):
            SMEMClassifier().fit(*open_store(big_blocks))
        assert _pass_tasks(client) == []


def test_workers_out_of_memory_during_a_pass_end_in_words(big_blocks, monkeypatch):
    """With the plan switched off, a 180 MiB worker (enough to read y) meets the 40 MB block: it
    pauses or is killed; either way the watchdog ends the fit with a MemoryError naming the block
    and the limit. (The limit was 260 MiB: at the edge of what the pass takes, and after the package
    began to import lazily a 230–260 MiB worker completes the pass; 180 MiB is clearly short.)"""
    from smem_dask import resources

    monkeypatch.setattr(resources, "PASS_MEMORY_FACTOR", 0)
    monkeypatch.setattr(resources, "WORKER_OWN_BYTES", 0)
    cluster, client = _small_cluster("180MiB")
    with cluster, client, dask.config.set(scheduler=client):
        t0 = time.monotonic()
        # (the block is named when the pass is what pauses; a worker this small may already pause
        # or die while the labels are read, and then only the limit is named — remembered from
        # before the workers died)
        with pytest.raises(WorkerMemoryError, match=(
                r"(been paused at their memory limit for 20 s|died \d times running (a block of a data "
                r"pass|one task) \(KilledWorker\), most likely out of memory): (a block of 100,000 rows "
                r"\(X: 50 float64 columns, with y\) takes 38\.9 MiB .*)?"
                r"the workers' memory limit is 180\.0 MiB"
                r".*; use smaller chunks")):
            SMEMClassifier(persist=False).fit(*open_store(big_blocks))
        assert time.monotonic() - t0 < BOUND


def test_persist_counts_what_the_workers_use(tmp_path):
    """114 MiB of data, one 400 MiB worker (320 MiB usable, about 224 MiB of it the worker's own):
    --persist is refused before any pass; "auto" streams (it persisted before, when half the
    limit, 200 MiB, was all it counted)."""
    path = tmp_path / "d.zarr"
    write_zarr(path, 150_000, 100, seed=4, chunk_rows=10_000)
    before = snapshot(path)
    t0 = time.monotonic()
    proc = smem("fit", path, "--persist", "--workers", 1, "--memory-limit", "400MiB", timeout=BOUND + 30)
    refused(proc, r"persist: the data take 115\.6 MiB but the 1 worker has about \d+\.\d MiB free "
                  r"for them \(memory limits 400\.0 MiB, 80% usable, less \d+\.\d MiB the worker "
                  r"processes take themselves and room for each thread's block\): stream the data")
    assert time.monotonic() - t0 < BOUND
    assert snapshot(path) == before
    from smem_dask.engine import DaskEngine

    cluster, client = _small_cluster("400MiB")
    with cluster, client, dask.config.set(scheduler=client):
        X, y = (dask.array.from_zarr(a) for a in open_store(path))
        assert not DaskEngine(X, y, persist="auto").persist
        with pytest.raises(WorkerMemoryError, match="persist: the data take 115.6 MiB"):
            DaskEngine(X, y, persist=True)
        assert _pass_tasks(client) == []


def _readme_commands(section: str) -> list[str]:
    """The shell lines of the first bash block of README section ``section`` ("(b)", "(c)")."""
    text = CLUSTER_README.read_text()
    part = text[text.index(f"\n## {section} "):]
    block = part[part.index("```bash\n") + 8:]
    return [line.split("  #")[0].strip() for line in block[:block.index("```")].splitlines()
            if line.strip()]


def _listening(pids) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket of ``pids`` and their descendants."""
    found = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            procs = [proc, *proc.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for p in procs:
            try:
                conns = p.net_connections(kind="inet")
            except psutil.NoSuchProcess:
                continue
            found += [(p.pid, c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def _loopback_only(sockets) -> None:
    assert sockets, "no listening sockets found"
    assert all(ip in ("127.0.0.1", "::1") for _, ip, _ in sockets), sockets


@pytest.mark.parametrize("section", ["(b)", "(c)"])
def test_the_readme_recipes_listen_on_loopback_only(section, tmp_path):
    """Run the recipe's dask commands as printed (with a nanny, as a reader would), and list every
    listening socket of the scheduler, the nannies and the workers (like ``ss -ltnp``)."""
    lines = _readme_commands(section)
    dask_lines = [ln for ln in lines if ln.startswith("dask ")]
    assert [ln.split()[1] for ln in dask_lines][0] == "scheduler" and len(dask_lines) >= 2, lines
    for line in lines:
        if line.startswith("cluster/tls/make-certs.sh"):
            argv = _argv(line, tmp_path)
            made = subprocess.run(["bash", str(ROOT / argv[0]), *argv[1:]], capture_output=True,
                                  text=True)
            assert made.returncode == 0, made.stderr
    log = open(tmp_path / "recipe.log", "ab")
    procs = []
    try:
        for line in dask_lines:
            assert line.endswith(" &"), line
            procs.append(subprocess.Popen(_dask_command(_argv(line[:-2], tmp_path)), stdout=log,
                                          stderr=subprocess.STDOUT))
            if len(procs) == 1:  # the workers read the scheduler file
                deadline = time.monotonic() + 60
                while not (tmp_path / "scheduler.json").exists():
                    assert time.monotonic() < deadline and procs[0].poll() is None, \
                        (tmp_path / "recipe.log").read_text()
                    time.sleep(0.1)
                time.sleep(0.5)  # written whole
        address = json.loads((tmp_path / "scheduler.json").read_text())["address"]
        assert address.startswith("tls://127.0.0.1:" if section == "(c)" else "tcp://127.0.0.1:")
        from distributed import Client
        from distributed.security import Security

        security = None
        if section == "(c)":
            security = Security(tls_ca_file=str(tmp_path / "ca.pem"),
                                tls_client_cert=str(tmp_path / "client.pem"),
                                tls_client_key=str(tmp_path / "client-key.pem"), require_encryption=True)
        with Client(address, timeout=30, set_as_default=False, security=security) as client:
            client.wait_for_workers(len(dask_lines) - 1, timeout=60)
        sockets = _listening([p.pid for p in procs])
        # the scheduler (comm and HTTP), and per worker its nanny, comm and HTTP server
        assert len(sockets) >= 2 + 3 * (len(dask_lines) - 1), sockets
        _loopback_only(sockets)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()


def test_the_local_cluster_of_workers_listens_on_loopback_only(store, tmp_path):
    """``--workers 2``: the scheduler and dashboard in the smem-dask process, the nannies and the
    workers in its children; checked once the fit prints iteration 2."""
    seen = []
    code, lines, stderr, _ = _run_until(
        ["fit", store, "--alpha", "1e-3", "--workers", 2, "--max-iter", 5],
        r"iter\s+2\s", lambda proc: seen.extend(_listening([proc.pid])), tmp_path)
    assert code in (0, 2), stderr
    # scheduler comm + dashboard, and two nannies, two workers with their HTTP servers
    assert len(seen) >= 2 + 3 * 2, seen
    _loopback_only(seen)
