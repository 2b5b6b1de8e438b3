"""The sampled system: one tagged ion restrained along the pore axis, the pore's solvated start with its ions
balanced about the membrane, and where each umbrella window puts the ion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openmm

from porelab.sim.builder import build
from porelab.sim.design import MD_SPECIES, Conditions, Design, DesignError
from porelab.sim.engine import KB_KJ_PER_MOL_K
from porelab.sim.free_energy.settings import FESettings
from porelab.sim.system import build_system

Z0, KZ = "fe_z0", "fe_kz"  # global parameters of the restraint force: window centre (nm), k_z (kJ/mol/nm^2)


def wrap(d, length: float):
    """Periodic difference d - L round(d/L), in [-L/2, L/2) (same convention as the restraint force)."""
    return d - length * np.floor(d / length + 0.5)



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
