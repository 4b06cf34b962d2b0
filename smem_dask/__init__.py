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

The names below are imported on first use (PEP 562), so that ``import smem_dask.cli`` — which
imports this package first — costs what the command line needs, not dask, zarr and scikit-learn.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: where each public name lives (module of this package)
_SOURCES = {
    "cv": ("CVResult", "solve_cv"),
    "cv_estimators": ("SMEMClassifierCV", "SMEMRegressorCV", "fit_cv"),
    "data": ("make_problem", "open_store", "write_zarr"),
    "engine": ("DaskEngine", "NumpyEngine"),
    "folds": ("generated_folds",),
    "estimators": ("SMEMClassifier", "SMEMRegressor", "fit_path"),
    "losses": ("Hinge", "Huber", "Logistic", "Loss", "NegativeBinomial", "Poisson", "Quantile",
               "Squared", "StudentT"),
    "path": ("PathResult",),
    "penalties": ("L1", "L2", "MCP", "SCAD", "Bridge", "ElasticNet", "Group", "Log", "Penalty"),
    "solver": ("ConvergenceWarning", "FitResult", "SingularSystemWarning", "SolverConfig", "fit_em"),
}
_MODULE_OF = {name: module for module, names in _SOURCES.items() for name in names}

__all__ = sorted(_MODULE_OF) + ["__version__"]


def __getattr__(name: str):
    """A public name, imported from its module on first use (then cached in this package)."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
