import json

import mdtraj as md
import numpy as np
import pytest

from porelab.sim.design import make_conditions, make_design
from porelab.sim.measurement import Measurement
from porelab.sim.protocol import MDRun, MDSettings, run_md

DESIGN = make_design({"layers": ["none"], "pore": {"width_nm": 1.4, "height_nm": 1.4, "shape": "circle"}}, "tiny")
FAST = dict(equil_ps=0.2, ramp_ps=0.1, timestep_fs=2.0, platform="CPU", report_interval_steps=10,
            traj_interval_ps=0.1, seed=5)


@pytest.mark.slow
def test_short_high_field_run_gives_finite_numbers(tmp_path):
    cond = make_conditions({"fields_V_per_nm": [3.0, -3.0]})
    m = run_md(DESIGN, cond, tmp_path, MDSettings(production_ps=1.0, checkpoint_ps=0.5, **FAST), progress=False)
    assert m.status == "ok", m.error
    assert {f.field_V_per_nm for f in m.fields} == {3.0, -3.0}
    for f in m.fields:
        assert f.time_ns == pytest.approx(0.001)
        assert np.isfinite(f.current_nA) and f.current_ci_nA[0] <= f.current_nA <= f.current_ci_nA[1]
        assert set(f.species) == {"K+", "Cl-"}
        # under +E the displacement current (ions drift with the field) is positive, under -E negative
        assert np.sign(f.current_displacement_nA) == np.sign(f.field_V_per_nm)
    assert len(m.icr) == 1 and m.icr[0].field_abs_V_per_nm == 3.0
    prov = m.provenance
    assert prov["platform"] == "CPU" and prov["seed"] == 5 and prov["production_ps"] == 1.0
    assert prov["openmm_version"] and prov["porelab_version"]
    saved = Measurement.load(tmp_path / "measurement.json")
    assert saved.design_id == m.design_id
    traj = md.load(str(tmp_path / "traj_E+3.dcd"), top=str(tmp_path / "ions.pdb"))
    assert traj.n_frames == 10 and np.all(np.diff(traj.time) > 0)
    for name in ("membrane.pdb", "system.pdb", "design.json"):
        assert (tmp_path / name).exists()


class Interrupt(Exception):
    pass


def test_resume_after_interruption_continues_the_same_trajectory(tmp_path, monkeypatch, seed_from_one_equilibration):
    """An interrupted run resumed from its checkpoint gives exactly the uninterrupted trajectory and counts.

    The Reference platform is bitwise reproducible (the CPU platform is not, even on one thread), so the
    system is a small one: 1.6 nm sheet, 3 nm box, 0.7 nm cutoff.
    """
    small = make_design({"layers": ["COO-"], "sheet_nm": 1.6, "box_z_nm": 3.0, "groups_per_rim": 2,
                         "pore": {"shape": "circle", "width_nm": 0.7, "height_nm": 0.7}})
    cond = make_conditions({"fields_V_per_nm": [4.0]})
    common = dict(production_ps=0.1, checkpoint_ps=0.04, traj_interval_ps=0.01, report_interval_steps=5,
                  equil_ps=0.1, ramp_ps=0.05, seed=2, cutoff_nm=0.7)
    # equilibrate once (fast platform) and start both runs from that state
    seed_from_one_equilibration(small, cond, MDSettings(platform="CPU", **common))
    settings = MDSettings(platform="Reference", **common)
    ref = run_md(small, cond, tmp_path / "straight", settings, progress=False)

    original = MDRun._commit

    def crashing_commit(self, simulation, d, prog, reporter):
        original(self, simulation, d, prog, reporter)
        if prog["phase"] == "count" and reporter is not None:
            simulation.step(7)  # work after the checkpoint that the crash loses
            raise Interrupt

    monkeypatch.setattr(MDRun, "_commit", crashing_commit)
    with pytest.raises(Interrupt):
        run_md(small, cond, tmp_path / "resumed", settings, progress=False)
    assert not (tmp_path / "resumed" / "measurement.json").exists()
    monkeypatch.setattr(MDRun, "_commit", original)
    res = run_md(small, cond, tmp_path / "resumed", settings, progress=False)

    a = md.load(str(tmp_path / "straight" / "traj_E+4.dcd"), top=str(tmp_path / "straight" / "ions.pdb"))
    b = md.load(str(tmp_path / "resumed" / "traj_E+4.dcd"), top=str(tmp_path / "resumed" / "ions.pdb"))
    assert a.n_frames == b.n_frames == 10
    np.testing.assert_allclose(a.time, b.time)
    assert np.all(np.diff(b.time) > 0)  # no duplicated frames
    np.testing.assert_array_equal(a.xyz, b.xyz)
    fa, fb = ref.fields[0], res.fields[0]
    assert fa.model_dump() == fb.model_dump()  # same counts, currents and intervals


@pytest.mark.slow
def test_blow_up_is_a_failed_measurement_not_a_zero_current(tmp_path):
    cond = make_conditions({"fields_V_per_nm": [1.0]})
    settings = MDSettings(production_ps=0.5, **{**FAST, "timestep_fs": 40.0}, max_retries=1)
    m = run_md(DESIGN, cond, tmp_path, settings, progress=False)
    assert m.status == "failed"
    assert "2 attempts" in m.error and ("NaN" in m.error or "blow-up" in m.error)
    assert m.fields == [] and m.icr == []
    assert json.loads((tmp_path / "measurement.json").read_text())["status"] == "failed"


def test_a_directory_holds_one_design(tmp_path):
    from porelab.sim.design import DesignError

    cond = make_conditions({"fields_V_per_nm": [1.0]})
    MDRun(DESIGN, cond, tmp_path, MDSettings(production_ps=0.1, **FAST))._claim_directory()
    other = make_design({"layers": ["COO-"]}, "tiny")
    with pytest.raises(DesignError, match="holds design"):
        MDRun(other, cond, tmp_path, MDSettings(production_ps=0.1, **FAST))._claim_directory()


@pytest.mark.gpu
def test_cuda_run_gives_finite_numbers(tmp_path):
    cond = make_conditions({"fields_V_per_nm": [2.0, -2.0]})
    settings = MDSettings(production_ps=5.0, equil_ps=2.0, timestep_fs=4.0, platform="CUDA")
    m = run_md(make_design({"layers": ["COO-", "NH3+"]}, "seed"), cond, tmp_path, settings, progress=False)
    assert m.status == "ok" and m.provenance["platform"] == "CUDA"
    assert all(np.isfinite(f.current_nA) for f in m.fields)
