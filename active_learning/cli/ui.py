"""`porelab ui [DIR]`: the MLflow UI of a workspace, served on loopback unless told otherwise (then with a warning),
one worker, no job execution."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from porelab.active_learning.campaign.directory import LEDGER_FILE
from porelab.base.console import console, err_console, fail, out_path


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str) -> None:
    """ValueError unless `host` is a non-empty address or name this machine can resolve."""
    if not host.strip():
        raise ValueError("--host is empty; give an address such as 127.0.0.1")
    try:
        socket.getaddrinfo(host, None)
    except (socket.gaierror, UnicodeError, ValueError) as err:
        raise ValueError(f"--host {host!r} is not an address this machine can bind ({err})") from None


def _ui_workspace(directory: Path) -> Path:
    """The workspace (the directory holding mlflow.db) of a campaign directory or of a workspace."""
    d = directory.resolve()
    return d if (d / "mlflow.db").exists() or not (d / LEDGER_FILE).exists() else d.parent


def ui_command(directory: Path, host: str = "127.0.0.1", port: int = 5000) -> tuple[list[str], dict[str, str], str]:
    """(argv, environment, URL) of the MLflow server for the workspace holding `directory` (loopback by default)."""
    from porelab.surrogate.mlflow_store import workspace_uri

    workspace = _ui_workspace(directory)
    if not (workspace / "mlflow.db").exists():
        raise FileNotFoundError(f"no mlflow.db in {workspace}: run a campaign there first")
    exe = shutil.which("mlflow", path=str(Path(sys.executable).parent)) or shutil.which("mlflow")
    if exe is None:
        raise FileNotFoundError("the mlflow command is not installed")
    argv = [exe, "server", "--backend-store-uri", workspace_uri(workspace), "--host", host, "--port", str(port),
            "--workers", "1", "--default-artifact-root", (workspace / "mlartifacts").as_uri()]
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    shown = f"[{host}]" if ":" in host else host
    return argv, env, f"http://{shown}:{port}"


def ui(
    directory: Annotated[Path, typer.Argument(
        metavar="DIR", help="campaign directory or workspace (holding mlflow.db)")] = Path("runs"),
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback exposes the UI")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 5000,
):
    """Serve the MLflow UI of a workspace on 127.0.0.1 (one worker, no job execution) and print its URL."""
    try:
        check_host(host)
        argv, env, url = ui_command(directory, host, port)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    out_path(_ui_workspace(directory), f"DIRECTORY {str(directory)!r}: its workspace (the server writes there)")
    if not _is_loopback(host):
        err_console.print(f"[bold yellow]warning:[/] binding the MLflow UI to {escape(host)}: it has no authentication "
                      "and anyone who can reach this address can read and change the runs", highlight=False)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.settimeout(2.0)
            in_use = s.connect_ex(({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)) == 0
    except OSError:
        in_use = False  # let the server report what it cannot bind
    if in_use:
        fail(f"port {port} on {host} is in use; pass --port")
    console.print(f"MLflow UI at {url}  (Ctrl-C to stop); the campaigns' runs: {url}/#/experiments", highlight=False)
    raise typer.Exit(serve(argv, env))


def serve(argv: list[str], env: dict[str, str]) -> int:
    """Run the server in its own process group and wait for it; SIGTERM, SIGHUP or Ctrl-C to this process stops the
    whole group (the MLflow server and its uvicorn workers), and so does any way out of here: no server outlives
    `porelab ui`. Returns the server's exit code (0 when stopped by a signal)."""
    proc = subprocess.Popen(argv, env=env, start_new_session=True)

    def stop(signum=None, frame=None):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        for s, h in old.items():
            signal.signal(s, h)
