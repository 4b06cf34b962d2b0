r"""Penalties P(β) and their two treatments on the p×p M-step system (see docs/method.md,
"Penalties and the M-step").

The objective adds α·P(β) (docs/method.md, "The objective"); the intercept is never penalized and
never reaches a penalty.
Each M-step minimizes the quadratic majorizer of the loss plus the penalty,

    Q(β) = ½ βᵀ A β − bᵀ β + W·α·P(β_pen),     A = Xᵀ S Ω X,  b = Xᵀ S u,

in one of two ways, chosen by ``penalty_solver``:

* ``"em"`` — the paper's parameter weights: P is majorized at the current β by ½ Σ d_j β_j² with
  d_j = g'(|β_j|)/|β_j| (for P = Σ g(|β_j|)), and the M-step is one linear solve. Valid whenever g is
  concave in β² (every penalty here); EM weights never produce exact zeros. |β_j| is clamped below
  at ``EM_EPS``·max(1, ‖β‖∞) so that d stays finite.
* ``"exact"`` — minimize Q itself, with the penalty as it is, by (block) coordinate descent on the
  p×p Gram warm-started at the expansion point: exact zeros, no data pass. Available where
  ``has_exact``.

Either way Q decreases from the warm start, so EM stays monotone. No dask, no X here.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.linalg
import scipy.optimize

__all__ = [
    "EM_EPS",
    "check_solver",
    "em_floor",
    "MCP",
    "PENALTIES",
    "SCAD",
    "Bridge",
    "ElasticNet",
    "Group",
    "L1",
    "L2",
    "Log",
    "Penalty",
    "get_penalty",
]

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


def check_solver(penalty: Penalty, penalty_solver: str) -> None:
    """Refuse ``penalty_solver="exact"`` for a penalty without one, naming those that have one."""
    if penalty_solver == "exact" and not penalty.has_exact:
        exact = ", ".join(sorted(n for n, c in PENALTIES.items() if c.has_exact))
        raise ValueError(f"penalty {penalty.name!r} has no exact solver (penalties with one: "
                         f"{exact}); use penalty_solver='em'")


def _clamped_abs(beta: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(np.asarray(beta, dtype=np.float64)), em_floor(beta))


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


def _quadratic_change(g, H, l1, current, point):
    """Q(point) − Q(current) from the step itself (no cancellation between large terms)."""
    d = point - current
    return g @ d + 0.5 * d @ H @ d + l1 @ (np.abs(point) - np.abs(current))


def _solve_sym(H, rhs):
    try:
        return scipy.linalg.cho_solve(scipy.linalg.cho_factor(H), rhs)
    except np.linalg.LinAlgError:
        return scipy.linalg.lstsq(H, rhs, lapack_driver="gelsd")[0]


def _active_set_elastic_net(A, b, beta0, l1, l2):
    """Exact minimizer of ½βᵀAβ − bᵀβ + Σ l1_j|β_j| + ½ Σ l2_j β_j² (feature-sign search).

    Lee, Battle, Raina & Ng (2007): guess the signs θ of the active coefficients, solve the linear
    system on the active set, and line-search over the points where a coefficient crosses zero;
    when the active set is optimal, add the zero coefficient that violates optimality most. The
    objective decreases at every step from the warm start ``beta0``, the signs settle in finitely
    many steps, and each step is one Cholesky of the active set, so ill-conditioning (as from the
    quantile E-step's large weights) does not slow it down. Entries with l1 = 0 are always active.
    """
    H = A + np.diag(l2)
    pen = l1 > 0
    beta = np.asarray(beta0, dtype=np.float64).copy()
    theta = np.where(pen, np.sign(beta), 0.0)
    active = (beta != 0) | ~pen
    settled = False  # the active set's linear system is solved (to rounding)
    for _ in range(50 * len(b) + 100):
        g = H @ beta - b
        # rounding in g is about eps·(|H||β| + |b|): judge optimality relative to that
        scale = float(np.abs(H).max(initial=0.0) * np.abs(beta).max(initial=0.0)
                      + np.abs(b).max(initial=0.0))
        tol = 1e-14 * max(scale, 1e-300)
        residual = np.where(active & pen, np.abs(g + l1 * theta), 0.0)
        residual[~pen] = np.abs(g[~pen])
        if settled or residual.max(initial=0.0) <= tol:
            violation = np.where(pen & ~active, np.abs(g) - l1, -np.inf)
            if not violation.size or violation.max() <= tol:
                break
            j = int(np.argmax(violation))
            active[j], theta[j] = True, -np.sign(g[j])
        idx = np.flatnonzero(active)
        target = _solve_sym(H[np.ix_(idx, idx)], b[idx] - l1[idx] * theta[idx])
        current = beta[idx]
        candidates = [target]
        for k in np.flatnonzero(pen[idx] & (current != 0) & (np.sign(target) != np.sign(current))):
            point = current + current[k] / (current[k] - target[k]) * (target - current)
            point[k] = 0.0
            candidates.append(point)

        g_idx, H_idx, l1_idx = g[idx], H[np.ix_(idx, idx)], l1[idx]

        changes = [_quadratic_change(g_idx, H_idx, l1_idx, current, point) for point in candidates]
        best = candidates[int(np.argmin(changes))]
        if min(changes) >= 0:
            if settled:
                break  # nothing left to gain at this precision
            settled = True
            continue
        settled = False
        beta[idx] = best
        theta = np.where(pen, np.sign(beta), 0.0)
        active = (beta != 0) | ~pen
    return beta


class _SeparableConcave(Penalty):
    """P(β) = Σ ρ(|β_j|) with ρ concave in β² (so the EM weights ρ'(|β|)/|β| majorize it)."""

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


@dataclass(frozen=True)
class SCAD(_SeparableConcave):
    r"""SCAD (Fan & Li 2001) with threshold λ = ``lam`` and a = ``a`` > 2:

    ρ(t) = λt (t ≤ λ); (2aλt − t² − λ²)/(2(a − 1)) (λ < t ≤ aλ); λ²(a + 1)/2 (t > aλ).

    The objective is loss + α·Σρ(|β_j|): α = 1 gives the textbook SCAD at λ = ``lam``.
    """

    lam: float = 1.0
    a: float = 3.7
    name: ClassVar[str] = "scad"
    convex: ClassVar[bool] = False
    piecewise_quadratic: ClassVar[bool] = True

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
class MCP(_SeparableConcave):
    r"""Minimax concave penalty (Zhang 2010) with threshold λ = ``lam`` and γ = ``gamma`` > 1:

    ρ(t) = λt − t²/(2γ) (t ≤ γλ); γλ²/2 (t > γλ). The objective is loss + α·Σρ(|β_j|).
    """

    lam: float = 1.0
    gamma: float = 3.0
    name: ClassVar[str] = "mcp"
    convex: ClassVar[bool] = False
    piecewise_quadratic: ClassVar[bool] = True

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
    convex: ClassVar[bool] = False

    def __post_init__(self):
        if not float(self.eps) > 0:
            raise ValueError(f"eps must be positive, got {self.eps!r}")

    def rho(self, t):
        return np.log1p(t / self.eps)

    def rho_prime(self, t):
        return 1.0 / (self.eps + t)


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


def _block_coordinate_descent(A, b, beta0, blocks, max_sweeps=200):
    """Minimize ½βᵀAβ − bᵀβ + Σ_G w_G‖β_G‖ exactly, warm-started.

    Alternates exact block updates (which decide which groups are zero) with damped Newton steps
    on the non-zero groups, where the objective is smooth (Newton is what copes with a Gram that is
    ill-conditioned across groups, as the clamped weights of the hinge and quantile losses make
    it). Every update decreases the objective, so whatever the number of rounds the EM step stays
    monotone. Stops when the optimality residual is at rounding level.
    """
    beta = np.array(beta0, dtype=np.float64)
    eig = [np.linalg.eigh(A[np.ix_(m, m)]) for m, _ in blocks]
    for _ in range(max_sweeps):
        grad = A @ beta - b
        for (m, weight), (evals, evecs) in zip(blocks, eig, strict=True):
            old = beta[m].copy()
            new = _group_prox(evals, evecs, A[np.ix_(m, m)] @ old - grad[m], weight)
            if np.any(new != old):
                grad += A[:, m] @ (new - old)
                beta[m] = new
        _newton_on_active_groups(A, b, beta, blocks)
        if _group_residual(A, b, beta, blocks) <= 1e-13 * _group_scale(A, b, beta, blocks):
            break
    return beta


def _group_scale(A, b, beta, blocks):
    return float(np.abs(A).max(initial=0.0) * np.abs(beta).max(initial=0.0)
                 + np.abs(b).max(initial=0.0) + max((w for _, w in blocks), default=0.0)) or 1.0


def _group_residual(A, b, beta, blocks):
    """The largest violation of the optimality conditions, over all groups."""
    grad = A @ beta - b
    worst = 0.0
    for m, weight in blocks:
        norm = float(np.linalg.norm(beta[m]))
        if norm > 0:
            worst = max(worst, float(np.abs(grad[m] + weight * beta[m] / norm).max()))
        else:
            worst = max(worst, float(np.linalg.norm(grad[m])) - weight)
    return worst


def _newton_on_active_groups(A, b, beta, blocks, max_steps=50):
    """Damped Newton on the groups that are non-zero (in place); each step decreases Q."""
    active = [(m, w) for m, w in blocks if np.any(beta[m])]
    if not active:
        return
    idx = np.concatenate([m for m, _ in active])
    H0 = A[np.ix_(idx, idx)]
    for _ in range(max_steps):
        x = beta[idx]
        grad = A[idx] @ beta - b[idx]
        hess = H0.copy()
        offset = 0
        for m, weight in active:
            k = len(m)
            xg = beta[m]
            norm = float(np.linalg.norm(xg))
            if weight > 0:
                sl = slice(offset, offset + k)
                grad[sl] += weight * xg / norm
                hess[sl, sl] += weight / norm * (np.eye(k) - np.outer(xg, xg) / norm**2)
            offset += k
        if np.abs(grad).max() <= 1e-13 * _group_scale(A, b, beta, blocks):
            return
        step = -_solve_sym(hess, grad)
        t = 1.0
        while t > 1e-12:
            change = _group_change(H0, grad, active, beta, idx, t * step)
            if change <= 0.5 * t * (grad @ step):
                beta[idx] = x + t * step
                break
            t *= 0.5
        else:
            return


def _group_change(H, grad_total, active, beta, idx, d):
    """Q(x + d) − Q(x) on the active groups, from the step (stable for small d)."""
    # grad_total includes the penalty's gradient; take the smooth part back out
    change = 0.5 * d @ H @ d
    smooth_grad = grad_total.copy()
    offset = 0
    for m, weight in active:
        k = len(m)
        xg, dg = beta[m], d[offset:offset + k]
        norm = float(np.linalg.norm(xg))
        if weight > 0:
            smooth_grad[offset:offset + k] -= weight * xg / norm
            new_norm = float(np.linalg.norm(xg + dg))
            change += weight * float(dg @ (2 * xg + dg)) / (new_norm + norm)
        offset += k
    return change + smooth_grad @ d


def _group_prox(evals, evecs, c, weight):
    """argmin_x ½xᵀHx − cᵀx + weight·‖x‖ for H = V diag(evals) Vᵀ ⪰ 0."""
    if weight == 0.0:
        return evecs @ (np.divide(evecs.T @ c, evals, out=np.zeros_like(c), where=evals > 0))
    norm_c = float(np.linalg.norm(c))
    if norm_c <= weight:
        return np.zeros_like(c)
    ct = evecs.T @ c
    # x(ν) = V (Λ + weight/ν)^{-1} Vᵀc and ‖x(ν)‖ = ν: a decreasing secular equation in ν
    def secular(nu):
        return float(np.sum((ct / (evals * nu + weight)) ** 2)) - 1.0

    hi = (norm_c - weight) / max(float(evals.min()), 1e-300)
    hi = max(hi, 1e-300)
    while secular(hi) > 0:
        hi *= 2.0
    nu = scipy.optimize.brentq(secular, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                               maxiter=500)
    return evecs @ (ct * nu / (evals * nu + weight))


PENALTIES: dict[str, type[Penalty]] = {
    cls.name: cls for cls in (L2, L1, ElasticNet, Group, Bridge, SCAD, MCP, Log)
}


def _unit_box_scale(z) -> float:
    """The largest c ∈ [0, 1] with ‖c·z‖∞ ≤ 1: the domain of the l1 norm's conjugate."""
    top = float(np.abs(np.asarray(z, np.float64)).max(initial=0.0))
    return 1.0 if top <= 1 else 1.0 / top


def get_penalty(penalty: str | Penalty, **params) -> Penalty:
    """A penalty object from its name (with its parameters) or an instance; clear errors."""
    if isinstance(penalty, Penalty):
        return penalty
    if isinstance(penalty, str) and penalty in PENALTIES:
        try:
            return PENALTIES[penalty](**params)
        except TypeError as exc:
            raise ValueError(f"penalty {penalty!r} does not take the parameters {params}: {exc}") from exc
    raise ValueError(
        f"unknown penalty {penalty!r}; supported penalties: {', '.join(sorted(PENALTIES))}"
    )
