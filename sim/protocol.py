"""The MD run protocol: minimise (field off), equilibrate, then production at each field from the same
equilibrated state, with on-the-fly transport counting, atomic checkpoints and exact resume.

Run directory layout (everything written atomically: temp file + rename):
  design.json                  design id, design and conditions (a directory holds one design)
  membrane.pdb, system.pdb     the membrane alone, and the solvated start
  ions.pdb                     topology of the trajectory atoms (ions + water oxygens)
  state/equilibrated.xml       the equilibrated state every field starts from
  state/E<field>/progress.json commit point: phase, time done, step size, counter state, chunks, checkpoint name
  state/E<field>/*.chk, traj_*.npz  the checkpoint and trajectory chunks it names
  traj_E<field>.dcd            ion + water-oxygen trajectory of the counted production
  measurement.json             the result (written last)
"""

from __future__ import annotations

import json
import math
import platform as _platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u
from tqdm.auto import tqdm

import porelab
from porelab.sim.builder import build
from porelab.sim.design import Conditions, Design, DesignError, canonical_json, design_id
from porelab.sim.measurement import FieldResult, Measurement, atomic_write_bytes, atomic_write_text
from porelab.sim.observables import icr_results
from porelab.sim.system import SolvatedSystem, build_system, write_pdb
from porelab.sim.transport import TransportReporter, field_result

KB_KJ_PER_MOL_K = 0.00831446261815324


class SimulationBlowUp(RuntimeError):
    """The integration produced NaN or runaway energy."""


@dataclass
class MDSettings:
    """Run protocol settings. Times in ps, step in fs."""

    production_ps: float = 100.0
    equil_ps: float = 20.0
    ramp_ps: float = 1.0  # at 1 fs straight after minimisation (avoids a NaN seen there, GUIDE §4)
    settle_ps: float | None = None  # field on, not counted, before each production; None = 10 % of production
    timestep_fs: float = 2.0
    friction_per_ps: float = 1.0
    seed: int = 0
    platform: str | None = None  # None: CUDA when present, else CPU
    cpu_threads: int | None = None  # CPU platform threads (None: all cores); 1 makes runs bitwise reproducible
    report_interval_steps: int = 25
    traj_interval_ps: float = 1.0
    checkpoint_ps: float = 10.0
    max_retries: int = 2
    cutoff_nm: float = 1.0

    def __post_init__(self):
        for name in ("production_ps", "equil_ps", "timestep_fs", "traj_interval_ps", "checkpoint_ps"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                raise DesignError(f"md settings: {name}={v} must be a positive number")
        if self.timestep_fs > 50:
            raise DesignError(f"md settings: timestep_fs={self.timestep_fs} exceeds 50 fs")
        if self.settle_ps is None:
            self.settle_ps = 0.1 * self.production_ps


def choose_platform(name: str | None = None) -> openmm.Platform:
    """CUDA when present, else CPU (OpenMM's own ranking may pick a slow CPU OpenCL driver, GUIDE §4)."""
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


def _tag(e: float) -> str:
    return f"E{e:+.4g}"


class FrameBuffer:
    """OpenMM reporter keeping positions (n_atoms_subset, 3) nm of `atoms` every `interval` steps in memory."""

    def __init__(self, atoms: np.ndarray, interval: int):
        self.atoms, self.interval = atoms, interval
        self.times: list[float] = []
        self.frames: list[np.ndarray] = []

    def describeNextReport(self, simulation):  # noqa: N802 (OpenMM reporter protocol)
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": None, "include": ["positions"]}

    def report(self, simulation, state):
        pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        self.frames.append(np.asarray(pos[self.atoms], dtype=np.float32))
        self.times.append(state.getTime().value_in_unit(u.picosecond))

    def flush(self, path: Path) -> bool:
        """Write buffered frames atomically to `path` (.npz) and clear; False when there was nothing."""
        if not self.frames:
            return False
        import io

        buf = io.BytesIO()
        np.savez(buf, time_ps=np.array(self.times), xyz=np.stack(self.frames))
        atomic_write_bytes(path, buf.getvalue())
        self.times, self.frames = [], []
        return True


class MDRun:
    """One design's MD measurement in a run directory; `run()` resumes wherever a previous run stopped."""

    def __init__(self, design: Design, conditions: Conditions, out_dir: str | Path,
                 settings: MDSettings | None = None, progress: bool = True):
        self.design, self.conditions = design, conditions
        self.settings = settings or MDSettings()
        self.out = Path(out_dir)
        self.progress = progress
        self.id = design_id(design, conditions)

    # --- set-up ------------------------------------------------------------------------------
    def _claim_directory(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        meta = self.out / "design.json"
        if meta.exists():
            held = json.loads(meta.read_text()).get("design_id")
            if held != self.id:
                raise DesignError(f"{self.out} holds design {held}, not {self.id}; use another --out directory")
        else:
            doc = {"design_id": self.id, **json.loads(canonical_json(self.design, self.conditions)),
                   "settings": asdict(self.settings)}
            atomic_write_text(meta, json.dumps(doc, indent=2))

    def _prepare(self) -> None:
        s = self.settings
        structure = build(self.design)
        self.ss: SolvatedSystem = build_system(structure, self.conditions, seed=s.seed, cutoff_nm=s.cutoff_nm)
        self.platform = choose_platform(s.platform)
        if not (self.out / "system.pdb").exists():
            structure.write_pdb(self.out / "membrane.pdb")
            write_pdb(self.ss, self.out / "system.pdb")
            self._write_traj_topology()

    def _write_traj_topology(self) -> None:
        import mdtraj as md

        atoms = self.ss.trajectory_atoms()
        top = md.Topology.from_openmm(self.ss.topology).subset(atoms)
        traj = md.Trajectory(self.ss.positions[atoms][None], top, unitcell_lengths=self.ss.box[None],
                             unitcell_angles=np.array([[90.0, 90.0, 90.0]]))
        traj.save_pdb(str(self.out / "ions.pdb"))

    def _simulation(self, dt_fs: float) -> app.Simulation:
        T = self.conditions.temperature_K
        integ = openmm.LangevinMiddleIntegrator(T * u.kelvin, self.settings.friction_per_ps / u.picosecond,
                                                dt_fs * u.femtosecond)
        integ.setRandomNumberSeed(self.settings.seed + 1)
        props = {"Threads": str(self.settings.cpu_threads)} \
            if self.settings.cpu_threads and self.platform.getName() == "CPU" else None
        return app.Simulation(self.ss.topology, self.ss.system, integ, self.platform, props)

    def _check(self, simulation: app.Simulation) -> None:
        """Raise SimulationBlowUp when energy or temperature is not physical."""
        st = simulation.context.getState(getEnergy=True)
        pe = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        ke = st.getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
        n_mobile = self.ss.system.getNumParticles() - self.ss.n_membrane
        dof = 3 * n_mobile - self.ss.system.getNumConstraints()
        temp = 2 * ke / (dof * KB_KJ_PER_MOL_K)
        if not (math.isfinite(pe) and math.isfinite(ke)) or temp > 3 * self.conditions.temperature_K:
            raise SimulationBlowUp(f"energy blow-up: potential {pe:.4g} kJ/mol, temperature {temp:.4g} K")

    def _step(self, simulation: app.Simulation, n: int) -> None:
        try:
            simulation.step(n)
        except openmm.OpenMMException as err:
            raise SimulationBlowUp(str(err).strip().splitlines()[0]) from None
        self._check(simulation)

    # --- phases ----------------------------------------------------------------------------
    def _equilibrate(self) -> str:
        """Equilibrated state XML (minimise with the field off, 1 ps ramp at 1 fs, then equil_ps)."""
        path = self.out / "state" / "equilibrated.xml"
        if path.exists():
            return path.read_text()
        path.parent.mkdir(parents=True, exist_ok=True)
        s = self.settings
        dt = s.timestep_fs
        for attempt in range(s.max_retries + 1):
            try:
                simulation = self._simulation(1.0)
                ctx = simulation.context
                ctx.setPositions(self.ss.positions)
                ctx.setParameter("Ez", 0.0)
                simulation.minimizeEnergy(tolerance=10 * u.kilojoule_per_mole / u.nanometer, maxIterations=2000)
                ctx.setVelocitiesToTemperature(self.conditions.temperature_K * u.kelvin, s.seed + 7)
                self._step(simulation, max(1, round(s.ramp_ps * 1000)))
                simulation.integrator.setStepSize(dt * u.femtosecond)
                self._step(simulation, max(1, round(s.equil_ps * 1000 / dt)))
                xml = openmm.XmlSerializer.serialize(ctx.getState(getPositions=True, getVelocities=True,
                                                                  getParameters=True))
                atomic_write_text(path, xml)
                return xml
            except SimulationBlowUp as err:
                if attempt == s.max_retries:
                    raise SimulationBlowUp(f"equilibration failed after {attempt + 1} attempts "
                                           f"(last step {dt:g} fs): {err}") from None
                dt /= 2
        raise AssertionError("unreachable")

    def _production(self, field: float, equilibrated: str, bar) -> FieldResult:
        s = self.settings
        d = self.out / "state" / _tag(field)
        d.mkdir(parents=True, exist_ok=True)
        done_path = d / "result.json"
        if done_path.exists():
            bar.update(s.production_ps)
            return FieldResult.model_validate_json(done_path.read_text())
        prog_path = d / "progress.json"
        prog = json.loads(prog_path.read_text()) if prog_path.exists() else None
        attempts = prog["attempts"] if prog else 0
        start = bar.n
        while True:
            try:
                result = self._produce(field, equilibrated, d, prog, bar, start)
                atomic_write_text(done_path, result.model_dump_json(indent=2))
                return result
            except SimulationBlowUp as err:
                attempts += 1
                if attempts > s.max_retries:
                    raise SimulationBlowUp(f"production at {field:+g} V/nm failed after {attempts} attempts: "
                                           f"{err}") from None
                prog = json.loads(prog_path.read_text()) if prog_path.exists() else None
                dt = (prog["dt_fs"] if prog else s.timestep_fs) / 2
                prog = {**(prog or {"phase": "settle", "time_ps": 0.0, "chunks": 0, "counter": None,
                                    "checkpoint": None}), "dt_fs": dt, "attempts": attempts}
                atomic_write_text(prog_path, json.dumps(prog))
                bar.write(f"{self.id} {field:+g} V/nm: {err}; retrying at {dt:g} fs from the last checkpoint")

    def _produce(self, field: float, equilibrated: str, d: Path, prog: dict | None, bar,
                 bar_start: float) -> FieldResult:
        s = self.settings
        prog = prog or {"phase": "settle", "time_ps": 0.0, "chunks": 0, "counter": None, "checkpoint": None,
                        "dt_fs": s.timestep_fs, "attempts": 0}
        dt = prog["dt_fs"]
        simulation = self._simulation(dt)
        ctx = simulation.context
        if prog["checkpoint"]:
            ctx.loadCheckpoint((d / prog["checkpoint"]).read_bytes())
            simulation.integrator.setStepSize(dt * u.femtosecond)
        else:
            ctx.setState(openmm.XmlSerializer.deserialize(equilibrated))
            ctx.setParameter("Ez", field)
            simulation.currentStep = 0
        # chunks beyond the committed count belong to an interrupted segment: drop them
        for f in d.glob("traj_*.npz"):
            if int(f.stem.split("_")[1]) >= prog["chunks"]:
                f.unlink()
        if prog["phase"] == "settle":
            self._step(simulation, max(0, round(s.settle_ps * 1000 / dt)))
            prog = {**prog, "phase": "count"}
            self._commit(simulation, d, prog, reporter=None)
        # transits are counted outside a band of half the stack + 0.2 nm around the mid-plane
        reporter = TransportReporter.from_simulation(
            simulation, self.ss.ion_indices, self.ss.ion_charges, self.ss.ion_species,
            z_mid=self.design.box_z_nm / 2, half_width=self.design.stack_thickness_nm() / 2 + 0.2,
            interval=s.report_interval_steps)
        if prog["counter"] is not None:
            reporter.load_state_dict(prog["counter"])
        frames = FrameBuffer(self.ss.trajectory_atoms(), max(1, round(s.traj_interval_ps * 1000 / dt)))
        simulation.reporters[:] = [reporter, frames]
        total_steps = round(s.production_ps * 1000 / dt)
        done_steps = round(prog["time_ps"] * 1000 / dt)
        ckpt_steps = max(1, round(s.checkpoint_ps * 1000 / dt))
        tick = max(s.report_interval_steps, round(0.5 * 1000 / dt))  # progress/health check every 0.5 ps
        bar.n = bar_start + prog["time_ps"]
        bar.refresh()
        t0, steps0 = time.perf_counter(), done_steps
        while done_steps < total_steps:
            n = min(tick, total_steps - done_steps, ckpt_steps - done_steps % ckpt_steps)
            self._step(simulation, n)
            done_steps += n
            bar.update(n * dt / 1000)
            rate = (done_steps - steps0) * dt * 1e-6 / max(time.perf_counter() - t0, 1e-9) * 86400
            bar.set_postfix_str(f"{field:+g} V/nm, {rate:.1f} ns/day")
            if done_steps % ckpt_steps == 0 or done_steps == total_steps:
                if frames.flush(d / f"traj_{prog['chunks']:05d}.npz"):
                    prog = {**prog, "chunks": prog["chunks"] + 1}
                prog = {**prog, "time_ps": done_steps * dt / 1000}
                self._commit(simulation, d, prog, reporter)
        self._write_dcd(field, d, prog["chunks"])
        return field_result(reporter.counter, field)

    def _commit(self, simulation: app.Simulation, d: Path, prog: dict, reporter: TransportReporter | None) -> None:
        """Atomically: write a new checkpoint file, then progress.json naming it (the commit), then prune."""
        name = f"step_{simulation.currentStep:012d}.chk"
        if reporter is not None:
            reporter.sync(simulation)  # count up to the checkpoint exactly
        atomic_write_bytes(d / name, simulation.context.createCheckpoint())
        prog = {**prog, "checkpoint": name, "counter": reporter.state_dict() if reporter else None}
        atomic_write_text(d / "progress.json", json.dumps(prog))
        for old in d.glob("step_*.chk"):
            if old.name != name:
                old.unlink()

    def _write_dcd(self, field: float, d: Path, n_chunks: int) -> None:
        import mdtraj as md

        chunks = [np.load(d / f"traj_{k:05d}.npz") for k in range(n_chunks)]
        if not chunks:
            return
        xyz = np.concatenate([c["xyz"] for c in chunks])
        t = np.concatenate([c["time_ps"] for c in chunks])
        top = md.load_topology(str(self.out / "ions.pdb"))
        traj = md.Trajectory(xyz, top, time=t, unitcell_lengths=np.tile(self.ss.box, (len(t), 1)),
                             unitcell_angles=np.full((len(t), 3), 90.0))
        final = self.out / f"traj_{_tag(field)}.dcd"
        tmp = final.with_name(f".{final.name}.tmp.dcd")
        traj.save_dcd(str(tmp))
        tmp.replace(final)

    # --- the whole measurement ------------------------------------------------------------------
    def provenance(self) -> dict:
        s = self.settings
        return {
            "porelab_version": porelab.__version__, "openmm_version": openmm.__version__,
            "platform": self.platform.getName(), "seed": s.seed, "timestep_fs": s.timestep_fs,
            "production_ps": s.production_ps, "equil_ps": s.equil_ps, "settle_ps": s.settle_ps,
            "friction_per_ps": s.friction_per_ps, "cutoff_nm": s.cutoff_nm, "n_atoms": self.ss.system.getNumParticles(),
            "counts": self.ss.counts, "box_nm": self.ss.box.tolist(), "python": _platform.python_version(),
            "host": _platform.node(),
        }

    def run(self) -> Measurement:
        """Run (or resume) every field; returns the measurement (failed, with its reason, on blow-up)."""
        self._claim_directory()
        self._prepare()
        fields = list(self.conditions.fields_V_per_nm)
        results: list[FieldResult] = []
        with tqdm(total=self.settings.production_ps * len(fields), unit="ps", disable=not self.progress,
                  desc=f"MD {self.id}", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} ps [{elapsed}<{remaining}"
                  "{postfix}]") as bar:
            try:
                equilibrated = self._equilibrate()
                for e in fields:
                    results.append(self._production(e, equilibrated, bar))
            except SimulationBlowUp as err:
                m = Measurement.failed(self.design, self.conditions, "md", str(err), self.provenance())
                m.save(self.out / "measurement.json")
                return m
        m = Measurement(design_id=self.id, design=self.design, conditions=self.conditions, fidelity="md",
                        fields=results, icr=icr_results(results), provenance=self.provenance())
        m.save(self.out / "measurement.json")
        return m


def run_md(design: Design, conditions: Conditions, out_dir: str | Path, settings: MDSettings | None = None,
           progress: bool = True) -> Measurement:
    """Simulate design under each field of `conditions`; see MDRun."""
    return MDRun(design, conditions, out_dir, settings, progress).run()
