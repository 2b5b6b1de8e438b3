import math
import subprocess
import sys

import numpy as np
import pytest

from porelab.surrogate.metrics import calibration_curve, metric_intervals, regression_metrics


def test_perfect_predictions():
    y = np.linspace(-5, 5, 50)
    r = regression_metrics(y, y, np.full(50, 0.1))
    assert r["r2"] == 1.0 and r["rmse"] == 0.0 and r["mae"] == 0.0
    assert r["coverage_68"] == 1.0 and r["coverage_95"] == 1.0 and r["n"] == 50


def test_predicting_the_mean_gives_r2_zero():
    y = np.random.default_rng(0).normal(size=100)
    r = regression_metrics(y, np.full(100, y.mean()), np.ones(100))
    assert r["r2"] == pytest.approx(0.0, abs=1e-12)
    assert r["rmse"] == pytest.approx(y.std())


def test_exact_gaussian_predictions_are_calibrated():
    rng = np.random.default_rng(1)
    n = 40_000
    mean, std = rng.normal(size=n), rng.uniform(0.1, 2.0, n)
    y = mean + std * rng.standard_normal(n)
    r = regression_metrics(y, mean, std)
    assert r["coverage_68"] == pytest.approx(0.6827, abs=0.01)
    assert r["coverage_95"] == pytest.approx(0.95, abs=0.006)
    assert r["nll"] == pytest.approx(np.mean(0.5 * np.log(2 * math.pi * std**2)) + 0.5, abs=0.02)
    assert r["spearman"] > 0.3  # larger predicted std, larger error
    p, obs = calibration_curve(y, mean, std)
    np.testing.assert_allclose(obs, p, atol=0.015)


def test_overconfident_predictions_undercover():
    rng = np.random.default_rng(2)
    y = rng.normal(size=5000)
    r = regression_metrics(y, np.zeros(5000), np.full(5000, 0.5))
    assert r["coverage_95"] < 0.75 and r["spearman"] != r["spearman"]  # constant std: no ranking (NaN)


def test_metric_intervals_cover_the_known_answers():
    """Errors N(0, 1) predicted with std 1: the true RMSE is 1, NLL 0.5 ln(2 pi e) = 1.419, 68 % coverage 0.683.
    Over 200 replicates of 150 entries each 95 % interval holds its true value in 0.9-0.99 of them (0.935-0.96
    measured; a percentile bootstrap undercovers a little), and each interval holds the point estimate."""
    rng = np.random.default_rng(3)
    truth = {"rmse": 1.0, "nll": 0.5 * math.log(2 * math.pi * math.e), "coverage_68": 0.6827}
    hits = dict.fromkeys(truth, 0)
    for _ in range(200):
        y, mu = rng.normal(size=150), np.zeros(150)
        ci, point = metric_intervals(y, mu, np.ones(150)), regression_metrics(y, mu, np.ones(150))
        for k, v in truth.items():
            hits[k] += ci[k][0] <= v <= ci[k][1]
            assert ci[k][0] <= point[k] <= ci[k][1]
    assert all(0.9 <= h / 200 <= 0.99 for h in hits.values()), hits
    assert all(math.isnan(lo) and math.isnan(hi) for lo, hi in metric_intervals(y[:4], mu[:4], np.ones(4)).values())


def test_plots_are_written_without_touching_matplotlib_state(tmp_path):
    """Plots go to matplotlib.figure.Figure: no backend chosen (matplotlib.use), no pyplot (checked in a fresh
    interpreter, where nothing else has chosen one yet)."""
    code = f"""
import sys
import matplotlib
import numpy as np
from porelab.surrogate.metrics import calibration_plot, parity_plot
y = np.linspace(0, 1, 20)
parity_plot(y, y + 0.1, np.full(20, 0.1), {str(tmp_path / "p.png")!r}, "y")
calibration_plot({{"a": (y, y, np.full(20, 0.1))}}, {str(tmp_path / "c.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "pyplot imported"
assert matplotlib.rcParams._get_backend_or_none() is None, "a backend was chosen"
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p.png").stat().st_size > 1000 and (tmp_path / "c.png").stat().st_size > 1000
