"""PNG plots of a measurement: I–V per species, and ICR vs |E| (censored values drawn as lower bounds, ICR = 1 by
symmetry drawn as exact). Drawn on `matplotlib.figure.Figure`: no pyplot state, no backend change."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from porelab.sim.design import SPECIES
from porelab.sim.measurement import E_PER_NS_TO_NA, Measurement


def plot_iv(m: Measurement, path: str | Path) -> None:
    """Total current and each species' contribution (nA) vs field (V/nm), with intervals; the displacement-sum
    current beside the crossing one when measured (MD)."""
    fields = sorted(m.fields, key=lambda f: f.field_V_per_nm)
    e = np.array([f.field_V_per_nm for f in fields])
    fig = Figure(figsize=(5.5, 4), layout="constrained")
    ax = fig.add_subplot()
    i = np.array([f.current_nA for f in fields])
    ci = np.array([f.current_ci_nA for f in fields])
    ax.errorbar(e, i, yerr=[i - ci[:, 0], ci[:, 1] - i], fmt="o-", color="k", capsize=3, label="total")
    disp = [f for f in fields if f.current_displacement_ci_nA is not None]
    if len(disp) == len(fields) and fields:
        d = np.array([f.current_displacement_nA for f in disp])
        dci = np.array([f.current_displacement_ci_nA for f in disp])
        ax.errorbar(e, d, yerr=[d - dci[:, 0], dci[:, 1] - d], fmt="D:", color="0.4", capsize=3, ms=4,
                    label="total, displacement sum")
    for sp in m.conditions.electrolyte:
        z = SPECIES[sp]["valence"] * E_PER_NS_TO_NA
        flux = np.array([f.species[sp].flux_per_ns for f in fields if sp in f.species]) * z
        fci = np.array([f.species[sp].flux_ci_per_ns for f in fields if sp in f.species]) * z
        if len(flux) != len(e):
            continue
        lo, hi = np.minimum(fci[:, 0], fci[:, 1]), np.maximum(fci[:, 0], fci[:, 1])
        ax.errorbar(e, flux, yerr=[flux - lo, hi - flux], fmt="s--", capsize=2, alpha=0.8, label=sp)
    ax.axhline(0, color="0.7", lw=0.8)
    ax.axvline(0, color="0.7", lw=0.8)
    ax.set_xlabel("field E (V/nm), + along the layer stack")
    ax.set_ylabel("current (nA)")
    ax.set_title(f"{m.design_id} ({m.fidelity})", fontsize=9)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)


def plot_icr(m: Measurement, path: str | Path) -> None:
    """ICR = |I(+E)|/|I(-E)| vs |E| on a log axis; censored points are lower bounds (upward triangles), ICR = 1 by
    symmetry a square without error bar."""
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.add_subplot()
    rows = sorted(m.icr, key=lambda r: r.field_abs_V_per_nm)
    for r in rows:
        x, y = r.field_abs_V_per_nm, r.icr
        if r.by_symmetry:
            ax.plot(x, y, "s", color="C2", ms=7)
        elif r.icr_censored:
            ax.plot(x, y, "^", color="C3", ms=8)
            ax.annotate("", xy=(x, y * 2), xytext=(x, y), arrowprops={"arrowstyle": "->", "color": "C3"})
        else:
            lo, hi = r.icr_ci
            ax.errorbar(x, y, yerr=[[y - lo], [hi - y]], fmt="o", color="C0", capsize=3)
    if rows:
        ax.plot([r.field_abs_V_per_nm for r in rows], [r.icr for r in rows], "-", color="0.6", zorder=0)
    ax.axhline(1, color="0.7", lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("|E| (V/nm)")
    ax.set_ylabel("ICR = |I(+E)| / |I(-E)|")
    ax.set_title(f"{m.design_id} ({m.fidelity}); triangles: lower bounds, squares: by symmetry", fontsize=9)
    fig.savefig(path, dpi=120)
