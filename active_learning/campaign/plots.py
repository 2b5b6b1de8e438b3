"""Campaign and design plots (PNG, written atomically, drawn on matplotlib.figure.Figure: no pyplot state): parity,
calibration, learning curve, acquisition scores, an iteration's set of them (`step_plots`), and the Pareto front of
an inverse-design search."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from porelab.sim.measurement import atomic_write_bytes


def _figure(figsize: tuple[float, float]):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def step_plots(d: Path, prospective: tuple[np.ndarray, np.ndarray, np.ndarray], iterations: list[dict],
               objective_label: str, best_label: str, scores: np.ndarray | None = None,
               picked: np.ndarray | None = None, acquisition: str | None = None) -> list[Path]:
    """An iteration's plots in `d`: parity and calibration of the prospective predictions (measured, mean, std),
    each (n,), when n >= 2; the learning curve over `iterations` (ledger rows with metrics); the acquisition scores
    (n,) with the picks marked, when given. Returns the files written."""
    d.mkdir(parents=True, exist_ok=True)
    y, mu, sd = prospective
    out = []
    if len(y) >= 2:
        out += [parity(y, mu, sd, d / "parity.png", objective_label), calibration(y, mu, sd, d / "calibration.png")]
    if iterations:
        out.append(learning_curve([it["metrics"].get("completed", 0) for it in iterations],
                                  [it["metrics"].get("heldout_rmse") for it in iterations],
                                  [it["metrics"].get("best_objective") for it in iterations],
                                  d / "learning_curve.png", best_label))
    if scores is not None and len(scores) and picked is not None:
        out.append(acquisition_scores(scores, picked, d / "acquisition_scores.png", acquisition or ""))
    return out


def parity(measured: np.ndarray, mean: np.ndarray, std: np.ndarray, path: Path, label: str = "ln ICR") -> Path:
    """Predicted (before the simulation) vs measured, +-1 std bars."""
    fig, ax = _figure((4.2, 4))
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
    fig, ax = _figure((4.2, 4))
    ax.plot(nominal, observed, "o-", ms=3)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="nominal coverage", ylabel="observed coverage", title=f"calibration (n={len(z)})",
           xlim=(0, 1), ylim=(0, 1))
    fig.tight_layout()
    return _save(fig, path)


def learning_curve(n_eval: list[int], rmse: list[float | None], best: list[float | None], path: Path,
                   best_label: str = "best ICR") -> Path:
    """Held-out RMSE and the best objective found vs the number of evaluations."""
    fig, ax = _figure((5, 3.6))
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
    fig, ax = _figure((5, 3.6))
    ax.hist(scores, bins=40, color="0.7")
    for s in scores[picked]:
        ax.axvline(s, color="C3", lw=1)
    ax.set(xlabel=f"{name} score", ylabel="candidates", title=f"{len(picked)} picks (red) of {len(scores)}")
    fig.tight_layout()
    return _save(fig, path)


def pareto(obj: np.ndarray, on: np.ndarray, front: np.ndarray, top: np.ndarray, path: Path, label: str = "ICR",
           on_min: float | None = None, verified: list[tuple[int, float, float]] | None = None,
           max_background: int = 20000) -> Path:
    """Objective vs ON current (nA), log axes. obj, on: (n, 3) arrays of (mean, low, high) in natural units;
    front: Pareto-front indices (drawn with error bars); top: the ranked top (labelled by rank);
    verified: (candidate index, measured objective, measured ON current) drawn as stars."""
    fig, ax = _figure((6.4, 4.8))
    rng = np.random.default_rng(0)
    bg = np.arange(len(obj)) if len(obj) <= max_background else rng.choice(len(obj), max_background, replace=False)
    ax.scatter(on[bg, 0], obj[bg, 0], s=3, c="0.75", lw=0, label=f"scored ({len(obj):,})", rasterized=True)

    def bars(idx, **kw):
        ax.errorbar(on[idx, 0], obj[idx, 0], xerr=[on[idx, 0] - on[idx, 1], on[idx, 2] - on[idx, 0]],
                    yerr=[obj[idx, 0] - obj[idx, 1], obj[idx, 2] - obj[idx, 0]], ls="none", **kw)

    bars(front, fmt="o", ms=4, c="tab:blue", elinewidth=0.8, alpha=0.8, label="Pareto front (risk-aware)")
    ax.plot(on[top, 0], obj[top, 0], "s", ms=5, mfc="none", c="tab:orange", label="top ranked")
    for r, i in enumerate(top[:10]):
        ax.annotate(str(r + 1), (on[i, 0], obj[i, 0]), xytext=(3, 3), textcoords="offset points", fontsize=7)
    for k, (i, y, x) in enumerate(verified or []):
        ax.plot([on[i, 0], x], [obj[i, 0], y], c="tab:red", lw=0.7)
        ax.plot(x, y, "*", ms=10, c="tab:red", label="verified (oracle)" if k == 0 else None)
    if on_min:
        ax.axvline(on_min, c="k", ls=":", lw=1, label=f"ON current >= {on_min:g} nA")
    ax.set(xscale="log", yscale="log", xlabel="ON current (nA)", ylabel=label,
           title=f"{label} vs ON current (surrogate mean, bars ±1 epistemic sd)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)
