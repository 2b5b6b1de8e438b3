"""Floor-1 commands of `porelab`: build a design's PDB (and a picture of it), simulate it (MD or continuum).

Options with a fixed set of values are `Literal` types (listed in --help; the `porelab` app refuses any other
value in one line naming them): FIDELITIES, PRESET_NAMES, PLATFORMS.

Imports on use: commands import their floor on use so that `porelab --help` starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.table import Table

from porelab.base.console import console, fail, out_path, print_table
from porelab.sim.design import PRESETS, DesignError, canonical, design_id, load_design_file
from porelab.sim.md_settings import MDSettings
from porelab.sim.measurement import MEASUREMENT_FILE, Measurement

Fidelity = Literal["md", "continuum"]
Preset = Literal[tuple(PRESETS)]  # tiny | seed
Platform = Literal["CPU", "CUDA", "OpenCL", "HIP", "Reference"]  # OpenMM's; what is installed: sim.engine
# options shared by the commands that build or simulate (build, simulate, free-energy)
PresetOption = Annotated[Preset | None, typer.Option(help="size preset (overrides the file's)")]
SeedOption = Annotated[int, typer.Option(help="random seed (solvent placement, velocities, thermostat)")]
PlatformOption = Annotated[Platform | None, typer.Option(help="OpenMM platform (default: CUDA if present, else CPU)")]
ThreadsOption = Annotated[int | None, typer.Option(help="CPU platform threads (default: all cores)")]

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="porelab: Janus nanopore membranes, simulated and learned.")
def _load(path: Path, preset: str | None):
    try:
        return load_design_file(path, preset=preset)
    except DesignError as err:
        fail(str(err))


def _parse_fields(text: str, both_signs: bool) -> list[float]:
    try:
        vals = [float(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        fail(f"--fields {text!r}: expected comma-separated numbers in V/nm, e.g. 0.5,1,2")
    if not vals:
        fail("--fields is empty")
    if both_signs:
        vals = sorted({v for x in vals for v in (abs(x), -abs(x))}, key=lambda v: (abs(v), -v))
    return vals


@app.command()
def build(design_file: Annotated[Path, typer.Argument(metavar="DESIGN.yaml", help="design YAML")],
          out: Annotated[Path | None, typer.Option(help="PDB path (default: <design>.pdb)")] = None,
          preset: PresetOption = None,
          png: Annotated[bool, typer.Option(help="also draw the membrane (a cut through the pore axis and the view "
                                                 "down it) to the PDB path with .png")] = False):
    """Build the membrane atom by atom and write a PDB (membrane only), with --png a picture of it."""
    from porelab.sim.builder import build as build_structure
    from porelab.sim.builder import built_pore_size

    out = out_path(out or design_file.with_suffix(".pdb"), "--out" if out else "the default --out")
    design, conditions = _load(design_file, preset)
    try:
        s = build_structure(design)
    except DesignError as err:
        fail(str(err))
    did = design_id(design, conditions)
    picture = out.with_suffix(".png") if png else None
    try:
        s.write_pdb(out)
        if picture is not None:
            from porelab.sim.render import plot_membrane

            plot_membrane(s, picture, f"{did}: {' / '.join(design.layers)} (bottom to top), {design.material}")
    except OSError as err:
        fail(f"--out {out}: {err.strerror or err}")
    sizes = ", ".join(f"{w:.2f}x{h:.2f}" for w, h in (built_pore_size(s, k) for k in range(len(design.layers))))
    console.print(f"{did}: {s.n_atoms} atoms, box {s.box.round(3).tolist()} nm, "
                  f"layer charges {s.layer_charge().round(3).tolist()} e, pores {sizes} nm -> {out}"
                  + (f" and {picture}" if picture is not None else ""))


@app.command()
def simulate(
    design_file: Annotated[Path, typer.Argument(metavar="DESIGN.yaml", help="design YAML")],
    out: Annotated[Path, typer.Option(help="run directory (created; an interrupted run resumes, a longer one "
                                           "extends it)")],
    fidelity: Annotated[Fidelity, typer.Option(help="md (OpenMM) or the continuum twin (PNP)")] = "md",
    fields: Annotated[str | None, typer.Option(help="comma-separated |E| values, V/nm (default: the file's)")] = None,
    both_signs: Annotated[bool, typer.Option(help="run each field at +E and -E")] = True,
    time_ps: Annotated[float, typer.Option(help="--until fixed: production length per field, ps")] = 100.0,
    until: Annotated[str, typer.Option(metavar="<fixed|decisive>", help="fixed (--time-ps) or decisive (chunks until "
                                       "the ICR interval decides, up to --max-ps)")] = "fixed",
    min_ps: Annotated[float, typer.Option(help="--until decisive: production per field at the first look, ps")] = 40.0,
    chunk_ps: Annotated[float, typer.Option(help="--until decisive: production added per field per chunk, ps")] = 20.0,
    max_ps: Annotated[float, typer.Option(help="--until decisive: cap on the production per field, ps")] = 1000.0,
    icr_margin: Annotated[float, typer.Option(help="--until decisive: stop when the ICR interval (alpha spent over "
                                                   "the looks) excludes 1 by this (low >= 1+m or high <= 1/(1+m))")]
    = 0.2,
    icr_target: Annotated[float, typer.Option(help="--until decisive: ... or when its relative half-width is below "
                                                   "this")] = 0.2,
    equil_ps: Annotated[float, typer.Option(help="equilibration (field off) at least, ps; then until the "
                                                 "polarisation is stationary")] = 20.0,
    settle_max_ps: Annotated[float, typer.Option(help="at most this long (ps) waiting for a stationary polarisation, "
                                                      "after equilibration and after each field is switched on")]
    = 100.0,
    timestep_fs: Annotated[float, typer.Option(help="2, or 4 (rigid water, frozen membrane)")] = 2.0,
    preset: PresetOption = None,
    seed: SeedOption = 0,
    platform: PlatformOption = None,
    threads: ThreadsOption = None,
):
    """Simulate a design under +/-E and write measurement.json, structures, trajectories and plots to OUT."""
    from porelab.sim.plots import plot_icr, plot_iv

    out = out_path(out, "--out")
    design, conditions = _load(design_file, preset)
    try:
        if fields is not None:
            conditions = conditions.with_fields(_parse_fields(fields, both_signs))
        elif both_signs:
            conditions = conditions.with_both_signs()
    except DesignError as err:
        fail(f"--fields: {err}")
    if fidelity == "md":
        try:  # checked before anything is written
            settings = MDSettings(production_ps=time_ps, until=until, min_production_ps=min_ps, chunk_ps=chunk_ps,
                                  max_production_ps=max_ps, icr_margin=icr_margin, icr_rel_halfwidth=icr_target,
                                  equil_ps=equil_ps, settle_max_ps=settle_max_ps,
                                  timestep_fs=timestep_fs, seed=seed, platform=platform, cpu_threads=threads)
        except DesignError as err:
            fail(str(err))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"--out {out}: {err.strerror}")
    try:
        if fidelity == "md":
            from porelab.sim.protocol import run_md

            m: Measurement = run_md(design, conditions, out, settings)
            if m.status == "ok":
                _structure_plots(m, out)
        else:
            from porelab.sim.continuum import run_continuum

            m = run_continuum(design, conditions)
            m.save(out / MEASUREMENT_FILE)
    except DesignError as err:
        fail(str(err))
    if m.status != "ok":
        fail(f"{m.design_id}: simulation failed: {m.error} (nothing recorded as a current)", code=1)
    plot_iv(m, out / "iv.png")
    plot_icr(m, out / "icr.png")
    _print_summary(m, out)


@contextlib.contextmanager
def _c_output_silenced():
    """Drop what C code writes to the process's stdout and stderr while inside (mdtraj's DCD plugin prints two
    banner lines per file it opens). Python's streams are flushed before and after, so only what is written
    inside is dropped."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved, null = (os.dup(1), os.dup(2)), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _structure_plots(m, out: Path) -> None:
    """Density and hydration profiles from each simulated field's trajectory (the canonical orientation, as the
    trajectories are: see sim.protocol)."""
    import mdtraj as md
    import numpy as np

    from porelab.sim.builder import build as build_structure
    from porelab.sim.observables import oriented
    from porelab.sim.production import field_tag
    from porelab.sim.structure import ion_species, plot_profiles

    design, conditions, _ = canonical(m.design, m.conditions)
    m = oriented(m, design, conditions)
    s = build_structure(design)
    rel = s.pore_center - s.pore_center[0]
    rel -= s.box[:2] * np.round(rel / s.box[:2])  # layer offsets may straddle a periodic edge
    axis = (s.pore_center[0] + rel.mean(axis=0)) % s.box[:2]
    for f in m.fields:
        dcd = out / f"traj_{field_tag(f.field_V_per_nm)}.dcd"
        if dcd.exists() and not f.derived_by_symmetry:
            with _c_output_silenced():
                traj = md.load(str(dcd), top=str(out / "ions.pdb"))
            plot_profiles(traj, ion_species(traj), axis, design.layer_z_nm(),
                          out / f"profiles_{field_tag(f.field_V_per_nm)}.png")


def _run_line(run) -> str:
    """How long an MD run ran and why it stopped (Measurement.run), one line."""
    return (f"production {run.production_ps:g} ps per field, stopped: {run.stopped} ({run.reason}); "
            f"{run.cpu_s / 60:.1f} CPU-min, {run.wall_s / 60:.1f} min wall in all")


def _print_summary(m, out: Path) -> None:
    from porelab.sim.observables import Interval

    md = m.fidelity == "md"
    what = "95% CI" if md else "error bound"  # printed as \\[what]: escaped from rich markup
    t = Table(title=f"{m.design_id} ({m.fidelity}, {m.provenance.get('platform', '')})")
    t.add_column("E (V/nm)", justify="right")
    t.add_column(f"I (nA) \\[{what}]", justify="right")
    species = list(m.conditions.electrolyte)
    if md:
        t.add_column("charge crossed (e)", justify="right")
    for sp in species:
        t.add_column(f"{sp} transits up/down" if md else f"{sp} flux (1/ns) \\[{what}]", justify="right")
    if md:
        t.add_column("settle (ps)", justify="right")
        t.add_column("displacement (nA), of which charging (e)", justify="right")
    t.add_column("time (ns)", justify="right")
    for f in sorted(m.fields, key=lambda f: f.field_V_per_nm):
        cells = [f"{f.charge_crossings_e:+.0f}"] if md else []
        cells += [f"{f.species[sp].crossings_up}/{f.species[sp].crossings_down}" if md
                  else str(Interval(f.species[sp].flux_per_ns, *f.species[sp].flux_ci_per_ns)) for sp in species]
        if md:
            settle = "-" if f.settle_ns is None else f"{1000 * f.settle_ns:.0f}" + ("" if f.settled else " (cap)")
            disp = "-" if f.current_displacement_ci_nA is None else (
                f"{Interval(f.current_displacement_nA, *f.current_displacement_ci_nA)}, "
                f"{f.polarisation_change_e:+.1f} e")
            cells += [settle, disp]
        time_cell = f"{f.time_ns:g}" + (" (by symmetry)" if f.derived_by_symmetry else "")
        t.add_row(f"{f.field_V_per_nm:+g}", str(Interval(f.current_nA, *f.current_ci_nA)), *cells, time_cell)
    print_table(t)
    if md:
        console.print("I: transits of the pore (crossing counts, exact Poisson intervals). The displacement sum "
                      "counts the membrane's charging too (its polarisation change, in e): a diagnostic only "
                      "(docs/physics.md §3).", highlight=False)
    for r in m.icr:
        if r.by_symmetry:
            console.print(f"ICR at |E|={r.field_abs_V_per_nm:g} V/nm: 1 by symmetry (the design is its own mirror "
                          "image)")
            continue
        icr = Interval(r.icr, r.icr_ci[0], r.icr_ci[1], r.icr_censored, r.icr_upper_censored)
        kind = (" (a lower bound: the -E current is indistinguishable from 0)" if r.icr_censored and r.icr_ci[0] > 0
                else " (nothing crossed at either sign: unresolved)" if r.icr_censored
                else " (an upper bound: the +E current is indistinguishable from 0)" if r.icr_upper_censored else "")
        how = f"{what}, crossing counts" if md else what
        console.print(f"ICR at |E|={r.field_abs_V_per_nm:g} V/nm: {icr} \\[{how}]{kind}", highlight=False)
    if m.run is not None:
        console.print(_run_line(m.run), highlight=False)
    console.print(f"results in {out}/measurement.json")
