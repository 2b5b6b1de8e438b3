"""A simulation that blows up (absurd time step): bounded retries, then `abandoned` with the reason, never a zero
current; the campaign goes on with the other designs."""

from __future__ import annotations

import json
import textwrap

import pytest
from rel_helpers import small_study

from porelab.active_learning.campaign.directory import create
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import load_study

pytestmark = pytest.mark.reliability

# designs of two layers are simulated by MD at 40 fs (they blow up); the others by the continuum model (single
# layers, mirror-symmetric, are not in an ICR campaign's pool)
ORACLE = textwrap.dedent('''
    from porelab.sim.continuum import run_continuum
    from porelab.sim.design import make_design
    from porelab.sim.protocol import MDSettings, run_md


    class HalfMD:
        fidelity = "mixed"

        def __call__(self, design, conditions, run_dir):
            if len(design.layers) != 2:
                return run_continuum(design, conditions)
            small = make_design({"layers": list(design.layers), "sheet_nm": 1.6, "box_z_nm": 3.0, "groups_per_rim": 2,
                                 "pore": {"shape": "circle", "width_nm": 0.7, "height_nm": 0.7}})  # a quick system
            settings = MDSettings(production_ps=0.2, equil_ps=0.2, ramp_ps=0.05, timestep_fs=40.0, platform="CPU",
                                  cpu_threads=1, cutoff_nm=0.7, max_retries=1, seed=1)
            m = run_md(small, conditions, run_dir / "md", settings, progress=False)
            assert m.status == "failed", "40 fs should blow up"
            return type(m).failed(design, conditions, "md", m.error, m.provenance)
''')


def test_blow_up_is_abandoned_with_its_reason_and_the_campaign_goes_on(tmp_path):
    (tmp_path / "half_md.py").write_text(ORACLE)
    study = load_study(small_study(tmp_path, simulations=6, oracle={"kind": "user",
                                                                   "path": f"{tmp_path / 'half_md.py'}:HalfMD"},
                                   executor={"kind": "local", "workers": 2, "max_attempts": 2}))
    d = create(study, tmp_path / "c")
    s = Campaign(d, log=lambda m: None).run()
    assert s["finished"] == "budget" and s["trials"] == 6
    led = Ledger(d / "ledger.sqlite")
    try:
        trials = led.trials()
        blown = [t for t in trials if len(t.design["layers"]) == 2]
        assert blown and len(blown) < len(trials), "the seeded pool should mix two-layer and other designs"
        for t in trials:
            if len(t.design["layers"]) == 2:
                assert t.status == "abandoned" and t.attempts == 1  # MD retried inside (bounded), not re-queued
                assert "failed after 2 attempts" in t.error and ("blow-up" in t.error or "NaN" in t.error)
                m = json.loads(led.measurement(t.design_id).json)
                assert m["status"] == "failed" and m["fields"] == [] and m["icr"] == []  # no zero current
                assert led.measurement(t.design_id).targets is None
                saved = json.loads((d / "runs" / t.design_id / "measurement.json").read_text())
                assert saved["status"] == "failed"
            else:
                assert t.status == "completed"
        ok = {m.design_id for m in led.measurements(ok_only=True)}
        assert ok == {t.design_id for t in trials if t.status == "completed"}  # the model never trains on a blow-up
    finally:
        led.close()
