"""The `porelab` command: the commands of every floor under one Typer app (imports go down the floors).

Floor 3 adds `campaign run STUDY.yaml`, `campaign resume DIR`, `campaign status DIR` and `ui [DIR]`.
User errors end with a one-line `error: ...` and exit code 2, never a traceback. The command configures logging
(library modules only log): warnings of any library, one line each on stderr; a campaign's progress lines come
from its `log` callback, and MLflow is wired in here as the campaign's view.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from typer._click import exceptions as click_errors  # the click that typer runs on (vendored)

from porelab.active_learning.cli.design import app as inverse_app
from porelab.sim.cli import app as sim_app
from porelab.sim.cli import console, fail, out_path
from porelab.sim.free_energy.cli import app as free_energy_app
from porelab.surrogate.cli import app as surrogate_app


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a bad option value, a missing argument) end with one `error:` line, not a help panel."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            rv = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as err:
            err.show()
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            console.print(f"[bold red]error:[/] {escape(err.format_message())}{escape(hint)}", highlight=False,
                          soft_wrap=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            console.print("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="porelab: Janus nanopore membranes, simulated, learned and designed.")


@app.callback()
def _configure_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:  # a host program (or pytest) that configured logging keeps its own
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.WARNING)


app.registered_commands += sim_app.registered_commands
app.registered_commands += free_energy_app.registered_commands
app.registered_commands += surrogate_app.registered_commands
app.registered_commands += inverse_app.registered_commands
campaign_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Active-learning campaigns: run, resume, status.")
app.add_typer(campaign_app, name="campaign")


def _user_errors() -> tuple[type[Exception], ...]:
    from porelab.active_learning.campaign.directory import CampaignError
    from porelab.active_learning.campaign.executors import ExecutorError
    from porelab.active_learning.campaign.ledger import LedgerError
    from porelab.active_learning.campaign.model import ModelError
    from porelab.active_learning.campaign.oracles import OracleError
    from porelab.active_learning.campaign.study import StudyError
    from porelab.sim.design import DesignError

    return (CampaignError, ExecutorError, LedgerError, ModelError, OracleError, StudyError, DesignError)


def _log(msg: str) -> None:
    console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {msg}", highlight=False, soft_wrap=True)


def _drive(directory: Path, quiet: bool, tracking: bool, **overrides) -> None:
    from porelab.active_learning.campaign.driver import Campaign

    t0 = time.monotonic()
    try:
        views = []
        if tracking:
            from porelab.active_learning.tracking.view import MlflowView

            views.append(MlflowView(directory))
        summary = Campaign(directory, log=(lambda m: None) if quiet else _log, views=views, **overrides).run()
    except KeyboardInterrupt:
        console.print(f"interrupted; continue with: porelab campaign resume {directory}")
        raise typer.Exit(130) from None
    except _user_errors() as err:
        fail(str(err))
    except sqlite3.DatabaseError as err:
        fail(f"{directory}: a database of the campaign is unreadable ({err})")
    except OSError as err:
        fail(f"{directory}: {err.strerror or err}{f' ({err.filename})' if err.filename else ''}")
    _print_summary(summary, directory, time.monotonic() - t0)


def _campaign_dir(directory: Path, what: str) -> Path:
    """The campaign directory, refused unless it and its parent (mlflow.db, mlartifacts) are in the workspace."""
    d = out_path(directory, what)
    out_path(d.parent, f"{what} {str(directory)!r}: its parent (where mlflow.db goes)")
    return d


@campaign_app.command("run")
def campaign_run(
    study_file: Annotated[Path, typer.Argument(help="study YAML")],
    dir: Annotated[Path | None, typer.Option("--dir", help="campaign directory (default runs/<study name>)")] = None,
    resume: Annotated[bool, typer.Option(help="if DIR already holds this very study, resume it")] = False,
    tracking: Annotated[bool, typer.Option(help="log to MLflow (the workspace's mlflow.db)")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
):
    """Start a campaign from a study YAML in a new directory and run it to its end."""
    from porelab.active_learning.campaign.directory import CampaignError, create
    from porelab.active_learning.campaign.study import StudyError, load_study

    try:
        study = load_study(study_file)
        directory = _campaign_dir(dir or Path("runs") / study.name, "--dir" if dir else "the default --dir")
        create(study, directory, exist_ok=resume)
    except (StudyError, CampaignError) as err:
        fail(str(err))
    _drive(directory, quiet, tracking)


@campaign_app.command("resume")
def campaign_resume(
    directory: Annotated[Path, typer.Argument(help="campaign directory")],
    budget: Annotated[int | None, typer.Option(help="raise the simulation budget", min=1)] = None,
    wall_clock_min: Annotated[float | None, typer.Option(help="new driver time limit, minutes", min=0.01)] = None,
    tracking: Annotated[bool, typer.Option(help="log to MLflow")] = True,
    quiet: Annotated[bool, typer.Option(help="no progress lines")] = False,
):
    """Continue a stopped or killed campaign exactly where its ledger says it was."""
    from porelab.active_learning.campaign.directory import load

    try:
        load(directory)  # read only: "not a campaign directory" before anything else
    except _user_errors() as err:
        fail(str(err))
    directory = _campaign_dir(directory, "DIRECTORY")
    _drive(directory, quiet, tracking, budget=budget, wall_clock_min=wall_clock_min)


@campaign_app.command("status")
def campaign_status(directory: Annotated[Path, typer.Argument(help="campaign directory")]):
    """Trials by status, the best designs and the model's quality (reads the ledger only)."""
    from porelab.active_learning.campaign.directory import LEDGER_FILE, load
    from porelab.active_learning.campaign.ledger import Ledger
    from porelab.active_learning.campaign.summary import summarize

    try:
        study = load(directory)
        ledger = Ledger(directory / LEDGER_FILE)
        summary = summarize(ledger, study)
        running = ledger.trials("running")
        ledger.close()
    except _user_errors() as err:
        fail(str(err))
    except sqlite3.DatabaseError as err:
        fail(f"{directory}: the ledger is unreadable ({err})")
    _print_summary(summary, directory, None)
    if running:
        console.print("running: " + ", ".join(t.design_id for t in running))


def _fmt(x, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def _print_summary(s: dict, directory: Path, wall_s: float | None) -> None:
    t = Table(title=f"campaign {directory}")
    for col in ("candidate", "running", "completed", "failed", "abandoned", "iterations"):
        t.add_column(col, justify="right")
    t.add_row(*(str(s[k]) for k in ("candidate", "running", "completed", "failed", "abandoned", "iterations")))
    console.print(t)
    if s["best"]:
        extra = [s["objective"]] if s["objective"] != "icr" else []
        b = Table(title=f"best designs ({s['objective']})")
        for col in ("design id", "layers", "|E| V/nm", "ICR", "ON current nA", *extra):
            b.add_column(col, justify="right")
        for r in s["best"]:
            b.add_row(r["design_id"], " ".join(r["layers"]), _fmt(r["field_V_per_nm"], "g"), _fmt(r["icr"]),
                      _fmt(r["on_current_nA"]), *[_fmt(r["objective"])] * len(extra))
        console.print(b)
    u = s.get("utilisation") or {}
    console.print(f"model (prospective, last iteration): held-out RMSE {_fmt(s['heldout_rmse'])}, "
                  f"R² {_fmt(s['heldout_r2'])}, 68 % interval coverage {_fmt(s['heldout_coverage_68'])}; "
                  f"worker utilisation {_fmt(u.get('fraction'), '.0%')}; "
                  f"stopped: {s['finished'] or 'not finished'}"
                  + (f"; wall time {wall_s:.0f} s" if wall_s is not None else ""), highlight=False)
    console.print(f"see it in MLflow: porelab ui {directory}", highlight=False)


# --- porelab ui ----------------------------------------------------------------------------------------
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
    return d if (d / "mlflow.db").exists() or not (d / "ledger.sqlite").exists() else d.parent


def ui_command(directory: Path, host: str = "127.0.0.1", port: int = 5000) -> tuple[list[str], dict[str, str], str]:
    """(argv, environment, URL) of the MLflow server for the workspace holding `directory` (loopback by default)."""
    from porelab.active_learning.tracking.view import workspace_uri

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


@app.command()
def ui(
    directory: Annotated[Path, typer.Argument(help="campaign directory or workspace (holding mlflow.db)")] = Path(
        "runs"),
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
        console.print(f"[bold yellow]warning:[/] binding the MLflow UI to {escape(host)}: it has no authentication "
                      "and anyone who can reach this address can read and change the runs", highlight=False)
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.settimeout(2.0)
            in_use = s.connect_ex(({"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port)) == 0
    except OSError:
        in_use = False  # let the server report what it cannot bind
    if in_use:
        fail(f"port {port} on {host} is in use; pass --port")
    console.print(f"MLflow UI at {url}  (Ctrl-C to stop)", highlight=False)
    try:
        raise typer.Exit(subprocess.call(argv, env=env))
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
