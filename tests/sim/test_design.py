import pytest

from sim.design import (
    DesignError,
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
        ({"layers": []}, ["layers", "1 to 8"]),
        ({"layers": ["COO-"] * 9}, ["layers", "1 to 8"]),
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
        ({"fields_V_per_nm": [50.0]}, ["field 50.0"]),
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
    assert design_id(d, c) != design_id(d.mirrored(), c)
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
