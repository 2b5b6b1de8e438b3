"""The stopping rule of until="decisive" on synthetic results with known intervals, and MDSettings' validation and
identity."""

import pytest

from porelab.sim.design import DesignError
from porelab.sim.measurement import FieldResult
from porelab.sim.observables import icr_results, mirrored_field
from porelab.sim.protocol import MDSettings, md_identity, simulated_fields
from porelab.sim.run_length import stop_verdict

M, R = 0.2, 0.2


def field(e, i, half, reliable=True):
    """A field's result with displacement current i +- half (nA)."""
    return FieldResult(field_V_per_nm=e, time_ns=0.1, current_nA=0.0, current_ci_nA=(-5.0, 5.0),
                       current_displacement_nA=i, current_displacement_ci_nA=(i - half, i + half),
                       current_displacement_n_eff=50.0 if reliable else 5.0, current_displacement_reliable=reliable,
                       species={})


def verdict(fields, symmetric=False):
    return stop_verdict(fields, icr_results(fields), M, R, symmetric)


def test_decisive_when_the_icr_interval_excludes_one_by_the_margin():
    assert verdict([field(2.0, 10.0, 1.0), field(-2.0, -2.0, 0.5)])[0] == "decisive"  # ICR 5 in about [3.6, 7]
    assert verdict([field(2.0, 2.0, 0.5), field(-2.0, -10.0, 1.0)])[0] == "decisive"  # ICR 0.2: along -E
    # a censored ICR (OFF current not resolved from 0) decides when its lower bound clears 1 + m
    assert verdict([field(2.0, 10.0, 1.0), field(-2.0, -0.5, 1.0)])[0] == "decisive"


def test_precise_when_an_icr_near_one_is_pinned_down_and_undecided_otherwise():
    v = verdict([field(2.0, 5.0, 0.1), field(-2.0, -5.0, 0.1)])  # ICR 1 +- 3 %
    assert v[0] == "precise" and "|E|=2: precise" in v[1]
    assert verdict([field(2.0, 5.0, 2.0), field(-2.0, -4.0, 2.0)]) is None  # ICR 1.25 in about [0.6, 2.6]
    # every |E| must be settled
    assert verdict([field(2.0, 10.0, 1.0), field(-2.0, -2.0, 0.5), field(1.0, 3.0, 2.0),
                    field(-1.0, -2.0, 2.0)]) is None


def test_an_unreliable_interval_never_stops_a_run():
    assert verdict([field(2.0, 10.0, 1.0), field(-2.0, -2.0, 0.5, reliable=False)]) is None
    missing = field(-2.0, -2.0, 0.5).model_copy(update={"current_displacement_ci_nA": None,
                                                        "current_displacement_nA": None})
    assert verdict([field(2.0, 10.0, 1.0), missing]) is None


def test_a_symmetric_design_stops_once_its_simulated_intervals_are_reliable():
    plus = field(2.0, 3.0, 2.9)
    minus = mirrored_field(plus).model_copy(update={"derived_by_symmetry": True})
    (row,) = icr_results([plus, minus])
    assert row.by_symmetry and row.icr == 1.0 and row.icr_ci == (1.0, 1.0) and row.icr_displacement_ci == (1.0, 1.0)
    assert verdict([plus, minus], symmetric=True)[0] == "symmetric"
    assert verdict([field(2.0, 3.0, 2.9, reliable=False), minus], symmetric=True) is None
    # a field asked at one sign only: settled once reliable
    assert verdict([field(2.0, 3.0, 2.9)])[0] == "precise"


def test_symmetric_designs_simulate_each_field_once_at_plus_e():
    assert simulated_fields([2.0, -2.0, 1.0, -1.0], symmetric=True) == [1.0, 2.0]
    assert simulated_fields([-2.0], symmetric=True) == [2.0]
    assert simulated_fields([2.0, -2.0, 1.0], symmetric=False) == [2.0, -2.0, 1.0]


def test_md_settings_validate_in_one_line_and_name_their_identity():
    for kw, words in [({"until": "forever"}, "until='forever' is unknown"), ({"chunk_ps": 0}, "chunk_ps=0"),
                      ({"icr_margin": -1}, "icr_margin=-1"), ({"settle_ps": -1.0}, "settle_ps=-1.0"),
                      ({"seed": 1.5}, "seed=1.5 must be an integer"), ({"timestep_fs": 60}, "exceeds 50 fs"),
                      ({"cpu_threads": 0}, "cpu_threads=0"), ({"max_production_ps": float("nan")}, "max_production")]:
        with pytest.raises(DesignError, match=words):
            MDSettings(**kw)
    a, b = MDSettings(production_ps=10.0), MDSettings(production_ps=500.0, until="decisive", platform="CPU",
                                                       cpu_threads=1, checkpoint_ps=1.0, max_retries=0)
    assert a.identity() == b.identity() and md_identity(a) == md_identity(b)  # run length and execution: not numbers
    for change in ({"seed": 1}, {"timestep_fs": 4.0}, {"friction_per_ps": 0.5}, {"settle_ps": 1.0},
                   {"report_interval_steps": 10}, {"equil_ps": 5.0}, {"cutoff_nm": 0.9},
                   {"minimise_max_iterations": 100}):
        assert MDSettings(**change).identity() != a.identity()
    assert md_identity(a) == {"kind": "md", "settings": a.identity()}
