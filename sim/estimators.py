"""Currents and fluxes with their intervals: Poisson intervals for crossing counts (the transport estimate),
correlated-series intervals for the displacement sum (a diagnostic, docs/physics.md §3), and `field_result`,
everything a CrossingCounter measured in its production window at one field.

Units: ns, ions/ns, nA, V/nm, e. Positive flux and current point along +z.

Intervals: counts are Poisson. Each group of counts with the same weight is pooled (a sum of Poisson counts
is Poisson) and given a Garwood exact interval (`garwood`: statsmodels' `confint_poisson`, "exact-c", on scipy);
the groups are combined by MOVER (Zou & Donner 2008), the same construction as statsmodels'
`confint_poisson_2indep(compare="diff", method="mover")`. The displacement sum's error uses the statistical
inefficiency of its series (pymbar, `correlated_mean`); an interval resting on fewer than MIN_N_EFF effectively
independent samples is flagged unreliable. ICR and the other observables are derived from the crossing currents in
`sim.observables`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, SpeciesResult
from porelab.sim.pymbar_quiet import quiet_pymbar
from porelab.sim.transport import PS_PER_NS, CrossingCounter

#: Fewer effectively independent samples (n/g) than this and a displacement interval is flagged unreliable.
MIN_N_EFF = 20.0
#: Longer series are averaged in time blocks down to about this many points before the analysis (cost bound).
MAX_SERIES_POINTS = 4000
#: Candidate start points tried by the transient detection (pymbar's detect_equilibration `nskip`).
TRANSIENT_CANDIDATES = 100


def garwood(n: np.ndarray, exposure: np.ndarray, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Garwood's exact central 1 - alpha interval of a Poisson rate n / exposure, each (k,); n may be fractional
    (quasi-Poisson counts divided by their dispersion: chi-square with 2n degrees of freedom); lower 0 at n = 0."""
    n, exposure = np.asarray(n, float), np.asarray(exposure, float)
    lo = np.where(n > 0, stats.chi2.ppf(alpha / 2, np.maximum(2 * n, 1e-300)) / 2, 0.0)
    hi = stats.chi2.ppf(1 - alpha / 2, 2 * n + 2) / 2
    return lo / exposure, hi / exposure


def poisson_linear_ci(counts: Sequence[int], weights: Sequence[float], exposure: float,
                      alpha: float = 0.05, dispersion: float = 1.0) -> tuple[float, float]:
    """Interval for sum_j w_j * lambda_j from independent Poisson counts n_j seen over `exposure`.

    counts: (k,) non-negative integers; weights: (k,); exposure: time, e.g. ns -> rates per ns.
    Counts sharing a weight are pooled; each pool gets a Garwood exact interval; pools are combined by MOVER.
    dispersion: variance / mean of the counts (>= 1; `dispersion`): counts and exposure are divided by it
    (quasi-Poisson), which widens the interval and keeps the rates.
    Returns (low, high) in units of weight / exposure.
    """
    counts = np.asarray(counts, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if counts.shape != weights.shape or np.any(counts < 0) or np.any(counts != np.round(counts)):
        raise ValueError("counts must be non-negative integers with one weight each")
    if not exposure > 0:
        raise ValueError(f"exposure={exposure} must be positive")
    if not dispersion >= 1:
        raise ValueError(f"dispersion={dispersion} must be >= 1")
    w = np.unique(weights[weights != 0])
    if w.size == 0:
        return 0.0, 0.0
    n = np.array([counts[weights == wi].sum() for wi in w]) / dispersion
    exposure = exposure / dispersion
    lo, hi = garwood(n, exposure, alpha)
    rate = n / exposure
    a, b = w * np.nan_to_num(lo), w * hi
    est = float(w @ rate)
    low = est - math.sqrt(float(np.sum((w * rate - np.minimum(a, b)) ** 2)))
    high = est + math.sqrt(float(np.sum((np.maximum(a, b) - w * rate) ** 2)))
    return low, high


def flux_per_ns(up: int, down: int, time_ns: float, alpha: float = 0.05,
                dispersion: float = 1.0) -> tuple[float, tuple[float, float]]:
    """Net flux (up - down) / T in ions/ns (positive along +z) and its (1 - alpha) interval."""
    if not time_ns > 0:
        raise ValueError(f"time_ns={time_ns} must be positive")
    return (up - down) / time_ns, poisson_linear_ci([up, down], [1.0, -1.0], time_ns, alpha, dispersion)


def crossing_current_nA(counts: dict[str, tuple[int, int]], charges: dict[str, float], time_ns: float,
                        alpha: float = 0.05, dispersion: float = 1.0) -> tuple[float, tuple[float, float]]:
    """Current from crossings, I = sum_s q_s (up_s - down_s) / T * 0.1602 nA per e/ns, with its interval.

    counts: species -> (up, down) transits; charges: species -> q, e; time_ns: T, ns; dispersion: see
    `poisson_linear_ci`. Returns nA.
    """
    if not time_ns > 0:
        raise ValueError(f"time_ns={time_ns} must be positive")
    n, w = [], []
    for s, (up, down) in counts.items():
        n += [up, down]
        w += [charges[s], -charges[s]]
    current = float(np.dot(n, w)) / time_ns * E_PER_NS_TO_NA if n else 0.0
    lo, hi = poisson_linear_ci(n, w, time_ns, alpha, dispersion) if n else (0.0, 0.0)
    return current, (lo * E_PER_NS_TO_NA, hi * E_PER_NS_TO_NA)


#: Block length (ps) over which transits are counted to measure their dispersion.
DISPERSION_BLOCK_PS = 5.0
#: Fewer blocks than this and the dispersion is not measured (taken as 1, Poisson).
MIN_DISPERSION_BLOCKS = 4


def dispersion(block_counts) -> float:
    """Variance / mean of transit counts per block (n_blocks,), at least 1 (Poisson): transits that come in bursts
    (one ion knocking the next through) make it larger, and every count interval is widened by it (quasi-Poisson).
    1 with fewer than MIN_DISPERSION_BLOCKS blocks or no transit."""
    x = np.asarray(block_counts, dtype=float)
    if x.size < MIN_DISPERSION_BLOCKS or not x.mean() > 0:
        return 1.0
    return max(1.0, float(x.var(ddof=1) / x.mean()))


def block_sums(series, dt_ps, block_ps: float = DISPERSION_BLOCK_PS) -> np.ndarray:
    """Sums of a per-update series (n,) over consecutive whole blocks of block_ps (update lengths dt_ps (n,), ps);
    a last partial block is left out."""
    t = np.cumsum(np.asarray(dt_ps, dtype=float))
    if t.size == 0:
        return np.zeros(0)
    k = np.floor((t - 1e-9) / block_ps).astype(int)
    whole = k < int((t[-1] + 1e-9) // block_ps)
    return np.bincount(k[whole], weights=np.asarray(series, dtype=float)[whole])


@dataclass(frozen=True)
class SeriesMean:
    """Time-weighted mean of a correlated series after its start transient, with a (1 - alpha) interval.

    n_eff: effectively independent samples of the kept part (n_kept / g); `reliable` when n_eff >= MIN_N_EFF.
    dropped: time cut from the start as the transient (units of dt); start: first kept index of the series.
    """

    mean: float
    ci: tuple[float, float]
    n_eff: float
    g: float
    dropped: float
    start: int

    @property
    def reliable(self) -> bool:
        return self.n_eff >= MIN_N_EFF


def _blocks(x: np.ndarray, dt: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Time-weighted block means of x (n,) with weights dt (n,) over consecutive blocks of `size` points."""
    if size == 1:
        return x, dt
    edges = np.arange(0, x.size, size)
    w = np.add.reduceat(dt, edges)
    return np.add.reduceat(x * dt, edges) / w, w


def _statistical_inefficiency(x: np.ndarray) -> float:
    if x.size < 3 or not np.std(x) > 0:
        return 1.0
    with quiet_pymbar():  # pymbar imported in here: it logs a JAX banner and a caveat when imported
        from pymbar.timeseries import statistical_inefficiency
        from pymbar.utils import ParameterError

        try:
            return max(1.0, float(statistical_inefficiency(x, fft=x.size > 1000)))
        except ParameterError:
            return 1.0


def transient_end(x: np.ndarray) -> int:
    """Index where the start transient of series x (n,) ends: the heuristic of pymbar's detect_equilibration (the
    start that maximises the kept samples' n/g), over about TRANSIENT_CANDIDATES evenly spaced starts in the FIRST
    HALF of the series (unrestricted, it can keep only a short tail whose g happens to come out small)."""
    x = np.asarray(x, dtype=float)
    if x.size < 8 or not np.std(x) > 0:
        return 0
    with quiet_pymbar():  # pymbar imported in here: it logs a JAX banner and a caveat when imported
        from pymbar.timeseries import statistical_inefficiency
        from pymbar.utils import ParameterError

        best, best_n_eff = 0, -1.0
        for t in range(0, x.size // 2 + 1, max(1, x.size // (2 * TRANSIENT_CANDIDATES))):
            try:
                g = max(1.0, float(statistical_inefficiency(x[t:], fast=True)))
            except ParameterError:  # a constant tail
                continue
            if (x.size - t) / g > best_n_eff:
                best, best_n_eff = t, (x.size - t) / g
    return best


def correlated_mean(series, dt=None, alpha: float = 0.05, drop_transient: bool = True) -> SeriesMean:
    """Mean of a correlated series (n,) weighted by dt (n,) (default: equal), with its (1 - alpha) interval.

    drop_transient: detect (`transient_end`) and drop a start transient. (The MD protocol settles instead and
    passes False: on MD current series this detection does not see the membrane's charging, docs/physics.md §3;
    benchmarks/md_null.py applies it to show what the earlier protocol reported.) The half-width is
    t_{n_eff-1} * sd * sqrt(g / n_kept) with g the statistical inefficiency of the WHOLE series: choosing the cut
    by maximising n/g and then estimating g on the kept part alone understates g (95 % intervals then covered
    76 % of AR(1) means at n/g = 20-50); a transient can only inflate the whole-series g, so it errs wide.
    Series longer than MAX_SERIES_POINTS are first averaged in time blocks.
    """
    x = np.asarray(series, dtype=float)
    w = np.ones_like(x) if dt is None else np.asarray(dt, dtype=float)
    if x.ndim != 1 or x.size < 2 or w.shape != x.shape:
        raise ValueError(f"need a 1-D series of at least 2 values (and dt of the same shape), got {x.shape}")
    if not np.all(w > 0) or not np.all(np.isfinite(x)):
        raise ValueError("the series holds a non-finite value or a non-positive time step")
    size = math.ceil(x.size / MAX_SERIES_POINTS)
    xb, wb = _blocks(x, w, size)
    k0 = min(transient_end(xb), xb.size - 2) if drop_transient else 0
    kept, wk = xb[k0:], wb[k0:]
    g = _statistical_inefficiency(xb)
    mean = float(kept @ wk / wk.sum())
    n_eff = kept.size / g
    sd = float(kept.std(ddof=1))
    half = stats.t.isf(alpha / 2, max(n_eff - 1.0, 1.0)) * sd * math.sqrt(g / kept.size)
    return SeriesMean(mean=mean, ci=(mean - half, mean + half), n_eff=n_eff, g=g, dropped=float(wb[:k0].sum()),
                      start=k0 * size)


def field_result(counter: CrossingCounter, field_V_per_nm: float, alpha: float = 0.05,
                 settled: bool | None = None) -> FieldResult:
    """Everything the counter measured in its production window at one signed field (V/nm), as a FieldResult
    (nA, ions/ns, ns, e).

    The current and fluxes are the crossing counts with their exact Poisson intervals, widened by the transits'
    measured dispersion (`dispersion`, over DISPERSION_BLOCK_PS blocks). The displacement sum over
    the same window is a diagnostic beside them, with the change of polarisation it contains (docs/physics.md §3);
    nothing ranks or learns from it. settled: whether the field-on settle met its rule (None: no settle rule ran).
    """
    t = counter.time_ns
    if not t > 0:
        raise ValueError("the counter has seen no production time (no updates after mark_start)")
    counts = counter.species_counts()
    transits, dt = counter.window(counter.transit_series), counter.window(counter.dt_series)
    # (a counter saved before the transit series existed has none: Poisson)
    disp_factor = dispersion(block_sums(transits, dt)) if len(transits) == len(dt) else 1.0
    current, current_ci = crossing_current_nA(counts, counter.species_charge, t, alpha, disp_factor)
    disp = {}
    series = counter.window(counter.current_series)
    if len(series) >= 2:
        r = correlated_mean(series, dt, alpha, drop_transient=False)
        disp = {"current_displacement_nA": r.mean * E_PER_NS_TO_NA,
                "current_displacement_ci_nA": (r.ci[0] * E_PER_NS_TO_NA, r.ci[1] * E_PER_NS_TO_NA),
                "current_displacement_n_eff": r.n_eff, "current_displacement_reliable": r.reliable}
    species = {}
    for s, (up, down) in counts.items():
        flux, flux_ci = flux_per_ns(up, down, t, alpha, disp_factor)
        species[s] = SpeciesResult(crossings_up=up, crossings_down=down, crossings=float(up - down),
                                   flux_per_ns=flux, flux_ci_per_ns=flux_ci)
    return FieldResult(field_V_per_nm=float(field_V_per_nm), time_ns=t, current_nA=current,
                       current_ci_nA=current_ci, crossing_dispersion=disp_factor,
                       charge_crossings_e=counter.net_charge_crossings(),
                       polarisation_change_e=counter.polarisation_change_e(), settle_ns=counter.start_ps / PS_PER_NS,
                       settled=settled, species=species, **disp)
