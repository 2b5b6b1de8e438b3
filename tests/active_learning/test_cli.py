import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from al_helpers import write_study
from typer.testing import CliRunner

from porelab.active_learning.cli.main import app
from porelab.active_learning.cli.ui import ui_command

runner = CliRunner()


def one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    assert "Traceback" not in r.output and r.output.startswith("error:"), r.output
    assert len(r.output.strip().splitlines()) <= 3  # one line, maybe wrapped by the terminal width
    text = " ".join(r.output.split())
    for n in needles:
        assert n in text, text


@pytest.mark.slow
def test_run_status_resume_and_ui_serves_the_workspace(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    study = write_study(tmp_path / "s.yaml", budget={"simulations": 8, "initial": 4, "batch": 4})
    d = tmp_path / "ws" / "small"
    r = subprocess.run([sys.executable, "-m", "porelab.active_learning.cli", "campaign", "run", str(study),
                        "--out", str(d)], capture_output=True, text=True, timeout=300)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stdout + r.stderr
    from porelab.base.console import runnable

    assert "campaign stopped: budget" in out and runnable("porelab ui", d) in out and "best designs" in out
    assert (tmp_path / "ws" / "mlflow.db").exists() and (d / "ledger.sqlite").exists()
    r = runner.invoke(app, ["campaign", "status", str(d)])
    assert r.exit_code == 0 and "best designs" in r.output and "stopped: budget" in r.output
    r = runner.invoke(app, ["campaign", "resume", str(d)])
    assert r.exit_code == 0 and "already finished" in r.output
    argv, env, url = ui_command(d, "127.0.0.1", 5123)
    assert argv[1:] == ["server", "--backend-store-uri", f"sqlite:///{tmp_path.resolve()}/ws/mlflow.db", "--host",
                        "127.0.0.1", "--port", "5123", "--workers", "1", "--default-artifact-root",
                        (tmp_path / "ws" / "mlartifacts").resolve().as_uri()]
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false" and url == "http://127.0.0.1:5123"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv, env, url = ui_command(d, "127.0.0.1", port)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:  # the server answers on loopback with this workspace's experiment
        deadline = time.monotonic() + 90
        while True:
            try:
                body = urllib.request.urlopen(f"{url}/ajax-api/2.0/mlflow/experiments/search?max_results=10",
                                              timeout=2).read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.5)
        assert '"name": "small"' in body or '"name":"small"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("args, needles", [
    (["campaign", "run", "nope.yaml"], ["nope.yaml: no such file"]),
    (["campaign", "resume", "."], ["is not a campaign directory"]),
    (["campaign", "status", "/nonexistent/x"], ["is not a campaign directory"]),
    (["ui", "/nonexistent/x"], ["no mlflow.db in /nonexistent"]),
])
def test_user_errors_are_one_line(args, needles):
    one_line_error(runner.invoke(app, args), *needles)


def test_bad_study_is_one_line(tmp_path):
    study = write_study(tmp_path / "s.yaml", budget={"simulations": -3})
    one_line_error(runner.invoke(app, ["campaign", "run", str(study), "--out", str(tmp_path / "c")]),
                   "budget.simulations: Input should be greater than or equal to 1")
    assert not (tmp_path / "c").exists()


def test_bad_user_oracle_is_one_line(tmp_path):
    study = write_study(tmp_path / "s.yaml", oracle={"kind": "user", "path": "missing.py:Nope"})
    one_line_error(runner.invoke(app, ["campaign", "run", str(study), "--out", str(tmp_path / "c"),
                                       "--no-tracking"]), "missing.py:Nope", "no such file")


def test_second_driver_refused(tmp_path):
    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.ledger import CampaignLock
    from porelab.active_learning.campaign.study import load_study

    d = create(load_study(write_study(tmp_path / "s.yaml")), tmp_path / "c")
    with CampaignLock(d):
        one_line_error(runner.invoke(app, ["campaign", "resume", str(d), "--no-tracking"]),
                       "is being driven by pid", "one driver per campaign")


def test_ui_warns_on_a_public_host(tmp_path):
    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as s:  # a port in use: refused before anything starts
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = runner.invoke(app, ["ui", str(tmp_path), "--host", "0.0.0.0", "--port", str(port)])
    assert "warning: binding the MLflow UI to 0.0.0.0" in " ".join(r.output.split())
    assert r.exit_code == 2 and f"port {port} on 0.0.0.0 is in use" in " ".join(r.output.split())


def test_version():
    import porelab

    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"porelab {porelab.__version__}"


@pytest.mark.parametrize("command, option, values", [
    (["simulate"], "--fidelity", ["md", "continuum"]),
    (["simulate"], "--preset", ["tiny", "seed"]),
    (["simulate"], "--platform", ["CPU", "CUDA", "OpenCL", "HIP", "Reference"]),
    (["build"], "--preset", ["tiny", "seed"]),
    (["free-energy"], "--platform", ["CPU", "CUDA"]),
    (["campaign", "run"], "--model", ["gnn", "rf", "gp"]),
    (["campaign", "run"], "--acquisition", ["ucb", "thompson", "ei", "constrained_ei", "max_uncertainty", "random",
                                                "grid"]),
])
def test_options_with_a_fixed_set_of_values_list_them_and_refuse_others_in_one_line(command, option, values):
    r = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "|".join(values) in r.output, r.output
    one_line_error(runner.invoke(app, [*command, "x.yaml", option, "bogus"]),
                   f"{option} 'bogus' is unknown; choose", values[0], values[1])


def test_fixed_values_match_what_the_library_accepts():
    from typing import get_args

    from porelab.active_learning.campaign.acquisition import ACQUISITIONS
    from porelab.active_learning.campaign.study import ModelSpec
    from porelab.active_learning.cli.campaign import AcquisitionKind, ModelKind
    from porelab.sim.cli import Preset
    from porelab.sim.design import PRESETS

    assert set(get_args(ModelKind)) == set(get_args(ModelSpec.model_fields["kind"].annotation))
    assert set(get_args(AcquisitionKind)) == set(ACQUISITIONS) and set(get_args(Preset)) == set(PRESETS)


def test_one_output_option_verbosity_and_overrides(tmp_path, monkeypatch):
    """`campaign run --out` (the former --dir still works, hidden); --model/--acquisition are frozen into the
    campaign's study; the root --quiet drops the progress lines, not the summary."""
    import yaml

    monkeypatch.chdir(tmp_path)
    study = write_study(tmp_path / "s.yaml", budget={"simulations": 3, "initial": 3, "batch": 3})
    r = runner.invoke(app, ["-q", "campaign", "run", str(study), "--out", "c", "--no-tracking", "--model", "gp",
                            "--acquisition", "ei"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert "campaign stopped" not in r.output and "best designs (95 % intervals" in r.output
    frozen = yaml.safe_load((tmp_path / "c" / "study.yaml").read_text())
    assert frozen["model"] == {"kind": "gp", "params": {}, "novelty_floor": True}
    assert frozen["acquisition"]["kind"] == "ei"
    r = runner.invoke(app, ["campaign", "resume", "c", "--no-tracking"])
    assert r.exit_code == 0 and "already finished" in r.output, r.output
    r = runner.invoke(app, ["campaign", "run", str(study), "--dir", "d", "--no-tracking"])
    assert r.exit_code == 0 and "campaign stopped: budget" in r.output and (tmp_path / "d" / "ledger.sqlite").exists()
    assert "--dir" not in runner.invoke(app, ["campaign", "run", "--help"]).output
    one_line_error(runner.invoke(app, ["campaign", "run", str(study), "--out", "e", "--dir", "f"]), "give one")
    one_line_error(runner.invoke(app, ["-v", "-q", "campaign", "status", "c"]), "exclude each other")


def test_logging_is_configured_once_per_command_never_stacked():
    import logging

    from porelab.active_learning.cli.logs import ConsoleHandler, configure

    lg = logging.getLogger("porelab")
    before = (lg.level, list(lg.handlers))
    try:
        for v, level in ((-1, logging.WARNING), (0, logging.INFO), (1, logging.DEBUG), (0, logging.INFO)):
            configure(v)
            assert lg.level == level and sum(isinstance(h, ConsoleHandler) for h in lg.handlers) == 1
    finally:
        lg.setLevel(before[0])
        lg.handlers[:] = before[1]
