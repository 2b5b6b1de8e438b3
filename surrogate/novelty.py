"""Uncertainty away from the data: a floor under a model's epistemic std where a candidate is unlike every
training design.

A deep ensemble (or a forest) trained on a few designs that all look flat can agree with itself everywhere: its
members share the trend they were fitted on, so their spread says little about designs unlike any measured, and
an acquisition that trusts it exploits that trend and never looks elsewhere. A Gaussian process with a stationary
kernel says what one should: far from the data, one knows what the prior knows. This gives any model that floor,

    var_floor(x) = s² · (1 − max_j exp(−|x − x_j|² / 2ℓ²)),

x the standardised descriptors of a candidate (surrogate.descriptors; scaled by the training designs' spread),
x_j those of the n training designs, s² the variance of the target over the training labels (what one knows of a
design before measuring it), ℓ the median distance from a training design to its nearest other one (the scale the
data resolve). At a training design the floor is 0; far from all of them it is s². The model's epistemic std is
then max(its own, sqrt(var_floor)).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import KDTree


class NoveltyFloor:
    """Fitted on the training designs' descriptors x_train (n, k) and each target's training labels (n,)."""

    def __init__(self, x_train: np.ndarray, labels: dict[str, np.ndarray]):
        x = np.asarray(x_train, float)
        if len(x) < 2:
            raise ValueError(f"a novelty floor needs at least 2 training designs, has {len(x)}")
        self.center = x.mean(axis=0)
        sd = x.std(axis=0)
        self.scale = np.where(sd > 1e-12, sd, 1.0)
        z = (x - self.center) / self.scale
        self.tree = KDTree(z)  # nearest neighbours in O(n log n), not an n x n distance matrix
        nearest = self.tree.query(z, k=2)[0][:, 1]  # [itself (or a duplicate, 0), the nearest other]
        finite = nearest[np.isfinite(nearest) & (nearest > 0)]
        self.length = float(np.median(finite)) if len(finite) else 1.0
        self.var = {k: float(np.var(np.asarray(v, float)[np.isfinite(v)])) if np.isfinite(v).sum() >= 2 else 0.0
                    for k, v in labels.items()}

    def similarity(self, x: np.ndarray) -> np.ndarray:
        """max_j exp(-|x - x_j|^2 / 2 l^2) of each candidate (m,), in [0, 1]."""
        d = self.tree.query((np.asarray(x, float) - self.center) / self.scale)[0]
        return np.exp(-d**2 / (2 * self.length**2))

    def std(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """The floor of each target's epistemic std (m,) at candidates x (m, k)."""
        far = 1.0 - self.similarity(x)
        return {k: np.sqrt(v * far) for k, v in self.var.items()}
