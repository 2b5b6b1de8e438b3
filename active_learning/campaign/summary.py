"""A campaign's summary, read from its ledger only: trials by status, the best designs, the last model's
prospective quality, worker utilisation and why it stopped."""

from __future__ import annotations

import json
import math

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import Study
from porelab.active_learning.campaign.targets import objective_name


def summarize(ledger: Ledger, study: Study, top: int = 5) -> dict:
    """Counts by status, the `top` best designs (natural units), the last iteration's held-out metrics,
    utilisation, the stop reason and the driver's time (s)."""
    objective = objective_name(study.goal)
    sign = 1.0 if study.goal.maximize else -1.0
    ms = ledger.measurements(ok_only=True)
    ranked = sorted(ms, key=lambda m: -sign * m["targets"][objective])[:top]
    best = []
    for m in ranked:
        doc = json.loads(m["json"])
        best.append({"design_id": m["design_id"], "layers": doc["design"]["layers"],
                     "field_V_per_nm": max(abs(x) for x in doc["conditions"]["fields_V_per_nm"]),
                     "objective": math.exp(m["targets"][objective]), "icr": math.exp(m["targets"]["log_icr"]),
                     "on_current_nA": math.exp(m["targets"]["log_on_current"]), "design": doc["design"],
                     "conditions": doc["conditions"]})
    its = ledger.iterations()
    last = its[-1]["metrics"] if its else {}
    counts = ledger.counts()
    return {**counts, "trials": sum(counts.values()), "iterations": len(its), "best": best,
            "best_objective": best[0]["objective"] if best else None,
            "heldout_rmse": last.get("heldout_rmse"), "heldout_r2": last.get("heldout_r2"),
            "heldout_coverage_68": last.get("heldout_coverage_68"),
            "utilisation": ledger.get("utilisation"), "finished": ledger.get("finished"),
            "driver_seconds": ledger.get("driver_seconds"), "objective": study.goal.objective}
