"""Cross-validated estimators: :class:`SMEMClassifierCV`, :class:`SMEMRegressorCV` and :func:`fit_cv`.

``fit`` runs a K-fold cross-validated regularization path (:func:`smem_dask.cv.solve_cv`): the K
training paths and the all-rows path in the same data passes, held-out scores from products those
passes make anyway; it selects α by the mean held-out score (``selection="min"``) or glmnet's
one-standard-error rule (``"1se"``) and keeps the all-rows path's coefficients there (no refit).

Folds: ``cv=K`` generated from each row's global index and ``random_state`` (independent of the
chunking), or ``fit(..., folds=labels)``, an integer label per row (numpy, dask or zarr aligned
with X; e.g. groups or time blocks), each distinct label a fold. ``folds`` is an argument of ``fit``
and not of the constructor, as scikit-learn passes per-row data (``groups``) to ``fit``.
"""

from __future__ import annotations

import numbers
import sys

import numpy as np

from . import arrays as _arrays
from .cv import SCORINGS, CVResult, scorings_for, solve_cv
from .estimators import SMEMClassifier, SMEMRegressor
from .folds import check_n_folds, folds_of_splits, generated_folds, given_folds
from .losses import get_loss
from .multinomial_cv import solve_multinomial_cv
from .path import lockstep_size
from .settings import SELECTIONS

__all__ = ["SMEMClassifierCV", "SMEMRegressorCV", "fit_cv"]

_CV_DOC = """
    Cross-validation parameters
    ---------------------------
    cv : int ≥ 2 — the number of folds generated when ``fit`` is given no ``folds`` (default 5): each
        group of K consecutive rows is spread over the K folds in an order drawn from
        ``random_state``, so fold sizes differ by at most one and do not depend on the chunking.
        Also (X in memory only) a scikit-learn splitter (``KFold``, ``GroupKFold``, …; its
        ``split(X, y)``) or a list of (train, test) index pairs, whose test sets partition the rows
    random_state : int ≥ 0 — the seed of the generated folds
    n_alphas, eps : the grid, ``n_alphas`` values from α_max (all coefficients zero for l1, elastic
        net and group; see :func:`smem_dask.path.alpha_max`) down to α_max·``eps``, log-spaced
    alphas : None or a sequence of α ≥ 0 — the grid itself (sorted largest first)
    scoring : "loss" | "misclassification" (classifiers) | "squared_error" | "absolute_error"
        (regressors) — the held-out score that selects α; "loss" is the held-out
        (1/W_k) Σ s ℓ, in the objective's units
    selection : "min" (the α with the least mean held-out score) | "1se" (the largest α within one
        standard error of that minimum, glmnet's rule)
    batch : "auto" | int — α run in lockstep (see :func:`smem_dask.cv.solve_cv`)
    curvature : "auto" | "newton" | "adaptive" | "fixed" | "cached" — "auto" (the default; None is
        the same): for the many fits of a cross-validation, "fixed" for the logistic, squared and
        huber losses, "newton" for poisson and negbin, "cached" for the others
        (:func:`smem_dask.curvature.auto_curvature`; the pick is ``curvature_``)

    Cross-validation attributes
    ---------------------------
    alphas_ (n_alphas,), alpha_ (the selected α), alpha_min_, alpha_1se_, cv_scores_ (n_folds,
    n_alphas: the held-out ``scoring`` of each fold's fit), cv_mean_ and cv_std_ (their mean over the
    folds, weighted by each fold's held-out weight, and its standard error), cv_loss_ (n_folds,
    n_alphas: the held-out loss, whatever the scoring), n_folds_, fold_labels_ (the label of each
    fold; given folds only), path_ (the all-rows :class:`~smem_dask.path.PathResult`), cv_result_
    (the whole :class:`~smem_dask.cv.CVResult`), n_passes_ (data passes of the whole
    cross-validation), coef_/intercept_ and the other fit attributes of the all-rows fit at
    ``alpha_``.
"""


class _CVMixin:
    """What the two cross-validated estimators add to their base: folds, the CV path, selection."""


    def _curvature(self, loss) -> str:
        return "auto" if self.curvature is None else self.curvature

    def _check_cv_params(self, loss) -> None:
        if _is_int(self.cv) or isinstance(self.cv, (float, str)) or self.cv is None:
            check_n_folds(self.cv)
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {self.selection!r}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"unknown scoring {self.scoring!r}; choose one of {', '.join(SCORINGS)}")
        if self.scoring not in scorings_for(loss):
            raise ValueError(f"scoring {self.scoring!r} does not apply to the {loss.name} loss; choose "
                             f"one of {', '.join(scorings_for(loss))}")

    def fit(self, X, y, sample_weight=None, folds=None, store=None, callback=None, offset=None):
        """Cross-validate the path and keep the all-rows fit at the selected α. Returns self.

        Parameters
        ----------
        X, y, sample_weight : as for the base estimator's ``fit``
        folds : None or (n,) integer labels (numpy, dask or zarr, aligned with X) — each distinct
            label is a fold (its rows are held out together); None: ``cv`` generated folds
        store : None or a directory — keeps every path and held-out score as it finishes, so that
            a cross-validation stopped (``max_time``, an interrupt, a crash) resumes where it was
            (see :mod:`smem_dask.cv_store`); refused if made from other data, folds or settings
        callback : None or ``callback(i, alpha, row)`` — called when α i (0 = the largest) is
            finished by every path and scored by every fold (in the order that happens, not always
            α's); ``row`` holds "alpha", "nonzero" and "objective" of the all-rows fit and the
            held-out f"{scoring}_mean", f"{scoring}_se", "loss_mean", "loss_se" (see
            :func:`smem_dask.cv.solve_cv`). α read whole from ``store`` are not reported. With
            ``verbose``, the estimator's own line is printed first
        offset : None or (n,) array — as for the base estimator's ``fit`` (the held-out scores are
            those of the offset model; give it again to ``predict``)
        """
        self._check_cv_params(get_loss(self.loss, **(self.loss_params or {})))
        labels = [None]
        y_fit = y

        def fold_ids(X):
            if folds is not None:
                if not _is_int(self.cv):
                    raise ValueError("give the folds once: as fit(folds=…) or as cv, not both")
                ids, labels[0] = given_folds(folds, X.shape[0])
                return ids
            if _is_int(self.cv):
                chunks = X.chunks[0] if _arrays.is_lazy(X) else None
                return generated_folds(X.shape[0], self.cv, self.random_state, chunks)
            if _arrays.is_lazy(X):
                raise ValueError("cv as a splitter or (train, test) pairs needs X in memory; for dask "
                                 "or zarr X give fit(folds=…), a fold label per row")
            splits = self.cv.split(X, y_fit) if hasattr(self.cv, "split") else self.cv
            ids = folds_of_splits(splits, X.shape[0])
            labels[0] = np.arange(int(ids.max()) + 1)
            return ids

        lockstep = lockstep_size(self.batch, self.alphas, self.n_alphas) or 1
        loss, penalty, config, eng = self._prepare(X, y, sample_weight, n_systems=lockstep,
                                                   folds=fold_ids, path=True, offset=offset)
        K = self.cv if labels[0] is None else len(labels[0])
        callbacks = [c for c in (_printer(self.scoring) if self.verbose else None, callback) if c]
        callback = None if not callbacks else callbacks[0] if len(callbacks) == 1 else _both(*callbacks)
        if getattr(loss, "multiclass", False):  # more than two classes
            if store is not None:
                raise ValueError("a cross-validation store does not keep multinomial paths yet; use "
                                 "store=None")
            result = solve_multinomial_cv(eng, len(self.classes_), penalty, K, alphas=self.alphas,
                                          n_alphas=self.n_alphas, eps=self.eps,
                                          fit_intercept=bool(self.fit_intercept), config=config,
                                          mode=config.curvature, batch=self.batch,
                                          scoring=self.scoring, callback=callback)
        else:
            result = solve_cv(eng, loss, penalty, K, alphas=self.alphas, n_alphas=self.n_alphas,
                              eps=self.eps, fit_intercept=bool(self.fit_intercept), config=config,
                              batch=self.batch, scoring=self.scoring, store=store, callback=callback,
                              store_settings={"folds": "given" if labels[0] is not None
                                              else {"cv": int(self.cv), "seed": int(self.random_state)}})
        self._set_cv(result, loss, labels[0])
        self.bytes_read_ = result.total_passes * eng.nbytes
        return self

    def _set_cv(self, result: CVResult, loss, labels) -> None:
        index = result.index_min if self.selection == "min" else result.index_1se
        fit = result.path.fits[index]
        self._set_fitted(fit, loss)
        self.n_passes_ = result.total_passes
        self.cv_result_ = result
        self.path_ = result.path
        self.alphas_ = result.alphas
        self.alpha_ = float(result.alphas[index])
        self.alpha_min_ = result.alpha_min
        self.alpha_1se_ = result.alpha_1se
        self.cv_scores_ = result.cv_scores
        self.cv_loss_ = result.scores["loss"]
        self.cv_mean_ = result.cv_mean
        self.cv_std_ = result.cv_se
        self.n_folds_ = result.n_folds
        if labels is not None:
            self.fold_labels_ = labels
        elif hasattr(self, "fold_labels_"):
            del self.fold_labels_


def _store_params(est, values: dict) -> None:
    """Set each argument of an ``__init__`` (its ``locals()``) as the attribute of its name."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(est, name, value)


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _both(first, second):
    def call(i, alpha, row):
        first(i, alpha, row)
        second(i, alpha, row)

    return call


def _printer(scoring: str, file=None):
    """A callback printing one line per α as the cross-validation finishes it."""
    out = file or sys.stdout

    def show(i, alpha, row):
        print(f"alpha[{i:3d}] = {alpha:.6g}  held-out {scoring} = {row[f'{scoring}_mean']:.6g} ± "
              f"{row[f'{scoring}_se']:.2g}  nonzero = {row['nonzero']}", file=out, flush=True)

    return show


class SMEMClassifierCV(_CVMixin, SMEMClassifier):
    __doc__ = (r"""Binary linear classifier with α chosen by K-fold cross-validation, by Scale Mixture EM.

    Every fold's path and the all-rows path run in the same data passes (about the passes of one
    path). ``LogisticRegressionCV(Cs, cv)`` of scikit-learn is the same selection with α = 1/(C·n).
    Parameters as :class:`~smem_dask.estimators.SMEMClassifier` (without ``alpha``), and:
""" + _CV_DOC)

    def __init__(self, *, loss="logistic", penalty="l2", l1_ratio=None, class_weight=None,
                 fit_intercept=True, acceleration="nesterov-restart", tol=1e-8, max_iter=1000,
                 persist="auto", split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="auto", max_time=None, cv=5, random_state=0,
                 n_alphas=40, eps=1e-3, alphas=None, scoring="loss", selection="min", batch="auto"):
        # every parameter stored as given (scikit-learn reads them back by the signature's names);
        # no alpha: it is chosen by the cross-validation
        _store_params(self, locals())


class SMEMRegressorCV(_CVMixin, SMEMRegressor):
    __doc__ = (r"""Linear regression with α chosen by K-fold cross-validation, by Scale Mixture EM.

    Every fold's path and the all-rows path run in the same data passes (about the passes of one
    path). ``LassoCV(alphas, cv)`` of scikit-learn is the same selection with
    ``penalty="l1"``, α = alpha and ``scoring="squared_error"``.
    Parameters as :class:`~smem_dask.estimators.SMEMRegressor` (without ``alpha``), and:
""" + _CV_DOC)

    def __init__(self, *, loss="squared", penalty="l2", l1_ratio=None, fit_intercept=True,
                 acceleration="nesterov-restart", tol=1e-8, max_iter=1000, persist="auto",
                 split_every=8, verbose=0, loss_params=None, penalty_params=None,
                 penalty_solver=None, curvature="auto", max_time=None, cv=5, random_state=0,
                 n_alphas=40, eps=1e-3, alphas=None, scoring="loss", selection="min", batch="auto"):
        # every parameter stored as given (scikit-learn reads them back by the signature's names);
        # no alpha: it is chosen by the cross-validation
        _store_params(self, locals())


def fit_cv(X, y, loss="logistic", penalty="l2", *, sample_weight=None, folds=None, cv=5, store=None,
           callback=None, **params) -> CVResult:
    """A K-fold cross-validated path of ``loss`` + α·``penalty`` (see :class:`SMEMClassifierCV`;
    ``params`` are its parameters; ``folds``, ``store`` and ``callback`` as its ``fit``). Returns
    the :class:`~smem_dask.cv.CVResult`."""
    loss_obj = get_loss(loss, **(params.get("loss_params") or {}))
    cls = SMEMClassifierCV if loss_obj.is_classifier else SMEMRegressorCV
    est = cls(loss=loss, penalty=penalty, cv=cv, **params)
    return est.fit(X, y, sample_weight, folds=folds, store=store, callback=callback).cv_result_
