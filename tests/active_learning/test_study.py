import re

import pytest
import yaml
from al_helpers import SMALL, write_study

from porelab.active_learning.campaign.study import StudyError, load_study, parse_study
from porelab.sim.design import DesignError


def test_small_study_loads_and_pool_is_seeded(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml"))
    space = study.design_space()
    a, b = space.sample(64, seed=3), space.sample(64, seed=3)
    assert [c.design_id for c in a] == [c.design_id for c in b]
    assert [c.design_id for c in a] != [c.design_id for c in space.sample(64, seed=4)]
    assert len({c.design_id for c in a}) == len(a) > 50
    for c in a:
        e = c.conditions.fields_V_per_nm
        assert e[0] == -e[1] and 0.02 <= abs(e[0]) <= 0.3
        assert 1 <= len(c.design.layers) <= 3 and 1 <= c.design.groups_per_rim <= 8


@pytest.mark.parametrize("change, message", [
    ({"budget": {"simulations": 0}}, "budget.simulations: Input should be greater than or equal to 1"),
    ({"space": {"spacing": {"low": 0.3, "high": 0.5}}}, "'spacing' is not a design or conditions field"),
    ({"space": {"spacing_nm": {"low": 0.5, "high": 0.3}}}, "space.spacing_nm"),
    ({"acquisition": {"kind": "thomson"}}, "acquisition: acquisition 'thomson' is unknown; choose one of"),
    ({"acquisition": {"kind": "constrained_ei"}}, "needs goal.on_current_min_nA"),
    ({"oracle": {"kind": "user"}}, "a user oracle needs path"),
    ({"oracle": {"kind": "md", "settings": {"timestep_fs": -1}}}, "timestep_fs=-1.0 must be a positive number"),
    ({"executor": {"kind": "lokal"}}, "executor.kind: Input should be 'local' or 'dask'"),
    ({"preset": "huge"}, "preset 'huge' is unknown"),
    ({"base": {"conditions": {"electrolyte": {"Xe+": 1.0}}}}, "species 'Xe+' is unknown"),
    ({"model": {"kind": "transformer"}}, "model.kind: Input should be 'gnn', 'rf' or 'gp'"),
    ({"goal": {"objective": "selectivity"}}, "objective selectivity needs selectivity"),
    ({"goal": {"maximize": False}}, "objective icr maximises max(ICR, 1/ICR)"),
    ({"goal": {"target": 1.0}}, "target 1 is met at once: max(ICR, 1/ICR) >= 1"),
])
def test_bad_studies_name_the_field(tmp_path, change, message):
    with pytest.raises(StudyError, match=re.escape(message)):
        load_study(write_study(tmp_path / "s.yaml", **change))


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nbudget: [1, 2\n")
    with pytest.raises(StudyError, match="malformed YAML at line"):
        load_study(bad)
    with pytest.raises(StudyError, match="no such file"):
        load_study(tmp_path / "nope.yaml")
    with pytest.raises(StudyError, match="expected a mapping"):
        parse_study([1, 2])


def test_empty_space_of_impossible_designs(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", space={"pore.width_nm": {"low": 2.0, "high": 2.4}}))
    with pytest.raises(DesignError, match="gives no valid design"):
        study.design_space().sample(16, 0)


def test_grid_is_the_full_product_in_order(tmp_path):
    doc = {**SMALL, "space": {"layers": {"choices": [["COO-"], ["COO-", "NH3+"]]},
                              "field_V_per_nm": {"choices": [0.5, 1.0, 2.0]}},
           "acquisition": {"kind": "grid"}}
    study = parse_study(yaml.safe_load(yaml.safe_dump(doc, sort_keys=False)))
    grid = study.design_space().grid()
    assert [(len(c.design.layers), c.conditions.fields_V_per_nm[0]) for c in grid] == \
        [(1, 0.5), (1, 1.0), (1, 2.0), (2, 0.5), (2, 1.0), (2, 2.0)]


def test_user_oracle_path_is_made_absolute(tmp_path, user_oracle):
    study = load_study(write_study(tmp_path / "s.yaml", oracle={"kind": "user", "path": "my_oracle.py:LoggedContinuum",
                                                                 "settings": {"log": "x"}}))
    assert study.oracle.path == f"{user_oracle.resolve()}:LoggedContinuum"


def test_shipped_studies_validate():
    from pathlib import Path

    from porelab.active_learning.inverse.study import load_design_study

    for f in sorted(Path("experiments").glob("*.yaml")):
        if "budget" not in yaml.safe_load(f.read_text()):  # an inverse-design study
            assert load_design_study(f).surrogate, f
            continue
        study = load_study(f)
        pool = study.design_space().grid() if study.acquisition.kind == "grid" else \
            study.design_space().sample(64, study.seed)
        assert pool, f


def test_settings_added_later_keep_older_studies_digest(tmp_path):
    """A study written before extensions and the novelty floor keeps its digest (its campaign resumes); turning
    the floor off asks another question."""
    plain = load_study(write_study(tmp_path / "a.yaml"))
    same = load_study(write_study(tmp_path / "b.yaml", model={"kind": "rf", "novelty_floor": True},
                                  acquisition={"extend_max_ps": None}))
    off = load_study(write_study(tmp_path / "c.yaml", model={"kind": "rf", "novelty_floor": False}))
    assert plain.model.novelty_floor and "novelty_floor" not in plain.canonical()
    assert "extend_max_ps" not in plain.canonical()
    assert same.digest() == plain.digest() != off.digest()
    decay = load_study(write_study(tmp_path / "d.yaml", model={"kind": "rf", "novelty_floor": "decay"}))
    assert decay.model.novelty_floor == "decay" and decay.digest() not in (plain.digest(), off.digest())
    with pytest.raises(ValueError, match="novelty_floor"):
        load_study(write_study(tmp_path / "e.yaml", model={"kind": "rf", "novelty_floor": "sometimes"}))


KNOWN_GROUPS = "known: COO-, NH3+, OH, none"


@pytest.mark.parametrize("change, message", [
    # a dimension is read as the kind its keys mean, and only that kind's complaint is reported
    ({"space": {"layers": {"sequence": ["COO-", "NH3+"], "length": [1, 100000]}}},
     "space.layers: length [1, 100000] must satisfy 1 <= lo <= hi <= 16 (a membrane has 1 to 16 sheets)"),
    ({"space": {"layers": {"sequence": ["COO-"], "lenght": [1, 2]}}},
     "space.layers: unknown key 'lenght' (did you mean 'length'?)"),
    ({"space": {"spacing_nm": {"low": 0.3}}}, "space.spacing_nm.high: Field required"),
    ({"space": {"spacing_nm": {"lo": 0.3, "high": 0.5}}}, "space.spacing_nm: unknown key 'lo' (did you mean 'low'?)"),
    ({"space": {"spacing_nm": {"choices": []}}},
     "space.spacing_nm.choices: List should have at least 1 item after validation, not 0"),
    ({"space": {"spacing_nm": 0.3}},
     "space.spacing_nm: a dimension is {low, high}, {choices: [...]} or {sequence: [...], length: [lo, hi]} (got 0.3)"),
    # a group the design does not know: refused, not dropped from the pool without a word
    ({"space": {"layers": {"sequence": ["COO-", "NH3+", "SO3-", "none"], "length": [1, 3]}}},
     f"space.layers: group 'SO3-' is unknown; {KNOWN_GROUPS}"),
    ({"space": {"layers": {"choices": [["COO-"], ["NH3+", "SO3-"]]}}}, f"space.layers: group 'SO3-' is unknown; "
                                                                        f"{KNOWN_GROUPS}"),
    ({"budget": {"initial": 100, "simulations": 24}},
     "budget: initial 100 exceeds simulations 24: the initial design is part of the budget; give initial <= "
     "simulations"),
    ({"executor": {"wrokers": 2}}, "executor: unknown key 'wrokers' (did you mean 'workers'?)"),
    ({"colour": "red"}, "unknown key 'colour'; known: name, description, seed, preset, base, space, oracle, goal, "
                        "budget, fidelities, executor, model, acquisition"),
])
def test_bad_studies_name_the_first_real_cause(tmp_path, change, message):
    """The whole message, one line: no `(and N more)` of the other kinds' complaints."""
    with pytest.raises(StudyError) as err:
        load_study(write_study(tmp_path / "s.yaml", **change))
    assert str(err.value) == f"{tmp_path / 's.yaml'}: {message}"


def test_a_misspelt_section_is_named_not_the_one_it_hides(tmp_path):
    doc = {k: v for k, v in SMALL.items() if k != "budget"} | {"budjet": SMALL["budget"]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(StudyError) as err:
        load_study(tmp_path / "s.yaml")
    assert str(err.value) == f"{tmp_path / 's.yaml'}: unknown key 'budjet' (did you mean 'budget'?)"


def test_the_default_initial_design_is_cut_to_a_small_budget():
    assert parse_study({**SMALL, "budget": {"simulations": 2}}).budget.initial == 2
    assert parse_study({**SMALL, "budget": {"simulations": 3, "initial": 3}}).budget.initial == 3
