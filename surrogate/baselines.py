"""Descriptor models with the ensemble's interface: a random forest and a Gaussian process on per-species fluxes.

Inputs are the hand-made descriptors of surrogate.descriptors; one regressor per species on every flux label's
value: a censored one's too (`learn_censored`; its interval holds zero, but a crossing count's estimate is still
the count over the time, unbiased, and with a flux scale at the counts' resolution, training_set.flux_scale_for, the
zeros and few-crossing fluxes of a short MD run lie close on y; False: exact labels only). With `symmetric`,
training is augmented with every design upside down (field and fluxes reversed) and predictions are averaged with
the mirror image, (f(x) - f(mirror x)) / 2, exactly as the GNN's "exact" symmetry. Members (for derived observables, see
surrogate.derived): the forest's trees; for the GP, `n_draws` draws of its posterior, joint over the samples of
each design (so that +E and -E stay correlated as the posterior says).
"""

from __future__ import annotations

import warnings
import zlib

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.preprocessing import StandardScaler

from porelab.surrogate.dataset import Samples
from porelab.surrogate.descriptors import descriptors
from porelab.surrogate.graph import GraphSettings
from porelab.surrogate.metrics import icr_calibration_factor
from porelab.surrogate.prediction import Prediction, calibration_factor
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform


class _DescriptorModel(BaseEstimator):
    """Shared fit/predict: one regressor per species, validation split for calibration, optional symmetry."""

    def _regressor_fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
        raise NotImplementedError

    def _species_predict(self, reg, samples: Samples, x: np.ndarray, xm: np.ndarray | None, s: int):
        """(mean (n,), epistemic std (n,), aleatoric std (n,), members (M, n), members' std (M, n))."""
        raise NotImplementedError

    @property
    def transform(self) -> FluxTransform:
        return FluxTransform(self.flux_scale_per_ns)

    @property
    def settings(self) -> GraphSettings:
        """Graph settings for building its Samples (descriptors use no graph: the defaults)."""
        return GraphSettings()

    def fit(self, samples: Samples, val: Samples | None = None):
        """Train on labelled samples; val (or val_fraction of the designs) calibrates the predicted std."""
        if samples.y is None:
            raise ValueError("fit needs labelled samples (Samples.from_measurements)")
        for s in (samples, val):
            if s is not None and s.transform != self.transform:
                raise ValueError(f"samples use {s.transform}, the model {self.transform}: build them alike")
        if val is None and self.val_fraction > 0 and samples.n_designs >= 3:
            samples, val = samples.split_designs(self.val_fraction, self.seed)
        rng = np.random.default_rng(self.seed)
        x = descriptors(samples)
        exact = samples.mask if self.learn_censored else samples.mask & ~samples.censored
        if self.symmetric:
            x = np.vstack([x, descriptors(samples, mirrored=True)])
            y, exact = np.vstack([samples.y, -samples.y]), np.vstack([exact, exact])
        else:
            y = samples.y
        self.columns_ = np.flatnonzero(np.ptp(x, axis=0) > 0)  # constant descriptors carry nothing
        self.scaler_ = StandardScaler().fit(x[:, self.columns_])
        xs = self.scaler_.transform(x[:, self.columns_])
        self.regressors_ = {}
        for s, name in enumerate(SPECIES_NAMES):
            rows = np.flatnonzero(exact[:, s])
            if len(rows) >= 3:
                self.regressors_[name] = self._regressor_fit(xs[rows], y[rows, s], rng)
        if not self.regressors_:
            raise ValueError(f"no species has 3 or more {'' if self.learn_censored else 'exact '}flux labels to fit")
        self.calibration_ = np.ones(len(SPECIES_NAMES))
        self.icr_calibration_ = 1.0
        if self.calibrate and val is not None and len(val):
            p = self._predict(val)
            self.calibration_ = calibration_factor(p, val.y, val.mask & ~val.censored, val.sigma)
            self.icr_calibration_ = icr_calibration_factor(val, p.scaled(self.calibration_))
        return self

    def _x(self, samples: Samples, mirrored: bool = False) -> np.ndarray:
        return self.scaler_.transform(descriptors(samples, mirrored)[:, self.columns_])

    def _predict(self, samples: Samples) -> Prediction:
        xs = self._x(samples)
        xm = self._x(samples, mirrored=True) if self.symmetric else None
        n, ns = len(samples), len(SPECIES_NAMES)
        parts = {s: self._species_predict(self.regressors_[name], samples, xs, xm, s)
                 for s, name in enumerate(SPECIES_NAMES) if name in self.regressors_}
        n_members = next(iter(parts.values()))[3].shape[0]
        mean, epi, alea = np.zeros((n, ns)), np.ones((n, ns)), np.ones((n, ns))
        mm, ms = np.zeros((n_members, n, ns)), np.ones((n_members, n, ns))
        for s, (m, e, a, members, members_std) in parts.items():
            mean[:, s], epi[:, s], alea[:, s], mm[:, :, s], ms[:, :, s] = m, e, a, members, members_std
        return Prediction(mean, epi, alea, mm, ms, samples.species_present, self.transform)

    def predict(self, samples: Samples) -> Prediction:
        """Mean, epistemic and aleatoric std (n, S) of y = asinh(J / scale) for every sample."""
        if not hasattr(self, "regressors_"):
            raise RuntimeError(f"this {type(self).__name__} is not fitted yet: call fit()")
        p = self._predict(samples).scaled(self.calibration_)
        p.icr_std_factor = self.icr_calibration_
        return p


class GPBaseline(_DescriptorModel):
    """Gaussian process per species: constant x ARD RBF + white noise (the aleatoric part), on at most
    `max_train` randomly chosen training rows (exact GP cost grows as n^3, its ARD gradient as n^2 d), with at
    most `max_iter` L-BFGS-B iterations for the kernel hyperparameters. Epistemic = the noise-free posterior."""

    kind = "gp"  # surrogate.factory's name for it

    def __init__(self, max_train: int = 400, max_iter: int = 50, n_restarts: int = 0, n_draws: int = 64,
                 symmetric: bool = True, calibrate: bool = True, val_fraction: float = 0.15,
                 flux_scale_per_ns: float = 0.01, seed: int = 0, learn_censored: bool = True):
        self.learn_censored = learn_censored
        self.max_train = max_train
        self.max_iter = max_iter
        self.n_restarts = n_restarts
        self.n_draws = n_draws
        self.symmetric = symmetric
        self.calibrate = calibrate
        self.val_fraction = val_fraction
        self.flux_scale_per_ns = flux_scale_per_ns
        self.seed = seed

    def _regressor_fit(self, x, y, rng):
        if len(x) > self.max_train:
            keep = rng.choice(len(x), self.max_train, replace=False)
            x, y = x[keep], y[keep]
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * RBF(np.ones(x.shape[1]), (1e-2, 1e3)) + \
            WhiteKernel(1e-2, (1e-6, 1e1))
        gp = GaussianProcessRegressor(kernel, optimizer=self._optimizer, normalize_y=True,
                                      n_restarts_optimizer=self.n_restarts, random_state=int(rng.integers(2**31)))
        with warnings.catch_warnings():  # hyperparameters at their bounds are expected with max_iter steps
            warnings.simplefilter("ignore", ConvergenceWarning)
            return gp.fit(x, y)

    def _optimizer(self, obj_func, initial_theta, bounds):
        res = minimize(obj_func, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds,
                       options={"maxiter": self.max_iter})
        return res.x, res.fun

    def _species_predict(self, gp, samples, x, xm, s):
        """Latent posterior, per design block: cov = k(Z, Z) - V^T V with V = L^-1 k(X_train, Z), Z the block's
        samples (and their mirror images, combined as (f - f_mirror) / 2)."""
        z = x if xm is None else np.vstack([x, xm])
        k_trans = gp.kernel_(z, gp.X_train_)  # the white kernel is zero between distinct points
        mean_z = k_trans @ gp.alpha_
        v = solve_triangular(gp.L_, k_trans.T, lower=True, check_finite=False)  # (m, len(z))
        n = len(x)
        if xm is not None:
            mean_z, v = 0.5 * (mean_z[:n] - mean_z[n:]), 0.5 * (v[:, :n] - v[:, n:])
        c = gp.kernel_.k1.k1.constant_value
        ls = np.asarray(gp.kernel_.k1.k2.length_scale, float)
        sy, my = float(np.ravel(gp._y_train_std)[0]), float(np.ravel(gp._y_train_mean)[0])
        my = my if xm is None else 0.0  # the normalisation offset cancels in (f - f_mirror) / 2
        epi_var = np.zeros(n)
        members = np.empty((self.n_draws, n))
        for rows in _design_blocks(samples):
            b = len(rows)
            pts = x[rows] if xm is None else np.vstack([x[rows], xm[rows]])
            d2 = ((((pts[:, None] - pts[None]) / ls) ** 2).sum(-1))
            prior = c * np.exp(-0.5 * d2)
            if xm is not None:
                a = 0.5 * np.hstack([np.eye(b), -np.eye(b)])
                prior = a @ prior @ a.T
            cov = prior - v[:, rows].T @ v[:, rows]
            w, q = np.linalg.eigh(0.5 * (cov + cov.T))
            root = q * np.sqrt(np.clip(w, 0.0, None))
            epi_var[rows] = np.clip(np.diag(cov), 0.0, None)
            key = zlib.crc32(samples.designs[samples.design_index[rows[0]]].model_dump_json().encode())
            eps = np.random.default_rng([self.seed, s, key]).standard_normal((self.n_draws, b))
            members[:, rows] = mean_z[rows] + eps @ root.T
        noise = np.sqrt(gp.kernel_.k2.noise_level) * sy
        mean = sy * mean_z + my
        return mean, np.sqrt(epi_var) * sy, np.full(n, noise), sy * members + my, np.full((self.n_draws, n), noise)


def _design_blocks(samples: Samples) -> list[np.ndarray]:
    """Row indices of each design's samples."""
    order = np.argsort(samples.design_index, kind="stable")
    bounds = np.searchsorted(samples.design_index[order], np.arange(samples.n_designs + 1))
    return [order[bounds[k]:bounds[k + 1]] for k in range(samples.n_designs) if bounds[k + 1] > bounds[k]]


class RFBaseline(_DescriptorModel):
    """Random forest per species. Members are the trees: epistemic = spread of the tree means, aleatoric = the
    target variance inside the leaves the sample falls in (law of total variance over trees)."""

    kind = "rf"  # surrogate.factory's name for it

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 3, max_features: float = 0.5,
                 symmetric: bool = True, calibrate: bool = True, val_fraction: float = 0.15,
                 flux_scale_per_ns: float = 0.01, seed: int = 0, n_jobs: int = 1, learn_censored: bool = True):
        self.learn_censored = learn_censored
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.symmetric = symmetric
        self.calibrate = calibrate
        self.val_fraction = val_fraction
        self.flux_scale_per_ns = flux_scale_per_ns
        self.seed = seed
        self.n_jobs = n_jobs

    def _regressor_fit(self, x, y, rng):
        return RandomForestRegressor(self.n_estimators, min_samples_leaf=self.min_samples_leaf,
                                     max_features=self.max_features, n_jobs=self.n_jobs,
                                     random_state=int(rng.integers(2**31))).fit(x, y)

    def _species_predict(self, rf, samples, x, xm, s):
        m, sd = self._trees(rf, x)
        if xm is not None:
            m2, s2 = self._trees(rf, xm)
            m, sd = 0.5 * (m - m2), np.sqrt(0.5 * (sd**2 + s2**2))
        return m.mean(axis=0), m.std(axis=0), np.sqrt((sd**2).mean(axis=0)), m, sd

    @staticmethod
    def _trees(rf, x):
        """Per-tree means and leaf stds, each (trees, n), from one leaf lookup per tree."""
        x = np.ascontiguousarray(x, np.float32)
        leaves = [t.apply(x, check_input=False) for t in rf.estimators_]
        means = np.stack([t.tree_.value[leaf, 0, 0] for t, leaf in zip(rf.estimators_, leaves, strict=True)])
        var = np.stack([t.tree_.impurity[leaf] for t, leaf in zip(rf.estimators_, leaves, strict=True)])
        return means, np.sqrt(np.maximum(var, 1e-8))
