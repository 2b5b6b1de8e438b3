"""Physical laws the continuum (PNP) oracle must obey."""

import math

import numpy as np
import pytest

from porelab.sim.continuum import (
    M_TO_PER_NM3,
    ContinuumError,
    column_from_profiles,
    design_solver,
    iv_curve,
    run_continuum,
    simulate_continuum,
    thermal_voltage_V,
)
from porelab.sim.design import SPECIES, make_conditions, make_design
from porelab.sim.measurement import E_PER_NS_TO_NA, Measurement

JANUS = {"layers": ["COO-", "NH3+"]}


def _conditions(fields, electrolyte=None):
    return make_conditions({"electrolyte": electrolyte or {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": fields})


def _icr(design, field, electrolyte=None, **kw):
    m = simulate_continuum(design, _conditions([field, -field], electrolyte), **kw)
    return m.icr[0]


@pytest.mark.parametrize("electrolyte", [{"K+": 1.0, "Cl-": 1.0}, {"Mg2+": 0.2, "SO4^2-": 0.2},
                                         {"Ca2+": 0.1, "Na+": 0.3, "Cl-": 0.5}])
def test_uniform_neutral_cylinder_is_ohmic(electrolyte):
    area, length = 1.4, 3.0
    names = list(electrolyte)
    z = [SPECIES[n]["valence"] for n in names]
    d = [SPECIES[n]["D"] for n in names]
    col = column_from_profiles(np.linspace(0.0, length, 151), area)
    biases = np.array([-2.0, -0.5, -0.05, 0.05, 0.5, 2.0])
    current = iv_curve(col, z, d, list(electrolyte.values()), biases)
    g = current / biases
    # sum z^2 e^2 D c / kT * A / L, in e/ns per V, then nA/V
    g_exact = sum(zi**2 * di * electrolyte[n] * M_TO_PER_NM3 for n, zi, di in zip(names, z, d, strict=True))
    g_exact *= area / length / thermal_voltage_V(300.0) * E_PER_NS_TO_NA
    assert np.allclose(g, g_exact, rtol=0.02)
    assert np.ptp(g) < 1e-6 * g_exact  # linear
    assert np.allclose(current[::-1], -current, rtol=1e-9)  # symmetric


def test_neutral_pore_matches_series_resistance_of_its_geometry():
    design = make_design({"layers": ["none", "none"]}, "seed")
    m = simulate_continuum(design, _conditions([0.05, -0.05, 2.0, -2.0]), pore_d_factor=1.0)
    g = [f.current_nA / (f.field_V_per_nm * design.box_z_nm) for f in m.fields]
    # reservoirs + two Hall access regions (capped at the cell radius) + pore, in series
    a, r_cell = math.sqrt(design.pore.area_nm2() / math.pi), design.sheet_nm / math.sqrt(math.pi)
    l_pore = design.stack_thickness_nm() + 0.34
    l_res = design.box_z_nm - l_pore - 2 * math.pi / 4 * (r_cell - a)
    resistance = l_res / design.sheet_nm**2 + (1 / a - 1 / r_cell) / 2 + l_pore / design.pore.area_nm2()
    g_exact = (1.96 + 2.03) * M_TO_PER_NM3 / thermal_voltage_V(300.0) / resistance * E_PER_NS_TO_NA
    assert np.allclose(g, g_exact, rtol=0.02)
    assert np.ptp(g) < 1e-6 * g_exact


def test_neutral_pore_with_reduced_pore_diffusion_is_symmetric_and_less_conductive():
    design = make_design({"layers": ["OH"]}, "tiny")
    fields = [0.05, -0.05, 1.0, -1.0]
    slow = simulate_continuum(design, _conditions(fields))
    free = simulate_continuum(design, _conditions(fields), pore_d_factor=1.0)
    for e in fields[::2]:
        assert slow.field(e).current_nA == pytest.approx(-slow.field(-e).current_nA, rel=1e-9)
        assert 0 < slow.field(e).current_nA < free.field(e).current_nA
    assert all(r.icr == pytest.approx(1.0, abs=1e-9) for r in slow.icr)


@pytest.mark.parametrize("bias", [-20.0, -1.0, 1.0, 20.0])
def test_flux_of_each_species_is_constant_along_z(bias):
    solver = design_solver(make_design(JANUS, "seed"), _conditions([0.1]))
    u = solver.sweep([bias])[bias]
    j = solver.solution(u, bias).flux_per_ns  # (S, N): on every edge
    assert np.all(np.abs(j - j.mean(axis=1, keepdims=True)) < 1e-8 * np.abs(j).max(axis=1, keepdims=True))


def test_negative_pore_is_cation_selective_and_does_not_rectify():
    design = make_design({"layers": ["COO-", "COO-"]}, "seed")
    m = simulate_continuum(design, _conditions([0.02, -0.02]))
    for f in m.fields:
        k, cl = f.species["K+"].flux_per_ns, f.species["Cl-"].flux_per_ns
        assert k * cl < 0 and abs(k) > 0.8 * (abs(k) + abs(cl))  # K+ carries most of the current
    (r,) = m.icr
    assert r.icr_ci[0] <= 1.0 <= r.icr_ci[1] and r.icr == pytest.approx(1.0, abs=1e-6)


def test_janus_pore_rectifies_with_on_state_at_positive_field():
    design = make_design(JANUS, "seed")
    m = simulate_continuum(design, _conditions([0.1, -0.1]))
    on, off = m.field(0.1).current_nA, m.field(-0.1).current_nA
    assert on > 0 > off and on > 1.2 * abs(off)
    assert m.icr[0].icr_ci[0] > 1.2 and not m.icr[0].icr_censored
    flipped = _icr(design.mirrored(), 0.1)  # NH3+ bottom, COO- top: ON at -E
    assert flipped.icr == pytest.approx(1 / m.icr[0].icr, rel=1e-6)


def test_icr_grows_with_fixed_charge():
    icr = [_icr(make_design({**JANUS, "groups_per_rim": g}, "seed"), 0.05).icr for g in (1, 2, 4, 8)]
    assert all(b > a for a, b in zip(icr, icr[1:], strict=False)), icr
    assert icr[0] > 1.0


def test_icr_falls_as_concentration_rises():
    design = make_design(JANUS, "seed")
    icr = [_icr(design, 0.05, {"K+": c, "Cl-": c}).icr for c in (0.1, 0.3, 1.0, 3.0)]
    assert all(b < a for a, b in zip(icr, icr[1:], strict=False)), icr
    assert icr[-1] > 1.0


def test_grid_refinement_stays_within_reported_error():
    design = make_design({"layers": ["COO-", "NH3+", "COO-", "NH3+"]}, "seed")
    cond = _conditions([0.02, -0.02, 0.3, -0.3, 1.0, -1.0, 4.0, -4.0])
    m1 = simulate_continuum(design, cond, resolution=1.0)
    m2 = simulate_continuum(design, cond, resolution=2.0)
    for a, b in zip(m1.fields, m2.fields, strict=True):
        lo, hi = a.current_ci_nA
        assert lo <= b.current_nA <= hi and hi - lo < 1e-2 * abs(a.current_nA)
        for name, s in a.species.items():
            assert s.flux_ci_per_ns[0] <= b.species[name].flux_per_ns <= s.flux_ci_per_ns[1]


def test_measurement_follows_schema_and_sign_convention():
    design = make_design({"layers": ["none"]}, "tiny")
    cond = _conditions([1.0, -1.0, 0.5])
    m = run_continuum(design, cond)
    assert m.status == "ok" and m.fidelity == "continuum"
    assert [r.field_abs_V_per_nm for r in m.icr] == [1.0]  # 0.5 V/nm has no -0.5 partner
    up = m.field(1.0)
    assert up.time_ns == 0.0 and up.species["K+"].crossings == 0.0
    assert up.species["K+"].flux_per_ns > 0 > up.species["Cl-"].flux_per_ns  # +E: cations along +z
    charge = up.species["K+"].flux_per_ns - up.species["Cl-"].flux_per_ns
    assert up.current_nA == pytest.approx(charge * E_PER_NS_TO_NA, rel=1e-9) and up.current_nA > 0
    for key in ("porelab_version", "scipy_version", "grid_nodes", "solver", "pore_d_factor"):
        assert key in m.provenance
    assert Measurement.model_validate_json(m.to_json()) == m


def test_solver_failure_is_an_error_never_a_number():
    design, cond = make_design(JANUS, "seed"), _conditions([4.0, -4.0])
    with pytest.raises(ContinuumError, match="did not converge"):
        simulate_continuum(design, cond, max_iter=2, max_halvings=1)
    m = run_continuum(design, cond, max_iter=2, max_halvings=1)
    assert m.status == "failed" and "did not converge" in m.error and m.fields == [] and m.icr == []
