"""Solvate a membrane structure and make its OpenMM System: TIP3P water, ions, frozen membrane, field force.

Atom order: membrane atoms, then ions, then water (O, H, H per molecule). Units: nm, ps, kJ/mol, e.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as u
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from porelab.sim.builder import Structure
from porelab.sim.design import MD_SPECIES, SPECIES, Conditions, DesignError
from porelab.sim.forcefield import ION_NAMES, LJ, WATER_RESNAME, ion_parameters, water_parameters

FARADAY_KJ_PER_MOL_PER_V = 96.4853  # 1 e·V/nm = 96.4853 kJ/mol/nm
WATER_SITE_NM = 0.3107  # cubic lattice spacing giving ≈33.4 waters/nm^3 (1.0 g/cm^3)
SOLUTE_CLEARANCE_NM = 0.30  # no water or ion site closer than this to a membrane atom
WATER_MOLARITY = 55.5
EXCLUDE_MEMBRANE_PAIRS_NM = 0.5  # frozen membrane pairs closer than this are excluded (docs/physics.md §4)
FIELD_ENERGY = f"-q*Ez*z*{FARADAY_KJ_PER_MOL_PER_V}"


@dataclass
class SolvatedSystem:
    """An OpenMM System with its topology and starting positions (n_atoms, 3) nm."""

    system: openmm.System
    topology: app.Topology
    positions: np.ndarray
    box: np.ndarray  # (3,) nm
    n_membrane: int
    ion_indices: np.ndarray  # (n_ions,) atom indices
    ion_species: np.ndarray  # (n_ions,) str, porelab species names
    ion_charges: np.ndarray  # (n_ions,) e
    water_oxygens: np.ndarray  # (n_water,) atom indices
    field_force_index: int

    @property
    def counts(self) -> dict[str, int]:
        sp, n = np.unique(self.ion_species, return_counts=True)
        return {str(s): int(c) for s, c in zip(sp, n, strict=True)} | {"water": len(self.water_oxygens)}

    def trajectory_atoms(self) -> np.ndarray:
        """Atoms written to the ion trajectory: ions then water oxygens."""
        return np.concatenate([self.ion_indices, self.water_oxygens])


def _ion_counts(conditions: Conditions, n_sites: int, membrane_charge: float) -> dict[str, int]:
    """Ion numbers for the electrolyte in n_sites solvent sites, plus counter-ions making the total neutral."""
    total = sum(conditions.electrolyte.values())
    n_water = n_sites / (1 + total / WATER_MOLARITY)
    counts = {s: int(round(c / WATER_MOLARITY * n_water)) for s, c in conditions.electrolyte.items()}
    net = round(membrane_charge) + sum(SPECIES[s]["valence"] * n for s, n in counts.items())
    by_conc = sorted(conditions.electrolyte, key=lambda s: -conditions.electrolyte[s])
    while net != 0:
        sign = -1 if net > 0 else 1  # need an ion of this sign
        fit = [s for s in by_conc if np.sign(SPECIES[s]["valence"]) == sign and abs(SPECIES[s]["valence"]) <= abs(net)]
        if not fit:
            raise DesignError(f"cannot neutralise a net charge of {net:+d} e with the electrolyte's ions "
                              f"{list(conditions.electrolyte)}")
        counts[fit[0]] += 1
        net += SPECIES[fit[0]]["valence"]
    return counts


def solvate(structure: Structure, conditions: Conditions, seed: int = 0):
    """Place ions and water on a lattice around the membrane.

    Returns (ion_species list, ion positions (n_ions, 3) nm, water oxygen sites (n_water, 3) nm, rotations).
    """
    bad = [s for s in conditions.electrolyte if s not in MD_SPECIES]
    if bad:
        raise DesignError(f"species {bad} have no sound MD parameters here; MD supports {', '.join(MD_SPECIES)} "
                          "(use --fidelity continuum)")
    if abs(structure.net_charge() - round(structure.net_charge())) > 1e-6:
        raise DesignError(f"membrane net charge {structure.net_charge():.4f} e is not an integer")
    box = structure.box
    n = np.maximum(1, np.round(box / WATER_SITE_NM).astype(int))
    grid = np.stack(np.meshgrid(*[(np.arange(k) + 0.5) * L / k for k, L in zip(n, box, strict=True)],
                                indexing="ij"), -1).reshape(-1, 3)
    tree = cKDTree(structure.positions % box, boxsize=box)
    free = np.array([len(x) == 0 for x in tree.query_ball_point(grid, SOLUTE_CLEARANCE_NM)])
    sites = grid[free]
    rng = np.random.default_rng(seed)
    counts = _ion_counts(conditions, len(sites), structure.net_charge())
    n_ions = sum(counts.values())
    if n_ions >= len(sites) // 2:
        raise DesignError(f"{n_ions} ions leave too little room for water in {len(sites)} solvent sites")
    # ions start in the bulk, away from the stack
    zc = box[2] / 2
    half = structure.design.stack_thickness_nm() / 2 + 0.5
    bulk = np.flatnonzero(np.abs(sites[:, 2] - zc) > half)
    if len(bulk) < n_ions:
        raise DesignError(f"box_z_nm={box[2]} leaves too little bulk for {n_ions} ions")
    ion_sites = rng.choice(bulk, size=n_ions, replace=False)
    species = [s for s, k in counts.items() for _ in range(k)]
    water_sites = np.delete(sites, ion_sites, axis=0)
    rotations = Rotation.random(len(water_sites), random_state=seed)
    return species, sites[ion_sites], water_sites, rotations


def build_system(structure: Structure, conditions: Conditions, seed: int = 0,
                 cutoff_nm: float = 1.0) -> SolvatedSystem:
    """Solvated, neutral OpenMM System with a frozen membrane, PME and a field force (global `Ez`, V/nm).

    The only mobile hydrogens are those of rigid (SETTLE) water, so hydrogen mass repartitioning has
    nothing to repartition: a 4 fs step is stable because water is rigid and the membrane frozen (docs/physics.md §4).
    """
    if cutoff_nm > min(structure.box) / 2:
        raise DesignError(f"cutoff {cutoff_nm} nm exceeds half the smallest box side {min(structure.box) / 2:.2f} nm")
    species, ion_pos, water_O, rot = solvate(structure, conditions, seed)
    ions, water = ion_parameters(), water_parameters()
    # water geometry: O at origin, H in the xy plane, rotated at random
    half = np.radians(104.52 / 2)
    r = water["r_OH"]
    h_local = np.array([[r * np.sin(half), r * np.cos(half), 0.0], [-r * np.sin(half), r * np.cos(half), 0.0]])
    h1 = water_O + rot.apply(h_local[0])
    h2 = water_O + rot.apply(h_local[1])
    n_mem, n_ion, n_w = structure.n_atoms, len(species), len(water_O)
    positions = np.concatenate([structure.positions, ion_pos,
                                np.stack([water_O, h1, h2], axis=1).reshape(-1, 3)])

    system = openmm.System()
    box = structure.box
    system.setDefaultPeriodicBoxVectors(openmm.Vec3(box[0], 0, 0), openmm.Vec3(0, box[1], 0),
                                        openmm.Vec3(0, 0, box[2]))
    nb = openmm.NonbondedForce()
    nb.setNonbondedMethod(openmm.NonbondedForce.PME)
    nb.setCutoffDistance(cutoff_nm)
    nb.setEwaldErrorTolerance(5e-4)
    nb.setUseDispersionCorrection(True)
    for i in range(n_mem):
        sig, eps = LJ[str(structure.atom_types[i])]
        system.addParticle(0.0)  # frozen
        nb.addParticle(float(structure.charges[i]), sig, eps)
    for s in species:
        p = ions[s]
        system.addParticle(p["mass"])
        nb.addParticle(p["charge"], p["sigma"], p["epsilon"])
    h_mass = 1.008
    for _ in range(n_w):
        o = system.addParticle(15.9994)
        system.addParticle(h_mass)
        system.addParticle(h_mass)
        nb.addParticle(water["q_O"], water["sigma_O"], water["epsilon_O"])
        nb.addParticle(water["q_H"], 1.0, 0.0)
        nb.addParticle(water["q_H"], 1.0, 0.0)
        system.addConstraint(o, o + 1, water["r_OH"])
        system.addConstraint(o, o + 2, water["r_OH"])
        system.addConstraint(o + 1, o + 2, water["r_HH"])
        nb.addException(o, o + 1, 0.0, 1.0, 0.0)
        nb.addException(o, o + 2, 0.0, 1.0, 0.0)
        nb.addException(o + 1, o + 2, 0.0, 1.0, 0.0)
    mem = structure.positions % box
    pairs = cKDTree(mem, boxsize=box).query_pairs(EXCLUDE_MEMBRANE_PAIRS_NM, output_type="ndarray")
    for i, j in pairs:
        nb.addException(int(i), int(j), 0.0, 1.0, 0.0)
    system.addForce(nb)

    field = openmm.CustomExternalForce(FIELD_ENERGY)
    field.addGlobalParameter("Ez", 0.0)
    field.addPerParticleParameter("q")
    for i in range(n_mem, system.getNumParticles()):
        q = nb.getParticleParameters(i)[0].value_in_unit(u.elementary_charge)
        if q != 0.0:
            field.addParticle(i, [q])
    field_index = system.addForce(field)

    topology = _topology(structure, species, n_w)
    water_oxygens = n_mem + n_ion + 3 * np.arange(n_w)
    return SolvatedSystem(
        system=system, topology=topology, positions=positions, box=box.copy(), n_membrane=n_mem,
        ion_indices=np.arange(n_mem, n_mem + n_ion), ion_species=np.array(species),
        ion_charges=np.array([ions[s]["charge"] for s in species]), water_oxygens=water_oxygens,
        field_force_index=field_index,
    )


def _topology(structure: Structure, species: list[str], n_water: int) -> app.Topology:
    top = structure.to_topology()
    chain = top.addChain("I")
    for s in species:
        name = ION_NAMES[s]
        atom_name = name[1]
        res = top.addResidue(name[1], chain)
        top.addAtom(atom_name, app.Element.getBySymbol(name[2]), res)
    wchain = top.addChain("W")
    oxygen, hydrogen = app.Element.getBySymbol("O"), app.Element.getBySymbol("H")
    for _ in range(n_water):
        res = top.addResidue(WATER_RESNAME, wchain)
        o = top.addAtom("O", oxygen, res)
        h1 = top.addAtom("H1", hydrogen, res)
        h2 = top.addAtom("H2", hydrogen, res)
        top.addBond(o, h1)
        top.addBond(o, h2)
    return top


def write_pdb(ss: SolvatedSystem, path, positions: np.ndarray | None = None) -> None:
    """Write the solvated system (Å, CRYST1) for VMD/PyMOL."""
    pos = ss.positions if positions is None else positions
    with open(path, "w") as fh:
        app.PDBFile.writeFile(ss.topology, pos * u.nanometer, fh, keepIds=False)
