"""A campaign directory: created from a study, loaded back, and where each of its files lives.

Layout: study.yaml (the validated study, frozen at creation), ledger.sqlite (the source of truth), .lock,
runs/<design_id>/ (each simulation's files and measurement.json), models/step_NNN/, plots/step_NNN/. Views
(e.g. MLflow, see porelab.active_learning.tracking) keep their own bookkeeping beside them.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import Study, parse_study
from porelab.base.errors import PorelabError
from porelab.base.files import atomic_write_text
from porelab.base.yaml_file import read_yaml

STUDY_FILE = "study.yaml"
LEDGER_FILE = "ledger.sqlite"


class CampaignError(PorelabError, RuntimeError):
    """A campaign that cannot be created, resumed or run; the message says why."""


def create(study: Study, directory: str | Path, exist_ok: bool = False) -> Path:
    """Make a new campaign directory holding the frozen study and an empty ledger. With exist_ok, a directory
    that already holds a campaign of the very same study is accepted as it is (to be resumed)."""
    d = Path(directory)
    if (d / LEDGER_FILE).exists() or (d / STUDY_FILE).exists():
        if exist_ok and (d / STUDY_FILE).exists() and load(d).digest() == study.digest():
            return d
        raise CampaignError(f"{d} already holds a campaign{' of another study' if exist_ok else ''}; continue it "
                            f"with `porelab campaign resume {d}` or choose another --out")
    made = not d.exists()  # a campaign that cannot start removes the directory only if it made it (driver.py)
    try:
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / STUDY_FILE, yaml.safe_dump(study.model_dump(mode="json"), sort_keys=False))
    except OSError as err:
        raise CampaignError(f"cannot create the campaign directory {d}: {err.strerror or err}") from None
    ledger = Ledger(d / LEDGER_FILE)
    ledger.set("study_digest", study.digest())
    ledger.set("created_at", time.time())
    if made:
        ledger.set("created_dir", True)
    ledger.close()
    return d


def load(directory: str | Path) -> Study:
    """The study of the campaign in `directory`; CampaignError when it is not a campaign directory."""
    d = Path(directory)
    f = d / STUDY_FILE
    if not f.exists() or not (d / LEDGER_FILE).exists():
        raise CampaignError(f"{d} is not a campaign directory (no {STUDY_FILE} and {LEDGER_FILE})")
    return parse_study(read_yaml(f, CampaignError, "study YAML"), str(f))


def run_dir(directory: str | Path, design_id: str) -> Path:
    """Where the simulation of one design keeps its files and its measurement.json."""
    return Path(directory) / "runs" / design_id


def step_dir(directory: str | Path, kind: str, step: int) -> Path:
    """models/step_NNN or plots/step_NNN of an iteration."""
    return Path(directory) / kind / f"step_{step:03d}"
