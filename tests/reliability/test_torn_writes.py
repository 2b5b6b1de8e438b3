"""Torn writes: kill -9 between writing a file and renaming it into place (fault point atomic_write:<name>) leaves
the previous version loadable; the stray temp file is never taken for a result."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.model import CampaignModel
from porelab.active_learning.campaign.study import Goal
from porelab.base.files import is_temp
from porelab.sim.continuum import run_continuum
from porelab.sim.design import make_conditions, make_design
from porelab.sim.measurement import Measurement

pytestmark = pytest.mark.reliability

COND = make_conditions({"fields_V_per_nm": [0.2, -0.2], "electrolyte": {"K+": 0.1, "Cl-": 0.1}})
DESIGNS = [make_design({"layers": layers, "groups_per_rim": g}, "tiny")
           for layers in (["COO-"], ["NH3+"], ["COO-", "NH3+"], ["OH"]) for g in (2, 5)]


def crash(code: str, fault: str) -> None:
    """Run `code` in a fresh interpreter with PORELAB_FAULT=fault; it must die by SIGKILL."""
    import os

    env = {**os.environ, "PORELAB_FAULT": fault}
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr


def temps(d):
    return [p for p in d.iterdir() if is_temp(p)]


def test_measurement_keeps_the_previous_version(tmp_path):
    old = run_continuum(DESIGNS[0], COND)
    old.save(tmp_path / "measurement.json")
    crash(f"""
        from porelab.sim.measurement import Measurement
        m = Measurement.load({str(tmp_path / 'measurement.json')!r})
        m.model_copy(update={{"status": "failed", "error": "new", "fields": [], "icr": []}}).save(
            {str(tmp_path / 'measurement.json')!r})
    """, "atomic_write:measurement.json:1")
    assert Measurement.load(tmp_path / "measurement.json") == old
    (stray,) = temps(tmp_path)  # the new version, complete but never renamed into place
    assert stray.name.startswith(".measurement.json.") and stray.stat().st_size > 0
    assert [p.name for p in tmp_path.glob("*.json")] == ["measurement.json"]  # readers' patterns skip it


def test_first_write_killed_leaves_no_result(tmp_path):
    """A kill before the first rename leaves no measurement.json: the campaign re-runs the design."""
    crash(f"""
        from porelab.sim.continuum import run_continuum
        from porelab.sim.design import make_conditions, make_design
        cond = make_conditions({{"fields_V_per_nm": [0.2, -0.2], "electrolyte": {{"K+": 0.1, "Cl-": 0.1}}}})
        run_continuum(make_design({{"layers": ["COO-"], "groups_per_rim": 2}}, "tiny"), cond).save(
            {str(tmp_path / 'measurement.json')!r})
    """, "atomic_write:measurement.json:1")
    assert not (tmp_path / "measurement.json").exists()
    assert all(p.stat().st_size > 0 for p in tmp_path.iterdir())  # no empty file


def test_checkpoint_commit_keeps_the_previous_progress(tmp_path):
    """MD commit = checkpoint file, then progress.json naming it: a kill in between keeps the old pair."""
    (tmp_path / "step_000000000100.chk").write_bytes(b"old checkpoint")
    (tmp_path / "progress.json").write_text('{"checkpoint": "step_000000000100.chk", "time_ps": 0.2}')
    crash(f"""
        import json
        from pathlib import Path
        from porelab.base.files import atomic_write_bytes, atomic_write_text
        d = Path({str(tmp_path)!r})
        atomic_write_bytes(d / "step_000000000200.chk", b"new checkpoint")
        atomic_write_text(d / "progress.json", json.dumps({{"checkpoint": "step_000000000200.chk", "time_ps": 0.4}}))
    """, "atomic_write:progress.json:1")
    import json

    prog = json.loads((tmp_path / "progress.json").read_text())
    assert prog["time_ps"] == 0.2 and (tmp_path / prog["checkpoint"]).read_bytes() == b"old checkpoint"
    assert sorted(p.name for p in tmp_path.glob("step_*.chk")) == ["step_000000000100.chk", "step_000000000200.chk"]


def test_model_keeps_the_previous_version(tmp_path):
    goal = Goal.model_validate({})
    ms = [run_continuum(d, COND) for d in DESIGNS]
    CampaignModel("rf", goal, 0, n_estimators=5).fit(ms[:4]).save(tmp_path / "m")
    crash(f"""
        from porelab.active_learning.campaign.model import CampaignModel
        from porelab.active_learning.campaign.study import Goal
        from porelab.sim.measurement import Measurement
        ms = [Measurement.model_validate_json(s) for s in {[m.to_json() for m in ms]!r}]
        CampaignModel("rf", Goal.model_validate({{}}), 0, n_estimators=5).fit(ms).save({str(tmp_path / 'm')!r})
    """, "atomic_write:model.json:1")
    back = CampaignModel.load(tmp_path / "m")
    assert len(back.train_) == 4  # the previous model, whole
    assert len(temps(tmp_path / "m")) == 1


def test_ledger_update_is_all_or_nothing(tmp_path):
    m = run_continuum(DESIGNS[0], COND)
    led = Ledger(tmp_path / "ledger.sqlite")
    led.add_trial(m.design_id, m.design.model_dump(mode="json"), m.conditions.model_dump(mode="json"), 0, "x")
    led.start(m.design_id)
    led.close()
    crash(f"""
        from porelab.active_learning.campaign.ledger import Ledger
        led = Ledger({str(tmp_path / 'ledger.sqlite')!r})
        led.finish({m.design_id!r}, "completed", {m.to_json()!r}, "continuum", targets={{"log_icr": 0.1}})
    """, "ledger.commit:1")
    led = Ledger(tmp_path / "ledger.sqlite")
    try:
        assert led.trial(m.design_id).status == "running"  # rolled back: the driver re-ingests it on resume
        assert led.measurement(m.design_id) is None and led.measurements(ok_only=False) == []
        assert [e["kind"] for e in led.events()] == ["candidate", "running"]
        led.finish(m.design_id, "completed", m.to_json(), "continuum", targets={"log_icr": 0.1})
        assert led.trial(m.design_id).status == "completed"
    finally:
        led.close()
