"""Observables derived in one place: ratio intervals, ON current, selectivity, and orientation of a measurement."""

import math

import numpy as np
import pytest

from porelab.sim.continuum import run_continuum
from porelab.sim.design import design_id, make_conditions, make_design
from porelab.sim.observables import (
    current_from_fluxes_nA,
    log_icr,
    log_on_current,
    on_current,
    oriented,
    ratio_interval,
    selectivity,
)

JANUS = make_design({"layers": ["COO-", "NH3+"], "groups_per_rim": 8}, "tiny")
KCL = make_conditions({"electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [0.1, -0.1]})


def test_bound_intervals_are_interval_arithmetic_and_contain_the_statistical_ones():
    r, (lo, hi), cens = ratio_interval(10.0, (9.0, 11.0), -2.0, (-2.5, -1.5), bound=True)
    assert (r, lo, hi, cens) == (5.0, pytest.approx(9 / 2.5), pytest.approx(11 / 1.5), False)
    _, (slo, shi), _ = ratio_interval(10.0, (9.0, 11.0), -2.0, (-2.5, -1.5))
    assert lo <= slo < 5.0 < shi <= hi


def test_a_denominator_that_may_be_zero_gives_a_lower_bound_never_infinity():
    r, (lo, hi), cens = ratio_interval(10.0, (8.0, 12.0), 0.5, (-1.0, 2.0))
    assert cens and hi is None and r == lo == pytest.approx(8.0 / 2.0)
    assert ratio_interval(1.0, (0.5, 1.5), 0.0, (0.0, 0.0))[0] == 0.0


def test_on_current_and_selectivity_from_a_continuum_measurement():
    mix = make_conditions({"electrolyte": {"K+": 0.1, "Mg2+": 0.05, "Cl-": 0.2}, "fields_V_per_nm": [0.1, -0.1]})
    m = run_continuum(JANUS, mix)
    on = on_current(m.field(0.1), m.field(-0.1))
    assert on.value == max(abs(f.current_nA) for f in m.fields) and on.low <= on.value <= on.high
    side = max(m.fields, key=lambda f: abs(f.current_nA))
    s = selectivity(side, mix.electrolyte, ["K+"], ["Mg2+", "Ca2+"])
    want = (abs(side.species["K+"].flux_per_ns) / 0.1) / (abs(side.species["Mg2+"].flux_per_ns) / 0.05)
    assert s.value == pytest.approx(want) and s.low <= s.value <= s.high
    with pytest.raises(ValueError, match="none of"):
        selectivity(side, {"K+": 0.1, "Cl-": 0.1}, ["K+"], ["Ca2+"])


def test_array_observables_match_the_measured_ones():
    m = run_continuum(JANUS, KCL)
    names = ["K+", "Na+", "Li+", "Mg2+", "Ca2+", "Cl-", "SO4^2-"]
    flux = np.array([[f.species[s].flux_per_ns if s in f.species else 0.0 for s in names]
                     for f in (m.field(0.1), m.field(-0.1))])
    cur = current_from_fluxes_nA(flux)
    assert cur == pytest.approx([m.field(0.1).current_nA, m.field(-0.1).current_nA], rel=1e-6)
    assert log_icr(cur[0], cur[1]) == pytest.approx(math.log(m.icr[0].icr), rel=1e-6)
    assert log_on_current(cur[0], cur[1]) == pytest.approx(math.log(abs(cur).max()))


def test_the_mirror_measurement_answers_the_mirror_question():
    """One simulation serves a design and its mirror image at the opposite fields: oriented() flips it exactly."""
    m = run_continuum(JANUS, KCL)
    flipped = oriented(m, JANUS.mirrored(), KCL)
    direct = run_continuum(JANUS.mirrored(), KCL)
    assert flipped.design_id == direct.design_id == design_id(JANUS, KCL)
    for e in (0.1, -0.1):
        assert flipped.field(e).current_nA == pytest.approx(direct.field(e).current_nA, rel=1e-6)
        lo, hi = flipped.field(e).current_ci_nA
        assert lo <= flipped.field(e).current_nA <= hi
    assert flipped.icr[0].icr == pytest.approx(1 / m.icr[0].icr, rel=1e-6)
    assert oriented(m, JANUS, KCL) is m
    with pytest.raises(ValueError, match="another question"):
        oriented(m, make_design({"layers": ["COO-"]}, "tiny"), KCL)
