import shutil

import numpy as np
import pytest

from porelab.surrogate.dataset import Samples, load_dataset
from porelab.surrogate.graph import GraphSettings
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform


def test_samples_from_measurements(measurements, samples):
    n_fields = sum(len(m.fields) for m in measurements)
    assert len(samples) == n_fields and samples.n_designs == len(measurements)
    k, cl = SPECIES_NAMES.index("K+"), SPECIES_NAMES.index("Cl-")
    assert samples.mask[:, [k, cl]].all() and samples.mask.sum() == 2 * n_fields  # only KCl present
    m0 = measurements[0]
    rows = np.flatnonzero(samples.group == 0)
    for i in rows:
        j = m0.field(samples.field[i]).species["K+"].flux_per_ns
        assert samples.y[i, k] == pytest.approx(np.arcsinh(j / 0.01))
    on, off, e = samples.icr_pairs()
    assert len(on) == 3 * len(measurements)
    np.testing.assert_allclose(samples.field[on], -samples.field[off])
    assert np.all(samples.group[on] == samples.group[off])


def test_split_holds_out_whole_designs(samples):
    train, test = samples.split_designs(0.25, seed=3)
    assert train.n_designs + test.n_designs == samples.n_designs and test.n_designs == 6
    assert not set(train.designs) & set(test.designs)
    assert len(train) + len(test) == len(samples)
    assert len(test.icr_pairs()[0]) == 3 * test.n_designs


def test_queries_have_no_labels(measurements):
    d, c = measurements[0].design, measurements[0].conditions
    q = Samples.from_queries([d, d.mirrored()], c)
    assert len(q) == 2 * len(c.fields_V_per_nm) and q.y is None and q.n_designs == 2


def test_processed_cache_rebuilds_on_featuriser_mismatch(measurement_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(measurement_dir, data)
    cache = tmp_path / "cache"
    a = load_dataset(data, cache_dir=cache)
    assert load_dataset.last_rebuilt and (cache / "meta.json").exists()
    b = load_dataset(data, cache_dir=cache)
    assert not load_dataset.last_rebuilt  # same settings and sources: read back
    np.testing.assert_array_equal(a.y, b.y)
    assert all((ga.x == gb.x).all() for ga, gb in zip(a.graphs(), b.graphs(), strict=True))
    c = load_dataset(data, GraphSettings(shell_nm=0.2), cache_dir=cache)
    assert load_dataset.last_rebuilt  # featuriser hash changed
    assert sum(g.x.shape[0] for g in c.graphs()) > sum(g.x.shape[0] for g in a.graphs())
    load_dataset(data, GraphSettings(shell_nm=0.2), FluxTransform(0.1), cache_dir=cache)
    assert load_dataset.last_rebuilt  # target scale changed
    shutil.rmtree(next(p for p in data.iterdir() if p.is_dir()))
    d = load_dataset(data, GraphSettings(shell_nm=0.2), FluxTransform(0.1), cache_dir=cache)
    assert load_dataset.last_rebuilt and d.n_designs == a.n_designs - 1  # sources changed
