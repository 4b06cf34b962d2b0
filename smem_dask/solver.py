"""The SM-EM iteration: E-step and M-step over an engine, with optional Nesterov acceleration.

The iteration itself (:func:`em_iterations`) is a generator that never touches data: it yields a
:class:`~smem_dask.stats.Request` per data pass and receives the summed ``BlockStats``. :func:`fit_em`
drives one such generator over an engine; :func:`run_lockstep` drives several (e.g. the α of a path)
so that each data pass serves every fit still running. Each EM iteration is, in order:

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
   for a dual-feasible a (:func:`duality_gap`), which bounds F(β) − F* whatever the clamp did.
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

Rounding: a gradient entry below its floating-point floor (:func:`gradient_floor`) counts as zero in
the residual test, and a step that leaves β bitwise unchanged is never evaluated — from β itself
(the plain EM step) it ends the fit as a fixed point; from an extrapolated point or a stale cached
Gram, the system is formed at β (like a restart) so that the next step is the plain one.

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
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import scipy.linalg
import sklearn.exceptions

from .curvature import MODES, FixedCurvature, curvature_bound, make_curvature
from .losses import CLAMP_EPS, Loss
from .penalties import L2, Penalty, check_solver, em_floor
from .stats import HIST_DECADES, BlockStats, DualStats, Request, check_gram_range

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
    "run_lockstep",
    "objective",
    "objective_change",
    "optimality",
    "m_step",
    "duality_gap",
    "dual_correction",
    "smoothing_width",
]

ACCELERATIONS = ("none", "nesterov", "nesterov-restart")
PENALTY_SOLVERS = ("em", "exact")
CURVATURES = tuple(MODES)  # ("adaptive", "fixed", "cached")


class ConvergenceWarning(sklearn.exceptions.ConvergenceWarning):
    """The solver stopped before meeting its tolerance (``max_iter``, a floor of the objective, or —
    hinge and quantile — no duality-gap certificate); the message says how far off it is.
    scikit-learn's ``ConvergenceWarning``, so the usual filters apply."""


class SingularSystemWarning(UserWarning):
    """The M-step matrix was singular; a minimum-norm least-squares solution was used."""


class Engine(Protocol):
    n_features: int
    n_passes: int

    def stats_many(
        self, loss: Loss, requests: list[Request], fit_intercept: bool
    ) -> list[BlockStats]: ...


@dataclass(frozen=True)
class SolverConfig:
    """Settings of the EM loop (validated on construction)."""

    acceleration: str = "nesterov-restart"
    tol: float = 1e-8
    max_iter: int = 1000
    penalty_solver: str = "em"  # "em" (parameter weights) or "exact" (see penalties.py)
    curvature: str = "adaptive"  # "adaptive" (the E-step), "fixed" (ω = bound), "cached" (stale Gram)
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

    @property
    def fixed_curvature(self) -> bool:
        """Whether the curvature is the loss's fixed bound: one Gram for the whole fit (or path),
        formed in the first pass, and gradient-only passes after it."""
        return MODES[self.curvature].one_gram

    def grams_per_pass(self, n_fits: int = 1) -> int:
        """How many q×q Grams one data pass carries for ``n_fits`` fits run in lockstep (a path's
        batch): one per fit, except under fixed curvature, whose one Gram serves every fit."""
        return 1 if self.fixed_curvature else int(n_fits)

    def check(self, loss: Loss, penalty: Penalty) -> None:
        """Refuse a loss × penalty × settings combination that cannot be fitted (a penalty solver
        the penalty does not have; fixed curvature for a loss without a bound), before any pass."""
        check_solver(penalty, self.penalty_solver)
        if self.fixed_curvature:
            curvature_bound(loss)

    def intercept_only(self) -> SolverConfig:
        """The settings of the intercept-only fit that starts a path (at an α so large that every
        coefficient is exactly 0): plain EM with the exact penalty solver, the E-step, no deadline."""
        return replace(self, penalty_solver="exact", acceleration="none", curvature="adaptive",
                       max_time=None)

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


@dataclass(frozen=True)
class IterationRecord:
    """One accepted iterate (iteration 0 is the starting point)."""

    iteration: int
    objective: float
    change: float  # (F_prev − F) / |F|; NaN at iteration 0
    grad_norm: float  # ‖∇F‖_∞
    n_passes: int  # cumulative data passes
    pass_seconds: float  # wall time of this iteration's passes
    elapsed: float  # wall time since the start of the fit
    restarted: bool = False
    # ‖∇F‖_∞ over the coordinates above their floating-point floor (:func:`gradient_floor`); the
    # others are zero to rounding. The stopping test uses this.
    grad_resolved: float = math.nan


@dataclass(frozen=True)
class WarmStart:
    """Where a fit ended, so that the next fit (e.g. the next α of a path) needs no first pass.

    The loss sum and loss gradient at ``beta`` and the M-step system at ``expand`` do not depend on
    α (only the penalty does), so they serve any α.
    """

    beta: np.ndarray
    loss_sum: float  # Σ s ℓ at beta
    loss_grad: np.ndarray  # Σ s ℓ' x̃ at beta
    system: BlockStats  # gram/rhs (and weight W) at `expand`
    expand: np.ndarray
    fixed: FixedCurvature | None = None  # the fixed-curvature Gram, when the fit used one

    #: the names of :meth:`pack`'s arrays and scalars
    ARRAYS = ("beta", "loss_grad", "gram", "rhs", "expand")
    SCALARS = ("loss_sum", "weight", "n")

    def pack(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The end state as plain float64 arrays and floats (named by ``ARRAYS`` and ``SCALARS``),
        for a store to write. The fixed-curvature Gram is not included: a path shares one for
        every α (:meth:`FixedCurvature.pack`)."""
        arrays = dict(zip(self.ARRAYS, (self.beta, self.loss_grad, self.system.gram, self.system.rhs,
                                        self.expand), strict=True))
        arrays = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
        scalars = {"loss_sum": float(self.loss_sum), "weight": float(self.system.weight),
                   "n": float(self.system.n)}
        return arrays, scalars

    @classmethod
    def unpack(cls, arrays: dict, scalars: dict, fixed: FixedCurvature | None = None) -> WarmStart:
        """The inverse of :meth:`pack` (``fixed``: the path's shared fixed-curvature Gram, if any)."""
        system = BlockStats.system_only(scalars["n"], scalars["weight"], arrays["gram"], arrays["rhs"])
        return cls(arrays["beta"], scalars["loss_sum"], arrays["loss_grad"], system, arrays["expand"],
                   fixed)


@dataclass
class FitResult:
    coef: np.ndarray
    intercept: float
    n_iter: int
    n_passes: int
    objective: float
    grad_norm: float
    converged: bool
    n_restarts: int
    history: list[IterationRecord] = field(default_factory=list)
    warm: WarmStart | None = None
    #: hinge and quantile: the final duality gap F(β) − D(a) ≥ F(β) − F* (inf: no dual-feasible point
    #: found); NaN for losses that are certified by their gradient instead
    duality_gap: float = math.nan
    #: why the fit stopped before it could converge: "max_time" or "interrupted" (see :class:`Stop`);
    #: None when it ran its course
    stopped: str | None = None

    @property
    def objective_history(self) -> list[float]:
        return [r.objective for r in self.history]


def objective(loss_sum: float, weight: float, beta: np.ndarray, penalty: Penalty, alpha: float,
              p: int) -> float:
    """F = (1/W) Σ s ℓ + α P(β) from the weighted loss sum at β (docs/method.md, "The objective")."""
    return float(loss_sum / weight + alpha * penalty.value(beta[:p]))


def objective_change(stats: BlockStats, beta: np.ndarray, beta_ref: np.ndarray, penalty: Penalty,
                     alpha: float, p: int) -> float:
    """F(β) − F(β_ref) for evaluation points 1 (β) and 0 (β_ref), from per-observation differences.

    Accurate to rounding of the *difference*, where F(β) − F(β_ref) computed from two objective
    values is lost below about 1e-16·|F|.
    """
    return float(stats.loss_delta[0] / stats.weight
                 + alpha * penalty.value_difference(beta[:p], beta_ref[:p]))


def optimality(loss_grad: np.ndarray, weight: float, beta: np.ndarray, penalty: Penalty,
               alpha: float, p: int, zero_tol: float = 0.0) -> np.ndarray:
    """First-order optimality residual at β from the weighted loss gradient Σ s ℓ' x̃ there: ∇F
    for smooth penalties, the minimum-norm subgradient of F otherwise (intercept unpenalized)."""
    g = loss_grad / weight
    g[:p] = penalty.optimality(beta[:p], g[:p], alpha, zero_tol)
    return g


def gradient_floor(gram: np.ndarray, weight: float, beta: np.ndarray) -> np.ndarray:
    """Per coordinate, the floating-point floor of the computed ∇F = (1/W) Σ s ℓ'(x̃ᵀβ) x̃ near β.

    β itself is known to a relative ε at best, and the linear predictors x̃ᵀβ, sums of q products,
    carry a rounding error of about √q·ε·Σ_k |x̃_k β_k|; an error δ_k·|β_k| in each term moves the
    gradient by (1/W) Σ_i s |ℓ''| |x̃_ij x̃_ik| δ_k |β_k|. With |ℓ''| ≤ ω (the E-step weight
    majorizes the curvature) and Cauchy–Schwarz, Σ_i s ω |x̃_ij x̃_ik| ≤ √(G_jj G_kk) for the Gram
    G = Σ s ω x̃x̃ᵀ of a pass. A gradient below this is zero as far as float64 can tell: no step
    can lower it. The Cauchy–Schwarz bound is tight for nearly proportional columns (Longley:
    within 1% of Σ_i |x̃_ij x̃_ik|) and an overestimate up to ~p for disjoint sparse columns;
    either way the floor is far below tol·|F| unless the data cancel heavily. (The rounding of the
    sum over rows itself is not counted.)
    """
    d = np.sqrt(np.maximum(np.diag(gram), 0.0))
    eps = (1.0 + math.sqrt(d.size)) * np.finfo(np.float64).eps
    return eps * d * float(d @ np.abs(beta)) / weight


def m_step(stats: BlockStats, expand: np.ndarray, penalty: Penalty, alpha: float, p: int,
           penalty_solver: str = "em", loss_grad: np.ndarray | None = None):
    """Minimize the quadratic majorizer at β̃ plus the penalty (see docs/method.md, "Penalties and the
    M-step").

    ``"em"``: solve (G + W α diag(d(β̃))) β = r — Cholesky, or least squares with a warning if
    singular. ``"exact"``: the penalty's own p×p solver, warm-started at β̃.

    ``loss_grad``: the loss gradient Σ s ℓ' x̃ at β̃, for a majorizer tangent there (r = Gβ̃ − ∇):
    the ``"em"`` step is then taken as the correction β̃ − A⁻¹(∇ + WαDβ̃), the same point in exact
    arithmetic, but one step of iterative refinement in floating point — solving for β itself loses
    cond(G)·ε of it (Longley: 6e-8 relative, against 2e-12 for the correction).
    """
    if not (np.isfinite(stats.gram).all() and np.isfinite(stats.rhs).all()):
        raise FloatingPointError("the M-step system has non-finite entries")
    if penalty_solver == "exact":
        return penalty.solve_exact(stats.gram, stats.rhs, expand, stats.weight * alpha, p)
    d = np.zeros(stats.rhs.shape[0])
    d[:p] = penalty.weights(expand[:p])
    A = stats.gram + np.diag(stats.weight * alpha * d)
    try:
        factor = scipy.linalg.cho_factor(A, lower=False)
        if loss_grad is None:
            return scipy.linalg.cho_solve(factor, stats.rhs)
        return expand - scipy.linalg.cho_solve(factor, loss_grad + stats.weight * alpha * d * expand)
    except np.linalg.LinAlgError:
        warnings.warn(
            "the M-step system XᵀΩX + W·α·D is singular (alpha = 0 with collinear or constant "
            "columns?); using the minimum-norm least-squares solution. Set alpha > 0 for a unique "
            "solution.",
            SingularSystemWarning,
            stacklevel=3,
        )
        return scipy.linalg.lstsq(A, stats.rhs, cond=None, lapack_driver="gelsd")[0]


def duality_gap(dual: DualStats, F: float, weight: float, n_rows: float, penalty: Penalty,
                alpha: float, p: int) -> float:
    r"""F(β) − D(a): an upper bound on F(β) − F* from dual points a, or inf if none is feasible.

    The hinge and quantile losses are maxima of affine functions,
    ℓ_i(η) = max_{a ∈ [lo_i, hi_i]} a·(t_i − η) (``Loss.dual_box``), so for every a in the box

    .. math::  F(β̃) ≥ \frac1W \sum_i s_i a_i t_i − \frac1W (X̃ᵀ S a)ᵀ β̃ + α P(β)
               ≥ D(a) = \frac1W \sum_i s_i a_i t_i − α P^*(v/α), \quad v = X_pᵀ S a / W,

    provided Σ s a = 0 when an intercept is fitted (else the bound is −∞ in b), and v = 0 when
    α = 0. Hence F(β) − F* ≤ F(β) − D(a) = gap. Penalties whose conjugate has a bounded domain
    (lasso, group, bridge q = 1) get a scaled by the largest c ≤ 1 that brings v/α into it (c·a
    stays in the box as it contains 0). When α > 0 the intercept's Σ s a = 0 is the only
    equality, and it is met by *sign scaling*: with a = a⁺ − a⁻ (a± ≥ 0, summed apart by the
    pass, :class:`~smem_dask.stats.DualCandidate`), the side with the larger Σ s a± is scaled by
    c = (smaller sum)/(larger sum) ∈ [0, 1] — c·a± stays in the box as it contains 0 — which makes
    Σ s a = 0 exact up to the rounding of the two sums; the value and moments scale alike, so
    D of the scaled point is exact too. The equality constraints are accepted when they hold to
    the rounding of their sums, 4·n·eps·Σ s|a||x̃| per coordinate (``scale``), and to nothing
    looser: the certificate carries no other tolerance.

    ``dual`` holds the sums of the candidates a (:class:`~smem_dask.stats.DualStats`; its
    ``candidates`` when present, each as summed and sign-scaled), F is F(β). The smallest gap
    over them is returned: each is a valid bound, so the best one is.
    """
    q = dual.moment.shape[0]
    points = [(dual.value, dual.moment, dual.scale)]
    for cand in dual.candidates:
        points.append((cand.value, cand.moment, cand.scale))
        if alpha > 0 and q > p:  # the intercept alone is an equality: scale one sign side
            plus, minus = cand.moments[0][p], cand.moments[1][p]
            c_plus = 1.0 if plus <= minus else minus / plus
            c_minus = 1.0 if minus <= plus else plus / minus
            points.append((c_plus * cand.values[0] - c_minus * cand.values[1],
                           c_plus * cand.moments[0] - c_minus * cand.moments[1], cand.scale))
    return min(_gap(value, moment, scale, F, weight, n_rows, penalty, alpha, p)
               for value, moment, scale in points)


def _gap(value, moment, scale, F, weight, n_rows, penalty, alpha, p) -> float:
    """F − D(a) of one dual point from its sums Σ s a t, Σ s a x̃, Σ s|a||x̃| (see :func:`duality_gap`)."""
    q = moment.shape[0]
    g = moment / weight
    rounding = 4.0 * n_rows * np.finfo(float).eps * scale / weight
    equality = np.zeros(q, dtype=bool)
    equality[p:] = True  # the intercept, when fitted
    if alpha == 0:
        equality[:p] = True
    if np.any(np.abs(g[equality]) > rounding[equality]):
        return math.inf
    if alpha == 0:
        return F - value / weight
    z = g[:p] / alpha
    c = penalty.dual_scale(z)
    return F - (c * value / weight - alpha * penalty.conjugate(c * z))


def dual_correction(dual: DualStats, weight: float, beta: np.ndarray, penalty: Penalty, alpha: float,
                    p: int, zero_tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The correction direction λ of a certificate's dual, and the polish candidate (see ``certify``
    in :func:`em_iterations`), from the first pass's statistics at β.

    On the constrained coordinates K (the intercept; every coefficient when α = 0 or P is
    quadratic; else those with |β_j| > ``zero_tol``), λ solves G_w λ = target − Σ s a x̃ with
    G_w = Σ s w x̃x̃ᵀ and target = W·α·∇P(β) (0 for the intercept and when α = 0): the
    stationarity the optimal dual satisfies. G_w may be singular (fewer rows at the kink than
    coordinates in K, as with a non-zero group): the rows of the equality constraints (intercept;
    all when α = 0) are solved first, the other targets by least squares in their null space.
    The polish point is the weighted least-squares fit argmin Σ s w (t − x̃ᵀβ̃)² on K (zero
    elsewhere): at the optimum, the vertex through the rows on their kink.
    """
    q = dual.moment.shape[0]
    K = np.ones(q, dtype=bool)
    target = np.zeros(q)
    if alpha > 0:
        target = weight * optimality(np.zeros(q), 1.0, beta, penalty, alpha, p, zero_tol)
        if not penalty.quadratic:
            K[:p] = np.abs(beta[:p]) > zero_tol
    lam, point = np.zeros(q), np.zeros(q)
    # solved in the coordinates that give G_w a unit diagonal (d = √diag G_w): least squares cuts
    # singular values below ε·σ_max, which for columns of scale 1e8 beside the intercept's 1 would
    # cut the intercept's direction (G = D G' D, so G λ = m is G' (Dλ) = D⁻¹m)
    d = _unit_diagonal(dual.gram)[K]
    G, miss = dual.gram[np.ix_(K, K)] / np.outer(d, d), (target - dual.moment)[K] / d
    # the equalities E (intercept; all when α = 0) first, then the other targets within their null space
    E = np.zeros(q, dtype=bool)
    E[p:] = True
    E[:p] = alpha == 0
    E = E[K]
    lam_K = scipy.linalg.lstsq(G[E], miss[E])[0]
    if not E.all():
        N = scipy.linalg.null_space(G[E]) if E.any() else np.eye(K.sum())
        lam_K += N @ scipy.linalg.lstsq(G[~E] @ N, miss[~E] - G[~E] @ lam_K, cond=1e-12)[0]
        lam_K += scipy.linalg.lstsq(G[E], miss[E] - G[E] @ lam_K)[0]  # the equalities again, exactly
    lam[K] = lam_K / d
    if alpha > 0 and penalty.quadratic and dual.edge is not None:
        point = _ridge_polish(dual, weight, alpha, p)
    else:
        point[K] = scipy.linalg.lstsq(G, dual.rhs[K] / d)[0] / d
    return lam, point


def _unit_diagonal(G: np.ndarray) -> np.ndarray:
    """√diag(G), with 1 where the diagonal is 0: the scaling that gives G a unit diagonal."""
    d = np.sqrt(np.abs(np.diag(G)))
    return np.where(d > 0, d, 1.0)


def _ridge_polish(dual: DualStats, weight: float, alpha: float, p: int) -> np.ndarray:
    """The ridge vertex: argmin ½Wα‖β_p‖² − eᵀβ̃ subject to G_w β̃ = Σ s w t x̃.

    With the rows at a box edge (w = 0) linear in β̃, s ℓ = s a (t − x̃ᵀβ̃), their sum
    e = Σ s a x̃ (``dual.edge``), and the rows within δ of their kink held on it (G_w β̃ = Σ s w t x̃
    says x̃ᵀβ̃ = t there when those rows are independent), this is W·F up to a constant: at the
    optimum, with the right rows on the kink, the exact solution. Solved as its KKT system by least
    squares (G_w is singular when fewer rows than coordinates sit at the kink).
    """
    q = dual.gram.shape[0]
    d = _unit_diagonal(dual.gram)  # solved for Dβ̃ with D⁻¹ G_w D⁻¹ (see dual_correction)
    P = np.zeros(q)
    P[:p] = weight * alpha
    G = dual.gram / np.outer(d, d)
    A = np.block([[np.diag(P / d**2), G], [G, np.zeros((q, q))]])
    return scipy.linalg.lstsq(A, np.r_[dual.edge / d, dual.rhs / d])[0][:q] / d


#: the smoothing width may cover every row only at or below 10**ALL_AT_KINK
ALL_AT_KINK = -6


def smoothing_width(hist: np.ndarray | None, q: int) -> float:
    """The smoothing width δ of a certificate attempt, from the residual histogram at β.

    At an optimum of the hinge or quantile problem a few rows (at most q generically) sit exactly
    on their kink, t_i = η_i, and the others are away from it; near it the histogram of |t − η|
    has a plateau of empty decades between the two groups. δ is put at the top of the longest
    such plateau holding between 1 and q rows (all of them only below 10**``ALL_AT_KINK``; the
    widest of equal length), so that the correction of the dual acts on the
    rows at the kink only. A choice, not a condition of validity: any δ gives a valid bound.
    """
    if hist is None or not hist.any():
        return 1e-8
    best, width = None, 0
    for k in range(hist.size):
        # every row at the kink only if all are close to it (else the top levels hold every row)
        if not (1 <= hist[k] <= q and (hist[k] < hist[-1] or HIST_DECADES[k] <= ALL_AT_KINK)):
            continue
        run = 1
        while k - run >= 0 and hist[k - run] == hist[k]:
            run += 1
        if run >= width:
            best, width = k, run
    if best is None:
        # no row is apart at its kink: δ a decade below the closest row, so that every row is at a box
        # edge (the subgradient at β; exact when β is optimal with no row on its kink, e.g. β = 0)
        return float(10.0 ** (HIST_DECADES[int(np.argmax(hist > 0))] - 1))
    return float(10.0 ** HIST_DECADES[best])


#: continuation in the E-step's clamp ε (hinge, quantile): ε is multiplied by CLAMP_SHRINK after an
#: accepted iteration whose decrease of F is at most CLAMP_PROGRESS·ε, and after a plain step that
#: does not lower F (measured on Engel and the l1/ridge certificate problems; 1e-3 and 1e-4 pin
#: rows at a wrong vertex less often but take more iterations on Engel)
CLAMP_SHRINK = 0.1
CLAMP_PROGRESS = 1e-2


def initial_clamp(hist: np.ndarray | None, n_rows: float) -> float:
    """The first E-step clamp ε of a non-smooth fit: the decade holding the median |t − η| at the
    start (from the residual histogram of the first pass), CLAMP_EPS without a histogram.

    Clamped EM is MM on the loss Huber-smoothed at width ε: with ε at the residual scale no row
    is pinned to its kink early (weights ≤ 1/2ε), and ε then shrinks with the progress of F
    (``CLAMP_PROGRESS``) down to CLAMP_EPS, where the fit is the plain clamped EM.
    """
    if hist is None or not hist.any():
        return CLAMP_EPS
    k = np.flatnonzero(hist >= 0.5 * n_rows)
    top = HIST_DECADES[k[0]] if k.size else HIST_DECADES[-1]
    return max(CLAMP_EPS, 10.0 ** float(top))


def _next_t(t: float) -> float:
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))


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


def run_lockstep(engine: Engine, loss: Loss, fit_intercept: bool, fits: list,
                 on_done: Callable[[int, FitResult], None] | None = None) -> list[FitResult]:
    """Drive several :func:`em_iterations` generators so that each data pass serves every fit
    still running (one ``engine.stats_many`` call per pass). ``on_done(i, result)`` is called as
    fit i finishes. Returns the results in the order of ``fits``."""
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
    while pending:
        order = list(pending)
        stats = engine.stats_many(loss, [pending[i] for i in order], fit_intercept)
        for i, st in zip(order, stats, strict=True):
            advance(i, st)
    return results


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
    ``BlockStats``, returns a :class:`FitResult` (see :func:`fit_em` for the parameters)."""
    if stop is None:
        stop = Stop.after(config.max_time)
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
    p = n_features
    q = p + int(fit_intercept)
    if warm is not None:
        beta0 = warm.beta
    beta = np.zeros(q) if beta0 is None else np.asarray(beta0, dtype=np.float64).copy()
    if beta.shape != (q,):
        raise ValueError(f"beta0 must have shape ({q},), got {beta.shape}")
    config.check(loss, penalty)
    solver = config.penalty_solver
    curv = make_curvature(config.curvature, loss, warm)
    # the current system is the E-step's own majorizer at `expand` (cached mode: only right after
    # a refresh); only such a plain step is sure not to raise F
    exact = True
    ridge_fixed = config.fixed_curvature and penalty.quadratic and solver == "em" and alpha > 0

    def residual(loss_grad, weight, point):
        zero_tol = em_floor(point[:p]) if solver == "em" else 0.0
        return optimality(loss_grad, weight, point, penalty, alpha, p, zero_tol)

    def within_tol(value, F_at) -> bool:
        """The tolerance of every optimality measure: ``value`` ≤ tol·max(1, |F|)."""
        return value <= config.tol * max(1.0, abs(F_at))

    def residual_ok(rec) -> bool:
        """Smooth losses must have a small optimality residual (above its floating-point floor);
        non-smooth ones are not asked."""
        return not loss.smooth or within_tol(rec.grad_resolved, rec.objective)

    def small(rec) -> bool:
        """The stopping rule: relative change and the residual test."""
        return abs(rec.change) <= config.tol and residual_ok(rec)

    # hinge, quantile: converged only on a duality-gap certificate (see `certify`)
    nonsmooth = not loss.smooth
    certifiable = nonsmooth and (alpha == 0 or penalty.has_conjugate)

    def solve(stats, expand):
        # from β, where the loss gradient is known and the majorizer tangent (smooth losses), the
        # step is solved for as a correction to β: iterative refinement (see m_step)
        refine = loss.smooth and (expand is beta or np.array_equal(expand, beta))
        if ridge_fixed:
            if refine:
                return beta - curv.gram.solve_ridge(loss_grad + W * alpha * np.r_[beta[:p], np.zeros(q - p)],
                                                alpha)
            return curv.gram.solve_ridge(stats.rhs, alpha)
        return m_step(stats, expand, penalty, alpha, p, solver, loss_grad if refine else None)

    accelerated = config.acceleration != "none"
    safeguard = config.acceleration == "nesterov-restart"

    start = time.perf_counter()
    n_passes = 0
    history: list[IterationRecord] = []

    def record(it, F, change, g, pass_seconds, restarted, system, point):
        g = np.abs(g)
        resolved = g[g > gradient_floor(system.gram, system.weight, point)]
        rec = IterationRecord(
            it, F, change, float(np.max(g)) if g.size else 0.0,
            n_passes, pass_seconds, time.perf_counter() - start, restarted,
            float(np.max(resolved)) if resolved.size else 0.0,
        )
        history.append(rec)
        if callback is not None:
            callback(rec)
        return rec

    t0 = time.perf_counter()
    hist = None  # the histogram of |t − η| at β (non-smooth losses; see `smoothing_width`)
    # the E-step's clamp ε (continuation in the smoothing width, non-smooth losses; see `widen`)
    eps = CLAMP_EPS
    if curv.needs_first_pass(warm):
        # a first pass: loss and gradient at β and the system there (fixed curvature: b·Σ s x̃x̃ᵀ)
        first_pass = Request(beta[:, None], beta, curv.bound, histogram=0 if nonsmooth else None)
        stats = yield first_pass
        n_passes += 1
        if not beta.any():  # at β = 0 every loss has moderate weights ω
            check_gram_range(stats, p)
        loss_sum, loss_grad, expand = float(stats.loss[0]), stats.grad[:, 0].copy(), beta
        hist = DualStats.parse(stats.extra, q, first_pass).hist if nonsmooth else None
        if nonsmooth:
            eps = initial_clamp(hist, stats.n)
        curv.hold(stats, p)
    else:
        loss_sum, loss_grad = warm.loss_sum, warm.loss_grad.copy()
        stats, expand, exact = curv.resume(warm, beta, loss_grad, p)
    W, n_rows = stats.weight, stats.n
    F = objective(loss_sum, W, beta, penalty, alpha, p)
    record(0, F, math.nan, residual(loss_grad, W, beta), time.perf_counter() - t0, False, stats, beta)
    # `stats` holds the M-step system at `expand`; loss_sum, loss_grad are at β
    t = _next_t(1.0) if accelerated else 1.0  # t_1; m_0 = 0
    converged = stalled = False
    stopped = None  # why a stop (Stop.reason) ended the loop
    n_restarts = 0
    it = 0
    restarted = False
    pass_seconds = 0.0
    halved = None  # a shortened plain step to try next (losses with a local majorizer only)
    n_halvings = 0
    gap, n_attempts, next_attempt = math.inf, 0, 0
    histogram = 1 if nonsmooth else None  # the residual histogram at each candidate

    # the expansion point of the M-step that gave β (its EM dual is a certificate candidate)
    origin = None
    # certificate attempts also at iteration 16, then at twice the iteration of the latest attempt
    attempted_at, scheduled = None, 16

    def attempts():
        """Certificate attempts at β, again after each accepted polish (at most three)."""
        for _ in range(3):
            before = it
            if (yield from certify()):
                return True
            if it == before:
                return False
        return False

    def at_floor():
        """EM cannot lower F from β: a certificate attempt, unless one was made at this β. True when
        the fit ends here (certified, or a floor without a certificate); False: the polish moved β."""
        nonlocal stalled, converged
        if certifiable and attempted_at is not beta:
            before = it
            converged = yield from attempts()
            if converged or it > before:
                return converged
        stalled = True
        return True

    def certify():
        """One certificate attempt at β (two passes); True when the duality gap is ≤ tol·max(1, |F|).

        Pass 1: the dual a(δ) of the loss smoothed at width δ (:func:`smoothing_width`) and, over
        the rows off the box edges, the slack-weighted Gram G_w = Σ s w x̃x̃ᵀ and Σ s w t x̃. Its gap
        may already certify. Else the client solves G_w λ = target − Σ s a x̃ on the constrained
        coordinates (:func:`dual_correction`), and pass 2 sums the corrected dual
        clip(a(δ) + w·x̃ᵀλ, lo, hi), exactly. The same pass evaluates the *polish* candidate
        argmin_K Σ s w (t − x̃ᵀβ̃)² (the vertex of the rows at the kink), with its E-step system: it
        replaces β when it lowers F, checked by the exact objective change as for any iterate.
        """
        nonlocal beta, F, stats, expand, loss_sum, loss_grad, t, exact, hist, gap, it, n_passes
        nonlocal n_attempts, pass_seconds, attempted_at, origin
        n_attempts += 1
        attempted_at = beta

        width = smoothing_width(hist, q)
        t0 = time.perf_counter()
        first = Request(beta, reference_known=True, dual_point=beta, dual_width=width, dual_ref=origin)
        st = yield first
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        dual = DualStats.parse(st.extra, q, first)
        gap = duality_gap(dual, F, W, n_rows, penalty, alpha, p)
        if within_tol(gap, F):
            return True
        lower = F - gap  # D of the first dual
        zero_tol = em_floor(beta[:p]) if solver == "em" else 0.0
        lam, point = dual_correction(dual, W, beta, penalty, alpha, p, zero_tol)
        second = Request(np.column_stack([beta, point]), point, reference_known=True, dual_point=beta,
                         dual_width=width, dual_lam=lam, histogram=1, clamp=clamp())
        t0 = time.perf_counter()
        st = yield second
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        dF = objective_change(st, point, beta, penalty, alpha, p)
        dual = DualStats.parse(st.extra, q, second)
        D = max(lower, F - duality_gap(dual, F, W, n_rows, penalty, alpha, p))  # the best bound on F*
        # the ridge vertex holds the rows at the kink on it, where the clamped E-step then pins them
        # (weights 1/2ε): it is taken only when it ends the fit certified
        tentative = alpha > 0 and penalty.quadratic
        if dF < 0 and it < config.max_iter and (not tentative or within_tol(F + dF - D, F + dF)):
            # the polished point is the new iterate
            it += 1
            loss_sum, loss_grad = loss_sum + float(st.loss_delta[0]), st.grad[:, 1].copy()
            F_new = F + dF
            record(it, F_new, -dF / max(abs(F_new), np.finfo(float).tiny), residual(loss_grad, W, point),
                   pass_seconds, False, st, point)
            beta, F, stats, expand, t = point, F_new, st, point, _next_t(1.0) if accelerated else 1.0
            origin = None  # not an M-step: no EM dual
            if curv.stale:
                curv.hold(st, p)  # the polish pass formed the E-step system at its point
            exact = True
            pass_seconds = 0.0
            hist = dual.hist
        gap = F - D
        return within_tol(gap, F)

    def clamp():
        return eps if eps > CLAMP_EPS else None

    def system_at_beta():
        """The E-step system at β, which makes the next step a plain one: one pass (none under
        fixed curvature: the gradient at β is known; cached curvature caches its Gram)."""
        nonlocal n_passes, pass_seconds, exact
        exact = True
        if curv.systems_from_gradient:
            return curv.system_from_gradient(beta, loss_grad)
        t0 = time.perf_counter()
        system = yield Request(beta[:, None], beta, clamp=clamp())
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        if curv.stale:
            curv.hold(system, p)
        return system

    while it < config.max_iter:
        candidate = solve(stats, expand) if halved is None else halved
        halved = None
        # candidate = M(β): EM cannot increase F here
        plain_step = (expand is beta or np.array_equal(expand, beta)) and exact
        if np.array_equal(candidate, beta):
            if plain_step and eps > CLAMP_EPS:
                # a fixed point of the map smoothed at ε, not of F's: narrow ε, re-form the system at β
                eps = max(CLAMP_EPS, eps * CLAMP_SHRINK)
                stats = yield from system_at_beta()
                expand, t = beta, _next_t(1.0)
                continue
            if plain_step:
                # an exact fixed point of the EM map: nothing left to gain but a certificate's polish
                if (yield from at_floor()):
                    break
                continue
            # a step from elsewhere (an extrapolated point, a stale Gram) left β unchanged: nothing
            # to evaluate; the next step is the plain one from β
            stats = yield from system_at_beta()
            expand, t = beta, _next_t(1.0)
            continue
        if accelerated:
            t_next = _next_t(t)
            momentum = (t - 1.0) / t_next
        else:
            t_next, momentum = 1.0, 0.0
        next_expand = candidate if momentum == 0.0 else candidate + momentum * (candidate - beta)
        # one pass: F(candidate) − F(β) per observation, ∇F(candidate), system at next_expand
        t0 = time.perf_counter()
        # cached curvature: the pass of accepted iteration 1, 2, 4, 8, … also refreshes the Gram
        # (its E-step at next_expand), as the Gram ages while β moves; rises refresh it too
        refresh = curv.refreshes(it)
        if curv.gradient_pass(it):
            # a gradient pass; the system at next_expand needs only the gradient there
            points = [beta, candidate] + ([] if next_expand is candidate else [next_expand])
            request = Request(np.column_stack(points), reference_known=True, histogram=histogram)
            new_stats = yield request
            next_system = curv.system_from_gradient(next_expand, new_stats.grad[:, -1])
        else:
            # the loss and gradient at β are known from the previous pass: not recomputed
            request = Request(np.column_stack([beta, candidate]), next_expand, reference_known=True,
                              histogram=histogram, clamp=clamp())
            new_stats = next_system = yield request
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        dF = objective_change(new_stats, candidate, beta, penalty, alpha, p)
        if not math.isfinite(dF):
            raise FloatingPointError(f"the objective change at iteration {it + 1} is {dF}")

        if dF > 0 and eps > CLAMP_EPS and (plain_step or config.acceleration == "nesterov"):
            # with ε above |t − η| of some row the quadratic no longer touches the loss at β, so a
            # plain step may raise F: narrow ε and re-form the system at β (at most log(ε/CLAMP_EPS)
            # times before the clamp is CLAMP_EPS again and the rules below apply). Plain Nesterov,
            # which otherwise accepts rises, restarts here too: momentum on a majorizer that does
            # not touch F can diverge
            eps = max(CLAMP_EPS, eps * CLAMP_SHRINK)
            stats = yield from system_at_beta()
            expand, t = beta, _next_t(1.0)
            continue
        if dF > 0 and config.acceleration != "nesterov" and plain_step:
            if loss.local_majorizer and n_halvings < 60:
                # the step left the region where the E-step bound holds: halve it
                n_halvings += 1
                halved = beta + 0.5 * (candidate - beta)
                continue
            # a plain EM step that does not decrease F: rounding floor; keep β
            if (yield from at_floor()):
                break
            continue
        if dF > 0 and (safeguard or (curv.stale and not plain_step)):
            # discard the candidate, form the system at the current β, reset the momentum
            # (cached curvature: always, as a stale Gram need not majorize; the E-step Gram at β
            # becomes the new cache)
            n_restarts += 1
            restarted = True
            stats = yield from system_at_beta()
            expand = beta
            t = _next_t(1.0)
            continue

        it += 1
        n_halvings = 0
        # the pass returned the change of the loss sum from β (point 0), not the sum itself
        loss_sum, loss_grad = loss_sum + float(new_stats.loss_delta[0]), new_stats.grad[:, 1].copy()
        g = residual(loss_grad, W, candidate)
        F_new = F + dF
        change = -dF / max(abs(F_new), np.finfo(float).tiny)
        rec = record(it, F_new, change, g, pass_seconds, restarted, next_system, candidate)
        beta, F, origin = candidate, F_new, expand
        stats, expand, t = next_system, next_expand, t_next
        restarted, pass_seconds = False, 0.0
        exact = curv.majorizes_after(refresh)
        if refresh:
            curv.hold(stats, p)
        if nonsmooth:
            hist = DualStats.parse(new_stats.extra, q, request).hist
            # continuation: once the step's decrease of F is small beside ε, narrow ε
            if -dF <= CLAMP_PROGRESS * eps:
                eps = max(CLAMP_EPS, eps * CLAMP_SHRINK)
        if small(rec) and not nonsmooth:
            converged = True
            break
        if small(rec) and not certifiable:
            break  # no certificate exists: stop as before, unconverged
        if certifiable and ((small(rec) and it >= next_attempt) or it >= scheduled):
            if (converged := (yield from attempts())):
                break
            next_attempt, scheduled = it + min(2**n_attempts, 64), max(scheduled, 2 * it)
        if it < config.max_iter and (stopped := stop.reason()) is not None:
            break  # no certificate attempt after the loop either: a stop is for now

    if certifiable and not converged and attempted_at is not beta and stopped is None:
        converged = yield from certify()  # max_iter reached: certify, or say how far off β is
    if stalled and not nonsmooth:
        # at the floor the change test is moot; smooth losses must still pass the residual test
        converged = residual_ok(history[-1])
    if not converged:
        why = (
            stop.describe(stopped) if stopped is not None
            else "the EM map reached a fixed point or the floating-point floor of the objective"
            if stalled
            else "the objective stopped changing" if nonsmooth and it < config.max_iter
            else f"max_iter={config.max_iter} was reached"
        )
        if certifiable and stopped is not None and attempted_at is not beta:
            state = "no certificate was attempted at the last iterate"
        elif certifiable:
            state = (f"duality gap {gap:.3g} (relative {gap / max(1.0, abs(F)):.3g}) above the tolerance"
                     if math.isfinite(gap) else "duality gap unknown: no dual-feasible point was found at β")
        elif nonsmooth:
            state = (f"no optimality certificate exists for the {penalty.name} penalty (no convex "
                     f"conjugate), so the {loss.name} fit is never certified")
        else:
            state = (f"last relative change {history[-1].change:.3g}, gradient norm "
                     f"{history[-1].grad_norm:.3g}")
        advice = {None: "increase max_iter or tol", "max_time": "increase max_time"}.get(
            stopped, "its current iterate is returned")
        warnings.warn(
            f"SM-EM {'stopped' if stopped else 'did not meet tol=' + format(config.tol, 'g')} after "
            f"{it} iterations{', unconverged' if stopped else ''}: {why} ({state}); {advice}",
            ConvergenceWarning,
            stacklevel=5,
        )
    return FitResult(
        coef=beta[:p].copy(),
        intercept=float(beta[p]) if fit_intercept else 0.0,
        n_iter=it,
        n_passes=n_passes,
        objective=F,
        grad_norm=history[-1].grad_norm,
        converged=converged,
        n_restarts=n_restarts,
        history=history,
        warm=WarmStart(beta.copy(), loss_sum, loss_grad, stats, expand.copy(),
                       curv.warm_gram()),
        duality_gap=gap if certifiable else math.nan,
        stopped=stopped,
    )
