"""The `porelab` command: the commands of every floor under one Typer app (imports go down the floors)."""

from __future__ import annotations

import sys

import typer

from sim.cli import app as sim_app
from sim.cli import console

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="porelab: Janus nanopore membranes, simulated, learned and designed.")
app.registered_commands += sim_app.registered_commands


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted; run the same command again to resume")
        sys.exit(130)
