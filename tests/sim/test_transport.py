"""Crossing counter, reporter and the Poisson / displacement estimators: synthetic trajectories with known
answers (the displacement estimator's coverage, transient and reliability flag: test_displacement.py)."""

import json
import math

import numpy as np
import openmm
import pytest
from openmm import app, unit
from statsmodels.stats.rates import confint_poisson_2indep

from porelab.sim.estimators import (
    correlated_mean,
    crossing_current_nA,
    field_result,
    flux_per_ns,
    poisson_linear_ci,
)
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, SpeciesResult
from porelab.sim.observables import Interval, icr_results
from porelab.sim.observables import icr_interval as icr_estimate
from porelab.sim.transport import CrossingCounter, TransportReporter

LZ, ZMID, HW = 6.0, 3.0, 0.5  # box, mid-plane and band half-width (nm): band = [2.5, 3.5] + m*6


def path(*waypoints, step=0.05):
    """Unwrapped z (nm) going through the waypoints in steps of at most `step` nm."""
    out = [waypoints[0]]
    for a, b in zip(waypoints, waypoints[1:], strict=False):
        n = max(1, math.ceil(abs(b - a) / step))
        out += list(np.linspace(a, b, n + 1)[1:])
    return np.array(out)


def count(z_path, wrap=True, charge=1.0):
    """(up, down) of one ion fed along z_path (optionally wrapped into [0, LZ))."""
    z = np.mod(z_path, LZ) if wrap else z_path
    c = CrossingCounter([charge], ["K+"], z[:1], LZ, ZMID, HW)
    for zi in z[1:]:
        c.update(zi[None], 0.1)
    return int(c.up[0]), int(c.down[0])


# --- crossing counter ---------------------------------------------------------------------------------
def test_straight_transits_up_and_down():
    assert count(path(1.0, 5.0)) == (1, 0)
    assert count(path(5.0, 1.0)) == (0, 1)
    assert count(path(1.0, 5.0, 1.0, 5.0)) == (2, 1)


def test_transits_across_periodic_boundary_with_wrapped_coordinates():
    # up through the membrane at 3, across the box edge at 6 (wraps to 0), up through its image at 9
    z = path(1.0, 5.5, 10.0)
    assert z.max() > LZ and np.mod(z, LZ).max() < LZ
    assert count(z, wrap=True) == (2, 0)
    assert count(z, wrap=False) == (2, 0)
    # the same way back down, crossing the edge the other way and the image at -3
    assert count(path(10.0, 1.0, -4.0)) == (0, 3)
    # crossing only the box edge (no membrane there) counts nothing
    assert count(path(5.0, 7.0, 5.0, 7.5)) == (0, 0)


def test_rattling_in_the_band_is_not_counted():
    rattle = [2.6, 3.4] * 20
    assert count(path(1.0, *rattle, 1.0)) == (0, 0)
    assert count(path(1.0, *rattle, 4.5)) == (1, 0)
    # rattling around a periodic image of the membrane, fed wrapped (band straddles nothing special)
    assert count(path(7.0, *[x + LZ for x in rattle], 7.0)) == (0, 0)


def test_entering_band_and_returning_is_not_counted():
    assert count(path(1.0, 3.45, 1.0)) == (0, 0)  # past the mid-plane but never out of the band
    assert count(path(5.0, 2.55, 5.0)) == (0, 0)
    assert count(path(1.0, 3.55, 1.0)) == (1, 1)  # left the band on the far side: there and back


def test_initial_side_is_the_side_of_the_nearest_membrane_image():
    assert count(path(3.2, 2.0)) == (0, 1)  # starts in the band just above the plane
    assert count(path(2.8, 4.0)) == (1, 0)  # starts in the band just below
    assert count(path(0.2, 4.0)) == (1, 0)  # 0.2 is below the membrane at 3 (nearest image)
    assert count(path(5.9, 7.0)) == (0, 0)  # 5.9 -> 7.0 stays in the reservoir above 3 / below 9


def test_random_walks_wrapped_equal_unwrapped_and_net_transits_match_displacement():
    rng = np.random.default_rng(0)
    n, steps = 40, 3000
    q = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    z = rng.uniform(0, LZ, n)[None] + np.cumsum(rng.normal(0.02 * q, 0.12, (steps, n)), axis=0)
    species = ["K+" if x > 0 else "Cl-" for x in q]
    wrapped = CrossingCounter(q, species, np.mod(z[0], LZ), LZ, ZMID, HW)
    unwrapped = CrossingCounter(q, species, z[0], LZ, ZMID, HW)
    for zi in z[1:]:
        wrapped.update(np.mod(zi, LZ), 0.5)
        unwrapped.update(zi, 0.5)
    np.testing.assert_array_equal(wrapped.up, unwrapped.up)
    np.testing.assert_array_equal(wrapped.down, unwrapped.down)
    assert wrapped.up.sum() > 50 and wrapped.down.sum() > 10
    # an ion ending in a reservoir has net transits = number of membrane images between start and end
    r = np.mod(z[-1] - ZMID, LZ)
    out_of_band = (r > HW) & (r < LZ - HW)
    start = np.floor((z[0] - ZMID) / LZ)
    end = np.floor((z[-1] - ZMID) / LZ)
    net = wrapped.up - wrapped.down
    np.testing.assert_array_equal(net[out_of_band], (end - start)[out_of_band])
    # displacement sums come from the unwrapped path even when fed wrapped positions
    assert wrapped.charge_displacement == pytest.approx(float(q @ (z[-1] - z[0])), abs=1e-9)
    assert wrapped.time_ps == pytest.approx(0.5 * (steps - 1))


def test_displacement_current_of_uniform_drift():
    n, v, dt, steps = 10, 0.05, 0.5, 100  # nm/ps, ps
    q = np.array([1.0] * 5 + [-1.0] * 5)
    z0 = np.linspace(0.1, 5.9, n)
    c = CrossingCounter(q, ["K+"] * 5 + ["Cl-"] * 5, z0, LZ, ZMID, HW)
    for k in range(1, steps + 1):
        c.update(np.mod(z0 + q * v * dt * k, LZ), dt)
    expected_e_per_ns = np.abs(q).sum() * v / LZ * 1000.0
    res = field_result(c, 1.0)
    assert res.time_ns == pytest.approx(steps * dt / 1000)
    assert res.current_displacement_nA == pytest.approx(expected_e_per_ns * E_PER_NS_TO_NA)
    assert res.current_displacement_ci_nA == pytest.approx((res.current_displacement_nA,) * 2)
    # each ion travels 2.5 nm: those starting just below a membrane image cross it once
    up, down = res.species["K+"].crossings_up, res.species["Cl-"].crossings_down
    assert up > 0 and down > 0
    assert res.current_nA == pytest.approx((up + down) / res.time_ns * E_PER_NS_TO_NA)
    assert res.charge_crossings_e == up + down


def test_state_dict_round_trip_resumes_identically():
    rng = np.random.default_rng(1)
    n, steps = 12, 800
    q = np.repeat([1.0, -1.0, 2.0], 4)
    species = np.repeat(["K+", "Cl-", "Mg2+"], 4).tolist()
    z = rng.uniform(0, LZ, n)[None] + np.cumsum(rng.normal(0.03 * q, 0.15, (steps, n)), axis=0)
    z = np.mod(z, LZ)
    full = CrossingCounter(q, species, z[0], LZ, ZMID, HW)
    part = CrossingCounter(q, species, z[0], LZ, ZMID, HW)
    for k in range(1, steps):
        full.update(z[k], 0.2)
        if k < steps // 2:
            part.update(z[k], 0.2)
    saved = json.loads(json.dumps(part.state_dict()))
    resumed = CrossingCounter.from_state_dict(saved)
    fresh = CrossingCounter(q, species, z[0], LZ, ZMID, HW)
    fresh.load_state_dict(saved)
    for c in (resumed, fresh):
        for k in range(steps // 2, steps):
            c.update(z[k], 0.2)
        assert c.state_dict() == full.state_dict()
        assert c.species_counts() == full.species_counts()
        # the per-update series (current, update lengths, per-species fluxes) carry on exactly
        assert c.species_series == full.species_series and c.dt_series == full.dt_series
        assert c.current_series == full.current_series and len(c.species_series) == steps - 1
    assert field_result(resumed, 1.0) == field_result(full, 1.0)
    assert full.up.sum() + full.down.sum() > 20
    with pytest.raises(ValueError, match="half_width"):
        CrossingCounter(q, species, z[0], LZ, ZMID, 0.3).load_state_dict(saved)


# --- intervals ----------------------------------------------------------------------------------------
def _coverage(n_draws, counts_rows, weights, exposure, truth):
    """Fraction of draws whose poisson_linear_ci covers `truth`; counts_rows: (n_draws, k)."""
    rows, inverse = np.unique(counts_rows, axis=0, return_inverse=True)
    cis = np.array([poisson_linear_ci(r, weights, exposure) for r in rows])[inverse.ravel()]
    return float(np.mean((cis[:, 0] <= truth) & (truth <= cis[:, 1])))


@pytest.mark.parametrize("mu_up, mu_down", [(0.4, 0.0), (2.5, 0.0), (3.0, 1.0), (8.0, 8.0), (30.0, 5.0),
                                            (150.0, 20.0)])
def test_flux_interval_coverage(mu_up, mu_down):
    rng = np.random.default_rng(int(10 * mu_up + mu_down))
    t = 0.2  # ns
    draws = rng.poisson([mu_up, mu_down], size=(2000, 2))
    assert _coverage(2000, draws, [1.0, -1.0], t, (mu_up - mu_down) / t) >= 0.94


@pytest.mark.parametrize("rates", [
    {"K+": (1.0, 0.1), "Cl-": (0.1, 0.5)},
    {"K+": (20.0, 1.0), "Cl-": (0.5, 10.0)},
    {"K+": (3.0, 0.5), "Mg2+": (2.0, 0.2), "Cl-": (1.0, 6.0)},
])
def test_current_interval_coverage(rates):
    rng = np.random.default_rng(7)
    charges = {"K+": 1.0, "Cl-": -1.0, "Mg2+": 2.0}
    mu = np.array([m for s in rates for m in rates[s]])
    w = np.array([x for s in rates for x in (charges[s], -charges[s])])
    draws = rng.poisson(mu, size=(2000, mu.size))
    true_e_per_ns = float(w @ mu)  # exposure 1 ns
    assert _coverage(2000, draws, w, 1.0, true_e_per_ns) >= 0.94
    # crossing_current_nA is the same interval in nA
    counts = {s: tuple(int(x) for x in draws[0, 2 * i:2 * i + 2]) for i, s in enumerate(rates)}
    current, ci = crossing_current_nA(counts, charges, 1.0)
    lo, hi = poisson_linear_ci(draws[0], w, 1.0)
    assert current == pytest.approx(float(w @ draws[0]) * E_PER_NS_TO_NA)
    assert ci == pytest.approx((lo * E_PER_NS_TO_NA, hi * E_PER_NS_TO_NA))


def test_flux_interval_is_statsmodels_mover_with_exact_intervals():
    for up, down, t in [(0, 0, 1.0), (3, 0, 0.5), (12, 4, 2.0), (100, 90, 0.1)]:
        flux, ci = flux_per_ns(up, down, t)
        ref = confint_poisson_2indep(up, t, down, t, compare="diff", method="mover", method_mover="exact-c")
        assert flux == pytest.approx((up - down) / t)
        assert ci == pytest.approx((float(ref[0]), float(ref[1])))
    assert flux_per_ns(0, 0, 1.0)[1][1] == pytest.approx(3.6889, abs=1e-3)  # exact 97.5 % bound of 0 counts


def test_displacement_interval_accounts_for_correlation():
    """AR(1) series with g = (1 + phi) / (1 - phi) = 9: the interval covers; a naive one would not."""
    rng = np.random.default_rng(3)
    phi, n, mean = 0.8, 2000, 5.0
    covered = naive = 0
    for _ in range(150):
        e = rng.normal(size=n)
        x = np.empty(n)
        x[0] = e[0] / math.sqrt(1 - phi**2)
        for k in range(1, n):
            x[k] = phi * x[k - 1] + e[k]
        x += mean
        lo, hi = correlated_mean(x, drop_transient=False).ci
        covered += lo <= mean <= hi
        half = 1.96 * x.std(ddof=1) / math.sqrt(n)
        naive += abs(x.mean() - mean) <= half
    assert covered / 150 >= 0.88
    assert naive / 150 < 0.75


# --- ICR ----------------------------------------------------------------------------------------------
def _field(e, k_up, k_down, cl_up, cl_down, t=1.0):
    charges = {"K+": 1.0, "Cl-": -1.0}
    i, ci = crossing_current_nA({"K+": (k_up, k_down), "Cl-": (cl_up, cl_down)}, charges, t)
    return FieldResult(field_V_per_nm=e, time_ns=t, current_nA=i, current_ci_nA=ci, species={})


def test_censored_icr_when_off_counts_are_zero():
    on, off = _field(2.0, 30, 1, 0, 12), _field(-2.0, 0, 0, 0, 0)
    (res,) = icr_results([on, off])
    assert res.icr_censored and res.icr_ci[1] is None
    assert res.icr == res.icr_ci[0] and 0 < res.icr < math.inf
    assert res.icr == pytest.approx(on.current_ci_nA[0] / off.current_ci_nA[1])
    json.dumps(res.model_dump(mode="json"), allow_nan=False)
    # a few OFF counts that do not exclude zero current are censored too
    (res,) = icr_results([on, _field(-2.0, 0, 2, 0, 0)])
    assert res.icr_censored and res.icr < 41 / 2


def test_icr_pairs_signs_and_skips_unpaired_fields():
    fields = [_field(2.0, 50, 0, 0, 30), _field(-2.0, 0, 10, 6, 0), _field(1.0, 20, 0, 0, 10),
              _field(-1.0, 0, 10, 5, 0), _field(3.0, 80, 0, 0, 40)]
    res = icr_results(fields)
    assert [r.field_abs_V_per_nm for r in res] == [1.0, 2.0]
    assert res[1].icr == pytest.approx(80 / 16) and not res[1].icr_censored
    lo, hi = res[1].icr_ci
    assert lo < 80 / 16 < hi and lo > 1


def test_icr_interval_coverage_on_simulated_counts():
    rng = np.random.default_rng(11)
    w = np.array([1.0, -1.0, -1.0, 1.0])  # K+ up, K+ down, Cl- up, Cl- down
    cases = [  # (ON rates, OFF rates) per ns, exposure 1 ns
        ([100, 2, 1, 50], [1, 20, 10, 1]),
        ([40, 1, 0.5, 20], [2, 8, 3, 1]),
        ([10, 0.5, 0.2, 5], [0.3, 3, 1, 0.1]),
    ]
    for on, off in cases:
        true = abs(w @ on) / abs(w @ off)
        d_on, d_off = rng.poisson(on, (2000, 4)), rng.poisson(off, (2000, 4))
        ci = {}
        for row in np.unique(np.vstack([d_on, d_off]), axis=0):
            lo, hi = poisson_linear_ci(row, w, 1.0)
            ci[tuple(row)] = (float(w @ row), (lo, hi))
        hits = []
        for a, b in zip(d_on, d_off, strict=True):
            (i1, c1), (i2, c2) = ci[tuple(a)], ci[tuple(b)]
            _, (lo, hi), censored = icr_estimate(i1, c1, i2, c2)
            hits.append(lo <= true and (censored or true <= hi))
        assert np.mean(hits) >= 0.93, (on, off, np.mean(hits))
        if min(on) > 0.5 and min(off) >= 1:  # many counts: close to nominal, not a vacuous interval
            assert np.mean(hits) <= 0.985


# --- OpenMM reporter ----------------------------------------------------------------------------------
def test_reporter_matches_offline_counter():
    n, box, e_field = 8, 3.0, 4.0  # ions, nm, V/nm
    q = np.array([1.0, -1.0] * (n // 2))
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*(openmm.Vec3(*(box * np.eye(3)[i])) for i in range(3)))
    field = openmm.CustomExternalForce("-q*Ez*96.4853*z")
    field.addPerParticleParameter("q")
    field.addGlobalParameter("Ez", e_field)
    for qi in q:
        field.addParticle(system.addParticle(10.0), [qi])
    system.addForce(field)
    topology = app.Topology()
    chain = topology.addChain()
    for _ in range(n):
        topology.addAtom("K", app.Element.getBySymbol("K"), topology.addResidue("K", chain))
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1.0 / unit.picosecond, 0.002)
    integrator.setRandomNumberSeed(5)
    sim = app.Simulation(topology, system, integrator, openmm.Platform.getPlatformByName("Reference"))
    rng = np.random.default_rng(5)
    sim.context.setPositions(rng.uniform(0, box, (n, 3)) * unit.nanometer)
    sim.context.setVelocitiesToTemperature(300 * unit.kelvin, 5)
    sim.step(3)  # the reporter starts from a non-zero time and step
    species = ["K+" if x > 0 else "Cl-" for x in q]
    reporter = TransportReporter.from_simulation(sim, np.arange(n), q, species, z_mid=1.5, half_width=0.3,
                                                 interval=5, periodic=True)
    sim.reporters.append(reporter)
    start = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    offline = CrossingCounter(q, species, np.mod(start[:, 2], box), box, 1.5, 0.3)
    t_last = sim.context.getState().getTime().value_in_unit(unit.picosecond)
    for _ in range(80):  # the first report comes at step 5 (2 steps in), then every 5 steps
        sim.step(2 if sim.currentStep == 3 else 5)
        state = sim.context.getState(getPositions=True, enforcePeriodicBox=True)
        t = state.getTime().value_in_unit(unit.picosecond)
        offline.update(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)[:, 2], t - t_last)
        t_last = t
    end = sim.context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    counter = reporter.counter
    assert len(counter.current_series) == 80
    assert counter.species_counts() == offline.species_counts()
    assert counter.species_counts()["K+"][0] >= 3 and counter.species_counts()["Cl-"][1] >= 3
    assert counter.time_ps == pytest.approx(0.002 * (2 + 79 * 5))
    # Reference keeps unwrapped coordinates: the counter's displacement sum is the true one
    assert counter.charge_displacement == pytest.approx(float(q @ (end[:, 2] - start[:, 2])), abs=1e-6)
    res = field_result(counter, e_field)
    assert res.current_nA > 0 and res.current_displacement_nA > 0
    # resuming from a reporter state newer than the simulation is refused
    newer = reporter.state_dict()
    newer["time_ps"] += 1.0
    reporter.load_state_dict(newer)
    with pytest.raises(ValueError, match="precedes"):
        sim.step(5)


def test_displacement_is_crossed_charge_plus_polarisation_change():
    """Exactly, over any window: sum q dz / Lz = charge carried through the band (progress, partial transits
    included) + change of Q_pol; and for ions that never pass the membrane the displacement is all polarisation."""
    rng = np.random.default_rng(4)
    n, steps = 30, 4000
    q = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    z = rng.uniform(0, LZ, n)[None] + np.cumsum(rng.normal(0.01 * q, 0.1, (steps, n)), axis=0)
    c = CrossingCounter(q, ["K+" if x > 0 else "Cl-" for x in q], np.mod(z[0], LZ), LZ, ZMID, HW)
    for zi in z[1:]:
        c.update(np.mod(zi, LZ), 0.1)

    def progress(zz):  # transits of the band, continuous inside it
        u = zz - ZMID
        k = np.round(u / LZ)
        return k + np.clip((u - k * LZ + HW) / (2 * HW), 0, 1)

    band = float(q @ (progress(z[-1]) - progress(z[0])))
    assert c.charge_displacement / LZ == pytest.approx(band + c.polarisation_series[-1] - c.polarisation0, abs=1e-9)
    assert abs(c.net_charge_crossings() - band) <= np.sum(np.abs(q))  # they differ by the ions inside the band
    assert c.up.sum() > 20
    # ions reflected at the band (a membrane no ion passes) pushed along the field: no crossing, all polarisation
    z0 = rng.uniform(ZMID + HW + 0.05, ZMID + LZ - HW - 0.05, n)
    b = CrossingCounter(q, ["K+" if x > 0 else "Cl-" for x in q], z0, LZ, ZMID, HW)
    zz = z0.copy()
    for _ in range(2000):
        zz = np.clip(zz + rng.normal(0.002 * q, 0.05), ZMID + HW + 0.01, ZMID + LZ - HW - 0.01)
        b.update(zz, 0.1)
    assert b.net_charge_crossings() == 0 and b.charge_displacement > 0
    assert b.charge_displacement / LZ == pytest.approx(b.polarisation_series[-1] - b.polarisation0, abs=1e-9)
    assert abs(b.polarisation_series[-1] - b.polarisation0) <= np.sum(np.abs(q)) / 2


def test_production_window_counts_only_after_mark_start():
    c = CrossingCounter([1.0], ["K+"], [1.0], LZ, ZMID, HW)
    for zi in path(1.0, 5.0)[1:]:  # one transit before the window opens
        c.update(np.array([zi]), 0.1)
    c.mark_start()
    assert c.species_counts() == {"K+": (0, 0)} and c.time_ns == 0
    for zi in path(5.0, 10.0)[1:]:  # then up through the image at 9
        c.update(np.array([zi % LZ]), 0.1)
    assert c.species_counts() == {"K+": (1, 0)} and c.up[0] == 2
    res = field_result(c, 1.0)
    assert res.charge_crossings_e == 1 and res.time_ns == pytest.approx(c.time_ns)
    assert sum(c.crossed_series) == 2 and sum(c.window(c.crossed_series)) == 1
    restored = CrossingCounter.from_state_dict(json.loads(json.dumps(c.state_dict())))
    assert field_result(restored, 1.0) == res


def _counted(e, k_up, k_down, cl_up=0, cl_down=0, t=0.2):
    """An MD field result with these crossing counts over t ns."""
    counts = {"K+": (k_up, k_down), "Cl-": (cl_up, cl_down)}
    i, ci = crossing_current_nA(counts, {"K+": 1.0, "Cl-": -1.0}, t)
    species = {s: SpeciesResult(crossings_up=u, crossings_down=d, crossings=u - d, flux_per_ns=(u - d) / t,
                                flux_ci_per_ns=flux_per_ns(u, d, t)[1]) for s, (u, d) in counts.items()}
    return FieldResult(field_V_per_nm=e, time_ns=t, current_nA=i, current_ci_nA=ci, species=species)


def test_icr_from_counts_is_the_exact_conditional_interval_and_censors_both_ways():
    (r,) = icr_results([_counted(3.0, 30, 0), _counted(-3.0, 0, 0)])  # 30 e against 0 e: ICR > 7.6
    assert r.icr_censored and r.icr_ci[1] is None and r.icr == pytest.approx(1 / (0.025 ** (-1 / 30) - 1), rel=1e-9)
    assert r.icr == pytest.approx(7.64, abs=0.01)
    (r,) = icr_results([_counted(3.0, 0, 0), _counted(-3.0, 0, 0, 0, 30)])  # the mirror case: ICR < 1/7.6
    assert r.icr_upper_censored and not r.icr_censored and r.icr_ci == (0.0, pytest.approx(1 / 7.64, rel=1e-3))
    assert str(Interval(r.icr, *r.icr_ci, r.icr_censored, r.icr_upper_censored)).startswith("< 0.13")
    (r,) = icr_results([_counted(2.0, 12, 0, 0, 8), _counted(-2.0, 0, 3, 2, 0, t=0.1)])  # 20 e / 0.2 ns, 5 e / 0.1
    assert r.icr == pytest.approx(2.0) and r.icr_ci[0] < 2.0 < r.icr_ci[1] and not r.icr_censored
    (r,) = icr_results([_counted(2.0, 0, 0), _counted(-2.0, 0, 0)])
    assert r.icr_censored and r.icr_ci == (0.0, None)  # no transit at all: nothing is known
    # reverse transits: MOVER on the currents' intervals, censored when the OFF interval holds zero
    (r,) = icr_results([_counted(2.0, 10, 1), _counted(-2.0, 0, 1)])
    assert r.icr_censored


@pytest.mark.parametrize("rates", [(50.0, 50.0), (40.0, 10.0), (15.0, 3.0), (5.0, 1.0)])
def test_exact_count_icr_covers_the_true_ratio(rates):
    """Poisson transits at known rates (e/ns) over 0.2 ns per sign: the 95 % ICR interval covers the true ratio
    at least 95 % of the time (exact, hence conservative), censored bounds included."""
    rng = np.random.default_rng(int(rates[0]))
    true = rates[0] / rates[1]
    hits = []
    for n_p, n_m in rng.poisson(np.array(rates) * 0.2, (2000, 2)):
        (r,) = icr_results([_counted(2.0, int(n_p), 0), _counted(-2.0, 0, int(n_m))])
        lo, hi = r.icr_ci
        hits.append(lo <= true <= (math.inf if hi is None else hi))
    assert np.mean(hits) >= 0.95, np.mean(hits)
    if min(rates) * 0.2 >= 2:  # with a few counts a side, close to nominal: not a vacuous interval
        assert np.mean(hits) <= 0.99, np.mean(hits)


def test_garwood_is_statsmodels_exact_interval_on_fractional_counts_too():
    """porelab's scipy Garwood interval equals statsmodels' confint_poisson("exact-c"), quasi-Poisson counts too."""
    from statsmodels.stats.rates import confint_poisson

    from porelab.sim.estimators import garwood

    n, t = np.array([0.0, 1.0, 2.5, 7.0, 40.0, 0.3]), np.array([0.1, 0.2, 1.0, 0.05, 3.0, 0.7])
    lo, hi = confint_poisson(n, t, method="exact-c", alpha=0.05)
    g_lo, g_hi = garwood(n, t, 0.05)
    assert g_lo == pytest.approx(np.nan_to_num(lo)) and g_hi == pytest.approx(hi)
