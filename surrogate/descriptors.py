"""Hand-made descriptors of a sample, for the descriptor models (surrogate.baselines) and a campaign's
batch-diversity embedding.

Design part (`design_descriptors`): layers, spacing, stack thickness, pore width/height/area/shape, groups per
rim, material, cell size, mean layer offset, the rim charge of each layer (bottom to top, zero-padded to
sim.design.MAX_SHEETS), total charge, its first and second moments along z, the charge density. Sample part:
the condition globals of surrogate.graph (field, bias, concentrations, temperature, fidelity).
Units: nm, nm^2, e, V/nm, M, K.
"""

from __future__ import annotations

import functools

import numpy as np

from porelab.sim.design import MAX_SHEETS, Design
from porelab.surrogate.dataset import Samples
from porelab.surrogate.graph import GLOBAL_FEATURES, mirror_globals

SHAPES = ("ellipse", "circle", "hexagon", "rectangle")
DESCRIPTOR_VERSION = 2  # bump whenever this file changes what it computes (2: charges padded to MAX_SHEETS)
DESCRIPTOR_NAMES = ("n_layers", "spacing_nm", "stack_nm", "pore_w_nm", "pore_h_nm", "pore_area_nm2",
                    *(f"shape_{s}" for s in SHAPES), "groups_per_rim", "hbn", "bn_charge_e", "sheet_nm", "box_z_nm",
                    "mean_offset_nm", *(f"q_layer{k}_e" for k in range(MAX_SHEETS)), "q_total_e", "abs_q_total_e",
                    "q_dipole_e_nm", "q_quadrupole_e_nm2", "abs_q_sum_e", "q_density_e_per_nm3", "n_oh_layers")
SAMPLE_DESCRIPTOR_NAMES = (*DESCRIPTOR_NAMES, *GLOBAL_FEATURES)


def design_descriptors(d: Design) -> np.ndarray:
    """Hand-made descriptors of a design, shape (len(DESCRIPTOR_NAMES),) (cached: do not modify in place)."""
    return _design_descriptors(d)


@functools.lru_cache(maxsize=65536)
def _design_descriptors(d: Design) -> np.ndarray:
    qs = np.asarray(d.layer_charge_e(), float)
    q = np.zeros(MAX_SHEETS)
    q[: len(qs)] = qs
    z = np.asarray(d.layer_z_nm()) - d.box_z_nm / 2
    area = d.pore.area_nm2()
    thick = d.stack_thickness_nm() + 0.34
    off = np.mean([np.hypot(*o) for o in d.layer_offsets_nm()])
    out = np.array([
        len(d.layers), d.spacing_nm, d.stack_thickness_nm(), d.pore.width_nm, d.pore.height_nm, area,
        *(float(d.pore.shape == s) for s in SHAPES), d.groups_per_rim, float(d.material == "hbn"),
        d.bn_charge_e if d.material == "hbn" else 0.0, d.sheet_nm, d.box_z_nm, off, *q, qs.sum(),
        abs(qs.sum()), (qs * z).sum(), (qs * z**2).sum(), np.abs(qs).sum(), qs.sum() / (area * thick),
        sum(g == "OH" for g in d.layers)])
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=65536)
def _mirrored_descriptors(d: Design) -> np.ndarray:
    return _design_descriptors(d.mirrored())


def descriptors(samples: Samples, mirrored: bool = False) -> np.ndarray:
    """(n, len(SAMPLE_DESCRIPTOR_NAMES)) descriptors of every sample; mirrored: of the design upside down with
    the field reversed."""
    if samples.n_designs == 0:
        return np.zeros((0, len(SAMPLE_DESCRIPTOR_NAMES)))
    dd = np.stack([(_mirrored_descriptors if mirrored else _design_descriptors)(d) for d in samples.designs])
    u = mirror_globals(samples.u) if mirrored else samples.u
    return np.column_stack([dd[samples.design_index], np.asarray(u, float)])
