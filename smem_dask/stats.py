"""Per-block sufficient statistics of one EM pass, and the kernel that computes them.

``BlockStats`` is a monoid (``zero`` and ``+``): the statistics of the whole data are the sum of the
statistics of any split into row blocks. Every engine computes ``block_stats`` on its blocks and sums.

Notation: x̃ = (x, 1) when an intercept is fitted (q = p + 1 columns), else x̃ = x (q = p). A pass
serves one or several :class:`Request` s — several fits (e.g. the α of a path) can share one read of X.
A request gives ``coefs`` (q × k: k points at which to evaluate the loss and its gradient) and
optionally one ``expand`` point (q,) at which to run the E-step and form the M-step system.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from scipy.linalg import blas

from .losses import CLAMP_EPS, Loss

__all__ = ["BlockStats", "DualCandidate", "DualStats", "HIST_DECADES", "Request", "add_weighted_gram",
           "block_stats", "block_stats_many", "check_gram_range", "gram_tile_rows", "pack_many",
           "packed_size", "request_size", "smoothed_dual", "unpack_many"]


@dataclass(frozen=True)
class Request:
    """What one fit asks of a data pass.

    coefs : (q, k) array — points at which to evaluate the loss, its gradient and (for j ≥ 1) the loss
        change from point 0.
    expand : (q,) array or None — the expansion point of the E-step; None: no M-step system.
    curvature : float or None — None: the loss's own E-step. A number b: the fixed-curvature majorizer
        ω = b, u = b·η̃ − ℓ'(η̃) (valid for losses whose ω never exceeds b; see docs/method.md,
        "Curvature modes").
    reference_known : bool — point 0 is only the reference of the loss changes (its loss and
        gradient are known to the caller from an earlier pass): they are not computed and come
        back as zeros, so ``loss[j]`` holds the change alone for j ≥ 1.
    dual_point : (q,) array or None — for losses with a ``dual_box``: the point β̃ at which to
        evaluate the smoothed dual variable a(δ) of :func:`smoothed_dual` (width ``dual_width``),
        corrected by ``dual_lam`` (see :class:`DualStats`).
    dual_width : float — the smoothing width δ > 0.
    dual_lam : (q,) array or None — None: also return the slack-weighted Gram of the correction;
        else the corrected dual a = clip(a(δ) + w·x̃ᵀλ, lo, hi) is summed too (the first candidate).
    dual_ref : (q,) array or None — also sum the *EM dual* at ``dual_point``: a(δ_i) with the
        per-row width δ_i = max(|t_i − η_i|, CLAMP_EPS) at ``dual_ref``, the expansion point of the
        M-step that gave ``dual_point`` (the derivative of that majorizer: stationary for ridge).
    histogram : int or None — column of ``coefs`` at which to count the rows with |t − η| below
        each 10**k of :data:`HIST_DECADES` (losses with a ``dual_box``).
    clamp : float or None — the E-step's floor on |t − η| at ``expand`` for the non-smooth losses
        (``Loss.e_step(..., clamp=)``, ≥ :data:`~smem_dask.losses.CLAMP_EPS`); None: CLAMP_EPS.
    """

    coefs: np.ndarray
    expand: np.ndarray | None = None
    curvature: float | None = None
    reference_known: bool = False
    dual_point: np.ndarray | None = None
    dual_width: float = 1.0
    dual_lam: np.ndarray | None = None
    dual_ref: np.ndarray | None = None
    histogram: int | None = None
    clamp: float | None = None

    def __post_init__(self):
        # float64 always; a single point (q,) becomes one column (q, 1)
        coefs = np.asarray(self.coefs, dtype=np.float64)
        object.__setattr__(self, "coefs", coefs[:, None] if coefs.ndim == 1 else coefs)
        for name in ("expand", "dual_point", "dual_lam", "dual_ref"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())

    @property
    def k(self) -> int:
        return self.coefs.shape[1]

    @property
    def system(self) -> bool:
        return self.expand is not None

    def extra_size(self, q: int) -> int:
        """Length of the certificate statistics (``BlockStats.extra``) this request asks for."""
        size = 0 if self.histogram is None else HIST_DECADES.size
        if self.dual_point is not None:
            size += self.n_duals * (2 + 3 * q) + (q * q + 2 * q if self.dual_lam is None else 0)
        return size

    @property
    def n_duals(self) -> int:
        """Dual candidates summed: the corrected one (with λ), a(δ), the EM dual (with a reference)."""
        if self.dual_point is None:
            return 0
        return 1 + (self.dual_lam is not None) + (self.dual_ref is not None)


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


@dataclass(frozen=True)
class BlockStats:
    """Statistics of a set of rows (sums over rows, weighted by sample weights s).

    Attributes
    ----------
    n : float
        Number of rows.
    weight : float
        W = Σ s_i.
    loss : (k,) array
        Σ s_i ℓ(y_i, η_i) at each evaluation point (for j ≥ 1: the sum at point 0 plus the
        per-observation change ``loss_delta``).
    loss_delta : (k − 1,) array
        Σ s_i [ℓ(y_i, η_ij) − ℓ(y_i, η_i0)] for evaluation points j ≥ 1, computed per observation
        with the loss's stable ``value_difference`` (accurate even when the points nearly agree).
    grad : (q, k) array
        Σ s_i ℓ'(y_i, η_i) x̃_i at each evaluation point (the loss part of W·∇F).
    gram : (q, q) array
        Σ s_i ω_i x̃_i x̃_iᵀ at the expansion point (zeros when no expansion point was given).
    rhs : (q,) array
        Σ s_i u_i x̃_i at the expansion point.
    extra : array
        The certificate statistics the request asked for, flat (read with :meth:`DualStats.parse`).
    """

    n: float
    weight: float
    loss: np.ndarray
    loss_delta: np.ndarray
    grad: np.ndarray
    gram: np.ndarray
    rhs: np.ndarray
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @classmethod
    def system_only(cls, n: float, weight: float, gram: np.ndarray, rhs: np.ndarray) -> BlockStats:
        """An M-step system (with n and W) not tied to any evaluation point."""
        q = rhs.shape[0]
        return cls(float(n), float(weight), np.zeros(1), np.zeros(0), np.zeros((q, 1)), gram, rhs)

    @classmethod
    def zero(cls, q: int, k: int) -> BlockStats:
        return cls(0.0, 0.0, np.zeros(k), np.zeros(k - 1), np.zeros((q, k)), np.zeros((q, q)),
                   np.zeros(q))

    def __add__(self, other: BlockStats) -> BlockStats:
        return BlockStats(
            self.n + other.n,
            self.weight + other.weight,
            self.loss + other.loss,
            self.loss_delta + other.loss_delta,
            self.grad + other.grad,
            self.gram + other.gram,
            self.rhs + other.rhs,
            # a zero total has no certificate statistics yet
            self.extra + other.extra if self.extra.size and other.extra.size
            else (self.extra if self.extra.size else other.extra),
        )

    def pack(self, system: bool = True) -> np.ndarray:
        """All fields in one flat float64 vector (what a dask block returns); without the system
        (gram, rhs) when ``system`` is False."""
        parts = [[self.n, self.weight], self.loss, self.loss_delta, self.grad.ravel()]
        if system:
            parts += [self.gram.ravel(), self.rhs]
        return np.concatenate(parts + [self.extra])

    @classmethod
    def unpack(cls, vec: np.ndarray, q: int, k: int, system: bool = True, extra: int = 0) -> BlockStats:
        vec = np.asarray(vec, dtype=np.float64).ravel()
        expected = packed_size(q, k, system) + extra
        if vec.size != expected:
            raise ValueError(f"packed statistics have {vec.size} values, expected {expected}")
        i = 2
        loss = vec[i : i + k]
        i += k
        loss_delta = vec[i : i + k - 1]
        i += k - 1
        grad = vec[i : i + q * k].reshape(q, k)
        i += q * k
        if system:
            gram = vec[i : i + q * q].reshape(q, q)
            i += q * q
            rhs = vec[i : i + q]
            i += q
        else:
            gram, rhs = np.zeros((q, q)), np.zeros(q)
        return cls(float(vec[0]), float(vec[1]), loss, loss_delta, grad, gram, rhs, vec[i : i + extra])

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.pack()).all())


def check_gram_range(stats: BlockStats, p: int) -> None:
    """Refuse X whose squares underflow float64, from the system of a fit's first pass when it is at
    β = 0 (where every loss has moderate weights ω; the solver checks only then): a column whose
    mean square Σ s ω x² / W is below the
    smallest normal float64 (its products are subnormal, or zero, and lose their digits) although
    the column is not zero (a non-zero diagonal, moment or gradient entry). No data pass."""
    tiny = np.finfo(np.float64).tiny
    diag = np.diag(stats.gram)[:p]
    nonzero = (diag != 0) | (stats.rhs[:p] != 0) | (stats.grad[:p] != 0).any(axis=1)
    bad = np.flatnonzero(nonzero & (diag < tiny * stats.weight))
    if bad.size:
        shown = ", ".join(str(j) for j in bad[:5]) + (", …" if bad.size > 5 else "")
        raise ValueError(
            f"X's scale underflows the float64 Gram: the mean square of column"
            f"{'s' if bad.size > 1 else ''} {shown} is below float64's smallest normal {tiny:.3g} "
            f"(Σ s·ω·x² / W = {diag[bad[0]] / stats.weight:.3g}); rescale X (e.g. sklearn's "
            "StandardScaler)"
        )


def packed_size(q: int, k: int, system: bool = True) -> int:
    """Length of ``BlockStats.pack(system)`` for q columns and k evaluation points."""
    return 2 + 2 * k - 1 + q * k + (q * q + q if system else 0)


def request_size(q: int, request: Request) -> int:
    """Length of the packed statistics of one request (system and certificate parts included)."""
    return packed_size(q, request.k, request.system) + request.extra_size(q)


def pack_many(stats: list[BlockStats], requests: list[Request]) -> np.ndarray:
    """The statistics of several requests in one flat vector (systems only where requested)."""
    return np.concatenate([st.pack(r.system) for st, r in zip(stats, requests, strict=True)])


def unpack_many(vec: np.ndarray, q: int, requests: list[Request]) -> list[BlockStats]:
    vec = np.asarray(vec, dtype=np.float64).ravel()
    sizes = [request_size(q, r) for r in requests]
    if vec.size != sum(sizes):
        raise ValueError(f"packed statistics have {vec.size} values, expected {sum(sizes)}")
    bounds = np.cumsum([0, *sizes])
    return [BlockStats.unpack(vec[a:b], q, r.k, r.system, r.extra_size(q))
            for a, b, r in zip(bounds[:-1], bounds[1:], requests, strict=True)]


def block_stats(
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    loss: Loss,
    coefs: np.ndarray,
    expand: np.ndarray | None,
    fit_intercept: bool,
) -> BlockStats:
    """Statistics of one row block for one request (see :func:`block_stats_many`)."""
    return block_stats_many(X, y, sample_weight, loss, [Request(coefs, expand)], fit_intercept)[0]


def block_stats_many(
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    loss: Loss,
    requests: list[Request],
    fit_intercept: bool,
    threads: bool = False,
) -> list[BlockStats]:
    """Statistics of one row block for each request: the fused per-block work of one EM pass.

    The block is walked in row tiles of :data:`TILE_BYTES` (see :func:`gram_tile_rows`); each tile
    of ``X`` is read from memory once and, while it is in cache, gives the linear predictors of
    every request's evaluation points and expansion point (one matrix product), the weighted losses
    and gradients there (one product with Xᵀ), and for each expansion point the weighted Gram
    Σ s ω x̃ x̃ᵀ (a symmetric rank-k update of √(sω)·X, BLAS ``dsyrk``) and moment vector. float32
    (or integer) blocks are converted tile by tile and accumulated in float64. Measured on a
    100 000 × 100 block, one thread: 60 ms for a steady-state EM request (2 points, one system)
    against 77 ms when the same work streamed the whole block three times; plain ``syrk`` of X:
    26 ms. ``threads=True`` when other threads of this process compute blocks at the same time:
    scipy's ``dsyrk`` holds the GIL, so the Gram update is then numpy's ``A.T @ A`` (also a
    ``syrk`` inside, GIL released, ~13% slower alone). Floating-point warnings are
    silenced here: a NaN or overflow shows in the returned statistics, which the engines check and
    explain after the pass.
    """
    with np.errstate(all="ignore"):
        return _block_stats_many(X, y, sample_weight, loss, requests, fit_intercept, threads)


def _block_stats_many(X, y, sample_weight, loss, requests, fit_intercept, threads) -> list[BlockStats]:
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    n_rows, p = X.shape
    q = p + int(fit_intercept)
    s = None if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()
    W = float(n_rows) if s is None else float(s.sum())
    plan = _Plan(requests, p)

    # accumulated over row tiles: every quantity is a sum over rows
    loss_refs = np.zeros(len(requests))
    loss_deltas = np.zeros(plan.refs.size)
    xt_cols = np.zeros((p, plan.n_columns))
    col_sums = np.zeros(plan.n_columns)
    # dsyrk: upper triangle in place (Fortran order); numpy: the full matrix
    grams = [np.zeros((p, p), order="C" if threads else "F") if r.system else None for r in requests]
    extras = [np.zeros(r.extra_size(q)) for r in requests]

    tile_rows = gram_tile_rows(p)
    scaled = np.empty((min(tile_rows, n_rows), p))
    for start in range(0, n_rows, tile_rows):
        rows = slice(start, start + tile_rows)
        # one tile of X: read from memory once, then every product below finds it in cache
        Xt = X[rows] if X.dtype == np.float64 else X[rows].astype(np.float64)
        st = None if s is None else s[rows]
        eta = Xt @ plan.points[:p]
        if fit_intercept:
            eta += plan.points[p]
        lr, ld, columns, weights = plan.columns(loss, y[rows], st, eta)
        loss_refs += lr
        loss_deltas += ld
        xt_cols += Xt.T @ columns
        col_sums += columns.sum(axis=0)
        for i, sw in enumerate(weights):
            if sw is not None:
                grams[i] = add_weighted_gram(grams[i], Xt, sw, scaled, threads)
        for i in plan.certified:
            extras[i] += plan.certificate(i, loss, y[rows], st, eta, Xt, fit_intercept)

    out, c, d = [], 0, 0
    for i, r in enumerate(requests):
        k = r.k
        delta = loss_deltas[d : d + k - 1]
        d += k - 1
        grad = np.zeros((q, k))
        j = int(r.reference_known)  # column 0 stays zero when point 0 is known
        grad[:p, j:] = xt_cols[:, c : c + k - j]
        if fit_intercept:
            grad[p, j:] = col_sums[c : c + k - j]
        c += k - j
        gram = np.zeros((q, q))
        rhs = np.zeros(q)
        if r.system:
            g = grams[i]
            gram[:p, :p] = g if threads else np.triu(g) + np.triu(g, 1).T
            rhs[:p] = xt_cols[:, c + 1]
            if fit_intercept:
                gram[:p, p] = gram[p, :p] = xt_cols[:, c]
                gram[p, p] = col_sums[c]
                rhs[p] = col_sums[c + 1]
            c += 2
        out.append(BlockStats(float(n_rows), W, loss_refs[i] + np.r_[0.0, delta], delta.copy(),
                              grad, gram, rhs, extras[i]))
    return out


class _Plan:
    """Where each request's points sit in the one product X·P, and the per-tile loss work.

    Per request: its k points, the k − 1 steps from point 0 (so that small steps are not lost in a
    difference of two predictors) and its expansion point.
    """

    def __init__(self, requests: list[Request], p: int):
        self.requests = requests
        blocks, offsets = [], [0]
        for r in requests:
            cols = [r.coefs, r.coefs[:, 1:] - r.coefs[:, :1]]
            if r.system:
                cols.append(r.expand[:, None])
            blocks.append(np.column_stack(cols))
            offsets.append(offsets[-1] + blocks[-1].shape[1])
        self.points = np.column_stack(blocks)
        self.offsets = offsets
        starts = offsets[:-1]
        pairs = list(zip(requests, starts, strict=True))
        # the loss at point 0 and the derivative at every point, except where point 0 is known
        self.valued = [i for i, r in enumerate(requests) if not r.reference_known]
        self.starts = np.asarray([starts[i] for i in self.valued], dtype=int)
        self.evals = np.concatenate([np.arange(a + int(r.reference_known), a + r.k) for r, a in pairs])
        self.refs = np.concatenate([np.full(r.k - 1, a) for r, a in pairs])
        self.steps = np.concatenate([np.arange(a + r.k, a + 2 * r.k - 1) for r, a in pairs])
        self.n_columns = self.evals.size + 2 * sum(r.system for r in requests)
        self.certified = [i for i, r in enumerate(requests) if r.extra_size(1)]

    def certificate(self, i, loss, y, s, eta, Xt, fit_intercept) -> np.ndarray:
        """On one tile, the certificate statistics of request i (see :class:`DualStats`)."""
        r = self.requests[i]
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
            gap = np.abs(t - eta[:, self.offsets[i] + r.histogram])
            parts.append((gap[:, None] < 10.0 ** HIST_DECADES).sum(axis=0))
        return np.concatenate(parts)

    def columns(self, loss, y, s, eta):
        """On one tile: the weighted loss sums at each request's point 0, the loss changes at its
        points j ≥ 1, the columns to multiply by Xᵀ (s·ℓ' at every point, and s·ω, s·u for each
        system) and each system's weights s·ω."""
        yc = y[:, None]
        value = loss.value(yc, eta[:, self.starts])
        change = loss.value_difference(yc, eta[:, self.refs], eta[:, self.steps])
        dl = loss.derivative(yc, eta[:, self.evals])
        loss_refs = np.zeros(len(self.requests))
        if s is None:
            loss_refs[self.valued], loss_deltas = value.sum(axis=0), change.sum(axis=0)
        else:
            loss_refs[self.valued], loss_deltas = s @ value, s @ change
            dl *= s[:, None]
        columns, weights = [], []
        e = 0
        for r, start in zip(self.requests, self.offsets[:-1], strict=True):
            k, skip = r.k, int(r.reference_known)
            columns.append(dl[:, e : e + k - skip])
            e += k - skip
            sw = None
            if r.system:
                eta_x = eta[:, start + 2 * k - 1]
                if r.curvature is None:
                    omega, u = (loss.e_step(y, eta_x) if r.clamp is None
                                else loss.e_step(y, eta_x, clamp=r.clamp))
                else:
                    omega = np.full(eta_x.shape[0], float(r.curvature))
                    u = r.curvature * eta_x - loss.derivative(y, eta_x)
                sw, su = (omega, u) if s is None else (s * omega, s * u)
                columns.append(np.column_stack([sw, su]))
            weights.append(sw)
        return loss_refs, loss_deltas, np.column_stack(columns), weights


#: bytes of X per row tile of the kernel: a tile is read from memory once and stays in cache (2 MiB of
#: L2 per core here) for its product with the points, its product with the gradient columns and the
#: rank-k update of each Gram, instead of each of them streaming the whole block through memory
TILE_BYTES = 1 << 20


def gram_tile_rows(p: int) -> int:
    """Rows per kernel tile for p columns: TILE_BYTES of float64, at least 256 rows."""
    return max(256, TILE_BYTES // (8 * max(p, 1)))


def add_weighted_gram(gram: np.ndarray, Xt: np.ndarray, w: np.ndarray, scratch: np.ndarray,
                      threads: bool = False) -> np.ndarray:
    """``gram`` + Xtᵀ diag(w) Xt for one tile (w ≥ 0), returned: √w·Xt is formed in ``scratch``
    (at least as many rows as Xt, float64) and added by a symmetric rank-k update — scipy's
    ``dsyrk`` on the upper triangle of a Fortran-ordered ``gram`` in place, or with ``threads``
    numpy's GIL-free ``A.T @ A`` on the full matrix."""
    A = scratch[: Xt.shape[0]]
    np.multiply(Xt, np.sqrt(w)[:, None], out=A)
    if threads:
        gram += A.T @ A
        return gram
    # A is C-contiguous, so A.T is Fortran-ordered: no copy for BLAS
    return blas.dsyrk(1.0, A.T, beta=1.0, c=gram, trans=0, lower=0, overwrite_c=1)
