"""The one adapter between the campaign and the surrogate floor: fit a surrogate (porelab.surrogate: GNN
ensemble, random forest or Gaussian process, all on per-species fluxes) on Measurements, and predict the mean and
std (total and epistemic) of each target (targets.py: ln ICR, |ln ICR|, ln ON current, ln selectivity) for candidate
(design, conditions) pairs, plus a descriptor embedding for batch diversity.

    model = CampaignModel("rf", goal, seed=0, n_estimators=100)
    model.fit(measurements)                 # list[Measurement], ok ones
    pred = model.predict(candidates)        # surrogate.target_prediction.TargetPrediction; Candidate or (design, cond)
    model.save(dir); CampaignModel.load(dir)

Several fidelities: `CampaignModel(kind, goal, seed, target_fidelity="md")` learns measurements of every fidelity
jointly (surrogate.fidelity.FidelityModel; `fidelity_approach` "delta" or "feature") and predicts at the target
fidelity, its uncertainty including the gap between fidelities; `predict(candidates, fidelity="continuum")` asks
another. Without target_fidelity, one model with the fidelity as an input, asked at the most common fidelity.

Away from the training designs the epistemic std of each target is floored by surrogate.novelty (what one knows
before measuring; `novelty_floor=False`: the model's own std), so an ensemble that has seen only flat designs does
not claim to know the rest of the space. `floor_weight` scales the floor's variance (a campaign with
`novelty_floor: decay` sets it to the share of its budget left).

The targets are derived from the predicted fluxes at the goal's |E| (default: the largest |E| of the candidate's
conditions) by surrogate.derived, through porelab.sim.observables, so any kind predicts any goal. An ICR goal's
objective, |ln ICR| (campaign.targets), is the folded distribution of the predicted ln ICR (`fold_normal`): its mean
and epistemic std from ln ICR's mean and epistemic std (the noise-free rectification, what acquisition and inverse
design score), its total std from ln ICR's total std, after the calibration and the novelty floor (the last
predictive of ln ICR, which exists only as a mean and a std), so that a design and its mirror image score alike. A
measurement is compared with campaign.targets.predictive instead (ln ICR's total predictive folded, mean and std:
the epistemic fold's mean lies below what noisy measurements average). Saved models are
surrogate.store model directories (no pickle), the same that `porelab train` writes and `porelab design` reads. Only
this file should change when the surrogate's API moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.study import Goal, ModelSpec
from porelab.active_learning.campaign.targets import (
    ICR_OBJECTIVE,
    InvalidMeasurement,
    fold_normal,
    target_names,
    targets,
)
from porelab.base.errors import PorelabError
from porelab.sim.design import Conditions, Design
from porelab.sim.measurement import Measurement
from porelab.surrogate.dataset import Samples
from porelab.surrogate.derived import derive, pick_pairs
from porelab.surrogate.descriptors import SAMPLE_DESCRIPTOR_NAMES, descriptors
from porelab.surrogate.factory import KINDS as MODEL_KINDS
from porelab.surrogate.factory import new_model
from porelab.surrogate.novelty import NoveltyFloor
from porelab.surrogate.params import DEFAULT_FIDELITY_APPROACH as DEFAULT_APPROACH
from porelab.surrogate.store import load_model, save_model
from porelab.surrogate.target_prediction import TargetPrediction
from porelab.surrogate.training_set import flux_scale_for, main_fidelity, training_samples

ADAPTER_DEFAULTS = {"gnn": {"progress": False}, "rf": {}, "gp": {}}  # under the study's model params


class ModelError(PorelabError, RuntimeError):
    """The surrogate cannot be built or trained (unknown kind, bad parameter, too little data)."""


def _pairs(candidates: Sequence) -> list[tuple[Design, Conditions]]:
    return [(c.design, c.conditions) if isinstance(c, Candidate) else (c[0], c[1]) for c in candidates]


class CampaignModel:
    """A fresh, unfitted surrogate of `kind` for the goal's targets; params go to the underlying model.
    target_fidelity: learn every fidelity jointly and predict at this one (fidelity_approach: delta | feature)."""

    def __init__(self, kind: str = "gnn", goal: Goal | None = None, seed: int = 0, *,
                 target_fidelity: str | None = None, fidelity_approach: str = DEFAULT_APPROACH,
                 novelty_floor: bool | str = True, **params):
        if kind not in MODEL_KINDS:
            raise ModelError(f"model kind {kind!r} is unknown; choose one of {', '.join(MODEL_KINDS)}")
        self.kind, self.goal, self.seed, self.params = kind, goal or Goal(), seed, dict(params)
        self.target_fidelity, self.fidelity_approach = target_fidelity, fidelity_approach
        self.novelty_floor = novelty_floor
        self.floor_weight = 1.0  # the share of the floor's variance applied, in [0, 1]
        self.targets = target_names(self.goal)
        self._new([])  # refuse bad keywords now

    @property
    def derived(self) -> list[str]:
        """The targets derived from the predicted fluxes (surrogate.derived): all but the ICR objective, which is
        folded from ln ICR."""
        return [t for t in self.targets if t != ICR_OBJECTIVE]

    @classmethod
    def for_study(cls, spec: ModelSpec, goal: Goal, seed: int, *, target_fidelity: str | None = None,
                  fidelity_approach: str = DEFAULT_APPROACH) -> CampaignModel:
        """A fresh model as a study's `model:` section asks for it (kind, params, novelty_floor)."""
        return cls(spec.kind, goal, seed, target_fidelity=target_fidelity, fidelity_approach=fidelity_approach,
                   novelty_floor=spec.novelty_floor, **spec.params)

    def _new(self, ms: Sequence[Measurement]):
        """An unfitted model for the measurements `ms`: the flux scale suited to their labels
        (surrogate.training_set.flux_scale_for) unless the params set one."""
        from porelab.surrogate.fidelity import new_fidelity_model  # sklearn: when a model is made, not with this module

        params = {**ADAPTER_DEFAULTS[self.kind], "flux_scale_per_ns": flux_scale_for(ms), **self.params,
                  "seed": self.seed}
        try:
            if self.target_fidelity is not None:
                return new_fidelity_model(self.kind, self.target_fidelity, self.fidelity_approach, **params)
            return new_model(self.kind, **params)
        except (TypeError, ValueError) as err:
            raise ModelError(f"model {self.kind}: {err}") from None

    def clone(self) -> CampaignModel:
        """A fresh unfitted model with the same settings (a new one is trained every round)."""
        return CampaignModel(self.kind, self.goal, self.seed, target_fidelity=self.target_fidelity,
                             fidelity_approach=self.fidelity_approach, novelty_floor=self.novelty_floor,
                             **self.params)

    # --- training ---------------------------------------------------------------------------------
    def fit(self, measurements: Sequence[Measurement]) -> CampaignModel:
        ms = [m for m in measurements if m.status == "ok"]
        if len(ms) < 2:
            raise ModelError(f"need at least 2 measured designs to train, have {len(ms)}")
        model = self._new(ms)
        try:
            model.fit(training_samples(model, ms))
        except ValueError as err:
            raise ModelError(f"model {self.kind}: {err}") from None
        self.model_, self.train_, self.fidelity_ = model, ms, self.target_fidelity or main_fidelity(ms)
        self._novelty = {}
        return self

    def _queries(self, pairs: list[tuple[Design, Conditions]], fidelity: str):
        """Unlabelled samples of (design, conditions) pairs at `fidelity`, and the rows of the goal's +-|E| pair."""
        q = Samples.from_queries([d for d, _ in pairs], [c for _, c in pairs], fidelity, self.model_.settings,
                                 self.model_.transform)
        try:
            return q, pick_pairs(q, self.goal.field_abs_V_per_nm)
        except ValueError as err:
            raise ModelError(f"model {self.kind}: {err}") from None

    def novelty(self, fidelity: str) -> NoveltyFloor | None:
        """The floor under the epistemic std at `fidelity` away from the training designs (surrogate.novelty),
        from the training measurements: their descriptors and their targets measured at that fidelity (every
        fidelity's when fewer than 2 were); None with fewer than 2 in all."""
        if fidelity not in self._novelty:
            rows = []
            for m in self.train_:
                try:
                    rows.append((m, targets(m, self.goal)))
                except InvalidMeasurement:
                    continue
            at = [r for r in rows if r[0].fidelity == fidelity]
            rows = at if len(at) >= 2 else rows
            if len(rows) < 2:
                self._novelty[fidelity] = None
                return None
            q, (i_pos, _) = self._queries([(m.design, m.conditions) for m, _ in rows], fidelity)
            labels = {k: np.array([t[k] for _, t in rows], float) for k in self.derived}
            self._novelty[fidelity] = NoveltyFloor(descriptors(q)[i_pos], labels)
        return self._novelty[fidelity]

    def flat_floor_weight(self, candidates: Sequence) -> float:
        """The floor's weight for `novelty_floor: flat`, (1 - r)² with r the spread (std) of the model's means of
        ln ICR (ln S for selectivity) over `candidates` divided by that of its training labels, clipped to [0, 1]:
        the floor in full where the model predicts every candidate alike (it has learned nothing that tells them
        apart: explore), none where its means spread as widely as the labels (exploit what it learned)."""
        floor, name = self.novelty(self.fidelity_), "log_selectivity" if self.goal.objective == "selectivity" \
            else "log_icr"
        if floor is None or not floor.var.get(name):
            return 1.0
        spread = float(np.std(self.predict(candidates).mean[name])) / math.sqrt(floor.var[name])
        return (1.0 - min(spread, 1.0)) ** 2

    # --- prediction -------------------------------------------------------------------------------
    def predict(self, candidates: Sequence, fidelity: str | None = None) -> TargetPrediction:
        """Mean, total std and epistemic std of every target, and the descriptor embedding, per candidate, at
        `fidelity` (default: the target fidelity, else the training data's most common one)."""
        pairs = _pairs(candidates)
        if not pairs:
            z = {t: np.zeros(0) for t in self.targets}
            return TargetPrediction(z, dict(z), dict(z), np.zeros((0, len(SAMPLE_DESCRIPTOR_NAMES))))
        fidelity = fidelity or self.fidelity_
        q, (i_pos, i_neg) = self._queries(pairs, fidelity)
        sel = self.goal.selectivity
        t = derive(self.model_.predict(q), q, i_pos, i_neg, self.derived,
                   (sel.numerator, sel.denominator) if sel is not None else None, seed=self.seed)
        mean, std, epi = ({k: v[j] for k, v in t.items()} for j in range(3))
        emb = descriptors(q)[i_pos]
        floor = self.novelty(fidelity) if self.novelty_floor else None
        if floor is not None:
            for k, f in floor.std(emb).items():
                raised = np.maximum(epi[k], np.sqrt(self.floor_weight) * f)
                std[k] = np.sqrt(np.maximum(std[k] ** 2 - epi[k] ** 2, 0.0) + raised**2)
                epi[k] = raised
        if ICR_OBJECTIVE in self.targets:  # |ln ICR| (module docstring)
            mean[ICR_OBJECTIVE], epi[ICR_OBJECTIVE] = fold_normal(mean["log_icr"], epi["log_icr"])
            std[ICR_OBJECTIVE] = fold_normal(mean["log_icr"], std["log_icr"])[1]
        return TargetPrediction(mean, std, epi, emb)

    # --- persistence (surrogate.store: no pickle) ---------------------------------------------------
    def save(self, directory: str | Path, keep: bool = False) -> Path:
        """Write the model directory `directory` (created); returns the path of its model.json. `keep`: the fitted
        model stays in memory for the next load of it (surrogate.store.save_model)."""
        own = {"seed": self.seed, "params": self.params, "target_fidelity": self.target_fidelity,
               "fidelity_approach": self.fidelity_approach, "novelty_floor": self.novelty_floor}
        return save_model(directory, self.model_, self.train_, self.fidelity_, self.goal.model_dump(mode="json"),
                          {"created_by": "porelab campaign", "campaign_model": own}, keep)

    @classmethod
    def load(cls, directory: str | Path) -> CampaignModel:
        """A model directory written by a campaign or by `porelab train` (ValueError when it is not one)."""
        saved = load_model(directory)
        own = saved.info.get("provenance", {}).get("campaign_model")
        if own is None:  # written by `porelab train`: its keywords as they are
            params = {k: v for k, v in saved.info["params"].items() if k != "seed"}
            fm = saved.info.get("fidelity_model") or {}
            own = {"seed": saved.info["params"]["seed"], "params": params, "target_fidelity": fm.get("target"),
                   "fidelity_approach": fm.get("approach", DEFAULT_APPROACH)}
        goal = Goal.model_validate(saved.goal) if saved.goal else Goal()
        model = cls(saved.kind, goal, own["seed"], target_fidelity=own.get("target_fidelity"),
                    fidelity_approach=own.get("fidelity_approach", DEFAULT_APPROACH),
                    novelty_floor=own.get("novelty_floor", False), **own["params"])
        model.model_, model.train_, model.fidelity_ = saved.model, saved.training, saved.fidelity
        model._novelty = {}
        return model
