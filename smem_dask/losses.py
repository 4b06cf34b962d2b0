"""Losses ℓ(y, η) and their scale-mixture E-steps.

A loss here knows only the target ``y`` and the linear predictor ``eta``; it never sees ``X`` and
never imports dask. Every method works elementwise on numpy arrays (broadcasting allowed).

The E-step contract (SPEC §3)
-----------------------------
``e_step(y, eta0)`` returns ``(omega, u)`` such that, for every η,

    ℓ(y, η) ≤ ℓ(y, η0) + ½·omega·(η² − η0²) − u·(η − η0)            (majorization)

with equality at η = η0, and, for smooth losses, ``omega·eta0 − u = ℓ'(y, eta0)`` (tangency).
Summed over observations with sample weights s_i, the right-hand side is a quadratic in β whose
minimizer solves ``(Xᵀ S Ω X + W α D) β = Xᵀ S u``: the M-step. ``omega`` is the observation weight of
the paper and ``u = omega·z`` is the weight times the working response z.

Classification losses take ``y`` already encoded as 0.0/1.0; the estimators map the user's two
classes onto it (``classes_[1]`` is 1).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

__all__ = ["Loss", "Logistic", "Squared", "get_loss", "LOSSES"]

# Below this |eta| the Pólya–Gamma weight tanh(eta/2)/(2 eta) is evaluated by its Taylor series.
_PG_SERIES_CUTOFF = 1e-2


class Loss(abc.ABC):
    """A loss ℓ(y, η) with a variance–mean scale-mixture E-step.

    Subclasses are small frozen dataclasses whose fields are the loss's own parameters.
    """

    #: the name used by estimators and the CLI
    name: ClassVar[str]
    #: True when y is a class label (encoded 0/1 before it reaches the loss)
    is_classifier: ClassVar[bool] = False
    #: an upper bound on omega over all (y, eta), or None (used by fixed-curvature modes)
    omega_bound: ClassVar[float | None] = None

    @abc.abstractmethod
    def value(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Elementwise loss ℓ(y, η)."""

    @abc.abstractmethod
    def derivative(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Elementwise ∂ℓ/∂η."""

    @abc.abstractmethod
    def e_step(self, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observation weights ``omega`` and moments ``u = omega·z`` at the current ``eta``."""

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean of y given η (for ``predict``/``predict_proba``)."""
        return eta

    def value_difference(self, y: np.ndarray, eta_ref: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """ℓ(y, η_ref + δ) − ℓ(y, η_ref), accurate for small δ (override with a stable formula).

        Objective differences decide restarts and convergence; as a difference of two sums they
        are lost below ~1e-16·F, which near the optimum is still far from it. δ is computed as
        X·(β − β_ref), never as a difference of two linear predictors.
        """
        return self.value(y, eta_ref + delta) - self.value(y, eta_ref)


@dataclass(frozen=True)
class Logistic(Loss):
    r"""Binary logistic loss, y ∈ {0, 1}.

    .. math::  ℓ(y, η) = \log(1 + e^{η}) − y η

    Pólya–Gamma E-step (Polson, Scott & Windle 2013):

    .. math::  ω = E[ω | η] = \frac{\tanh(η/2)}{2η} \quad (ω → 1/4 \text{ as } η → 0),
               \qquad u = κ = y − \tfrac12 .

    Writing ℓ = log(2 cosh(η/2)) − κη, the first term is a concave function of η², so its tangent in
    η² is the quadratic majorizer above; ω ≤ 1/4 for every η.
    """

    name: ClassVar[str] = "logistic"
    is_classifier: ClassVar[bool] = True
    omega_bound: ClassVar[float | None] = 0.25

    def value(self, y, eta):
        return np.logaddexp(0.0, eta) - y * eta

    def derivative(self, y, eta):
        return self.inverse_link(eta) - y

    def e_step(self, y, eta):
        omega = polya_gamma_mean(eta)
        u = np.broadcast_to(np.asarray(y, dtype=np.float64) - 0.5, np.shape(omega))
        return omega, u

    def inverse_link(self, eta):
        # σ(η) = (1 + tanh(η/2)) / 2: no overflow for any η
        return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(eta, dtype=np.float64)))

    def value_difference(self, y, eta_ref, delta):
        # ℓ = softplus(σ·η) with σ = 1 − 2y, so the difference is log1p(expm1(σδ)·sigmoid(σ·η_ref))
        sign = 1.0 - 2.0 * np.asarray(y, dtype=np.float64)
        sd = sign * delta
        near = np.abs(sd) < 1.0
        stable = np.log1p(np.expm1(np.where(near, sd, 0.0)) * self.inverse_link(sign * eta_ref))
        return np.where(near, stable, self.value(y, eta_ref + delta) - self.value(y, eta_ref))


@dataclass(frozen=True)
class Squared(Loss):
    r"""Squared error, y real.

    .. math::  ℓ(y, η) = \tfrac12 (y − η)^2 ,\qquad ω = 1,\quad u = y .

    The majorizer is exact, so one M-step solves the ridge problem.
    """

    name: ClassVar[str] = "squared"
    omega_bound: ClassVar[float | None] = 1.0

    def value(self, y, eta):
        return 0.5 * (y - eta) ** 2

    def derivative(self, y, eta):
        return eta - y

    def value_difference(self, y, eta_ref, delta):
        return delta * (eta_ref + 0.5 * delta - y)

    def e_step(self, y, eta):
        shape = np.broadcast_shapes(np.shape(y), np.shape(eta))
        return np.ones(shape), np.broadcast_to(np.asarray(y, dtype=np.float64), shape)


def polya_gamma_mean(eta: np.ndarray) -> np.ndarray:
    """E[ω] for ω ~ PG(1, η): tanh(η/2)/(2η), with its Taylor series for |η| < 1e-2.

    With x = η/2: tanh(x)/x = 1 − x²/3 + 2x⁴/15 − 17x⁶/315 + …; the first three terms leave a
    relative error below 1e-13 inside the cutoff.
    """
    eta = np.asarray(eta, dtype=np.float64)
    small = np.abs(eta) < _PG_SERIES_CUTOFF
    x2 = 0.25 * eta * eta
    series = 0.25 * (1.0 - x2 / 3.0 + 2.0 * x2 * x2 / 15.0)
    safe = np.where(small, 1.0, eta)
    return np.where(small, series, np.tanh(0.5 * safe) / (2.0 * safe))


LOSSES: dict[str, type[Loss]] = {cls.name: cls for cls in (Logistic, Squared)}


def get_loss(loss: str | Loss) -> Loss:
    """A loss object from its name or an instance; a clear error lists the known names."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"unknown loss {loss!r}; supported losses: {', '.join(sorted(LOSSES))}")
