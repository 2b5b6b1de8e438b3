"""Shared fixtures: a small directory of continuum measurements (built once per session)."""

import numpy as np
import pytest

from porelab.sim.continuum import run_continuum
from porelab.sim.design import design_id, make_conditions, make_design
from porelab.surrogate.dataset import Samples

FIELDS = [0.3, -0.3, 1.0, -1.0, 3.0, -3.0]


def small_designs(n: int, seed: int = 0):
    """n varied tiny-preset designs with 1-4 layers and their KCl conditions."""
    rng = np.random.default_rng(seed)
    groups = ["COO-", "NH3+", "OH", "none"]
    out = []
    while len(out) < n:
        layers = [str(g) for g in rng.choice(groups, int(rng.integers(1, 5)))]
        w = float(np.round(rng.uniform(0.9, 1.5), 2))
        d = make_design({"layers": layers, "spacing_nm": float(np.round(rng.uniform(0.3, 0.8), 2)),
                         "groups_per_rim": int(rng.integers(2, 6)), "pore": {"width_nm": w, "height_nm": w}},
                        "tiny")
        c = float(np.round(rng.uniform(0.1, 1.0), 2))
        out.append((d, make_conditions({"electrolyte": {"K+": c, "Cl-": c}, "fields_V_per_nm": FIELDS})))
    return out


@pytest.fixture(scope="session")
def measurement_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("measurements")
    for d, c in small_designs(24):
        m = run_continuum(d, c)
        assert m.status == "ok", m.error
        (root / design_id(d, c)).mkdir()
        m.save(root / design_id(d, c) / "measurement.json")
    return root


@pytest.fixture(scope="session")
def measurements(measurement_dir):
    from porelab.sim.measurement import Measurement

    return [Measurement.load(p) for p in sorted(measurement_dir.rglob("measurement.json"))]


@pytest.fixture(scope="session")
def samples(measurements):
    return Samples.from_measurements(measurements)


def synthetic_md(m, rng, gain: float = 0.5, rel: float = 0.1):
    """A fake MD measurement of continuum measurement m with a known gap: every flux times gain x (1 + 0.5 x the
    design's COO- fraction), times 1 + N(0, rel/2) noise, with a +-rel interval (a 95 % one of that noise)."""
    from porelab.sim.observables import icr_results

    g = gain * (1 + 0.5 * sum(x == "COO-" for x in m.design.layers) / len(m.design.layers))
    fields = []
    for f in m.fields:
        sp = {}
        for s, r in f.species.items():
            j = g * r.flux_per_ns * (1 + rel / 2 * rng.standard_normal())
            h = rel * abs(j) + 1e-3
            sp[s] = r.model_copy(update={"flux_per_ns": j, "flux_ci_per_ns": (j - h, j + h)})
        cur = sum(v * 0.1602176634 * sp[s].flux_per_ns for s, v in (("K+", 1), ("Cl-", -1)))
        fields.append(f.model_copy(update={"species": sp, "current_nA": cur, "current_ci_nA": (cur, cur)}))
    return m.model_copy(update={"fidelity": "md", "fields": fields, "icr": icr_results(fields), "oracle": {}})


@pytest.fixture(scope="session")
def two_fidelities():
    """(continuum measurements of 36 designs at +-2 V/nm, synthetic MD of the same designs)."""
    rng = np.random.default_rng(5)
    cont = [run_continuum(d, c.with_fields([2.0, -2.0])) for d, c in small_designs(36, seed=11)]
    assert all(m.status == "ok" for m in cont)
    return cont, [synthetic_md(m, rng) for m in cont]
