"""Losses: values, derivatives and the E-step majorization, each against an independent oracle."""

from fractions import Fraction

import numpy as np
import pytest

from smem_dask.losses import (
    POISSON_REACH,
    Hinge,
    Huber,
    Logistic,
    NegativeBinomial,
    Poisson,
    Quantile,
    Squared,
    StudentT,
    get_loss,
    polya_gamma_mean,
)

LOSSES = [Logistic(), Squared(), Hinge(), Quantile(0.2), Quantile(0.9), Huber(0.8), StudentT(3.0, 1.5),
          NegativeBinomial(2.5), Poisson()]
SMOOTH = [loss for loss in LOSSES if loss.smooth]


def _id(loss):
    return repr(loss)


def _targets(loss, rng, size):
    if loss.is_classifier:
        return rng.integers(0, 2, size).astype(float)
    if loss.nonnegative_target:
        return rng.poisson(3.0, size).astype(float)
    return rng.normal(0, 2, size)


def test_logistic_value_is_stable_and_exact():
    eta = np.array([-800.0, -30.0, -1.0, 0.0, 1e-9, 2.5, 40.0, 800.0])
    for y in (0.0, 1.0):
        got = Logistic().value(y, eta)
        # closed forms: log(1+e^η) − yη, written per sign to avoid overflow
        softplus_pos = eta + np.log1p(np.exp(-np.abs(eta)))
        expected = np.where(eta > 0, softplus_pos, np.log1p(np.exp(np.minimum(eta, 0))))
        expected = expected - y * eta
        assert np.all(np.isfinite(got))
        np.testing.assert_allclose(got, expected, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("loss", SMOOTH, ids=_id)
def test_derivative_matches_finite_differences(loss, rng):
    y = _targets(loss, rng, 200)
    eta = rng.normal(0, 3, 200)
    h = 1e-6
    fd = (loss.value(y, eta + h) - loss.value(y, eta - h)) / (2 * h)
    np.testing.assert_allclose(loss.derivative(y, eta), fd, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("loss", LOSSES, ids=_id)
def test_e_step_majorizes_and_touches(loss, rng):
    """ℓ(η) ≤ ℓ(η0) + ½ω(η² − η0²) − u(η − η0) for all η, with equality at η0; for smooth losses
    also the tangency ωη0 − u = ℓ'(η0) (so the EM map is a preconditioned gradient step)."""
    y = _targets(loss, rng, 500)
    eta0 = np.concatenate([rng.normal(0, 4, 497), [0.0, 1e-7, -60.0]])
    omega, u = loss.e_step(y, eta0)
    assert np.all(omega > 0)
    if loss.smooth:
        np.testing.assert_allclose(omega * eta0 - u, loss.derivative(y, eta0), rtol=1e-12,
                                   atol=1e-12)
    if loss.local_majorizer:  # Poisson: the bound is promised on η ≤ η0 + c only; keep η0 moderate
        eta0 = np.clip(eta0, -30, 5)
        omega, u = loss.e_step(y, eta0)
    for eta in (rng.normal(0, 6, 500), eta0 + 1e-3, -eta0, np.zeros(500), eta0):
        if loss.local_majorizer:
            eta = np.minimum(eta, eta0 + POISSON_REACH)
        bound = loss.value(y, eta0) + 0.5 * omega * (eta**2 - eta0**2) - u * (eta - eta0)
        assert np.all(loss.value(y, eta) <= bound + 1e-9 * (1 + np.abs(bound)))



def test_polya_gamma_weight_is_the_tightest_symmetric_bound():
    """The PG bound is tangent in η², so it also touches ℓ at −η0; that pins ω without tanh:
    ω(η0) = [ℓ(−η0) − ℓ(η0) + 2η0 ℓ'(η0)] / (2η0²)  (y = 0, ℓ = log(1 + e^η))."""
    eta0 = np.concatenate([np.geomspace(1e-2, 30, 50), -np.geomspace(1e-2, 30, 50)])
    value = np.log1p(np.exp(np.longdouble(eta0)))
    value_neg = np.log1p(np.exp(-np.longdouble(eta0)))
    sigma = 1 / (1 + np.exp(-np.longdouble(eta0)))
    oracle = (value_neg - value + 2 * eta0 * sigma) / (2 * np.longdouble(eta0) ** 2)
    np.testing.assert_allclose(polya_gamma_mean(eta0), oracle.astype(float), rtol=1e-12)


def test_polya_gamma_series_branch_matches_extended_precision():
    eta = np.concatenate([[0.0], np.geomspace(1e-9, 0.999e-2, 40), -np.geomspace(1e-9, 0.999e-2, 40)])
    x = np.longdouble(eta)
    exact = np.where(x == 0, np.longdouble(0.25), np.tanh(x / 2) / (2 * np.where(x == 0, 1, x)))
    np.testing.assert_allclose(polya_gamma_mean(eta), exact.astype(float), rtol=1e-13)
    # continuity across the cutoff
    below, above = polya_gamma_mean(np.array([1e-2 * (1 - 1e-12), 1e-2]))
    assert abs(below - above) < 1e-14


def test_squared_majorizer_is_exact(rng):
    y, eta0, eta = rng.normal(size=(3, 100))
    omega, u = Squared().e_step(y, eta0)
    bound = Squared().value(y, eta0) + 0.5 * omega * (eta**2 - eta0**2) - u * (eta - eta0)
    np.testing.assert_allclose(bound, Squared().value(y, eta), rtol=1e-12, atol=1e-12)


def test_get_loss_names_and_errors():
    assert isinstance(get_loss("logistic"), Logistic)
    loss = Squared()
    assert get_loss(loss) is loss
    with pytest.raises(ValueError, match="unknown loss 'softmax'; supported losses: hinge, huber"):
        get_loss("softmax")
    with pytest.raises(ValueError, match="tau must be in"):
        get_loss("quantile", tau=1.5)
    with pytest.raises(ValueError, match="does not take the parameters"):
        get_loss("huber", tau=0.5)


@pytest.mark.parametrize("loss", [Logistic(), Squared()], ids=_id)
def test_value_difference_is_exact_for_tiny_steps(loss, rng):
    """ℓ(η + δ) − ℓ(η) for δ ~ 1e-9, against the same difference in extended precision."""
    y = _targets(loss, rng, 300)
    eta = rng.normal(0, 5, 300)
    for scale in (1e-12, 1e-9, 1e-3, 0.5, 3.0):
        delta = rng.normal(0, scale, 300)
        got = loss.value_difference(y, eta, delta)
        if loss.is_classifier:
            # extended precision resolves ~1e-18 of ℓ; compare at that absolute level
            Y, E, D = (np.longdouble(a) for a in (y, eta, delta))
            ref = (np.log1p(np.exp(E + D)) - (Y * (E + D))) - (np.log1p(np.exp(E)) - Y * E)
            np.testing.assert_allclose(got, ref.astype(float), rtol=1e-9, atol=1e-17)
        else:  # exact rational arithmetic on the float inputs
            ref = [float(Fraction(1, 2) * ((Fraction(a) - Fraction(b) - Fraction(c)) ** 2
                                           - (Fraction(a) - Fraction(b)) ** 2))
                   for a, b, c in zip(y, eta, delta, strict=True)]
            np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


@pytest.mark.parametrize("loss", LOSSES, ids=_id)
def test_value_difference_agrees_with_extended_precision(loss, rng):
    y = _targets(loss, rng, 2000)
    eta = rng.normal(0, 3, 2000)
    for scale in (1e-9, 1e-4, 0.3, 2.0, 10.0):
        delta = rng.normal(0, scale, 2000)
        Y, E, D = (np.longdouble(a) for a in (y, eta, delta))
        ref = (loss.value(Y, E + D) - loss.value(Y, E)).astype(float)
        got = loss.value_difference(y, eta, delta)
        # long double resolves ~1e-19 of ℓ: the reference is good to about that, absolutely
        np.testing.assert_allclose(got, ref, rtol=2e-8, atol=1e-17 * (1 + np.abs(loss.value(y, eta))).max())


def test_clamped_kink_losses_are_finite_at_the_kink():
    y = np.array([1.0, 0.0, 2.0])
    for loss, eta in ((Hinge(), np.array([1.0, -1.0, 0.3])), (Quantile(0.3), np.array([0.0, 0.0, 2.0]))):
        omega, u = loss.e_step(y, eta)
        assert np.all(np.isfinite(omega)) and np.all(np.isfinite(u))
        assert omega.max() == pytest.approx(0.5e10)


def test_poisson_bound_is_the_tightest_valid_on_its_region():
    """At η = η0 + c the bound's curvature e^(η0+c) is needed: a smaller one fails there."""
    eta0 = np.linspace(-3, 3, 13)
    y = np.full(13, 2.0)
    omega, u = Poisson().e_step(y, eta0)
    eta = eta0 + POISSON_REACH
    loss = Poisson()

    def bound(w):
        slope = w * eta0 - loss.derivative(y, eta0)
        return loss.value(y, eta0) + 0.5 * w * (eta**2 - eta0**2) - slope * (eta - eta0)

    assert np.all(Poisson().value(y, eta) <= bound(omega))
    assert np.all(Poisson().value(y, eta) > bound(0.5 * omega))
