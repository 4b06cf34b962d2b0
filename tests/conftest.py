"""Shared fixtures: small problems and one real distributed cluster (worker processes)."""

import numpy as np
import pytest

from smem_dask.data import make_problem


@pytest.fixture(scope="session")
def cluster_client():
    """A ``distributed`` LocalCluster of 2 worker processes, not installed as the default scheduler.

    Tests select it explicitly with ``dask.config.set(scheduler=cluster_client)``.
    """
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="session")
def logistic_problem():
    """A small ill-conditioned logistic problem: cond(XᵀX) = 1e6, n = 3000, p = 8."""
    return make_problem(3000, 8, cond=1e6, seed=11)


@pytest.fixture(scope="session")
def regression_problem():
    return make_problem(2000, 6, cond=1e4, seed=5, task="regression")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
