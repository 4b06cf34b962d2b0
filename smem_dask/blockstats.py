r"""What a data pass is asked (:class:`Request`) and what it returns (the :class:`BlockStats` monoid).

``BlockStats`` is a monoid (``zero`` and ``+``): the statistics of the whole data are the sum of the
statistics of any split into row blocks. A pass serves one or several requests at once; the
statistics of each travel as one flat float64 vector (:meth:`BlockStats.pack`, :func:`pack_many`,
:func:`unpack_many`, sizes by :func:`packed_size` and :func:`request_size`). The kernel that
computes them on a block is :func:`smem_dask.stats.block_stats_many`; the certificate part
(``extra``) is read by :meth:`smem_dask.certificate_stats.DualStats.parse`.
:func:`check_gram_range` refuses X whose squares underflow the float64 Gram. Pure numpy.

Notation: x̃ = (x, 1) when an intercept is fitted (q = p + 1 columns), else x̃ = x (q = p).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .certificate_stats import HIST_DECADES

__all__ = ["BlockStats", "METRICS", "Request", "check_gram_range", "group_sums", "metric_sums", "pack_many",
           "packed_size", "request_size", "unpack_many"]

#: the prediction errors a request with ``metrics`` sums at each point, in this order
METRICS = ("misclassified", "squared_error", "absolute_error")


@dataclass(frozen=True)
class Request:
    """What one fit asks of a data pass.

    coefs : (q, k) array — points at which to evaluate the loss, its gradient and (for j ≥ 1) the loss
        change from point 0.
    expand : (q,) array or None — the expansion point of the E-step; None: no M-step system.
    curvature : float or None — None: the loss's own E-step. A number b: the fixed-curvature majorizer
        ω = b, u = b·η̃ − ℓ'(η̃) (valid for losses whose ω never exceeds b; see docs/method.md,
        "Curvature modes").
    hessian : bool — the system is the loss's second-order expansion at ``expand`` instead of its
        E-step: ω = ℓ''(η̃), u = ω·η̃ − ℓ'(η̃) (losses with ``has_hessian``; the Newton mode). Not a
        majorizer: its step must be checked by the objective.
    expected : bool — with ``hessian``: the expected information weight E[ℓ''] at η̃
        (``Loss.expected_hessian``, free of y; defined by the negbin loss only) instead of the
        observed ℓ''(η̃). The two agree for the canonical links; the negbin loss's standard errors
        use the expected one.
    reference_known : bool — point 0 is only the reference of the loss changes (its loss and
        gradient are known to the caller from an earlier pass): they are not computed and come
        back as zeros, so ``loss[j]`` holds the change alone for j ≥ 1.
    dual_point : (q,) array or None — for losses with a ``dual_box``: the point β̃ at which to
        evaluate the smoothed dual variable a(δ) of
        :func:`~smem_dask.certificate_stats.smoothed_dual` (width ``dual_width``), corrected by
        ``dual_lam`` (see :class:`~smem_dask.certificate_stats.DualStats`).
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
    fold : int or None — the rows this request sums over (cross-validation, see docs/method.md
        "Cross-validation"): None, every row; an integer k, the rows whose fold id is not k (the
        training rows of fold k) — or, with ``held_out``, the rows whose fold id is k. Every sum
        (n, W, losses, gradients, Gram, certificate) is then over those rows only: the statistics of
        the data with sample weights s_i·[fold_i ≠ k] (or [fold_i = k]).
    held_out : bool — with ``fold``: sum over the rows of fold ``fold`` instead of the others.
    scores : bool — the system is the scores' outer products Σ (s ℓ'(η̃))² x̃x̃ᵀ at ``expand``
        instead of an E-step (the middle of a sandwich covariance, :mod:`smem_dask.inference`); its
        right-hand side is zero.
    groups : int — G > 0: also sum the score s ℓ'(η) x̃ at point 0 over the rows of each group
        g = 0 … G − 1 (the pass's integer row labels, the engine's ``folds``, hold each row's group;
        cluster-robust covariances): G × q numbers in ``extra``, before any metrics (read with
        :func:`group_sums`).
    classes : int — K > 1 for the multinomial loss: each point is a (q, K) coefficient matrix, its
        K columns consecutive in ``coefs`` (q, K·k), and the gradient at it is (q, K) likewise
        (``grad`` (q, K·k)). The system is either the fixed-curvature Gram c·Σ s x̃x̃ᵀ (q × q, c =
        ``curvature``; the Böhning bound's Kronecker factor is the solver's) or, with ``hessian``,
        the Hessian of the loss sum at ``expand`` (a (q, K) matrix, raveled row by row): (qK × qK)
        in class-major order, block (k, l) = Σ s (π_k δ_kl − π_k π_l) x̃x̃ᵀ. Its right-hand side is
        zero either way (the solver steps from the gradient).
    metrics : bool — also sum, at each point, the prediction errors a held-out score needs
        (:data:`METRICS`, appended to ``extra`` after any certificate part; read with
        :func:`metric_sums`): for classifiers Σ s·[sign error] (a row counts as wrong when
        (η > 0) ≠ (y = 1)); for regressors Σ s·(y − ŷ)² and Σ s·|y − ŷ| with ŷ the inverse link of η
        (the estimator's prediction). The columns that do not apply are zero.
    """

    coefs: np.ndarray
    expand: np.ndarray | None = None
    curvature: float | None = None
    hessian: bool = False
    expected: bool = False
    reference_known: bool = False
    dual_point: np.ndarray | None = None
    dual_width: float = 1.0
    dual_lam: np.ndarray | None = None
    dual_ref: np.ndarray | None = None
    histogram: int | None = None
    clamp: float | None = None
    fold: int | None = None
    held_out: bool = False
    metrics: bool = False
    scores: bool = False
    groups: int = 0
    classes: int = 1

    def __post_init__(self):
        # float64 always; a single point (q,) becomes one column (q, 1)
        coefs = np.asarray(self.coefs, dtype=np.float64)
        object.__setattr__(self, "coefs", coefs[:, None] if coefs.ndim == 1 else coefs)
        for name in ("expand", "dual_point", "dual_lam", "dual_ref"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())
        if self.hessian and self.curvature is not None:
            raise ValueError("a system is either the fixed bound's (curvature) or the Hessian's, not both")
        object.__setattr__(self, "classes", int(self.classes))
        if self.expected and (not self.hessian or self.classes > 1):
            raise ValueError("expected (the expected information weight) applies to a binary request's "
                             "Hessian system only")
        if self.classes < 1 or self.coefs.shape[1] % self.classes:
            raise ValueError(f"coefs has {self.coefs.shape[1]} columns, not a multiple of classes="
                             f"{self.classes}")
        if self.classes > 1 and (self.dual_point is not None or self.histogram is not None
                                 or (self.expand is not None and self.curvature is None
                                     and not self.hessian)):
            raise ValueError("a multinomial request (classes > 1) has points, a fixed-curvature Gram "
                             "or the Hessian, and metrics only")
        if self.classes > 1 and self.hessian and self.expand.size != self.coefs.shape[0] * self.classes:
            raise ValueError(f"a multinomial Hessian's expansion point is a (q, {self.classes}) matrix, "
                             f"got {self.expand.size} values")
        if self.scores and (self.expand is None or self.hessian or self.curvature is not None):
            raise ValueError("a scores system needs an expansion point and is neither the Hessian's nor "
                             "the fixed bound's")
        object.__setattr__(self, "groups", int(self.groups))
        if self.groups < 0 or (self.groups and (self.fold is not None or self.reference_known)):
            raise ValueError("groups is a number of groups ≥ 0, summing the scores at point 0 (computed: "
                             "not reference_known) over every row (no fold)")
        if self.classes > 1 and (self.scores or self.groups):
            raise ValueError("a multinomial request (classes > 1) has no scores system or group sums")
        if self.fold is not None:
            object.__setattr__(self, "fold", int(self.fold))
        elif self.held_out:
            raise ValueError("held_out needs a fold")

    @property
    def rows(self) -> tuple[int, bool] | None:
        """Which rows the request sums over: None (all), else (fold, held_out)."""
        return None if self.fold is None else (self.fold, bool(self.held_out))

    @property
    def overflow_is_rise(self) -> bool:
        """A Newton candidate's pass (the Hessian's system, point 0 known): a candidate whose loss
        or gradient overflows float64 is a step that raises F, which the loop handles; every other
        pass with non-finite sums is an error about the data."""
        return self.hessian and self.reference_known

    @property
    def k(self) -> int:
        """The number of evaluation points."""
        return self.coefs.shape[1] // self.classes

    def system_size(self, q: int) -> int:
        """Rows of the system's matrix: q, or q·K for a multinomial Hessian."""
        return q * self.classes if self.hessian else q

    @property
    def width(self) -> int:
        """Columns of the gradient: K per point (``classes``), one for the binary losses."""
        return self.coefs.shape[1]

    @property
    def system(self) -> bool:
        return self.expand is not None

    def extra_size(self, q: int) -> int:
        """Length of the certificate statistics (``BlockStats.extra``) this request asks for."""
        size = 0 if self.histogram is None else HIST_DECADES.size
        if self.dual_point is not None:
            size += self.n_duals * (2 + 3 * q) + (q * q + 2 * q if self.dual_lam is None else 0)
        return size + self.groups * q + self.metrics_size

    def certificate_size(self, q: int) -> int:
        """Length of the certificate part at the start of ``extra`` (before group sums and metrics)."""
        return self.extra_size(q) - self.groups * q - self.metrics_size

    @property
    def metrics_size(self) -> int:
        """Length of the metric sums at the end of ``extra``: len(METRICS) per point."""
        return len(METRICS) * self.k if self.metrics else 0

    @property
    def n_duals(self) -> int:
        """Dual candidates summed: the corrected one (with λ), a(δ), the EM dual (with a reference)."""
        if self.dual_point is None:
            return 0
        return 1 + (self.dual_lam is not None) + (self.dual_ref is not None)


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
        Σ s_i ℓ'(y_i, η_i) x̃_i at each evaluation point (the loss part of W·∇F); (q, K·k) for a
        multinomial request, K columns per point.
    gram : (q, q) array
        Σ s_i ω_i x̃_i x̃_iᵀ at the expansion point (zeros when no expansion point was given).
    rhs : (q,) array
        Σ s_i u_i x̃_i at the expansion point.
    extra : array
        The certificate statistics the request asked for, flat (read with
        :meth:`~smem_dask.certificate_stats.DualStats.parse`).
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
    def zero(cls, q: int, k: int, width: int | None = None, m: int | None = None) -> BlockStats:
        """The statistics of no rows for k points (``width`` gradient columns: k by default; a
        system of ``m`` rows: q by default)."""
        m = q if m is None else m
        return cls(0.0, 0.0, np.zeros(k), np.zeros(k - 1), np.zeros((q, k if width is None else width)),
                   np.zeros((m, m)), np.zeros(m))

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
    def unpack(cls, vec: np.ndarray, q: int, k: int, system: bool = True, extra: int = 0,
               width: int | None = None, m: int | None = None) -> BlockStats:
        vec = np.asarray(vec, dtype=np.float64).ravel()
        width = k if width is None else width
        m = q if m is None else m
        expected = packed_size(q, k, system, width, m) + extra
        if vec.size != expected:
            raise ValueError(f"packed statistics have {vec.size} values, expected {expected}")
        i = 2
        loss = vec[i : i + k]
        i += k
        loss_delta = vec[i : i + k - 1]
        i += k - 1
        grad = vec[i : i + q * width].reshape(q, width)
        i += q * width
        if system:
            gram = vec[i : i + m * m].reshape(m, m)
            i += m * m
            rhs = vec[i : i + m]
            i += m
        else:
            gram, rhs = np.zeros((m, m)), np.zeros(m)
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


def packed_size(q: int, k: int, system: bool = True, width: int | None = None, m: int | None = None) -> int:
    """Length of ``BlockStats.pack(system)`` for q columns and k evaluation points (``width``
    gradient columns: k unless the request is multinomial; a system of ``m`` rows: q unless it is
    a multinomial Hessian)."""
    m = q if m is None else m
    return 2 + 2 * k - 1 + q * (k if width is None else width) + (m * m + m if system else 0)


def request_size(q: int, request: Request) -> int:
    """Length of the packed statistics of one request (system and certificate parts included)."""
    return (packed_size(q, request.k, request.system, request.width, request.system_size(q))
            + request.extra_size(q))


def pack_many(stats: list[BlockStats], requests: list[Request]) -> np.ndarray:
    """The statistics of several requests in one flat vector (systems only where requested)."""
    return np.concatenate([st.pack(r.system) for st, r in zip(stats, requests, strict=True)])


def unpack_many(vec: np.ndarray, q: int, requests: list[Request]) -> list[BlockStats]:
    # aligned: a buffer received from a worker may not be, and LAPACK wrappers (scipy.linalg.solve)
    # refuse unaligned views of it
    vec = np.require(np.asarray(vec, dtype=np.float64).ravel(), requirements=["A", "C"])
    sizes = [request_size(q, r) for r in requests]
    if vec.size != sum(sizes):
        raise ValueError(f"packed statistics have {vec.size} values, expected {sum(sizes)}")
    bounds = np.cumsum([0, *sizes])
    return [BlockStats.unpack(vec[a:b], q, r.k, r.system, r.extra_size(q), r.width, r.system_size(q))
            for a, b, r in zip(bounds[:-1], bounds[1:], requests, strict=True)]


def group_sums(stats: BlockStats, request: Request) -> np.ndarray:
    """The (G, q) sums of the score s ℓ'(η) x̃ over each group's rows of a request with ``groups``."""
    q = stats.grad.shape[0]
    a = request.certificate_size(q)
    return stats.extra[a: a + request.groups * q].reshape(request.groups, q)


def metric_sums(stats: BlockStats, request: Request) -> np.ndarray:
    """The metric sums of a ``metrics`` request: (k, len(METRICS)), one row per point (Σ s·error,
    divide by ``stats.weight`` for the mean)."""
    if not request.metrics:
        raise ValueError("the request did not ask for metrics")
    return stats.extra[stats.extra.size - request.metrics_size:].reshape(request.k, len(METRICS))
