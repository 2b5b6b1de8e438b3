"""Campaign and design plots (PNG, written atomically, drawn on matplotlib.figure.Figure: no pyplot state): parity,
calibration, learning curve, acquisition scores, an iteration's set of them (`step_plots`), and the Pareto front of
an inverse-design search."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from scipy.stats import norm

from porelab.active_learning.campaign.ledger import MeasuredRow
from porelab.active_learning.campaign.measured import measured
from porelab.base.files import atomic_write_bytes
from porelab.sim.observables import Interval

PARITY_POINTS = 1000  # the newest prospective predictions drawn on the parity plot (calibration uses them all)


def _figure(figsize: tuple[float, float]):
    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def _save(fig: Figure, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())
    return path


def step_plots(d: Path, prospective: list[tuple[MeasuredRow, float, float, float]], iterations: list[dict],
               objective_label: str, best_label: str, scores: np.ndarray | None = None,
               picked: np.ndarray | None = None, acquisition: str | None = None, snapshot=None,
               goal=None) -> list[Path]:
    """An iteration's plots in `d`: parity and calibration of the prospective predictions (iteration.prospective_rows:
    (row, measured, mean, std) each) when there are >= 2; the learning curve over `iterations` (ledger rows with
    metrics); the acquisition scores (n,) with the picks marked, when given. With the study's `goal`, measured
    values carry their 95 % intervals: x error bars on the parity plot and, with the iteration's `snapshot`
    (iteration.Snapshot), the best design so far, ranked by its bound (campaign.measured), with its interval on the
    learning curve. Returns the files written."""
    d.mkdir(parents=True, exist_ok=True)
    y, mu, sd = (np.array([x[k] for x in prospective], float) for k in (1, 2, 3))
    # each measurement read once (the snapshot's cache) when the snapshot was read for the goal
    read = snapshot.reading if snapshot is not None and snapshot.goal == goal else (lambda r: measured(r, goal))
    shown = slice(max(0, len(y) - PARITY_POINTS), None)  # the newest: a long campaign's parity stays legible
    ci = _log_intervals([read(r) for r, *_ in prospective[shown]]) if goal is not None else None
    best = None
    if snapshot is not None and goal is not None:
        best = _best_so_far([read(r) for r in snapshot.measured], goal)
    out = []
    if len(y) >= 2:
        out += [parity(y[shown], mu[shown], sd[shown], d / "parity.png", objective_label, ci, of=len(y)),
                calibration(y, mu, sd, d / "calibration.png")]
    if iterations:
        out.append(learning_curve([it["metrics"].get("completed", 0) for it in iterations],
                                  [it["metrics"].get("heldout_rmse") for it in iterations],
                                  [it["metrics"].get("best_objective") for it in iterations],
                                  d / "learning_curve.png", best_label, best, objective_label))
    if scores is not None and len(scores) and picked is not None:
        out.append(acquisition_scores(scores, picked, d / "acquisition_scores.png", acquisition or ""))
    return out


def _log_intervals(rows: list) -> np.ndarray:
    """(n, 2) ln (low, high) of each Measured's objective (measured with a value: iteration.prospective_rows); low
    NaN when it is not positive (no lower bar), both NaN when unknown."""
    out = np.full((len(rows), 2), np.nan)
    for k, m in enumerate(rows):
        if m is not None:
            o = m.objective
            out[k] = (np.log(o.low) if o.low > 0 else np.nan), np.log(o.high)
    return out


def _best_so_far(rows: list, goal) -> list[Interval | None]:
    """After each of the measurements (dispatch order), the objective of the best so far by its rank bound."""
    out, best = [], None
    for m in rows:
        if m is not None and (best is None or m.rank_bound > best.rank_bound):
            best = m
        out.append(best.objective if best is not None else None)
    return out


def parity(measured: np.ndarray, mean: np.ndarray, std: np.ndarray, path: Path, label: str = "ln ICR",
           measured_ci: np.ndarray | None = None, of: int | None = None) -> Path:
    """Predicted (before the simulation) vs measured values (not bounds), with 95 % bars: the prediction's
    (mean -+ 1.96 std) and, given measured_ci (n, 2) on the same scale, the measurement's. `of`: how many there
    are when these are the newest of them (said in the title)."""
    fig, ax = _figure((4.2, 4))
    z = norm.ppf(0.975)
    xerr = None
    if measured_ci is not None:  # an unknown end draws no bar on that side
        xerr = np.nan_to_num(np.abs(np.vstack([measured - measured_ci[:, 0], measured_ci[:, 1] - measured])))
    ax.errorbar(measured, mean, xerr=xerr, yerr=z * std, fmt="o", ms=4, alpha=0.8, elinewidth=0.8)
    lo, hi = np.nanmin(np.r_[measured, mean]), np.nanmax(np.r_[measured, mean])
    pad = 0.05 * (hi - lo + 1e-9)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    ax.set(xlabel=f"measured {label}", ylabel=f"predicted {label}", title="parity (prospective, 95 % bars)"
           + (f"\nnewest {len(measured)} of {of}" if of and of > len(measured) else ""))
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
                   best_label: str = "best ICR", best_so_far: list[Interval | None] | None = None,
                   objective_label: str = "ln ICR") -> Path:
    """Held-out RMSE of the objective (on its ln scale, `objective_label`) and the best objective found vs the
    number of evaluations. `best_so_far` (one Interval per measurement, see step_plots) draws the best design so far
    with its 95 % interval as a band (a censored one as lower-bound triangles) instead of the per-iteration `best`
    points."""
    fig, ax = _figure((5, 3.6))
    pts = [(n, r) for n, r in zip(n_eval, rmse, strict=True) if r is not None]
    if pts:
        ax.plot(*zip(*pts, strict=True), "o-", color="C0")
    ax.set(xlabel="evaluations", ylabel=f"held-out RMSE ({objective_label})")
    ax2 = ax.twinx()
    if best_so_far:  # drawn at its changes (and its end): a step curve of 10^4 evaluations has a few dozen
        k = [i for i, b in enumerate(best_so_far) if i in (0, len(best_so_far) - 1) or b != best_so_far[i - 1]]
        best_so_far, k = [best_so_far[i] for i in k], np.array(k) + 1
        have = np.array([b is not None for b in best_so_far])
        val = np.array([b.value if b is not None else np.nan for b in best_so_far])
        low = np.array([b.low if b is not None else np.nan for b in best_so_far])
        high = np.array([b.high if b is not None and b.high is not None else np.nan for b in best_so_far])
        cens = np.array([b is not None and b.censored for b in best_so_far])
        ax2.fill_between(k, low, np.where(cens, np.nan, high), step="post", color="C1", alpha=0.25, lw=0,
                         label="95 % interval")
        ax2.step(k[have & ~cens], val[have & ~cens], where="post", color="C1", label=f"{best_label}, by its bound")
        if cens.any():
            ax2.plot(k[cens], low[cens], "^", ms=4, color="C1", label="lower bound only")
        if np.nanmin(np.r_[low, val]) > 0:
            ax2.set_yscale("log")
        ax2.legend(fontsize=7, loc="lower right")
    else:
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
    ax.vlines(scores[picked], 0, 1, transform=ax.get_xaxis_transform(), color="C3", lw=1)
    ax.set(xlabel=f"{name} score", ylabel="candidates", title=f"{len(picked)} picks (red) of {len(scores)}")
    fig.tight_layout()
    return _save(fig, path)


def pareto(obj: np.ndarray, on: np.ndarray, front: np.ndarray, top: np.ndarray, path: Path, label: str = "ICR",
           on_min: float | None = None, verified: list[tuple[int, Interval, Interval]] | None = None,
           max_background: int = 20000) -> Path:
    """Objective vs ON current (nA), log axes. obj, on: (n, 3) arrays of (mean, low, high) in natural units (the
    95 % epistemic interval); front: Pareto-front indices (drawn with error bars); top: the ranked top (labelled by
    rank); verified: (candidate index, measured objective, measured ON current), measured values with their 95 %
    intervals, drawn as stars with error bars (a censored objective as an upward triangle at its lower bound)."""
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
        ax.plot([on[i, 0], x.value], [obj[i, 0], y.value], c="tab:red", lw=0.7)
        measured_point(ax, x, y, c="tab:red", ms=10, label="verified (oracle, 95 % interval)" if k == 0 else None)
    if on_min:
        ax.axvline(on_min, c="k", ls=":", lw=1, label=f"ON current >= {on_min:g} nA")
    ax.set(xscale="log", yscale="log", xlabel="ON current (nA)", ylabel=label,
           title=f"{label} vs ON current (surrogate mean, bars: 95 % epistemic interval)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def measured_point(ax, x: Interval, y: Interval, c: str, ms: float = 6, label: str | None = None) -> None:
    """A measured (x, y) with its 95 % intervals as error bars; a censored y (only a lower bound known) as an upward
    triangle at that bound."""
    xerr = None if x.censored else [[x.value - x.low], [x.high - x.value]]
    if y.censored:
        ax.errorbar([x.value], [y.low], xerr=xerr, fmt="^", ms=ms * 0.7, c=c, elinewidth=0.8, label=label)
    else:
        ax.errorbar([x.value], [y.value], xerr=xerr, yerr=[[y.value - y.low], [y.high - y.value]], fmt="*", ms=ms,
                    c=c, elinewidth=0.8, label=label)
