"""Iteration plots (PNG, written atomically): parity, calibration, learning curve, acquisition scores."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import norm  # noqa: E402

from sim.measurement import atomic_write_bytes  # noqa: E402


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def parity(measured: np.ndarray, mean: np.ndarray, std: np.ndarray, path: Path, label: str = "ln ICR") -> Path:
    """Predicted (before the simulation) vs measured, +-1 std bars."""
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.errorbar(measured, mean, yerr=std, fmt="o", ms=4, alpha=0.8)
    lo, hi = np.nanmin(np.r_[measured, mean]), np.nanmax(np.r_[measured, mean])
    pad = 0.05 * (hi - lo + 1e-9)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    ax.set(xlabel=f"measured {label}", ylabel=f"predicted {label}", title="parity (prospective)")
    fig.tight_layout()
    return _save(fig, path)


def calibration(measured: np.ndarray, mean: np.ndarray, std: np.ndarray, path: Path) -> Path:
    """Observed coverage of central intervals vs nominal (a calibrated model lies on the diagonal)."""
    z = np.abs(measured - mean) / np.maximum(std, 1e-12)
    nominal = np.linspace(0.05, 0.95, 19)
    observed = [np.mean(z <= norm.ppf(0.5 + p / 2)) for p in nominal]
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot(nominal, observed, "o-", ms=3)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="nominal coverage", ylabel="observed coverage", title=f"calibration (n={len(z)})",
           xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    return _save(fig, path)


def learning_curve(n_eval: list[int], rmse: list[float | None], best: list[float | None], path: Path,
                   best_label: str = "best ICR") -> Path:
    """Held-out RMSE and the best objective found vs the number of evaluations."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    pts = [(n, r) for n, r in zip(n_eval, rmse, strict=True) if r is not None]
    if pts:
        ax.plot(*zip(*pts, strict=True), "o-", color="C0")
    ax.set(xlabel="evaluations", ylabel="held-out RMSE (ln ICR)")
    ax2 = ax.twinx()
    pts = [(n, b) for n, b in zip(n_eval, best, strict=True) if b is not None]
    if pts:
        ax2.plot(*zip(*pts, strict=True), "s-", color="C1")
    ax2.set_ylabel(best_label, color="C1")
    fig.tight_layout()
    return _save(fig, path)


def acquisition_scores(scores: np.ndarray, picked: np.ndarray, path: Path, name: str) -> Path:
    """Histogram of the pool's scores with the picks marked."""
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.hist(scores, bins=40, color="0.7")
    for s in scores[picked]:
        ax.axvline(s, color="C3", lw=1)
    ax.set(xlabel=f"{name} score", ylabel="candidates", title=f"{len(picked)} picks (red) of {len(scores)}")
    fig.tight_layout()
    return _save(fig, path)
