"""Which numbers of a measured result stand for it: the one rule behind the surrogate's labels (surrogate.dataset)
and a campaign's measured targets (active_learning.campaign.targets), so that the ICR a campaign ranks by is the
ICR of the fluxes the surrogate learns (docs/physics.md §3).

Per signed field:
  crossings  an MD result: its current and species fluxes from the crossing counts (full transits of the
             membrane) with their exact Poisson intervals, always. The displacement sum beside them
             (`current_displacement_*`, `flux_displacement_*`, and `icr_displacement*` of measurements made by
             the earlier protocol) counts the membrane's charging as current: a diagnostic, never a label; the
             schema keeps those fields so that older measurements still load, and nothing here reads them;
  oracle     a result without crossing counts (the continuum twin, a user's oracle): its own numbers.
The ICR rows are the measurement's own (`Measurement.icr`, sim.observables.icr_results: from the crossing counts
for MD), censored either way ("> x" or "< x"). A flux is a censored label exactly when its 95 % interval contains
zero: per field, so two-sided by construction (surrogate.targets). No torch, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from porelab.sim.measurement import FieldResult, ICRResult, Measurement


def field_estimator(f: FieldResult) -> str:
    """The estimator whose numbers stand for the result at field f: "crossings" (MD) or "oracle" (see the module
    rule)."""
    return "crossings" if any(r.crossings_up is not None for r in f.species.values()) else "oracle"


@dataclass(frozen=True)
class Labelled:
    """A measurement's results as the rule reads them: fields (the result at each signed field), estimators (the
    estimator of each, same order) and icr (the measurement's ICR rows)."""

    fields: list[FieldResult]
    estimators: list[str]
    icr: list[ICRResult]

    def field(self, e: float) -> tuple[FieldResult, str]:
        """The result at signed field e (V/nm) and its estimator; KeyError when not measured."""
        for f, est in zip(self.fields, self.estimators, strict=True):
            if abs(f.field_V_per_nm - e) <= 1e-9:
                return f, est
        raise KeyError(f"no result at field {e} V/nm")


def labelled(m: Measurement) -> Labelled:
    """The results of an ok measurement as the rule reads them (see the module docstring)."""
    return Labelled(list(m.fields), [field_estimator(f) for f in m.fields], list(m.icr))
