"""Campaigns end to end on the continuum oracle (rf model, 2 local workers)."""

import json
import math

import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.directory import CampaignError, create
from porelab.active_learning.campaign.driver import Campaign, candidate_pool
from porelab.active_learning.campaign.executors import LocalExecutor, Task
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import load_study
from porelab.sim.design import Design


def run_campaign(tmp_path, name="c", **changes):
    study = load_study(write_study(tmp_path / f"{name}.yaml", **changes))
    d = create(study, tmp_path / name)
    summary = Campaign(d, log=lambda m: None).run()
    return d, summary


def picks(directory):
    led = Ledger(directory / "ledger.sqlite")
    out = [(t.design_id, t.round, t.status) for t in led.trials()]
    led.close()
    return out


@pytest.mark.parametrize("acq", ["ucb", "ei"])
def test_same_seed_same_picks(tmp_path, acq):
    a, sa = run_campaign(tmp_path, "a", acquisition={"kind": acq})
    b, _ = run_campaign(tmp_path, "b", acquisition={"kind": acq})
    assert sa["completed"] == 12 and sa["finished"] == "budget"
    assert picks(a) == picks(b)  # two workers, results arriving in any order: the same designs, rounds, order
    assert [r for _, r, _ in picks(a)] == [0] * 4 + [1] * 4 + [2] * 4
    led = Ledger(a / "ledger.sqlite")
    assert not any(Design.model_validate(t.design).is_symmetric() for t in led.trials())  # ICR = 1: never run
    led.close()


def test_icr_pools_leave_out_symmetric_designs_selectivity_pools_keep_them(tmp_path):
    """A mirror-symmetric design has ICR = 1 by symmetry: an ICR campaign never spends a simulation on it."""
    study = load_study(write_study(tmp_path / "s.yaml"))
    full = study.design_space().sample(study.acquisition.pool_size, study.seed)
    pool, dropped = candidate_pool(study)
    symmetric = [c for c in full if c.design.is_symmetric()]
    assert symmetric and dropped == len(symmetric) and len(pool) == len(full) - dropped
    assert not any(c.design.is_symmetric() for c in pool)
    assert [c.design_id for c in pool] == [c.design_id for c in full if not c.design.is_symmetric()]  # in order
    sel = load_study(write_study(tmp_path / "t.yaml", goal={"objective": "selectivity", "selectivity": {
        "numerator": ["K+"], "denominator": ["Cl-"]}}))
    assert candidate_pool(sel) == (full, 0)
    only = load_study(write_study(tmp_path / "u.yaml", space={"layers": {"choices": [["COO-"], ["OH", "OH"]]}}))
    with pytest.raises(CampaignError, match="every design of the space .* is mirror-symmetric"):
        candidate_pool(only)


def test_batch_refill_waits_for_each_round(tmp_path):
    d, s = run_campaign(tmp_path, executor={"refill": "batch"}, budget={"simulations": 10, "initial": 4, "batch": 3})
    led = Ledger(d / "ledger.sqlite")
    its = led.iterations()
    # iteration k trains on rounds < k: 4 then 7 designs, then the final model on all 10
    assert [it["n_train"] for it in its] == [0, 4, 7, 10]
    assert [it["metrics"]["picks"] for it in its] == [4, 3, 3, 0]
    assert s["completed"] == 10 and len(led.models()) == 3
    led.close()


def test_dispatch_is_idempotent(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml"))
    cand = study.design_space().sample(4, 0)[0]
    d = create(study, tmp_path / "c")
    led = Ledger(d / "ledger.sqlite")
    row = dict(design_id=cand.design_id, design=cand.design.model_dump(mode="json"),
               conditions=cand.conditions.model_dump(mode="json"), round=0, source="initial")
    assert led.add_trials([row, row]) == 1 and led.add_trial(**row) is False
    ex = LocalExecutor(workers=1)
    task = Task(cand.design_id, row["design"], row["conditions"], {"kind": "continuum"}, str(d / "runs" / "x"))
    assert ex.submit(task) is True and ex.submit(task) is False  # keyed by design id
    (first,) = ex.wait(timeout=60)
    assert first.error is None and not first.reused
    assert ex.submit(task) is True  # run again: the worker finds measurement.json and does not simulate
    (second,) = ex.wait(timeout=60)
    ex.close()
    assert second.reused and second.measurement == first.measurement
    assert len(led.trials()) == 1
    led.close()


def test_faulty_oracle_fails_and_abandons_with_reasons_and_goes_on(tmp_path, user_oracle):
    log = tmp_path / "calls.log"
    d, s = run_campaign(tmp_path, oracle={"kind": "user", "path": f"{user_oracle}:LoggedContinuum",
                                          "settings": {"log": str(log), "faulty": True}},
                        budget={"simulations": 16, "initial": 8, "batch": 4}, executor={"max_attempts": 2})
    led = Ledger(d / "ledger.sqlite")
    trials = led.trials()
    by = {st: [t for t in trials if t.status == st] for st in ("completed", "failed", "abandoned")}
    assert by["failed"] and by["abandoned"] and by["completed"], [t.status for t in trials]
    for t in by["failed"]:
        assert t.design["groups_per_rim"] == 2 and t.attempts == 2
        assert "RuntimeError: solver exploded on purpose (after 2 attempts)" in t.error
        assert led.measurement(t.design_id) is None  # nothing recorded as a current
    for t in by["abandoned"]:
        assert t.design["groups_per_rim"] == 3 and "non-finite current" in t.error
        assert led.measurement(t.design_id).status == "failed" and led.measurement(t.design_id).targets is None
    assert s["finished"] == "budget" and len(trials) == 16  # the campaign went on to its budget
    # the user oracle ran from its file path: one log line per measured (not raising) design
    assert sorted(log.read_text().split()) == sorted(t.design_id for t in by["completed"] + by["abandoned"])
    led.close()


def test_directory_holding_a_campaign_is_not_reused(tmp_path):
    d, _ = run_campaign(tmp_path)
    with pytest.raises(CampaignError, match="already holds a campaign; continue it with `porelab campaign resume"):
        create(load_study(tmp_path / "c.yaml"), d)


def test_resume_of_a_finished_campaign_does_nothing_and_budget_extends(tmp_path):
    d, s = run_campaign(tmp_path)
    before = picks(d)
    s2 = Campaign(d, log=lambda m: None).run()
    assert picks(d) == before and s2["completed"] == 12
    s3 = Campaign(d, log=lambda m: None, budget=16).run()
    after = picks(d)
    assert after[:12] == before and len(after) == 16 and s3["completed"] == 16
    led = Ledger(d / "ledger.sqlite")
    steps = [it["step"] for it in led.iterations()]
    assert steps == sorted(set(steps)) and steps[0] == 0
    led.close()


def test_target_stops_the_campaign(tmp_path):
    d, s = run_campaign(tmp_path, goal={"target": 1.01}, budget={"simulations": 40, "initial": 8, "batch": 4})
    assert s["finished"] == "target" and s["best_objective"] >= 1.01 and s["trials"] < 40
    assert all(json.loads(json.dumps(b))["icr"] > 0 for b in s["best"])
    assert not math.isnan(s["best_objective"])


def test_a_refused_start_releases_the_directory(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml"))
    d = create(study, tmp_path / "c")
    (d / "study.yaml").write_text((d / "study.yaml").read_text().replace("seed: 3", "seed: 4"))
    for _ in range(2):  # refused again for the same reason, not because the first attempt still holds the lock
        with pytest.raises(CampaignError, match="was changed after the campaign started"):
            Campaign(d, log=lambda m: None).run()


def test_the_progress_line_says_when_the_wall_clock_is_spent_and_the_runs_going_finish(tmp_path, user_oracle):
    study = load_study(write_study(tmp_path / "w.yaml", oracle={
        "kind": "user", "path": f"{user_oracle}:LoggedContinuum",
        "settings": {"log": str(tmp_path / "calls.log"), "delay_s": 1.0}},
        budget={"simulations": 12, "initial": 4, "batch": 4, "wall_clock_min": 0.025}))
    lines = []
    summary = Campaign(create(study, tmp_path / "w"), log=lines.append).run()
    done = [x for x in lines if x.startswith("done")]
    assert summary["completed"] == len(done) < 12 and summary["finished"] is None  # stopped by the clock
    assert "wall-clock budget reached: the runs going finish" in done[-1]  # the last run ended after 1.5 s
    assert not any("ETA ~-" in x for x in lines)
