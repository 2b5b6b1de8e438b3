"""Logging as the `porelab` command shows it (library modules only log; this is the one place that configures).

porelab's own records (`porelab.*` loggers, e.g. a campaign's progress lines) print on the console, one line each
with the time: INFO and up normally, DEBUG with --verbose, warnings and errors only with --quiet. Other libraries'
records go to stderr, warnings and up (errors only with --quiet), unless the host program configured logging
itself. Configuring again (another command in the same process) replaces the levels, never adds a handler.
"""

from __future__ import annotations

import logging
import sys
import time

from rich.markup import escape

from porelab.base.console import console, err_console

VERBOSITY = {-1: (logging.WARNING, logging.ERROR), 0: (logging.INFO, logging.WARNING),
             1: (logging.DEBUG, logging.WARNING)}  # verbosity -> (porelab level, other libraries' level)


class ConsoleHandler(logging.Handler):
    """Prints porelab's records: `HH:MM:SS message` on stdout, or `warning: message` (and worse) on stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = escape(record.getMessage())
            if record.levelno >= logging.WARNING:
                err_console.print(f"[bold yellow]{record.levelname.lower()}:[/] {msg}", highlight=False,
                                  soft_wrap=True)
            else:
                console.print(f"[dim]{time.strftime('%H:%M:%S', time.localtime(record.created))}[/] {msg}",
                              highlight=False, soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


class _NotPorelab(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "porelab" or record.name.startswith("porelab."))


def configure(verbosity: int = 0) -> None:
    """Set up logging for one command: verbosity -1 (--quiet), 0 or 1 (--verbose)."""
    own, others = VERBOSITY[max(-1, min(1, verbosity))]
    lg = logging.getLogger("porelab")
    if not any(isinstance(h, ConsoleHandler) for h in lg.handlers):
        lg.addHandler(ConsoleHandler())
    lg.setLevel(own)
    root = logging.getLogger()
    ours = [h for h in root.handlers if getattr(h, "porelab_cli", False)]
    if root.handlers and not ours:  # a host program (or pytest) configured logging: keep its handlers
        return
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.porelab_cli = True
        handler.addFilter(_NotPorelab())  # porelab's records are printed by ConsoleHandler
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(others)
