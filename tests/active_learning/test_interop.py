"""`porelab campaign tell` seeds a campaign with old measurements (never simulated again, counted in the budget,
refused with one line and nothing written when they do not fit) and `porelab campaign export` writes its trials
as CSV or Parquet with every measured value's 95 % interval and censored flag (campaign/interop.py)."""

import json
import math

import pandas as pd
import pytest
from al_helpers import USER_ORACLE, write_study
from typer.testing import CliRunner

from porelab.active_learning.campaign.driver import candidate_pool
from porelab.active_learning.campaign.ledger import CampaignLock, Ledger
from porelab.active_learning.campaign.oracles import stamp, study_identity
from porelab.active_learning.campaign.study import load_study
from porelab.active_learning.campaign.summary import summarize
from porelab.active_learning.cli.main import app
from porelab.sim.continuum import run_continuum
from porelab.sim.measurement import Measurement
from porelab.sim.observables import icr_results

runner = CliRunner()


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.startswith("error:"), r.output
    text = " ".join(r.output.split())
    for n in needles:
        assert n in text, text


def censored(m: Measurement) -> Measurement:
    """m with the -E current's interval widened across zero (ICR's denominator), and its ICR rows recomputed
    (sim.observables)."""
    w = max(abs(f.current_nA) for f in m.fields) * 3 + 1e-6
    fields = [f.model_copy(update={"current_ci_nA": (f.current_nA - w, f.current_nA + w)}) if f.field_V_per_nm < 0
              else f for f in m.fields]
    return m.model_copy(update={"fields": fields, "icr": icr_results(fields, bound=True)})


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A study whose user oracle logs every call, and a lab's old measurements by that oracle: two of the designs
    the initial design would run, one outside the pool (censored ICR, with its cost in its provenance)."""
    root = tmp_path_factory.mktemp("interop")
    (root / "oracle.py").write_text(USER_ORACLE)
    log = root / "calls.log"
    study_file = write_study(root / "s.yaml", oracle={"kind": "user", "path": f"{root / 'oracle.py'}:LoggedContinuum",
                                                      "settings": {"log": str(log)}})
    study = load_study(study_file)
    identity = study_identity(study.oracle)
    pool, _ = candidate_pool(study)
    ids = {c.design_id for c in pool}
    other = next(c for c in study.design_space().sample(64, study.seed + 1)
                 if not c.design.is_symmetric() and c.design_id not in ids)
    old = [stamp(run_continuum(c.design, c.conditions), identity) for c in (pool[0], pool[1], other)]
    old[2] = censored(old[2]).model_copy(update={"provenance": {**old[2].provenance, "cpu_s": 40.0, "wall_s": 12.5}})
    files = []
    for i, m in enumerate(old):
        (root / "lab" / str(i)).mkdir(parents=True)
        m.save(root / "lab" / str(i) / "measurement.json")
        files.append(root / "lab" / str(i) / "measurement.json")
    return {"root": root, "study_file": study_file, "study": study, "identity": identity, "log": log, "old": old,
            "files": files, "pool": pool}


@pytest.fixture(scope="module")
def told_campaign(lab):
    """The campaign: told the lab's three measurements before its first run, then resumed to its budget (12)."""
    d = lab["root"] / "ws" / "camp"
    r = runner.invoke(app, ["campaign", "tell", str(d), *map(str, lab["files"]), "--study", str(lab["study_file"])])
    assert r.exit_code == 0, r.output
    assert "3 measurements told" in r.output and r.output.count("told    ") == 3
    with pytest.MonkeyPatch.context() as mp:  # the MLflow view in the workspace's store
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        r = runner.invoke(app, ["campaign", "resume", str(d), "--quiet"])
    assert r.exit_code == 0, r.output
    return d


def test_told_designs_are_not_simulated_again_and_count_in_the_budget(lab, told_campaign):
    led = Ledger(told_campaign / "ledger.sqlite")
    trials = led.trials()
    told = {m.design_id for m in lab["old"]}
    assert len(trials) == 12 and led.counts()["completed"] == 12 and led.get("finished") == "budget"
    by_id = {t.design_id: t for t in trials}
    for m in lab["old"]:
        t = by_id[m.design_id]
        assert (t.status, t.round, t.source, t.attempts) == ("completed", 0, "told", 1)
        assert Measurement.model_validate_json(led.measurement(m.design_id).json) == m  # the lab's, as told
        assert Measurement.load(told_campaign / "runs" / m.design_id / "measurement.json") == m
    simulated = lab["log"].read_text().split()
    assert len(simulated) == 9 and not told & set(simulated)  # 12 in the budget, 3 of them told
    # the told took places of the initial design (4): one more from the pool, skipping the two told pool designs
    initial = [t.design_id for t in trials if t.source == "initial"]
    assert initial == [lab["pool"][2].design_id]
    assert led.iterations()[1]["n_train"] == 4  # the first model learnt from the told ones too
    led.close()
    from mlflow.tracking import MlflowClient  # the MLflow view shows them as simulations like any other

    client = MlflowClient(f"sqlite:///{told_campaign.parent / 'mlflow.db'}")
    exp = client.get_experiment_by_name("camp")
    runs = client.search_runs([exp.experiment_id], "tags.`porelab.kind` = 'simulation'", max_results=100)
    assert len(runs) == 12
    assert sorted(r.data.tags["porelab.design_id"] for r in runs if r.data.params["source"] == "told") == sorted(told)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trip(lab, told_campaign, suffix, tmp_path):
    out = lab["root"] / "tables" / f"trials{suffix}"  # its directory made
    r = runner.invoke(app, ["campaign", "export", str(told_campaign), "--out", str(out)])
    assert r.exit_code == 0, r.output
    t = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    led = Ledger(told_campaign / "ledger.sqlite")
    assert list(t["design_id"]) == [x.design_id for x in led.trials()] and len(t) == 12
    for col in ("status", "round", "source", "design.spacing_nm", "design.groups_per_rim", "design.pore.width_nm",
                "conditions.electrolyte.K+", "conditions.fields_V_per_nm", "fidelity", "oracle", "cpu_s", "wall_s",
                "icr", "icr_lo", "icr_hi", "icr_censored", "on_current_nA", "on_current_nA_lo", "on_current_nA_hi",
                "objective_lo", "field_V_per_nm", "measured_by", "predicted.log_icr_mean"):
        assert col in t.columns, col
    assert set(t["status"]) == {"completed"} and (t["source"] == "told").sum() == 3
    assert t["design.layers"].map(json.loads).map(len).between(1, 3).all()
    assert all(json.loads(o) == lab["identity"] for o in t["oracle"])
    cens = t[t["icr_censored"].astype(bool)]
    assert list(cens["design_id"]) == [lab["old"][2].design_id]  # marked, only lower bound known
    assert cens["icr_hi"].isna().all() and (cens["icr_lo"] > 0).all()
    assert float(cens["wall_s"].iloc[0]) == 12.5 and float(cens["cpu_s"].iloc[0]) == 40.0
    exact = t[~t["icr_censored"].astype(bool)]
    assert ((exact["icr_lo"] <= exact["icr"]) & (exact["icr"] <= exact["icr_hi"])).all()
    assert ((t["on_current_nA_lo"] <= t["on_current_nA"]) & (t["on_current_nA"] <= t["on_current_nA_hi"])).all()
    # the summary's reading of each value (campaign.measured): one computation
    best = summarize(led, lab["study"])["best"][0]
    row = t[t["design_id"] == best["design_id"]].iloc[0]
    for k in ("icr", "icr_lo", "icr_hi", "on_current_nA", "objective_lo"):
        assert math.isclose(row[k], best[k], rel_tol=1e-12), k
    led.close()
    predicted = t["predicted.log_icr_mean"].notna()
    assert predicted[t["round"] >= 1].all() and not predicted[t["round"] == 0].any()  # picked by a model, or not


def test_export_refuses_another_format_and_a_path_outside_the_workspace(told_campaign, lab, tmp_path_factory):
    r = runner.invoke(app, ["campaign", "export", str(told_campaign), "--out", str(lab["root"] / "t.xlsx")])
    one_line_error(r, "write .csv or .parquet", "'.xlsx'")
    assert not (lab["root"] / "t.xlsx").exists()
    outside = tmp_path_factory.getbasetemp().parent / "porelab-export-outside.csv"  # PORELAB_WORKSPACE: basetemp
    r = runner.invoke(app, ["campaign", "export", str(told_campaign), "--out", str(outside)])
    one_line_error(r, "outside the workspace")
    assert not outside.exists()


def test_tell_refusals_write_nothing(lab, told_campaign, tmp_path):
    identity, old = lab["identity"], lab["old"]
    fresh = lab["pool"][5]
    good = tmp_path / "good.json"
    stamp(run_continuum(fresh.design, fresh.conditions), identity).save(good)
    d = tmp_path / "c"

    def refused(files, *needles, directory=d):
        before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        r = runner.invoke(app, ["campaign", "tell", str(directory), str(good), *map(str, files),
                                "--study", str(lab["study_file"])])
        one_line_error(r, *needles)
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing, not even `good`

    (tmp_path / "notes.json").write_text('{"hello": 1}')
    refused([tmp_path / "notes.json"], "notes.json: not a porelab measurement")
    (tmp_path / "text.json").write_text("not json at all")
    refused([tmp_path / "text.json"], "text.json: not a porelab measurement")
    c = lab["pool"][6]
    failed = tmp_path / "failed.json"
    Measurement.failed(c.design, c.conditions, "continuum", "solver diverged", oracle=identity).save(failed)
    refused([failed], "failed.json: a failed measurement (solver diverged)")
    other = tmp_path / "other.json"
    run_continuum(c.design, c.conditions).save(other)  # the continuum itself: not the study's (user) oracle
    refused([other], "other.json: measured by", '"kind": "continuum"', "not by the study's oracle", '"kind": "user"')
    refused([good], f"good.json: design {fresh.design_id} is already in the campaign")  # told twice in one call
    edited = tmp_path / "edited.json"
    old[0].model_copy(update={"design_id": "0" * 16}).save(edited)
    refused([edited], "edited.json: its design_id 0000000000000000 is not the id of its design")
    assert not d.exists()

    # into an existing campaign: a design it holds, while a driver holds it, once it has finished
    r = runner.invoke(app, ["campaign", "tell", str(d), str(good), "--study", str(lab["study_file"])])
    assert r.exit_code == 0 and "1 measurements told" in r.output, r.output
    led = Ledger(d / "ledger.sqlite")
    assert [(t.design_id, t.source, t.status) for t in led.trials()] == [(fresh.design_id, "told", "completed")]
    led.close()
    r = runner.invoke(app, ["campaign", "tell", str(d), str(good)])
    one_line_error(r, f"design {fresh.design_id} is already in the campaign")
    with CampaignLock(d):
        one_line_error(runner.invoke(app, ["campaign", "tell", str(d), str(lab["files"][0])]), "is being driven by")
    one_line_error(runner.invoke(app, ["campaign", "tell", str(told_campaign), str(good)]),
                   "the campaign has finished (budget)")
    other_study = write_study(tmp_path / "t.yaml", seed=9)
    one_line_error(runner.invoke(app, ["campaign", "tell", str(d), str(good), "--study", str(other_study)]),
                   "holds a campaign of another study")
    led = Ledger(told_campaign / "ledger.sqlite")
    assert led.n_trials() == 12 and fresh.design_id not in led.known_ids()
    led.close()
