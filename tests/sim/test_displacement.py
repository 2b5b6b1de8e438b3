"""The displacement-sum estimator on synthetic series with known means: interval coverage on correlated series,
the reliability flag, the start transient, per-species fluxes, time weights; and pymbar kept quiet."""

import logging
import math

import numpy as np
import pytest

from porelab.sim.estimators import MAX_SERIES_POINTS, MIN_N_EFF, correlated_mean, field_result
from porelab.sim.measurement import E_PER_NS_TO_NA
from porelab.sim.transport import CrossingCounter


def ar1(n: int, phi: float, rng) -> np.ndarray:
    """Stationary AR(1) series (n,) with unit innovations: mean 0, g = (1 + phi) / (1 - phi)."""
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0] / math.sqrt(1 - phi ** 2)
    for k in range(1, n):
        x[k] = phi * x[k - 1] + e[k]
    return x


@pytest.mark.parametrize("phi, reps", [(0.5, 120), (0.9, 120)])
def test_interval_covers_the_mean_of_correlated_series(phi, reps):
    """g = 3 and 19 (n/g = 270 and 42): 95 % intervals cover about 95 %; ignoring g would cover far less."""
    rng = np.random.default_rng(int(100 * phi))
    hits, naive, reliable = [], [], []
    for _ in range(reps):
        x = 3.0 + ar1(800, phi, rng)
        r = correlated_mean(x)
        hits.append(r.ci[0] <= 3.0 <= r.ci[1])
        reliable.append(r.reliable)
        half = 1.96 * x.std(ddof=1) / math.sqrt(x.size)
        naive.append(abs(x.mean() - 3.0) <= half)
    assert np.mean(hits) >= 0.88, np.mean(hits)
    assert np.mean(reliable) >= 0.9
    if phi == 0.9:
        assert np.mean(naive) < 0.6


def test_too_few_independent_samples_are_flagged_unreliable():
    """phi = 0.99 over 800 points: n/g = 4, far below MIN_N_EFF: the interval is flagged, not trusted."""
    rng = np.random.default_rng(99)
    flags = [correlated_mean(3.0 + ar1(800, 0.99, rng)).reliable for _ in range(40)]
    assert np.mean(flags) <= 0.1
    # and the flagged-reliable intervals of a mixture of correlation times still cover
    hits = []
    for phi in (0.5, 0.9, 0.97):
        for _ in range(40):
            r = correlated_mean(3.0 + ar1(800, phi, rng))
            if r.reliable:
                hits.append(r.ci[0] <= 3.0 <= r.ci[1])
    assert len(hits) >= 80 and np.mean(hits) >= 0.88


def test_the_start_transient_is_detected_dropped_and_timed():
    """A decaying offset 6 exp(-k/60) on top of AR(1) noise around 2: the estimate drops about the transient,
    records its length in time units, and is unbiased where keeping it is not."""
    rng = np.random.default_rng(5)
    n, tau, dt = 2000, 60, 0.05
    kept, full, drops, hits = [], [], [], []
    for _ in range(20):
        x = 2.0 + ar1(n, 0.5, rng) + 6.0 * np.exp(-np.arange(n) / tau)
        r = correlated_mean(x, np.full(n, dt))
        kept.append(r.mean)
        full.append(correlated_mean(x, drop_transient=False).mean)
        drops.append(r.dropped)
        hits.append(r.ci[0] <= 2.0 <= r.ci[1])
        assert r.start == round(r.dropped / dt)
    assert abs(np.mean(kept) - 2.0) < 0.04  # the transient's bias is 6 * 60 / 2000 = 0.18
    assert np.mean(full) - 2.0 > 0.15
    assert tau * dt <= np.median(drops) <= 6 * tau * dt
    assert np.mean(hits) >= 0.9
    # a stationary series loses little
    r = correlated_mean(2.0 + ar1(n, 0.5, rng))
    assert r.dropped < 0.2 * n


def test_time_weights_and_blocking_keep_the_exact_mean():
    rng = np.random.default_rng(3)
    n = 3 * MAX_SERIES_POINTS + 17  # blocked before the analysis
    x = rng.normal(1.0, 2.0, n)
    dt = rng.uniform(0.5, 1.5, n)
    r = correlated_mean(x, dt, drop_transient=False)
    assert r.mean == pytest.approx(float(x @ dt / dt.sum()), rel=1e-12)
    assert r.ci[0] < 1.0 < r.ci[1] and r.ci[1] - r.ci[0] < 0.1
    with pytest.raises(ValueError, match="1-D series"):
        correlated_mean([1.0])
    with pytest.raises(ValueError, match="non-finite"):
        correlated_mean([1.0, np.nan, 2.0])


def test_field_result_keeps_the_displacement_sum_as_a_diagnostic_of_the_production_window():
    """Ions random-walking with known drifts: the displacement current of the production window (after mark_start)
    covers the known current; per-species fluxes are the crossing counts only."""
    rng = np.random.default_rng(8)
    lz, n_each, steps, dt = 6.0, 10, 3000, 0.05  # nm, ions, updates, ps
    q = np.array([1.0] * n_each + [-1.0] * n_each)
    species = ["K+"] * n_each + ["Cl-"] * n_each
    drift = np.where(q > 0, 0.002, -0.001)  # nm per update
    z = rng.uniform(0, lz, 2 * n_each)
    c = CrossingCounter(q, species, z, lz, 3.0, 0.5)
    for k in range(steps):
        if k == 500:
            c.mark_start()
        z = z + drift + rng.normal(0, 0.03, z.size)
        c.update(np.mod(z, lz), dt)
    res = field_result(c, 1.0, settled=True)
    truth = n_each * (0.002 + 0.001) / (lz * dt) * 1000 * E_PER_NS_TO_NA  # nA
    lo, hi = res.current_displacement_ci_nA
    assert lo <= truth <= hi
    assert res.current_displacement_reliable and res.current_displacement_n_eff > MIN_N_EFF
    assert res.time_ns == pytest.approx((steps - 500) * dt / 1000) and res.settle_ns == pytest.approx(500 * dt / 1000)
    assert res.settled is True and res.transient_dropped_ns is None
    assert all(sp.flux_displacement_per_ns is None for sp in res.species.values())


def test_pymbar_is_silent_and_its_loggers_are_left_as_they_were(caplog):
    rng = np.random.default_rng(0)
    before = {name: (lg.level, list(lg.filters), lg.disabled) for name, lg in logging.root.manager.loggerDict.items()
              if name.startswith("pymbar") and isinstance(lg, logging.Logger)}
    with caplog.at_level(logging.DEBUG):
        correlated_mean(ar1(500, 0.5, rng))
    assert not [r for r in caplog.records if r.name.startswith("pymbar")]
    after = {name: (lg.level, list(lg.filters), lg.disabled) for name, lg in logging.root.manager.loggerDict.items()
             if name.startswith("pymbar") and isinstance(lg, logging.Logger)}
    assert all(after[k] == v for k, v in before.items())
    assert all(not filters for _, filters, _ in after.values())
