"""Measured values as a person reads them: each with its 95 % interval, what measured it, and the bound it is ranked
by. Read from a measurement's targets (campaign.targets: ln values with `_lo`/`_hi` and `estimator`).

Ranking ("best") is by the pessimistic end of the objective's interval in the goal's direction: the lower bound
when maximising, the upper bound when minimising (a censored value has no upper bound: last when minimising).
For an ICR goal a mirror-symmetric design ranks last whatever its numbers say: its ICR is 1 by symmetry
(docs/physics.md §3), so a noisy measurement of it can never top a table.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import InvalidMeasurement, objective_name, targets
from porelab.sim.design import Design
from porelab.sim.measurement import Measurement
from porelab.sim.observables import Interval

NAMES = ("log_icr", "log_on_current", "log_selectivity")


def interval(t: dict, name: str) -> Interval:
    """The natural-unit Interval of target `name` (e.g. log_icr) of a targets dict (see `with_intervals`): censored
    (only a lower bound, the value) when `_hi` is None. KeyError when the dict lacks the bounds."""
    value, lo, hi = t[name], t[f"{name}_lo"], t[f"{name}_hi"]
    low = math.exp(lo) if lo is not None else 0.0
    if hi is None:
        return Interval(low, low, None, True)
    return Interval(math.exp(value), low, math.exp(hi))


def with_intervals(t: dict | None, measurement_json: str, goal: Goal) -> dict:
    """The targets of a stored measurement with their intervals: `t` as stored when it has them, else computed again
    from the measurement (a ledger written before targets carried intervals); {} when it yields none."""
    needed = [n for n in NAMES if t and n in t]
    if t and needed and all(f"{n}_lo" in t for n in needed):
        return t
    try:
        return targets(Measurement.model_validate_json(measurement_json), goal)
    except (InvalidMeasurement, ValueError):
        return dict(t or {})


@dataclass(frozen=True)
class Measured:
    """One measured design: ICR, ON current (nA) and (selectivity goals) selectivity with their 95 % intervals, the
    objective's, the |E| (V/nm) they are at, who measured it and whether the design is its own mirror image."""

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

    @property
    def measured_by(self) -> str:
        """E.g. 'md, crossings', 'md, displacement', 'continuum' (the oracle's own numbers)."""
        return self.fidelity if self.estimator in ("", "oracle") else f"{self.fidelity}, {self.estimator}"

    def as_dict(self) -> dict:
        """Flat JSON-able numbers: <name>, <name>_lo, <name>_hi (None: unbounded), <name>_censored."""
        out = {"design_id": self.design_id, "field_V_per_nm": self.field_abs_V_per_nm, "fidelity": self.fidelity,
               "estimator": self.estimator, "measured_by": self.measured_by, "symmetric": self.symmetric}
        for name, iv in (("icr", self.icr), ("on_current_nA", self.on_current_nA), ("selectivity", self.selectivity),
                         ("objective", self.objective)):
            if iv is not None:
                out |= {name: iv.value, f"{name}_lo": iv.low, f"{name}_hi": iv.high, f"{name}_censored": iv.censored}
        return out


def rank_bound(objective: Interval, goal: Goal, symmetric: bool) -> float:
    """ln of the objective's pessimistic end in the goal's direction; -inf ranks last (see the module docstring)."""
    if symmetric and goal.objective == "icr":
        return -math.inf
    if goal.maximize:
        return math.log(objective.low) if objective.low > 0 else -math.inf
    return -math.log(objective.high) if objective.high is not None and objective.high > 0 else -math.inf


def measured(row: dict, goal: Goal) -> Measured | None:
    """A ledger measurement row ({design_id, json, targets}) read with intervals; None when it has no targets."""
    t = with_intervals(row.get("targets"), row["json"], goal)
    if any(f"{n}_lo" not in t for n in (objective_name(goal), "log_icr", "log_on_current")):
        return None
    doc = json.loads(row["json"])
    design = Design.model_validate(doc["design"])
    fields = doc["conditions"]["fields_V_per_nm"]
    e = goal.field_abs_V_per_nm or max(abs(x) for x in fields)
    sel = interval(t, "log_selectivity") if "log_selectivity" in t else None
    obj = sel if goal.objective == "selectivity" else interval(t, "log_icr")
    symmetric = design.is_symmetric()
    return Measured(row["design_id"], interval(t, "log_icr"), interval(t, "log_on_current"), sel, obj, e,
                    doc.get("fidelity", "?"), str(t.get("estimator") or ""), symmetric,
                    rank_bound(obj, goal, symmetric))


def ranked(rows: list[dict], goal: Goal) -> list[Measured]:
    """The rows read with intervals, best first: by rank_bound, then the value in the goal's direction."""
    sign = 1.0 if goal.maximize else -1.0
    out = [m for m in (measured(r, goal) for r in rows) if m is not None]
    return sorted(out, key=lambda m: (-m.rank_bound, -sign * math.log(max(m.objective.value, 1e-300))))
