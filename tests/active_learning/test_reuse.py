"""A stored result answers a new request only for the same question from the same oracle (design id, oracle kind
and the settings that change the numbers), turned to the orientation asked: in a worker's run directory
(executors.run_task), in a campaign's recovery of trials a dead driver left running, and in `porelab design
--verify`."""

import json

import pytest
from al_helpers import write_study

from porelab.active_learning.campaign.directory import create
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.executors import Task, run_task
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.study import Goal, OracleSpec, load_study
from porelab.active_learning.inverse import search as inverse
from porelab.active_learning.inverse.search import oracle_dir
from porelab.sim.continuum import continuum_identity, run_continuum
from porelab.sim.design import design_id, make_conditions, make_design
from porelab.sim.measurement import Measurement, oracle_identity

COND = make_conditions({"fields_V_per_nm": [0.2, -0.2], "electrolyte": {"K+": 0.1, "Cl-": 0.1}})
JANUS = make_design({"layers": ["COO-", "NH3+"], "groups_per_rim": 4}, "tiny")
MIRROR = JANUS.mirrored()  # NH3+ under COO-: the same simulation at the opposite fields, one design id


def task(design, run_dir, oracle=None) -> Task:
    return Task(design_id(design, COND), design.model_dump(mode="json"), COND.model_dump(mode="json"),
                oracle or {"kind": "continuum"}, str(run_dir))


def test_the_mirror_image_is_one_question():
    assert not JANUS.is_symmetric() and MIRROR.layers == ("NH3+", "COO-")
    assert design_id(JANUS, COND) == design_id(MIRROR, COND)


def test_a_result_of_another_oracle_is_neither_reused_nor_overwritten(tmp_path):
    stored = run_continuum(JANUS, COND, resolution=2.0)  # the continuum at another resolution: other numbers
    stored.save(tmp_path / "measurement.json")
    before = (tmp_path / "measurement.json").read_text()
    r = run_task(task(JANUS, tmp_path))
    assert not r.reused and r.measurement is None
    assert "holds a measurement" in r.error and "neither reused nor overwritten" in r.error and "\n" not in r.error
    assert (tmp_path / "measurement.json").read_text() == before
    r = run_task(task(JANUS, tmp_path, {"kind": "continuum", "settings": {"resolution": 2.0}}))
    assert r.reused and Measurement.model_validate_json(r.measurement) == stored  # the same oracle: reused


def test_a_result_without_an_oracle_is_not_reused(tmp_path):
    """A measurement that does not say which oracle made it answers no request."""
    run_continuum(JANUS, COND).model_copy(update={"oracle": {}}).save(tmp_path / "measurement.json")
    r = run_task(task(JANUS, tmp_path))
    assert not r.reused and "an unnamed oracle" in r.error


def test_the_mirror_orientation_is_turned_to_the_one_asked(tmp_path):
    stored = run_continuum(JANUS, COND)
    stored.save(tmp_path / "measurement.json")
    r = run_task(task(MIRROR, tmp_path))
    got = Measurement.model_validate_json(r.measurement)
    assert r.reused and got.design == MIRROR and got.conditions == COND
    for e in (0.2, -0.2):  # z -> -z: the mirror membrane at +E carries minus the current of this one at -E
        assert got.field(e).current_nA == -stored.field(-e).current_nA
    assert got.icr[0].icr == pytest.approx(1 / stored.icr[0].icr)
    direct = run_continuum(MIRROR, COND)  # and it is what simulating the mirror image gives
    for e in (0.2, -0.2):
        lo, hi = direct.field(e).current_ci_nA
        assert lo <= got.field(e).current_nA <= hi


def test_results_carry_the_identity_of_the_oracle_asked(tmp_path, user_oracle):
    """A user oracle's results carry kind user, its path and settings (what it reported is kept in provenance)."""
    spec = {"kind": "user", "path": f"{user_oracle}:LoggedContinuum", "settings": {"log": str(tmp_path / "l")}}
    m = Measurement.model_validate_json(run_task(task(JANUS, tmp_path / "u", spec)).measurement)
    assert m.oracle == oracle_identity("user", spec["settings"], spec["path"])
    assert m.provenance["oracle_reported"] == continuum_identity()  # it returned a continuum result
    c = Measurement.model_validate_json(run_task(task(JANUS, tmp_path / "c")).measurement)
    assert c.oracle == continuum_identity() and "oracle_reported" not in c.provenance
    assert not run_task(task(JANUS, tmp_path / "u")).reused  # the continuum does not answer for the user oracle


def test_verify_runs_each_oracle_and_orients_what_it_reuses(tmp_path, user_oracle):
    log = tmp_path / "calls.log"
    user = OracleSpec(kind="user", path=f"{user_oracle}:LoggedContinuum", settings={"log": str(log)})
    fine = OracleSpec(kind="continuum", settings={"resolution": 2.0})
    a = Candidate(design=JANUS, conditions=COND, design_id=design_id(JANUS, COND))
    b = Candidate(design=MIRROR, conditions=COND, design_id=a.design_id)
    (v_fine,) = inverse.verify([a], fine, tmp_path / "verify", Goal())
    (v_user,) = inverse.verify([a], user, tmp_path / "verify", Goal())  # same design, another oracle: it runs
    assert log.read_text().split() == [a.design_id]
    assert v_user.measurement.oracle["kind"] == "user" and v_fine.measurement.oracle["settings"]["resolution"] == 2.0
    assert v_user.measured != v_fine.measured  # the two oracles' own numbers
    (again,) = inverse.verify([b], user, tmp_path / "verify", Goal())  # the mirror candidate: reused, oriented
    assert log.read_text().split() == [a.design_id] and again.measurement.design == MIRROR
    assert again.measured["log_icr"] == pytest.approx(-v_user.measured["log_icr"])
    assert oracle_dir(tmp_path, user) != oracle_dir(tmp_path, fine)
    assert sorted(p.name for p in (tmp_path / "verify").iterdir()) == sorted(
        [oracle_dir(tmp_path / "verify", fine).name, oracle_dir(tmp_path / "verify", user).name])


def test_recovery_takes_only_a_result_of_the_campaigns_oracle(tmp_path):
    """A trial a dead driver left running, with a measurement.json of another oracle in its run directory: the
    campaign does not take it as the result (nor overwrite it); one of its own oracle it takes, oriented."""
    study = load_study(write_study(tmp_path / "s.yaml", budget={"simulations": 2, "initial": 2, "batch": 2},
                                   executor={"max_attempts": 1}))
    d = create(study, tmp_path / "c")
    led = Ledger(d / "ledger.sqlite")
    for design, stored in ((JANUS, run_continuum(JANUS, COND, resolution=2.0)),  # another oracle
                           (make_design({"layers": ["OH", "COO-"]}, "tiny"), None)):
        did = design_id(design, COND)
        if stored is None:  # the campaign's own oracle, measured in the mirror orientation
            stored = run_continuum(design.mirrored(), COND)
        led.add_trial(did, design.model_dump(mode="json"), COND.model_dump(mode="json"), 0, "initial")
        led.start(did)
        (d / "runs" / did).mkdir(parents=True)
        stored.save(d / "runs" / did / "measurement.json")
    led.record_iteration(0, 0, 0.0, 0, {"picks": 2}, None, [])
    led.close()
    foreign = (d / "runs" / design_id(JANUS, COND) / "measurement.json").read_text()
    Campaign(d, log=lambda m: None).run()
    led = Ledger(d / "ledger.sqlite")
    try:
        bad, good = led.trial(design_id(JANUS, COND)), led.trials("completed")
        assert bad.status == "failed" and "holds a measurement" in bad.error and led.measurement(bad.design_id) is None
        (good,) = good
        m = Measurement.model_validate_json(led.measurement(good.design_id).json)
        assert m.design.layers == ("OH", "COO-") and m.oracle == continuum_identity()  # the trial's orientation
    finally:
        led.close()
    assert (d / "runs" / design_id(JANUS, COND) / "measurement.json").read_text() == foreign
    assert json.loads(foreign)["oracle"]["settings"]["resolution"] == 2.0
