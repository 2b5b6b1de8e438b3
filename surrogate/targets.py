"""Targets: per-species signed flux on an asinh scale, its measurement noise, censoring and the likelihoods.

y = asinh(J / scale) with J in ions/ns (positive along +z): linear near zero, sign(J) log(2|J|/scale) for
|J| >> scale, so one scale covers fluxes from 1e-3 to 1e4 ions/ns of either sign. A label whose interval
contains zero (an MD run with too few crossings) is interval-censored: it only says lo <= J <= hi.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from porelab.sim.design import SPECIES
from porelab.sim.measurement import E_PER_NS_TO_NA

SPECIES_NAMES = tuple(SPECIES)
VALENCE = np.array([SPECIES[s]["valence"] for s in SPECIES_NAMES], float)  # (S,) e
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


def current_nA(flux_per_ns: np.ndarray, species_mask: np.ndarray | None = None) -> np.ndarray:
    """Electric current I = e sum_s z_s J_s in nA from fluxes (..., S) ions/ns; absent species masked out."""
    j = np.asarray(flux_per_ns, float)
    if species_mask is not None:
        j = np.where(species_mask, j, 0.0)
    return (np.nan_to_num(j) * VALENCE).sum(axis=-1) * E_PER_NS_TO_NA


def log_icr(i_on: np.ndarray, i_off: np.ndarray, floor_nA: float = 1e-12) -> np.ndarray:
    """ln(|I(+E)| / |I(-E)|), elementwise."""
    return np.log(np.maximum(np.abs(i_on), floor_nA)) - np.log(np.maximum(np.abs(i_off), floor_nA))


def gaussian_nll(y: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian negative log likelihood, 0.5 [ln(2 pi var) + (y - mu)^2 / var]."""
    return 0.5 * (torch.log(2 * math.pi * var) + (y - mu) ** 2 / var)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """ln(1 - e^x) for x < 0, accurate at both ends."""
    x = torch.clamp(x, max=-1e-12)
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def log_prob_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """ln(Phi(b) - Phi(a)) for standard-normal bounds a < b, stable in both tails."""
    lower_tail = a > 0  # both bounds far right: use the mirror image Phi(-a) - Phi(-b)
    hi = torch.where(lower_tail, -a, b)
    lo = torch.where(lower_tail, -b, a)
    lh, ll = torch.special.log_ndtr(hi), torch.special.log_ndtr(lo)
    return lh + _log1mexp(ll - lh)


def censored_nll(lo: torch.Tensor, hi: torch.Tensor, mu: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """-ln P(lo <= y <= hi) for y ~ N(mu, var), elementwise: the likelihood of an interval-censored label.

    ~0 (and flat) while the prediction sits inside the bounds with a small spread; grows like the Gaussian
    NLL once mu leaves them, so a censored value pulls on the model only when the prediction violates it.
    """
    sd = torch.sqrt(var)
    return -log_prob_between((lo - mu) / sd, (hi - mu) / sd)
