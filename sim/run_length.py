"""When an MD run has produced enough: the stopping rule of `MDSettings(until="decisive")`.

The rule (docs/physics.md §3). Production runs in chunks after the field-on settle. The first look is at
`min_production_ps` per field, then one after every `chunk_ps`, up to `max_production_ps`: K looks in all
(`look_times`). Each look tests the ICR interval from the crossing counts (`sim.observables.count_icr`) at level
1 - alpha/K (Bonferroni alpha spending), so that over all its looks the chance of a false "decisive" verdict on a
pore that does not rectify is at most alpha, however the looks are correlated (tests/sim/test_run_length.py
measures it on synthetic nulls). Each |E| simulated at both signs is settled when its interval is
  decisive: low >= 1 + margin (rectifies along +E) or high <= 1 / (1 + margin) (along -E), censored bounds
            included; or
  precise:  both ends known and (high - low) / (2 ICR) <= target, so that an ICR near 1 ends too.
A design equal to its mirror image (ICR = 1 by symmetry) and a field without its opposite sign have nothing to
decide: they stop at the first look. The run stops when everything is settled, or at `max_production_ps`; the
reported intervals are the ordinary 95 % ones. A run extended past its cap continues with the spending of its
new cap (alpha/K of the new K per look).
"""

from __future__ import annotations

import math

from porelab.sim.measurement import FieldResult, ICRResult
from porelab.sim.observables import icr_results

TOL_PS = 1e-6


def look_times(min_ps: float, chunk_ps: float, max_ps: float) -> list[float]:
    """Production per field (ps) at each look of the rule: min_ps, min_ps + chunk_ps, ..., max_ps."""
    first = min(min_ps, max_ps)
    n = max(0, math.ceil((max_ps - first) / chunk_ps - TOL_PS))
    return [min(first + k * chunk_ps, max_ps) for k in range(n + 1)]


def icr_verdict(r: ICRResult, margin: float, target: float) -> str | None:
    """'decisive', 'precise' or None (not yet) for one ICR row (at the level the row was computed at)."""
    if r.by_symmetry:
        return "precise"
    low, high = r.icr_ci
    if low >= 1 + margin or (high is not None and high <= 1 / (1 + margin)):
        return "decisive"
    if high is not None and not r.icr_censored and not r.icr_upper_censored and r.icr > 0 \
            and (high - low) / (2 * r.icr) <= target:
        return "precise"
    return None


def stop_verdict(fields: list[FieldResult], margin: float, target: float, symmetric: bool,
                 alpha_look: float) -> tuple[str, str] | None:
    """(stopped, reason) when the rule is met at this look, else None.

    fields: the measured results (derived ones included); margin, target: the rule's m and r; symmetric: the design
    is its own mirror image; alpha_look: this look's share of alpha (alpha / K).
    stopped is 'symmetric', 'decisive' (every |E| decisive) or 'precise' (at least one settled by precision).
    """
    simulated = [f for f in fields if not f.derived_by_symmetry]
    if symmetric:
        return "symmetric", (f"symmetric design: ICR = 1 by symmetry; measured at "
                             f"{', '.join(f'{f.field_V_per_nm:+g}' for f in simulated)} V/nm")
    rows = icr_results(fields, alpha=alpha_look)
    verdicts = {}
    for r in rows:
        v = icr_verdict(r, margin, target)
        if v is None:
            return None
        verdicts[r.field_abs_V_per_nm] = v
    level = f"{100 * (1 - alpha_look):.4g} % intervals"
    parts = [f"|E|={e:g}: {v}" for e, v in verdicts.items()]
    alone = [f for f in simulated if not any(math.isclose(abs(f.field_V_per_nm), e, abs_tol=1e-9) for e in verdicts)]
    if alone:
        parts.append(f"nothing to decide at {', '.join(f'{f.field_V_per_nm:+g}' for f in alone)} V/nm")
    kind = "decisive" if verdicts and all(v == "decisive" for v in verdicts.values()) else "precise"
    return kind, "; ".join(parts) + f" ({level})"
