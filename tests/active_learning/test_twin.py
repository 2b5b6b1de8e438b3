"""The continuum twin calibrated on measured labels (active_learning/campaign/twin.py): known knobs are recovered."""

import math

import pytest

from porelab.active_learning.campaign.targets import targets
from porelab.active_learning.campaign.twin import DEFAULT, Twin, scaled
from porelab.sim.design import make_conditions, make_design

COND = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [2.0, -2.0]})
DESIGNS = [make_design({"layers": layers, "groups_per_rim": g}, "tiny")
           for layers, g in ((["COO-", "NH3+"], 4), (["COO-", "none"], 6), (["NH3+", "OH", "COO-"], 2),
                             (["OH", "NH3+"], 3))]


def test_scaling_every_diffusion_coefficient_scales_the_currents_and_keeps_the_icr():
    twin = Twin()
    m = twin.get((DESIGNS[0], COND), None)
    s = scaled(m, 0.25)
    for f, g in zip(m.fields, s.fields, strict=True):
        assert g.current_nA == pytest.approx(0.25 * f.current_nA)
        assert g.current_ci_nA == pytest.approx(tuple(0.25 * x for x in f.current_ci_nA))
    assert s.icr[0].icr == pytest.approx(m.icr[0].icr)


def test_calibration_recovers_the_permittivity_and_diffusion_scale_that_made_the_labels():
    """Labels made by the twin itself at eps_r 5 with every D times 0.2: the fit finds both, at zero loss."""
    twin = Twin()
    truth = [scaled(twin.get((d, COND), 5.0), 0.2) for d in DESIGNS]
    cal = twin.calibrate(truth)
    assert cal.eps_r == 5.0 and cal.n == len(DESIGNS)
    assert cal.log_s == pytest.approx(math.log(0.2), abs=1e-9) and cal.loss == pytest.approx(0.0, abs=1e-12)
    answered = [targets(twin.answer((d, COND), cal), twin.goal) for d in DESIGNS]
    for a, t in zip(answered, (targets(m, twin.goal) for m in truth), strict=True):
        assert a["log_on_current"] == pytest.approx(t["log_on_current"])
        assert a["log_icr"] == pytest.approx(t["log_icr"])
    assert twin.calibrate([]) is DEFAULT
