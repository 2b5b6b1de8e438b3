"""The MLflow servers of a workspace, on loopback unless told otherwise (then with a warning): `porelab ui [DIR]`, its
UI (one worker, no job execution), and `porelab serve NAME@ALIAS`, a registered surrogate answering tables of designs
over HTTP (surrogate.serving). Each runs in its own process group, stopped with this process.

Imports on use: MLflow and the campaign floor load in the command that needs them, so that `porelab --help` starts
in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from porelab.base.console import console, err_console, fail, out_path
from porelab.base.workspace import workspace as default_workspace
from porelab.surrogate.mlflow_quiet import quiet_mlflow
from porelab.surrogate.mlflow_store import workspace_uri


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
    from porelab.active_learning.campaign.directory import LEDGER_FILE

    d = directory.resolve()
    return d if (d / "mlflow.db").exists() or not (d / LEDGER_FILE).exists() else d.parent


def ui_command(directory: Path, host: str = "127.0.0.1", port: int = 5000) -> tuple[list[str], dict[str, str], str]:
    """(argv, environment, URL) of the MLflow server for the workspace holding `directory` (loopback by default)."""
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
    _refuse_busy(host, port, "the MLflow UI")
    console.print(f"MLflow UI at {url}  (Ctrl-C to stop); the campaigns' runs: {url}/#/experiments", highlight=False)
    raise typer.Exit(serve(argv, env))


def model_uri(model: str) -> str:
    """models:/NAME@ALIAS or models:/NAME/VERSION of `model` (either form, with or without models:/)."""
    ref = model.removeprefix("models:/")
    if not re.fullmatch(r"[^@/\s]+(@[A-Za-z0-9_-]+|/\d+)", ref):
        raise ValueError(f"model {model!r}: give NAME@ALIAS (e.g. porelab-quickstart@champion) or NAME/VERSION")
    return f"models:/{ref}"


def serve_command(model: str, workspace: Path, host: str = "127.0.0.1", port: int = 5001
                  ) -> tuple[list[str], dict[str, str], str]:
    """(argv, environment, URL) of `mlflow models serve` for a model registered in the workspace's store: this
    environment's mlflow and uvicorn (its bin first on PATH, so a fresh shell works), loopback by default."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = model_uri(model)
    if not (workspace / "mlflow.db").exists():
        raise FileNotFoundError(f"no mlflow.db in {workspace}: train a model or run a campaign there first "
                                "(or pass --workspace)")
    name, _, alias = uri.removeprefix("models:/").partition("@")
    name, _, version = name.partition("/")
    with quiet_mlflow():
        client = MlflowClient(workspace_uri(workspace))
        try:
            client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        except MlflowException:
            known = sorted(m.name for m in client.search_registered_models())
            raise ValueError(f"model {model!r} is not registered in {workspace / 'mlflow.db'} (registered: "
                             f"{', '.join(known) or 'none'})") from None
    bin_dir = str(Path(sys.executable).parent)
    exe = shutil.which("mlflow", path=bin_dir) or shutil.which("mlflow")
    if exe is None:
        raise FileNotFoundError("the mlflow command is not installed")
    argv = [exe, "models", "serve", "-m", uri, "--env-manager", "local", "--host", host, "--port", str(port)]
    env = {**os.environ, "MLFLOW_TRACKING_URI": workspace_uri(workspace),
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}  # mlflow starts uvicorn from PATH
    shown = f"[{host}]" if ":" in host else host
    return argv, env, f"http://{shown}:{port}"


def _refuse_busy(host: str, port: int, what: str) -> None:
    """Warn when `host` is not loopback (`what`: what it exposes, one line); fail when the port is taken."""
    if not _is_loopback(host):
        err_console.print(f"[bold yellow]warning:[/] binding {what} to {escape(host)}: it has no authentication and "
                          "anyone who can reach this address can use it", highlight=False)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.settimeout(2.0)
            in_use = s.connect_ex(({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)) == 0
    except OSError:
        in_use = False  # let the server report what it cannot bind
    if in_use:
        fail(f"port {port} on {host} is in use; pass --port")


def serve_model(
    model: Annotated[str, typer.Argument(metavar="NAME@ALIAS", help="registered surrogate, e.g. "
                                         "porelab-quickstart@champion (or NAME/VERSION)")],
    workspace: Annotated[Path | None, typer.Option(help="workspace holding mlflow.db (default: $PORELAB_WORKSPACE "
                                                        "or the current directory)")] = None,
    host: Annotated[str, typer.Option(help="address to bind; anything but loopback exposes the model")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port", min=1, max=65535)] = 5001,
):
    """Serve a registered surrogate over HTTP on 127.0.0.1 (POST /invocations: a table of designs and conditions in,
    ICR, ON current and fluxes with 95 % intervals out; docs/surrogates.md)."""
    ws = (workspace or default_workspace()).resolve()
    try:
        check_host(host)
        argv, env, url = serve_command(model, ws, host, port)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    _refuse_busy(host, port, f"the model {model}")
    console.print(f"{model} at {url}/invocations  (Ctrl-C to stop)", highlight=False)
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
