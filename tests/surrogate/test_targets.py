import math

import numpy as np
import pytest
import torch
from scipy import stats

from porelab.sim.observables import current_from_fluxes_nA as current_nA
from porelab.sim.observables import log_icr
from porelab.surrogate.likelihood import censored_nll, gaussian_nll, log_prob_between
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform


def test_transform_round_trip_over_decades_and_signs():
    t = FluxTransform(0.01)
    j = np.concatenate([np.logspace(-5, 5, 41), -np.logspace(-5, 5, 41), [0.0]])
    np.testing.assert_allclose(t.inverse(t.forward(j)), j, rtol=1e-10, atol=1e-15)
    y = t.forward(j)
    assert np.all(np.sign(y) == np.sign(j)) and np.abs(y).max() < 17  # 1e-5 .. 1e5 ions/ns within +-17
    assert t.forward(1e4) - t.forward(1e3) == pytest.approx(math.log(10), rel=1e-6)  # log-like far from 0


def test_label_noise_and_censoring():
    t = FluxTransform(0.01)
    y, sd, cens, lo, hi = t.label(10.0, (9.0, 11.0))
    assert not cens and lo < y < hi
    assert sd == pytest.approx((t.forward(11.0) - t.forward(9.0)) / (2 * 1.959963984540054))
    y, sd, cens, lo, hi = t.label(0.0, (-3.7, 3.7))  # zero crossings: only a bound
    assert cens and lo == pytest.approx(-hi) and y == 0.0


def test_current_and_icr():
    j = np.zeros(len(SPECIES_NAMES))
    j[SPECIES_NAMES.index("K+")], j[SPECIES_NAMES.index("Cl-")] = 1.0, -1.0
    assert current_nA(j) == pytest.approx(2 * 0.1602176634)
    j[SPECIES_NAMES.index("Mg2+")] = np.nan  # absent species do not count
    assert current_nA(j) == pytest.approx(2 * 0.1602176634)
    assert log_icr(np.array([4.0]), np.array([-2.0]))[0] == pytest.approx(math.log(2))


def test_log_prob_between_matches_scipy_and_stays_finite():
    rng = np.random.default_rng(0)
    a = rng.uniform(-6, 6, 200)
    b = a + rng.uniform(0.01, 4, 200)
    ours = log_prob_between(torch.tensor(a), torch.tensor(b)).numpy()
    ref = np.log(stats.norm.cdf(b) - stats.norm.cdf(a))
    np.testing.assert_allclose(ours, ref, rtol=1e-6, atol=1e-9)
    far = log_prob_between(torch.tensor([30.0, -40.0]), torch.tensor([31.0, -39.0]))
    assert torch.isfinite(far).all() and (far < -400).all()


def test_censored_label_counts_only_when_the_prediction_violates_the_bound():
    lo, hi = torch.tensor(-1.0), torch.tensor(1.0)
    var = torch.tensor(0.01)
    mu = torch.tensor([0.0, 0.5, -0.5, 3.0, -3.0], requires_grad=True)
    loss = censored_nll(lo, hi, mu, var)
    loss.sum().backward()
    inside, outside = slice(0, 3), slice(3, 5)
    assert torch.all(loss[inside] < 1e-6) and torch.all(mu.grad[inside].abs() < 1e-4)
    assert torch.all(loss[outside] > 10)
    assert mu.grad[3] > 0 and mu.grad[4] < 0  # gradient descent pulls the prediction back inside
    # far outside it behaves like a Gaussian NLL from the violated bound
    g = gaussian_nll(hi, torch.tensor(3.0), var) - 0.5 * math.log(2 * math.pi * 0.01)
    assert float(loss[3].detach()) == pytest.approx(float(g), rel=0.05)
