"""`run_free_energy`: set up the restrained pore, run (or resume) every window, analyse, write JSON and plots."""

from __future__ import annotations

from pathlib import Path

import openmm

import porelab
from porelab.base.files import atomic_write_text
from porelab.sim.design import Conditions, Design, design_id, physical_state
from porelab.sim.free_energy.plots import plot_convergence, plot_profile, plot_surface
from porelab.sim.free_energy.result import FreeEnergyResult, analyse
from porelab.sim.free_energy.settings import FESettings
from porelab.sim.free_energy.target import default_k_z, pore_target, window_centres
from porelab.sim.free_energy.windows import UmbrellaRun


def run_claim(design: Design, conditions: Conditions, ion: str) -> dict:
    """What a free-energy run directory is claimed by: the ion and the physical state of the design AS GIVEN (a
    profile along z is not that of the mirror image), with the conditions at the zero field the windows run at."""
    return {"ion": ion, "state": physical_state(design, conditions.with_fields([0.0]))}


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
    claim = run_claim(design, conditions, ion)
    run = UmbrellaRun(target, z0s, k_z, temps, T0, s, out, meta=claim, progress=progress)
    samples = run.run()
    did = design_id(design, conditions)
    meta = {"design_id": did, **claim, "design": claim["state"]["design"], "cost": run.cost(),
            "porelab_version": porelab.__version__, "openmm_version": openmm.__version__,
            "n_atoms": target.system.getNumParticles(), "field_V_per_nm": 0.0,
            "ion_dipole_before_after_balancing_e_nm": list(target.ion_dipole_e_nm),
            "settings": s.model_dump() | {"temperatures_K": temps}}
    res = analyse(samples, T0, float(target.box[2]), target.radius_nm, target.layer_z_nm, s, meta)
    # a design equal to its mirror image must give a mirror-symmetric profile: the mirror test checks convergence
    res.symmetry["design_symmetric"] = design.is_symmetric()
    title = f"{did} {ion}, {len(design.layers)} layer(s) {'/'.join(design.layers)}"
    plot_profile(res, out / "profile.png", title)
    plot_convergence(res, out / "convergence.png", title)
    plot_surface(res, out / "surface.png", title)
    atomic_write_text(out / "free_energy.json", res.to_json())
    return res
