"""The one MD engine: the blow-up rule, retry at half the step, degrees of freedom, minimise + ramp."""

import numpy as np
import openmm
import openmm.unit as u
import pytest

from porelab.sim.design import DesignError
from porelab.sim.engine import (
    BLOWUP_TEMPERATURE_FACTOR,
    MIN_DOF_FOR_TEMPERATURE,
    Engine,
    SimulationBlowUp,
    choose_platform,
    mobile_dof,
    retrying,
)


def wells(n: int, k: float = 100.0, frozen: int = 0) -> openmm.System:
    """n particles (mass 10) in harmonic wells k (kJ/mol/nm^2) around (1, 1, 1) nm, plus `frozen` massless ones."""
    s = openmm.System()
    f = openmm.CustomExternalForce(f"0.5*{k}*((x-1)^2 + (y-1)^2 + (z-1)^2)")
    for _ in range(n):
        f.addParticle(s.addParticle(10.0), [])
    for _ in range(frozen):
        s.addParticle(0.0)
    s.addForce(f)
    return s


def engine_at(system: openmm.System, positions) -> tuple[Engine, openmm.app.Simulation]:
    eng = Engine(system, platform="Reference")
    sim = eng.simulation(300.0, 2.0, seed=3)
    sim.context.setPositions(np.asarray(positions) * u.nanometer)
    return eng, sim


def test_mobile_dof_counts_mobile_atoms_and_their_constraints_only():
    s = wells(4, frozen=3)
    s.addConstraint(0, 1, 0.1)  # between two mobile atoms: removes one dof
    s.addConstraint(2, 5, 0.1)  # to a frozen atom: none (integrators skip frozen atoms)
    assert mobile_dof(s) == 3 * 4 - 1
    s.addForce(openmm.CMMotionRemover())
    assert mobile_dof(s) == 3 * 4 - 1 - 3


def test_runaway_temperature_is_a_blow_up_when_it_means_something():
    n = 20  # 60 dof: the instantaneous temperature of an equilibrium system stays far below 3x the target
    assert 3 * n >= MIN_DOF_FOR_TEMPERATURE
    eng, sim = engine_at(wells(n), np.ones((n, 3)))
    sim.context.setVelocitiesToTemperature(300.0 * u.kelvin, 1)
    eng.step(sim, 20)  # thermal: passes
    sim.context.setVelocitiesToTemperature(5 * BLOWUP_TEMPERATURE_FACTOR * 300.0 * u.kelvin, 1)
    with pytest.raises(SimulationBlowUp, match="temperature"):
        eng.check(sim)
    # one particle (3 dof): its instantaneous temperature exceeds 3x the target 3 % of the time: not a test
    eng1, sim1 = engine_at(wells(1), np.ones((1, 3)))
    sim1.context.setVelocities(np.array([[30.0, 0, 0]]) * u.nanometer / u.picosecond)
    assert eng1.temperature_K(sim1) > 10 * 300
    eng1.check(sim1)


def test_non_finite_energy_and_openmm_errors_are_blow_ups():
    s = openmm.System()
    f = openmm.CustomExternalForce("1/(x - 1)")  # infinite at x = 1
    f.addParticle(s.addParticle(10.0), [])
    s.addForce(f)
    eng, sim = engine_at(s, [[1.0, 0.0, 0.0]])
    with pytest.raises(SimulationBlowUp, match="blow-up"):
        eng.check(sim)
    eng, sim = engine_at(wells(5, k=1e9), np.ones((5, 3)) + 0.1)  # 2 fs in a stiff well: NaN within steps
    with pytest.raises(SimulationBlowUp):
        eng.step(sim, 200)


def test_minimise_and_ramp_ends_minimised_hot_and_at_the_working_step():
    eng, sim = engine_at(wells(20), np.ones((20, 3)) + 0.3)
    eng.minimise_and_ramp(sim, velocity_seed=4, ramp_ps=0.01, dt_fs=3.0)
    assert sim.integrator.getStepSize().value_in_unit(u.femtosecond) == pytest.approx(3.0)
    assert sim.currentStep == 10  # 0.01 ps at 1 fs
    pos = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
    assert np.abs(pos - 1).max() < 0.3 and eng.temperature_K(sim) > 30


def test_retrying_halves_the_step_until_it_works_or_names_the_last_attempt():
    calls, retries = [], []

    def job(dt, attempt):
        calls.append((dt, attempt))
        if dt > 1.0:
            raise SimulationBlowUp("NaN")
        return dt

    assert retrying("thing", job, 4.0, 2, on_retry=lambda dt, a, err: retries.append((dt, a))) == 1.0
    assert calls == [(4.0, 0), (2.0, 1), (1.0, 2)] and retries == [(2.0, 1), (1.0, 2)]
    with pytest.raises(SimulationBlowUp, match=r"thing failed after 2 attempts \(last step 4 fs\): NaN"):
        retrying("thing", job, 8.0, 1)
    with pytest.raises(SimulationBlowUp, match="failed after 3 attempts"):  # a resumed run carries its attempts
        retrying("thing", job, 8.0, 2, attempt=1)


def test_platform_choice():
    assert choose_platform("Reference").getName() == "Reference"
    assert choose_platform().getName() in ("CUDA", "CPU")
    with pytest.raises(DesignError, match="'Nope' is not available"):
        choose_platform("Nope")
