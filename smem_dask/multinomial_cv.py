"""Cross-validated multinomial paths: the K training paths and the all-rows path in the same passes.

As :mod:`smem_dask.cv` for the binary losses (folds as sample weights, every (path, α) fit riding on
the same passes, held-out scores of finished fold fits riding on the next pass, glmnet's selection
rule), with the multinomial solver of :mod:`smem_dask.multinomial`. The start takes two passes: the
all-rows one of :func:`~smem_dask.multinomial_path.multinomial_start` (the grid, and the intercept-only
fit every path starts from) and one forming each fold's held-out Gram Σ s x̃x̃ᵀ, rows and weight; a
path's shared Gram S is the sum over the folds it trains on. Scores: the held-out loss (softmax
cross-entropy per unit weight) and the misclassification rate (the largest η not the row's class).
No store yet. No dask here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .cv import CVResult, _check_folds, _Scores, report_alpha, run_batch, scorings_for, selected
from .losses import Multinomial
from .multinomial import MultinomialResult, check_supported, multinomial_iterations, theta_of
from .multinomial_path import multinomial_start
from .path import LOCKSTEP_GRAM_BUDGET, alpha_grid, checked_alphas, lockstep_size, path_result
from .penalties import Penalty
from .solver import SolverConfig, Stop, on_rows, run_lockstep
from .stats import Request

__all__ = ["solve_multinomial_cv"]


class _MultinomialScores(_Scores):
    """Held-out scores of multinomial fits: each scored at its (q, K) coefficients."""

    def __init__(self, n_classes: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_classes = n_classes

    def add(self, fold: int, i: int, fit: MultinomialResult) -> None:
        theta = theta_of(fit, self.fit_intercept)
        self.waiting.append((fold, i, Request(theta, classes=self.n_classes, fold=fold, held_out=True,
                                              metrics=True)))


def solve_multinomial_cv(engine, n_classes: int, penalty: Penalty, n_folds: int, *, alphas=None,
                         n_alphas: int = 40, eps: float = 1e-3, fit_intercept: bool = True,
                         config: SolverConfig | None = None, mode: str = "newton", batch="auto",
                         scoring: str = "loss",
                         callback: Callable[[int, float, dict], None] | None = None) -> CVResult:
    """The cross-validated multinomial path over ``engine`` (y: class indices as floats; its
    ``folds``: ids 0 … n_folds − 1); returns a :class:`~smem_dask.cv.CVResult` whose paths hold
    (n_alphas, K, p) coefficients. ``batch``, ``callback``: as :func:`smem_dask.cv.solve_cv`
    ("auto": as many α as the (K + 1) Newton systems per α fit in ``LOCKSTEP_GRAM_BUDGET``, every α
    under Böhning's bound)."""
    config = config or SolverConfig()
    Kc, p = int(n_classes), engine.n_features
    q = p + int(fit_intercept)
    check_supported(penalty, 1.0)
    loss = Multinomial()
    if scoring not in scorings_for(loss):
        raise ValueError(f"scoring {scoring!r} does not apply to the multinomial loss; choose one of "
                         f"{', '.join(scorings_for(loss))}")
    if getattr(engine, "folds", None) is None:
        raise ValueError("the engine has no fold ids: make it with folds=…")
    K = int(n_folds)
    if K < 2:
        raise ValueError(f"n_folds must be ≥ 2, got {n_folds!r}")
    explicit = lockstep_size(batch, alphas, n_alphas)
    given = checked_alphas(alphas, n_alphas, eps)
    stop = Stop.after(config.max_time)
    passes_at_start = engine.n_passes
    _, _, theta, a_max = multinomial_start(engine, Kc, penalty, fit_intercept=fit_intercept)
    grid = alpha_grid(a_max, n_alphas, eps) if given is None else given
    n = len(grid)
    zero = np.zeros((q, Kc))
    held = engine.stats_many(loss, [Request(zero, zero[:, 0], curvature=1.0, classes=Kc, fold=k,
                                            held_out=True) for k in range(K)], fit_intercept)
    fold_rows = np.array([st.n for st in held])
    fold_weights = np.array([st.weight for st in held])
    _check_folds(fold_rows, fold_weights, engine.n_samples, K)
    grams = [sum(st.gram for st in held)] + [sum(held[j].gram for j in range(K) if j != k)
                                             for k in range(K)]
    start_passes = engine.n_passes - passes_at_start
    if explicit is not None:
        size = explicit
    elif mode == "fixed":
        size = n
    else:
        size = max(1, min(n, LOCKSTEP_GRAM_BUDGET // (8 * (q * Kc) ** 2) // (K + 1)))
    folds = [None, *range(K)]
    fits: list[list[MultinomialResult | None]] = [[None] * n for _ in folds]

    def report(i):
        report_alpha(i, grid, fits, scores.values, scoring, fold_weights, callback)

    scores = _MultinomialScores(Kc, loss, K, n, p, fit_intercept, lambda k, i, row: report(i))
    starts = [theta] * (K + 1)
    stopped = None
    for first in range(0, n, size):
        members = range(first, min(first + size, n))
        last = members[-1]
        todo = [(j, i) for j in range(K + 1) for i in members]

        def finished(t, fit, todo=todo):
            j, i = todo[t]
            fits[j][i] = fit
            if fit.stopped is not None:
                return
            if j > 0:
                scores.add(j - 1, i, fit)
            else:
                report(i)

        gens = [on_rows(multinomial_iterations(Kc, penalty, grid[i], p, fit_intercept=fit_intercept,
                                               config=config, mode=mode, stop=stop, theta0=starts[j],
                                               gram=grams[j]), folds[j])
                for j, i in todo]
        stopped = run_batch(engine, loss, fit_intercept, gens, finished, scores, fits, todo,
                            stop, last < n - 1)
        if stopped is not None:
            break
        starts = [theta_of(fits[j][last], fit_intercept) for j in range(K + 1)]
    if scores.waiting:
        run_lockstep(engine, loss, fit_intercept, [], riders=scores)
    total = engine.n_passes - passes_at_start
    resumed = np.zeros(n, dtype=bool)
    results = [path_result(grid, fits[j], p, resumed, start_passes if j == 0 else 0, total, stopped,
                           n_classes=Kc) for j in range(K + 1)]
    return selected(results, scores.values, scoring, fold_rows, fold_weights, total, stop, stopped,
                    None, np.zeros((K + 1, n), dtype=bool), fits)
