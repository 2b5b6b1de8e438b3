"""What every surrogate's `predict` returns: per-species fluxes with their spread (the one Prediction class).

Arrays are (n, S) on the transformed scale y = asinh(J / scale) of `transform` unless stated; S =
len(SPECIES_NAMES). std^2 = epistemic_std^2 + aleatoric_std^2. `members_mean`/`members_std` (M, n, S) hold the
members of an ensemble (or the trees of a forest); a model without members gives M = 1 with its total std.
Observables (current, ICR, ON current, selectivity) derived from it: surrogate.derived.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from porelab.surrogate.targets import FluxTransform


@dataclass
class Prediction:
    mean: np.ndarray
    epistemic_std: np.ndarray
    aleatoric_std: np.ndarray
    members_mean: np.ndarray
    members_std: np.ndarray
    present: np.ndarray  # (n, S) bool: the species is in the sample's electrolyte
    transform: FluxTransform  # the scale the model predicts on: flux = transform.inverse(y)
    icr_std_factor: float | np.ndarray = 1.0  # post-hoc calibration of the derived ln ICR spread: one, or (n,)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.epistemic_std**2 + self.aleatoric_std**2)

    def icr_factor(self, rows: np.ndarray) -> np.ndarray | float:
        """The ln ICR std factor of pairs whose +|E| samples are `rows`: (len(rows),), or one number."""
        f = self.icr_std_factor
        return f if np.ndim(f) == 0 else np.asarray(f, float)[rows]

    def scaled(self, factor: np.ndarray) -> Prediction:
        """Every spread multiplied by factor, (S,) or (n, S) (post-hoc calibration); means unchanged."""
        f = np.asarray(factor, float)
        mm = self.members_mean
        # members' spread around the mean carries the epistemic part: scale it about the mean
        return replace(self, epistemic_std=self.epistemic_std * f, aleatoric_std=self.aleatoric_std * f,
                       members_mean=self.mean[None] + (mm - self.mean[None]) * f, members_std=self.members_std * f)


def from_members(mu: np.ndarray, var: np.ndarray, present: np.ndarray, transform: FluxTransform) -> Prediction:
    """Prediction of an ensemble from member means and aleatoric variances, each (M, n, S)."""
    mean = mu.mean(axis=0)
    return Prediction(mean, mu.std(axis=0), np.sqrt(var.mean(axis=0)), mu, np.sqrt(var), present, transform)


def calibration_factor(pred: Prediction, y: np.ndarray, exact: np.ndarray, sigma: np.ndarray | None = None,
                       bounds: tuple[float, float] = (0.2, 20.0)) -> np.ndarray:
    """Per-species factor (S,) on the predicted std that maximises the Gaussian likelihood of held-out labels.

    exact (n, S) marks uncensored labels; sigma (n, S) their measurement noise (added to the prediction's).
    c^2 = mean(z^2), z = (y - mean) / sqrt(std^2 + sigma^2). Species without held-out labels get 1.
    """
    noise = 0.0 if sigma is None else np.nan_to_num(sigma) ** 2
    z2 = (y - pred.mean) ** 2 / (pred.std**2 + noise)
    out = np.ones(y.shape[1])
    for s in range(y.shape[1]):
        sel = exact[:, s]
        if sel.sum() >= 3:
            out[s] = float(np.clip(np.sqrt(np.mean(z2[sel, s])), *bounds))
    return out
