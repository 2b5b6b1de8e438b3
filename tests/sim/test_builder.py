import numpy as np
import pytest

from porelab.sim.builder import build, built_pore_size
from porelab.sim.design import DesignError, make_design


@pytest.mark.parametrize("material", ["graphene_oxide", "hbn"])
@pytest.mark.parametrize("layers", [["COO-"], ["COO-", "NH3+"], ["NH3+", "OH", "COO-", "none"]])
def test_layer_charges_and_group_counts(material, layers):
    d = make_design({"layers": layers, "material": material, "groups_per_rim": 3}, "seed")
    s = build(d)
    expected = {"COO-": -3.0, "NH3+": 3.0, "OH": 0.0, "none": 0.0}
    np.testing.assert_allclose(s.layer_charge(), [expected[g] for g in layers], atol=1e-9)
    sizes = {"COO-": 3, "NH3+": 4, "OH": 2, "none": 0}
    for k, g in enumerate(layers):
        n_group_atoms = int(((s.layer == k) & (s.roles == "group")).sum())
        assert n_group_atoms == 3 * sizes[g]


def test_graphene_lattice_geometry():
    s = build(make_design({"layers": ["none"]}, "seed"))
    from scipy.spatial import cKDTree

    xy = s.positions[:, :2]
    d, _ = cKDTree(xy, boxsize=s.box[:2]).query(xy, k=2)
    np.testing.assert_allclose(d[:, 1], 0.142, atol=1e-9)  # every atom's nearest neighbour is one C-C bond away
    assert np.all(s.positions[:, 2] == 5.0)


@pytest.mark.parametrize("shape", ["circle", "ellipse", "hexagon", "rectangle"])
@pytest.mark.parametrize("w", [0.9, 1.42, 2.27])
def test_pore_size_as_built(shape, w):
    h = w if shape in ("circle", "hexagon") else round(w * 0.88, 3)
    d = make_design({"layers": ["none"], "pore": {"shape": shape, "width_nm": w, "height_nm": h}}, "seed")
    bw, bh = built_pore_size(build(d), 0)
    # centre-to-centre opening matches the request within the lattice granularity (< 2 bonds)
    assert abs(bw - w) < 0.25 and abs(bh - h) < 0.25


def test_layers_are_stacked_and_offset():
    d = make_design({"layers": ["COO-", "NH3+", "COO-"], "spacing_nm": 0.5,
                     "offsets_nm": [[0, 0], [0.3, 0], [0, -0.2]]}, "seed")
    s = build(d)
    for k, z in enumerate(d.layer_z_nm()):
        sheet = (s.layer == k) & (s.roles != "group")
        np.testing.assert_allclose(s.positions[sheet, 2], z)
    np.testing.assert_allclose(s.pore_center[1] - s.pore_center[0], [0.3, 0], atol=1e-9)
    assert d.layer_z_nm()[1] - d.layer_z_nm()[0] == pytest.approx(0.5)


def test_groups_sit_on_the_rim_with_sane_bonds():
    s = build(make_design({"layers": ["COO-", "NH3+"]}, "seed"))
    from scipy.spatial import cKDTree

    groups = np.flatnonzero(s.roles == "group")
    sheet = np.flatnonzero(s.roles != "group")
    tree = cKDTree(s.positions[sheet])
    dist, _ = tree.query(s.positions[groups])
    assert dist.min() > 0.13  # no group atom overlaps a sheet atom
    first = groups[np.isin(s.elements[groups], ["C", "N"])]
    d1, idx = tree.query(s.positions[first])
    assert np.all((d1 > 0.14) & (d1 < 0.16))  # C-C / C-N bond to the anchor
    assert np.all(s.roles[sheet[idx]] == "rim")


def test_more_groups_than_rim_atoms_is_rejected():
    with pytest.raises(DesignError, match=r"groups_per_rim=40 exceeds the \d+ rim atoms"):
        build(make_design({"groups_per_rim": 40, "pore": {"width_nm": 0.6, "height_nm": 0.6}}, "seed"))


def test_hbn_sheets_are_neutral_with_charge_parameter():
    s = build(make_design({"layers": ["none"], "material": "hbn", "bn_charge_e": 0.9}, "seed"))
    assert abs(s.net_charge()) < 1e-9
    assert set(np.unique(s.elements)) == {"B", "N"}
    assert np.median(s.charges[s.elements == "B"]) == pytest.approx(0.9)


def test_pdb_is_readable(tmp_path):
    import mdtraj as md

    s = build(make_design({"layers": ["COO-", "NH3+"]}, "tiny"))
    s.write_pdb(tmp_path / "m.pdb")
    t = md.load(str(tmp_path / "m.pdb"))
    assert t.n_atoms == s.n_atoms
    np.testing.assert_allclose(t.unitcell_lengths[0], s.box, atol=1e-3)
    assert {r.name for r in t.topology.residues} == {"GRA", "COO", "NH3"}
