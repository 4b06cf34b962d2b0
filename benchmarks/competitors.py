"""One adapter per method of the paper benchmark, all minimizing the same F at a budget of data passes.

F(β, b) = (1/n) Σ [softplus(η_i) − y_i η_i] + (α/2)‖β‖², η = Xβ + b (intercept unpenalized; see
docs/method.md, "The objective").

Every adapter returns a :class:`Run`: the best F seen after each number of passes (1 … budget), so
any smaller budget is read off the same run. A *pass* is one evaluation of F and ∇F on all rows
(one read of the data). The torch optimizers (``bench`` extra: torch, momo-opt) run full batch in
float64, one closure call — one pass — per step.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import scipy.optimize

from smem_dask.engine import NumpyEngine
from smem_dask.losses import Logistic
from smem_dask.penalties import L2
from smem_dask.solver import ConvergenceWarning, SolverConfig, fit_em

#: learning-rate grid of the tuned first-order methods: 1e-4 … 1 in half-decade steps
LR_GRID = tuple(10.0 ** (k / 2) for k in range(-8, 1))


@dataclass
class Run:
    method: str
    best: np.ndarray  # best F seen within k passes, k = 1 … budget (index k − 1)
    seconds: float
    lr: float | None = None

    def at(self, passes: int) -> float:
        return float(self.best[min(passes, len(self.best)) - 1])


def objective(X, y, alpha, theta) -> tuple[float, np.ndarray]:
    """F and ∇F at θ = (β, b) in float64 (numpy; the oracle every method is scored with)."""
    eta = X @ theta[:-1] + theta[-1]
    r = 0.5 * (1.0 + np.tanh(0.5 * eta)) - y
    n = len(y)
    F = float(np.mean(np.logaddexp(0.0, eta) - y * eta) + 0.5 * alpha * theta[:-1] @ theta[:-1])
    grad = np.r_[X.T @ r / n + alpha * theta[:-1], r.mean()]
    return F, grad


def newton_optimum(X, y, alpha) -> tuple[float, np.ndarray]:
    """F* by damped Newton on the exact Hessian, run until the step no longer lowers F (machine
    precision: ‖∇F‖ ~ 1e-16)."""
    p = X.shape[1]
    Xa = np.column_stack([X, np.ones(len(y))])
    theta = np.zeros(p + 1)
    F, g = objective(X, y, alpha, theta)
    reg = np.r_[np.full(p, alpha), 0.0]
    for _ in range(200):
        eta = Xa @ theta
        w = 0.25 / np.cosh(0.5 * eta) ** 2
        H = Xa.T @ (w[:, None] * Xa) / len(y) + np.diag(reg)
        step = np.linalg.solve(H, g)
        t = 1.0
        while True:
            F_new, g_new = objective(X, y, alpha, theta - t * step)
            if F_new <= F or t < 1e-10:
                break
            t *= 0.5
        done = F_new >= F and t == 1.0
        if F_new <= F:
            theta, F, g = theta - t * step, F_new, g_new
        if done or np.max(np.abs(g)) < 1e-15:
            break
    return F, theta


def _running_best(values: list[float], budget: int) -> np.ndarray:
    out = np.minimum.accumulate(np.asarray(values[:budget], dtype=np.float64))
    if len(out) < budget:  # stopped early (converged): its best stands for the rest of the budget
        out = np.r_[out, np.full(budget - len(out), out[-1] if len(out) else np.inf)]
    return out


def smem(X, y, alpha, budget, acceleration) -> Run:
    """SM-EM (this package, in-memory engine): F after each pass from the fit's own record."""
    import warnings

    eng = NumpyEngine(X, y)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit = fit_em(eng, Logistic(), L2(), alpha,
                     config=SolverConfig(acceleration=acceleration, tol=1e-15, max_iter=budget))
    seconds = time.perf_counter() - t0
    per_pass = [math.inf] * budget
    for rec in fit.history:
        if rec.n_passes <= budget:
            per_pass[rec.n_passes - 1] = min(per_pass[rec.n_passes - 1], rec.objective)
    return Run(f"SM-EM {acceleration}", _running_best(per_pass, budget), seconds)


def lbfgs(X, y, alpha, budget) -> Run:
    """scipy L-BFGS-B, one pass per function-and-gradient evaluation."""
    values: list[float] = []

    def f(theta):
        F, g = objective(X, y, alpha, theta)
        values.append(F)
        return F, g

    t0 = time.perf_counter()
    scipy.optimize.minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                            options={"maxfun": budget, "maxiter": budget, "ftol": 0.0, "gtol": 0.0})
    return Run("L-BFGS", _running_best(values, budget), time.perf_counter() - t0)


def egop_basis(X, y, alpha, seed: int) -> np.ndarray:
    """Eigenvectors of the expected gradient outer product E[∇f ∇fᵀ] (coefficients only), from
    stochastic gradients at random points: the rows are split into m = min(2p, n) disjoint
    minibatches, each gradient taken at its own point β ~ N(0, I) — one pass over the data."""
    rng = np.random.default_rng([seed, 7])
    n, p = X.shape
    m = min(2 * p, n)
    batches = np.array_split(rng.permutation(n), m)
    G = np.empty((m, p))
    for j, rows in enumerate(batches):
        theta = np.r_[rng.standard_normal(p), 0.0]
        G[j] = objective(X[rows], y[rows], alpha, theta)[1][:p]
    _, V = np.linalg.eigh(G.T @ G / m)
    return V[:, ::-1]


def torch_objective(Xt, yt, z, b, alpha: float):
    """F in torch (for autograd): the same formula as :func:`objective`."""
    import torch

    eta = Xt @ z + b
    return torch.mean(torch.nn.functional.softplus(eta) - yt * eta) + 0.5 * alpha * (z @ z)


def torch_method(X, y, alpha, budget, name: str, lr: float, basis: np.ndarray | None = None) -> Run:
    """Full-batch torch optimizer (``adam``, ``momo``, ``momo-adam``) on F, in float64; with
    ``basis`` V the coefficients are β = V z and the optimizer runs on z (EGOP reparameterization)."""
    import torch

    Xt = torch.from_numpy(np.ascontiguousarray(X @ basis if basis is not None else X, np.float64))
    yt = torch.from_numpy(np.asarray(y, np.float64))
    z = torch.zeros(X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    if name == "adam":
        opt = torch.optim.Adam([z, b], lr=lr)
    else:
        import momo

        opt = (momo.Momo if name == "momo" else momo.MomoAdam)([z, b], lr=lr)
    values: list[float] = []

    def closure():
        opt.zero_grad()
        # ‖β‖ = ‖V z‖ = ‖z‖ for orthonormal V: the same F in either basis
        loss = torch_objective(Xt, yt, z, b, alpha)
        loss.backward()
        values.append(float(loss.detach()))
        return loss

    t0 = time.perf_counter()
    for _ in range(budget):
        opt.step(closure)
        if not math.isfinite(values[-1]):
            break
    with torch.no_grad():  # F at the last iterate (scored, not counted: SM-EM gets it in its pass)
        last = float(torch_objective(Xt, yt, z, b, alpha))
    seconds = time.perf_counter() - t0
    values = [v if math.isfinite(v) else math.inf for v in values[1:]] + [last]
    return Run(name, _running_best(values, budget), seconds, lr)


def tuned(X, y, alpha, budgets, name: str, basis=None) -> dict[int, Run]:
    """The learning-rate grid at the largest budget; for each budget the rate with the best F
    (grid wall time summed into ``seconds``)."""
    runs = [torch_method(X, y, alpha, max(budgets), name, lr, basis) for lr in LR_GRID]
    total = sum(r.seconds for r in runs)
    out = {}
    for B in budgets:
        best = min(runs, key=lambda r: r.at(B))
        out[B] = Run(best.method, best.best, total, best.lr)
    return out
