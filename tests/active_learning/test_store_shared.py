"""The workspace's measurement store (sim/store.py) through the campaign: an MD answer is simulated once and
reused by every other campaign and orientation, an extension resumes the stored run, and two workers asking the
same question at once simulate it once."""

import threading

import yaml
from al_helpers import COND, COUNTING_MD, WIDE
from test_extension import extension_study

from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.executors import Task, run_task
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.oracles import extended
from porelab.sim.design import design_id
from porelab.sim.measurement import Measurement
from porelab.sim.store import MeasurementStore, default_store


def spec_and_log(tmp_path):
    oracle = tmp_path / "counting.py"
    oracle.write_text(COUNTING_MD)
    log = tmp_path / "calls.log"
    return {"kind": "user", "path": f"{oracle}:CountingMD", "settings": {"log": str(log), "production_ps": 10.0}}, log


def task(design, conditions, spec, run_dir, store, extend_ps=None) -> Task:
    return Task(design_id(design, conditions), design.model_dump(mode="json"), conditions.model_dump(mode="json"),
                spec, str(run_dir), extend_ps=extend_ps, store=str(store))


def test_a_stored_answer_serves_other_campaigns_and_the_mirror_orientation(tmp_path):
    spec, log = spec_and_log(tmp_path)
    store = tmp_path / "store"
    mirror, mirror_cond = WIDE.design.mirrored(), COND.with_fields([-e for e in COND.fields_V_per_nm])
    first = run_task(task(WIDE.design, COND, spec, tmp_path / "a" / "runs", store))
    again = run_task(task(mirror, mirror_cond, spec, tmp_path / "b" / "runs", store))
    assert first.error is None and not first.reused and again.reused
    m1, m2 = (Measurement.model_validate_json(r.measurement) for r in (first, again))
    assert m2.design == mirror and m2.field(-COND.fields_V_per_nm[0]).current_nA == -m1.field(
        COND.fields_V_per_nm[0]).current_nA
    assert (tmp_path / "b" / "runs" / "measurement.json").exists()  # the campaign's own copy, for its recovery
    # an extension resumes the stored run (the oracle's state in the store's entry), then serves the first asker
    ext = run_task(task(mirror, mirror_cond, extended(spec, 20.0, "production_ps"), tmp_path / "b" / "runs", store,
                        extend_ps=20.0))
    assert not ext.reused and Measurement.model_validate_json(ext.measurement).run.production_ps == 20.0
    assert log.read_text().split() == [WIDE.design_id, "0", "10", WIDE.design_id, "10", "20"]
    (stored,) = MeasurementStore(store).measurements()
    assert stored.run.production_ps == 20.0


def test_two_workers_asking_at_once_simulate_once(tmp_path):
    spec, log = spec_and_log(tmp_path)
    store = tmp_path / "store"
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        run_task(task(WIDE.design, COND, spec, tmp_path / f"c{i}", store)))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.error for r in results] == [None, None]
    assert sorted(r.reused for r in results) == [False, True]
    assert len(log.read_text().splitlines()) == 1


def test_a_second_campaign_reuses_the_first_ones_md(tmp_path):
    doc = extension_study(tmp_path)
    doc["budget"] = {"simulations": 6, "initial": 4, "batch": 2}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump(doc))
    Campaign.from_study(f, tmp_path / "first", log=lambda _: None).run()
    calls = (tmp_path / "calls.log").read_text().splitlines()
    assert len(calls) == 6
    lines = []
    Campaign.from_study(f, tmp_path / "second", log=lines.append).run()  # the same seed: the same designs
    assert (tmp_path / "calls.log").read_text().splitlines() == calls  # nothing simulated again
    done = Ledger(tmp_path / "second" / "ledger.sqlite").trials("completed")
    assert len(done) == 6
    assert len(list(MeasurementStore(default_store()).measurements())) == 6
