"""CLI habits people expect: errors on stderr with a non-zero exit (stdout stays for results), -q/-v after the
subcommand too, `campaign run --budget`, and `porelab ui` taking its server down with it."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from al_helpers import SMALL
from typer.testing import CliRunner

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.cli import main as cli

PORELAB = str(Path(sys.executable).parent / "porelab")
runner = CliRunner()


def run(args, cwd, **kw):
    env = {**os.environ, "PORELAB_WORKSPACE": str(cwd)}
    return subprocess.run([PORELAB, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, **kw)


def test_errors_go_to_stderr_with_a_non_zero_exit(tmp_path):
    for args in (["build", "nosuch.yaml"], ["campaign", "status", "nowhere"], ["simulate", "--no-such-option"]):
        r = run(args, tmp_path)
        assert r.returncode != 0 and r.stdout == "", (args, r.stdout)
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


def test_quiet_and_verbose_are_accepted_after_the_subcommand():
    assert cli._root_options_first(["campaign", "run", "s.yaml", "-q"]) == ["-q", "campaign", "run", "s.yaml"]
    assert cli._root_options_first(["train", "-v", "d", "--", "-q"]) == ["-v", "train", "d", "--", "-q"]
    assert cli._root_options_first(["design", "s.yaml", "--quiet"]) == ["design", "s.yaml", "--quiet"]  # its own
    r = runner.invoke(cli.app, ["campaign", "status", "nowhere", "-q"])
    assert r.exit_code == 2 and "No such option" not in r.output and "nowhere" in r.output


def test_campaign_run_takes_a_budget(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SMALL))
    r = runner.invoke(cli.app, ["campaign", "run", "s.yaml", "--out", "c", "--budget", "6", "--no-tracking", "-q"])
    assert r.exit_code == 0, r.output
    led = Ledger(tmp_path / "c" / "ledger.sqlite")
    try:
        assert led.n_trials(True) == 6  # the study says 12
    finally:
        led.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_ui_stops_its_server_when_it_is_stopped(tmp_path):
    """SIGTERM to `porelab ui`: the MLflow server (and its uvicorn workers) stop too; nothing keeps the port."""
    (tmp_path / "mlflow.db").write_bytes(b"")
    port = _free_port()
    env = {**os.environ, "PORELAB_WORKSPACE": str(tmp_path)}
    proc = subprocess.Popen([PORELAB, "ui", str(tmp_path), "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read() if proc.poll() else "slow"
            time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 15
        while _listening(port) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert not _listening(port), "the MLflow server outlived porelab ui"
        assert "#/experiments" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_printed_next_steps_work_from_any_directory(tmp_path, monkeypatch):
    """`porelab ui DIR` as printed after a campaign: from the workspace as is; from elsewhere with a cd to it
    (porelab writes only inside its workspace, so a bare absolute path would be refused there)."""
    from porelab.base.console import runnable

    ws = tmp_path / "ws"
    (ws / "runs" / "c").mkdir(parents=True)
    monkeypatch.setenv("PORELAB_WORKSPACE", str(ws))
    monkeypatch.chdir(ws)
    assert runnable("porelab ui", ws / "runs" / "c") == "porelab ui runs/c"
    monkeypatch.chdir(tmp_path)
    line = runnable("porelab ui", ws / "runs" / "c")
    assert line == f"cd {ws.resolve()} && porelab ui runs/c"
    (ws / "mlflow.db").write_bytes(b"")
    r = subprocess.run(line.replace("porelab ui", f"{PORELAB} ui") + " --port 0", shell=True, cwd="/",
                       capture_output=True, text=True, env={**os.environ, "PORELAB_WORKSPACE": ""}, timeout=60)
    assert "outside the workspace" not in r.stderr and "'--port'" in r.stderr  # refused only for the bad port
