r"""The convex penalties: ridge, elastic net, lasso and group lasso.

:class:`L2`, :class:`ElasticNet`, :class:`L1` and :class:`Group` are convex: the solver starts them
from β = 0, and each has a convex conjugate (``conjugate``, ``dual_scale``) so a fit can be
certified by a duality gap. Elastic net, lasso and group lasso also have an exact M-step
(``solve_exact``, from :mod:`smem_dask.exact_solvers`) that gives exact zeros; it is their default
``penalty_solver``. Ridge's ``"em"`` M-step is already exact. No dask, no X here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .exact_solvers import _active_set_elastic_net, _block_coordinate_descent
from .penalty_base import Penalty, _clamped_abs, _unit_box_scale, em_floor

__all__ = ["L1", "L2", "ElasticNet", "Group"]


@dataclass(frozen=True)
class L2(Penalty):
    r"""Ridge: :math:`P(β) = \tfrac12 \lVert β \rVert_2^2`, so d = 1 for every coefficient.

    Equivalent to scikit-learn's ``LogisticRegression(C)`` with α = 1/(C·n) (or 1/(C·Σs) with
    sample weights) and to ``Ridge(alpha=a)`` on squared loss with α = a/n. The ``"em"`` M-step is
    already exact.
    """

    name: ClassVar[str] = "l2"
    quadratic: ClassVar[bool] = True
    has_conjugate: ClassVar[bool] = True

    def conjugate(self, z):  # P* = P
        return self.value(z)

    def value(self, beta):
        beta = np.asarray(beta, dtype=np.float64)
        return 0.5 * float(beta @ beta)

    def weights(self, beta):
        return np.ones(np.shape(beta))

    def optimality(self, beta, grad_loss, alpha, zero_tol=0.0):
        return grad_loss + alpha * np.asarray(beta, dtype=np.float64)

    def value_difference(self, beta, beta_ref):
        beta, beta_ref = np.asarray(beta, np.float64), np.asarray(beta_ref, np.float64)
        return 0.5 * float((beta - beta_ref) @ (beta + beta_ref))


@dataclass(frozen=True)
class ElasticNet(Penalty):
    r"""Elastic net: :math:`P(β) = r\lVert β\rVert_1 + \frac{1-r}{2}\lVert β\rVert_2^2`, r = ``l1_ratio``.

    EM weights d_j = r/|β_j| + (1 − r); exact solve by an active-set (feature-sign) search.
    scikit-learn: ``ElasticNet(alpha=a, l1_ratio=r)`` on squared loss is α = a;
    ``LogisticRegression(penalty="elasticnet", C, l1_ratio=r)`` is α = 1/(C·n).
    """

    l1_ratio: float = 0.5
    name: ClassVar[str] = "elasticnet"
    has_exact: ClassVar[bool] = True
    default_solver: ClassVar[str] = "exact"
    has_conjugate: ClassVar[bool] = True

    def conjugate(self, z):
        """P*(z) = Σ (|z_j| − r)₊² / (2(1 − r)); for r = 1 (lasso) 0 if ‖z‖∞ ≤ 1, else inf."""
        excess = np.maximum(np.abs(np.asarray(z, np.float64)) - self.l1_ratio, 0.0)
        if self.l1_ratio < 1:
            return float(excess @ excess / (2 * (1 - self.l1_ratio)))
        return 0.0 if not excess.any() else np.inf

    def dual_scale(self, z):
        return _unit_box_scale(z) if self.l1_ratio == 1 else 1.0

    def __post_init__(self):
        if not (0.0 <= float(self.l1_ratio) <= 1.0):
            raise ValueError(f"l1_ratio must be in [0, 1], got {self.l1_ratio!r}")

    def value(self, beta):
        beta = np.asarray(beta, dtype=np.float64)
        r = self.l1_ratio
        return float(r * np.abs(beta).sum() + 0.5 * (1 - r) * (beta @ beta))

    def value_difference(self, beta, beta_ref):
        beta, beta_ref = np.asarray(beta, np.float64), np.asarray(beta_ref, np.float64)
        r = self.l1_ratio
        return float(r * (np.abs(beta) - np.abs(beta_ref)).sum()
                     + 0.5 * (1 - r) * ((beta - beta_ref) @ (beta + beta_ref)))

    def weights(self, beta):
        return self.l1_ratio / _clamped_abs(beta) + (1 - self.l1_ratio)

    def optimality(self, beta, grad_loss, alpha, zero_tol=0.0):
        beta = np.asarray(beta, dtype=np.float64)
        r = self.l1_ratio
        smooth = grad_loss + alpha * (1 - r) * beta
        zero = np.abs(beta) <= zero_tol
        return np.where(zero, np.maximum(np.abs(grad_loss) - alpha * r, 0.0),
                        smooth + alpha * r * np.sign(beta))

    def zero_threshold(self, grad_loss):
        r = self.l1_ratio
        return float(np.abs(grad_loss).max() / r) if r > 0 else None

    def solve_exact(self, A, b, beta0, lam, p):
        l1 = np.zeros(len(b))
        l1[:p] = lam * self.l1_ratio
        l2 = np.zeros(len(b))
        l2[:p] = lam * (1 - self.l1_ratio)
        return _active_set_elastic_net(A, b, beta0, l1, l2)


@dataclass(frozen=True)
class L1(ElasticNet):
    r"""Lasso: :math:`P(β) = \lVert β \rVert_1` (elastic net with ``l1_ratio`` = 1).

    scikit-learn: ``Lasso(alpha=a)`` is α = a; ``LogisticRegression(penalty="l1", C)`` is
    α = 1/(C·n).
    """

    l1_ratio: float = field(default=1.0, init=False)
    name: ClassVar[str] = "l1"


@dataclass(frozen=True)
class Group(Penalty):
    r"""Group lasso: :math:`P(β) = \sum_G \sqrt{|G|}\,\lVert β_G \rVert_2`.

    ``groups`` gives a group label per coefficient (length p). EM weights
    d_j = √|G|/‖β_G‖ for j ∈ G; the exact M-step is block coordinate descent on the p×p Gram, each
    block minimized exactly (zero, or the root of a one-dimensional secular equation), so whole
    groups are exactly zero.
    """

    groups: tuple = ()
    name: ClassVar[str] = "group"
    has_exact: ClassVar[bool] = True
    default_solver: ClassVar[str] = "exact"
    has_conjugate: ClassVar[bool] = True

    def conjugate(self, z):
        """P*(z) = 0 if ‖z_G‖ ≤ √|G| for every group G, else inf."""
        return 0.0 if self.dual_scale(z) >= 1.0 else np.inf

    def dual_scale(self, z):
        z = np.asarray(z, np.float64)
        ratios = [np.linalg.norm(z[m]) / np.sqrt(len(m)) for m in self._members(len(z))]
        return 1.0 / max(1.0, max(ratios, default=0.0))

    def __post_init__(self):
        labels = tuple(np.asarray(self.groups).ravel().tolist())
        if not labels:
            raise ValueError("the group penalty needs groups: one label per coefficient")
        # labels are compared with ==: NaN would be a group of none, None one of its own
        missing = [f"groups[{j}] is {'None' if g is None else 'NaN'}" for j, g in enumerate(labels)
                   if g is None or (isinstance(g, float) and math.isnan(g))]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            raise ValueError(f"{shown}; every coefficient needs a group label")
        object.__setattr__(self, "groups", labels)

    def _members(self, p: int) -> list[np.ndarray]:
        if len(self.groups) != p:
            raise ValueError(f"groups has {len(self.groups)} labels but there are {p} coefficients")
        labels = np.asarray(self.groups, dtype=object)
        return [np.flatnonzero(labels == g) for g in dict.fromkeys(self.groups)]

    def value(self, beta):
        beta = np.asarray(beta, dtype=np.float64)
        return float(sum(np.sqrt(len(m)) * np.linalg.norm(beta[m]) for m in self._members(len(beta))))

    def value_difference(self, beta, beta_ref):
        # ‖a‖ − ‖b‖ = (a − b)·(a + b) / (‖a‖ + ‖b‖): no cancellation for small steps
        a, b = np.asarray(beta, dtype=np.float64), np.asarray(beta_ref, dtype=np.float64)
        total = 0.0
        for m in self._members(len(a)):
            denom = float(np.linalg.norm(a[m]) + np.linalg.norm(b[m]))
            if denom > 0:
                total += np.sqrt(len(m)) * float((a[m] - b[m]) @ (a[m] + b[m])) / denom
        return total

    def weights(self, beta):
        beta = np.asarray(beta, dtype=np.float64)
        d = np.empty(len(beta))
        floor = em_floor(beta)
        for m in self._members(len(beta)):
            d[m] = np.sqrt(len(m)) / max(float(np.linalg.norm(beta[m])), floor)
        return d

    def optimality(self, beta, grad_loss, alpha, zero_tol=0.0):
        beta = np.asarray(beta, dtype=np.float64)
        out = np.empty(len(beta))
        for m in self._members(len(beta)):
            norm = float(np.linalg.norm(beta[m]))
            weight = alpha * np.sqrt(len(m))
            if norm <= zero_tol:
                out[m] = max(float(np.linalg.norm(grad_loss[m])) - weight, 0.0)
            else:
                out[m] = grad_loss[m] + weight * beta[m] / norm
        return out

    def zero_threshold(self, grad_loss):
        return float(max(np.linalg.norm(grad_loss[m]) / np.sqrt(len(m))
                         for m in self._members(len(grad_loss))))

    def solve_exact(self, A, b, beta0, lam, p):
        blocks = [(m, lam * np.sqrt(len(m))) for m in self._members(p)]
        blocks += [(np.array([j]), 0.0) for j in range(p, len(b))]  # unpenalized (intercept)
        return _block_coordinate_descent(A, b, beta0, blocks)
