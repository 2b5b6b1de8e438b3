"""Several fidelities learned jointly, predicted at a target one (e.g. MD) with an uncertainty that includes the gap
between fidelities. Wraps any surrogate kind (gnn, rf, gp; surrogate.factory.new_model). A fidelity is an oracle
(continuum, md, a user's); a longer MD run is the same fidelity with a narrower label interval.

Approaches (`approach`):
  feature  one model of `kind` on every fidelity's samples, the fidelity a one-hot input (surrogate.graph's globals).
  delta    autoregressive, y_target(x) = rho_s * y_low(x) + delta(x) (Kennedy & O'Hagan 2000) on the label scale
           (asinh flux): y_low a model of `kind` trained on the other fidelities and asked at the most common of
           them; rho_s per species by least squares on the exact target labels (1 with fewer than 3); delta a model
           of `delta_kind` (GP by default) on the residuals of the target labels. Members pair a member of each
           (M = the larger count), so the std is sqrt(rho^2 var_low + var_delta): the gap and its uncertainty.
Either way a fraction `val_fraction` of the target-fidelity designs is held out (when that is at least
`min_val_designs` designs): the GNN stops early on them, and a per-species factor on the flux std and one on the
ln ICR std are fitted on them (surrogate.prediction.calibration_factor, metrics.icr_calibration_factor) and applied
to predictions AT THE TARGET FIDELITY only; delta's residual model is then refitted on all target data. Without
target data, predictions at the target fidelity are the low fidelity's, no wider.
fit(Samples) -> self; predict(Samples) -> Prediction at each sample's own fidelity (Samples.at_fidelity to ask
another). Hyperparameters are stored unchanged; learned state ends in `_`.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from sklearn.base import BaseEstimator

from porelab.surrogate.dataset import Samples, _replace
from porelab.surrogate.factory import new_model
from porelab.surrogate.metrics import icr_calibration_factor
from porelab.surrogate.params import DEFAULT_FIDELITY_APPROACH
from porelab.surrogate.params import FIDELITY_APPROACHES as APPROACHES
from porelab.surrogate.prediction import Prediction, calibration_factor
from porelab.surrogate.targets import SPECIES_NAMES

DELTA_KINDS = ("gp", "rf")
RHO_BOUNDS = (0.0, 5.0)


def _new(kind: str, params: dict):
    return new_model(kind, **params)


def new_fidelity_model(kind: str, target: str, approach: str, **params):
    """An unfitted surrogate.fidelity.FidelityModel over a `kind` model with keywords `params` (seed included)."""
    return FidelityModel(kind, approach, target, params=params, seed=params.get("seed", 0)).check()


class FidelityModel(BaseEstimator):
    """Multi-fidelity surrogate: `kind` and its keywords `params` (seed included), `approach`, `target`."""

    def __init__(self, kind: str = "gnn", approach: str = DEFAULT_FIDELITY_APPROACH, target: str = "md",
                 params: dict | None = None, delta_kind: str = "gp", delta_params: dict | None = None,
                 val_fraction: float = 0.2, min_val_designs: int = 3, seed: int = 0):
        self.kind = kind
        self.approach = approach
        self.target = target
        self.params = params
        self.delta_kind = delta_kind
        self.delta_params = delta_params
        self.val_fraction = val_fraction
        self.min_val_designs = min_val_designs
        self.seed = seed

    # --- what the store and the adapter read ------------------------------------------------------------
    def base_params(self, calibrate: bool | None = None) -> dict:
        """The base model's keywords (seed included; `calibrate` overridden when given)."""
        p = {"seed": self.seed, **(self.params or {})}
        return p if calibrate is None else {**p, "calibrate": calibrate}

    @property
    def template(self):
        """An unfitted model of `kind` with `params` (its settings and transform are the wrapper's)."""
        return _new(self.kind, self.base_params())

    @property
    def settings(self):
        return self.template.settings

    @property
    def transform(self):
        return self.template.transform

    def check(self) -> FidelityModel:
        """ValueError naming the first bad keyword."""
        if self.approach not in APPROACHES:
            raise ValueError(f"approach={self.approach!r} is unknown; choose one of {', '.join(APPROACHES)}")
        if self.delta_kind not in DELTA_KINDS:
            raise ValueError(f"delta_kind={self.delta_kind!r} is unknown; choose one of {', '.join(DELTA_KINDS)}")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction={self.val_fraction!r} is outside [0, 1)")
        _new(self.kind, self.base_params())
        _new(self.delta_kind, {"seed": self.seed, **(self.delta_params or {})})
        return self

    # --- training ----------------------------------------------------------------------------------------
    def _split(self, s: Samples) -> tuple[np.ndarray, np.ndarray]:
        """Rows (train, val): val = the target-fidelity rows of val_fraction of the target designs (or none)."""
        target = np.flatnonzero(s.row_fidelity == self.target)
        designs = np.unique(s.design_index[target])
        n_val = int(round(self.val_fraction * len(designs)))
        if n_val < self.min_val_designs or len(designs) - n_val < 2:
            return np.arange(len(s)), np.zeros(0, int)
        held = np.random.default_rng(self.seed).permutation(designs)[:n_val]
        is_val = np.zeros(len(s), bool)
        is_val[target] = np.isin(s.design_index[target], held)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)

    def fit(self, samples: Samples, base_state: tuple | None = None) -> FidelityModel:
        """Train on labelled samples of any fidelities. base_state: a GNN's (tensors, info) from get_state(), used
        instead of training the base model (a saved model reloads so; everything else is refitted the same way)."""
        self.check()
        if samples.y is None:
            raise ValueError("fit needs labelled samples (Samples.from_measurements)")
        fid = samples.row_fidelity
        low = Counter(f for f in fid if f != self.target)
        self.low_fidelity_ = low.most_common(1)[0][0] if low else None
        self.approach_ = self.approach if self.low_fidelity_ is not None and (fid == self.target).any() else "feature"
        tr, va = self._split(samples)
        train, val = samples.subset_rows(tr), (samples.subset_rows(va) if len(va) else None)
        base_rows = train if self.approach_ == "feature" else train.subset_rows(
            np.flatnonzero(train.row_fidelity != self.target))
        # feature: the target's held-out designs stop (GNN) and calibrate it; delta: the low-fidelity model keeps
        # its own held-out split and calibration
        own = self.approach_ == "delta" or val is None
        self.base_ = _new(self.kind, self.base_params() if own else self.base_params(calibrate=False))
        if base_state is not None:
            self.base_.set_state(*base_state)
        elif self.approach_ == "feature":
            self.base_.fit(base_rows, val)
        else:
            self.base_.fit(base_rows)
        self.rho_, self.delta_ = np.ones(len(SPECIES_NAMES)), None
        if self.approach_ == "delta":
            self._fit_delta(train.subset_rows(np.flatnonzero(train.row_fidelity == self.target)), val is None)
        self.calibration_ = np.ones(len(SPECIES_NAMES))
        self.icr_calibration_ = 1.0
        if val is not None:
            p = self._raw_predict(val)
            self.calibration_ = calibration_factor(p, val.y, val.mask & ~val.censored, val.sigma)
            self.icr_calibration_ = icr_calibration_factor(val, p.scaled(self.calibration_))
            if self.approach_ == "delta":  # the residual model on all target data, same hyperparameters
                self._fit_delta(samples.subset_rows(np.flatnonzero(fid == self.target)), False)
        self.n_val_designs_ = 0 if val is None else val.n_designs
        return self

    def _fit_delta(self, target: Samples, calibrate: bool) -> None:
        """rho_ (S,) and delta_ from the target-fidelity samples (delta_ None when too few labels)."""
        mu = self.base_.predict(target.at_fidelity(self.low_fidelity_)).mean
        exact = target.mask & ~target.censored
        rho = np.ones(mu.shape[1])
        for s in range(mu.shape[1]):
            sel = exact[:, s]
            den = float((mu[sel, s] ** 2).sum())
            if sel.sum() >= 3 and den > 1e-9:
                rho[s] = float(np.clip((target.y[sel, s] * mu[sel, s]).sum() / den, *RHO_BOUNDS))
        self.rho_ = rho
        shift = np.where(target.mask, rho * mu, 0.0)
        resid = _replace(target, y=target.y - shift, lo=target.lo - shift, hi=target.hi - shift)
        delta = _new(self.delta_kind, {"seed": self.seed, **(self.delta_params or {}), "calibrate": calibrate})
        try:
            self.delta_ = delta.fit(resid)
        except ValueError:  # too few exact target labels for a residual model: the low fidelity, scaled
            self.delta_ = None

    # --- prediction --------------------------------------------------------------------------------------
    def _raw_predict(self, samples: Samples) -> Prediction:
        """Uncalibrated prediction at each sample's own fidelity."""
        p = self.base_.predict(samples)
        at_target = samples.row_fidelity == self.target
        if self.approach_ != "delta" or not at_target.any():
            return p
        rows = np.flatnonzero(at_target)
        q = samples.subset_rows(rows)
        low = self.base_.predict(q.at_fidelity(self.low_fidelity_))
        comb = _combine(low, self.delta_.predict(q) if self.delta_ is not None else None, self.rho_)
        return _put_rows(p, comb, rows)

    def predict(self, samples: Samples) -> Prediction:
        """Mean, epistemic and aleatoric std (n, S) on the label scale, each sample at its own fidelity; spreads
        at the target fidelity calibrated on its held-out designs."""
        if not hasattr(self, "base_"):
            raise RuntimeError("this FidelityModel is not fitted yet: call fit()")
        p = self._raw_predict(samples)
        at_target = (samples.row_fidelity == self.target)[:, None]
        p = p.scaled(np.where(at_target, self.calibration_[None], 1.0))
        base_icr = np.broadcast_to(np.asarray(p.icr_std_factor, float), (len(samples),))
        p.icr_std_factor = np.where(at_target[:, 0], self.icr_calibration_, base_icr)
        return p


def _combine(low: Prediction, delta: Prediction | None, rho: np.ndarray) -> Prediction:
    """rho * low + delta, members paired (member k: low's k mod M_low, delta's k mod M_delta)."""
    if delta is None:
        mm, ms = rho * low.members_mean, rho * low.members_std
        return Prediction(rho * low.mean, rho * low.epistemic_std, rho * low.aleatoric_std, mm, ms, low.present,
                          low.transform)
    m = max(len(low.members_mean), len(delta.members_mean))
    a, b = np.arange(m) % len(low.members_mean), np.arange(m) % len(delta.members_mean)
    mm = rho * low.members_mean[a] + delta.members_mean[b]
    ms = np.sqrt((rho * low.members_std[a]) ** 2 + delta.members_std[b] ** 2)
    return Prediction(rho * low.mean + delta.mean, np.hypot(rho * low.epistemic_std, delta.epistemic_std),
                      np.hypot(rho * low.aleatoric_std, delta.aleatoric_std), mm, ms, low.present, low.transform,
                      icr_std_factor=1.0)


def _put_rows(p: Prediction, sub: Prediction, rows: np.ndarray) -> Prediction:
    """p with the samples `rows` replaced by those of `sub` (members: the larger count, cycled)."""
    m = max(len(p.members_mean), len(sub.members_mean))
    mm = p.members_mean[np.arange(m) % len(p.members_mean)].copy()
    ms = p.members_std[np.arange(m) % len(p.members_std)].copy()
    mm[:, rows] = sub.members_mean[np.arange(m) % len(sub.members_mean)]
    ms[:, rows] = sub.members_std[np.arange(m) % len(sub.members_std)]
    out = Prediction(p.mean.copy(), p.epistemic_std.copy(), p.aleatoric_std.copy(), mm, ms, p.present, p.transform)
    out.mean[rows], out.epistemic_std[rows], out.aleatoric_std[rows] = sub.mean, sub.epistemic_std, sub.aleatoric_std
    factor = np.broadcast_to(np.asarray(p.icr_std_factor, float), (len(p.mean),)).copy()
    factor[rows] = 1.0
    out.icr_std_factor = factor
    return out
