"""Console output of the `porelab` commands: the rich console (stdout), one-line errors (`err_console`, stderr),
tables at their natural width, and output paths checked against the workspace."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from porelab.base.workspace import WorkspaceError, output_path

console = Console()
err_console = Console(stderr=True)  # errors and warnings: a pipe of the results stays clean


def fail(msg: str, code: int = 2):
    """Print a one-line error on stderr and exit non-zero (no traceback)."""
    err_console.print(f"[bold red]error:[/] {msg}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_table(table) -> None:
    """Print a rich Table at its natural width even on a narrower terminal: numbers and intervals are never cut
    short or folded (the terminal wraps the long lines instead)."""
    natural = console.measure(table, options=console.options.update(max_width=10_000)).maximum
    if natural <= console.width:
        console.print(table)
        return
    Console(file=console.file, width=natural, force_terminal=console.is_terminal, no_color=console.no_color,
            color_system=console.color_system).print(table)


def out_path(path: Path, what: str) -> Path:
    """`path` resolved inside the workspace, or a one-line error naming it."""
    try:
        return output_path(path, what)
    except WorkspaceError as err:
        fail(str(err))
