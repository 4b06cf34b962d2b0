"""The names the solver's settings take: each list defined here once, validated by
:class:`smem_dask.solver.SolverConfig` (which re-exports them) and offered by the command line.

Names only — what a name means is decided in ``SolverConfig``'s properties, the one place where the
strings are compared. Light on purpose: numpy and scipy (through :mod:`smem_dask.curvature`), no
dask, zarr or scikit-learn, so that the command line can build its parser without them.
"""

from __future__ import annotations

from .curvature import MODES

__all__ = ["ACCELERATIONS", "CURVATURES", "PENALTY_SOLVERS"]

ACCELERATIONS = ("none", "nesterov", "nesterov-restart")
PENALTY_SOLVERS = ("em", "exact")
CURVATURES = tuple(MODES)  # ("adaptive", "fixed", "cached")
