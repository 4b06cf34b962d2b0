"""Per-block sufficient statistics of one EM pass, and the kernel that computes them.

``BlockStats`` is a monoid (``zero`` and ``+``): the statistics of the whole data are the sum of the
statistics of any split into row blocks. Every engine computes ``block_stats`` on its blocks and sums.

Notation: x̃ = (x, 1) when an intercept is fitted (q = p + 1 columns), else x̃ = x (q = p). A pass is
given ``coefs`` (q × k: k points at which to evaluate the loss and its gradient) and optionally one
``expand`` point (q,) at which to run the E-step and form the M-step system.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import blas

from .losses import Loss

__all__ = ["BlockStats", "block_stats", "packed_size"]


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
        Σ s_i ℓ(y_i, η_i) at each evaluation point.
    loss_delta : (k − 1,) array
        Σ s_i [ℓ(y_i, η_ij) − ℓ(y_i, η_i0)] for evaluation points j ≥ 1, computed per observation
        with the loss's stable ``value_difference`` (accurate even when the points nearly agree).
    grad : (q, k) array
        Σ s_i ℓ'(y_i, η_i) x̃_i at each evaluation point (the loss part of W·∇F).
    gram : (q, q) array
        Σ s_i ω_i x̃_i x̃_iᵀ at the expansion point (zeros when no expansion point was given).
    rhs : (q,) array
        Σ s_i u_i x̃_i at the expansion point.
    """

    n: float
    weight: float
    loss: np.ndarray
    loss_delta: np.ndarray
    grad: np.ndarray
    gram: np.ndarray
    rhs: np.ndarray

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
        )

    def pack(self) -> np.ndarray:
        """All fields in one flat float64 vector (what a dask block returns)."""
        return np.concatenate(
            [[self.n, self.weight], self.loss, self.loss_delta, self.grad.ravel(),
             self.gram.ravel(), self.rhs]
        )

    @classmethod
    def unpack(cls, vec: np.ndarray, q: int, k: int) -> BlockStats:
        vec = np.asarray(vec, dtype=np.float64).ravel()
        if vec.size != packed_size(q, k):
            raise ValueError(f"packed statistics have {vec.size} values, expected {packed_size(q, k)}")
        i = 2
        loss = vec[i : i + k]
        i += k
        loss_delta = vec[i : i + k - 1]
        i += k - 1
        grad = vec[i : i + q * k].reshape(q, k)
        i += q * k
        gram = vec[i : i + q * q].reshape(q, q)
        i += q * q
        rhs = vec[i : i + q]
        return cls(float(vec[0]), float(vec[1]), loss, loss_delta, grad, gram, rhs)

    def is_finite(self) -> bool:
        return bool(np.isfinite(self.pack()).all())


def packed_size(q: int, k: int) -> int:
    """Length of ``BlockStats.pack()`` for q columns and k evaluation points."""
    return 2 + 2 * k - 1 + q * k + q * q + q


def block_stats(
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None,
    loss: Loss,
    coefs: np.ndarray,
    expand: np.ndarray | None,
    fit_intercept: bool,
) -> BlockStats:
    """Statistics of one row block: the fused per-block work of one EM pass.

    One read of ``X`` gives the linear predictors of all k evaluation points and of the expansion
    point (one matrix product), the weighted losses and gradients there, and the weighted Gram
    Σ s ω x̃ x̃ᵀ (a symmetric rank-k update, BLAS ``syrk``) and moment vector at the expansion point.
    Any dtype of X is accumulated in float64. Floating-point warnings are silenced here: a NaN or
    overflow shows in the returned statistics, which the engines check and explain after the pass.
    """
    with np.errstate(all="ignore"):
        return _block_stats(X, y, sample_weight, loss, coefs, expand, fit_intercept)


def _block_stats(X, y, sample_weight, loss, coefs, expand, fit_intercept) -> BlockStats:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).ravel()
    n_rows, p = X.shape
    q = p + int(fit_intercept)
    coefs = np.asarray(coefs, dtype=np.float64).reshape(q, -1)
    k = coefs.shape[1]
    s = np.ones(n_rows) if sample_weight is None else np.asarray(sample_weight, np.float64).ravel()

    # linear predictors of the k points, of the k − 1 steps from point 0 (so that small steps are
    # not lost in a difference of two predictors), and of the expansion point: one product
    steps = coefs[:, 1:] - coefs[:, :1]
    points = np.column_stack([coefs, steps] if expand is None else [coefs, steps, expand])
    eta = X @ points[:p]
    if fit_intercept:
        eta += points[p]

    eta_eval = eta[:, :k]
    loss_sum = s @ loss.value(y[:, None], eta_eval)
    loss_delta = s @ loss.value_difference(y[:, None], eta_eval[:, :1], eta[:, k : 2 * k - 1])
    dl = s[:, None] * loss.derivative(y[:, None], eta_eval)  # n × k

    if expand is None:
        columns = dl
    else:
        omega, u = loss.e_step(y, eta[:, 2 * k - 1])
        sw = s * omega
        columns = np.column_stack([dl, sw, s * u])
    # one product for every X-weighted vector: gradients, Xᵀ(sω), Xᵀ(su)
    xt_cols = X.T @ columns
    col_sums = columns.sum(axis=0)

    grad = np.empty((q, k))
    grad[:p] = xt_cols[:, :k]
    gram = np.zeros((q, q))
    rhs = np.zeros(q)
    if fit_intercept:
        grad[p] = col_sums[:k]
    if expand is not None:
        gram[:p, :p] = _weighted_gram(X, sw)
        rhs[:p] = xt_cols[:, k + 1]
        if fit_intercept:
            gram[:p, p] = gram[p, :p] = xt_cols[:, k]
            gram[p, p] = col_sums[k]
            rhs[p] = col_sums[k + 1]
    return BlockStats(float(n_rows), float(s.sum()), loss_sum, loss_delta, grad, gram, rhs)


def _weighted_gram(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Xᵀ diag(w) X for w ≥ 0 with one BLAS ``dsyrk`` on √w·X (upper triangle, then mirrored)."""
    if X.shape[0] == 0:
        return np.zeros((X.shape[1], X.shape[1]))
    A = X * np.sqrt(w)[:, None]  # C-contiguous n × p, so A.T is Fortran-ordered: no copy for BLAS
    upper = blas.dsyrk(1.0, A.T, trans=0, lower=0)
    return np.triu(upper) + np.triu(upper, 1).T
