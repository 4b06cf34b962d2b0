"""Cross-validated paths against oracles: every held-out score equals a cold fit on the training
rows scored on the held-out rows; the selection equals glmnet's rule on those scores; the chosen
coefficients equal a cold fit on all rows; passes are counted; stores resume; bad input is refused."""

import dask
import dask.array as da
import numpy as np
import pytest

from smem_dask import cv as cv_module
from smem_dask.cv import cv_selection, solve_cv
from smem_dask.data import make_problem
from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.folds import generated_folds, given_folds
from smem_dask.losses import get_loss
from smem_dask.path import solve_path
from smem_dask.penalties import get_penalty
from smem_dask.solver import SolverConfig, fit_em
from smem_dask.store import StoreMismatchError

K = 5
TIGHT = 1e-10  # tolerance of the CV fits and of their cold-fit oracles


# -- oracles ------------------------------------------------------------------------------------------

def _weighted_mean(values, s):
    return float(np.sum(s * values) / np.sum(s))


def held_out_scores(loss, coef, intercept, X, y, s):
    """The held-out scores of one fit on the rows (X, y, s), by numpy from the loss's own
    definition (not through the kernel)."""
    eta = X @ coef + intercept
    out = {"loss": _weighted_mean(loss.value(y, eta), s)}
    if loss.is_classifier:
        out["misclassification"] = _weighted_mean(((eta > 0) != (y == 1)).astype(float), s)
    else:
        pred = loss.inverse_link(eta)
        out["squared_error"] = _weighted_mean((y - pred) ** 2, s)
        out["absolute_error"] = _weighted_mean(np.abs(y - pred), s)
    return out


def objective_of(loss, penalty, alpha, coef, intercept, X, y, s):
    """F(β, b) = (1/W) Σ s ℓ(y, Xβ + b) + α P(β), by numpy."""
    return _weighted_mean(loss.value(y, X @ coef + intercept), s) + alpha * penalty.value(coef)


def cold_fit(loss, penalty, alpha, X, y, s, config):
    fit = fit_em(NumpyEngine(X, y, s), loss, penalty, alpha, config=config)
    assert fit.converged
    return fit


def cold_fold_scores(loss, penalty, alphas, X, y, s, labels, config):
    """(K, n_alphas) held-out scores of cold fits: fold k's fit on the rows whose label is not the
    k-th smallest label, scored on the rows whose label is."""
    distinct = np.unique(labels)
    out = {}
    for k, label in enumerate(distinct):
        train, test = labels != label, labels == label
        for i, alpha in enumerate(alphas):
            fit = cold_fit(loss, penalty, alpha, X[train], y[train], s[train], config)
            for name, value in held_out_scores(loss, fit.coef, fit.intercept, X[test], y[test],
                                               s[test]).items():
                out.setdefault(name, np.full((len(distinct), len(alphas)), np.nan))[k, i] = value
    return out


def glmnet_by_hand(scores, weights):
    """glmnet's cv.glmnet (grouped) written out with loops: cvm the fold-weighted mean, cvsd =
    sqrt(weighted.mean((S_k − cvm)², W) / (K − 1)); lambda.min the largest λ with the least cvm,
    lambda.1se the largest λ with cvm ≤ cvm[min] + cvsd[min] (the grid runs large to small)."""
    n_folds, n_alphas = scores.shape
    mean, se = [], []
    for i in range(n_alphas):
        total = sum(weights)
        m = sum(weights[k] * scores[k, i] for k in range(n_folds)) / total
        var = sum(weights[k] * (scores[k, i] - m) ** 2 for k in range(n_folds)) / total
        mean.append(m)
        se.append((var / (n_folds - 1)) ** 0.5)
    i_min = min(range(n_alphas), key=lambda i: (mean[i], i))
    i_1se = min(i for i in range(n_alphas) if mean[i] <= mean[i_min] + se[i_min])
    return np.array(mean), np.array(se), i_min, i_1se


# -- the problems -------------------------------------------------------------------------------------

def _unequal_labels(n, rng):
    """Five arbitrary integer labels on folds of unequal sizes (about 10 % … 30 % of the rows)."""
    sizes = np.array([0.1, 0.3, 0.15, 0.25, 0.2]) * n
    sizes = sizes.astype(int)
    sizes[-1] = n - sizes[:-1].sum()
    labels = np.repeat([40, -3, 7, 1000, 12], sizes)
    return rng.permutation(labels)


def noisy_problem(n, task, seed):
    """Three informative columns and five of pure noise (p = 8): the CV curve has its minimum
    inside the grid, and the 1-SE rule picks a larger α than the minimum."""
    X, y = make_problem(n, 3, cond=10, seed=seed, task=task, signal=1.0)
    noise = np.random.default_rng([seed, 9]).standard_normal((n, 5)) * 0.5
    return np.hstack([X, noise]), y


CASES = {
    # name: (loss, penalty, task, weighted, eps of the grid, solver config)
    "logistic-ridge": ("logistic", "l2", "classification", False, 1e-5, SolverConfig(tol=TIGHT)),
    "logistic-lasso": ("logistic", "l1", "classification", True, 1e-2,
                       SolverConfig(tol=TIGHT, penalty_solver="exact")),
    "squared-lasso": ("squared", "l1", "regression", True, 1e-3,
                      SolverConfig(tol=TIGHT, penalty_solver="exact")),
}


@pytest.fixture(scope="module", params=list(CASES))
def case(request):
    """A CV on given fold labels, and the cold-fit scores of every (fold, α)."""
    loss_name, penalty_name, task, weighted, eps, config = CASES[request.param]
    X, y = noisy_problem(2500, task, seed=4)
    rng = np.random.default_rng(1)
    s = rng.uniform(0.2, 3.0, len(y)) if weighted else np.ones(len(y))
    labels = _unequal_labels(len(y), rng)
    ids, distinct = given_folds(labels, len(y))
    np.testing.assert_array_equal(distinct, [-3, 7, 12, 40, 1000])
    loss, penalty = get_loss(loss_name), get_penalty(penalty_name)
    engine = NumpyEngine(X, y, s if weighted else None, folds=ids)
    result = solve_cv(engine, loss, penalty, K, n_alphas=12, eps=eps, config=config)
    cold = cold_fold_scores(loss, penalty, result.alphas, X, y, s, labels, config)
    return dict(name=request.param, X=X, y=y, s=s, labels=labels, loss=loss, penalty=penalty,
                config=config, result=result, cold=cold)


def test_every_held_out_score_equals_a_cold_fit_scored_on_the_held_out_rows(case):
    result, cold, loss = case["result"], case["cold"], case["loss"]
    expected_names = (["loss", "misclassification"] if loss.is_classifier
                      else ["loss", "squared_error", "absolute_error"])
    assert sorted(result.scores) == sorted(expected_names)
    assert result.path.converged.all() and all(fp.converged.all() for fp in result.fold_paths)
    for name in expected_names:
        assert result.scores[name].shape == (K, 12)
        np.testing.assert_allclose(result.scores[name], cold[name], rtol=1e-6, atol=0,
                                   err_msg=f"{case['name']}: {name}")
    # the scores are not constant along the path: the comparison tells the α apart
    assert np.ptp(cold["loss"], axis=1).min() > 1e-3 * np.abs(cold["loss"]).max()


def test_folds_rows_and_weights_are_the_held_out_ones(case):
    result, labels, s = case["result"], case["labels"], case["s"]
    distinct = np.unique(labels)
    np.testing.assert_array_equal(result.fold_rows, [np.sum(labels == v) for v in distinct])
    np.testing.assert_allclose(result.fold_weights, [s[labels == v].sum() for v in distinct],
                               rtol=1e-13)
    assert len(set(result.fold_rows.tolist())) == K  # the folds have unequal sizes


def test_selection_is_glmnets_rule_on_the_cold_fit_scores(case):
    result, cold = case["result"], case["cold"]
    w = np.array([case["s"][case["labels"] == v].sum() for v in np.unique(case["labels"])])
    mean, se, i_min, i_1se = cv_selection(cold[result.scoring], w)
    np.testing.assert_allclose(result.cv_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(result.cv_se, se, rtol=1e-4)
    assert (result.index_min, result.index_1se) == (i_min, i_1se)
    assert result.alpha_min == result.alphas[i_min] and result.alpha_1se == result.alphas[i_1se]
    # the data make the choice a real one: an interior minimum, and a 1-SE α above it
    assert 0 < i_1se < i_min < len(result.alphas) - 1, (i_1se, i_min)
    # and cv_selection itself is glmnet's formula, written out by hand
    by_hand = glmnet_by_hand(cold[result.scoring], w)
    np.testing.assert_allclose(mean, by_hand[0], rtol=1e-13)
    np.testing.assert_allclose(se, by_hand[1], rtol=1e-12)
    assert (i_min, i_1se) == by_hand[2:]


def test_the_chosen_coefficients_are_a_cold_fit_on_all_rows(case):
    result, X, y, s = case["result"], case["X"], case["y"], case["s"]
    loss, penalty, config = case["loss"], case["penalty"], case["config"]
    for index in sorted({result.index_min, result.index_1se, len(result.alphas) - 1}):
        alpha = result.alphas[index]
        cold = cold_fit(loss, penalty, alpha, X, y, s, config)
        got = objective_of(loss, penalty, alpha, result.path.coefs[index], result.path.intercepts[index],
                           X, y, s)
        want = objective_of(loss, penalty, alpha, cold.coef, cold.intercept, X, y, s)
        assert got == pytest.approx(want, rel=1e-8), (case["name"], index)
        assert result.path.objectives[index] == pytest.approx(want, rel=1e-8)
