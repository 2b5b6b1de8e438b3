import numpy as np
import pytest
import torch

from porelab.sim.builder import build
from porelab.sim.design import make_conditions, make_design
from porelab.surrogate.graph import (
    ELEMENTS,
    GLOBAL_FEATURES,
    NODE_FEATURES,
    ODD_GLOBAL,
    GraphSettings,
    featurise_design,
    global_features,
    mirror_globals,
    mirror_graph,
    to_data,
)

Z, R, LAYER, Q = (NODE_FEATURES.index(k) for k in ("z_nm", "r_nm", "layer_centred", "charge_e"))


def _pore_atoms(design, shell=0.0):
    """Indices of the structure's atoms the featuriser should keep, computed independently."""
    s = build(design)
    keep = []
    for k in range(len(design.layers)):
        rel = s.positions[:, :2] - s.pore_center[k]
        rel -= s.box[:2] * np.round(rel / s.box[:2])
        r = np.hypot(rel[:, 0], rel[:, 1])
        in_layer = s.layer == k
        r_rim = r[in_layer & (s.roles == "rim")].max()
        keep += list(np.flatnonzero(in_layer & ((s.roles != "sheet") | (r < r_rim + shell))))
    return s, np.array(sorted(keep))


def test_nodes_of_a_single_uncharged_layer():
    d = make_design({"layers": ["none"]}, "tiny")
    s, idx = _pore_atoms(d)
    g = featurise_design(d)
    assert g.x.shape == (len(idx), len(NODE_FEATURES))
    x = g.x.numpy()
    assert np.all(x[:, : len(ELEMENTS)].sum(axis=1) == 1) and np.all(x[:, 0] == 1)  # all carbon, one-hot
    assert (s.roles[idx] == "rim").sum() == x[:, NODE_FEATURES.index("role_rim")].sum()
    np.testing.assert_allclose(x[:, Z], 0.0, atol=1e-6)  # one layer sits on the stack centre
    np.testing.assert_allclose(x[:, LAYER], 0.0)
    rel = s.positions[idx, :2] - s.pore_center[0]
    np.testing.assert_allclose(np.sort(x[:, R]), np.sort(np.hypot(rel[:, 0], rel[:, 1])), atol=1e-5)
    assert g.n_layers == 1 and g.layer.unique().tolist() == [0]


def test_group_atoms_carry_the_structure_charges():
    d = make_design({"layers": ["COO-", "NH3+"]}, "seed")
    s, idx = _pore_atoms(d)
    x = featurise_design(d).x.numpy()
    np.testing.assert_allclose(np.sort(x[:, Q]), np.sort(s.charges[idx]), atol=1e-6)
    assert x[:, Q].sum() == pytest.approx(s.charges.sum(), abs=1e-4)  # sheet beyond the pore is neutral
    n_group = int((s.roles == "group").sum())
    assert x[:, NODE_FEATURES.index("role_group")].sum() == n_group == 4 * 3 + 4 * 4


def test_shell_adds_sheet_atoms():
    d = make_design({"layers": ["none"]}, "seed")
    assert featurise_design(d, GraphSettings(shell_nm=0.3)).x.shape[0] == len(_pore_atoms(d, 0.3)[1])
    assert featurise_design(d, GraphSettings(shell_nm=0.3)).x.shape[0] > featurise_design(d).x.shape[0]


@pytest.mark.parametrize("spacing", [0.3, 0.5])
def test_edges_are_all_pairs_within_the_cutoff(spacing):
    st = GraphSettings()
    d = make_design({"layers": ["COO-", "none"], "spacing_nm": spacing}, "tiny")
    s, idx = _pore_atoms(d)
    g = featurise_design(d, st)
    pos = s.positions[idx]
    delta = pos[None] - pos[:, None]
    delta[..., :2] -= s.box[:2] * np.round(delta[..., :2] / s.box[:2])
    dist = np.linalg.norm(delta, axis=-1)
    expected = int(((dist < st.edge_cutoff_nm) & (dist > 0)).sum())
    ei, ea = g.edge_index.numpy(), g.edge_attr.numpy()
    assert ei.shape[1] == expected
    pairs = set(map(tuple, ei.T))
    assert all((j, i) in pairs for i, j in pairs)  # both directions
    dz = ea[:, st.n_rbf] * st.edge_cutoff_nm
    zz = g.x.numpy()[:, Z]
    np.testing.assert_allclose(dz, zz[ei[1]] - zz[ei[0]], atol=1e-5)  # target minus source
    np.testing.assert_allclose(ea[:, st.n_rbf + 1], np.abs(ea[:, st.n_rbf]), atol=1e-6)
    cross = np.abs(dz) > 0.01
    if spacing < st.edge_cutoff_nm:
        assert cross.any() and np.allclose(np.abs(dz[cross]), spacing, atol=1e-5)
    else:
        assert not cross.any()


def _canonical(g):
    x = g.x.numpy().round(5)
    order = np.lexsort(x.T[::-1])
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    e = np.column_stack([inv[g.edge_index[0].numpy()], inv[g.edge_index[1].numpy()], g.edge_attr.numpy().round(5)])
    return x[order], e[np.lexsort(e.T[::-1])], g.layer.numpy()[order], g.layer_z.numpy()


def test_mirrored_design_flips_z_features():
    d = make_design({"layers": ["COO-", "NH3+", "OH"], "spacing_nm": 0.3,
                     "offsets_nm": [[0.1, 0.0], [0.0, 0.0], [-0.05, 0.1]]}, "seed")
    g, gm = featurise_design(d), featurise_design(d.mirrored())
    for a, b in zip(_canonical(gm), _canonical(mirror_graph(g)), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.sort(gm.x[:, Z].numpy()), np.sort(-g.x[:, Z].numpy()), atol=1e-6)
    assert not np.allclose(np.sort(gm.x[:, Z].numpy()), np.sort(g.x[:, Z].numpy()))  # the stack is not symmetric


def test_global_features_and_their_mirror():
    d = make_design({"layers": ["COO-", "NH3+"]}, "seed")
    u = global_features(d, {"K+": 1.0, "Cl-": 1.0}, 300.0, 2.0, "continuum")
    assert u.shape == (len(GLOBAL_FEATURES),)
    assert u[0] == pytest.approx(0.5) and u[1] == pytest.approx(1.0) and u[2] == 1.0  # E/4, E*Lz/20, sign
    assert u[GLOBAL_FEATURES.index("c[K+]_M")] == 1.0 and u[GLOBAL_FEATURES.index("c[Mg2+]_M")] == 0.0
    assert u[GLOBAL_FEATURES.index("fid_continuum")] == 1.0
    um = global_features(d, {"K+": 1.0, "Cl-": 1.0}, 300.0, -2.0, "continuum")
    np.testing.assert_allclose(mirror_globals(torch.from_numpy(u)).numpy(), um)
    odd = np.zeros(len(u), bool)
    odd[list(ODD_GLOBAL)] = True
    np.testing.assert_array_equal(u[~odd], um[~odd])


def test_to_data_is_a_pyg_graph():
    d = make_design({"layers": ["COO-", "NH3+"]}, "seed")
    data = to_data(d, make_conditions({}), -1.0)
    assert data.num_nodes == data.x.shape[0] and data.edge_index.max() < data.num_nodes
    assert data.u.shape == (1, len(GLOBAL_FEATURES)) and data.u[0, 2] == -1.0
    data.validate(raise_on_error=True)


def test_settings_hash_tracks_every_setting():
    base = GraphSettings().hash()
    assert GraphSettings().hash() == base
    assert len({base, GraphSettings(shell_nm=0.1).hash(), GraphSettings(edge_cutoff_nm=0.4).hash(),
                GraphSettings(n_rbf=4).hash()}) == 4


@pytest.mark.parametrize("shell", [0.0, 0.3])
def test_pore_region_build_gives_the_graphs_of_the_full_build(monkeypatch, shell):
    """The featuriser builds only each layer's pore region (sim.builder.build(pore_region_nm=...)); its graphs are
    those of the full membrane, over pore shapes, materials, groups, stacks and offsets."""
    import porelab.surrogate.graph as graph

    rng = np.random.default_rng(4)
    designs = []
    for k in range(24):
        n, shape = int(rng.integers(1, 5)), ["circle", "ellipse", "hexagon", "rectangle"][k % 4]
        w = float(rng.uniform(1.0, 1.8))
        h = w if shape in ("circle", "hexagon") else float(rng.uniform(1.0, 1.8))
        designs.append(make_design({
            "material": ["graphene_oxide", "hbn"][k % 2], "layers": list(rng.choice(["COO-", "NH3+", "OH", "none"], n)),
            "pore": {"shape": shape, "width_nm": w, "height_nm": h},
            "groups_per_rim": int(rng.integers(1, 5)), "spacing_nm": float(rng.uniform(0.3, 0.7)),
            "offsets_nm": [(float(x), float(y)) for x, y in rng.uniform(-0.3, 0.3, (n, 2))]}, "seed"))
    st = GraphSettings(shell_nm=shell)
    graph.clear_cache()
    region = graph.featurise_designs(designs, st)
    graph.clear_cache()
    monkeypatch.setattr(graph, "build", lambda d, pore_region_nm=None: build(d))
    full = graph.featurise_designs(designs, st)
    graph.clear_cache()
    for a, b in zip(region, full, strict=True):
        for f in ("x", "edge_index", "edge_attr", "layer", "layer_z"):
            assert torch.equal(getattr(a, f), getattr(b, f)), f
    assert sum(len(build(d, pore_region_nm=shell).positions) for d in designs) < \
        sum(len(build(d).positions) for d in designs) / 2  # and it builds far fewer atoms
