r"""Multinomial logistic regression: Newton's steps, safeguarded by Böhning's bound.

The model: K classes, coefficients Θ (q, K) (column k: class k's β_k and, with an intercept, b_k in
its last row), η_ik = x̃_iᵀθ_k and F(Θ) = (1/W) Σ s_i ℓ(y_i, η_i·) + α P(B) with ℓ the softmax
cross-entropy (:class:`~smem_dask.losses.Multinomial`) and P the penalty on the (p, K) coefficients
B (intercepts unpenalized). See docs/method.md, "Multinomial".

Böhning's bound ∇²ℓ ⪯ ½(I − 11ᵀ/K) ⊗ x̃x̃ᵀ holds for every Θ, so with S = Σ s x̃x̃ᵀ the quadratic

    F(Θ) ≤ F(Y) + ⟨∇F(Y), Θ − Y⟩ + (1/2W)·tr((Θ − Y)ᵀ S (Θ − Y) H) + α(P(B) − P(B_Y)),   H = ½(I − 11ᵀ/K)

majorizes F at any Y. The loss does not change when the same vector is added to every class
(η_i· + c): its gradient's rows sum to zero over the classes, and on the subspace of such centred
steps H acts as ½I. With the ridge penalty (and with none) the minimizer keeps Θ's rows centred —
Σ_k θ_jk = 0, scikit-learn's symmetric parametrization — so the bound's M-step is
Θ = Y − M⁻¹(∇L(Y)/W + α E Y) with the one q×q matrix M = S/(2W) + α E (E: identity on the
coefficients, zero on the intercept), factored once per fit, its step centred over the classes.

Two modes (:data:`MODES`), each reading X once per iteration:

* ``"newton"`` (the default): the Hessian's K(K + 1)/2 Gram blocks are formed in the pass that
  checks each candidate; a step that raises F is halved, then quartered (one pass), then replaced by
  the bound's step, which cannot raise it.
* ``"fixed"``: the bound alone — S from the first pass, then gradient passes, with Nesterov momentum
  and a restart whenever F would rise (``"nesterov-restart"``).

Lasso, elastic net and group (a group holds its features' coefficients in every class): the
M-step is the penalty's exact solver on the whole qK × qK system, then every row moved to the shift
that minimizes its penalty (:func:`recentred`; the loss does not see it).

Every accepted iterate lowers F, by its exact change computed in the pass (except under
``acceleration="nesterov"``, which accepts rises, as for the binary losses); a fit converges when the
relative change of F and the optimality residual ‖∇F‖_∞/max(1, |F|) — over the entries above their
floating-point floor, as :func:`~smem_dask.iterate.gradient_floor` — are both ≤ tol. No dask here.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from .emloop import _next_t
from .iterate import ConvergenceWarning, FitResult, IterationRecord, SingularSystemWarning
from .losses import Multinomial
from .penalties import L2, ElasticNet, Group, Penalty
from .solver import SolverConfig, Stop, run_lockstep
from .stats import BlockStats, Request, check_gram_range

__all__ = ["MultinomialResult", "fit_multinomial", "multinomial_iterations"]


@dataclass
class MultinomialResult(FitResult):
    """A multinomial fit: :class:`~smem_dask.iterate.FitResult` with ``coef`` (K, p) and
    ``intercept`` (K,) (zeros without an intercept); no ``warm`` start (a path warm-starts from the
    coefficients and the shared Gram)."""


def supported(penalty: Penalty, alpha: float) -> bool:
    """Whether the multinomial M-steps solve ``penalty`` at ``alpha``: the convex penalties with an
    exact solver or a closed form (ridge, lasso, elastic net, group), or any penalty at α = 0."""
    return alpha == 0 or isinstance(penalty, (L2, ElasticNet, Group))


def check_supported(penalty: Penalty, alpha: float) -> None:
    """Refuse a penalty the multinomial M-steps do not solve at ``alpha`` (see :func:`supported`)."""
    if not supported(penalty, alpha):
        raise ValueError(f"penalty {penalty.name!r} with the multinomial loss is not implemented; "
                         "use l2, l1, elasticnet or group")


def theta_of(fit: FitResult, fit_intercept: bool) -> np.ndarray:
    """A multinomial fit's coefficients as the solver's Θ (q, K): the (p, K) coefficients, then
    the intercepts' row."""
    return np.vstack([fit.coef.T, fit.intercept[None, :]]) if fit_intercept else fit.coef.T


def class_penalty(penalty: Penalty, n_features: int, n_classes: int) -> Penalty:
    """The penalty on the (p, K) coefficients raveled row by row (feature j's K entries together):
    elementwise penalties as they are; the group penalty's p labels repeated K times, so that a
    group holds its features' coefficients in every class and is zero for all classes at once
    (glmnet's "grouped" multinomial; ``groups=range(p)``: one group per feature)."""
    if isinstance(penalty, Group):
        if len(penalty.groups) != n_features:
            raise ValueError(f"groups has {len(penalty.groups)} labels but there are {n_features} "
                             "features (the multinomial loss groups a feature's coefficients in "
                             "every class: one label per feature)")
        return Group(groups=tuple(g for g in penalty.groups for _ in range(n_classes)))
    return penalty


def recentred(theta: np.ndarray, penalty: Penalty, p: int) -> np.ndarray:
    """Θ with each row shifted by the constant that minimizes the penalty along it: the loss is the
    same for every shift (Σ over classes), so F can only fall. Ridge and group: the row's mean;
    elastic net and lasso: the minimizer of r Σ|θ_k + c| + (1 − r)/2 Σ(θ_k + c)² (a median for the
    lasso); the intercepts (unpenalized): their mean, scikit-learn's symmetric parametrization."""
    out = theta - theta.mean(axis=1, keepdims=True)
    if isinstance(penalty, ElasticNet) and penalty.l1_ratio > 0:
        for j in range(p):
            out[j] = theta[j] + _best_shift(theta[j], penalty.l1_ratio)
    return out


def _best_shift(b: np.ndarray, r: float) -> float:
    """argmin_c r Σ|b_k + c| + (1 − r)/2 Σ (b_k + c)² (convex, piecewise quadratic): the best of the
    breakpoints −b_k and each piece's stationary point inside it."""
    K = b.size
    cuts = np.sort(-b)
    candidates = list(cuts)
    if r < 1:
        bounds = np.r_[-np.inf, cuts, np.inf]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            # a point inside the piece gives its signs
            inside = (0.5 * (lo + hi) if np.isfinite(lo) and np.isfinite(hi)
                      else hi - 1.0 if np.isfinite(hi) else lo + 1.0)
            signs = np.sign(b + inside)
            c = -(r * signs.sum() / (1 - r) + b.sum()) / K
            if lo <= c <= hi:
                candidates.append(c)
    values = [r * np.abs(b + c).sum() + 0.5 * (1 - r) * ((b + c) ** 2).sum() for c in candidates]
    best = min(values)
    # the ends of a flat piece (a median interval) tie up to the rounding of their sums
    slack = 8 * K * np.finfo(np.float64).eps * (best + float(np.abs(b).sum()))
    ties = [c for c, v in zip(candidates, values, strict=True) if v <= best + slack]
    return 0.5 * (min(ties) + max(ties))  # a median interval's midpoint (lasso, K even)


#: the modes of a multinomial fit: Böhning's fixed bound, or Newton's Hessian safeguarded by it
MODES = ("fixed", "newton")


def multinomial_iterations(n_classes: int, penalty: Penalty, alpha: float, n_features: int, *,
                           fit_intercept: bool, config, mode: str = "newton", callback=None, stop=None,
                           theta0: np.ndarray | None = None, gram: np.ndarray | None = None):
    """The fit as a generator: yields a multinomial :class:`~smem_dask.stats.Request` per data pass,
    receives its :class:`~smem_dask.stats.BlockStats`, returns a :class:`MultinomialResult` and
    warns (``ConvergenceWarning``) when it ends unconverged. ``config`` is a ``SolverConfig``
    (tol, max_iter, acceleration), ``stop`` a ``Stop``; ``mode`` one of :data:`MODES`. A warm start
    (a path's next α) gives ``theta0`` (q, K) and ``gram`` S = Σ s x̃x̃ᵀ, which the fit then does
    not form: the first pass is at Θ0 (Newton's Hessian there, or a gradient pass)."""
    K, p = int(n_classes), int(n_features)
    q = p + int(fit_intercept)
    alpha = float(alpha)
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
    if K < 2:
        raise ValueError(f"the multinomial loss needs at least two classes, got {K}")
    if mode not in MODES:
        raise ValueError(f"unknown multinomial mode {mode!r}; choose one of {', '.join(MODES)}")
    check_supported(penalty, alpha)
    user_penalty = penalty
    penalty = class_penalty(penalty, p, K)
    # ridge (and α = 0): closed-form M-steps; the others: the penalty's exact solver on the
    # (qK × qK) system, then each row moved to its best shift
    exact = alpha > 0 and not isinstance(penalty, L2)
    newton = mode == "newton"
    started = time.perf_counter()
    if (theta0 is None) != (gram is None):
        raise ValueError("a warm start gives both theta0 and gram")
    theta = np.zeros((q, K)) if theta0 is None else np.array(theta0, dtype=np.float64)
    if theta.shape != (q, K):
        raise ValueError(f"theta0 must have shape ({q}, {K}), got {theta.shape}")
    if newton:
        st = yield Request(theta, theta, hessian=True, classes=K)
        # at Θ = 0 every π_k = 1/K: the Hessian's block (0, 0) is (K − 1)/K² · S
        S = st.gram[:q, :q] * (K * K / (K - 1.0)) if gram is None else np.asarray(gram, np.float64)
    elif gram is None:
        st = yield Request(theta, theta[:, 0], curvature=1.0, classes=K)
        S = st.gram
    else:
        st = yield Request(theta, classes=K)
        S = np.asarray(gram, np.float64)
    n_passes = 1
    W = st.weight
    if theta0 is None:  # at Θ = 0 every row has the same curvature: X's scale is checked there
        check_gram_range(BlockStats.system_only(st.n, W, S, np.zeros(q)), p)
    pen_rows = np.r_[np.ones(p), np.zeros(q - p)]
    bohning = _factor(S / (2.0 * W) + alpha * np.diag(pen_rows))
    # Newton: curvature S/(2W) on the shift of every class by one vector, along which the loss is
    # flat and the gradient zero — it makes the system definite and changes no centred step
    shift = np.kron(np.full((K, K), 1.0 / K), S / (2.0 * W)) if newton else None
    pen_diag = np.tile(pen_rows, K)

    def pen(T):
        return penalty.value(T[:p].ravel())

    def residual(G, T):
        g = G / W
        g[:p] = penalty.optimality(T[:p].ravel(), g[:p].ravel(), alpha).reshape(p, K)
        return np.abs(g)

    d = np.sqrt(np.maximum(np.diag(S), 0.0))  # the gradient's rounding floor (see gradient_floor)

    def floor(T):
        eps = (1.0 + math.sqrt(q * K)) * np.finfo(np.float64).eps
        return (eps * d * float(d @ np.abs(T).sum(axis=1)) / W)[:, None]

    def centred(step):
        return step - step.mean(axis=1, keepdims=True)

    # the exact solvers' order: the coefficients row by row (as the penalty sees them), then the
    # intercepts; order[m] is the class-major index of entry m
    order = np.array([k * q + j for j in range(p) for k in range(K)]
                     + ([k * q + p for k in range(K)] if q > p else []), dtype=np.intp)
    # with the lasso's kinks the best shift of a row is not its mean, and a step must be free to
    # move along it: the penalized systems keep only a trace of the shift curvature (1e-8 of it:
    # enough to pin the intercepts' common shift, where loss and penalty are both flat). Measured
    # on wine (l1, α = 2/n): Newton 8 iterations to tol 1e-10; with the whole shift curvature
    # more than 1000, each step held back along the shift the lasso needs.
    trace_shift = 1e-8 * np.kron(np.full((K, K), 1.0 / K), S / (2.0 * W))
    bohning_matrix = (np.kron(0.5 * (np.eye(K) - 1.0 / K), S / W) + trace_shift) if exact else None

    def penalized_step(T, G, A):
        """argmin over Z of ⟨G/W, Z − T⟩ + ½ vec(Z − T)ᵀ A vec(Z − T) + α P(Z), A class-major, each
        row then at its best shift: the step Z − T."""
        A_m = A[np.ix_(order, order)]
        t = T.ravel(order="F")[order]
        z = penalty.solve_exact(A_m, A_m @ t - (G / W).ravel(order="F")[order], t, alpha, p * K)
        Z = np.empty(q * K)
        Z[order] = z
        return recentred(Z.reshape((q, K), order="F"), user_penalty, p) - T

    def bohning_step(T, G):
        if exact:
            return penalized_step(T, G, bohning_matrix)
        return centred(-bohning(G / W + alpha * pen_rows[:, None] * T))

    def newton_step(T, G, H):
        if exact:
            return penalized_step(T, G, H / W + trace_shift)
        A = H / W + shift + alpha * np.diag(pen_diag)
        rhs = (G / W + alpha * pen_rows[:, None] * T).ravel(order="F")  # class-major, as H
        try:
            step = -scipy.linalg.cho_solve(scipy.linalg.cho_factor(A, lower=False), rhs)
        except np.linalg.LinAlgError:
            # singular (α = 0 with collinear or constant columns): the least-squares step, said once
            if not warned_singular:
                warned_singular.append(True)
                warnings.warn(
                    "the Newton system of the multinomial fit is singular (alpha = 0 with collinear or "
                    "constant columns, or classes the features separate?); using least-squares "
                    "steps. Set alpha > 0 for a unique solution.", SingularSystemWarning, stacklevel=4)
            step = -scipy.linalg.lstsq(A, rhs, lapack_driver="gelsd")[0]
        return centred(step.reshape((q, K), order="F"))

    warned_singular: list[bool] = []

    F = float(st.loss[0] / W + alpha * pen(theta))
    grad = st.grad.copy()
    hess = st.gram if newton else None
    history: list[IterationRecord] = []

    def record(it, F_new, change, G, T, seconds, restarted):
        r = residual(G, T)
        resolved = r[~(r <= floor(T))]  # (a NaN is not resolved: it fails the test)
        rec = IterationRecord(it, F_new, change, float(r.max()), n_passes, seconds,
                              time.perf_counter() - started, restarted,
                              float(resolved.max()) if resolved.size else 0.0)
        history.append(rec)
        if callback is not None:
            callback(rec)
        return rec

    def change_of(st, j, point):
        """F(point) − F(Θ) for point j ≥ 1 of the pass (+inf where it overflowed)."""
        dF = float(st.loss_delta[j - 1] / W
                   + alpha * penalty.value_difference(point[:p].ravel(), theta[:p].ravel()))
        return dF if math.isfinite(dF) else math.inf

    record(0, F, math.nan, grad, theta, 0.0, False)
    expand, expand_grad = theta, grad
    t, it, n_restarts, restarted = _next_t(1.0), 0, 0, False
    converged = stalled = False
    stopped = None
    while it < config.max_iter:
        t0 = time.perf_counter()
        if newton:
            step = newton_step(theta, grad, hess) if hess is not None else None
            from_newton = step is not None
            if step is None:
                step = bohning_step(theta, grad)
            candidate = theta + step
            if np.array_equal(candidate, theta):
                stalled = True
                break
            st = yield Request(np.column_stack([theta, candidate]), candidate, hessian=True,
                               reference_known=True, classes=K)
            n_passes += 1
            dF = change_of(st, 1, candidate)
            new_hess = st.gram
            new_grad = st.grad[:, K:2 * K]
            if (dF > 0 or not np.isfinite(new_grad).all()) and from_newton:
                # the full Newton step raised F: one pass at its half and quarter
                half, quarter = theta + 0.5 * step, theta + 0.25 * step
                if exact:  # each at its rows' best shifts, as every candidate of these penalties
                    half, quarter = recentred(half, user_penalty, p), recentred(quarter, user_penalty, p)
                st = yield Request(np.column_stack([theta, half, quarter]), half, hessian=True,
                                   reference_known=True, classes=K)
                n_passes += 1
                dF = math.inf
                for j, point in ((1, half), (2, quarter)):
                    dj = change_of(st, j, point)
                    gj = st.grad[:, j * K:(j + 1) * K]
                    if dj <= 0 and np.isfinite(gj).all():
                        dF, candidate, new_grad = dj, point, gj
                        # the half step's Hessian serves the quarter step too (checked next pass)
                        new_hess = st.gram if np.isfinite(st.gram).all() else None
                        break
                if dF > 0:
                    # none lowered F: the bound's step from Θ, which cannot raise it
                    candidate = theta + bohning_step(theta, grad)
                    st = yield Request(np.column_stack([theta, candidate]), candidate, hessian=True,
                                       reference_known=True, classes=K)
                    n_passes += 1
                    n_restarts += 1
                    restarted = True
                    dF, new_grad = change_of(st, 1, candidate), st.grad[:, K:2 * K]
                    new_hess = st.gram if np.isfinite(st.gram).all() else None
            if dF > 0:
                stalled = True  # the bound's step did not lower F: the rounding floor
                break
            it += 1
            F_new = F + dF
            change = -dF / max(abs(F_new), np.finfo(float).tiny)
            theta, F, grad, hess = candidate, F_new, new_grad.copy(), new_hess
            rec = record(it, F, change, grad, theta, time.perf_counter() - t0, restarted)
            restarted = False
        else:
            plain = expand is theta
            candidate = expand + bohning_step(expand, expand_grad)
            if np.array_equal(candidate, theta):
                if plain:
                    stalled = True
                    break
                expand, expand_grad, t = theta, grad, _next_t(1.0)
                continue
            if config.accelerated:
                t_next = _next_t(t)
                momentum = (t - 1.0) / t_next
            else:
                t_next, momentum = 1.0, 0.0
            next_expand = candidate + momentum * (candidate - theta) if momentum else candidate
            points = [theta, candidate] + ([next_expand] if momentum else [])
            st = yield Request(np.column_stack(points), reference_known=True, classes=K)
            n_passes += 1
            dF = change_of(st, 1, candidate)
            if not math.isfinite(dF):
                raise FloatingPointError(f"the objective change at iteration {it + 1} is {dF}")
            if dF > 0 and not config.accepts_rises:
                if plain:
                    stalled = True  # an MM step that does not lower F: the rounding floor
                    break
                n_restarts += 1
                restarted = True
                expand, expand_grad, t = theta, grad, _next_t(1.0)
                continue
            it += 1
            F_new = F + dF
            change = -dF / max(abs(F_new), np.finfo(float).tiny)
            grad = st.grad[:, K:2 * K].copy()
            theta, F = candidate, F_new
            rec = record(it, F, change, grad, theta, time.perf_counter() - t0, restarted)
            restarted = False
            expand = next_expand if momentum else theta
            expand_grad = st.grad[:, 2 * K:3 * K].copy() if momentum else grad
            t = t_next
        within = rec.grad_resolved <= config.tol * max(1.0, abs(F))
        if within and abs(change) <= config.tol:
            converged = True
            break
        if stop is not None and it < config.max_iter and (stopped := stop.reason()) is not None:
            break
    if stalled:
        last = history[-1]
        converged = last.grad_resolved <= config.tol * max(1.0, abs(F))
    result = MultinomialResult(
        coef=theta[:p].T.copy(), intercept=theta[p].copy() if fit_intercept else np.zeros(K),
        n_iter=it, n_passes=n_passes, objective=F, grad_norm=history[-1].grad_norm,
        converged=converged, n_restarts=n_restarts, history=history, stopped=stopped)
    if not converged:
        why = ("a stop was requested" if stopped == "interrupted"
               else "the time limit max_time was reached" if stopped == "max_time"
               else "the objective reached its floating-point floor" if stalled
               else f"max_iter={config.max_iter} was reached")
        warnings.warn(f"SM-EM (multinomial) did not meet tol={config.tol:g} after {it} iterations: "
                      f"{why} (last relative change {history[-1].change:.3g}, gradient norm "
                      f"{history[-1].grad_norm:.3g}); increase max_iter or tol", ConvergenceWarning,
                      stacklevel=3)
    return result


def fit_multinomial(engine, n_classes: int, penalty: Penalty, alpha: float, *, fit_intercept: bool = True,
                    config=None, mode: str = "newton",
                    callback: Callable[[IterationRecord], None] | None = None,
                    stop=None) -> MultinomialResult:
    """Minimize the multinomial F over ``engine`` (its y: class indices 0 … K − 1 as floats) in
    ``mode`` ("newton" or "fixed", see :func:`multinomial_iterations`)."""
    config = SolverConfig() if config is None else config
    stop = Stop.after(config.max_time) if stop is None else stop
    fit = multinomial_iterations(n_classes, penalty, alpha, engine.n_features,
                                 fit_intercept=fit_intercept, config=config, mode=mode, callback=callback,
                                 stop=stop)
    return run_lockstep(engine, Multinomial(), fit_intercept, [fit])[0]


def _factor(M: np.ndarray):
    """A solver for M·X = R (M symmetric positive semi-definite, q×q): Cholesky, or — singular
    M (α = 0 with collinear or constant columns) — the minimum-norm least-squares solution, with a
    warning."""
    try:
        factor = scipy.linalg.cho_factor(M, lower=False)
        return lambda R: scipy.linalg.cho_solve(factor, R)
    except np.linalg.LinAlgError:
        warnings.warn(
            "the M-step matrix Σ s x̃x̃ᵀ/(2W) + α·E is singular (alpha = 0 with collinear or constant "
            "columns?); using the minimum-norm least-squares solution. Set alpha > 0 for a unique "
            "solution.", SingularSystemWarning, stacklevel=4)
        pinv = scipy.linalg.pinvh(M)
        return lambda R: pinv @ R
