"""The names the solver's settings take: each list defined here once, validated by
:class:`smem_dask.solver.SolverConfig` (which re-exports them) and offered by the command line;
likewise the cross-validation's scorings and selection rules (validated by :mod:`smem_dask.cv` and
the CV estimators), and the covariance types of the standard errors (:mod:`smem_dask.inference`).

Names only — what a name means is decided in ``SolverConfig``'s properties, the one place where the
strings are compared. Light on purpose: numpy and scipy (through :mod:`smem_dask.curvature`), no
dask, zarr or scikit-learn, so that the command line can build its parser without them.
"""

from __future__ import annotations

from .curvature import AUTO, MODES

__all__ = ["ACCELERATIONS", "COV_TYPES", "CURVATURES", "PENALTY_SOLVERS", "SCORINGS", "SELECTIONS"]

ACCELERATIONS = ("none", "nesterov", "nesterov-restart")
PENALTY_SOLVERS = ("em", "exact")
CURVATURES = (AUTO, *MODES)  # ("auto", "adaptive", "fixed", "cached", "newton")
#: the held-out scores a cross-validation computes (which apply depends on the loss:
#: :func:`smem_dask.cv.scorings_for`)
SCORINGS = ("loss", "misclassification", "squared_error", "absolute_error")
#: how a cross-validation picks α: the least mean held-out score, or glmnet's one-standard-error rule
SELECTIONS = ("min", "1se")
#: the covariances of a fit's standard errors (smem_dask.inference)
COV_TYPES = ("nonrobust", "HC0", "HC1", "cluster")
