"""Golden results: a fixed set of fits and paths whose coefficients, objectives, iteration and pass counts
were recorded before the solver and engine were restructured (issue 15), so that a refactor shows it
changed nothing. ``tests/test_golden.py`` compares every case with ``tests/golden/results.json``.

Record them again only for a change that is meant to change results, and say why in the commit:

    PYTHONPATH=. python tests/golden_cases.py        # rewrites tests/golden/results.json

Every float is kept as ``float.hex`` (bitwise). Cases cover every loss, the three accelerations, the three
curvature modes, the exact and EM penalty solvers, convex and non-convex penalties, lockstep and sequential
paths, the numpy and dask engines (dask on uneven chunks, synchronous scheduler).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np

from smem_dask import SMEMClassifier, SMEMRegressor, fit_path, make_problem

GOLDEN = Path(__file__).with_name("golden") / "results.json"
N, P = 600, 5


def _data(task: str):
    """Small deterministic problems: labels, real targets, counts (no random draw for the counts)."""
    if task == "classification":
        return make_problem(N, P, seed=11, cond=1e3)
    X, y = make_problem(N, P, seed=12, cond=1e3, task="regression")
    if task == "counts":
        y = np.floor(np.exp(0.4 * X @ np.linspace(1.0, -1.0, P) + 0.5) * 1.7)
    return X, y


_TASK = {"logistic": "classification", "hinge": "classification", "poisson": "counts",
         "negbin": "counts"}


def _lazy(a):
    rows = (250, 150, 200)  # uneven row chunks
    return da.from_array(a, chunks=(rows,) if a.ndim == 1 else (rows, a.shape[1]))


def _fit_cases() -> dict[str, dict]:
    cases = {}
    for loss in ("logistic", "hinge", "squared", "huber", "quantile", "student_t", "poisson", "negbin"):
        cases[f"fit/{loss}"] = {"loss": loss}
    for acc in ("none", "nesterov"):
        cases[f"fit/logistic/acceleration={acc}"] = {"loss": "logistic", "acceleration": acc}
        cases[f"fit/poisson/acceleration={acc}"] = {"loss": "poisson", "acceleration": acc}
    for loss, curv in (("logistic", "fixed"), ("logistic", "cached"), ("squared", "fixed"),
                       ("squared", "cached"), ("huber", "fixed"), ("poisson", "cached")):
        cases[f"fit/{loss}/curvature={curv}"] = {"loss": loss, "curvature": curv}
    for pen, extra in (("l1", {}), ("l1", {"penalty_solver": "em"}), ("elasticnet", {"l1_ratio": 0.3}),
                       ("group", {"penalty_params": {"groups": [0, 0, 1, 1, 2]}}), ("bridge", {}),
                       ("scad", {}), ("mcp", {}), ("log", {})):
        name = f"fit/logistic/penalty={pen}" + ("/em" if extra.get("penalty_solver") == "em" else "")
        cases[name] = {"loss": "logistic", "penalty": pen, "alpha": 3e-3, **extra}
    cases["fit/squared/penalty=l1"] = {"loss": "squared", "penalty": "l1", "alpha": 1e-2}
    cases["fit/quantile/penalty=l1"] = {"loss": "quantile", "penalty": "l1", "alpha": 1e-3}
    for name in ("fit/logistic", "fit/hinge", "fit/poisson", "fit/squared/penalty=l1",
                 "fit/logistic/curvature=cached", "fit/logistic/penalty=scad"):
        cases[name.replace("fit/", "fit-dask/", 1)] = {**cases[name], "dask": True}
    return cases


def _path_cases() -> dict[str, dict]:
    return {
        "path/logistic/l2/lockstep": {"loss": "logistic", "penalty": "l2"},
        "path/logistic/l2/sequential": {"loss": "logistic", "penalty": "l2", "batch": 1},
        "path/logistic/l1/lockstep": {"loss": "logistic", "penalty": "l1"},
        "path/squared/l1/batch=3": {"loss": "squared", "penalty": "l1", "batch": 3},
        "path/squared/elasticnet/fixed": {"loss": "squared", "penalty": "elasticnet", "curvature": "fixed"},
        "path/poisson/l2/cached": {"loss": "poisson", "penalty": "l2", "curvature": "cached"},
        "path-dask/logistic/l1/lockstep": {"loss": "logistic", "penalty": "l1", "dask": True},
        "path-dask/squared/l2/sequential": {"loss": "squared", "penalty": "l2", "batch": 1, "dask": True},
    }


CASES = {**_fit_cases(), **_path_cases()}


def _hex(values) -> list[str]:
    return [float(v).hex() for v in np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()]


def run_case(name: str) -> dict:
    """The recorded quantities of one case (floats as ``float.hex``)."""
    spec = dict(CASES[name])
    lazy = spec.pop("dask", False)
    loss = spec["loss"]
    X, y = _data(_TASK.get(loss, "regression"))
    if lazy:
        X, y = _lazy(X), _lazy(y)
    with warnings.catch_warnings(), dask.config.set(scheduler="sync"):
        warnings.simplefilter("ignore")  # a case may end unconverged: that too is recorded
        if name.startswith("path"):
            batch = spec.pop("batch", "auto")
            penalty = spec.pop("penalty")
            path = fit_path(X, y, loss=spec.pop("loss"), penalty=penalty, n_alphas=6, eps=1e-2,
                            batch=batch, tol=1e-9, **spec)
            return {"coefs": _hex(path.coefs), "intercepts": _hex(path.intercepts),
                    "objectives": _hex(path.objectives), "n_iter": path.n_iter.tolist(),
                    "n_passes": path.n_passes.tolist(), "total_passes": int(path.total_passes),
                    "converged": path.converged.tolist()}
        cls = SMEMClassifier if loss in ("logistic", "hinge") else SMEMRegressor
        params = {"alpha": 1e-3, "tol": 1e-9, **spec}
        est = cls(**params).fit(X, y)
        return {"coef": _hex(est.coef_), "intercept": _hex(est.intercept_),
                "objective": _hex(est.objective_), "history": _hex(est.objective_history_),
                "n_iter": int(est.n_iter_), "n_passes": int(est.n_passes_),
                "converged": bool(est.converged_)}


def record() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    results = {name: run_case(name) for name in CASES}
    GOLDEN.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(results)} cases to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    record()
