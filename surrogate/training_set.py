"""The training set of a surrogate: the labelled samples a model learns from its measurements, and the fidelity its
queries are asked at."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from porelab.sim.measurement import Measurement
from porelab.surrogate.dataset import Samples
from porelab.surrogate.labels import field_estimator
from porelab.surrogate.targets import FluxTransform


def training_samples(model, measurements: Sequence[Measurement]):
    """The labelled Samples a model of this kind and flux scale trains on (ok measurements only)."""
    return Samples.from_measurements(list(measurements), model.settings, model.transform)


def main_fidelity(measurements: Sequence[Measurement]) -> str:
    """The most common fidelity among ok measurements (queries are asked at it)."""
    counts = Counter(m.fidelity for m in measurements if m.status == "ok")
    return counts.most_common(1)[0][0] if counts else "continuum"


def flux_scale_for(measurements: Sequence[Measurement]) -> float:
    """The flux scale (ions/ns) of y = asinh(J / scale) that suits these labels. Where fluxes are crossing counts
    (MD), one crossing per production run (1 / its length in ns, the median over their fields): the labels'
    resolution, so y is linear through the zero and few-crossing fluxes a short run gives and logarithmic far above
    them (at 0.01 /ns one crossing in 100 ps would sit 7.6 above zero crossings on y, and a model would average
    across that gap; benchmarks/surrogate_md.py). Without counts, FluxTransform's default, 0.01 /ns: y ~ ln J over
    a continuum's range."""
    t = [f.time_ns for m in measurements if m.status == "ok" for f in m.fields
         if f.time_ns > 0 and field_estimator(f) == "crossings"]
    return float(1.0 / np.median(t)) if t else FluxTransform().scale_per_ns
