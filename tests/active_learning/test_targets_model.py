import json
import math

import numpy as np
import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.model import CampaignModel, ModelError, descriptor
from porelab.active_learning.campaign.study import Goal, Selectivity, load_study
from porelab.active_learning.campaign.targets import InvalidMeasurement, targets
from porelab.sim.continuum import run_continuum
from porelab.sim.design import make_conditions, make_design

JANUS = make_design({"layers": ["COO-", "NH3+"], "groups_per_rim": 8}, "tiny")
KCL = make_conditions({"electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [0.1, -0.1]})


def test_targets_of_a_continuum_measurement():
    m = run_continuum(JANUS, KCL)
    t = targets(m, Goal())
    assert t["log_icr"] == pytest.approx(math.log(m.icr[0].icr))
    on = max(abs(f.current_nA) for f in m.fields)
    assert t["log_on_current"] == pytest.approx(math.log(on)) and t["icr_censored"] == 0.0
    with pytest.raises(InvalidMeasurement, match="no ICR at the goal's"):
        targets(m, Goal(field_abs_V_per_nm=2.0))


def test_censored_icr_falls_back_to_the_current_ratio_and_zero_current_is_refused():
    m = run_continuum(JANUS, KCL)
    r = m.icr[0].model_copy(update={"icr": 0.0, "icr_censored": True, "icr_ci": (0.0, None)})
    t = targets(m.model_copy(update={"icr": [r]}), Goal())
    assert t["icr_censored"] == 1.0
    assert t["log_icr"] == pytest.approx(math.log(abs(m.field(0.1).current_nA) / abs(m.field(-0.1).current_nA)))
    zero = [f.model_copy(update={"current_nA": 0.0}) if f.field_V_per_nm < 0 else f for f in m.fields]
    with pytest.raises(InvalidMeasurement, match="ICR at 0.1 V/nm"):
        targets(m.model_copy(update={"icr": [r], "fields": zero}), Goal())


def test_selectivity_of_k_over_mg():
    mix = make_conditions({"electrolyte": {"K+": 0.1, "Mg2+": 0.05, "Cl-": 0.2}, "fields_V_per_nm": [0.1, -0.1]})
    m = run_continuum(JANUS, mix)
    goal = Goal(objective="selectivity", selectivity=Selectivity(numerator=["K+"], denominator=["Mg2+", "Ca2+"]))
    t = targets(m, goal)
    on = max(m.fields, key=lambda f: abs(f.current_nA))
    want = (abs(on.species["K+"].flux_per_ns) / 0.1) / (abs(on.species["Mg2+"].flux_per_ns) / 0.05)
    assert t["log_selectivity"] == pytest.approx(math.log(want))
    with pytest.raises(InvalidMeasurement, match="none of"):
        targets(run_continuum(JANUS, KCL), goal)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    study = load_study(write_study(tmp_path_factory.mktemp("s") / "s.yaml"))
    pool = study.design_space().sample(48, 1)
    ms = [run_continuum(c.design, c.conditions) for c in pool[:24]]
    return study, pool, ms


@pytest.mark.parametrize("kind", ["rf", "gp"])
def test_model_fit_predict_save_load(tmp_path, data, kind):
    study, pool, ms = data
    model = CampaignModel(kind, study.goal, seed=0).fit(ms)
    pred = model.predict(pool[24:])
    for t in ("log_icr", "log_on_current"):
        assert pred.mean[t].shape == (24,) and np.all(pred.std[t] >= pred.epistemic[t] - 1e-12)
        assert np.all(np.isfinite(pred.mean[t])) and np.all(pred.epistemic[t] >= 0)
    assert pred.embedding.shape == (24, len(descriptor(JANUS, KCL)))
    train_pred = model.predict(pool[:24]).mean["log_icr"]
    y = np.array([targets(m, study.goal)["log_icr"] for m in ms])
    assert np.corrcoef(train_pred, y)[0, 1] > 0.8  # it learned something
    model.save(tmp_path / "m")
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"campaign_model.json"}  # no pickle
    again = CampaignModel.load(tmp_path / "m").predict(pool[24:])
    assert np.allclose(again.mean["log_icr"], pred.mean["log_icr"])
    assert json.loads((tmp_path / "m" / "campaign_model.json").read_text())["kind"] == kind


def test_model_errors():
    with pytest.raises(ModelError, match="choose one of gnn, rf, gp"):
        CampaignModel("svm")
    with pytest.raises(ModelError, match="at least 2 measured designs"):
        CampaignModel("rf").fit([run_continuum(JANUS, KCL)])


@pytest.mark.slow
def test_gnn_adapter_round_trip(tmp_path, data):
    study, pool, ms = data
    model = CampaignModel("gnn", study.goal, seed=0, n_members=2, max_epochs=2, patience=1, hidden=8,
                          head_hidden=8).fit(ms[:6])
    pred = model.predict(pool[24:28])
    for t in ("log_icr", "log_on_current"):
        assert pred.mean[t].shape == (4,) and np.all(np.isfinite(pred.std[t])) and np.all(pred.std[t] > 0)
    model.save(tmp_path / "g")
    assert (tmp_path / "g" / "gnn" / "model.pt").exists()
    again = CampaignModel.load(tmp_path / "g").predict(pool[24:28])
    assert np.allclose(again.mean["log_icr"], pred.mean["log_icr"])
