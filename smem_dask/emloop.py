"""The SM-EM loop as a short sequence of named steps over one state object.

:class:`EMLoop` holds what a fit does not change as it runs (loss, penalty, α, settings, the
curvature mode, the stopping rule) and one :class:`~smem_dask.iterate.Iterate` that it changes. Each
step that reads data is a generator: it yields a :class:`~smem_dask.blockstats.Request` per data pass and
receives the summed :class:`~smem_dask.blockstats.BlockStats`, so the loop never touches data. One
iteration (:meth:`EMLoop.iteration`) is::

    propose    the M-step from the current system (or a halved plain step)
    evaluate   one pass at the candidate: F's exact change, ∇F there, the next system
    rise?      a candidate that raises F is narrowed (clamp), halved, restarted or ends the fit
    accept     the candidate becomes β; momentum; the curvature mode holds its Gram
    stop?      converged, certified, unconverged at a floor, or stopped early (solver.Stop)

:meth:`EMLoop.start` (the first pass, or a warm start) comes before the iterations, and
:meth:`EMLoop.finish` after them. The curvature mode (:mod:`smem_dask.curvature`) says which pass
each step needs; the duality-gap certificate of hinge and quantile (:mod:`smem_dask.certificate`)
is :meth:`EMLoop.certify`; the E-step clamp of those losses is
:class:`~smem_dask.curvature.Clamp`. See
docs/method.md, "Acceleration and restarts" and "Stopping".

No dask here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .certificate import dual_correction, duality_gap, smoothing_width
from .curvature import Clamp, initial_clamp, make_curvature
from .iterate import (
    FitResult,
    Iterate,
    IterationRecord,
    WarmStart,
    gradient_floor,
    m_step,
    objective,
    objective_change,
    optimality,
)
from .losses import Loss
from .penalties import Penalty, em_floor
from .stats import DualStats, Request, check_gram_range

__all__ = ["EMLoop"]

def _next_t(t: float) -> float:
    return 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * t * t))


class EMLoop:
    """One SM-EM fit as named steps (see the module docstring); :meth:`run` is the generator.

    Parameters as for :func:`smem_dask.solver.em_iterations`; ``config`` is a validated
    ``SolverConfig`` and ``stop`` a ``Stop``. The constructor checks α, β0 and the combination of
    loss, penalty and settings, and reads no data.
    """

    def __init__(self, loss: Loss, penalty: Penalty, alpha: float, n_features: int, *,
                 fit_intercept: bool, config, beta0: np.ndarray | None,
                 callback: Callable[[IterationRecord], None] | None, warm: WarmStart | None, stop):
        alpha = float(alpha)
        if not (math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha!r}")
        if getattr(loss, "multiclass", False):
            raise ValueError(f"the {loss.name} loss has K coefficient vectors and its own loop: fit it "
                             "with smem_dask.multinomial.fit_multinomial (or SMEMClassifier)")
        self.p, self.q = n_features, n_features + int(fit_intercept)
        if warm is not None:
            beta0 = warm.beta
        beta = np.zeros(self.q) if beta0 is None else np.asarray(beta0, dtype=np.float64).copy()
        if beta.shape != (self.q,):
            raise ValueError(f"beta0 must have shape ({self.q},), got {beta.shape}")
        config.check(loss, penalty)
        config = config.resolved(loss, penalty)
        self.loss, self.penalty, self.alpha, self.config = loss, penalty, alpha, config
        self.fit_intercept, self.callback, self.warm, self.stop = fit_intercept, callback, warm, stop
        self.beta0 = beta
        self.curv = make_curvature(config.curvature, loss, warm)
        # fixed curvature with ridge: one eigendecomposition solves every α (FixedCurvature.solve_ridge)
        self.ridge_fixed = (config.fixed_curvature and penalty.quadratic and not config.exact_penalty
                            and alpha > 0)
        # hinge, quantile: converged only on a duality-gap certificate (see `certify`)
        self.nonsmooth = not loss.smooth
        self.certifiable = self.nonsmooth and (alpha == 0 or penalty.has_conjugate)
        self.histogram = 1 if self.nonsmooth else None  # the residual histogram at each candidate
        self.clamp = Clamp()
        self.state: Iterate | None = None
        self.converged = self.stalled = False
        self.stopped: str | None = None  # why a stop (Stop.reason) ended the loop
        # certificates: the last gap, attempts made, the iteration before which no attempt follows a
        # small change, the next scheduled attempt (16, then twice the iteration of the latest one),
        # and whether one was made at the current β
        self.gap, self.n_attempts, self.next_attempt, self.scheduled = math.inf, 0, 0, 16
        self.attempted_here = False
        self.started = time.perf_counter()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self):
        """The whole fit: start, iterations until one ends it, finish. Returns the FitResult and
        the ConvergenceWarning message (None when converged)."""
        yield from self.start()
        while self.state.it < self.config.max_iter:
            if (yield from self.iteration()):
                break
        return (yield from self.finish())

    def iteration(self):
        """One EM iteration (see the module docstring); True when the fit ends after it."""
        s = self.state
        candidate = self.propose()
        plain = s.plain()  # candidate = M(β): EM cannot increase F here
        if np.array_equal(candidate, s.beta):
            return (yield from self.unchanged(plain))
        if self.config.accelerated and self.curv.momentum:
            t_next = _next_t(s.t)
            momentum = (s.t - 1.0) / t_next
        else:
            t_next, momentum = 1.0, 0.0
        next_expand = candidate if momentum == 0.0 else candidate + momentum * (candidate - s.beta)
        evaluated = yield from self.evaluate(candidate, next_expand, momentum == 0.0)
        if evaluated[0] > 0 and not plain and (shorter := self.curv.shorter(s.beta, candidate)):
            # Newton: the full step raised F; one pass tries the shorter steps
            found = yield from self.line_search(shorter)
            if found is not None:
                evaluated, candidate = found
                next_expand = candidate
        if evaluated[0] > 0:
            verdict = yield from self.rise(candidate, plain)
            if verdict is not None:
                return verdict
        rec = self.accept(candidate, next_expand, momentum == 0.0, t_next, *evaluated)
        return (yield from self.after_accept(rec))

    # -- the steps --------------------------------------------------------------------------------
    def start(self):
        """The first pass (loss, gradient and system at β0), or a warm start's statistics; records
        iteration 0."""
        beta, p, q, curv = self.beta0, self.p, self.q, self.curv
        t0 = time.perf_counter()
        n_passes, majorizes, hist, at_beta = 0, True, None, True
        if curv.needs_first_pass(self.warm):
            # the system there is the E-step's (fixed curvature: b·Σ s x̃x̃ᵀ)
            first_pass = Request(beta[:, None], beta, histogram=0 if self.nonsmooth else None,
                                 **curv.system_args())
            stats = yield first_pass
            n_passes += 1
            if not beta.any():  # at β = 0 every loss has moderate weights ω
                check_gram_range(stats, p)
            loss_sum, loss_grad, expand = float(stats.loss[0]), stats.grad[:, 0].copy(), beta
            if self.nonsmooth:
                hist = DualStats.parse(stats.extra, q, first_pass).hist
                self.clamp.eps = initial_clamp(hist, stats.n)
            curv.hold(stats, p)
            majorizes = curv.majorizes_after(True)  # (the Hessian's system is not a majorizer)
        else:
            loss_sum, loss_grad = self.warm.loss_sum, self.warm.loss_grad.copy()
            stats, expand, majorizes = curv.resume(self.warm, beta, loss_grad, p)
            at_beta = np.array_equal(expand, beta)  # resume expands at β when the warm point is β
        self.W, self.n_rows = stats.weight, stats.n
        F = objective(loss_sum, self.W, beta, self.penalty, self.alpha, p)
        self.state = Iterate(beta, F, loss_sum, loss_grad, stats, expand,
                             at_beta=at_beta, majorizes=majorizes,
                             t=self.reset_t(), n_passes=n_passes, hist=hist)
        self.record(0, F, math.nan, self.residual(loss_grad, beta), time.perf_counter() - t0, False,
                    stats, beta)

    def propose(self) -> np.ndarray:
        """The candidate: the M-step from the current system, or the halved step set by :meth:`rise`."""
        s = self.state
        if s.halved is not None:
            candidate, s.halved = s.halved, None
            return candidate
        if s.proposed is not None:  # solved already for the stopping test (predicted_decrease)
            candidate, s.proposed = s.proposed, None
            return candidate
        # from β, where the loss gradient is known and the majorizer tangent (smooth losses), the
        # step is solved for as a correction to β: iterative refinement (see m_step)
        refine = self.loss.smooth and s.from_beta()
        if self.ridge_fixed:
            if refine:
                lam = self.W * self.alpha * np.r_[s.beta[:self.p], np.zeros(self.q - self.p)]
                return s.beta - self.curv.gram.solve_ridge(s.loss_grad + lam, self.alpha)
            return self.curv.gram.solve_ridge(s.system.rhs, self.alpha)
        return m_step(s.system, s.expand, self.penalty, self.alpha, self.p,
                      exact=self.config.exact_penalty, loss_grad=s.loss_grad if refine else None)

    def evaluate(self, candidate: np.ndarray, next_expand: np.ndarray, expand_at_candidate: bool):
        """One pass: F(candidate) − F(β) per observation, ∇F(candidate) and the system at
        ``next_expand``. Returns (ΔF, the loss change, the loss gradient at the candidate, the next
        system, the pass's stats, the request, whether the pass refreshed a held Gram). In Newton's
        passes a candidate that overflows float64 anywhere is a rise: ΔF = +inf."""
        s, curv = self.state, self.curv
        # cached curvature: the pass of accepted iteration 1, 2, 4, 8, … also refreshes the Gram
        # (its E-step at next_expand), as the Gram ages while β moves; rises refresh it too
        refresh = curv.refreshes(s.it)
        if curv.gradient_pass(s.it):
            # a gradient pass; the system at next_expand needs only the gradient there
            points = [s.beta, candidate] + ([] if expand_at_candidate else [next_expand])
            request = Request(np.column_stack(points), reference_known=True, histogram=self.histogram)
            new_stats = yield from self._pass(request)
            next_system = curv.system_from_gradient(next_expand, new_stats.grad[:, -1])
        else:
            # the loss and gradient at β are known from the previous pass: not recomputed
            request = Request(np.column_stack([s.beta, candidate]), next_expand, reference_known=True,
                              histogram=self.histogram, clamp=self.clamp.value(), **curv.system_args())
            new_stats = next_system = yield from self._pass(request)
        # a Newton pass (the engine let its overflow through): overflow at the candidate is a rise,
        # which a shorter step, a halving (Poisson's local bound) or a restart answers
        tolerant = request.overflow_is_rise
        if tolerant and not new_stats.is_finite():  # (a Newton pass's system is new_stats itself)
            dF = math.inf
        else:
            dF = self.change(new_stats, candidate, 0, check=not tolerant)
        return (dF, float(new_stats.loss_delta[0]), new_stats.grad[:, 1].copy(), next_system, new_stats,
                request, refresh)

    def change(self, stats, point: np.ndarray, j: int, check: bool = True) -> float:
        """F(point) − F(β), ``point`` being evaluation point j + 1 of the pass ``stats``: an error
        when not finite (``check``), else +inf (a Newton step that overflowed rises)."""
        dF = objective_change(stats, point, self.state.beta, self.penalty, self.alpha, self.p, j + 1)
        if math.isfinite(dF):
            return dF
        if check:
            raise FloatingPointError(f"the objective change at iteration {self.state.it + 1} is {dF}")
        return math.inf

    def line_search(self, shorter: list[np.ndarray]):
        """The full Newton step raised F: one pass at the ``shorter`` steps (their loss changes and
        gradients, the Hessian's system at the first). The first that lowers F is taken, with that
        system (the first) or the same Gram and its own gradient (the others). Returns (the
        evaluation, as :meth:`evaluate`'s, the point), or None when none lowers F."""
        s, curv = self.state, self.curv
        request = Request(np.column_stack([s.beta, *shorter]), shorter[0], reference_known=True,
                          **curv.system_args())
        stats = yield from self._pass(request)
        if not (np.isfinite(stats.gram).all() and np.isfinite(stats.rhs).all()):
            return None  # the Hessian at the first shorter step overflowed: no system
        for j, point in enumerate(shorter):
            dF, grad = self.change(stats, point, j, check=False), stats.grad[:, 1 + j].copy()
            if dF <= 0 and np.isfinite(grad).all():
                if j == 0:
                    system = stats
                else:
                    curv.hold(stats, self.p)
                    system = curv.system_from_gradient(point, grad)
                return (dF, float(stats.loss_delta[j]), grad, system, stats, request, False), point
        return None

    def rise(self, candidate: np.ndarray, plain: bool):
        """A candidate that raises F. Returns None to accept it all the same (plain Nesterov), True
        when the fit ends here, False when the loop goes on without it (narrowed clamp, halved
        step, restart, or a polish that moved β)."""
        s, acc = self.state, self.config
        if self.clamp.wide and (plain or acc.accepts_rises):
            # with ε above |t − η| of some row the quadratic no longer touches the loss at β, so a
            # plain step may raise F: narrow ε and re-form the system at β (at most log(ε/CLAMP_EPS)
            # times before the clamp is CLAMP_EPS again and the rules below apply). Plain Nesterov,
            # which otherwise accepts rises, restarts here too: momentum on a majorizer that does
            # not touch F can diverge
            self.clamp.narrow()
            yield from self.system_at_beta()
            return False
        if not acc.accepts_rises and plain:
            if self.loss.local_majorizer and s.n_halvings < 60:
                # the step left the region where the E-step bound holds: halve it
                s.n_halvings += 1
                s.halved = s.beta + 0.5 * (candidate - s.beta)
                return False
            # a plain EM step that does not decrease F: rounding floor; keep β
            return (yield from self.at_floor())
        if acc.restarts or (self.curv.stale and not plain):
            # discard the candidate, form the system at the current β, reset the momentum
            # (cached curvature: always, as a stale Gram need not majorize; the E-step Gram at β
            # becomes the new cache)
            s.n_restarts += 1
            s.restarted = True
            yield from self.system_at_beta()
            return False
        return None

    def unchanged(self, plain: bool):
        """The M-step left β bitwise unchanged: nothing to evaluate. True when the fit ends."""
        if plain and self.clamp.wide:
            # a fixed point of the map smoothed at ε, not of F's: narrow ε, re-form the system at β
            self.clamp.narrow()
        elif plain:
            # an exact fixed point of the EM map: nothing left to gain but a certificate's polish
            return (yield from self.at_floor())
        # (or a step from elsewhere — an extrapolated point, a stale Gram — left β unchanged): the
        # next step is the plain one from β
        yield from self.system_at_beta()
        return False

    def accept(self, candidate, next_expand, at_candidate, t_next, dF, loss_change, loss_grad, next_system,
               new_stats, request, refresh) -> IterationRecord:
        """The candidate becomes β; the pass's system is the next M-step's; the momentum moves on."""
        s = self.state
        s.it += 1
        s.n_halvings = 0
        # the pass returned the change of the loss sum from β (point 0), not the sum itself
        loss_sum = s.loss_sum + loss_change
        g = self.residual(loss_grad, candidate)
        F_new = s.F + dF
        change = -dF / max(abs(F_new), np.finfo(float).tiny)
        rec = self.record(s.it, F_new, change, g, s.pass_seconds, s.restarted, next_system, candidate)
        s.origin = s.expand
        s.move(candidate, F_new, loss_sum, loss_grad, next_system, next_expand, at_candidate)
        s.t, s.restarted, s.pass_seconds = t_next, False, 0.0
        self.attempted_here = False
        s.majorizes = self.curv.majorizes_after(refresh)
        if refresh:
            self.curv.hold(s.system, self.p)
        if self.nonsmooth:
            s.hist = DualStats.parse(new_stats.extra, self.q, request).hist
            # continuation: once the step's decrease of F is small beside ε, narrow ε
            self.clamp.after_step(-dF)
        return rec

    def after_accept(self, rec: IterationRecord):
        """Whether the fit ends after an accepted iterate: converged (smooth losses), no certificate
        possible, certified, or stopped early."""
        tol = self.config.tol
        small = self.residual_ok(rec) and (abs(rec.change) <= tol
                                           or self.predicted_decrease() <= tol * abs(rec.objective))
        if small and not self.nonsmooth:
            self.converged = True
            return True
        if small and not self.certifiable:
            return True  # no certificate exists: stop as before, unconverged
        s = self.state
        if self.certifiable and ((small and s.it >= self.next_attempt) or s.it >= self.scheduled):
            if (yield from self.attempts()):
                self.converged = True
                return True
            self.next_attempt = s.it + min(2**self.n_attempts, 64)
            self.scheduled = max(self.scheduled, 2 * s.it)
        if s.it < self.config.max_iter and (stopped := self.stop.reason()) is not None:
            self.stopped = stopped
            return True  # no certificate attempt after the loop either: a stop is for now
        return False

    def predicted_decrease(self) -> float:
        """Newton's model of F − F* at β: the decrease its next step promises, −[∇ᵀd + ½dᵀHd]/W −
        α(P(β + d) − P(β)) with the Hessian system at β (+inf in the other modes, whose quadratics
        overstate the curvature). With the gradient test passed, a promise below tol·|F| ends the fit
        one pass before the change of F would show it; the step is kept for the next iteration."""
        s = self.state
        if not (self.curv.predicts and s.from_beta() and not s.majorizes):
            return math.inf
        s.proposed = self.propose()
        d = s.proposed - s.beta
        model = float(s.loss_grad @ d + 0.5 * d @ (s.system.gram @ d)) / self.W
        return -(model + self.alpha * self.penalty.value_difference(s.proposed[:self.p], s.beta[:self.p]))

    def system_at_beta(self):
        """Make the next step the plain one from β: the E-step system at β (one pass; none under
        fixed curvature, where the gradient at β is known; cached curvature caches its Gram) and
        the momentum reset."""
        s, curv = self.state, self.curv
        s.majorizes, s.proposed = True, None
        if curv.systems_from_gradient:
            system = curv.system_from_gradient(s.beta, s.loss_grad)
        else:
            system = yield from self._pass(Request(s.beta[:, None], s.beta, clamp=self.clamp.value()))
            if curv.stale:
                curv.hold(system, self.p)
        s.system, s.expand, s.at_beta, s.t = system, s.beta, True, _next_t(1.0)

    def finish(self):
        """After the last iteration: a certificate attempt at ``max_iter`` (hinge, quantile), the
        residual test at a floor, and the result with the warning message (None: converged)."""
        if (self.certifiable and not self.converged and not self.attempted_here
                and self.stopped is None):
            self.converged = yield from self.certify()  # max_iter reached: certify, or say how far off β is
        if self.stalled and not self.nonsmooth:
            # at the floor the change test is moot; smooth losses must still pass the residual test
            self.converged = self.residual_ok(self.state.history[-1])
        return self.result(), (None if self.converged else self.unconverged_message())

    # -- certificates (hinge, quantile) -----------------------------------------------------------
    def at_floor(self):
        """EM cannot lower F from β: a certificate attempt, unless one was made at this β. True when
        the fit ends here (certified, or a floor without a certificate); False: the polish moved β."""
        if self.certifiable and not self.attempted_here:
            before = self.state.it
            self.converged = yield from self.attempts()
            if self.converged or self.state.it > before:
                return self.converged
        self.stalled = True
        return True

    def attempts(self):
        """Certificate attempts at β, again after each accepted polish (at most three)."""
        for _ in range(3):
            before = self.state.it
            if (yield from self.certify()):
                return True
            if self.state.it == before:
                return False
        return False

    def certify(self):
        """One certificate attempt at β (two passes); True when the duality gap is ≤ tol·max(1, |F|).

        Pass 1: the dual a(δ) of the loss smoothed at width δ (:func:`smoothing_width`) and, over
        the rows off the box edges, the slack-weighted Gram G_w = Σ s w x̃x̃ᵀ and Σ s w t x̃. Its gap
        may already certify. Else the client solves G_w λ = target − Σ s a x̃ on the constrained
        coordinates (:func:`dual_correction`), and pass 2 sums the corrected dual
        clip(a(δ) + w·x̃ᵀλ, lo, hi), exactly. The same pass evaluates the *polish* candidate
        argmin_K Σ s w (t − x̃ᵀβ̃)² (the vertex of the rows at the kink), with its E-step system: it
        replaces β when it lowers F, checked by the exact objective change as for any iterate.
        """
        s, p, q = self.state, self.p, self.q
        self.n_attempts += 1
        self.attempted_here = True
        width = smoothing_width(s.hist, q)
        first = Request(s.beta, reference_known=True, dual_point=s.beta, dual_width=width,
                        dual_ref=s.origin)
        dual = DualStats.parse((yield from self._pass(first)).extra, q, first)
        self.gap = self.dual_gap(dual, s.F)
        if self.within_tol(self.gap, s.F):
            return True
        lower = s.F - self.gap  # D of the first dual
        lam, point = dual_correction(dual, self.W, s.beta, self.penalty, self.alpha, p, self.zero_tol(s.beta))
        second = Request(np.column_stack([s.beta, point]), point, reference_known=True, dual_point=s.beta,
                         dual_width=width, dual_lam=lam, histogram=1, clamp=self.clamp.value())
        st = yield from self._pass(second)
        dF = objective_change(st, point, s.beta, self.penalty, self.alpha, p)
        dual = DualStats.parse(st.extra, q, second)
        D = max(lower, s.F - self.dual_gap(dual, s.F))  # the best bound on F*
        # the ridge vertex holds the rows at the kink on it, where the clamped E-step then pins them
        # (weights 1/2ε): it is taken only when it ends the fit certified
        tentative = self.alpha > 0 and self.penalty.quadratic
        if (dF < 0 and s.it < self.config.max_iter
                and (not tentative or self.within_tol(s.F + dF - D, s.F + dF))):
            self.polish(point, dF, st, dual)
        self.gap = s.F - D
        return self.within_tol(self.gap, s.F)

    def polish(self, point: np.ndarray, dF: float, st, dual: DualStats) -> None:
        """The polished point becomes the iterate (not an M-step's: no EM dual, momentum reset)."""
        s = self.state
        s.it += 1
        loss_sum, loss_grad = s.loss_sum + float(st.loss_delta[0]), st.grad[:, 1].copy()
        F_new = s.F + dF
        self.record(s.it, F_new, -dF / max(abs(F_new), np.finfo(float).tiny),
                    self.residual(loss_grad, point), s.pass_seconds, False, st, point)
        s.move(point, F_new, loss_sum, loss_grad, st, point, True)
        s.t, s.origin = self.reset_t(), None
        self.attempted_here = False
        if self.curv.stale:
            self.curv.hold(st, self.p)  # the polish pass formed the E-step system at its point
        s.majorizes = True
        s.pass_seconds = 0.0
        s.hist = dual.hist

    def _pass(self, request: Request):
        """One data pass for ``request``, counted and timed (every pass of the loop but the first)."""
        t0 = time.perf_counter()
        stats = yield request
        self.state.n_passes += 1
        self.state.pass_seconds += time.perf_counter() - t0
        return stats

    def dual_gap(self, dual: DualStats, F: float) -> float:
        return duality_gap(dual, F, self.W, self.n_rows, self.penalty, self.alpha, self.p)

    # -- measures ---------------------------------------------------------------------------------
    def reset_t(self) -> float:
        """t_1 of a fresh momentum sequence (m_0 = 0)."""
        return _next_t(1.0) if self.config.accelerated else 1.0

    def zero_tol(self, point: np.ndarray) -> float:
        """Below this a coefficient counts as zero: the EM weights' clamp (exact solvers: 0)."""
        return 0.0 if self.config.exact_penalty else em_floor(point[:self.p])

    def residual(self, loss_grad: np.ndarray, point: np.ndarray) -> np.ndarray:
        return optimality(loss_grad, self.W, point, self.penalty, self.alpha, self.p, self.zero_tol(point))

    def within_tol(self, value: float, F_at: float) -> bool:
        """The tolerance of every optimality measure: ``value`` ≤ tol·max(1, |F|)."""
        return value <= self.config.tol * max(1.0, abs(F_at))

    def residual_ok(self, rec: IterationRecord) -> bool:
        """Smooth losses must have a small optimality residual (above its floating-point floor);
        non-smooth ones are not asked."""
        return not self.loss.smooth or self.within_tol(rec.grad_resolved, rec.objective)

    def record(self, it, F, change, g, pass_seconds, restarted, system, point) -> IterationRecord:
        """Record an accepted iterate (and tell the callback)."""
        g = np.abs(g)
        resolved = g[g > gradient_floor(system.gram, system.weight, point)]
        rec = IterationRecord(
            it, F, change, float(np.max(g)) if g.size else 0.0,
            self.state.n_passes, pass_seconds, time.perf_counter() - self.started, restarted,
            float(np.max(resolved)) if resolved.size else 0.0,
        )
        self.state.history.append(rec)
        if self.callback is not None:
            self.callback(rec)
        return rec

    # -- the end ----------------------------------------------------------------------------------
    def result(self) -> FitResult:
        s, p = self.state, self.p
        return FitResult(
            coef=s.beta[:p].copy(),
            intercept=float(s.beta[p]) if self.fit_intercept else 0.0,
            n_iter=s.it,
            n_passes=s.n_passes,
            objective=s.F,
            grad_norm=s.history[-1].grad_norm,
            converged=self.converged,
            n_restarts=s.n_restarts,
            history=s.history,
            warm=WarmStart(s.beta.copy(), s.loss_sum, s.loss_grad, s.system, s.expand.copy(),
                           self.curv.warm_gram()),
            duality_gap=self.gap if self.certifiable else math.nan,
            stopped=self.stopped,
        )

    def unconverged_message(self) -> str:
        """The ConvergenceWarning of a fit that ends unconverged: why, how far off, what to do."""
        s, stopped, cfg = self.state, self.stopped, self.config
        why = (
            self.stop.describe(stopped) if stopped is not None
            else "the EM map reached a fixed point or the floating-point floor of the objective"
            if self.stalled
            else "the objective stopped changing" if self.nonsmooth and s.it < cfg.max_iter
            else f"max_iter={cfg.max_iter} was reached"
        )
        if self.certifiable and stopped is not None and not self.attempted_here:
            state = "no certificate was attempted at the last iterate"
        elif self.certifiable:
            gap = self.gap
            state = (f"duality gap {gap:.3g} (relative {gap / max(1.0, abs(s.F)):.3g}) above the tolerance"
                     if math.isfinite(gap) else "duality gap unknown: no dual-feasible point was found at β")
        elif self.nonsmooth:
            state = (f"no optimality certificate exists for the {self.penalty.name} penalty (no convex "
                     f"conjugate), so the {self.loss.name} fit is never certified")
        else:
            state = (f"last relative change {s.history[-1].change:.3g}, gradient norm "
                     f"{s.history[-1].grad_norm:.3g}")
        advice = {None: "increase max_iter or tol", "max_time": "increase max_time"}.get(
            stopped, "its current iterate is returned")
        return (f"SM-EM {'stopped' if stopped else 'did not meet tol=' + format(cfg.tol, 'g')} after "
                f"{s.it} iterations{', unconverged' if stopped else ''}: {why} ({state}); {advice}")
