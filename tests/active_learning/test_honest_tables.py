"""Every measured value a person reads carries its 95 % interval, "best" is ranked by the objective's pessimistic
bound, a censored value prints as "> x", and a mirror-symmetric stack can never top an ICR table by noise: the
campaign summary, `porelab campaign status`, and the measured values logged to MLflow."""

import json
import math

import pytest
import yaml
from al_helpers import CENSORED, DECISIVE, SMALL, SYMMETRIC_NOISY, WIDE, md
from typer.testing import CliRunner

from porelab.active_learning.campaign.directory import LEDGER_FILE, create
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.measured import interval, measured, ranked, row_of
from porelab.active_learning.campaign.study import Goal, parse_study
from porelab.active_learning.campaign.summary import summarize
from porelab.active_learning.campaign.targets import targets
from porelab.active_learning.cli.main import app
from porelab.sim.measurement import Measurement
from porelab.sim.observables import Interval

runner = CliRunner()


def ledger_with(tmp_path, *ms: Measurement, goal: dict | None = None):
    doc = {**SMALL, "goal": goal or {}}
    study = parse_study(doc)
    d = create(study, tmp_path / "camp")
    led = Ledger(d / LEDGER_FILE)
    for m in ms:
        led.add_trial(m.design_id, m.design.model_dump(mode="json"), m.conditions.model_dump(mode="json"), 0,
                      "initial")
        led.start(m.design_id)
        led.finish(m.design_id, "completed", m.to_json(), "md", targets(m, study.goal))
    return d, led, study


def test_intervals_come_from_the_measurement_and_censored_values_are_lower_bounds():
    t = targets(CENSORED, Goal())
    icr = interval(t, "log_icr")
    assert icr.censored and icr.high is None and str(icr) == f"> {icr.low:.3g}"
    r = CENSORED.icr[0]
    assert r.icr_censored and icr.low == pytest.approx(r.icr_ci[0])
    ok = interval(targets(DECISIVE, Goal()), "log_icr")
    r = DECISIVE.icr[0]
    assert not ok.censored and (ok.low, ok.value, ok.high) == pytest.approx((r.icr_ci[0], r.icr, r.icr_ci[1]))
    assert str(ok) == f"{r.icr:.3g} [{r.icr_ci[0]:.3g}, {r.icr_ci[1]:.3g}]"
    on = interval(t, "log_on_current")
    assert on.low <= on.value <= on.high


def test_best_is_ranked_by_the_lower_bound_and_a_symmetric_stack_never_tops_by_noise(tmp_path):
    assert SYMMETRIC_NOISY.design.is_symmetric() and SYMMETRIC_NOISY.icr[0].icr > DECISIVE.icr[0].icr
    assert WIDE.icr[0].icr > DECISIVE.icr[0].icr > 1 and WIDE.icr[0].icr_ci[0] < DECISIVE.icr[0].icr_ci[0]
    d, led, study = ledger_with(tmp_path, SYMMETRIC_NOISY, WIDE, CENSORED, DECISIVE)
    s = summarize(led, study)
    order = [b["design_id"] for b in s["best"]]
    assert order[0] == DECISIVE.design_id and order[-1] == SYMMETRIC_NOISY.design_id  # by bound; symmetric last
    lows = [b["icr_lo"] for b in s["best"][:-1]]
    assert lows == sorted(lows, reverse=True)
    top = s["best"][0]
    assert (s["best_objective"], s["best_objective_lo"], s["best_objective_hi"]) == (
        top["icr"], top["icr_lo"], top["icr_hi"]) and top["icr_lo"] <= top["icr"] <= top["icr_hi"]
    assert s["best"][-1]["symmetric"] and top["measured_by"] == "md, crossings"
    json.dumps(s)  # plain numbers, JSON-able
    led.close()
    r = runner.invoke(app, ["campaign", "status", str(d)], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    r0 = DECISIVE.icr[0]
    assert f"{r0.icr:.3g} [{r0.icr_ci[0]:.3g}, {r0.icr_ci[1]:.3g}]" in text  # the value with its interval
    assert f"> {CENSORED.icr[0].icr_ci[0]:.3g}" in text and "best first by the lower bound of max(ICR, 1/ICR)" in text
    assert "mirror-symmetric" in text and text.index(DECISIVE.design_id) < text.index(SYMMETRIC_NOISY.design_id)


def test_minimising_ranks_by_the_upper_bound_and_a_censored_value_last():
    """Selectivity K+/Cl- minimised (an ICR goal always maximises): DECISIVE's (400/300, narrow) before WIDE's
    (15/10, wide), and a selectivity known only from below (no Cl- transit: "> x") last."""
    goal = Goal(objective="selectivity", selectivity={"numerator": ["K+"], "denominator": ["Cl-"]}, maximize=False)
    no_cl = md(["NH3+", "OH"], (40, 0, 0, 0), (0, 0, 0, 0))
    rows = [row_of(m, targets(m, goal)) for m in (no_cl, WIDE, DECISIVE)]
    out = ranked(rows, goal)
    assert [m.design_id for m in out] == [DECISIVE.design_id, WIDE.design_id, no_cl.design_id]
    assert out[-1].objective.censored
    assert out[0].rank_bound == pytest.approx(-math.log(out[0].objective.high))
    assert out[-1].rank_bound == -math.inf


def test_rows_written_before_targets_had_intervals_are_read_from_the_measurement():
    old = {k: v for k, v in targets(DECISIVE, Goal()).items() if not k.endswith(("_lo", "_hi"))}
    m = measured(row_of(DECISIVE, old), Goal())
    r = DECISIVE.icr[0]
    assert (m.icr.low, m.icr.high) == pytest.approx(r.icr_ci)


def test_interval_format_is_the_one_formatter():
    assert str(Interval(2.13, 0.74, 10.5)) == "2.13 [0.74, 10.5]"
    assert str(Interval(1.5, 1.5, None, True)) == "> 1.5"


def test_mlflow_simulation_runs_log_bounds_beside_each_measured_value(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    from mlflow.tracking import MlflowClient

    from porelab.active_learning.tracking.view import MlflowView

    d, led, study = ledger_with(tmp_path / "ws", DECISIVE, CENSORED)
    (d / "study.yaml").write_text(yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    MlflowView(d).sync(led)
    led.close()
    client = MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    runs = {r.data.tags["porelab.design_id"]: r.data.metrics for r in client.search_runs(
        [client.get_experiment_by_name("camp").experiment_id]) if r.data.tags.get("porelab.kind") == "simulation"}
    ok, cens = runs[DECISIVE.design_id], runs[CENSORED.design_id]
    for key in ("icr", "on_current_nA", "current_nA_E1", "current_nA_E-1", "icr_E1", "log_icr"):
        assert ok[f"{key}_lo"] <= ok[key] <= ok[f"{key}_hi"], key
    assert "icr_hi" not in cens and "icr_E1_hi" not in cens and cens["icr_lo"] == cens["icr"]  # censored
