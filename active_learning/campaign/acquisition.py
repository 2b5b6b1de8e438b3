"""Acquisition functions (BoTorch style): small objects, the model injected, one method that scores.

    acq = resolve_acquisition("ucb", model, target="abs_log_icr", beta=4.0)
    scores = acq(candidates)            # = acq.score(model.predict(candidates)), shape (n,)

The model is anything with `predict(candidates) -> TargetPrediction` (surrogate.target_prediction: mean/std/
epistemic dicts of arrays by target name, and an (n, k) embedding). Higher score = more worth simulating. The
default target is an ICR goal's objective, |ln ICR| (campaign.targets: the rectification of the better orientation,
its predictive distribution folded from ln ICR's by campaign.model), scored on its mean and std like any target
(Thompson sampling folds a draw of ln ICR instead).
`select_batch` turns scores into a diverse batch with k-means++ (sklearn) weighted by score on the embeddings.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from scipy.stats import norm
from sklearn.cluster import kmeans_plusplus

from porelab.active_learning.campaign.targets import ICR_OBJECTIVE
from porelab.surrogate.target_prediction import TargetPrediction


class AcquisitionFunction:
    """Base class: `target` is the model output optimised; maximize=False minimises it."""

    uses_model = True

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True):
        self.model, self.target, self.sign = model, target, 1.0 if maximize else -1.0

    def __call__(self, candidates) -> np.ndarray:
        return self.score(self.model.predict(candidates))

    def score(self, pred: TargetPrediction) -> np.ndarray:
        raise NotImplementedError

    def _mu_sigma(self, pred: TargetPrediction) -> tuple[np.ndarray, np.ndarray]:
        mu = self.sign * np.asarray(pred.mean[self.target], float)
        sd = np.asarray(pred.epistemic.get(self.target, pred.std[self.target]), float)
        return mu, np.maximum(sd, 1e-9)


class Random(AcquisitionFunction):
    """Uniform random scores (seeded): the baseline."""

    uses_model = False

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True, seed: int = 0):
        super().__init__(model, target, maximize)
        self.seed = seed

    def __call__(self, candidates) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(candidates))

    def score(self, pred: TargetPrediction) -> np.ndarray:
        return np.random.default_rng(self.seed).random(len(pred))


class MaxUncertainty(AcquisitionFunction):
    """The model's epistemic standard deviation of `target` (pure exploration: learn the map)."""

    def score(self, pred: TargetPrediction) -> np.ndarray:
        return self._mu_sigma(pred)[1]


class UpperConfidenceBound(AcquisitionFunction):
    """mean + sqrt(beta) * std (BoTorch's convention)."""

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True, beta: float = 4.0):
        super().__init__(model, target, maximize)
        if not beta >= 0:
            raise ValueError(f"beta={beta} must be >= 0")
        self.beta = beta

    def score(self, pred: TargetPrediction) -> np.ndarray:
        mu, sd = self._mu_sigma(pred)
        return mu + math.sqrt(self.beta) * sd


class ThompsonSampling(AcquisitionFunction):
    """One draw from the model's posterior, independent per candidate: mean + std * z, z ~ N(0, 1) (seeded), std
    the epistemic; for the ICR objective |ln ICR| an exact draw of its folded posterior, |mean + std * z| with ln
    ICR's mean and std. Where the model is flat its std decides and the picks spread like random ones; where it is
    sure, its mean."""

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True, seed: int = 0):
        super().__init__(model, target, maximize)
        self.seed = seed

    def score(self, pred: TargetPrediction) -> np.ndarray:
        z = np.random.default_rng(self.seed).standard_normal(len(pred))
        if self.target == ICR_OBJECTIVE:
            mean, sd = (np.asarray(v["log_icr"], float) for v in (pred.mean, pred.epistemic))
            return self.sign * np.abs(mean + sd * z)
        mu, sd = self._mu_sigma(pred)
        return mu + sd * z


def _ei(mu: np.ndarray, sd: np.ndarray, best: float) -> np.ndarray:
    z = (mu - best) / sd
    return sd * (z * norm.cdf(z) + norm.pdf(z))


class ExpectedImprovement(AcquisitionFunction):
    """E[max(f - best_f, 0)] under the model's normal posterior; best_f = best observed (same sign)."""

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True, best_f: float = -np.inf,
                 xi: float = 0.0):
        super().__init__(model, target, maximize)
        self.best_f, self.xi = best_f, xi

    def score(self, pred: TargetPrediction) -> np.ndarray:
        mu, sd = self._mu_sigma(pred)
        if not np.isfinite(self.best_f):
            return mu + sd
        return _ei(mu, sd, self.sign * self.best_f + self.xi)


class ConstrainedExpectedImprovement(AcquisitionFunction):
    """EI of `target` times P(constraint >= threshold); maximise ICR subject to ON current >= a threshold.

    `threshold` is on the constraint's scale (log_on_current: ln nA); best_f is the best feasible observation
    (None: none feasible yet, then the score is the probability of feasibility alone).
    """

    def __init__(self, model=None, target: str = ICR_OBJECTIVE, maximize: bool = True, best_f: float | None = None,
                 constraint: str = "log_on_current", threshold: float = 0.0):
        super().__init__(model, target, maximize)
        self.best_f, self.constraint, self.threshold = best_f, constraint, threshold

    def score(self, pred: TargetPrediction) -> np.ndarray:
        mu, sd = self._mu_sigma(pred)
        cm = np.asarray(pred.mean[self.constraint], float)
        cs = np.maximum(np.asarray(pred.std[self.constraint], float), 1e-9)
        feasible = norm.sf((self.threshold - cm) / cs)
        if self.best_f is None or not np.isfinite(self.best_f):
            return feasible
        return _ei(mu, sd, self.sign * self.best_f) * feasible


class Grid(AcquisitionFunction):
    """A fixed grid in the pool's order (reproduction studies): earlier points score higher."""

    uses_model = False

    def __call__(self, candidates) -> np.ndarray:
        return -np.arange(len(candidates), dtype=float)

    def score(self, pred: TargetPrediction) -> np.ndarray:
        return -np.arange(len(pred), dtype=float)


ACQUISITIONS: dict[str, type[AcquisitionFunction]] = {
    "random": Random,
    "max_uncertainty": MaxUncertainty,
    "ucb": UpperConfidenceBound,
    "thompson": ThompsonSampling,
    "ei": ExpectedImprovement,
    "constrained_ei": ConstrainedExpectedImprovement,
    "grid": Grid,
}


def resolve_acquisition(name: str, model=None, **kwargs) -> AcquisitionFunction:
    """An acquisition function from its config name; ValueError listing the valid names/keywords."""
    key = name.lower().replace("-", "_")
    if key not in ACQUISITIONS:
        raise ValueError(f"acquisition {name!r} is unknown; choose one of {', '.join(ACQUISITIONS)}")
    cls = ACQUISITIONS[key]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "model")]
    bad = sorted(set(kwargs) - set(allowed))
    if bad:
        raise ValueError(f"acquisition {key}: unknown parameter(s) {', '.join(bad)}; allowed: {', '.join(allowed)}")
    return cls(model, **kwargs)


def select_batch(scores: np.ndarray, q: int, embedding: np.ndarray | None = None, seed: int = 0,
                 diverse: bool = True, top_factor: int = 10) -> np.ndarray:
    """Indices of q picks: the best score, then (diverse) k-means++ seeds among the top `top_factor * q`
    candidates, weighted by score, on standardised embeddings. Deterministic for a given seed."""
    scores = np.asarray(scores, float)
    n = len(scores)
    q = min(q, n)
    if q <= 0:
        return np.zeros(0, int)
    order = np.argsort(-scores, kind="stable")
    if not diverse or embedding is None or q == 1 or n <= q:
        return order[:q]
    top = order[:min(n, max(top_factor * q, q))]
    x = np.asarray(embedding, float)[top]
    x = (x - x.mean(0)) / np.where(x.std(0) > 1e-12, x.std(0), 1.0)
    w = scores[top] - scores[top].min()
    w = w / w.max() + 0.05 if w.max() > 0 else np.ones(len(top))
    _, idx = kmeans_plusplus(x, n_clusters=q, sample_weight=w, random_state=seed)
    idx = list(dict.fromkeys(int(i) for i in idx))
    if 0 not in idx:  # always keep the single best candidate; it replaces the pick closest to it
        closest = min(range(len(idx)), key=lambda j: float(np.sum((x[idx[j]] - x[0]) ** 2)))
        idx[closest] = 0
    for j in range(len(top)):  # duplicates in the embedding can give fewer than q distinct seeds
        if len(idx) >= q:
            break
        if j not in idx:
            idx.append(j)
    return top[np.asarray(idx[:q])]
