"""Observables derived from currents and fluxes, measured or predicted: the one place that computes ICR, the ON
current and selectivity, with their intervals (docs/physics.md §3).

Measured values (MD, the continuum twin, a user's oracle) come in as FieldResults; predicted ones as arrays of
currents or fluxes (any leading shape, e.g. (draws, n)) from the surrogate. Units: nA, ions/ns, V/nm, mol/L.

Intervals of a ratio r = a / b from the intervals of a and b:
  - statistical (95 % intervals of independent estimates): MOVER on the log scale (Zou & Donner 2008);
  - `bound=True` (deterministic error bounds, e.g. the continuum's grid error): interval arithmetic.
A ratio whose denominator interval contains zero is censored: its value is the lower bound low(a) / high(b) and
the upper end is None (never infinity).

ICR from MD crossing counts (`count_icr`): when every transit at each sign carries one charge the same way (the
usual case: monovalent ions, no transit against the current), the counts n+ and n- are Poisson and, given
n = n+ + n-, n+ is binomial with p = rho T+ / (rho T+ + T-), rho the ICR: the Clopper-Pearson interval of p gives an
exact interval of rho (the conditional test of two Poisson rates, Przyborowski & Wilenski 1940). Otherwise (reverse
transits, divalent ions) MOVER combines the two currents' intervals. Bursty transits (`crossing_dispersion` > 1)
divide both signs' counts by the larger dispersion (quasi-Poisson). An ICR is censored both ways: "> x" when the
-E current's interval contains zero, "< x" (`icr_upper_censored`) when the +E current's does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from porelab.sim.design import SPECIES, Conditions, Design, mirror_question, physical_state
from porelab.sim.estimators import crossing_current_nA
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, ICRResult, Measurement, SpeciesResult

TOL_V_PER_NM = 1e-9


# --- ratios with intervals ----------------------------------------------------------------------------------
def abs_interval(value: float, ci: tuple[float, float]) -> tuple[float, float, float]:
    """|value| and the interval (low, high) of |value| implied by a signed interval."""
    lo, hi = min(ci), max(ci)
    if lo >= 0:
        return abs(value), lo, hi
    if hi <= 0:
        return abs(value), -hi, -lo
    return abs(value), 0.0, max(-lo, hi)


def ratio_interval(a: float, ci_a: tuple[float, float], b: float, ci_b: tuple[float, float],
                   bound: bool = False) -> tuple[float, tuple[float, float | None], bool]:
    """|a| / |b| with its interval from the signed values a, b and their intervals (any one unit).

    Returns (ratio, (low, high), censored). Censored (b's interval contains zero): ratio is the lower bound
    low|a| / high|b| and high is None; 0.0 when |b| is known to be exactly 0.
    """
    t1, l1, u1 = abs_interval(a, ci_a)
    t2, l2, u2 = abs_interval(b, ci_b)
    if l2 <= 0:
        low = l1 / u2 if u2 > 0 else 0.0
        return low, (low, None), True
    if t2 <= 0:
        return 0.0, (0.0, None), True
    if bound or l1 <= 0 or t1 <= 0:
        return t1 / t2, (l1 / u2, u1 / l2), False
    d = math.log(t1) - math.log(t2)
    low = d - math.hypot(math.log(t1) - math.log(l1), math.log(u2) - math.log(t2))
    high = d + math.hypot(math.log(u1) - math.log(t1), math.log(t2) - math.log(l2))
    return t1 / t2, (math.exp(low), math.exp(high)), False


def icr_interval(i_pos: float, ci_pos: tuple[float, float], i_neg: float, ci_neg: tuple[float, float],
                 bound: bool = False) -> tuple[float, tuple[float, float | None], bool]:
    """ICR = |I(+E)| / |I(-E)| and its interval (see `ratio_interval`)."""
    return ratio_interval(i_pos, ci_pos, i_neg, ci_neg, bound)


# --- measured ----------------------------------------------------------------------------------------------
def _pairs(fields: Sequence[FieldResult]) -> list[tuple[FieldResult, FieldResult]]:
    """(+E, -E) result pairs for every |E| > 0 measured at both signs, by increasing |E|."""
    out = []
    for f in sorted((f for f in fields if f.field_V_per_nm > TOL_V_PER_NM), key=lambda f: f.field_V_per_nm):
        neg = [g for g in fields if math.isclose(g.field_V_per_nm, -f.field_V_per_nm, rel_tol=0,
                                                  abs_tol=TOL_V_PER_NM)]
        if neg and not any(math.isclose(p.field_V_per_nm, f.field_V_per_nm, rel_tol=0, abs_tol=TOL_V_PER_NM)
                           for p, _ in out):
            out.append((f, neg[0]))
    return out


def _counted(f: FieldResult) -> bool:
    return bool(f.species) and all(r.crossings_up is not None for r in f.species.values())


def _one_way_events(f: FieldResult) -> int | None:
    """The number of transits at f when each carries one elementary charge and all carry it the same way, else
    None. A cation up or an anion down carries charge along +z."""
    along = against = 0
    for s, r in f.species.items():
        if r.crossings_up + r.crossings_down == 0:
            continue
        z = SPECIES[s]["valence"]
        if abs(z) != 1:
            return None
        plus, minus = (r.crossings_up, r.crossings_down) if z > 0 else (r.crossings_down, r.crossings_up)
        along, against = along + plus, against + minus
    return None if along and against else along + against


def count_icr(plus: FieldResult, minus: FieldResult, alpha: float = 0.05) -> tuple[float, tuple[float, float | None],
                                                                                   bool, bool]:
    """ICR = |I(+E)| / |I(-E)| from the crossing counts of two MD results, with its (1 - alpha) interval.

    Returns (icr, (low, high), censored, upper_censored): exact conditional (binomial) interval when both signs'
    transits are one-way and of one charge (module docstring), else MOVER on intervals recomputed at alpha.
    Censored: value = low, high None ("> low"); upper_censored: value = high, low 0 ("< high").
    """
    n_p, n_m = _one_way_events(plus), _one_way_events(minus)
    t_p, t_m = plus.time_ns, minus.time_ns
    # over-dispersed (bursty) transits: the counts of both signs divided by the larger dispersion (quasi-Poisson)
    phi = max(plus.crossing_dispersion or 1.0, minus.crossing_dispersion or 1.0)
    if n_p is not None and n_m is not None:
        if n_p + n_m == 0:
            return 0.0, (0.0, None), True, False
        n_p, n_m = n_p / phi, n_m / phi
        scale = t_m / t_p  # rho = p / (1 - p) * T- / T+
        # Clopper-Pearson bounds of p and of 1 - p (Beta(a, b) mirrored is Beta(b, a): no cancellation near 1)
        p_lo = float(stats.beta.ppf(alpha / 2, n_p, n_m + 1)) if n_p > 0 else 0.0
        q_lo = float(stats.beta.ppf(alpha / 2, n_m, n_p + 1)) if n_m > 0 else 0.0
        low = p_lo / (1 - p_lo) * scale
        if q_lo <= 0:
            return low, (low, None), True, False
        high = (1 - q_lo) / q_lo * scale
        if p_lo <= 0:
            return high, (0.0, high), False, True
        return n_p / n_m * scale, (low, high), False, False
    cur = [crossing_current_nA({s: (r.crossings_up, r.crossings_down) for s, r in f.species.items()},
                               {s: SPECIES[s]["valence"] for s in f.species}, f.time_ns, alpha, phi)
           for f in (plus, minus)]
    return _with_upper_censoring(*cur[0], *cur[1])


def _with_upper_censoring(a: float, ci_a: tuple[float, float], b: float, ci_b: tuple[float, float],
                          bound: bool = False) -> tuple[float, tuple[float, float | None], bool, bool]:
    """`icr_interval`, with "< high" when a's interval contains zero and b's does not."""
    icr, ci, censored = icr_interval(a, ci_a, b, ci_b, bound)
    if not censored and min(ci_a) <= 0 <= max(ci_a):
        return ci[1], (0.0, ci[1]), False, True
    return icr, ci, censored, False


def icr_results(fields: Sequence[FieldResult], bound: bool = False, alpha: float = 0.05) -> list[ICRResult]:
    """ICR at every |E| measured at both signs, by increasing |E|, with its (1 - alpha) interval: from the crossing
    counts for MD (`count_icr`), else from the currents' intervals (`bound`: they are deterministic error bounds;
    alpha then applies only to counts)."""
    out = []
    for f, g in _pairs(fields):
        if f.derived_by_symmetry or g.derived_by_symmetry:  # a symmetric design: ICR = 1 exactly (docs/physics.md §3)
            out.append(ICRResult(field_abs_V_per_nm=f.field_V_per_nm, icr=1.0, icr_ci=(1.0, 1.0), icr_censored=False,
                                 by_symmetry=True))
            continue
        if _counted(f) and _counted(g):
            icr, ci, censored, upper = count_icr(f, g, alpha)
        else:
            icr, ci, censored, upper = _with_upper_censoring(f.current_nA, f.current_ci_nA, g.current_nA,
                                                             g.current_ci_nA, bound)
        out.append(ICRResult(field_abs_V_per_nm=f.field_V_per_nm, icr=icr, icr_ci=ci, icr_censored=censored,
                             icr_upper_censored=upper))
    return out


def _flip(ci: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if ci is None else (-ci[1], -ci[0])


def mirrored_field(f: FieldResult) -> FieldResult:
    """The result of the mirror-image membrane at the opposite field: every current and flux reversed."""
    species = {s: SpeciesResult(crossings_up=r.crossings_down, crossings_down=r.crossings_up, crossings=-r.crossings,
                                flux_per_ns=-r.flux_per_ns, flux_ci_per_ns=_flip(r.flux_ci_per_ns),
                                flux_displacement_per_ns=None if r.flux_displacement_per_ns is None
                                else -r.flux_displacement_per_ns,
                                flux_displacement_ci_per_ns=_flip(r.flux_displacement_ci_per_ns))
               for s, r in f.species.items()}
    neg = lambda x: None if x is None else -x  # noqa: E731
    return f.model_copy(update={
        "field_V_per_nm": -f.field_V_per_nm + 0.0, "current_nA": -f.current_nA, "current_ci_nA": _flip(f.current_ci_nA),
        "current_displacement_nA": neg(f.current_displacement_nA),
        "current_displacement_ci_nA": _flip(f.current_displacement_ci_nA),
        "charge_crossings_e": neg(f.charge_crossings_e), "species": species})


def _reciprocal(x: float, ci: tuple[float, float | None], censored: bool, upper: bool):
    """(x, ci, censored, upper_censored) of 1/ICR given ICR's: "> a" becomes "< 1/a", "< b" becomes "> 1/b", an
    unresolved ICR (censored at 0: nothing known) stays unresolved."""
    lo, hi = ci
    if censored:
        return (x, ci, True, False) if lo <= 0 else (1 / lo, (0.0, 1 / lo), False, True)
    if upper:
        return 1 / hi, (1 / hi, None), True, False
    return 1 / x, (1 / hi, 1 / lo), False, False


def mirrored_icr(r: ICRResult) -> ICRResult:
    """The ICR row of the mirror-image membrane at the opposite fields: 1/ICR with the reciprocal interval, the
    censoring swapped. Exact for both estimators (the counts' interval is symmetric in the two signs, the currents'
    MOVER too), so a row is mirrored without the counts it was computed from."""
    if r.by_symmetry:
        return r
    icr, ci, censored, upper = _reciprocal(r.icr, r.icr_ci, r.icr_censored, r.icr_upper_censored)
    update = {"icr": icr, "icr_ci": ci, "icr_censored": censored, "icr_upper_censored": upper}
    if r.icr_displacement is not None and r.icr_displacement_ci is not None:
        d_ci, d_cens = r.icr_displacement_ci, bool(r.icr_displacement_censored)
        d, d_ci, d_cens, _ = _reciprocal(r.icr_displacement, d_ci, d_cens, not d_cens and d_ci[0] <= 0)
        update |= {"icr_displacement": d, "icr_displacement_ci": d_ci, "icr_displacement_censored": d_cens}
    return r.model_copy(update=update)


def oriented(m: Measurement, design: Design, conditions: Conditions) -> Measurement:
    """`m` as the answer to (design, conditions): as it is, or mirrored (z -> -z, fields reversed) when it measured
    the mirror image of that question (the same simulation, docs/physics.md §1). ValueError for another question."""
    asked = physical_state(design, conditions)
    if physical_state(m.design, m.conditions) == asked:
        return m
    if physical_state(*mirror_question(m.design, m.conditions)) != asked:
        raise ValueError(f"measurement {m.design_id} answers another question than the one asked")
    if m.status != "ok":
        return m.model_copy(update={"design": design, "conditions": conditions})
    fields = [mirrored_field(f) for f in m.fields]
    run = None if m.run is None else m.run.model_copy(update={"history": [
        h.model_copy(update={"fields": [mirrored_field(f) for f in h.fields], "icr": [mirrored_icr(r) for r in h.icr]})
        for h in m.run.history]})
    return m.model_copy(update={"design": design, "conditions": conditions, "fields": fields,
                                "icr": icr_results(fields, bound=m.fidelity == "continuum"), "run": run})


@dataclass(frozen=True)
class Interval:
    """A value with its 95 % interval. `censored`: only a lower bound `low` is known (`high` None), "> low";
    `upper_censored`: only an upper bound `high` is known (`low` 0), "< high"."""

    value: float
    low: float
    high: float | None
    censored: bool = False
    upper_censored: bool = False

    def __str__(self) -> str:
        if self.censored:
            return f"> {self.low:.3g}"
        if self.upper_censored:
            return f"< {self.high:.3g}"
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


def on_current(plus: FieldResult, minus: FieldResult) -> Interval:
    """The ON current max(|I(+E)|, |I(-E)|) (nA) with the interval of that side."""
    side = max((plus, minus), key=lambda f: abs(f.current_nA))
    value, lo, hi = abs_interval(side.current_nA, side.current_ci_nA)
    return Interval(value, lo, hi)


def selectivity(on: FieldResult, electrolyte: dict[str, float], numerator: Sequence[str],
                denominator: Sequence[str]) -> Interval:
    """S = sum_a |J_a| / c_a over `numerator` / the same over `denominator`, at the ON field's fluxes, with its
    interval (each sum's interval is the sum of its terms' intervals, combined by `ratio_interval`).
    Species absent from the electrolyte are skipped; ValueError when a side has none."""
    def side(names: Sequence[str]) -> tuple[float, tuple[float, float]]:
        present = [s for s in names if s in electrolyte and s in on.species]
        if not present:
            raise ValueError(f"selectivity: none of {list(names)} is in the electrolyte {sorted(electrolyte)}")
        parts = [abs_interval(on.species[s].flux_per_ns, on.species[s].flux_ci_per_ns) for s in present]
        c = [electrolyte[s] for s in present]
        return (sum(p[0] / ci for p, ci in zip(parts, c, strict=True)),
                (sum(p[1] / ci for p, ci in zip(parts, c, strict=True)),
                 sum(p[2] / ci for p, ci in zip(parts, c, strict=True))))

    a, ca = side(numerator)
    b, cb = side(denominator)
    value, (lo, hi), censored = ratio_interval(a, ca, b, cb)
    return Interval(value, lo, hi, censored)


# --- predicted (arrays) ------------------------------------------------------------------------------------
VALENCE = np.array([SPECIES[s]["valence"] for s in SPECIES], float)  # (S,) e, in sim.design.SPECIES order


def current_from_fluxes_nA(flux_per_ns: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
    """I = e sum_s z_s J_s in nA from fluxes (..., S) ions/ns in SPECIES order; absent species masked out."""
    j = np.asarray(flux_per_ns, float)
    if present is not None:
        j = np.where(present, j, 0.0)
    return (np.nan_to_num(j) * VALENCE).sum(axis=-1) * E_PER_NS_TO_NA


def log_icr(i_pos: np.ndarray, i_neg: np.ndarray, floor_nA: float = 1e-12) -> np.ndarray:
    """ln ICR = ln |I(+E)| - ln |I(-E)|, elementwise."""
    return np.log(np.maximum(np.abs(i_pos), floor_nA)) - np.log(np.maximum(np.abs(i_neg), floor_nA))


def log_on_current(i_pos: np.ndarray, i_neg: np.ndarray, floor_nA: float = 1e-12) -> np.ndarray:
    """ln of the ON current max(|I(+E)|, |I(-E)|), nA, elementwise."""
    return np.log(np.maximum(np.maximum(np.abs(i_pos), np.abs(i_neg)), floor_nA))


def log_selectivity(flux_on: np.ndarray, conc: np.ndarray, numerator: np.ndarray, denominator: np.ndarray,
                    floor: float = 1e-300) -> np.ndarray:
    """ln S from ON-side fluxes (..., S) ions/ns and concentrations (..., S) M (0 = absent); numerator and
    denominator are boolean masks (S,) of the species on each side."""
    rate = np.where(conc > 0, np.abs(flux_on) / np.where(conc > 0, conc, 1.0), 0.0)
    num = (rate * numerator).sum(axis=-1)
    den = (rate * denominator).sum(axis=-1)
    return np.log(np.maximum(num, floor)) - np.log(np.maximum(den, floor))
