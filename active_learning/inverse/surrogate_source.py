"""Find a trained surrogate from what a user names: a model directory (surrogate.store: holding model.json,
written by `porelab train` or a campaign), a campaign directory (its newest model), or a registered MLflow model
`name@alias` or `name/version` in the workspace's tracking store. Returns the model with its provenance.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from porelab.active_learning.campaign.directory import LEDGER_FILE
from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.surrogate.mlflow_store import fluent_uri, tracking_uri
from porelab.surrogate.store import MODEL_FILE


@dataclass
class Surrogate:
    model: CampaignModel
    source: str  # what the user named
    path: Path  # the model directory loaded
    registered: dict = field(default_factory=dict)  # name, version, model_id, run_id when from the registry


def newest_model(campaign: Path) -> Path:
    steps = sorted(p.parent for p in (campaign / "models").glob(f"step_*/{MODEL_FILE}"))
    if not steps:
        raise ModelError(f"surrogate {campaign}: the campaign has trained no model yet (no models/step_*/)")
    return steps[-1]


def _load(d: Path) -> CampaignModel:
    try:
        return CampaignModel.load(d)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"surrogate {d}: cannot load the model ({type(err).__name__}: {err})") from None


def _client(workspace: Path):
    uri = tracking_uri(workspace)
    if "MLFLOW_TRACKING_URI" not in os.environ and not (workspace / "mlflow.db").exists():
        raise ModelError(f"no MLflow store {workspace / 'mlflow.db'} to look registered models up in "
                         "(pass a model or campaign directory, or --workspace)")
    from mlflow.tracking import MlflowClient  # MLflow (seconds to import) only for a registered model

    return MlflowClient(uri), uri


def _entry(mv) -> dict:
    """Name, version, run and logged-model id of a model version (the id is in `source` on older stores)."""
    model_id = getattr(mv, "model_id", None)
    if model_id is None and str(mv.source).startswith("models:/m-"):
        model_id = mv.source.removeprefix("models:/")
    return {"name": mv.name, "version": str(mv.version), "model_id": model_id, "run_id": mv.run_id}


def _from_registry(spec: str, workspace: Path, dest: Path) -> Surrogate:
    import mlflow  # MLflow (seconds to import) only for a registered model
    from mlflow.exceptions import MlflowException

    m = re.fullmatch(r"(?:models:/)?([^@/]+)(?:@([\w.-]+)|/(\d+))", spec)
    if m is None:
        raise ModelError(f"surrogate {spec!r}: not a directory, nor a registered model name@alias or name/version")
    name, alias, version = m.groups()
    client, uri = _client(workspace)
    try:
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, version)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        with fluent_uri(uri):  # models:/ URIs resolve through mlflow's global URIs, whatever is passed
            local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(dest)))
    except MlflowException as err:
        raise ModelError(f"surrogate {spec!r}: {err.message.splitlines()[0]}") from None
    found = sorted(local.rglob(MODEL_FILE))
    if not found:
        raise ModelError(f"surrogate {spec!r}: model version {mv.version} holds no {MODEL_FILE}")
    model = _load(found[0].parent)
    reg = {**_entry(mv), "alias": alias}
    return Surrogate(model, spec, found[0].parent, reg)


def _registered(campaign: Path, step_dir: str, workspace: Path) -> dict:
    """The registry entry of a campaign's model `models/<step_dir>` when the campaign registered it, else {}."""
    try:
        client, _ = _client(workspace)
    except ModelError:
        return {}
    step = str(int(step_dir.removeprefix("step_")))
    for mv in client.search_model_versions(f"tags.`porelab.campaign_dir` = '{campaign}'"):
        if mv.tags.get("porelab.iteration") == step:
            return {**_entry(mv), "alias": None}
    return {}


def load_surrogate(spec: str, workspace: str | Path, dest: str | Path) -> Surrogate:
    """The surrogate named by `spec`; a registered model is downloaded into `dest`. Raises ModelError."""
    p = Path(spec)
    if p.is_dir():
        d = p if (p / MODEL_FILE).exists() else newest_model(p) if (p / LEDGER_FILE).exists() else None
        if d is None:
            raise ModelError(f"surrogate {spec}: holds neither {MODEL_FILE} nor a campaign (ledger.sqlite)")
        model = _load(d)
        reg = _registered(p.resolve(), d.name, Path(workspace).resolve()) if d != p else {}
        return Surrogate(model, spec, d.resolve(), reg)
    if p.exists() or "/" in spec and not re.fullmatch(r"(models:/)?[^/@]+/\d+", spec):
        raise ModelError(f"surrogate {spec}: no such model or campaign directory")
    return _from_registry(spec, Path(workspace).resolve(), Path(dest))
