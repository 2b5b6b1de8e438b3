"""Pictures of a built membrane: a cut through the pore axis (x-z) and the view down the axis (x-y).

Drawn on a `matplotlib.figure.Figure` (no global state). Units: nm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from porelab.sim.builder import Structure
from porelab.sim.forcefield import GROUPS

#: colour of each element; rim groups are drawn larger on top of the sheets
ELEMENT_COLOUR = {"C": "0.45", "B": "#f2a65a", "N": "#3a6ee8", "O": "#e23b3b", "H": "0.85"}
GROUP_COLOUR = {"COO": "#e23b3b", "NH3": "#3a6ee8", "OHG": "#8a5cc9"}


def _centred(structure: Structure) -> np.ndarray:
    """Positions (n, 3) with x, y relative to the mean pore centre (minimum image), nm."""
    box = structure.box[:2]
    centre = structure.pore_center[0] + np.mean(
        (structure.pore_center - structure.pore_center[0] + box / 2) % box - box / 2, axis=0)
    pos = structure.positions.copy()
    pos[:, :2] = (pos[:, :2] - centre + box / 2) % box - box / 2
    return pos


def membrane_figure(structure: Structure, title: str = "", slab_nm: float = 0.35):
    """Figure with the x-z cut (atoms with |y| < slab_nm of the pore axis) and the x-y view of all sheets."""
    from matplotlib.figure import Figure  # matplotlib only when a picture is drawn

    pos = _centred(structure)
    group = structure.roles == "group"
    res_name = np.array(structure.resnames)[structure.residue]
    colours = np.array([ELEMENT_COLOUR.get(e, "k") for e in structure.elements], dtype=object)
    colours[group] = [GROUP_COLOUR.get(r, "k") for r in res_name[group]]
    fig = Figure(figsize=(8.4, 3.8))
    side, top = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.35, 1.0]})
    cut = np.abs(pos[:, 1]) < slab_nm
    for sel, size in ((cut & ~group, 9), (cut & group, 22)):
        side.scatter(pos[sel, 0], pos[sel, 2], s=size, c=list(colours[sel]), linewidths=0)
    x_label = pos[:, 0].max() + 0.15
    for z, g in zip(structure.design.layer_z_nm(), structure.design.layers, strict=True):
        colour = GROUP_COLOUR[GROUPS[g]["resname"]] if g in GROUPS else "0.3"
        side.text(x_label, z, g, fontsize=7, va="center", color=colour)
    side.set_xlim(pos[:, 0].min() - 0.1, x_label + 0.9)
    zc = structure.box[2] / 2
    side.set_ylim(zc - max(1.2, 0.6 + np.ptp(pos[:, 2]) / 2), zc + max(1.2, 0.6 + np.ptp(pos[:, 2]) / 2))
    side.set_xlabel("x (nm), through the pore axis")
    side.set_ylabel("z (nm); +E points up")
    side.set_aspect("equal")
    side.set_title(f"cut |y| < {slab_nm:g} nm", fontsize=9)
    order = np.argsort(pos[:, 2])  # upper sheets drawn last
    top.scatter(pos[order, 0], pos[order, 1], s=np.where(group[order], 16, 5), c=list(colours[order]),
                linewidths=0)
    top.set_aspect("equal")
    top.set_xlabel("x (nm)")
    top.set_ylabel("y (nm)")
    top.set_title("down the pore axis", fontsize=9)
    for g, spec in GROUPS.items():
        top.scatter([], [], s=16, c=GROUP_COLOUR[spec["resname"]], label=g)
    top.legend(fontsize=7, loc="upper right", framealpha=0.8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_membrane(structure: Structure, path: str | Path, title: str = "") -> Path:
    """Write `membrane_figure` to a PNG at `path`."""
    fig = membrane_figure(structure, title)
    fig.savefig(path, dpi=110)
    return Path(path)
