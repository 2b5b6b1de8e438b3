"""Baselines on hand-made descriptors, with the ensemble's interface: a Gaussian process and a random forest.

Descriptors of a sample (`descriptors`): layers, spacing, stack thickness, pore width/height/area/shape, groups
per rim, material, cell size, mean layer offset, the rim charge of each layer (bottom to top, zero-padded to 8),
total charge, its first and second moments along z, the charge density, and the condition globals of
surrogate.graph (field, bias, concentrations, temperature, fidelity). One regressor per species, on uncensored
labels (censored ones are left out: neither regressor can use a bound). With `symmetric`, training is
augmented with every design upside down (field and fluxes reversed) and predictions are averaged with the
mirror image, exactly as the GNN's "exact" symmetry.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator
from sklearn.ensemble import RandomForestRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.preprocessing import StandardScaler

from porelab.sim.design import Design
from porelab.surrogate.dataset import Samples
from porelab.surrogate.graph import mirror_globals
from porelab.surrogate.metrics import icr_calibration_factor
from porelab.surrogate.prediction import Prediction, calibration_factor
from porelab.surrogate.targets import SPECIES_NAMES, FluxTransform

SHAPES = ("ellipse", "circle", "hexagon", "rectangle")
MAX_LAYERS = 8
DESCRIPTOR_NAMES = ("n_layers", "spacing_nm", "stack_nm", "pore_w_nm", "pore_h_nm", "pore_area_nm2",
                    *(f"shape_{s}" for s in SHAPES), "groups_per_rim", "hbn", "bn_charge_e", "sheet_nm", "box_z_nm",
                    "mean_offset_nm", *(f"q_layer{k}_e" for k in range(MAX_LAYERS)), "q_total_e", "abs_q_total_e",
                    "q_dipole_e_nm", "q_quadrupole_e_nm2", "abs_q_sum_e", "q_density_e_per_nm3", "n_oh_layers")


def design_descriptors(d: Design) -> np.ndarray:
    """Hand-made descriptors of a design, shape (len(DESCRIPTOR_NAMES),)."""
    q = np.zeros(MAX_LAYERS)
    q[: len(d.layers)] = d.layer_charge_e()
    z = np.asarray(d.layer_z_nm()) - d.box_z_nm / 2
    qs = np.asarray(d.layer_charge_e())
    area = d.pore.area_nm2()
    thick = d.stack_thickness_nm() + 0.34
    off = np.mean([np.hypot(*o) for o in d.layer_offsets_nm()])
    return np.array([
        len(d.layers), d.spacing_nm, d.stack_thickness_nm(), d.pore.width_nm, d.pore.height_nm, area,
        *(float(d.pore.shape == s) for s in SHAPES), d.groups_per_rim, float(d.material == "hbn"),
        d.bn_charge_e if d.material == "hbn" else 0.0, d.sheet_nm, d.box_z_nm, off, *q, qs.sum(),
        abs(qs.sum()), (qs * z).sum(), (qs * z**2).sum(), np.abs(qs).sum(), qs.sum() / (area * thick),
        sum(g == "OH" for g in d.layers)])


def descriptors(samples: Samples, mirrored: bool = False) -> np.ndarray:
    """(n, n_desc) descriptors of every sample; mirrored: of the design upside down with the field reversed."""
    dd = np.stack([design_descriptors(d.mirrored() if mirrored else d) for d in samples.designs])
    u = mirror_globals(samples.u) if mirrored else samples.u
    return np.column_stack([dd[samples.design_index], np.asarray(u, float)])


class _DescriptorModel(BaseEstimator):
    """Shared fit/predict: one regressor per species, validation split for calibration, optional symmetry."""

    def _regressor_fit(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator):
        raise NotImplementedError

    def _regressor_predict(self, reg, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Member means and stds, each (M, n), M >= 2 (models without members override _predict)."""
        raise NotImplementedError

    @property
    def transform(self) -> FluxTransform:
        return FluxTransform(self.flux_scale_per_ns)

    def fit(self, samples: Samples, val: Samples | None = None):
        """Train on labelled samples; val (or val_fraction of the designs) calibrates the predicted std."""
        if samples.y is None:
            raise ValueError("fit needs labelled samples (Samples.from_measurements)")
        if val is None and self.val_fraction > 0 and samples.n_designs >= 3:
            samples, val = samples.split_designs(self.val_fraction, self.seed)
        rng = np.random.default_rng(self.seed)
        x = descriptors(samples)
        exact = samples.mask & ~samples.censored
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
        self.calibration_ = np.ones(len(SPECIES_NAMES))
        self.icr_calibration_ = 1.0
        if self.calibrate and val is not None and len(val):
            self.calibration_ = calibration_factor(self._predict(val), val.y, val.mask & ~val.censored, val.sigma)
            self.icr_calibration_ = icr_calibration_factor(val, self._predict(val).scaled(self.calibration_))
        return self

    def _x(self, samples: Samples, mirrored: bool = False) -> np.ndarray:
        return self.scaler_.transform(descriptors(samples, mirrored)[:, self.columns_])

    def _predict(self, samples: Samples) -> Prediction:
        xs = self._x(samples)
        xm = self._x(samples, mirrored=True) if self.symmetric else None
        n, ns = len(samples), len(SPECIES_NAMES)
        mu, sd = None, None
        for s, name in enumerate(SPECIES_NAMES):
            if name not in self.regressors_:
                continue
            m1, s1 = self._regressor_predict(self.regressors_[name], xs)
            if xm is not None:
                m2, s2 = self._regressor_predict(self.regressors_[name], xm)
                m1, s1 = 0.5 * (m1 - m2), np.sqrt(0.5 * (s1**2 + s2**2))
            if mu is None:
                mu, sd = np.zeros((len(m1), n, ns)), np.ones((len(m1), n, ns))
            mu[:, :, s], sd[:, :, s] = m1, s1
        if mu is None:
            raise RuntimeError("no species had enough labels to fit")
        return Prediction(mu.mean(axis=0), mu.std(axis=0), np.sqrt((sd**2).mean(axis=0)), mu, sd,
                          samples.species_present)

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
    most `max_iter` L-BFGS-B iterations for the kernel hyperparameters."""

    def __init__(self, max_train: int = 400, max_iter: int = 50, n_restarts: int = 0, symmetric: bool = True,
                 calibrate: bool = True, val_fraction: float = 0.15, flux_scale_per_ns: float = 0.01, seed: int = 0):
        self.max_train = max_train
        self.max_iter = max_iter
        self.n_restarts = n_restarts
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

    def _predict(self, samples: Samples) -> Prediction:
        """As the base class, with the epistemic part taken from the noise-free posterior."""
        xs = self._x(samples)
        xm = self._x(samples, mirrored=True) if self.symmetric else None
        n, ns = len(samples), len(SPECIES_NAMES)
        mean, epi, alea = np.zeros((n, ns)), np.ones((n, ns)), np.ones((n, ns))
        for s, name in enumerate(SPECIES_NAMES):
            gp = self.regressors_.get(name)
            if gp is None:
                continue
            noise = np.sqrt(gp.kernel_.k2.noise_level) * float(np.ravel(gp._y_train_std)[0])
            m1, t1 = gp.predict(xs, return_std=True)
            e1 = np.maximum(t1**2 - noise**2, 0.0)
            if xm is not None:
                m2, t2 = gp.predict(xm, return_std=True)
                m1, e1 = 0.5 * (m1 - m2), 0.5 * (e1 + np.maximum(t2**2 - noise**2, 0.0))
            mean[:, s], epi[:, s], alea[:, s] = m1, np.sqrt(e1), noise
        std = np.sqrt(epi**2 + alea**2)
        return Prediction(mean, epi, alea, mean[None], std[None], samples.species_present)


class RFBaseline(_DescriptorModel):
    """Random forest per species. Members are the trees: epistemic = spread of the tree means, aleatoric = the
    target variance inside the leaves the sample falls in (law of total variance over trees)."""

    def __init__(self, n_estimators: int = 100, min_samples_leaf: int = 3, max_features: float = 0.5,
                 symmetric: bool = True, calibrate: bool = True, val_fraction: float = 0.15,
                 flux_scale_per_ns: float = 0.01, seed: int = 0, n_jobs: int = 1):
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

    def _regressor_predict(self, rf, x):
        x = x.astype(np.float32)
        means = np.stack([t.predict(x) for t in rf.estimators_])
        leaves = [t.apply(x) for t in rf.estimators_]
        var = np.stack([t.tree_.impurity[leaf] for t, leaf in zip(rf.estimators_, leaves, strict=True)])
        return means, np.sqrt(np.maximum(var, 1e-8))
