"""Two campaigns in one workspace (one shared mlflow.db) do not interfere; a second driver on the same campaign
directory is refused with a one-line message while the first holds the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from rel_helpers import check_campaign, porelab, small_study

pytestmark = pytest.mark.reliability


def spawn(tmp_path, *args):
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PORELAB_FAULT",
                                                            "PORELAB_WORKSPACE")}
    return subprocess.Popen([sys.executable, "-m", "porelab.active_learning.cli", *args, "--quiet"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_campaigns_at_once_in_one_workspace(tmp_path):
    a = small_study(tmp_path, "a", name="alpha", seed=1)
    b = small_study(tmp_path, "b", name="beta", seed=2)
    pa = spawn(tmp_path, "campaign", "run", str(a), "--dir", str(tmp_path / "ws" / "alpha"))
    pb = spawn(tmp_path, "campaign", "run", str(b), "--dir", str(tmp_path / "ws" / "beta"))
    outs = [p.communicate(timeout=240)[0] for p in (pa, pb)]
    assert pa.returncode == 0 and pb.returncode == 0, outs
    ma = check_campaign(tmp_path / "ws" / "alpha", 9)
    mb = check_campaign(tmp_path / "ws" / "beta", 9)
    assert (tmp_path / "ws" / "mlflow.db").exists()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'ws' / 'mlflow.db'}")
    names = {e.name for e in client.search_experiments()}
    assert {"alpha", "beta"} <= names
    for name, ms in (("alpha", ma), ("beta", mb)):
        eid = client.get_experiment_by_name(name).experiment_id
        runs = client.search_runs([eid], "tags.`porelab.kind` = 'simulation'")
        sims = {r.data.tags["porelab.design_id"] for r in runs}
        assert sims == set(ms)  # each experiment holds exactly its own campaign's simulations


def test_second_driver_is_refused_while_the_first_runs(tmp_path):
    oracle = {"kind": "user", "path": f"{tmp_path / 'my_oracle.py'}:LoggedContinuum",
              "settings": {"log": str(tmp_path / "calls.log"), "delay_s": 2.0}}  # slow enough to be caught running
    study = small_study(tmp_path, simulations=6, oracle=oracle)
    d = tmp_path / "ws" / "camp"
    first = spawn(tmp_path, "campaign", "run", str(study), "--dir", str(d), "--no-tracking")
    deadline = time.monotonic() + 60
    while not ((d / ".lock").exists() and (d / ".lock").read_text()):
        assert first.poll() is None and time.monotonic() < deadline, first.stdout.read()
        time.sleep(0.05)
    for args in (("campaign", "resume", str(d)), ("campaign", "run", str(study), "--dir", str(d), "--resume")):
        rc, out = porelab(*args, "--no-tracking", cwd=tmp_path)
        assert rc == 2 and "Traceback" not in out, out
        text = " ".join(out.split())
        assert text.startswith("error:") and f"is being driven by pid {first.pid}" in text, out
        assert "one driver per campaign" in text
    assert first.poll() is None  # the refused drivers left the running one alone
    os.kill(first.pid, signal.SIGKILL)  # the kernel drops the lock with its holder
    first.wait()
    rc, out = porelab("campaign", "resume", str(d), "--quiet", "--no-tracking", cwd=tmp_path)
    assert rc == 0, out
    check_campaign(d, 6, tracking=False)
