r"""Exact M-step solvers: minimize the quadratic majorizer plus a penalty on the p×p Gram.

The ``"exact"`` treatment of :mod:`smem_dask.penalties` minimizes

    Q(β) = ½ βᵀ A β − bᵀ β + penalty(β),

warm-started at the expansion point, with no data pass:

* :func:`_active_set_elastic_net` — Σ l1_j|β_j| + ½ Σ l2_j β_j² (elastic net and lasso) by a
  feature-sign (active-set) search;
* :func:`_block_coordinate_descent` — Σ_G w_G‖β_G‖ (group lasso) by exact block updates
  (:func:`_group_prox`) alternated with damped Newton steps on the non-zero groups.

Both decrease Q at every step from the warm start, so the EM step stays monotone. No dask, no X here.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize


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
