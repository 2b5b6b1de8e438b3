"""The campaign's models on disk: models/step_NNN/ per iteration, and the last one reused when the next iteration
trains on the same data (same training set and seed: the same model, so it is loaded instead of trained again)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from porelab.active_learning.campaign.directory import step_dir
from porelab.active_learning.campaign.iteration import Snapshot
from porelab.active_learning.campaign.model import CampaignModel
from porelab.base.files import is_temp


def sha256_dir(d: Path) -> str:
    """Digest of a directory's files (names and bytes), temp files left out."""
    h = hashlib.sha256()
    for f in sorted(d.rglob("*")):
        if f.is_file() and not is_temp(f):
            h.update(f.relative_to(d).as_posix().encode())
            h.update(f.read_bytes())
    return h.hexdigest()


class ModelCache:
    """Save and find the models of the campaign in `directory`."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def load(self, snap: Snapshot, digest: str) -> CampaignModel | None:
        """The newest saved model when it was trained on the training set with this digest, else None."""
        its = [it for it in snap.iterations if it["model_version"] is not None]
        if not its or its[-1]["metrics"].get("train_digest") != digest:
            return None
        rec = next(m for m in snap.models if m["version"] == its[-1]["model_version"])
        try:
            return CampaignModel.load(self.dir / rec["path"])
        except (OSError, ValueError, KeyError):
            return None  # unreadable: train again

    def save(self, step: int, model: CampaignModel | None) -> dict | None:
        """Save the step's model under models/ and return its ledger record {kind, path, sha256} (None without a
        model). A directory left by a driver killed before it committed this step (no ledger row names it) is
        replaced."""
        if model is None:
            return None
        mdir = step_dir(self.dir, "models", step)
        if mdir.exists():
            shutil.rmtree(mdir)
        model.save(mdir, keep=True)  # the MLflow view logs it next: loaded from memory, not refitted
        return {"kind": model.kind, "path": str(mdir.relative_to(self.dir)), "sha256": sha256_dir(mdir)}
