"""The label rule (surrogate.labels) on synthetic MD measurements with known answers: MD labels are the crossing
counts (a displacement sum beside them is never read), the label and its sigma, censoring of fluxes and ICRs, and
that the measured targets are the ICR of the labelled fluxes."""

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
    """A field with crossing counts {species: (up, down)} over T_NS and (as an earlier protocol's measurement has
    them) displacement fluxes {species: J} (ions/ns), each with a +-half (ions/ns) interval; the displacement current
    is the valence sum of those fluxes."""
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


def test_md_labels_are_the_crossing_counts_even_beside_a_reliable_narrower_displacement_sum():
    """The displacement sum counts the membrane's charging as current: never a label, however narrow its interval."""
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 1), "Cl-": (0, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0)
    m = md_measurement(plus, minus)
    assert field_estimator(plus) == field_estimator(minus) == "crossings"
    s = Samples.from_measurements([m])
    t = FluxTransform()
    row = int(np.flatnonzero(s.field == -2.0)[0])
    j, ci = flux_per_ns(0, 1, T_NS)  # one K+ transit down in 0.5 ns
    assert s.y[row, K] == pytest.approx(t.forward(j))
    assert s.sigma[row, K] == pytest.approx((t.forward(ci[1]) - t.forward(ci[0])) / (2 * Z95))
    assert s.censored[row, K] == (ci[0] <= 0 <= ci[1])  # censored exactly when the interval contains zero
    assert s.censored[row, CL] and s.lo[row, CL] < 0 < s.hi[row, CL]  # no Cl- transit: (lo, hi) around zero
    for f in (plus, minus):
        assert field_estimator(f.model_copy(update={"current_displacement_reliable": False})) == "crossings"
    no_disp = md_measurement(md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, None, 1.0),
                             md_field(-2.0, {"K+": (0, 1), "Cl-": (0, 0)}, None, 1.0))
    np.testing.assert_array_equal(Samples.from_measurements([no_disp]).y, s.y)
    assert targets(no_disp, Goal()) == targets(m, Goal())


def test_icr_labels_are_censored_either_way():
    """An ICR known only from below ("> x", no transit at -E) or only from above ("< x", none at +E) is a censored
    ICR label (left out of the ln ICR metrics); the flux labels are censored per field, both signs alike."""
    on = {"K+": (40, 0), "Cl-": (0, 10)}
    lower = md_measurement(md_field(2.0, on, None, 1.0), md_field(-2.0, {"K+": (0, 0), "Cl-": (0, 0)}, None, 1.0))
    upper = md_measurement(md_field(2.0, {"K+": (0, 0), "Cl-": (0, 0)}, None, 1.0),
                           md_field(-2.0, {"K+": (0, 40), "Cl-": (10, 0)}, None, 1.0))
    assert lower.icr[0].icr_censored and upper.icr[0].icr_upper_censored
    for m in (lower, upper):
        s = Samples.from_measurements([m])
        assert s.icr_labels[0]["censored"]
        empty = int(np.flatnonzero(s.field == (-2.0 if m is lower else 2.0))[0])
        assert s.censored[empty, K] and s.censored[empty, CL]


def test_measured_targets_are_the_icr_of_the_labelled_fluxes_with_their_intervals():
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 5), "Cl-": (1, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0)
    m = md_measurement(plus, minus)
    t = targets(m, Goal())
    i_on, i_off = 50 / T_NS * E_PER_NS_TO_NA, 6 / T_NS * E_PER_NS_TO_NA  # crossings: 50 charges up, 6 down
    assert t["estimator"] == "crossings" and t["icr_censored"] == 0.0 and t["icr_upper_censored"] == 0.0
    assert t["log_icr"] == pytest.approx(math.log(i_on / i_off))
    lo, hi = m.icr[0].icr_ci
    assert (t["log_icr_lo"], t["log_icr_hi"]) == pytest.approx((math.log(lo), math.log(hi)))
    assert t["log_on_current"] == pytest.approx(math.log(i_on))
    assert (t["log_on_current_lo"], t["log_on_current_hi"]) == pytest.approx(tuple(map(math.log, plus.current_ci_nA)))
    # the surrogate's labels give the same ICR through sim.observables
    s = Samples.from_measurements([m])
    cur = current_from_fluxes_nA(s.transform.inverse(s.y), s.species_present)
    on, off, _ = s.icr_pairs()
    assert log_icr(cur[on], cur[off])[0] == pytest.approx(t["log_icr"], rel=1e-9)


def test_the_rule_commutes_with_the_mirror_image():
    plus = md_field(2.0, {"K+": (40, 0), "Cl-": (0, 10)}, {"K+": 78.0, "Cl-": -22.0}, 4.0)
    minus = md_field(-2.0, {"K+": (0, 5), "Cl-": (1, 0)}, {"K+": -9.0, "Cl-": 1.0}, 2.0, reliable=False)
    m = md_measurement(plus, minus)
    flipped = oriented(m, JANUS.mirrored(), COND.with_fields([-2.0, 2.0]))
    a, b = targets(m, Goal()), targets(flipped, Goal())
    assert b["log_icr"] == pytest.approx(-a["log_icr"])  # the mirror pore rectifies the other way
    assert (b["log_icr_lo"], b["log_icr_hi"]) == pytest.approx((-a["log_icr_hi"], -a["log_icr_lo"]))
    assert b["log_on_current"] == pytest.approx(a["log_on_current"]) and b["estimator"] == "crossings"
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


def test_the_flux_scale_suits_the_labels_resolution():
    """MD fluxes are counts: the scale is one crossing per production run (1 / T), so a zero-crossing label and a
    one-crossing label lie asinh(1) = 0.88 apart on y, not 7+ as at the continuum's 0.01 /ns; without counts the
    default."""
    from porelab.surrogate.training_set import flux_scale_for

    m = md_measurement(md_field(2.0, {"K+": (1, 0), "Cl-": (0, 0)}, None, 1.0),
                       md_field(-2.0, {"K+": (0, 0), "Cl-": (0, 0)}, None, 1.0))
    scale = flux_scale_for([m])
    assert scale == pytest.approx(1 / T_NS)
    one, zero = FluxTransform(scale).forward([1 / T_NS, 0.0])
    assert one - zero == pytest.approx(math.asinh(1.0)) and FluxTransform().forward(1 / T_NS) > 5
    c = run_continuum(JANUS, COND)
    assert flux_scale_for([c]) == FluxTransform().scale_per_ns == flux_scale_for([])
    assert flux_scale_for([c, m]) == pytest.approx(1 / T_NS)  # an MD label among them sets it


def test_a_descriptor_model_learns_censored_counts_too():
    """A few crossings per species: every flux label's interval holds zero. Exact labels only, a forest has nothing to
    learn; with learn_censored it fits their counts (at the counts' flux scale) and ranks a design that passed more
    ions above one that passed none."""
    from porelab.surrogate.factory import new_model
    from porelab.surrogate.training_set import flux_scale_for, training_samples

    ms = []
    for layers in (["COO-", "NH3+"], ["COO-", "OH"], ["NH3+", "none"], ["OH", "none"], ["COO-", "none"], ["NH3+", "OH"],
                   ["COO-", "COO-", "NH3+"], ["OH", "OH", "none"]):
        d = make_design({"layers": layers}, "tiny")
        n = 2 if "COO-" in layers else 0  # the COO- stacks pass K+ at +E, the others nothing
        fields = [md_field(2.0, {"K+": (n, 0), "Cl-": (0, 0)}, None, 1.0),
                  md_field(-2.0, {"K+": (0, n // 2), "Cl-": (0, 0)}, None, 1.0)]
        ms.append(Measurement(design_id=design_id(d, COND), design=d, conditions=COND, fidelity="md", fields=fields,
                              icr=icr_results(fields)))
    scale = flux_scale_for(ms)
    exact_only = new_model("rf", n_estimators=20, flux_scale_per_ns=scale, learn_censored=False, calibrate=False)
    with pytest.raises(ValueError, match="3 or more exact flux labels"):
        exact_only.fit(training_samples(exact_only, ms))
    rf = new_model("rf", n_estimators=50, flux_scale_per_ns=scale, calibrate=False, symmetric=False)
    rf.fit(training_samples(rf, ms))
    q = Samples.from_queries([m.design for m in ms], [COND] * len(ms), "md", rf.settings, rf.transform)
    j = rf.transform.inverse(rf.predict(q).mean[:, K])[q.field > 0]
    coo = np.array(["COO-" in m.design.layers for m in ms])
    assert j[coo].min() > j[~coo].max() >= 0
