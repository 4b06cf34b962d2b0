"""Regularization paths: an α grid from α_max down, solved large to small with warm starts.

Sharing across α (SPEC §6): the loss sums, loss gradients and M-step systems do not depend on α, so
each α starts from where the previous one ended — its coefficients *and* its last M-step system —
and its first M-step needs no data pass. No dask here: the path runs over any engine.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from .losses import Loss
from .penalties import L1, Penalty
from .solver import ConvergenceWarning, FitResult, SolverConfig, fit_em

__all__ = ["PathResult", "alpha_max", "alpha_grid", "solve_path", "RIDGE_ALPHA_MAX_FACTOR"]

#: α_max sits this far above the exact threshold, so rounding cannot leave a 1e-14 coefficient there
ALPHA_MAX_MARGIN = 1e-9

#: a penalty without a zero threshold (ridge, bridge q > 1, …) starts its path at this multiple of
#: the largest loss-gradient entry at β = 0, where the coefficients are about 1e-3 of ‖∇‖/α-scale
RIDGE_ALPHA_MAX_FACTOR = 1e3


@dataclass
class PathResult:
    """One fit per α, largest α first."""

    alphas: np.ndarray
    coefs: np.ndarray  # (n_alphas, p)
    intercepts: np.ndarray
    objectives: np.ndarray
    n_iter: np.ndarray
    n_passes: np.ndarray  # data passes of each α (its share of the shared start included in α_0)
    converged: np.ndarray
    fits: list[FitResult] = field(default_factory=list, repr=False)

    @property
    def total_passes(self) -> int:
        return int(self.n_passes.sum())


def alpha_max(engine, loss: Loss, penalty: Penalty, *, fit_intercept: bool = True,
              config: SolverConfig | None = None) -> tuple[float, FitResult]:
    """α_max: for l1, elastic net and group the smallest α with every penalized coefficient zero
    (times 1 + ``ALPHA_MAX_MARGIN``);
    for other penalties ``RIDGE_ALPHA_MAX_FACTOR`` × max|∇_j loss| at β = 0 (documented large α).

    The loss gradient is taken at β = 0 with the intercept at its own optimum (an intercept-only
    fit: a few cheap passes), whose result is returned to warm-start the path.
    """
    config = config or SolverConfig()
    p = engine.n_features
    # an intercept-only fit: l1 with an enormous α holds every coefficient at exactly 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = fit_em(engine, loss, L1(), 1e30, fit_intercept=fit_intercept,
                       config=replace(config, penalty_solver="exact", acceleration="none"))
    grad = start.warm.loss_grad[:p] / start.warm.system.weight
    threshold = penalty.zero_threshold(grad)
    if threshold is not None:
        threshold *= 1.0 + ALPHA_MAX_MARGIN
    else:
        threshold = RIDGE_ALPHA_MAX_FACTOR * float(np.abs(grad).max())
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError("the loss gradient at β = 0 vanishes: every α gives β = 0")
    return threshold, start


def alpha_grid(a_max: float, n_alphas: int = 40, eps: float = 1e-3) -> np.ndarray:
    """``n_alphas`` values log-evenly spaced from ``a_max`` down to ``a_max·eps``."""
    if n_alphas < 1:
        raise ValueError(f"n_alphas must be ≥ 1, got {n_alphas}")
    if not 0 < eps < 1:
        raise ValueError(f"eps must be in (0, 1), got {eps}")
    return a_max * np.logspace(0.0, math.log10(eps), n_alphas)


def solve_path(engine, loss: Loss, penalty: Penalty, *, alphas=None, n_alphas: int = 40,
               eps: float = 1e-3, fit_intercept: bool = True,
               config: SolverConfig | None = None) -> PathResult:
    """Fit every α of the grid, largest first, each warm-started from the previous one's
    coefficients and last M-step system (no first pass per α)."""
    config = config or SolverConfig()
    passes_at_start = engine.n_passes
    warm = None
    if alphas is None:
        a_max, start = alpha_max(engine, loss, penalty, fit_intercept=fit_intercept, config=config)
        alphas = alpha_grid(a_max, n_alphas, eps)
        warm = start.warm
    else:
        alphas = np.asarray(alphas, dtype=np.float64).ravel()
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
            raise ValueError("alphas must be a non-empty sequence of finite numbers ≥ 0")
        alphas = np.sort(alphas)[::-1]
    fits = []
    passes = []
    before = passes_at_start
    for alpha in alphas:
        fit = fit_em(engine, loss, penalty, alpha, fit_intercept=fit_intercept, config=config,
                     warm=warm)
        warm = fit.warm
        passes.append(engine.n_passes - before)
        before = engine.n_passes
        fits.append(fit)
    return PathResult(
        alphas=alphas,
        coefs=np.array([f.coef for f in fits]),
        intercepts=np.array([f.intercept for f in fits]),
        objectives=np.array([f.objective for f in fits]),
        n_iter=np.array([f.n_iter for f in fits]),
        n_passes=np.array(passes),
        converged=np.array([f.converged for f in fits]),
        fits=fits,
    )
