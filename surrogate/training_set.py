"""The training set of a surrogate: the labelled samples a model learns from its measurements, and the fidelity its
queries are asked at."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from porelab.sim.measurement import Measurement
from porelab.surrogate.dataset import Samples


def training_samples(model, measurements: Sequence[Measurement]):
    """The labelled Samples a model of this kind and flux scale trains on (ok measurements only)."""
    return Samples.from_measurements(list(measurements), model.settings, model.transform)


def main_fidelity(measurements: Sequence[Measurement]) -> str:
    """The most common fidelity among ok measurements (queries are asked at it)."""
    counts = Counter(m.fidelity for m in measurements if m.status == "ok")
    return counts.most_common(1)[0][0] if counts else "continuum"
