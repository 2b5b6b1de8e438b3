"""Build a membrane design atom by atom: hexagonal sheets, a pore cut by shape, rim groups, stacked layers.

Returns a `Structure` of the membrane alone (no solvent); `sim.system` solvates it. Building takes
milliseconds at first and ~0.1 ms for layers seen before (the lattice, its neighbour list, every cut layer and
every decorated layer are cached), because the surrogate builds every candidate.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np
import openmm.app as app
from openmm import Vec3, unit
from scipy.spatial import cKDTree

from porelab.sim.design import Design, DesignError, Pore
from porelab.sim.forcefield import GROUPS

BOND_NM = {"graphene_oxide": 0.142, "hbn": 0.145}
#: group geometry: anchor->first atom bond (nm)
ANCHOR_BOND_NM = {"COO-": 0.152, "NH3+": 0.147, "OH": 0.143}


@dataclass
class Structure:
    """Atoms of a membrane. Arrays have length n_atoms; positions in nm, charges in e."""

    design: Design
    box: np.ndarray  # (3,) nm, orthorhombic periodic cell
    positions: np.ndarray  # (n, 3) nm
    elements: np.ndarray  # (n,) str
    atom_types: np.ndarray  # (n,) str, keys of sim.forcefield.LJ
    charges: np.ndarray  # (n,) e
    roles: np.ndarray  # (n,) str: "sheet" | "rim" | "group"
    layer: np.ndarray  # (n,) int, 0 = bottom
    residue: np.ndarray  # (n,) int, residue index (one per layer sheet, one per rim group)
    resnames: list[str] = field(default_factory=list)  # per residue
    pore_center: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (n_layers, 2) nm

    @property
    def n_atoms(self) -> int:
        return len(self.positions)

    def net_charge(self) -> float:
        return float(self.charges.sum())

    def layer_charge(self) -> np.ndarray:
        """Net charge of each layer, e. Shape (n_layers,)."""
        return np.bincount(self.layer, weights=self.charges, minlength=len(self.design.layers))

    def to_topology(self):
        """An OpenMM Topology with one chain per layer, residues GRA/HBN (sheet) and COO/NH3/OHG (groups)."""
        top = app.Topology()
        chains = [top.addChain(chr(ord("A") + k)) for k in range(len(self.design.layers))]
        residues = {}
        for i in range(self.n_atoms):
            r = int(self.residue[i])
            if r not in residues:
                residues[r] = top.addResidue(self.resnames[r], chains[int(self.layer[i])])
            el = app.Element.getBySymbol(str(self.elements[i]))
            top.addAtom(str(self.elements[i]), el, residues[r])
        top.setPeriodicBoxVectors((Vec3(self.box[0], 0, 0), Vec3(0, self.box[1], 0), Vec3(0, 0, self.box[2])))
        return top

    def write_pdb(self, path) -> None:
        """Write the membrane as a PDB (Å, CRYST1 box) that VMD/PyMOL read."""
        with open(path, "w") as fh:
            app.PDBFile.writeFile(self.to_topology(), self.positions * unit.nanometer, fh)


@functools.cache
def _lattice(material: str, sheet_nm: float):
    """Periodic rectangular patch of a honeycomb lattice.

    Returns (xy (n,2) nm, sublattice (n,) int, neighbours (n,3) int, box (2,) nm).
    """
    d = BOND_NM[material]
    a = math.sqrt(3) * d
    nx, ny = max(2, round(sheet_nm / a)), max(2, round(sheet_nm / (3 * d)))
    cell = np.array([[0, 0], [a / 2, d / 2], [a / 2, 1.5 * d], [0, 2 * d]])
    sub = np.array([0, 1, 0, 1])
    ix, iy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    origin = np.stack([ix.ravel() * a, iy.ravel() * 3 * d], axis=1)
    xy = (origin[:, None, :] + cell[None, :, :]).reshape(-1, 2) + np.array([a / 4, d / 4])
    sublattice = np.tile(sub, len(origin))
    box = np.array([nx * a, ny * 3 * d])
    pairs = cKDTree(xy, boxsize=box).query_pairs(1.1 * d, output_type="ndarray")
    nbr = np.full((len(xy), 3), -1)
    fill = np.zeros(len(xy), int)
    for i, j in pairs:
        nbr[i, fill[i]] = j
        fill[i] += 1
        nbr[j, fill[j]] = i
        fill[j] += 1
    assert (fill == 3).all(), "honeycomb lattice must be 3-connected"
    return xy, sublattice, nbr, box


def _inside(rel: np.ndarray, shape: str, w: float, h: float) -> np.ndarray:
    """Mask of points rel (n,2) nm, relative to the pore centre, inside the pore shape."""
    a, b = w / 2, h / 2
    x, y = np.abs(rel[:, 0]), np.abs(rel[:, 1])
    if shape in ("circle", "ellipse"):
        return (x / a) ** 2 + (y / b) ** 2 < 1.0
    if shape == "rectangle":
        return (x < a) & (y < b)
    # regular hexagon with vertices on the x axis at distance a
    return (y < math.sqrt(3) / 2 * a) & (math.sqrt(3) * x + y < math.sqrt(3) * a)


def _cut_layer(design: Design, k: int):
    """Sheet atoms of layer k after cutting the pore. Returns (xy, sublattice, n_neighbours, centre, rel)."""
    dx, dy = design.layer_offsets_nm()[k]
    return _cut(design.material, design.sheet_nm, design.pore, dx, dy)


@functools.lru_cache(maxsize=1024)
def _cut(material: str, sheet_nm: float, pore: Pore, dx: float, dy: float):
    """Cached body of _cut_layer (arrays are read-only: they are shared between calls)."""
    xy, sub, nbr, box = _lattice(material, sheet_nm)
    centre = box / 2 + np.array([dx, dy])
    rel = xy - centre
    rel -= box * np.round(rel / box)
    # atoms whose centres lie inside the shape shrunk by half a bond are removed, so that the rim's
    # centre-to-centre opening matches the requested size on average (lattice granularity ~0.2 nm)
    d = BOND_NM[material]
    keep = ~_inside(rel, pore.shape, pore.width_nm - d, pore.height_nm - d)
    # strip dangling atoms (fewer than 2 sheet neighbours) until none is left
    while True:
        kept_nbrs = keep[nbr].sum(axis=1)
        dangling = keep & (kept_nbrs < 2)
        if not dangling.any():
            break
        keep &= ~dangling
    idx = np.flatnonzero(keep)
    out = xy[idx], sub[idx], keep[nbr[idx]].sum(axis=1), centre, rel[idx]
    for a in out:
        a.flags.writeable = False
    return out


def _pick_anchors(rel_rim: np.ndarray, n: int, layer: int) -> np.ndarray:
    """Indices into rel_rim of n rim atoms evenly spread in angle around the pore centre."""
    if n > len(rel_rim):
        raise DesignError(
            f"groups_per_rim={n} exceeds the {len(rel_rim)} rim atoms of layer {layer}'s pore; "
            f"use at most {len(rel_rim)} groups or a larger pore"
        )
    ang = np.arctan2(rel_rim[:, 1], rel_rim[:, 0])
    chosen: list[int] = []
    for t in 2 * np.pi * np.arange(n) / n:
        diff = np.abs(np.angle(np.exp(1j * (ang - t))))
        diff[chosen] = np.inf
        chosen.append(int(np.argmin(diff)))
    return np.array(chosen, int)


def _group_atoms(group: str, anchor: np.ndarray, inward: np.ndarray) -> np.ndarray:
    """Positions (m, 3) nm of a rim group bonded to `anchor`, pointing along the in-plane unit vector `inward`."""
    u = np.array([inward[0], inward[1], 0.0])
    v = np.array([-inward[1], inward[0], 0.0])
    z = np.array([0.0, 0.0, 1.0])
    first = anchor + ANCHOR_BOND_NM[group] * u
    if group == "COO-":  # planar carboxylate in the sheet plane, O-C-O 126 deg, C-O 0.125 nm
        c, s = math.cos(math.radians(63)), math.sin(math.radians(63))
        return np.stack([first, first + 0.125 * (c * u + s * v), first + 0.125 * (c * u - s * v)])
    if group == "NH3+":  # tetrahedral N, N-H 0.101 nm
        th = math.radians(180 - 109.47)
        hs = [first + 0.101 * (math.cos(th) * u + math.sin(th) * (math.cos(p) * v + math.sin(p) * z))
              for p in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)]
        return np.stack([first, *hs])
    # OH: C-O-H 108.5 deg, O-H 0.096 nm, H in the sheet plane
    th = math.radians(180 - 108.5)
    return np.stack([first, first + 0.096 * (math.cos(th) * u + math.sin(th) * v)])


@dataclass(frozen=True)
class _Block:
    """One layer's atoms with its plane at z = 0 (read-only arrays shared between builds); residues local."""

    positions: np.ndarray
    elements: np.ndarray
    atom_types: np.ndarray
    charges: np.ndarray
    roles: np.ndarray
    residue: np.ndarray  # 0 = the sheet, 1.. = rim groups
    resnames: tuple[str, ...]
    centre: np.ndarray


class _SameCut:
    """A cut sheet as a cache key: equal when the same lattice atoms remain, whatever pore size left them (pore
    sizes on a continuous scale leave one of few atom sets)."""

    def __init__(self, material: str, sheet_nm: float, cut: tuple):
        self.material, self.sheet_nm, self.cut = material, sheet_nm, cut
        self.key = (material, sheet_nm, cut[3].tobytes(), cut[0].tobytes())  # centre and kept atoms

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _SameCut) and self.key == other.key


def _layer_block(material: str, sheet_nm: float, pore: Pore, dx: float, dy: float, group: str,
                 groups_per_rim: int, bn_charge_e: float, pore_region_nm: float | None = None) -> _Block:
    """The atoms of one layer in its own plane (z = 0); the caller checked that the rim has room for the groups.
    Cached by the atoms the cut leaves (`_block`); pore_region_nm: only its pore region (`_pore_region`)."""
    cut = _SameCut(material, sheet_nm, _cut(material, sheet_nm, pore, dx, dy))
    if pore_region_nm is None:
        return _block(cut, group, groups_per_rim, bn_charge_e)
    return _pore_region(cut, group, groups_per_rim, bn_charge_e, pore_region_nm)


@functools.lru_cache(maxsize=4096)
def _pore_region(cut: _SameCut, group: str, groups_per_rim: int, bn_charge_e: float, shell_nm: float) -> _Block:
    """_block's rim atoms, rim groups and the sheet atoms closer (radially, minimum image) to the pore centre than
    its outermost rim atom plus shell_nm; atoms keep their order."""
    b = _block(cut, group, groups_per_rim, bn_charge_e)
    box = _lattice(cut.material, cut.sheet_nm)[3]
    rel = b.positions[:, :2] - b.centre
    rel -= box * np.round(rel / box)
    r = np.hypot(rel[:, 0], rel[:, 1])
    rim = b.roles == "rim"
    keep = (b.roles != "sheet") | (r < (r[rim].max() if rim.any() else 0.0) + shell_nm)
    arrays = [a[keep] for a in (b.positions, b.elements, b.atom_types, b.charges, b.roles, b.residue)]
    for a in arrays:
        a.flags.writeable = False
    return _Block(*arrays, b.resnames, b.centre)


@functools.lru_cache(maxsize=4096)
def _block(cut: _SameCut, group: str, groups_per_rim: int, bn_charge_e: float) -> _Block:
    """Body of _layer_block."""
    material = cut.material
    xy, sub, n_nbrs, centre, rel = cut.cut
    n = len(xy)
    rim = n_nbrs < 3
    if material == "hbn":
        e = np.where(sub == 0, "B", "N")
        t = np.where(sub == 0, "B_sheet", "N_sheet")
        qq = np.where(sub == 0, bn_charge_e, -bn_charge_e).astype(float)
        qq[rim] -= qq.sum() / rim.sum()  # the cut leaves unequal B and N: spread the excess over the rim
    else:
        e, t, qq = np.full(n, "C"), np.full(n, "C_sheet"), np.zeros(n)
    sheet_pos = np.column_stack([xy, np.zeros(n)])
    pos, el, types, q, roles, res = [sheet_pos], [e], [t], [qq], [np.where(rim, "rim", "sheet")], [np.zeros(n, int)]
    resnames = ["HBN" if material == "hbn" else "GRA"]
    if group != "none":
        rim_idx = np.flatnonzero(rim)
        anchors = rim_idx[_pick_anchors(rel[rim_idx], groups_per_rim, -1)]
        spec = GROUPS[group]
        gq = np.array([c for _, _, c in spec["atoms"]])
        gel = np.array([s for _, s, _ in spec["atoms"]])
        gtypes = np.array([t for t, _, _ in spec["atoms"]])
        for a in anchors:
            inward = -rel[a] / np.linalg.norm(rel[a])
            gpos = _group_atoms(group, sheet_pos[a], inward)
            qq[a] += spec["formal"] - gq.sum()  # rest of the side chain's charge sits on the anchor
            m = len(gpos)
            pos.append(gpos)
            el.append(gel)
            types.append(gtypes)
            q.append(gq)
            roles.append(np.full(m, "group"))
            res.append(np.full(m, len(resnames)))
            resnames.append(spec["resname"])
    arrays = [np.concatenate(a) for a in (pos, el, types, q, roles, res)]
    for a in arrays:
        a.flags.writeable = False
    return _Block(*arrays, tuple(resnames), centre)


def build(design: Design, pore_region_nm: float | None = None) -> Structure:
    """Atomistic membrane of `design` (no solvent). Raises DesignError if the design cannot be built.

    Layers are cached by their geometry and group (`_layer_block`), so stacks of known layers build in ~0.1 ms.
    pore_region_nm: keep only each layer's rim, rim groups and the sheet atoms within this distance (radially)
    beyond its outermost rim atom — the pore region the surrogate's graph is made of, not a membrane to simulate.
    """
    _, _, _, box_xy = _lattice(design.material, design.sheet_nm)
    zs = design.layer_z_nm()
    blocks = []
    for k, ((dx, dy), group) in enumerate(zip(design.layer_offsets_nm(), design.layers, strict=True)):
        if group != "none":
            n_rim = int((_cut(design.material, design.sheet_nm, design.pore, dx, dy)[2] < 3).sum())
            if design.groups_per_rim > n_rim:
                raise DesignError(
                    f"groups_per_rim={design.groups_per_rim} exceeds the {n_rim} rim atoms of layer {k}'s pore; "
                    f"use at most {n_rim} groups or a larger pore"
                )
        blocks.append(_layer_block(design.material, design.sheet_nm, design.pore, dx, dy, group,
                                   design.groups_per_rim, design.bn_charge_e, pore_region_nm))
    positions = np.concatenate([b.positions for b in blocks])
    positions[:, 2] += np.repeat(zs, [len(b.positions) for b in blocks])
    positions[:, :2] %= box_xy
    n_res = np.cumsum([0] + [len(b.resnames) for b in blocks])
    return Structure(
        design=design,
        box=np.array([box_xy[0], box_xy[1], design.box_z_nm]),
        positions=positions,
        elements=np.concatenate([b.elements for b in blocks]),
        atom_types=np.concatenate([b.atom_types for b in blocks]),
        charges=np.concatenate([b.charges for b in blocks]),
        roles=np.concatenate([b.roles for b in blocks]),
        layer=np.repeat(np.arange(len(blocks)), [len(b.positions) for b in blocks]),
        residue=np.concatenate([b.residue + n for b, n in zip(blocks, n_res, strict=False)]),
        resnames=[r for b in blocks for r in b.resnames],
        pore_center=np.array([b.centre for b in blocks]) % box_xy,
    )


def built_pore_size(structure: Structure, k: int) -> tuple[float, float]:
    """Open extent of layer k's pore along x and y through its centre, nm (sheet atom centre to centre)."""
    sel = (structure.layer == k) & (structure.roles != "group")
    rel = structure.positions[sel, :2] - structure.pore_center[k]
    box = structure.box[:2]
    rel -= box * np.round(rel / box)
    d = BOND_NM[structure.design.material]
    out = []
    for ax in (0, 1):
        near = np.abs(rel[:, 1 - ax]) < d  # atoms on the line through the centre
        line = rel[near, ax]
        out.append(float(line[line > 0].min() - line[line < 0].max()))
    return out[0], out[1]
