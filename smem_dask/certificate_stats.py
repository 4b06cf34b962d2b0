r"""The certificate (dual) statistics a data pass can sum besides the loss and the M-step system.

For losses with a ``dual_box`` (hinge, quantile), a :class:`~smem_dask.blockstats.Request` can ask
for the sums from which the solver builds a dual point and certifies its fit by a duality gap: the
smoothed dual variable a(δ) of :func:`smoothed_dual` at a point β̃, optionally corrected by λ, and
the EM dual (each a :class:`DualCandidate`); the slack-weighted Gram of the correction; and a
histogram of |t − η| over the decades :data:`HIST_DECADES`.

:func:`tile_certificate` computes them on one row tile of the kernel (:mod:`smem_dask.stats`) as one
flat vector; :meth:`DualStats.parse` reads the summed vector (``BlockStats.extra``) back. Pure numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .losses import CLAMP_EPS

if TYPE_CHECKING:
    from .blockstats import Request

__all__ = ["DualCandidate", "DualStats", "HIST_DECADES", "smoothed_dual", "tile_certificate"]

#: the residual histogram counts rows with |t − η| < 10**k for these k
HIST_DECADES = np.arange(-16, 9)


def smoothed_dual(t, lo, hi, eta, width):
    r"""The dual variable of the loss smoothed at width δ, and its slack in the box.

    .. math::  a = m + h\,\mathrm{clip}((t − η)/δ, −1, 1), \qquad w = h\,\max(0, 1 − |t − η|/δ)

    with m, h the centre and half-width of [lo, hi]: a is the derivative of the Huber-smoothed
    loss in t − η (the box edge once |t − η| ≥ δ) and w ≤ min(hi − a, a − lo) its distance to the
    nearer edge.
    """
    centre, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
    z = (t - eta) / width
    return centre + half * np.clip(z, -1.0, 1.0), half * np.maximum(0.0, 1.0 - np.abs(z))


class DualCandidate(NamedTuple):
    """The sums of one dual candidate a, split by sign: a = a⁺ − a⁻ with a± = max(±a, 0).

    values : (Σ s a⁺ t, Σ s a⁻ t);  moments : (2, q), Σ s a⁺ x̃ and Σ s a⁻ x̃;  scale : Σ s |a| |x̃|
    (q, bounds the rounding of the moments). Scaling a⁺ by c⁺ and a⁻ by c⁻ (both in [0, 1], so the
    box holds) scales these sums alike, which lets the solver meet Σ s a = 0 exactly.
    """

    values: np.ndarray
    moments: np.ndarray
    scale: np.ndarray

    @property
    def value(self) -> float:
        return float(self.values[0] - self.values[1])

    @property
    def moment(self) -> np.ndarray:
        return self.moments[0] - self.moments[1]


class DualStats(NamedTuple):
    """The certificate statistics of one request (sums over rows of s_i times …).

    value : Σ s a t;  moment : Σ s a x̃ (q);  scale : Σ s |a| |x̃| (q, bounds the rounding of
    ``moment``) — of the first candidate (the corrected dual when λ was given, else a(δ));
    gram : Σ s w x̃x̃ᵀ, rhs : Σ s w t x̃ and edge : Σ s a x̃ over the rows at a box edge (w = 0)
    (only when no λ was given);
    hist : row counts of |t − η| < 10**k, k in :data:`HIST_DECADES`;
    candidates : every dual candidate summed (:class:`DualCandidate`, ``Request.n_duals`` of them).
    """

    value: float
    moment: np.ndarray
    scale: np.ndarray
    gram: np.ndarray | None
    rhs: np.ndarray | None
    hist: np.ndarray | None
    candidates: tuple = ()
    edge: np.ndarray | None = None

    @classmethod
    def parse(cls, extra: np.ndarray, q: int, request: Request) -> DualStats:
        i, value, moment, scale, gram, rhs, hist, edge = 0, 0.0, None, None, None, None, None, None
        candidates = []
        if request.dual_point is not None:
            size = 2 + 3 * q
            for k in range(request.n_duals):
                c = extra[k * size : (k + 1) * size]
                candidates.append(DualCandidate(c[:2], c[2 : 2 + 2 * q].reshape(2, q), c[2 + 2 * q :]))
            value, moment, scale = candidates[0].value, candidates[0].moment, candidates[0].scale
            i = request.n_duals * size
            if request.dual_lam is None:
                gram, rhs = extra[i : i + q * q].reshape(q, q), extra[i + q * q : i + q * q + q]
                edge = extra[i + q * q + q : i + q * q + 2 * q]
                i += q * q + 2 * q
        if request.histogram is not None:
            hist = extra[i : i + HIST_DECADES.size]
        return cls(value, moment, scale, gram, rhs, hist, tuple(candidates), edge)


def tile_certificate(r, offset, loss, y, s, eta, Xt, fit_intercept, selected=None) -> np.ndarray:
    """On one tile, the certificate statistics of request ``r`` (see :class:`DualStats`), whose
    points start at column ``offset`` of ``eta``. ``selected`` (a boolean per row, or None for
    all): the rows the request sums over (its fold's), the only ones the histogram counts; ``s``
    is then zero on the others."""
    t, lo, hi = loss.dual_box(y)

    def xt(v, M=Xt):  # Σ v x̃ over the tile
        return np.r_[M.T @ v, v.sum()] if fit_intercept else M.T @ v

    def x_dot(v):  # x̃ᵀv per row, by its own product: bitwise the same in every pass, as the
        # correction λ of one pass must meet the a(δ) of the pass before, magnified by 1/δ
        return Xt @ v[: Xt.shape[1]] + (v[-1] if fit_intercept else 0.0)

    parts = []
    if r.dual_point is not None:
        eta_d = x_dot(r.dual_point)
        a, w = smoothed_dual(t, lo, hi, eta_d, r.dual_width)
        duals = [a]
        if r.dual_lam is not None:
            duals.insert(0, np.clip(a + w * x_dot(r.dual_lam), lo, hi))
        if r.dual_ref is not None:  # the EM dual: per-row widths from the expansion point
            width = np.maximum(np.abs(t - x_dot(r.dual_ref)), CLAMP_EPS)
            duals.append(smoothed_dual(t, lo, hi, eta_d, width)[0])
        for d in duals:
            sd = d if s is None else s * d
            pos, neg = np.maximum(sd, 0.0), np.maximum(-sd, 0.0)
            parts += [[pos @ t, neg @ t], xt(pos), xt(neg), xt(np.abs(sd), np.abs(Xt))]
        sw = w if s is None else s * w
        if r.dual_lam is None:
            Xw = Xt * np.sqrt(sw)[:, None]
            if fit_intercept:
                Xw = np.column_stack([Xw, np.sqrt(sw)])
            sa = a if s is None else s * a
            parts += [(Xw.T @ Xw).ravel(), xt(sw * t), xt(np.where(w == 0, sa, 0.0))]
    if r.histogram is not None:
        gap = np.abs(t - eta[:, offset + r.histogram])
        if selected is not None:
            gap = gap[selected]
        parts.append((gap[:, None] < 10.0 ** HIST_DECADES).sum(axis=0))
    return np.concatenate(parts)
