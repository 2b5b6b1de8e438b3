"""The per-target prediction a campaign's acquisition scores (no torch: campaigns import it cheaply).

Made from a surrogate's flux Prediction by surrogate.derived; targets are natural logs (ln ICR, ln ON current in
nA, ln selectivity).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TargetPrediction:
    """Predicted targets of n candidates: mean, total std and epistemic std (n,) by target name, and an (n, k)
    embedding of the candidates (descriptors) for batch diversity."""

    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]
    epistemic: dict[str, np.ndarray]
    embedding: np.ndarray

    def __len__(self) -> int:
        return len(self.embedding)
