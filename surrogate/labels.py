"""Which estimate of a measured current and its fluxes a result stands for: the one rule behind the surrogate's
labels (surrogate.dataset) and a campaign's measured targets (active_learning.campaign.targets), so that the ICR a
campaign ranks by is the ICR of the fluxes the surrogate learns (docs/physics.md §3).

The rule, per signed field (one estimator for the current and every species at that field, so that the current is
e·Σ z_s J_s of the chosen fluxes and its interval is that estimator's own, correlations between species included):
  displacement  when the field has displacement intervals for the current and every species, the interval is
                reliable (`current_displacement_reliable`: at least sim.estimators.MIN_N_EFF effectively
                independent samples), and its current interval is narrower than the crossing-count one;
  crossings     otherwise, for MD (an unreliable or missing displacement interval is never used);
  oracle        a result with neither crossing counts nor displacement intervals (the continuum twin, a user's
                oracle): its own numbers.
A flux or current is censored only when the chosen 95 % interval contains zero. No torch, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from porelab.sim.measurement import FieldResult, ICRResult, Measurement
from porelab.sim.observables import icr_results


def _width(ci: tuple[float, float]) -> float:
    return abs(ci[1] - ci[0])


def field_estimator(f: FieldResult) -> str:
    """The estimator ("crossings", "displacement" or "oracle") whose numbers stand for the result at field f (see
    the module rule)."""
    counted = any(r.crossings_up is not None for r in f.species.values())
    disp = (f.current_displacement_ci_nA is not None and f.current_displacement_reliable is True
            and all(r.flux_displacement_ci_per_ns is not None and r.flux_displacement_per_ns is not None
                    for r in f.species.values()))
    if disp and _width(f.current_displacement_ci_nA) < _width(f.current_ci_nA):
        return "displacement"
    return "crossings" if counted else "oracle"


def chosen_field(f: FieldResult) -> tuple[FieldResult, str]:
    """(f with the chosen estimate in its current/flux slots and no displacement slots, the estimator's name)."""
    est = field_estimator(f)
    clear = {"current_displacement_nA": None, "current_displacement_ci_nA": None}
    if est != "displacement":
        return f.model_copy(update=clear), est
    species = {s: r.model_copy(update={"flux_per_ns": r.flux_displacement_per_ns,
                                       "flux_ci_per_ns": tuple(r.flux_displacement_ci_per_ns),
                                       "flux_displacement_per_ns": None, "flux_displacement_ci_per_ns": None})
               for s, r in f.species.items()}
    return f.model_copy(update={**clear, "current_nA": f.current_displacement_nA,
                                "current_ci_nA": tuple(f.current_displacement_ci_nA), "species": species}), est


@dataclass(frozen=True)
class Labelled:
    """A measurement's results as the rule reads them: fields (the chosen estimate at each signed field, in the
    crossing slots), estimators (the estimator of each, same order) and icr (from those fields)."""

    fields: list[FieldResult]
    estimators: list[str]
    icr: list[ICRResult]

    def field(self, e: float) -> tuple[FieldResult, str]:
        """The chosen result at signed field e (V/nm) and its estimator; KeyError when not measured."""
        for f, est in zip(self.fields, self.estimators, strict=True):
            if abs(f.field_V_per_nm - e) <= 1e-9:
                return f, est
        raise KeyError(f"no result at field {e} V/nm")


def labelled(m: Measurement) -> Labelled:
    """The chosen estimate at every field of an ok measurement, and the ICR of those currents (the oracle's own
    ICR rows when no field uses the displacement estimator, e.g. the continuum's interval-arithmetic bounds)."""
    pairs = [chosen_field(f) for f in m.fields]
    fields, ests = [p[0] for p in pairs], [p[1] for p in pairs]
    if "displacement" in ests:
        icr = icr_results(fields)
    else:
        icr = [r.model_copy(update={"icr_displacement": None, "icr_displacement_ci": None,
                                    "icr_displacement_censored": None}) for r in m.icr]
    return Labelled(fields, ests, icr)
