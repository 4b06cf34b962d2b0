"""The dask path against the in-memory oracle: inputs × chunkings × schedulers, graph shape."""

import time

import cloudpickle
import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from smem_dask import SMEMClassifier, SMEMRegressor
from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.losses import Logistic, Squared
from smem_dask.penalties import L2
from smem_dask.solver import SolverConfig, fit_em
from smem_dask.stats import Request

UNEVEN = (400, 700, 100, 800, 1, 599, 400)  # 7 blocks, 3000 rows
SETTINGS = dict(alpha=1e-3, tol=1e-10)


def _released(client, timeout=10.0) -> bool:
    """Wait until the workers hold no data (at most ``timeout`` seconds); whether they hold none."""
    deadline = time.monotonic() + timeout
    while client.who_has() and time.monotonic() < deadline:
        time.sleep(0.01)
    return not client.who_has()


def _close(a, b, rtol=1e-10):
    scale = np.abs(b).max()
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def reference(logistic_problem):
    X, y = logistic_problem
    return SMEMClassifier(**SETTINGS).fit(X, y)


@pytest.fixture(scope="module")
def zarr_arrays(logistic_problem, tmp_path_factory):
    X, y = logistic_problem
    group = zarr.open_group(tmp_path_factory.mktemp("z") / "p.zarr", mode="w")
    zx = group.create_array("X", shape=X.shape, chunks=(450, X.shape[1]), dtype="f8")
    zy = group.create_array("y", shape=y.shape, chunks=(450,), dtype="f8")
    zx[:], zy[:] = X, y
    return zx, zy


def _inputs(kind, X, y, zarr_arrays):
    if kind == "numpy":
        return X, y
    if kind == "dask-1-block":
        return da.from_array(X, chunks=(-1, -1)), da.from_array(y, chunks=-1)
    if kind == "dask-7-uneven":
        return da.from_array(X, chunks=(UNEVEN, -1)), da.from_array(y, chunks=(UNEVEN,))
    if kind == "zarr":
        return zarr_arrays
    raise AssertionError(kind)


@pytest.fixture(params=["sync", "threads",
                        pytest.param("distributed", marks=pytest.mark.distributed)])
def scheduler(request):
    if request.param == "distributed":
        client = request.getfixturevalue("cluster_client")
        with dask.config.set(scheduler=client):
            yield client
    else:
        with dask.config.set(scheduler=request.param):
            yield request.param


@pytest.mark.parametrize("kind", ["numpy", "dask-1-block", "dask-7-uneven", "zarr"])
def test_same_answer_for_every_input_and_scheduler(kind, scheduler, logistic_problem, zarr_arrays,
                                                   reference):
    X, y = _inputs(kind, *logistic_problem, zarr_arrays)
    est = SMEMClassifier(**SETTINGS).fit(X, y)
    _close(est.coef_, reference.coef_)
    assert est.intercept_ == pytest.approx(reference.intercept_, rel=1e-10)
    assert est.objective_ == pytest.approx(reference.objective_, rel=1e-13)
    assert est.n_iter_ == reference.n_iter_


@pytest.mark.distributed
def test_persisted_and_weighted_on_a_cluster(cluster_client, logistic_problem, rng):
    X, y = logistic_problem
    s = rng.uniform(0.5, 2.0, len(y))
    ref = SMEMClassifier(**SETTINGS).fit(X, y, sample_weight=s)
    Xd = da.from_array(X, chunks=(UNEVEN, -1))
    yd = da.from_array(y, chunks=1100)  # chunked unlike X: rechunked, not refused
    sd = da.from_array(s, chunks=700)
    with dask.config.set(scheduler=cluster_client):
        est = SMEMClassifier(persist=True, **SETTINGS).fit(Xd, yd, sample_weight=sd)
    _close(est.coef_, ref.coef_)


def test_the_watch_waits_for_a_result_lost_after_its_callback_without_spinning():
    """A future whose result was lost with its worker is not done again after its done-callback
    fired, and none comes when it is recomputed: the watch's wait then polls until it is done (or
    the interval ends) instead of returning at once every time."""
    import threading

    from smem_dask.resources import _wait_done, _when_all_done

    class Lost:  # done, called back, then lost: done() is False, no callback will come again
        def __init__(self):
            self.ready = True

        def add_done_callback(self, fn):
            fn(self)

        def done(self):
            return self.ready

    future = Lost()
    finished = _when_all_done([future])
    assert finished.is_set()
    future.ready = False
    t0 = time.monotonic()
    _wait_done(finished, [future], 0.3)
    assert time.monotonic() - t0 >= 0.29  # waited the interval, not returned at once
    threading.Timer(0.1, lambda: setattr(future, "ready", True)).start()
    t0 = time.monotonic()
    _wait_done(finished, [future], 5.0)
    assert 0.09 <= time.monotonic() - t0 < 1.0  # returned once it was done again


@pytest.mark.distributed
def test_a_fit_on_a_cluster_lets_go_of_its_persisted_data_when_it_ends(cluster_client, rng,
                                                                         monkeypatch):
    """Once a fit is over and its engine dropped, the workers hold nothing of it, without waiting
    for Python's cycle collector: the watch of a pass longer than the watch interval used to leave
    a reference cycle (distributed's wait raises its timeout through a frame that keeps the
    exception) holding the engine, so its persisted blocks stayed on the workers, and the next
    fit's persist="auto" saw their memory taken and streamed (2 s a pass at 2e6 × 100, against
    0.6 s)."""
    import gc
    import weakref

    import smem_dask.resources as resources

    monkeypatch.setattr(resources, "WATCH_INTERVAL", 1e-4)  # every pass outlasts the interval
    X = rng.standard_normal((20_000, 5))
    y = (rng.random(len(X)) < 0.5).astype(np.float64)
    gc.collect()
    gc.disable()
    try:
        with dask.config.set(scheduler=cluster_client):
            engine = DaskEngine(da.from_array(X, chunks=(5000, -1)), y, persist=True)
            fit = fit_em(engine, Logistic(), L2(), 1e-3, config=SolverConfig(tol=1e-8))
            assert fit.converged and cluster_client.who_has()  # persisted, held during the fit
            gone = weakref.ref(engine)
            del engine
            assert gone() is None
            assert _released(cluster_client)
    finally:
        gc.enable()


@pytest.mark.distributed
def test_persisted_blocks_are_spread_over_the_workers_with_their_rows_together(cluster_client, rng):
    """Persisted on a cluster, row block i of X, y, the weights and the fold ids is on one worker,
    the workers hold consecutive runs of blocks in proportion to their threads, and a pass moves no
    input block (left to the scheduler, every block of X could land on one worker, and y's blocks on
    another, moved in every pass); the statistics equal the streamed pass's."""
    from distributed import futures_of, get_task_stream

    blocks = (200_000, 100_000, 250_000, 50_000, 120_000)  # 8 MB blocks of X, uneven
    X = rng.standard_normal((sum(blocks), 5))
    y = (rng.random(sum(blocks)) < 0.5).astype(np.float64)
    s = rng.uniform(0.5, 2.0, len(y))
    folds = np.arange(len(y)) % 3
    Xd = da.from_array(X, chunks=(blocks, -1))
    beta = np.r_[0.01 * np.ones(X.shape[1]), 0.0]
    with dask.config.set(scheduler=cluster_client):
        engine = DaskEngine(Xd, da.from_array(y, chunks=110_000), sample_weight=s, folds=folds,
                            persist=True)
        first = engine.stats(Logistic(), beta[:, None], beta, True)  # the first pass persists
        where = cluster_client.who_has(futures_of([engine.X, engine.y, engine.sample_weight,
                                                   engine.folds]))

        def holders(a):  # row block → the workers holding it
            return {f.key[1]: where[f.key] for f in futures_of(a)}

        placed = holders(engine.X)
        for a in (engine.y, engine.sample_weight, engine.folds):
            assert holders(a) == placed
        addresses = sorted(cluster_client.scheduler_info(n_workers=-1)["workers"])
        assert [placed[i] for i in range(len(blocks))] == [(addresses[0],)] * 2 + [(addresses[1],)] * 3
        with get_task_stream(cluster_client) as ts:
            again = engine.stats(Logistic(), beta[:, None], beta, True)
        streamed = DaskEngine(Xd, y, sample_weight=s, folds=folds).stats(Logistic(), beta[:, None],
                                                                           beta, True)
    # the block tasks (read and kernel, fused with the first step of the sum), not the reduction
    kernels = [t for t in ts.data if isinstance(t["key"], tuple) and len(t["key"]) == 3
               and not any(w in t["key"][0] for w in ("aggregate", "partial"))]
    assert len(kernels) == len(blocks)
    assert [t["key"] for t in kernels for ss in t["startstops"] if ss["action"] == "transfer"] == []
    for st in (first, again):
        np.testing.assert_allclose(st.pack(), streamed.pack(), rtol=1e-12)


def test_persist_auto_decides_from_the_workers_memory(cluster_client, logistic_problem,
                                                       monkeypatch):
    """"auto" persists data that takes at most PERSIST_FRACTION of the workers' summed memory
    limits less their use and streams larger data; both give the same fit; a bad value is refused."""
    from smem_dask import resources

    X, y = logistic_problem
    Xd = da.from_array(X, chunks=(700, -1))
    limits = [w["memory_limit"] for w in cluster_client.scheduler_info(n_workers=-1)["workers"].values()]
    with dask.config.set(scheduler=cluster_client):
        assert 0 < resources.memory_available() < sum(limits)  # less what the workers use
        kept = DaskEngine(Xd, y, persist="auto")
        monkeypatch.setattr(resources, "PERSIST_FRACTION", (X.nbytes + y.nbytes) / sum(limits) / 2)
        streamed = DaskEngine(Xd, y, persist="auto")
        fits = [fit_em(e, Logistic(), L2(), 1e-3, config=SolverConfig(tol=1e-10))
                for e in (kept, streamed)]
    assert kept.persist and not streamed.persist
    np.testing.assert_allclose(fits[0].coef, fits[1].coef, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="persist must be True, False or 'auto'"):
        DaskEngine(Xd, y, persist="yes")


def test_persist_auto_counts_the_offset_and_the_fold_ids(cluster_client, logistic_problem, monkeypatch):
    """The per-row arrays a pass reads beside X, y and the weights count in the persist decision."""
    from smem_dask import resources

    X, y = logistic_problem
    Xd = da.from_array(X, chunks=(700, -1)) + 0.0  # keys no other test persisted
    extra = 8.0 * X.shape[0]  # an offset or fold ids: 8 bytes a row
    monkeypatch.setattr(resources, "PERSIST_FRACTION", 1.0)
    monkeypatch.setattr(resources, "memory_available", lambda: X.nbytes + y.nbytes + 0.5 * extra)
    with dask.config.set(scheduler=cluster_client):
        assert DaskEngine(Xd, y, persist="auto").persist
        assert not DaskEngine(Xd, y, persist="auto", offset=np.zeros(X.shape[0])).persist
        assert not DaskEngine(Xd, y, persist="auto", folds=np.arange(X.shape[0]) % 3).persist


@pytest.mark.distributed
def test_persist_auto_counts_the_datas_own_blocks_the_workers_hold_as_free(cluster_client, rng,
                                                                         tmp_path, monkeypatch):
    """A second fit right after a persisted one, on the same zarr arrays, persists too: the first
    engine's blocks, still on the workers (released a moment later) or kept by a live engine, are
    counted in the workers' memory use, and a persist of the same keys reuses them instead of
    taking that memory again (they used to make "auto" stream: 2 s a pass at 2e6 × 100 against
    0.6 s persisted). Other data on the workers still counts as taken."""
    from smem_dask import resources

    X = rng.standard_normal((20_000, 5))
    y = (rng.random(len(X)) < 0.5).astype(np.float64)
    group = zarr.open_group(tmp_path / "d.zarr", mode="w")
    group.create_array("X", data=X, chunks=(5000, 5))
    group.create_array("y", data=y, chunks=(5000,))
    Xd, yd = da.from_zarr(group["X"]), da.from_zarr(group["y"])
    nbytes = X.nbytes + y.nbytes
    beta = np.zeros(X.shape[1] + 1)
    with dask.config.set(scheduler=cluster_client):
        first = DaskEngine(Xd, yd, persist=True)
        first.stats(Logistic(), beta[:, None], beta, True)  # persisted: the workers hold X and y
        # the workers' memory left is just short of what "auto" asks for these data
        monkeypatch.setattr(resources, "memory_available", lambda: 2 * nbytes - 1.0)
        assert DaskEngine(Xd, yd, persist="auto").persist
        assert not DaskEngine(Xd + 1.0, yd * 1.0, persist="auto").persist  # other keys: taken
        del first
        _released(cluster_client)
        assert not DaskEngine(Xd, yd, persist="auto").persist  # nothing held: the rule as before


@pytest.mark.distributed
def test_the_memory_the_workers_have_is_read_now_not_from_their_last_heartbeat(cluster_client):
    """Right after a fit's persisted data are released, the workers' memory counts as free: the
    scheduler's figure (the workers' last heartbeat) lags behind, and "auto" used to stream the
    next fit for it."""
    from smem_dask import resources

    # 400 MB, made and persisted on the workers
    X = da.random.default_rng(5).standard_normal((1_000_000, 50), chunks=(100_000, -1))
    with dask.config.set(scheduler=cluster_client):
        before = resources.memory_available()
        engine = DaskEngine(X, np.zeros(X.shape[0]), persist=True)
        engine.stats(Squared(), np.zeros((51, 1)), None, True)
        held = resources.memory_available()
        # the workers hold the blocks now (a worker's own memory counts at least 224 MiB)
        assert before - held > 250e6
        del engine
        assert _released(cluster_client)  # by the scheduler
        time.sleep(0.1)  # and freed by the workers, well within a heartbeat
        assert abs(resources.memory_available() - before) < 60e6


def test_regressor_on_dask_matches_numpy(regression_problem):
    X, y = regression_problem
    ref = SMEMRegressor(alpha=1e-2, tol=1e-12).fit(X, y)
    with dask.config.set(scheduler="threads"):
        est = SMEMRegressor(alpha=1e-2, tol=1e-12).fit(da.from_array(X, chunks=(333, -1)),
                                                       da.from_array(y, chunks=333))
    _close(est.coef_, ref.coef_)


def test_awkward_inputs_are_fixed_not_refused(logistic_problem, reference):
    X, y = logistic_problem
    with dask.config.set(scheduler="sync"):
        by_columns = da.from_array(X, chunks=(500, 3))  # chunked along columns too
        est = SMEMClassifier(**SETTINGS).fit(by_columns, da.from_array(y, chunks=777))
        _close(est.coef_, reference.coef_)

    Xi = np.round(X * 10).astype(np.int32)
    ref_i = SMEMClassifier(**SETTINGS).fit(Xi.astype(np.float64), y)
    X32 = X.astype(np.float32)
    ref_32 = SMEMClassifier(**SETTINGS).fit(X32.astype(np.float64), y)
    with dask.config.set(scheduler="sync"):
        for Xa, ref in ((Xi, ref_i), (X32, ref_32)):
            _close(SMEMClassifier(**SETTINGS).fit(Xa, y).coef_, ref.coef_)
            _close(SMEMClassifier(**SETTINGS).fit(da.from_array(Xa, chunks=(UNEVEN, -1)), y).coef_,
                   ref.coef_)


def test_one_fused_task_per_block_and_no_graph_growth(zarr_arrays):
    zx, zy = zarr_arrays
    engine = DaskEngine(da.from_zarr(zx), (da.from_zarr(zy) == 1.0).astype(float))
    assert engine.n_blocks == 7
    q = zx.shape[1] + 1
    sizes = []
    for k, beta in ((1, np.zeros(q)), (2, np.ones(q))):
        graph = engine.pass_graph(Logistic(), [Request(np.tile(beta[:, None], k), beta)], True)
        (optimized,) = dask.optimize(graph)
        tasks = [key for key in dict(optimized.__dask_graph__()) if isinstance(key, tuple)]
        # 7 block tasks (read X and y, label map, kernel, partial sum fused) + 1 aggregate
        assert len(tasks) == engine.n_blocks + 1
        sizes.append(len(dict(optimized.__dask_graph__())))
    assert sizes[0] == sizes[1]


def test_engines_count_passes_and_agree_pass_by_pass(logistic_problem):
    X, y = logistic_problem
    res_np = fit_em(NumpyEngine(X, y, block_rows=512), Logistic(), L2(), 1e-3,
                    config=SolverConfig(tol=1e-10))
    engine = DaskEngine(da.from_array(X, chunks=(UNEVEN, -1)), y)
    with dask.config.set(scheduler="sync"):
        res_dask = fit_em(engine, Logistic(), L2(), 1e-3,
                          config=SolverConfig(tol=1e-10))
    assert engine.n_passes == res_dask.n_passes == res_np.n_passes
    np.testing.assert_allclose(res_dask.objective_history, res_np.objective_history, rtol=1e-13)


def test_numpy_engine_threads_give_the_single_thread_answer(logistic_problem):
    """Blocks computed by two threads (numpy's GIL-free syrk) and summed in block order: the same
    fit as one thread (scipy's dsyrk) to rounding, and bad thread counts are refused."""
    X, y = logistic_problem
    fits = [fit_em(NumpyEngine(X, y, block_rows=300, n_threads=t), Logistic(), L2(), 1e-3,
                   config=SolverConfig(tol=1e-10)) for t in (1, 2)]
    assert fits[0].n_passes == fits[1].n_passes
    np.testing.assert_allclose(fits[1].objective_history, fits[0].objective_history, rtol=1e-13)
    np.testing.assert_allclose(fits[1].coef, fits[0].coef, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        NumpyEngine(X, y, n_threads=0)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_predictions_on_lazy_input_are_lazy_and_equal(method, logistic_problem, zarr_arrays,
                                                      reference):
    X, _ = logistic_problem
    expected = getattr(reference, method)(X)
    with dask.config.set(scheduler="sync"):
        for lazy in (da.from_array(X, chunks=(UNEVEN, 4)), zarr_arrays[0]):
            out = getattr(reference, method)(lazy)
            assert isinstance(out, da.Array)
            np.testing.assert_allclose(out.compute(), expected, rtol=1e-14, atol=1e-15)


@pytest.mark.distributed
def test_in_memory_targets_are_sent_once_not_with_every_pass(cluster_client, rng):
    n = 200_000
    X = da.from_array(rng.normal(size=(n, 2)), chunks=(50_000, 2))
    y = (rng.random(n) < 0.5).astype(float)  # numpy: 1.6 MB
    s = rng.uniform(1, 2, n)
    with dask.config.set(scheduler=cluster_client):
        X = X.persist()
        engine = DaskEngine(X, y, s)
        graph = engine.pass_graph(Logistic(), [Request(np.zeros((3, 1)), np.zeros(3))], True)
        size = len(cloudpickle.dumps(dict(graph.__dask_graph__())))
        assert size < y.nbytes / 10, size
        st = engine.stats(Logistic(), np.zeros((3, 1)), np.zeros(3), True)
    assert st.weight == pytest.approx(s.sum(), rel=1e-13)
    assert st.loss[0] == pytest.approx(np.log(2) * s.sum(), rel=1e-13)


def test_bad_engine_settings_and_unknown_chunks(logistic_problem):
    X, y = logistic_problem
    Xd = da.from_array(X, chunks=(500, -1))
    with pytest.raises(ValueError, match="split_every must be an integer ≥ 2"):
        DaskEngine(Xd, y, split_every=1)
    unknown = Xd[da.from_array(y > 0.5, chunks=500)]  # boolean mask: row chunk sizes unknown
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        DaskEngine(unknown, y[y > 0.5])


LOSS_CASES = [("logistic", {}), ("hinge", {}), ("squared", {}), ("quantile", {"tau": 0.7}),
              ("huber", {"delta": 1.0}), ("student_t", {"nu": 4.0}), ("negbin", {"h": 2.0}),
              ("poisson", {})]
PENALTY_CASES = [("l1", {}), ("elasticnet", {"l1_ratio": 0.4}), ("group", {"groups": (0, 0, 1, 1)}),
                 ("bridge", {"q": 0.8}), ("scad", {"lam": 0.2}), ("mcp", {"lam": 0.2}),
                 ("log", {"eps": 0.5})]


def _fit_both(cluster_client, simulate, loss, penalty, loss_params, penalty_params):
    from smem_dask.losses import get_loss

    rng = np.random.default_rng(21)
    X = rng.normal(size=(1200, 4))
    y = simulate(loss, X @ np.array([0.7, -0.4, 0.0, 0.2]) + 0.1, rng)
    cls = SMEMClassifier if get_loss(loss, **loss_params).is_classifier else SMEMRegressor
    # non-smooth losses stop on the objective change alone: converge them tightly so that the
    # comparison is of solutions, not of where two rounding-different trajectories stopped
    tol = 1e-9 if get_loss(loss, **loss_params).smooth else 1e-14
    settings = dict(loss=loss, penalty=penalty, loss_params=loss_params,
                    penalty_params=penalty_params, alpha=0.01, tol=tol, max_iter=3000)
    ref = cls(**settings).fit(X, y)
    with dask.config.set(scheduler=cluster_client):
        est = cls(**settings).fit(da.from_array(X, chunks=((100, 350, 250, 500), -1)),
                                  da.from_array(y, chunks=300))
    _close(est.coef_, ref.coef_)
    assert est.intercept_ == pytest.approx(ref.intercept_, rel=1e-10, abs=1e-12)


@pytest.mark.distributed
@pytest.mark.parametrize("loss, params", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_every_loss_on_a_cluster_equals_in_memory(cluster_client, simulate, loss, params):
    _fit_both(cluster_client, simulate, loss, "l2", params, {})


@pytest.mark.distributed
@pytest.mark.parametrize("penalty, params", PENALTY_CASES, ids=[c[0] for c in PENALTY_CASES])
def test_every_penalty_on_a_cluster_equals_in_memory(cluster_client, simulate, penalty, params):
    _fit_both(cluster_client, simulate, "squared", penalty, {}, params)


def _misaligned(a: np.ndarray, offset: int = 3) -> np.ndarray:
    """A copy of ``a`` whose data start ``offset`` bytes past an 8-byte boundary, like a block that
    arrived from another worker inside a network buffer."""
    raw = np.zeros(a.nbytes + 64, dtype=np.uint8)
    start = (-raw.ctypes.data) % 64 + offset
    out = np.frombuffer(raw[start:start + a.nbytes], dtype=a.dtype).reshape(a.shape)
    out[...] = a
    return out


def test_a_block_in_a_misaligned_buffer_gives_bitwise_the_same_statistics(logistic_problem):
    """Blocks moved between workers arrive at any byte offset; without the kernel's aligned copy
    their Gram differed from the aligned block's by ~1e-13 (so persisted fits were not bitwise
    reproducible)."""
    from smem_dask.engine import _pass_kernel
    from smem_dask.losses import get_loss
    from smem_dask.stats import Request

    X, y = logistic_problem
    Xb, yb = X[:1500], y[:1500]
    bad_X, bad_y = _misaligned(Xb), _misaligned(yb)
    assert not bad_X.flags.aligned and not bad_y.flags.aligned
    beta = np.linspace(-1, 1, X.shape[1] + 1)
    kw = dict(loss=get_loss("logistic"), requests=[Request(beta[:, None], beta)], fit_intercept=True)
    np.testing.assert_array_equal(_pass_kernel(bad_X, bad_y, None, **kw), _pass_kernel(Xb, yb, None, **kw))


@pytest.mark.parametrize("persist", [True, False])
def test_an_engine_reads_no_data_before_its_first_pass(persist):
    """Persisting happens at the first pass, not when the engine is made: the solver's and the path's
    checks all run before any data is read. Persisted, each block is read once by the first pass;
    streamed, once per pass. The fit equals the in-memory one (Squared + ridge: closed form)."""
    rng = np.random.default_rng(3)
    X0 = rng.normal(size=(400, 3))
    y0 = X0 @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=400)
    reads = []

    def load(block):
        reads.append(block.shape[0])
        return block

    Xd = da.from_array(X0, chunks=(100, 3)).map_blocks(load, dtype=np.float64,
                                                        meta=np.empty((0, 0)))
    with dask.config.set(scheduler="sync"):
        eng = DaskEngine(Xd, da.from_array(y0, chunks=100), persist=persist)
        assert reads == []
        fit = fit_em(eng, Squared(), L2(), 1e-2, config=SolverConfig(tol=1e-12))
    assert len(reads) == 4 * (1 if persist else fit.n_passes)
    A = np.column_stack([X0, np.ones(400)])
    D = np.diag([1.0, 1.0, 1.0, 0.0]) * 400 * 1e-2
    expected = np.linalg.solve(A.T @ A + D, A.T @ y0)
    np.testing.assert_allclose(np.r_[fit.coef, fit.intercept], expected, rtol=1e-10, atol=1e-12)
