import math

import numpy as np
import pytest
from scipy.stats import norm

from porelab.active_learning.campaign.acquisition import (
    ConstrainedExpectedImprovement,
    ExpectedImprovement,
    Grid,
    MaxUncertainty,
    Random,
    ThompsonSampling,
    UpperConfidenceBound,
    resolve_acquisition,
    select_batch,
)
from porelab.active_learning.campaign.targets import fold_normal
from porelab.surrogate.target_prediction import TargetPrediction as Prediction


class MockModel:
    """Returns fixed predictions for candidates 0..n-1 (candidates are indices): the objective |ln ICR| and, for
    Thompson sampling's folded draw, ln ICR with the same numbers."""

    def __init__(self, mean, std, on_mean=None, on_std=None, epistemic=None):
        self.mean, self.std = np.asarray(mean, float), np.asarray(std, float)
        self.on_mean = np.zeros_like(self.mean) if on_mean is None else np.asarray(on_mean, float)
        self.on_std = np.full_like(self.mean, 1e-6) if on_std is None else np.asarray(on_std, float)
        self.epi = self.std if epistemic is None else np.asarray(epistemic, float)

    def predict(self, candidates):
        i = np.asarray(candidates, int)
        return Prediction({"abs_log_icr": self.mean[i], "log_icr": self.mean[i], "log_on_current": self.on_mean[i]},
                          {"abs_log_icr": self.std[i], "log_icr": self.std[i], "log_on_current": self.on_std[i]},
                          {"abs_log_icr": self.epi[i], "log_icr": self.epi[i], "log_on_current": self.on_std[i]},
                          np.column_stack([self.mean[i], self.std[i]]))


X = [0, 1, 2, 3]


def test_ucb_is_mean_plus_sqrt_beta_std():
    m = MockModel([0.0, 1.0, 2.0, 0.5], [1.0, 0.1, 0.0, 2.0])
    s = UpperConfidenceBound(m, beta=4.0)(X)
    assert s == pytest.approx([2.0, 1.2, 2.0, 4.5], abs=1e-6)
    assert np.argmax(s) == 3
    assert np.argmax(UpperConfidenceBound(m, beta=0.0)(X)) == 2  # beta 0: pure exploitation


def test_ucb_minimising_flips_the_mean():
    m = MockModel([0.0, 1.0, 2.0, 0.5], [0.1, 0.1, 0.1, 0.1])
    assert np.argmax(UpperConfidenceBound(m, maximize=False, beta=1.0)(X)) == 0


def test_max_uncertainty_uses_epistemic_std():
    m = MockModel([0, 0, 0, 0], std=[5, 5, 5, 5], epistemic=[0.1, 0.3, 0.2, 0.0])
    assert np.argmax(MaxUncertainty(m)(X)) == 1


def test_thompson_draws_from_the_posterior_seeded():
    m = MockModel([0.0, 1.0, 2.0, 0.5], [1.0, 0.5, 0.0, 2.0])
    s = ThompsonSampling(m, seed=3)(X)
    assert s == pytest.approx(ThompsonSampling(m, seed=3)(X)) and s[2] == pytest.approx(2.0)  # sd 0: the mean
    # flat mean, equal std: each candidate is the argmax equally often across seeds (the picks spread)
    flat = MockModel(np.zeros(4), np.ones(4))
    wins = np.bincount([np.argmax(ThompsonSampling(flat, seed=k)(X)) for k in range(4000)], minlength=4)
    assert np.all(np.abs(wins / 4000 - 0.25) < 0.03)
    # draws follow N(mean, std): z-scores of many seeds have mean 0 and std 1
    z = np.array([(ThompsonSampling(m, target="log_icr", seed=k)(X)[3] - 0.5) / 2.0 for k in range(4000)])
    assert abs(z.mean()) < 0.06 and abs(z.std() - 1) < 0.05
    # |ln ICR|: a draw of ln ICR folded, |N(0.5, 2^2)| (campaign.targets.fold_normal), never below 0
    d = np.array([ThompsonSampling(m, seed=k)(X)[3] for k in range(4000)])
    e, sd = fold_normal(0.5, 2.0)
    assert d.min() >= 0 and abs(d.mean() - e) < 0.06 * sd and abs(d.std() / sd - 1) < 0.05


def test_expected_improvement_closed_form():
    m = MockModel([0.0, 1.0, 2.0, -1.0], [1.0, 1.0, 1e-12, 2.0])
    s = ExpectedImprovement(m, best_f=1.0)(X)
    # EI at mu = best, sd = 1 is phi(0); a certain point above best gains exactly mu - best
    assert s[1] == pytest.approx(norm.pdf(0.0))
    assert s[2] == pytest.approx(1.0, abs=1e-9)
    z = (-1.0 - 1.0) / 2.0
    assert s[3] == pytest.approx(2.0 * (z * norm.cdf(z) + norm.pdf(z)))
    assert s[0] < s[1]


def test_constrained_ei_multiplies_by_feasibility():
    m = MockModel([3.0, 3.0, 3.0, 0.0], [1e-9, 1e-9, 1e-9, 1e-9], on_mean=[math.log(10), math.log(0.1), 0.0, 5.0],
                  on_std=[0.5, 0.5, 1.0, 0.5])
    acq = ConstrainedExpectedImprovement(m, best_f=1.0, threshold=0.0)  # ON current >= 1 nA
    s = acq(X)
    assert s[0] == pytest.approx(2.0 * norm.cdf(math.log(10) / 0.5), rel=1e-6)
    assert s[1] < 1e-3  # same ICR, infeasible ON current
    assert s[2] == pytest.approx(1.0, rel=1e-6)  # on the threshold: half feasible
    assert s[3] == pytest.approx(0.0, abs=1e-9)  # feasible but no improvement
    nobody = ConstrainedExpectedImprovement(m, best_f=None, threshold=0.0)(X)  # nothing feasible seen yet
    assert np.argmax(nobody) == 3


def test_random_is_seeded_and_grid_keeps_order():
    assert np.array_equal(Random(seed=1)(X), Random(seed=1)(X))
    assert not np.array_equal(Random(seed=1)(X), Random(seed=2)(X))
    assert list(select_batch(Grid()(X), 3, diverse=False)) == [0, 1, 2]


def test_resolver_lists_choices_and_keywords():
    assert isinstance(resolve_acquisition("UCB", None, beta=1.0), UpperConfidenceBound)
    assert isinstance(resolve_acquisition("max-uncertainty"), MaxUncertainty)
    assert isinstance(resolve_acquisition("thompson", None, seed=1), ThompsonSampling)
    with pytest.raises(ValueError, match="choose one of random, max_uncertainty, ucb, thompson, ei, constrained_ei, "
                                         "grid"):
        resolve_acquisition("thomson")
    with pytest.raises(ValueError, match="unknown parameter.*betta.*allowed: target, maximize, beta"):
        resolve_acquisition("ucb", None, betta=2)


def test_batch_keeps_best_is_diverse_and_deterministic():
    rng = np.random.default_rng(0)
    # two tight clusters of high scores and one far, slightly lower cluster
    emb = np.vstack([rng.normal(0, 0.01, (20, 2)), rng.normal(5, 0.01, (20, 2)), rng.normal(-5, 0.01, (20, 2))])
    scores = np.r_[np.full(20, 1.0) + rng.random(20) * 0.01, np.full(20, 0.9), np.full(20, 0.8)]
    greedy = select_batch(scores, 3, emb, diverse=False)
    assert set(greedy) <= set(range(20))  # greedy: all from the top cluster
    picks = select_batch(scores, 3, emb, seed=4, top_factor=20)
    assert int(np.argmax(scores)) in picks
    assert {int(i) // 20 for i in picks} == {0, 1, 2}  # one per cluster
    assert {int(i) // 20 for i in select_batch(scores, 3, emb, seed=4)} == {0, 1}  # only the top 30 compete
    assert np.array_equal(picks, select_batch(scores, 3, emb, seed=4, top_factor=20))
    assert len(set(select_batch(scores, 10, emb, seed=4))) == 10


def _pred(icr_mu, icr_sd, on_mu, on_sd):
    from porelab.surrogate.target_prediction import TargetPrediction

    a = lambda v: np.asarray(v, float)  # noqa: E731
    return TargetPrediction({"abs_log_icr": a(icr_mu), "log_on_current": a(on_mu)},
                            {"abs_log_icr": a(icr_sd), "log_on_current": a(on_sd)},
                            {"abs_log_icr": a(icr_sd), "log_on_current": a(on_sd)}, np.zeros((len(icr_mu), 1)))


@pytest.mark.parametrize("kind", ["ucb", "max_uncertainty", "ei"])
def test_every_acquisition_ranks_confidently_infeasible_designs_last(kind):
    from porelab.active_learning.campaign.iteration import respect_constraint

    # design 0: the best objective and the widest uncertainty, but its ON current is surely below 1 nA
    pred = _pred([5.0, 1.0, 0.5], [3.0, 0.5, 0.5], [math.log(0.01), math.log(3.0), math.log(2.0)], [0.3, 0.3, 0.3])
    raw = resolve_acquisition(kind, None, best_f=0.0).score(pred) if kind == "ei" else \
        resolve_acquisition(kind, None).score(pred)
    assert np.argmax(raw) == 0  # unconstrained, the infeasible design would be picked first
    s = respect_constraint(raw, pred, math.log(1.0))
    assert np.argmin(s) == 0 and list(np.argsort(-s)[:2]) == list(np.argsort(-raw[1:])[:2] + 1)
    # nothing plausible: ranked by the probability of meeting the constraint
    none = respect_constraint(raw, pred, math.log(1e3))
    assert np.argmax(none) == 1
