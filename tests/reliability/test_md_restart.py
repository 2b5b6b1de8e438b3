"""MD restart on the CPU platform with a fixed seed: N steps straight vs kill -9 part way + resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import mdtraj as md
import numpy as np
import pytest

from porelab.base.files import is_temp
from porelab.sim.design import SPECIES, make_conditions, make_design
from porelab.sim.protocol import MDSettings, run_md

pytestmark = pytest.mark.reliability

# the small system of tests/sim/test_protocol.py (1.6 nm sheet, 3 nm box, 0.7 nm cutoff)
SPEC = {"layers": ["COO-"], "sheet_nm": 1.6, "box_z_nm": 3.0, "groups_per_rim": 2,
        "pore": {"shape": "circle", "width_nm": 0.7, "height_nm": 0.7}}
FIELDS = [4.0]
COMMON = dict(production_ps=0.2, checkpoint_ps=0.05, traj_interval_ps=0.01, report_interval_steps=5, equil_ps=0.1,
              ramp_ps=0.05, seed=2, cutoff_nm=0.7, platform="CPU", cpu_threads=1, minimise_max_iterations=100,
              settle_max_ps=0.0)  # no settle: the commits are the field-on one, then one per checkpoint


def test_kill_9_mid_production_then_resume_matches_the_straight_run(tmp_path, seed_from_one_equilibration):
    design, cond = make_design(SPEC), make_conditions({"fields_V_per_nm": FIELDS})
    settings = MDSettings(**COMMON)
    seed_from_one_equilibration(design, cond, settings)
    ref = run_md(design, cond, tmp_path / "straight", settings, progress=False)
    assert ref.status == "ok", ref.error

    # kill -9 while the third production commit renames its progress.json (0.1 ps of 0.2 ps done)
    code = textwrap.dedent(f"""
        from porelab.sim.design import make_conditions, make_design
        from porelab.sim.protocol import MDSettings, run_md
        run_md(make_design({SPEC!r}), make_conditions({{"fields_V_per_nm": {FIELDS!r}}}),
               {str(tmp_path / 'resumed')!r}, MDSettings(**{COMMON!r}), progress=False)
    """)
    env = {**os.environ, "PORELAB_FAULT": "atomic_write:progress.json:3"}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == -signal.SIGKILL, p.stdout + p.stderr
    state = tmp_path / "resumed" / "state" / "E+4"
    prog = json.loads((state / "progress.json").read_text())
    assert prog["phase"] == "count" and 0 < prog["time_ps"] < COMMON["production_ps"]
    assert (state / prog["checkpoint"]).exists() and any(is_temp(f) for f in state.iterdir())
    assert not (tmp_path / "resumed" / "measurement.json").exists()

    res = run_md(design, cond, tmp_path / "resumed", settings, progress=False)
    assert res.status == "ok", res.error
    a = md.load(str(tmp_path / "straight" / "traj_E+4.dcd"), top=str(tmp_path / "straight" / "ions.pdb"))
    b = md.load(str(tmp_path / "resumed" / "traj_E+4.dcd"), top=str(tmp_path / "resumed" / "ions.pdb"))
    assert a.n_frames == b.n_frames == 20
    np.testing.assert_allclose(b.time, a.time)
    assert np.all(np.diff(b.time) > 0)  # strictly increasing: no duplicated or lost frame
    assert len({round(t, 6) for t in b.time}) == b.n_frames
    # the frames before the last committed checkpoint are the straight run's (same seed, same start, 1 thread)
    n_kept = round(prog["time_ps"] / COMMON["traj_interval_ps"])
    np.testing.assert_allclose(b.xyz[:n_kept], a.xyz[:n_kept], atol=1e-4)
    for m in (ref, res):
        (f,) = m.fields
        assert f.time_ns == pytest.approx(COMMON["production_ps"] / 1000)
        for r in f.species.values():  # net = up - down, never negative counts
            assert r.crossings_up >= 0 and r.crossings_down >= 0 and r.crossings == r.crossings_up - r.crossings_down
        q = sum(SPECIES[s]["valence"] * r.crossings for s, r in f.species.items())
        assert f.charge_crossings_e == pytest.approx(q)
    fa, fb = ref.fields[0], res.fields[0]
    assert set(fa.species) == set(fb.species)
    # the resumed count carries on from the committed counter (never restarted, never counted twice)
    c = prog["counter"]["counter"]
    for s, r in fb.species.items():
        ions = [i for i, sp in enumerate(c["species"]) if sp == s]
        assert r.crossings_up >= sum(c["up"][i] for i in ions) and r.crossings_down >= sum(c["down"][i] for i in ions)
    assert not any(is_temp(f) for f in (tmp_path / "resumed").iterdir())
    # the StateDataReporter log: lines past the checkpoint resumed from were dropped, so every step once, in order
    for name in ("straight", "resumed"):
        lines = (tmp_path / name / "md_E+4.log").read_text().splitlines()
        steps = [int(ln.split(",")[0]) for ln in lines if not ln.startswith("#")]
        assert lines[0].startswith("#") and sum(ln.startswith("#") for ln in lines) == 1
        assert steps == sorted(set(steps)) and len(steps) == 20
    # the run record: one production of 0.2 ps, cost counted over both processes' work that was committed
    assert res.run.stopped == "fixed" and res.run.production_ps == pytest.approx(COMMON["production_ps"])
