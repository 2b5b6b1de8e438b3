"""What every surrogate's `predict` returns, and the quantities derived from it (current, ON current, ICR).

Arrays are (n, S) on the transformed scale y = asinh(J / scale) unless stated; S = len(SPECIES_NAMES).
std^2 = epistemic_std^2 + aleatoric_std^2. `members_mean`/`members_std` (M, n, S) hold the members of an
ensemble (or the trees of a forest); a model without members gives M = 1 with its total std.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from porelab.surrogate.targets import FluxTransform, current_nA, log_icr


@dataclass
class Prediction:
    mean: np.ndarray
    epistemic_std: np.ndarray
    aleatoric_std: np.ndarray
    members_mean: np.ndarray
    members_std: np.ndarray
    present: np.ndarray  # (n, S) bool: the species is in the sample's electrolyte
    icr_std_factor: float = 1.0  # post-hoc calibration of the derived ln ICR spread

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.epistemic_std**2 + self.aleatoric_std**2)

    def scaled(self, factor: np.ndarray) -> Prediction:
        """Every spread multiplied by factor (S,) (post-hoc calibration); means unchanged."""
        f = np.asarray(factor, float)
        mm = self.members_mean
        # members' spread around the mean carries the epistemic part: scale it about the mean
        return Prediction(self.mean, self.epistemic_std * f, self.aleatoric_std * f,
                          self.mean[None] + (mm - self.mean[None]) * f, self.members_std * f, self.present,
                          self.icr_std_factor)

    def draws(self, n_draws: int, rng: np.random.Generator, rows: np.ndarray | None = None) -> np.ndarray:
        """Samples of y (K, n, S) (of the given rows only, if any) from the members' mixture; one member per
        draw for every sample (so that predictions at +E and -E stay correlated through the shared epistemic
        error)."""
        rows = np.arange(len(self.mean)) if rows is None else np.asarray(rows)
        m = rng.integers(0, self.members_mean.shape[0], n_draws)
        eps = rng.standard_normal((n_draws, len(rows), self.mean.shape[1]))
        return self.members_mean[:, rows][m] + self.members_std[:, rows][m] * eps

    def current_nA(self, transform: FluxTransform) -> np.ndarray:
        """Current (n,) nA from the mean fluxes."""
        return current_nA(transform.inverse(self.mean), self.present)

    def log_icr(self, transform: FluxTransform, i_on: np.ndarray, i_off: np.ndarray, n_draws: int = 256,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """ln ICR = ln |I(+E)| / |I(-E)| for sample pairs (i_on, i_off): point value from the mean fluxes and
        the std of its Monte Carlo distribution times icr_std_factor, each (p,)."""
        i = self.current_nA(transform)
        point = log_icr(i[i_on], i[i_off])
        rows = np.concatenate([i_on, i_off])
        d = self.draws(n_draws, np.random.default_rng(seed), rows)
        cur = current_nA(transform.inverse(d), self.present[rows])
        li = log_icr(cur[:, : len(i_on)], cur[:, len(i_on):])
        return point, li.std(axis=0) * self.icr_std_factor


def from_members(mu: np.ndarray, var: np.ndarray, present: np.ndarray) -> Prediction:
    """Prediction of an ensemble from member means and aleatoric variances, each (M, n, S)."""
    mean = mu.mean(axis=0)
    return Prediction(mean, mu.std(axis=0), np.sqrt(var.mean(axis=0)), mu, np.sqrt(var), present)


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
