"""A campaign's summary, read from its ledger only: trials by status, the best designs (each value with its 95 %
interval, ranked by the objective's pessimistic bound, each design in the orientation that rectifies for an ICR goal:
campaign.measured; those of the study's own oracle first, then those of the cheaper rungs of its fidelity ladder,
each with the fidelity that measured it), the surrogate's prospective error over the campaign's picks and per round,
worker utilisation and why it stopped."""

from __future__ import annotations

import numpy as np

from porelab.active_learning.campaign.iteration import Snapshot, heldout_metrics, prospective
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.measured import ranked
from porelab.active_learning.campaign.study import Goal, Study
from porelab.active_learning.campaign.targets import objective_name
from porelab.surrogate.metrics import regression_metrics


def summarize(ledger: Ledger, study: Study, top: int = 5) -> dict:
    """Counts by status, the `top` best designs (natural units, flat: icr, icr_lo, icr_hi, icr_censored,
    icr_upper_censored, the same for on_current_nA, objective and selectivity, measured_by, symmetric, mirrored,
    on_field, and layers, design, conditions in the orientation shown), the best objective with its interval, the
    prospective error of every pick measured with a value (iteration.heldout_metrics with intervals: the objective
    against what the model predicted when it picked it),
    utilisation, the stop reason and the driver's time (s). When the campaign
    stopped having evaluated its whole pool, `best_found`: {evaluation, of, random_mean}, the dispatch position of
    the best design among the study's oracle's measurements and what uniform random picks need on average to
    reach it, (of + 1) / 2."""
    rows = {r.design_id: r for r in ledger.measurements(ok_only=True)}
    by_rung = {True: [], False: []}  # at the target first: a cheaper rung's numbers answer another question
    for r in rows.values():
        by_rung[r.rung is None].append(r)
    best = []
    for m in (ranked(by_rung[True], study.goal) + ranked(by_rung[False], study.goal))[:top]:
        best.append({**m.as_dict(), "layers": list(m.design.layers), "design": m.design.model_dump(mode="json"),
                     "conditions": m.conditions.model_dump(mode="json")})
    found = None
    if best and ledger.get("finished") == "pool":  # every design of the pool evaluated: its best is known
        order = [r.design_id for r in sorted(by_rung[True], key=lambda r: r.seq)]
        if best[0]["design_id"] in order:
            found = {"evaluation": order.index(best[0]["design_id"]) + 1, "of": len(order),
                     "random_mean": (len(order) + 1) / 2}
    its = ledger.iterations()
    snap = Snapshot.read(ledger, study.goal)
    counts = ledger.counts()
    top1 = best[0] if best else {}
    return {**counts, "trials": sum(counts.values()), "iterations": len(its), "best": best,
            "best_objective": top1.get("objective"), "best_objective_lo": top1.get("objective_lo"),
            "best_objective_hi": top1.get("objective_hi"), "best_objective_censored": top1.get("objective_censored"),
            **heldout_metrics(*prospective(snap, objective_name(study.goal), None), intervals=True),
            "utilisation": ledger.get("utilisation"), "finished": ledger.get("finished"),
            "driver_seconds": ledger.get("driver_seconds"), "objective": study.goal.objective,
            "maximize": study.goal.maximize, "rounds": prospective_by_round(snap, study.goal), "best_found": found}


#: rounds pooled in the prospective error's trend column (`prospective_by_round`, `porelab campaign status`)
PROSPECTIVE_WINDOW = 5


def prospective_by_round(snap: Snapshot, goal: Goal, window: int = PROSPECTIVE_WINDOW) -> list[dict]:
    """The surrogate's prospective error per round of picks: for the designs picked in round r >= 1 and measured
    by the study's own oracle, the objective (ln scale) against what the model predicted when it picked them
    (iteration.prospective, surrogate.metrics.regression_metrics), and the RMSE of the picks of this round and the
    `window` - 1 scored rounds before it pooled (one pick per round jumps; the window shows the trend):
    [{round, n, rmse, coverage_95, rmse_window}] from a ledger's snapshot (iteration.Snapshot.read)."""
    objective, out, scored = objective_name(goal), [], []
    for rnd in sorted({rnd for rnd, _ in snap.predicted.values() if rnd >= 1}):
        y, mu, sd = prospective(snap, objective, None, only_round=rnd)
        if len(y):
            m = regression_metrics(y, mu, sd)
            scored.append((y, mu, sd))
            pooled = regression_metrics(*(np.concatenate(a) for a in zip(*scored[-window:], strict=True)))
            out.append({"round": rnd, "n": m["n"], "rmse": m["rmse"], "coverage_95": m["coverage_95"],
                        "rmse_window": pooled["rmse"]})
    return out
