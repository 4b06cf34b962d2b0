"""Regularization paths: an α grid from α_max down, solved large to small with warm starts.

Sharing across α (see docs/method.md, "Paths"): the loss sums, loss gradients and M-step systems do
not depend on α, so each α starts from where the previous one ended — its coefficients *and* its
last M-step system — and its first M-step needs no data pass. No dask here: the path runs over any
engine.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .losses import Loss
from .penalties import L1, Penalty
from .solver import (
    ConvergenceWarning,
    FitResult,
    SolverConfig,
    Stop,
    em_iterations,
    fit_em,
    run_lockstep,
    start_state,
)
from .store import PathStore

__all__ = ["PathResult", "alpha_max", "alpha_grid", "checked_alphas", "lockstep_size", "path_result",
           "solve_path", "RIDGE_ALPHA_MAX_FACTOR"]


class PathEngine(Protocol):
    """What a path asks of its engine, beyond the solver's ``stats_many``, ``n_features`` and
    ``n_passes`` (``NumpyEngine`` and ``DaskEngine`` have it all; the path never asks which it has)."""

    n_features: int
    n_passes: int

    def stats_many(self, loss, requests, fit_intercept): ...
    def grams_that_fit(self, fit_intercept: bool) -> int: ...
    def check_grams_fit(self, fit_intercept: bool, n_systems: int) -> None: ...
    def fingerprint(self) -> dict: ...
    def request_checksum(self) -> None: ...
    def data_checksum(self) -> str: ...


#: α_max sits this far above the exact threshold, so rounding cannot leave a 1e-14 coefficient there
ALPHA_MAX_MARGIN = 1e-9

#: ``batch="auto"`` runs as many α in lockstep as fit their M-step Grams (q×q float64 per α and
#: block) in this many bytes — all of them for small q or fixed curvature (no per-α Gram)
LOCKSTEP_GRAM_BUDGET = 64 * 2**20

#: a penalty without a zero threshold (ridge, bridge q > 1, …) starts its path at this multiple of
#: the largest loss-gradient entry at β = 0, where the coefficients are about 1e-3 of ‖∇‖/α-scale
RIDGE_ALPHA_MAX_FACTOR = 1e3


@dataclass
class PathResult:
    """One fit per α, largest α first.

    A path stopped early (``stopped``: ``"max_time"`` or ``"interrupted"``, see
    :class:`~smem_dask.solver.Stop`) still has one entry per α: the α it was solving hold their
    current iterate (``converged`` False, ``finished`` False), the α it did not reach hold NaN
    coefficients, intercept and objective, ``n_iter`` 0 and no fit (``fits[i]`` None). A store
    keeps only the finished α, so a rerun with it resumes at the first unfinished one.
    """

    alphas: np.ndarray
    coefs: np.ndarray  # (n_alphas, p)
    intercepts: np.ndarray
    objectives: np.ndarray
    n_iter: np.ndarray
    n_passes: np.ndarray  # data passes each α took part in (lockstep passes serve several α)
    converged: np.ndarray
    total_passes: int = 0  # data passes of this run (the shared start included)
    resumed: np.ndarray | None = None  # α read from the store instead of computed
    fits: list[FitResult | None] = field(default_factory=list, repr=False)
    stopped: str | None = None  # why the path stopped early ("max_time", "interrupted"), or None
    finished: np.ndarray | None = None  # α that ran their course (converged or not), stored or read


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
        # not stopped early: the grid and every α's start depend on it (a few cheap passes)
        start = fit_em(engine, loss, L1(), 1e30, fit_intercept=fit_intercept,
                       config=config.intercept_only(),
                       stop=Stop(interruptible=False))
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


def solve_path(engine: PathEngine, loss: Loss, penalty: Penalty, *, alphas=None, n_alphas: int = 40,
               eps: float = 1e-3, fit_intercept: bool = True, config: SolverConfig | None = None,
               batch: int | str = "auto", store=None,
               callback: Callable[[int, float, FitResult], None] | None = None) -> PathResult:
    """Fit every α of the grid, largest first.

    ``batch`` consecutive α run in lockstep: each data pass serves all of them (one
    ``engine.stats_many``), all starting from where the previous batch's last α ended (its
    coefficients and last M-step system, so no first pass). ``batch=1`` is the classic warm-started
    path; ``batch=n_alphas`` solves the whole path in about as many passes as its hardest α, at
    the price of one Gram per α per pass. ``"auto"``: every α at once with fixed curvature (no
    per-α Gram), else as many as fit ``LOCKSTEP_GRAM_BUDGET``. With ``config.curvature ==
    "fixed"`` one Gram pass at the start serves every α.

    ``store`` (a directory or zarr group) keeps the start, the shared Gram and every α as it
    finishes; a rerun with the same store skips finished α (see :mod:`smem_dask.store`). A store
    of other data is refused: at once when their shape, dtype or row chunks differ; else by the
    data's checksum (every block's hash), which a new store records from the path's first pass and
    a resume compares in one verification pass before it uses anything stored.
    ``callback(i, alpha, fit)`` is called after α i is finished (and stored).

    ``config.max_time`` limits the whole path (the shared start excepted: it always completes);
    the path also stops on :data:`~smem_dask.solver.STOP_REQUESTED`. The α being solved then stop
    after their current iteration and are neither stored nor passed to ``callback``; later α are
    not computed (see :class:`PathResult`), with one ``ConvergenceWarning``.
    """
    config = (config or SolverConfig()).resolved(loss, penalty, path=True)
    config.check(loss, penalty)  # before the start reads anything or a store is written
    if not penalty.convex:
        raise ValueError(f"paths of the non-convex penalty {penalty.name!r} are not supported "
                         "yet; fit each alpha with fit()")
    stop = Stop.after(config.max_time)
    q = engine.n_features + int(fit_intercept)
    explicit = lockstep_size(batch, alphas, n_alphas)
    auto_batch = explicit is None
    alphas = checked_alphas(alphas, n_alphas, eps)
    if auto_batch:  # as many α as the Gram budget holds (all of them under fixed curvature)
        budget = 10**9 if config.fixed_curvature else max(1, LOCKSTEP_GRAM_BUDGET // (8 * q * q))
        batch = int(min(budget, n_alphas if alphas is None else alphas.size))
    else:
        batch = explicit
    if not config.fixed_curvature:  # one Gram per α of a batch in every pass
        if auto_batch:
            batch = max(1, min(batch, engine.grams_that_fit(fit_intercept)))
        engine.check_grams_fit(fit_intercept, config.grams_per_pass(batch))
    p = engine.n_features
    passes_at_start = engine.n_passes
    pstore = None
    if store is not None:
        pstore = PathStore(store, engine.fingerprint(), {
            "loss": repr(loss), "penalty": repr(penalty),
            "fit_intercept": bool(fit_intercept), "batch": int(batch),
            "alphas": None if alphas is None else alphas.tolist(),
            "n_alphas": None if alphas is not None else int(n_alphas),
            "eps": None if alphas is not None else float(eps),
            **{k: getattr(config, k) for k in ("acceleration", "tol", "max_iter",
                                                 "penalty_solver", "curvature")}})
    try:
        if pstore is not None:
            if pstore.has_start():
                pstore.check_data(engine.data_checksum())  # a resume: one verification pass
            else:
                engine.request_checksum()  # recorded from the first pass, before the start
        return _solve_path(engine, loss, penalty, alphas, n_alphas, eps, fit_intercept, config,
                           int(batch), pstore, callback, p, passes_at_start, stop)
    finally:
        if pstore is not None:
            pstore.close()


def checked_alphas(alphas, n_alphas: int, eps: float) -> np.ndarray | None:
    """The given ``alphas`` as float64, largest first (None stays None: then ``n_alphas`` and
    ``eps`` are checked, before any pass); anything else is refused."""
    if alphas is None:
        alpha_grid(1.0, n_alphas, eps)
        return None
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or not np.all(np.isfinite(alphas)) or np.any(alphas < 0):
        raise ValueError("alphas must be a non-empty sequence of finite numbers ≥ 0")
    return np.sort(alphas)[::-1]


def lockstep_size(batch, alphas, n_alphas: int) -> int | None:
    """How many α an explicit ``batch`` runs in lockstep (at most the number of α), or None for
    ``"auto"`` (sized by memory in :func:`solve_path`); an invalid ``batch`` is refused. The one
    place that reads ``batch``: the estimator asks it to check memory before it reads any data."""
    if isinstance(batch, str) and batch == "auto":
        return None
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or batch < 1:
        raise ValueError(f"batch must be a positive integer or 'auto', got {batch!r}")
    return int(min(batch, n_alphas if alphas is None else np.size(alphas)))


def _start(engine, loss, penalty, alphas, n_alphas, eps, fit_intercept, config):
    """The α grid and the common starting state (one intercept-only fit, or one pass at β = 0; under
    fixed curvature, one pass with the bound's Gram that every α shares)."""
    q = engine.n_features + int(fit_intercept)
    warm = None
    if alphas is None:
        a_max, start = alpha_max(engine, loss, penalty, fit_intercept=fit_intercept, config=config)
        alphas, warm = alpha_grid(a_max, n_alphas, eps), start.warm
    if warm is None or config.fixed_curvature:
        beta = np.zeros(q) if warm is None else warm.beta
        warm = start_state(engine, loss, beta, fit_intercept=fit_intercept, config=config)
    return alphas, warm


def _solve_path(engine, loss, penalty, alphas, n_alphas, eps, fit_intercept, config, batch,
                pstore, callback, p, passes_at_start, stop) -> PathResult:
    if pstore is not None and pstore.has_start():
        alphas, warm, start_passes = pstore.load_start(p)
        done = pstore.done()
    else:
        alphas, warm = _start(engine, loss, penalty, alphas, n_alphas, eps, fit_intercept, config)
        start_passes = engine.n_passes - passes_at_start
        if pstore is not None:
            pstore.check_data(engine.data_checksum())
            pstore.save_start(alphas, warm, start_passes, p)
        done = np.zeros(len(alphas), dtype=bool)
    resumed = done.copy()
    fits: list[FitResult | None] = [None] * len(alphas)
    for i in np.flatnonzero(done):
        fits[i] = pstore.load_alpha(i)

    stopped = None
    for first in range(0, len(alphas), batch):
        members = range(first, min(first + batch, len(alphas)))
        last = members[-1]
        todo = [i for i in members if not done[i]]

        def finished(j, fit, todo=todo, last=last):
            i = todo[j]
            fits[i] = fit
            if fit.stopped is not None:
                return  # unfinished: not stored, so that a rerun resumes here
            if pstore is not None:
                pstore.save_alpha(i, fit, keep_warm=(i == last))
            if callback is not None:
                callback(i, float(alphas[i]), fit)

        gens = [em_iterations(loss, penalty, alphas[i], p, fit_intercept=fit_intercept,
                              config=config, warm=warm, stop=stop) for i in todo]
        with warnings.catch_warnings():
            # one warning for the whole path below, not one per stopped α
            warnings.filterwarnings("ignore", "SM-EM stopped", ConvergenceWarning)
            run_lockstep(engine, loss, fit_intercept, gens, on_done=finished)
        stopped = next((fits[i].stopped for i in todo if fits[i].stopped is not None), None)
        if stopped is None and last < len(alphas) - 1:
            stopped = stop.reason()
        if stopped is not None:
            break
        # the next batch starts where this batch's last (smallest) α ended
        warm = fits[last].warm if fits[last].warm is not None else pstore.load_warm(last)

    result = path_result(alphas, fits, p, resumed, start_passes, engine.n_passes - passes_at_start,
                         stopped)
    if stopped is not None:
        finished = int(result.finished.sum())
        reached = sum(f is not None for f in fits)
        warnings.warn(
            f"the path stopped early: {stop.describe(stopped)}; {finished} of {len(alphas)} "
            f"alphas finished, {reached - finished} hold the iterate they were stopped at "
            f"(not converged), {len(alphas) - reached} were not computed (NaN)"
            + ("; rerun with the same store to resume" if pstore is not None else ""),
            ConvergenceWarning, stacklevel=4)
    return result


def path_result(alphas, fits: list[FitResult | None], p: int, resumed: np.ndarray, start_passes: int,
                total_passes: int, stopped: str | None, n_classes: int | None = None) -> PathResult:
    """The :class:`PathResult` of one fit (or None: not reached) per α; the start's passes are
    counted with the first α unless it was read from a store. ``n_classes`` K (the multinomial
    loss): coefficients (K, p) and K intercepts per α."""
    n_passes = np.array([0 if f is None else f.n_passes for f in fits])
    if not resumed[0]:
        n_passes[0] += start_passes
    nan = np.full(p if n_classes is None else (n_classes, p), np.nan)
    nan_b = np.nan if n_classes is None else np.full(n_classes, np.nan)
    return PathResult(
        alphas=alphas,
        coefs=np.array([nan if f is None else f.coef for f in fits]),
        intercepts=np.array([nan_b if f is None else f.intercept for f in fits]),
        objectives=np.array([np.nan if f is None else f.objective for f in fits]),
        n_iter=np.array([0 if f is None else f.n_iter for f in fits]),
        n_passes=n_passes,
        converged=np.array([f is not None and f.converged for f in fits]),
        total_passes=total_passes,
        resumed=resumed,
        fits=fits,
        stopped=stopped,
        finished=np.array([f is not None and f.stopped is None for f in fits]),
    )
