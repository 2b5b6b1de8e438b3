"""`porelab free-energy`: umbrella-sampling free-energy profile of one ion species through a design's pore."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from porelab.base.console import console, fail, out_path
from porelab.sim.cli import PlatformOption, PresetOption, SeedOption, ThreadsOption
from porelab.sim.design import DesignError, load_design_file

app = typer.Typer(add_completion=False, no_args_is_help=True)


def _temperatures(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        vals = tuple(float(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        fail(f"--temperatures {text!r}: expected comma-separated kelvin, e.g. 280,300,320")
    if not vals:
        fail("--temperatures is empty")
    return vals


@app.command("free-energy")
def free_energy(
    design_file: Annotated[Path, typer.Argument(metavar="DESIGN.yaml", help="design YAML")],
    out: Annotated[Path, typer.Option(help="run directory (created; an interrupted run resumes)")],
    ion: Annotated[str, typer.Option(help="ion species to pull through the pore, e.g. K+ or Cl-")] = "K+",
    windows: Annotated[int, typer.Option(help="umbrella windows along z")] = 16,
    margin_nm: Annotated[float, typer.Option(help="windows span the outer layers +- this, nm")] = 1.0,
    window_ps: Annotated[float, typer.Option(help="sampled time per window, ps")] = 100.0,
    window_equil_ps: Annotated[float, typer.Option(help="equilibration per window before sampling, ps")] = 10.0,
    equil_ps: Annotated[float, typer.Option(help="equilibration of the whole box at T0, ps")] = 50.0,
    temperatures: Annotated[str | None, typer.Option(help="comma-separated K, must include the design's "
                                                     "temperature (default: T0-20, T0, T0+20)")] = None,
    k_z: Annotated[float | None, typer.Option(help="umbrella force constant, kJ/mol/nm^2 "
                                              "(default: 3 kT / window spacing^2)")] = None,
    radius_nm: Annotated[float | None, typer.Option(help="flat-bottom cylinder radius around the pore axis, nm "
                                                    "(default: the pore's larger semi-axis)")] = None,
    timestep_fs: Annotated[float, typer.Option(help="4 (rigid water, frozen membrane) or 2")] = 4.0,
    preset: PresetOption = None,
    seed: SeedOption = 0,
    platform: PlatformOption = None,
    threads: ThreadsOption = None,
):
    """Free energy of an ion along the pore axis and over (z, r), split into enthalpy and entropy; JSON + PNGs."""
    # OpenMM and the free-energy stack load when the command runs, so that `porelab --help` stays light
    from porelab.sim.engine import SimulationBlowUp
    from porelab.sim.free_energy import FESettings, check_ion, run_free_energy

    out = out_path(out, "--out")
    try:
        design, conditions = load_design_file(design_file, preset=preset)
        settings = FESettings(n_windows=windows, margin_nm=margin_nm, window_ps=window_ps,
                              window_equil_ps=window_equil_ps, equil_ps=equil_ps,
                              temperatures_K=_temperatures(temperatures), k_z=k_z, radius_nm=radius_nm,
                              timestep_fs=timestep_fs, seed=seed, platform=platform, cpu_threads=threads)
        settings.temperatures(conditions.temperature_K)
        check_ion(ion, conditions)
        out.mkdir(parents=True, exist_ok=True)
        res = run_free_energy(design, conditions, ion, out, settings)
    except DesignError as err:
        fail(str(err))
    except OSError as err:
        fail(f"--out {out}: {err.strerror or err}")
    except SimulationBlowUp as err:
        fail(f"simulation failed: {err} (rerun resumes from the finished windows)", code=1)
    except ValueError as err:  # e.g. MBAR left with no bulk samples: the windows are kept, sample longer
        fail(f"analysis failed: {err}", code=1)
    _print_table(res, ion, out)


def _pm(v, e) -> str:
    return "" if v is None else f"{v:+.2f} ± {e:.2f}"


def _print_table(res, ion: str, out: Path) -> None:
    t = Table(title=f"{res.meta.get('design_id', '')} {ion}: extrema of G(z) at {res.T0:g} K (kJ/mol, vs bulk)")
    for col in ("kind", "z (nm)", "from layer (nm)", "dG", "dH", "-T dS", "dominant"):
        t.add_column(col, justify="right")
    for f in res.features:
        dom = f.get("dominant")
        if dom is not None:
            dom = f"{dom} (p={f['dominance_probability']:.2f})"
        t.add_row(f["kind"] + (" *" if f["global"] else ""), f"{f['z_nm']:.2f}", f"{f['z_from_nearest_layer_nm']:+.2f}",
                  _pm(f["dG_kJ_mol"], f["dG_err"]), _pm(f.get("dH_kJ_mol"), f.get("dH_err")),
                  _pm(f.get("mTdS_kJ_mol"), f.get("mTdS_err")), dom or "")
    console.print(t)
    sym, cost = res.symmetry, res.meta.get("cost", {})
    if sym.get("p_value") is not None:
        console.print(f"mirror test: chi2 {sym['chi2']:.1f} / {sym['dof']} bins, p = {sym['p_value']:.3g}, "
                      f"largest gap {sym['max_gap_kJ_mol']:.2f} kJ/mol ({sym['max_dev_sigma']:.1f} σ)")
        if sym.get("design_symmetric") and sym["p_value"] < 0.01:
            console.print("[bold yellow]warning:[/] the design is mirror-symmetric but the profile is not: not "
                          "converged (windows too short for slow parts such as the other ions' arrangement, or "
                          "too little overlap); the error bars understate the real uncertainty")
    if cost:
        console.print(f"cost: {cost['cpu_min']:.1f} CPU-min, {cost['wall_min']:.1f} min wall on {cost['platform']}, "
                      f"{cost['sampled_ps']:.0f} ps sampled in {cost['windows']} windows")
    console.print(f"results in {out}/free_energy.json (* global extremum)")
