"""Injected faults for the reliability tests: `fault_point("name")` marks a place where a crash may happen.

With PORELAB_FAULT unset (always, outside the tests) a fault point is one dict lookup and does nothing.
PORELAB_FAULT="name[:n[:action]][,name2...]" makes the n-th hit (default 1) of `name` in this process act:
action `kill` (default) sends SIGKILL to the process itself (no cleanup, no finally, no atexit); `enospc`
raises OSError(ENOSPC) at that hit and every later one, as a full disk would. Hits are counted per process.
It lives on the ground floor (base) so that every floor can mark its fault points.
"""

from __future__ import annotations

import errno
import os
import signal

ENV = "PORELAB_FAULT"


def parse(spec: str | None) -> dict[str, tuple[int, str]]:
    """{name: (n-th hit, action)} from a PORELAB_FAULT value."""
    out: dict[str, tuple[int, str]] = {}
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        parts = item.split(":")  # a name may hold ':' (atomic_write:measurement.json): read from the right
        action = parts.pop() if len(parts) > 1 and parts[-1] in ("kill", "enospc") else "kill"
        n = int(parts.pop()) if len(parts) > 1 and parts[-1].isdigit() else 1
        out[":".join(parts)] = (n, action)
    return out


_ARMED = parse(os.environ.get(ENV))
_HITS: dict[str, int] = {}


def arm(spec: str | None) -> None:
    """Replace the armed faults (tests in one process); None or "" disarms."""
    global _ARMED
    _ARMED = parse(spec)
    _HITS.clear()


def fault_point(name: str) -> None:
    """Crash here when PORELAB_FAULT arms `name` and this is its n-th hit."""
    if not _ARMED or name not in _ARMED:
        return
    _HITS[name] = _HITS.get(name, 0) + 1
    n, action = _ARMED[name]
    if action == "enospc" and _HITS[name] >= n:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "kill" and _HITS[name] == n:
        os.kill(os.getpid(), signal.SIGKILL)
