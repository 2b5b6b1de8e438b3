import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from al_helpers import write_study
from typer.testing import CliRunner

from porelab.active_learning.cli.main import app, ui_command

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
                        "--dir", str(d)], capture_output=True, text=True, timeout=300)
    out = " ".join(r.stdout.split())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "campaign stopped: budget" in out and f"porelab ui {d}" in out and "best designs" in out
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
    one_line_error(runner.invoke(app, ["campaign", "run", str(study), "--dir", str(tmp_path / "c")]),
                   "budget.simulations: Input should be greater than or equal to 1")
    assert not (tmp_path / "c").exists()


def test_bad_user_oracle_is_one_line(tmp_path):
    study = write_study(tmp_path / "s.yaml", oracle={"kind": "user", "path": "missing.py:Nope"})
    one_line_error(runner.invoke(app, ["campaign", "run", str(study), "--dir", str(tmp_path / "c"),
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
