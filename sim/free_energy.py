"""Free-energy profiles of one ion species through the pore, and their enthalpy and entropy parts.

Method: umbrella sampling along the pore axis z, analysed with MBAR (pymbar 4). One ion of the species is
tagged and restrained by one `CustomExternalForce` (the field is off, Ez = 0):

    U = 1/2 k_z dz^2 + 1/2 k_r max(0, r - R0)^2,   dz = z - z0 - Lz floor((z - z0)/Lz + 1/2)

z0 is the window centre; r is the distance in xy from the pore axis (the mean of the layers' pore centres),
with the same periodic-safe differences. The flat-bottom cylinder (R0 = the pore's larger semi-axis unless
given) is identical in every window and at every temperature, so it belongs to the reference Hamiltonian: it
keeps the ion above the pore in the bulk windows and does nothing inside the pore, where the sheets already
confine the ion. Windows are evenly spaced over the stack (outer layer planes) +- `margin_nm`; by default
k_z = 3 kT0/spacing^2, so a window's z spread is about 0.6 spacing and neighbours overlap.

Why umbrella sampling + MBAR rather than OpenMM's well-tempered `Metadynamics` or OPES (`openmm-opes`):
- it needs only pymbar (already a dependency, pure Python from PyPI); OPES is a compiled plugin tied to
  OpenMM builds;
- MBAR gives an asymptotic uncertainty for every bin and for differences between bins, with no bias
  deposition history to converge or reweighting factor to estimate;
- windows are independent jobs: they run in parallel (one process or GPU each) and a killed run resumes by
  skipping finished windows;
- the same windows and analysis are reused unchanged at every temperature of the entropy/enthalpy split,
  where a metadynamics bias would have to be rebuilt and re-converged at each one.

Start: the solvated pore of `sim.system` with the field off, after swapping cation/anion positions so that the
ions' dipole about the membrane is ~0 (`balance_ions`: random ion placement can leave one side several e
richer than the other, which ps windows cannot relax), minimised and equilibrated at T0 with the tagged ion
free along z. Each window moves the tagged ion onto the water oxygen nearest (axis, z0) and that water to the
ion's old place (`place_ion`), so nothing overlaps.

Profiles (z in the box frame of `Design.layer_z_nm()`, nm; free energies kJ/mol):
- 1D: G(z) = -kT ln(rho(z)/rho_bulk), rho the density of the ion along z integrated over the cylinder's
  cross-section r < R0 (an r-integrated profile, not a minimum free-energy path). Zero is the mean density
  in the outer `bulk_nm` of the window range on both sides. The narrowing of the pore relative to the
  cylinder enters G as an entropic term, so compare 1D profiles at the same R0.
- 2D: G(z, r) = -kT ln(rho(z, r)/rho_bulk) with rho per unit volume (bin weight over dz pi (r2^2 - r1^2)), for
  r < R0 only (beyond it the wall biases), same zero as 1D. It does not depend on R0.
Each window's series is thinned to uncorrelated samples by the statistical inefficiency of z
(`pymbar.timeseries`); estimates and MBAR's analytical uncertainties (bins relative to the bulk) come from
those samples. Convergence is shown by MBAR on the first and on the second half of every window.

Enthalpy and entropy: each temperature is its own MBAR (the energy distributions of a solvated box 20 K
apart do not overlap, so samples are not reweighted across temperatures). With the slope s(z) = dG/dT from
the least-squares line through the temperatures (the finite difference for two, the central difference for
three evenly spaced): -T dS = T0 s and dH = dG(T0) + T0 dS = dG(T0) - T0 s, errors propagated from the
independent runs at each temperature. The windows at the other temperatures start from the end of the same
window at T0 (no second placement/minimisation); with window_equil_ps shorter than the ion's correlation time
they remember it, which correlates the temperatures positively: the propagated slope errors are then
conservative, and too short an equilibration pulls the slope towards zero. The box is fixed (NVT), so
"enthalpy" here is strictly the energy; the difference, P dV, is negligible for an ion moving in a liquid.

Limits: MBAR's errors only count the sampling noise inside the windows. Slow parts of the system (the other
ions' arrangement around the pore rearranges over ~ns) are frozen in ps-long windows and bias every window the
same way. For a design equal to its mirror image the mirror test (`mirror_asymmetry`, `design_symmetric` in
the JSON) exposes that: an asymmetric profile there means the run is not converged.

Run directory (every file written atomically; a rerun skips what is done and redoes only the analysis):
  run.json                    what the samples depend on (design id, ion, windows, temperatures, settings)
  state/start.xml, start.json the equilibrated start at T0 (tagged ion free along z) and its cost
  windows/T<T>/w<k>.npz       one finished window: z, r (n_samples,) nm, its cost and the final positions
  free_energy.json            profiles, split, extrema table, symmetry, (z, r) surface, cost (written last)
  profile.png, convergence.png, surface.png
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import openmm
import openmm.unit as u
from scipy.special import logsumexp

import porelab
from porelab.sim.builder import build
from porelab.sim.design import MD_SPECIES, Conditions, Design, DesignError, canonical_json, design_id
from porelab.sim.measurement import atomic_write_bytes, atomic_write_text
from porelab.sim.protocol import KB_KJ_PER_MOL_K, SimulationBlowUp, choose_platform
from porelab.sim.system import build_system

Z0, KZ = "fe_z0", "fe_kz"  # global parameters of the restraint force: window centre (nm), k_z (kJ/mol/nm^2)
MIN_T_K, MAX_T_K = 250.0, 400.0


@dataclass
class FESettings:
    """Umbrella-sampling settings. Lengths nm, times ps, step fs, force constants kJ/mol/nm^2, temperatures K.

    The defaults suit a GPU and the seed preset; a CPU run of the tiny preset needs much shorter windows.
    """

    n_windows: int = 16
    margin_nm: float = 1.0  # windows span the outer layer planes +- margin
    k_z: float | None = None  # None: 3 kT0 / spacing^2
    radius_nm: float | None = None  # cylinder R0; None: the pore's larger semi-axis
    k_r: float = 2000.0
    temperatures_K: tuple[float, ...] | None = None  # None: T0 - delta_T, T0, T0 + delta_T
    delta_T_K: float = 20.0
    equil_ps: float = 50.0  # whole box at T0, once, tagged ion free along z
    window_equil_ps: float = 10.0  # per window before sampling (at T != T0: from that window's T0 end state)
    window_ps: float = 100.0  # sampled per window
    sample_ps: float = 0.1  # interval between samples of the tagged ion
    ramp_ps: float = 1.0  # the first min(ramp_ps, equil_ps) of the box equilibration run at 1 fs (GUIDE 4)
    window_ramp_ps: float = 0.1  # at 1 fs after minimising each T0 window's start (a local change)
    timestep_fs: float = 4.0
    friction_per_ps: float = 1.0
    seed: int = 0
    platform: str | None = None  # None: sim.protocol.choose_platform (CUDA when present, else CPU)
    cpu_threads: int | None = None
    cutoff_nm: float = 1.0
    bin_nm: float | None = None  # z bin width; None: half the window spacing
    r_bin_nm: float = 0.1
    bulk_nm: float = 0.3  # outer part of the window range, on both sides, that defines G = 0
    max_retries: int = 2  # a window that blows up is redone at half the step, up to this many times

    #: settings that do not change the samples (analysis and execution only)
    ANALYSIS_ONLY = ("platform", "cpu_threads", "bin_nm", "r_bin_nm", "bulk_nm", "max_retries")

    def __post_init__(self):
        pos = ("margin_nm", "k_r", "delta_T_K", "equil_ps", "window_equil_ps", "window_ps", "sample_ps",
               "timestep_fs", "friction_per_ps", "cutoff_nm", "r_bin_nm", "bulk_nm")
        for name in pos + ("k_z", "radius_nm", "bin_nm"):
            v = getattr(self, name)
            if v is None and name not in pos:
                continue
            if not (isinstance(v, int | float) and v > 0 and math.isfinite(v)):
                raise DesignError(f"free-energy settings: {name}={v} must be a positive number")
        if not 2 <= self.n_windows <= 200:
            raise DesignError(f"free-energy settings: n_windows={self.n_windows} is outside [2, 200]")
        for name in ("ramp_ps", "window_ramp_ps"):
            if not getattr(self, name) >= 0:
                raise DesignError(f"free-energy settings: {name}={getattr(self, name)} must be >= 0")
        if self.sample_ps * 1000 < self.timestep_fs:
            raise DesignError(f"free-energy settings: sample_ps={self.sample_ps} is shorter than one step")
        if self.temperatures_K is not None:
            self.temperatures_K = tuple(sorted(float(t) for t in self.temperatures_K))
            for t in self.temperatures_K:
                if not MIN_T_K <= t <= MAX_T_K:
                    raise DesignError(f"free-energy settings: temperature {t} K is outside [{MIN_T_K}, {MAX_T_K}] K")
            if len(set(self.temperatures_K)) != len(self.temperatures_K):
                raise DesignError(f"free-energy settings: temperatures {self.temperatures_K} repeat a value")

    def temperatures(self, T0: float) -> list[float]:
        """Temperatures to run, K, ascending; T0 is always among them (the other windows start from it)."""
        temps = self.temperatures_K or (T0 - self.delta_T_K, T0, T0 + self.delta_T_K)
        if not any(math.isclose(t, T0) for t in temps):
            raise DesignError(f"temperatures {list(temps)} K must include the working temperature {T0} K")
        for t in temps:
            if not MIN_T_K <= t <= MAX_T_K:
                raise DesignError(f"temperature {t} K is outside [{MIN_T_K}, {MAX_T_K}] K; use a smaller delta_T")
        return sorted(float(t) for t in temps)

    def sampling_state(self) -> dict:
        """The settings the samples depend on (what run.json pins)."""
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items() if k not in self.ANALYSIS_ONLY}


def wrap(d, length: float):
    """Periodic difference d - L round(d/L), in [-L/2, L/2) (same convention as the restraint force)."""
    return d - length * np.floor(d / length + 0.5)


# --- the sampled system ------------------------------------------------------------------------------------
def restraint_force(ion: int, box, axis_xy, radius_nm: float, k_r: float) -> openmm.CustomExternalForce:
    """Umbrella along z (globals fe_z0 nm, fe_kz kJ/mol/nm^2) + flat-bottom cylinder of radius R0 around the axis."""
    lx, ly, lz = (float(b) for b in box)
    xc, yc = (float(c) for c in axis_xy)
    f = openmm.CustomExternalForce(
        f"0.5*{KZ}*dz^2 + 0.5*{k_r!r}*max(0, rho - {radius_nm!r})^2;"
        "rho = sqrt(dx^2 + dy^2 + 1e-12);"  # the offset keeps d(rho)/dx finite on the axis
        f"dz = z - {Z0} - {lz!r}*floor((z - {Z0})/{lz!r} + 0.5);"
        f"dx = x - {xc!r} - {lx!r}*floor((x - {xc!r})/{lx!r} + 0.5);"
        f"dy = y - {yc!r} - {ly!r}*floor((y - {yc!r})/{ly!r} + 0.5)")
    f.addGlobalParameter(Z0, lz / 2)
    f.addGlobalParameter(KZ, 0.0)
    f.addParticle(int(ion), [])
    return f


@dataclass
class UmbrellaTarget:
    """What the windows sample: a System that already holds `restraint_force`, its start and the pore geometry."""

    system: openmm.System
    positions: np.ndarray  # (n_atoms, 3) nm
    box: np.ndarray  # (3,) nm
    ion: int  # atom index of the tagged ion
    axis_xy: np.ndarray  # (2,) nm, pore axis
    radius_nm: float  # cylinder R0
    layer_z_nm: list[float]  # layer planes (for plots and the mirror plane)
    waters: np.ndarray  # (n_water, 3) atom indices O, H, H; a window's nearest water swaps places with the ion
    ion_dipole_e_nm: tuple[float, float] | None = None  # ions' dipole about the membrane before/after balancing

    @property
    def z_mirror(self) -> float:
        """Mid-plane of the stack, nm."""
        return 0.5 * (min(self.layer_z_nm) + max(self.layer_z_nm))


def check_ion(ion: str, conditions: Conditions) -> None:
    """DesignError unless `ion` has MD parameters and is in the electrolyte."""
    if ion not in MD_SPECIES:
        raise DesignError(f"ion {ion!r} has no MD parameters here; choose one of {', '.join(MD_SPECIES)}")
    if ion not in conditions.electrolyte:
        raise DesignError(f"ion {ion!r} is not in the electrolyte {sorted(conditions.electrolyte)}; "
                          "add it to the design file's conditions")


def pore_target(design: Design, conditions: Conditions, ion: str, settings: FESettings) -> UmbrellaTarget:
    """The solvated pore of `design` (field off) with one ion of species `ion` tagged and restrained."""
    check_ion(ion, conditions)
    structure = build(design)
    ss = build_system(structure, conditions, seed=settings.seed, cutoff_nm=settings.cutoff_nm)
    tagged = int(ss.ion_indices[ss.ion_species == ion][0])
    rel = wrap(structure.pore_center - structure.pore_center[0], structure.box[:2])  # offsets may straddle an edge
    axis = (structure.pore_center[0] + rel.mean(axis=0)) % structure.box[:2]
    radius = settings.radius_nm or 0.5 * max(design.pore.width_nm, design.pore.height_nm)
    ss.system.addForce(restraint_force(tagged, ss.box, axis, radius, settings.k_r))
    waters = ss.water_oxygens[:, None] + np.arange(3)
    z_mid = 0.5 * (min(design.layer_z_nm()) + max(design.layer_z_nm()))
    positions, before, after = balance_ions(ss.positions, ss.ion_indices, ss.ion_charges, z_mid, float(ss.box[2]))
    return UmbrellaTarget(system=ss.system, positions=positions, box=ss.box, ion=tagged, axis_xy=axis,
                          radius_nm=radius, layer_z_nm=design.layer_z_nm(), waters=waters,
                          ion_dipole_e_nm=(before, after))


def ion_dipole(z: np.ndarray, charges: np.ndarray, z_mid: float, box_z: float) -> float:
    """Dipole of ions along z about the membrane, e nm: sum q (s - Lz/2), s = (z - z_mid) mod Lz.

    s - Lz/2 runs from -Lz/2 just above the membrane to +Lz/2 just below it (0: the middle of the water slab
    between the membrane and its periodic image); the field the ions make at the membrane is proportional to it.
    """
    return float(np.asarray(charges) @ ((np.asarray(z) - z_mid) % box_z - box_z / 2))


def balance_ions(positions: np.ndarray, ion_indices, ion_charges, z_mid: float, box_z: float):
    """Swap cation and anion positions until the ions' dipole about the membrane is as small as swaps make it.

    `sim.system` places ions at random bulk sites, which can leave several e more on one side of the membrane
    than on the other; ions need ~ns to even that out, so ps-long windows would feel the field it makes
    through the pore (a symmetric design then gives an asymmetric profile). Returns (positions (n_atoms, 3) nm,
    dipole before, dipole after, e nm).
    """
    pos = positions.copy()
    idx, q = np.asarray(ion_indices), np.asarray(ion_charges, float)
    cat, an = np.flatnonzero(q > 0), np.flatnonzero(q < 0)
    before = ion_dipole(pos[idx, 2], q, z_mid, box_z)
    dip = before
    for _ in range(len(idx)):
        s = (pos[idx, 2] - z_mid) % box_z - box_z / 2
        # putting cation i at anion j's place and j at i's changes the dipole by (q_i - q_j)(s_j - s_i)
        change = (q[cat][:, None] - q[an][None, :]) * (s[an][None, :] - s[cat][:, None])
        if change.size == 0:
            break
        best = np.unravel_index(np.argmin(np.abs(dip + change)), change.shape)
        if abs(dip + change[best]) >= abs(dip) - 1e-9:
            break
        i, j = idx[cat[best[0]]], idx[an[best[1]]]
        pos[[i, j]] = pos[[j, i]]
        dip = ion_dipole(pos[idx, 2], q, z_mid, box_z)
    return pos, before, dip


def window_centres(layer_z_nm, margin_nm: float, n: int) -> np.ndarray:
    """Umbrella centres (n,) nm, evenly spaced over the outer layer planes +- margin."""
    return np.linspace(min(layer_z_nm) - margin_nm, max(layer_z_nm) + margin_nm, n)


def default_k_z(z0s: np.ndarray, T: float) -> float:
    """3 kT / spacing^2, kJ/mol/nm^2: a window's z spread is spacing/sqrt(3)."""
    return 3 * KB_KJ_PER_MOL_K * T / float(np.diff(z0s).min()) ** 2


def place_ion(positions: np.ndarray, target: UmbrellaTarget, z0: float) -> np.ndarray:
    """Copy of positions (n_atoms, 3) nm with the tagged ion moved to the water oxygen nearest (axis, z0).

    That water goes to the ion's old place, so no atom lands on another; the restraint then pulls the ion
    the remaining (< ~0.2 nm) to z0. Without waters the ion is put on (axis, z0) itself.
    """
    pos = positions.copy()
    point = np.array([*target.axis_xy, z0])
    if len(target.waters) == 0:
        pos[target.ion] = point
        return pos
    oxygens = pos[target.waters[:, 0]]
    j = int(np.argmin(np.linalg.norm(wrap(oxygens - point, target.box), axis=1)))
    site = oxygens[j].copy()
    pos[target.waters[j]] += pos[target.ion] - site
    pos[target.ion] = site
    return pos


# --- running the windows ---------------------------------------------------------------------------------
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
        self.platform = choose_platform(settings.platform)

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

    def _context(self, T: float, dt_fs: float, seed: int) -> tuple[openmm.Context, openmm.Integrator]:
        integ = openmm.LangevinMiddleIntegrator(T * u.kelvin, self.s.friction_per_ps / u.picosecond,
                                                dt_fs * u.femtosecond)
        integ.setRandomNumberSeed(seed)
        props = {"Threads": str(self.s.cpu_threads)} \
            if self.s.cpu_threads and self.platform.getName() == "CPU" else {}
        ctx = openmm.Context(self.target.system, integ, self.platform, props)
        if "Ez" in ctx.getParameters():
            ctx.setParameter("Ez", 0.0)
        return ctx, integ

    @staticmethod
    def _step(ctx: openmm.Context, integ: openmm.Integrator, n: int, check: bool = True) -> None:
        """Take n steps (n = 0: only check); raise SimulationBlowUp on an OpenMM error or a non-finite energy."""
        try:
            integ.step(max(0, n))
        except openmm.OpenMMException as err:
            raise SimulationBlowUp(str(err).strip().splitlines()[0]) from None
        if not check:
            return
        pe = ctx.getState(getEnergy=True).getPotentialEnergy().value_in_unit(u.kilojoule_per_mole)
        if not math.isfinite(pe):
            raise SimulationBlowUp(f"potential energy {pe}")

    def _retrying(self, what: str, job):
        """Call job(dt_fs, attempt) and redo it at half the step on a blow-up."""
        dt = self.s.timestep_fs
        for attempt in range(self.s.max_retries + 1):
            try:
                return job(dt, attempt)
            except SimulationBlowUp as err:
                if attempt == self.s.max_retries:
                    raise SimulationBlowUp(f"{what} failed after {attempt + 1} attempts (last step {dt:g} fs): "
                                           f"{err}") from None
                dt /= 2
        raise AssertionError("unreachable")

    def _minimise_and_ramp(self, ctx, integ, T: float, dt: float, seed: int, max_iter: int, ramp_ps: float) -> None:
        openmm.LocalEnergyMinimizer.minimize(ctx, 10.0, max_iter)
        ctx.setVelocitiesToTemperature(T * u.kelvin, seed)
        integ.setStepSize(1.0 * u.femtosecond)
        self._step(ctx, integ, round(ramp_ps * 1000))
        integ.setStepSize(dt * u.femtosecond)

    def start_positions(self) -> np.ndarray:
        """Equilibrated positions (n_atoms, 3) nm at T0 with the tagged ion free along z (cached in state/)."""
        path = self.out / "state" / "start.xml"
        if path.exists():
            state = openmm.XmlSerializer.deserialize(path.read_text())
            return state.getPositions(asNumpy=True).value_in_unit(u.nanometer)
        path.parent.mkdir(parents=True, exist_ok=True)
        t0, c0 = time.perf_counter(), time.process_time()

        def job(dt, attempt):
            ctx, integ = self._context(self.T0, 1.0, _seed(self.s.seed, 7, attempt))
            ctx.setPositions(self.target.positions)
            ctx.setParameter(KZ, 0.0)
            ramp = min(self.s.ramp_ps, self.s.equil_ps)
            self._minimise_and_ramp(ctx, integ, self.T0, dt, _seed(self.s.seed, 8, attempt), 200, ramp)
            self._step(ctx, integ, round((self.s.equil_ps - ramp) * 1000 / dt))
            return ctx.getState(getPositions=True)

        state = self._retrying("equilibration", job)
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
            ctx, integ = self._context(T, dt, _seed(s.seed, iT, k, attempt, 1))
            ctx.setPositions(pos0)
            ctx.setParameter(Z0, float(self.z0s[k]))
            ctx.setParameter(KZ, self.k_z)
            if T0_window:
                self._minimise_and_ramp(ctx, integ, T, dt, _seed(s.seed, iT, k, attempt, 2), 20, s.window_ramp_ps)
            else:
                ctx.setVelocitiesToTemperature(T * u.kelvin, _seed(s.seed, iT, k, attempt, 2))
            self._step(ctx, integ, round(s.window_equil_ps * 1000 / dt))
            stride = max(1, round(s.sample_ps * 1000 / dt))
            n = max(2, round(s.window_ps / s.sample_ps))
            xyz = np.empty((n, 3))
            for i in range(n):
                self._step(ctx, integ, stride, check=False)
                p = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
                xyz[i] = p[self.target.ion]
                if not np.isfinite(xyz[i]).all():
                    raise SimulationBlowUp(f"tagged ion at {xyz[i]}")
            self._step(ctx, integ, 0)
            final = ctx.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(u.nanometer)
            return xyz, np.asarray(final), dt, stride

        xyz, final, dt, stride = self._retrying(f"window {k} at {T:g} K", job)
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
        from tqdm.auto import tqdm

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


# --- MBAR analysis -----------------------------------------------------------------------------------------
def _pymbar():
    logging.getLogger("pymbar").setLevel(logging.ERROR)  # its JAX banner and timeseries caveat, at import
    import pymbar

    return pymbar


def uncorrelated(z: np.ndarray) -> np.ndarray:
    """Indices of uncorrelated samples of one window's z series (pymbar statistical inefficiency)."""
    if len(z) < 4 or np.ptp(z) == 0:
        return np.arange(len(z))
    return np.asarray(_pymbar().timeseries.subsample_correlated_data(z), int)


@dataclass
class Profile:
    """Free energy of the ion at one temperature, kJ/mol, relative to the bulk density (NaN: no samples)."""

    T: float  # K
    z_edges: np.ndarray  # (n_z + 1,) nm
    r_edges: np.ndarray  # (n_r + 1,) nm
    G: np.ndarray  # (n_z,) r-integrated profile along z
    dG: np.ndarray  # (n_z,) MBAR analytical uncertainty relative to the bulk
    G_zr: np.ndarray  # (n_z, n_r) surface over (z, r)
    n_samples: int  # uncorrelated samples used

    @property
    def z(self) -> np.ndarray:
        """Bin centres (n_z,) nm."""
        return 0.5 * (self.z_edges[1:] + self.z_edges[:-1])


def mbar_profile(z_k: list[np.ndarray], r_k: list[np.ndarray], z0s, k_z: float, T: float, box_z: float,
                 z_edges: np.ndarray, r_edges: np.ndarray, bulk_nm: float) -> Profile:
    """Unbiased profiles from umbrella samples z_k[k], r_k[k] (nm) of windows centred at z0s (nm), k_z kJ/mol/nm^2.

    Bins along z (and over (z, r) for r < r_edges[-1]) are extra MBAR states; G = 0 is the mean density of
    the outer `bulk_nm` of the z range on both sides.
    """
    pymbar = _pymbar()
    kT = KB_KJ_PER_MOL_K * T
    z, r = np.concatenate(z_k), np.concatenate(r_k)
    n_k = np.array([len(a) for a in z_k])
    u_kn = 0.5 * k_z / kT * wrap(z[None, :] - np.asarray(z0s)[:, None], box_z) ** 2
    mbar = pymbar.MBAR(u_kn, n_k)
    n_z = len(z_edges) - 1
    iz = np.digitize(z, z_edges) - 1
    inside = (iz >= 0) & (iz < n_z)
    bulk = inside & ((z < z_edges[0] + bulk_nm) | (z >= z_edges[-1] - bulk_nm))
    if not bulk.any():
        raise ValueError("no samples in the bulk reference region; sample longer or widen bulk_nm")
    filled = [b for b in range(n_z) if (iz == b).any()]
    u_ln = np.array([np.where(iz == b, 0.0, np.inf) for b in filled] + [np.where(bulk, 0.0, np.inf)])
    res = mbar.compute_perturbed_free_energies(u_ln)
    widths = np.diff(z_edges)
    G, dG = np.full(n_z, np.nan), np.full(n_z, np.nan)
    for i, b in enumerate(filled):
        G[b] = kT * (res["Delta_f"][-1, i] + math.log(widths[b] / (2 * bulk_nm)))
        dG[b] = kT * res["dDelta_f"][-1, i]
    # surface: unbiased weights binned over (z, r), per unit volume, against the bulk density inside r < R0
    log_w = -logsumexp(mbar.f_k[:, None] - u_kn + np.log(n_k)[:, None], axis=0)
    w = np.exp(log_w - logsumexp(log_w))
    p_zr, _, _ = np.histogram2d(z, r, bins=[z_edges, r_edges], weights=w)
    vol = widths[:, None] * np.pi * np.diff(r_edges ** 2)[None, :]
    r0 = r_edges[-1]
    rho_bulk = w[bulk & (r < r0)].sum() / (2 * bulk_nm * np.pi * r0 ** 2)
    with np.errstate(divide="ignore"):
        G_zr = -kT * np.log(p_zr / vol / rho_bulk)
    G_zr[~np.isfinite(G_zr)] = np.nan
    return Profile(T=T, z_edges=z_edges, r_edges=r_edges, G=G, dG=dG, G_zr=G_zr, n_samples=int(n_k.sum()))


def profiles_from_windows(windows: list[dict], box_z: float, z_edges, r_edges, bulk_nm: float,
                          part: str = "all") -> Profile:
    """MBAR profile from window records (keys z, r, z0, k_z, T); part 'all', 'first' or 'second' half."""
    z_k, r_k = [], []
    for w in windows:
        z, r = np.asarray(w["z"]), np.asarray(w["r"])
        if part != "all":
            h = len(z) // 2
            z, r = (z[:h], r[:h]) if part == "first" else (z[h:], r[h:])
        keep = uncorrelated(z)
        z_k.append(z[keep])
        r_k.append(r[keep])
    z0s = np.array([float(w["z0"]) for w in windows])
    return mbar_profile(z_k, r_k, z0s, float(windows[0]["k_z"]), float(windows[0]["T"]), box_z,
                        np.asarray(z_edges), np.asarray(r_edges), bulk_nm)


# --- enthalpy / entropy, extrema, symmetry -----------------------------------------------------------------
def split_coefficients(temps, T0: float) -> dict[str, np.ndarray]:
    """Linear maps (n_T,) from the profiles G(T_i) to G(T0), -T0 dS and dH at T0.

    slope = least-squares dG/dT through the temperatures; -T dS = T0 slope; dH = G(T0) - T0 slope, with G(T0)
    the profile at T0 when it was run, else the fitted line at T0.
    """
    t = np.asarray(temps, float)
    if len(t) < 2 or np.ptp(t) == 0:
        raise ValueError("the enthalpy/entropy split needs at least two different temperatures")
    slope = (t - t.mean()) / ((t - t.mean()) ** 2).sum()
    at = np.isclose(t, T0)
    g0 = at.astype(float) if at.any() else 1 / len(t) + (T0 - t.mean()) * slope
    return {"G": g0, "mTS": T0 * slope, "H": g0 - T0 * slope}


def entropy_enthalpy(temps, G: np.ndarray, dG: np.ndarray, T0: float) -> dict[str, np.ndarray]:
    """Split profiles G, dG (n_T, n_z) kJ/mol at temperatures `temps` (K) into G, H, -TS at T0 with errors.

    Returns arrays (n_z,) keyed G, dG, H, dH, mTS, dmTS (kJ/mol); errors assume independent temperatures.
    """
    G, dG = np.asarray(G, float), np.asarray(dG, float)
    out = {}
    for key, c in split_coefficients(temps, T0).items():
        out[key] = c @ G
        out["d" + key] = np.sqrt((c ** 2) @ dG ** 2)
    return out


def _enthalpy_dominance(c: dict[str, np.ndarray], G: np.ndarray, dG: np.ndarray, n: int = 4000) -> float:
    """P(|dH| > |-T dS|) when the profiles G (n_T,) at one z carry independent Gaussian errors dG (n_T,)."""
    draws = G[None, :] + np.random.default_rng(0).standard_normal((n, len(G))) * dG[None, :]
    return float((np.abs(draws @ c["H"]) > np.abs(draws @ c["mTS"])).mean())


def landscape_features(profiles: list[Profile], T0: float, layer_z_nm, bulk_nm: float) -> list[dict]:
    """Barriers (local maxima) and wells (local minima) of G(z) at T0 with their enthalpy/entropy parts.

    An extremum is kept when its prominence exceeds max(0.5 kT, 2 x the median error of G); the global
    maximum and minimum outside the bulk reference region are always kept. `dominant` names the larger of
    |dH| and |-T dS|; `dominance_probability` is the chance that it really is the larger, given the
    (Gaussian, independent per temperature) errors of the profiles.
    """
    from scipy.signal import find_peaks

    temps = [p.T for p in profiles]
    p0 = profiles[int(np.argmin(np.abs(np.array(temps) - T0)))]
    z, G, dG = p0.z, p0.G, p0.dG
    kT = KB_KJ_PER_MOL_K * T0
    core = (z >= p0.z_edges[0] + bulk_nm) & (z <= p0.z_edges[-1] - bulk_nm) & np.isfinite(G)
    idx = np.flatnonzero(core)
    if len(idx) == 0:
        return []
    g = G[idx]
    prom = max(0.5 * kT, 2 * float(np.nanmedian(dG[idx])))
    found = {}
    for sign, kind in ((1, "barrier"), (-1, "well")):
        peaks, _ = find_peaks(sign * g, prominence=prom)
        for p in peaks:
            found[int(idx[p])] = kind
    found.setdefault(int(idx[np.argmax(g)]), "barrier")
    found.setdefault(int(idx[np.argmin(g)]), "well")
    split = len(temps) >= 2
    if split:
        c = split_coefficients(temps, T0)
        Gt = np.array([p.G for p in profiles])
        dGt = np.array([p.dG for p in profiles])
        parts = entropy_enthalpy(temps, Gt, dGt, T0)
    layers = np.asarray(layer_z_nm)
    rows = []
    for b in sorted(found):
        row = {"kind": found[b], "z_nm": float(z[b]), "z_from_nearest_layer_nm": float(z[b] - layers[
            np.argmin(np.abs(layers - z[b]))]), "dG_kJ_mol": float(G[b]), "dG_err": float(dG[b]),
            "dG_kT": float(G[b] / kT), "global": b in (int(idx[np.argmax(g)]), int(idx[np.argmin(g)]))}
        if split and np.isfinite(Gt[:, b]).all() and np.isfinite(dGt[:, b]).all():
            H, mTS = parts["H"][b], parts["mTS"][b]
            p_h = _enthalpy_dominance(c, Gt[:, b], dGt[:, b])
            row |= {"dH_kJ_mol": float(H), "dH_err": float(parts["dH"][b]), "mTdS_kJ_mol": float(mTS),
                    "mTdS_err": float(parts["dmTS"][b]),
                    "dominant": "enthalpy" if abs(H) >= abs(mTS) else "entropy",
                    "dominance_probability": p_h if abs(H) >= abs(mTS) else 1 - p_h}
        elif split:  # a temperature left this bin empty
            row |= {"dH_kJ_mol": None, "dH_err": None, "mTdS_kJ_mol": None, "mTdS_err": None, "dominant": None,
                    "dominance_probability": None}
        rows.append(row)
    return rows


def mirror_asymmetry(z: np.ndarray, G: np.ndarray, dG: np.ndarray, z_mirror: float) -> dict:
    """Compare G(z) with G(2 z_mirror - z) bin by bin (kJ/mol). chi2 ignores correlations between bins.

    Returns chi2, dof, p_value (of chi2 under symmetry), max_dev_sigma and the mirrored pairs' max |dG| gap.
    """
    from scipy.stats import chi2 as chi2_dist

    pairs = []
    for i, zi in enumerate(z):
        j = np.flatnonzero(np.isclose(z, 2 * z_mirror - zi, atol=1e-4))
        if len(j) and j[0] > i and np.isfinite(G[[i, j[0]]]).all() and np.isfinite(dG[[i, j[0]]]).all():
            pairs.append((i, int(j[0])))
    if not pairs:
        return {"chi2": None, "dof": 0, "p_value": None, "max_dev_sigma": None, "max_gap_kJ_mol": None}
    i, j = np.array(pairs).T
    dev = (G[i] - G[j]) / np.sqrt(dG[i] ** 2 + dG[j] ** 2 + 1e-12)
    c2 = float((dev ** 2).sum())
    return {"chi2": c2, "dof": len(pairs), "p_value": float(chi2_dist.sf(c2, len(pairs))),
            "max_dev_sigma": float(np.abs(dev).max()), "max_gap_kJ_mol": float(np.abs(G[i] - G[j]).max())}


# --- the whole analysis ------------------------------------------------------------------------------------
@dataclass
class FreeEnergyResult:
    """Profiles at every temperature (+ halves), the split at T0, the extrema table and the mirror test."""

    T0: float
    profiles: list[Profile]  # one per temperature, ascending T
    halves: list[tuple[Profile, Profile]]  # first/second half of every window, per temperature
    split: dict[str, np.ndarray] | None  # G, dG, H, dH, mTS, dmTS (n_z,) at T0; None with one temperature
    features: list[dict]
    symmetry: dict
    z0s: np.ndarray  # (n_windows,) nm
    k_z: float
    radius_nm: float
    layer_z_nm: list[float]
    z_mirror: float
    meta: dict

    @property
    def at_T0(self) -> Profile:
        return self.profiles[int(np.argmin([abs(p.T - self.T0) for p in self.profiles]))]

    def to_dict(self) -> dict:
        def arr(a):
            return [None if not np.isfinite(x) else round(float(x), 4) for x in np.ravel(a)]

        p0 = self.at_T0
        doc = {**self.meta, "T0_K": self.T0, "temperatures_K": [p.T for p in self.profiles],
               "windows_nm": arr(self.z0s), "k_z_kJ_mol_nm2": self.k_z, "cylinder_radius_nm": self.radius_nm,
               "layer_z_nm": list(self.layer_z_nm), "z_mirror_nm": self.z_mirror,
               "profile_kind": "r-integrated over the cylinder r < R0; zero = bulk density at both ends",
               "z_nm": arr(p0.z),
               "profiles": [{"T_K": p.T, "G_kJ_mol": arr(p.G), "G_err": arr(p.dG), "n_uncorrelated": p.n_samples,
                             "G_first_half": arr(a.G), "G_second_half": arr(b.G)}
                            for p, (a, b) in zip(self.profiles, self.halves, strict=True)],
               "split_at_T0": None if self.split is None else {k: arr(v) for k, v in self.split.items()},
               "features": self.features, "symmetry": self.symmetry,
               "surface_at_T0": {"z_edges_nm": arr(p0.z_edges), "r_edges_nm": arr(p0.r_edges),
                                 "G_kJ_mol": [arr(row) for row in p0.G_zr]}}
        return doc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)


def analyse(samples: dict[float, list[dict]], T0: float, box_z: float, radius_nm: float, layer_z_nm,
            settings: FESettings, meta: dict | None = None) -> FreeEnergyResult:
    """MBAR profiles, halves, split and extrema from `UmbrellaRun.run()` records."""
    temps = sorted(samples)
    first = samples[temps[0]]
    z0s = np.array([float(w["z0"]) for w in first])
    spacing = float(np.diff(z0s).min())
    bin_nm = settings.bin_nm or spacing / 2
    n_z = max(2, round((z0s[-1] - z0s[0]) / bin_nm))
    z_edges = np.linspace(z0s[0], z0s[-1], n_z + 1)
    n_r = max(1, round(radius_nm / settings.r_bin_nm))
    r_edges = np.linspace(0.0, radius_nm, n_r + 1)
    profiles, halves = [], []
    for T in temps:
        profiles.append(profiles_from_windows(samples[T], box_z, z_edges, r_edges, settings.bulk_nm))
        halves.append(tuple(profiles_from_windows(samples[T], box_z, z_edges, r_edges, settings.bulk_nm, part)
                            for part in ("first", "second")))
    split = None
    if len(temps) >= 2:
        split = entropy_enthalpy(temps, np.array([p.G for p in profiles]), np.array([p.dG for p in profiles]), T0)
    z_mirror = 0.5 * (min(layer_z_nm) + max(layer_z_nm))
    p0 = profiles[int(np.argmin(np.abs(np.array(temps) - T0)))]
    return FreeEnergyResult(
        T0=T0, profiles=profiles, halves=halves, split=split,
        features=landscape_features(profiles, T0, layer_z_nm, settings.bulk_nm),
        symmetry=mirror_asymmetry(p0.z, p0.G, p0.dG, z_mirror), z0s=z0s, k_z=float(first[0]["k_z"]),
        radius_nm=radius_nm, layer_z_nm=list(layer_z_nm), z_mirror=z_mirror, meta=meta or {})


# --- plots -------------------------------------------------------------------------------------------------
def _layers(ax, layer_z_nm) -> None:
    for zl in layer_z_nm:
        ax.axvline(zl, color="0.75", lw=0.8, zorder=0)


def plot_profile(res: FreeEnergyResult, path: str | Path, title: str = "") -> None:
    """G, dH and -T dS along z at T0 (kJ/mol) with 1-sigma bands; layer planes as grey lines."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    p0 = res.at_T0
    curves = [("G", p0.G, p0.dG, "k")]
    if res.split is not None:
        curves += [("dH", res.split["H"], res.split["dH"], "C3"), ("-T dS", res.split["mTS"], res.split["dmTS"], "C0")]
    for label, y, dy, color in curves:
        ax.plot(p0.z, y, "-", color=color, label=label)
        ax.fill_between(p0.z, y - dy, y + dy, color=color, alpha=0.2, lw=0)
    _layers(ax, res.layer_z_nm)
    ax.axhline(0, color="0.6", lw=0.6)
    ax.set_xlabel("z (nm)")
    ax.set_ylabel(f"free energy at {res.T0:g} K (kJ/mol)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_convergence(res: FreeEnergyResult, path: str | Path, title: str = "") -> None:
    """G(z) at each temperature with its MBAR error bars, and from the first/second half of every window."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for i, (p, (a, b)) in enumerate(zip(res.profiles, res.halves, strict=True)):
        color = f"C{i}"
        ax.errorbar(p.z, p.G, yerr=p.dG, fmt="o-", ms=3, color=color, capsize=2, label=f"{p.T:g} K, all")
        ax.plot(a.z, a.G, "--", color=color, lw=0.9, label=f"{p.T:g} K, first half")
        ax.plot(b.z, b.G, ":", color=color, lw=0.9, label=f"{p.T:g} K, second half")
    _layers(ax, res.layer_z_nm)
    ax.set_xlabel("z (nm)")
    ax.set_ylabel("G (kJ/mol)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, ncol=len(res.profiles))
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def plot_surface(res: FreeEnergyResult, path: str | Path, title: str = "") -> None:
    """G(z, r) at T0, kJ/mol (white: no samples)."""
    from matplotlib.figure import Figure

    p0 = res.at_T0
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    g = np.ma.masked_invalid(p0.G_zr.T)
    mesh = ax.pcolormesh(p0.z_edges, p0.r_edges, g, cmap="viridis", shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"G(z, r) at {res.T0:g} K (kJ/mol)")
    for zl in res.layer_z_nm:
        ax.axvline(zl, color="w", lw=0.8, ls="--")
    ax.set_xlabel("z (nm)")
    ax.set_ylabel("r from pore axis (nm)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


# --- the command's entry point -----------------------------------------------------------------------------
def run_free_energy(design: Design, conditions: Conditions, ion: str, out: str | Path,
                    settings: FESettings | None = None, progress: bool = True) -> FreeEnergyResult:
    """Umbrella-sample `ion` through the pore of `design` at each temperature, analyse, write JSON and PNGs."""
    s = settings or FESettings()
    out = Path(out)
    T0 = conditions.temperature_K
    temps = s.temperatures(T0)
    target = pore_target(design, conditions, ion, s)
    z0s = window_centres(design.layer_z_nm(), s.margin_nm, s.n_windows)
    k_z = s.k_z or default_k_z(z0s, T0)
    did = design_id(design, conditions)
    meta = {"design_id": did, "ion": ion, "design": json.loads(canonical_json(design, conditions))["design"]}
    run = UmbrellaRun(target, z0s, k_z, temps, T0, s, out, meta=meta, progress=progress)
    samples = run.run()
    meta |= {"cost": run.cost(), "porelab_version": porelab.__version__, "openmm_version": openmm.__version__,
             "n_atoms": target.system.getNumParticles(), "field_V_per_nm": 0.0,
             "ion_dipole_before_after_balancing_e_nm": list(target.ion_dipole_e_nm),
             "settings": asdict(s) | {"temperatures_K": temps}}
    res = analyse(samples, T0, float(target.box[2]), target.radius_nm, target.layer_z_nm, s, meta)
    # a design equal to its mirror image must give a mirror-symmetric profile: the mirror test checks convergence
    res.symmetry["design_symmetric"] = design == design.mirrored()
    title = f"{did} {ion}, {len(design.layers)} layer(s) {'/'.join(design.layers)}"
    plot_profile(res, out / "profile.png", title)
    plot_convergence(res, out / "convergence.png", title)
    plot_surface(res, out / "surface.png", title)
    atomic_write_text(out / "free_energy.json", res.to_json())
    return res
