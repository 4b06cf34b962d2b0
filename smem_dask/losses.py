"""Losses ℓ(y, η) and their scale-mixture E-steps.

A loss here knows only the target ``y`` and the linear predictor ``eta``; it never sees ``X`` and
never imports dask. Every method works elementwise on numpy arrays (broadcasting allowed).

The E-step contract (docs/method.md, "Losses and their E-steps")
---------------------------------------------------------------
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

from .registry import by_name

__all__ = [
    "CLAMP_EPS",
    "LOSSES",
    "Hinge",
    "Huber",
    "Logistic",
    "Loss",
    "Multinomial",
    "NegativeBinomial",
    "Poisson",
    "Quantile",
    "Squared",
    "StudentT",
    "get_loss",
    "log_softmax",
    "softmax",
]

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
    #: differentiable in η (the gradient enters the stopping rule only then)
    smooth: ClassVar[bool] = True
    #: ``inverse_link`` gives a mean (probability for classifiers); False for the hinge loss
    has_inverse_link: ClassVar[bool] = True
    #: targets must be ≥ 0 (counts)
    nonnegative_target: ClassVar[bool] = False
    #: the E-step quadratic majorizes ℓ only near η0 (no exact scale mixture): the solver halves a
    #: plain EM step that raises the objective instead of stopping
    local_majorizer: ClassVar[bool] = False
    #: the loss is convex and twice differentiable in η with ℓ'' cheap to compute: :meth:`hessian`
    #: exists and the Newton curvature mode applies (docs/method.md, "Curvature modes")
    has_hessian: ClassVar[bool] = False
    #: ω = ℓ'' = 1 whatever η (squared): the E-step, the bound and the Hessian are one Gram
    constant_curvature: ClassVar[bool] = False

    @abc.abstractmethod
    def value(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Elementwise loss ℓ(y, η)."""

    @abc.abstractmethod
    def derivative(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Elementwise ∂ℓ/∂η."""

    @abc.abstractmethod
    def e_step(self, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observation weights ``omega`` and moments ``u = omega·z`` at the current ``eta``.

        The non-smooth losses (hinge, quantile) also take ``clamp``, the floor ε on |residual| in
        ω = 1/(2·max(|r|, ε)) (default ``CLAMP_EPS``); the solver starts it wide and shrinks it.
        """

    def inverse_link(self, eta: np.ndarray) -> np.ndarray:
        """The mean of y given η (for ``predict``/``predict_proba``)."""
        return eta

    def hessian(self, y: np.ndarray, eta: np.ndarray) -> np.ndarray:
        """Elementwise ∂²ℓ/∂η² ≥ 0 (losses with ``has_hessian``): the Newton weight."""
        raise NotImplementedError(f"the {self.name} loss has no Newton weight")

    def expected_hessian(self, eta: np.ndarray) -> np.ndarray:
        """E[∂²ℓ/∂η²] over y given η under the loss's own model: the Fisher information weight, which
        standard errors use. Defined only where it differs from :meth:`hessian`, the observed one:
        for the negbin loss, whose η is not the canonical parameter. For the logistic, Poisson and
        squared losses (canonical) the two agree and the standard errors use :meth:`hessian`;
        the others raise."""
        raise NotImplementedError(f"the {self.name} loss has no expected information weight here")

    def value_difference(self, y: np.ndarray, eta_ref: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """ℓ(y, η_ref + δ) − ℓ(y, η_ref), accurate for small δ (override with a stable formula).

        Objective differences decide restarts and convergence; as a difference of two sums they
        are lost below ~1e-16·F, which near the optimum is still far from it. δ is computed as
        X·(β − β_ref), never as a difference of two linear predictors.
        """
        return self.value(y, eta_ref + delta) - self.value(y, eta_ref)

    def dual_box(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The loss as a maximum of affine functions, or None when it is not one (smooth losses).

        Returns ``(t, lo, hi)`` with lo ≤ 0 ≤ hi such that ℓ(y, η) = max_{a ∈ [lo, hi]} a·(t − η):
        the box of the dual variable a and the target t of each observation (used by the
        duality-gap certificate of the solver).
        """
        return None


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
    has_hessian: ClassVar[bool] = True

    def value(self, y, eta):
        return np.logaddexp(0.0, eta) - y * eta

    def derivative(self, y, eta):
        mu = sigmoid(eta)
        if np.shape(y) == () or np.broadcast_shapes(mu.shape, np.shape(y)) == mu.shape:
            mu -= y  # in place (the same value as σ(η) − y)
            return mu
        return mu - y

    def e_step(self, y, eta):
        omega = polya_gamma_mean(eta)
        u = np.broadcast_to(np.asarray(y, dtype=np.float64) - 0.5, np.shape(omega))
        return omega, u

    def hessian(self, y, eta):
        return np.broadcast_to(sigmoid_slope(eta), np.broadcast_shapes(np.shape(y), np.shape(eta)))

    def inverse_link(self, eta):
        return sigmoid(eta)

    def value_difference(self, y, eta_ref, delta):
        # ℓ = softplus(σ·η) with σ = 1 − 2y
        sign = 1.0 - 2.0 * np.asarray(y, dtype=np.float64)
        return _softplus_difference(sign * eta_ref, sign * delta)


@dataclass(frozen=True)
class Squared(Loss):
    r"""Squared error, y real.

    .. math::  ℓ(y, η) = \tfrac12 (y − η)^2 ,\qquad ω = 1,\quad u = y .

    The majorizer is exact, so one M-step solves the ridge problem.
    """

    name: ClassVar[str] = "squared"
    omega_bound: ClassVar[float | None] = 1.0
    has_hessian: ClassVar[bool] = True
    constant_curvature: ClassVar[bool] = True

    def value(self, y, eta):
        return 0.5 * (y - eta) ** 2

    def derivative(self, y, eta):
        return eta - y

    def value_difference(self, y, eta_ref, delta):
        return delta * (eta_ref + 0.5 * delta - y)

    def e_step(self, y, eta):
        shape = np.broadcast_shapes(np.shape(y), np.shape(eta))
        return np.ones(shape), np.broadcast_to(np.asarray(y, dtype=np.float64), shape)

    def hessian(self, y, eta):
        return np.ones(np.broadcast_shapes(np.shape(y), np.shape(eta)))


#: floor on the residual in the E-steps of the non-smooth losses (hinge, quantile), relative to 1:
#: ω = 1/(2·max(|r|, CLAMP_EPS)). The clamped quadratic still majorizes the loss (|r| ≤ r²/2c + c/2 for
#: every c > 0) but no longer touches it when |r| < CLAMP_EPS, by at most CLAMP_EPS/2 per observation;
#: the solver's objective check keeps the recorded objective monotone regardless. The solver may pass
#: a wider ``clamp`` to ``e_step`` (continuation in the smoothing width: clamped EM is MM on the loss
#: Huber-smoothed at that width), never a narrower one.
CLAMP_EPS = 1e-10


@dataclass(frozen=True)
class Hinge(Loss):
    r"""Hinge loss of the linear SVM, y ∈ {0, 1} used as ỹ = 2y − 1 ∈ {−1, +1}.

    .. math::  ℓ(y, η) = \max(0, 1 − ỹη)

    SVM augmentation (Polson & Scott 2011): with r = 1 − ỹη, max(0, r) = ½(|r| + r) and
    |r| ≤ r²/(2|r₀|) + |r₀|/2, so

    .. math::  ω = \frac{1}{2|r_0|}, \qquad u = ỹ\,ω\,(1 + |r_0|).

    (The weight 1/|1 − ỹη| found in the literature is the one for 2ℓ; with F as in docs/method.md
    the factor ½ is needed for the EM map to be a majorize–minimize step.) ``LinearSVC(loss="hinge",
    C)`` is the same model with α = 1/(C·n) and no intercept.
    """

    name: ClassVar[str] = "hinge"
    is_classifier: ClassVar[bool] = True
    smooth: ClassVar[bool] = False
    has_inverse_link: ClassVar[bool] = False

    def value(self, y, eta):
        return np.maximum(0.0, 1.0 - (2.0 * np.asarray(y, np.float64) - 1.0) * eta)

    def derivative(self, y, eta):  # a subgradient
        sign = 2.0 * np.asarray(y, np.float64) - 1.0
        return np.where(sign * eta < 1.0, -sign, 0.0)

    def value_difference(self, y, eta_ref, delta):
        # max(0, m) = (m + |m|)/2 with margin m = 1 − ỹη
        sign = 2.0 * np.asarray(y, np.float64) - 1.0
        return 0.5 * (-sign * delta + _abs_difference(1.0 - sign * eta_ref, -sign * delta))

    def e_step(self, y, eta, clamp=CLAMP_EPS):
        sign = 2.0 * np.asarray(y, np.float64) - 1.0
        r = np.maximum(np.abs(1.0 - sign * eta), clamp)
        omega = 0.5 / r
        return omega, sign * omega * (1.0 + r)

    def dual_box(self, y):
        # max(0, 1 − ỹη) = max_{c ∈ [0, 1]} c·ỹ·(ỹ − η): a = c·ỹ, target ỹ
        sign = 2.0 * np.asarray(y, np.float64) - 1.0
        return sign, np.minimum(sign, 0.0), np.maximum(sign, 0.0)


@dataclass(frozen=True)
class Quantile(Loss):
    r"""Check (pinball) loss of quantile regression at level τ = ``tau``.

    .. math::  ℓ(y, η) = ρ_τ(y − η) = \tfrac12|r| + (τ − \tfrac12) r, \quad r = y − η

    E-step from |r| ≤ r²/(2|r₀|) + |r₀|/2:

    .. math::  ω = \frac{1}{2|r_0|}, \qquad u = ω y + (τ − \tfrac12).

    (The literature's 1/|r| and (2τ − 1) are the same step for 2ℓ.) ``QuantileRegressor(quantile=τ,
    alpha=a)`` is the same model with the l1 penalty and α = a.
    """

    tau: float = 0.5
    name: ClassVar[str] = "quantile"
    smooth: ClassVar[bool] = False

    def __post_init__(self):
        if not 0.0 < float(self.tau) < 1.0:
            raise ValueError(f"tau must be in (0, 1), got {self.tau!r}")

    def value(self, y, eta):
        r = y - eta
        return 0.5 * np.abs(r) + (self.tau - 0.5) * r

    def derivative(self, y, eta):  # a subgradient
        return np.where(y - eta > 0, -self.tau, 1.0 - self.tau)

    def value_difference(self, y, eta_ref, delta):
        return 0.5 * _abs_difference(y - eta_ref, -delta) - (self.tau - 0.5) * delta

    def e_step(self, y, eta, clamp=CLAMP_EPS):
        omega = 0.5 / np.maximum(np.abs(y - eta), clamp)
        return omega, omega * y + (self.tau - 0.5)

    def dual_box(self, y):
        # ρ_τ(r) = max(τ r, (τ − 1) r) = max_{a ∈ [τ − 1, τ]} a·(y − η)
        y = np.asarray(y, np.float64)
        return y, np.full(y.shape, self.tau - 1.0), np.full(y.shape, float(self.tau))


@dataclass(frozen=True)
class Huber(Loss):
    r"""Huber loss with threshold δ = ``delta``, r = y − η.

    .. math::  ℓ = \tfrac12 r^2 \ (|r| ≤ δ), \qquad δ|r| − \tfrac12 δ^2 \ (|r| > δ)

    Half-quadratic E-step: ω = min(1, δ/|r₀|), u = ω y (ℓ'' ≤ 1, and δ|r| ≤ δ(r²/2|r₀| + |r₀|/2)).
    """

    delta: float = 1.35
    name: ClassVar[str] = "huber"
    omega_bound: ClassVar[float | None] = 1.0

    def __post_init__(self):
        if not float(self.delta) > 0:
            raise ValueError(f"delta must be positive, got {self.delta!r}")

    def value(self, y, eta):
        a = np.abs(y - eta)
        return np.where(a <= self.delta, 0.5 * a * a, self.delta * a - 0.5 * self.delta**2)

    def derivative(self, y, eta):
        return -np.clip(y - eta, -self.delta, self.delta)

    def value_difference(self, y, eta_ref, delta):
        r = y - eta_ref
        new = r - delta
        both_quadratic = (np.abs(r) <= self.delta) & (np.abs(new) <= self.delta)
        both_linear = (np.abs(r) > self.delta) & (np.abs(new) > self.delta)
        return np.where(both_quadratic, -delta * (r - 0.5 * delta),
                        np.where(both_linear, self.delta * _abs_difference(r, -delta),
                                 self.value(y, eta_ref + delta) - self.value(y, eta_ref)))

    def e_step(self, y, eta):
        a = np.abs(y - eta)
        omega = np.minimum(1.0, self.delta / np.maximum(a, self.delta))
        return omega, omega * y


@dataclass(frozen=True)
class StudentT(Loss):
    r"""Negative log-likelihood of a Student t error with ν = ``nu`` degrees of freedom and scale σ.

    .. math::  ℓ = \frac{ν + 1}{2} \log\Big(1 + \frac{r^2}{ν σ^2}\Big), \quad r = y − η

    Classical EM (a normal scale mixture): log is concave, so the tangent in r² gives

    .. math::  ω = \frac{ν + 1}{ν σ^2 + r_0^2}, \qquad u = ω y .

    (The textbook (ν+1)/(ν + r²/σ²) is σ²·ω: the weight of σ²·ℓ.) Non-convex: EM finds a stationary
    point, monotonically.
    """

    nu: float = 3.0
    sigma: float = 1.0
    name: ClassVar[str] = "student_t"

    def __post_init__(self):
        if not (float(self.nu) > 0 and float(self.sigma) > 0):
            raise ValueError(f"nu and sigma must be positive, got nu={self.nu!r}, sigma={self.sigma!r}")

    def value(self, y, eta):
        r = y - eta
        return 0.5 * (self.nu + 1) * np.log1p(r * r / (self.nu * self.sigma**2))

    def derivative(self, y, eta):
        r = y - eta
        return -(self.nu + 1) * r / (self.nu * self.sigma**2 + r * r)

    def value_difference(self, y, eta_ref, delta):
        r = y - eta_ref
        # r'² − r² = −δ(2r − δ), relative to νσ² + r²
        return 0.5 * (self.nu + 1) * np.log1p(-delta * (2 * r - delta) / (self.nu * self.sigma**2 + r * r))

    def e_step(self, y, eta):
        r = y - eta
        omega = (self.nu + 1) / (self.nu * self.sigma**2 + r * r)
        return omega, omega * y


@dataclass(frozen=True)
class NegativeBinomial(Loss):
    r"""Negative binomial counts y ≥ 0 with shape h = ``h`` and log-odds η (mean h·e^η).

    .. math::  ℓ = (y + h) \log(1 + e^{η}) − y η

    (the negative log-likelihood up to terms free of η). Pólya–Gamma E-step (Polson, Scott &
    Windle 2013):

    .. math::  ω = (y + h)\frac{\tanh(η/2)}{2η}, \qquad u = \frac{y − h}{2}.

    ``predict`` gives the mean h·e^η.
    """

    h: float = 1.0
    name: ClassVar[str] = "negbin"
    nonnegative_target: ClassVar[bool] = True
    has_hessian: ClassVar[bool] = True

    def __post_init__(self):
        if not float(self.h) > 0:
            raise ValueError(f"h must be positive, got {self.h!r}")

    def value(self, y, eta):
        return (y + self.h) * np.logaddexp(0.0, eta) - y * eta

    def derivative(self, y, eta):
        return (y + self.h) * sigmoid(eta) - y

    def value_difference(self, y, eta_ref, delta):
        return (y + self.h) * _softplus_difference(eta_ref, delta) - y * delta

    def e_step(self, y, eta):
        omega = (y + self.h) * polya_gamma_mean(eta)
        u = np.broadcast_to(0.5 * (np.asarray(y, np.float64) - self.h), np.shape(omega))
        return omega, u

    def hessian(self, y, eta):
        return (y + self.h) * sigmoid_slope(eta)

    def expected_hessian(self, eta):
        """E[(y + h)] σ(η)(1 − σ(η)) with E[y] = h·e^η: h·σ(η) = μ/(1 + μ/h), the iteratively
        reweighted least squares weight of the log-link negative binomial GLM (η is not its canonical
        parameter, so this differs from the observed :meth:`hessian` away from E[y])."""
        return self.h * sigmoid(eta)

    def inverse_link(self, eta):
        return self.h * np.exp(eta)


#: Poisson E-step: the curvature bound holds for η ≤ η0 + POISSON_REACH
POISSON_REACH = 1.0


@dataclass(frozen=True)
class Poisson(Loss):
    r"""Poisson counts y ≥ 0 with log link: ℓ(y, η) = e^η − yη (negative log-likelihood up to
    terms free of η); ``predict`` gives the mean e^η.

    e^η has no scale-mixture representation and no global quadratic majorizer, so the E-step is a
    documented *local* bound (docs/method.md, "Losses and their E-steps"): by Taylor's theorem with
    e^ξ ≤ e^{η0 + c} for ξ ≤ η0 + c,

    .. math::  ω = e^{η_0 + c}, \qquad u = ω η_0 − (e^{η_0} − y), \qquad c = 1,

    majorizes ℓ for every η ≤ η0 + c and touches it at η0. When an M-step leaves that region and
    the objective would rise, the solver halves the step (each halving one data pass) until it
    falls, so the fit stays monotone. Near the optimum each EM step covers about 1/e of the
    Newton step.
    """

    name: ClassVar[str] = "poisson"
    nonnegative_target: ClassVar[bool] = True
    local_majorizer: ClassVar[bool] = True
    has_hessian: ClassVar[bool] = True

    def value(self, y, eta):
        return np.exp(eta) - y * eta

    def derivative(self, y, eta):
        return np.exp(eta) - y

    def value_difference(self, y, eta_ref, delta):
        return np.exp(eta_ref) * np.expm1(delta) - y * delta

    def e_step(self, y, eta):
        eta = np.asarray(eta, dtype=np.float64)
        omega = np.exp(eta + POISSON_REACH)
        return omega, omega * eta - (np.exp(eta) - y)

    def hessian(self, y, eta):
        return np.broadcast_to(np.exp(eta), np.broadcast_shapes(np.shape(y), np.shape(eta)))

    def inverse_link(self, eta):
        return np.exp(eta)


@dataclass(frozen=True)
class Multinomial(Loss):
    r"""Multinomial logistic (softmax cross-entropy) loss for K classes.

    .. math::  ℓ(y, η) = \log \sum_k e^{η_k} − η_y ,\qquad η ∈ ℝ^K,\ y ∈ \{0, …, K − 1\}

    Unlike the other losses it is not elementwise: ``eta`` has the classes on its last axis
    (shape (..., K)) and ``y`` holds class indices (shape (...), as floats, as the kernel stores
    every target). The gradient in η is softmax(η) − e_y, the Hessian diag(π) − ππᵀ with π the
    softmax; Böhning's bound ½(I − 11ᵀ/K) ⪰ diag(π) − ππᵀ holds for every η, so the M-step
    matrix ½(I − 11ᵀ/K) ⊗ Σ s x̃x̃ᵀ majorizes the loss everywhere (docs/method.md,
    "Multinomial"). The loss is unchanged when the same vector is added to every class's η, so
    the gradient's entries sum to zero over the classes.
    """

    name: ClassVar[str] = "multinomial"
    is_classifier: ClassVar[bool] = True
    #: η has the K classes on its last axis (the estimators fit K coefficient vectors)
    multiclass: ClassVar[bool] = True

    def value(self, y, eta):
        eta = np.asarray(eta, dtype=np.float64)
        return _logsumexp(eta) - _taken(eta, y)

    def derivative(self, y, eta):
        g = softmax(eta)
        g[_label_mask(y, g.shape)] -= 1.0
        return g

    def inverse_link(self, eta):
        return softmax(eta)

    def e_step(self, y, eta):
        raise NotImplementedError("the multinomial loss is fitted with Böhning's bound (its M-step "
                                  "matrix is fixed), not with an elementwise E-step")

    def value_difference(self, y, eta_ref, delta):
        """ℓ(y, η + δ) − ℓ(y, η) = log Σ_k π_k e^{δ_k} − δ_y with π = softmax(η): log1p(Σ π·expm1(δ))
        where every |δ_k| < 1 (no cancellation for small steps), else a difference of two
        log-sum-exps (which cannot overflow)."""
        eta_ref, delta = np.asarray(eta_ref, np.float64), np.asarray(delta, np.float64)
        log_pi = eta_ref - _logsumexp(eta_ref)[..., None]
        near = (np.abs(delta) < 1.0).all(axis=-1)
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.log1p((np.exp(log_pi) * np.expm1(np.where(near[..., None], delta, 0.0))).sum(axis=-1))
        if not near.all():
            far = ~near
            out[far] = _logsumexp(log_pi[far] + delta[far])
        return out - _taken(delta, y)


def _logsumexp(eta: np.ndarray) -> np.ndarray:
    """log Σ_k e^{η_k} over the last axis, shifted by the maximum: no overflow."""
    m = eta.max(axis=-1)
    m = np.where(np.isfinite(m), m, 0.0)
    return m + np.log(np.exp(eta - m[..., None]).sum(axis=-1))


def softmax(eta: np.ndarray) -> np.ndarray:
    """e^{η_k} / Σ_l e^{η_l} over the last axis, shifted by the maximum: rows sum to 1, no overflow."""
    eta = np.asarray(eta, dtype=np.float64)
    e = np.exp(eta - eta.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(eta: np.ndarray) -> np.ndarray:
    """log softmax(η) = η − log Σ e^η over the last axis: finite wherever η is, in both tails."""
    eta = np.asarray(eta, dtype=np.float64)
    return eta - _logsumexp(eta)[..., None]


def _label_mask(y, shape) -> np.ndarray:
    """A boolean array of ``shape`` (..., K), True at each row's class y."""
    labels = np.broadcast_to(np.asarray(y, dtype=np.float64), shape[:-1]).astype(np.intp)
    return labels[..., None] == np.arange(shape[-1])


def _taken(eta: np.ndarray, y) -> np.ndarray:
    """η_y: each row's entry at its class."""
    labels = np.broadcast_to(np.asarray(y, dtype=np.float64), eta.shape[:-1]).astype(np.intp)
    return np.take_along_axis(eta, labels[..., None], axis=-1)[..., 0]


# The elementwise formulas below run on every row of every pass: each works in one array of its
# own, in place (the same operations in the same order as the plain expressions, so bitwise the same
# results; about 20% less time per row, as each temporary is a fresh tile-sized array otherwise).

def sigmoid(eta: np.ndarray) -> np.ndarray:
    """σ(η) = (1 + tanh(η/2)) / 2: no overflow for any η."""
    eta = np.asarray(eta, dtype=np.float64)
    out = np.multiply(0.5, eta, out=np.empty(eta.shape))
    np.tanh(out, out=out)
    out += 1.0
    out *= 0.5
    return out


def sigmoid_slope(eta: np.ndarray) -> np.ndarray:
    """σ'(η) = σ(η)·σ(−η) = e^{−|η|} / (1 + e^{−|η|})²: no overflow, no cancellation for any η."""
    eta = np.asarray(eta, dtype=np.float64)
    e = np.abs(eta, out=np.empty(eta.shape))
    np.negative(e, out=e)
    np.exp(e, out=e)
    d = e + 1.0
    d *= d
    e /= d
    return e


def _softplus_difference(eta_ref, delta):
    """log(1 + e^(η+δ)) − log(1 + e^η), accurate for small δ.

    log1p(expm1(δ)·σ(η)) for |δ| < 1; the (rare, in EM steps) entries with |δ| ≥ 1 are recomputed
    as a difference of two log-sum-exps, which cannot overflow there.
    """
    eta_ref, delta = np.asarray(eta_ref, np.float64), np.asarray(delta, np.float64)
    weight = sigmoid(eta_ref)  # before broadcasting: once per distinct η
    eta_ref, delta = np.broadcast_arrays(eta_ref, delta)
    # two reductions find whether any |δ| ≥ 1 (NaN is not: as np.abs(NaN) >= 1); the mask only then
    any_far = delta.size > 0 and bool(delta.max() >= 1.0 or delta.min() <= -1.0)
    far = np.abs(delta) >= 1.0 if any_far else None
    out = np.expm1(np.where(far, 0.0, delta) if any_far else delta)
    out *= weight
    np.log1p(out, out=out)
    if any_far:
        e, d = eta_ref[far], delta[far]
        out[far] = np.logaddexp(0.0, e + d) - np.logaddexp(0.0, e)
    return out


def _abs_difference(r, d):
    """|r + d| − |r| without cancellation when r and r + d have the same sign."""
    new = r + d
    return np.where((r >= 0) & (new >= 0), d, np.where((r <= 0) & (new <= 0), -d, np.abs(new) - np.abs(r)))


def polya_gamma_mean(eta: np.ndarray) -> np.ndarray:
    """E[ω] for ω ~ PG(1, η): tanh(η/2)/(2η), with its Taylor series for |η| < 1e-2.

    With x = η/2: tanh(x)/x = 1 − x²/3 + 2x⁴/15 − 17x⁶/315 + …; the first three terms leave a
    relative error below 1e-13 inside the cutoff.
    """
    eta = np.asarray(eta, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        omega = np.tanh(0.5 * eta)
        omega /= 2.0 * eta
    small = np.abs(eta) < _PG_SERIES_CUTOFF
    if small.any():  # rare away from the start β = 0: only those entries take the series
        x2 = 0.25 * eta[small] ** 2
        omega[small] = 0.25 * (1.0 - x2 / 3.0 + 2.0 * x2 * x2 / 15.0)
    return omega


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (Logistic, Squared, Hinge, Quantile, Huber, StudentT, NegativeBinomial, Poisson, Multinomial)
}


def get_loss(loss: str | Loss, **params) -> Loss:
    """A loss object from its name (with its parameters) or an instance; clear errors."""
    return by_name(loss, Loss, LOSSES, "loss", "losses", params)
