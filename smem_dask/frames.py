"""DataFrames with categorical (or text) columns: their one-hot encoding, learned once and applied the
same way at fit and at predict. Part of the engine layer (dask DataFrames are encoded partition by
partition, on the workers).

A column of numbers or booleans is one column of X. A categorical, string or object column becomes one
indicator column per level, named ``column[level]`` — every level, as ``pandas.get_dummies`` does (with
an intercept the indicators of a column sum to the intercept's column: a ridge penalty, the default,
makes the fit unique; an unpenalized fit solves it in the least-squares sense). The levels are those of
a categorical dtype with known categories, in their order; otherwise the sorted distinct values, found
by one read of those columns alone. A level not seen at fit, and a missing value in an encoded column,
is an error naming the column (an all-zero row would be a silent guess). The encoded X of a dask
DataFrame is made block by block where its partitions are read; it is never gathered whole.

A row of the encoded X has at most one nonzero per input column. When that is a small part of its
columns — below the kernel's :data:`~smem_dask.stats.SPARSE_MAX_DENSITY` (a column of many
levels) — X is made as scipy CSR (blocks of CSR for a dask DataFrame), whose pass costs about
(nonzeros per row)² per row for the Gram instead of (columns)²: the indicators' block of XᵀWX is
diagonal, and the sparse product finds that without being told (``python -m benchmarks sparse``
measures it). Otherwise X is dense.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .arrays import frame_as_array, is_dask_frame, with_counted_rows
from .resources import _compute_watched
from .stats import SPARSE_MAX_DENSITY

__all__ = ["Encoding", "is_frame", "learn_encoding", "needs_encoding"]

#: more levels than this in one column is refused (its indicator columns would swamp the Gram)
MAX_LEVELS = 100_000


def is_frame(X) -> bool:
    """A pandas or dask DataFrame."""
    if is_dask_frame(X):
        return X.ndim == 2
    return type(X).__name__ == "DataFrame" and hasattr(X, "dtypes") and hasattr(X, "columns")


def _is_number(dtype) -> bool:
    import pandas as pd

    return (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)) and not isinstance(
        dtype, pd.CategoricalDtype)


def needs_encoding(frame) -> bool:
    """Whether a DataFrame has a column that is not numbers or booleans."""
    meta = frame._meta if is_dask_frame(frame) else frame
    return not all(_is_number(t) for t in meta.dtypes)


@dataclass(frozen=True)
class Encoding:
    """How a DataFrame's columns become X: ``columns`` in order, each with None (numbers) or its
    levels (indicator columns)."""

    columns: tuple
    levels: tuple
    drop_first: bool = False

    def _kept(self, levels) -> tuple:
        return levels[1:] if self.drop_first else levels

    @property
    def names_out(self) -> list[str]:
        """The names of X's columns: ``column`` or ``column[level]``."""
        out = []
        for name, levels in zip(self.columns, self.levels, strict=True):
            out += [str(name)] if levels is None else [f"{name}[{level}]" for level in self._kept(levels)]
        return out

    @property
    def n_out(self) -> int:
        return sum(1 if lv is None else len(self._kept(lv)) for lv in self.levels)

    def sparse_nbytes(self, n_rows: int) -> int:
        """An upper bound of the bytes of the CSR X of ``n_rows`` rows: at most one stored value
        (float64) and column index (int32, as scipy stores them) per input column in each row, and
        a row pointer per row."""
        return int(n_rows) * (12 * len(self.columns) + 4) + 4

    @property
    def sparse(self) -> bool:
        """Whether X is made sparse: at most one nonzero per input column in each row, a share of
        X's columns below the kernel's sparse threshold."""
        return len(self.columns) < SPARSE_MAX_DENSITY * self.n_out

    def transform(self, frame):
        """X from a frame with these columns (any order): numpy float64 (scipy CSR when
        :attr:`sparse`) for pandas, a lazy dask array (known row chunks; CSR blocks when
        :attr:`sparse`) for dask."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise ValueError(f"X lacks the columns {missing[:5]} the estimator was fitted with")
        frame = frame[list(self.columns)]
        if not is_dask_frame(frame):
            return self._encode_sparse(frame) if self.sparse else self._encode(frame)
        import pandas as pd

        if self.sparse:
            import scipy.sparse

            meta = scipy.sparse.csr_matrix((0, self.n_out))
            return with_counted_rows(frame.map_partitions(self._encode_sparse, meta=meta), meta)
        meta = pd.DataFrame({name: np.zeros(0) for name in self.names_out})
        encoded = frame.map_partitions(self._encode_frame, meta=meta)
        return frame_as_array(encoded, "X")

    def _encode_frame(self, part):
        import pandas as pd

        return pd.DataFrame(self._encode(part), columns=self.names_out, index=part.index)

    def _entries(self, part):
        """For each input column: (rows, X's columns, values) of its entries in the encoded X."""
        import pandas as pd

        n = len(part)
        j = 0
        for name, levels in zip(self.columns, self.levels, strict=True):
            col = part[name]
            if levels is None:
                yield np.arange(n), np.full(n, j), np.asarray(col, dtype=np.float64)
                j += 1
                continue
            values = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col
            codes = pd.Index(list(levels), dtype=object).get_indexer(np.asarray(values, dtype=object))
            bad = codes < 0
            if bad.any():
                seen = pd.Series(np.asarray(values, dtype=object)[bad])
                if seen.isna().any():
                    raise ValueError(f"column {name!r} has {int(seen.isna().sum())} missing values; an "
                                     "encoded column needs a level in every row")
                raise ValueError(f"column {name!r} has levels not seen at fit: "
                                 f"{list(pd.unique(seen))[:5]}")
            if self.drop_first:  # the first level: no indicator (the intercept's)
                rows = np.flatnonzero(codes > 0)
                yield rows, j + codes[rows] - 1, np.ones(rows.size)
            else:
                yield np.arange(n), j + codes, np.ones(n)
            j += len(self._kept(levels))

    def _encode(self, part) -> np.ndarray:
        out = np.zeros((len(part), self.n_out))
        for rows, cols, values in self._entries(part):
            out[rows, cols] = values
        return out

    def _encode_sparse(self, part):
        """The encoded X as scipy CSR (the numbers' zeros stored too: one entry per input column
        in every row, less the dropped first levels)."""
        import scipy.sparse

        pieces = list(self._entries(part))
        rows, cols, values = (np.concatenate([piece[i] for piece in pieces]) for i in range(3))
        return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(len(part), self.n_out))


def learn_encoding(frame, drop=None) -> Encoding:
    """The encoding of a frame's columns (one read of the encoded columns whose levels the dtype
    does not give); ``drop="first"``: no indicator for each column's first level."""
    if drop not in (None, "first"):
        raise ValueError(f"categorical_drop must be None or 'first', got {drop!r}")
    import pandas as pd

    meta = frame._meta if is_dask_frame(frame) else frame
    columns, levels, to_find = list(meta.columns), [], []
    for name, dtype in meta.dtypes.items():
        if _is_number(dtype):
            levels.append(None)
        elif isinstance(dtype, pd.CategoricalDtype) and (not is_dask_frame(frame)
                                                         or frame[name].cat.known):
            cats = list(frame[name].cat.categories if not is_dask_frame(frame) else dtype.categories)
            levels.append(tuple(cats))
        else:
            levels.append("find")
            to_find.append(name)
    if to_find:
        if is_dask_frame(frame):
            found = _compute_watched(*[frame[c].dropna().unique() for c in to_find])
        else:
            found = [frame[c].dropna().unique() for c in to_find]
        found = dict(zip(to_find, found, strict=True))
        levels = [tuple(_sorted(found[c])) if lv == "find" else lv
                  for c, lv in zip(columns, levels, strict=True)]
    for name, lv in zip(columns, levels, strict=True):
        if lv is not None and len(lv) > MAX_LEVELS:
            raise ValueError(f"column {name!r} has {len(lv)} levels, more than {MAX_LEVELS}: encode it "
                             "another way (or drop it)")
        if lv is not None and len(lv) == 0:
            raise ValueError(f"column {name!r} has no levels (every value is missing)")
    return Encoding(tuple(columns), tuple(levels), drop == "first")


def _sorted(values) -> list:
    values = list(np.asarray(values, dtype=object))
    try:
        return sorted(values)
    except TypeError as exc:
        kinds = sorted({type(v).__name__ for v in values})
        raise ValueError(f"a column mixes kinds of values ({', '.join(kinds)}); make it one kind") from exc
