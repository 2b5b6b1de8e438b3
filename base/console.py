"""Console output of the `porelab` commands: the rich console (stdout), one-line errors (`err_console`, stderr),
tables at their natural width, and output paths checked against the workspace."""

from __future__ import annotations

import shlex
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from porelab.base.workspace import WorkspaceError, output_path, workspace

console = Console()
err_console = Console(stderr=True)  # errors and warnings: a pipe of the results stays clean


def fail(msg: str, code: int = 2):
    """Print a one-line error on stderr and exit non-zero (no traceback); brackets in `msg` are text, not markup
    (porelab[cluster] stays whole)."""
    err_console.print(f"[bold red]error:[/] {escape(msg)}", highlight=False, soft_wrap=True)
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


def runnable(command: str, path: str | Path) -> str:
    """`command path` as a line that works when pasted in any directory: porelab writes only inside its workspace
    (base/workspace.py), so from elsewhere it reads `cd <workspace> && command <path inside it>`."""
    ws, p = workspace(), Path(path).resolve()
    where = p.relative_to(ws) if p == ws or ws in p.parents else p
    line = f"{command} {shlex.quote(str(where))}"
    return line if Path.cwd().resolve() == ws else f"cd {shlex.quote(str(ws))} && {line}"
