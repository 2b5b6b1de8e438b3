"""The one MD engine of porelab: platform, Simulation set-up, minimise + ramp, stepping with one blow-up rule, and
retry at half the step. The I–V protocol (`sim.protocol`) and the umbrella windows (`sim.free_energy`) both use it.

Blow-up rule (docs/physics.md §4): a step fails when OpenMM raises (a NaN coordinate among them), when the
potential or kinetic energy is not finite, or when the temperature of the mobile atoms exceeds
`BLOWUP_TEMPERATURE_FACTOR` x the target. The temperature test needs `MIN_DOF_FOR_TEMPERATURE` degrees of freedom:
with fewer, the instantaneous temperature's own spread reaches 3x the target (one free ion, 3 dof: 3 % of the
time). Units: nm, ps, fs for steps, kJ/mol, K.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u

from porelab.base.errors import PorelabError
from porelab.sim.design import DesignError

KB_KJ_PER_MOL_K = 0.00831446261815324
BLOWUP_TEMPERATURE_FACTOR = 3.0
MIN_DOF_FOR_TEMPERATURE = 30
MINIMISE_TOLERANCE_KJ_MOL_NM = 10.0
RAMP_STEP_FS = 1.0  # the ramp after minimisation runs at 1 fs (a NaN was seen there at 2-4 fs, docs/physics.md §4)

T = TypeVar("T")


class SimulationBlowUp(PorelabError, RuntimeError):
    """The integration raised, produced non-finite energy, or ran away in temperature."""


def choose_platform(name: str | None = None) -> openmm.Platform:
    """`name` when given (DesignError when OpenMM lacks it); else CUDA when it works, else CPU (OpenMM's own
    ranking may pick a slow CPU OpenCL driver, docs/physics.md §4)."""
    names = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name is not None:
        if name not in names:
            raise DesignError(f"OpenMM platform {name!r} is not available; available: {', '.join(names)}")
        return openmm.Platform.getPlatformByName(name)
    if "CUDA" in names:
        try:
            plat = openmm.Platform.getPlatformByName("CUDA")
            ctx = openmm.Context(openmm.System(), openmm.VerletIntegrator(1.0), plat)
            del ctx
            return plat
        except Exception:  # CUDA platform present but no usable GPU
            pass
    return openmm.Platform.getPlatformByName("CPU")


def mobile_dof(system: openmm.System) -> int:
    """Degrees of freedom of the mobile atoms (mass > 0): 3 per atom minus constraints between two of them."""
    mobile = np.array([system.getParticleMass(i).value_in_unit(u.dalton) > 0
                       for i in range(system.getNumParticles())])
    n_con = sum(1 for k in range(system.getNumConstraints())
                if all(mobile[j] for j in system.getConstraintParameters(k)[:2]))
    removes_cm = any(isinstance(system.getForce(k), openmm.CMMotionRemover) for k in range(system.getNumForces()))
    return int(3 * mobile.sum() - n_con - (3 if removes_cm else 0))


class Engine:
    """Runs one OpenMM System: Langevin (middle) Simulations on one platform, checked steps, minimise + ramp.

    topology: needed only by reporters that write structures (None is fine otherwise).
    friction_per_ps: Langevin friction, 1/ps; platform: a name or None (`choose_platform`); cpu_threads: CPU
    platform threads (None: all cores).
    """

    def __init__(self, system: openmm.System, topology: app.Topology | None = None, friction_per_ps: float = 1.0,
                 platform: str | None = None, cpu_threads: int | None = None):
        self.system, self.topology = system, topology
        self.friction_per_ps, self.cpu_threads = friction_per_ps, cpu_threads
        self.platform = choose_platform(platform)
        self.dof = mobile_dof(system)

    def split(self, n: int) -> Engine | None:
        """An engine for each of n Simulations stepped at once from n Python threads (OpenMM releases the GIL while
        it steps), or None when they should run one after another: the CPU platform's threads (cpu_threads, else
        OPENMM_CPU_THREADS, else the cores this process may use) shared out, at least one each. On 2 cores both
        fields of a run step 1.20x more ps per wall second than one after another (benchmarks/md_concurrent_fields.py).
        Not the Reference platform: its random numbers come from one generator shared by all contexts."""
        if n < 2 or self.platform.getName() != "CPU":
            return None
        total = self.cpu_threads or int(os.environ.get("OPENMM_CPU_THREADS") or 0) or len(os.sched_getaffinity(0))
        if total < n:
            return None
        each = copy.copy(self)
        each.cpu_threads = total // n
        return each

    def simulation(self, temperature_K: float, dt_fs: float, seed: int) -> app.Simulation:
        """A Simulation at `temperature_K` with step `dt_fs` and thermostat seed `seed` (no positions yet)."""
        integ = openmm.LangevinMiddleIntegrator(temperature_K * u.kelvin, self.friction_per_ps / u.picosecond,
                                                dt_fs * u.femtosecond)
        integ.setRandomNumberSeed(int(seed))
        props = {"Threads": str(self.cpu_threads)} if self.cpu_threads and self.platform.getName() == "CPU" else None
        return app.Simulation(self.topology, self.system, integ, self.platform, props)

    def temperature_K(self, simulation: app.Simulation) -> float:
        """Instantaneous temperature of the mobile atoms, K."""
        ke = simulation.context.getState(getEnergy=True).getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
        return 2 * ke / (max(self.dof, 1) * KB_KJ_PER_MOL_K)

    def check(self, simulation: app.Simulation) -> None:
        """SimulationBlowUp unless positions and energies are finite and the mobile atoms' temperature is below the
        limit."""
        try:  # positions too: OpenMM refuses NaN coordinates even where the energies still come out finite
            st = simulation.context.getState(getEnergy=True, getPositions=True)
        except openmm.OpenMMException as err:
            raise SimulationBlowUp(str(err).strip().splitlines()[0]) from None
        pe = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        ke = st.getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
        target = simulation.integrator.getTemperature().value_in_unit(u.kelvin)
        temp = 2 * ke / (max(self.dof, 1) * KB_KJ_PER_MOL_K)
        hot = self.dof >= MIN_DOF_FOR_TEMPERATURE and temp > BLOWUP_TEMPERATURE_FACTOR * target
        if not (math.isfinite(pe) and math.isfinite(ke)) or hot:
            raise SimulationBlowUp(f"energy blow-up: potential {pe:.4g} kJ/mol, temperature {temp:.4g} K "
                                   f"(target {target:g} K)")

    def step(self, simulation: app.Simulation, n: int, check: bool = True) -> None:
        """Take n steps (reporters run), then apply the blow-up rule; n = 0 only checks."""
        try:
            if n > 0:
                simulation.step(int(n))
        except openmm.OpenMMException as err:
            raise SimulationBlowUp(str(err).strip().splitlines()[0]) from None
        if check:
            self.check(simulation)

    def minimise_and_ramp(self, simulation: app.Simulation, velocity_seed: int, ramp_ps: float, dt_fs: float,
                          max_iterations: int = 2000) -> None:
        """Minimise the current positions, draw velocities at the integrator's temperature, run `ramp_ps` at 1 fs,
        then set the step to `dt_fs` (docs/physics.md §4)."""
        integ = simulation.integrator
        integ.setStepSize(RAMP_STEP_FS * u.femtosecond)
        openmm.LocalEnergyMinimizer.minimize(simulation.context, MINIMISE_TOLERANCE_KJ_MOL_NM, int(max_iterations))
        simulation.context.setVelocitiesToTemperature(integ.getTemperature(), int(velocity_seed))
        self.step(simulation, round(ramp_ps * 1000 / RAMP_STEP_FS))
        integ.setStepSize(dt_fs * u.femtosecond)


def retrying(what: str, job: Callable[[float, int], T], dt_fs: float, max_retries: int, attempt: int = 0,
             on_retry: Callable[[float, int, SimulationBlowUp], None] | None = None) -> T:
    """job(dt_fs, attempt), redone at half the step after a SimulationBlowUp, up to attempt == max_retries.

    attempt: attempts already used (a resumed run carries its count); on_retry(new_dt, attempt, err) is called
    before each retry (e.g. to persist the halved step). The last failure raises SimulationBlowUp naming `what`,
    the number of attempts and the last step.
    """
    while True:
        try:
            return job(dt_fs, attempt)
        except SimulationBlowUp as err:
            if attempt >= max_retries:
                raise SimulationBlowUp(f"{what} failed after {attempt + 1} attempts (last step {dt_fs:g} fs): "
                                       f"{err}") from None
            attempt, dt_fs = attempt + 1, dt_fs / 2
            if on_retry is not None:
                on_retry(dt_fs, attempt, err)
