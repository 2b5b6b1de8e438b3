import json
import math

import numpy as np
import openmm
import openmm.unit as u
import pytest
import typer
from typer.testing import CliRunner

from porelab.sim.design import DesignError, design_id, make_conditions, make_design
from porelab.sim.engine import KB_KJ_PER_MOL_K
from porelab.sim.free_energy import FESettings, analyse
from porelab.sim.free_energy.cli import app as fe_app
from porelab.sim.free_energy.mbar import Profile
from porelab.sim.free_energy.run import run_claim
from porelab.sim.free_energy.target import (
    KZ,
    Z0,
    UmbrellaTarget,
    balance_ions,
    default_k_z,
    ion_dipole,
    place_ion,
    restraint_force,
    window_centres,
    wrap,
)
from porelab.sim.free_energy.thermodynamics import entropy_enthalpy, landscape_features, mirror_asymmetry
from porelab.sim.free_energy.windows import UmbrellaRun

BOX = np.array([3.0, 3.0, 5.0])
ZC = 2.5
KT300 = KB_KJ_PER_MOL_K * 300


def lone_ion(potential: str | None = None, radius: float = 0.5) -> UmbrellaTarget:
    """One K+-mass particle in a periodic box, restrained like a pore ion, plus an analytic potential U(dz), kJ/mol."""
    s = openmm.System()
    s.addParticle(39.1)
    s.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*row) for row in np.diag(BOX)))
    if potential:
        f = openmm.CustomExternalForce(f"{potential}; dz = z - {ZC} - {BOX[2]}*floor((z - {ZC})/{BOX[2]} + 0.5)")
        f.addParticle(0, [])
        s.addForce(f)
    s.addForce(restraint_force(0, BOX, BOX[:2] / 2, radius, 2000.0))
    return UmbrellaTarget(system=s, positions=np.array([[1.5, 1.5, ZC]]), box=BOX, ion=0, axis_xy=BOX[:2] / 2,
                          radius_nm=radius, layer_z_nm=[ZC], waters=np.zeros((0, 3), int))


def energy(target: UmbrellaTarget, xyz, z0: float, kz: float) -> tuple[float, np.ndarray]:
    ctx = openmm.Context(target.system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    ctx.setPositions([xyz])
    ctx.setParameter(Z0, z0)
    ctx.setParameter(KZ, kz)
    st = ctx.getState(getEnergy=True, getForces=True)
    return (st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole),
            st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)[0])


def test_restraint_is_periodic_harmonic_in_z_and_flat_bottomed_in_r():
    t = lone_ion(radius=0.5)
    for xyz, z0 in [((1.5, 1.5, 2.7), 2.5), ((1.5, 1.5, 0.1), 4.8), ((1.5, 1.5, -9.6), 0.3), ((1.9, 1.5, 2.5), 2.5),
                    ((2.9, 0.2, 7.4), 2.5), ((-1.4, 1.5, 2.5), 2.5)]:
        e, f = energy(t, xyz, z0, 500.0)
        dz = wrap(xyz[2] - z0, 5.0)
        rho = np.hypot(*wrap(np.array(xyz[:2]) - 1.5, 3.0))
        assert e == pytest.approx(0.5 * 500 * dz ** 2 + 0.5 * 2000 * max(0, rho - 0.5) ** 2, rel=1e-6, abs=1e-9)
        assert f[2] == pytest.approx(-500 * dz, rel=1e-6, abs=1e-6)
    e, f = energy(t, (1.5, 1.5, 2.5), 2.5, 500.0)  # exactly on the axis and at the centre: no NaN
    assert e == pytest.approx(0.0, abs=1e-6) and np.isfinite(f).all()


def test_place_ion_swaps_the_tagged_ion_with_the_nearest_water():
    t = lone_ion()
    pos = np.array([[0.2, 0.2, 0.2],  # ion, far from the window point
                    [1.6, 1.5, 2.45], [1.7, 1.5, 2.45], [1.6, 1.6, 2.45],  # water near (1.5, 1.5, 2.5)
                    [1.5, 1.5, 3.1], [1.6, 1.5, 3.1], [1.5, 1.6, 3.1]])
    t.waters = np.array([[1, 2, 3], [4, 5, 6]])
    new = place_ion(pos, t, 2.5)
    assert np.allclose(new[0], [1.6, 1.5, 2.45])
    assert np.allclose(new[1], pos[0]) and np.allclose(new[1:4] - new[1], pos[1:4] - pos[1])  # moved intact
    assert np.allclose(new[4:], pos[4:])


def test_balance_ions_cancels_a_one_sided_charge_excess_by_swapping_ions():
    rng = np.random.default_rng(2)
    z = np.concatenate([rng.uniform(0.5, 2.3, 6), rng.uniform(2.7, 4.5, 6)])  # membrane at 2.5 in a 5 nm box
    q = np.array([1.0] * 6 + [-1.0] * 6)  # all cations below the membrane, all anions above
    pos = np.column_stack([rng.uniform(0, 3, 12), rng.uniform(0, 3, 12), z])
    water = np.array([[1.0, 1.0, 1.0]])
    allpos = np.vstack([water, pos])
    new, before, after = balance_ions(allpos, np.arange(1, 13), q, 2.5, 5.0)
    assert abs(before) > 5 and abs(after) < 1.0 and after == pytest.approx(ion_dipole(new[1:, 2], q, 2.5, 5.0))
    assert np.array_equal(new[0], water[0])  # only ions move, and only by exchanging places
    assert sorted(map(tuple, new[1:])) == sorted(map(tuple, pos))


SETTINGS = dict(equil_ps=0.5, window_equil_ps=1.0, sample_ps=0.05, timestep_fs=4.0, ramp_ps=0.1, cpu_threads=1)


def test_umbrella_mbar_recovers_a_gaussian_barrier_and_a_symmetric_profile(tmp_path):
    height, width = 8.0, 0.2
    t = lone_ion(f"{height}*exp(-dz^2/(2*{width}^2))")
    s = FESettings(n_windows=15, window_ps=20.0, seed=3, **SETTINGS)
    z0s = window_centres(t.layer_z_nm, 1.0, s.n_windows)
    samples = UmbrellaRun(t, z0s, default_k_z(z0s, 300.0), [300.0], 300.0, s, tmp_path, progress=False).run()
    res = analyse(samples, 300.0, BOX[2], t.radius_nm, t.layer_z_nm, s)
    p = res.profiles[0]
    exact = height * np.exp(-((p.z - ZC) ** 2) / (2 * width ** 2))
    assert np.isfinite(p.G).all() and (p.dG < 3.0).all()  # errors small enough for the checks below to bite
    top = [f for f in res.features if f["kind"] == "barrier" and f["global"]][0]
    assert abs(top["z_nm"] - ZC) < 0.1
    assert abs(top["dG_kJ_mol"] - height) < 3 * top["dG_err"]
    assert ((p.G - exact) ** 2 / p.dG ** 2).mean() < 2.0  # the whole profile, not only its top
    assert res.symmetry["p_value"] > 0.001  # symmetric potential -> symmetric profile within errors
    for half in res.halves[0]:  # each half recovers it too, with larger scatter
        assert abs(np.nanmax(half.G) - height) < 4 * top["dG_err"] * math.sqrt(2)
    # the (z, r) surface is flat in r (no potential in r): density in r < 0.2 nm equals that in 0.3-0.5 nm.
    # (A missing 2 pi r Jacobian would put them ln(4) kT = 3.5 kJ/mol or more apart.)
    vol = np.diff(p.z_edges)[:, None] * np.pi * np.diff(p.r_edges ** 2)[None, :]
    mass = np.nan_to_num(np.exp(-p.G_zr / KT300)) * vol  # empty bins hold no mass
    inner, outer = p.r_edges[1:] <= 0.2 + 1e-9, p.r_edges[:-1] >= 0.3 - 1e-9
    ratio = (mass[:, inner].sum() / vol[:, inner].sum()) / (mass[:, outer].sum() / vol[:, outer].sum())
    assert abs(KT300 * math.log(ratio)) < 1.5


def test_resume_skips_finished_windows_and_refuses_other_settings(tmp_path):
    t = lone_ion("4*exp(-dz^2/0.08)")
    s = FESettings(n_windows=4, window_ps=1.0, temperatures_K=(290.0, 300.0), **SETTINGS)
    z0s = window_centres(t.layer_z_nm, 0.6, 4)
    run = UmbrellaRun(t, z0s, 300.0, [290.0, 300.0], 300.0, s, tmp_path, progress=False)
    first = run.run()
    files = sorted(tmp_path.glob("windows/T*/w*.npz"))
    assert len(files) == 8
    stamp = {f: f.stat().st_mtime_ns for f in files}
    gone = tmp_path / "windows" / "T290.0" / "w002.npz"
    gone.unlink()
    again = UmbrellaRun(t, z0s, 300.0, [290.0, 300.0], 300.0, s, tmp_path, progress=False).run()
    assert gone.exists()
    assert all(f.stat().st_mtime_ns == stamp[f] for f in files if f != gone)
    assert np.array_equal(first[300.0][1]["z"], again[300.0][1]["z"])
    assert again[290.0][2]["z0"] == pytest.approx(z0s[2])
    other = FESettings(n_windows=4, window_ps=2.0, temperatures_K=(290.0, 300.0), **SETTINGS)
    with pytest.raises(DesignError, match="settings.window_ps"):
        UmbrellaRun(t, z0s, 300.0, [290.0, 300.0], 300.0, other, tmp_path, progress=False).run()


def test_a_run_directory_is_claimed_by_the_design_as_given_not_by_its_mirror_image(tmp_path):
    """A profile along z is orientation-specific: the mirror image (same design id at the opposite fields) may not
    reuse the directory; the fields (the windows run at zero field) do not matter."""
    design = make_design({"layers": ["COO-", "NH3+"]}, "tiny")
    cond = make_conditions({"fields_V_per_nm": [2.0]})
    claim = run_claim(design, cond, "K+")
    mirror = run_claim(design.mirrored(), cond.with_fields([-2.0]), "K+")
    assert design_id(design.mirrored(), cond.with_fields([-2.0])) == design_id(design, cond) and mirror != claim
    t = lone_ion()
    s = FESettings(n_windows=2, window_ps=0.1, **SETTINGS)
    z0s = window_centres(t.layer_z_nm, 0.5, 2)

    def claim_dir(meta):
        UmbrellaRun(t, z0s, 300.0, [300.0], 300.0, s, tmp_path, meta=meta, progress=False)._claim()

    claim_dir(claim)
    claim_dir(run_claim(design, cond.with_fields([0.5, -1.0]), "K+"))  # other fields: the same profile
    with pytest.raises(DesignError, match="different state"):
        claim_dir(mirror)
    with pytest.raises(DesignError, match="different ion"):
        claim_dir(run_claim(design, cond, "Cl-"))


def test_finite_differences_recover_enthalpy_and_entropy_of_a_synthetic_model():
    z = np.linspace(-1, 1, 41)
    H = 12 * np.exp(-z ** 2 / 0.05) - 4 * np.exp(-(z - 0.5) ** 2 / 0.02)  # kJ/mol
    S = -0.02 * np.exp(-z ** 2 / 0.1) + 0.03 * np.exp(-(z + 0.4) ** 2 / 0.02)  # kJ/mol/K
    temps = np.array([280.0, 300.0, 320.0])
    G = H[None] - temps[:, None] * S[None]
    exact = entropy_enthalpy(temps, G, np.zeros_like(G), 300.0)
    assert np.allclose(exact["H"], H) and np.allclose(exact["mTS"], -300 * S) and np.allclose(exact["G"], G[1])
    two = entropy_enthalpy([290.0, 310.0], H[None] - np.array([[290.0], [310.0]]) * S, np.zeros((2, 41)), 300.0)
    assert np.allclose(two["H"], H) and np.allclose(two["mTS"], -300 * S)
    # with noise: errors propagated correctly (scatter over draws matches the reported error) and unbiased
    rng = np.random.default_rng(0)
    sigma = np.array([0.4, 0.6, 0.8])[:, None] * np.ones_like(G)
    draws = [entropy_enthalpy(temps, G + rng.normal(size=G.shape) * sigma, sigma, 300.0) for _ in range(3000)]
    for key, truth in (("H", H), ("mTS", -300 * S), ("G", G[1])):
        vals = np.array([d[key] for d in draws])
        assert np.allclose(vals.std(axis=0) / draws[0]["d" + key], 1.0, atol=0.08)
        assert np.abs(vals.mean(axis=0) - truth).max() < 4 * draws[0]["d" + key].max() / math.sqrt(3000)
    # central difference at 3 evenly spaced temperatures: -T dS = 300 (G+ - G-)/40, error 300 sqrt(.4^2+.8^2)/40
    assert draws[0]["dmTS"][0] == pytest.approx(300 * math.hypot(0.4, 0.8) / 40)
    assert draws[0]["dH"][0] == pytest.approx(math.sqrt(0.6 ** 2 + (300 * math.hypot(0.4, 0.8) / 40) ** 2))


def _profile(T, z_edges, G, dG=0.1):
    n = len(G)
    return Profile(T=T, z_edges=z_edges, r_edges=np.array([0, 0.5]), G=np.asarray(G, float),
                   dG=np.full(n, dG), G_zr=np.zeros((n, 1)), n_samples=1000)


def test_extrema_table_names_the_dominant_term():
    edges = np.linspace(0.975, 4.025, 62)  # bin centres 1.00, 1.05, ... 4.00 nm
    z = 0.5 * (edges[1:] + edges[:-1])
    H = 10 * np.exp(-(z - 2.2) ** 2 / 0.01)  # enthalpic barrier at 2.2 nm
    S = 0.04 * np.exp(-(z - 2.8) ** 2 / 0.01)  # entropic well at 2.8 nm
    profiles = [_profile(T, edges, H - T * S) for T in (280.0, 300.0, 320.0)]
    rows = landscape_features(profiles, 300.0, [2.5], bulk_nm=0.3)
    barrier = [r for r in rows if r["kind"] == "barrier" and r["global"]][0]
    well = [r for r in rows if r["kind"] == "well" and r["global"]][0]
    assert barrier["z_nm"] == pytest.approx(2.2, abs=0.03) and barrier["dominant"] == "enthalpy"
    assert barrier["dG_kJ_mol"] == pytest.approx(10, abs=0.1) and barrier["dominance_probability"] > 0.999
    assert well["z_nm"] == pytest.approx(2.8, abs=0.03) and well["dominant"] == "entropy"
    assert well["mTdS_kJ_mol"] == pytest.approx(-12, abs=0.1) and well["dH_kJ_mol"] == pytest.approx(0, abs=0.1)
    assert barrier["z_from_nearest_layer_nm"] == pytest.approx(-0.3, abs=0.03)
    assert len(rows) == 2  # flat elsewhere: no spurious extrema


def test_mirror_test_accepts_symmetric_and_flags_asymmetric_profiles():
    edges = np.linspace(1.5, 3.5, 41)
    z = 0.5 * (edges[1:] + edges[:-1])
    rng = np.random.default_rng(1)
    sym = 6 * np.exp(-(z - 2.5) ** 2 / 0.02) + rng.normal(0, 0.3, len(z))
    res = mirror_asymmetry(z, sym, np.full(len(z), 0.3), 2.5)
    assert res["dof"] == 20 and res["p_value"] > 0.01
    shifted = 6 * np.exp(-(z - 2.6) ** 2 / 0.02) + rng.normal(0, 0.3, len(z))
    assert mirror_asymmetry(z, shifted, np.full(len(z), 0.3), 2.5)["p_value"] < 1e-6


def _cli():
    root = typer.Typer()
    root.callback()(lambda: None)
    root.registered_commands += fe_app.registered_commands
    return root


@pytest.mark.parametrize("args, words", [
    (["--ion", "Xx"], "ion 'Xx' has no MD parameters"),
    (["--ion", "Na+"], "'Na+' is not in the electrolyte"),
    (["--temperatures", "280,320"], "must include the working temperature 300"),
    (["--temperatures", "280,abc"], "--temperatures '280,abc'"),
    (["--windows", "1"], "n_windows=1"),
])
def test_cli_refuses_bad_input_with_one_line(tmp_path, args, words):
    r = CliRunner().invoke(_cli(), ["free-energy", "experiments/examples/tiny-1layer.yaml", "--out",
                                    str(tmp_path / "fe"), *args])
    assert r.exit_code == 2, r.output
    assert words in r.output.replace("\n", "") and "Traceback" not in r.output


@pytest.mark.slow
def test_cli_runs_a_tiny_pore_and_resumes(tmp_path):
    out = tmp_path / "fe"
    args = ["free-energy", "experiments/examples/tiny-1layer.yaml", "--out", str(out), "--ion", "K+",
            "--windows", "3", "--margin-nm", "0.45", "--window-ps", "0.4", "--window-equil-ps", "0.1",
            "--equil-ps", "0.1", "--temperatures", "300,320", "--threads", "2"]
    r = CliRunner().invoke(_cli(), args)
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "free_energy.json").read_text())
    assert doc["ion"] == "K+" and doc["temperatures_K"] == [300.0, 320.0] and doc["cost"]["windows"] == 6
    assert doc["cost"]["platform"] in ("CPU", "CUDA") and doc["cost"]["cpu_min"] > 0
    assert len(doc["z_nm"]) == len(doc["profiles"][0]["G_kJ_mol"]) == len(doc["split_at_T0"]["H"])
    assert doc["features"] and {"dH_kJ_mol", "mTdS_kJ_mol", "dominant"} <= set(doc["features"][0])
    assert doc["symmetry"]["design_symmetric"] is True  # one COO- layer is its own mirror image
    assert abs(doc["ion_dipole_before_after_balancing_e_nm"][1]) < 1.0
    for png in ("profile.png", "convergence.png", "surface.png"):
        assert (out / png).stat().st_size > 5000
    r2 = CliRunner().invoke(_cli(), args)  # everything is done: only the analysis runs again
    assert r2.exit_code == 0 and json.loads((out / "free_energy.json").read_text())["profiles"] == doc["profiles"]
