"""The per-block kernel of one EM pass: the sufficient statistics of a row block for every request.

Every engine computes :func:`block_stats_many` on its blocks and sums the resulting
:class:`BlockStats` (a monoid: the statistics of the whole data are the sum of the statistics of any
split into row blocks). The kernel walks a block in row tiles of :data:`TILE_BYTES`, so that each
tile of X is read from memory once for every product of the pass.

Notation: x̃ = (x, 1) when an intercept is fitted (q = p + 1 columns), else x̃ = x (q = p). A pass
serves one or several :class:`Request` s — several fits (e.g. the α of a path) can share one read of X.
A request gives ``coefs`` (q × k: k points at which to evaluate the loss and its gradient) and
optionally one ``expand`` point (q,) at which to run the E-step and form the M-step system.

What a pass is asked and returns (``Request``, ``BlockStats``, their packing) lives in
:mod:`smem_dask.blockstats`, the certificate statistics (``DualStats``, ``smoothed_dual``) in
:mod:`smem_dask.certificate_stats`; every name stays importable from here.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.linalg import blas

from .blockstats import (
    METRICS,
    BlockStats,
    Request,
    check_gram_range,
    metric_sums,
    pack_many,
    packed_size,
    request_size,
    unpack_many,
)
from .certificate_stats import (
    HIST_DECADES,
    DualCandidate,
    DualStats,
    smoothed_dual,
    tile_certificate,
)
from .losses import Loss, softmax

__all__ = ["BlockStats", "DualCandidate", "DualStats", "HIST_DECADES", "METRICS", "Request",
           "add_weighted_gram", "block_stats", "block_stats_many", "check_gram_range", "gram_tile_rows",
           "metric_sums", "pack_many",
           "packed_size", "request_size", "smoothed_dual", "unpack_many"]


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
    folds: np.ndarray | None = None,
    offset: np.ndarray | None = None,
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

    ``folds`` (an integer fold id per row) serves requests with a ``fold`` (cross-validation): each
    such request's sums run over its own rows — the training rows of its fold, or the held-out
    ones — with the sample weights of the other rows taken as zero, in the same read of the tile
    as every other request. A held-out system's Gram is formed from its fold's rows alone (1/K of
    the work of a full Gram).
    """
    if offset is not None and (not loss.smooth or getattr(loss, "multiclass", False)):
        raise ValueError(f"an offset does not apply to the {loss.name} loss (offsets are for the smooth "
                         "losses of one linear predictor)")
    with np.errstate(all="ignore"):
        if any(r.classes > 1 for r in requests):
            return _block_stats_multinomial(X, y, sample_weight, loss, requests, fit_intercept, threads,
                                            folds)
        return _block_stats_many(X, y, sample_weight, loss, requests, fit_intercept, threads, folds,
                                 offset)


def _block_stats_multinomial(X, y, sample_weight, loss, requests, fit_intercept, threads,
                             folds=None) -> list[BlockStats]:
    """:func:`block_stats_many` for multinomial requests (``classes`` K > 1, the loss
    :class:`~smem_dask.losses.Multinomial`): per request, at each point Θ_j (q, K) the weighted loss
    (point 0, unless known) and its change from point 0 (j ≥ 1, from the step Θ_j − Θ_0 as for every
    loss), the gradient Σ s (π − e_y) x̃ᵀ (q, K), π = softmax(η); with ``expand`` the fixed-curvature
    Gram c·Σ s x̃x̃ᵀ, or (``hessian``) the Hessian's K(K + 1)/2 blocks Σ s (π_k δ_kl − π_k π_l) x̃x̃ᵀ at
    the expansion point, each by a symmetric rank update of √|w|·X; metrics count the rows whose
    largest η is not their class. One tile of X at a time, one product X·[every point, step and
    expansion point] per tile."""
    if not getattr(loss, "multiclass", False):
        raise ValueError(f"a multinomial request needs the multinomial loss, got {loss.name!r}")
    if any(r.classes == 1 for r in requests):
        raise ValueError("a pass serves either multinomial requests or binary ones, not both")
    X, y, s, n_rows, p, q = _block_inputs(X, y, sample_weight, fit_intercept)
    K = requests[0].classes
    if any(r.classes != K for r in requests):
        raise ValueError("the requests of a multinomial pass must have the same number of classes")
    if not ((y >= 0) & (y < K) & (y == np.floor(y))).all():
        raise ValueError(f"multinomial targets must be class indices 0 … {K - 1}; found "
                         f"{float(y[~((y >= 0) & (y < K) & (y == np.floor(y)))][0])!r}")
    f = None if folds is None else np.asarray(folds).ravel()
    # every request's points, its steps from point 0 and its Hessian's expansion point, side by
    # side: one product per tile
    blocks, starts = [], []
    for r in requests:
        K, k = r.classes, r.k
        cols = [r.coefs] + [r.coefs[:, j * K:(j + 1) * K] - r.coefs[:, :K] for j in range(1, k)]
        if r.hessian:
            cols.append(r.expand.reshape(q, K))
        starts.append(sum(b.shape[1] for b in blocks))
        blocks.append(np.column_stack(cols))
    P = np.column_stack(blocks)
    # dsyrk: upper triangle in place (Fortran order); numpy (threads): the full matrix
    order = "C" if threads else "F"
    sums = []
    for r in requests:
        K = r.classes
        n_blocks = K * (K + 1) // 2 if r.hessian else (1 if r.system else 0)
        sums.append(dict(loss=np.zeros(r.k), delta=np.zeros(r.k - 1), grad=np.zeros((q, r.width)),
                         grams=[np.zeros((p, p), order=order) for _ in range(n_blocks)],
                         xsums=np.zeros((n_blocks, p)), wsums=np.zeros(n_blocks),
                         metrics=np.zeros((r.k, len(METRICS)))))
    weights, counts = [], []
    for r in requests:
        base = np.ones(n_rows) if s is None else s
        if r.fold is not None:
            if f is None:
                raise ValueError("a request selects a fold, but the pass has no fold ids")
            mask = (f == r.fold) if r.held_out else (f != r.fold)
            base = np.where(mask, base, 0.0)
            counts.append(int(mask.sum()))
        else:
            counts.append(n_rows)
        weights.append(base)
    tile_rows = gram_tile_rows(p)
    scaled = np.empty((min(tile_rows, n_rows), p))
    for rows, Xt in _tiles(X, tile_rows):
        yt = y[rows]
        eta_all = Xt @ P[:p]
        if fit_intercept:
            eta_all += P[p]
        for i, r in enumerate(requests):
            K, k, a = r.classes, r.k, starts[i]
            w = weights[i][rows]
            acc = sums[i]
            eta0 = eta_all[:, a:a + K]
            if not r.reference_known:
                acc["loss"][0] += w @ loss.value(yt, eta0)
            for j in range(1, k):
                step = eta_all[:, a + k * K + (j - 1) * K: a + k * K + j * K]
                acc["delta"][j - 1] += w @ loss.value_difference(yt, eta0, step)
            for j in range(int(r.reference_known), k):
                d = loss.derivative(yt, eta_all[:, a + j * K: a + (j + 1) * K])
                d *= w[:, None]
                acc["grad"][:p, j * K:(j + 1) * K] += Xt.T @ d
                if fit_intercept:
                    acc["grad"][p, j * K:(j + 1) * K] += d.sum(axis=0)
            if r.hessian:
                x0 = a + (2 * k - 1) * K
                pi = softmax(eta_all[:, x0:x0 + K])
                # Σ_{l≠k} π_l as the exclusive prefix plus suffix sums, with no subtraction: 1 − π_k
                # is 0 once π_k rounds to 1, the true sum is not
                zero = np.zeros((pi.shape[0], 1))
                rest = (np.hstack([zero, np.cumsum(pi[:, :-1], axis=1)])
                        + np.hstack([np.cumsum(pi[:, :0:-1], axis=1)[:, ::-1], zero]))
                b = 0
                for kk in range(K):
                    for ll in range(kk, K):
                        # |w_kl|: π_k Σ_{l≠k} π_l on the diagonal, π_k π_l off it (whose sign is −)
                        wkl = w * pi[:, kk] * (rest[:, kk] if kk == ll else pi[:, ll])
                        acc["grams"][b] = add_weighted_gram(acc["grams"][b], Xt, wkl, scaled, threads)
                        acc["xsums"][b] += wkl @ Xt
                        acc["wsums"][b] += wkl.sum()
                        b += 1
            elif r.system:
                acc["grams"][0] = add_weighted_gram(acc["grams"][0], Xt, w, scaled, threads)
                acc["xsums"][0] += w @ Xt
                acc["wsums"][0] += w.sum()
            if r.metrics:
                for j in range(k):
                    wrong = eta_all[:, a + j * K: a + (j + 1) * K].argmax(axis=1) != yt.astype(np.intp)
                    acc["metrics"][j, 0] += w @ wrong
    out = []
    for i, r in enumerate(requests):
        acc, w, K = sums[i], weights[i], r.classes
        m = r.system_size(q)
        gram, rhs = np.zeros((m, m)), np.zeros(m)
        if r.hessian:
            b = 0
            for kk in range(K):
                for ll in range(kk, K):
                    h = _bordered(acc, b, p, q, threads) * (1.0 if kk == ll else -1.0)
                    gram[kk * q:(kk + 1) * q, ll * q:(ll + 1) * q] = h
                    gram[ll * q:(ll + 1) * q, kk * q:(kk + 1) * q] = h.T
                    b += 1
        elif r.system:
            gram = float(r.curvature) * _bordered(acc, 0, p, q, threads)
        extra = acc["metrics"].ravel() if r.metrics else np.zeros(0)
        delta = acc["delta"]
        out.append(BlockStats(float(counts[i]), float(w.sum()), acc["loss"][0] + np.r_[0.0, delta],
                              delta.copy(), acc["grad"], gram, rhs, extra))
    return out


def _bordered(acc, b: int, p: int, q: int, threads: bool) -> np.ndarray:
    """Gram block ``b`` of a multinomial request's sums as the full q × q matrix: Σ w x xᵀ (from the
    upper triangle dsyrk left, or numpy's full one), bordered by Σ w x and Σ w for the intercept."""
    g = acc["grams"][b]
    out = np.zeros((q, q))
    out[:p, :p] = g if threads else np.triu(g) + np.triu(g, 1).T
    if q > p:
        out[:p, p] = out[p, :p] = acc["xsums"][b]
        out[p, p] = acc["wsums"][b]
    return out


def _tiles(X, tile_rows: int, dense: bool = True):
    """(rows, X[rows]) for consecutive tiles of ``tile_rows`` rows, as float64: a float32 block is
    converted tile by tile into one buffer made once. A sparse (CSR) block gives CSR tiles, or dense
    ones with ``dense`` (made tile by tile: the block is never dense whole)."""
    n_rows, p = X.shape
    if sparse.issparse(X):
        for start in range(0, n_rows, tile_rows):
            rows = slice(start, start + tile_rows)
            Xt = X[rows]
            yield rows, (Xt.toarray() if dense else Xt)
        return
    buffer = None if X.dtype == np.float64 else np.empty((min(tile_rows, n_rows), p))
    for start in range(0, n_rows, tile_rows):
        rows = slice(start, start + tile_rows)
        if buffer is None:
            yield rows, X[rows]
        else:
            Xt = buffer[: min(tile_rows, n_rows - start)]
            Xt[...] = X[rows]
            yield rows, Xt


def _block_inputs(X, y, sample_weight, fit_intercept):
    """A block's X (float32 kept, other kinds as float64), y and weights as float64 vectors, and
    its sizes: (X, y, s, n_rows, p, q). A scipy sparse block becomes CSR, float64."""
    if sparse.issparse(X):
        X = sparse.csr_matrix(X, dtype=np.float64)
    else:
        X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    n_rows, p = X.shape
    s = None if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()
    return X, y, s, n_rows, p, p + int(fit_intercept)


def _block_stats_many(X, y, sample_weight, loss, requests, fit_intercept, threads,
                      folds=None, offset=None) -> list[BlockStats]:
    X, y, s, n_rows, p, q = _block_inputs(X, y, sample_weight, fit_intercept)
    o = None if offset is None else np.asarray(offset, dtype=np.float64).ravel()
    # a sparse block: every product with X is sparse, and each Gram is one sparse product per block
    # (XᵀD X with the weights of all the block's rows, gathered over the tiles) — below
    # SPARSE_MAX_DENSITY; a denser one is made dense tile by tile
    is_sparse = sparse.issparse(X) and X.nnz <= SPARSE_MAX_DENSITY * n_rows * p
    dense_tiles = not is_sparse
    W = float(n_rows) if s is None else float(s.sum())
    plan = _Plan(requests, p)
    if plan.grouped:
        if plan.selective:
            raise ValueError("a pass sums either over folds or over groups, not both")
        groups = _group_codes(folds, n_rows, max(r.groups for r in requests))
    sel = _Selections(requests, s, folds, n_rows) if plan.selective else None

    # accumulated over row tiles: every quantity is a sum over rows
    loss_refs = np.zeros(len(requests))
    loss_deltas = np.zeros(plan.refs.size)
    xt_cols = np.zeros((p, plan.n_columns))
    col_sums = np.zeros(plan.n_columns)
    # dsyrk: upper triangle in place (Fortran order); numpy: the full matrix
    grams = [np.zeros((p, p), order="C" if threads else "F") if r.system else None for r in requests]
    block_weights = [np.zeros(n_rows) if r.system and is_sparse else None for r in requests]
    extras = [np.zeros(r.extra_size(q)) for r in requests]
    cert_sizes = [r.certificate_size(q) for r in requests]  # the certificate part
    tile_rows = gram_tile_rows(p)
    # the tile's large temporaries live in buffers made once per block: a worker of a distributed
    # cluster runs with glibc's dynamic mmap threshold disabled (MALLOC_TRIM_THRESHOLD_ is set),
    # where every array over 128 KiB is a fresh mmap whose pages fault in again — measured 1.6×
    # the time of the whole kernel on 1e6 × 10 when each tile allocated its own.
    # The per-row quantities (rows, k) are column-major: numpy's sums over rows and broadcasts of a
    # row-major array with few columns run an inner loop of length k per row (the sum over rows of a
    # 13107 × 4 tile: 0.2 ms row-major, 0.01 ms column-major; the kernel on 1e6 × 10: 0.088 s →
    # 0.065 s)
    buffer_rows = min(tile_rows, n_rows)
    scaled = None if is_sparse else np.empty((buffer_rows, p))
    n_points = plan.points.shape[1]
    eta_buffer = np.empty(buffer_rows * n_points)
    column_buffer = np.empty(buffer_rows * plan.n_columns)
    # one tile of X at a time: read from memory once, then every product below finds it in cache
    for rows, Xt in _tiles(X, tile_rows, dense=dense_tiles):
        st = None if s is None else s[rows]
        m = Xt.shape[0]
        eta = eta_buffer[: m * n_points].reshape((m, n_points), order="F")
        if is_sparse:
            eta[...] = Xt @ plan.points[:p]
        else:
            np.matmul(Xt, plan.points[:p], out=eta)
        if fit_intercept:
            eta += plan.points[p]
        ot = None
        if o is not None:  # η = x̃ᵀβ + o at the points and expansion points; the steps X·Δβ have none
            ot = o[rows]
            eta[:, plan.offset_cols] += ot[:, None]
        if sel is None:
            lr, ld, columns, weights = plan.columns(loss, y[rows], st, eta, column_buffer, ot)
        else:
            st = sel.weights[rows]  # (rows, selections): s on each selection's rows, else 0
            lr, ld, columns, weights = plan.selected_columns(loss, y[rows], st, eta, column_buffer, ot)
        loss_refs += lr
        loss_deltas += ld
        xt_cols += Xt.T @ columns
        col_sums += columns.sum(axis=0)
        for i, sw in enumerate(weights):
            if sw is None:
                continue
            if is_sparse:
                block_weights[i][rows] = sw
                continue
            if sel is not None and sel.sparse[plan.keys[i]]:  # a held-out fold's rows only
                on = np.flatnonzero(sw)
                grams[i] = add_weighted_gram(grams[i], Xt[on], sw[on], scaled, threads)
            else:
                grams[i] = add_weighted_gram(grams[i], Xt, sw, scaled, threads)
        if is_sparse and (plan.certified or plan.grouped):
            Xt = Xt.toarray()  # (one tile, dense, for the certificate's and the groups' sums)
        for i in plan.certified:
            if sel is None:
                extras[i][: cert_sizes[i]] += tile_certificate(
                    requests[i], plan.offsets[i], loss, y[rows], st, eta, Xt, fit_intercept)
            else:
                key = plan.keys[i]
                extras[i][: cert_sizes[i]] += tile_certificate(
                    requests[i], plan.offsets[i], loss, y[rows], st[:, key], eta, Xt, fit_intercept,
                    selected=None if sel.masks[key] is None else sel.masks[key][rows])
        for i in plan.grouped:
            # the score at point 0 (the ℓ' column already weighted), summed per group: a sparse
            # (G × rows) matrix of the scores times the tile
            d = columns[:, plan.score_cols[i]]
            r = requests[i]
            codes = groups[rows]
            a = cert_sizes[i]
            sums = extras[i][a: a + r.groups * q].reshape(r.groups, q)
            by_group = sparse.csr_matrix((d, (codes, np.arange(m))), shape=(r.groups, m))
            sums[:, :p] += by_group @ Xt
            if fit_intercept:
                sums[:, p] += np.bincount(codes, weights=d, minlength=r.groups)
        for i in plan.measured:
            ws = (st if sel is None else st[:, plan.keys[i]])
            extras[i][cert_sizes[i]:] += _tile_metrics(loss, y[rows], ws, eta, plan.offsets[i],
                                                            requests[i].k)

    for i, w in enumerate(block_weights):
        if w is not None:  # XᵀDX, full (both triangles)
            grams[i] = np.asarray((X.T @ X.multiply(w[:, None]).tocsr()).toarray())
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
            gram[:p, :p] = g if threads or is_sparse else np.triu(g) + np.triu(g, 1).T
            if fit_intercept:
                gram[:p, p] = gram[p, :p] = xt_cols[:, c]
                gram[p, p] = col_sums[c]
            if plan.at_point[i]:  # Σ s x̃ (ω η − ℓ') at the last point: the Gram times it less the gradient
                rhs = gram @ r.expand[:q] - grad[:, -1]
                c += 1
            else:
                rhs[:p] = xt_cols[:, c + 1]
                if fit_intercept:
                    rhs[p] = col_sums[c + 1]
                c += 2
        n_i, W_i = (n_rows, W) if sel is None else sel.totals[plan.keys[i]]
        out.append(BlockStats(float(n_i), W_i, loss_refs[i] + np.r_[0.0, delta], delta.copy(),
                              grad, gram, rhs, extras[i]))
    return out


def _tile_metrics(loss, y, s, eta, offset, k) -> np.ndarray:
    """Σ s·error at each of a request's k points (columns ``offset`` … of ``eta``), flat in the
    order of :data:`~smem_dask.blockstats.METRICS` per point."""
    e = eta[:, offset: offset + k]
    out = np.zeros((k, len(METRICS)))
    if loss.is_classifier:
        wrong = ((e > 0) != (y[:, None] > 0.5)).astype(np.float64)
        out[:, 0] = wrong.sum(axis=0) if s is None else s @ wrong
    else:
        r = y[:, None] - (loss.inverse_link(e) if loss.has_inverse_link else e)
        sq, ab = r * r, np.abs(r)
        out[:, 1], out[:, 2] = (sq.sum(axis=0), ab.sum(axis=0)) if s is None else (s @ sq, s @ ab)
    return out.ravel()


class _Selections:
    """The row selections of a pass's requests (all rows; fold k's training rows; fold k's held-out
    rows), each as the sample weights it implies: s (or 1) on its rows and 0 elsewhere.

    ``weights`` (n_rows, n_selections), ``masks`` a boolean per row (None for all rows),
    ``totals`` (rows, Σ weight) of each, ``sparse`` whether a selection is one fold's rows (a Gram
    over it is formed from those rows alone).
    """

    def __init__(self, requests, s, folds, n_rows):
        keys = list(dict.fromkeys(r.rows for r in requests))
        if folds is None and any(k is not None for k in keys):
            raise ValueError("a request selects a fold, but the pass has no fold ids")
        self.index = {k: j for j, k in enumerate(keys)}
        base = np.ones(n_rows) if s is None else s
        f = None if folds is None else np.asarray(folds).ravel()
        self.masks, cols, self.totals, self.sparse = [], [], [], []
        for key in keys:
            mask = None if key is None else ((f == key[0]) if key[1] else (f != key[0]))
            w = base if mask is None else np.where(mask, base, 0.0)
            self.masks.append(mask)
            cols.append(w)
            self.totals.append((n_rows if mask is None else int(mask.sum()), float(w.sum())))
            self.sparse.append(key is not None and key[1])
        # column-major, as the kernel's other per-row quantities
        self.weights = np.asfortranarray(np.column_stack(cols)) if cols else np.zeros((n_rows, 0))


class _Plan:
    """Where each request's points sit in the one product X·P, and the per-tile loss work.

    Per request: its k points, the k − 1 steps from point 0 (so that small steps are not lost in a
    difference of two predictors) and its expansion point.
    """

    def __init__(self, requests: list[Request], p: int):
        self.requests = requests
        # a Newton system at the last point evaluated (the Newton mode's pass): the Hessian weight
        # at the point's linear predictor, its u·x̃ column left out — the right-hand side
        # Σ s x̃ (ω η − ℓ') is the Gram times the point less the gradient there, formed after the
        # tiles (one column fewer in each product with X and Xᵀ)
        self.at_point = [r.system and r.hessian and r.k > int(r.reference_known)
                         and np.array_equal(r.expand, r.coefs[:, -1]) for r in requests]
        blocks, offsets, self.expand_cols = [], [0], []
        for r, shared in zip(requests, self.at_point, strict=True):
            cols = [r.coefs, r.coefs[:, 1:] - r.coefs[:, :1]]
            if r.system and not shared:
                cols.append(r.expand[:, None])
            blocks.append(np.column_stack(cols))
            self.expand_cols.append(offsets[-1] + (r.k - 1 if shared else 2 * r.k - 1))
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
        self.n_columns = self.evals.size + sum(
            (1 if shared else 2) for r, shared in zip(requests, self.at_point, strict=True) if r.system)
        # one request: every loss change is from its point 0, whose column the loss's elementwise
        # formulas then broadcast — the work on the reference once per row, not once per step (a
        # contiguous copy, as numpy's SIMD and strided loops of tanh, exp… differ in the last bit)
        self.ref_cols = self.refs[:1] if self.refs.size and (self.refs == self.refs[0]).all() else self.refs
        # the columns of the tile's linear predictors each formula reads: a view where they are a
        # run of consecutive columns (the one request of a fit's pass), else a copy
        self.take = {name: _run_or_indices(getattr(self, name))
                     for name in ("starts", "ref_cols", "steps", "evals")}
        self.offset_cols = _run_or_indices(np.setdiff1d(np.arange(self.points.shape[1]), self.steps))
        # where each request's ℓ' column at point 0 sits among the columns multiplied by Xᵀ
        self.score_cols, c = [], 0
        for r, shared in zip(requests, self.at_point, strict=True):
            self.score_cols.append(None if r.reference_known else c)
            c += r.k - int(r.reference_known) + (0 if not r.system else 1 if shared else 2)
        self.certified = [i for i, r in enumerate(requests) if r.certificate_size(1)]
        self.grouped = [i for i, r in enumerate(requests) if r.groups]
        self.measured = [i for i, r in enumerate(requests) if r.metrics]
        # requests that sum over a fold's rows: the pass then weighs each request's rows itself
        self.selective = any(r.fold is not None for r in requests)
        if self.selective:
            index = {k: j for j, k in enumerate(dict.fromkeys(r.rows for r in requests))}
            self.keys = [index[r.rows] for r in requests]
            self.key_valued = np.asarray([self.keys[i] for i in self.valued], dtype=int)
            self.key_refs = np.concatenate([np.full(r.k - 1, key) for r, key in zip(requests, self.keys,
                                                                                     strict=True)])
            self.key_evals = np.concatenate([np.full(r.k - int(r.reference_known), key)
                                             for r, key in zip(requests, self.keys, strict=True)])

    def columns(self, loss, y, s, eta, out, offset=None):
        """On one tile: the weighted loss sums at each request's point 0, the loss changes at its
        points j ≥ 1, the columns to multiply by Xᵀ (s·ℓ' at every point, and s·ω, s·u for each
        system; written in ``out``, a flat buffer of at least the tile's rows × ``n_columns``) and
        each system's weights s·ω."""
        yc = y[:, None]
        take = self.take
        value = loss.value(yc, eta[:, take["starts"]])
        change = loss.value_difference(yc, eta[:, take["ref_cols"]], eta[:, take["steps"]])
        dl = loss.derivative(yc, eta[:, take["evals"]])
        loss_refs = np.zeros(len(self.requests))
        if s is None:
            loss_refs[self.valued], loss_deltas = value.sum(axis=0), change.sum(axis=0)
        else:
            loss_refs[self.valued], loss_deltas = s @ value, s @ change
            dl *= s[:, None]
        columns, weights = self._assemble(loss, y, eta, dl, lambda i: s, out, offset)
        return loss_refs, loss_deltas, columns, weights

    def selected_columns(self, loss, y, S, eta, out, offset=None):
        """:meth:`columns` when requests sum over different rows: ``S`` (rows, selections) holds
        each selection's weights, request i's in column ``keys[i]``."""
        yc = y[:, None]
        take = self.take
        value = loss.value(yc, eta[:, take["starts"]])
        change = loss.value_difference(yc, eta[:, take["ref_cols"]], eta[:, take["steps"]])
        dl = loss.derivative(yc, eta[:, take["evals"]])
        loss_refs = np.zeros(len(self.requests))
        loss_refs[self.valued] = np.einsum("ij,ij->j", S[:, self.key_valued], value)
        loss_deltas = np.einsum("ij,ij->j", S[:, self.key_refs], change)
        dl *= S[:, self.key_evals]
        columns, weights = self._assemble(loss, y, eta, dl, lambda i: S[:, self.keys[i]], out, offset)
        return loss_refs, loss_deltas, columns, weights

    def _assemble(self, loss, y, eta, dl, weight_of, out, offset=None):
        """The columns to multiply by Xᵀ (each request's weighted ℓ' columns, then s·ω, s·u of its
        system), written in the flat buffer ``out``, and each system's weights s·ω, with
        ``weight_of(i)`` request i's row weights (None: all ones)."""
        pieces, e = [], 0
        for r in self.requests:
            pieces.append(dl[:, e : e + r.k - int(r.reference_known)])
            e += r.k - int(r.reference_known)
        n_rows = eta.shape[0]
        columns = out[: n_rows * self.n_columns].reshape((n_rows, self.n_columns), order="F")
        weights = []
        c = 0
        for i, (r, piece) in enumerate(zip(self.requests, pieces, strict=True)):
            columns[:, c : c + piece.shape[1]] = piece
            c += piece.shape[1]
            sw = None
            if r.system:
                w = weight_of(i)
                eta_x = eta[:, self.expand_cols[i]]
                if self.at_point[i]:  # ω alone; the right-hand side comes from the Gram
                    omega = loss.expected_hessian(eta_x) if r.expected else loss.hessian(y, eta_x)
                    sw = columns[:, c]
                    np.multiply(omega, 1.0 if w is None else w, out=sw)
                    c += 1
                elif r.scores:  # (s ℓ')², and a zero right-hand side
                    sd = loss.derivative(y, eta_x)
                    if w is not None:
                        sd *= w
                    sw = columns[:, c]
                    np.multiply(sd, sd, out=sw)
                    columns[:, c + 1] = 0.0
                    c += 2
                else:
                    omega, u = self._e_step(loss, r, y, eta_x)
                    sw, su = (omega, u) if w is None else (w * omega, w * u)
                    if offset is not None:
                        # the quadratic ½ω(x̃ᵀβ + o)² − u(x̃ᵀβ + o) in β: its linear term is u − ωo
                        su = su - sw * offset
                    columns[:, c] = sw
                    columns[:, c + 1] = su
                    c += 2
            weights.append(sw)
        return columns, weights

    @staticmethod
    def _e_step(loss, r, y, eta_x):
        """The weights ω and working responses u of request r's system at its expansion point (the
        E-step's, the fixed bound's, or the Hessian's)."""
        if r.hessian:
            h = loss.expected_hessian(eta_x) if r.expected else loss.hessian(y, eta_x)
            return h, h * eta_x - loss.derivative(y, eta_x)
        if r.curvature is None:
            return loss.e_step(y, eta_x) if r.clamp is None else loss.e_step(y, eta_x, clamp=r.clamp)
        return np.full(eta_x.shape[0], float(r.curvature)), r.curvature * eta_x - loss.derivative(y, eta_x)


def _group_codes(labels, n_rows: int, n_groups: int) -> np.ndarray:
    """The pass's row labels as group codes 0 … n_groups − 1 (refused otherwise)."""
    if labels is None:
        raise ValueError("a request sums over groups, but the pass has no row labels")
    codes = np.asarray(labels).ravel()
    if codes.shape != (n_rows,) or codes.dtype.kind not in "iu":
        raise ValueError(f"group codes must be {n_rows} integers, got {codes.dtype} of shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= n_groups):
        raise ValueError(f"group codes must lie in 0 … {n_groups - 1}, got {codes.min()} … {codes.max()}")
    return codes.astype(np.intp, copy=False)


def _run_or_indices(index: np.ndarray):
    """``index`` (increasing column numbers) as a slice when it is a run of consecutive numbers —
    indexing with it is then a view of the same memory layout as the copy the numbers would give
    (an F-ordered block), so every formula gives bitwise the same — else ``index`` itself."""
    if index.size == 0 or (np.diff(index) == 1).all():
        start = int(index[0]) if index.size else 0
        return slice(start, start + index.size)
    return index


#: a sparse block denser than this is made dense tile by tile for the kernel: measured
#: (``python -m benchmarks sparse``, 2e5 × 100, one thread; benchmarks/results/sparse.md) the
#: sparse kernel took 0.38–0.48× the dense one's time at density 0.01, 0.63–0.71× at 0.03 and
#: 2.6–3.3× at 0.1 (two runs)
SPARSE_MAX_DENSITY = 0.05

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
