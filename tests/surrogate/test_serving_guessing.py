"""The served surrogate says when it is guessing (far from its training designs, or an interval of more than two
decades), takes the training geometry for a design that gives none, and gives bad input a one-line reason (an HTTP
400 when served)."""

import dataclasses
import json

import pandas as pd
import pytest

from porelab.sim.design import make_conditions, make_design
from porelab.surrogate.factory import new_model
from porelab.surrogate.serving import GUESS_SIMILARITY, predict_frame
from porelab.surrogate.store import load_model, save_model
from porelab.surrogate.training_set import training_samples


@pytest.fixture(scope="module")
def saved(measurements, tmp_path_factory):
    model = new_model("rf", n_estimators=30, seed=0)
    model.fit(training_samples(model, measurements))
    d = tmp_path_factory.mktemp("rf")
    save_model(d, model, measurements)
    return load_model(d)


def frame(designs, conditions):
    return pd.DataFrame({"design": [d.model_dump_json() for d in designs],
                         "conditions": [c.model_dump_json() for c in conditions]})


def test_a_training_design_is_familiar_and_one_unlike_all_is_a_guess(saved):
    m = saved.training[0]
    far = make_design({"layers": ["NH3+"] * 2, "groups_per_rim": 16, "spacing_nm": 1.2,  # training: 2-5, 0.3-0.8
                       "pore": {"shape": "circle", "width_nm": 0.45, "height_nm": 0.45}}, "tiny")
    out = predict_frame(saved, frame([m.design, far], [m.conditions, m.conditions]))
    known, unknown = out[out["row"] == 0].iloc[0], out[out["row"] == 1].iloc[0]
    assert known["training_similarity"] == pytest.approx(1.0)
    assert unknown["training_similarity"] < GUESS_SIMILARITY and bool(unknown["guessing"])
    wide = out["icr_hi"] / out["icr_lo"] > 100
    assert (out["guessing"] >= wide).all()  # every two-decade interval is flagged


def test_a_design_without_its_geometry_takes_the_training_geometry_or_is_refused_in_one_line(saved):
    m = saved.training[0]
    doc = json.loads(m.design.model_dump_json())
    del doc["sheet_nm"], doc["box_z_nm"]
    bare_frame = pd.DataFrame({"design": [json.dumps(doc)], "conditions": [m.conditions.model_dump_json()]})
    full, bare = predict_frame(saved, frame([m.design], [m.conditions])), predict_frame(saved, bare_frame)
    pd.testing.assert_frame_equal(bare, full)  # the training designs' own geometry, not Design's default
    other = saved.training[1].design.model_copy(update={"sheet_nm": 3.7})
    mixed = dataclasses.replace(saved, training=[saved.training[0],
                                                 saved.training[1].model_copy(update={"design": other})])
    with pytest.raises(ValueError, match=r"row 0: design gives no sheet_nm or box_z_nm; give the geometry \(this "
                                         r"model was trained on 2 geometries"):
        predict_frame(mixed, bare_frame)


def test_bad_input_names_the_row_and_the_problem(saved):
    c = make_conditions({"fields_V_per_nm": [1.0, -1.0]})
    with pytest.raises(ValueError, match="row 0: design: layers"):
        predict_frame(saved, pd.DataFrame({"design": ['{"layers": "x"}'], "conditions": [c.model_dump_json()]}))
    with pytest.raises(ValueError, match="input: give the columns design and conditions"):
        predict_frame(saved, pd.DataFrame({"design": ["{}"]}))


def flat(m) -> pd.DataFrame:
    """The flat input of a training question: one column per design field, electrolyte as text, |E|."""
    d, c = m.design, m.conditions
    return pd.DataFrame({"layers": ["/".join(d.layers)], "spacing_nm": [d.spacing_nm],
                         "groups_per_rim": [d.groups_per_rim], "material": [d.material],
                         "pore_shape": [d.pore.shape], "pore_width_nm": [d.pore.width_nm],
                         "pore_height_nm": [d.pore.height_nm],
                         "electrolyte": [",".join(f"{k}:{v}" for k, v in c.electrolyte.items())],
                         "field_V_per_nm": [max(abs(e) for e in c.fields_V_per_nm)]})


def test_flat_columns_answer_like_the_json_columns(saved):
    m = saved.training[0]
    e = max(abs(x) for x in m.conditions.fields_V_per_nm)
    asked = m.conditions.model_copy(update={"fields_V_per_nm": (e, -e)})  # what the flat row asks: +-|E|
    pd.testing.assert_frame_equal(predict_frame(saved, flat(m)), predict_frame(saved, frame([m.design], [asked])))
    with pytest.raises(ValueError, match="row 0: flat input needs electrolyte"):
        predict_frame(saved, flat(m).drop(columns="electrolyte"))
    with pytest.raises(ValueError, match="row 0: electrolyte 'K\\+=1': give 'ion:mol/L,...'"):
        predict_frame(saved, flat(m).assign(electrolyte="K+=1"))
    with pytest.raises(ValueError, match="input: give the columns design and conditions"):
        predict_frame(saved, pd.DataFrame({"colour": ["red"]}))
