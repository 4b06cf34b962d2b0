"""Standard errors of an unpenalized fit: the covariance of β̂ from one pass over the data.

At the optimum β̂ of F(β) = Σ s ℓ(y, x̃ᵀβ) (α = 0) the pass sums, in one read of X:

* the information H = Σ s ℓ''(η) x̃x̃ᵀ (the Newton mode's Gram; the Fisher information for the
  canonical links of the logistic and Poisson losses, where observed and expected information
  agree). For the negative binomial (log link, a known shape h — not its canonical link) the
  nonrobust covariance's H is the expected information Σ s·μ/(1 + μ/h)·x̃x̃ᵀ, μ = h·e^η, as in the
  iteratively reweighted least squares of R's ``glm.nb`` and statsmodels'
  ``GLM(family=NegativeBinomial(alpha=1/h))``; the robust ones' bread is the observed Hessian
  Σ s (y + h) σ(η)(1 − σ(η)) x̃x̃ᵀ (it estimates E[−∂²ℓ] whether or not the model holds, the reason
  to ask for them; statsmodels' choice too),
* for the robust covariances, the scores' outer products M = Σ (s ℓ'(η))² x̃x̃ᵀ (HC0, HC1), or each
  cluster's score sum S_g = Σ_{i∈g} s ℓ'(η_i) x̃_i (cluster), and
* the gradient there (its size is reported: it is ≈ 0 at a converged fit).

Then, with n rows, q coefficients (the intercept included) and G clusters:

=============  ===========================================================================
nonrobust      φ H⁻¹ — φ = 1 (logistic, Poisson, negbin), φ = Σ s r² / (Σ s − q) (squared loss)
HC0            H⁻¹ M H⁻¹ (White's sandwich)
HC1            n / (n − q) · HC0
cluster        G/(G − 1) · (n − 1)/(n − q) · H⁻¹ (Σ_g S_g S_gᵀ) H⁻¹
=============  ===========================================================================

— the conventions of statsmodels' ``GLM`` (and of Stata's ``vce(robust)`` / ``vce(cluster)``). Sample
weights are frequency weights in the nonrobust covariance (statsmodels' ``freq_weights``); the robust
ones refuse them, whose meaning (frequency, analytic or survey weights) changes the answer.
Penalized fits are refused: the usual standard errors do not describe a penalized estimate (biased
toward zero, and for l1 selected by the data); fit with ``alpha=0`` (on the selected features, if
a penalized fit chose them, knowing that the selection is not accounted for).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
from scipy import stats

from .blockstats import Request, group_sums
from .losses import Loss
from .settings import COV_TYPES

__all__ = ["COV_TYPES", "SUPPORTED_LOSSES", "Covariance", "coefficient_covariance", "z_table"]

#: losses with standard errors: the canonical links (Hessian = information) and the negative binomial
SUPPORTED_LOSSES = ("logistic", "poisson", "squared", "negbin")
#: those whose information is the expected one, E[ℓ''] (``Loss.expected_hessian``), not ℓ'' at y
EXPECTED_INFORMATION = ("negbin",)


@dataclass(frozen=True)
class Covariance:
    """The covariance of the coefficients (q × q, the intercept last), how it was formed, and the
    sums it came from (``n`` rows, ``weight`` Σ s, ``n_groups`` clusters, ``offset`` the Newton step
    from β̂ to the optimum on these data, in standard errors: the largest |(H⁻¹∇F)_j| / se_j)."""

    matrix: np.ndarray
    cov_type: str
    n: float
    weight: float
    scale: float
    n_groups: int
    offset: float


def check_cov_type(cov_type: str, n_groups: int | None, weighted: bool) -> None:
    """Refuse a covariance type that does not exist or does not apply, before any pass."""
    if cov_type not in COV_TYPES:
        raise ValueError(f"cov_type must be one of {', '.join(map(repr, COV_TYPES))}; got {cov_type!r}")
    if cov_type == "cluster" and n_groups is None:
        raise ValueError("cov_type='cluster' needs clusters=: one cluster label per row")
    if cov_type != "cluster" and n_groups is not None:
        raise ValueError(f"clusters= is used by cov_type='cluster' only, not {cov_type!r}")
    if cov_type != "nonrobust" and weighted:
        raise ValueError(f"cov_type={cov_type!r} with sample weights is not supported: robust covariances "
                         "depend on what the weights mean (frequency, analytic or survey weights); use "
                         "cov_type='nonrobust' (frequency weights) or unweighted data")


def check_loss(loss: Loss) -> None:
    """Refuse a loss whose standard errors are not defined here."""
    if loss.name not in SUPPORTED_LOSSES:
        raise ValueError(f"standard errors are available for the {', '.join(SUPPORTED_LOSSES)} losses, not "
                         f"{loss.name!r} (not the likelihood of a generalized linear model, or a "
                         "non-smooth loss)")


def coefficient_covariance(engine, loss: Loss, beta: np.ndarray, fit_intercept: bool,
                           cov_type: str = "nonrobust", n_groups: int | None = None,
                           max_offset: float = 1e-3) -> Covariance:
    """The covariance of β̂ = ``beta`` ((q,), the intercept last) from one pass of ``engine``. With
    ``cov_type="cluster"`` the engine's row labels (``folds``) are the cluster codes 0 … n_groups − 1.
    Raises ValueError when the Hessian at β̂ is singular (collinear features, a separated class), or
    when β̂ is not the optimum on these data: when the Newton step from it exceeds ``max_offset``
    standard errors in any coefficient (other data than the fit's, or a fit far from converged)."""
    check_loss(loss)
    check_cov_type(cov_type, n_groups, engine.sample_weight is not None)
    beta = np.asarray(beta, dtype=np.float64).ravel()
    q = beta.size
    # the nonrobust covariance is the inverse of the model's information; a sandwich's bread is the
    # observed Hessian, which estimates E[−∂²ℓ] under the data's own distribution, the model's or not
    expected = loss.name in EXPECTED_INFORMATION and cov_type == "nonrobust"
    requests = [Request(beta, beta.copy(), hessian=True, expected=expected)]
    if cov_type in ("HC0", "HC1"):
        requests.append(Request(beta, beta.copy(), scores=True))
    elif cov_type == "cluster":
        requests.append(Request(beta, groups=int(n_groups)))
    stats_ = engine.stats_many(loss, requests, fit_intercept)
    st = stats_[0]
    H = st.gram
    try:
        factor = scipy.linalg.cho_factor(H, lower=False)
        H_inv = scipy.linalg.cho_solve(factor, np.eye(q))
    except np.linalg.LinAlgError as exc:
        raise ValueError("the Hessian at the fit is singular (collinear features, a constant column with "
                         "an intercept, or classes separated by the features): the coefficients have no "
                         "standard errors") from exc
    diag = np.abs(np.diag(H))
    if not (np.all(np.isfinite(H_inv)) and np.min(np.linalg.eigvalsh(H)) > 1e-13 * diag.max()):
        raise ValueError("the Hessian at the fit is numerically singular (collinear features or separated "
                         "classes): the coefficients have no standard errors")
    n, W = st.n, st.weight
    scale = 1.0
    if cov_type == "nonrobust":
        if loss.name == "squared":
            if W <= q:
                raise ValueError(f"the residual variance needs more weight than coefficients: Σ s = {W:g}, "
                                 f"q = {q}")
            scale = 2.0 * float(st.loss[0]) / (W - q)  # Σ s r² / (Σ s − q); ℓ = r²/2
        cov = scale * H_inv
    elif cov_type in ("HC0", "HC1"):
        cov = H_inv @ stats_[1].gram @ H_inv
        if cov_type == "HC1":
            cov *= n / (n - q)
    else:
        S = group_sums(stats_[1], requests[1])
        G = int(n_groups)
        if G < 2:
            raise ValueError(f"cluster-robust standard errors need at least 2 clusters, got {G}")
        cov = H_inv @ (S.T @ S) @ H_inv
        cov *= G / (G - 1) * (n - 1) / (n - q)
    cov = 0.5 * (cov + cov.T)
    # β̂ must be the optimum on these data: the Newton step from it, in standard errors
    se = np.sqrt(np.diag(cov))
    off = float(np.max(np.abs(H_inv @ st.grad[:, 0]) / se))
    if not off <= max_offset:
        raise ValueError(f"the coefficients are not the optimum on these data: the Newton step from them is "
                         f"{off:.2g} standard errors (more than {max_offset:g}); pass the data the estimator "
                         "was fitted on, or fit it to a tighter tol")
    return Covariance(cov, cov_type, float(n), float(W), float(scale), int(n_groups or 0), off)


def z_table(coef: np.ndarray, cov: np.ndarray, level: float = 0.95) -> dict[str, np.ndarray]:
    """Standard errors, z statistics, two-sided normal p-values and ``level`` confidence intervals."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
    se = np.sqrt(np.diag(cov))
    z = coef / se
    half = stats.norm.ppf(0.5 + level / 2.0) * se
    return {"coef": coef, "std_err": se, "z": z, "p_value": 2.0 * stats.norm.sf(np.abs(z)),
            "ci_lower": coef - half, "ci_upper": coef + half}
