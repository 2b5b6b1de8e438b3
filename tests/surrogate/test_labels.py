"""The label rule (surrogate.labels) on synthetic MD measurements with known answers: which estimator stands for each
field, the label and its sigma, censoring, and that the measured targets are the ICR of the labelled fluxes."""

import math

import numpy as np
import pytest

from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import targets
from porelab.sim.continuum import run_continuum
from porelab.sim.design import design_id, make_conditions, make_design
from porelab.sim.estimators import flux_per_ns
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult
from porelab.sim.observables import current_from_fluxes_nA, icr_results, log_icr, oriented
from porelab.surrogate.dataset import Samples
from porelab.surrogate.labels import field_estimator, labelled
from porelab.surrogate.targets import SPECIES_NAMES, Z95, FluxTransform

JANUS = make_design({"layers": ["COO-", "NH3+"]}, "tiny")
COND = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [2.0, -2.0]})
T_NS = 0.5
K, CL = SPECIES_NAMES.index("K+"), SPECIES_NAMES.index("Cl-")


def md_field(e: float, counts: dict, disp: dict | None, half: float, reliable: bool | None = True) -> FieldResult:
    """A field with crossing counts {species: (up, down)} over T_NS and displacement fluxes {species: J} (ions/ns),
    each with a +-half (ions/ns) interval; the displacement current is the valence sum of those fluxes."""
    val = {"K+": 1.0, "Cl-": -1.0}
    species, cur = {}, 0.0
    for s, (up, down) in counts.items():
        j, ci = flux_per_ns(up, down, T_NS)
        d = {} if disp is None else {"flux_displacement_per_ns": disp[s],
                                     "flux_displacement_ci_per_ns": (disp[s] - half, disp[s] + half)}
        species[s] = SpeciesResult(crossings_up=up, crossings_down=down, crossings=float(up - down), flux_per_ns=j,
                                   flux_ci_per_ns=ci, **d)
        cur += val[s] * (up - down) / T_NS * E_PER_NS_TO_NA
    extra = {}
    if disp is not None:
        i_d = sum(val[s] * disp[s] for s in disp) * E_PER_NS_TO_NA
        h = half * math.sqrt(2) * E_PER_NS_TO_NA
        extra = {"current_displacement_nA": i_d, "current_displacement_ci_nA": (i_d - h, i_d + h),
                 "current_displacement_n_eff": 50.0 if reliable else 5.0, "current_displacement_reliable": reliable,
                 "transient_dropped_ns": 0.01}
    w = 3.0 * E_PER_NS_TO_NA * math.sqrt(sum(u + d for u, d in counts.values()) + 1) / T_NS
    return FieldResult(field_V_per_nm=e, time_ns=T_NS, current_nA=cur, current_ci_nA=(cur - w, cur + w),
                       species=species, **extra)


def md_measurement(plus: FieldResult, minus: FieldResult) -> Measurement:
    fields = [plus, minus]
    return Measurement(design_id=design_id(JANUS, COND), design=JANUS, conditions=COND, fidelity="md",
                       fields=fields, icr=icr_results(fields))


def test_reliable_narrower_displacement_is_the_label_and_its_interval_sets_sigma_and_censoring():
    # few crossings at -E: the crossing OFF current is censored; the displacement one is resolved
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 1), "Cl-": (0, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0)
    m = md_measurement(plus, minus)
    assert field_estimator(plus) == field_estimator(minus) == "displacement"
    assert m.icr[0].icr_censored  # crossings alone say only "at least"
    s = Samples.from_measurements([m])
    t = FluxTransform()
    row = int(np.flatnonzero(s.field == -2.0)[0])
    assert s.y[row, K] == pytest.approx(t.forward(-9.0))
    assert s.sigma[row, K] == pytest.approx((t.forward(-7.0) - t.forward(-11.0)) / (2 * Z95))
    assert not s.censored[row, K]  # (-11, -7) excludes zero: exact, although K+ crossed once
    assert s.censored[row, CL] and s.lo[row, CL] == pytest.approx(t.forward(-1.0))  # (-1, 3) contains zero
    assert s.hi[row, CL] == pytest.approx(t.forward(3.0))
    assert not s.icr_labels[0]["censored"]  # the displacement OFF current is resolved


def test_unreliable_or_wider_displacement_is_never_used():
    counts_p, counts_m = {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": (0, 12), "Cl-": (3, 0)}
    disp_p, disp_m = {"K+": 78.0, "Cl-": -22.0}, {"K+": -20.0, "Cl-": 5.0}
    for plus, minus in (
            (md_field(2.0, counts_p, disp_p, 4.0, reliable=False), md_field(-2.0, counts_m, disp_m, 2.0, False)),
            (md_field(2.0, counts_p, disp_p, 4.0, reliable=None), md_field(-2.0, counts_m, disp_m, 2.0, None)),
            (md_field(2.0, counts_p, disp_p, 400.0), md_field(-2.0, counts_m, disp_m, 200.0)),  # wider
            (md_field(2.0, counts_p, None, 1.0), md_field(-2.0, counts_m, None, 1.0))):  # no displacement
        m = md_measurement(plus, minus)
        assert field_estimator(plus) == "crossings"
        s = Samples.from_measurements([m])
        row = int(np.flatnonzero(s.field == 2.0)[0])
        assert s.y[row, K] == pytest.approx(FluxTransform().forward(80.0))  # 40 crossings in 0.5 ns
        assert targets(m, Goal())["estimator"] == "crossings"
        assert targets(m, Goal())["log_icr"] == pytest.approx(math.log(m.icr[0].icr))


def test_measured_targets_are_the_icr_of_the_labelled_fluxes_with_their_intervals():
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 5), "Cl-": (1, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0)
    m = md_measurement(plus, minus)
    t = targets(m, Goal())
    i_on, i_off = (78.0 + 22.0) * E_PER_NS_TO_NA, (-9.0 - 1.0) * E_PER_NS_TO_NA
    assert t["estimator"] == "displacement" and t["icr_censored"] == 0.0
    assert t["log_icr"] == pytest.approx(math.log(i_on / -i_off))
    assert t["log_icr_lo"] < t["log_icr"] < t["log_icr_hi"]
    assert t["log_on_current"] == pytest.approx(math.log(i_on))
    h = 4.0 * math.sqrt(2) * E_PER_NS_TO_NA
    assert t["log_on_current_lo"] == pytest.approx(math.log(i_on - h))
    assert t["log_on_current_hi"] == pytest.approx(math.log(i_on + h))
    # the surrogate's labels give the same ICR through sim.observables
    s = Samples.from_measurements([m])
    cur = current_from_fluxes_nA(s.transform.inverse(s.y), s.species_present)
    on, off, _ = s.icr_pairs()
    assert log_icr(cur[on], cur[off])[0] == pytest.approx(t["log_icr"], rel=1e-9)
    # mixed estimators: +E by displacement, -E by crossings (its displacement interval unreliable)
    minus_c = md_field(-2.0, {"K+": (0, 5), "Cl-": (1, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0, reliable=False)
    t2 = targets(md_measurement(plus, minus_c), Goal())
    assert t2["estimator"] == "displacement|crossings"
    assert t2["log_icr"] == pytest.approx(math.log(i_on / (6 / T_NS * E_PER_NS_TO_NA)))


def test_censored_icr_keeps_the_point_ratio_with_only_a_lower_bound():
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 1), "Cl-": (0, 0)}, {"K+": -1.5, "Cl-": 0.5}, 2.5)  # I(-E) interval has 0
    t = targets(md_measurement(plus, minus), Goal())
    assert t["icr_censored"] == 1.0 and t["log_icr_hi"] is None
    assert t["log_icr"] == pytest.approx(math.log(100.0 / 2.0))  # point ratio of the displacement currents
    assert t["log_icr_lo"] is not None and t["log_icr_lo"] < t["log_icr"]


def test_the_rule_commutes_with_the_mirror_image():
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 5), "Cl-": (1, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0, reliable=False)
    m = md_measurement(plus, minus)
    flipped = oriented(m, JANUS.mirrored(), COND.with_fields([-2.0, 2.0]))
    a, b = targets(m, Goal()), targets(flipped, Goal())
    assert b["log_icr"] == pytest.approx(-a["log_icr"])  # the mirror pore rectifies the other way
    assert b["log_on_current"] == pytest.approx(a["log_on_current"])
    assert b["estimator"] == "crossings|displacement"
    sa, sb = Samples.from_measurements([m]), Samples.from_measurements([flipped])
    for e in (2.0, -2.0):
        ra, rb = np.flatnonzero(sa.field == e)[0], np.flatnonzero(sb.field == -e)[0]
        np.testing.assert_allclose(sb.y[rb, [K, CL]], -sa.y[ra, [K, CL]])
        np.testing.assert_allclose(sb.sigma[rb, [K, CL]], sa.sigma[ra, [K, CL]])


def test_continuum_labels_and_targets_are_the_oracles_own():
    c = make_conditions({"electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [0.1, -0.1]})
    m = run_continuum(JANUS, c)
    lab = labelled(m)
    assert set(lab.estimators) == {"oracle"} and lab.icr[0].icr == m.icr[0].icr
    t = targets(m, Goal())
    assert t["estimator"] == "oracle" and t["log_icr"] == pytest.approx(math.log(m.icr[0].icr))
    lo, hi = m.icr[0].icr_ci
    assert t["log_icr_lo"] == pytest.approx(math.log(lo)) and t["log_icr_hi"] == pytest.approx(math.log(hi))
    s = Samples.from_measurements([m])
    row = int(np.flatnonzero(s.field == 0.1)[0])
    assert s.y[row, K] == pytest.approx(FluxTransform().forward(m.field(0.1).species["K+"].flux_per_ns))
