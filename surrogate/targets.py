"""Targets: per-species signed flux on an asinh scale, its measurement noise and censoring (no torch here; the
likelihoods of these labels are in surrogate.likelihood).

Currents, ICR, ON current and selectivity are not computed here: they follow from fluxes in
porelab.sim.observables (see surrogate.derived for predictions).

y = asinh(J / scale) with J in ions/ns (positive along +z): linear near zero, sign(J) log(2|J|/scale) for
|J| >> scale, so one scale covers fluxes from 1e-3 to 1e4 ions/ns of either sign. A label whose interval
contains zero (an MD run with too few crossings) is interval-censored: it only says lo <= J <= hi.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from porelab.sim.design import SPECIES

SPECIES_NAMES = tuple(SPECIES)  # the order of every (..., S) array, as porelab.sim.observables expects
Z95 = 1.959963984540054  # the measurement intervals are 95 % intervals


@dataclass(frozen=True)
class FluxTransform:
    """y = asinh(J / scale_per_ns); J in ions/ns."""

    scale_per_ns: float = 0.01

    def forward(self, flux):
        return np.arcsinh(np.asarray(flux, float) / self.scale_per_ns)

    def inverse(self, y):
        return self.scale_per_ns * np.sinh(np.asarray(y, float))

    def label(self, flux: float, ci: tuple[float, float]) -> tuple[float, float, bool, float, float]:
        """(y, sigma_y, censored, y_lo, y_hi) of a flux and its 95 % interval (ions/ns).

        sigma_y is the half-width of the transformed interval / 1.96; censored when the interval contains 0.
        """
        lo, hi = min(ci), max(ci)
        y, y_lo, y_hi = (float(v) for v in self.forward([flux, lo, hi]))
        return y, max((y_hi - y_lo) / (2 * Z95), 0.0), bool(lo <= 0.0 <= hi), y_lo, y_hi
