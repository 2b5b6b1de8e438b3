import numpy as np
import openmm
import openmm.unit as u
import pytest

from porelab.sim.builder import build
from porelab.sim.design import DesignError, make_conditions, make_design
from porelab.sim.system import FARADAY_KJ_PER_MOL_PER_V, build_system


def _charges(ss):
    nb = next(f for f in ss.system.getForces() if isinstance(f, openmm.NonbondedForce))
    return np.array([nb.getParticleParameters(i)[0].value_in_unit(u.elementary_charge)
                     for i in range(ss.system.getNumParticles())])


@pytest.mark.parametrize(
    "layers, electrolyte, material",
    [
        (["COO-", "NH3+", "COO-"], {"K+": 1.0, "Cl-": 1.0}, "graphene_oxide"),
        (["COO-", "COO-"], {"Mg2+": 0.5, "Cl-": 1.0}, "graphene_oxide"),
        (["NH3+"], {"Ca2+": 0.25, "Na+": 0.5, "Cl-": 1.0}, "hbn"),
        (["none", "OH"], {"Li+": 2.0, "Cl-": 2.0}, "graphene_oxide"),
    ],
)
def test_total_charge_is_zero_and_concentration_matches(layers, electrolyte, material):
    d = make_design({"layers": layers, "material": material}, "tiny")
    ss = build_system(build(d), make_conditions({"electrolyte": electrolyte}), seed=3)
    assert abs(_charges(ss).sum()) < 1e-6
    n_w = ss.counts["water"]
    for sp, c in electrolyte.items():
        expected = c / 55.5 * n_w
        # salt ions plus at most the counter-ions for the rim charge (4 e per charged layer)
        assert expected - 1.5 <= ss.counts[sp] <= expected + 1.5 + 8


def test_membrane_is_frozen_and_excluded_from_constraints():
    ss = build_system(build(make_design({"layers": ["COO-", "NH3+"]}, "tiny")), make_conditions())
    masses = np.array([ss.system.getParticleMass(i).value_in_unit(u.dalton)
                       for i in range(ss.system.getNumParticles())])
    assert np.all(masses[: ss.n_membrane] == 0) and np.all(masses[ss.n_membrane:] > 0)
    for k in range(ss.system.getNumConstraints()):
        i, j, _ = ss.system.getConstraintParameters(k)
        assert i >= ss.n_membrane and j >= ss.n_membrane
    assert not any(isinstance(f, openmm.CMMotionRemover) for f in ss.system.getForces())


def test_frozen_atoms_do_not_move():
    ss = build_system(build(make_design({"layers": ["COO-", "NH3+"]}, "tiny")), make_conditions())
    integ = openmm.LangevinMiddleIntegrator(300, 1.0, 0.001)
    ctx = openmm.Context(ss.system, integ, openmm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(ss.positions)
    openmm.LocalEnergyMinimizer.minimize(ctx, 50, 200)
    ctx.setParameter("Ez", 3.0)
    ctx.setVelocitiesToTemperature(300, 1)
    integ.step(200)
    pos = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
    np.testing.assert_array_equal(pos[: ss.n_membrane], ss.positions[: ss.n_membrane])
    assert np.abs(pos[ss.n_membrane:] - ss.positions[ss.n_membrane:]).max() > 0.01


@pytest.mark.parametrize("field", [2.5, -1.0])
def test_field_force_is_q_times_E(field):
    """On the Reference platform the field force on every mobile charged particle is q·E·96.4853 along z."""
    ss = build_system(build(make_design({"layers": ["COO-"]}, "tiny")),
                      make_conditions({"electrolyte": {"Mg2+": 0.5, "Cl-": 1.0}}))
    system = ss.system
    for k, f in enumerate(system.getForces()):
        f.setForceGroup(1 if k == ss.field_force_index else 0)
    ctx = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions(ss.positions)
    ctx.setParameter("Ez", field)
    forces = ctx.getState(getForces=True, groups={1}).getForces(asNumpy=True).value_in_unit(
        u.kilojoule_per_mole / u.nanometer)
    q = _charges(ss)
    mobile = np.arange(ss.n_membrane, system.getNumParticles())
    np.testing.assert_allclose(forces[mobile, 2], q[mobile] * field * FARADAY_KJ_PER_MOL_PER_V, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(forces[:, :2], 0, atol=1e-9)
    ion = ss.ion_indices[ss.ion_species == "Mg2+"][0]
    assert forces[ion, 2] == pytest.approx(2 * field * 96.4853, rel=1e-6)


def test_species_without_md_parameters_is_refused():
    with pytest.raises(DesignError, match="SO4"):
        build_system(build(make_design({"layers": ["none"]}, "tiny")),
                     make_conditions({"electrolyte": {"Na+": 1.0, "SO4^2-": 0.5}}))
