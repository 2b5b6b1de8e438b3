"""A study with a fidelity ladder: a cheap biased twin below the target oracle (benchmarks/landscapes.py). The
campaign measures round 0 at both, learns them jointly, predicts at the target, chooses each pick's fidelity by
value per cost with costs measured from the ledger, respects the cheap rung's cap, and judges (best design,
prospective error) by the target's measurements only."""

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from porelab.active_learning.campaign.directory import LEDGER_FILE
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.iteration import Snapshot, choose_fidelities
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.oracles import OracleError, Rung, ladder
from porelab.active_learning.campaign.study import StudyError, load_study, parse_study

LANDSCAPES = Path(__file__).resolve().parents[2] / "benchmarks" / "landscapes.py"


def ladder_study(tmp_path, **rung) -> Path:
    doc = {
        "name": "ladder", "seed": 1, "preset": "tiny",
        "base": {"conditions": {"electrolyte": {"K+": 1.0, "Cl-": 1.0}}},
        "space": {"layers": {"sequence": ["COO-", "NH3+", "none"], "length": [2, 4]},
                  "spacing_nm": {"low": 0.24, "high": 0.8},
                  "field_V_per_nm": {"low": 0.05, "high": 2.0, "log": True}},
        "oracle": {"kind": "user", "path": f"{LANDSCAPES}:NarrowJanus", "settings": {"cost_s": 0.3}},
        "fidelities": [{"kind": "user", "path": f"{LANDSCAPES}:NarrowJanusTwin", "settings": {},
                        "initial": 8, "simulations": 14, "threshold": 0.01, **rung}],
        "budget": {"simulations": 8, "initial": 3, "batch": 4},
        "executor": {"kind": "local", "workers": 2, "refill": "batch"},
        "model": {"kind": "rf", "params": {"n_estimators": 60}},
        "acquisition": {"kind": "ucb", "pool_size": 256},
    }
    path = tmp_path / "ladder.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_ladder_campaign_spends_cheap_evaluations_where_they_inform_and_judges_by_the_target(tmp_path):
    study = ladder_study(tmp_path)
    lines = []
    summary = Campaign.from_study(study, tmp_path / "c", log=lines.append).run()
    led = Ledger(tmp_path / "c" / LEDGER_FILE)
    try:
        trials = led.trials()
        by = {f: [t for t in trials if t.fidelity == f] for f in (None, "twin")}
        assert len(by[None]) == 8 and summary["completed"] == len(trials)  # the budget counts the target's trials
        assert [t.fidelity for t in trials if t.round == 0].count(None) == 3
        assert [t.fidelity for t in trials if t.round == 0].count("twin") == 8
        assert 8 < len(by["twin"]) <= 14  # picks at the twin after round 0, within its own cap
        assert "initial design: 11 designs from the quasi-random pool (8 at twin, 3 at landscape)" in lines
        done = [x for x in lines if x.startswith("done")]
        assert len(done) == len(trials) and ", twin: ICR" in done[0] and "(landscape 0/8, twin 1/14)" in done[0]
        assert "ETA after the first landscape run" in done[0] and "ETA ~" in done[-2]  # an ETA once costs are known
        rows = led.measurements()
        assert {r.fidelity for r in rows if r.rung == "twin"} == {"twin"}
        assert {r.fidelity for r in rows if r.rung is None} == {"landscape"}
        stats = led.rung_stats()
        assert stats[None]["median_busy_s"] >= 0.3 > stats["twin"]["median_busy_s"]  # costs measured
        its = [i["metrics"] for i in led.iterations()[1:] if i["metrics"].get("picks")]
        assert its and all(m["cost_s_landscape"] >= 0.3 and m["cost_s_twin"] < 0.3 for m in its)
        assert sum(m["picks_at_twin"] for m in its) == len(by["twin"]) - 8
        # the prospective error and the best design come from the target's measurements only
        target_ids = {t.design_id for t in by[None]}
        assert summary["best"] and all(b["design_id"] in target_ids for b in summary["best"][:len(by[None])])
        picked = [t for t in by[None] if t.round >= 1]
        assert sum(r["n"] for r in summary["rounds"]) == len(picked)  # prospective error: the target's picks only
        final = led.iterations()[-1]["metrics"]
        assert final["heldout_n"] <= len([t for t in by[None] if t.round > 0])
        best_target = max(r.targets["abs_log_icr"] for r in rows if r.rung is None)
        assert final["best_objective"] == pytest.approx(math.exp(best_target))
    finally:
        led.close()


def test_the_fidelity_of_a_pick_follows_value_per_cost_and_the_threshold():
    """choose_fidelities on a stub model: the twin is chosen while its std exceeds the threshold and it is much
    cheaper; when it costs as much as the target, or knows x already (std below threshold), the target is."""

    class Pred:
        def __init__(self, sd):
            self.epistemic = {"log_icr": np.asarray(sd, float)}

    class Model:
        def __init__(self, sd):
            self.sd = sd

        def predict(self, picks, fidelity=None):
            return Pred(self.sd)

    rungs = [Rung("twin", {}, {}, threshold=0.1, simulations=None), Rung("md", {}, {})]
    target = Pred([0.5, 0.5, 0.5])
    idx = np.arange(3)

    def snap(cost_twin, cost_md, twin_trials=0):
        return Snapshot([], {}, {}, frozenset(), rungs={"twin": {"trials": twin_trials, "median_busy_s": cost_twin},
                                                        None: {"trials": 3, "median_busy_s": cost_md}})

    fids, at = choose_fidelities(Model([0.4, 0.05, 0.4]), [None] * 3, target, idx, rungs, snap(1.0, 100.0),
                                 "log_icr")
    assert fids == ["twin", None, "twin"] and at[0][1] == 0 and at[1] == (target, 1)
    fids, _ = choose_fidelities(Model([0.4, 0.4, 0.4]), [None] * 3, target, idx, rungs, snap(100.0, 100.0),
                                "log_icr")
    assert fids == [None, None, None]  # as costly as the target, it can only tell less
    capped = [Rung("twin", {}, {}, threshold=0.1, simulations=5), rungs[1]]
    fids, _ = choose_fidelities(Model([0.4, 0.4, 0.4]), [None] * 3, target, idx, capped, snap(1.0, 100.0, 4),
                                "log_icr")
    assert fids == ["twin", None, None]  # one left under its cap


def test_a_ladder_is_validated_in_one_line(tmp_path):
    with pytest.raises(StudyError, match=r"fidelities.0.initial"):
        load_study(ladder_study(tmp_path, initial=-1))
    doc = yaml.safe_load(ladder_study(tmp_path).read_text())
    doc["fidelities"][0]["path"] = f"{LANDSCAPES}:NarrowJanus"  # the target's own fidelity again
    with pytest.raises(OracleError, match="two oracles of fidelity 'landscape'"):
        ladder(parse_study(doc))
    doc["acquisition"]["kind"] = "grid"
    with pytest.raises(StudyError, match="a grid study measures every point at its oracle"):
        parse_study(doc)
