"""Structure analysis of an ion trajectory: ion density along z and r, hydration number along z.

Pure functions in the style of `mdtraj.geometry`. The input is an `mdtraj.Trajectory` of the
ions and water oxygens that the MD run writes: ions carry the residue names of
`sim.forcefield.ION_RESNAMES` ("K", "NA", "CL", ...), water oxygens are atom "O" of residue "HOH". Units are
those of mdtraj: nm for coordinates and box, so densities come out in nm^-3. The box must be set and
rectangular (the membrane lies in the xy plane, the field and the pore axis along z).

Profiles are returned as `(centres, values)`, like `mdtraj.compute_rdf`. Positions are wrapped into the
box before binning, so z lies in [0, Lz) in the frame of `Design.layer_z_nm()`.
"""

from __future__ import annotations

from pathlib import Path

import mdtraj as md
import numpy as np
from matplotlib.figure import Figure

from porelab.sim.forcefield import ION_RESNAMES, WATER_RESNAME

#: First-shell cutoff of each ion for water oxygens, nm: the first minimum of the ion–O radial distribution
#: function of these ions in TIP3P (Joung–Cheatham K+/Na+/Li+/Cl-, Li–Merz Mg2+/Ca2+, OpenMM's
#: amber14/tip3p.xml). Measured for porelab in two 0.1 ns NVT runs at 300 K (PME, 3 nm box, ≈ 880 TIP3P
#: waters; one of each cation + 7 Cl-, then 3 K+, 3 Na+, 3 Li+, 1 Mg2+, 1 Ca2+ + 13 Cl-). First peak /
#: first minimum / waters within the cutoff:
#:   K+   0.274 / 0.36–0.38 (shallow, g ≈ 0.45) / 6.4–6.7      Na+  0.238 / 0.32 / 5.6–5.7
#:   Li+  0.198 / 0.26–0.28 (g ≈ 0.05) / 4.1                  Mg2+ 0.203 / g = 0 over 0.24–0.30 / 6.0
#:   Ca2+ 0.249 / 0.335–0.355 (g ≈ 0.01 over 0.31–0.37) / 6.6–8.0 (slow exchange, one ion)
#:   Cl-  0.314 / 0.385 (shallow, g ≈ 0.57) / 7.1
#: Where g is near zero over a range (Li+, Mg2+, Ca2+) the count hardly depends on the value chosen; for
#: K+ and Cl- the minimum is shallow and ±0.01 nm moves the count by ≈ 0.1–0.2.
HYDRATION_CUTOFF_NM = {
    "K+": 0.36,
    "Na+": 0.32,
    "Li+": 0.28,
    "Mg2+": 0.28,
    "Ca2+": 0.34,
    "Cl-": 0.38,
}

#: Half-thickness added around the outer layer planes to define the pore slab of `plot_profiles`, nm
#: (half the graphite interlayer distance: ions in the pore mouth count as in the pore).
PORE_PAD_NM = 0.17

_DISTANCE_CHUNK = 4_000_000  # ion–oxygen distances computed at once (32 MB of float64)


def ion_species(traj: md.Trajectory) -> list[str]:
    """Porelab species (e.g. "K+", "Cl-") whose residues are in the trajectory, in ION_RESNAMES order."""
    present = {r.name for r in traj.topology.residues}
    return [sp for sp, res in ION_RESNAMES.items() if res in present]


def ion_indices(traj: md.Trajectory, species: str) -> np.ndarray:
    """Atom indices of one ion species.

    Returns: ndarray, shape=(n_ions,), int. Raises ValueError naming the species if it is unknown to
    porelab or absent from the trajectory.
    """
    if species not in ION_RESNAMES:
        raise ValueError(f"unknown ion species {species!r}; known: {', '.join(ION_RESNAMES)}")
    res = ION_RESNAMES[species]
    idx = np.array([a.index for a in traj.topology.atoms if a.residue.name == res], dtype=int)
    if idx.size == 0:
        present = ", ".join(ion_species(traj)) or "none"
        raise ValueError(f"species {species!r} (residue {res}) is not in the trajectory; present: {present}")
    return idx


def water_oxygen_indices(traj: md.Trajectory) -> np.ndarray:
    """Atom indices of water oxygens (atom "O" of residue "HOH"). Returns: ndarray, shape=(n_waters,), int."""
    return np.array([a.index for a in traj.topology.atoms
                     if a.residue.name == WATER_RESNAME and a.name == "O"], dtype=int)


def _box(traj: md.Trajectory) -> np.ndarray:
    """Box lengths per frame, shape=(n_frames, 3), nm, float64; the box must be set and rectangular."""
    if traj.unitcell_vectors is None:
        raise ValueError("the trajectory has no periodic box; structure analysis needs one")
    vec = traj.unitcell_vectors
    if np.abs(vec - vec * np.eye(3)).max() > 1e-6:
        raise ValueError("the periodic box is not rectangular; structure analysis expects a rectangular box")
    return np.diagonal(vec, axis1=1, axis2=2).astype(np.float64)


def _edges(bins, upper: float) -> np.ndarray:
    """Bin edges: `bins` equal bins over [0, upper], or the given edges."""
    if np.ndim(bins) == 0:
        if int(bins) < 1:
            raise ValueError(f"bins={bins} must be at least 1")
        return np.linspace(0.0, upper, int(bins) + 1)
    edges = np.asarray(bins, dtype=float)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("bins must be a positive number of bins or increasing bin edges")
    return edges


def _wrapped_z(traj: md.Trajectory, idx: np.ndarray, box: np.ndarray) -> np.ndarray:
    """z of the atoms wrapped into [0, Lz), shape=(n_frames, n_atoms), nm."""
    lz = box[:, 2:3]
    return np.mod(traj.xyz[:, idx, 2].astype(np.float64), lz)


def ion_density_z(traj: md.Trajectory, species: str, bins=100) -> tuple[np.ndarray, np.ndarray]:
    """Number density of one ion species along z, averaged over frames.

    Parameters:
        traj: ions (and water) with a rectangular periodic box, nm.
        species: porelab species, e.g. "K+".
        bins: number of equal bins over [0, max Lz], or bin edges (nm).

    Each frame's histogram of wrapped z is divided by that frame's bin volume (box area Lx·Ly × dz).

    Returns:
        z: ndarray, shape=(n_bins,), nm — bin centres.
        rho: ndarray, shape=(n_bins,), nm^-3.
    """
    idx = ion_indices(traj, species)
    box = _box(traj)
    edges = _edges(bins, float(box[:, 2].max()))
    z = _wrapped_z(traj, idx, box)
    weights = np.broadcast_to(1.0 / (box[:, 0:1] * box[:, 1:2]), z.shape)
    counts, _ = np.histogram(z.ravel(), edges, weights=weights.ravel())
    rho = counts / (np.diff(edges) * traj.n_frames)
    return 0.5 * (edges[1:] + edges[:-1]), rho


def ion_density_r(traj: md.Trajectory, species: str, axis_xy, z_range, bins=20
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Number density of one ion species along the radial distance r from the pore axis, within a z slab.

    Parameters:
        traj: ions (and water) with a rectangular periodic box, nm.
        species: porelab species, e.g. "K+".
        axis_xy: (x, y) of the pore axis, nm.
        z_range: (z_low, z_high) of the slab in wrapped z, nm.
        bins: number of equal bins over [0, min(Lx, Ly)/2], or bin edges (nm).

    r is the minimum-image distance in xy from the axis; ions with z_low <= z < z_high count. Each annulus
    has volume π(r_out² − r_in²)(z_high − z_low).

    Returns:
        r: ndarray, shape=(n_bins,), nm — bin centres.
        rho: ndarray, shape=(n_bins,), nm^-3.
    """
    idx = ion_indices(traj, species)
    box = _box(traj)
    z_lo, z_hi = map(float, z_range)
    if not z_hi > z_lo:
        raise ValueError(f"z_range={z_range} must be (low, high) with high > low")
    edges = _edges(bins, float(box[:, :2].min()) / 2)
    axis = np.asarray(axis_xy, dtype=float)
    if axis.shape != (2,):
        raise ValueError(f"axis_xy={axis_xy} must be the (x, y) of the pore axis in nm")
    d = traj.xyz[:, idx, :2].astype(np.float64) - axis
    lxy = box[:, None, :2]
    d -= lxy * np.round(d / lxy)
    r = np.linalg.norm(d, axis=2)
    z = _wrapped_z(traj, idx, box)
    inside = (z >= z_lo) & (z < z_hi)
    counts, _ = np.histogram(r[inside], edges)
    volume = np.pi * np.diff(edges**2) * (z_hi - z_lo)
    return 0.5 * (edges[1:] + edges[:-1]), counts / (volume * traj.n_frames)


def hydration_number_z(traj: md.Trajectory, species: str, bins=50, cutoff: float | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Mean number of water oxygens in the first shell of an ion, as a function of the ion's z.

    Parameters:
        traj: ions and water oxygens with a rectangular periodic box, nm.
        species: porelab species, e.g. "K+".
        bins: number of equal bins over [0, max Lz], or bin edges (nm).
        cutoff: first-shell radius, nm; default HYDRATION_CUTOFF_NM[species].

    Ion–oxygen distances use the periodic minimum image (`mdtraj.compute_distances`). Each (ion, frame)
    is one sample, binned by the ion's wrapped z.

    Returns:
        z: ndarray, shape=(n_bins,), nm — bin centres.
        n_hyd: ndarray, shape=(n_bins,), water molecules per ion; NaN in bins no ion visited.
    """
    ions = ion_indices(traj, species)
    box = _box(traj)
    cutoff = HYDRATION_CUTOFF_NM[species] if cutoff is None else float(cutoff)
    edges = _edges(bins, float(box[:, 2].max()))
    oxygens = water_oxygen_indices(traj)
    if oxygens.size == 0:
        raise ValueError(f"the trajectory has no water oxygens (atom O of residue {WATER_RESNAME})")
    pairs = np.stack(np.meshgrid(ions, oxygens, indexing="ij"), axis=-1).reshape(-1, 2)
    step = max(1, _DISTANCE_CHUNK // len(pairs))
    shell = np.zeros((traj.n_frames, ions.size))
    for start in range(0, traj.n_frames, step):
        dist = md.compute_distances(traj[start:start + step], pairs, periodic=True)
        shell[start:start + step] = (dist.reshape(-1, ions.size, oxygens.size) < cutoff).sum(axis=2)
    z = _wrapped_z(traj, ions, box).ravel()
    total, _ = np.histogram(z, edges, weights=shell.ravel())
    samples, _ = np.histogram(z, edges)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_hyd = np.where(samples > 0, total / samples, np.nan)
    return 0.5 * (edges[1:] + edges[:-1]), n_hyd


def plot_profiles(traj: md.Trajectory, species_list, axis_xy, layer_z, out_png, z_bins=100, r_bins=20
                  ) -> Path:
    """One PNG with, per species: density along z, density along r in the pore, hydration number along z.

    species_list: porelab species to plot; None plots every ion species present.
    The pore slab for the radial profile spans the layer planes padded by PORE_PAD_NM on each side; layer
    planes are drawn as dashed vertical lines in the z panels. Returns the path written.
    """
    species_list = ion_species(traj) if species_list is None else list(species_list)
    if not species_list:
        raise ValueError("no ion species to plot")
    layer_z = [float(z) for z in layer_z]
    if not layer_z:
        raise ValueError("layer_z is empty; give the z of each membrane layer plane (Design.layer_z_nm())")
    slab = (min(layer_z) - PORE_PAD_NM, max(layer_z) + PORE_PAD_NM)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    ax_z, ax_r, ax_h = fig.subplots(1, 3)
    for sp in species_list:
        z, rho = ion_density_z(traj, sp, z_bins)
        ax_z.plot(z, rho, label=sp)
        r, rho_r = ion_density_r(traj, sp, axis_xy, slab, r_bins)
        ax_r.plot(r, rho_r, marker="o", ms=3, label=sp)
        z, n_hyd = hydration_number_z(traj, sp, z_bins)
        ax_h.plot(z, n_hyd, label=f"{sp} (r < {HYDRATION_CUTOFF_NM[sp]:.2f} nm)")
    for ax in (ax_z, ax_h):
        for zl in layer_z:
            ax.axvline(zl, color="0.5", ls="--", lw=0.8)
        ax.set_xlabel("z (nm)")
    ax_z.set_ylabel("ion density (nm$^{-3}$)")
    ax_r.set_xlabel("r from pore axis (nm)")
    ax_r.set_ylabel("ion density in pore (nm$^{-3}$)")
    ax_r.set_title(f"{slab[0]:.2f} ≤ z < {slab[1]:.2f} nm", fontsize=9)
    ax_h.set_ylabel("hydration number")
    for ax in (ax_z, ax_r, ax_h):
        ax.legend(fontsize=8)
    out_png = Path(out_png)
    fig.savefig(out_png, dpi=120)
    return out_png
