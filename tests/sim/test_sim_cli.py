import json

import pytest
from typer.testing import CliRunner

from porelab.active_learning.cli.main import app

runner = CliRunner()
EXAMPLE = "experiments/examples/tiny-symmetric.yaml"


def test_build_writes_a_pdb(tmp_path):
    out = tmp_path / "m.pdb"
    r = runner.invoke(app, ["build", EXAMPLE, "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("REMARK") and "layer charges [-4.0, 4.0, -4.0]" in r.output.replace("\n", "")


def test_build_png_draws_the_built_membrane(tmp_path):
    """--png writes a picture beside the PDB; it is the built structure (one image, both panels drawn)."""
    from matplotlib.image import imread

    out = tmp_path / "m.pdb"
    r = runner.invoke(app, ["build", EXAMPLE, "--out", str(out), "--png"])
    assert r.exit_code == 0, r.output
    png = tmp_path / "m.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in r.output.replace("\n", "")
    img = imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 400 and img[..., :3].std() > 0.05  # drawn, not blank
    r = runner.invoke(app, ["build", EXAMPLE, "--out", str(tmp_path / "n.pdb")])
    assert r.exit_code == 0 and not (tmp_path / "n.png").exists()  # only when asked


def test_simulate_continuum_writes_measurement_and_plots(tmp_path):
    r = runner.invoke(app, ["simulate", EXAMPLE, "--out", str(tmp_path), "--fidelity", "continuum",
                            "--fields", "0.1,0.5,1"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "measurement.json").read_text())
    assert m["fidelity"] == "continuum" and m["status"] == "ok"
    assert sorted(f["field_V_per_nm"] for f in m["fields"]) == [-1, -0.5, -0.1, 0.1, 0.5, 1]
    assert len(m["icr"]) == 3
    assert (tmp_path / "iv.png").stat().st_size > 1000 and (tmp_path / "icr.png").stat().st_size > 1000
    text = " ".join(r.output.split())
    for r_ in m["icr"]:  # every ICR printed with its interval (the continuum's: an error bound)
        lo, hi = r_["icr_ci"]
        assert f"{r_['icr']:.3g} [{lo:.3g}, {hi:.3g}] [error bound]" in text, text


@pytest.mark.parametrize(
    "content, words",
    [
        ("design: {layers: [COO-, NH3+\n", "malformed YAML"),
        ("design: {spacing_nm: 0.05}\n", "spacing_nm=0.05"),
        ("conditions: {electrolyte: {K+: 1.0}}\n", "electroneutral"),
        ("conditions: {electrolyte: {Xx: 1.0, Cl-: 1.0}}\n", "'Xx' is unknown"),
        ("preset: huge\n", "preset 'huge' is unknown"),
        ("design: {groups_per_rim: 50}\nconditions: {fields_V_per_nm: [1.0]}\n", "groups_per_rim=50 exceeds"),
    ],
)
def test_bad_input_is_one_line_error_and_nonzero_exit(tmp_path, content, words):
    p = tmp_path / "d.yaml"
    p.write_text(content)
    r = runner.invoke(app, ["build", str(p), "--out", str(tmp_path / "x.pdb")])
    assert r.exit_code == 2
    assert words in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.pdb").exists()


def test_unknown_fidelity_and_bad_fields_are_refused(tmp_path):
    r = runner.invoke(app, ["simulate", EXAMPLE, "--out", str(tmp_path), "--fidelity", "quantum"])
    assert r.exit_code == 2 and "quantum" in r.output
    r = runner.invoke(app, ["simulate", EXAMPLE, "--out", str(tmp_path), "--fields", "a,b"])
    assert r.exit_code == 2 and "--fields" in r.output


def test_simulate_md_refuses_a_changed_setting_in_one_line_before_simulating(tmp_path):
    """A run directory keeps the settings that change the numbers: another --timestep-fs (or --seed) is refused,
    naming the setting and the directory, and nothing is written."""
    from porelab.sim.design import load_design_file
    from porelab.sim.protocol import MDRun, MDSettings

    design, cond = load_design_file(EXAMPLE)
    MDRun(design, cond.with_fields([2.0, -2.0]), tmp_path, MDSettings(equil_ps=0.1))._claim_directory()
    before = sorted(p.name for p in tmp_path.iterdir())
    r = runner.invoke(app, ["simulate", EXAMPLE, "--out", str(tmp_path), "--fields", "2", "--equil-ps", "0.1",
                            "--settle-max-ps", "0.2", "--timestep-fs", "4"])
    assert r.exit_code == 2, r.output
    text = r.output.replace("\n", "")
    assert "timestep_fs=2.0 (asked 4.0)" in text and str(tmp_path) in text and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    r = runner.invoke(app, ["simulate", EXAMPLE, "--out", str(tmp_path), "--until", "forever"])
    assert r.exit_code == 2 and "until='forever' is unknown" in r.output


@pytest.mark.slow
def test_simulate_md_of_a_symmetric_pore_then_a_longer_run_extends_it(tmp_path):
    args = ["simulate", "experiments/examples/tiny-1layer.yaml", "--out", str(tmp_path), "--fields", "2",
            "--equil-ps", "0.1", "--settle-max-ps", "0.2", "--threads", "1"]
    r = runner.invoke(app, [*args, "--time-ps", "0.2"])
    assert r.exit_code == 0, r.output
    assert "1 by symmetry" in r.output and "stopped: fixed" in r.output
    r = runner.invoke(app, [*args, "--time-ps", "0.4"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "measurement.json").read_text())
    assert [f["time_ns"] for f in m["fields"]] == pytest.approx([4e-4, 4e-4])
    assert [f["derived_by_symmetry"] for f in sorted(m["fields"], key=lambda f: f["field_V_per_nm"])] == [True, False]
    assert m["provenance"]["production_ps"] == pytest.approx(0.4) and len(m["run"]["history"]) == 2
    for name in ("iv.png", "icr.png", "system.xml"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "md_E+2.log").exists()  # (its first line comes at the first 1 ps trajectory frame)
    assert not (tmp_path / "md_E-2.log").exists()  # -2 V/nm is derived, never simulated
