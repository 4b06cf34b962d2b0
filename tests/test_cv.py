"""Cross-validated paths against oracles: every held-out score equals a cold fit on the training
rows scored on the held-out rows; the selection equals glmnet's rule on those scores; the chosen
coefficients equal a cold fit on all rows; passes are counted; stores resume; bad input is refused."""

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from smem_dask import cv as cv_module
from smem_dask.cv import cv_selection, solve_cv
from smem_dask.cv_store import read_cv_store
from smem_dask.data import make_problem
from smem_dask.engine import DaskEngine, NumpyEngine
from smem_dask.folds import generated_folds, given_folds
from smem_dask.losses import get_loss
from smem_dask.path import solve_path
from smem_dask.penalties import get_penalty
from smem_dask.solver import STOP_REQUESTED, ConvergenceWarning, SolverConfig, fit_em
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


# -- chunkings and schedulers -------------------------------------------------------------------------

def _same_cv(got, want, rtol=1e-10):
    """Two CVs of the same data and folds: the same grid, scores, selection and coefficients."""
    np.testing.assert_allclose(got.alphas, want.alphas, rtol=1e-13)
    assert sorted(got.scores) == sorted(want.scores)
    for name in want.scores:
        np.testing.assert_allclose(got.scores[name], want.scores[name], rtol=rtol, atol=0, err_msg=name)
    np.testing.assert_array_equal(got.fold_rows, want.fold_rows)
    np.testing.assert_allclose(got.fold_weights, want.fold_weights, rtol=1e-13)
    assert (got.index_min, got.index_1se) == (want.index_min, want.index_1se)
    for a, b in zip([got.path, *got.fold_paths], [want.path, *want.fold_paths], strict=True):
        scale = np.abs(b.coefs).max()
        np.testing.assert_allclose(a.coefs, b.coefs, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(a.intercepts, b.intercepts, rtol=rtol, atol=rtol * scale)
        np.testing.assert_allclose(a.objectives, b.objectives, rtol=rtol)


@pytest.fixture(scope="module")
def lasso_data():
    X, y = noisy_problem(2000, "classification", seed=4)
    s = np.random.default_rng(3).uniform(0.5, 2.0, len(y))
    return X, y, s


LASSO = dict(n_alphas=8, eps=1e-2, config=SolverConfig(tol=TIGHT, penalty_solver="exact"))


def _cv_numpy(X, y, s, folds):
    return solve_cv(NumpyEngine(X, y, s, folds=folds), get_loss("logistic"), get_penalty("l1"), K,
                    **LASSO)


def _cv_dask(X, y, s, chunks, seed):
    folds = generated_folds(len(y), K, seed, row_chunks=chunks)
    engine = DaskEngine(da.from_array(X, chunks=(chunks, -1)), da.from_array(y, chunks=(chunks,)),
                        da.from_array(s, chunks=(chunks,)), folds=folds)
    return solve_cv(engine, get_loss("logistic"), get_penalty("l1"), K, **LASSO)


def test_a_cv_on_dask_is_the_same_for_two_chunkings_and_equals_numpy(lasso_data):
    X, y, s = lasso_data
    with dask.config.set(scheduler="threads"):
        even = _cv_dask(X, y, s, (500, 500, 500, 500), seed=5)
        uneven = _cv_dask(X, y, s, (1, 700, 333, 66, 900), seed=5)
    _same_cv(uneven, even)
    reference = _cv_numpy(X, y, s, generated_folds(len(y), K, 5))
    _same_cv(even, reference)
    assert even.total_passes == uneven.total_passes == reference.total_passes
    # the folds are those of the seed (balanced), not those of another seed
    np.testing.assert_array_equal(even.fold_rows, np.bincount(generated_folds(len(y), K, 5)))
    other = _cv_numpy(X, y, s, generated_folds(len(y), K, 6))
    assert np.abs(other.scores["loss"] - reference.scores["loss"]).max() > 1e-4


@pytest.mark.distributed
def test_a_cv_on_a_cluster_with_generated_dask_folds_equals_numpy(cluster_client, lasso_data):
    X, y, s = lasso_data
    with dask.config.set(scheduler=cluster_client):
        on_cluster = _cv_dask(X, y, s, (700, 600, 700), seed=9)
    _same_cv(on_cluster, _cv_numpy(X, y, s, generated_folds(len(y), K, 9)))


# -- passes -------------------------------------------------------------------------------------------

class CountingEngine(NumpyEngine):
    """A NumpyEngine that counts the passes made of it on its own (one per ``stats_many``)."""

    calls = 0

    def stats_many(self, loss, requests, fit_intercept):
        self.calls += 1
        return super().stats_many(loss, requests, fit_intercept)


@pytest.fixture(scope="module")
def pass_data():
    X, y = make_problem(1500, 8, cond=1e4, seed=7)
    return X, y, generated_folds(len(y), K, seed=3)


@pytest.mark.parametrize("penalty, curvature", [("l2", "adaptive"), ("l1", "adaptive"),
                                                ("l2", "fixed"), ("l1", "fixed")])
def test_a_5_fold_40_alpha_cv_costs_about_one_path_and_far_less_than_six(pass_data, penalty, curvature):
    X, y, folds = pass_data
    loss, pen = get_loss("logistic"), get_penalty(penalty)
    config = SolverConfig(curvature=curvature, penalty_solver="exact" if penalty == "l1" else "em")
    engine = CountingEngine(X, y, folds=folds)
    result = solve_cv(engine, loss, pen, K, n_alphas=40, config=config)
    assert result.total_passes == engine.calls == engine.n_passes
    assert result.path.converged.all() and all(fp.converged.all() for fp in result.fold_paths)

    plain_engine = CountingEngine(X, y)
    plain = solve_path(plain_engine, loss, pen, n_alphas=40, config=config)
    assert plain.total_passes == plain_engine.calls
    np.testing.assert_allclose(result.alphas, plain.alphas, rtol=1e-13)  # the all-rows grid
    np.testing.assert_allclose(result.path.objectives, plain.objectives, rtol=1e-10)
    assert result.total_passes <= 1.5 * plain.total_passes, (result.total_passes, plain.total_passes)

    # K + 1 separate paths: all rows, and each fold's training rows
    separate = plain_engine.calls
    for k in range(K):
        train = CountingEngine(X[folds != k], y[folds != k])
        solve_path(train, loss, pen, n_alphas=40, config=config)
        separate += train.calls
    assert 4 * result.total_passes <= separate, (result.total_passes, separate)


# -- stores -------------------------------------------------------------------------------------------

RESUME = dict(n_alphas=9, eps=1e-2, batch=3, config=SolverConfig(tol=TIGHT, penalty_solver="exact"))


@pytest.fixture(scope="module")
def resume_data():
    X, y = noisy_problem(2000, "classification", seed=4)
    labels = _unequal_labels(len(y), np.random.default_rng(8))
    return X, y, given_folds(labels, len(y))[0]


def _resume_cv(X, y, folds, store=None, callback=None):
    return solve_cv(NumpyEngine(X, y, folds=folds), get_loss("logistic"), get_penalty("l1"), K,
                    store=store, callback=callback, **RESUME)


def test_an_interrupted_cv_resumes_from_its_store_without_recomputing(resume_data, tmp_path,
                                                                      monkeypatch):
    X, y, folds = resume_data
    full = _resume_cv(X, y, folds)
    assert full.stopped is None and not full.resumed.any()
    store = tmp_path / "cv"
    reported = []

    def stop_at_alpha_3(i, alpha, row):  # the first α of the second batch of 3
        reported.append(i)
        if i == 3:
            STOP_REQUESTED.set()

    try:
        with pytest.warns(ConvergenceWarning, match=r"the cross-validation stopped early: a stop was "
                                                    r"requested.*rerun with the same store to resume"):
            first = _resume_cv(X, y, folds, store, stop_at_alpha_3)
    finally:
        STOP_REQUESTED.clear()
    assert first.stopped == "interrupted" and reported == [0, 1, 2, 3]
    finished = np.array([first.path.finished, *(fp.finished for fp in first.fold_paths)])
    assert finished[:, :4].all() and not finished[:, 6:].any()
    # stopped inside the second batch: some of its later fits had finished, others not
    assert 0 < finished[:, 4:6].sum() < finished[:, 4:6].size
    # every finished fold fit was scored; the unfinished ones were not
    np.testing.assert_array_equal(np.isfinite(first.scores["loss"]), finished[1:])
    stored = read_cv_store(store)
    np.testing.assert_array_equal([p["done"] for p in stored["paths"]], finished)
    # a fit finished in the first run kept its result: the same as the uninterrupted run's
    for j, (a, b) in enumerate(zip([first.path, *first.fold_paths], [full.path, *full.fold_paths],
                                   strict=True)):
        np.testing.assert_allclose(a.coefs[finished[j]], b.coefs[finished[j]], rtol=1e-12, atol=1e-15)

    started = []
    real = cv_module.em_iterations

    def counted(loss, penalty, alpha, *args, **kwargs):
        started.append(alpha)
        return real(loss, penalty, alpha, *args, **kwargs)

    monkeypatch.setattr(cv_module, "em_iterations", counted)
    again = _resume_cv(X, y, folds, store)
    np.testing.assert_array_equal(again.resumed, finished)
    assert len(started) == finished.size - finished.sum()  # only the unfinished fits ran
    unfinished_alphas = np.broadcast_to(full.alphas, finished.shape)[~finished]
    np.testing.assert_array_equal(np.sort(started), np.sort(unfinished_alphas))
    assert again.stopped is None and again.total_passes < full.total_passes
    _same_cv(again, full, rtol=1e-12)
    # a complete store: everything is read back, after one pass that verifies the data
    started.clear()
    last = _resume_cv(X, y, folds, store)
    assert last.resumed.all() and not started and last.total_passes == 1
    _same_cv(last, again, rtol=0)


def test_a_cv_store_of_other_folds_or_other_data_is_refused(resume_data, tmp_path):
    X, y, folds = resume_data
    store = tmp_path / "cv"
    params = dict(n_alphas=3, eps=1e-2, config=SolverConfig(tol=1e-6, penalty_solver="exact"))

    def run(X, y, folds, n_folds=K):
        return solve_cv(NumpyEngine(X, y, folds=folds), get_loss("logistic"), get_penalty("l1"),
                        n_folds, store=store, **params)

    run(X, y, folds)
    before = read_cv_store(store)
    moved = folds.copy()
    moved[[0, 1]] = moved[[1, 0]] if moved[0] != moved[1] else (moved[[0, 1]] + 1) % K
    assert (moved != folds).any()
    with pytest.raises(StoreMismatchError, match=r"was made from other data \(block checksums differ"):
        run(X, y, moved)
    X2 = X.copy()
    X2[1999, 7] += 1e-9
    with pytest.raises(StoreMismatchError, match=r"was made from other data \(block checksums differ"):
        run(X2, y, folds)
    with pytest.raises(StoreMismatchError, match=r"was made from other data \(chunks: \[2000\] in the "
                                                 r"store, \[1999\] now; shape: \[2000, 8\] in the store"):
        run(X[:-1], y[:-1], folds[:-1])
    with pytest.raises(StoreMismatchError, match=r"made with another number of folds \(5, now 4\)"):
        run(X, y, folds % 4, n_folds=4)
    # nothing was changed by the refusals: the store still resumes completely
    after = read_cv_store(store)
    for name in ("loss", "misclassification", "fold_weights"):
        np.testing.assert_array_equal(after[name], before[name])
    again = run(X, y, folds)
    assert again.resumed.all() and again.total_passes == 1


@pytest.mark.parametrize("lost", [("loss", "misclassification"), ("misclassification",)],
                         ids=["all-scores", "one-score"])
def test_a_stored_fit_without_its_score_is_scored_not_refit(resume_data, tmp_path, monkeypatch, lost):
    """A fit is stored before its scores, and the scores are written one by one: a run killed in
    between leaves a finished fit with some scores NaN. The rerun scores it from the stored fit."""
    X, y, folds = resume_data
    store = tmp_path / "cv"
    params = dict(n_alphas=4, eps=1e-2, config=SolverConfig(tol=1e-8, penalty_solver="exact"))

    def run():
        return solve_cv(NumpyEngine(X, y, folds=folds), get_loss("logistic"), get_penalty("l1"), K,
                        store=store, **params)

    full = run()
    group = zarr.open_group(store / "scores", mode="r+")
    for name in lost:
        group[name][2, 3] = np.nan
    assert np.isnan(read_cv_store(store)[lost[0]][2, 3])
    started = []
    monkeypatch.setattr(cv_module, "em_iterations", lambda *a, **k: started.append(a) or None)
    again = run()
    assert again.resumed.all() and not started
    assert again.total_passes == 2  # the verification pass, and one pass scoring the fit
    # (rescored in a pass of its own rather than beside other fits' requests: rounding apart)
    for name in full.scores:
        np.testing.assert_allclose(again.scores[name], full.scores[name], rtol=1e-13, atol=0)
        np.testing.assert_array_equal(read_cv_store(store)[name], again.scores[name])
    assert (again.index_min, again.index_1se) == (full.index_min, full.index_1se)


# -- a non-smooth loss --------------------------------------------------------------------------------

def test_hinge_cv_held_out_scores_equal_certified_cold_fits():
    """The hinge loss is certified by its duality gap. Without an intercept the ridge objective is
    strongly convex, so its minimizer is unique and a gap ≤ 1e-10 pins the held-out loss down (with
    an intercept, the intercept can slide along a flat piece of the objective between two certified
    fits, and so can their held-out losses)."""
    X, y = noisy_problem(2000, "classification", seed=4)
    labels = _unequal_labels(len(y), np.random.default_rng(2))
    ids = given_folds(labels, len(y))[0]
    loss, penalty = get_loss("hinge"), get_penalty("l2")
    config = SolverConfig(tol=TIGHT)
    result = solve_cv(NumpyEngine(X, y, folds=ids), loss, penalty, K, n_alphas=5, eps=1e-5,
                      fit_intercept=False, config=config)
    assert sorted(result.scores) == ["loss", "misclassification"]
    for fits in result.fits:
        for fit in fits:
            assert fit.converged and fit.duality_gap <= TIGHT * max(1.0, abs(fit.objective))
    for k, label in enumerate(np.unique(labels)):
        train, test = labels != label, labels == label
        for i in (1, 3, 4):
            cold = fit_em(NumpyEngine(X[train], y[train]), loss, penalty, result.alphas[i],
                          fit_intercept=False, config=config)
            assert cold.converged and cold.intercept == 0.0
            want = held_out_scores(loss, cold.coef, 0.0, X[test], y[test], np.ones(test.sum()))
            assert result.scores["loss"][k, i] == pytest.approx(want["loss"], rel=1e-6)
            assert result.scores["misclassification"][k, i] == pytest.approx(want["misclassification"],
                                                                             rel=1e-6)
    # the α are told apart: the held-out loss moves by far more than the tolerance along the path
    assert np.ptp(result.scores["loss"], axis=1).min() > 1e-2


# -- bad input ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small():
    X, y = noisy_problem(600, "classification", seed=4)
    return X, y, generated_folds(len(y), K, seed=0)


def _cv(X, y, folds, s=None, loss="logistic", n_folds=K, **kwargs):
    engine = NumpyEngine(X, y, s, folds=folds)
    return solve_cv(engine, get_loss(loss), get_penalty(kwargs.pop("penalty", "l2")), n_folds,
                    n_alphas=3, **kwargs), engine


def test_fold_ids_outside_0_to_k_minus_1_are_refused(small):
    X, y, folds = small
    six = folds.copy()
    six[:7] = 5  # a 5-fold CV given ids 0 … 5
    with pytest.raises(ValueError, match=r"^7 rows have a fold id outside 0 … 4$"):
        _cv(X, y, six)
    negative = folds.copy()
    negative[10] = -1
    with pytest.raises(ValueError, match=r"^1 row has a fold id outside 0 … 4$"):
        _cv(X, y, negative)
    with pytest.raises(ValueError, match=r"rows have a fold id outside 0 … 2$"):
        _cv(X, y, folds, n_folds=3)  # ids 0 … 4, but 3 folds asked


def test_a_fold_without_positive_weight_is_refused(small):
    X, y, folds = small
    s = np.ones(len(y))
    s[folds == 2] = 0.0
    with pytest.raises(ValueError, match=r"^fold 2 holds out no rows with positive sample weight$"):
        _cv(X, y, folds, s)
    s[folds == 4] = 0.0
    with pytest.raises(ValueError, match=r"^folds 2, 4 hold out no rows with positive sample weight$"):
        _cv(X, y, folds, s)
    # a fold with no rows at all: ids 0 … 3 for 5 folds
    with pytest.raises(ValueError, match=r"^fold 4 holds out no rows with positive sample weight$"):
        _cv(X, y, folds % 4)


@pytest.mark.parametrize("loss, scoring, allowed", [
    ("squared", "misclassification", "loss, squared_error, absolute_error"),
    ("logistic", "squared_error", "loss, misclassification"),
    ("logistic", "accuracy", "loss, misclassification"),
])
def test_a_scoring_that_does_not_apply_to_the_loss_is_refused_before_any_pass(loss, scoring, allowed):
    X, y = noisy_problem(600, "regression" if loss == "squared" else "classification", seed=4)
    engine = NumpyEngine(X, y, folds=generated_folds(len(y), K))
    with pytest.raises(ValueError, match=rf"^scoring '{scoring}' does not apply to the {loss} loss; "
                                         rf"choose one of {allowed}$"):
        solve_cv(engine, get_loss(loss), get_penalty("l2"), K, scoring=scoring)
    assert engine.n_passes == 0


def test_other_bad_cv_arguments_are_refused_before_any_pass(small):
    X, y, folds = small
    loss, l2 = get_loss("logistic"), get_penalty("l2")
    with pytest.raises(ValueError, match=r"the engine has no fold ids: make it with folds="):
        solve_cv(NumpyEngine(X, y), loss, l2, K)
    engine = NumpyEngine(X, y, folds=folds)
    for n_folds in (1, 0):
        with pytest.raises(ValueError, match=rf"n_folds must be ≥ 2, got {n_folds}"):
            solve_cv(engine, loss, l2, n_folds)
    with pytest.raises(ValueError, match=r"cross-validation of the non-convex penalty 'scad' is not "):
        solve_cv(engine, loss, get_penalty("scad"), K)
    with pytest.raises(ValueError, match=r"alphas must be a non-empty sequence of finite numbers ≥ 0"):
        solve_cv(engine, loss, l2, K, alphas=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"batch must be a positive integer or 'auto'"):
        solve_cv(engine, loss, l2, K, batch=0)
    assert engine.n_passes == 0
