"""The numbers a campaign learns and optimises, taken from a Measurement, each with its 95 % interval, and the one
place where ln ICR becomes the objective of an ICR goal, measured (`fold_interval`) or predicted (`fold_normal`).

All are natural logs, so that ICR 2 and 1/2 are symmetric. Each field's current and fluxes are those
porelab.surrogate.labels reads (the crossing counts for MD, the oracle's own numbers for the continuum or a user's
oracle): the numbers the surrogate's labels are made of, so the measured ICR a campaign ranks by is the one it
learns. Values are in the trial's orientation as drawn (its stored design; campaign.measured shows each design in
the orientation that rectifies).
  log_icr          ln ICR at the goal's |E| (default the largest |E| measured), signed, as the measurement's ICR
                   row gives it (sim.observables.icr_results): the point estimate, or the bound when only a bound is
                   known: `icr_censored` = 1 when only a lower bound is ("> x", the -E current's interval contains
                   zero), `icr_upper_censored` = 1 when only an upper bound is ("< x", the +E current's does;
                   also an unflagged row of an older measurement whose interval starts at 0, `_icr_interval`).
  abs_log_icr      the objective of an ICR goal: |ln ICR| = ln max(ICR, 1/ICR), the rectification of the better
                   orientation (a membrane turned upside down at the opposite field is the same simulation, and a
                   campaign keeps the pair as one trial in whichever orientation its pool drew). Its interval is
                   that of |x| for x in the ln ICR interval (`fold_interval`): a censored ICR whose bound lies on
                   the rectifying side ("> x" with x > 1, or "< x" with x < 1) gives a lower bound |ln x| only
                   ("> 1/x" for "< x": the mirror image's ICR); where the ln ICR interval holds 0, the lower end 0.
  log_on_current   ln of the ON current, nA: max(|I(+E)|, |I(-E)|) at that |E| with that side's interval; with no
                   net current at either sign (both point currents 0), its upper bound, the larger of the two
                   intervals' (`on_current_upper_censored` = 1, "< x")
  log_selectivity  ln S, S = sum_a |J_a|/c_a / sum_b |J_b|/c_b over the goal's species, in the ON direction
                   (when the denominator's flux interval contains zero: the lower bound of S)
Beside each: `<name>_lo` and `<name>_hi`, the 95 % interval on the same ln scale (None where unknown: `_hi` of a
value known only from below, `_lo` of one known only from above or bounded by zero), and `estimator`, that of the
fields at that |E| (crossings or oracle; "A|B" when +E used A and -E used B). All are computed by
porelab.sim.observables (docs/physics.md §3).

An unresolved ICR: both currents' intervals contain zero (a short MD run with no crossing at either sign), so the
ICR row knows neither bound. log_icr is then 0 (ICR 1) with neither end, abs_log_icr 0 censored at 0 ("> 1": nothing
known), and the trial is completed, not abandoned: it keeps its measurement, and the surrogate learns its per-field
fluxes as the censored labels they are (each interval contains zero), which is what such a run tells. It ranks
after every design whose rectification is resolved, and a longer run (acquisition.extend_max_ps) may resolve it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from porelab.base.errors import PorelabError
from porelab.sim.measurement import ICRResult, Measurement
from porelab.sim.observables import Interval, abs_interval, on_current, selectivity
from porelab.surrogate.labels import labelled

if TYPE_CHECKING:  # annotations only: study validates acquisitions, which read the objective names here
    from porelab.active_learning.campaign.study import Goal

BASE_TARGETS = ("log_icr", "log_on_current")  # what the surrogate predicts for every goal (surrogate.derived)
ICR_OBJECTIVE = "abs_log_icr"  # |ln ICR|: derived from log_icr, measured or predicted, never learned itself


class InvalidMeasurement(PorelabError, ValueError):
    """The oracle returned numbers that cannot be learned from (NaN, infinite, non-positive ICR)."""


def target_names(goal: Goal) -> tuple[str, ...]:
    """The targets a campaign model predicts for `goal`: BASE_TARGETS and the goal's objective."""
    return BASE_TARGETS + (("log_selectivity",) if goal.objective == "selectivity" else (ICR_OBJECTIVE,))


def objective_name(goal: Goal) -> str:
    return "log_selectivity" if goal.objective == "selectivity" else ICR_OBJECTIVE


def objective_label(goal: Goal) -> str:
    """The objective's name on its ln scale, for axes and tables."""
    return "ln S" if goal.objective == "selectivity" else "|ln ICR|"


# --- ln ICR -> |ln ICR| --------------------------------------------------------------------------------------
def fold_interval(value: float, lo: float | None, hi: float | None) -> tuple[float, float, float | None]:
    """(|x|, low, high) of a measured ln value x with its interval (lo, hi), None an unknown end (-inf, +inf): the
    interval of |x| over that of x; high None when unbounded, the value then the lower end (only "at least" is
    known, the convention of every censored value here)."""
    a, b = -math.inf if lo is None else lo, math.inf if hi is None else hi
    low, high = (a, b) if a >= 0 else (-b, -a) if b <= 0 else (0.0, max(-a, b))
    if math.isinf(high):
        return low, low, None
    return abs(value), low, high


def fold_normal(mean: np.ndarray, sd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std of |X| for X ~ N(mean, sd^2), elementwise (the folded normal distribution):

        E|X| = sd sqrt(2/pi) exp(-mean^2 / 2 sd^2) + mean (1 - 2 Phi(-mean / sd)),   Var|X| = mean^2 + sd^2 - E|X|^2.

    Even in mean: a design and its mirror image (ln ICR -> -ln ICR) score alike; with mean 0 and sd s, E|X| =
    s sqrt(2/pi) > 0. sd 0 gives |mean| and 0."""
    m, s = np.asarray(mean, float), np.asarray(sd, float)
    safe = np.where(s > 0, s, 1.0)
    e = np.where(s > 0, safe * np.sqrt(2 / np.pi) * np.exp(-0.5 * (m / safe) ** 2) + m * (1 - 2 * ndtr(-m / safe)),
                 np.abs(m))
    return e, np.sqrt(np.maximum(m**2 + s**2 - e**2, 0.0))


def predictive(p: dict, objective: str) -> tuple[float, float] | None:
    """The predictive mean and total std of `objective` in a pick-time prediction row ({<target>_mean,
    <target>_std}), what a measurement of it is compared with (prospective metrics, the champion, parity and
    calibration plots); None when the row lacks it.

    |ln ICR| is folded from ln ICR's total predictive, fold_normal(log_icr_mean, log_icr_std), as a measurement
    folds a noisy ln ICR, so a row written before the objective was predicted counts too. (Acquisition folds with
    the epistemic std instead, campaign.model: the noise-free rectification, which lies below what noisy
    measurements average: at ln ICR 0 with epistemic std 0.2 and total 0.6, 0.16 against 0.48.)"""
    mean, sd, have = predictives([p], objective)
    return (float(mean[0]), float(sd[0])) if have[0] else None


def predictives(rows: list[dict], objective: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`predictive` of many prediction rows at once (one fold for all: a campaign reads 10^4 per iteration):
    means (n,), stds (n,) and whether each row has the objective (n,) bool (mean and std NaN where not)."""
    name = "log_icr" if objective == ICR_OBJECTIVE else objective
    have = np.array([f"{name}_mean" in p for p in rows], bool)
    mean = np.array([p.get(f"{name}_mean", np.nan) for p in rows], float)
    sd = np.array([p.get(f"{name}_std", np.nan) for p in rows], float)
    if objective == ICR_OBJECTIVE:
        mean, sd = fold_normal(mean, sd)
    return mean, sd, have


def bounds(t: dict, name: str) -> tuple[float | None, float | None]:
    """(ln low, ln high) of target `name` in a targets dict, None where unknown; KeyError when it has no interval.
    With `has_bounds` and `_with_interval`, the one place that knows how a stored interval is spelt."""
    return t[f"{name}_lo"], t[f"{name}_hi"]


def has_bounds(t: dict, name: str) -> bool:
    """Whether a targets dict holds target `name` with its interval (a ledger of an early version may not)."""
    return name in t and f"{name}_lo" in t and f"{name}_hi" in t


def upper_censored(t: dict, name: str) -> bool:
    """Whether a targets dict knows the target `name` = log_<x> only from above ("< x": it flags
    `<x>_upper_censored`, as ln ICR and ln ON current do); its value is then that bound."""
    return bool(t.get(f"{name.removeprefix('log_')}_upper_censored"))


def only_a_bound(t: dict, name: str) -> bool:
    """Only a bound of the measured target `name` = log_<x> is known, not a value to score a prediction against:
    `_hi` None or flagged `<x>_censored` ("> x", or nothing known), or `upper_censored` ("< x")."""
    lower = (has_bounds(t, name) and bounds(t, name)[1] is None) or t.get(f"{name.removeprefix('log_')}_censored")
    return bool(lower) or upper_censored(t, name)


# --- measured targets ----------------------------------------------------------------------------------------
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


def _icr_interval(r: ICRResult) -> Interval:
    """The ICR row as an Interval: unresolved (neither bound known) as ICR 1 censored at 0; a row of a measurement
    made before ICRs were censored from above, unflagged with its lower end 0 and a finite upper end (no net
    crossing at +E), as what it is: "< high" (value = the bound)."""
    lo, hi = r.icr_ci
    if r.icr_censored:
        return Interval(r.icr if lo > 0 else 1.0, lo, None, True)
    if r.icr_upper_censored or (lo <= 0 and hi is not None and math.isfinite(hi)):
        return Interval(hi, 0.0, hi, upper_censored=True)
    return Interval(r.icr, lo, hi)


def targets(m: Measurement, goal: Goal) -> dict[str, float | str | None]:
    """Targets of an ok measurement with their intervals (natural logs; `icr_censored`, `icr_upper_censored` and
    `on_current_upper_censored` 0/1; `estimator`); raises InvalidMeasurement."""
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
    icr = _icr_interval(r)
    on = on_current(plus, minus)
    if on.value == 0:  # no net current at either sign: only an upper bound
        high = max(abs_interval(f.current_nA, f.current_ci_nA)[2] for f in (plus, minus))
        on = Interval(high, 0.0, high, upper_censored=True)
    where = f"ICR at {e:g} V/nm (currents {plus.current_nA:+.3g} and {minus.current_nA:+.3g} nA)"
    out = _with_interval("log_icr", icr.value, where, icr)
    value, low, high = fold_interval(out["log_icr"], *bounds(out, "log_icr"))
    out |= {ICR_OBJECTIVE: value, f"{ICR_OBJECTIVE}_lo": low, f"{ICR_OBJECTIVE}_hi": high,
            **_with_interval("log_on_current", on.value, "ON current (nA)", on),
            "icr_censored": float(icr.censored), "icr_upper_censored": float(icr.upper_censored),
            "on_current_upper_censored": float(on.upper_censored),
            "estimator": est_p if est_p == est_m else f"{est_p}|{est_m}"}
    if goal.objective == "selectivity":
        sel = goal.selectivity
        side = max((plus, minus), key=lambda f: abs(f.current_nA))  # the ON field (sim.observables.on_current's)
        try:
            s = selectivity(side, m.conditions.electrolyte, sel.numerator, sel.denominator)
        except ValueError as err:
            raise InvalidMeasurement(str(err)) from None
        out |= _with_interval("log_selectivity", s.value, "selectivity", s)
    return out

