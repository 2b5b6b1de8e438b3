"""Campaigns on a real (one-node) Slurm cluster, `executor: {kind: dask, cluster: slurm}`: the simulations run as
Slurm jobs (the scheduler's jobcomp record names them), a cancelled worker job and a killed driver lose nothing,
and each campaign ends with the same trials (designs and measured values) as the local process pool."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from al_helpers import write_study

pytest.importorskip("dask_jobqueue", reason="needs dask-jobqueue (porelab[cluster])")

from porelab.active_learning.campaign.directory import create  # noqa: E402
from porelab.active_learning.campaign.driver import Campaign  # noqa: E402
from porelab.active_learning.campaign.study import load_study  # noqa: E402

pytestmark = pytest.mark.slow  # ~1.5 min together; under pytest-xdist they may share the cluster at once

BUDGET = {"simulations": 8, "initial": 4, "batch": 4}
ON_SLURM = {"kind": "dask", "workers": 2, "cluster": "slurm", "walltime": "00:10:00", "memory": "1GB",
            "cluster_options": {"interface": "lo"}}  # scheduler and workers on loopback: a one-machine cluster

# the continuum, after leaving a mark `<design id>.<Slurm job id>` in `marks` and sleeping `delay_s` (so that a
# job can be cancelled, or the driver killed, while simulations run)
MARKED_CONTINUUM = textwrap.dedent('''
    import os
    import time
    from pathlib import Path

    from porelab.sim.continuum import run_continuum
    from porelab.sim.design import design_id


    class MarkedContinuum:
        fidelity = "continuum"

        def __init__(self, marks, delay_s):
            self.marks, self.delay_s = Path(marks), delay_s

        def __call__(self, design, conditions, run_dir):
            (self.marks / f"{design_id(design, conditions)}.{os.environ.get('SLURM_JOB_ID')}").touch()
            time.sleep(self.delay_s)
            return run_continuum(design, conditions)
''')


def measured(d) -> dict[str, tuple]:
    """The completed trials of campaign `d`: design id -> (fields, ICR) of its measurement."""
    con = sqlite3.connect(f"file:{d / 'ledger.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        rows = con.execute("SELECT t.design_id, m.json FROM trials t JOIN measurements m USING (design_id) "
                           "WHERE t.status='completed'").fetchall()
    except sqlite3.OperationalError:  # not made yet
        rows = []
    finally:
        con.close()
    return {did: (m["fields"], m["icr"]) for did, js in rows if (m := json.loads(js))}


def trials(d) -> dict[str, tuple[str, str, int]]:
    """design id -> (status, worker, attempts) of every trial of campaign `d`."""
    con = sqlite3.connect(f"file:{d / 'ledger.sqlite'}?mode=ro", uri=True, timeout=10)
    try:
        return {r[0]: r[1:] for r in con.execute("SELECT design_id, status, worker, attempts FROM trials")}
    finally:
        con.close()


def job_of(worker: str) -> str:
    """The Slurm job id in a trial's worker label `host:pid job <id>`."""
    assert " job " in worker, f"{worker!r} ran in no Slurm job"
    return worker.rsplit(" job ", 1)[1]


def marks(path) -> list[tuple[str, str]]:
    """(design id, job id) of each simulation started, oldest first."""
    return [tuple(p.name.split(".")) for p in sorted(path.iterdir(), key=lambda p: p.stat().st_mtime_ns)]


def marked_study(tmp_path, name: str, delay_s: float):
    (tmp_path / "marks").mkdir()
    (tmp_path / "marked.py").write_text(MARKED_CONTINUUM)
    return write_study(tmp_path / f"{name}.yaml", name=name, budget=BUDGET, executor=ON_SLURM,
                       oracle={"kind": "user", "path": f"{tmp_path / 'marked.py'}:MarkedContinuum",
                               "settings": {"marks": str(tmp_path / "marks"), "delay_s": delay_s}})


@pytest.fixture(scope="module")
def local_result(tmp_path_factory):
    """The trials of the continuum study on the local process pool: what every Slurm campaign here must match."""
    t = tmp_path_factory.mktemp("local")
    d = create(load_study(write_study(t / "s.yaml", budget=BUDGET)), t / "c")
    assert Campaign(d, log=lambda m: None).run()["completed"] == 8
    return measured(d)


def porelab(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "porelab.active_learning.cli", *args, "--no-tracking"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_campaign_runs_as_slurm_jobs_with_the_local_trials(slurm, tmp_path, local_result):
    study = load_study(write_study(tmp_path / "s.yaml", name="slurm-same", budget=BUDGET, executor=ON_SLURM))
    d = create(study, tmp_path / "c")
    s = Campaign(d, log=lambda m: None).run()
    assert s["completed"] == 8 and s["finished"] == "budget"
    assert measured(d) == local_result  # the same designs, the same values

    ran_in = {job_of(worker) for _, worker, _ in trials(d).values()}
    jobs = slurm.finished_jobs("porelab-slurm-same")
    assert ran_in <= set(jobs), f"jobs {ran_in - set(jobs)} are not in the scheduler's record"
    assert len(jobs) == 2  # workers: 2 jobs, kept for the whole campaign, cancelled at its end
    assert all(j["JobState"] == "CANCELLED" and j["Partition"] == "debug" and j["TimeLimit"] == "10"
               for j in jobs.values())
    logs = {p.name for p in (d / "jobs").iterdir()}  # the output of the jobs that ran
    assert {f"porelab-slurm-same-{j}.{x}" for j in ran_in for x in ("err", "out")} <= logs


def test_a_cancelled_worker_job_loses_nothing(slurm, tmp_path, local_result):
    d = create(load_study(marked_study(tmp_path, "slurm-cancel", delay_s=2.0)), tmp_path / "c")
    out: dict = {}
    driver = threading.Thread(target=lambda: out.update(Campaign(d, log=lambda m: None).run()))
    driver.start()
    deadline = time.monotonic() + 120
    while not (started := marks(tmp_path / "marks")):
        assert driver.is_alive() and time.monotonic() < deadline, "no simulation started on Slurm"
        time.sleep(0.2)
    victim, job = started[0]
    slurm.run("scancel", job)  # mid-run: its simulation sleeps 2 s
    driver.join(timeout=180)
    assert not driver.is_alive() and out["completed"] == 8 and out["finished"] == "budget"
    assert measured(d) == local_result

    status, worker, _ = trials(d)[victim]
    assert status == "completed" and job_of(worker) != job  # retried on another job
    assert {j for did, j in marks(tmp_path / "marks") if did == victim} > {job}
    jobs = slurm.finished_jobs("porelab-slurm-cancel")
    assert jobs[job]["JobState"] == "CANCELLED"
    assert len(jobs) >= 3  # the cancelled job was replaced by a new one


def test_a_killed_driver_resumes_to_the_same_trials(slurm, tmp_path, local_result):
    study = marked_study(tmp_path, "slurm-kill", delay_s=1.0)
    d = tmp_path / "c"
    driver = porelab("campaign", "run", str(study), "--out", str(d))
    deadline = time.monotonic() + 120
    while len(marks(tmp_path / "marks")) < 6:  # round 1 running
        assert driver.poll() is None, driver.stdout.read()
        assert time.monotonic() < deadline, "campaign too slow to reach the kill point"
        time.sleep(0.1)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    before = measured(d)
    assert 0 < len(before) < 8
    first_jobs = {j for _, j in marks(tmp_path / "marks")}
    slurm.run("scancel", "--name=porelab-slurm-kill")  # the dead driver's workers (else they hold the CPUs ~30 s)

    out, _ = porelab("campaign", "resume", str(d)).communicate(timeout=240)
    assert "campaign stopped: budget" in out, out
    after = measured(d)
    assert after == local_result
    assert all(after[did] == v for did, v in before.items())  # what was measured before the kill is kept
    ran_in = {job_of(worker) for _, worker, _ in trials(d).values() if worker != "recovered"}  # recover(): found
    assert ran_in - first_jobs, "the resumed campaign ran nothing on jobs of its own"
    assert ran_in | first_jobs <= set(slurm.finished_jobs("porelab-slurm-kill"))
