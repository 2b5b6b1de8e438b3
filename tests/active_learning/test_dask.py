"""A real distributed.LocalCluster (worker processes on 127.0.0.1) runs a small continuum campaign."""

import pytest
from al_helpers import write_study

pytest.importorskip("distributed", reason="needs dask[distributed] (porelab[cluster])")

from porelab.active_learning.campaign.directory import create  # noqa: E402
from porelab.active_learning.campaign.driver import Campaign  # noqa: E402
from porelab.active_learning.campaign.executors import DaskExecutor, Task  # noqa: E402
from porelab.active_learning.campaign.ledger import Ledger  # noqa: E402
from porelab.active_learning.campaign.study import load_study  # noqa: E402


@pytest.mark.slow
def test_local_cluster_campaign(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", executor={"kind": "dask", "workers": 2}))
    d = create(study, tmp_path / "c")
    s = Campaign(d, log=lambda m: None).run()
    assert s["completed"] == 12 and s["finished"] == "budget"
    led = Ledger(d / "ledger.sqlite")
    workers = {t.worker for t in led.trials()}
    led.close()
    assert len(workers) == 2 and all(w and w != "?" for w in workers)  # both worker processes took tasks
    for t in s["best"]:
        assert (d / "runs" / t["design_id"] / "measurement.json").exists()


@pytest.mark.slow
def test_dask_tasks_are_keyed_by_design_and_bind_loopback(tmp_path):
    ex = DaskExecutor(workers=1)
    try:
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in ex.client.scheduler_info()["workers"])
        assert ex.client.scheduler.address.startswith("tcp://127.0.0.1:")
        study = load_study(write_study(tmp_path / "s.yaml"))
        c = study.design_space().sample(2, 0)[0]
        t = Task(c.design_id, c.design.model_dump(mode="json"), c.conditions.model_dump(mode="json"),
                 {"kind": "continuum"}, str(tmp_path / "r"))
        assert ex.submit(t) and not ex.submit(t)
        (r,) = ex.wait(timeout=120)
        assert r.error is None and r.design_id == c.design_id
    finally:
        ex.close()
