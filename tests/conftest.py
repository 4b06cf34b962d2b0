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


def simulate_targets(loss_name, eta, rng):
    """Targets of the kind ``loss_name`` expects, drawn around the linear predictor ``eta``."""
    prob = 1 / (1 + np.exp(-eta))
    if loss_name in ("logistic", "hinge"):
        return (rng.random(len(eta)) < prob).astype(float)
    if loss_name == "negbin":
        return rng.negative_binomial(2.5, 1 - prob).astype(float)
    if loss_name == "poisson":
        return rng.poisson(np.exp(eta)).astype(float)
    return eta + rng.standard_t(4, len(eta))


@pytest.fixture(scope="session")
def simulate():
    return simulate_targets
