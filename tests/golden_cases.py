"""Golden results: a fixed set of fits and paths whose coefficients, objectives, iteration and pass counts
were recorded before the solver and engine were restructured (issue 15), so that a refactor shows it
changed nothing. ``tests/test_golden.py`` compares every case with ``tests/golden/results.json``.

Record them again only for a change that is meant to change results, and say why in the commit:

    PYTHONPATH=. python tests/golden_cases.py        # rewrites tests/golden/results.json

Every float is kept as ``float.hex`` (bitwise). Cases cover every loss, the three accelerations, the four
curvature modes (newton added with issue 17), the exact and EM penalty solvers, convex and non-convex
penalties, lockstep and sequential paths, the numpy and dask engines (dask on uneven chunks,
synchronous scheduler).
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


def _data(task: str, wide: bool = False):
    """Small deterministic problems: labels, real targets, counts (no random draw for the counts);
    ``wide``: 40 rows × 60 columns (p > n); ``"steep"``: Poisson counts that need step halving."""
    if wide == "steep":  # counts whose E-step bound is left by full steps: step halving
        rng = np.random.default_rng(1)
        X = rng.normal(size=(300, 4)) * 2.0
        return X, rng.poisson(np.exp(X @ np.array([1.0, -0.5, 0.3, 0.8]))).astype(float)
    if wide:
        rng = np.random.default_rng(13)
        X = rng.normal(size=(40, 60))
        eta = X[:, :5] @ np.linspace(1.0, -1.0, 5)
        y = {"classification": (eta > 0).astype(float), "counts": np.floor(np.exp(0.3 * eta) * 1.7)}.get(
            task, eta + rng.normal(size=40))
        return X, y
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
    # the EM loop's branches (added before the loop was split into named steps): certificates and their
    # polish, the clamp continuation, restarts under every acceleration, cached/fixed Grams, halving
    for loss in ("hinge", "quantile"):
        for acc in ("none", "nesterov"):
            cases[f"fit/{loss}/acceleration={acc}"] = {"loss": loss, "acceleration": acc}
        cases[f"fit/{loss}/curvature=cached"] = {"loss": loss, "curvature": "cached"}
        cases[f"fit/{loss}/wide"] = {"loss": loss, "wide": True, "alpha": 1e-2}
        cases[f"fit/{loss}/wide/penalty=l1"] = {"loss": loss, "wide": True, "penalty": "l1", "alpha": 1e-2}
    cases["fit/hinge/penalty=l1"] = {"loss": "hinge", "penalty": "l1", "alpha": 1e-3}
    cases["fit/hinge/penalty=scad"] = {"loss": "hinge", "penalty": "scad", "alpha": 1e-3}
    cases["fit/quantile/alpha=0"] = {"loss": "quantile", "alpha": 0.0, "loss_params": {"tau": 0.2}}
    cases["fit/quantile/penalty=group"] = {"loss": "quantile", "penalty": "group", "alpha": 1e-3,
                                           "penalty_params": {"groups": [0, 0, 1, 1, 2]}}
    cases["fit/logistic/curvature=fixed/acceleration=none"] = {"loss": "logistic", "curvature": "fixed",
                                                              "acceleration": "none"}
    cases["fit/logistic/curvature=fixed/penalty=l1"] = {"loss": "logistic", "curvature": "fixed",
                                                       "penalty": "l1", "alpha": 3e-3}
    cases["fit/squared/curvature=cached/penalty=group/em"] = {
        "loss": "squared", "curvature": "cached", "penalty": "group", "penalty_solver": "em",
        "alpha": 1e-2, "penalty_params": {"groups": [0, 0, 1, 1, 2]}}
    cases["fit/poisson/penalty=l1"] = {"loss": "poisson", "penalty": "l1", "alpha": 1e-3}
    cases["fit/poisson/wide"] = {"loss": "poisson", "wide": True, "alpha": 1e-4, "acceleration": "none"}
    for acc in ("none", "nesterov-restart"):
        cases[f"fit/poisson/steep/acceleration={acc}"] = {"loss": "poisson", "wide": "steep",
                                                          "acceleration": acc}
    cases["fit/negbin/curvature=cached"] = {"loss": "negbin", "curvature": "cached"}
    # the Newton mode (issue 17): its line search (the steep counts), a proximal Newton step (l1),
    # a non-convex penalty from its ridge start, no acceleration
    for loss in ("logistic", "poisson", "negbin", "squared"):
        cases[f"fit/{loss}/curvature=newton"] = {"loss": loss, "curvature": "newton"}
    cases["fit/poisson/steep/curvature=newton"] = {"loss": "poisson", "wide": "steep", "curvature": "newton"}
    cases["fit/logistic/curvature=newton/penalty=l1"] = {"loss": "logistic", "curvature": "newton",
                                                        "penalty": "l1", "alpha": 3e-3}
    cases["fit/logistic/curvature=newton/penalty=scad"] = {"loss": "logistic", "curvature": "newton",
                                                          "penalty": "scad", "alpha": 3e-3}
    cases["fit/student_t/acceleration=nesterov"] = {"loss": "student_t", "acceleration": "nesterov"}
    cases["fit/logistic/max_iter=3"] = {"loss": "logistic", "max_iter": 3}
    cases["fit/hinge/max_iter=5"] = {"loss": "hinge", "max_iter": 5}
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
        "path/hinge/l1/lockstep": {"loss": "hinge", "penalty": "l1"},
        "path/quantile/l2/sequential": {"loss": "quantile", "penalty": "l2", "batch": 1},
        "path/logistic/group/lockstep": {"loss": "logistic", "penalty": "group",
                                         "penalty_params": {"groups": [0, 0, 1, 1, 2]}},
        "path/logistic/l2/fixed/sequential": {"loss": "logistic", "penalty": "l2", "curvature": "fixed",
                                              "batch": 1},
        # given α (recorded after solver.start_state: under fixed curvature the start is one pass, not two)
        "path/logistic/l2/alphas": {"loss": "logistic", "penalty": "l2", "alphas": [3e-2, 3e-3, 3e-4]},
        "path/logistic/l2/fixed/alphas": {"loss": "logistic", "penalty": "l2", "curvature": "fixed",
                                          "alphas": [3e-2, 3e-3, 3e-4], "batch": 1},
        "path/squared/l1/alphas": {"loss": "squared", "penalty": "l1", "alphas": [1e-1, 1e-2]},
        "path/poisson/l1/newton": {"loss": "poisson", "penalty": "l1", "curvature": "newton"},
        "path/logistic/l2/newton/sequential": {"loss": "logistic", "penalty": "l2", "curvature": "newton",
                                               "batch": 1},
    }


CASES = {**_fit_cases(), **_path_cases()}


def _hex(values) -> list[str]:
    return [float(v).hex() for v in np.atleast_1d(np.asarray(values, dtype=np.float64)).ravel()]


def run_case(name: str) -> dict:
    """The recorded quantities of one case (floats as ``float.hex``)."""
    spec = dict(CASES[name])
    # recorded when the E-step was the default: the cases name it since the default is "auto"
    spec.setdefault("curvature", "adaptive")
    lazy = spec.pop("dask", False)
    loss = spec["loss"]
    X, y = _data(_TASK.get(loss, "regression"), spec.pop("wide", False))
    if lazy:
        X, y = _lazy(X), _lazy(y)
    with warnings.catch_warnings(), dask.config.set(scheduler="sync"):
        warnings.simplefilter("ignore")  # a case may end unconverged: that too is recorded
        if name.startswith("path"):
            batch = spec.pop("batch", "auto")
            penalty = spec.pop("penalty")
            grid = {"alphas": spec.pop("alphas")} if "alphas" in spec else {"n_alphas": 6, "eps": 1e-2}
            path = fit_path(X, y, loss=spec.pop("loss"), penalty=penalty, batch=batch, tol=1e-9,
                            **grid, **spec)
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
                "converged": bool(est.converged_), "n_restarts": int(est.n_restarts_),
                "duality_gap": _hex(est.duality_gap_)}


def record() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    results = {name: run_case(name) for name in CASES}
    GOLDEN.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(results)} cases to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    record()
