import numpy as np
import pytest

from porelab.surrogate.novelty import NoveltyFloor


def test_floor_is_zero_at_training_designs_and_the_label_spread_far_away():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 3))
    y = rng.normal(2.0, 0.5, size=20)
    f = NoveltyFloor(x, {"log_icr": y})
    np.testing.assert_allclose(f.std(x)["log_icr"], 0.0, atol=1e-12)
    far = f.std(x[:1] + 1e3)["log_icr"]
    np.testing.assert_allclose(far, np.std(y), rtol=1e-9)  # the spread of what was measured


def test_floor_grows_with_distance_on_the_data_scale():
    x = np.array([[0.0, 5.0], [1.0, 5.0], [3.0, 5.0]])  # second column constant: ignored
    f = NoveltyFloor(x, {"t": np.array([0.0, 1.0, 2.0])})
    sd = x[:, 0].std()
    assert f.length == pytest.approx(np.median([1.0, 1.0, 2.0]) / sd)  # median nearest-neighbour distance
    d = np.linspace(0.0, 1.0, 6)
    s = f.std(np.column_stack([3.0 + d, np.full(6, 5.0)]))["t"]
    assert np.all(np.diff(s) > 0) and s[0] == 0.0
    expected = np.sqrt(np.var([0.0, 1.0, 2.0]) * (1 - np.exp(-(d / sd) ** 2 / (2 * f.length**2))))
    np.testing.assert_allclose(s, expected, rtol=1e-9)


def test_refuses_fewer_than_two_designs_and_a_single_label_gives_no_floor():
    with pytest.raises(ValueError, match="at least 2 training designs"):
        NoveltyFloor(np.zeros((1, 3)), {"t": np.zeros(1)})
    f = NoveltyFloor(np.eye(3), {"t": np.array([np.nan, np.nan, 1.0])})
    assert np.all(f.std(np.full((2, 3), 9.0))["t"] == 0.0)


def test_nearest_neighbours_match_every_pairwise_distance_duplicates_included():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(1)
    x = np.vstack([rng.integers(0, 3, size=(300, 6)).astype(float), np.zeros((2, 6))])  # ties and a duplicate
    f = NoveltyFloor(x, {})
    z = (x - x.mean(axis=0)) / x.std(axis=0)
    d = cdist(z, z)
    np.fill_diagonal(d, np.inf)
    nearest = d.min(axis=1)
    assert f.length == pytest.approx(np.median(nearest[nearest > 0]))
    q = rng.normal(size=(50, 6))
    brute = np.exp(-cdist((q - x.mean(axis=0)) / x.std(axis=0), z, "sqeuclidean").min(axis=1) / (2 * f.length**2))
    np.testing.assert_allclose(f.similarity(q), brute, rtol=1e-10)
