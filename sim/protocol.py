"""The MD run protocol (docs/physics.md §3): minimise (field off), equilibrate until the ions' polarisation is
stationary (`sim.settle`), then at each field from that state: switch the field on with the field's own velocities,
settle again (not counted), and count transits in chunks until a fixed length or a decisive answer
(`sim.run_length`); exact resume.

What is simulated. The canonical orientation of the question (`sim.design.canonical`): a design and its mirror
image at the opposite fields share one run directory and one simulation, and the measurement is returned
oriented as asked (`sim.observables.oriented`). A design equal to its own mirror image is simulated at +|E| only;
its -|E| results are the mirror images (`derived_by_symmetry`) and its ICR is 1 by symmetry (docs/physics.md §3).

Run length. until="fixed": `production_ps` per field. until="decisive": every field advances to
`min_production_ps`, then by `chunk_ps`, and the rule of `sim.run_length` is checked at each of these looks, up to
`max_production_ps`. Calling again with a longer length (or cap)
and the same other settings continues from the checkpoints and improves the numbers in place; a shorter length,
or a change of a setting that changes the numbers (`MDSettings.identity()`), is refused with one line.

Run directory (every result written atomically: temp file + rename):
  design.json                  design id, canonical design and conditions, the identity settings
  membrane.pdb, system.pdb     the membrane alone, and the solvated start (canonical orientation)
  system.xml                   the serialized OpenMM System
  ions.pdb                     topology of the trajectory atoms (ions + water oxygens)
  state/equilibrated.xml       the equilibrated state every field starts from
  state/equilibration.json     how long the equilibration ran (ps) and whether its polarisation settled
  state/E<field>/...           per-field production (`sim.production`)
  state/run.json               the run record: rule, length, cost, ICR history (canonical orientation)
  traj_E<field>.dcd, md_E<field>.log   trajectory and StateDataReporter log of each simulated field
  measurement.json             the result, oriented as asked (written last)
"""

from __future__ import annotations

import json
import platform as _platform
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import openmm
from tqdm.auto import tqdm

import porelab
from porelab.base.files import atomic_write_text
from porelab.sim.builder import build
from porelab.sim.design import Conditions, Design, DesignError, canonical, canonical_json, design_id
from porelab.sim.engine import Engine, SimulationBlowUp, choose_platform, retrying
from porelab.sim.md_settings import MDSettings, md_identity
from porelab.sim.measurement import MEASUREMENT_FILE, ChunkRecord, Extension, FieldResult, Measurement, RunRecord
from porelab.sim.observables import icr_results, mirrored_field, oriented
from porelab.sim.production import TIME_TOL_PS, FieldProduction, counted_ps
from porelab.sim.run_length import look_times, stop_verdict
from porelab.sim.settle import settle
from porelab.sim.system import SolvatedSystem, build_system, write_pdb
from porelab.sim.transport import TransportReporter


def simulated_fields(fields_V_per_nm, symmetric: bool) -> list[float]:
    """Fields to simulate (V/nm): all of them; for a symmetric design each |E| once, at +|E|."""
    if not symmetric:
        return list(dict.fromkeys(float(e) for e in fields_V_per_nm))
    return sorted({abs(float(e)) + 0.0 for e in fields_V_per_nm})


class MDRun:
    """One design's MD measurement in a run directory; `run()` resumes wherever a previous run stopped and extends
    it when asked for more."""

    def __init__(self, design: Design, conditions: Conditions, out_dir: str | Path,
                 settings: MDSettings | None = None, progress: bool = True, use_symmetry: bool = True):
        self.asked = (design, conditions)
        self.design, self.conditions, self.mirrored = canonical(design, conditions)
        self.settings = settings or MDSettings()
        self.out = Path(out_dir)
        self.progress = progress
        self.id = design_id(design, conditions)
        # use_symmetry=False (null tests): a symmetric design is simulated at every field and its ICR measured
        self.symmetric = self.design.is_symmetric() and use_symmetry
        self.fields = simulated_fields(self.conditions.fields_V_per_nm, self.symmetric)

    # --- set-up ------------------------------------------------------------------------------
    def _claim_directory(self) -> None:
        """Claim the directory for this design id and these identity settings, or refuse (DesignError)."""
        self.out.mkdir(parents=True, exist_ok=True)
        meta = self.out / "design.json"
        want = json.loads(json.dumps(self.settings.identity()))
        if meta.exists():
            doc = json.loads(meta.read_text())
            if doc.get("design_id") != self.id:
                raise DesignError(f"{self.out} holds design {doc.get('design_id')}, not {self.id}; "
                                  "use another --out directory")
            held = doc.get("settings", {})
            diff = [f"{k}={held.get(k)!r} (asked {v!r})" for k, v in want.items() if held.get(k) != v]
            if diff:
                raise DesignError(f"{self.out} was run with {', '.join(diff)}; a setting that changes the numbers "
                                  "cannot change within a run directory; use another --out directory")
        else:
            doc = {"design_id": self.id, **json.loads(canonical_json(self.design, self.conditions)), "settings": want}
            atomic_write_text(meta, json.dumps(doc, indent=2))

    def _prepare(self) -> None:
        s = self.settings
        structure = build(self.design)
        self.ss: SolvatedSystem = build_system(structure, self.conditions, seed=s.seed, cutoff_nm=s.cutoff_nm)
        self.engine = Engine(self.ss.system, self.ss.topology, s.friction_per_ps, s.platform, s.cpu_threads)
        self.platform = self.engine.platform
        # the fields' productions step at once, each on its share of the threads, when the platform allows it
        self.field_engine = self.engine.split(len(self.fields)) if s.concurrent_fields else None
        if not (self.out / "system.pdb").exists():
            structure.write_pdb(self.out / "membrane.pdb")
            write_pdb(self.ss, self.out / "system.pdb")
            self._write_traj_topology()
        if not (self.out / "system.xml").exists():
            atomic_write_text(self.out / "system.xml", openmm.XmlSerializer.serialize(self.ss.system))

    def _write_traj_topology(self) -> None:
        import mdtraj as md  # mdtraj only when a trajectory topology is written

        atoms = self.ss.trajectory_atoms()
        top = md.Topology.from_openmm(self.ss.topology).subset(atoms)
        traj = md.Trajectory(self.ss.positions[atoms][None], top, unitcell_lengths=self.ss.box[None],
                             unitcell_angles=np.array([[90.0, 90.0, 90.0]]))
        traj.save_pdb(str(self.out / "ions.pdb"))

    def _equilibrate(self) -> str:
        """Equilibrated state XML: minimise with the field off, ramp at 1 fs, run equil_ps, then on until the
        polarisation is stationary (`sim.settle`, at most settle_max_ps more); its length is kept in
        state/equilibration.json."""
        path = self.out / "state" / "equilibrated.xml"
        if path.exists():
            return path.read_text()
        path.parent.mkdir(parents=True, exist_ok=True)
        s = self.settings

        def job(dt: float, attempt: int) -> str:
            simulation = self.engine.simulation(self.conditions.temperature_K, dt, s.seed + 1)
            simulation.context.setPositions(self.ss.positions)
            simulation.context.setParameter("Ez", 0.0)
            self.engine.minimise_and_ramp(simulation, s.seed + 7, s.ramp_ps, dt, s.minimise_max_iterations)
            reporter = TransportReporter.from_simulation(
                simulation, self.ss.ion_indices, self.ss.ion_charges, self.ss.ion_species, z_mid=self.z_mid,
                half_width=self.half_width, interval=s.report_interval_steps)
            simulation.reporters.append(reporter)

            def advance(ps: float) -> None:
                self.engine.step(simulation, max(1, round(ps * 1000 / dt)))
                reporter.sync(simulation)

            c = reporter.counter
            ran, settled = settle(advance, lambda: (c.dt_series, c.polarisation_series), s.settle_window_ps,
                                  s.settle_tol_e, s.equil_ps, s.equil_ps + s.settle_max_ps)
            self.equilibration = {"equil_ps": ran, "settled": settled}
            return openmm.XmlSerializer.serialize(simulation.context.getState(
                getPositions=True, getVelocities=True, getParameters=True))

        xml = retrying("equilibration", job, s.timestep_fs, s.max_retries)
        atomic_write_text(path.with_name("equilibration.json"), json.dumps(self.equilibration))
        atomic_write_text(path, xml)
        return xml

    @property
    def z_mid(self) -> float:
        """The membrane's mid-plane, nm."""
        return self.design.box_z_nm / 2

    @property
    def half_width(self) -> float:
        """Half-width of the crossing band around the mid-plane: half the stack + 0.2 nm."""
        return self.design.stack_thickness_nm() / 2 + 0.2

    def _production(self, field: float) -> FieldProduction:
        return FieldProduction(self.field_engine or self.engine, self.ss, self.out, field, self.settings,
                               self.conditions.temperature_K, z_mid=self.z_mid, half_width=self.half_width)

    def _advance(self, runs: list[FieldProduction], t: float, equilibrated: str, bar) -> list[FieldResult]:
        """Every field's production advanced to t ps: one thread each when `field_engine` is set (OpenMM releases
        the GIL while it steps; daemon threads, so that Ctrl-C stops the run at once: the checkpoints are atomic),
        else one after another. The first field's error is raised once all have stopped."""
        if self.field_engine is None:
            return [p.advance(t, equilibrated, bar) for p in runs]
        out: list = [None] * len(runs)
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                out[k] = runs[k].advance(t, equilibrated, bar)
            except BaseException as err:  # re-raised in the calling thread
                errors.append(err)

        workers = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(len(runs))]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        if errors:
            raise errors[0]
        return out

    def done_ps(self) -> float:
        """Production already counted in the directory (the most any simulated field has), ps."""
        return max((counted_ps(self.out, e) for e in self.fields), default=0.0)

    def _check_length(self, done: float) -> None:
        name, cap = self.settings.length_cap()
        if cap < done - TIME_TOL_PS:
            raise DesignError(f"{self.out} already holds {done:g} ps of production per field; {name}={cap:g} is "
                              "shorter (a run is extended, never cut); use another --out directory")

    # --- the whole measurement ------------------------------------------------------------------
    def provenance(self, production_ps: float) -> dict:
        s = self.settings
        eq = self.out / "state" / "equilibration.json"
        return {
            "porelab_version": porelab.__version__, "openmm_version": openmm.__version__,
            "platform": self.platform.getName(), "seed": s.seed, "timestep_fs": s.timestep_fs,
            "production_ps": production_ps, "protocol": s.PROTOCOL,
            "equilibration": json.loads(eq.read_text()) if eq.exists() else None,
            "friction_per_ps": s.friction_per_ps, "cutoff_nm": s.cutoff_nm, "n_atoms": self.ss.system.getNumParticles(),
            "counts": self.ss.counts, "box_nm": self.ss.box.tolist(), "python": _platform.python_version(),
            "host": _platform.node(), "fields_at_once": len(self.fields) if self.field_engine else 1,
            "threads_per_field": (self.field_engine or self.engine).cpu_threads,
            "simulated": {"mirror_image_of_asked": self.mirrored, "fields_V_per_nm": self.fields,
                          "symmetric": self.symmetric},
        }

    def _assemble(self, results: dict[float, FieldResult]) -> list[FieldResult]:
        """Results at every field of the (canonical) question; a symmetric design's -|E| derived by symmetry."""
        out = []
        for e in self.conditions.fields_V_per_nm:
            if e in results:
                out.append(results[e])
            else:
                out.append(mirrored_field(results[-e + 0.0]).model_copy(update={"derived_by_symmetry": True}))
        return out

    def _looks(self) -> list[float]:
        s = self.settings
        if s.until == "fixed":  # no stop before production_ps; the currents recorded every chunk_ps (run.history)
            return look_times(s.chunk_ps, s.chunk_ps, s.production_ps)
        return look_times(s.min_production_ps, s.chunk_ps, s.max_production_ps)

    def _verdict(self, t: float, fields_: list[FieldResult]) -> tuple[str, str] | None:
        s = self.settings
        if s.until == "fixed":
            return ("fixed", f"fixed production of {t:g} ps per field") if t >= s.production_ps - TIME_TOL_PS \
                else None
        looks = self._looks()
        if not any(abs(t - x) <= TIME_TOL_PS for x in looks):  # not a look of the rule (e.g. a resumed run)
            return None
        v = stop_verdict(fields_, s.icr_margin, s.icr_rel_halfwidth, self.symmetric, s.alpha / len(looks))
        if v is None and t >= s.max_production_ps - TIME_TOL_PS:
            return "cap", f"max_production_ps={s.max_production_ps:g} reached before the rule was met"
        return v

    def _next_target(self, t: float) -> float:
        """The next look after production t (ps per field)."""
        return next((x for x in self._looks() if x > t + TIME_TOL_PS), self._looks()[-1])

    def run(self) -> Measurement:
        """Run, resume or extend every field; returns the measurement oriented as asked (failed, with its reason,
        on a blow-up)."""
        self._claim_directory()
        done = self.done_ps()
        self._check_length(done)
        done_sum = sum(counted_ps(self.out, e) for e in self.fields)
        c0, w0, started = time.process_time(), time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
        self._prepare()
        rec_path = self.out / "state" / "run.json"
        prior = RunRecord.model_validate_json(rec_path.read_text()) if rec_path.exists() else None
        history = list(prior.history) if prior else []
        with tqdm(total=self.settings.length_cap()[1] * len(self.fields), unit="ps", disable=not self.progress,
                  desc=f"MD {self.id}", bar_format="{l_bar}{bar}| {n:.1f}/{total:.0f} ps [{elapsed}<{remaining}"
                  "{postfix}]") as bar:
            try:
                equilibrated = self._equilibrate()
                runs = [self._production(e) for e in self.fields]
                t, verdict = done, None
                while verdict is None:
                    t = self._next_target(t) if t <= 0 else t
                    results = dict(zip(self.fields, self._advance(runs, t, equilibrated, bar), strict=True))
                    bar.n = sum(q.done_ps() for q in runs)
                    bar.refresh()
                    fields_ = self._assemble(results)
                    icr = icr_results(fields_)
                    if not history or abs(history[-1].production_ps - t) > TIME_TOL_PS:
                        history.append(ChunkRecord(production_ps=t, icr=icr, fields=fields_))
                    verdict = self._verdict(t, fields_)
                    worked = sum(counted_ps(self.out, e) for e in self.fields) > done_sum + TIME_TOL_PS
                    ext = [Extension(started_utc=started, from_ps=done, to_ps=t, cpu_s=time.process_time() - c0,
                                     wall_s=time.perf_counter() - w0)] if worked else []
                    record = RunRecord(
                        rule=self.settings.run_rule(), production_ps=t, stopped=verdict[0] if verdict else "running",
                        reason=verdict[1] if verdict else "the rule is not met yet",
                        cpu_s=(prior.cpu_s if prior else 0.0) + sum(x.cpu_s for x in ext),
                        wall_s=(prior.wall_s if prior else 0.0) + sum(x.wall_s for x in ext),
                        extensions=(list(prior.extensions) if prior else []) + ext, history=history)
                    atomic_write_text(rec_path, record.model_dump_json(indent=1))
                    if verdict is None:
                        t = self._next_target(t)
            except SimulationBlowUp as err:
                m = Measurement.failed(*self.asked, "md", str(err), self.provenance(self.done_ps()),
                                       oracle=md_identity(self.settings))
                m.save(self.out / MEASUREMENT_FILE)
                return m
        m = Measurement(design_id=self.id, design=self.design, conditions=self.conditions, fidelity="md",
                        fields=fields_, icr=icr, oracle=md_identity(self.settings), provenance=self.provenance(t),
                        run=record)
        m = oriented(m, *self.asked)
        m.save(self.out / MEASUREMENT_FILE)
        return m


def run_md(design: Design, conditions: Conditions, out_dir: str | Path, settings: MDSettings | None = None,
           progress: bool = True, use_symmetry: bool = True) -> Measurement:
    """Simulate design under each field of `conditions` (see MDRun). Called again on the same directory with a
    longer `production_ps` (or `max_production_ps`) and the same other settings, it extends the run in place.
    use_symmetry=False simulates a mirror-symmetric design at both signs too (null tests of the ICR)."""
    return MDRun(design, conditions, out_dir, settings, progress, use_symmetry).run()


__all__ = ["MDRun", "MDSettings", "SimulationBlowUp", "choose_platform", "md_identity", "run_md",
           "simulated_fields"]
