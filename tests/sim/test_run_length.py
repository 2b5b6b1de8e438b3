"""The stopping rule of until="decisive": verdicts on hand-made counts, its false-decisive rate over all its looks
on synthetic null runs (ICR = 1 exactly, Poisson and bursty transits, with and without a start transient), its
power on a real rectifier, the settle rule on synthetic polarisation series, and MDSettings' validation and
identity."""

import functools

import numpy as np
import pytest

from porelab.sim.design import DesignError
from porelab.sim.estimators import DISPERSION_BLOCK_PS, crossing_current_nA, dispersion, flux_per_ns
from porelab.sim.measurement import FieldResult, SpeciesResult
from porelab.sim.observables import icr_results, mirrored_field
from porelab.sim.protocol import MDSettings, md_identity, simulated_fields
from porelab.sim.run_length import look_times, stop_verdict
from porelab.sim.settle import settle, stationary

M, R = 0.2, 0.2


def counted(e: float, n: int, t_ns: float, phi: float = 1.0) -> FieldResult:
    """An MD result at field e: n transits carrying charge along the field (K+ up at +E, down at -E) over t_ns,
    with dispersion phi."""
    k = (n, 0) if e > 0 else (0, n)
    i, ci = crossing_current_nA({"K+": k}, {"K+": 1.0}, t_ns, dispersion=phi)
    sp = SpeciesResult(crossings_up=k[0], crossings_down=k[1], crossings=k[0] - k[1], flux_per_ns=(k[0] - k[1]) / t_ns,
                       flux_ci_per_ns=flux_per_ns(*k, t_ns, dispersion=phi)[1])
    return FieldResult(field_V_per_nm=e, time_ns=t_ns, current_nA=i, current_ci_nA=ci, crossing_dispersion=phi,
                       species={"K+": sp})


def verdict(n_plus, n_minus, t_ns=0.1, alpha_look=0.05, symmetric=False, phi=(1.0, 1.0)):
    return stop_verdict([counted(2.0, n_plus, t_ns, phi[0]), counted(-2.0, n_minus, t_ns, phi[1])], M, R,
                        symmetric, alpha_look)


def test_decisive_when_the_count_icr_excludes_one_by_the_margin_at_the_looks_level():
    assert verdict(40, 5)[0] == "decisive"  # ICR 8
    assert verdict(5, 40)[0] == "decisive"  # ICR 1/8: along -E ("< x" side)
    assert verdict(30, 0)[0] == "decisive"  # censored: > 7.6
    assert verdict(12, 4) is None  # ICR 3 in about [0.9, 13]
    assert verdict(25, 8, alpha_look=0.05)[0] == "decisive"
    assert verdict(25, 8, alpha_look=0.05 / 20) is None  # the same counts at one look of 20: not yet


def test_precise_when_an_icr_near_one_is_pinned_down():
    v = verdict(2000, 2000)
    assert v[0] == "precise" and "|E|=2: precise" in v[1]
    assert verdict(20, 20) is None
    assert verdict(0, 0) is None  # nothing crossed: nothing is known


def test_a_symmetric_design_or_a_lone_field_has_nothing_to_decide():
    plus = counted(2.0, 3, 0.1)
    minus = mirrored_field(plus).model_copy(update={"derived_by_symmetry": True})
    (row,) = icr_results([plus, minus])
    assert row.by_symmetry and row.icr == 1.0 and row.icr_ci == (1.0, 1.0)
    assert stop_verdict([plus, minus], M, R, True, 0.05)[0] == "symmetric"
    v = stop_verdict([plus], M, R, False, 0.05)
    assert v[0] == "precise" and "nothing to decide at +2" in v[1]


def test_look_times():
    assert look_times(40, 20, 120) == [40, 60, 80, 100, 120]
    assert look_times(40, 30, 100) == [40, 70, 100]
    assert look_times(40, 20, 30) == [30]
    assert look_times(12, 6, 12) == [12]


@functools.cache
def decisive(n_plus: int, n_minus: int, t_ps: float, alpha_look: float, phi: tuple[float, float]) -> bool | None:
    """True/False: the rule stops (decisive or not) at this look; None: it goes on."""
    v = verdict(n_plus, n_minus, t_ps / 1000, alpha_look, phi=phi)
    return None if v is None else v[0] == "decisive"


def null_run(rng, rate_e_per_ns: float, looks_ps: list[float], alpha_look: float, burst: float = 0.0,
             transient_ps: float = 0.0, poisson: bool = False) -> bool:
    """One synthetic run of a pore with ICR = 1: transits at +E and -E at the same rate (e/ns), in bursts of
    1 + Poisson(burst) transits (over-dispersed), at 30 % of the rate for the first transient_ps at both signs,
    counted in DISPERSION_BLOCK_PS blocks as field_result does (poisson: dispersion ignored). True when any look is
    falsely decisive."""
    b = DISPERSION_BLOCK_PS
    t = b * np.arange(1, round(looks_ps[-1] / b) + 1)  # block ends, ps
    mean = rate_e_per_ns / (1 + burst) * b / 1000 * np.where(t <= transient_ps, 0.3, 1.0)
    clusters = rng.poisson(mean[:, None], (t.size, 2))
    blocks = clusters + (rng.poisson(burst * clusters) if burst else 0)  # (n_blocks, 2 signs)
    for look in looks_ps:
        k = round(look / b)
        phi = (1.0, 1.0) if poisson else tuple(round(dispersion(blocks[:k, j]), 2) for j in range(2))
        v = decisive(*(int(x) for x in blocks[:k].sum(0)), look, alpha_look, phi)
        if v is not None:
            return v
    return False


@pytest.mark.parametrize("burst, transient_ps", [(0.0, 0.0), (0.0, 20.0), (1.0, 0.0), (1.0, 20.0)])
def test_false_decisive_rate_over_all_looks_is_at_most_five_percent(burst, transient_ps):
    """ICR = 1 exactly, 19 looks (40, 60, ..., 400 ps), 60 and 200 e/ns (10 and 30 nA), Poisson or bursty
    transits (pairs on average: 2.5 times the Poisson variance), with or without a slow start: over 600 runs at each
    rate the rule is falsely decisive at most 5 % of the time."""
    looks = look_times(40, 20, 400)
    rng = np.random.default_rng(int(10 * burst + transient_ps))
    spent = [np.mean([null_run(rng, r, looks, 0.05 / len(looks), burst, transient_ps) for _ in range(600)])
             for r in (60.0, 200.0)]
    assert max(spent) <= 0.05, spent


def test_without_the_dispersion_the_rule_is_not_safe():
    """The bursty null with the dispersion ignored (Poisson intervals, alpha still spent): falsely decisive in 9 %
    of runs (measured here: 9 %; 23 % with bursts of 3). Looking at 95 % every time without spending measured
    3-5 % (the margin and the exact test are conservative), never less than with spending."""
    looks = look_times(40, 20, 400)
    rng = np.random.default_rng(3)
    poisson = np.mean([null_run(rng, 200.0, looks, 0.05 / len(looks), 1.0, poisson=True) for _ in range(600)])
    naive = np.mean([null_run(rng, 200.0, looks, 0.05, 1.0) for _ in range(300)])
    spent = np.mean([null_run(rng, 200.0, looks, 0.05 / len(looks), 1.0) for _ in range(300)])
    assert poisson > 0.05 and naive >= spent, (poisson, naive, spent)


def test_a_real_rectifier_is_found_decisive():
    """ICR 4 at 150 e/ns ON: decisive (along +E) before a 400 ps cap in most runs."""
    looks = look_times(40, 20, 400)
    rng = np.random.default_rng(5)
    found = 0
    for _ in range(200):
        n, t_prev = np.zeros(2, dtype=int), 0.0
        for t in looks:
            n += rng.poisson(np.array([150.0, 37.5]) * (t - t_prev) / 1000)
            t_prev = t
            v = verdict(int(n[0]), int(n[1]), t / 1000, 0.05 / len(looks))
            if v is not None:
                found += v[0] == "decisive" and icr_results([counted(2.0, int(n[0]), t / 1000),
                                                             counted(-2.0, int(n[1]), t / 1000)])[0].icr > 1
                break
    assert found / 200 >= 0.8


def relaxation(rng, n: int, dt: float, tau_ps: float, jump_e: float, noise_e: float) -> np.ndarray:
    """Q_pol after a field is switched on: jump_e * (1 - exp(-t / tau)) plus AR(1) noise of sd noise_e (2 ps)."""
    t = dt * np.arange(1, n + 1)
    a = np.exp(-dt / 2.0)
    e = np.empty(n)
    e[0] = rng.normal(0, noise_e)
    for k in range(1, n):
        e[k] = a * e[k - 1] + np.sqrt(1 - a * a) * rng.normal(0, noise_e)
    return jump_e * (1 - np.exp(-t / tau_ps)) + e


def test_settle_waits_for_the_polarisation_to_stop_moving():
    """Q_pol relaxing by 4 e with tau = 15 ps (as measured on the tiny preset): the rule settles after about 3-5 tau,
    leaving well under 0.5 e of charging; a stationary series settles at the first check; a drift never settles."""
    rng = np.random.default_rng(0)
    dt = 0.1
    for _ in range(20):
        q = relaxation(rng, 3000, dt, 15.0, 4.0, 0.15)
        t = []

        def advance(ps, t=t):
            t.append((t[-1] if t else 0.0) + ps)

        ran, ok = settle(advance, lambda t=t, q=q: ([dt] * round(t[-1] / dt), q[:round(t[-1] / dt)]), 10.0, 0.2, 0.0,
                         250.0)
        assert ok and 35.0 <= ran <= 120.0, ran
        assert 4.0 * np.exp(-ran / 15.0) < 0.5
    flat = relaxation(rng, 400, dt, 15.0, 0.0, 0.15)
    assert stationary([dt] * 200, flat[:200], 10.0, 0.2)
    assert not stationary([dt] * 100, flat[:100], 10.0, 0.2)  # shorter than two windows
    assert not stationary([dt] * 400, np.linspace(0, 4, 400), 10.0, 0.2)  # 1 e per 10 ps


def test_md_settings_validate_in_one_line_and_name_their_identity():
    for kw, words in [({"until": "forever"}, "until='forever' is unknown"), ({"chunk_ps": 0}, "chunk_ps=0"),
                      ({"icr_margin": -1}, "icr_margin=-1"), ({"settle_max_ps": -1.0}, "settle_max_ps=-1.0"),
                      ({"settle_tol_e": 0}, "settle_tol_e=0"), ({"alpha": 1.0}, "alpha=1.0 must lie in"),
                      ({"seed": 1.5}, "seed=1.5 must be an integer"), ({"timestep_fs": 60}, "exceeds 50 fs"),
                      ({"cpu_threads": 0}, "cpu_threads=0"), ({"max_production_ps": float("nan")}, "max_production"),
                      ({"production_ps": "long"}, "production_ps='long' must be a number"),
                      ({"nosuch_ps": 1}, "'nosuch_ps' is not a setting; choose from production_ps, until")]:
        with pytest.raises(DesignError, match=words):
            MDSettings(**kw)
    a, b = MDSettings(production_ps=10.0), MDSettings(production_ps=500.0, until="decisive", platform="CPU",
                                                       cpu_threads=1, checkpoint_ps=1.0, max_retries=0,
                                                       min_production_ps=80.0, alpha=0.01)
    assert a.identity() == b.identity() and md_identity(a) == md_identity(b)  # run length and execution: not numbers
    for change in ({"seed": 1}, {"timestep_fs": 4.0}, {"friction_per_ps": 0.5}, {"settle_max_ps": 1.0},
                   {"settle_window_ps": 5.0}, {"settle_tol_e": 0.5}, {"report_interval_steps": 10},
                   {"equil_ps": 5.0}, {"cutoff_nm": 0.9}, {"minimise_max_iterations": 100}):
        assert MDSettings(**change).identity() != a.identity()
    assert md_identity(a) == {"kind": "md", "settings": a.identity()} and a.identity()["protocol"] == 2


def test_symmetric_designs_simulate_each_field_once_at_plus_e():
    assert simulated_fields([2.0, -2.0, 1.0, -1.0], symmetric=True) == [1.0, 2.0]
    assert simulated_fields([-2.0], symmetric=True) == [2.0]
    assert simulated_fields([2.0, -2.0, 1.0], symmetric=False) == [2.0, -2.0, 1.0]
