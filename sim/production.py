"""Production at one signed field: the field switched on with this field's own velocities, the settle (not counted,
`sim.settle`), then counted MD advanced to a target time, resumable exactly from its last checkpoint.

Files (every result written atomically: temp file + rename):
  state/E<field>/progress.json   commit point: phase (settle | count), time counted, settle length and verdict,
                                 step size, attempts, counter state (from field-on), chunks, checkpoint name
  state/E<field>/step_*.chk      the checkpoint progress.json names
  state/E<field>/traj_*.npz      trajectory chunks (ions + water oxygens), one per commit
  state/E<field>/result.json     the FieldResult at the committed time
  traj_E<field>.dcd              the counted trajectory so far (rewritten from the chunks)
  md_E<field>.log                OpenMM StateDataReporter log: step, time, potential energy, temperature, speed;
                                 appended on resume (lines past the checkpoint resumed from are dropped first)
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u

from porelab.base.files import atomic_write_bytes, atomic_write_text
from porelab.sim.engine import Engine, SimulationBlowUp, retrying
from porelab.sim.estimators import field_result
from porelab.sim.measurement import FieldResult
from porelab.sim.settle import settle
from porelab.sim.system import SolvatedSystem
from porelab.sim.transport import CrossingCounter, TransportReporter

TIME_TOL_PS = 1e-6


def field_tag(e: float) -> str:
    """File tag of a signed field, e.g. E+2, E-0.5."""
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
        buf = io.BytesIO()
        np.savez(buf, time_ps=np.array(self.times), xyz=np.stack(self.frames))
        atomic_write_bytes(path, buf.getvalue())
        self.times, self.frames = [], []
        return True


def field_seed(seed: int, field: float) -> int:
    """The random seed of the run at one signed field (velocities at field-on and the thermostat): runs at +E and -E
    are independent."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{field:+.6g}".encode()).digest()[:4], "little") % 2**31


def counted_ps(out: Path, field: float) -> float:
    """Production counted so far at `field` in run directory `out`, ps (0 before counting starts)."""
    path = Path(out) / "state" / field_tag(field) / "progress.json"
    prog = json.loads(path.read_text()) if path.exists() else None
    return float(prog["time_ps"]) if prog and prog["phase"] == "count" else 0.0


def _trim_log(path: Path, step: int) -> bool:
    """Keep the header and the whole data lines up to `step` of a StateDataReporter log (a line written after the
    checkpoint resumed from, or cut by a kill, goes); True when the file keeps its header."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    lines = path.read_text().splitlines(keepends=True)
    header = [ln for ln in lines if ln.startswith("#")]
    n_cols = header[0].count(",") + 1 if header else 0

    def keep(ln: str) -> bool:
        cells = ln.split(",")
        return ln.endswith("\n") and len(cells) == n_cols and cells[0].isdigit() and int(cells[0]) <= step

    kept = header[:1] + [ln for ln in lines if not ln.startswith("#") and keep(ln)]
    if kept != lines:
        atomic_write_text(path, "".join(kept))
    return bool(header)


class FieldProduction:
    """Counted production at one signed field (V/nm) of a run directory, from the equilibrated state.

    engine: the run's Engine; ss: its SolvatedSystem; z_mid, half_width: the crossing band (nm); settings: the
    run's MDSettings; temperature_K: the thermostat's temperature.
    """

    def __init__(self, engine: Engine, ss: SolvatedSystem, out: Path, field: float, settings, temperature_K: float,
                 z_mid: float, half_width: float):
        self.engine, self.ss, self.out, self.field, self.s = engine, ss, Path(out), float(field), settings
        self.T, self.z_mid, self.half_width = temperature_K, z_mid, half_width
        self.dir = self.out / "state" / field_tag(field)
        self.log_path = self.out / f"md_{field_tag(field)}.log"
        self.dcd_path = self.out / f"traj_{field_tag(field)}.dcd"

    # --- state -------------------------------------------------------------------------------------------
    def progress(self) -> dict | None:
        path = self.dir / "progress.json"
        return json.loads(path.read_text()) if path.exists() else None

    def done_ps(self) -> float:
        """Production counted so far, ps (0 before counting starts)."""
        return counted_ps(self.out, self.field)

    def _fresh(self) -> dict:
        return {"phase": "settle", "time_ps": 0.0, "settle_ps": 0.0, "settled": None, "chunks": 0, "counter": None,
                "checkpoint": None, "dt_fs": self.s.timestep_fs, "attempts": 0}

    # --- advancing ---------------------------------------------------------------------------------------
    def advance(self, target_ps: float, equilibrated: str, bar) -> FieldResult:
        """Produce until `target_ps` ps are counted (resuming from the checkpoint) and return the FieldResult.

        A blow-up is retried from the last checkpoint at half the step (the step and the attempts persist)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        prog = self.progress()
        if prog and prog["phase"] == "count" and prog["time_ps"] >= target_ps - TIME_TOL_PS:
            return self._finish(prog)

        def job(dt: float, attempt: int) -> FieldResult:
            return self._produce({**(self.progress() or self._fresh()), "dt_fs": dt, "attempts": attempt},
                                 target_ps, equilibrated, bar)

        def on_retry(dt: float, attempt: int, err: SimulationBlowUp) -> None:
            atomic_write_text(self.dir / "progress.json",
                              json.dumps({**(self.progress() or self._fresh()), "dt_fs": dt, "attempts": attempt}))
            bar.write(f"{self.field:+g} V/nm: {err}; retrying at {dt:g} fs from the last checkpoint")

        prog = prog or self._fresh()
        return retrying(f"production at {self.field:+g} V/nm", job, prog["dt_fs"], self.s.max_retries,
                        prog["attempts"], on_retry)

    def _produce(self, prog: dict, target_ps: float, equilibrated: str, bar) -> FieldResult:
        s, dt, d = self.s, prog["dt_fs"], self.dir
        seed = field_seed(s.seed, self.field)
        simulation = self.engine.simulation(self.T, dt, seed)
        ctx = simulation.context
        if prog["checkpoint"]:
            ctx.loadCheckpoint((d / prog["checkpoint"]).read_bytes())
            simulation.integrator.setStepSize(dt * u.femtosecond)
        else:  # switch the field on, with velocities of this field's own (independent runs at +E and -E)
            ctx.setState(openmm.XmlSerializer.deserialize(equilibrated))
            ctx.setParameter("Ez", self.field)
            ctx.setVelocitiesToTemperature(self.T * u.kelvin, seed)
            simulation.currentStep = 0
        for f in d.glob("traj_*.npz"):  # chunks beyond the committed count belong to an interrupted segment
            if int(f.stem.split("_")[1]) >= prog["chunks"]:
                f.unlink()
        has_header = _trim_log(self.log_path, simulation.currentStep)
        # the counter runs from field-on; transits are counted outside a band of half the stack + 0.2 nm around the
        # mid-plane, in the production window only (it opens when the settle rule is met)
        reporter = TransportReporter.from_simulation(
            simulation, self.ss.ion_indices, self.ss.ion_charges, self.ss.ion_species, z_mid=self.z_mid,
            half_width=self.half_width, interval=s.report_interval_steps)
        if prog["counter"] is not None:
            reporter.load_state_dict(prog["counter"])
        every = max(1, round(s.traj_interval_ps * 1000 / dt))
        frames = FrameBuffer(self.ss.trajectory_atoms(), every)
        with open(self.log_path, "a") as log_file:
            log = app.StateDataReporter(log_file, every, step=True, time=True, potentialEnergy=True,
                                        temperature=True, speed=True, append=has_header)
            simulation.reporters[:] = [reporter, log]
            if prog["phase"] == "settle":
                prog = self._settle(simulation, reporter, prog, dt, bar)
            simulation.reporters[:] = [reporter, frames, log]
            total = round(target_ps * 1000 / dt)
            done = round(prog["time_ps"] * 1000 / dt)
            ckpt = max(1, round(s.checkpoint_ps * 1000 / dt))
            tick = max(s.report_interval_steps, round(0.5 * 1000 / dt))  # progress and health check every 0.5 ps
            t0, done0 = time.perf_counter(), done
            while done < total:
                n = min(tick, total - done, ckpt - done % ckpt)
                self.engine.step(simulation, n)
                done += n
                bar.update(n * dt / 1000)
                rate = (done - done0) * dt * 1e-6 / max(time.perf_counter() - t0, 1e-9) * 86400
                bar.set_postfix_str(f"{self.field:+g} V/nm, {rate:.1f} ns/day")
                if done % ckpt == 0 or done == total:
                    if frames.flush(d / f"traj_{prog['chunks']:05d}.npz"):
                        prog = {**prog, "chunks": prog["chunks"] + 1}
                    prog = {**prog, "time_ps": done * dt / 1000}
                    self._commit(simulation, prog, reporter)
            simulation.reporters.clear()
        return self._finish(prog, reporter.counter)

    def _settle(self, simulation: app.Simulation, reporter: TransportReporter, prog: dict, dt: float, bar) -> dict:
        """Run the field-on settle (sim.settle) from wherever it stands, committing after every look; returns the
        progress with the production window opened (phase "count")."""
        s, counter = self.s, reporter.counter

        def advance(ps: float) -> None:
            self.engine.step(simulation, max(1, round(ps * 1000 / dt)))
            reporter.sync(simulation)
            self._commit(simulation, {**prog, "settle_ps": counter.time_ps}, reporter)
            bar.set_postfix_str(f"{self.field:+g} V/nm, settling ({counter.time_ps:.0f} ps)")

        settle_ps, settled = settle(advance, lambda: (counter.dt_series, counter.polarisation_series),
                                    s.settle_window_ps, s.settle_tol_e, 0.0, s.settle_max_ps, prog["settle_ps"])
        counter.mark_start()
        prog = {**prog, "phase": "count", "settle_ps": settle_ps, "settled": settled}
        self._commit(simulation, prog, reporter)
        return prog

    def _commit(self, simulation: app.Simulation, prog: dict, reporter: TransportReporter) -> None:
        """Atomically: write a new checkpoint file, then progress.json naming it (the commit), then prune."""
        name = f"step_{simulation.currentStep:012d}.chk"
        reporter.sync(simulation)  # count up to the checkpoint exactly
        atomic_write_bytes(self.dir / name, simulation.context.createCheckpoint())
        prog = {**prog, "checkpoint": name, "counter": reporter.state_dict()}
        atomic_write_text(self.dir / "progress.json", json.dumps(prog))
        for old in self.dir.glob("step_*.chk"):
            if old.name != name:
                old.unlink()

    def _finish(self, prog: dict, counter: CrossingCounter | None = None) -> FieldResult:
        """The FieldResult at the committed time: result.json when it is current, else computed from the committed
        counter (the DCD rewritten first, so a current result.json implies a current DCD)."""
        path = self.dir / "result.json"
        if path.exists():
            res = FieldResult.model_validate_json(path.read_text())
            if abs(res.time_ns * 1000 - prog["time_ps"]) < TIME_TOL_PS:
                return res
        if counter is None:
            counter = CrossingCounter.from_state_dict(prog["counter"]["counter"])
        self._write_dcd(prog["chunks"])
        res = field_result(counter, self.field, settled=prog.get("settled"))
        atomic_write_text(path, res.model_dump_json(indent=2))
        return res

    def _write_dcd(self, n_chunks: int) -> None:
        import mdtraj as md  # mdtraj only when a trajectory is written

        chunks = [np.load(self.dir / f"traj_{k:05d}.npz") for k in range(n_chunks)]
        if not chunks:
            return
        xyz = np.concatenate([c["xyz"] for c in chunks])
        t = np.concatenate([c["time_ps"] for c in chunks])
        top = md.load_topology(str(self.out / "ions.pdb"))
        traj = md.Trajectory(xyz, top, time=t, unitcell_lengths=np.tile(self.ss.box, (len(t), 1)),
                             unitcell_angles=np.full((len(t), 3), 90.0))
        tmp = self.dcd_path.with_name(f".{self.dcd_path.name}.tmp.dcd")
        traj.save_dcd(str(tmp))
        tmp.replace(self.dcd_path)
