"""The iterate of the EM loop and the arithmetic of one step: the objective F, its exact change
between two points, the optimality residual and its rounding floor, the M-step solve; the records a
fit leaves (:class:`IterationRecord`, :class:`WarmStart`, :class:`FitResult`) and its warnings.

:class:`Iterate` is the loop's whole mutable state (:class:`smem_dask.emloop.EMLoop` changes it;
everything else of a fit is fixed when it starts). See docs/method.md, "The objective" and
"Penalties and the M-step".

No dask here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.linalg
import sklearn.exceptions

from .curvature import FixedCurvature
from .penalties import Penalty
from .stats import BlockStats

__all__ = ["ConvergenceWarning", "FitResult", "Iterate", "IterationRecord", "SingularSystemWarning",
           "WarmStart", "gradient_floor", "m_step", "objective", "objective_change", "optimality"]


class ConvergenceWarning(sklearn.exceptions.ConvergenceWarning):
    """The solver stopped before meeting its tolerance (``max_iter``, a floor of the objective, or —
    hinge and quantile — no duality-gap certificate); the message says how far off it is.
    scikit-learn's ``ConvergenceWarning``, so the usual filters apply."""


class SingularSystemWarning(UserWarning):
    """The M-step matrix was singular; a minimum-norm least-squares solution was used."""


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
    #: why the fit stopped before it could converge: "max_time" or "interrupted" (see
    #: :class:`~smem_dask.solver.Stop`); None when it ran its course
    stopped: str | None = None

    @property
    def objective_history(self) -> list[float]:
        return [r.objective for r in self.history]


def objective(loss_sum: float, weight: float, beta: np.ndarray, penalty: Penalty, alpha: float,
              p: int) -> float:
    """F = (1/W) Σ s ℓ + α P(β) from the weighted loss sum at β (docs/method.md, "The objective")."""
    return float(loss_sum / weight + alpha * penalty.value(beta[:p]))


def objective_change(stats: BlockStats, beta: np.ndarray, beta_ref: np.ndarray, penalty: Penalty,
                     alpha: float, p: int, point: int = 1) -> float:
    """F(β) − F(β_ref) for evaluation points ``point`` (β) and 0 (β_ref), from per-observation
    differences.

    Accurate to rounding of the *difference*, where F(β) − F(β_ref) computed from two objective
    values is lost below about 1e-16·|F|.
    """
    return float(stats.loss_delta[point - 1] / stats.weight
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


def m_step(stats: BlockStats, expand: np.ndarray, penalty: Penalty, alpha: float, p: int, *,
           exact: bool = False, loss_grad: np.ndarray | None = None):
    """Minimize the quadratic majorizer at β̃ plus the penalty (see docs/method.md, "Penalties and the
    M-step").

    ``exact=False`` (penalty solver ``"em"``): solve (G + W α diag(d(β̃))) β = r — Cholesky, or least
    squares with a warning if singular. ``exact=True`` (``"exact"``): the penalty's own p×p solver,
    warm-started at β̃.

    ``loss_grad``: the loss gradient Σ s ℓ' x̃ at β̃, for a majorizer tangent there (r = Gβ̃ − ∇):
    the ``"em"`` step is then taken as the correction β̃ − A⁻¹(∇ + WαDβ̃), the same point in exact
    arithmetic, but one step of iterative refinement in floating point — solving for β itself loses
    cond(G)·ε of it (Longley: 6e-8 relative, against 2e-12 for the correction).
    """
    if not isinstance(exact, bool):
        raise TypeError(f"exact must be True or False, got {exact!r}")
    if not (np.isfinite(stats.gram).all() and np.isfinite(stats.rhs).all()):
        raise FloatingPointError("the M-step system has non-finite entries")
    if exact:
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
            # m_step, EMLoop.propose, EMLoop.iteration, EMLoop.run, em_iterations (as before the split)
            stacklevel=5,
        )
        return scipy.linalg.lstsq(A, stats.rhs, cond=None, lapack_driver="gelsd")[0]


@dataclass
class Iterate:
    """The mutable state of one EM fit: where it is, the M-step system it will solve next, and
    what it has counted. Everything about the fit that does not change as it runs (loss, penalty,
    α, settings, curvature mode) is held by the loop, not here.

    ``system`` is the M-step system (G, r, with W and n) formed at ``expand``; ``at_beta`` says that
    ``expand`` is β itself, ``majorizes`` that the system is the E-step's own majorizer there (a
    cached Gram is not, until it is refreshed): only a step that is both — a *plain* EM step — is
    sure not to raise F (:meth:`plain`).
    """

    beta: np.ndarray  # the iterate: coefficients, then the intercept
    F: float  # F(β), as F_0 plus the exact changes of the accepted steps
    loss_sum: float  # Σ s ℓ at β
    loss_grad: np.ndarray  # Σ s ℓ' x̃ at β
    system: BlockStats  # the M-step system at `expand`
    expand: np.ndarray  # where `system` was formed
    at_beta: bool = True  # `expand` is β
    majorizes: bool = True  # `system` is the E-step's own majorizer at `expand`
    t: float = 1.0  # the FISTA sequence t_k (momentum (t_k − 1)/t_{k+1})
    it: int = 0  # accepted iterations
    n_passes: int = 0
    n_restarts: int = 0
    restarted: bool = False  # the next accepted iterate follows a restart
    pass_seconds: float = 0.0  # wall time of the passes since the last accepted iterate
    #: the expansion point of the M-step that gave β (its EM dual is a certificate candidate); None
    #: when β did not come from an M-step (the start, a polish)
    origin: np.ndarray | None = None
    hist: np.ndarray | None = None  # the residual histogram |t − η| at β (non-smooth losses)
    halved: np.ndarray | None = None  # a shortened plain step to try next (local majorizers)
    proposed: np.ndarray | None = None  # the next M-step, solved already at β (Newton's stopping test)
    n_halvings: int = 0  # halvings since the last accepted iterate
    history: list[IterationRecord] = field(default_factory=list)

    def from_beta(self) -> bool:
        """Whether the next M-step expands at β (the system's point equals the iterate)."""
        return self.at_beta or np.array_equal(self.expand, self.beta)

    def plain(self) -> bool:
        """Whether the next M-step is a plain EM step: from β, with the E-step's own majorizer."""
        return self.from_beta() and self.majorizes

    def move(self, beta: np.ndarray, F: float, loss_sum: float, loss_grad: np.ndarray,
             system: BlockStats, expand: np.ndarray, at_beta: bool) -> None:
        """Accept ``beta`` as the iterate, with the system for the next M-step."""
        self.proposed = None
        self.beta, self.F, self.loss_sum, self.loss_grad = beta, F, loss_sum, loss_grad
        self.system, self.expand, self.at_beta = system, expand, at_beta
