"""Measured values as a person reads them: each with its 95 % interval, what measured it, and the bound it is ranked
by. Read from a measurement's targets (campaign.targets: ln values with `_lo`/`_hi` and `estimator`).

Ranking ("best") is by the pessimistic end of the objective's interval in the goal's direction: the lower bound
when maximising, the upper bound when minimising (a censored value has no upper bound: last when minimising). For an
ICR goal the objective is max(ICR, 1/ICR), the rectification of the better orientation (campaign.targets
`abs_log_icr`), and a mirror-symmetric design ranks last whatever its numbers say: its ICR is 1 by symmetry
(docs/physics.md §3), so a noisy measurement of it can never top a table.

Orientation: for an ICR goal each design is shown in the orientation that rectifies, the one whose ON field (the
field sign with the larger |current|) is +E: a trial whose ICR is below 1 ("< x" included) is shown as its mirror
image (layers reversed, fields reversed: the same simulation, the same design id) with ICR' = 1/ICR and interval
(1/high, 1/low), so "< x" (x < 1) reads "> 1/x". A censored ICR whose bound does not say which field is ON ("> x"
with x <= 1, "< x" with x >= 1, or no bound at all) stays as drawn, its ON field "unresolved".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from porelab.active_learning.campaign.ledger import MeasuredRow
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import (
    ICR_OBJECTIVE,
    InvalidMeasurement,
    bounds,
    has_bounds,
    objective_name,
    targets,
    upper_censored,
)
from porelab.sim.design import Conditions, Design, mirror_question
from porelab.sim.measurement import Measurement
from porelab.sim.observables import Interval

NAMES = ("log_icr", ICR_OBJECTIVE, "log_on_current", "log_selectivity")


def interval(t: dict, name: str) -> Interval:
    """The natural-unit Interval of target `name` (e.g. log_icr) of a targets dict (see `with_intervals`): censored
    (only a lower bound, the value) when `_hi` is None; upper-censored (only an upper bound, the value) when
    campaign.targets.upper_censored says so. KeyError when the dict lacks the bounds."""
    value, (lo, hi) = t[name], bounds(t, name)
    low = math.exp(lo) if lo is not None else 0.0
    if hi is None:
        return Interval(low, low, None, True)
    if upper_censored(t, name):
        return Interval(math.exp(hi), 0.0, math.exp(hi), upper_censored=True)
    return Interval(math.exp(value), low, math.exp(hi))


def inverted(icr: Interval) -> Interval:
    """1/ICR with its interval (1/high, 1/low), of an ICR with a known bound: the mirror image's at the opposite
    field; "< x" becomes "> 1/x" and "> x" becomes "< 1/x"."""
    if icr.upper_censored or (not icr.censored and icr.low <= 0):
        return Interval(1 / icr.high, 1 / icr.high, None, True)
    if icr.censored:
        return Interval(1 / icr.low, 0.0, 1 / icr.low, upper_censored=True)
    return Interval(1 / icr.value, 1 / icr.high, 1 / icr.low)


def on_field_sign(t: dict) -> int:
    """The sign of the ON field in the trial's orientation (the field sign with the larger |current|), from a
    targets dict: +1 when the ICR is at least 1, or known only from below by a bound above 1; -1 when it is below 1,
    or known only from above by a bound below 1; 0 when only a bound is known and it does not tell (or none)."""
    lo, hi = bounds(t, "log_icr")
    if t.get("icr_censored"):
        return 1 if lo is not None and lo > 0 else 0
    if t.get("icr_upper_censored"):
        return -1 if hi < 0 else 0
    return 1 if t["log_icr"] >= 0 else -1


def on_field(design: Design, sign: int) -> str:
    """The ON field's sign and where it points, e.g. "+E (COO- side to NH3+ side)" (+E points from the first layer
    to the last, docs/physics.md §1; a layer without groups is "bare"); "unresolved" for sign 0."""
    if sign == 0:
        return "unresolved"
    ends = ["bare" if g == "none" else g for g in (design.layers[0], design.layers[-1])]
    a, b = ends if sign > 0 else ends[::-1]
    return f"{'+' if sign > 0 else '-'}E ({a} side to {b} side)"


def icr_text(t: dict) -> str:
    """The ICR of a targets dict as a progress line says it: as drawn, and the mirror image's when that is the
    orientation that rectifies, e.g. "0.25 [0.08, 0.79] (mirror image: 4 [1.27, 12.5])"."""
    icr = interval(t, "log_icr")
    return f"{icr} (mirror image: {inverted(icr)})" if on_field_sign(t) < 0 else str(icr)


def with_intervals(t: dict | None, measurement_json: str, goal: Goal) -> dict:
    """The targets of a stored measurement with their intervals: `t` as stored when it has them (and the ICR
    objective), else computed again from the measurement (a ledger written before targets carried them); {} when it
    yields none."""
    if t and ICR_OBJECTIVE in t and all(has_bounds(t, n) for n in NAMES if n in t):
        return t
    try:
        return targets(Measurement.model_validate_json(measurement_json), goal)
    except (InvalidMeasurement, ValueError):
        return dict(t or {})


@dataclass(frozen=True)
class Measured:
    """One measured design: ICR, ON current (nA) and (selectivity goals) selectivity with their 95 % intervals, the
    objective's, the |E| (V/nm) they are at, who measured it and whether the design is its own mirror image. The
    design, its conditions and its ICR are in the orientation shown (`mirrored`: the mirror image of the trial's
    design as drawn, see the module docstring); `on_field` says which field is ON, in words."""

    design_id: str
    icr: Interval
    on_current_nA: Interval
    selectivity: Interval | None
    objective: Interval
    field_abs_V_per_nm: float
    fidelity: str
    estimator: str
    symmetric: bool
    rank_bound: float  # ln of the pessimistic end in the goal's direction (-inf: ranks last)
    design: Design
    conditions: Conditions
    mirrored: bool
    on_field: str

    @property
    def measured_by(self) -> str:
        """E.g. 'md, crossings', 'continuum' (the oracle's own numbers)."""
        return self.fidelity if self.estimator in ("", "oracle") else f"{self.fidelity}, {self.estimator}"

    def as_dict(self) -> dict:
        """Flat JSON-able values: <name>, <name>_lo, <name>_hi (None: unbounded), <name>_censored (only a lower
        bound), <name>_upper_censored (only an upper bound); the orientation shown (mirrored, on_field)."""
        out = {"design_id": self.design_id, "field_V_per_nm": self.field_abs_V_per_nm, "fidelity": self.fidelity,
               "estimator": self.estimator, "measured_by": self.measured_by, "symmetric": self.symmetric,
               "mirrored": self.mirrored, "on_field": self.on_field}
        for name, iv in (("icr", self.icr), ("on_current_nA", self.on_current_nA), ("selectivity", self.selectivity),
                         ("objective", self.objective)):
            if iv is not None:
                out |= {name: iv.value, f"{name}_lo": iv.low, f"{name}_hi": iv.high, f"{name}_censored": iv.censored,
                        f"{name}_upper_censored": iv.upper_censored}
        return out


def rank_bound(objective: Interval, goal: Goal, symmetric: bool) -> float:
    """ln of the objective's pessimistic end in the goal's direction; -inf ranks last (see the module docstring)."""
    if symmetric and goal.objective == "icr":
        return -math.inf
    if goal.maximize:
        return math.log(objective.low) if objective.low > 0 else -math.inf
    return -math.log(objective.high) if objective.high is not None and objective.high > 0 else -math.inf


def measured(row: MeasuredRow, goal: Goal) -> Measured | None:
    """A ledger measurement row (its design_id, json and targets) read with intervals, in the orientation shown (see
    the module docstring); None when it has no targets."""
    t = with_intervals(row.targets, row.json, goal)
    if not all(has_bounds(t, n) for n in (objective_name(goal), "log_icr", "log_on_current")):
        return None
    doc = json.loads(row.json)
    design, conditions = Design.model_validate(doc["design"]), Conditions.model_validate(doc["conditions"])
    e = goal.field_abs_V_per_nm or max(abs(x) for x in conditions.fields_V_per_nm)
    sel = interval(t, "log_selectivity") if "log_selectivity" in t else None
    icr, sign = interval(t, "log_icr"), on_field_sign(t)
    mirrored = goal.objective == "icr" and sign < 0
    if mirrored:
        (design, conditions), icr, sign = mirror_question(design, conditions), inverted(icr), 1
    obj = sel if goal.objective == "selectivity" else interval(t, ICR_OBJECTIVE)
    symmetric = design.is_symmetric()
    return Measured(row.design_id, icr, interval(t, "log_on_current"), sel, obj, e, doc.get("fidelity", "?"),
                    str(t.get("estimator") or ""), symmetric, rank_bound(obj, goal, symmetric), design, conditions,
                    mirrored, on_field(design, sign))


def row_of(m: Measurement, t: dict | None) -> MeasuredRow:
    """A measurement kept outside a ledger (a verified design's, a table's) with its targets `t` as a measured row
    that `measured` and `ranked` read: round 0, seq 0, the study's own oracle's (rung None), not extended."""
    return MeasuredRow(m.design_id, m.to_json(), t, m.status, 0, 0, m.fidelity, None, 0)


def ranked(rows: list[MeasuredRow], goal: Goal) -> list[Measured]:
    """The rows read with intervals, best first: by rank_bound, then the value in the goal's direction."""
    sign = 1.0 if goal.maximize else -1.0
    out = [m for m in (measured(r, goal) for r in rows) if m is not None]
    return sorted(out, key=lambda m: (-m.rank_bound, -sign * math.log(max(m.objective.value, 1e-300))))
