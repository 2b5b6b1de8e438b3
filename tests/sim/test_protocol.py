import json

import mdtraj as md
import numpy as np
import openmm
import pytest

from porelab.sim.design import DesignError, canonical, make_conditions, make_design
from porelab.sim.measurement import FieldResult, Measurement
from porelab.sim.production import FieldProduction
from porelab.sim.protocol import MDRun, MDSettings, run_md

DESIGN = make_design({"layers": ["none"], "pore": {"width_nm": 1.4, "height_nm": 1.4, "shape": "circle"}}, "tiny")
FAST = dict(equil_ps=0.2, ramp_ps=0.1, timestep_fs=2.0, platform="CPU", report_interval_steps=10,
            traj_interval_ps=0.1, seed=5, minimise_max_iterations=200, settle_window_ps=0.1, settle_max_ps=0.4)


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
                  equil_ps=0.1, ramp_ps=0.05, seed=2, cutoff_nm=0.7, minimise_max_iterations=100,
                  settle_window_ps=0.02, settle_max_ps=0.06)
    # equilibrate once (fast platform) and start both runs from that state
    seed_from_one_equilibration(small, cond, MDSettings(platform="CPU", **common))
    settings = MDSettings(platform="Reference", **common)
    ref = run_md(small, cond, tmp_path / "straight", settings, progress=False)

    original = FieldProduction._commit

    def crashing_commit(self, simulation, prog, reporter):
        original(self, simulation, prog, reporter)
        if prog["phase"] == "count" and prog["time_ps"] > 0:
            simulation.step(7)  # work after the checkpoint that the crash loses
            raise Interrupt

    monkeypatch.setattr(FieldProduction, "_commit", crashing_commit)
    with pytest.raises(Interrupt):
        run_md(small, cond, tmp_path / "resumed", settings, progress=False)
    assert not (tmp_path / "resumed" / "measurement.json").exists()
    monkeypatch.setattr(FieldProduction, "_commit", original)
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


# --- run length, extension, symmetry, orientation (the small system: 1.6 nm sheet, 3 nm box, 0.7 nm cutoff) ----
SMALL = {"sheet_nm": 1.6, "box_z_nm": 3.0, "groups_per_rim": 2, "pore": {"shape": "circle", "width_nm": 0.7,
                                                                         "height_nm": 0.7}}
QUICK = dict(checkpoint_ps=0.05, traj_interval_ps=0.01, report_interval_steps=5, equil_ps=0.1, ramp_ps=0.05, seed=2,
             cutoff_nm=0.7, platform="CPU", cpu_threads=1, minimise_max_iterations=100, settle_window_ps=0.02,
             settle_max_ps=0.06)


def production_steps(path, out, e) -> list[int]:
    """The StateDataReporter log's steps after the field's settle (the log covers the settle too)."""
    prog = json.loads((out / "state" / f"E{e:+g}" / "progress.json").read_text())
    return [s for s in log_steps(path) if s > round(prog["settle_ps"] * 1000 / prog["dt_fs"])]


def log_steps(path) -> list[int]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#") and sum(ln.startswith("#") for ln in lines) == 1
    return [int(ln.split(",")[0]) for ln in lines[1:]]


def test_fields_are_stepped_at_once_each_into_its_own_result_and_an_error_in_one_stops_the_run(tmp_path,
                                                                                               monkeypatch):
    """With 2 CPU threads, +E and -E advance at once (a barrier both must reach before either steps would time
    out one after another), each result lands at its own field, and a blow-up at one field is a failed
    measurement once the other has stopped, its work kept."""
    import threading

    from porelab.sim.engine import SimulationBlowUp

    design = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0, -4.0]})
    settings = MDSettings(production_ps=0.04, **{**QUICK, "cpu_threads": 2})
    barrier, original, fail = threading.Barrier(2, timeout=60), FieldProduction.advance, {"at": None}

    def advance(self, target_ps, equilibrated, bar):
        barrier.wait()  # BrokenBarrierError unless the other field is advancing at the same time
        if self.field == fail["at"]:
            raise SimulationBlowUp("energy blow-up (injected)")
        return original(self, target_ps, equilibrated, bar)

    monkeypatch.setattr(FieldProduction, "advance", advance)
    m = run_md(design, cond, tmp_path / "ok", settings, progress=False)
    assert m.status == "ok" and [f.field_V_per_nm for f in m.fields] == [4.0, -4.0]
    assert m.provenance["fields_at_once"] == 2 and m.provenance["threads_per_field"] == 1
    for f in m.fields:
        assert f.time_ns == pytest.approx(4e-5)
        saved = FieldResult.model_validate_json((tmp_path / "ok" / "state" / f"E{f.field_V_per_nm:+g}" /
                                                 "result.json").read_text())
        assert saved == f
    fail["at"] = -4.0
    bad = run_md(design, cond, tmp_path / "bad", settings, progress=False)
    assert bad.status == "failed" and "injected" in bad.error
    assert (tmp_path / "bad" / "state" / "E+4" / "result.json").exists()  # the field that ran is kept


@pytest.mark.parametrize(("platform", "threads", "n", "each"), [
    ("CPU", 2, 2, 1), ("CPU", 5, 2, 2), ("CPU", 1, 2, None), ("CPU", 2, 1, None), ("Reference", 2, 2, None)])
def test_an_engine_shares_its_threads_among_fields_stepped_at_once(platform, threads, n, each):
    from porelab.sim.engine import Engine

    system = openmm.System()
    system.addParticle(1.0)
    engine = Engine(system, platform=platform, cpu_threads=threads)
    split = engine.split(n)
    if each is None:  # fewer threads than fields, one field, or the Reference platform: one after another
        assert split is None
    else:
        assert split is not engine and split.cpu_threads == each and engine.cpu_threads == threads


def test_a_longer_run_extends_in_place_and_never_reports_old_numbers(tmp_path):
    """The bug: a second `simulate --out DIR --time-ps` returned the first run's numbers under the new length.
    Now a longer length continues from the checkpoint (numbers, trajectory, log, history carry on); a shorter one
    or another setting that changes the numbers is refused in one line, and nothing is lost."""
    design = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0, -4.0]})
    first = run_md(design, cond, tmp_path, MDSettings(production_ps=0.1, **QUICK), progress=False)
    assert first.status == "ok", first.error
    assert all(f.time_ns == pytest.approx(1e-4) for f in first.fields)
    second = run_md(design, cond, tmp_path, MDSettings(production_ps=0.2, **QUICK), progress=False)
    assert all(f.time_ns == pytest.approx(2e-4) for f in second.fields)  # 1e-4 before the fix
    assert second.provenance["production_ps"] == pytest.approx(0.2) and second.oracle == first.oracle
    run = second.run
    assert run.stopped == "fixed" and run.production_ps == pytest.approx(0.2)
    assert [h.production_ps for h in run.history] == pytest.approx([0.1, 0.2])
    assert [x.from_ps for x in run.extensions] == pytest.approx([0.0, 0.1])
    assert [x.to_ps for x in run.extensions] == pytest.approx([0.1, 0.2])
    assert run.cpu_s == pytest.approx(sum(x.cpu_s for x in run.extensions)) and run.wall_s > 0
    for e in (4.0, -4.0):  # the trajectory and the StateDataReporter log carry on, nothing twice
        traj = md.load(str(tmp_path / f"traj_E{e:+g}.dcd"), top=str(tmp_path / "ions.pdb"))
        assert traj.n_frames == 20 and np.all(np.diff(traj.time) > 0)
        steps = log_steps(tmp_path / f"md_E{e:+g}.log")
        assert steps == sorted(set(steps)) and len(production_steps(tmp_path / f"md_E{e:+g}.log", tmp_path, e)) == 20
    system = openmm.XmlSerializer.deserialize((tmp_path / "system.xml").read_text())
    assert system.getNumParticles() == second.provenance["n_atoms"]
    saved = (tmp_path / "measurement.json").read_text()
    with pytest.raises(DesignError, match=r"holds 0\.2 ps .* production_ps=0\.1 is shorter"):
        run_md(design, cond, tmp_path, MDSettings(production_ps=0.1, **QUICK), progress=False)
    with pytest.raises(DesignError, match=rf"{tmp_path} was run with timestep_fs=2\.0 \(asked 1\.0\)"):
        run_md(design, cond, tmp_path, MDSettings(production_ps=0.3, **{**QUICK, "timestep_fs": 1.0}),
               progress=False)
    with pytest.raises(DesignError, match=r"seed=2 \(asked 3\)"):
        run_md(design, cond, tmp_path, MDSettings(production_ps=0.3, **{**QUICK, "seed": 3}), progress=False)
    assert (tmp_path / "measurement.json").read_text() == saved


def test_decisive_runs_advance_in_chunks_until_the_cap_and_a_larger_cap_continues(tmp_path):
    design = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0, -4.0]})
    rule = dict(until="decisive", min_production_ps=0.05, chunk_ps=0.05, icr_margin=0.2, icr_rel_halfwidth=0.01)
    m = run_md(design, cond, tmp_path, MDSettings(max_production_ps=0.1, **rule, **QUICK), progress=False)
    # 0.05 ps chunks see (almost) no transit: the ICR stays undecided, the cap stops the run
    assert m.run.stopped == "cap" and "max_production_ps=0.1" in m.run.reason
    assert [h.production_ps for h in m.run.history] == pytest.approx([0.05, 0.1])
    assert m.run.rule["until"] == "decisive" and m.run.rule["chunk_ps"] == 0.05
    for h in m.run.history:
        assert len(h.icr) == 1 and {f.field_V_per_nm for f in h.fields} == {4.0, -4.0}
    m2 = run_md(design, cond, tmp_path, MDSettings(max_production_ps=0.15, **rule, **QUICK), progress=False)
    assert [h.production_ps for h in m2.run.history] == pytest.approx([0.05, 0.1, 0.15])
    assert m2.run.history[:2] == m.run.history and len(m2.run.extensions) == 2
    assert all(f.time_ns == pytest.approx(1.5e-4) for f in m2.fields)
    # a fixed length after a decisive run: the same directory, extended again
    m3 = run_md(design, cond, tmp_path, MDSettings(production_ps=0.2, **QUICK), progress=False)
    assert m3.run.stopped == "fixed" and len(m3.run.history) == 4


def test_a_fixed_run_records_its_currents_every_chunk_and_stops_only_at_its_length(tmp_path):
    """A fixed length looks every chunk_ps without stopping: its history answers shorter lengths (a replay of the
    extension choice); its last look is the measurement."""
    design = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0, -4.0]})
    m = run_md(design, cond, tmp_path, MDSettings(production_ps=0.1, chunk_ps=0.04, **QUICK), progress=False)
    assert m.run.stopped == "fixed" and m.run.rule == {"until": "fixed", "production_ps": 0.1}
    assert [h.production_ps for h in m.run.history] == pytest.approx([0.04, 0.08, 0.1])
    assert all(f.time_ns == pytest.approx(1e-4) for f in m.fields)
    last = m.run.history[-1]
    assert last.fields == m.fields and last.icr == m.icr  # the species' counts too: a shorter length can be learnt


def test_a_symmetric_design_is_simulated_at_plus_e_only_and_its_icr_is_one_by_symmetry(tmp_path):
    design = make_design({"layers": ["COO-"], **SMALL})
    assert design.is_symmetric()
    cond = make_conditions({"fields_V_per_nm": [4.0, -4.0]})
    m = run_md(design, cond, tmp_path, MDSettings(production_ps=0.05, **QUICK), progress=False)
    assert m.status == "ok", m.error
    assert sorted(p.name for p in (tmp_path / "state").iterdir() if p.is_dir()) == ["E+4"]
    plus, minus = m.field(4.0), m.field(-4.0)
    assert not plus.derived_by_symmetry and minus.derived_by_symmetry
    assert minus.current_displacement_nA == -plus.current_displacement_nA
    assert minus.species["K+"].flux_ci_per_ns == tuple(-x for x in reversed(plus.species["K+"].flux_ci_per_ns))
    (row,) = m.icr
    assert row.by_symmetry and row.icr == 1.0 and row.icr_ci == (1.0, 1.0) and not row.icr_censored
    assert m.provenance["simulated"] == {"mirror_image_of_asked": False, "fields_V_per_nm": [4.0], "symmetric": True}


def test_a_design_and_its_mirror_image_share_one_simulation(tmp_path):
    """MDRun simulates the canonical orientation and answers as asked: the mirror image at the opposite fields is
    the same simulation, answered from the same directory without simulating again."""
    a = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0]})
    b, cond_b = a.mirrored(), cond.with_fields([-4.0])
    asked, asked_cond, other, other_cond = (a, cond, b, cond_b) if canonical(a, cond)[2] else (b, cond_b, a, cond)
    m = run_md(asked, asked_cond, tmp_path, MDSettings(production_ps=0.05, **QUICK), progress=False)
    assert m.status == "ok" and m.design == asked and m.conditions == asked_cond
    assert m.provenance["simulated"]["mirror_image_of_asked"] is True
    (e,) = asked_cond.fields_V_per_nm
    assert [p.name for p in (tmp_path / "state").iterdir() if p.is_dir()] == [f"E{-e:+g}"]  # canonical field
    n = m.run.extensions
    twin = run_md(other, other_cond, tmp_path, MDSettings(production_ps=0.05, **QUICK), progress=False)
    assert twin.design == other and twin.run.extensions == n  # nothing simulated again
    f, g = m.field(e), twin.field(-e)
    assert g.current_displacement_nA == -f.current_displacement_nA and g.current_nA == -f.current_nA
    assert g.species["K+"].crossings_up == f.species["K+"].crossings_down
    assert twin.oracle == m.oracle and twin.design_id == m.design_id


def test_a_production_blow_up_is_retried_from_the_checkpoint_at_half_the_step(tmp_path, monkeypatch):
    from porelab.sim.engine import Engine, SimulationBlowUp

    design = make_design({"layers": ["COO-", "NH3+"], **SMALL})
    cond = make_conditions({"fields_V_per_nm": [4.0]})
    original, raised = Engine.step, []

    def flaky(self, simulation, n, check=True):  # one blow-up in production, after the first checkpoint
        original(self, simulation, n, check)
        if simulation.context.getParameter("Ez") != 0 and simulation.currentStep > 30 and not raised:
            raised.append(simulation.currentStep)
            raise SimulationBlowUp("injected NaN")

    monkeypatch.setattr(Engine, "step", flaky)
    m = run_md(design, cond, tmp_path, MDSettings(production_ps=0.1, **QUICK), progress=False)
    assert raised and m.status == "ok", m.error
    prog = json.loads((tmp_path / "state" / "E+4" / "progress.json").read_text())
    assert prog["dt_fs"] == 1.0 and prog["attempts"] == 1 and prog["time_ps"] == pytest.approx(0.1)
    assert m.fields[0].time_ns == pytest.approx(1e-4)
    traj = md.load(str(tmp_path / "traj_E+4.dcd"), top=str(tmp_path / "ions.pdb"))
    assert traj.n_frames == 10 and np.all(np.diff(traj.time) > 0)
    steps = log_steps(tmp_path / "md_E+4.log")
    assert steps == sorted(set(steps))
