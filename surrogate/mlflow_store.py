"""The workspace's MLflow store, shared by `porelab train` and campaigns (floor 2, so both floors can use it).

Tracking URI: MLFLOW_TRACKING_URI when set, else the embedded SQLite file `<workspace>/mlflow.db`, with each
experiment's artifacts under `<workspace>/mlartifacts/<experiment>/`. `porelab train`'s workspace is
base.workspace.workspace() ($PORELAB_WORKSPACE or the current directory); a campaign's is its directory's parent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def workspace_uri(workspace: str | Path) -> str:
    """The SQLite store of `workspace`: sqlite:///<workspace>/mlflow.db."""
    return f"sqlite:///{Path(workspace).resolve() / 'mlflow.db'}"


def tracking_uri(workspace: str | Path) -> str:
    """MLFLOW_TRACKING_URI when set, else the workspace's SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or workspace_uri(workspace)


def artifact_location(uri: str, workspace: str | Path, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: <workspace>/mlartifacts/<experiment> for a SQLite store (not the
    current directory's mlruns/), the server's default (None) for any other store."""
    return (Path(workspace).resolve() / "mlartifacts" / experiment).as_uri() if uri.startswith("sqlite:///") else None


@contextlib.contextmanager
def fluent_uri(uri: str):
    """mlflow's global tracking URI (and MLFLOW_TRACKING_URI, which it sets) = `uri` while inside, then as before."""
    import mlflow  # MLflow (seconds to import) only when a run is logged; the URIs above need none

    prev = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(prev)  # None unsets MLFLOW_TRACKING_URI again
