"""``python -m benchmarks NAME [options]``: run one benchmark (``path``, ``paper``, ``scale``, ``chunks``,
``cv``, ``beyond_ram``, ``multinomial``, ``sparse``)."""

from __future__ import annotations

import sys

BENCHMARKS = {
    "path": "regularization path: sharing modes versus 40 cold fits",
    "paper": "SM-EM versus tuned Adam, MoMo, MomoAdam, EGOP-Adam, L-BFGS (needs the bench extra)",
    "scale": "out of core: EM pass versus the limit pass, time to the optimum versus dask-ml, "
             "scikit-learn, glum",
    "chunks": "zarr codec and chunk size: bytes on disk, read pass and EM pass per store",
    "cv": "cross-validated paths: lockstep CV versus K + 1 separate paths and scikit-learn's "
          "LogisticRegressionCV, in memory and streamed",
    "beyond_ram": "a zarr store larger than memory fitted from disk: each EM pass against the disk's "
                  "read rate, passes, worker memory",
    "multinomial": "K classes: SM-EM (Newton, Böhning's bound; in memory and from zarr) versus "
                   "scikit-learn's multinomial LogisticRegression",
    "sparse": "scipy CSR X: the pass kernel on CSR against dense across densities (the crossover)",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in BENCHMARKS:
        print("usage: python -m benchmarks NAME [options]   (NAME --help for its options)\n")
        for name, what in BENCHMARKS.items():
            print(f"  {name:8s} {what}")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    if argv[0] == "path":
        from . import path

        path.main(argv[1:])
    elif argv[0] == "paper":
        from . import paper

        paper.main(argv[1:])
    elif argv[0] == "scale":
        from . import scale

        scale.main(argv[1:])
    elif argv[0] == "chunks":
        from . import chunks

        chunks.main(argv[1:])
    elif argv[0] == "cv":
        from . import cv

        cv.main(argv[1:])
    elif argv[0] == "beyond_ram":
        from . import beyond_ram

        beyond_ram.main(argv[1:])
    elif argv[0] == "multinomial":
        from . import multinomial

        multinomial.main(argv[1:])
    elif argv[0] == "sparse":
        from . import sparse

        sparse.main(argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
