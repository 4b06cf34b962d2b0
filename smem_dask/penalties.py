"""Penalties P(β) and their parameter weights for the M-step.

The objective adds α·P(β) (SPEC §2); the intercept is never penalized and never reaches a penalty.
For the ``"em"`` treatment (SPEC §5) a penalty gives per-coefficient weights d_j so that the M-step
system is ``(XᵀSΩX + W·α·diag(d)) β = r``. No dask, no X here.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Penalty", "L2", "get_penalty", "PENALTIES"]


class Penalty(abc.ABC):
    """A penalty P(β) on the (non-intercept) coefficients."""

    name: ClassVar[str]

    @abc.abstractmethod
    def value(self, beta: np.ndarray) -> float:
        """P(β)."""

    @abc.abstractmethod
    def weights(self, beta: np.ndarray) -> np.ndarray:
        """Parameter weights d(β) of the EM majorizer: P(β') ≤ const + ½ Σ d_j β'_j²."""

    @abc.abstractmethod
    def gradient(self, beta: np.ndarray) -> np.ndarray:
        """∇P(β) (smooth penalties) — used for the gradient-norm stopping rule."""

    def value_difference(self, beta: np.ndarray, beta_ref: np.ndarray) -> float:
        """P(β) − P(β_ref), accurate when β ≈ β_ref (override with a stable formula)."""
        return self.value(beta) - self.value(beta_ref)


@dataclass(frozen=True)
class L2(Penalty):
    r"""Ridge: :math:`P(β) = \tfrac12 \lVert β \rVert_2^2`, so d = 1 for every coefficient.

    Equivalent to scikit-learn's ``LogisticRegression(C)`` with α = 1/(C·n) (or 1/(C·Σs) with
    sample weights) and to ``Ridge(alpha=a)`` on squared loss with α = a/n.
    """

    name: ClassVar[str] = "l2"

    def value(self, beta):
        beta = np.asarray(beta, dtype=np.float64)
        return 0.5 * float(beta @ beta)

    def weights(self, beta):
        return np.ones(np.shape(beta))

    def gradient(self, beta):
        return np.asarray(beta, dtype=np.float64)

    def value_difference(self, beta, beta_ref):
        beta, beta_ref = np.asarray(beta, np.float64), np.asarray(beta_ref, np.float64)
        return 0.5 * float((beta - beta_ref) @ (beta + beta_ref))


PENALTIES: dict[str, type[Penalty]] = {cls.name: cls for cls in (L2,)}


def get_penalty(penalty: str | Penalty) -> Penalty:
    """A penalty object from its name or an instance; a clear error lists the known names."""
    if isinstance(penalty, Penalty):
        return penalty
    if isinstance(penalty, str) and penalty in PENALTIES:
        return PENALTIES[penalty]()
    raise ValueError(
        f"unknown penalty {penalty!r}; supported penalties: {', '.join(sorted(PENALTIES))}"
    )
