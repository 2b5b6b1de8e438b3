"""Inverse design: Pareto front, risk-aware ranking, screen and NSGA-II searches, verification, surrogate
sources and the `porelab design` command end to end."""

import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest
import yaml
from al_helpers import SMALL, write_study
from typer.testing import CliRunner

from porelab.active_learning.campaign.model import ModelError
from porelab.active_learning.campaign.study import Goal, OracleSpec, StudyError, parse_study
from porelab.active_learning.cli.main import app
from porelab.active_learning.inverse import search as inverse
from porelab.active_learning.inverse.study import load_design_study
from porelab.active_learning.inverse.surrogate_source import load_surrogate
from porelab.sim.design import DesignError, load_design_file
from porelab.surrogate.target_prediction import TargetPrediction as Prediction

runner = CliRunner()


class Known:
    """A surrogate with a known answer: ln ICR (its sign says which orientation rectifies) and the objective
    (`abs_log_icr`, here ln ICR + 7, >= 0) peak at spacing 0.55 nm and grow with groups_per_rim; ln ON current falls
    with the number of layers; the epistemic std grows with |E| (V/nm)."""

    kind = "known"
    targets = ("log_icr", "log_on_current", "abs_log_icr", "log_selectivity")

    def __init__(self):
        self.calls = 0

    def predict(self, cands):
        self.calls += 1
        d = [c.design for c in cands]
        e = np.array([max(abs(x) for x in c.conditions.fields_V_per_nm) for c in cands])
        icr = np.array([-((x.spacing_nm - 0.55) / 0.1) ** 2 + 0.2 * x.groups_per_rim for x in d])
        on = np.array([2.0 - 0.5 * len(x.layers) for x in d])
        sd = 10 * e
        mean = {"log_icr": icr, "log_on_current": on, "abs_log_icr": icr + 7.0, "log_selectivity": icr}
        std = {"log_icr": sd, "log_on_current": 0.1 * sd, "abs_log_icr": sd, "log_selectivity": sd}
        return Prediction(mean, std, std, np.zeros((len(cands), 1)))


def space():
    return parse_study(SMALL).design_space()


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        a, b = rng.integers(0, 8, 60).astype(float), rng.normal(size=60)
        front = set(inverse.pareto_front(a, b).tolist())
        brute = {i for i in range(60)
                 if not any((a[j] >= a[i] and b[j] >= b[i]) and (a[j] > a[i] or b[j] > b[i]) for j in range(60))}
        assert front == brute


def test_rank_is_risk_aware_and_respects_the_constraint():
    s = inverse.score(Known(), space().sample(256, 0), Goal())
    r0 = inverse.rank(s, Goal(), kappa=0.0)
    assert np.all(np.diff(s.mean[r0.order, 0]) <= 0)  # kappa 0: by mean
    r3 = inverse.rank(s, Goal(), kappa=3.0)
    lcb = s.mean[:, 0] - 3 * s.std[:, 0]
    assert np.all(np.diff(lcb[r3.order]) <= 0)
    # caution moves the top pick to a lower field (smaller std) than the mean's favourite
    e = np.array([c.conditions.fields_V_per_nm[0] for c in s.candidates])
    assert e[r3.order[0]] <= e[r0.order[0]]
    asked = np.array([not c.design.is_symmetric() for c in s.candidates])  # ICR: the others are 1
    on_min = float(np.exp(np.median(s.lcb(1.0)[asked, 1])))
    rc = inverse.rank(s, Goal(on_current_min_nA=on_min), kappa=1.0)
    assert rc.feasible.sum() < len(s.candidates)
    assert np.all(np.exp(rc.lcb[rc.order, 1]) >= on_min)
    with pytest.raises(DesignError, match="no candidate has ON current >= 1e"):
        inverse.rank(s, Goal(on_current_min_nA=1e6), kappa=1.0)


def test_screen_is_the_seeded_pool_and_chunking_changes_nothing():
    sp = space()
    a = inverse.screen(sp, Known(), Goal(), 300, seed=5, chunk=7)
    b = inverse.screen(sp, Known(), Goal(), 300, seed=5, chunk=4096)
    c = inverse.screen(sp, Known(), Goal(), 300, seed=5, chunk=64, workers=2)
    np.testing.assert_array_equal(a.mean, c.mean)
    assert [c.design_id for c in a.candidates] == [c.design_id for c in sp.sample(300, 5)]
    np.testing.assert_array_equal(a.mean, b.mean)
    sel = {"objective": "selectivity", "selectivity": {"numerator": ["K+"], "denominator": ["Cl-"]}}
    maximise = inverse.score(Known(), a.candidates, Goal(**sel))
    minimise = inverse.score(Known(), a.candidates, Goal(**sel, maximize=False))
    np.testing.assert_array_equal(minimise.mean[:, 0], -maximise.mean[:, 0])


def test_nsga2_finds_the_known_optimum():
    s = inverse.nsga2(space(), Known(), Goal(), population=24, generations=15, kappa=0.0, seed=1)
    r = inverse.rank(s, Goal(), 0.0)
    best = s.candidates[r.order[0]].design
    assert abs(best.spacing_nm - 0.55) < 0.05 and best.groups_per_rim >= 7
    assert len({c.design_id for c in s.candidates}) == len(s.candidates)  # each design scored once
    front = [s.candidates[i].design for i in r.pareto]
    # the ON-current end of the front: the fewest sheets of a design that is not its own mirror image (one sheet
    # is: its ICR is 1, off the front)
    assert min(len(d.layers) for d in front) == 2 and not any(d.is_symmetric() for d in front)


def test_nsga2_without_pymoo_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymoo.algorithms.moo.nsga2", None)  # as if the extra were not installed
    with pytest.raises(DesignError, match=r"^method nsga2 needs pymoo: pip install 'porelab\[nsga2\]'"):
        inverse.nsga2(space(), Known(), Goal(), population=4, generations=1, kappa=0.0, seed=1)


def test_a_candidate_predicted_to_rectify_the_other_way_is_listed_as_its_mirror_image(tmp_path):
    """Scores.flipped marks a predicted ln ICR below 0; the tables and design files list the mirror image (the same
    design id and simulation), the predicted ICR (exp of |ln ICR|) never below 1."""
    from porelab.active_learning.inverse import report
    from porelab.active_learning.inverse.study import DesignStudy
    from porelab.sim.design import design_id

    doc = {k: v for k, v in SMALL.items() if k not in ("budget", "executor", "model", "acquisition")}
    study = parse_study({**doc, "search": {"top": 40}}, "test", DesignStudy)
    s = inverse.score(Known(), space().sample(64, 3), Goal())
    assert s.flipped.any() and not s.flipped.all()
    np.testing.assert_array_equal(s.flipped, Known().predict(s.candidates).mean["log_icr"] < 0)
    r = inverse.rank(s, Goal(), kappa=1.0)
    rows = report.rows(study, s, r, r.order)
    for row, i in zip(rows, r.order, strict=True):
        c = s.candidates[i]
        layers = c.design.layers[::-1] if s.flipped[i] else c.design.layers
        assert row["mirrored"] == s.flipped[i] and row["layers"] == " ".join(layers) and row["icr_lo"] >= 1.0
    files = report.write(tmp_path, study, s, r, [], {})
    for f in files:
        if f.parent.name == "designs":
            k = int(f.name.split("_")[1]) - 1
            c = s.candidates[r.order[k]]
            d, cond = load_design_file(f)
            assert design_id(d, cond) == c.design_id
            assert d == (c.design.mirrored() if s.flipped[r.order[k]] else c.design)
    assert any(s.flipped[r.order[:40]])


def test_selectivity_needs_a_model_trained_for_it():
    class IcrOnly(Known):
        targets = ("log_icr", "log_on_current", "abs_log_icr")

    goal = Goal(objective="selectivity", selectivity={"numerator": ["K+"], "denominator": ["Cl-"]})
    with pytest.raises(ModelError, match="not log_selectivity"):
        inverse.prepare(IcrOnly(), goal)


def test_the_risk_bound_is_floored_like_the_interval():
    """|ln ICR| - kappa sd below 0 is ICR 1, the floor of the interval beside it, not exp of a negative bound; a
    selectivity has no floor."""
    from porelab.active_learning.inverse import report
    from porelab.active_learning.inverse.study import DesignStudy

    doc = {k: v for k, v in SMALL.items() if k not in ("budget", "executor", "model", "acquisition")}
    icr = parse_study(doc, "test", DesignStudy)
    sel = parse_study({**doc, "goal": {"objective": "selectivity",
                                       "selectivity": {"numerator": ["K+"], "denominator": ["Cl-"]}}},
                      "test", DesignStudy)
    assert report.risk_bound(icr, -0.5) == 1.0 == report.predicted(0.1, 1.0, report.ln_floor(icr))[1]
    assert report.risk_bound(icr, 0.5) == report.risk_bound(sel, 0.5) == pytest.approx(math.exp(0.5))
    assert report.risk_bound(sel, -0.5) == pytest.approx(math.exp(-0.5))


def test_a_verified_on_current_known_only_from_above_prints_as_a_bound():
    """No net current at either sign: the measured ON current is "< x" in verified.csv's flags and the table, and
    the objective, known only from below, "> x"."""
    from al_helpers import UNRESOLVED

    from porelab.active_learning.campaign.space import Candidate
    from porelab.active_learning.campaign.targets import targets
    from porelab.active_learning.cli.design import _iv
    from porelab.active_learning.inverse import report
    from porelab.active_learning.inverse.study import DesignStudy

    doc = {k: v for k, v in SMALL.items() if k not in ("budget", "executor", "model", "acquisition")}
    study = parse_study(doc, "test", DesignStudy)
    m = UNRESOLVED
    c = Candidate(design=m.design, conditions=m.conditions, design_id=m.design_id)
    s = inverse.Scores([c], np.zeros((1, 2)), np.ones((1, 2)), 0.0, np.zeros(1, bool))
    row = report.verified_rows(study, s, [inverse.Verified(1, c, m, targets(m, study.goal), None)])[0]
    on = row["measured_on_current_nA"]
    assert row["measured_on_current_nA_upper_censored"] and not row["measured_on_current_nA_censored"]
    assert row["measured_on_current_nA_lo"] == 0.0 and row["measured_on_current_nA_hi"] == on
    assert _iv(row, "measured_on_current_nA") == f"< {on:.3g}"
    assert row["measured_icr_censored"] and not row["measured_icr_upper_censored"] and _iv(row, "measured_icr") == "> 0"


def test_a_verified_icr_is_measured_in_the_orientation_listed_not_folded():
    """REVERSED rectifies with ON at -E (ICR ~0.25). Listed as drawn (predicted ON at +E) its measured ICR is < 1,
    the prediction's direction wrong; listed as its mirror image (flipped) it is ~4. max(ICR, 1/ICR) would read ~4
    both ways and hide the wrong direction."""
    from al_helpers import REVERSED

    from porelab.active_learning.campaign.space import Candidate
    from porelab.active_learning.campaign.targets import targets
    from porelab.active_learning.inverse import report
    from porelab.active_learning.inverse.study import DesignStudy

    doc = {k: v for k, v in SMALL.items() if k not in ("budget", "executor", "model", "acquisition")}
    study = parse_study(doc, "test", DesignStudy)
    m = REVERSED
    c = Candidate(design=m.design, conditions=m.conditions, design_id=m.design_id)
    icr = {}
    for flipped in (False, True):
        s = inverse.Scores([c], np.zeros((1, 2)), np.ones((1, 2)), 0.0, np.array([flipped]))
        row = report.verified_rows(study, s, [inverse.Verified(1, c, m, targets(m, study.goal), None)])[0]
        icr[flipped] = (row["measured_icr"], row["measured_icr_lo"], row["measured_icr_hi"])
    assert icr[False][2] < 1 < icr[True][1]
    assert icr[True] == pytest.approx((1 / icr[False][0], 1 / icr[False][2], 1 / icr[False][1]))


def test_verify_measures_resumes_and_reports_failures(tmp_path, user_oracle):
    cands = [c for c in space().sample(64, 2) if c.design.groups_per_rim not in (2, 3)][:2]
    bad = [c for c in space().sample(64, 2) if c.design.groups_per_rim == 2][:1]
    log = tmp_path / "calls.log"
    spec = OracleSpec(kind="user", path=f"{user_oracle}:LoggedContinuum",
                      settings={"log": str(log), "faulty": True})
    v = inverse.verify(cands + bad, spec, tmp_path / "verify", Goal())
    assert [x.rank for x in v] == [1, 2, 3]
    assert all(x.measured and math.isfinite(x.measured["log_icr"]) for x in v[:2]), [x.error for x in v]
    assert v[2].measured is None and "exploded on purpose" in v[2].error
    assert len(log.read_text().split()) == 2
    again = inverse.verify(cands, spec, tmp_path / "verify", Goal())  # resumes: no new oracle calls
    assert len(log.read_text().split()) == 2
    assert [x.measured for x in again] == [x.measured for x in v[:2]]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    """A finished small rf campaign with MLflow tracking in a fresh workspace."""
    ws = tmp_path_factory.mktemp("ws")
    study = write_study(ws / "study.yaml")
    r = runner.invoke(app, ["campaign", "run", str(study), "--out", str(ws / "runs" / "small"), "--quiet"],
                      env={"PORELAB_WORKSPACE": str(ws)})
    assert r.exit_code == 0, r.output
    return ws


def test_surrogate_sources_agree(campaign, tmp_path):
    d = campaign / "runs" / "small"
    newest = sorted((d / "models").glob("step_*"))[-1]
    by_dir = load_surrogate(str(d), campaign / "runs", tmp_path / "a")
    by_model = load_surrogate(str(newest), campaign / "runs", tmp_path / "b")
    by_alias = load_surrogate("porelab-small@champion", campaign / "runs", tmp_path / "c")
    assert by_dir.path == newest.resolve() == by_model.path
    assert by_alias.registered["name"] == "porelab-small" and by_dir.registered["version"] == \
        by_alias.registered["version"]
    cands = space().sample(32, 9)
    for s in (by_model, by_alias):
        np.testing.assert_allclose(s.model.predict(cands).mean["log_icr"], by_dir.model.predict(cands).mean["log_icr"])
    with pytest.raises(ModelError, match="RESOURCE_DOES_NOT_EXIST|not found|does not exist"):
        load_surrogate("porelab-small@nosuchalias", campaign / "runs", tmp_path / "d")
    with pytest.raises(ModelError, match="no such model or campaign directory"):
        load_surrogate(str(tmp_path / "nothing" / "here"), campaign / "runs", tmp_path / "e")


def test_design_command_end_to_end(campaign, monkeypatch):
    monkeypatch.setenv("PORELAB_WORKSPACE", str(campaign))
    monkeypatch.chdir(campaign)
    out = campaign / "runs" / "design-small"
    r = runner.invoke(app, ["design", "study.yaml", "--candidates", "512", "--verify", "2", "--quiet"])
    assert r.exit_code == 0, r.output
    for f in ("ranked.csv", "pareto.csv", "pareto.png", "scores.npz", "verified.csv", "summary.json"):
        assert (out / f).stat().st_size > 0, f
    ranked = (out / "ranked.csv").read_text().splitlines()
    assert len(ranked) == 1 + 20 and ranked[1].startswith("1,")
    top_id = ranked[1].split(",")[1]
    design, conditions = load_design_file(next((out / "designs").glob(f"rank_001_{top_id}.yaml")))
    from porelab.sim.design import design_id

    assert design_id(design, conditions) == top_id
    header, top = ranked[0].split(","), ranked[1].split(",")
    assert top[header.index("layers")] == " ".join(design.layers)  # the orientation listed, mirrored or not
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["candidates_scored"] == 512 and summary["metrics"]["oracle_calls"] == 2
    assert summary["surrogate"]["name"] == "porelab-small" and summary["software"]["openmm_version"]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{campaign / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("design-small")
    run = client.search_runs([exp.experiment_id])[0]
    assert run.data.tags["porelab.model_name"] == "porelab-small"
    assert run.data.tags["porelab.model_version"] == summary["surrogate"]["version"]
    assert run.data.metrics["candidates_scored"] == 512
    inputs = client.get_run(run.info.run_id).inputs.model_inputs
    assert [m.model_id for m in inputs] == [summary["surrogate"]["model_id"]]
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ranked.csv", "pareto.png", "verified.csv", "designs"} <= names


@pytest.mark.parametrize("args, needle", [
    (["--surrogate", "nosuch@champion"], "nosuch"),
    (["--out", "../outside"], "outside the workspace"),
    (["--method", "annealing"], "search.method"),
])
def test_design_errors_are_one_line(campaign, monkeypatch, args, needle):
    monkeypatch.setenv("PORELAB_WORKSPACE", str(campaign))
    monkeypatch.chdir(campaign)
    r = runner.invoke(app, ["design", "study.yaml", "--no-tracking", "--quiet", *args])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output.startswith("error:") and needle in r.output


def test_a_campaign_study_is_a_design_study(tmp_path):
    s = load_design_study(write_study(tmp_path / "s.yaml"))
    assert s.surrogate == "runs/small" and s.search.method == "screen"
    doc = yaml.safe_load((tmp_path / "s.yaml").read_text())
    doc.pop("budget")
    doc["search"] = {"kappa": -1}
    (tmp_path / "d.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(StudyError, match="search.kappa"):
        load_design_study(tmp_path / "d.yaml")


def test_a_mirror_symmetric_design_is_never_proposed_for_icr():
    """Its ICR is 1 by symmetry: a surrogate's folded |ln ICR| (positive for any spread) must not rank it, nor put it
    on the Pareto front; for another objective it stays."""
    cands = space().sample(256, 0)
    sym = np.array([c.design.is_symmetric() for c in cands])
    assert sym.any() and not sym.all()
    s = inverse.score(Known(), cands, Goal())
    s.mean[sym, 0] += 100.0  # the surrogate's favourites are the symmetric ones
    r = inverse.rank(s, Goal(), kappa=1.0)
    assert not sym[r.order].any() and not sym[r.pareto].any() and len(r.order) == (~sym).sum()
    with pytest.raises(DesignError, match="mirror-symmetric"):
        inverse.rank(replace(s, candidates=[cands[i] for i in np.flatnonzero(sym)], mean=s.mean[sym],
                             std=s.std[sym], flipped=s.flipped[sym]), Goal(), kappa=1.0)
    sel = inverse.rank(s, Goal(objective="selectivity", selectivity={"numerator": ["K+"], "denominator": ["Cl-"]}),
                       kappa=1.0)
    assert sym[sel.order[0]]


def test_verify_unmeasured_in_skips_what_a_dataset_holds(campaign, monkeypatch):
    """`verify_unmeasured_in`: the oracle runs on the best designs the named directory holds no measurement of."""
    monkeypatch.setenv("PORELAB_WORKSPACE", str(campaign))
    monkeypatch.chdir(campaign)
    first = runner.invoke(app, ["design", "study.yaml", "--candidates", "256", "--verify", "1", "--quiet",
                                "--no-tracking", "--out", "runs/d1"])
    assert first.exit_code == 0, first.output
    doc = yaml.safe_load((campaign / "study.yaml").read_text())
    (campaign / "s2.yaml").write_text(yaml.safe_dump({**doc, "verify_unmeasured_in": "runs/d1/verify"},
                                                     sort_keys=False))  # the space's order: the same pool
    r = runner.invoke(app, ["design", "s2.yaml", "--candidates", "256", "--verify", "1", "--quiet", "--no-tracking",
                            "--out", "runs/d2"])
    assert r.exit_code == 0, r.output
    assert "the best design not measured in runs/d1/verify (1 ranked above it measured there)" in \
        " ".join(r.output.split())
    ranked = [ln.split(",")[1] for ln in (campaign / "runs/d2/ranked.csv").read_text().splitlines()[1:3]]
    verified = [ln.split(",")[1] for ln in (campaign / "runs/d2/verified.csv").read_text().splitlines()[1:]]
    assert verified == [ranked[1]]
