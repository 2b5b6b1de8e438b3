"""Accuracy and calibration metrics, and parity/calibration plots (PNG, drawn on matplotlib.figure.Figure, so
no global matplotlib state is touched).

The metric functions take flat arrays (the caller selects labelled, uncensored entries): y true, mean and std
predicted. ln ICR, measured and predicted, comes from porelab.sim.observables (via surrogate.derived).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
from scipy import stats

from porelab.sim.observables import current_from_fluxes_nA, log_icr
from porelab.surrogate.dataset import Samples
from porelab.surrogate.derived import derive
from porelab.surrogate.prediction import Prediction

Z68 = stats.norm.ppf(0.84)
Z95 = stats.norm.ppf(0.975)


def gaussian_nll(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Gaussian negative log-likelihood of each y (n,) under N(mean, std^2), std floored at 1e-12."""
    y, mean, std = (np.asarray(a, float).ravel() for a in (y, mean, std))
    std = np.maximum(std, 1e-12)
    return 0.5 * np.log(2 * math.pi * std**2) + 0.5 * ((y - mean) / std) ** 2


def regression_metrics(y: np.ndarray, mean: np.ndarray, std: np.ndarray) -> dict[str, float]:
    """rmse, mae, r2, nll (mean Gaussian NLL), coverage_68/95 (fraction inside mean +- z std), spearman between
    std and |error|, and n. Empty input gives NaNs."""
    y, mean, std = (np.asarray(a, float).ravel() for a in (y, mean, std))
    n = len(y)
    if n == 0:
        return {k: math.nan for k in ("rmse", "mae", "r2", "nll", "coverage_68", "coverage_95", "spearman")} | {
            "n": 0}
    err = y - mean
    ss_tot = float(((y - y.mean()) ** 2).sum())
    std = np.maximum(std, 1e-12)
    rho = stats.spearmanr(std, np.abs(err)).statistic if n > 2 and np.ptp(std) > 0 else math.nan
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "r2": float(1 - (err**2).sum() / ss_tot) if ss_tot > 0 else math.nan,
        "nll": float(np.mean(gaussian_nll(y, mean, std))),
        "coverage_68": float(np.mean(np.abs(err) <= Z68 * std)),
        "coverage_95": float(np.mean(np.abs(err) <= Z95 * std)),
        "spearman": float(rho),
        "n": int(n),
    }


def metric_intervals(y: np.ndarray, mean: np.ndarray, std: np.ndarray, level: float = 0.95,
                     n_resamples: int = 1000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (entries resampled, scipy.stats.bootstrap) of regression_metrics' rmse, r2,
    nll, coverage_68 and coverage_95 for y, mean, std (n,); NaN bounds with fewer than 5 entries."""
    y, mean, std = (np.asarray(a, float).ravel() for a in (y, mean, std))
    names = ("rmse", "r2", "nll", "coverage_68", "coverage_95")
    if len(y) < 5:
        return dict.fromkeys(names, (math.nan, math.nan))
    err, std = y - mean, np.maximum(std, 1e-12)

    def r2(a, e, axis):
        ss_tot = ((a - a.mean(axis=axis, keepdims=True)) ** 2).sum(axis=axis)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(ss_tot > 0, 1 - (e**2).sum(axis=axis) / ss_tot, np.nan)

    per_entry = {"rmse": ((err,), lambda e, axis: np.sqrt(np.mean(e**2, axis=axis))), "r2": ((y, err), r2),
                 "nll": ((gaussian_nll(y, mean, std),), np.mean),
                 "coverage_68": (((np.abs(err) <= Z68 * std).astype(float),), np.mean),
                 "coverage_95": (((np.abs(err) <= Z95 * std).astype(float),), np.mean)}
    out = {}
    for name in names:
        data, stat = per_entry[name]
        with warnings.catch_warnings():  # all resamples alike (e.g. no interval covers): the interval is a point
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            ci = stats.bootstrap(data, stat, paired=True, vectorized=True, n_resamples=n_resamples, batch=100,
                                 confidence_level=level, method="percentile", random_state=seed).confidence_interval
        out[name] = (float(ci.low), float(ci.high))
    return out


def flux_arrays(samples: Samples, pred: Prediction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y, mean, std) of every labelled, uncensored (sample, species) entry; std includes the label noise."""
    sel = samples.mask & ~samples.censored
    std = np.sqrt(pred.std**2 + np.nan_to_num(samples.sigma) ** 2)
    return samples.y[sel], pred.mean[sel], std[sel]


def _uncensored_pairs(samples: Samples) -> tuple[np.ndarray, np.ndarray]:
    """(i_on, i_off) of every ±E pair whose measured ICR is not censored."""
    on, off, _ = samples.icr_pairs()
    cens = {(r["group"], round(r["field_abs"], 9)): r["censored"] for r in samples.icr_labels}
    keep = np.array([not cens.get((int(samples.group[i]), round(float(samples.field[i]), 9)), True) for i in on],
                    bool)
    return on[keep], off[keep]


def icr_rows(samples: Samples) -> np.ndarray:
    """The +|E| rows of the pairs icr_arrays returns, in its order."""
    return _uncensored_pairs(samples)[0]


def icr_arrays(samples: Samples, pred: Prediction, n_draws: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measured, predicted, predicted std) of ln ICR for every ±E pair whose measured ICR is not censored."""
    on, off = _uncensored_pairs(samples)
    if len(on) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    i_meas = current_from_fluxes_nA(samples.transform.inverse(samples.y), samples.species_present)
    measured = log_icr(i_meas[on], i_meas[off])
    point, sd, _ = derive(pred, samples, on, off, ("log_icr",), n_draws=n_draws)["log_icr"]
    return measured, point, sd


def icr_calibration_factor(samples: Samples, pred: Prediction, bounds: tuple[float, float] = (0.2, 20.0)) -> float:
    """Factor on the derived ln ICR std that maximises the Gaussian likelihood of held-out ICRs (1 if < 3)."""
    measured, point, sd = icr_arrays(samples, pred)
    if len(measured) < 3:
        return 1.0
    z2 = ((measured - point) / (sd / pred.icr_factor(icr_rows(samples))).clip(min=1e-9)) ** 2
    return float(np.clip(np.sqrt(np.mean(z2)), *bounds))


def evaluate(samples: Samples, pred: Prediction) -> dict[str, float]:
    """Flat dict of metrics: flux_* on the asinh scale and log_icr_* on ln ICR."""
    out = {f"flux_{k}": v for k, v in regression_metrics(*flux_arrays(samples, pred)).items()}
    out |= {f"log_icr_{k}": v for k, v in regression_metrics(*icr_arrays(samples, pred)).items()}
    return out


# --- plots -----------------------------------------------------------------------------------------------
def parity_plot(y: np.ndarray, mean: np.ndarray, std: np.ndarray, path: str | Path, label: str,
                title: str = "") -> None:
    """Predicted vs measured with 1-sigma error bars and the y = x line."""
    from matplotlib.figure import Figure  # matplotlib only when a plot is drawn

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.add_subplot()
    ax.errorbar(y, mean, yerr=std, fmt="o", ms=2.5, alpha=0.5, elinewidth=0.6, color="tab:blue")
    lo, hi = (float(min(y.min(), mean.min())), float(max(y.max(), mean.max()))) if len(y) else (0.0, 1.0)
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel(f"measured {label}")
    ax.set_ylabel(f"predicted {label}")
    r = regression_metrics(y, mean, std)
    ax.set_title(f"{title}\nR²={r['r2']:.3f}  RMSE={r['rmse']:.3g}  n={r['n']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def calibration_curve(y: np.ndarray, mean: np.ndarray, std: np.ndarray,
                      levels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nominal central-interval levels and the observed fraction of y inside them."""
    levels = np.linspace(0.05, 0.95, 19) if levels is None else levels
    z = np.abs(y - mean) / np.maximum(std, 1e-12)
    return levels, np.array([np.mean(z <= stats.norm.ppf(0.5 + p / 2)) for p in levels])


def calibration_plot(curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str | Path,
                     title: str = "") -> None:
    """Observed vs nominal coverage of central Gaussian intervals, one line per named (y, mean, std)."""
    from matplotlib.figure import Figure  # matplotlib only when a plot is drawn

    fig = Figure(figsize=(4.5, 4.5), dpi=120)
    ax = fig.add_subplot()
    for name, (y, mean, std) in curves.items():
        p, obs = calibration_curve(y, mean, std)
        ax.plot(p, obs, "o-", ms=3, label=name)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set_xlabel("nominal coverage")
    ax.set_ylabel("observed coverage")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
