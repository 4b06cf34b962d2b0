"""The SM-EM iteration: E-step and M-step over an engine, with optional Nesterov acceleration.

The iteration itself (:func:`em_iterations`) is a generator that never touches data: it yields a
:class:`~smem_dask.blockstats.Request` per data pass and receives the summed ``BlockStats``. :func:`fit_em`
drives one such generator over an engine; :func:`run_lockstep` drives several (e.g. the α of a path)
so that each data pass serves every fit still running. This module holds the settings
(:class:`SolverConfig`), the stopping rule (:class:`Stop`) and these entry points; the loop's steps are
:class:`smem_dask.emloop.EMLoop` over one :class:`smem_dask.iterate.Iterate`, the arithmetic of a step
is in :mod:`smem_dask.iterate`, the duality-gap certificate in :mod:`smem_dask.certificate` and the
curvature modes in :mod:`smem_dask.curvature`. Each EM iteration is, in order:

1. *M-step*: solve ``(G + W·α·diag(d)) β = r`` (p×p, Cholesky) with the system (G, r) formed at the
   expansion point β̃ (β̃ = β for base EM) and the penalty's weights d(β̃).
2. *One data pass* at the new β: its objective F(β) and gradient, and — in the same read of X — the
   E-step and system at the next expansion point β̃' = β + m·(β − β_prev) (FISTA momentum m).
3. *Restart check* (``"nesterov-restart"``): if F(β) > F(β_prev), β is discarded, the system is formed at
   β_prev (one extra pass) and the momentum is reset; the next M-step is then a plain, monotone EM step.
   A plain step that still raises F has hit the rounding floor and ends the fit — except for losses
   whose E-step bound is only local (``Loss.local_majorizer``, Poisson), where the step is halved.
4. *Stopping*: for smooth losses, relative objective change ≤ tol **and** the scaled optimality
   residual ``‖∇F‖_∞ / max(1, |F|)`` ≤ tol (the minimum-norm subgradient for non-smooth penalties).
   For the non-smooth hinge and quantile losses neither test can be trusted (EM on them slows down
   sublinearly, and the clamp ``CLAMP_EPS`` of their E-steps makes EM minimize a Huber-smoothed
   loss), so a fit is converged only on a *duality-gap certificate*: F(β) − D(a) ≤ tol·max(1, |F|)
   for a dual-feasible a (:func:`~smem_dask.certificate.duality_gap`), which bounds F(β) − F*
   whatever the clamp did.
   An attempt (``certify``, two passes, counted in ``n_passes``) is made when the relative change
   is ≤ tol (then no sooner than 1, 2, 4, …, 64 iterations after the last failed one), at
   iterations 16, 32, 64, …, when EM stalls, and at ``max_iter``; its *polish* candidate (the
   vertex through the rows at their kink) becomes the iterate when it lowers F. A fit that stalls
   or reaches ``max_iter`` uncertified returns ``converged=False`` with a ``ConvergenceWarning``
   giving the gap. Penalties without a convex conjugate (scad, mcp, log, bridge q < 1; α > 0) have
   no certificate: such fits stop on the relative change as before, but are never converged.
5. *Stopping early*: after each accepted iteration a :class:`Stop` is asked whether the time limit
   (``max_time``) has passed or a stop was requested (:data:`STOP_REQUESTED`, set by the command
   line's signal handlers); the fit then ends at once with its current iterate, ``converged=False``
   and ``stopped`` saying why (no certificate attempt, no extra pass).

Objective changes are computed per observation (``Loss.value_difference``) in the same pass, so
restart and stopping decisions stay exact far below the ~1e-16·|F| resolution of F itself; the
recorded objective of iteration k is F_0 + Σ ΔF, which equals F(β_k) to rounding (see docs/method.md,
"Acceleration and restarts").

In steady state every iteration, objective evaluation and restart check included, reads the data
once; a restart costs two extra passes.

Rounding: a gradient entry below its floating-point floor (:func:`~smem_dask.iterate.gradient_floor`)
counts as zero in the residual test, and a step that leaves β bitwise unchanged is never
evaluated — from β itself (the plain EM step) it ends the fit as a fixed point; from an
extrapolated point or a stale cached Gram, the system is formed at β (like a restart) so that the
next step is the plain one.

``curvature="fixed"`` (docs/method.md, "Curvature modes"; losses with a bound ω ≤ b: logistic ¼,
squared and huber 1) replaces the E-step by ω = b, u = b·η̃ − ℓ'(η̃): the M-step matrix
b·Σ s x̃x̃ᵀ (+ W·α·D) is formed once, the right-hand side needs only the loss gradient at β̃, so each
iteration's pass is a gradient pass (k + 1 columns instead of a p×p Gram) and a restart costs no
pass. With ridge one eigendecomposition serves every α and iteration. The bound is looser than the
E-step's, so it takes more iterations.
``curvature="cached"`` keeps the E-step Gram of the last *refresh* as the M-step matrix: passes
evaluate gradients only (2·n·q flops instead of n·q², the quadratic stays tangent to the loss at
each expansion point). The Gram is refreshed in the pass of accepted iterations 1, 2, 4, 8, …
(that pass then also forms the E-step system, no extra pass), and on an objective rise — the
stale Gram no longer majorizes — the step is discarded and the Gram refreshed at the current β (one
E-step pass, after which the plain EM step is monotone again). Every accepted iterate lowers F,
as in the other modes. Fastest in wall time when the Gram, not the read of X, dominates a pass
(data in memory, large p).

No dask here.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from .certificate import dual_correction, duality_gap, smoothing_width
from .curvature import AUTO, MODES, FixedCurvature, auto_curvature, make_curvature
from .emloop import EMLoop
from .iterate import (
    ConvergenceWarning,
    FitResult,
    IterationRecord,
    SingularSystemWarning,
    WarmStart,
    m_step,
    objective,
    objective_change,
    optimality,
)
from .losses import Loss
from .penalties import L2, PENALTIES, Penalty
from .settings import ACCELERATIONS, CURVATURES, PENALTY_SOLVERS
from .stats import BlockStats, Request

__all__ = [
    "ACCELERATIONS",
    "CURVATURES",
    "ConvergenceWarning",
    "FixedCurvature",
    "FitResult",
    "IterationRecord",
    "SingularSystemWarning",
    "STOP_REQUESTED",
    "SolverConfig",
    "Stop",
    "WarmStart",
    "em_iterations",
    "fit_penalized",
    "fit_em",
    "Riders",
    "on_rows",
    "run_lockstep",
    "start_state",
    "warm_starts",
    "objective",
    "objective_change",
    "optimality",
    "m_step",
    "duality_gap",
    "dual_correction",
    "smoothing_width",
]

class Engine(Protocol):
    n_features: int
    n_passes: int

    def stats_many(
        self, loss: Loss, requests: list[Request], fit_intercept: bool
    ) -> list[BlockStats]: ...


@dataclass(frozen=True)
class SolverConfig:
    """Settings of the EM loop (validated on construction). The curvature defaults to the E-step
    here, the solver layer's plain behaviour; the estimators, :func:`smem_dask.fit_path` and the
    command line default to ``"auto"``."""

    acceleration: str = "nesterov-restart"
    tol: float = 1e-8
    max_iter: int = 1000
    penalty_solver: str = "em"  # "em" (parameter weights) or "exact" (see penalties.py)
    # "adaptive" (the E-step), "fixed" (ω = bound), "cached" (stale Gram), "newton" (the Hessian),
    # "auto" (one of them by the loss: :func:`~smem_dask.curvature.auto_curvature`, see :meth:`resolved`)
    curvature: str = "adaptive"
    max_time: float | None = None  # seconds of wall time; the fit stops after the iteration past it

    def __post_init__(self):
        if self.curvature not in CURVATURES:
            raise ValueError(f"unknown curvature {self.curvature!r}; choose one of "
                             f"{', '.join(CURVATURES)}")
        if self.penalty_solver not in PENALTY_SOLVERS:
            raise ValueError(f"unknown penalty_solver {self.penalty_solver!r}; choose one of "
                             f"{', '.join(PENALTY_SOLVERS)}")
        if self.acceleration not in ACCELERATIONS:
            raise ValueError(
                f"unknown acceleration {self.acceleration!r}; choose one of {', '.join(ACCELERATIONS)}"
            )
        if not (isinstance(self.tol, (int, float)) and math.isfinite(self.tol) and self.tol > 0):
            raise ValueError(f"tol must be a positive finite number, got {self.tol!r}")
        if isinstance(self.max_iter, bool) or not isinstance(self.max_iter, (int, np.integer)):
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter!r}")
        check_max_time(self.max_time)

    # the mode strings are compared here and nowhere else: the loop asks these flags
    @property
    def accelerated(self) -> bool:
        """Nesterov momentum (``"nesterov"``, ``"nesterov-restart"``); else base EM."""
        return self.acceleration != "none"

    @property
    def restarts(self) -> bool:
        """A rise of F discards the step and restarts from β (``"nesterov-restart"``)."""
        return self.acceleration == "nesterov-restart"

    @property
    def accepts_rises(self) -> bool:
        """Plain ``"nesterov"``: a step that raises F is accepted (not monotone)."""
        return self.acceleration == "nesterov"

    @property
    def exact_penalty(self) -> bool:
        """The penalty's own p×p solver in the M-step (``"exact"``); else EM weights (``"em"``)."""
        return self.penalty_solver == "exact"

    def resolved(self, loss: Loss, penalty: Penalty | None = None, *, path: bool = False) -> SolverConfig:
        """These settings with ``curvature="auto"`` replaced by the mode it picks for ``loss`` and
        ``penalty`` (``path``: many fits share each pass — a path or a cross-validation); else
        unchanged."""
        if self.curvature != AUTO:
            return self
        em_penalty = penalty is not None and not (penalty.quadratic or self.exact_penalty)
        return replace(self, curvature=auto_curvature(loss, path=path, em_penalty=em_penalty))

    @property
    def fixed_curvature(self) -> bool:
        """Whether the curvature is the loss's fixed bound: one Gram for the whole fit (or path),
        formed in the first pass, and gradient-only passes after it."""
        if self.curvature == AUTO:
            raise RuntimeError("curvature='auto' is resolved for a loss first (SolverConfig.resolved)")
        return MODES[self.curvature].one_gram

    def grams_per_pass(self, n_fits: int = 1) -> int:
        """How many q×q Grams one data pass carries for ``n_fits`` fits run in lockstep (a path's
        batch): one per fit, except under fixed curvature, whose one Gram serves every fit."""
        return 1 if self.fixed_curvature else int(n_fits)

    def check(self, loss: Loss, penalty: Penalty) -> None:
        """Refuse a loss × penalty × settings combination that cannot be fitted (a penalty solver
        the penalty does not have; fixed curvature for a loss without a bound), before any pass."""
        if self.exact_penalty and not penalty.has_exact:
            exact = ", ".join(sorted(n for n, c in PENALTIES.items() if c.has_exact))
            raise ValueError(f"penalty {penalty.name!r} has no exact solver (penalties with one: "
                             f"{exact}); use penalty_solver='em'")
        # each mode refuses, with a clear error, a loss it cannot serve (fixed: no bound on ω;
        # newton: no Newton weight)
        make_curvature(self.resolved(loss, penalty).curvature, loss)

    def intercept_only(self) -> SolverConfig:
        """The settings of the intercept-only fit that starts a path (at an α so large that every
        coefficient is exactly 0): plain EM with the exact penalty solver, the E-step, no deadline —
        or Newton for a Newton path, whose α then start from the Hessian's system (Poisson: 5
        passes instead of 43 on the golden path; the E-step's would be a non-majorizing start for
        the other modes)."""
        return replace(self, penalty_solver="exact", acceleration="none",
                       curvature="newton" if self.curvature == "newton" else "adaptive", max_time=None)

    def ridge_start(self) -> SolverConfig:
        """The settings of the ridge fit that starts a non-convex penalty (see :func:`fit_penalized`)."""
        return replace(self, penalty_solver="em", tol=max(self.tol, 1e-6))


def check_max_time(max_time) -> None:
    """``max_time`` is None or a positive finite number of seconds."""
    if max_time is None:
        return
    if (isinstance(max_time, bool) or not isinstance(max_time, (int, float, np.integer, np.floating))
            or not (math.isfinite(max_time) and max_time > 0)):
        raise ValueError(f"max_time must be None or a positive finite number of seconds, got {max_time!r}")


#: set (e.g. by a signal handler) to stop every running fit after its current iteration; fits
#: stopped so return their current iterate with ``converged=False`` and ``stopped="interrupted"``.
#: It stays set until cleared.
STOP_REQUESTED = threading.Event()


@dataclass(frozen=True)
class Stop:
    """When a fit stops before convergence, checked once per accepted iteration (after its pass): a
    wall-clock ``deadline`` (``time.monotonic()``; None: none) and, if ``interruptible``,
    :data:`STOP_REQUESTED`. One object serves every fit that shares the deadline (a path's α)."""

    deadline: float | None = None
    max_time: float | None = None  # the limit the deadline came from (for messages)
    interruptible: bool = True

    @classmethod
    def after(cls, max_time: float | None) -> Stop:
        """A deadline ``max_time`` seconds from now (None: no deadline)."""
        check_max_time(max_time)
        return cls(None if max_time is None else time.monotonic() + float(max_time), max_time)

    def reason(self) -> str | None:
        """``"interrupted"``, ``"max_time"``, or None to go on."""
        if self.interruptible and STOP_REQUESTED.is_set():
            return "interrupted"
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return "max_time"
        return None

    def describe(self, reason: str) -> str:
        if reason == "max_time":
            return f"the time limit max_time={self.max_time:g} s was reached"
        return "a stop was requested (interrupted)"


def fit_em(
    engine: Engine,
    loss: Loss,
    penalty: Penalty,
    alpha: float,
    *,
    fit_intercept: bool = True,
    config: SolverConfig = SolverConfig(),
    beta0: np.ndarray | None = None,
    callback: Callable[[IterationRecord], None] | None = None,
    warm: WarmStart | None = None,
    stop: Stop | None = None,
) -> FitResult:
    """Minimize F(β, b) = (1/W) Σ s_i ℓ(y_i, x_iᵀβ + b) + α P(β) by SM-EM over ``engine``.

    Parameters
    ----------
    engine : object with ``stats_many(loss, requests, fit_intercept)``, ``n_features``, ``n_passes``
    loss, penalty : Loss, Penalty
    alpha : float ≥ 0
    fit_intercept : bool
    config : SolverConfig
    beta0 : (q,) array, optional — starting point (coefficients, then the intercept); zeros if None
    callback : called with each accepted ``IterationRecord`` (iteration 0 included)
    warm : WarmStart, optional — start at ``warm.beta`` reusing its statistics: no first pass
    stop : Stop, optional — when to stop early; default ``Stop.after(config.max_time)``, made as the
        fit starts. A stopped fit returns its current iterate, ``converged=False``, ``stopped`` set,
        with a ``ConvergenceWarning``.
    """
    fit = em_iterations(loss, penalty, alpha, engine.n_features, fit_intercept=fit_intercept,
                        config=config, beta0=beta0, callback=callback, warm=warm, stop=stop)
    return run_lockstep(engine, loss, fit_intercept, [fit])[0]


def fit_penalized(engine: Engine, loss: Loss, penalty: Penalty, alpha: float, *,
                  fit_intercept: bool = True, config: SolverConfig = SolverConfig(),
                  callback: Callable[[IterationRecord], None] | None = None,
                  stop: Stop | None = None) -> FitResult:
    """:func:`fit_em` from the start that suits the penalty: β = 0 for convex penalties; for
    non-convex ones (bridge q < 1, scad, mcp, log), where β = 0 can be a stationary trap, the ridge
    fit at the same α (tolerance at most 1e-6, its passes counted in the result's ``n_passes``).
    ``stop`` covers both fits (default: ``Stop.after(config.max_time)`` made now)."""
    config.check(loss, penalty)  # before the ridge start reads anything
    stop = Stop.after(config.max_time) if stop is None else stop
    beta0, warm_passes = None, 0
    if not penalty.convex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ridge = fit_em(engine, loss, L2(), alpha, fit_intercept=fit_intercept,
                           config=config.ridge_start(), stop=stop)
        beta0 = np.r_[ridge.coef, ridge.intercept] if fit_intercept else ridge.coef
        warm_passes = ridge.n_passes
    result = fit_em(engine, loss, penalty, alpha, fit_intercept=fit_intercept, config=config,
                    callback=callback, beta0=beta0, stop=stop)
    result.n_passes += warm_passes
    return result


class Riders(Protocol):
    """Requests that travel with the passes of a lockstep without being fits (e.g. the held-out
    scores of finished cross-validation fits): ``take()`` the requests waiting (may be empty),
    ``give(requests, stats)`` their statistics after the pass."""

    def take(self) -> list[Request]: ...
    def give(self, requests: list[Request], stats: list[BlockStats]) -> None: ...


def run_lockstep(engine: Engine, loss: Loss, fit_intercept: bool, fits: list,
                 on_done: Callable[[int, FitResult], None] | None = None,
                 riders: Riders | None = None) -> list[FitResult]:
    """Drive several :func:`em_iterations` generators so that each data pass serves every fit
    still running (one ``engine.stats_many`` call per pass). ``on_done(i, result)`` is called as
    fit i finishes. ``riders``' waiting requests join each pass; those still waiting when every
    fit has finished get one pass of their own. Returns the results in the order of ``fits``."""
    results: list[FitResult | None] = [None] * len(fits)
    pending: dict[int, Request] = {}

    def advance(i, value):
        try:
            pending[i] = fits[i].send(value)
        except StopIteration as stop:
            pending.pop(i, None)
            results[i] = stop.value
            if on_done is not None:
                on_done(i, stop.value)

    for i in range(len(fits)):
        advance(i, None)
    extra = [] if riders is None else riders.take()
    while pending or extra:
        order = list(pending)
        stats = engine.stats_many(loss, [pending[i] for i in order] + extra, fit_intercept)
        if extra:
            riders.give(extra, stats[len(order):])
        for i, st in zip(order, stats[: len(order)], strict=True):
            advance(i, st)
        extra = [] if riders is None else riders.take()
    return results


def start_state(engine: Engine, loss: Loss, beta: np.ndarray, *, fit_intercept: bool = True,
                config: SolverConfig = SolverConfig()) -> WarmStart:
    """One pass at ``beta``: the loss sum, gradient and M-step system there, as the WarmStart that
    every fit from ``beta`` can start from (no first pass of its own). Under fixed curvature the
    system is formed with the loss's bound and its Gram is kept as the fixed Gram that every α of a
    path shares; otherwise it is the E-step's at β."""
    beta = np.asarray(beta, dtype=np.float64)
    config = config.resolved(loss)
    system = make_curvature(config.curvature, loss).system_args()
    stats = engine.stats_many(loss, [Request(beta[:, None], beta, **system)], fit_intercept)
    return warm_starts(loss, beta, stats, engine.n_features, config)[0]


def warm_starts(loss: Loss, beta: np.ndarray, stats: list[BlockStats], n_features: int,
                config: SolverConfig) -> list[WarmStart]:
    """The WarmStart at ``beta`` of each of ``stats`` (a pass's statistics at β with the system of
    the curvature mode there, e.g. over different rows): each held by a curvature of its own."""
    warms = []
    config = config.resolved(loss)
    for st in stats:
        curv = make_curvature(config.curvature, loss)
        curv.hold(st, n_features)
        warms.append(WarmStart(beta, float(st.loss[0]), st.grad[:, 0].copy(), st, beta, curv.warm_gram()))
    return warms


def on_rows(fit, fold: int | None):
    """An :func:`em_iterations` generator whose every request sums over the training rows of
    ``fold`` (None: unchanged) — the same fit on the data with the sample weights of fold
    ``fold``'s rows set to zero."""
    if fold is None:
        return (yield from fit)
    value = None
    while True:
        try:
            request = fit.send(value)
        except StopIteration as stop:
            return stop.value
        value = yield replace(request, fold=fold)


def em_iterations(
    loss: Loss,
    penalty: Penalty,
    alpha: float,
    n_features: int,
    *,
    fit_intercept: bool = True,
    config: SolverConfig = SolverConfig(),
    beta0: np.ndarray | None = None,
    callback: Callable[[IterationRecord], None] | None = None,
    warm: WarmStart | None = None,
    stop: Stop | None = None,
):
    """The SM-EM iteration as a generator: yields one :class:`Request` per data pass, receives its
    ``BlockStats``, returns a :class:`FitResult` (see :func:`fit_em` for the parameters). Arguments
    are checked when the generator starts; the steps are :class:`~smem_dask.emloop.EMLoop`'s."""
    if stop is None:
        stop = Stop.after(config.max_time)
    loop = EMLoop(loss, penalty, alpha, n_features, fit_intercept=fit_intercept, config=config,
                  beta0=beta0, callback=callback, warm=warm, stop=stop)
    result, unconverged = yield from loop.run()
    if unconverged is not None:
        # stacklevel: this generator, run_lockstep's advance, run_lockstep, fit_em, fit_em's caller
        warnings.warn(unconverged, ConvergenceWarning, stacklevel=5)
    return result
