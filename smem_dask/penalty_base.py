r"""The penalty interface: what every penalty P(β) implements, and the EM floor on |β_j|.

:class:`Penalty` is the base class of every penalty (:mod:`smem_dask.convex_penalties`,
:mod:`smem_dask.nonconvex_penalties`): its value, the parameter weights d(β) of the ``"em"``
treatment, the optimality residual, and — where a subclass has them — the convex conjugate and the
exact M-step solver (see :mod:`smem_dask.penalties` for the two treatments).

The EM weights divide by |β_j|, which is clamped below at :func:`em_floor` = ``EM_EPS``·max(1, ‖β‖∞)
so that d stays finite; the same floor is the size below which an ``"em"`` fit's coefficient counts
as zero. No dask, no X here.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import numpy as np

__all__ = ["EM_EPS", "Penalty", "em_floor"]

#: relative floor on |β_j| in EM parameter weights (and the size below which a coefficient counts
#: as zero in the optimality check of an ``"em"`` fit)
EM_EPS = 1e-10


class Penalty(abc.ABC):
    """A penalty P(β) on the (non-intercept) coefficients."""

    name: ClassVar[str]
    #: an exact minimizer of the quadratic majorizer plus penalty is implemented (``solve_exact``)
    has_exact: ClassVar[bool] = False
    #: the treatment used when the estimator's ``penalty_solver`` is None
    default_solver: ClassVar[str] = "em"
    #: convex penalties start from β = 0; non-convex ones from the ridge fit (0 can be a trap)
    convex: ClassVar[bool] = True
    #: P(β) = ½‖β‖²: the M-step matrix G + W·α·I does not depend on β (fixed curvature can reuse one
    #: eigendecomposition for every α and iteration)
    quadratic: ClassVar[bool] = False

    @abc.abstractmethod
    def value(self, beta: np.ndarray) -> float:
        """P(β)."""

    @abc.abstractmethod
    def weights(self, beta: np.ndarray) -> np.ndarray:
        """Parameter weights d(β) of the EM majorizer: P(β') ≤ const + ½ Σ d_j β'_j²."""

    @abc.abstractmethod
    def optimality(self, beta: np.ndarray, grad_loss: np.ndarray, alpha: float,
                   zero_tol: float = 0.0) -> np.ndarray:
        """Per-coefficient violation of 0 ∈ ∇loss + α ∂P(β) (the minimum-norm subgradient).

        Coefficients with |β_j| ≤ ``zero_tol`` are treated as zero (``"em"`` fits never reach 0).
        """

    def value_difference(self, beta: np.ndarray, beta_ref: np.ndarray) -> float:
        """P(β) − P(β_ref), accurate when β ≈ β_ref (override with a stable formula)."""
        return self.value(beta) - self.value(beta_ref)

    def zero_threshold(self, grad_loss: np.ndarray) -> float | None:
        """The smallest α at which β = 0 is optimal given the loss gradient there; None if no α
        makes it optimal (penalties with no kink at 0)."""
        return None

    #: ``conjugate`` and ``dual_scale`` are implemented (convex penalties): the solver can certify
    #: optimality by a duality gap
    has_conjugate: ClassVar[bool] = False

    def conjugate(self, z: np.ndarray) -> float:
        """The convex conjugate P*(z) = sup_β zᵀβ − P(β) (``inf`` outside its domain)."""
        raise NotImplementedError(f"penalty {self.name!r} has no conjugate")

    def dual_scale(self, z: np.ndarray) -> float:
        """The largest c ∈ [0, 1] with P*(c·z) finite (1 when P* is finite everywhere)."""
        return 1.0

    def solve_exact(self, A: np.ndarray, b: np.ndarray, beta0: np.ndarray, lam: float,
                    p: int) -> np.ndarray:
        """argmin ½βᵀAβ − bᵀβ + lam·P(β[:p]) (entries past p unpenalized), from ``beta0``."""
        raise NotImplementedError(f"penalty {self.name!r} has no exact solver; use penalty_solver='em'")


def em_floor(beta: np.ndarray) -> float:
    """EM_EPS·max(1, ‖β‖∞): the clamp of |β_j| in EM weights, and the size below which an
    ``"em"`` fit's coefficient counts as zero."""
    return EM_EPS * max(1.0, float(np.abs(np.asarray(beta, dtype=np.float64)).max(initial=0.0)))


def _clamped_abs(beta: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(np.asarray(beta, dtype=np.float64)), em_floor(beta))


def _unit_box_scale(z) -> float:
    """The largest c ∈ [0, 1] with ‖c·z‖∞ ≤ 1: the domain of the l1 norm's conjugate."""
    top = float(np.abs(np.asarray(z, np.float64)).max(initial=0.0))
    return 1.0 if top <= 1 else 1.0 / top
