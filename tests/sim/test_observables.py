"""Observables derived in one place: ratio intervals, ON current, selectivity, and orientation of a measurement."""

import math

import numpy as np
import pytest

from porelab.sim.continuum import run_continuum
from porelab.sim.design import design_id, make_conditions, make_design
from porelab.sim.estimators import crossing_current_nA
from porelab.sim.measurement import ChunkRecord, FieldResult, RunRecord, SpeciesResult
from porelab.sim.observables import (
    current_from_fluxes_nA,
    icr_results,
    log_icr,
    log_on_current,
    mirrored_field,
    mirrored_icr,
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


def _md_field(e: float, k: tuple[int, int], cl: tuple[int, int], t: float = 0.1) -> FieldResult:
    """An MD result with crossing counts (up, down) of K+ and Cl- in t ns."""
    i, ci = crossing_current_nA({"K+": k, "Cl-": cl}, {"K+": 1.0, "Cl-": -1.0}, t)
    species = {s: SpeciesResult(crossings_up=u, crossings_down=d, crossings=float(u - d), flux_per_ns=(u - d) / t,
                                flux_ci_per_ns=((u - d) / t - 1.0, (u - d) / t + 1.0))
               for s, (u, d) in (("K+", k), ("Cl-", cl))}
    return FieldResult(field_V_per_nm=e, time_ns=t, current_nA=i, current_ci_nA=ci, species=species)


@pytest.mark.parametrize("plus, minus", [(((9, 0), (0, 4)), ((0, 2), (1, 0))),  # exact
                                         (((7, 0), (0, 4)), ((0, 0), (0, 0))),  # "> x"
                                         (((0, 0), (0, 0)), ((0, 6), (3, 0))),  # "< x"
                                         (((0, 0), (0, 0)), ((0, 0), (0, 0)))])  # unresolved
def test_an_icr_row_mirrors_without_the_counts_it_was_computed_from(plus, minus):
    """The mirror image's ICR row equals the row computed from the mirrored fields, for the counts' estimator and
    for the currents' (a record's chunk history kept no counts before 2026-12-06)."""
    fields = [_md_field(2.0, *plus), _md_field(-2.0, *minus)]
    for fs in (fields, [f.model_copy(update={"species": {}}) for f in fields]):
        (row,) = icr_results(fs)
        (want,) = icr_results([mirrored_field(f) for f in fs])
        got = mirrored_icr(row)
        assert (got.icr_censored, got.icr_upper_censored) == (want.icr_censored, want.icr_upper_censored)
        assert got.icr == pytest.approx(want.icr, rel=1e-9)
        assert got.icr_ci[0] == pytest.approx(want.icr_ci[0], rel=1e-9, abs=1e-12)
        assert (got.icr_ci[1] is None) == (want.icr_ci[1] is None)
        if want.icr_ci[1] is not None:
            assert got.icr_ci[1] == pytest.approx(want.icr_ci[1], rel=1e-9)


def test_a_mirrored_record_keeps_the_counted_icr_of_its_history():
    """A record's chunk history answered for the mirror question keeps the ICR the counts gave, though an older
    history holds no counts (recomputing it from the currents would change the estimator)."""
    cond = make_conditions({"fields_V_per_nm": [2.0, -2.0]})
    fields = [_md_field(2.0, (2, 0), (0, 0)), _md_field(-2.0, (0, 10), (4, 0))]
    rows = icr_results(fields)
    run = RunRecord(rule={"until": "fixed"}, production_ps=100.0, stopped="fixed", reason="fixed", cpu_s=1.0,
                    wall_s=1.0, history=[ChunkRecord(production_ps=100.0, icr=rows,
                                                     fields=[f.model_copy(update={"species": {}}) for f in fields])])
    m = run_continuum(JANUS, cond).model_copy(update={"fields": fields, "icr": rows, "run": run})
    flipped = oriented(m, JANUS.mirrored(), cond)
    assert flipped.run.history[0].icr == [mirrored_icr(r) for r in rows]
    assert flipped.run.history[0].icr[0].icr == pytest.approx(flipped.icr[0].icr)  # the counts' 14/2 both
