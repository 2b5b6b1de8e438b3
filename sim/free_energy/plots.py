"""Free-energy plots, drawn on `matplotlib.figure.Figure` (no pyplot state, no backend change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from porelab.sim.free_energy.result import FreeEnergyResult


def _layers(ax, layer_z_nm) -> None:
    for zl in layer_z_nm:
        ax.axvline(zl, color="0.75", lw=0.8, zorder=0)


def plot_profile(res: FreeEnergyResult, path: str | Path, title: str = "") -> None:
    """G, dH and -T dS along z at T0 (kJ/mol) with 1-sigma bands; layer planes as grey lines."""
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
