"""scikit-learn style estimators: :class:`SMEMClassifier` and :class:`SMEMRegressor`.

Parameters are stored as given in ``__init__`` and validated in ``fit`` (scikit-learn conventions;
``get_params``/``set_params`` make them work with ``sklearn.base.clone`` and grid searches).
``fit`` takes numpy arrays, dask arrays or zarr arrays; zarr and dask inputs are fitted by the
:class:`~smem_dask.engine.DaskEngine` under whatever dask scheduler is active (a ``distributed``
``Client`` if one exists), numpy inputs in memory. ``predict*`` return dask arrays for lazy inputs.
"""

from __future__ import annotations

import inspect
import sys
import warnings
from dataclasses import replace

import numpy as np

from . import engine as _engine
from .losses import Loss, get_loss
from .path import solve_path
from .penalties import L2, check_solver, get_penalty
from .solver import (
    ConvergenceWarning,
    FitResult,
    IterationRecord,
    SolverConfig,
    curvature_bound,
    fit_em,
)

__all__ = ["SMEMClassifier", "SMEMRegressor", "fit_path"]


class _SMEMBase:
    """Shared fit logic; subclasses set the default loss and how y is encoded."""

    _estimator_type: str

    def __init__(self, loss="logistic", penalty="l2", alpha=1e-4, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="adaptive"):
        self.loss = loss
        self.penalty = penalty
        self.loss_params = loss_params
        self.penalty_params = penalty_params
        self.penalty_solver = penalty_solver
        self.curvature = curvature
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.acceleration = acceleration
        self.tol = tol
        self.max_iter = max_iter
        self.persist = persist
        self.split_every = split_every
        self.verbose = verbose

    # -- scikit-learn parameter protocol -------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [name for name in sig.parameters if name != "self"]

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        valid = self._param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(f"invalid parameter {name!r} for {type(self).__name__}; "
                                 f"valid parameters: {', '.join(valid)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = inspect.signature(type(self).__init__).parameters
        changed = [f"{k}={v!r}" for k, v in self.get_params().items()
                   if not (isinstance(v, (str, int, float, bool)) and v == defaults[k].default)]
        return f"{type(self).__name__}({', '.join(changed)})"

    # -- fitting ---------------------------------------------------------------------------------
    def _validated_loss(self) -> Loss:
        loss = get_loss(self.loss, **(self.loss_params or {}))
        wants_classifier = self._estimator_type == "classifier"
        if loss.is_classifier != wants_classifier:
            other = "SMEMRegressor" if wants_classifier else "SMEMClassifier"
            raise ValueError(f"loss {loss.name!r} is not for {type(self).__name__}; use {other}")
        return loss

    def _encode_y(self, y, loss: Loss):
        """Validated y as floats for ``loss`` (classifiers also set ``classes_``)."""
        raise NotImplementedError

    def fit(self, X, y, sample_weight=None):
        """Fit by SM-EM. Returns self.

        Parameters
        ----------
        X : (n, p) numpy, dask or zarr array of real numbers
        y : (n,) array — two classes (classifier) or real targets (regressor)
        sample_weight : (n,) array of non-negative weights, optional
        """
        loss, penalty, config, eng = self._prepare(X, y, sample_weight)
        callback = _printer(eng.nbytes) if self.verbose else None
        beta0, warm_passes = None, 0
        if not penalty.convex:
            # β = 0 can be a stationary trap of a non-convex penalty: start from the ridge fit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                warm = fit_em(eng, loss, L2(), self.alpha, fit_intercept=bool(self.fit_intercept),
                              config=replace(config, penalty_solver="em", tol=max(config.tol, 1e-6)))
            beta0 = np.r_[warm.coef, warm.intercept] if self.fit_intercept else warm.coef
            warm_passes = warm.n_passes
        result = fit_em(eng, loss, penalty, self.alpha, fit_intercept=bool(self.fit_intercept),
                        config=config, callback=callback, beta0=beta0)
        result.n_passes += warm_passes
        self._set_fitted(result, loss)
        self.bytes_read_ = result.n_passes * eng.nbytes
        return self

    def _prepare(self, X, y, sample_weight, n_systems: int = 1):
        """Validate the parameters and the data (``n_systems`` Grams per pass must fit in memory);
        the loss, penalty, solver settings and engine."""
        loss = self._validated_loss()
        penalty = get_penalty(self.penalty, **(self.penalty_params or {}))
        config = SolverConfig(self.acceleration, self.tol, self.max_iter,
                              self.penalty_solver or penalty.default_solver, self.curvature)
        check_solver(penalty, config.penalty_solver)
        if config.curvature == "fixed":
            curvature_bound(loss)
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise ValueError(f"fit_intercept must be True or False, got {self.fit_intercept!r}")

        X = _engine.as_array(X, "X")
        y = _engine.as_array(y, "y")
        s = None if sample_weight is None else _engine.as_array(sample_weight, "sample_weight")
        _engine.check_shapes(X, y, s)
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        y = self._encode_y(y, loss)
        if s is not None:
            _check_sample_weight(s)
        _engine.check_gram_fits(X.shape[1], bool(self.fit_intercept),
                                n_systems=1 if config.curvature == "fixed" else n_systems,
                                split_every=self.split_every, workers=_engine.is_lazy(X))
        persist = self.persist if self.persist == "auto" else bool(self.persist)
        eng = _engine.make_engine(X, y, s, persist=persist,
                                  split_every=self.split_every)
        return loss, penalty, config, eng

    def path(self, X, y, sample_weight=None, *, alphas=None, n_alphas=40, eps=1e-3, batch="auto",
             store=None, callback=None):
        """Fit a regularization path: ``alphas`` (largest first), or ``n_alphas`` values from α_max
        down to α_max·``eps``. ``batch`` consecutive α run in lockstep (one data pass serves all of
        them; ``"auto"``: all when their Grams fit in memory, see :func:`~smem_dask.path.solve_path`),
        each batch starting where the previous one's smallest α ended (coefficients and last
        M-step system: no first pass). ``store``: a directory or zarr group keeping shared
        statistics and each finished α, so an interrupted path resumes (:mod:`smem_dask.store`).
        ``callback(i, alpha, fit)`` runs after α i finishes. The estimator's own ``alpha`` is not used; it
        is left fitted at the smallest α. Returns a :class:`smem_dask.path.PathResult`.
        """
        # an explicit lockstep batch carries one Gram per α in every pass: checked before any read
        lockstep = 1
        if isinstance(batch, (int, np.integer)) and not isinstance(batch, bool) and batch > 1:
            lockstep = int(min(batch, n_alphas if alphas is None else np.size(alphas)))
        loss, penalty, config, eng = self._prepare(X, y, sample_weight, n_systems=lockstep)
        if not penalty.convex:
            raise ValueError(f"paths of the non-convex penalty {penalty.name!r} are not supported "
                             "yet; fit each alpha with fit()")
        result = solve_path(eng, loss, penalty, alphas=alphas, n_alphas=n_alphas, eps=eps,
                            fit_intercept=bool(self.fit_intercept), config=config, batch=batch,
                            store=store, callback=callback)
        self._set_fitted(result.fits[-1], loss)
        self.alpha_path_ = result.alphas
        self.bytes_read_ = result.total_passes * eng.nbytes
        return result

    def _set_fitted(self, result: FitResult, loss: Loss) -> None:
        self.loss_ = loss
        self.coef_ = result.coef
        self.intercept_ = result.intercept
        self.n_iter_ = result.n_iter
        self.n_passes_ = result.n_passes
        self.n_restarts_ = result.n_restarts
        self.objective_ = result.objective
        self.objective_history_ = result.objective_history
        self.history_ = result.history
        self.converged_ = result.converged
        self.n_features_in_ = result.coef.shape[0]

    def _check_fitted(self):
        if not hasattr(self, "coef_"):
            raise ValueError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def decision_function(self, X):
        """η = Xβ + b (numpy for numpy input, a lazy dask array for dask or zarr input)."""
        self._check_fitted()
        return _engine.linear_predictor(X, self.coef_, self.intercept_)


class SMEMClassifier(_SMEMBase):
    r"""Binary linear classifier fitted by Scale Mixture EM.

    Minimizes :math:`F(β, b) = \frac1W \sum_i s_i ℓ(y_i, x_i^Tβ + b) + α P(β)` with the logistic loss
    (Pólya–Gamma E-step) and, by default, the ridge penalty P(β) = ½‖β‖².
    ``LogisticRegression(C)`` of scikit-learn is the same model with α = 1/(C·n).

    Parameters
    ----------
    loss : "logistic" or a Loss
    penalty : "l2" or a Penalty
    alpha : float ≥ 0 — penalty strength
    fit_intercept : bool — fit an unpenalized intercept
    acceleration : "none" | "nesterov" | "nesterov-restart" — base EM (monotone), the paper's
        Nesterov extrapolation (not monotone), or Nesterov with objective-based restart (monotone)
    tol : float — stop when the relative objective change and ‖∇F‖_∞/max(1,|F|) are both ≤ tol
    max_iter : int — maximum EM iterations
    persist : "auto" | bool — keep dask/zarr inputs in cluster memory instead of streaming them each
        pass; "auto" persists when they take at most half of the workers' memory (see
        ``DaskEngine``)
    split_every : int — fan-in of the tree reduction
    verbose : int — print one line per iteration when > 0
    loss_params, penalty_params : dict — parameters of a loss or penalty given by name
        (e.g. ``penalty="elasticnet", penalty_params={"l1_ratio": 0.3}``)
    penalty_solver : None | "em" | "exact" — how the penalty enters the M-step (SPEC §5); None
        takes the penalty's default ("exact" for l1 and elastic net, else "em"). Non-convex
        penalties (bridge with q < 1, scad, mcp, log) start from the ridge fit at the same α (its
        passes are counted in ``n_passes_``), since β = 0 can be a stationary trap.
    curvature : "adaptive" | "fixed" | "cached" — the loss's own E-step (fewest passes); the fixed
        bound ω = ¼ (logistic) / 1 (squared, huber): one Gram pass, then gradient-only passes
        (SPEC §6); or the E-step Gram reused as the M-step matrix of gradient-only passes, refreshed
        at iterations 1, 2, 4, 8, … and whenever F would rise (fastest in memory; any loss)

    Attributes
    ----------
    classes_, coef_ (p,), intercept_, n_iter_, n_passes_, n_restarts_, objective_,
    objective_history_ (F at the start and after each iteration), history_, converged_,
    bytes_read_ (data passes × bytes of X as stored)
    """

    _estimator_type = "classifier"

    def __init__(self, loss="logistic", penalty="l2", alpha=1e-4, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="adaptive"):
        super().__init__(loss, penalty, alpha, fit_intercept, acceleration, tol, max_iter,
                         persist, split_every, verbose, loss_params, penalty_params,
                         penalty_solver, curvature)

    def _encode_y(self, y, loss):
        classes = _engine.unique(y)
        if classes.dtype.kind == "f" and np.isnan(classes).any():
            raise ValueError("y contains NaN")
        if classes.dtype.kind == "f" and np.isinf(classes).any():
            raise ValueError("y contains infinity")
        def shown(c):  # 2.0, not numpy's np.float64(2.0)
            return repr(c.item() if isinstance(c, np.generic) else c)

        if classes.size < 2:
            raise ValueError(
                f"y has only one class ({shown(classes[0])}); a classifier needs two classes"
                if classes.size else "y is empty"
            )
        if classes.size > 2:
            listed = ", ".join(shown(c) for c in classes[:5]) + (", …" if classes.size > 5 else "")
            raise ValueError(f"y has {classes.size} classes ({listed}); loss {loss.name!r} "
                             "needs exactly two")
        self.classes_ = classes
        return (y == classes[1]).astype(np.float64)

    def predict_proba(self, X):
        """Class probabilities, shape (n, 2), columns in the order of ``classes_``."""
        self._check_fitted()
        if not self.loss_.has_inverse_link:
            raise ValueError(f"loss {self.loss_.name!r} gives no probabilities; use "
                             "decision_function or predict")
        p1 = _engine.linear_predictor(X, self.coef_, self.intercept_, self.loss_.inverse_link)
        return np.stack([1.0 - p1, p1], axis=1)

    def predict(self, X):
        """The more probable class of each row (ties go to ``classes_[0]``)."""
        self._check_fitted()
        classes = self.classes_
        return _engine.linear_predictor(
            X, self.coef_, self.intercept_, lambda eta: classes[(eta > 0).astype(np.intp)],
            dtype=classes.dtype,
        )

    def score(self, X, y, sample_weight=None):
        """Accuracy (weighted by ``sample_weight`` if given)."""
        correct = (self.predict(X) == _engine.as_array(y, "y")).astype(np.float64)
        return _weighted_mean(correct, sample_weight)


class SMEMRegressor(_SMEMBase):
    r"""Linear regression fitted by Scale Mixture EM.

    Minimizes :math:`F(β, b) = \frac1W \sum_i s_i ℓ(y_i, x_i^Tβ + b) + α P(β)`; with the default
    squared loss ℓ = ½(y − η)² and ridge P(β) = ½‖β‖² this is scikit-learn's ``Ridge(alpha=a)``
    with α = a/n. Parameters and attributes as for :class:`SMEMClassifier` (no ``classes_``).
    """

    _estimator_type = "regressor"

    def __init__(self, loss="squared", penalty="l2", alpha=1e-4, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="adaptive"):
        super().__init__(loss, penalty, alpha, fit_intercept, acceleration, tol, max_iter,
                         persist, split_every, verbose, loss_params, penalty_params,
                         penalty_solver, curvature)

    def _encode_y(self, y, loss):
        if y.dtype.kind not in "biuf":
            raise ValueError(f"y must hold real numbers, got dtype {y.dtype}")
        n_bad, y_min = _engine.compute((~np.isfinite(y)).sum(), y.min())
        if n_bad:
            raise ValueError(f"y contains {int(n_bad)} NaN or infinite values")
        if loss.nonnegative_target and y_min < 0:
            raise ValueError(f"loss {loss.name!r} needs counts y ≥ 0; found {float(y_min)!r}")
        return y.astype(np.float64)

    def predict(self, X):
        """The predicted mean (the inverse link of η)."""
        self._check_fitted()
        return _engine.linear_predictor(X, self.coef_, self.intercept_, self.loss_.inverse_link)

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² (weighted by ``sample_weight`` if given)."""
        y = _engine.as_array(y, "y").astype(np.float64)
        resid = (y - self.predict(X)) ** 2
        ybar = _weighted_mean(y, sample_weight)
        return 1.0 - _weighted_mean(resid, sample_weight) / _weighted_mean((y - ybar) ** 2,
                                                                            sample_weight)


def _check_sample_weight(s) -> None:
    if s.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got dtype {s.dtype}")
    n_bad, smin, total = _engine.compute((~np.isfinite(s)).sum(), s.min(), s.sum())
    if n_bad:
        raise ValueError(f"sample_weight contains {int(n_bad)} NaN or infinite values")
    if smin < 0:
        raise ValueError(f"sample_weight must be non-negative; found {float(smin)!r}")
    if total <= 0:
        raise ValueError("sample_weight sums to zero")


def _weighted_mean(v, sample_weight) -> float:
    if sample_weight is None:
        (m,) = _engine.compute(v.mean())
        return float(m)
    s = _engine.as_array(sample_weight, "sample_weight").astype(np.float64)
    num, den = _engine.compute((v * s).sum(), s.sum())
    return float(num / den)


def _printer(nbytes: int, file=None):
    """A callback printing one line per iteration: objective, change, pass time, throughput."""
    out = file or sys.stdout
    passes_before = [0]

    def show(rec: IterationRecord) -> None:
        passes = rec.n_passes - passes_before[0]
        passes_before[0] = rec.n_passes
        rate = passes * nbytes / rec.pass_seconds / 1e6 if rec.pass_seconds > 0 else float("nan")
        change = "" if rec.iteration == 0 else f"{rec.change:10.2e}"
        flag = "  restart" if rec.restarted else ""
        print(f"iter {rec.iteration:4d}  F={rec.objective:.12f}  dF/F={change:>10}  "
              f"|grad|={rec.grad_norm:.2e}  passes={rec.n_passes:3d}  "
              f"pass={rec.pass_seconds:6.2f}s  {rate:8.0f} MB/s{flag}", file=out, flush=True)

    return show


def fit_path(X, y, loss="logistic", penalty="l2", *, sample_weight=None, alphas=None, n_alphas=40,
             eps=1e-3, batch="auto", store=None, callback=None, **params):
    """A regularization path of ``loss`` + α·``penalty`` (SPEC §6): ``n_alphas`` values of α from
    α_max down to α_max·``eps`` (or the given ``alphas``), largest first, warm-started.

    ``params`` are estimator parameters (``fit_intercept``, ``tol``, ``loss_params``, …). Returns a
    :class:`smem_dask.path.PathResult` with ``alphas``, ``coefs``, ``intercepts``, ``objectives``,
    ``n_iter``, ``n_passes``, ``converged`` per α, and ``total_passes``. ``batch``, ``store`` and
    ``callback``: see :meth:`SMEMClassifier.path`.
    """
    loss_obj = get_loss(loss, **(params.get("loss_params") or {}))
    cls = SMEMClassifier if loss_obj.is_classifier else SMEMRegressor
    return cls(loss=loss, penalty=penalty, **params).path(
        X, y, sample_weight, alphas=alphas, n_alphas=n_alphas, eps=eps, batch=batch, store=store,
        callback=callback)
