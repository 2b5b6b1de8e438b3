"""A campaign that cannot (or must not) run says so in one line and loses nothing (issue 25): a script without the
`if __name__ == "__main__":` guard, workers that all die (the circuit breaker), a start that fails before anything
ran (nothing left behind), and a resume whose budget leaves nothing to do."""

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from al_helpers import write_study
from typer.testing import CliRunner

from porelab.active_learning.campaign.directory import LEDGER_FILE, STUDY_FILE, CampaignError, create
from porelab.active_learning.campaign.driver import Campaign, candidate_pool
from porelab.active_learning.campaign.guards import REIMPORT_FILE, REIMPORTED
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.oracles import OracleError
from porelab.active_learning.campaign.study import load_study

# The continuum, except that a worker dies (os._exit) on the designs in `kill`, or on every design while the file
# `flag` exists (a broken oracle or worker setup, fixed by removing it).
DYING = textwrap.dedent('''
    import os
    from pathlib import Path

    from porelab.sim.continuum import run_continuum
    from porelab.sim.design import design_id


    class Dying:
        fidelity = "continuum"

        def __init__(self, flag, kill=()):
            self.flag, self.kill = flag, set(kill)

        def __call__(self, design, conditions, run_dir):
            if Path(self.flag).exists() or design_id(design, conditions) in self.kill:
                os._exit(1)
            return run_continuum(design, conditions)
''')

CONTINUUM = textwrap.dedent('''
    from porelab.sim.continuum import run_continuum


    class Oracle:
        fidelity = "continuum"

        def __call__(self, design, conditions, run_dir):
            return run_continuum(design, conditions)
''')

# SMALL (2 workers: the breaker trips at the 3rd design lost in a row, al_helpers.SMALL), cut to 8 simulations
SMALLER = {"budget": {"simulations": 8, "initial": 4, "batch": 4},
           "model": {"kind": "rf", "params": {"n_estimators": 10}}, "acquisition": {"kind": "ucb", "pool_size": 64}}


def statuses(d: Path) -> dict[str, str]:
    led = Ledger(d / LEDGER_FILE)
    try:
        return {t.design_id: t.status for t in led.trials()}
    finally:
        led.close()


def dying_study(tmp_path: Path, name: str = "s", **settings) -> Path:
    oracle = tmp_path / "dying.py"
    oracle.write_text(DYING)
    return write_study(tmp_path / f"{name}.yaml", **SMALLER, oracle={
        "kind": "user", "path": f"{oracle}:Dying", "settings": {"flag": str(tmp_path / "broken"), **settings}})


# --- 1. a script without the main guard ------------------------------------------------------------------------
def test_a_script_without_the_main_guard_stops_in_one_line_and_loses_nothing(tmp_path):
    write_study(tmp_path / "s.yaml", **SMALLER)
    script = tmp_path / "notebook.py"
    script.write_text(textwrap.dedent('''
        from porelab.active_learning.campaign.driver import Campaign

        summary = Campaign.from_study("s.yaml", "camp", resume=True, log=print).run()
        print("completed", summary["completed"], "failed", summary["failed"])
    '''))
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out
    assert time.monotonic() - t0 < 120, out  # before: 300 s of retries and 242 tracebacks
    assert out.count(REIMPORTED) == 1, out  # said once, by the driver (the workers end quietly)
    assert f'CampaignError: {REIMPORTED}' in out and "CampaignLocked" not in out, out
    st = statuses(tmp_path / "camp")
    assert st and set(st.values()) <= {"candidate", "running"}, st  # no trial failed, nothing lost
    assert not (tmp_path / "camp" / REIMPORT_FILE).exists()
    # guarded, the same script resumes the campaign and runs it to its end
    script.write_text(script.read_text().replace("summary =", 'if __name__ == "__main__":\n    summary =')
                      .replace('print("completed"', '    print("completed"'))
    p = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0 and "completed 8 failed 0" in p.stdout, p.stdout + p.stderr


def test_a_worker_re_importing_the_script_refuses_before_touching_the_campaign(tmp_path, monkeypatch):
    """In a worker's bootstrap (multiprocessing marks it `_inheriting`) neither constructor reads or makes anything;
    a campaign that the parent does not drive is refused with the one line."""
    import multiprocessing

    study = write_study(tmp_path / "s.yaml", **SMALLER)
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(CampaignError) as err:
        Campaign.from_study(study, tmp_path / "camp")
    assert str(err.value) == REIMPORTED and "\n" not in REIMPORTED
    assert not (tmp_path / "camp").exists()
    with pytest.raises(CampaignError, match="put the campaign under `if __name__ == \"__main__\":`"):
        Campaign(tmp_path / "camp")


# --- the circuit breaker ---------------------------------------------------------------------------------------
def test_workers_that_all_die_trip_the_breaker_without_failing_a_trial_and_resume_continues(tmp_path):
    study = dying_study(tmp_path)
    (tmp_path / "broken").touch()
    d = create(load_study(study), tmp_path / "c")
    lines = []
    t0 = time.monotonic()
    with pytest.raises(CampaignError) as err:
        Campaign(d, log=lines.append).run()
    msg = str(err.value)
    assert "\n" not in msg and time.monotonic() - t0 < 120
    assert msg.startswith("stopped by the circuit breaker: ") and "crashed or lost their worker" in msg, msg
    assert "last errors: worker lost: " in msg and "porelab campaign resume" in msg, msg
    st = statuses(d)
    assert len(st) == 4 and set(st.values()) == {"candidate"}, st  # nothing failed, the budget not spent
    assert not any(x.startswith("failed") for x in lines), lines
    (tmp_path / "broken").unlink()  # the cause fixed
    s = Campaign(d, log=lambda m: None).run()
    assert s["finished"] == "budget" and s["completed"] == 8 and s["failed"] == 0, s


def test_one_design_that_kills_its_worker_fails_alone_and_the_campaign_goes_on(tmp_path):
    pool, _ = candidate_pool(load_study(dying_study(tmp_path, "plain")))
    killer = pool[0].design_id  # the first of the initial design
    d = create(load_study(write_study(tmp_path / "k.yaml", **SMALLER, executor={"max_attempts": 2}, oracle={
        "kind": "user", "path": f"{tmp_path / 'dying.py'}:Dying",
        "settings": {"flag": str(tmp_path / "broken"), "kill": [killer]}})), tmp_path / "k")
    s = Campaign(d, log=lambda m: None).run()
    assert s["finished"] == "budget" and s["completed"] >= 6, s
    led = Ledger(d / LEDGER_FILE)
    t = led.trial(killer)
    led.close()
    assert t.status == "failed" and "worker lost" in t.error and "(after 2 attempts)" in t.error, t


# --- 4. a start that fails leaves nothing behind ---------------------------------------------------------------
def missing_oracle_study(tmp_path: Path) -> Path:
    return write_study(tmp_path / "s.yaml", **SMALLER, oracle={
        "kind": "user", "path": f"{tmp_path / 'no_such_oracle.py'}:Oracle", "settings": {}})


def test_a_campaign_that_cannot_start_leaves_nothing_behind(tmp_path):
    study = missing_oracle_study(tmp_path)
    lines = []
    with pytest.raises(OracleError, match="no_such_oracle.py"):
        Campaign.from_study(study, tmp_path / "runs" / "camp", log=lines.append).run()
    assert not (tmp_path / "runs" / "camp").exists()
    assert lines == []  # the error is the one line that says why
    # a directory that was there before keeps what it held; only the campaign's files go
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    with pytest.raises(OracleError):
        Campaign.from_study(study, mine, log=lambda m: None).run()
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    # the corrected study starts where the failed one did
    (tmp_path / "no_such_oracle.py").write_text(CONTINUUM)
    s = Campaign.from_study(study, tmp_path / "runs" / "camp", log=lambda m: None).run()
    assert s["finished"] == "budget" and s["completed"] == 8


def test_a_directory_that_held_a_campaign_is_never_removed(tmp_path):
    study = load_study(missing_oracle_study(tmp_path))
    d = create(study, tmp_path / "camp")
    cand = study.design_space().sample(4, 0)[0]
    led = Ledger(d / LEDGER_FILE)  # a trial told or run before: this directory holds a campaign
    led.add_trial(cand.design_id, cand.design.model_dump(mode="json"), cand.conditions.model_dump(mode="json"), 0,
                  "initial")
    led.close()
    for _ in range(2):
        with pytest.raises(OracleError):
            Campaign(d, log=lambda m: None).run()
        assert (d / STUDY_FILE).exists() and list(statuses(d).values()) == ["candidate"]


def test_the_cli_run_of_a_study_whose_oracle_is_missing_can_be_run_again_corrected(tmp_path, monkeypatch):
    from porelab.active_learning.cli.main import app

    monkeypatch.chdir(tmp_path)
    study = missing_oracle_study(tmp_path)
    runner = CliRunner()
    r = runner.invoke(app, ["campaign", "run", str(study), "--out", "camp", "--no-tracking", "--quiet"])
    assert r.exit_code != 0 and "no_such_oracle.py" in r.output, r.output
    assert not (tmp_path / "camp").exists()
    (tmp_path / "no_such_oracle.py").write_text(CONTINUUM)
    r = runner.invoke(app, ["campaign", "run", str(study), "--out", "camp", "--no-tracking", "--quiet"])
    assert r.exit_code == 0 and "already holds a campaign" not in r.output, r.output


# --- 2. a resume whose budget leaves nothing to do -------------------------------------------------------------
def test_a_resume_with_a_budget_at_or_below_what_is_done_says_nothing_is_left(tmp_path):
    d = create(load_study(write_study(tmp_path / "s.yaml", **{**SMALLER, "budget": {"simulations": 4}})),
               tmp_path / "c")
    Campaign(d, log=lambda m: None).run()
    led = Ledger(d / LEDGER_FILE)
    before = (led.iterations(), led.get("overrides"), led.get("finished"))
    led.close()
    for budget in (1, 4):
        lines = []
        s = Campaign(d, log=lines.append, budget=budget).run()
        assert lines[-1] == (f"campaign already finished (budget) with 4 simulations; a budget of {budget} is at or "
                             "below them: nothing left to do (give a budget above 4 to continue)")
        assert s["finished"] == "budget" and s["completed"] == 4
        led = Ledger(d / LEDGER_FILE)
        assert (led.iterations(), led.get("overrides"), led.get("finished")) == before  # no final model again
        led.close()
