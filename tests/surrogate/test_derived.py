"""Observables derived from predicted fluxes (surrogate.derived) against hand-computed answers."""

import math

import numpy as np
import pytest

from porelab.sim.design import make_conditions, make_design
from porelab.surrogate.dataset import Samples
from porelab.surrogate.derived import derive, pick_pairs
from porelab.surrogate.prediction import Prediction
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform

E = 0.1602176634  # nA per e/ns
K, CL = SPECIES_NAMES.index("K+"), SPECIES_NAMES.index("Cl-")
T = FluxTransform(0.05)


def _queries():
    designs = [make_design({"layers": ["COO-", "NH3+"]}, "tiny"), make_design({"layers": ["OH"]}, "tiny")]
    cond = make_conditions({"electrolyte": {"K+": 0.1, "Na+": 0.1, "Cl-": 0.2},
                            "fields_V_per_nm": [0.5, -0.5, 1.0, -1.0]})
    return Samples.from_queries(designs, cond, transform=T)


def _prediction(q, members: np.ndarray, members_std: float = 0.0) -> Prediction:
    """Members (M, n, S) of the transformed fluxes, aleatoric std `members_std` everywhere."""
    mean = members.mean(axis=0)
    epi, alea = members.std(axis=0), np.full(mean.shape, members_std)
    return Prediction(mean, epi, alea, members, np.full(members.shape, members_std), q.species_present, T)


def test_pick_pairs_takes_the_field_asked_for():
    q = _queries()
    on, off = pick_pairs(q)
    assert q.field[on].tolist() == [1.0, 1.0] and q.field[off].tolist() == [-1.0, -1.0]
    assert q.group[on].tolist() == [0, 1] and (q.group[on] == q.group[off]).all()
    on, off = pick_pairs(q, 0.6)
    assert q.field[on].tolist() == [0.5, 0.5]
    one_sided = Samples.from_queries(q.designs[:1], make_conditions({"fields_V_per_nm": [0.5, 1.0]}))
    with pytest.raises(ValueError, match="no field at both"):
        pick_pairs(one_sided)


def test_targets_follow_from_the_fluxes_of_every_member():
    q = _queries()
    rng = np.random.default_rng(0)
    members = np.zeros((3, len(q), len(SPECIES_NAMES)))
    members[:, :, K] = np.sign(q.field) * rng.uniform(2, 6, (3, len(q)))
    members[:, :, CL] = -np.sign(q.field) * rng.uniform(2, 6, (3, len(q)))
    p = _prediction(q, members)
    p.icr_std_factor = 2.0
    on, off = pick_pairs(q)
    out = derive(p, q, on, off, ("log_icr", "log_on_current", "log_selectivity"), (["K+"], ["Cl-"]))

    def by_hand(y):  # y (n, S) transformed fluxes -> the three targets of each pair
        j = T.inverse(y)
        cur = E * (j[:, K] - j[:, CL])  # K+ carries +1 e, Cl- -1 e
        ip, im = cur[on], cur[off]
        side = np.where(np.abs(ip) >= np.abs(im), on, off)
        s = (np.abs(j[side, K]) / 0.1) / (np.abs(j[side, CL]) / 0.2)  # Na+ is present, with zero flux
        return np.log(np.abs(ip) / np.abs(im)), np.log(np.maximum(np.abs(ip), np.abs(im))), np.log(s)

    point = by_hand(p.mean)
    each = np.array([by_hand(m) for m in members])  # (M, 3, pairs)
    for k, name in enumerate(("log_icr", "log_on_current", "log_selectivity")):
        factor = 2.0 if name == "log_icr" else 1.0
        mean, std, epi = out[name]
        np.testing.assert_allclose(mean, point[k], rtol=1e-12)
        np.testing.assert_allclose(epi, factor * each[:, k].std(axis=0), rtol=1e-12)
        assert np.all(std > 0) and np.all(std <= factor * np.abs(each[:, k] - each[:, k].mean(0)).max(0) + 1e-12)


def test_total_spread_matches_the_delta_method():
    """One member, aleatoric std sigma on y = asinh(J / s) far from zero (d ln|sinh y| / dy = coth y ~ 1):
    ln ICR = ln|J+| - ln|J-| has std sqrt(2) sigma; no epistemic part."""
    q = _queries()
    members = np.zeros((1, len(q), len(SPECIES_NAMES)))
    members[0, :, K] = np.sign(q.field) * 8.0
    # Cl- flux ~0 (y = 0 +- sigma: |J| < 0.003 ions/ns against 74 of K+): the current is the K+ flux
    sigma = 0.05
    p = _prediction(q, members, sigma)
    on, off = pick_pairs(q)
    out = derive(p, q, on, off, n_draws=20000, seed=1)
    mean, std, epi = out["log_icr"]
    np.testing.assert_allclose(mean, 0.0, atol=1e-12)
    np.testing.assert_allclose(epi, 0.0, atol=1e-12)
    np.testing.assert_allclose(std, math.sqrt(2) * sigma, rtol=0.03)
    # ln ON current = the larger of two iid N(mu, sigma^2): std sqrt(1 - 1/pi) sigma
    np.testing.assert_allclose(out["log_on_current"][1], math.sqrt(1 - 1 / math.pi) * sigma, rtol=0.03)


def test_selectivity_needs_its_species_and_unknown_targets_are_refused():
    q = _queries()
    p = _prediction(q, np.ones((2, len(q), len(SPECIES_NAMES))))
    on, off = pick_pairs(q)
    with pytest.raises(ValueError, match="numerator and denominator"):
        derive(p, q, on, off, ("log_selectivity",))
    with pytest.raises(ValueError, match="'log_current' is unknown"):
        derive(p, q, on, off, ("log_current",))
