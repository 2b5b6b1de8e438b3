"""The one adapter between the campaign and the surrogate floor: fit on Measurements, predict the mean and
std (epistemic and total) of each target (targets.py: ln ICR, ln ON current, ln selectivity) for candidate
(design, conditions) pairs, plus a descriptor embedding for batch diversity.

    model = CampaignModel("gnn", goal, seed=0)
    model.fit(measurements)                 # list[Measurement], ok ones
    pred = model.predict(candidates)        # acquisition.Prediction; candidates: Candidate or (design, cond)
    model.save(dir); CampaignModel.load(dir)

Kinds: gnn (surrogate.ensemble.DeepEnsemble on design graphs: per-species fluxes at +E and -E, from which
ICR, ON current and selectivity follow; epistemic std = spread over members, total std from Monte Carlo
draws of the members' mixture), rf (random forest on descriptors; epistemic = spread of the trees), gp
(Gaussian process, Matern 5/2 + white noise, on descriptors). Saved models hold no pickle: rf/gp keep their
training measurements and refit deterministically on load; the GNN is saved by the surrogate (weights_only).
Only this file should change when the surrogate's API moves.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from porelab.active_learning.campaign.acquisition import Prediction
from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import target_names, targets
from porelab.sim.design import SPECIES, Conditions, Design
from porelab.sim.measurement import Measurement, atomic_write_text

MODEL_KINDS = ("gnn", "rf", "gp")


class ModelError(RuntimeError):
    """The surrogate cannot be built or trained (unknown kind, bad parameter, too little data)."""


def descriptor(design: Design, conditions: Conditions) -> np.ndarray:
    """Fixed-length physical descriptor of a candidate, shape (DESCRIPTOR_SIZE,).

    Geometry (nm, nm^2), rim charge per layer bottom to top padded to 8 (e), net charge (e), dipole of the
    rim charges about the stack centre (e nm), bottom-top charge asymmetry (e), |E| (V/nm) and ln|E|,
    bias E*Lz (V), ln concentration of each species (M; absent = 1e-3 M), ionic strength (M), T (K).
    """
    q = design.layer_charge_e()
    z = np.asarray(design.layer_z_nm()) - design.box_z_nm / 2
    e = max(abs(x) for x in conditions.fields_V_per_nm)
    conc = [conditions.electrolyte.get(s, 0.0) for s in SPECIES]
    ionic = 0.5 * sum(c * SPECIES[s]["valence"] ** 2 for s, c in conditions.electrolyte.items())
    return np.array([
        len(design.layers), design.spacing_nm, design.stack_thickness_nm(), design.pore.width_nm,
        design.pore.height_nm, design.pore.area_nm2(), design.groups_per_rim, design.sheet_nm, design.box_z_nm,
        float(design.material == "hbn"), design.bn_charge_e if design.material == "hbn" else 0.0,
        *(q + [0.0] * (8 - len(q))), sum(q), float(np.dot(q, z)), q[0] - q[-1],
        e, math.log(max(e, 1e-6)), e * design.box_z_nm,
        *(math.log(c + 1e-3) for c in conc), ionic, conditions.temperature_K,
    ], dtype=float)


def _pairs(candidates: Sequence) -> list[tuple[Design, Conditions]]:
    return [(c.design, c.conditions) if isinstance(c, Candidate) else (c[0], c[1]) for c in candidates]


class _Scaler:
    def fit(self, x: np.ndarray) -> _Scaler:
        self.mean_, sd = x.mean(0), x.std(0)
        self.scale_ = np.where(sd > 1e-12, sd, 1.0)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_


class CampaignModel:
    """A fresh, unfitted surrogate of `kind` for the goal's targets; params go to the underlying model."""

    def __init__(self, kind: str = "gnn", goal: Goal | None = None, seed: int = 0, **params):
        if kind not in MODEL_KINDS:
            raise ModelError(f"model kind {kind!r} is unknown; choose one of {', '.join(MODEL_KINDS)}")
        self.kind, self.goal, self.seed, self.params = kind, goal or Goal(), seed, dict(params)
        self.targets = target_names(self.goal)

    def clone(self) -> CampaignModel:
        """A fresh unfitted model with the same settings (a new one is trained every round)."""
        return CampaignModel(self.kind, self.goal, self.seed, **self.params)

    # --- training ---------------------------------------------------------------------------------
    def fit(self, measurements: Sequence[Measurement]) -> CampaignModel:
        ms = [m for m in measurements if m.status == "ok"]
        if len(ms) < 2:
            raise ModelError(f"need at least 2 measured designs to train, have {len(ms)}")
        self.train_ = ms
        pairs = [(m.design, m.conditions) for m in ms]
        self.scaler_ = _Scaler().fit(np.stack([descriptor(d, c) for d, c in pairs]))
        if self.kind == "gnn":
            self._fit_gnn(ms)
            return self
        tg = [targets(m, self.goal) for m in ms]
        y = np.array([[t[n] for n in self.targets] for t in tg], float)
        xs = self.scaler_.transform(np.stack([descriptor(d, c) for d, c in pairs]))
        if self.kind == "rf":
            self._fit_rf(xs, y)
        else:
            self._fit_gp(xs, y)
        return self

    def _fit_rf(self, xs: np.ndarray, y: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestRegressor

        kw = {"n_estimators": 200, "min_samples_leaf": 1, "max_features": 0.5, **self.params}
        try:
            self.rf_ = RandomForestRegressor(random_state=self.seed, n_jobs=1, **kw).fit(xs, y)
        except (TypeError, ValueError) as err:
            raise ModelError(f"model rf: {err}") from None

    def _fit_gp(self, xs: np.ndarray, y: np.ndarray) -> None:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        self.y_mean_, self.y_sd_ = y.mean(0), np.where(y.std(0) > 1e-12, y.std(0), 1.0)
        ys = (y - self.y_mean_) / self.y_sd_
        self.gps_ = []
        for j in range(y.shape[1]):
            kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.ones(xs.shape[1]), (1e-2, 1e3), nu=2.5) \
                + WhiteKernel(1e-2, (1e-6, 1.0))
            gp = GaussianProcessRegressor(kernel, normalize_y=False, random_state=self.seed,
                                          n_restarts_optimizer=int(self.params.get("restarts", 1)))
            self.gps_.append(gp.fit(xs, ys[:, j]))

    def _fit_gnn(self, ms: list[Measurement]) -> None:
        from porelab.surrogate.dataset import Samples
        from porelab.surrogate.ensemble import DeepEnsemble

        kw = {"progress": False, **self.params, "seed": self.seed}
        try:
            self.gnn_ = DeepEnsemble(**kw)
            samples = Samples.from_measurements(ms, self.gnn_.settings, self.gnn_.transform)
            self.gnn_.fit(samples)
        except (TypeError, ValueError) as err:
            raise ModelError(f"model gnn: {err}") from None
        fids = [m.fidelity for m in ms]
        self.fidelity_ = max(set(fids), key=fids.count)

    # --- prediction -------------------------------------------------------------------------------
    def predict(self, candidates: Sequence) -> Prediction:
        pairs = _pairs(candidates)
        if not pairs:
            z = {t: np.zeros(0) for t in self.targets}
            return Prediction(z, dict(z), dict(z), np.zeros((0, len(self.scaler_.mean_))))
        x = self.scaler_.transform(np.stack([descriptor(d, c) for d, c in pairs]))
        if self.kind == "gnn":
            mean, total, epi = self._predict_gnn(pairs)
        elif self.kind == "rf":
            per_tree = np.stack([t.predict(x) for t in self.rf_.estimators_])
            per_tree = per_tree.reshape(len(self.rf_.estimators_), len(x), -1)  # (trees, n, targets)
            mean, epi = per_tree.mean(0), per_tree.std(0)
            total = epi
        else:
            cols = [gp.predict(x, return_std=True) for gp in self.gps_]
            mean = np.column_stack([m for m, _ in cols]) * self.y_sd_ + self.y_mean_
            total = np.column_stack([s for _, s in cols]) * self.y_sd_
            noise = np.array([math.sqrt(gp.kernel_.k2.noise_level) for gp in self.gps_]) * self.y_sd_
            epi = np.sqrt(np.maximum(total**2 - noise**2, 0.0))
        return Prediction({t: mean[:, j] for j, t in enumerate(self.targets)},
                          {t: total[:, j] for j, t in enumerate(self.targets)},
                          {t: epi[:, j] for j, t in enumerate(self.targets)}, x)

    def _predict_gnn(self, pairs, n_draws: int = 128) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, total std, epistemic std), each (n, targets), from the ensemble's flux predictions."""
        from porelab.surrogate.dataset import Samples
        from porelab.surrogate.targets import SPECIES_NAMES, current_nA

        q = Samples.from_queries([d for d, _ in pairs], [c for _, c in pairs], self.fidelity_, self.gnn_.settings)
        p = self.gnn_.predict(q)
        on, off, fabs = q.icr_pairs()
        group = q.group[on]
        want = self.goal.field_abs_V_per_nm
        chosen = {}
        for k, (g, e) in enumerate(zip(group, fabs, strict=True)):
            score = -abs(e - want) if want is not None else e
            if g not in chosen or score > chosen[g][1]:
                chosen[g] = (k, score)
        if len(chosen) != len(pairs):
            raise ModelError("model gnn: every candidate needs a field at both +E and -E")
        k = np.array([chosen[g][0] for g in range(len(pairs))])
        i_on, i_off = on[k], off[k]
        tr = self.gnn_.transform
        rng = np.random.default_rng(self.seed)
        draws = p.draws(n_draws, rng)  # (K, n, S): members' mixture, aleatoric included
        sets = {"point": p.mean[None], "members": p.members_mean, "draws": draws}
        out = {}
        for name, y in sets.items():
            flux = tr.inverse(y)  # (R, n_samples, S) ions/ns
            cur = np.stack([current_nA(f, p.present) for f in flux])  # (R, n_samples)
            ip, im = np.abs(cur[:, i_on]), np.abs(cur[:, i_off])
            cols = [np.log(np.maximum(ip, 1e-12)) - np.log(np.maximum(im, 1e-12)),
                    np.log(np.maximum(np.maximum(ip, im), 1e-12))]
            if "log_selectivity" in self.targets:
                on_idx = np.where(ip >= im, i_on[None], i_off[None])  # (R, n) sample index of the ON side
                cols.append(self._log_selectivity(flux, on_idx, pairs, SPECIES_NAMES))
            out[name] = np.stack(cols, axis=-1)  # (R, n, targets)
        return out["point"][0], out["draws"].std(0), out["members"].std(0)

    def _log_selectivity(self, flux: np.ndarray, on_idx: np.ndarray, pairs, names) -> np.ndarray:
        sel = self.goal.selectivity
        num = np.zeros(on_idx.shape)
        den = np.zeros(on_idx.shape)
        for j, (_, c) in enumerate(pairs):
            f = flux[np.arange(len(flux)), on_idx[:, j]]  # (R, S)
            for s in sel.numerator:
                if s in c.electrolyte:
                    num[:, j] += np.abs(f[:, names.index(s)]) / c.electrolyte[s]
            for s in sel.denominator:
                if s in c.electrolyte:
                    den[:, j] += np.abs(f[:, names.index(s)]) / c.electrolyte[s]
        return np.log(np.maximum(num, 1e-300)) - np.log(np.maximum(den, 1e-300))

    # --- persistence (no pickle) ------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write the model to `directory` (created): campaign_model.json (+ the GNN's own files)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        doc = {"kind": self.kind, "goal": self.goal.model_dump(mode="json"), "seed": self.seed,
               "params": self.params, "train": [m.model_dump(mode="json") for m in self.train_]}
        if self.kind == "gnn":
            self.gnn_.save(d / "gnn")
            doc["fidelity"] = self.fidelity_
        path = d / "campaign_model.json"
        atomic_write_text(path, json.dumps(doc))
        return path

    @classmethod
    def load(cls, directory: str | Path) -> CampaignModel:
        d = Path(directory)
        doc = json.loads((d / "campaign_model.json").read_text())
        model = cls(doc["kind"], Goal.model_validate(doc["goal"]), doc["seed"], **doc["params"])
        ms = [Measurement.model_validate(m) for m in doc["train"]]
        if model.kind != "gnn":
            return model.fit(ms)
        from porelab.surrogate.ensemble import DeepEnsemble

        model.train_, model.fidelity_ = ms, doc["fidelity"]
        model.scaler_ = _Scaler().fit(np.stack([descriptor(m.design, m.conditions) for m in ms]))
        model.gnn_ = DeepEnsemble.load(d / "gnn")
        return model
