"""kill -9 of the driver in the middle of a campaign, then `porelab campaign resume`."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.ledger import Ledger


def completed(db) -> dict[str, str]:
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT t.design_id, m.json FROM trials t JOIN measurements m USING (design_id) "
                                "WHERE t.status='completed'").fetchall())
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def view_ref(d, what: str, key: str = ""):
    """(tracking URI, ref) of a row of the MLflow view's own bookkeeping (tracking/bookkeeping.py)."""
    con = sqlite3.connect(f"file:{d / 'mlflow_view.sqlite'}?mode=ro", uri=True)
    try:
        return con.execute("SELECT uri, ref FROM logged WHERE what=? AND key=?", (what, key)).fetchone()
    finally:
        con.close()


def porelab(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "porelab.active_learning.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


@pytest.mark.slow
def test_kill_9_then_resume_keeps_every_finished_design_once(tmp_path, user_oracle):
    log = tmp_path / "calls.log"
    study = write_study(tmp_path / "s.yaml", oracle={"kind": "user", "path": f"{user_oracle}:LoggedContinuum",
                                                     "settings": {"log": str(log), "delay_s": 0.4}},
                        budget={"simulations": 16, "initial": 4, "batch": 4})
    d = tmp_path / "ws" / "camp"
    env = {**os.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    driver = porelab("campaign", "run", str(study), "--dir", str(d), env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while len(completed(d / "ledger.sqlite")) < 7:
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline, "campaign too slow to reach the kill point"
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = completed(d / "ledger.sqlite")
    _, parent = view_ref(d, "parent")
    assert parent and len(before) < 16
    time.sleep(1.0)  # orphaned workers notice the dead driver within 0.5 s and exit

    # a second driver is refused while the first holds the lock; here the first is dead, so resume runs
    out, _ = porelab("campaign", "resume", str(d), env=env, cwd=tmp_path).communicate(timeout=300)
    assert "campaign stopped: budget" in out, out
    after = completed(d / "ledger.sqlite")
    assert len(after) == 16
    for did, js in before.items():  # every design finished before the kill is kept, unchanged
        assert after[did] == js
    calls = Counter(log.read_text().split())
    assert all(calls[did] == 1 for did in before), "a finished design was simulated again"

    assert view_ref(d, "parent")[1] == parent
    led = Ledger(d / "ledger.sqlite")
    done_events = Counter(e["design_id"] for e in led.events("completed"))
    assert set(done_events.values()) == {1}
    steps = [it["step"] for it in led.iterations()]
    assert steps == list(range(len(steps)))
    led.close()
    uri, eid = view_ref(d, "experiment")

    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([eid], max_results=1000)
    kinds = Counter(r.data.tags.get("porelab.kind") for r in runs)
    assert kinds["campaign"] == 1
    sims = Counter(r.data.tags["porelab.design_id"] for r in runs if r.data.tags.get("porelab.kind") == "simulation")
    assert len(sims) == 16 and set(sims.values()) == {1}
    hist = [m.step for m in client.get_metric_history(parent, "n_train")]
    assert hist == sorted(hist) and len(hist) >= 3
    assert client.get_run(parent).info.status == "FINISHED"
    alias = client.get_model_version_by_alias(f"porelab-{client.get_experiment(eid).name}", "champion")
    assert int(alias.version) >= 1
