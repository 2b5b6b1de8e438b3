"""Guards that stop a campaign before it spends its budget on what is not the designs' fault: a worker that
re-imports an unguarded main script (multiprocessing's spawn) and would drive the campaign again, and the circuit
breaker's rule for a streak of task errors (the driver, campaign/driver.py, applies both)."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from porelab.active_learning.campaign.directory import CampaignError

#: Written by a worker that found itself re-importing the driver's main script; the driver reads it (and removes
#: it) when its workers are lost, to say why in one line instead of retrying.
REIMPORT_FILE = ".worker-reimport"
REIMPORTED = ("a worker process started this campaign again while importing the main script (multiprocessing's "
              "spawn re-imports it in every worker), so the script starts its campaign at import: put the campaign "
              "under `if __name__ == \"__main__\":` and run it again")
#: The circuit breaker stops a campaign (CampaignError) whose tasks keep crashing or losing their worker with nothing
#: measured in between: at BREAKER_MIN errors in a row or more, spread over more designs than `workers` (one lost
#: worker breaks a local process pool, taking the tasks beside it down with it: one bad design's streak touches at
#: most `workers` designs, retried together; a broken oracle or worker setup touches every design it is given), or
#: over two designs or more once nothing else is left to run. A design's own failures stay its own
#: (`executor.max_attempts`): the last attempt's error is held undecided while the streak lasts (Campaign._ingest),
#: so the breaker marks no trial failed, and its trials stay candidates for a resume once the cause is fixed.
BREAKER_MIN = 5


def breaker_tripped(streak: list[tuple[str, str]], workers: int, idle: bool = False) -> bool:
    """Whether a streak of task errors [(design id, error)] with nothing measured in between stops a campaign of
    `workers` workers (`idle`: nothing is left to run that could end the streak); see BREAKER_MIN."""
    designs = len({did for did, _ in streak})
    return len(streak) >= BREAKER_MIN and designs >= (2 if idle else workers + 1)


def in_worker_bootstrap() -> bool:
    """True while this process is a spawned (or forkserver) worker importing its parent's main module: a script
    without the `if __name__ == "__main__":` guard runs its campaign again there."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def refuse_in_worker(directory: str | Path) -> None:
    """In a worker's re-import of the main script (`in_worker_bootstrap`): leave the campaign (and its ledger)
    alone and end the worker. When the parent drives this very campaign (its lock names the parent), the worker
    tells it why in REIMPORT_FILE and ends quietly (the driver says it once); else it raises CampaignError."""
    if not in_worker_bootstrap():
        return
    d = Path(directory)
    parent = multiprocessing.parent_process()
    ppid = parent.pid if parent is not None else os.getppid()
    try:
        driven_by_parent = (d / ".lock").read_text().startswith(f"pid {ppid} ")
        if driven_by_parent:
            (d / REIMPORT_FILE).write_text(REIMPORTED)
    except OSError:
        driven_by_parent = False
    if driven_by_parent:
        raise SystemExit(1)  # the driver reads REIMPORT_FILE and stops the campaign with the message
    raise CampaignError(REIMPORTED)
