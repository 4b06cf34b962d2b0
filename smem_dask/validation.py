"""Input checks and conversions of the estimators: X, y, sample and class weights, labels, flags.

Every message names the problem (see ``tests/test_validation.py``). Numpy inputs are checked by
scikit-learn; lazy inputs (dask, zarr, dask DataFrames, xarray) are checked without reading them, or
by one reduction where values must be seen.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import column_or_1d
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import validate_data

from . import arrays as _arrays
from .frames import is_frame, learn_encoding, needs_encoding
from .losses import Loss

#: dtypes X is fitted in without a copy (float32 is accumulated in float64 by the kernel)
_X_DTYPES = [np.float64, np.float32]
#: scipy sparse formats taken as they are (others become CSR): the kernel's products and Grams are
#: sparse (see smem_dask.stats)
_SPARSE = ["csr", "csc"]


def validate_X(est, X, *, reset: bool):
    """X as a numpy array (checked by scikit-learn) or a lazy dask array (zarr arrays, dask
    DataFrames and dask-backed xarray DataArrays become one; shape and feature names checked
    without reading it: a DataFrame's column names are checked on its empty ``_meta``). ``reset``:
    at fit. A pandas or dask DataFrame with categorical or text columns is one-hot encoded
    (:mod:`smem_dask.frames`): the encoding is learned at fit (``est.encoding_``) and applied at
    predict, where the frame's columns may come in another order."""
    if reset and hasattr(est, "encoding_"):
        del est.encoding_  # of an earlier fit
    encoding = getattr(est, "encoding_", None)
    if is_frame(X) and (encoding is not None or (reset and needs_encoding(X))):
        return _encoded(est, X, reset)
    if encoding is not None:
        encoded = [repr(c) for c, lv in zip(encoding.columns, encoding.levels, strict=True) if lv is not None]
        raise ValueError(f"this {type(est).__name__} was fitted on a DataFrame with encoded columns "
                         f"({', '.join(encoded)}); pass a DataFrame with those columns")
    if _arrays.is_xarray(X):
        X = _arrays.as_array(X, "X")  # its data: a dask array stays lazy
    if _arrays.is_lazy_input(X):
        meta = _arrays.frame_meta(X)
        if meta is not None and meta.ndim == 2:
            validate_data(est, meta, skip_check_array=True, reset=reset)
        X = _arrays.as_array(X, "X")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}")
        if meta is None:
            validate_data(est, X, skip_check_array=True, reset=reset)
        if X.dtype.kind not in "biuf":
            raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
        return X
    if isinstance(X, np.ma.MaskedArray):
        X = _arrays.as_array(X, "X")  # refused when anything is masked
    if getattr(getattr(X, "dtype", None), "kind", None) in ("U", "S"):
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    if not reset:
        return validate_data(est, X, reset=False, dtype=_X_DTYPES, accept_sparse=_SPARSE)
    if getattr(X, "ndim", None) == 1:
        raise ValueError(f"X must be 2-dimensional (n_samples, n_features), got shape {X.shape}; "
                         "reshape a single feature with X.reshape(-1, 1)")
    try:
        # non-finite values are counted (with their number) by the engine's first pass
        return validate_data(est, X, reset=True, dtype=_X_DTYPES, ensure_all_finite=False,
                             accept_sparse=_SPARSE)
    except ValueError as exc:
        if "could not convert" in str(exc) or "argument must be a string" in str(exc):
            raise ValueError(f"X must hold real numbers: {exc}") from exc
        raise


def validate_fit_data(est, X, y, sample_weight, reset: bool = True):
    """X, y and the sample weights of a fit, checked and as arrays (the estimator ``est`` records X's
    features; with ``reset=False`` X is checked against the fitted ones, as at predict)."""
    if y is None:
        raise ValueError(f"{type(est).__name__} requires y to be passed, but the target y is None")
    X = validate_X(est, X, reset=reset)
    y = as_target(y)
    s = None if sample_weight is None else as_weight(sample_weight, y)
    _arrays.check_shapes(X, y, s)
    return X, y, s


def _encoded(est, X, reset: bool):
    """A DataFrame with encoded columns as X (numpy or lazy dask), its names checked as scikit-learn
    checks them (after putting its columns in the fitted order at predict)."""
    if not reset:
        names = [str(c) for c in est.encoding_.columns]
        if sorted(map(str, X.columns)) == sorted(names) and list(map(str, X.columns)) != names:
            X = X[list(est.encoding_.columns)]
    meta = _arrays.frame_meta(X)
    validate_data(est, X if meta is None else meta, skip_check_array=True, reset=reset)
    if reset:
        est.encoding_ = learn_encoding(X, getattr(est, "categorical_drop", None))
    return est.encoding_.transform(X)


def check_flags(fit_intercept, persist) -> None:
    """``fit_intercept`` is a bool, ``persist`` "auto" or a bool."""
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise ValueError(f"fit_intercept must be True or False, got {fit_intercept!r}")
    if not (isinstance(persist, (bool, np.bool_)) or
            (isinstance(persist, str) and persist == "auto")):
        raise ValueError(f"persist must be 'auto', True or False, got {persist!r}")


def as_target(y):
    """y as a 1-d numpy or dask array; a column vector (n, 1) is raveled with scikit-learn's
    ``DataConversionWarning``."""
    if _arrays.is_lazy_input(y):
        y = _arrays.as_array(y, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the "
                          "shape of y to (n_samples,), for example using ravel().", DataConversionWarning,
                          stacklevel=3)
            return y[:, 0]
        return y
    if isinstance(y, np.ma.MaskedArray):
        y = _arrays.as_array(y, "y")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return y


def as_weight(sample_weight, y):
    """Sample weights as a numpy or dask array; a scalar weights every row alike, as in scikit-learn."""
    s = _arrays.as_array(sample_weight, "sample_weight")
    if s.ndim == 0:
        return np.full(y.shape[0], float(s))
    return s


def as_offset(offset, n_rows: int):
    """An offset (a known term of each row's linear predictor, e.g. log exposure) as a numpy or dask
    float64 array of shape (n_rows,), finite (a dask offset is checked by one read of it alone)."""
    if offset is None:
        return None
    o = _arrays.as_array(offset, "offset")
    if o.ndim != 1 or o.shape[0] != n_rows:
        raise ValueError(f"offset must hold one value per row: shape ({n_rows},), got {tuple(o.shape)}")
    if o.dtype.kind not in "biuf":
        raise ValueError(f"offset must hold real numbers, got dtype {o.dtype}")
    o = o.astype(np.float64)
    (n_bad,) = _arrays.compute((~np.isfinite(o)).sum())
    if n_bad:
        raise ValueError(f"offset contains {int(n_bad)} NaN or infinite values")
    return o


def check_no_missing(y) -> None:
    """An in-memory object y holds no None (numpy would compare it with the other labels)."""
    if y.dtype.kind == "O":
        missing = np.flatnonzero(np.equal(y, None))
        if missing.size:
            at = ", ".join(str(i) for i in missing[:5]) + (", …" if missing.size > 5 else "")
            raise ValueError(f"y contains {missing.size} missing values (None) at rows {at}; every row "
                             "needs a value")


def check_labels(y) -> None:
    """Labels of an in-memory y: no None, one kind of value, a classification target."""
    check_no_missing(y)
    if y.dtype.kind == "O":
        try:
            np.unique(y)
        except TypeError as exc:
            kinds = sorted({type(v).__name__ for v in y})
            raise ValueError(f"y mixes label types ({', '.join(kinds)}); give every label the same "
                             "type") from exc
    if y.dtype.kind == "f" and np.isnan(y).any():
        return  # NaN is reported by the caller with its own message
    check_classification_targets(y)


def shown(c) -> str:
    """A label as the user wrote it: 2.0, not numpy's np.float64(2.0)."""
    return repr(c.item() if isinstance(c, np.generic) else c)


def check_sample_weight(s) -> None:
    if s.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold real numbers, got dtype {s.dtype}")
    n_bad, smin, total = _arrays.compute((~np.isfinite(s)).sum(), s.min(), s.sum())
    if n_bad:
        raise ValueError(f"sample_weight contains {int(n_bad)} NaN or infinite values")
    if smin < 0:
        raise ValueError(f"sample_weight must be non-negative; found {float(smin)!r}")
    if total <= 0:
        raise ValueError("sample_weight sums to zero")


def class_labels(y) -> np.ndarray:
    """The sorted classes of y (numpy or dask), checked: no NaN, infinity or missing labels, one
    kind of label, at least two classes."""
    if not _arrays.is_lazy(y):
        check_labels(y)
    classes = _arrays.unique(y)
    if classes.dtype.kind == "f" and np.isnan(classes).any():
        raise ValueError("y contains NaN")
    if classes.dtype.kind == "f" and np.isinf(classes).any():
        raise ValueError("y contains infinity")
    if classes.size < 2:
        raise ValueError(
            f"y has only one class ({shown(classes[0])}); a classifier needs two classes"
            if classes.size else "y is empty"
        )
    return classes


def encode_labels(y, loss: Loss, classes: np.ndarray | None = None):
    """The two classes of y and y as 0/1 floats (1: the second class), for ``loss`` (``classes``:
    y's, from :func:`class_labels`, when known)."""
    classes = class_labels(y) if classes is None else classes
    if classes.size > 2:
        listed = ", ".join(shown(c) for c in classes[:5]) + (", …" if classes.size > 5 else "")
        raise ValueError(f"y has {classes.size} classes ({listed}); loss {loss.name!r} "
                         "needs exactly two (Only binary classification is supported)")
    return classes, (y == classes[1]).astype(np.float64)


def encode_classes(y, classes: np.ndarray):
    """y as the index of its class in ``classes`` (sorted, from :func:`class_labels`), as floats
    0.0 … K − 1 (the multinomial loss's targets)."""
    if _arrays.is_lazy(y):
        return y.map_blocks(lambda b: np.searchsorted(classes, b).astype(np.float64), dtype=np.float64)
    return np.searchsorted(classes, y).astype(np.float64)


def encode_real(y, loss: Loss):
    """y as real floats for ``loss`` (finite; counts ≥ 0 where the loss needs them)."""
    if y.dtype.kind == "O" and not _arrays.is_lazy(y):
        check_no_missing(y)
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"y must hold real numbers: {exc}") from exc
    if y.dtype.kind not in "biuf":
        raise ValueError(f"y must hold real numbers, got dtype {y.dtype}")
    n_bad, y_min = _arrays.compute((~np.isfinite(y)).sum(), y.min())
    if n_bad:
        raise ValueError(f"y contains {int(n_bad)} NaN or infinite values")
    if loss.nonnegative_target and y_min < 0:
        raise ValueError(f"loss {loss.name!r} needs counts y ≥ 0; found {float(y_min)!r}")
    return y.astype(np.float64)


def class_weighted(cw, classes, y01, s):
    """The sample weights times the class weights ``cw`` (the estimator's ``class_weight``) of
    ``classes``; None: all ones."""
    if cw is None:
        return s
    if isinstance(cw, str) and cw == "balanced":
        # n / (K · count of the class), as scikit-learn
        (counts,) = _arrays.compute(_class_counts(y01, classes.size))
        weights = y01.shape[0] / (classes.size * np.asarray(counts, dtype=np.float64))
    elif isinstance(cw, dict):
        unknown = [k for k in cw if k not in classes.tolist()]
        if unknown:
            raise ValueError(f"class_weight names classes that are not in y: {unknown!r} "
                             f"(classes: {list(classes)!r})")
        weights = np.array([cw.get(c, 1.0) for c in classes], dtype=np.float64)
    else:
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
    if not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError(f"class weights must be finite and non-negative, got {weights.tolist()}")
    per_row = _per_row(weights, y01)
    return per_row if s is None else s * per_row


def _per_row(values: np.ndarray, labels):
    """values[label] for each row's class index (0/1 floats, or 0 … K − 1 for the multinomial loss)."""
    if values.size == 2:
        return values[0] + (values[1] - values[0]) * labels
    if _arrays.is_lazy(labels):
        return labels.map_blocks(lambda b: values[b.astype(np.intp)], dtype=np.float64)
    return values[np.asarray(labels).astype(np.intp)]


def _class_counts(labels, K: int, s=None):
    """Σ s (or the count) of the rows of each class index 0 … K − 1 (lazy for dask labels)."""
    lab = labels if _arrays.is_lazy(labels) else np.asarray(labels)
    one = np.ones_like(lab) if s is None else s
    return [(one * (lab == k)).sum() for k in range(K)]


def check_class_totals(classes, labels, s) -> None:
    """Every class has positive total weight."""
    totals = _arrays.compute(*_class_counts(labels, classes.size, s))
    for c, wc in zip(classes, totals, strict=True):
        if not wc > 0:
            raise ValueError(f"class {shown(c)} has zero total weight; a classifier needs "
                             f"{'two classes' if classes.size == 2 else 'every class'} of positive weight")
