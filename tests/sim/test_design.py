import pytest

from porelab.sim.design import (
    DesignError,
    canonical,
    canonical_json,
    design_id,
    dump_design_file,
    load_design_file,
    make_conditions,
    make_design,
)


def test_presets_match_the_seed_study():
    d = make_design(preset="seed")
    assert (d.sheet_nm, d.pore.width_nm, d.pore.height_nm, d.groups_per_rim, d.spacing_nm) == (4.0, 1.42, 1.26, 4, 0.34)
    assert make_conditions().electrolyte == {"K+": 1.0, "Cl-": 1.0}
    assert make_design(preset="tiny").sheet_nm == 2.5


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"layers": []}, ["layers", "1 to 16"]),
        ({"layers": ["COO-"] * 17}, ["layers", "1 to 16"]),
        ({"janus_layers": 9}, ["janus_layers=9", "[1, 8]"]),
        ({"janus_layers": 1, "layers": ["NH3+", "COO-"]}, ["janus_layers=1", "disagree"]),
        ({"spacing_nm": 0.1}, ["spacing_nm=0.1", "0.2"]),
        ({"pore": {"width_nm": 3.9, "height_nm": 1.0}}, ["too wide", "sheet_nm=4.0"]),
        ({"pore": {"shape": "circle", "width_nm": 1.0, "height_nm": 1.2}}, ["circle", "width_nm == height_nm"]),
        ({"pore": {"width_nm": 0.1}}, ["pore.width_nm", "minimum"]),
        ({"layers": ["COO-", "XYZ"]}, ["layers"]),
        ({"box_z_nm": 2.0, "layers": ["COO-"] * 8}, ["box_z_nm=2.0", "at least"]),
        ({"offsets_nm": [[0, 0]], "layers": ["COO-", "NH3+"]}, ["offsets_nm", "2 layers"]),
        ({"bogus": 1}, ["bogus"]),
    ],
)
def test_impossible_designs_are_rejected_with_field_and_limit(spec, words):
    with pytest.raises(DesignError) as err:
        make_design(spec, "seed")
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"electrolyte": {"Xe+": 1.0, "Cl-": 1.0}}, ["Xe+", "unknown"]),
        ({"electrolyte": {"K+": 1.0, "Cl-": 0.5}}, ["electroneutral"]),
        ({"electrolyte": {"K+": 5.0, "Cl-": 5.0}}, ["no room", "water"]),
        ({"electrolyte": {"K+": -1.0, "Cl-": -1.0}}, ["positive"]),
        ({"fields_V_per_nm": [50.0]}, ["fields_V_per_nm: 50.0"]),
        ({"temperature_K": 10}, ["temperature_K"]),
        ({"electrolyte": {}}, ["empty"]),
    ],
)
def test_bad_conditions_are_rejected(spec, words):
    with pytest.raises(DesignError) as err:
        make_conditions(spec)
    for w in words:
        assert w in str(err.value)


def test_divalent_mixture_is_neutral_and_accepted():
    c = make_conditions({"electrolyte": {"Mg2+": 0.5, "K+": 0.5, "Cl-": 1.5}})
    assert c.electrolyte["Mg2+"] == 0.5


def test_design_id_is_stable_and_canonical():
    d = make_design({"layers": ["COO-", "NH3+"]}, "seed")
    c = make_conditions({"fields_V_per_nm": [1.0, -1.0]})
    c2 = make_conditions({"fields_V_per_nm": [-1.0, 1.0000000001]})  # order and rounding do not matter
    assert design_id(d, c) == design_id(d, c2)
    # the mirror image at the opposite fields is the same question; at the same single field it is not
    assert design_id(d, c) == design_id(d.mirrored(), c)
    plus, minus = make_conditions({"fields_V_per_nm": [1.0]}), make_conditions({"fields_V_per_nm": [-1.0]})
    assert design_id(d, plus) == design_id(d.mirrored(), minus) != design_id(d.mirrored(), plus)
    assert design_id(d, c) != design_id(d, make_conditions({"fields_V_per_nm": [2.0, -2.0]}))
    assert canonical_json(d, c) == canonical_json(make_design(d.model_dump()), c)
    assert len(design_id(d, c)) == 16


def test_yaml_round_trip(tmp_path):
    d = make_design({"layers": ["COO-", "OH", "NH3+"], "offsets_nm": [[0, 0], [0.1, 0], [0, -0.1]]}, "tiny")
    c = make_conditions({"electrolyte": {"Na+": 0.5, "Cl-": 0.5}, "fields_V_per_nm": [0.5, -0.5]})
    dump_design_file(d, c, tmp_path / "x.yaml")
    d2, c2 = load_design_file(tmp_path / "x.yaml")
    assert design_id(d2, c2) == design_id(d, c)


def test_malformed_yaml_names_the_file_and_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("design:\n  layers: [COO-, NH3+\n")
    with pytest.raises(DesignError, match=r"bad.yaml: malformed YAML at line"):
        load_design_file(p)
    p.write_text("- just a list\n")
    with pytest.raises(DesignError, match="mapping"):
        load_design_file(p)
    with pytest.raises(DesignError, match="no such file"):
        load_design_file(tmp_path / "missing.yaml")


def test_mirrored_reverses_layers_and_offsets():
    d = make_design({"layers": ["COO-", "NH3+", "OH"], "offsets_nm": [[0, 0], [0.1, 0], [0.2, 0]]}, "seed")
    m = d.mirrored()
    assert m.layers == ("OH", "NH3+", "COO-")
    assert m.offsets_nm[0] == (0.2, 0)
    assert m.layer_charge_e() == d.layer_charge_e()[::-1]


def test_design_id_ignores_fields_that_change_no_atom():
    c = make_conditions()
    bare = [make_design({"layers": ["none", "none"], "groups_per_rim": g}, "tiny") for g in (0, 4, 8)]
    assert len({design_id(d, c) for d in bare}) == 1
    go = [make_design({"bn_charge_e": q}, "tiny") for q in (0.3, 0.9)]
    assert design_id(go[0], c) == design_id(go[1], c)
    bn = [make_design({"material": "hbn", "bn_charge_e": q}, "tiny") for q in (0.3, 0.9)]
    assert design_id(bn[0], c) != design_id(bn[1], c)  # h-BN charges are atoms' charges
    aligned = make_design({"offsets_nm": [[0, 0], [0, 0]]}, "tiny")
    assert design_id(aligned, c) == design_id(make_design({}, "tiny"), c)
    charged = [make_design({"layers": ["COO-", "none"], "groups_per_rim": g}, "tiny") for g in (2, 4)]
    assert design_id(charged[0], c) != design_id(charged[1], c)


def test_canonical_orientation_maps_the_mirror_to_one_question():
    janus = make_design({"layers": ["NH3+", "COO-"]}, "tiny")
    c = make_conditions({"fields_V_per_nm": [2.0]})
    d, cc, flipped = canonical(janus, c)
    assert flipped and d.layers == ("COO-", "NH3+") and cc.fields_V_per_nm == (-2.0,)
    assert canonical(d, cc) == (d, cc, False)  # canonical is a fixed point
    sym = make_design({"layers": ["COO-", "NH3+", "COO-"]}, "tiny")
    assert sym.is_symmetric() and not janus.is_symmetric()
    d, cc, flipped = canonical(sym, make_conditions({"fields_V_per_nm": [-2.0]}))
    assert flipped and cc.fields_V_per_nm == (2.0,)  # a symmetric design is asked at +E


def test_canonical_json_is_the_physical_state_of_the_canonical_objects():
    """canonical_json decides the orientation on dicts (no mirror objects built); it must say exactly what the
    physical state of `canonical`'s objects says, for stacks, offsets, materials and field sets of either sign."""
    import itertools
    import json

    from porelab.sim.design import physical_state

    stacks = [["COO-", "NH3+"], ["NH3+", "COO-", "none"], ["COO-", "NH3+", "COO-"], ["none"], ["OH", "COO-"]]
    offsets = [None, "shift"]
    fields = [[2.0], [-2.0], [1.0, -1.0], [-0.5, 1.5]]
    n = 0
    for layers, off, fs, material in itertools.product(stacks, offsets, fields, ("graphene_oxide", "hbn")):
        spec = {"layers": layers, "material": material}
        if off:
            spec["offsets_nm"] = [[0.04 * k, -0.02 * k] for k in range(len(layers))]
        d, c = make_design(spec, "tiny"), make_conditions({"fields_V_per_nm": fs})
        cd, cc, _ = canonical(d, c)
        assert canonical_json(d, c) == json.dumps(physical_state(cd, cc), sort_keys=True, separators=(",", ":"))
        n += 1
    assert n == 80


def test_janus_layers_is_the_seed_studys_stack():
    for n in (1, 3, 8):
        d = make_design({"janus_layers": n}, "seed")
        assert d.layers == ("COO-",) * n + ("NH3+",) * n
        explicit = make_design({"layers": ["COO-"] * n + ["NH3+"] * n}, "seed")
        assert design_id(d, make_conditions()) == design_id(explicit, make_conditions())
    # pore length 0.34 -> 2.38 nm from 1 to 4 layers (2 -> 8 sheets) at 0.34 nm spacing
    assert make_design({"janus_layers": 1}, "seed").stack_thickness_nm() == pytest.approx(0.34)
    assert make_design({"janus_layers": 4}, "seed").stack_thickness_nm() == pytest.approx(2.38)
    with pytest.raises(DesignError, match="box_z_nm=5.0 is too short"):
        make_design({"janus_layers": 8}, "tiny")


def test_eight_janus_layers_build_sixteen_sheets_inside_the_seed_box():
    from porelab.sim.builder import build

    d = make_design({"janus_layers": 8}, "seed")
    s = build(d)
    one = build(make_design({"janus_layers": 1}, "seed"))
    z = s.positions[:, 2]
    assert len(set(s.layer.tolist())) == 16 and s.box[2] == d.box_z_nm == 10.0
    # 16 sheets: 8 times the atoms of 2, all inside the box with >= 2 nm of water above and below the stack
    assert s.n_atoms == 8 * one.n_atoms
    assert z.min() >= 2.0 and z.max() <= d.box_z_nm - 2.0
    assert z.max() - z.min() == pytest.approx(15 * 0.34, abs=0.5)
