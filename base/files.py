"""Files that are never half-written: a crash leaves the previous version (and at worst a stray temp file that no
reader takes for a result)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from porelab.base.faults import fault_point

_UMASK = os.umask(0)
os.umask(_UMASK)


def is_temp(path: str | Path) -> bool:
    """A temp file of atomic_write_bytes (or another writer's `.name...tmp`), never a result."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text to a temp file in the same directory, fsync, then rename over `path`."""
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temp file `.<name>.<random>.tmp` beside `path`, fsync, then rename over `path`: a crash leaves
    the previous version (and at worst a stray temp file, which no reader takes for a result)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        fault_point(f"atomic_write:{path.name}")
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and err.filename is None:  # say which file could not be written
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise
