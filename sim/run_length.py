"""When an MD run has produced enough: the stopping rule of `MDSettings(until="decisive")`.

The rule (docs/physics.md §3). Production runs in chunks: every field of the question advances by `chunk_ps`,
then the rule is checked on the displacement estimator (polarisation transient dropped). A field's interval counts
only when it is reliable (at least `sim.estimators.MIN_N_EFF` effectively independent samples). Each |E| simulated
at both signs is settled when both of its intervals are reliable and its 95 % ICR interval is decisive —
low >= 1 + margin (rectifies along +E; a censored lower bound counts) or high <= 1 / (1 + margin) (along -E) — or
precise: (high - low) / (2 ICR) <= target, so that an ICR near 1 ends too. A field without its opposite sign, and
every field of a symmetric design (ICR = 1 by symmetry), is settled once its interval is reliable. The run stops
when everything is settled, or when `max_production_ps` is reached.
"""

from __future__ import annotations

import math

from porelab.sim.measurement import FieldResult, ICRResult

TOL_V_PER_NM = 1e-9


def _reliable(f: FieldResult) -> bool:
    return f.current_displacement_ci_nA is not None and bool(f.current_displacement_reliable)


def icr_verdict(r: ICRResult, margin: float, target: float) -> str | None:
    """'decisive', 'precise' or None (not yet) for one ICR row, from its displacement-estimator interval."""
    if r.by_symmetry:
        return "precise"
    if r.icr_displacement_ci is None:
        return None
    low, high = r.icr_displacement_ci
    if low >= 1 + margin or (high is not None and high <= 1 / (1 + margin)):
        return "decisive"
    if high is not None and r.icr_displacement > 0 and (high - low) / (2 * r.icr_displacement) <= target:
        return "precise"
    return None


def stop_verdict(fields: list[FieldResult], icr: list[ICRResult], margin: float, target: float,
                 symmetric: bool) -> tuple[str, str] | None:
    """(stopped, reason) when the rule is met at the current production, else None.

    fields: the measured results (derived ones included); icr: `sim.observables.icr_results(fields)`;
    margin, target: the rule's m and r; symmetric: the design is its own mirror image.
    stopped is 'symmetric', 'decisive' (every |E| decisive) or 'precise' (at least one settled by precision).
    """
    simulated = [f for f in fields if not f.derived_by_symmetry]
    unreliable = [f for f in simulated if not _reliable(f)]
    if unreliable:
        return None
    if symmetric:
        return "symmetric", (f"symmetric design: ICR = 1 by symmetry; displacement intervals reliable at "
                             f"{', '.join(f'{f.field_V_per_nm:+g}' for f in simulated)} V/nm")
    verdicts = {}
    for r in icr:
        v = icr_verdict(r, margin, target)
        if v is None:
            return None
        verdicts[r.field_abs_V_per_nm] = v
    parts = [f"|E|={e:g}: {v}" for e, v in verdicts.items()]
    paired = {e for e in verdicts}
    alone = [f for f in simulated if not any(math.isclose(abs(f.field_V_per_nm), e, abs_tol=TOL_V_PER_NM)
                                             for e in paired)]
    if alone:
        parts.append(f"reliable at {', '.join(f'{f.field_V_per_nm:+g}' for f in alone)} V/nm")
    kind = "decisive" if verdicts and all(v == "decisive" for v in verdicts.values()) else "precise"
    return kind, "; ".join(parts)
