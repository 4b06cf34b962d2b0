"""scikit-learn estimators: :class:`SMEMClassifier` and :class:`SMEMRegressor`.

They are scikit-learn estimators (``BaseEstimator`` with ``ClassifierMixin`` / ``RegressorMixin``): parameters
are stored as given in ``__init__`` (keyword-only) and validated in ``fit``; they work in ``Pipeline``,
``GridSearchCV`` and ``cross_val_score`` and pass ``check_estimator`` (see ``tests/test_sklearn.py`` for the
checks that do not apply, with the reason). ``fit`` takes numpy arrays, scipy sparse matrices, pandas
DataFrames (column names are kept in ``feature_names_in_`` and checked at predict; categorical and text
columns one-hot encoded, see :mod:`smem_dask.frames`), dask arrays, zarr arrays, dask DataFrames (e.g.
from ``dask.dataframe.read_parquet``; names and encoding as for pandas) and xarray DataArrays, with
optional sample weights and an ``offset``; zarr and dask inputs are fitted by the
:class:`~smem_dask.engine.DaskEngine` under whatever
dask scheduler is active (a ``distributed`` ``Client`` if one exists) and are never materialized (a dask
DataFrame's partition lengths are counted by one extra read first); other inputs are fitted in memory.
``predict*`` return dask arrays for lazy inputs. Unpenalized fits give standard errors
(``covariance_matrix``, ``std_errors``, ``coef_table``; :mod:`smem_dask.inference`).
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from . import arrays as _arrays
from . import engine as _engine
from . import resources as _resources
from .losses import Loss, Multinomial, get_loss, log_softmax
from .multinomial import check_supported, fit_multinomial
from .multinomial_path import solve_multinomial_path
from .path import lockstep_size, solve_path
from .penalties import Penalty, get_penalty
from .solver import (
    FitResult,
    IterationRecord,
    SolverConfig,
    Stop,
    fit_penalized,
)
from .validation import (
    as_offset,
    as_target,
    as_weight,
    check_class_totals,
    check_flags,
    check_sample_weight,
    class_labels,
    class_weighted,
    encode_classes,
    encode_labels,
    encode_real,
    validate_fit_data,
    validate_X,
)

__all__ = ["SMEMClassifier", "SMEMRegressor", "fit_path"]

class _SMEMBase(BaseEstimator):
    """Shared fit logic; subclasses set the default loss, the kind (``_kind``) and how y is encoded."""

    _kind: str  # "classifier" or "regressor"

    def __init__(self, *, loss, penalty="l2", alpha=1e-4, l1_ratio=None, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="auto", max_time=None, categorical_drop=None):
        self.loss = loss
        self.penalty = penalty
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.acceleration = acceleration
        self.tol = tol
        self.max_iter = max_iter
        self.persist = persist
        self.split_every = split_every
        self.verbose = verbose
        self.loss_params = loss_params
        self.penalty_params = penalty_params
        self.penalty_solver = penalty_solver
        self.curvature = curvature
        self.max_time = max_time
        self.categorical_drop = categorical_drop

    # -- parameters ------------------------------------------------------------------------------
    def _validated_loss(self) -> Loss:
        loss = get_loss(self.loss, **(self.loss_params or {}))
        wants_classifier = self._kind == "classifier"
        if loss.is_classifier != wants_classifier:
            other = "SMEMRegressor" if wants_classifier else "SMEMClassifier"
            raise ValueError(f"loss {loss.name!r} is not for {type(self).__name__}; use {other}")
        return loss

    def _validated_penalty(self) -> Penalty:
        """The penalty, with the top-level ``l1_ratio`` (scikit-learn's name) for the elastic net."""
        params = dict(self.penalty_params or {})
        if self.l1_ratio is not None:
            name = self.penalty if isinstance(self.penalty, str) else getattr(self.penalty, "name", None)
            if name != "elasticnet":
                raise ValueError(f"l1_ratio applies to penalty='elasticnet' only; got penalty={name!r}")
            if not isinstance(self.penalty, str) or "l1_ratio" in params:
                raise ValueError("l1_ratio is given twice: as the estimator's l1_ratio and in the penalty; "
                                 "give it once")
            params["l1_ratio"] = self.l1_ratio
        return get_penalty(self.penalty, **params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = True
        return tags

    def _curvature(self, loss: Loss) -> str:
        """The curvature setting of the fit ("auto" resolved by :meth:`_prepare`)."""
        return self.curvature

    # -- data ------------------------------------------------------------------------------------
    def _encode_y(self, y, loss: Loss):
        """Validated y as floats for the fit's loss, and that loss (classifiers also set
        ``classes_``, and fit more than two classes with the multinomial loss)."""
        raise NotImplementedError

    def _fit_weights(self, y_encoded, s):
        """The sample weights of the fit (classifiers: times the class weights)."""
        return s

    # -- fitting ---------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, offset=None):
        """Fit by SM-EM. Returns self.

        Parameters
        ----------
        X : (n, p) numpy array, pandas or dask DataFrame, dask, zarr or xarray array of real numbers
        y : (n,) array — two classes (classifier) or real targets (regressor)
        sample_weight : (n,) array of non-negative weights, optional
        offset : (n,) array, optional — a known term of each row's linear predictor, η = Xβ + b +
            offset, with no coefficient: log exposure for counts (``loss="poisson"``, offset log t
            fits the rate y/t), a prior's log-odds for the logistic loss. The smooth losses of one
            linear predictor only (not hinge, quantile or multinomial). Give it again to
            ``predict``: the fitted coefficients do not include it.
        """
        loss, penalty, config, eng = self._prepare(X, y, sample_weight, offset=offset)
        callback = _printer(eng.nbytes) if self.verbose else None
        if getattr(loss, "multiclass", False):
            result = fit_multinomial(eng, len(self.classes_), penalty, self.alpha,
                                     fit_intercept=bool(self.fit_intercept), config=config,
                                     mode=config.curvature, callback=callback,
                                     stop=Stop.after(config.max_time))
        else:
            result = fit_penalized(eng, loss, penalty, self.alpha, fit_intercept=bool(self.fit_intercept),
                                   config=config, callback=callback)
        self._set_fitted(result, loss)
        self.bytes_read_ = result.n_passes * eng.nbytes
        if hasattr(self, "alpha_path_"):
            del self.alpha_path_  # left by an earlier path(): not of this fit
        return self

    def _prepare(self, X, y, sample_weight, n_systems: int = 1, folds=None, path: bool = False,
                 offset=None):
        """Validate the parameters and the data (``n_systems`` Grams per pass must fit in memory);
        the loss, penalty, solver settings (``curvature="auto"`` resolved for one fit, or for the
        many of a path or cross-validation: ``path``; the mode is kept as ``curvature_``) and
        engine. ``folds(X)``, if given, returns the fold ids of X's rows for the engine
        (cross-validation)."""
        loss = self._validated_loss()
        penalty = self._validated_penalty()
        config = self._config(loss, penalty, path)
        check_flags(self.fit_intercept, self.persist)

        X, y, s = validate_fit_data(self, X, y, sample_weight)
        # memory checked before any task runs (reading y on a worker too small would kill it)
        _resources.check_gram_fits(X.shape[1], bool(self.fit_intercept),
                                   n_systems=config.grams_per_pass(n_systems),
                                   split_every=self.split_every, workers=_arrays.is_lazy(X))
        persist = self.persist if isinstance(self.persist, str) else bool(self.persist)
        _resources.check_memory_fits(X, y, s, persist=persist)
        y, loss = self._encode_y(y, loss)
        if getattr(loss, "multiclass", False):
            config = self._config(loss, penalty, path)
            if config.curvature == "newton":  # a (qK)² Hessian per pass and per fit in lockstep
                K = len(self.classes_)
                _resources.check_gram_fits(X.shape[1], bool(self.fit_intercept),
                                           n_systems=K * K * n_systems, split_every=self.split_every,
                                           workers=_arrays.is_lazy(X))
        if offset is not None:
            check_offset_applies(loss)
            offset = as_offset(offset, X.shape[0])
        if s is not None:
            check_sample_weight(s)
        s = self._fit_weights(y, s)
        eng = _engine.make_engine(X, y, s, persist=persist, split_every=self.split_every,
                                  folds=None if folds is None else folds(X), offset=offset,
                                  x_nbytes=self._encoded_nbytes(X))
        self.curvature_ = config.curvature  # the mode "auto" picked (set once the data are valid)
        return loss, penalty, config, eng

    def _encoded_nbytes(self, X):
        """A bound of the bytes of X when it is a DataFrame's sparse one-hot encoding, else None."""
        encoding = getattr(self, "encoding_", None)
        return None if encoding is None or not encoding.sparse else encoding.sparse_nbytes(X.shape[0])

    def _config(self, loss: Loss, penalty: Penalty, path: bool) -> SolverConfig:
        """The solver settings for ``loss`` and ``penalty`` (``curvature="auto"`` resolved), refused
        with a clear error where they cannot be fitted, before any data are read."""
        if getattr(loss, "multiclass", False):
            # Newton's Hessian (the default), or Böhning's fixed bound (see smem_dask.multinomial)
            curvature = self._curvature(loss)
            if curvature not in ("auto", "newton", "fixed"):
                raise ValueError(f"curvature={curvature!r} does not apply to the multinomial loss: "
                                 "use 'auto' (= 'newton') or 'fixed' (Böhning's bound)")
            # (a path or a cross-validation has no alpha of its own: its α are all > 0)
            check_supported(penalty, float(self.alpha) if hasattr(self, "alpha") and not path else 1.0)
            if self.penalty_solver not in (None, "exact" if penalty.has_exact else "em"):
                raise ValueError(f"penalty_solver={self.penalty_solver!r} does not apply to the "
                                 "multinomial loss, whose M-step is solved exactly for every penalty "
                                 "it takes; leave it None")
            mode = "fixed" if curvature == "fixed" else "newton"
            return SolverConfig(self.acceleration, self.tol, self.max_iter, "em", mode,
                                max_time=self.max_time)
        config = SolverConfig(self.acceleration, self.tol, self.max_iter,
                              self.penalty_solver or penalty.default_solver, self._curvature(loss),
                              max_time=self.max_time).resolved(loss, penalty, path=path)
        config.check(loss, penalty)
        return config

    def path(self, X, y, sample_weight=None, *, offset=None, alphas=None, n_alphas=40, eps=1e-3,
             batch="auto", store=None, callback=None):
        """Fit a regularization path: ``alphas`` (largest first), or ``n_alphas`` values from α_max
        down to α_max·``eps``. ``batch`` consecutive α run in lockstep (one data pass serves all of
        them; ``"auto"``: all when their Grams fit in memory, see :func:`~smem_dask.path.solve_path`),
        each batch starting where the previous one's smallest α ended (coefficients and last
        M-step system: no first pass). ``store``: a directory or zarr group keeping shared
        statistics and each finished α, so an interrupted path resumes (:mod:`smem_dask.store`).
        ``callback(i, alpha, fit)`` runs after α i finishes. The estimator's own ``alpha`` is not used; it
        is left fitted at the smallest α (the smallest reached, when ``max_time`` stops the path:
        α not reached hold NaN, see :class:`~smem_dask.path.PathResult`). Returns a
        :class:`smem_dask.path.PathResult`. More than two classes (the multinomial loss): see
        :func:`~smem_dask.multinomial_path.solve_multinomial_path` (``coefs`` (n_alphas, K, p); no
        ``store`` yet). ``offset``: as for :meth:`fit`.
        """
        # an explicit lockstep batch carries one Gram per α in every pass: checked before any read
        lockstep = lockstep_size(batch, alphas, n_alphas) or 1
        loss, penalty, config, eng = self._prepare(X, y, sample_weight, n_systems=lockstep, path=True,
                                                   offset=offset)
        if getattr(loss, "multiclass", False):
            if store is not None:
                raise ValueError("a path store does not keep multinomial paths yet; use store=None")
            result = solve_multinomial_path(
                eng, len(self.classes_), penalty, alphas=alphas, n_alphas=n_alphas, eps=eps,
                fit_intercept=bool(self.fit_intercept), config=config, mode=config.curvature,
                batch=batch, callback=callback)
        else:
            result = solve_path(eng, loss, penalty, alphas=alphas, n_alphas=n_alphas, eps=eps,
                                fit_intercept=bool(self.fit_intercept), config=config, batch=batch,
                                store=store, callback=callback)
        # the smallest α reached (a path stopped early did not reach them all)
        self._set_fitted([f for f in result.fits if f is not None][-1], loss)
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
        self.duality_gap_ = result.duality_gap
        self.stopped_ = result.stopped

    # -- inference -------------------------------------------------------------------------------
    def covariance_matrix(self, X, y, sample_weight=None, *, cov_type="nonrobust", clusters=None,
                          offset=None):
        """The covariance of the fitted coefficients, (q, q) ordered as ``coef_`` then the intercept,
        from one pass over the data the estimator was fitted on (numpy, dask or zarr, as ``fit``).

        ``cov_type``: "nonrobust" (the inverse information — the Hessian, the expected one for
        negbin — times the residual variance for the squared loss), "HC0", "HC1" (White's sandwich,
        HC1 with n/(n − q)) or "cluster" (``clusters``: one label per row; G/(G − 1)·(n − 1)/(n − q)
        small-sample factor) — statsmodels' GLM conventions, see :mod:`smem_dask.inference`. For the
        logistic, Poisson, negbin and squared losses, unpenalized fits (``alpha=0``) only: the usual
        standard errors do not describe a penalized estimate.
        ``sample_weight`` (as at fit) counts as frequency weights, with cov_type="nonrobust" only;
        ``offset`` as at fit.
        Refused with the reason: another loss, a penalized or unconverged fit, class weights, a
        singular Hessian, and data on which the coefficients are not the optimum.
        """
        return self._covariance(X, y, sample_weight, cov_type, clusters, offset).matrix

    def std_errors(self, X, y, sample_weight=None, *, cov_type="nonrobust", clusters=None, offset=None):
        """Standard errors of ``coef_`` then the intercept: the square roots of the diagonal of
        :meth:`covariance_matrix` (same arguments)."""
        return np.sqrt(np.diag(self.covariance_matrix(X, y, sample_weight, cov_type=cov_type,
                                                      clusters=clusters, offset=offset)))

    def coef_table(self, X, y, sample_weight=None, *, cov_type="nonrobust", clusters=None, offset=None,
                   level=0.95):
        """A pandas DataFrame, one row per coefficient (named by ``feature_names_in_``, else x0, x1,
        …, and "intercept"): coef, std_err, z, p_value (two-sided, normal) and the ``level``
        confidence interval ci_lower, ci_upper. Arguments as :meth:`covariance_matrix`."""
        from .inference import z_table

        try:
            import pandas as pd
        except ImportError as exc:  # pragma: no cover - pandas comes with the test extra
            raise ImportError("coef_table returns a pandas DataFrame: pip install pandas") from exc
        if not 0.0 < float(level) < 1.0:
            raise ValueError(f"level must lie strictly between 0 and 1, got {level!r}")
        cov = self._covariance(X, y, sample_weight, cov_type, clusters, offset)
        names = self.coef_names_
        if self.fit_intercept:
            names.append("intercept")
        return pd.DataFrame(z_table(self._beta(), cov.matrix, float(level)), index=names)

    @property
    def coef_names_(self) -> list[str]:
        """The name of each entry of ``coef_`` (the intercept excluded): the feature names, ``x0``,
        ``x1``, … without them, and ``column[level]`` for the indicators of an encoded column."""
        check_is_fitted(self, "coef_")
        if getattr(self, "encoding_", None) is not None:
            return self.encoding_.names_out
        if hasattr(self, "feature_names_in_"):
            return list(map(str, self.feature_names_in_))
        return [f"x{j}" for j in range(np.shape(self.coef_)[-1])]

    def _beta(self) -> np.ndarray:
        coef = np.asarray(self.coef_, dtype=np.float64).ravel()
        return np.r_[coef, float(self.intercept_)] if self.fit_intercept else coef

    def _covariance(self, X, y, sample_weight, cov_type, clusters, offset=None):
        from .inference import check_cov_type, check_loss, coefficient_covariance

        check_is_fitted(self, "coef_")
        if self._multiclass():
            raise ValueError("standard errors of a multinomial fit are not available yet")
        check_loss(self.loss_)
        alpha = getattr(self, "alpha_", getattr(self, "alpha", None))  # (a CV estimator's: the selected α)
        if getattr(self, "alpha_path_", None) is not None or alpha is None or float(alpha) != 0.0:
            raise ValueError("standard errors are for unpenalized fits (alpha=0): a penalized estimate is "
                             "biased toward zero (and, for l1, its features chosen by the data), which the "
                             "usual standard errors do not describe; refit with alpha=0")
        if getattr(self, "class_weight", None) is not None:
            raise ValueError("standard errors of a fit with class_weight are not supported: the class "
                             "weights change the likelihood; refit with class_weight=None")
        if not self.converged_:
            raise ValueError("the fit did not converge: its coefficients are not the optimum the standard "
                             "errors describe; refit with a larger max_iter or max_time")
        check_cov_type(cov_type, None if clusters is None else 0, sample_weight is not None)
        X, y, s = validate_fit_data(self, X, y, sample_weight, reset=False)
        if s is not None:
            check_sample_weight(s)
        y = self._inference_target(y)
        codes, n_groups = (None, None) if clusters is None else _arrays.factorize(clusters, X.shape[0])
        offset = as_offset(offset, X.shape[0])
        eng = _engine.make_engine(X, y, s, persist=False, split_every=self.split_every, folds=codes,
                                  offset=offset, x_nbytes=self._encoded_nbytes(X))
        return coefficient_covariance(eng, self.loss_, self._beta(), bool(self.fit_intercept), cov_type,
                                      n_groups)

    def _multiclass(self) -> bool:
        """The fit is multinomial (more than two classes, or ``loss="multinomial"``)."""
        return getattr(self.loss_, "multiclass", False)

    def _inference_target(self, y):
        """y encoded as at fit, for the loss of the fit."""
        return encode_real(y, self.loss_)

    # -- prediction ------------------------------------------------------------------------------
    def _predict_input(self, X):
        """Checks shared by every prediction method: fitted, X's features as at fit, X finite."""
        check_is_fitted(self, "coef_")
        return validate_X(self, X, reset=False)

    def _linear(self, X, offset=None, transform=None, dtype=np.float64, ndim=None):
        """``transform(Xβ + b + offset)`` for checked X (numpy, or lazy dask for lazy X)."""
        coef = self.coef_.T if self._multiclass() else self.coef_
        if offset is None:
            return _engine.linear_predictor(X, coef, self.intercept_, transform, dtype=dtype, ndim=ndim)
        if self._multiclass():
            raise ValueError("an offset does not apply to a multinomial fit")
        offset = as_offset(offset, X.shape[0])
        return _engine.with_offset(_engine.linear_predictor(X, coef, self.intercept_), offset, transform,
                                   dtype)


def _gives_probabilities(est) -> bool:
    """``predict_proba`` exists only for losses with a probability model (not hinge)."""
    loss = est.loss_ if hasattr(est, "loss_") else est._validated_loss()
    if not loss.has_inverse_link:
        raise AttributeError(f"loss {loss.name!r} gives no probabilities; use decision_function or "
                             "predict")
    return True


class SMEMClassifier(ClassifierMixin, _SMEMBase):
    r"""Linear classifier fitted by Scale Mixture EM.

    Minimizes :math:`F(β, b) = \frac1W \sum_i s_i ℓ(y_i, x_i^Tβ + b) + α P(β)` with the logistic loss
    (Pólya–Gamma E-step) and, by default, the ridge penalty P(β) = ½‖β‖².
    ``LogisticRegression(C)`` of scikit-learn is the same model with α = 1/(C·n) (1/(C·Σ sᵢ) with sample or
    class weights). With more than two classes in y the logistic loss becomes the multinomial one
    (``loss="multinomial"``, scikit-learn's multinomial ``LogisticRegression`` in its symmetric
    parametrization; see :mod:`smem_dask.multinomial`): ``coef_`` (K, p), ``intercept_`` (K,),
    ``decision_function`` (n, K); l2, l1, elastic net or group penalties (a group holds its
    features' coefficients in every class); ``path`` and ``SMEMClassifierCV`` too (no store yet).

    Parameters (keyword-only)
    -------------------------
    loss : "logistic" | "hinge" | "multinomial" or a Loss
    penalty : "l2" | "l1" | "elasticnet" | "group" | "bridge" | "scad" | "mcp" | "log", or a Penalty
    alpha : float ≥ 0 — penalty strength
    l1_ratio : float in [0, 1] or None — the elastic net's mix r in r‖β‖₁ + (1 − r)/2 ‖β‖²
        (``penalty="elasticnet"`` only; None: the penalty's default 0.5 or ``penalty_params``)
    class_weight : None | "balanced" | dict — weights per class, multiplied into the sample weights;
        "balanced" is n / (K·count of the class) for K classes, as in scikit-learn
    fit_intercept : bool — fit an unpenalized intercept
    acceleration : "none" | "nesterov" | "nesterov-restart" — base EM (monotone), the paper's
        Nesterov extrapolation (not monotone), or Nesterov with objective-based restart (monotone)
    tol : float — stop when the relative objective change and ‖∇F‖_∞/max(1,|F|) are both ≤ tol; for
        the hinge and quantile losses converged means a duality gap F(β) − D(a) ≤ tol·max(1, |F|)
    max_iter : int — maximum EM iterations
    persist : "auto" | bool — keep dask/zarr inputs in cluster memory instead of streaming them each
        pass; "auto" persists when they take at most half of the workers' memory (see
        ``DaskEngine``)
    split_every : int — fan-in of the tree reduction
    verbose : int — print one line per iteration when > 0
    loss_params, penalty_params : dict — parameters of a loss or penalty given by name
        (e.g. ``penalty="group", penalty_params={"groups": [0, 0, 1]}``)
    penalty_solver : None | "em" | "exact" — how the penalty enters the M-step; None
        takes the penalty's default ("exact" for l1, elastic net and group, else "em"). Non-convex
        penalties (bridge with q < 1, scad, mcp, log) start from the ridge fit at the same α (its
        passes are counted in ``n_passes_``), since β = 0 can be a stationary trap.
    curvature : "auto" | "newton" | "adaptive" | "fixed" | "cached" — the M-step matrix of each
        iteration. "auto" (the default) picks by the loss (:func:`smem_dask.curvature.auto_curvature`;
        the pick is ``curvature_``): "newton" for logistic, poisson and negbin, "fixed" for squared,
        "adaptive" for the others; on a path or cross-validation "fixed" for the losses with a
        bound on ω, "newton" for poisson and negbin; the E-step where the penalty enters by EM
        weights (scad, mcp, log, bridge, penalty_solver="em"). "newton": the loss's Hessian
        ℓ''(η), each step checked by the objective in its pass (then the half and quarter steps),
        falling back to an EM step when none lowers F — 5–6 passes to 1e-8 where the E-step
        takes 10–15; "adaptive": the loss's own E-step at
        every pass; "fixed": the bound ω = ¼ (logistic) / 1 (squared, huber): one Gram pass, then
        gradient-only passes; "cached": the E-step Gram reused as the M-step matrix of
        gradient-only passes, refreshed at iterations 1, 2, 4, 8, … and whenever F would rise
    max_time : None | float > 0 — seconds of wall time for ``fit`` (or the whole ``path``): the fit
        stops after the iteration during which the time ran out and keeps that iterate, with
        ``converged_`` False, ``stopped_ == "max_time"`` and a ``ConvergenceWarning``. Setting
        :data:`smem_dask.solver.STOP_REQUESTED` (e.g. from a signal handler) stops a fit the same
        way, with ``stopped_ == "interrupted"``
    categorical_drop : None | "first" — DataFrames with categorical or text columns (one-hot encoded,
        see :mod:`smem_dask.frames`): None keeps an indicator for every level (pandas.get_dummies);
        "first" drops each column's first level, which the intercept absorbs (reference coding, as
        R and statsmodels: an unpenalized fit is then unique and has standard errors)

    Attributes
    ----------
    classes_, coef_ (p,) — (K, p) with the multinomial loss (K > 2 classes, or loss="multinomial") —,
    intercept_ (a float; (K,) with the multinomial loss),
    n_features_in_, feature_names_in_ (DataFrame input only), n_iter_,
    n_passes_, n_restarts_, objective_, objective_history_ (F at the start and after each iteration),
    history_, converged_, duality_gap_ (hinge and quantile: F(β) − D(a), an upper bound on F(β) − F*;
    NaN for the other losses), stopped_ (None, or why the fit stopped early: "max_time",
    "interrupted"), bytes_read_ (data passes × bytes of X as stored; a bound for a DataFrame's sparse
    one-hot encoding; NaN for another dask array of sparse blocks), curvature_ (the curvature mode
    used: ``curvature`` with "auto" resolved)
    """

    _kind = "classifier"

    def __init__(self, *, loss="logistic", penalty="l2", alpha=1e-4, l1_ratio=None, class_weight=None,
                 fit_intercept=True, acceleration="nesterov-restart", tol=1e-8, max_iter=1000,
                 persist="auto", split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="auto", max_time=None, categorical_drop=None):
        super().__init__(
            loss=loss, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
            acceleration=acceleration, tol=tol, max_iter=max_iter, persist=persist,
            split_every=split_every, verbose=verbose, loss_params=loss_params,
            penalty_params=penalty_params, penalty_solver=penalty_solver, curvature=curvature,
            max_time=max_time, categorical_drop=categorical_drop,
        )
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:  # more than two classes: the multinomial loss, for the logistic loss (the default)
            tags.classifier_tags.multi_class = self._validated_loss().name in ("logistic", "multinomial")
        except (ValueError, TypeError):
            tags.classifier_tags.multi_class = False  # an invalid loss is reported by fit
        return tags

    def _encode_y(self, y, loss):
        classes = class_labels(y)
        if getattr(loss, "multiclass", False) or (loss.name == "logistic" and classes.size > 2):
            # more than two classes: the multinomial loss (the logistic loss's generalization)
            self.classes_ = classes
            return encode_classes(y, classes), (loss if getattr(loss, "multiclass", False)
                                                else Multinomial())
        self.classes_, y01 = encode_labels(y, loss, classes)
        return y01, loss

    def _fit_weights(self, labels, s):
        s = class_weighted(self.class_weight, self.classes_, labels, s)
        if s is not None:
            check_class_totals(self.classes_, labels, s)
        return s

    def _inference_target(self, y):
        classes = class_labels(y)
        unknown = classes[~np.isin(classes, self.classes_)]
        if unknown.size:
            raise ValueError(f"y has labels the fit did not see: {unknown[:5].tolist()} (classes_ are "
                             f"{self.classes_.tolist()})")
        return (y == self.classes_[1]).astype(np.float64)

    def decision_function(self, X, offset=None):
        """η = Xβ + b (+ ``offset``, as given to fit) (numpy for numpy input, a lazy dask array for
        dask or zarr input): shape (n,) for two classes, positive values predicting ``classes_[1]``;
        (n, K) with the multinomial loss (more than two classes, or ``loss="multinomial"`` given
        for two), column k for ``classes_[k]``."""
        return self._linear(self._predict_input(X), offset)

    @available_if(_gives_probabilities)
    def predict_proba(self, X, offset=None):
        """Class probabilities, shape (n, K), columns in the order of ``classes_``, rows summing to 1
        (losses with a probability model only: not the hinge loss). ``offset``: as given to fit."""
        X = self._predict_input(X)
        p1 = self._linear(X, offset, self.loss_.inverse_link)
        return p1 if self._multiclass() else np.stack([1.0 - p1, p1], axis=1)

    @available_if(_gives_probabilities)
    def predict_log_proba(self, X, offset=None):
        """Logarithms of :meth:`predict_proba` (computed stably from η)."""
        check_is_fitted(self, "coef_")
        if self._multiclass():
            return self._linear(self._predict_input(X), offset, log_softmax)
        if self.loss_.name != "logistic":
            return np.log(self.predict_proba(X, offset))
        eta = self.decision_function(X, offset)  # log σ(±η) = −log(1 + e^∓η), exact in both tails
        return np.stack([-np.logaddexp(0.0, eta), -np.logaddexp(0.0, -eta)], axis=1)

    def predict(self, X, offset=None):
        """The most probable class of each row (ties go to the first of ``classes_``). ``offset``: as
        given to fit."""
        X = self._predict_input(X)
        classes = self.classes_
        if self._multiclass():
            return self._linear(X, offset, lambda eta: classes[eta.argmax(axis=1)], dtype=classes.dtype,
                                ndim=1)
        return self._linear(X, offset, lambda eta: classes[(eta > 0).astype(np.intp)], dtype=classes.dtype)

    def score(self, X, y, sample_weight=None):
        """Accuracy (weighted by ``sample_weight`` if given)."""
        if not _arrays.is_lazy_input(X):
            return super().score(X, y, sample_weight=sample_weight)
        y = as_target(y)
        correct = (self.predict(X) == y).astype(np.float64)
        return _weighted_mean(correct, None if sample_weight is None else as_weight(sample_weight, y))


class SMEMRegressor(RegressorMixin, _SMEMBase):
    r"""Linear regression fitted by Scale Mixture EM.

    Minimizes :math:`F(β, b) = \frac1W \sum_i s_i ℓ(y_i, x_i^Tβ + b) + α P(β)`; with the default
    squared loss ℓ = ½(y − η)² and ridge P(β) = ½‖β‖² this is scikit-learn's ``Ridge(alpha=a)``
    with α = a/n. Parameters and attributes as for :class:`SMEMClassifier` (no ``classes_`` nor
    ``class_weight``); losses: "squared", "huber", "quantile", "student_t", "poisson", "negbin".
    """

    _kind = "regressor"

    # spelled out as in SMEMClassifier (no **kwargs): scikit-learn reads the parameters from the signature
    def __init__(self, *, loss="squared", penalty="l2", alpha=1e-4, l1_ratio=None, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="auto", max_time=None, categorical_drop=None):
        super().__init__(
            loss=loss, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, fit_intercept=fit_intercept,
            acceleration=acceleration, tol=tol, max_iter=max_iter, persist=persist,
            split_every=split_every, verbose=verbose, loss_params=loss_params,
            penalty_params=penalty_params, penalty_solver=penalty_solver, curvature=curvature,
            max_time=max_time, categorical_drop=categorical_drop,
        )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            loss = get_loss(self.loss, **(self.loss_params or {}))
            tags.target_tags.positive_only = loss.nonnegative_target
        except (ValueError, TypeError):
            pass  # an invalid loss is reported by fit
        return tags

    def _encode_y(self, y, loss):
        return encode_real(y, loss), loss

    def predict(self, X, offset=None):
        """The predicted mean (the inverse link of η = Xβ + b + ``offset``, as given to fit: with a
        log-exposure offset, the expected count for that exposure)."""
        return self._linear(self._predict_input(X), offset, self.loss_.inverse_link)

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R² (weighted by ``sample_weight`` if given)."""
        if not _arrays.is_lazy_input(X):
            return super().score(X, y, sample_weight=sample_weight)
        y = as_target(y).astype(np.float64)
        s = None if sample_weight is None else as_weight(sample_weight, y)
        resid = (y - self.predict(X)) ** 2
        ybar = _weighted_mean(y, s)
        return 1.0 - _weighted_mean(resid, s) / _weighted_mean((y - ybar) ** 2, s)


def check_offset_applies(loss: Loss) -> None:
    """An offset enters η of the smooth losses of one linear predictor."""
    if not loss.smooth or getattr(loss, "multiclass", False):
        raise ValueError(f"an offset does not apply to the {loss.name} loss: offsets are for the smooth "
                         "losses of one linear predictor (logistic, squared, huber, student_t, poisson, "
                         "negbin)")


def _weighted_mean(v, s) -> float:
    """Σ s v / Σ s (the plain mean when s is None), for numpy or dask v and s."""
    if s is None:
        (m,) = _arrays.compute(v.mean())
        return float(m)
    s = s.astype(np.float64)
    num, den = _arrays.compute((v * s).sum(), s.sum())
    return float(num / den)


def _printer(nbytes: int, file=None):
    """A callback printing one line per iteration: objective, change, pass time, throughput."""
    out = file or sys.stdout
    passes_before = [0]

    def show(rec: IterationRecord) -> None:
        passes = rec.n_passes - passes_before[0]
        passes_before[0] = rec.n_passes
        rate = passes * nbytes / rec.pass_seconds / 1e6 if rec.pass_seconds > 0 else float("nan")
        speed = "     — MB/s" if np.isnan(rate) else f"{rate:8.0f} MB/s"  # (bytes of sparse blocks: unknown)
        change = "" if rec.iteration == 0 else f"{rec.change:10.2e}"
        flag = "  restart" if rec.restarted else ""
        print(f"iter {rec.iteration:4d}  F={rec.objective:.12f}  dF/F={change:>10}  "
              f"|grad|={rec.grad_norm:.2e}  passes={rec.n_passes:3d}  "
              f"pass={rec.pass_seconds:6.2f}s  {speed}{flag}", file=out, flush=True)

    return show


def fit_path(X, y, loss="logistic", penalty="l2", *, sample_weight=None, alphas=None, n_alphas=40,
             eps=1e-3, batch="auto", store=None, callback=None, max_time=None, cv=None, folds=None,
             **params):
    """A regularization path of ``loss`` + α·``penalty``: ``n_alphas`` values of α from
    α_max down to α_max·``eps`` (or the given ``alphas``), largest first, warm-started.

    ``params`` are estimator parameters (``fit_intercept``, ``tol``, ``loss_params``, …). Returns a
    :class:`smem_dask.path.PathResult` with ``alphas``, ``coefs``, ``intercepts``, ``objectives``,
    ``n_iter``, ``n_passes``, ``converged`` per α, and ``total_passes``. ``batch``, ``store`` and
    ``callback``: see :meth:`SMEMClassifier.path`. ``max_time``: seconds for the whole path; α not
    reached in time are NaN and not converged (see :class:`~smem_dask.path.PathResult`).

    With ``cv`` (a number of folds, a scikit-learn splitter or (train, test) pairs) or ``folds`` (a
    fold label per row), the path is cross-validated: this is :func:`smem_dask.fit_cv`, which
    returns a :class:`~smem_dask.cv.CVResult` (its ``path`` is the all-rows path; ``callback(i,
    alpha, row)`` gets the held-out scores of α i, see :func:`smem_dask.cv.solve_cv`).
    """
    if cv is not None or folds is not None:
        from .cv_estimators import fit_cv

        return fit_cv(X, y, loss, penalty, sample_weight=sample_weight, folds=folds,
                      cv=5 if cv is None else cv, store=store, callback=callback, alphas=alphas,
                      n_alphas=n_alphas, eps=eps, batch=batch, max_time=max_time, **params)
    loss_obj = get_loss(loss, **(params.get("loss_params") or {}))
    cls = SMEMClassifier if loss_obj.is_classifier else SMEMRegressor
    return cls(loss=loss, penalty=penalty, max_time=max_time, **params).path(
        X, y, sample_weight, alphas=alphas, n_alphas=n_alphas, eps=eps, batch=batch, store=store,
        callback=callback)
