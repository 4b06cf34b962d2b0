"""Regularization paths of the multinomial loss: an α grid from α_max down, in lockstep.

The start needs one pass: at Θ = 0 it gives S = Σ s x̃x̃ᵀ (the one Gram every α shares: Böhning's
matrix, and the shift curvature of Newton's) and the gradient, from which follow without another
pass the class totals W_k (the intercept rows of the gradient are W/K − W_k), the intercept-only
optimum b_k = log W_k − mean_l log W_l (centred), and the gradient there, whose size gives α_max —
for lasso, elastic net and group the smallest α at which every coefficient is zero, for ridge
``RIDGE_ALPHA_MAX_FACTOR`` times its largest entry, as for the binary losses. The α then run in
batches, every α of a batch in the same passes (:func:`~smem_dask.solver.run_lockstep`), each batch
starting where the previous one's smallest α ended. No dask here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from .losses import Multinomial
from .multinomial import MultinomialResult, check_supported, class_penalty, multinomial_iterations, theta_of
from .path import (
    ALPHA_MAX_MARGIN,
    LOCKSTEP_GRAM_BUDGET,
    RIDGE_ALPHA_MAX_FACTOR,
    PathResult,
    alpha_grid,
    checked_alphas,
    path_result,
)
from .penalties import Penalty
from .solver import ConvergenceWarning, SolverConfig, Stop, run_lockstep
from .stats import Request

__all__ = ["multinomial_start", "solve_multinomial_path"]


def multinomial_start(engine, n_classes: int, penalty: Penalty, *, fit_intercept: bool = True):
    """One pass at Θ = 0: (S, W, Θ_start, α_max) — the shared Gram, the total weight, the
    intercept-only optimum and the largest α of the grid (see the module docstring)."""
    K, p = int(n_classes), engine.n_features
    q = p + int(fit_intercept)
    zero = np.zeros((q, K))
    (st,) = engine.stats_many(Multinomial(), [Request(zero, zero[:, 0], curvature=1.0, classes=K)],
                              fit_intercept)
    S, W, grad0 = st.gram, st.weight, st.grad
    theta = zero.copy()
    if fit_intercept:
        totals = W / K - grad0[p]  # W_k: Σ s over the rows of class k
        if not (totals > 0).all():
            raise ValueError("every class needs rows of positive weight")
        logs = np.log(totals)
        theta[p] = logs - logs.mean()
        # at the start every row has π = W_k / W: ∇_B = (W_k/W) Σ s x − Σ_{class k} s x
        sx = S[:p, p]
        class_sums = sx[:, None] / K - grad0[:p]
        grad = sx[:, None] * (totals / W)[None, :] - class_sums
    else:
        grad = grad0[:p]
    threshold = class_penalty(penalty, p, K).zero_threshold(grad.ravel() / W)
    if threshold is not None:
        threshold *= 1.0 + ALPHA_MAX_MARGIN
    else:
        threshold = RIDGE_ALPHA_MAX_FACTOR * float(np.abs(grad).max() / W)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError("the loss gradient at the intercept-only fit vanishes: every α gives zero "
                         "coefficients")
    return S, W, theta, threshold


def solve_multinomial_path(engine, n_classes: int, penalty: Penalty, *, alphas=None, n_alphas: int = 40,
                           eps: float = 1e-3, fit_intercept: bool = True, config: SolverConfig | None = None,
                           mode: str = "newton", batch="auto",
                           callback: Callable[[int, float, MultinomialResult], None] | None = None,
                           stop: Stop | None = None) -> PathResult:
    """The multinomial path over ``engine`` (y: class indices as floats), largest α first.

    ``batch``: α per lockstep batch — "auto" as many as their (qK)² Newton systems fit in
    ``LOCKSTEP_GRAM_BUDGET`` (every α under Böhning's bound, which has none), or an integer.
    ``callback(i, alpha, fit)`` runs as α i finishes. Returns a
    :class:`~smem_dask.path.PathResult` whose ``coefs`` are (n_alphas, K, p) and ``intercepts``
    (n_alphas, K).
    """
    config = config or SolverConfig()
    stop = Stop.after(config.max_time) if stop is None else stop
    K, p = int(n_classes), engine.n_features
    q = p + int(fit_intercept)
    check_supported(penalty, 1.0)
    given = checked_alphas(alphas, n_alphas, eps)  # before any pass
    passes_before = engine.n_passes
    S, W, theta, a_max = multinomial_start(engine, K, penalty, fit_intercept=fit_intercept)
    grid = alpha_grid(a_max, n_alphas, eps) if given is None else given
    n = len(grid)
    if batch == "auto":
        size = n if mode == "fixed" else max(1, LOCKSTEP_GRAM_BUDGET // (8 * (q * K) ** 2))
    else:
        if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ValueError(f"batch must be 'auto' or a positive integer, got {batch!r}")
        size = int(batch)
    fits: list[MultinomialResult | None] = [None] * n
    stopped = None
    for first in range(0, n, size):
        idx = list(range(first, min(first + size, n)))
        gens = [multinomial_iterations(K, penalty, grid[i], p, fit_intercept=fit_intercept,
                                       config=config, mode=mode, stop=stop, theta0=theta, gram=S)
                for i in idx]

        def done(j, fit, idx=idx):
            fits[idx[j]] = fit
            if callback is not None:
                callback(idx[j], float(grid[idx[j]]), fit)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # summarized below, once
            run_lockstep(engine, Multinomial(), fit_intercept, gens, on_done=done)
        last = fits[idx[-1]]
        theta = theta_of(last, fit_intercept)
        stopped = next((fits[i].stopped for i in idx if fits[i].stopped), None)
        if stopped is not None:
            break
    result = path_result(grid, fits, p, np.zeros(n, dtype=bool), 1, engine.n_passes - passes_before,
                         stopped, n_classes=K)
    bad = [i for i, f in enumerate(fits) if f is not None and not f.converged and f.stopped is None]
    if bad:
        warnings.warn(f"{len(bad)} of {n} multinomial path fits did not converge (alpha "
                      f"{', '.join(f'{grid[i]:.4g}' for i in bad[:3])}{', …' if len(bad) > 3 else ''}); "
                      "increase max_iter or tol", ConvergenceWarning, stacklevel=2)
    return result
