"""Running the umbrella windows on `sim.engine`: every window x temperature, resumable window by window."""

from __future__ import annotations

import io
import json
import math
import time
from pathlib import Path

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u
from tqdm.auto import tqdm

from porelab.base.files import atomic_write_bytes, atomic_write_text
from porelab.sim.design import DesignError
from porelab.sim.engine import Engine, SimulationBlowUp, retrying
from porelab.sim.free_energy.settings import FESettings
from porelab.sim.free_energy.target import KZ, Z0, UmbrellaTarget, place_ion, wrap

CHECK_PS = 0.5  # the blow-up rule is applied about this often while sampling, ps


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] % 2_000_000_000) + 1


class UmbrellaRun:
    """Umbrella windows x temperatures in `out`; `run()` skips finished windows, so a killed run resumes.

    The windows at T0 start from the equilibrated box with the ion placed by `place_ion` (minimise, 1 fs ramp,
    equilibrate, sample); the windows at the other temperatures start from the end of the same window at T0.
    """

    def __init__(self, target: UmbrellaTarget, z0s, k_z: float, temperatures, T0: float, settings: FESettings,
                 out: str | Path, meta: dict | None = None, progress: bool = True):
        self.target, self.z0s, self.k_z = target, np.asarray(z0s, float), float(k_z)
        self.temps, self.T0, self.s = [float(t) for t in temperatures], float(T0), settings
        self.out, self.meta, self.progress = Path(out), meta or {}, progress
        self.engine = Engine(target.system, None, settings.friction_per_ps, settings.platform, settings.cpu_threads)
        self.platform = self.engine.platform

    def manifest(self) -> dict:
        return {**self.meta, "windows_nm": self.z0s.round(6).tolist(), "k_z": round(self.k_z, 6),
                "temperatures_K": self.temps, "T0_K": self.T0, "radius_nm": self.target.radius_nm,
                "settings": self.s.sampling_state()}

    def _claim(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / "run.json"
        want = json.loads(json.dumps(self.manifest()))
        if path.exists():
            held = json.loads(path.read_text())
            diff = sorted(k for k in set(held) | set(want) if held.get(k) != want.get(k))
            if "settings" in diff:
                hs, ws = held.get("settings", {}), want["settings"]
                diff = [d for d in diff if d != "settings"] + sorted(
                    f"settings.{k}" for k in set(hs) | set(ws) if hs.get(k) != ws.get(k))
            if diff:
                raise DesignError(f"{self.out} holds a run with different {', '.join(diff)}; "
                                  "use another --out directory")
        else:
            atomic_write_text(path, json.dumps(want, indent=2))

    def _simulation(self, T: float, dt_fs: float, seed: int) -> app.Simulation:
        sim = self.engine.simulation(T, dt_fs, seed)
        if "Ez" in sim.context.getParameters():
            sim.context.setParameter("Ez", 0.0)
        return sim

    def start_positions(self) -> np.ndarray:
        """Equilibrated positions (n_atoms, 3) nm at T0 with the tagged ion free along z (cached in state/)."""
        path = self.out / "state" / "start.xml"
        if path.exists():
            state = openmm.XmlSerializer.deserialize(path.read_text())
            return state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        path.parent.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()

        def job(dt, attempt):
            sim = self._simulation(self.T0, dt, _seed(self.s.seed, 7, attempt))
            sim.context.setPositions(self.target.positions)
            sim.context.setParameter(KZ, 0.0)
            ramp = min(self.s.ramp_ps, self.s.equil_ps)
            self.engine.minimise_and_ramp(sim, _seed(self.s.seed, 8, attempt), ramp, dt, max_iterations=200)
            self.engine.step(sim, round((self.s.equil_ps - ramp) * 1000 / dt))
            return sim.context.getState(getPositions=True)

        state = retrying("equilibration", job, self.s.timestep_fs, self.s.max_retries)
        atomic_write_text(path.with_name("start.json"), json.dumps(
            {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
             "platform": self.platform.getName()}))
        atomic_write_text(path, openmm.XmlSerializer.serialize(state))
        return state.getPositions(asNumpy=True).value_in_unit(u.nanometer)

    def window_path(self, T: float, k: int) -> Path:
        return self.out / "windows" / f"T{T:.1f}" / f"w{k:03d}.npz"

    def run_window(self, T: float, k: int, start: np.ndarray | None = None) -> dict:
        """Sample window k at temperature T (or load it when done). Returns the window's arrays and cost."""
        path = self.window_path(T, k)
        if path.exists():
            with np.load(path) as f:
                return {key: f[key] for key in f.files}
        T0_window = math.isclose(T, self.T0)
        if T0_window:
            start = self.start_positions() if start is None else start
            pos0 = place_ion(start, self.target, self.z0s[k])
        else:
            pos0 = self.run_window(self.T0, k)["final_xyz"].astype(float)
        s, t0, c0 = self.s, time.perf_counter(), time.process_time()
        iT = self.temps.index(T)

        def job(dt, attempt):
            sim = self._simulation(T, dt, _seed(s.seed, iT, k, attempt, 1))
            ctx = sim.context
            ctx.setPositions(pos0)
            ctx.setParameter(Z0, float(self.z0s[k]))
            ctx.setParameter(KZ, self.k_z)
            if T0_window:
                self.engine.minimise_and_ramp(sim, _seed(s.seed, iT, k, attempt, 2), s.window_ramp_ps, dt,
                                              max_iterations=20)
            else:
                ctx.setVelocitiesToTemperature(T * u.kelvin, _seed(s.seed, iT, k, attempt, 2))
            self.engine.step(sim, round(s.window_equil_ps * 1000 / dt))
            stride = max(1, round(s.sample_ps * 1000 / dt))
            n = max(2, round(s.window_ps / s.sample_ps))
            check_every = max(1, round(CHECK_PS / s.sample_ps))  # the blow-up rule about every CHECK_PS
            xyz = np.empty((n, 3))
            for i in range(n):
                self.engine.step(sim, stride, check=(i + 1) % check_every == 0)
                p = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
                xyz[i] = p[self.target.ion]
                if not np.isfinite(xyz[i]).all():
                    raise SimulationBlowUp(f"tagged ion at {xyz[i]}")
            self.engine.step(sim, 0)
            final = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
            return xyz, np.asarray(final), dt, stride

        xyz, final, dt, stride = retrying(f"window {k} at {T:g} K", job, s.timestep_fs, s.max_retries)
        box = self.target.box
        z = self.z0s[k] + wrap(xyz[:, 2] - self.z0s[k], box[2])
        r = np.hypot(*wrap(xyz[:, :2] - self.target.axis_xy, box[:2]).T)
        rec = {"z": z, "r": r, "time_ps": np.arange(1, len(z) + 1) * stride * dt / 1000, "z0": self.z0s[k],
               "k_z": self.k_z, "T": T, "dt_fs": dt, "wall_s": time.perf_counter() - t0,
               "cpu_s": time.process_time() - c0, "platform": self.platform.getName(),
               "final_xyz": final.astype(np.float32)}
        buf = io.BytesIO()
        np.savez(buf, **rec)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, buf.getvalue())
        return {key: np.asarray(v) for key, v in rec.items()}

    def run(self) -> dict[float, list[dict]]:
        """Every window at every temperature (T0 first). Returns {T: [window record, ...]}."""
        self._claim()
        order = [self.T0] + [t for t in self.temps if not math.isclose(t, self.T0)]
        jobs = [(T, k) for T in order for k in range(len(self.z0s))]
        todo = [j for j in jobs if not self.window_path(*j).exists()]
        out: dict[float, list[dict]] = {T: [] for T in self.temps}
        start = self.start_positions() if any(math.isclose(T, self.T0) for T, _ in todo) else None
        with tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="window", disable=not self.progress,
                  desc="umbrella windows") as bar:
            for T, k in jobs:
                done = self.window_path(T, k).exists()
                rec = self.run_window(T, k, start)
                out[T].append(rec)
                if not done:
                    bar.set_postfix_str(f"{T:g} K, z0={self.z0s[k]:.2f} nm")
                    bar.update(1)
        return {T: out[T] for T in self.temps}

    def cost(self) -> dict:
        """Wall and CPU seconds spent (equilibration + finished windows), and the platform."""
        recs = []
        for path in sorted((self.out / "windows").glob("T*/w*.npz")):
            with np.load(path) as f:
                recs.append((float(f["wall_s"]), float(f["cpu_s"]), float(f["time_ps"][-1])))
        start = self.out / "state" / "start.json"
        eq = json.loads(start.read_text()) if start.exists() else {"wall_s": 0.0, "cpu_s": 0.0}
        wall = eq["wall_s"] + sum(r[0] for r in recs)
        cpu = eq["cpu_s"] + sum(r[1] for r in recs)
        sampled = sum(r[2] for r in recs)
        return {"wall_min": wall / 60, "cpu_min": cpu / 60, "sampled_ps": sampled, "windows": len(recs),
                "platform": self.platform.getName(), "equilibration_wall_min": eq["wall_s"] / 60}
