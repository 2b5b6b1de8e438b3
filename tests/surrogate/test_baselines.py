import numpy as np
import pytest
from sklearn.base import clone

from porelab.sim.design import make_conditions
from porelab.surrogate.baselines import DESCRIPTOR_NAMES, GPBaseline, RFBaseline, descriptors, design_descriptors
from porelab.surrogate.dataset import Samples
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
    assert isinstance(p, Prediction) and p.mean.shape == test.y.shape
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
