"""The `porelab` command: the commands of every floor under one Typer app (imports go down the floors).

Floor 3 adds `campaign run STUDY.yaml`, `campaign resume DIR`, `campaign status DIR`, `campaign export DIR
--out FILE` and `campaign tell DIR MEASUREMENT.json...` (cli/campaign.py),
`design STUDY.yaml` (cli/design.py) and `ui [DIR]` (cli/ui.py).
User errors end with a one-line `error: ...` and exit code 2, never a traceback; an option with a fixed set of
values lists them in --help and names them when refused. Every command that writes takes its output directory as
`--out`. The root options --verbose/--quiet configure logging (cli/logs.py; library modules only log): a campaign's
progress lines are its driver's log records.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated

import typer
from rich.markup import escape
from typer._click import exceptions as click_errors  # the click that typer runs on (vendored)

import porelab
from porelab.active_learning.cli.campaign import campaign_app
from porelab.active_learning.cli.design import app as inverse_app
from porelab.active_learning.cli.logs import configure
from porelab.active_learning.cli.ui import serve_model, ui
from porelab.base.console import console, err_console, fail
from porelab.sim.cli import app as sim_app
from porelab.sim.free_energy.cli import app as free_energy_app
from porelab.surrogate.cli import app as surrogate_app


class OneLineErrors(typer.core.TyperGroup):
    """Usage errors (a bad option value, a missing argument) end with one `error:` line, not a help panel."""

    def main(self, args=None, *rest, standalone_mode: bool = True, **kwargs):
        args = _root_options_first(sys.argv[1:] if args is None else list(args))
        if not standalone_mode:
            return super().main(args, *rest, standalone_mode=False, **kwargs)
        try:
            rv = super().main(args, *rest, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError as err:
            err.show()
            sys.exit(err.exit_code)
        except click_errors.ClickException as err:
            ctx = getattr(err, "ctx", None)
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            err_console.print(f"[bold red]error:[/] {escape(_message(err))}{escape(hint)}", highlight=False,
                              soft_wrap=True)
            sys.exit(err.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


ROOT_FLAGS = ("-q", "-v", "--verbose")  # not --quiet: `campaign run`, `resume` and `design` have their own


def _root_options_first(args: list[str]) -> list[str]:
    """-q, -v and --verbose wherever they stand (`porelab campaign run s.yaml -q` too) moved before the subcommand,
    where the root callback reads them; nothing after `--` is touched."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in ROOT_FLAGS]
    return flags + [a for a in args[:end] if a not in ROOT_FLAGS] + args[end:]


def _message(err) -> str:
    """The error's one line; a value outside an option's fixed set reads `--opt 'x' is unknown; choose a, b or c`."""
    text = err.format_message()
    m = re.fullmatch(r"(?:Value error, )?('.*') is not one of (.+?)\.?", getattr(err, "message", "") or "")
    param = getattr(err, "param", None)
    if m and param is not None and getattr(param, "opts", None):
        *rest, last = [c.strip("'") for c in m.group(2).split(", ")]
        text = f"{max(param.opts, key=len)} {m.group(1)} is unknown; choose {', '.join(rest)}{' or ' if rest else ''}" \
               f"{last}"
    return text


def _version(value: bool) -> None:
    if value:
        console.print(f"porelab {porelab.__version__}", highlight=False)
        raise typer.Exit(0)


app = typer.Typer(add_completion=False, no_args_is_help=True, cls=OneLineErrors,
                  help="porelab: Janus nanopore membranes, simulated, learned and designed.")


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="print the version and exit", callback=_version,
                                          is_eager=True)] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="debug lines of porelab's modules too")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="warnings and errors only (no progress lines)")] = False,
) -> None:
    if verbose and quiet:
        fail("--verbose and --quiet exclude each other")
    configure(1 if verbose else -1 if quiet else 0)


app.registered_commands += sim_app.registered_commands
app.registered_commands += free_energy_app.registered_commands
app.registered_commands += surrogate_app.registered_commands
app.registered_commands += inverse_app.registered_commands
app.add_typer(campaign_app, name="campaign")
app.command()(ui)
app.command("serve")(serve_model)


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted; run the same command again to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
