"""The duality-gap certificate of the non-smooth losses (hinge, quantile): the gap of dual points,
the correction of a dual and the polish candidate, and the smoothing width of an attempt.

A hinge or quantile fit is converged only when F(β) − D(a) ≤ tol·max(1, |F|) for a dual-feasible a
(:func:`duality_gap`), which bounds F(β) − F* whatever the E-step's clamp did. An attempt takes two
passes (:meth:`smem_dask.emloop.EMLoop.certify`): the first sums the dual of the loss smoothed at a
width δ (:func:`smoothing_width`) and the slack-weighted Gram of the rows near their kink; the client
solves for a correction of that dual and a polish point (:func:`dual_correction`); the second pass
sums the corrected dual and evaluates the polish point. See docs/method.md, "Stopping".

Pure arithmetic on the statistics of a pass: no data, no dask.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg

from .certificate_stats import HIST_DECADES, DualStats
from .iterate import optimality
from .penalties import Penalty

__all__ = ["ALL_AT_KINK", "dual_correction", "duality_gap", "smoothing_width"]


def duality_gap(dual: DualStats, F: float, weight: float, n_rows: float, penalty: Penalty,
                alpha: float, p: int) -> float:
    r"""F(β) − D(a): an upper bound on F(β) − F* from dual points a, or inf if none is feasible.

    The hinge and quantile losses are maxima of affine functions,
    ℓ_i(η) = max_{a ∈ [lo_i, hi_i]} a·(t_i − η) (``Loss.dual_box``), so for every a in the box

    .. math::  F(β̃) ≥ \frac1W \sum_i s_i a_i t_i − \frac1W (X̃ᵀ S a)ᵀ β̃ + α P(β)
               ≥ D(a) = \frac1W \sum_i s_i a_i t_i − α P^*(v/α), \quad v = X_pᵀ S a / W,

    provided Σ s a = 0 when an intercept is fitted (else the bound is −∞ in b), and v = 0 when
    α = 0. Hence F(β) − F* ≤ F(β) − D(a) = gap. Penalties whose conjugate has a bounded domain
    (lasso, group, bridge q = 1) get a scaled by the largest c ≤ 1 that brings v/α into it (c·a
    stays in the box as it contains 0). When α > 0 the intercept's Σ s a = 0 is the only
    equality, and it is met by *sign scaling*: with a = a⁺ − a⁻ (a± ≥ 0, summed apart by the
    pass, :class:`~smem_dask.certificate_stats.DualCandidate`), the side with the larger Σ s a± is scaled by
    c = (smaller sum)/(larger sum) ∈ [0, 1] — c·a± stays in the box as it contains 0 — which makes
    Σ s a = 0 exact up to the rounding of the two sums; the value and moments scale alike, so
    D of the scaled point is exact too. The equality constraints are accepted when they hold to
    the rounding of their sums, 4·n·eps·Σ s|a||x̃| per coordinate (``scale``), and to nothing
    looser: the certificate carries no other tolerance.

    ``dual`` holds the sums of the candidates a (:class:`~smem_dask.certificate_stats.DualStats`; its
    ``candidates`` when present, each as summed and sign-scaled), F is F(β). The smallest gap
    over them is returned: each is a valid bound, so the best one is.
    """
    q = dual.moment.shape[0]
    points = [(dual.value, dual.moment, dual.scale)]
    for cand in dual.candidates:
        points.append((cand.value, cand.moment, cand.scale))
        if alpha > 0 and q > p:  # the intercept alone is an equality: scale one sign side
            plus, minus = cand.moments[0][p], cand.moments[1][p]
            c_plus = 1.0 if plus <= minus else minus / plus
            c_minus = 1.0 if minus <= plus else plus / minus
            points.append((c_plus * cand.values[0] - c_minus * cand.values[1],
                           c_plus * cand.moments[0] - c_minus * cand.moments[1], cand.scale))
    return min(_gap(value, moment, scale, F, weight, n_rows, penalty, alpha, p)
               for value, moment, scale in points)


def _gap(value, moment, scale, F, weight, n_rows, penalty, alpha, p) -> float:
    """F − D(a) of one dual point from its sums Σ s a t, Σ s a x̃, Σ s|a||x̃| (see :func:`duality_gap`)."""
    q = moment.shape[0]
    g = moment / weight
    rounding = 4.0 * n_rows * np.finfo(float).eps * scale / weight
    equality = np.zeros(q, dtype=bool)
    equality[p:] = True  # the intercept, when fitted
    if alpha == 0:
        equality[:p] = True
    if np.any(np.abs(g[equality]) > rounding[equality]):
        return math.inf
    if alpha == 0:
        return F - value / weight
    z = g[:p] / alpha
    c = penalty.dual_scale(z)
    return F - (c * value / weight - alpha * penalty.conjugate(c * z))


def dual_correction(dual: DualStats, weight: float, beta: np.ndarray, penalty: Penalty, alpha: float,
                    p: int, zero_tol: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The correction direction λ of a certificate's dual, and the polish candidate (see
    :meth:`smem_dask.emloop.EMLoop.certify`), from the first pass's statistics at β.

    On the constrained coordinates K (the intercept; every coefficient when α = 0 or P is
    quadratic; else those with |β_j| > ``zero_tol``), λ solves G_w λ = target − Σ s a x̃ with
    G_w = Σ s w x̃x̃ᵀ and target = W·α·∇P(β) (0 for the intercept and when α = 0): the
    stationarity the optimal dual satisfies. G_w may be singular (fewer rows at the kink than
    coordinates in K, as with a non-zero group): the rows of the equality constraints (intercept;
    all when α = 0) are solved first, the other targets by least squares in their null space.
    The polish point is the weighted least-squares fit argmin Σ s w (t − x̃ᵀβ̃)² on K (zero
    elsewhere): at the optimum, the vertex through the rows on their kink.
    """
    q = dual.moment.shape[0]
    K = np.ones(q, dtype=bool)
    target = np.zeros(q)
    if alpha > 0:
        target = weight * optimality(np.zeros(q), 1.0, beta, penalty, alpha, p, zero_tol)
        if not penalty.quadratic:
            K[:p] = np.abs(beta[:p]) > zero_tol
    lam, point = np.zeros(q), np.zeros(q)
    # solved in the coordinates that give G_w a unit diagonal (d = √diag G_w): least squares cuts
    # singular values below ε·σ_max, which for columns of scale 1e8 beside the intercept's 1 would
    # cut the intercept's direction (G = D G' D, so G λ = m is G' (Dλ) = D⁻¹m)
    d = _unit_diagonal(dual.gram)[K]
    G, miss = dual.gram[np.ix_(K, K)] / np.outer(d, d), (target - dual.moment)[K] / d
    # the equalities E (intercept; all when α = 0) first, then the other targets within their null space
    E = np.zeros(q, dtype=bool)
    E[p:] = True
    E[:p] = alpha == 0
    E = E[K]
    lam_K = scipy.linalg.lstsq(G[E], miss[E])[0]
    if not E.all():
        N = scipy.linalg.null_space(G[E]) if E.any() else np.eye(K.sum())
        lam_K += N @ scipy.linalg.lstsq(G[~E] @ N, miss[~E] - G[~E] @ lam_K, cond=1e-12)[0]
        lam_K += scipy.linalg.lstsq(G[E], miss[E] - G[E] @ lam_K)[0]  # the equalities again, exactly
    lam[K] = lam_K / d
    if alpha > 0 and penalty.quadratic and dual.edge is not None:
        point = _ridge_polish(dual, weight, alpha, p)
    else:
        point[K] = scipy.linalg.lstsq(G, dual.rhs[K] / d)[0] / d
    return lam, point


def _unit_diagonal(G: np.ndarray) -> np.ndarray:
    """√diag(G), with 1 where the diagonal is 0: the scaling that gives G a unit diagonal."""
    d = np.sqrt(np.abs(np.diag(G)))
    return np.where(d > 0, d, 1.0)


def _ridge_polish(dual: DualStats, weight: float, alpha: float, p: int) -> np.ndarray:
    """The ridge vertex: argmin ½Wα‖β_p‖² − eᵀβ̃ subject to G_w β̃ = Σ s w t x̃.

    With the rows at a box edge (w = 0) linear in β̃, s ℓ = s a (t − x̃ᵀβ̃), their sum
    e = Σ s a x̃ (``dual.edge``), and the rows within δ of their kink held on it (G_w β̃ = Σ s w t x̃
    says x̃ᵀβ̃ = t there when those rows are independent), this is W·F up to a constant: at the
    optimum, with the right rows on the kink, the exact solution. Solved as its KKT system by least
    squares (G_w is singular when fewer rows than coordinates sit at the kink).
    """
    q = dual.gram.shape[0]
    d = _unit_diagonal(dual.gram)  # solved for Dβ̃ with D⁻¹ G_w D⁻¹ (see dual_correction)
    P = np.zeros(q)
    P[:p] = weight * alpha
    G = dual.gram / np.outer(d, d)
    A = np.block([[np.diag(P / d**2), G], [G, np.zeros((q, q))]])
    return scipy.linalg.lstsq(A, np.r_[dual.edge / d, dual.rhs / d])[0][:q] / d


#: the smoothing width may cover every row only at or below 10**ALL_AT_KINK
ALL_AT_KINK = -6


def smoothing_width(hist: np.ndarray | None, q: int) -> float:
    """The smoothing width δ of a certificate attempt, from the residual histogram at β.

    At an optimum of the hinge or quantile problem a few rows (at most q generically) sit exactly
    on their kink, t_i = η_i, and the others are away from it; near it the histogram of |t − η|
    has a plateau of empty decades between the two groups. δ is put at the top of the longest
    such plateau holding between 1 and q rows (all of them only below 10**``ALL_AT_KINK``; the
    widest of equal length), so that the correction of the dual acts on the
    rows at the kink only. A choice, not a condition of validity: any δ gives a valid bound.
    """
    if hist is None or not hist.any():
        return 1e-8
    best, width = None, 0
    for k in range(hist.size):
        # every row at the kink only if all are close to it (else the top levels hold every row)
        if not (1 <= hist[k] <= q and (hist[k] < hist[-1] or HIST_DECADES[k] <= ALL_AT_KINK)):
            continue
        run = 1
        while k - run >= 0 and hist[k - run] == hist[k]:
            run += 1
        if run >= width:
            best, width = k, run
    if best is None:
        # no row is apart at its kink: δ a decade below the closest row, so that every row is at a box
        # edge (the subgradient at β; exact when β is optimal with no row on its kink, e.g. β = 0)
        return float(10.0 ** (HIST_DECADES[int(np.argmax(hist > 0))] - 1))
    return float(10.0 ** HIST_DECADES[best])
