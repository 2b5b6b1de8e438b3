"""kill -9 of the driver at injected fault points (base/faults.py), then `porelab campaign resume`: no finished
simulation lost, none run twice; ledger, run directories and MLflow agree."""

from __future__ import annotations

import signal

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from rel_helpers import check_campaign, oracle_calls, porelab, small_study, snapshot

pytestmark = pytest.mark.reliability

# the driver's and the MLflow view's fault points, ordered so that each resume meets the next before the campaign
# ends
KILL_POINTS = [
    "campaign.dispatch:1",  # before dispatch: the initial design is in the ledger, nothing started
    "campaign.submit:2",  # a trial marked running in the ledger, never submitted
    "campaign.wait:1",  # simulations running
    "campaign.ingest:1",  # a result arrived (its measurement.json saved), not ingested
    "campaign.train:1",  # training the model
    "atomic_write:model.json:1",  # the model written, not yet renamed into place
    "campaign.record_iteration:1",  # model saved, the iteration and its picks not committed
    "view.iteration:1",  # MLflow: metrics on the iteration run, not on the parent
    "view.model_registered:1",  # model registered in MLflow, the iteration run not finished
    "view.iteration_logged:1",  # the iteration in MLflow, not in the view's bookkeeping
    "ledger.commit:4",  # inside a ledger transaction, before COMMIT
    "campaign.sync:2",  # committed to the ledger, the views not yet brought up to date
    "view.sim_run:1",  # a half-logged MLflow simulation run
    "view.sim_logged:1",  # a simulation in MLflow, not in the view's bookkeeping
    "campaign.finish:1",  # final iteration committed, campaign not marked finished
    "view.finish:1",  # MLflow parent run not yet closed
]


def drive(tmp_path, faults: list[str], simulations: int = 9) -> dict:
    """Run a campaign killed at each fault in turn (each resume meets the next), then resume it to its end and
    check it. Returns {"killed": [faults that fired], "survived": n}."""
    study = small_study(tmp_path, simulations=simulations)
    d = tmp_path / "ws" / "camp"
    killed, kept, kept_calls = [], {}, {}
    for i, fault in enumerate(faults):
        args = ("campaign", "run", str(study), "--dir", str(d)) if i == 0 else ("campaign", "resume", str(d))
        rc, out = porelab(*args, "--quiet", fault=fault, cwd=tmp_path)
        assert rc in (0, -signal.SIGKILL), f"{fault}: exit {rc}\n{out}"
        if rc == 0:
            assert "stopped: budget" in out or "already finished" in out, out
        else:
            killed.append(fault)
        # what a kill found finished on disk must survive unchanged and never be simulated again
        now, calls = snapshot(d), oracle_calls(tmp_path)
        for did, text in kept.items():
            assert now.get(did) == text, f"after {fault}: measurement of {did} lost or rewritten"
        for did, text in now.items():
            if did not in kept:
                kept[did], kept_calls[did] = text, calls[did]
    rc, out = porelab("campaign", "resume", str(d), "--quiet", cwd=tmp_path)
    assert rc == 0, out
    ms = check_campaign(d, simulations)
    calls = oracle_calls(tmp_path)
    for did, n in kept_calls.items():
        assert calls[did] == n, f"{did} finished before a kill and was simulated again"
    assert set(ms) <= set(calls)
    return {"killed": killed, "survived": len(killed)}


@pytest.mark.slow
def test_kill_at_every_fault_point_then_resume(tmp_path):
    res = drive(tmp_path, KILL_POINTS, simulations=15)
    assert res["killed"] == KILL_POINTS, f"fault points never reached: {set(KILL_POINTS) - set(res['killed'])}"


POINTS = [p.rsplit(":", 1)[0] for p in KILL_POINTS]


@pytest.mark.slow
@seed(7)
@settings(max_examples=2, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.sampled_from(POINTS), st.integers(1, 2)), min_size=2, max_size=2))
def test_random_kill_sequences_lose_and_duplicate_nothing(tmp_path_factory, kills):
    """Random (fault point, n-th hit) sequences: whatever fired, nothing lost or run twice."""
    tmp = tmp_path_factory.mktemp("kills")
    res = drive(tmp, [f"{p}:{n}" for p, n in kills], simulations=6)
    print(f"kills {kills}: fired {res['killed']}")
