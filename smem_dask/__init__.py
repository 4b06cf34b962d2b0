r"""smem_dask — regularized linear models on larger-than-memory data by Scale Mixture EM on Dask.

Every estimator, solver and path in this package minimizes one objective (docs/method.md, "The
objective"):

    F(β, b) = (1/W) Σ_i s_i · ℓ(y_i, η_i) + α · P(β),     η_i = x_iᵀβ + b,   W = Σ_i s_i

with sample weights s_i (default 1, so W = n) and an unpenalized intercept b. With the logistic loss
and P(β) = ½‖β‖², scikit-learn's ``LogisticRegression(C)`` is the same model with α = 1/(C·n).

Each EM iteration makes one pass over the data: per row block, the E-step weights ω_i, the weighted
Gram Xᵀ S Ω X and moment vector; summed over blocks, they give a p×p system solved on the client
(the M-step). No learning rate; with ``acceleration="none"`` or ``"nesterov-restart"`` the objective
never increases.
"""

from .data import make_problem, open_store, write_zarr
from .engine import DaskEngine, NumpyEngine
from .estimators import SMEMClassifier, SMEMRegressor, fit_path
from .losses import (
    Hinge,
    Huber,
    Logistic,
    Loss,
    NegativeBinomial,
    Poisson,
    Quantile,
    Squared,
    StudentT,
)
from .path import PathResult
from .penalties import L1, L2, MCP, SCAD, Bridge, ElasticNet, Group, Log, Penalty
from .solver import ConvergenceWarning, FitResult, SingularSystemWarning, SolverConfig, fit_em

__version__ = "0.1.0"

__all__ = [
    "MCP",
    "SCAD",
    "Bridge",
    "ConvergenceWarning",
    "DaskEngine",
    "ElasticNet",
    "FitResult",
    "Group",
    "Hinge",
    "Huber",
    "L1",
    "L2",
    "Log",
    "Logistic",
    "Loss",
    "NegativeBinomial",
    "NumpyEngine",
    "PathResult",
    "Penalty",
    "Poisson",
    "Quantile",
    "SMEMClassifier",
    "SMEMRegressor",
    "SingularSystemWarning",
    "SolverConfig",
    "Squared",
    "StudentT",
    "fit_em",
    "fit_path",
    "make_problem",
    "open_store",
    "write_zarr",
    "__version__",
]
