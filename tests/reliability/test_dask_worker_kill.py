"""A Dask worker killed mid-task (LocalCluster on 127.0.0.1): the task is retried or, past the limit, failed with
its reason; the campaign neither hangs nor loses the other results."""

from __future__ import annotations

import os
import signal
import textwrap
import time

import pytest
from rel_helpers import small_study

pytest.importorskip("distributed", reason="needs dask[distributed]")
import dask  # noqa: E402

from porelab.active_learning.campaign.directory import create  # noqa: E402
from porelab.active_learning.campaign.driver import Campaign  # noqa: E402
from porelab.active_learning.campaign.executors import DaskExecutor, Task  # noqa: E402
from porelab.active_learning.campaign.ledger import Ledger  # noqa: E402
from porelab.active_learning.campaign.study import load_study  # noqa: E402

pytestmark = pytest.mark.reliability

# continuum, but a worker given one of `victims` kills itself (kill -9) in the middle of the task
ORACLE = textwrap.dedent('''
    import os
    import signal
    import time

    from porelab.sim.continuum import run_continuum
    from porelab.sim.design import design_id


    class Deadly:
        fidelity = "continuum"

        def __init__(self, victims=(), delay_s=0.0):
            self.victims, self.delay_s = set(victims), delay_s

        def __call__(self, design, conditions, run_dir):
            time.sleep(self.delay_s)
            if design_id(design, conditions) in self.victims:
                os.kill(os.getpid(), signal.SIGKILL)
            return run_continuum(design, conditions)
''')


def test_worker_killed_mid_task_the_task_is_rerun(tmp_path):
    study = load_study(small_study(tmp_path))
    cands = study.design_space().sample(4, 0)
    oracle = {"kind": "user", "path": study.oracle.path, "settings": {**study.oracle.settings, "delay_s": 2.0}}
    ex = DaskExecutor(workers=2)
    try:
        tasks = [Task(c.design_id, c.design.model_dump(mode="json"), c.conditions.model_dump(mode="json"), oracle,
                      str(tmp_path / "runs" / c.design_id)) for c in cands[:3]]
        for t in tasks:
            ex.submit(t)
        deadline = time.monotonic() + 60
        while not (busy := {w: ks for w, ks in ex.client.processing().items() if ks}):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        addr = next(iter(busy))
        pid = ex.client.run(os.getpid, workers=[addr])[addr]
        os.kill(pid, signal.SIGKILL)  # mid-task: the oracle sleeps 2 s
        results, deadline = [], time.monotonic() + 120
        while len(results) < 3:
            assert time.monotonic() < deadline, "a task was lost with its worker"
            results += ex.wait(timeout=5)
    finally:
        ex.close()
    assert sorted(r.design_id for r in results) == sorted(t.design_id for t in tasks)
    assert all(r.error is None for r in results)  # the scheduler re-ran the lost task on a live worker
    assert all((tmp_path / "runs" / t.design_id / "measurement.json").exists() for t in tasks)


def test_a_task_that_always_kills_its_worker_fails_after_the_limit(tmp_path):
    (tmp_path / "deadly.py").write_text(ORACLE)
    doc = small_study(tmp_path, simulations=6, executor={"kind": "dask", "workers": 2, "max_attempts": 2})
    study = load_study(doc)
    victim = study.design_space().sample(study.acquisition.pool_size, study.seed)[1].design_id
    study = load_study(small_study(tmp_path, simulations=6, executor={"kind": "dask", "workers": 2, "max_attempts": 2},
                                   oracle={"kind": "user", "path": f"{tmp_path / 'deadly.py'}:Deadly",
                                           "settings": {"victims": [victim]}}))
    d = create(study, tmp_path / "c")
    t0 = time.monotonic()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        s = Campaign(d, log=lambda m: None).run()
    assert time.monotonic() - t0 < 150
    assert s["finished"] == "budget" and s["completed"] == 5 and s["failed"] == 1
    led = Ledger(d / "ledger.sqlite")
    try:
        t = led.trial(victim)
        assert t.status == "failed" and t.attempts == 2 and "KilledWorker" in t.error and "after 2 attempts" in t.error
        assert led.measurement(victim) is None and not (d / "runs" / victim / "measurement.json").exists()
        assert [e["kind"] for e in led.events() if e["design_id"] == victim] == \
            ["candidate", "running", "candidate", "running", "failed"]
        done = [t for t in led.trials() if t.status == "completed"]
        assert all((d / "runs" / t.design_id / "measurement.json").exists() for t in done)
    finally:
        led.close()
