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
        from porelab.active_learning.campaign.driver import Campaign  # the campaign stack, on first use

        return Campaign
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def load_design(path: str | Path, preset: str | None = None) -> tuple[Design, Conditions]:
    """A design and its conditions from a design file.

    Parameters
    ----------
    path : str or Path
        Design YAML or JSON, e.g. ``experiments/examples/janus-1.yaml``.
    preset : str, optional
        Size preset (``tiny``, ...) instead of the file's own.

    Returns
    -------
    design : Design
        The membrane (sheets, rim groups, spacing, geometry in nm).
    conditions : Conditions
        Electrolyte (mol/L per ion) and fields (V/nm).

    Raises
    ------
    porelab.sim.design.DesignError
        A missing file or a bad value, in one line naming it.
    """
    return load_design_file(path, preset)


def simulate(design: Design, conditions: Conditions, fidelity: str = "continuum", out: str | Path | None = None,
             both_signs: bool = True, **settings) -> Measurement:
    """Simulate a design under each field of its conditions.

    Parameters
    ----------
    design : Design
    conditions : Conditions
    fidelity : {"continuum", "md"}
        ``continuum``: the Poisson-Nernst-Planck twin (seconds; `settings` go to
        ``sim.continuum.simulate_continuum``). ``md``: OpenMM with the honest protocol (docs/physics.md §3).
    out : str or Path, optional
        MD run directory (required for ``md``): an interrupted run resumes there, a longer one extends it.
    both_signs : bool
        Run each |E| at +E and -E, what ICR needs.
    **settings
        ``md``: ``sim.md_settings.MDSettings`` fields, e.g. ``production_ps=80, until="decisive"``.

    Returns
    -------
    Measurement
        Per-field currents (nA) and fluxes (ions/ns) with 95 % intervals, ICR per |E|, provenance.
    """
    if fidelity not in ("continuum", "md"):
        raise ValueError(f"fidelity {fidelity!r}: expected 'continuum' or 'md'")
    if both_signs:
        conditions = conditions.with_both_signs()
    if fidelity == "continuum":
        from porelab.sim.continuum import run_continuum  # scipy, when a continuum run is asked for

        return run_continuum(design, conditions, **settings)
    from porelab.sim.protocol import MDSettings, run_md  # OpenMM, when an MD run is asked for

    if out is None:
        raise ValueError("simulate(fidelity='md') needs out=<run directory>")
    return run_md(design, conditions, out, MDSettings(**settings))


class Surrogate:
    """A saved surrogate (a directory written by `porelab train` or a campaign): `predict` gives the table that
    its MLflow model serves (surrogate.serving: ICR, ON current and per-species fluxes with 95 % intervals)."""

    def __init__(self, directory: str | Path):
        # the surrogate and campaign floors (scipy, sklearn) load with the first Surrogate, not with load_design
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
        """Predict currents and ICR with their intervals.

        Parameters
        ----------
        designs : list of Design
        conditions : Conditions or list of Conditions
            One for all designs, or one per design; each is asked at +E and -E.

        Returns
        -------
        pandas.DataFrame
            One row per design and |E|: ``icr``, ``on_current_nA`` and per-species fluxes, each with ``_lo`` and
            ``_hi`` (95 %), ``training_similarity`` and ``guessing`` (surrogate.serving).
        """
        import pandas as pd  # on the first prediction, not with load_design

        from porelab.surrogate.serving import predict_frame  # the surrogate floor, on the first prediction

        conds = conditions if isinstance(conditions, list) else [conditions] * len(designs)
        conds = [c.with_both_signs() for c in conds]
        if len(conds) != len(designs):
            raise ValueError(f"{len(designs)} designs but {len(conds)} conditions")
        frame = pd.DataFrame({"design": [d.model_dump_json() for d in designs],
                              "conditions": [c.model_dump_json() for c in conds]})
        return predict_frame(self.saved, frame)


def load_surrogate(directory: str | Path) -> Surrogate:
    """A saved surrogate (model.json and its weights; nothing is unpickled).

    Parameters
    ----------
    directory : str or Path
        A model directory (``porelab train --out``), or a campaign directory: its newest model.

    Returns
    -------
    Surrogate
    """
    return Surrogate(directory)


# `Campaign` (porelab.active_learning.campaign.driver.Campaign) is served by __getattr__, on first use
__all__ = ["Conditions", "Design", "Measurement", "PorelabError", "Surrogate", "load_design", "load_surrogate",
           "simulate"]
