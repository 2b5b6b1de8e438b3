"""Where porelab may write: output paths must stay inside the workspace.

The workspace is $PORELAB_WORKSPACE when set, else the current directory. `output_path` resolves a
user-given output path (relative to the current directory, following symlinks and `..`) and refuses one that
lands outside.
"""

from __future__ import annotations

import os
from pathlib import Path

from porelab.base.errors import PorelabError


class WorkspaceError(PorelabError, ValueError):
    """An output path that escapes the workspace; the message names the path and the workspace."""


def workspace() -> Path:
    return Path(os.environ.get("PORELAB_WORKSPACE") or Path.cwd()).resolve()


def output_path(path: str | Path, what: str = "output path") -> Path:
    """`path` resolved, if it lies inside the workspace; else WorkspaceError naming both."""
    root = workspace()
    resolved = Path(path).expanduser().resolve()
    if resolved != root and root not in resolved.parents:
        raise WorkspaceError(f"{what} {str(path)!r} resolves to {resolved}, outside the workspace {root} "
                             "(set PORELAB_WORKSPACE or run from a directory that contains it)")
    return resolved
