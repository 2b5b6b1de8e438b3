"""The numbers a campaign learns and optimises, taken from a Measurement, each with its 95 % interval.

All are natural logs, so the surrogate works on a scale where ICR 2 and 1/2 are symmetric. Each field's current
and fluxes are the estimate that porelab.surrogate.labels chooses (the displacement estimator where its interval is
reliable and narrower, crossing counts otherwise, the oracle's own numbers for the continuum or a user's oracle):
the same numbers the surrogate's labels are made of, so the measured ICR a campaign ranks by is the one it learns.
  log_icr          ln ICR at the goal's |E| (default the largest |E| measured). Censored (`icr_censored` = 1) when
                   the OFF current's interval contains zero: the value is then the ratio of the point currents (the
                   interval's lower bound when the OFF point current is 0), and only the lower end is known. When
                   the chosen currents give no positive ICR or ON current (no net crossing in a short MD run), the
                   ratio of the displacement point currents, censored with no known bound; with no nonzero
                   displacement pair either there is no ICR (the trial is abandoned with the currents in its
                   reason)
  log_on_current   ln of the ON current, nA: max(|I(+E)|, |I(-E)|) at that |E|
  log_selectivity  ln S, S = sum_a |J_a|/c_a / sum_b |J_b|/c_b over the goal's species, in the ON direction
                   (when the denominator's flux interval contains zero: the lower bound of S)
Beside each: `<name>_lo` and `<name>_hi`, the 95 % interval on the same ln scale (None where unknown: `_hi` of a
censored value, `_lo` of a bound at zero), and `estimator`, the estimator of the fields at that |E| (crossings,
displacement or oracle; "A|B" when +E used A and -E used B). All are computed by porelab.sim.observables
(docs/physics.md §3).
"""

from __future__ import annotations

import math

from porelab.active_learning.campaign.study import Goal
from porelab.sim.measurement import Measurement
from porelab.sim.observables import Interval, on_current, point_icr, selectivity
from porelab.surrogate.labels import labelled

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


def _log_or_none(x: float | None) -> float | None:
    return math.log(x) if x is not None and math.isfinite(x) and x > 0 else None


def _with_interval(name: str, value: float, what: str, iv: Interval) -> dict:
    """{name: ln value, name_lo: ln low, name_hi: ln high} (None where unknown)."""
    return {name: _finite_log(value, what), f"{name}_lo": _log_or_none(iv.low),
            f"{name}_hi": None if iv.censored else _log_or_none(iv.high)}


def targets(m: Measurement, goal: Goal) -> dict[str, float | str | None]:
    """Targets of an ok measurement with their intervals (natural logs; `icr_censored` 0/1; `estimator`); raises
    InvalidMeasurement."""
    for f in m.fields:
        if not math.isfinite(f.current_nA):
            raise InvalidMeasurement(f"current at {f.field_V_per_nm:+g} V/nm is {f.current_nA}")
    lab = labelled(m)
    if not lab.icr:
        raise InvalidMeasurement("no ICR: the measurement lacks a field measured at both +E and -E")
    if goal.field_abs_V_per_nm is None:
        r = max(lab.icr, key=lambda r: r.field_abs_V_per_nm)
    else:
        near = [r for r in lab.icr if math.isclose(r.field_abs_V_per_nm, goal.field_abs_V_per_nm, rel_tol=1e-6)]
        if not near:
            raise InvalidMeasurement(f"no ICR at the goal's |E| = {goal.field_abs_V_per_nm} V/nm")
        r = near[0]
    e = r.field_abs_V_per_nm
    (plus, est_p), (minus, est_m) = lab.field(e), lab.field(-e)
    estimator = est_p if est_p == est_m else f"{est_p}|{est_m}"
    icr = r.icr
    if r.icr_censored and minus.current_nA != 0:  # the point estimate; its interval says only "at least"
        icr = point_icr(plus.current_nA, minus.current_nA)
    icr_iv = Interval(icr, r.icr_ci[0], r.icr_ci[1], r.icr_censored)
    on = on_current(plus, minus)
    where = f"ICR at {e:g} V/nm (currents {plus.current_nA:+.3g} and {minus.current_nA:+.3g} nA)"
    if not (icr > 0 and on.value > 0):  # no net crossing (short MD): the displacement point currents, censored
        raw_p, raw_m = m.field(e), m.field(-e)
        dp, dm = raw_p.current_displacement_nA, raw_m.current_displacement_nA
        if dp and dm:
            icr = point_icr(dp, dm)
            icr_iv, on = Interval(icr, 0.0, None, True), on_current(raw_p, raw_m, "displacement")
            estimator = "displacement (point, unresolved)"
            where += f"; displacement currents {dp:+.3g} and {dm:+.3g} nA"
    out = {**_with_interval("log_icr", icr, where, icr_iv),
           **_with_interval("log_on_current", on.value, "ON current (nA)", on),
           "icr_censored": float(icr_iv.censored), "estimator": estimator}
    if goal.objective == "selectivity":
        sel = goal.selectivity
        side = max((plus, minus), key=lambda f: abs(f.current_nA))  # the ON field (sim.observables.on_current's)
        try:
            s = selectivity(side, m.conditions.electrolyte, sel.numerator, sel.denominator)
        except ValueError as err:
            raise InvalidMeasurement(str(err)) from None
        out |= _with_interval("log_selectivity", s.value, "selectivity", s)
    return out


def objective_value(t: dict[str, float], goal: Goal) -> float:
    """The goal's quantity in natural units (ICR or S), from targets()."""
    return math.exp(t[objective_name(goal)])
