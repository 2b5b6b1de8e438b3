"""pymbar without its notices: `with quiet_pymbar(): import pymbar ...`.

pymbar logs a JAX banner and a caveat about its timeseries module when imported, and info lines while it works.
Inside the context its loggers drop every record through a filter that is removed on exit; no logger level,
handler or global warnings filter is changed.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

PYMBAR_LOGGERS = ("pymbar", "pymbar.timeseries", "pymbar.mbar", "pymbar.mbar_solvers", "pymbar.other_estimators",
                  "pymbar.fes", "pymbar.confidenceintervals", "pymbar.utils")


def _drop(record: logging.LogRecord) -> bool:
    return False


@contextlib.contextmanager
def quiet_pymbar() -> Iterator[None]:
    """Silence pymbar's log records and warnings while inside (imports included)."""
    loggers = [logging.getLogger(name) for name in PYMBAR_LOGGERS]
    for lg in loggers:
        lg.addFilter(_drop)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg in loggers:
            lg.removeFilter(_drop)
