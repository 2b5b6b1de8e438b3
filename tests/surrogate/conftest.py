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
