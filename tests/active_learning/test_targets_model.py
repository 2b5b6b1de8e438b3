import json
import math

import numpy as np
import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.active_learning.campaign.study import Goal, Selectivity, load_study
from porelab.active_learning.campaign.targets import InvalidMeasurement, fold_normal, targets
from porelab.sim.continuum import run_continuum
from porelab.sim.design import make_conditions, make_design
from porelab.surrogate.descriptors import SAMPLE_DESCRIPTOR_NAMES

JANUS = make_design({"layers": ["COO-", "NH3+"], "groups_per_rim": 8}, "tiny")
KCL = make_conditions({"electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [0.1, -0.1]})


def test_targets_of_a_continuum_measurement():
    m = run_continuum(JANUS, KCL)
    t = targets(m, Goal())
    assert t["log_icr"] == pytest.approx(math.log(m.icr[0].icr))
    assert (t["abs_log_icr"], t["abs_log_icr_lo"], t["abs_log_icr_hi"]) == pytest.approx(
        (abs(t["log_icr"]), t["log_icr_lo"], t["log_icr_hi"]) if t["log_icr_lo"] > 0 else
        (abs(t["log_icr"]), -t["log_icr_hi"], -t["log_icr_lo"]))  # an interval clear of ICR 1 folds whole
    on = max(abs(f.current_nA) for f in m.fields)
    assert t["log_on_current"] == pytest.approx(math.log(on)) and t["icr_censored"] == 0.0
    with pytest.raises(InvalidMeasurement, match="no ICR at the goal's"):
        targets(m, Goal(field_abs_V_per_nm=2.0))


def test_a_censored_icr_is_its_bound_and_a_zero_resolved_one_is_refused():
    m = run_continuum(JANUS, KCL)
    r = m.icr[0].model_copy(update={"icr": 2.5, "icr_censored": True, "icr_ci": (2.5, None)})
    t = targets(m.model_copy(update={"icr": [r]}), Goal())
    assert t["icr_censored"] == 1.0 and t["log_icr"] == t["log_icr_lo"] == pytest.approx(math.log(2.5))
    assert t["log_icr_hi"] is None and t["abs_log_icr_hi"] is None
    zero = r.model_copy(update={"icr": 0.0, "icr_censored": False, "icr_ci": (0.0, 0.0)})
    with pytest.raises(InvalidMeasurement, match="ICR at 0.1 V/nm"):
        targets(m.model_copy(update={"icr": [zero]}), Goal())


def test_no_net_crossing_is_an_unresolved_icr_kept_and_the_displacement_sum_is_never_read():
    """Short MD, no transit at either sign: the ICR row knows no bound. The trial keeps its measurement: ln ICR 0
    with neither end, the objective censored at 0 ("> 1"), the ON current only an upper bound; a displacement sum
    beside the counts (an earlier protocol's measurement) changes nothing."""
    from al_helpers import UNRESOLVED

    t = targets(UNRESOLVED, Goal())
    assert t["log_icr"] == 0.0 and t["log_icr_lo"] is None and t["log_icr_hi"] is None and t["icr_censored"] == 1.0
    assert (t["abs_log_icr"], t["abs_log_icr_lo"], t["abs_log_icr_hi"]) == (0.0, 0.0, None)
    high = max(f.current_ci_nA[1] for f in UNRESOLVED.fields)
    assert t["on_current_upper_censored"] == 1.0 and t["log_on_current_lo"] is None
    assert t["log_on_current"] == t["log_on_current_hi"] == pytest.approx(math.log(high))
    assert t["estimator"] == "crossings"
    disp = [f.model_copy(update={
        "current_displacement_nA": 2.0 * f.field_V_per_nm, "current_displacement_ci_nA": (-0.1, 4.0),
        "current_displacement_n_eff": 80.0, "current_displacement_reliable": True,
        "species": {s: r.model_copy(update={"flux_displacement_per_ns": 9.0,
                                            "flux_displacement_ci_per_ns": (8.0, 10.0)})
                    for s, r in f.species.items()}}) for f in UNRESOLVED.fields]
    old = UNRESOLVED.model_copy(update={"fields": disp, "icr": [UNRESOLVED.icr[0].model_copy(update={
        "icr_displacement": 4.0, "icr_displacement_ci": (3.0, 5.0), "icr_displacement_censored": False})]})
    assert targets(old, Goal()) == t


def test_selectivity_of_k_over_mg():
    mix = make_conditions({"electrolyte": {"K+": 0.1, "Mg2+": 0.05, "Cl-": 0.2}, "fields_V_per_nm": [0.1, -0.1]})
    m = run_continuum(JANUS, mix)
    goal = Goal(objective="selectivity", selectivity=Selectivity(numerator=["K+"], denominator=["Mg2+", "Ca2+"]))
    t = targets(m, goal)
    on = max(m.fields, key=lambda f: abs(f.current_nA))
    want = (abs(on.species["K+"].flux_per_ns) / 0.1) / (abs(on.species["Mg2+"].flux_per_ns) / 0.05)
    assert t["log_selectivity"] == pytest.approx(math.log(want))
    assert t["log_selectivity_lo"] <= t["log_selectivity"] <= t["log_selectivity_hi"]  # the continuum's bounds
    assert t["estimator"] == "oracle"
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
    for t in ("log_icr", "abs_log_icr", "log_on_current"):
        assert pred.mean[t].shape == (24,) and np.all(pred.std[t] >= pred.epistemic[t] - 1e-12)
        assert np.all(np.isfinite(pred.mean[t])) and np.all(pred.epistemic[t] >= 0)
    # the objective: the folded distribution of the predicted ln ICR, epistemic for its mean, total for its std
    mean, epi = fold_normal(pred.mean["log_icr"], pred.epistemic["log_icr"])
    np.testing.assert_allclose(pred.mean["abs_log_icr"], mean)
    np.testing.assert_allclose(pred.epistemic["abs_log_icr"], epi)
    np.testing.assert_allclose(pred.std["abs_log_icr"], fold_normal(pred.mean["log_icr"], pred.std["log_icr"])[1])
    assert pred.embedding.shape == (24, len(SAMPLE_DESCRIPTOR_NAMES))
    train_pred = model.predict(pool[:24]).mean["log_icr"]
    y = np.array([targets(m, study.goal)["log_icr"] for m in ms])
    assert np.corrcoef(train_pred, y)[0, 1] > 0.8  # it learned something
    model.save(tmp_path / "m")
    assert {p.suffix for p in (tmp_path / "m").iterdir()} == {".json"}  # no pickle: model.json + training data
    again = CampaignModel.load(tmp_path / "m").predict(pool[24:])
    assert np.allclose(again.mean["log_icr"], pred.mean["log_icr"])
    assert np.allclose(again.std["log_icr"], pred.std["log_icr"])  # the novelty floor too
    assert json.loads((tmp_path / "m" / "model.json").read_text())["kind"] == kind


def test_epistemic_std_is_floored_away_from_the_training_designs(data):
    """The floor (surrogate.novelty) raises the epistemic std to the training labels' spread far from them, leaves
    the model's own where it is larger, and moves the total std by the same variance; the mean is untouched."""
    study, pool, ms = data
    own = CampaignModel("rf", study.goal, seed=0, novelty_floor=False).fit(ms)
    floored = CampaignModel("rf", study.goal, seed=0).fit(ms)
    a, b = own.predict(pool[24:]), floored.predict(pool[24:])
    floor = floored.novelty("continuum").std(b.embedding)
    y = np.array([targets(m, study.goal)["log_icr"] for m in ms])
    assert np.all(floor["log_icr"] <= np.std(y) + 1e-12) and floor["log_icr"].max() > 0
    assert set(floor) == set(own.derived) == {"log_icr", "log_on_current"}  # the objective is folded from ln ICR
    for t in own.derived:
        np.testing.assert_allclose(b.mean[t], a.mean[t])
        np.testing.assert_allclose(b.epistemic[t], np.maximum(a.epistemic[t], floor[t]))
        np.testing.assert_allclose(b.std[t] ** 2 - b.epistemic[t] ** 2, a.std[t] ** 2 - a.epistemic[t] ** 2,
                                   atol=1e-9)
    assert np.any(b.epistemic["log_icr"] > a.epistemic["log_icr"])
    at_train = floored.predict(pool[:24])
    np.testing.assert_allclose(at_train.epistemic["log_icr"], own.predict(pool[:24]).epistemic["log_icr"])


def test_a_decayed_floor_scales_the_floors_variance_and_a_spent_budget_leaves_the_models_own_std(data):
    """floor_weight w (a `novelty_floor: decay` campaign's share of its budget left): the floor's std times sqrt(w);
    w = 0 is the model's own std."""
    study, pool, ms = data
    own = CampaignModel("rf", study.goal, seed=0, novelty_floor=False).fit(ms)
    decayed = CampaignModel("rf", study.goal, seed=0, novelty_floor="decay").fit(ms)
    a = own.predict(pool[24:])
    floor = decayed.novelty("continuum").std(a.embedding)["log_icr"]
    for w in (1.0, 0.25, 0.0):
        decayed.floor_weight = w
        b = decayed.predict(pool[24:])
        np.testing.assert_allclose(b.epistemic["log_icr"], np.maximum(a.epistemic["log_icr"], np.sqrt(w) * floor))
    np.testing.assert_allclose(b.std["log_icr"], a.std["log_icr"])


def test_a_flat_floor_is_full_where_the_means_are_flat_and_fades_as_they_spread(data):
    """`novelty_floor: flat`: weight (1 - r)², r = std of the means of ln ICR over the candidates / std of the
    training labels: 1 for candidates predicted alike, 0 once the means spread as widely as the labels."""
    study, pool, ms = data
    flat = CampaignModel("rf", study.goal, seed=0, novelty_floor="flat").fit(ms)
    spread = np.std(flat.predict(pool[24:]).mean["log_icr"]) / math.sqrt(flat.novelty("continuum").var["log_icr"])
    assert 0 < spread < 1 and flat.flat_floor_weight(pool[24:]) == pytest.approx((1 - spread) ** 2)
    assert flat.flat_floor_weight(pool[24:25] * 5) == pytest.approx(1.0)  # one design: the means are flat
    flat.novelty("continuum").var["log_icr"] = spread**2 * flat.novelty("continuum").var["log_icr"] / 4
    assert flat.flat_floor_weight(pool[24:]) == 0.0  # means twice as spread as the labels


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
    assert len(list((tmp_path / "g").glob("weights-*.pt"))) == 1
    again = CampaignModel.load(tmp_path / "g").predict(pool[24:28])
    assert np.allclose(again.mean["log_icr"], pred.mean["log_icr"])


@pytest.mark.parametrize("kind", ["rf", "gnn"])
def test_any_flux_scale_trains_saves_loads_and_predicts(tmp_path, data, kind):
    """A flux scale other than the default: queries are built on the model's scale (they used the default)."""
    study, pool, ms = data
    kw = {"n_estimators": 20} if kind == "rf" else {"n_members": 2, "max_epochs": 2, "patience": 1, "hidden": 8,
                                                    "head_hidden": 8}
    model = CampaignModel(kind, study.goal, seed=0, flux_scale_per_ns=0.1, **kw).fit(ms[:8])
    pred = model.predict(pool[24:28])
    assert all(np.isfinite(pred.mean[t]).all() and (pred.std[t] > 0).all() for t in model.targets)
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "model.json").read_text())["flux_scale_per_ns"] == 0.1
    again = CampaignModel.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict(pool[24:28]).mean["log_icr"], pred.mean["log_icr"], rtol=1e-12)
    assert again.clone().params == model.params


def test_a_model_trained_by_porelab_train_serves_design_and_campaigns(tmp_path, data, monkeypatch):
    """`porelab train` writes the model directory that `porelab design` and a campaign's adapter load."""
    import yaml
    from typer.testing import CliRunner

    from porelab.active_learning.cli.main import app

    study, pool, ms = data
    ws = tmp_path / "ws"
    for m in ms:
        (ws / "data" / m.design_id).mkdir(parents=True)
        m.save(ws / "data" / m.design_id / "measurement.json")
    (ws / "train.yaml").write_text(yaml.safe_dump({"model": {"kind": "rf", "n_estimators": 30},
                                                   "registered_model_name": None, "test_fraction": 0.25}))
    monkeypatch.setenv("PORELAB_WORKSPACE", str(ws))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(ws)
    r = CliRunner().invoke(app, ["train", "data", "--out", "trained", "--config", "train.yaml"])
    assert r.exit_code == 0, r.output
    model = CampaignModel.load(ws / "trained" / "model")
    assert model.kind == "rf" and model.goal == Goal() and len(model.train_) == 18  # 24 designs, 6 held out
    pred = model.predict(pool[24:])
    assert np.isfinite(pred.mean["log_icr"]).all() and (pred.epistemic["log_icr"] >= 0).all()
    write_study(ws / "study.yaml")
    r = CliRunner().invoke(app, ["design", "study.yaml", "--surrogate", "trained/model", "--candidates", "64",
                                 "--no-tracking", "--quiet"])
    assert r.exit_code == 0, r.output
    summary = json.loads((ws / "runs" / "design-small" / "summary.json").read_text())
    assert summary["surrogate"]["kind"] == "rf" and summary["metrics"]["candidates_scored"] == 64
    assert summary["surrogate"]["path"] == str((ws / "trained" / "model").resolve())
