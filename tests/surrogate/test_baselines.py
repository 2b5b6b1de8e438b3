import numpy as np
import pytest
from sklearn.base import clone

from porelab.sim.design import make_conditions
from porelab.surrogate.baselines import GPBaseline, RFBaseline
from porelab.surrogate.dataset import Samples
from porelab.surrogate.derived import derive
from porelab.surrogate.descriptors import DESCRIPTOR_NAMES, descriptors, design_descriptors
from porelab.surrogate.metrics import flux_arrays, regression_metrics
from porelab.surrogate.prediction import Prediction

MODELS = [lambda: RFBaseline(n_estimators=30), lambda: GPBaseline(max_train=150, max_iter=20)]


@pytest.fixture(scope="module", params=[0, 1], ids=["rf", "gp"])
def fitted(request, samples):
    train, test = samples.split_designs(0.25, seed=0)
    return MODELS[request.param]().fit(train), train, test


def test_same_interface_as_the_ensemble(fitted):
    model, train, test = fitted
    p = model.predict(test)
    assert isinstance(p, Prediction) and p.mean.shape == test.y.shape and p.transform == model.transform
    np.testing.assert_allclose(p.std**2, p.epistemic_std**2 + p.aleatoric_std**2, rtol=1e-10)
    assert (p.std[p.present] > 0).all()
    c = clone(model)
    assert c.get_params() == model.get_params() and not hasattr(c, "regressors_")
    with pytest.raises(RuntimeError, match="not fitted"):
        c.predict(test)


def test_learns_better_than_predicting_the_mean(fitted):
    model, train, test = fitted
    y, mu, sd = flux_arrays(test, model.predict(test))
    exact = train.mask & ~train.censored
    means = np.array([train.y[exact[:, s], s].mean() if exact[:, s].any() else 0 for s in range(7)])
    base = np.broadcast_to(means, test.y.shape)[test.mask & ~test.censored]
    assert regression_metrics(y, mu, sd)["rmse"] < 0.5 * regression_metrics(y, base, sd)["rmse"]


def test_symmetric_baselines_reverse_the_mirrored_design(fitted):
    model, _, test = fitted
    cond = make_conditions({"electrolyte": test.electrolytes[0], "fields_V_per_nm": [1.0, -0.3]})
    q = Samples.from_queries(test.designs[:2], cond)
    qm = Samples.from_queries([d.mirrored() for d in test.designs[:2]], cond.with_fields([-1.0, 0.3]))
    a, b = model.predict(q), model.predict(qm)
    np.testing.assert_allclose(a.mean[a.present], -b.mean[b.present], atol=1e-8)


def test_descriptors_of_the_mirror():
    from porelab.sim.design import make_design

    d = make_design({"layers": ["COO-", "none", "NH3+"]}, "seed")
    a, b = design_descriptors(d), design_descriptors(d.mirrored())
    assert a.shape == (len(DESCRIPTOR_NAMES),)
    k = DESCRIPTOR_NAMES.index("q_dipole_e_nm")
    assert a[k] == pytest.approx(-b[k]) and a[k] != 0  # the charge dipole flips
    assert a[:6].tolist() == b[:6].tolist()  # the geometry does not
    q0, q2 = DESCRIPTOR_NAMES.index("q_layer0_e"), DESCRIPTOR_NAMES.index("q_layer2_e")
    assert (a[q0], a[q2]) == (b[q2], b[q0]) == (-4.0, 4.0)
    q = Samples.from_queries([d], make_conditions({"fields_V_per_nm": [2.0]}))
    assert descriptors(q).shape == (1, len(a) + q.u.shape[1])


def test_descriptors_cover_sixteen_sheets():
    from porelab.sim.design import MAX_SHEETS, make_design

    d = make_design({"janus_layers": MAX_SHEETS // 2}, "seed")
    a = design_descriptors(d)
    q = [a[DESCRIPTOR_NAMES.index(f"q_layer{k}_e")] for k in range(MAX_SHEETS)]
    assert q == d.layer_charge_e() and len(d.layers) == MAX_SHEETS
    assert a[DESCRIPTOR_NAMES.index("q_total_e")] == pytest.approx(sum(q))
    assert a[DESCRIPTOR_NAMES.index("q_dipole_e_nm")] == pytest.approx(-design_descriptors(d.mirrored())[
        DESCRIPTOR_NAMES.index("q_dipole_e_nm")])


def test_members_keep_plus_and_minus_field_correlated(fitted):
    """The members' ln ICR spread is the model's epistemic spread of ln ICR, not that of two independent fluxes:
    for a design that is its own mirror image every member predicts ICR = 1 exactly."""
    from porelab.sim.design import make_design

    model, _, test = fitted
    sym = make_design({"layers": ["COO-", "OH", "COO-"]}, "tiny")
    assert sym.mirrored() == sym
    cond = make_conditions({"electrolyte": test.electrolytes[0], "fields_V_per_nm": [1.0, -1.0]})
    asym = next(d for d in test.designs if d.mirrored() != d)
    q = Samples.from_queries([sym, asym], cond)
    p = model.predict(q)
    on, off, _ = q.icr_pairs()
    mean, std, epi = derive(p, q, on, off, ("log_icr",))["log_icr"]
    assert mean[0] == pytest.approx(0.0, abs=1e-9) and epi[0] == pytest.approx(0.0, abs=1e-9)
    assert std[0] > 0 and epi[1] > 0  # the aleatoric part still spreads it; an asymmetric design is uncertain


def test_gp_members_are_draws_of_its_joint_posterior(samples):
    """The GP's members sample its latent posterior jointly over a design's samples: their mean and covariance
    are sklearn's posterior mean and covariance (without the white noise), up to Monte Carlo error."""
    from porelab.surrogate.targets import SPECIES_NAMES

    train, test = samples.split_designs(0.25, seed=0)
    gp = GPBaseline(max_train=150, max_iter=20, n_draws=4000, symmetric=False, calibrate=False).fit(train)
    q = test.subset_designs([0])  # one design at its six fields
    p = gp.predict(q)
    s = SPECIES_NAMES.index("K+")
    reg = gp.regressors_["K+"]
    mean, cov = reg.predict(gp._x(q), return_cov=True)
    latent = cov - np.eye(len(mean)) * reg.kernel_.k2.noise_level * float(np.ravel(reg._y_train_std)[0]) ** 2
    np.testing.assert_allclose(p.mean[:, s], mean, rtol=1e-9)
    np.testing.assert_allclose(p.epistemic_std[:, s] ** 2, np.diag(latent), rtol=1e-6, atol=1e-12)
    scale = np.diag(latent).max()
    np.testing.assert_allclose(np.cov(p.members_mean[:, :, s].T), latent, atol=0.1 * scale)
    np.testing.assert_allclose(p.members_mean[:, :, s].mean(axis=0), mean, atol=0.1 * np.sqrt(scale))
