r"""The separable penalties P(β) = Σ ρ(|β_j|) with ρ concave in β²: bridge, SCAD, MCP and log.

Their only M-step is ``"em"``: ρ concave in β² makes the parameter weights d_j = ρ'(|β_j|)/|β_j|
a majorizer, so EM stays monotone (:class:`_SeparableConcave` holds what they share: the value, the
weights, the optimality residual and a stable ``value_difference``). SCAD, MCP, log and bridge with
q < 1 are non-convex — the solver starts them from the ridge fit, and they have no conjugate;
bridge with q ≥ 1 is convex and has one. No dask, no X here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from .penalty_base import Penalty, _clamped_abs, _unit_box_scale

__all__ = ["MCP", "SCAD", "Bridge", "Log"]


class _SeparableConcave(Penalty):
    """P(β) = Σ ρ(|β_j|) with ρ concave in β² (so the EM weights ρ'(|β|)/|β| majorize it)."""

    #: non-convex (the solver starts from the ridge fit); bridge says for itself (convex for q ≥ 1)
    convex: ClassVar[bool] = False

    def rho(self, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def rho_prime(self, t: np.ndarray) -> np.ndarray:
        """ρ'(t) for t ≥ 0 (at t = 0 the right derivative, possibly inf)."""
        raise NotImplementedError

    def value(self, beta):
        return float(self.rho(np.abs(np.asarray(beta, dtype=np.float64))).sum())

    #: ρ is quadratic between the knots (SCAD, MCP): Simpson's rule on ρ' is then exact
    piecewise_quadratic: ClassVar[bool] = False

    def _knots(self) -> list[float]:
        """Sorted points where ρ'' jumps."""
        return []

    def value_difference(self, beta, beta_ref):
        # Σ ∫ ρ' over [|β_ref|, |β|] by Simpson's rule on each smooth piece: exact for the
        # piecewise-quadratic ρ of SCAD and MCP, error O(Δ⁵) otherwise, so it is used for small
        # relative steps only (for SCAD/MCP always); the plain difference elsewhere
        a = np.abs(np.asarray(beta, dtype=np.float64))
        b = np.abs(np.asarray(beta_ref, dtype=np.float64))
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        near = (lo > 0) & ((hi - lo <= 1e-3 * hi) | self.piecewise_quadratic)
        knots = [lo] + [np.clip(k, lo, hi) for k in self._knots()] + [hi]
        with np.errstate(all="ignore"):
            integral = sum(
                (right - left) / 6.0 * (self.rho_prime(left) + self.rho_prime(right)
                                        + 4.0 * self.rho_prime(0.5 * (left + right)))
                for left, right in zip(knots[:-1], knots[1:], strict=True)
            )
            direct = self.rho(a) - self.rho(b)
        return float(np.where(near, np.sign(a - b) * integral, direct).sum())

    def weights(self, beta):
        t = _clamped_abs(beta)
        return self.rho_prime(t) / t

    def optimality(self, beta, grad_loss, alpha, zero_tol=0.0):
        beta = np.asarray(beta, dtype=np.float64)
        t = np.abs(beta)
        zero = t <= zero_tol
        with np.errstate(all="ignore"):
            slope = self.rho_prime(np.where(zero, 0.0, t))
            at_zero = np.nan_to_num(np.maximum(np.abs(grad_loss) - alpha * slope, 0.0), nan=0.0)
            nonzero = grad_loss + alpha * np.where(zero, 0.0, slope) * np.sign(beta)
        return np.where(zero, at_zero, nonzero)


@dataclass(frozen=True)
class Bridge(_SeparableConcave):
    r"""Bridge: :math:`P(β) = \sum_j |β_j|^q / q`, 0 < q < 2 (non-convex for q < 1).

    EM weights d_j = |β_j|^{q−2}: |β|^q is concave in β² for q < 2, so EM stays monotone.
    """

    q: float = 0.5
    name: ClassVar[str] = "bridge"

    def __post_init__(self):
        if not 0.0 < float(self.q) < 2.0:
            raise ValueError(f"q must be in (0, 2), got {self.q!r}")

    @property
    def convex(self) -> bool:  # type: ignore[override]
        return self.q >= 1.0

    @property
    def has_conjugate(self) -> bool:  # type: ignore[override]
        return self.q >= 1.0

    def conjugate(self, z):
        """P*(z) = Σ |z_j|^q' / q' with 1/q + 1/q' = 1 (q > 1); for q = 1, 0 if ‖z‖∞ ≤ 1, else inf."""
        if not self.convex:
            raise NotImplementedError("bridge with q < 1 is not convex: no conjugate")
        z = np.abs(np.asarray(z, np.float64))
        if self.q == 1.0:
            return 0.0 if z.max(initial=0.0) <= 1 else np.inf
        dual = self.q / (self.q - 1.0)
        return float((z**dual).sum() / dual)

    def dual_scale(self, z):
        return _unit_box_scale(z) if self.q == 1 else 1.0

    def rho(self, t):
        return t**self.q / self.q

    def rho_prime(self, t):
        with np.errstate(divide="ignore"):
            return np.where(t > 0, t ** (self.q - 1.0), 0.0 if self.q > 1 else np.inf)


class _PiecewiseQuadratic(_SeparableConcave):
    """ρ quadratic between its ``_knots`` (SCAD, MCP): ``value_difference`` is then exact."""

    piecewise_quadratic: ClassVar[bool] = True


@dataclass(frozen=True)
class SCAD(_PiecewiseQuadratic):
    r"""SCAD (Fan & Li 2001) with threshold λ = ``lam`` and a = ``a`` > 2:

    ρ(t) = λt (t ≤ λ); (2aλt − t² − λ²)/(2(a − 1)) (λ < t ≤ aλ); λ²(a + 1)/2 (t > aλ).

    The objective is loss + α·Σρ(|β_j|): α = 1 gives the textbook SCAD at λ = ``lam``.
    """

    lam: float = 1.0
    a: float = 3.7
    name: ClassVar[str] = "scad"

    def _knots(self):
        return [self.lam, self.a * self.lam]

    def __post_init__(self):
        if not (float(self.lam) > 0 and float(self.a) > 2):
            raise ValueError(f"scad needs lam > 0 and a > 2, got lam={self.lam!r}, a={self.a!r}")

    def rho(self, t):
        lam, a = self.lam, self.a
        mid = (2 * a * lam * t - t * t - lam * lam) / (2 * (a - 1))
        return np.where(t <= lam, lam * t, np.where(t <= a * lam, mid, lam * lam * (a + 1) / 2))

    def rho_prime(self, t):
        lam, a = self.lam, self.a
        return np.where(t <= lam, lam, np.maximum(a * lam - t, 0.0) / (a - 1))


@dataclass(frozen=True)
class MCP(_PiecewiseQuadratic):
    r"""Minimax concave penalty (Zhang 2010) with threshold λ = ``lam`` and γ = ``gamma`` > 1:

    ρ(t) = λt − t²/(2γ) (t ≤ γλ); γλ²/2 (t > γλ). The objective is loss + α·Σρ(|β_j|).
    """

    lam: float = 1.0
    gamma: float = 3.0
    name: ClassVar[str] = "mcp"

    def _knots(self):
        return [self.gamma * self.lam]

    def __post_init__(self):
        if not (float(self.lam) > 0 and float(self.gamma) > 1):
            raise ValueError(f"mcp needs lam > 0 and gamma > 1, got lam={self.lam!r}, "
                             f"gamma={self.gamma!r}")

    def rho(self, t):
        lam, g = self.lam, self.gamma
        return np.where(t <= g * lam, lam * t - t * t / (2 * g), g * lam * lam / 2)

    def rho_prime(self, t):
        return np.maximum(self.lam - t / self.gamma, 0.0)


@dataclass(frozen=True)
class Log(_SeparableConcave):
    r"""Log penalty: :math:`P(β) = \sum_j \log(1 + |β_j|/ε)`, ε = ``eps``; EM weights
    d_j = 1/((ε + |β_j|)|β_j|)."""

    eps: float = 1.0
    name: ClassVar[str] = "log"

    def __post_init__(self):
        if not float(self.eps) > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")

    def rho(self, t):
        return np.log1p(t / self.eps)

    def rho_prime(self, t):
        return 1.0 / (self.eps + t)
