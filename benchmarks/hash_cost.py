"""What the data's full checksum costs: one EM pass over a zarr store plain, with every block hashed
(the first pass of a path with a store, or its resume's verification pass), and with the sampled
block alone hashed (the first pass of a distributed fit, checking the workers' read).

    python -m benchmarks.hash_cost STORE [--workers 2 --memory-limit 2GiB --repeats 9]

Prints the medians of interleaved rounds on a fresh LocalCluster (single-threaded workers); writes
no results file.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hash_cost",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("store", help="a data store written by smem_dask.data.write_zarr")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)

    import dask
    from distributed import Client, LocalCluster

    from smem_dask.arrays import as_array
    from smem_dask.data import open_store
    from smem_dask.engine import DaskEngine
    from smem_dask.losses import Logistic
    from smem_dask.stats import Request

    X, y = open_store(args.store)
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=False) as client, dask.config.set(scheduler=client):
        engine = DaskEngine(as_array(X, "X"), as_array(y, "y"))
        q = engine.n_features + 1
        requests = [Request(np.zeros((q, 1)), np.zeros(q))]
        graphs = {"plain": engine.pass_graph(Logistic(), requests, True),
                  "every block hashed": engine.pass_graph(Logistic(), requests, True, checksum=True),
                  "sampled block hashed": engine.pass_graph(Logistic(), requests, True, checksum=True,
                                                            full=False)}
        for graph in graphs.values():  # warm-up
            graph.compute()
        times = {name: [] for name in graphs}
        rng = np.random.default_rng(0)
        for _ in range(args.repeats):
            for i in rng.permutation(len(graphs)):
                name = list(graphs)[i]
                t = time.perf_counter()
                graphs[name].compute()
                times[name].append(time.perf_counter() - t)
    base = float(np.median(times["plain"]))
    print(f"{X.shape[0]:,} × {X.shape[1]} {X.dtype}, {engine.n_blocks} blocks, {args.workers} workers; "
          f"medians of {args.repeats} interleaved rounds")
    for name, ts in times.items():
        print(f"  EM pass, {name:22s} {np.median(ts):.3f} s  ({np.median(ts) / base:.2f} × plain)")


if __name__ == "__main__":
    main()
