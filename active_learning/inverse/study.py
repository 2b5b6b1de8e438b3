"""The inverse-design study YAML: a problem (space, base, oracle, goal) plus the surrogate to search with,
the search settings and how many of the best designs to verify with the oracle.

A campaign's study YAML is accepted as it is: its campaign-only sections (budget, executor, model,
acquisition) are ignored and the surrogate defaults to that campaign's directory, runs/<name>.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from porelab.active_learning.campaign.study import Problem, StudyError, _Strict, parse_study, resolve_oracle_path
from porelab.base.yaml_file import read_yaml

CAMPAIGN_ONLY = ("budget", "executor", "model", "acquisition")


class SearchSpec(_Strict):
    """screen: score a scrambled-Sobol pool of `candidates` designs; nsga2: pymoo NSGA-II on the space."""

    method: Literal["screen", "nsga2"] = "screen"
    candidates: int = Field(100_000, ge=1, le=10_000_000, description="screen: designs drawn from the space")
    population: int = Field(100, ge=4, le=100_000, description="nsga2: population size")
    generations: int = Field(50, ge=1, le=100_000, description="nsga2: generations")
    kappa: float = Field(1.0, ge=0, le=10, description="risk aversion: rank by mean - kappa * epistemic std")
    top: int = Field(20, ge=1, le=10_000, description="designs in the ranked table and written as YAML")
    chunk: int = Field(2048, ge=1, le=1_000_000, description="candidates per surrogate call")
    workers: int = Field(2, ge=1, le=256, description="screen: processes scoring chunks in parallel (GNN)")


class DesignStudy(Problem):
    surrogate: str | None = Field(None, description="model directory, campaign directory or MLflow name@alias")
    search: SearchSpec = SearchSpec()
    verify: int = Field(0, ge=0, le=1000, description="run the oracle on the top `verify` designs")
    verify_unmeasured_in: str | None = Field(None, description="a directory of recorded measurements (e.g. the "
                                             "dataset the surrogate learned, data/md; relative: to the working "
                                             "directory): verify the top designs it holds no measurement of")


def load_design_study(path: str | Path) -> DesignStudy:
    """Read and validate a design study (or a campaign study, see above); raises StudyError naming the field."""
    doc = read_yaml(path, StudyError, "study YAML")
    if isinstance(doc, dict) and "budget" in doc:
        doc = {k: v for k, v in doc.items() if k not in CAMPAIGN_ONLY}
        doc.setdefault("surrogate", f"runs/{doc.get('name')}")
    return resolve_oracle_path(parse_study(doc, str(path), DesignStudy), path)
