"""Fidelity-aware learning (surrogate.fidelity.FidelityModel and the adapter's target_fidelity) on continuum
measurements plus synthetic MD with a known gap."""

import numpy as np
import pytest

from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.surrogate.dataset import Samples
from porelab.surrogate.fidelity import FidelityModel
from porelab.surrogate.metrics import flux_arrays, regression_metrics
from porelab.surrogate.targets import SPECIES_NAMES

K = SPECIES_NAMES.index("K+")


def _fit(approach, cont, md, kind="rf", **kw):
    fm = FidelityModel(kind, approach, "md", params={"n_estimators": 30} if kind == "rf" else {}, **kw)
    return fm.fit(Samples.from_measurements(cont + md, fm.settings, fm.transform))


@pytest.mark.parametrize(("approach", "gain"), [("delta", 0.5), ("feature", 0.8)])
def test_learns_the_gap_and_predicts_held_out_md(two_fidelities, approach, gain):
    cont, md = two_fidelities
    fm = _fit(approach, cont, md[:24])
    test = Samples.from_measurements(md[24:], fm.settings, fm.transform)
    r = regression_metrics(*flux_arrays(test, fm.predict(test)))
    # asked at the continuum instead, the same questions miss the gap (fluxes 0.5-0.75 x the continuum's)
    at_cont = fm.predict(test.at_fidelity("continuum"))
    naive = regression_metrics(*flux_arrays(test, at_cont))
    assert r["rmse"] < gain * naive["rmse"], (r, naive)  # the delta model learns the gap far better
    assert r["coverage_95"] >= 0.75
    assert fm.n_val_designs_ == 5  # 20 % of the 24 MD designs held out to calibrate at the target fidelity


def test_delta_gap_is_a_scaled_low_fidelity_plus_a_residual_with_its_uncertainty(two_fidelities):
    cont, md = two_fidelities
    fm = _fit("delta", cont, md[:24])
    assert 0.8 < fm.rho_[K] < 1.05  # asinh(0.5 J / s) ~ asinh(J / s) - ln 2 for large J: slope just under 1
    q = Samples.from_measurements(md[24:], fm.settings, fm.transform)
    raw, p_md, p_cont = fm._raw_predict(q), fm.predict(q), fm.predict(q.at_fidelity("continuum"))
    # the target fidelity carries the low fidelity's uncertainty (scaled by rho) and the residual's, then the
    # factor calibrated on held-out MD designs
    assert np.all(raw.std[:, K] >= fm.rho_[K] * p_cont.std[:, K])
    np.testing.assert_allclose(p_md.std, raw.std * fm.calibration_)
    # the continuum itself is predicted by the low-fidelity model alone, never rescaled by the MD calibration
    np.testing.assert_allclose(p_cont.mean, fm.base_.predict(q.at_fidelity("continuum")).mean)


def test_without_target_data_or_low_fidelity_it_is_one_model(two_fidelities):
    cont, md = two_fidelities
    only_cont = _fit("delta", cont, [])
    assert only_cont.approach_ == "feature" and only_cont.n_val_designs_ == 0
    only_md = _fit("delta", [], md)
    assert only_md.approach_ == "feature" and only_md.n_val_designs_ == 7
    few = _fit("delta", cont, md[:4])  # too few MD designs to hold some out: no target calibration
    assert few.n_val_designs_ == 0 and np.all(few.calibration_ == 1.0)


def test_adapter_trains_on_two_fidelities_predicts_at_either_and_round_trips(tmp_path, two_fidelities):
    cont, md = two_fidelities
    model = CampaignModel("rf", seed=0, target_fidelity="md", n_estimators=30).fit(cont + md[:24])
    cands = [(m.design, m.conditions) for m in md[24:]]
    at_md, at_cont = model.predict(cands), model.predict(cands, fidelity="continuum")
    assert not np.allclose(at_md.mean["log_on_current"], at_cont.mean["log_on_current"])
    # MD passes 0.5-0.75 x the continuum's current: ln ON current lower by ln 1.3 to ln 2
    gap = at_cont.mean["log_on_current"] - at_md.mean["log_on_current"]
    assert 0.1 < np.median(gap) < 1.0
    model.save(tmp_path / "m")
    again = CampaignModel.load(tmp_path / "m")
    assert again.target_fidelity == "md" and again.fidelity_approach == model.fidelity_approach
    for t in model.targets:
        np.testing.assert_allclose(again.predict(cands).mean[t], at_md.mean[t], rtol=1e-10)
        np.testing.assert_allclose(again.predict(cands).std[t], at_md.std[t], rtol=1e-10)
    assert again.clone().target_fidelity == "md"
    with pytest.raises(ModelError, match="approach='stack' is unknown"):
        CampaignModel("rf", target_fidelity="md", fidelity_approach="stack")
