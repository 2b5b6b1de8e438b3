"""The numbers a campaign learns and optimises, taken from a Measurement.

All are natural logs, so the surrogate works on a scale where ICR 2 and 1/2 are symmetric:
  log_icr          ln ICR at the goal's |E| (default the largest |E| measured). When the crossing ICR is
                   censored or zero (short MD: the OFF current not resolved from zero), the displacement-estimator
                   ICR is used if resolved, else the ratio of the displacement point currents, else that of the
                   crossing point currents, flagged `icr_censored` = 1; with no nonzero pair there is no ICR
                   (the trial is abandoned with the currents in its reason)
  log_on_current   ln of the ON current, nA: max(|I(+E)|, |I(-E)|) at that |E| (of the estimator used for ICR)
  log_selectivity  ln S, S = sum_a |J_a|/c_a / sum_b |J_b|/c_b over the goal's species, in the ON direction
                   (when the denominator's flux interval contains zero: the lower bound of S)
All are computed by porelab.sim.observables (docs/physics.md §3).
"""

from __future__ import annotations

import math

from porelab.active_learning.campaign.study import Goal
from porelab.sim.measurement import Measurement
from porelab.sim.observables import icr_interval, on_current, selectivity

BASE_TARGETS = ("log_icr", "log_on_current")


class InvalidMeasurement(ValueError):
    """The oracle returned numbers that cannot be learned from (NaN, infinite, non-positive ICR)."""


def target_names(goal: Goal) -> tuple[str, ...]:
    return BASE_TARGETS + (("log_selectivity",) if goal.objective == "selectivity" else ())


def objective_name(goal: Goal) -> str:
    return "log_selectivity" if goal.objective == "selectivity" else "log_icr"


def _finite_log(x: float, what: str) -> float:
    if not (isinstance(x, int | float) and math.isfinite(x) and x > 0):
        raise InvalidMeasurement(f"{what} = {x} (needs a finite positive number)")
    return math.log(x)


def _point_icr(i_pos: float, i_neg: float) -> float:
    """ICR of two point currents (nA) whose intervals are unknown: |I(+E)| / |I(-E)|, 0 when I(-E) = 0."""
    return icr_interval(i_pos, (i_pos, i_pos), i_neg, (i_neg, i_neg), bound=True)[0]


def targets(m: Measurement, goal: Goal) -> dict[str, float]:
    """Targets of an ok measurement (natural logs; `icr_censored` 0/1); raises InvalidMeasurement.

    ICR is the oracle's (`m.icr`, from sim.observables.icr_results); the ON current and the selectivity come
    from sim.observables.on_current and .selectivity."""
    for f in m.fields:
        if not math.isfinite(f.current_nA):
            raise InvalidMeasurement(f"current at {f.field_V_per_nm:+g} V/nm is {f.current_nA}")
    if not m.icr:
        raise InvalidMeasurement("no ICR: the measurement lacks a field measured at both +E and -E")
    if goal.field_abs_V_per_nm is None:
        r = max(m.icr, key=lambda r: r.field_abs_V_per_nm)
    else:
        near = [r for r in m.icr if math.isclose(r.field_abs_V_per_nm, goal.field_abs_V_per_nm, rel_tol=1e-6)]
        if not near:
            raise InvalidMeasurement(f"no ICR at the goal's |E| = {goal.field_abs_V_per_nm} V/nm")
        r = near[0]
    e = r.field_abs_V_per_nm
    plus, minus = m.field(e), m.field(-e)
    icr, censored = r.icr, r.icr_censored
    i_on = on_current(plus, minus).value
    if censored or not icr > 0:  # short MD: fall back to the (lower-variance) displacement estimator
        censored = True
        dp, dm = plus.current_displacement_nA, minus.current_displacement_nA
        if r.icr_displacement is not None and not r.icr_displacement_censored and r.icr_displacement > 0:
            icr, i_on = r.icr_displacement, on_current(plus, minus, "displacement").value
        elif dp and dm:
            icr, i_on = _point_icr(dp, dm), max(abs(dp), abs(dm))
        elif abs(minus.current_nA) > 0:
            icr = _point_icr(plus.current_nA, minus.current_nA)
    where = f"ICR at {e:g} V/nm (currents {plus.current_nA:+.3g} and {minus.current_nA:+.3g} nA)"
    out = {"log_icr": _finite_log(icr, where),
           "log_on_current": _finite_log(i_on, "ON current (nA)"),
           "icr_censored": float(censored)}
    if goal.objective == "selectivity":
        sel = goal.selectivity
        on = max((plus, minus), key=lambda f: abs(f.current_nA))  # the ON field (sim.observables.on_current's)
        try:
            s = selectivity(on, m.conditions.electrolyte, sel.numerator, sel.denominator)
        except ValueError as err:
            raise InvalidMeasurement(str(err)) from None
        out["log_selectivity"] = _finite_log(s.value, "selectivity")
    return out


def objective_value(t: dict[str, float], goal: Goal) -> float:
    """The goal's quantity in natural units (ICR or S), from targets()."""
    return math.exp(t[objective_name(goal)])
