"""The continuum twin calibrated on measured MD: two knobs of sim.continuum fitted to MD labels, so that the cheap
twin can stand in for MD where no MD was run (benchmarks/surrogate_md.py scores it; benchmarks/al_replay.py lets a
campaign's surrogate learn it beside MD).

The default twin's ON currents are 3.6-16x MD's (docs/benchmarks.md, surrogate skill on real MD). Two knobs move it:
  eps_r    the solvent's relative permittivity (sim.continuum.PNPSolver): the one knob that changes the twin's ICR
           at +-2 V/nm; chosen on `EPS_GRID` (None: water's, 77.6 at 300 K);
  s        one diffusion scale, every D times s: steady PNP fluxes and currents scale exactly with it and the ICR not
           (`scaled`), so ln s is fitted in closed form: the mean of (MD - twin) over the exact ln ON labels.
Loss per eps_r: the squared error of the exact ln ON (after s) and ln ICR labels, plus the squared violation of each
censored bound ("> x", "< x"); an unresolved ICR adds nothing. Every number is the campaign's own target
(campaign.targets at the goal's |E|), so the twin is calibrated on what a campaign ranks by.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import targets
from porelab.sim.continuum import run_continuum
from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.measurement import Measurement
from porelab.sim.observables import icr_results

EPS_GRID = (None, 40.0, 20.0, 10.0, 7.0, 5.0, 4.0, 3.0, 2.0)  # eps_r of the twin; None: water's


@dataclass(frozen=True)
class Calibration:
    """The fitted knobs: eps_r (None: water's), ln of the diffusion scale s, the loss at the optimum and the number
    of MD designs it was fitted on (0: nothing to fit, the default twin)."""

    eps_r: float | None
    log_s: float
    loss: float
    n: int

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = Calibration(None, 0.0, math.nan, 0)


def scaled(m: Measurement, s: float) -> Measurement:
    """A continuum answer with every D times s: every flux and current (and interval) times s, the ICR unchanged."""
    fields = []
    for f in m.fields:
        sp = {k: r.model_copy(update={"flux_per_ns": r.flux_per_ns * s,
                                      "flux_ci_per_ns": (r.flux_ci_per_ns[0] * s, r.flux_ci_per_ns[1] * s)})
              for k, r in f.species.items()}
        fields.append(f.model_copy(update={"current_nA": f.current_nA * s,
                                           "current_ci_nA": (f.current_ci_nA[0] * s, f.current_ci_nA[1] * s),
                                           "species": sp}))
    return m.model_copy(update={"fields": fields, "icr": icr_results(fields, bound=True),
                                "provenance": {**m.provenance, "d_scale": s}})


def _labels(t: dict) -> tuple[tuple[str, float], tuple[str, float]]:
    """(kind, value) of ln ON current and ln ICR in a targets dict; kind exact, lower ("> value"), upper
    ("< value") or unknown."""
    on = ("upper" if t["on_current_upper_censored"] else "exact", t["log_on_current"])
    if t["icr_censored"]:
        icr = ("unknown" if t["log_icr_lo"] is None else "lower", t["log_icr"])
    else:
        icr = ("upper" if t["icr_upper_censored"] else "exact", t["log_icr"])
    return on, icr


def _violation(pred: float, kind: str, bound: float) -> float:
    return max(0.0, bound - pred) if kind == "lower" else max(0.0, pred - bound) if kind == "upper" else 0.0


class Twin:
    """Continuum answers (default settings but eps_r) per design, cached: one solve per (design, eps_r)."""

    def __init__(self, goal: Goal | None = None):
        self.goal = goal or Goal()
        self.cache: dict[tuple[str, float | None], Measurement] = {}

    def get(self, question: Measurement | tuple[Design, Conditions], eps: float | None) -> Measurement:
        """The twin's Measurement of a question (a Measurement's, or (design, conditions)) at eps_r `eps`."""
        design, cond = (question.design, question.conditions) if isinstance(question, Measurement) else question
        key = (design_id(design, cond), eps)
        if key not in self.cache:
            self.cache[key] = run_continuum(design, cond, **({"eps_r": eps} if eps is not None else {}))
        return self.cache[key]

    def targets(self, question, eps: float | None) -> dict | None:
        """The twin's campaign targets of a question at eps_r `eps`; None where its solver failed."""
        c = self.get(question, eps)
        return targets(c, self.goal) if c.status == "ok" else None

    def answer(self, question, cal: Calibration) -> Measurement:
        """The calibrated twin's Measurement of a question (a failed one where the solver failed)."""
        c = self.get(question, cal.eps_r)
        return scaled(c, math.exp(cal.log_s)) if c.status == "ok" and cal.log_s != 0.0 else c

    def calibrate(self, md: list[Measurement]) -> Calibration:
        """eps_r (grid) and ln s (closed form) minimising the module docstring's loss on MD measurements `md`;
        `DEFAULT` when none is given or the solver fails on one of them at every eps_r."""
        labels = [_labels(targets(m, self.goal)) for m in md]
        best = DEFAULT
        for eps in EPS_GRID if md else ():
            tw = [self.targets(m, eps) for m in md]
            if any(t is None for t in tw):  # the solver failed on a design: not a candidate
                continue
            on = [(kind, v, t["log_on_current"]) for ((kind, v), _), t in zip(labels, tw, strict=True)]
            exact = [v - p for kind, v, p in on if kind == "exact"]
            log_s = sum(exact) / len(exact) if exact else 0.0
            loss = sum((e - log_s) ** 2 for e in exact)
            loss += sum(_violation(p + log_s, kind, v) ** 2 for kind, v, p in on)
            for (_, (kind, v)), t in zip(labels, tw, strict=True):
                p = t["log_icr"]
                loss += (v - p) ** 2 if kind == "exact" else _violation(p, kind, v) ** 2
            if best.n == 0 or loss < best.loss:
                best = Calibration(eps, float(log_s), float(loss), len(md))
        return best
