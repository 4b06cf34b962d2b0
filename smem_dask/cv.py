"""Cross-validated regularization paths: the K training paths and the all-rows path in the same passes.

A K-fold cross-validated path is K + 1 paths over one α grid: one on the training rows of each fold
(every row but those of fold k) and one on all rows. The training set of fold k is the data with
sample weights s_i·[fold_i ≠ k], so one read of a block serves every fit of every path: each data
pass carries one request per running (path, α) fit, each summing over its own rows (see
:class:`~smem_dask.blockstats.Request` ``fold``). A fit of fold k that finishes is scored on the
held-out rows of fold k by a request that rides on the next pass (a column of X·B that the pass
reads anyway); only the scores of the last fits to finish take one pass of their own.

Held-out scores of fit (k, α), over the rows of fold k with W_k = Σ_{fold_i = k} s_i:
``loss`` (1/W_k) Σ s_i ℓ(y_i, η_i), in the objective's units; for classifiers
``misclassification`` (1/W_k) Σ s_i [(η_i > 0) ≠ (y_i = 1)]; for regressors ``squared_error`` and
``absolute_error`` (1/W_k) Σ s_i (y_i − ŷ_i)² and |y_i − ŷ_i| with ŷ the estimator's prediction.

Selection (glmnet's rule): the mean score of α pools the folds, m(α) = Σ_k W_k S_k(α) / Σ_k W_k, its
standard error is se(α) = √(Σ_k W_k (S_k(α) − m(α))² / Σ_k W_k / (K − 1)); α_min minimizes m, and
α_1se is the largest α with m(α) ≤ m(α_min) + se(α_min). The coefficients at the chosen α are the
all-rows path's (no refit). No dask here: the folds are the engine's (its ``folds``, ids 0 … K−1).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .blockstats import METRICS, BlockStats, Request, metric_sums
from .curvature import auto_curvature, make_curvature
from .cv_store import CVStore
from .losses import Loss
from .path import (
    LOCKSTEP_GRAM_BUDGET,
    PathResult,
    alpha_grid,
    alpha_max,
    checked_alphas,
    lockstep_size,
    path_result,
)
from .penalties import Penalty
from .settings import SCORINGS  # the held-out scores; which apply depends on the loss
from .solver import (
    ConvergenceWarning,
    FitResult,
    SolverConfig,
    Stop,
    em_iterations,
    on_rows,
    run_lockstep,
    warm_starts,
)

__all__ = ["CVResult", "NothingToSelectError", "SCORINGS", "cv_selection", "default_curvature",
           "scorings_for", "solve_cv"]

_METRIC_OF = {"misclassification": "misclassified", "squared_error": "squared_error",
              "absolute_error": "absolute_error"}


def scorings_for(loss: Loss) -> tuple[str, ...]:
    """The scorings that apply to ``loss``: the held-out loss, and the misclassification rate for
    classifiers or the squared and absolute errors for regressors."""
    return ("loss", "misclassification") if loss.is_classifier else ("loss", "squared_error",
                                                                      "absolute_error")


def default_curvature(loss: Loss) -> str:
    """The curvature mode a cross-validation uses unless told otherwise: what ``curvature="auto"``
    picks for many fits sharing each pass (:func:`smem_dask.curvature.auto_curvature`): ``"fixed"``
    for losses with a bound on ω (logistic, squared, huber) — one Gram per path, formed in the start
    pass, and gradient-only passes for all (K + 1)·n_alphas fits; measured on logistic 5-fold,
    40-α CVs (``python -m benchmarks cv``, benchmarks/results/cv.md): at 5e5 × 50 in memory fixed
    35 s / cached 69 s / adaptive 105 s (ridge) and 110 / 180 / 275 s (lasso), streamed from zarr
    at 2e5 × 50 34 / 47 / 60 s and 94 / 112 / 167 s — the fixed bound takes 1.1–1.15× the passes
    but forms no Gram per fit."""
    return auto_curvature(loss, path=True)


def _check_scoring(loss: Loss, scoring: str) -> str:
    allowed = scorings_for(loss)
    if scoring not in allowed:
        raise ValueError(f"scoring {scoring!r} does not apply to the {loss.name} loss; choose one of "
                         f"{', '.join(allowed)}")
    return scoring


@dataclass
class CVResult:
    """A cross-validated path: the all-rows path, the K training paths and the held-out scores.

    ``scores[name]`` is (K, n_alphas): the held-out score ``name`` (see :data:`SCORINGS`, those that
    apply to the loss) of fold k's fit at each α; NaN where the fit did not finish. ``cv_scores``
    is ``scores[scoring]``; ``cv_mean`` and ``cv_se`` its pooled mean over the folds and the
    standard error of that mean (see the module docstring); ``index_min``/``index_1se`` and
    ``alpha_min``/``alpha_1se`` the selected α (over the α every fold finished).
    """

    alphas: np.ndarray
    path: PathResult
    fold_paths: list[PathResult]
    scores: dict[str, np.ndarray]
    fold_rows: np.ndarray  # rows held out in each fold
    fold_weights: np.ndarray  # W_k = Σ s over each fold's held-out rows
    scoring: str
    cv_mean: np.ndarray
    cv_se: np.ndarray
    index_min: int
    index_1se: int
    total_passes: int = 0
    stopped: str | None = None
    resumed: np.ndarray | None = None  # (K + 1, n_alphas): fits read from a store (row 0: all rows)
    fits: list[list[FitResult | None]] = field(default_factory=list, repr=False)

    @property
    def n_folds(self) -> int:
        return len(self.fold_paths)

    @property
    def cv_scores(self) -> np.ndarray:
        return self.scores[self.scoring]

    @property
    def alpha_min(self) -> float:
        return float(self.alphas[self.index_min])

    @property
    def alpha_1se(self) -> float:
        return float(self.alphas[self.index_1se])

    @property
    def n_nonzero(self) -> np.ndarray:
        """Nonzero coefficients of the all-rows path at each α."""
        coefs = np.nan_to_num(self.path.coefs, nan=0.0)
        return np.count_nonzero(coefs.reshape(coefs.shape[0], -1), axis=1)  # (multinomial: K·p each)


class NothingToSelectError(ValueError):
    """A cross-validation stopped (``max_time``, an interrupt) before any α was finished by every
    fold and the all-rows path: there is no α to select."""


def cv_selection(scores: np.ndarray, fold_weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(mean, se, index_min, index_1se)`` of held-out scores (K, n_alphas) by glmnet's rule (see
    the module docstring; α largest first). Columns with a NaN are not selectable; none left:
    ValueError."""
    scores = np.asarray(scores, dtype=np.float64)
    w = np.asarray(fold_weights, dtype=np.float64)[:, None]
    K = scores.shape[0]
    mean = (w * scores).sum(axis=0) / w.sum()
    se = np.sqrt((w * (scores - mean) ** 2).sum(axis=0) / w.sum() / (K - 1))
    ok = np.isfinite(mean) & np.isfinite(se)
    if not ok.any():
        raise ValueError("no alpha has a held-out score from every fold")
    i_min = int(np.flatnonzero(ok)[np.argmin(mean[ok])])
    within = np.flatnonzero(ok & (mean <= mean[i_min] + se[i_min]))
    return mean, se, i_min, int(within.min())  # the largest α: the grid runs large to small


class _Scores:
    """The held-out scores, filled as fits finish: each finished fold fit is scored by a request
    that rides on the next pass (:class:`~smem_dask.solver.Riders`)."""

    def __init__(self, loss: Loss, n_folds: int, n_alphas: int, p: int, fit_intercept: bool,
                 on_scored: Callable[[int, int, dict], None]):
        self.loss, self.p, self.fit_intercept = loss, p, fit_intercept
        self.values = {name: np.full((n_folds, n_alphas), np.nan) for name in scorings_for(loss)}
        self.waiting: list[tuple[int, int, Request]] = []
        self.on_scored = on_scored

    def add(self, fold: int, i: int, fit: FitResult) -> None:
        beta = np.r_[fit.coef, fit.intercept] if self.fit_intercept else np.asarray(fit.coef)
        self.waiting.append((fold, i, Request(beta, fold=fold, held_out=True, metrics=True)))

    def take(self) -> list[Request]:
        return [r for _, _, r in self.waiting]

    def give(self, requests: list[Request], stats: list[BlockStats]) -> None:
        done, self.waiting = self.waiting[: len(requests)], self.waiting[len(requests):]
        for (k, i, r), st in zip(done, stats, strict=True):
            row = self.row(st, r)
            for name, value in row.items():
                self.values[name][k, i] = value
            self.on_scored(k, i, row)

    def row(self, st: BlockStats, r: Request) -> dict:
        """The held-out scores of one fit from its request's statistics."""
        sums = metric_sums(st, r)[0]
        row = {"loss": float(st.loss[0]) / st.weight}
        for name in scorings_for(self.loss)[1:]:
            row[name] = float(sums[METRICS.index(_METRIC_OF[name])]) / st.weight
        return row


def solve_cv(engine, loss: Loss, penalty: Penalty, n_folds: int, *, alphas=None, n_alphas: int = 40,
             eps: float = 1e-3, fit_intercept: bool = True, config: SolverConfig | None = None,
             batch: int | str = "auto", scoring: str = "loss", store=None, store_settings=None,
             callback: Callable[[int, float, dict], None] | None = None) -> CVResult:
    """The cross-validated path over ``engine``, whose ``folds`` (ids 0 … n_folds − 1) say which
    fold holds each row out; see the module docstring.

    The α grid is the all-rows path's (α_max from all rows, as :func:`~smem_dask.path.solve_path`);
    every path starts at the all-rows intercept-only fit (one pass forms the K + 1 start systems and
    counts each fold's rows). ``batch`` α run in lockstep over all K + 1 paths; ``"auto"``: as many
    as fit the Gram budget of (K + 1) Grams per α (all of them under fixed curvature, where one
    Gram per path serves every α). ``store`` (a directory, see :mod:`smem_dask.cv_store`) keeps
    every path and score as it finishes: a rerun resumes without recomputing them;
    ``store_settings`` are further entries of the settings it records and compares on a rerun
    (e.g. how the folds were made).
    ``callback(i, alpha, row)`` is called when every path has finished α i and every fold's fit
    there is scored: ``row`` holds the held-out mean and standard error of ``scoring`` and of the
    loss, the all-rows fit's nonzeros and objective.
    ``config.max_time`` and a stop request end the CV like a path (unfinished fits are neither
    stored nor scored; one ``ConvergenceWarning``).
    """
    config = (config or SolverConfig()).resolved(loss, penalty, path=True)
    config.check(loss, penalty)
    if not penalty.convex:
        raise ValueError(f"cross-validation of the non-convex penalty {penalty.name!r} is not "
                         "supported")
    scoring = _check_scoring(loss, scoring)
    if getattr(engine, "folds", None) is None:
        raise ValueError("the engine has no fold ids: make it with folds=…")
    K = int(n_folds)
    if K < 2:
        raise ValueError(f"n_folds must be ≥ 2, got {n_folds!r}")
    stop = Stop.after(config.max_time)
    p = engine.n_features
    q = p + int(fit_intercept)
    explicit = lockstep_size(batch, alphas, n_alphas)
    alphas = checked_alphas(alphas, n_alphas, eps)
    n_grid = n_alphas if alphas is None else alphas.size
    paths = K + 1
    if explicit is not None:
        batch = explicit
    elif config.fixed_curvature:
        batch = n_grid
    else:
        budget = max(1, LOCKSTEP_GRAM_BUDGET // (8 * q * q) // paths)
        batch = max(1, min(budget, n_grid, engine.grams_that_fit(fit_intercept) // paths))
    engine.check_grams_fit(fit_intercept, paths if config.fixed_curvature else paths * batch)

    cstore = None
    if store is not None:
        cstore = CVStore(store, engine.fingerprint(), {
            "loss": repr(loss), "penalty": repr(penalty), "fit_intercept": bool(fit_intercept),
            "batch": int(batch), "n_folds": K,
            "alphas": None if alphas is None else alphas.tolist(),
            "n_alphas": None if alphas is not None else int(n_alphas),
            "eps": None if alphas is not None else float(eps),
            **{k: getattr(config, k) for k in ("acceleration", "tol", "max_iter", "penalty_solver",
                                                 "curvature")},
            **(store_settings or {})}, K, scorings_for(loss))
    try:
        return _solve_cv(engine, loss, penalty, K, alphas, n_alphas, eps, fit_intercept, config,
                         int(batch), scoring, cstore, callback, stop)
    finally:
        if cstore is not None:
            cstore.close()


def _start(engine, loss, penalty, K, alphas, n_alphas, eps, fit_intercept, config):
    """The α grid (from all rows), the K + 1 start states at the all-rows intercept-only fit (or
    β = 0 on a given grid) and each fold's held-out rows and weight, in one pass after the grid's.

    Every path starts at the same β, where each row has one E-step weight (or the bound) whichever
    path it serves: the pass forms each fold's *held-out* statistics (its Gram from its own rows,
    1/K of a full Gram) and a path's are the sum over the folds it trains on — the Gram work of one
    fit, not K + 1. This needs every row in a fold, which the same pass checks."""
    q = engine.n_features + int(fit_intercept)
    beta = np.zeros(q)
    if alphas is None:
        a_max, start = alpha_max(engine, loss, penalty, fit_intercept=fit_intercept, config=config)
        alphas, beta = alpha_grid(a_max, n_alphas, eps), start.warm.beta
    system = make_curvature(config.curvature, loss).system_args()
    held = engine.stats_many(loss, [Request(beta[:, None], beta, fold=k, held_out=True, **system)
                                    for k in range(K)], fit_intercept)
    fold_rows = np.array([st.n for st in held])
    fold_weights = np.array([st.weight for st in held])
    _check_folds(fold_rows, fold_weights, engine.n_samples, K)
    paths = [_total(held)] + [_total([held[j] for j in range(K) if j != k]) for k in range(K)]
    return alphas, warm_starts(loss, beta, paths, engine.n_features, config), fold_rows, fold_weights


def _total(parts: list[BlockStats]) -> BlockStats:
    """The statistics of the union of disjoint row sets (the monoid's sum, in order)."""
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _check_folds(fold_rows, fold_weights, n_samples, K) -> None:
    """Every row in one of the K folds and every fold with weight (so, with K ≥ 2, every training
    set too)."""
    outside = int(n_samples - fold_rows.sum())
    if outside:
        raise ValueError(f"{outside} row{' has' if outside == 1 else 's have'} a fold id outside "
                         f"0 … {K - 1}")
    empty = np.flatnonzero(fold_weights <= 0)
    if empty.size:
        raise ValueError(f"fold{'s' if empty.size > 1 else ''} {', '.join(map(str, empty))} "
                         f"hold{'' if empty.size > 1 else 's'} out no rows with positive sample weight")


def _solve_cv(engine, loss, penalty, K, alphas, n_alphas, eps, fit_intercept, config, batch, scoring,
              cstore, callback, stop) -> CVResult:
    p = engine.n_features
    passes_at_start = engine.n_passes
    folds = [None, *range(K)]  # path j sums over the rows of folds[j]: all rows, then each fold's
    if cstore is not None and cstore.has_start():
        engine_checksum = engine.data_checksum()  # a resume: one verification pass
        cstore.check_data(engine_checksum)
        alphas, warms, start_passes, fold_rows, fold_weights = cstore.load_start(p)
        done = cstore.done()
    else:
        if cstore is not None:
            engine.request_checksum()
        alphas, warms, fold_rows, fold_weights = _start(engine, loss, penalty, K, alphas, n_alphas,
                                                        eps, fit_intercept, config)
        start_passes = engine.n_passes - passes_at_start
        if cstore is not None:
            cstore.check_data(engine.data_checksum())
            cstore.save_start(alphas, warms, start_passes, p, fold_rows, fold_weights)
        done = np.zeros((K + 1, len(alphas)), dtype=bool)
    n = len(alphas)
    resumed = done.copy()
    fits: list[list[FitResult | None]] = [[None] * n for _ in folds]
    for j, i in zip(*np.nonzero(done), strict=True):
        fits[j][i] = cstore.load_alpha(j, i)

    def report(i):
        report_alpha(i, alphas, fits, scores.values, scoring, fold_weights, callback)

    def scored(k, i, row):
        if cstore is not None:
            cstore.save_score(k, i, row)
        report(i)

    scores = _Scores(loss, K, n, p, fit_intercept, scored)
    if cstore is not None:
        for name, values in cstore.scores(scorings_for(loss)).items():
            scores.values[name][:] = values
    for j, i in zip(*np.nonzero(done[1:]), strict=True):  # finished, not yet (fully) scored
        # the scores are written one by one: a run stopped between two writes leaves some NaN
        if any(np.isnan(values[j, i]) for values in scores.values.values()):
            scores.add(j, i, fits[j + 1][i])

    stopped = None
    for first in range(0, n, batch):
        members = range(first, min(first + batch, n))
        last = members[-1]
        todo = [(j, i) for j in range(K + 1) for i in members if not done[j, i]]

        def finished(t, fit, todo=todo, last=last):
            j, i = todo[t]
            fits[j][i] = fit
            if fit.stopped is not None:
                return  # unfinished: neither stored nor scored, so that a rerun resumes here
            if cstore is not None:
                cstore.save_alpha(j, i, fit, keep_warm=(i == last))
            if j > 0:
                scores.add(j - 1, i, fit)
            else:
                report(i)

        gens = [on_rows(em_iterations(loss, penalty, alphas[i], p, fit_intercept=fit_intercept,
                                      config=config, warm=warms[j], stop=stop), folds[j])
                for j, i in todo]
        stopped = run_batch(engine, loss, fit_intercept, gens, finished, scores, fits, todo,
                            stop, last < n - 1)
        if stopped is not None:
            break
        warms = [fits[j][last].warm if fits[j][last].warm is not None else cstore.load_warm(j, last)
                 for j in range(K + 1)]
    if scores.waiting:  # fits read from a store, scored by no pass of this run
        run_lockstep(engine, loss, fit_intercept, [], riders=scores)

    total = engine.n_passes - passes_at_start
    results = [path_result(alphas, fits[j], p, resumed[j], start_passes if j == 0 else 0,
                           total, stopped) for j in range(K + 1)]
    return selected(results, scores.values, scoring, fold_rows, fold_weights, total, stop, stopped,
                    cstore, resumed, fits)


def run_batch(engine, loss, fit_intercept, gens, finished, scores, fits, todo, stop, more: bool):
    """One lockstep batch of a cross-validation (its fits' warnings held back: the CV gives one);
    why the CV stops after it (a fit stopped, or ``stop`` — asked when ``more`` α follow), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        run_lockstep(engine, loss, fit_intercept, gens, on_done=finished, riders=scores)
    stopped = next((fits[j][i].stopped for j, i in todo if fits[j][i].stopped is not None), None)
    return stop.reason() if stopped is None and more else stopped


def report_alpha(i, alphas, fits, values, scoring, fold_weights, callback) -> None:
    """``callback(i, alpha, row)`` once every path has finished α i and every fold's fit there is
    scored (``fits[j][i]``: path j's fit, j = 0 all rows; ``values``: the scores so far)."""
    if callback is None or not all(f[i] is not None and f[i].stopped is None for f in fits):
        return
    if np.isnan(values[scoring][:, i]).any():
        return
    row = {"alpha": float(alphas[i]), "nonzero": int(np.count_nonzero(fits[0][i].coef)),
           "objective": float(fits[0][i].objective)}
    for name in dict.fromkeys((scoring, "loss")):
        mean, se, _, _ = cv_selection(values[name][:, [i]], fold_weights)
        row[f"{name}_mean"], row[f"{name}_se"] = float(mean[0]), float(se[0])
    callback(i, float(alphas[i]), row)


def selected(results, values, scoring, fold_rows, fold_weights, total, stop, stopped, cstore, resumed,
             fits) -> CVResult:
    """The :class:`CVResult` of finished paths (``results``: all rows first) and scores: one
    warning for the fits that did not converge, the selection over the α every path finished."""
    _warn_unconverged(results, stop, stopped, cstore)
    selectable = values[scoring].copy()
    selectable[:, ~results[0].finished] = np.nan  # no all-rows fit there to keep
    if stopped is not None and not np.isfinite(selectable).all(axis=0).any():
        raise NothingToSelectError(
            f"the cross-validation stopped ({stop.describe(stopped)}) before any alpha was finished "
            "by every fold and the all-rows path: nothing to select"
            + ("; rerun with the same store to resume" if cstore is not None else ""))
    mean, se, i_min, i_1se = cv_selection(selectable, fold_weights)
    return CVResult(alphas=results[0].alphas, path=results[0], fold_paths=results[1:], scores=values,
                    fold_rows=fold_rows, fold_weights=fold_weights, scoring=scoring, cv_mean=mean,
                    cv_se=se, index_min=i_min, index_1se=i_1se, total_passes=total, stopped=stopped,
                    resumed=resumed, fits=fits)


def _warn_unconverged(results, stop, stopped, cstore) -> None:
    """One ConvergenceWarning for the whole CV: stopped early, or fits that did not converge."""
    n_fits = sum(len(r.alphas) for r in results)
    finished = sum(int(r.finished.sum()) for r in results)
    if stopped is not None:
        warnings.warn(
            f"the cross-validation stopped early: {stop.describe(stopped)}; {finished} of {n_fits} "
            "fits finished; the selection uses the alphas every fold finished"
            + ("; rerun with the same store to resume" if cstore is not None else ""),
            ConvergenceWarning, stacklevel=4)
        return
    bad = [(j, i) for j, r in enumerate(results) for i in np.flatnonzero(r.finished & ~r.converged)]
    if bad:
        where = ", ".join(f"{'all rows' if j == 0 else f'fold {j - 1}'} at alpha {results[j].alphas[i]:.4g}"
                          for j, i in bad[:3])
        warnings.warn(
            f"{len(bad)} of {n_fits} cross-validation fits did not converge ({where}"
            f"{', …' if len(bad) > 3 else ''}); increase max_iter or tol",
            ConvergenceWarning, stacklevel=4)
