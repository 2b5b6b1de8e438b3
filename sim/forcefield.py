"""Force-field parameters: the membrane and rim groups (a documented table) and ions/water (OpenMM's XML).

Water is TIP3P and the ions are those of OpenMM's `amber14/tip3p.xml` (Joung–Cheatham K⁺/Na⁺/Li⁺/Cl⁻,
Li–Merz Mg²⁺/Ca²⁺); their parameters are read from that file at run time, so there is one source of truth.

Membrane atoms are frozen (mass 0) and excluded from each other, so only charges and Lennard-Jones
parameters matter: no bonded terms.

| atom | role | σ (nm) | ε (kJ/mol) | charge (e) | source |
|---|---|---|---|---|---|
| C sheet | graphene carbon | 0.339967 | 0.359824 | 0 | AMBER aromatic carbon CA (parm99/ff14SB) |
| B, N sheet | h-BN | 0.3453, 0.3365 | 0.3975, 0.6067 | ±q (parameter, default 0.3) | Won & Aluru, JACS 2007 |
| COO⁻ C, O | carboxylate | 0.339967, 0.295992 | 0.359824, 0.87864 | 0.7994, −0.8014 | ff14SB Asp CG/OD1/OD2 |
| NH₃⁺ N, H | ammonium | 0.325, 0.106908 | 0.71128, 0.0656888 | −0.3854, 0.3400 | ff14SB Lys NZ/HZ |
| OH O, H | hydroxyl | 0.306647, 0 | 0.880314, 0 | −0.6546, 0.4275 | ff14SB Ser OG/HG |

Each group's charges do not sum to its formal charge; the remainder (the rest of the side chain in
the protein force field) is put on the rim atom the group is bonded to, so a COO⁻ group plus its
anchor carries exactly −1 e, NH₃⁺ +1 e, OH 0.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ET

import openmm.app

#: (sigma nm, epsilon kJ/mol) of membrane atom types.
LJ = {
    "C_sheet": (0.339967, 0.359824),
    "B_sheet": (0.3453, 0.3975),
    "N_sheet": (0.3365, 0.6067),
    "C_carboxyl": (0.339967, 0.359824),
    "O_carboxyl": (0.295992, 0.87864),
    "N_amine": (0.325, 0.71128),
    "H_amine": (0.106908, 0.0656888),
    "O_hydroxyl": (0.306647, 0.880314),
    "H_hydroxyl": (0.0, 0.0),
}

#: Rim groups: atoms as (type, element, charge e), formal charge of group + anchor.
GROUPS = {
    "COO-": {"atoms": [("C_carboxyl", "C", 0.7994), ("O_carboxyl", "O", -0.8014), ("O_carboxyl", "O", -0.8014)],
             "formal": -1.0, "resname": "COO"},
    "NH3+": {"atoms": [("N_amine", "N", -0.3854), ("H_amine", "H", 0.34), ("H_amine", "H", 0.34),
                       ("H_amine", "H", 0.34)], "formal": 1.0, "resname": "NH3"},
    "OH": {"atoms": [("O_hydroxyl", "O", -0.6546), ("H_hydroxyl", "H", 0.4275)], "formal": 0.0, "resname": "OHG"},
}

#: porelab species -> (OpenMM amber14/tip3p.xml residue/type name, PDB residue name, element symbol)
ION_NAMES = {
    "K+": ("K", "K", "K"),
    "Na+": ("NA", "NA", "Na"),
    "Li+": ("LI", "LI", "Li"),
    "Mg2+": ("MG", "MG", "Mg"),
    "Ca2+": ("CA", "CA", "Ca"),
    "Cl-": ("CL", "CL", "Cl"),
}
ION_RESNAMES = {sp: v[1] for sp, v in ION_NAMES.items()}  # PDB residue names of ions
WATER_RESNAME = "HOH"



@functools.cache
def ion_parameters() -> dict[str, dict[str, float]]:
    """Charge (e), sigma (nm), epsilon (kJ/mol) and mass (amu) of each ion, from OpenMM's amber14/tip3p.xml."""
    path = os.path.join(os.path.dirname(openmm.app.__file__), "data", "amber14", "tip3p.xml")
    root = ET.parse(path).getroot()
    types = {t.get("name"): t for t in root.iter("Type")}
    nb = {a.get("type"): a for a in root.find("NonbondedForce").iter("Atom")}
    out = {}
    for sp, (res, _, _) in ION_NAMES.items():
        residue = next(r for r in root.iter("Residue") if r.get("name") == res)
        atom = residue.find("Atom")
        atype = atom.get("type")
        a = nb[atype]
        out[sp] = {"charge": float(atom.get("charge")), "sigma": float(a.get("sigma")),
                   "epsilon": float(a.get("epsilon")), "mass": float(types[atype].get("mass"))}
    return out


@functools.cache
def water_parameters() -> dict[str, float]:
    """TIP3P charges (e), O sigma/epsilon (nm, kJ/mol) from OpenMM's amber14/tip3p.xml."""
    path = os.path.join(os.path.dirname(openmm.app.__file__), "data", "amber14", "tip3p.xml")
    root = ET.parse(path).getroot()
    nb = root.find("NonbondedForce")
    by_type = {a.get("type"): a for a in nb.iter("Atom")}
    hoh = next(r for r in root.iter("Residue") if r.get("name") == "HOH")
    atoms = {a.get("name"): a for a in hoh.iter("Atom")}
    o = by_type[atoms["O"].get("type")]
    return {"q_O": float(atoms["O"].get("charge")), "q_H": float(atoms["H1"].get("charge")),
            "sigma_O": float(o.get("sigma")),
            "epsilon_O": float(o.get("epsilon")), "r_OH": 0.09572, "r_HH": 0.15139}
