"""Curvature modes: how the M-step matrix of each EM iteration is formed, one class per mode.

The EM loop (:class:`smem_dask.emloop.EMLoop`) asks its :class:`Curvature` these questions and
nothing else about the mode:

* before the first pass — which bound the pass forms its Gram with (``bound``), and whether a warm
  start saves that pass (:meth:`Curvature.needs_first_pass`, :meth:`Curvature.resume`);
* before each candidate's pass — whether the pass needs the system at the next expansion point or
  only gradients (:meth:`Curvature.gradient_pass`, :meth:`Curvature.refreshes`), which system
  (:meth:`Curvature.system_args`), which shorter steps ride along (:meth:`Curvature.shorter`), whether
  momentum applies (:attr:`Curvature.momentum`), and then the system from a gradient
  (:meth:`Curvature.system_from_gradient`);
* after a pass — which Gram to hold (:meth:`Curvature.hold`) and whether the system it gives is the
  E-step's own majorizer at its point (:meth:`Curvature.majorizes_after`, :attr:`Curvature.stale`);
* at the end — what a warm start of the next fit keeps (:meth:`Curvature.warm_gram`).

See docs/method.md, "Curvature modes", for what each costs. The modes: :class:`Adaptive` (the
loss's E-step every pass), :class:`FixedBound` (the bound ω ≤ b: one Gram b·Σ s x̃x̃ᵀ for the whole fit
or path, gradient-only passes after it), :class:`Cached` (the E-step Gram of the last refresh reused
by gradient-only passes, refreshed at iterations 1, 2, 4, 8, … and whenever F would rise) and
:class:`Newton` (the loss's Hessian, each step checked by the objective in its pass, then its
half and quarter steps, an E-step restart when none lowers F). ``"auto"`` picks one of them
(:func:`auto_curvature`). A new mode is a subclass here and a name in :data:`MODES` (``CURVATURES``
of :mod:`smem_dask.settings` is made from it).

The E-step weights of hinge and quantile, ω = 1/(2·max(|r|, ε)), are bounded by the clamp ε; its
continuation (:class:`Clamp`: wide at the start, narrowed as F stalls) is here too.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .losses import CLAMP_EPS, Loss
from .stats import HIST_DECADES, BlockStats

__all__ = ["AUTO", "Adaptive", "CLAMP_PROGRESS", "CLAMP_SHRINK", "Cached", "Clamp", "Curvature",
           "FixedBound", "FixedCurvature", "MODES", "NEWTON_STEPS", "Newton", "auto_curvature",
           "curvature_bound", "initial_clamp", "make_curvature"]


class FixedCurvature:
    """The fixed-curvature M-step matrix G = b·Σ s x̃x̃ᵀ (independent of β and α; see docs/method.md,
    "Curvature modes").

    ``system(β̃, ∇)`` is the majorizer's system at β̃ from the loss gradient there (no E-step pass).
    ``solve_ridge`` solves (G + W·α·D) x = r for any α with one eigendecomposition, made on first
    use and shared by every fit holding this object: with an intercept (last column, unpenalized)
    it is eliminated first, leaving the Schur complement C = G_pp − g gᵀ/c, whose eigenvectors
    diagonalize C + W·α·I for every α.
    """

    def __init__(self, gram: np.ndarray, weight: float, n_features: int, n_rows: float = 0.0):
        self.gram = np.asarray(gram, dtype=np.float64)
        self.weight = float(weight)
        self.p = int(n_features)
        self.n = float(n_rows)  # rows summed (the certificate's rounding bound needs it)
        self._eig = None

    def pack(self) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        """The Gram as a plain array ``{"gram"}`` and its scalars ``{"weight", "n"}``, for a store."""
        return {"gram": self.gram}, {"weight": self.weight, "n": self.n}

    @classmethod
    def unpack(cls, arrays: dict, scalars: dict, n_features: int) -> FixedCurvature:
        """The inverse of :meth:`pack`."""
        return cls(arrays["gram"], scalars["weight"], n_features, scalars["n"])

    def system(self, expand: np.ndarray, loss_grad: np.ndarray) -> BlockStats:
        return BlockStats.system_only(self.n, self.weight, self.gram, self.gram @ expand - loss_grad)

    def _eigh(self):
        if self._eig is None:
            p, G = self.p, self.gram
            C = G[:p, :p]
            if G.shape[0] > p:
                C = C - np.outer(G[:p, p], G[:p, p]) / G[p, p]
            self._eig = scipy.linalg.eigh(C)
        return self._eig

    def solve_ridge(self, rhs: np.ndarray, alpha: float) -> np.ndarray:
        p, G = self.p, self.gram
        lam, V = self._eigh()
        r = rhs[:p]
        if G.shape[0] > p:
            r = r - G[:p, p] * (rhs[p] / G[p, p])
        x = np.empty_like(rhs)
        x[:p] = V @ ((V.T @ r) / (lam + self.weight * alpha))
        if G.shape[0] > p:
            x[p] = (rhs[p] - G[p, :p] @ x[:p]) / G[p, p]
        return x


def curvature_bound(loss: Loss) -> float:
    """The bound b ≥ ω of a loss, or a clear error when its weights are unbounded."""
    if loss.omega_bound is None:
        raise ValueError(
            f"curvature='fixed' needs a loss with bounded observation weights (logistic, squared, "
            f"huber); the {loss.name} loss has none — use curvature='adaptive'"
        )
    return float(loss.omega_bound)


class Curvature:
    """The E-step curvature (the :class:`Adaptive` mode); subclasses change what they must."""

    #: the bound b the first pass forms its Gram with (None: the E-step weights)
    bound: float | None = None
    #: a held Gram may stop majorizing F as β moves: a rise from a non-plain step restarts
    stale = False
    #: one Gram serves the whole fit and every α of a path (passes after the first carry no Gram)
    one_gram = False
    #: Nesterov momentum applies (the acceleration setting); Newton steps take none
    momentum = True
    #: the system at an accepted β is the loss's own second-order model there, whose next step's
    #: promised decrease estimates F − F* (the stopping test may use it)
    predicts = False

    def system_args(self) -> dict:
        """How a pass forms this mode's system (the :class:`~smem_dask.blockstats.Request` fields):
        the E-step's, or the bound's (``curvature=b``), or the Hessian's (``hessian=True``)."""
        return {"curvature": self.bound}

    def shorter(self, beta: np.ndarray, candidate: np.ndarray) -> list[np.ndarray]:
        """Points on the way from β to a candidate that is not a plain EM step and raised F, tried
        in one more pass: the first that lowers F is accepted (none: the step is discarded)."""
        return []

    def __init__(self, loss: Loss, warm=None):
        #: the Gram held across passes (fixed and cached modes), as a FixedCurvature
        self.gram: FixedCurvature | None = None

    def needs_first_pass(self, warm) -> bool:
        """Whether the fit starts with a pass (a warm start carries the system, or the bound's Gram)."""
        return warm is None

    def hold(self, stats: BlockStats, n_features: int) -> None:
        """A pass formed an E-step (or bound) system: the modes that keep a Gram keep this one."""

    def resume(self, warm, beta: np.ndarray, loss_grad: np.ndarray, n_features: int):
        """(system, its expansion point, whether it is the E-step's own majorizer there) of a warm
        start."""
        expand = beta if np.array_equal(warm.expand, beta) else warm.expand
        return warm.system, expand, True

    def refreshes(self, it: int) -> bool:
        """Whether the pass after ``it`` accepted iterations forms a new Gram to hold."""
        return False

    def gradient_pass(self, it: int) -> bool:
        """Whether that pass computes only gradients (the system then comes from the held Gram)."""
        return False

    @property
    def systems_from_gradient(self) -> bool:
        """Whether the system at β needs no pass (it comes from the held Gram and the gradient)."""
        return False

    def system_from_gradient(self, point: np.ndarray, loss_grad: np.ndarray) -> BlockStats:
        return self.gram.system(point, loss_grad)

    def majorizes_after(self, refreshed: bool) -> bool:
        """Whether the system of an accepted pass is the E-step's own majorizer at its point."""
        return True

    def warm_gram(self) -> FixedCurvature | None:
        """The Gram a warm start of the next fit (a path's next α) reuses."""
        return None


class Adaptive(Curvature):
    """The loss's own E-step at every pass: the fewest passes, a q×q Gram in each."""


class FixedBound(Curvature):
    """The bound ω ≤ b (logistic ¼; squared, huber 1): one Gram b·Σ s x̃x̃ᵀ, formed by the first
    pass (or carried by a warm start), then gradient-only passes; ridge solves by one
    eigendecomposition."""

    one_gram = True

    def __init__(self, loss: Loss, warm=None):
        super().__init__(loss, warm)
        self.bound = curvature_bound(loss)
        self.gram = None if warm is None else warm.fixed

    def needs_first_pass(self, warm) -> bool:
        return warm is None or self.gram is None

    def hold(self, stats: BlockStats, n_features: int) -> None:
        self.gram = FixedCurvature(stats.gram, stats.weight, n_features, stats.n)

    def resume(self, warm, beta, loss_grad, n_features):
        return self.gram.system(beta, loss_grad), beta, True

    def gradient_pass(self, it: int) -> bool:
        return True

    @property
    def systems_from_gradient(self) -> bool:
        return True

    def warm_gram(self) -> FixedCurvature | None:
        return self.gram


class Cached(Curvature):
    """The E-step Gram of the last refresh as the M-step matrix of gradient-only passes, refreshed
    at accepted iterations 1, 2, 4, 8, … and whenever F would rise (a stale Gram need not majorize)."""

    stale = True

    def hold(self, stats: BlockStats, n_features: int) -> None:
        self.gram = FixedCurvature(stats.gram, stats.weight, n_features, stats.n)

    def resume(self, warm, beta, loss_grad, n_features):
        system, expand, _ = super().resume(warm, beta, loss_grad, n_features)
        self.hold(system, n_features)
        return system, expand, False

    def refreshes(self, it: int) -> bool:
        return ((it + 1) & it) == 0

    def gradient_pass(self, it: int) -> bool:
        return not self.refreshes(it)

    def majorizes_after(self, refreshed: bool) -> bool:
        return refreshed


#: the fractions of a Newton step tried, in one pass, when the full step raises F (the first that
#: lowers F is taken). Tried only then: the steady pass carries the full step alone, as the E-step's
#: does (carrying both every pass made it 1.6× the E-step's pass at 2e6 × 10)
NEWTON_STEPS = (0.5, 0.25)


class Newton(Cached):
    """The loss's own Hessian ℓ''(η) at each accepted point: the system of a Newton step, formed in
    the pass that evaluates the candidate (one Gram per pass, as the E-step's). Not a majorizer, so
    each step is checked by the objective in that pass. When the full step raises F, one more pass
    tries the half and quarter steps (their losses and gradients, the Hessian at the half step) and
    the first that lowers F is taken. When none does, the fit restarts from β with the E-step
    system there (one pass): a plain EM step, which cannot raise F. No momentum. Losses with
    ``has_hessian`` (logistic, Poisson, negative binomial, squared). It holds its last Gram as a
    cached mode does (for the quarter step, and a warm start), refreshed by every pass."""

    momentum = False
    predicts = True

    def __init__(self, loss: Loss, warm=None):
        super().__init__(loss, warm)
        if not loss.has_hessian:
            raise ValueError(
                f"curvature='newton' needs a loss with a Newton weight ℓ'' (logistic, poisson, negbin, "
                f"squared); the {loss.name} loss has none — use curvature='adaptive'")

    def system_args(self) -> dict:
        return {"hessian": True}

    def shorter(self, beta, candidate):
        return [beta + f * (candidate - beta) for f in NEWTON_STEPS]

    def refreshes(self, it: int) -> bool:
        return True

    def majorizes_after(self, refreshed: bool) -> bool:
        return False


#: the curvature modes by name (``SolverConfig.curvature``)
MODES: dict[str, type[Curvature]] = {"adaptive": Adaptive, "fixed": FixedBound, "cached": Cached,
                                     "newton": Newton}


#: the name of the mode that picks one of :data:`MODES` from the loss (:func:`auto_curvature`)
AUTO = "auto"


def auto_curvature(loss: Loss, *, path: bool = False, em_penalty: bool = False) -> str:
    """The mode ``curvature="auto"`` picks (docs/method.md, "Curvature modes"), from the loss and
    whether many fits share each pass (a path or a cross-validation).

    One fit: ``"newton"`` for losses with a Newton weight that is not constant (logistic, Poisson,
    negative binomial) — passes to 1e-8 of F* fell from 10–28 to 5–6 on the benchmark problems
    (``python -m benchmarks scale``, benchmarks/results/scale.md), each pass costing the same one
    Gram as the E-step's; ``"fixed"`` for the squared loss, whose E-step, bound and Hessian are the
    same ω = 1 (one Gram for the fit, then gradient-only passes); the E-step (``"adaptive"``) for
    the rest (huber, student-t, and hinge and quantile with their certificates). Newton only where
    the penalty enters the M-step exactly (l2, or the ``"exact"`` penalty solver): with the EM
    weights of a penalty (``em_penalty``: scad, mcp, log, bridge, or ``penalty_solver="em"``) the
    coefficients on their way to zero converge linearly whatever the loss's curvature, and the
    E-step's momentum does that faster (scad, α = 3e-3, 3000 × 6 logistic: 67 passes against
    Newton's 101), so those fits keep the E-step.

    Paths and cross-validations, where each pass serves many fits: ``"fixed"`` for losses with a
    bound on ω (one Gram for every fit, formed in the start pass; measured by ``python -m benchmarks
    cv``, benchmarks/results/cv.md: at 5e5 × 50 in memory fixed 35 s / cached 69 s / adaptive 105 s
    for a ridge CV, 110 / 180 / 275 s lasso); else ``"newton"`` where the loss has a Newton weight,
    ``"cached"`` otherwise.
    """
    if loss.constant_curvature or (path and loss.omega_bound is not None):
        return "fixed"
    if loss.has_hessian and not em_penalty:
        return "newton"
    return "cached" if path else "adaptive"


def make_curvature(name: str, loss: Loss, warm=None) -> Curvature:
    """The curvature mode ``name`` for a fit of ``loss`` (``warm``: the start it resumes)."""
    return MODES[name](loss, warm)


#: continuation in the E-step's clamp ε (hinge, quantile): ε is multiplied by CLAMP_SHRINK after an
#: accepted iteration whose decrease of F is at most CLAMP_PROGRESS·ε, and after a plain step that
#: does not lower F (measured on Engel and the l1/ridge certificate problems; 1e-3 and 1e-4 pin
#: rows at a wrong vertex less often but take more iterations on Engel)
CLAMP_SHRINK = 0.1
CLAMP_PROGRESS = 1e-2


def initial_clamp(hist: np.ndarray | None, n_rows: float) -> float:
    """The first E-step clamp ε of a non-smooth fit: the decade holding the median |t − η| at the
    start (from the residual histogram of the first pass), CLAMP_EPS without a histogram.

    Clamped EM is MM on the loss Huber-smoothed at width ε: with ε at the residual scale no row
    is pinned to its kink early (weights ≤ 1/2ε), and ε then shrinks with the progress of F
    (``CLAMP_PROGRESS``) down to CLAMP_EPS, where the fit is the plain clamped EM.
    """
    if hist is None or not hist.any():
        return CLAMP_EPS
    k = np.flatnonzero(hist >= 0.5 * n_rows)
    top = HIST_DECADES[k[0]] if k.size else HIST_DECADES[-1]
    return max(CLAMP_EPS, 10.0 ** float(top))


class Clamp:
    """The E-step clamp ε of hinge and quantile fits and its continuation: it starts at the residual
    scale (:func:`initial_clamp`) and shrinks by CLAMP_SHRINK, down to CLAMP_EPS (smooth losses stay
    at CLAMP_EPS, where it is not sent with requests)."""

    def __init__(self):
        self.eps = CLAMP_EPS

    @property
    def wide(self) -> bool:
        """Whether ε is still above CLAMP_EPS (the quadratic need not touch the loss at β)."""
        return self.eps > CLAMP_EPS

    def value(self) -> float | None:
        """The clamp a request carries (None: the loss's default, CLAMP_EPS)."""
        return self.eps if self.wide else None

    def narrow(self) -> None:
        self.eps = max(CLAMP_EPS, self.eps * CLAMP_SHRINK)

    def after_step(self, decrease: float) -> None:
        """Narrow ε once an accepted step's decrease of F is small beside it."""
        if decrease <= CLAMP_PROGRESS * self.eps:
            self.narrow()
