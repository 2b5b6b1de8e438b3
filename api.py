"""The Python API for notebooks and scripts: `from porelab import load_design, simulate, Campaign, load_surrogate`.

Thin, typed entry points over the floors (no logic of their own): a design file in, a Measurement out, a campaign
directory driven in process, a saved surrogate that predicts a table. The CLI calls the same functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from porelab.base.errors import PorelabError
from porelab.sim.design import Conditions, Design, load_design_file
from porelab.sim.measurement import Measurement

if TYPE_CHECKING:
    import pandas as pd



def __getattr__(name: str):
    """`Campaign` on first use: the campaign stack (scipy, sklearn, pandas, matplotlib) loads only when a script
    drives a campaign, so `load_design` and `simulate` start in a fraction of a second."""
    if name == "Campaign":
        from porelab.active_learning.campaign.driver import Campaign

        return Campaign
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_design(path: str | Path, preset: str | None = None) -> tuple[Design, Conditions]:
    """(design, conditions) from a design YAML/JSON file (`preset` overrides the file's size preset)."""
    return load_design_file(path, preset)


def simulate(design: Design, conditions: Conditions, fidelity: str = "continuum", out: str | Path | None = None,
             both_signs: bool = True, **settings) -> Measurement:
    """Simulate `design` under each field of `conditions` (with both_signs, at +E and -E for each |E|: what ICR
    needs) and return the Measurement.

    fidelity "continuum": the PNP twin (seconds; `settings` go to sim.continuum.simulate_continuum).
    fidelity "md": OpenMM in the run directory `out` (required; an interrupted run resumes, a longer one extends
    it in place); `settings` are sim.md_settings.MDSettings fields, e.g. production_ps=80, until="decisive".
    """
    if fidelity not in ("continuum", "md"):
        raise ValueError(f"fidelity {fidelity!r}: expected 'continuum' or 'md'")
    if both_signs:
        conditions = conditions.with_both_signs()
    if fidelity == "continuum":
        from porelab.sim.continuum import run_continuum

        return run_continuum(design, conditions, **settings)
    from porelab.sim.protocol import MDSettings, run_md

    if out is None:
        raise ValueError("simulate(fidelity='md') needs out=<run directory>")
    return run_md(design, conditions, out, MDSettings(**settings))


class Surrogate:
    """A saved surrogate (a directory written by `porelab train` or a campaign): `predict` gives the table that
    its MLflow model serves (surrogate.serving: ICR, ON current and per-species fluxes with 95 % intervals)."""

    def __init__(self, directory: str | Path):
        from porelab.active_learning.campaign.directory import LEDGER_FILE
        from porelab.active_learning.inverse.surrogate_source import newest_model
        from porelab.surrogate.store import MODEL_FILE, load_model

        d = Path(directory)
        if not (d / MODEL_FILE).exists() and (d / LEDGER_FILE).exists():
            d = newest_model(d)  # a campaign directory: its newest model
        self.directory = d
        self.saved = load_model(d)

    @property
    def kind(self) -> str:
        return self.saved.kind

    def predict(self, designs: list[Design], conditions: list[Conditions] | Conditions) -> pd.DataFrame:
        """One row per design and |E| of its conditions, asked at +E and -E (surrogate.serving.predict_frame
        gives the columns)."""
        import pandas as pd

        from porelab.surrogate.serving import predict_frame

        conds = conditions if isinstance(conditions, list) else [conditions] * len(designs)
        conds = [c.with_both_signs() for c in conds]
        if len(conds) != len(designs):
            raise ValueError(f"{len(designs)} designs but {len(conds)} conditions")
        frame = pd.DataFrame({"design": [d.model_dump_json() for d in designs],
                              "conditions": [c.model_dump_json() for c in conds]})
        return predict_frame(self.saved, frame)


def load_surrogate(directory: str | Path) -> Surrogate:
    """The surrogate saved in `directory` (a model directory, or a campaign directory: its newest model);
    model.json and its weights, nothing is unpickled."""
    return Surrogate(directory)


# `Campaign` (porelab.active_learning.campaign.driver.Campaign) is served by __getattr__, on first use
__all__ = ["Conditions", "Design", "Measurement", "PorelabError", "Surrogate", "load_design", "load_surrogate",
           "simulate"]
