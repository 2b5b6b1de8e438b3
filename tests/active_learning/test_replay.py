"""The replay oracle (sim/replay.py): a study's user oracle that answers recorded measurements and refuses the rest."""

import json

import pytest

from porelab.active_learning.campaign.oracles import check_measurement, identity_of, make_oracle, stamp
from porelab.sim.continuum import run_continuum
from porelab.sim.design import make_conditions, make_design, mirror_question
from porelab.sim.measurement import Measurement
from porelab.sim.replay import ReplayError, ReplayOracle
from porelab.sim.store import MeasurementStore

PATH = "porelab.sim.replay:ReplayOracle"


def _question(layers, spacing=0.4, field=0.2):
    return (make_design({"layers": layers, "spacing_nm": spacing}, "tiny"),
            make_conditions({"electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [field, -field]}))


@pytest.fixture
def store(tmp_path):
    """A measurement store of two continuum answers; (root, [recorded measurements])."""
    root = tmp_path / "store"
    recorded = []
    for layers in (["COO-", "NH3+"], ["OH", "COO-", "none"]):
        m = run_continuum(*_question(layers))
        assert m.status == "ok"
        MeasurementStore(root).put(m)
        recorded.append(m)
    return root, recorded


def test_answers_the_recorded_measurement(store, tmp_path):
    root, recorded = store
    oracle = make_oracle("user", {"store": str(root), "kind": "continuum"}, PATH)
    assert oracle.fidelity == "continuum" and len(oracle) == 2
    for rec in recorded:
        m = oracle(rec.design, rec.conditions, tmp_path / "run")
        assert check_measurement(m, rec.design, rec.conditions, oracle.fidelity) is m  # a valid answer
        assert m.model_dump(exclude={"provenance"}) == rec.model_dump(exclude={"provenance"})
        assert m.provenance["replayed_from"].endswith("measurement.json")
    assert not (tmp_path / "run").exists()  # nothing simulated, nothing written


def test_answers_the_mirror_question_in_its_orientation(store):
    root, recorded = store
    rec = recorded[0]
    d, c = mirror_question(rec.design, rec.conditions)
    m = ReplayOracle(root, kind="continuum")(d, c)
    assert m.design == d and m.conditions == c
    assert m.field(c.fields_V_per_nm[0]).current_nA == pytest.approx(-rec.field(rec.conditions.fields_V_per_nm[0])
                                                                      .current_nA)
    assert m.icr[0].icr == pytest.approx(1 / rec.icr[0].icr)


def test_refuses_a_design_it_does_not_hold(store):
    root, _ = store
    oracle = ReplayOracle(root, kind="continuum")
    d, c = _question(["NH3+", "none"])
    with pytest.raises(ReplayError, match="no recorded measurement of design") as err:
        oracle(d, c, None)
    assert "\n" not in str(err.value) and "NH3+/none" in str(err.value)
    d, c = _question(["COO-", "NH3+"], field=0.3)  # a recorded design at other conditions is another question
    with pytest.raises(ReplayError, match="no recorded measurement"):
        oracle(d, c, None)


def test_refuses_an_empty_or_ambiguous_store(store, tmp_path):
    root, recorded = store
    with pytest.raises(ReplayError, match="holds no successful measurement of oracle kind 'md'"):
        ReplayOracle(root)  # only continuum records
    (tmp_path / "other").mkdir()
    recorded[0].save(tmp_path / "other" / "measurement.json")
    recorded[0].save(tmp_path / "other2.json")  # not a measurement.json: ignored
    with pytest.raises(ReplayError, match="two records of design"):
        ReplayOracle(tmp_path, kind="continuum")  # root/store/... and root/other/... hold the same question


def test_round_trip_through_a_campaign_stamp_and_file(store, tmp_path):
    """Recorded -> replayed -> stamped with the replay's identity -> saved -> loaded: the same numbers."""
    root, recorded = store
    settings = {"store": str(root), "kind": "continuum"}
    oracle = make_oracle("user", settings, PATH)
    identity = identity_of(oracle, "user", settings, PATH)
    assert identity["kind"] == "user" and identity["path"] == PATH  # never mistaken for the recorded oracle
    for rec in recorded:
        m = stamp(oracle(rec.design, rec.conditions, tmp_path), identity)
        m.save(tmp_path / "back.json")
        back = Measurement.load(tmp_path / "back.json")
        assert back.oracle == identity and back.provenance["oracle_reported"] == rec.oracle
        assert json.loads(back.model_dump_json(include={"fields", "icr", "design", "conditions", "design_id"})) == \
            json.loads(rec.model_dump_json(include={"fields", "icr", "design", "conditions", "design_id"}))


def test_a_campaign_replays_a_recorded_pool(tmp_path):
    """acquisition.pool_from + the replay oracle: a campaign over recorded answers only (nothing refused, nothing
    simulated), stopped when its pool is exhausted, and the summary says when it reached the pool's best design
    against random's (n + 1) / 2, its progress counted against the pool, not the larger budget; a pool directory
    without measurements is refused in one line."""
    from al_helpers import write_study

    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.driver import Campaign
    from porelab.active_learning.campaign.ledger import Ledger
    from porelab.active_learning.campaign.measured import ranked
    from porelab.active_learning.campaign.study import load_study
    from porelab.sim.design import DesignError

    root = tmp_path / "store"
    stacks = (["COO-", "NH3+"], ["OH", "COO-", "none"], ["NH3+", "none"], ["COO-", "OH"], ["none", "COO-", "COO-"],
              ["NH3+", "OH", "OH"])
    for k, layers in enumerate(stacks):
        MeasurementStore(root).put(run_continuum(*_question(layers, spacing=0.35 + 0.05 * k)))
    settings = {"store": str(root), "kind": "continuum"}
    study = load_study(write_study(tmp_path / "r.yaml", oracle={"kind": "user", "path": PATH, "settings": settings},
                                   budget={"simulations": 50, "initial": 2, "batch": 1},
                                   acquisition={"kind": "ucb", "pool_from": str(root)}, base={"conditions": {
                                       "electrolyte": {"K+": 0.1, "Cl-": 0.1}, "fields_V_per_nm": [0.2, -0.2]}}))
    d = create(study, tmp_path / "r")
    lines = []
    s = Campaign(d, log=lines.append).run()
    assert s["completed"] == len(stacks) and s["failed"] == 0 and s["finished"] == "pool"
    done = [x for x in lines if x.startswith("done")]
    assert "[##########] 6/6 " in done[-1] and "1/6 " in done[0]
    led = Ledger(d / "ledger.sqlite")
    rows = led.measurements()
    led.close()
    assert {r.design_id for r in rows} == {m.design_id for m in ReplayOracle(root, "continuum").measurements()}
    best = ranked(rows, study.goal)[0].design_id
    f = s["best_found"]
    assert f == {"evaluation": [r.design_id for r in rows].index(best) + 1, "of": 6, "random_mean": 3.5}
    bad = load_study(write_study(tmp_path / "b.yaml", acquisition={"kind": "ucb", "pool_from": str(tmp_path / "x")}))
    with pytest.raises(DesignError, match="is not a directory"):
        Campaign(create(bad, tmp_path / "b"), log=lambda m: None).run()
