"""The settle rule: run until the ions' polarisation relative to the membrane is stationary (docs/physics.md §3).

Used twice by the MD protocol: at zero field after the minimum equilibration, and after each field is switched on
(before the production window opens). The observable is Q_pol (e), the charge-weighted position of the ions in
their reservoir (`sim.transport.CrossingCounter.polarisation_e`): the charge on the membrane's capacitor. After the
field is switched on it relaxes by 1-5 e over tens of ps on the tiny preset (benchmarks/results/md_null); counted as
current, that charging looks like nA of transport.

Rule: after each half window, compare the mean of Q_pol over the last `window_ps` with its mean over the window
before; the polarisation is stationary when they differ by at most max(tol_e, 2 standard errors of the difference)
(the standard errors from the spread of 1 ps block means). The check starts at max(min_ps, 2 windows) and gives up
at max_ps (`settled` False, recorded with the result). Units: ps, e.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

BLOCK_PS = 1.0


def _block_means(t: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Means of q over consecutive BLOCK_PS blocks of times t (ps)."""
    k = np.floor((t - t[0]) / BLOCK_PS).astype(int)
    return np.bincount(k, weights=q) / np.maximum(np.bincount(k), 1)


def stationary(dt_ps, q_e, window_ps: float, tol_e: float) -> bool:
    """Whether the series q_e (n,) of Q_pol (e), sampled after steps dt_ps (n,) ps, is stationary by the rule."""
    t = np.cumsum(np.asarray(dt_ps, dtype=float))
    q = np.asarray(q_e, dtype=float)
    if t.size < 4 or t[-1] < 2 * window_ps - 1e-9:
        return False
    end = t[-1]
    a = q[(t > end - 2 * window_ps) & (t <= end - window_ps)]
    b = q[t > end - window_ps]
    ta, tb = t[(t > end - 2 * window_ps) & (t <= end - window_ps)], t[t > end - window_ps]
    if a.size < 2 or b.size < 2:
        return False
    ma, mb = _block_means(ta, a), _block_means(tb, b)
    se = math.sqrt(ma.var(ddof=1) / ma.size + mb.var(ddof=1) / mb.size) if min(ma.size, mb.size) >= 2 else 0.0
    return abs(b.mean() - a.mean()) <= max(tol_e, 2 * se)


def settle(advance: Callable[[float], None], series: Callable[[], tuple[list, list]], window_ps: float,
           tol_e: float, min_ps: float, max_ps: float, done_ps: float = 0.0) -> tuple[float, bool]:
    """Advance in half windows until the polarisation is stationary (checked from max(min_ps, 2 windows) on) or
    max_ps is reached.

    advance(ps): run that much more (and record it); series(): (dt_ps, Q_pol) recorded since the start of the
    settle; done_ps: ps already run (a resumed settle). Returns (ps run in all, settled).
    """
    t = done_ps
    step = window_ps / 2
    while True:
        if t >= min(max(min_ps, 2 * window_ps), max_ps) - 1e-9:
            if stationary(*series(), window_ps, tol_e):
                return t, True
            if t >= max_ps - 1e-9:
                return t, False
        n = min(step, max_ps - t) if t < max_ps else step
        advance(n)
        t += n
