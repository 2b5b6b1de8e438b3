"""Which of a campaign's models is its `champion`: the best by prospective validation, not the latest.

Each iteration's model predicted the designs it picked before they were simulated (the pick-time prediction kept in
the ledger). A model's prospective score is the mean Gaussian negative log-likelihood of the objective (|ln ICR| for
an ICR goal, campaign.targets) over those of its picks that completed with a value, not only a bound
(campaign.targets.only_a_bound), against their predictive mean and std (campaign.targets.predictive: |ln ICR| folded
from the predicted ln ICR) (surrogate.metrics.regression_metrics, the campaign's `heldout_nll` restricted to that
model's picks): it rewards accurate means and honest uncertainties, what acquisition and inverse design rely on.
Picks without a predicted objective, or whose stored targets lack it (a ledger of an earlier version), do not count.
The champion is the model with the lowest score among those with at least MIN_PROSPECTIVE such designs (ties: the
later); while none has that many, the latest model. The last model of a campaign (trained on everything, picking
nothing) has no prospective data, so it is champion only in that case.
Reads the ledger only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.targets import only_a_bound, predictive

MIN_PROSPECTIVE = 8  # designs a model must have predicted before they ran to be compared


@dataclass(frozen=True)
class Champion:
    version: int  # the ledger's model version
    step: int  # the iteration that trained it
    nll: float | None  # its prospective mean NLL (None: too few designs, the latest model)
    n: int  # designs behind nll
    rule: str  # one line: why this model

    def __str__(self) -> str:
        return self.rule


def prospective_scores(ledger: Ledger, objective: str) -> dict[int, tuple[float, int]]:
    """{model step: (mean NLL, n)} over each model's completed picks measured with a value (see the module
    docstring)."""
    from porelab.surrogate.metrics import regression_metrics

    measured = {r["design_id"]: r["targets"] or {} for r in ledger.measurements(ok_only=True)}
    by_step: dict[int, list[tuple[float, float, float]]] = {}
    for t in ledger.trials("completed"):
        pred, y = predictive(t.prediction or {}, objective), measured.get(t.design_id, {})
        if pred is None or objective not in y or only_a_bound(y, objective):
            continue
        by_step.setdefault(t.round, []).append((y[objective], *pred))
    out = {}
    for step, rows in by_step.items():
        y, mu, sd = zip(*rows, strict=True)
        out[step] = (regression_metrics(list(y), list(mu), list(sd))["nll"], len(rows))
    return out


def champion(ledger: Ledger, objective: str, min_n: int | None = None) -> Champion | None:
    """The campaign's champion model (None before the first model); min_n defaults to MIN_PROSPECTIVE."""
    min_n = MIN_PROSPECTIVE if min_n is None else min_n
    models = ledger.models()
    if not models:
        return None
    scores = prospective_scores(ledger, objective)
    ok = [(scores[m["step"]][0], m) for m in models
          if m["step"] in scores and scores[m["step"]][1] >= min_n and math.isfinite(scores[m["step"]][0])]
    if not ok:
        m = models[-1]
        return Champion(m["version"], m["step"], None, scores.get(m["step"], (None, 0))[1],
                        f"model {m['version']} (iteration {m['step']}), the latest: no model has predicted "
                        f"{min_n} designs before they ran yet")
    nll, m = min(ok, key=lambda x: (x[0], -x[1]["version"]))
    n = scores[m["step"]][1]
    return Champion(m["version"], m["step"], nll, n,
                    f"model {m['version']} (iteration {m['step']}): prospective NLL of {objective} {nll:.3g} over "
                    f"{n} designs it predicted before they ran, the lowest of {len(ok)} models with >= {min_n}")
