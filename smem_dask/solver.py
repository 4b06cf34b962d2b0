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
4. *Stopping*: relative objective change ≤ tol **and**, for smooth losses, the scaled optimality
   residual ``‖∇F‖_∞ / max(1, |F|)`` ≤ tol (the minimum-norm subgradient for non-smooth penalties).
   For non-smooth losses (hinge, quantile) only the relative change is used.

Objective changes are computed per observation (``Loss.value_difference``) in the same pass, so
restart and stopping decisions stay exact far below the ~1e-16·|F| resolution of F itself; the
recorded objective of iteration k is F_0 + Σ ΔF, which equals F(β_k) of SPEC §2 to rounding.

In steady state every iteration, objective evaluation and restart check included, reads the data
once; a restart costs two extra passes.

Rounding: a gradient entry below its floating-point floor (:func:`gradient_floor`) counts as zero in
the residual test, and a step that leaves β bitwise unchanged is never evaluated — from β itself
(the plain EM step) it ends the fit as a fixed point; from an extrapolated point or a stale cached
Gram, the system is formed at β (like a restart) so that the next step is the plain one.

``curvature="fixed"`` (SPEC §6; losses with a bound ω ≤ b: logistic ¼, squared and huber 1) replaces
the E-step by ω = b, u = b·η̃ − ℓ'(η̃): the M-step matrix b·Σ s x̃x̃ᵀ (+ W·α·D) is formed once, the
right-hand side needs only the loss gradient at β̃, so each iteration's pass is a gradient pass
(k + 1 columns instead of a p×p Gram) and a restart costs no pass. With ridge one eigendecomposition
serves every α and iteration. The bound is looser than the E-step's, so it takes more iterations.
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
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.linalg

from .losses import Loss
from .penalties import Penalty, check_solver, em_floor
from .stats import BlockStats, Request, check_gram_range

__all__ = [
    "ACCELERATIONS",
    "CURVATURES",
    "ConvergenceWarning",
    "FixedCurvature",
    "FitResult",
    "IterationRecord",
    "SingularSystemWarning",
    "SolverConfig",
    "WarmStart",
    "em_iterations",
    "fit_em",
    "run_lockstep",
    "objective",
    "objective_change",
    "optimality",
    "m_step",
]

ACCELERATIONS = ("none", "nesterov", "nesterov-restart")
PENALTY_SOLVERS = ("em", "exact")
CURVATURES = ("adaptive", "fixed", "cached")


class ConvergenceWarning(UserWarning):
    """The solver stopped at ``max_iter`` before meeting its tolerance."""


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

    @property
    def objective_history(self) -> list[float]:
        return [r.objective for r in self.history]


class FixedCurvature:
    """The fixed-curvature M-step matrix G = b·Σ s x̃x̃ᵀ (independent of β and α; SPEC §6).

    ``system(β̃, ∇)`` is the majorizer's system at β̃ from the loss gradient there (no E-step pass).
    ``solve_ridge`` solves (G + W·α·D) x = r for any α with one eigendecomposition, made on first
    use and shared by every fit holding this object: with an intercept (last column, unpenalized)
    it is eliminated first, leaving the Schur complement C = G_pp − g gᵀ/c, whose eigenvectors
    diagonalize C + W·α·I for every α.
    """

    def __init__(self, gram: np.ndarray, weight: float, n_features: int):
        self.gram = np.asarray(gram, dtype=np.float64)
        self.weight = float(weight)
        self.p = int(n_features)
        self._eig = None

    def system(self, expand: np.ndarray, loss_grad: np.ndarray) -> BlockStats:
        return BlockStats.system_only(0.0, self.weight, self.gram, self.gram @ expand - loss_grad)

    def _eigh(self):
        if self._eig is None:
            p, G = self.p, self.gram
            C = G[:p, :p]
            if G.shape[0] > p:
                C = C - np.outer(G[:p, p], G[:p, p]) / G[p, p]
            self._eig = scipy.linalg.eigh(C)
        return self._eig

    def solve_ridge(self, rhs: np.ndarray, alpha: float) -> np.ndarray:
        p, G = self.p, self.gram
        lam, V = self._eigh()
        r = rhs[:p]
        if G.shape[0] > p:
            r = r - G[:p, p] * (rhs[p] / G[p, p])
        x = np.empty_like(rhs)
        x[:p] = V @ ((V.T @ r) / (lam + self.weight * alpha))
        if G.shape[0] > p:
            x[p] = (rhs[p] - G[p, :p] @ x[:p]) / G[p, p]
        return x


def curvature_bound(loss: Loss) -> float:
    """The bound b ≥ ω of a loss, or a clear error when its weights are unbounded."""
    if loss.omega_bound is None:
        raise ValueError(
            f"curvature='fixed' needs a loss with bounded observation weights (logistic, squared, "
            f"huber); the {loss.name} loss has none — use curvature='adaptive'"
        )
    return float(loss.omega_bound)


def objective(loss_sum: float, weight: float, beta: np.ndarray, penalty: Penalty, alpha: float,
              p: int) -> float:
    """F = (1/W) Σ s ℓ + α P(β) from the weighted loss sum at β (SPEC §2)."""
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
    """Minimize the quadratic majorizer at β̃ plus the penalty (SPEC §5).

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
    """
    fit = em_iterations(loss, penalty, alpha, engine.n_features, fit_intercept=fit_intercept,
                        config=config, beta0=beta0, callback=callback, warm=warm)
    return run_lockstep(engine, loss, fit_intercept, [fit])[0]


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
):
    """The SM-EM iteration as a generator: yields one :class:`Request` per data pass, receives its
    ``BlockStats``, returns a :class:`FitResult` (see :func:`fit_em` for the parameters)."""
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
    check_solver(penalty, config.penalty_solver)
    solver = config.penalty_solver
    fixed_mode = config.curvature == "fixed"
    # cached: the E-step Gram of the last refresh is the M-step matrix of gradient-only passes
    cached_mode = config.curvature == "cached"
    bound = curvature_bound(loss) if fixed_mode else None
    fixed = warm.fixed if (fixed_mode and warm is not None) else None
    # the current system is the E-step's own majorizer at `expand` (cached mode: only right after
    # a refresh); only such a plain step is sure not to raise F
    exact = True
    ridge_fixed = fixed_mode and penalty.quadratic and solver == "em" and alpha > 0

    def residual(loss_grad, weight, point):
        zero_tol = em_floor(point[:p]) if solver == "em" else 0.0
        return optimality(loss_grad, weight, point, penalty, alpha, p, zero_tol)

    def residual_ok(rec) -> bool:
        """Smooth losses must have a small optimality residual (above its floating-point floor);
        non-smooth ones are not asked."""
        return not loss.smooth or rec.grad_resolved <= config.tol * max(1.0, abs(rec.objective))

    def small(rec) -> bool:
        """The stopping rule: relative change and the residual test."""
        return abs(rec.change) <= config.tol and residual_ok(rec)

    def solve(stats, expand):
        # from β, where the loss gradient is known and the majorizer tangent (smooth losses), the
        # step is solved for as a correction to β: iterative refinement (see m_step)
        refine = loss.smooth and (expand is beta or np.array_equal(expand, beta))
        if ridge_fixed:
            if refine:
                return beta - fixed.solve_ridge(loss_grad + W * alpha * np.r_[beta[:p], np.zeros(q - p)],
                                                alpha)
            return fixed.solve_ridge(stats.rhs, alpha)
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
    if warm is None or (fixed_mode and fixed is None):
        # a first pass: loss and gradient at β and the system there (fixed curvature: b·Σ s x̃x̃ᵀ)
        stats = yield Request(beta[:, None], beta, bound)
        n_passes += 1
        check_gram_range(stats, p)
        loss_sum, loss_grad, expand = float(stats.loss[0]), stats.grad[:, 0].copy(), beta
        if fixed_mode or cached_mode:
            fixed = FixedCurvature(stats.gram, stats.weight, p)
    elif fixed_mode:
        loss_sum, loss_grad, expand = warm.loss_sum, warm.loss_grad.copy(), beta
        stats = fixed.system(beta, loss_grad)
    else:
        stats, loss_sum, loss_grad = warm.system, warm.loss_sum, warm.loss_grad.copy()
        expand = beta if np.array_equal(warm.expand, beta) else warm.expand
        if cached_mode:
            fixed, exact = FixedCurvature(stats.gram, stats.weight, p), False
    W = stats.weight
    F = objective(loss_sum, W, beta, penalty, alpha, p)
    record(0, F, math.nan, residual(loss_grad, W, beta), time.perf_counter() - t0, False, stats, beta)
    # `stats` holds the M-step system at `expand`; loss_sum, loss_grad are at β
    t = _next_t(1.0) if accelerated else 1.0  # t_1; m_0 = 0
    converged = stalled = False
    n_restarts = 0
    it = 0
    restarted = False
    pass_seconds = 0.0
    halved = None  # a shortened plain step to try next (losses with a local majorizer only)
    n_halvings = 0

    def system_at_beta():
        """The E-step system at β, which makes the next step a plain one: one pass (none under
        fixed curvature: the gradient at β is known; cached curvature caches its Gram)."""
        nonlocal n_passes, pass_seconds, fixed, exact
        exact = True
        if fixed_mode:
            return fixed.system(beta, loss_grad)
        t0 = time.perf_counter()
        system = yield Request(beta[:, None], beta)
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        if cached_mode:
            fixed = FixedCurvature(system.gram, system.weight, p)
        return system

    while it < config.max_iter:
        candidate = solve(stats, expand) if halved is None else halved
        halved = None
        # candidate = M(β): EM cannot increase F here
        plain_step = (expand is beta or np.array_equal(expand, beta)) and exact
        if np.array_equal(candidate, beta):
            if plain_step:
                stalled = True  # an exact fixed point of the EM map: nothing left to gain
                break
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
        refresh = cached_mode and ((it + 1) & it) == 0
        if fixed_mode or (cached_mode and not refresh):
            # a gradient pass; the system at next_expand needs only the gradient there
            points = [beta, candidate] + ([] if next_expand is candidate else [next_expand])
            new_stats = yield Request(np.column_stack(points), reference_known=True)
            next_system = fixed.system(next_expand, new_stats.grad[:, -1])
        else:
            # the loss and gradient at β are known from the previous pass: not recomputed
            new_stats = next_system = yield Request(np.column_stack([beta, candidate]),
                                                    next_expand, reference_known=True)
        n_passes += 1
        pass_seconds += time.perf_counter() - t0
        dF = objective_change(new_stats, candidate, beta, penalty, alpha, p)
        if not math.isfinite(dF):
            raise FloatingPointError(f"the objective change at iteration {it + 1} is {dF}")

        if dF > 0 and config.acceleration != "nesterov" and plain_step:
            if loss.local_majorizer and n_halvings < 60:
                # the step left the region where the E-step bound holds: halve it
                n_halvings += 1
                halved = beta + 0.5 * (candidate - beta)
                continue
            stalled = True  # a plain EM step that does not decrease F: rounding floor; keep β
            break
        if dF > 0 and (safeguard or (cached_mode and not plain_step)):
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
        beta, F = candidate, F_new
        stats, expand, t = next_system, next_expand, t_next
        restarted, pass_seconds = False, 0.0
        exact = not cached_mode or refresh
        if refresh:
            fixed = FixedCurvature(stats.gram, stats.weight, p)
        if small(rec):
            converged = True
            break

    if stalled:
        # at the floor the change test is moot; smooth losses must still pass the residual test
        converged = residual_ok(history[-1])
    if not converged:
        why = (
            "the EM map reached a fixed point or the floating-point floor of the objective"
            if stalled
            else f"max_iter={config.max_iter} was reached"
        )
        warnings.warn(
            f"SM-EM did not meet tol={config.tol:g} after {it} iterations: {why} (last relative "
            f"change {history[-1].change:.3g}, gradient norm {history[-1].grad_norm:.3g}); "
            "increase max_iter or tol",
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
                       fixed if fixed_mode else None),
    )
