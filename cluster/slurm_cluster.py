"""Start Dask workers as SLURM jobs with dask-jobqueue and keep them up until Ctrl-C.

    pip install dask-jobqueue
    python cluster/slurm_cluster.py --jobs 4 --memory 16GiB --cores 4 --walltime 02:00:00 \
        --queue normal --account myproject --scheduler-file $HOME/smem-scheduler.json
    # in another shell on the login node (or in a batch job):
    smem-dask fit /shared/data.zarr --scheduler-file $HOME/smem-scheduler.json

UNTESTED HERE: the machine this project is developed on has no SLURM. The options used are
dask-jobqueue's documented ``SLURMCluster`` parameters; check them against your site's rules
(some sites forbid --mem and want job_extra_directives=["--mem-per-cpu=…"]). The data must be on a
file system every compute node sees, at the same path. One worker process per core with one
thread each is what smem-dask's block kernel is measured with (cluster/README.md).
"""

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="SLURM jobs (one node each)")
    parser.add_argument("--cores", type=int, default=4, help="cores per job = worker processes")
    parser.add_argument("--memory", default="16GiB", help="memory per job, shared by its workers")
    parser.add_argument("--walltime", default="01:00:00")
    parser.add_argument("--queue", default=None, help="SLURM partition (#SBATCH -p)")
    parser.add_argument("--account", default=None, help="SLURM account (#SBATCH -A)")
    parser.add_argument("--interface", default=None,
                        help="network interface the workers listen on, e.g. ib0")
    parser.add_argument("--scheduler-file", required=True,
                        help="where to write the scheduler's address for smem-dask")
    args = parser.parse_args()

    from dask_jobqueue import SLURMCluster
    from distributed import Client

    # plain TCP inside the site's network; for TLS pass protocol="tls://" and
    # security=distributed.security.Security(...) built from cluster/tls/make-certs.sh's files.
    # The scheduler's and workers' HTTP servers (dashboard, health, metrics; plain HTTP) listen on
    # loopback only: open the dashboard with ssh -L 8787:127.0.0.1:8787 LOGIN-NODE
    with SLURMCluster(
        cores=args.cores, processes=args.cores, memory=args.memory, walltime=args.walltime,
        queue=args.queue, account=args.account, interface=args.interface,
        scheduler_options={"dashboard_address": "127.0.0.1:8787"},
        worker_extra_args=["--dashboard-address", "127.0.0.1:0"],
    ) as cluster, Client(cluster) as client:
        print(cluster.job_script())
        cluster.scale(jobs=args.jobs)
        client.write_scheduler_file(args.scheduler_file)
        print(f"scheduler {cluster.scheduler_address}; wrote {args.scheduler_file}; waiting for "
              f"{args.jobs * args.cores} workers (Ctrl-C, or kill -INT, to stop them all)")
        try:
            client.wait_for_workers(args.jobs * args.cores)
            print("all workers are up")
            while True:
                time.sleep(60)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
