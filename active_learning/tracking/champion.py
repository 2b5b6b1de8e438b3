"""Which of a campaign's models is its `champion`: judged by prospective validation, and the newest unless an earlier
model predicted clearly better.

Each iteration's model predicted the designs it picked before they were simulated (the pick-time prediction kept in
the ledger). A model's prospective score is the mean Gaussian negative log-likelihood of the objective (|ln ICR| for
an ICR goal, campaign.targets) over those of its picks that completed with a value, not only a bound
(campaign.targets.only_a_bound), against their predictive mean and std (campaign.targets.predictive: |ln ICR| folded
from the predicted ln ICR) (surrogate.metrics.gaussian_nll, the campaign's `heldout_nll` restricted to that
model's picks), with its standard error over those designs: it rewards accurate means and honest uncertainties,
what acquisition and inverse design rely on. Picks without a predicted objective, or whose stored targets lack it (a
ledger of an earlier version), do not count.

Among the models with at least MIN_PROSPECTIVE such designs, the newest is champion unless an earlier one's score is
lower by more than Z_BETTER standard errors of the difference (each model is the same estimator trained on more
designs than the one before, and each is judged on different, later and often harder, picks: a lower score by noise
is no reason to go back). Once the campaign has finished, its final model (trained on every design, picking
nothing, so never scored) stands in for that newest scored model. While no model has MIN_PROSPECTIVE designs, the
latest model. Reads the ledger only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.targets import only_a_bound, predictives
from porelab.surrogate.metrics import gaussian_nll

MIN_PROSPECTIVE = 8  # designs a model must have predicted before they ran to be compared
Z_BETTER = 2.0  # an earlier model is champion only when its score is lower by more than this many standard errors


@dataclass(frozen=True)
class Champion:
    version: int  # the ledger's model version
    step: int  # the iteration that trained it
    nll: float | None  # prospective mean NLL (None: too few designs, the latest model; the final model: its
    n: int  # designs behind nll                    stand-in's, see the module docstring)
    rule: str  # one line: why this model

    def __str__(self) -> str:
        return self.rule


@dataclass
class Picks:
    """The completed picks with an ok measurement, design id -> (round, stored targets, pick-time prediction), as of
    the ledger's event `event`: kept by a caller that judges again and again (the MLflow view, after each iteration)
    and brought up to date by reading only the trials changed since (Ledger.changed_since)."""

    event: int = 0
    done: dict[str, tuple[int, dict, dict]] = field(default_factory=dict)

    def update(self, ledger: Ledger) -> Picks:
        last = ledger.last_event()  # first: a change committed while reading is read again next time
        for d in ledger.changed_since(self.event) if self.event else ():
            self.done.pop(d, None)
        measured = ledger.ok_targets(self.event)
        self.done.update((did, (rnd, measured[did], prediction or {}))
                         for did, rnd, _, _, prediction in ledger.outcomes(self.event) if did in measured)
        self.event = last
        return self


def prospective_scores(ledger: Ledger, objective: str,
                       picks: Picks | None = None) -> dict[int, tuple[float, int, float]]:
    """{model step: (mean NLL, n, standard error of that mean)} over each model's completed picks measured with a
    value (see the module docstring); picks: the caller's `Picks`, read again only where the ledger changed."""
    done = [p for p in (picks or Picks()).update(ledger).done.values()
            if objective in p[1] and not only_a_bound(p[1], objective)]
    mean, sd, have = predictives([p for *_, p in done], objective)
    by_step: dict[int, list[tuple[float, float, float]]] = {}
    for (rnd, y, _), m, s, h in zip(done, mean, sd, have, strict=True):
        if h:
            by_step.setdefault(rnd, []).append((y[objective], m, s))
    out = {}
    for step, rows in by_step.items():
        y, mu, sd = (np.array(a, float) for a in zip(*rows, strict=True))
        each = gaussian_nll(y, mu, sd)
        se = float(each.std(ddof=1) / math.sqrt(len(each))) if len(each) > 1 else math.inf
        out[step] = (float(each.mean()), len(rows), se)
    return out


def champion(ledger: Ledger, objective: str, min_n: int | None = None, picks: Picks | None = None) -> Champion | None:
    """The campaign's champion model (None before the first model); min_n defaults to MIN_PROSPECTIVE; picks: see
    prospective_scores."""
    min_n = MIN_PROSPECTIVE if min_n is None else min_n
    models = ledger.models()
    if not models:
        return None
    scores = prospective_scores(ledger, objective, picks)
    ok = [m for m in models
          if m["step"] in scores and scores[m["step"]][1] >= min_n and math.isfinite(scores[m["step"]][0])]
    if not ok:
        m = models[-1]
        return Champion(m["version"], m["step"], None, scores.get(m["step"], (None, 0))[1],
                        f"model {m['version']} (iteration {m['step']}), the latest: no model has predicted "
                        f"{min_n} designs before they ran yet")
    newest = max(ok, key=lambda m: m["version"])
    nll0, n0, se0 = scores[newest["step"]]
    better = [m for m in ok if scores[m["step"]][0] < nll0 - Z_BETTER * math.hypot(se0, scores[m["step"]][2])]
    if better:
        m = min(better, key=lambda m: (scores[m["step"]][0], -m["version"]))
        nll, n, _ = scores[m["step"]]
        return Champion(m["version"], m["step"], nll, n,
                        f"model {m['version']} (iteration {m['step']}): prospective NLL of {objective} {nll:.3g} over "
                        f"{n} designs it predicted before they ran, lower than the newest scored model's {nll0:.3g} "
                        f"(model {newest['version']}, {n0} designs) by more than {Z_BETTER:g} standard errors")
    why = (f"prospective NLL of {objective} {nll0:.3g} over {n0} designs it predicted before they ran; no earlier "
           f"model of the {len(ok)} with >= {min_n} scored lower by more than {Z_BETTER:g} standard errors")
    final = next((m for m in models if m["step"] == ledger.get("final_step")), None)
    if final is not None and final["version"] > newest["version"]:
        return Champion(final["version"], final["step"], nll0, n0,
                        f"model {final['version']} (the final one, trained on every design): it stands in for model "
                        f"{newest['version']} (iteration {newest['step']}, the same estimator on fewer designs): {why}")
    return Champion(newest["version"], newest["step"], nll0, n0,
                    f"model {newest['version']} (iteration {newest['step']}), the newest scored: {why}")
