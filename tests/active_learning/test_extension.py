"""Extension as an acquisition choice: a round may run an existing, undecided run on to a longer length instead of
starting a new design, by value per cost. The run resumes in its directory, the ledger keeps every version of the
measurement, an extension counts as a simulation of the budget, and a killed driver neither loses nor reuses a
too-short result for it."""

import json

import numpy as np
import pytest
import yaml
from al_helpers import COND, COUNTING_MD, DECISIVE, SMALL, WIDE, md

from porelab.active_learning.campaign.directory import LEDGER_FILE, CampaignError
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.executors import Task, run_task, task_identity
from porelab.active_learning.campaign.ingest import recover
from porelab.active_learning.campaign.iteration import Parsed, Snapshot, choose_extensions, extension_options
from porelab.active_learning.campaign.ledger import IllegalTransition, Ledger
from porelab.active_learning.campaign.oracles import OracleError, extended, make_oracle, reaches
from porelab.active_learning.campaign.study import Goal, StudyError, parse_study
from porelab.active_learning.campaign.targets import targets
from porelab.sim.measurement import Measurement, RunRecord


def with_run(m: Measurement, ps: float, stopped: str = "fixed") -> Measurement:
    return m.model_copy(update={"run": RunRecord(rule={}, production_ps=ps, stopped=stopped, reason="", cpu_s=0.0,
                                                 wall_s=0.0)})


def completed_ledger(tmp_path, *ms, busy=10.0):
    led = Ledger(tmp_path / "l.sqlite")
    for m in ms:
        led.add_trial(m.design_id, m.design.model_dump(mode="json"), m.conditions.model_dump(mode="json"), 0, "initial")
        led.start(m.design_id)
        led.finish(m.design_id, "completed", m.to_json(), "md", targets(m, Goal()), busy_s=busy)
    return led


def test_the_ledger_keeps_every_version_and_counts_an_extension_as_a_simulation(tmp_path):
    short, long = with_run(WIDE, 10.0), with_run(WIDE, 20.0)
    led = completed_ledger(tmp_path, short)
    i = short.design_id
    assert led.n_trials(True) == 1 and len(led.versions(i)) == 1
    led.extend(i, 20.0, 1)
    t = led.trial(i)
    assert (t.status, t.extend_ps, t.extensions, t.round) == ("candidate", 20.0, 1, 0)
    assert led.n_trials(True) == 2 and led.rung_stats()[None]["finished"] == 1
    assert json.loads(led.measurement(i).json)["run"]["production_ps"] == 10.0  # still there while it runs
    led.start(i)
    led.finish(i, "completed", long.to_json(), "md", targets(long, Goal()), busy_s=7.0)
    assert led.trial(i).busy_s == 17.0 and led.rung_stats()[None]["finished"] == 2
    assert json.loads(led.measurement(i).json)["run"]["production_ps"] == 20.0
    assert [json.loads(v["json"])["run"]["production_ps"] for v in led.versions(i)] == [10.0, 20.0]
    assert [e["kind"] for e in led.events() if e["design_id"] == i][-3:] == ["extend", "running", "completed"]
    # an extension that fails leaves the trial completed with the measurement it extended
    led.extend(i, 40.0, 2)
    led.start(i)
    bad = Measurement.failed(long.design, long.conditions, "md", "blew up")
    led.finish(i, "abandoned", bad.to_json(), "md", error="blew up", busy_s=1.0)
    t = led.trial(i)
    assert t.status == "completed" and "extension to 40 ps per field abandoned: blew up" in t.error
    assert json.loads(led.measurement(i).json)["run"]["production_ps"] == 20.0
    assert [v["status"] for v in led.versions(i)] == ["ok", "ok", "failed"]
    with pytest.raises(IllegalTransition, match="only a completed trial"):
        led.add_trial("x" * 16, short.design.model_dump(mode="json"), COND.model_dump(mode="json"), 0, "initial",
                      fidelity="twin")
        led.extend("x" * 16, 20.0, 1)
    led.close()


def test_a_snapshot_brought_up_to_date_from_the_ledger_events_equals_one_read_in_full(tmp_path):
    """The driver's snapshot reads only the trials changed since its last read (Parsed.update): after every kind of
    change (new trial, start, finish, failure, extension and its end, a failed extension) it equals a full read."""
    short, long, other = with_run(WIDE, 10.0), with_run(WIDE, 20.0), with_run(DECISIVE, 10.0)
    led, goal = completed_ledger(tmp_path, short), Goal()
    parsed = Parsed()

    def same():
        inc, full = Snapshot.read(led, goal, parsed), Snapshot.read(led, goal)
        assert [(r.design_id, r.json, r.targets, r.extensions) for r in inc.measured] == \
               [(r.design_id, r.json, r.targets, r.extensions) for r in full.measured]
        assert (inc.predicted, inc.busy_s, inc.known_ids, inc.counts) == \
               (full.predicted, full.busy_s, full.known_ids, full.counts)
        return inc

    assert len(same().measured) == 1
    d = other.design_id
    led.add_trial(d, other.design.model_dump(mode="json"), COND.model_dump(mode="json"), 1, "ucb",
                  prediction={"log_icr": {"mean": 0.1, "std": 0.2}})
    assert d in same().known_ids
    led.start(d)
    led.finish(d, "completed", other.to_json(), "md", targets(other, Goal()), busy_s=3.0)
    assert same().busy_s[d] == 3.0
    i = short.design_id
    led.extend(i, 20.0, 2)
    assert i not in same().busy_s  # not completed while it runs on, its measurement so far still read
    led.start(i)
    led.finish(i, "completed", long.to_json(), "md", targets(long, Goal()), busy_s=7.0)
    assert json.loads(next(r.json for r in same().measured if r.design_id == i))["run"]["production_ps"] == 20.0
    led.extend(i, 40.0, 3)
    led.start(i)
    led.finish(i, "abandoned", Measurement.failed(long.design, long.conditions, "md", "x").to_json(), "md",
               error="x", busy_s=1.0)
    led.add_trial("f" * 16, short.design.model_dump(mode="json"), COND.model_dump(mode="json"), 3, "ucb")
    led.start("f" * 16)
    led.finish("f" * 16, "failed", None, "md", error="boom")
    assert len(same().measured) == 2
    led.close()


def test_only_undecided_contenders_are_offered_and_value_per_cost_decides(tmp_path):
    study = parse_study({**SMALL, "oracle": {"kind": "md", "settings": {}}, "acquisition": {"extend_max_ps": 30}})
    weak = with_run(md(["none", "COO-"], (100, 0, 0, 100), (0, 150, 150, 0)), 10.0)  # below the best
    decided = with_run(md(["NH3+", "none"], (40, 0, 0, 30), (0, 20, 15, 0)), 10.0, "decisive")
    led = completed_ledger(tmp_path, with_run(DECISIVE, 10.0), with_run(WIDE, 20.0), weak, decided)
    snap = Snapshot.read(led)
    opts = {o["design_id"]: o for o in extension_options(snap, study)}
    assert set(opts) == {DECISIVE.design_id, WIDE.design_id}  # weak cannot pass the best bound; decided is done
    t = targets(WIDE, Goal())
    s = (t["abs_log_icr_hi"] - t["abs_log_icr_lo"]) / 3.92
    assert opts[WIDE.design_id]["extend_ps"] == 30.0  # doubled, but capped
    assert opts[WIDE.design_id]["value"] == pytest.approx(s ** 2 * (1 - 20 / 30))
    assert opts[WIDE.design_id]["cost_s"] == pytest.approx(10.0 * 10 / 20)  # its own seconds per ps
    assert opts[DECISIVE.design_id]["extend_ps"] == 20.0
    best = max(o["value"] / o["cost_s"] for o in opts.values())
    keep, ext = choose_extensions(snap, study, np.array([best * 2, best / 2, np.inf]), 3)
    assert keep == [0, 2] and len(ext) == 1 and ext[0]["round"] == 3 and ext[0]["score"] == pytest.approx(best)
    keep, ext = choose_extensions(snap, study, np.array([best * 2, np.inf]), 3)
    assert keep == [0, 1] and ext == []  # a new design is worth more per second; a cheaper rung's pick stays
    led.close()


def test_a_worker_and_a_resumed_driver_never_take_a_short_run_for_its_extension(tmp_path):
    short = with_run(WIDE, 10.0)
    assert reaches(short, None) and reaches(short, 10.0) and not reaches(short, 20.0)
    assert reaches(with_run(WIDE, 10.0, "decisive"), 20.0)  # the rule decided: longer would not be asked
    spec = {"kind": "md", "settings": {"until": "decisive", "max_production_ps": 50.0}, "path": None}
    key, fixed_key = (make_oracle("md", s).length_setting for s in (spec["settings"], {}))
    assert extended(spec, 100.0, key)["settings"] == {"until": "decisive", "max_production_ps": 100.0}
    assert extended({**spec, "settings": {}}, 100.0, fixed_key)["settings"] == {"production_ps": 100.0}
    continuum = make_oracle("continuum")
    with pytest.raises(OracleError, match="cannot extend"):
        extended({"kind": "continuum", "settings": {}, "path": None}, 20.0, getattr(continuum, "length_setting", None))
    # the worker: a saved measurement answers a first run, not an extension (the oracle resumes from its state)
    oracle = tmp_path / "counting.py"
    oracle.write_text(COUNTING_MD)
    log = tmp_path / "calls.log"
    spec = {"kind": "user", "path": f"{oracle}:CountingMD", "settings": {"log": str(log), "production_ps": 10.0}}
    run_dir = tmp_path / "runs" / WIDE.design_id
    args = (WIDE.design_id, WIDE.design.model_dump(mode="json"), COND.model_dump(mode="json"))
    first = run_task(Task(*args, spec, str(run_dir)))
    again = run_task(Task(*args, spec, str(run_dir)))
    assert first.error is None and again.reused
    ext = run_task(Task(*args, extended(spec, 20.0, "production_ps"), str(run_dir), extend_ps=20.0))
    assert not ext.reused and Measurement.model_validate_json(ext.measurement).run.production_ps == 20.0
    assert log.read_text().split("\n")[:2] == [f"{WIDE.design_id} 0 10", f"{WIDE.design_id} 10 20"]
    # a driver killed during an extension: the saved 20 ps result answers an extension to 20 ps, not to 40 ps
    led = completed_ledger(tmp_path, short)
    for to, status in ((20.0, "completed"), (40.0, "candidate")):
        led.extend(WIDE.design_id, to, 1)
        led.start(WIDE.design_id)
        found = recover(led, tmp_path, {None: task_identity(spec)})
        assert led.trial(WIDE.design_id).status == ("running" if found else "candidate") and bool(found) == \
            (status == "completed")
        if found:
            led.finish(WIDE.design_id, "completed", found[0].measurement, "md", targets(WIDE, Goal()), busy_s=1.0)
    led.close()


def extension_study(tmp_path, **acq) -> dict:
    oracle = tmp_path / "counting.py"
    oracle.write_text(COUNTING_MD)
    return {**SMALL, "name": "extend", "seed": 5,
            "oracle": {"kind": "user", "path": f"{oracle}:CountingMD",
                       "settings": {"log": str(tmp_path / "calls.log"), "production_ps": 10.0}},
            "budget": {"simulations": 14, "initial": 6, "batch": 4},
            "acquisition": {"kind": "ucb", "pool_size": 256, **acq}}


def test_a_campaign_extends_undecided_runs_in_place_within_its_budget(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(extension_study(tmp_path, extend_max_ps=40.0)))
    lines = []
    Campaign.from_study(f, tmp_path / "c", log=lines.append).run()
    led = Ledger(tmp_path / "c" / LEDGER_FILE)
    try:
        ext = [t for t in led.trials() if t.extensions]
        assert ext, "no extension was chosen"
        assert led.n_trials(True) == 14 and len(led.trials()) == 14 - sum(t.extensions for t in ext)
        calls = [line.split() for line in (tmp_path / "calls.log").read_text().splitlines()]
        for t in ext:
            versions = led.versions(t.design_id)
            lengths = [json.loads(v["json"])["run"]["production_ps"] for v in versions]
            assert len(versions) == 1 + t.extensions and lengths == sorted(lengths) and lengths[-1] == t.extend_ps
            assert json.loads(led.measurement(t.design_id).json)["run"]["production_ps"] == t.extend_ps
            mine = [c for c in calls if c[0] == t.design_id]  # resumed: each call ran only the new segment
            assert [float(c[1]) for c in mine] == [0.0, *lengths[:-1]]
        its = led.iterations()
        assert sum(it["metrics"].get("extensions", 0) for it in its) == sum(t.extensions for t in ext)
    finally:
        led.close()


def test_extension_settings_are_checked(tmp_path):
    with pytest.raises(StudyError, match="extend_max_ps extends MD"):
        parse_study({**SMALL, "acquisition": {"extend_max_ps": 40}})
    with pytest.raises(StudyError, match="extend_max_ps"):
        parse_study({**SMALL, "oracle": {"kind": "md", "settings": {}}, "acquisition": {"extend_max_ps": -1}})
    # a study without extensions keeps the digest it had before they existed
    assert "extend_max_ps" not in parse_study(SMALL).canonical()
    doc = extension_study(tmp_path, extend_max_ps=40.0)
    doc["oracle"] = {**doc["oracle"], "path": doc["oracle"]["path"].replace("CountingMD", "Plain")}
    (tmp_path / "counting.py").write_text(COUNTING_MD + "\n\nclass Plain(CountingMD):\n    length_setting = None\n")
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(doc))
    with pytest.raises(CampaignError, match="cannot extend a run"):
        Campaign.from_study(f, tmp_path / "p", log=lambda m: None).run()


def test_mlflow_gets_a_run_per_measurement_version_once(tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    from porelab.active_learning.tracking.view import MlflowView

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    f = tmp_path / "ws" / "s.yaml"
    f.parent.mkdir()
    f.write_text(yaml.safe_dump({**extension_study(tmp_path, extend_max_ps=40.0),
                                 "budget": {"simulations": 8, "initial": 4, "batch": 4}}))
    d = tmp_path / "ws" / "c"
    Campaign.from_study(f, d, log=lambda m: None).run()
    led = Ledger(d / LEDGER_FILE)
    try:
        want = {(t.design_id, v["version"]) for t in led.trials() for v in led.versions(t.design_id)}
        assert len(want) > len(led.trials())  # some trial was extended
        view = MlflowView(d)
        view.sync(led)
        client = MlflowClient(view.uri)
        sims = lambda: client.search_runs([view.experiment_id], "tags.`porelab.kind` = 'simulation'")  # noqa: E731
        runs = sims()
        keys = [r.data.tags.get("porelab.sim_key", r.data.tags["porelab.design_id"]) for r in runs]
        got = {(k.split("+v")[0], int(k.split("+v")[1]) if "+v" in k else 1) for k in keys}
        assert got == want and len(runs) == len(want)
        MlflowView(d).sync(led)  # a resumed driver's view finds them all
        assert len(sims()) == len(want)
    finally:
        led.close()


def test_a_ledger_from_before_the_extensions_opens_and_keeps_its_first_measurement_as_version_1(tmp_path):
    import sqlite3

    short, long = with_run(WIDE, 10.0), with_run(WIDE, 20.0)
    completed_ledger(tmp_path, short).close()
    db = sqlite3.connect(tmp_path / "l.sqlite")  # as an older porelab wrote it
    db.executescript("DROP INDEX trials_status; DROP INDEX trials_busy; DROP TRIGGER tally_insert; "
                     "DROP TRIGGER tally_update; DROP TRIGGER tally_delete; DROP TABLE tally; "
                     "DROP TABLE measurement_versions; ALTER TABLE trials DROP COLUMN extend_ps; "
                     "ALTER TABLE trials DROP COLUMN extensions;")
    db.close()
    led = Ledger(tmp_path / "l.sqlite")
    assert led.trial(short.design_id).extensions == 0 and led.versions(short.design_id) == []
    led.extend(short.design_id, 20.0, 1)
    led.start(short.design_id)
    led.finish(short.design_id, "completed", long.to_json(), "md", targets(long, Goal()), busy_s=1.0)
    assert [json.loads(v["json"])["run"]["production_ps"] for v in led.versions(short.design_id)] == [10.0, 20.0]
    led.close()
