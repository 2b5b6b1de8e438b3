"""One iteration of a campaign as a pure function: a ledger snapshot in, the next picks out.

`Snapshot.read(ledger, goal)` copies what an iteration needs from the ledger. `plan(snapshot, study, pool, ...)`
trains a fresh model on the finished trials of rounds <= `train_round` (or takes the caller's cached model, trained on
that very set), scores the pool's designs the ledger does not know yet with the study's acquisition, picks the
batch and computes the metrics. It reads no file and writes nothing: the caller saves the model, draws the plots
and commits the iteration with its picks in one ledger transaction.

Metrics: counts, the best objective so far and the ON current of that design (None when only an upper bound of it
is known), and the model's prospective quality, `heldout_*` = `surrogate.metrics.regression_metrics` of the
objective over the finished designs that were predicted before they ran and measured with a value, not only a bound
(`prospective_rows`: their pick-time predictive mean and std against what was measured): rmse, mae, r2, nll,
coverage_68, coverage_95, spearman, n.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.stats import norm

from porelab.active_learning.campaign.acquisition import resolve_acquisition, select_batch
from porelab.active_learning.campaign.ledger import Ledger, MeasuredRow
from porelab.active_learning.campaign.measured import Measured, measured, with_intervals
from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.active_learning.campaign.oracles import Rung
from porelab.active_learning.campaign.space import Candidate
from porelab.active_learning.campaign.study import Goal, Study
from porelab.active_learning.campaign.targets import (
    ICR_OBJECTIVE,
    bounds,
    has_bounds,
    objective_name,
    only_a_bound,
    predictive,
    predictives,
    target_names,
    upper_censored,
)
from porelab.sim.measurement import Measurement
from porelab.surrogate.metrics import metric_intervals, regression_metrics

SPACE_FILLING = "space_filling"  # the source of the picks taken from the pool's Sobol order
P_FEASIBLE_MIN = 0.05  # below this predicted probability of meeting on_current_min_nA a candidate ranks last


def measured_rows(ledger: Ledger, goal: Goal | None = None, after_event: int = 0) -> list[MeasuredRow]:
    """The ledger's ok measurements (Ledger.measurements; after_event: of the trials changed after it); with
    `goal`, each one's targets as campaign.measured.with_intervals reads them (computed again for a row stored before
    targets carried the ICR objective and the intervals), leaving out a row whose targets still lack the goal's
    objective (a measurement that no longer yields valid targets: campaign.targets.InvalidMeasurement)."""
    rows = ledger.measurements(ok_only=True, after_event=after_event)
    if goal is None:
        return rows
    read = [replace(r, targets=with_intervals(r.targets, r.json, goal)) for r in rows]
    return [r for r in read if objective_name(goal) in r.targets]


@dataclass
class Parsed:
    """What iterations have read and parsed, kept by the driver from one iteration to the next so that each stored
    measurement is read and parsed once: the ledger's rows as of its event `event` (Ledger.last_event), read for
    `goal` (measured_rows and Ledger.outcomes by design id, the known design ids), brought up to date by reading
    only the trials changed since (`update`); and design id -> (its JSON, the Measurement) and -> (its JSON, its
    campaign.measured reading)."""

    measurements: dict[str, tuple[str, Measurement]] = field(default_factory=dict)
    readings: dict[str, tuple[str, Measured | None]] = field(default_factory=dict)
    event: int = 0
    goal: Goal | None = None
    rows: dict[str, MeasuredRow] = field(default_factory=dict)
    outcomes: dict[str, tuple] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)

    def update(self, ledger: Ledger, goal: Goal | None) -> None:
        """Bring the rows up to date with `ledger`: all of them the first time (or for another goal), then only
        those of the trials that changed since the event last read (every change is an event)."""
        last = ledger.last_event()  # first: a change committed while reading is read again next time
        if self.event and goal == self.goal:
            changed = ledger.changed_since(self.event)
            for d in changed:
                self.rows.pop(d, None)
                self.outcomes.pop(d, None)
            self.known |= changed
        else:
            self.rows, self.outcomes, self.known = {}, {}, ledger.known_ids()
        self.rows.update((r.design_id, r) for r in measured_rows(ledger, goal, self.event))
        self.outcomes.update((o[0], o) for o in ledger.outcomes(self.event))
        self.event, self.goal = last, goal


def _once(cache: dict, row: MeasuredRow, compute):
    """compute(row), kept in `cache` under the row's design id with its JSON: computed again only for another
    stored version."""
    hit = cache.get(row.design_id)
    if hit is None or hit[0] != row.json:
        hit = cache[row.design_id] = (row.json, compute(row))
    return hit[1]


@dataclass(frozen=True)
class Snapshot:
    """What an iteration reads from the ledger: the ok measurements (ledger.MeasuredRow, in dispatch order), the
    pick-time predictions of completed trials (design_id -> (round, prediction)), trial counts by status,
    every known design id, the iterations and the models so far; the study's goal they were read for."""

    measured: list[MeasuredRow]
    predicted: dict[str, tuple[int, dict]]
    counts: dict[str, int]
    known_ids: frozenset[str]
    iterations: list[dict] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)
    rungs: dict = field(default_factory=dict)  # Ledger.rung_stats(): trials and median busy s by rung
    busy_s: dict[str, float] = field(default_factory=dict)  # worker s of each completed trial at the study's oracle
    goal: Goal | None = None
    parsed: Parsed = field(default_factory=Parsed)
    memo: dict = field(default_factory=dict, repr=False, compare=False)  # prospective_rows, once per question

    @classmethod
    def read(cls, ledger: Ledger, goal: Goal | None = None, parsed: Parsed | None = None) -> Snapshot:
        """The snapshot of `ledger`; with the study's `goal`, targets as `measured_rows` reads them. `parsed`: the
        caller's cache (`Parsed`), kept from one iteration to the next so that each stored measurement is read and
        parsed once."""
        parsed = Parsed() if parsed is None else parsed
        parsed.update(ledger, goal)
        done = parsed.outcomes.values()
        return cls(sorted(parsed.rows.values(), key=lambda r: r.seq),
                   {d: (rnd, p) for d, rnd, _, _, p in done if p}, ledger.counts(), frozenset(parsed.known),
                   ledger.iterations(), ledger.models(), ledger.rung_stats(),
                   {d: b for d, _, rung, b, _ in done if rung is None and b}, goal, parsed)

    def measurement(self, row: MeasuredRow) -> Measurement:
        """The Measurement of a measured row, parsed once per stored version (cached in `parsed`)."""
        return _once(self.parsed.measurements, row, lambda r: Measurement.model_validate_json(r.json))

    def reading(self, row: MeasuredRow) -> Measured | None:
        """campaign.measured.measured(row, goal) (the snapshot read with a goal), once per stored version (cached
        in `parsed`)."""
        return _once(self.parsed.readings, row, lambda r: measured(r, self.goal))

    @property
    def n_trials(self) -> int:
        """Trials at the study's own oracle (what budget.simulations counts; a cheaper rung has its own cap)."""
        return self.rungs.get(None, {}).get("trials", 0) if self.rungs else sum(self.counts.values())

    def rows(self, max_round: int | None, target_only: bool = False) -> list[MeasuredRow]:
        """The ok measurements of rounds <= max_round (None: all); target_only: those of the study's own oracle
        (not a cheaper rung of its ladder)."""
        return [r for r in self.measured if (max_round is None or r.round <= max_round)
                and not (target_only and r.rung is not None)]

    def cost_s(self, rung: str | None) -> float | None:
        """Median worker seconds of a completed trial at `rung` (None: the target), from the ledger; None before
        one completed."""
        return self.rungs.get(rung, {}).get("median_busy_s")


@dataclass
class Plan:
    """An iteration's outcome. picks: ledger rows of the picked candidates (round = step); scores: the
    acquisition score of each available candidate (n,), picked: the indices chosen (q,) (None when final)."""

    step: int
    n_train: int
    digest: str
    model: CampaignModel | None
    picks: list[dict]
    metrics: dict
    acquisition: str | None = None
    scores: np.ndarray | None = None
    picked: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


def train_digest(snap: Snapshot, max_round: int | None) -> str:
    """Digest of a training set (its design ids, and the measurement's content for an extended trial's): equal
    digests, same data, so the same model for the same seed."""
    ids = sorted(r.design_id + (f"@{hashlib.sha256(r.json.encode()).hexdigest()[:16]}" if r.extensions else "")
                 for r in snap.rows(max_round))
    return hashlib.sha256(",".join(ids).encode()).hexdigest()[:16]


def best_observed(rows: list[MeasuredRow], study: Study) -> tuple[float | None, dict | None]:
    """Best objective measured by the study's own oracle (natural units, in the goal's direction; a cheaper rung
    of its ladder answers another question) and that design's targets + id."""
    objective, sign = objective_name(study.goal), 1.0 if study.goal.maximize else -1.0
    best, who = None, None
    for m in rows:
        if m.rung is not None:
            continue
        v = m.targets[objective]
        if best is None or sign * v > sign * best:
            best, who = v, {**m.targets, "design_id": m.design_id}
    return (math.exp(best) if best is not None else None), who


def prospective_rows(snap: Snapshot, objective: str, max_round: int | None,
                     only_round: int | None = None) -> list[tuple[MeasuredRow, float, float, float]]:
    """(row, measured, predicted mean, predicted std) of the objective for the finished designs of rounds
    <= max_round (only_round: of that round alone) measured by the study's own oracle (the target fidelity) with a
    value, not only a bound (campaign.targets.only_a_bound), whose objective was predicted before they ran
    (campaign.targets.predictive), in the snapshot's order."""
    key = (objective, max_round, only_round)
    if key not in snap.memo:
        rows = [r for r in snap.rows(max_round, target_only=True)
                if only_round in (None, r.round) and not only_a_bound(r.targets, objective)]
        mean, sd, have = predictives([snap.predicted.get(r.design_id, (None, {}))[1] for r in rows], objective)
        snap.memo[key] = [(r, r.targets[objective], float(m), float(s))
                          for r, m, s, h in zip(rows, mean, sd, have, strict=True) if h]
    return snap.memo[key]


def prospective(snap: Snapshot, objective: str, max_round: int | None,
                only_round: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(measured, predicted mean, predicted std) of the objective, each (n,), of `prospective_rows`."""
    a = np.array([x[1:] for x in prospective_rows(snap, objective, max_round, only_round)], float).reshape(-1, 3)
    return a[:, 0], a[:, 1], a[:, 2]


def pick_row(c: Candidate, round: int, source: str, prediction: dict | None = None,
             score: float | None = None, fidelity: str | None = None) -> dict:
    """A candidate as a ledger trial row (Ledger.add_trials / record_iteration); fidelity: the ladder's rung that
    measures it (None: the study's own oracle)."""
    return {"design_id": c.design_id, "design": c.design.model_dump(mode="json"),
            "conditions": c.conditions.model_dump(mode="json"), "round": round, "source": source,
            "prediction": prediction, "score": score, "fidelity": fidelity}


def plan(snap: Snapshot, study: Study, pool: list[Candidate], step: int, train_round: int | None, budget: int,
         cached: CampaignModel | None = None, final: bool = False, rungs: list[Rung] | None = None) -> Plan:
    """Iteration `step`: a model trained on rounds <= train_round (None: every round), then (unless `final`) up to
    `budget.batch` picks among the pool's unknown designs, at most `budget` trials in all. `cached`: a model
    already trained on that very training set (see `train_digest`), used instead of training again. `rungs`: the
    study's fidelity ladder (oracles.ladder, target last); with more than one, the model learns every fidelity and
    predicts at the target, and each pick's fidelity is chosen by `choose_fidelities`."""
    ms = [snap.measurement(r) for r in snap.rows(train_round)]
    digest, notes = train_digest(snap, train_round), []
    target = rungs[-1].name if rungs and len(rungs) > 1 else None
    t0 = time.perf_counter()
    model = cached
    if model is None and len(ms) >= 3:
        try:
            model = CampaignModel.for_study(study.model, study.goal, study.seed, target_fidelity=target).fit(ms)
        except ModelError as err:
            notes.append(f"model   step {step}: {err}; picking without a model")
    t_train = time.perf_counter() - t0
    if final:
        pred = model.predict(pool[: min(len(pool), 256)]) if model is not None else None
        metrics = {**_metrics(snap, study, pred, len(ms), None), "picks": 0, "train_digest": digest}
        return Plan(step, len(ms), digest, model, [], metrics, notes=notes)
    avail = [c for c in pool if c.design_id not in snap.known_ids]
    q = min(study.budget.batch, budget - snap.n_trials, len(avail))
    if model is not None and study.model.novelty_floor == "decay":  # the floor's share: the budget left
        model.floor_weight = max(0.0, 1.0 - snap.n_trials / budget)
    if model is not None and avail and study.model.novelty_floor == "flat":  # the floor while the means are flat
        model.floor_weight = model.flat_floor_weight(avail)
        notes.append(f"model   step {step}: novelty floor weight {model.floor_weight:.2f} (flat means: 1)")
    t0 = time.perf_counter()
    pred = model.predict(avail) if model is not None and avail else None
    t_predict = time.perf_counter() - t0
    acq, scores = _scores(snap, study, model, pred, avail, step, train_round)
    guided = acq.uses_model and pred is not None
    n_fill = space_filling_count(q, study.acquisition.explore_fraction) if guided else 0
    idx = select_batch(scores, q - n_fill, pred.embedding if pred is not None else None,
                       seed=step_seed(study, step), diverse=study.acquisition.diverse and guided)
    taken = set(idx.tolist())
    fill = [i for i in range(len(avail)) if i not in taken][:n_fill]  # the next designs in the pool's Sobol order
    idx = np.asarray([*idx.tolist(), *fill], int)
    sources = [study.acquisition.kind] * (len(idx) - len(fill)) + [SPACE_FILLING] * len(fill)
    fids, at = [None] * len(idx), [(pred, int(i)) for i in idx]
    if target is not None and model is not None and pred is not None and len(idx):
        fids, at = choose_fidelities(model, [avail[i] for i in idx], pred, idx, rungs, snap, objective_name(study.goal))
    names = target_names(study.goal)
    picks = [pick_row(avail[i], step, src, _prediction_row(p, j, names) if p is not None else None,
                      float(scores[i]), fid) for i, src, fid, (p, j) in zip(idx, sources, fids, at, strict=True)]
    extensions = []
    if study.acquisition.extend_max_ps is not None and guided and len(idx):
        value = np.asarray(pred.epistemic[objective_name(study.goal)], float)[idx] ** 2 / (snap.cost_s(None) or 1.0)
        value[np.asarray([f is not None for f in fids], bool)] = np.inf  # a cheaper rung's pick is not replaced
        keep, extensions = choose_extensions(snap, study, value, step)
        picks, idx = [picks[k] for k in keep], idx[keep]
    metrics = {**_metrics(snap, study, pred, len(ms), train_round), "picks": len(picks) + len(extensions),
               "extensions": len(extensions), "train_seconds": t_train, "predict_seconds": t_predict,
               "train_digest": digest}
    picks += extensions
    if target is not None:
        for r in rungs:
            key = None if r is rungs[-1] else r.name
            metrics[f"picks_at_{r.name}"] = sum(f == key for f in fids)
            metrics[f"cost_s_{r.name}"] = snap.cost_s(key)
    return Plan(step, len(ms), digest, model, picks, metrics, study.acquisition.kind, scores, idx, notes)


def _prediction_row(pred, i: int, names: list[str]) -> dict:
    """The pick-time prediction of row i (ledger trial's `prediction`): {<target>_mean, <target>_std}, the total
    std; the ICR objective's as campaign.targets.predictive folds it from ln ICR's, comparable with a measurement
    (not the acquisition's epistemic fold)."""
    row = {f"{t}_{k}": float(v[t][i]) for t in names if t != ICR_OBJECTIVE
           for k, v in (("mean", pred.mean), ("std", pred.std))}
    if ICR_OBJECTIVE in names:
        row[f"{ICR_OBJECTIVE}_mean"], row[f"{ICR_OBJECTIVE}_std"] = predictive(row, ICR_OBJECTIVE)
    return row


def choose_fidelities(model: CampaignModel, picks: list[Candidate], pred, idx: np.ndarray, rungs: list[Rung],
                      snap: Snapshot, objective: str) -> tuple[list[str | None], list[tuple]]:
    """The fidelity of each pick (chosen at the target fidelity by the acquisition), by value per cost:

        value(target) = var_T(x),   value(m) = min(var_m(x), var_T(x))   for a cheaper rung m,

    var = the model's epistemic variance of the objective at that fidelity (what a measurement there can remove
    at most), cost = the median worker seconds of that rung's completed trials in the ledger (a rung with none yet
    is assumed as costly as the target; 1 s when neither is known). A cheaper rung is eligible only while its std
    at x exceeds its threshold (BoFire's multi-fidelity rule: ask the cheap oracle only where it can still tell
    something) and its `simulations` cap leaves room. Returns each pick's rung name (None: the target) and
    (prediction, row) of the pick at that fidelity (its pick-time prediction)."""
    var_t = np.asarray(pred.epistemic[objective], float)[idx] ** 2
    c_t = snap.cost_s(None) or 1.0
    lower, room = [], {}
    for r in rungs[:-1]:
        p = model.predict(picks, fidelity=r.name)
        lower.append((r, p, np.asarray(p.epistemic[objective], float), snap.cost_s(r.name) or c_t))
        used = snap.rungs.get(r.name, {}).get("trials", 0)
        room[r.name] = math.inf if r.simulations is None else r.simulations - used
    fids, at = [], []
    for j, i in enumerate(idx):
        best, fid, here = var_t[j] / c_t, None, (pred, int(i))
        for r, p, sd, cost in lower:
            value = min(sd[j] ** 2, var_t[j]) / cost
            if room[r.name] > 0 and sd[j] > r.threshold and value > best:
                best, fid, here = value, r.name, (p, j)
        if fid is not None:
            room[fid] -= 1
        fids.append(fid)
        at.append(here)
    return fids, at


def extension_options(snap: Snapshot, study: Study) -> list[dict]:
    """The completed runs of the study's own (MD) oracle worth extending, each {design_id, extend_ps, value, cost_s}:
    runs that stopped at their length (stopped `cap` or `fixed`, not decided by the run-length rule) below
    `acquisition.extend_max_ps`, whose objective interval still reaches past the best lower bound measured (the
    best upper bound when minimising): resolving them can change which design ranks first.

        extend_ps = min(2 L, extend_max_ps),   value = s^2 (1 - L / extend_ps),   cost_s = busy_s (extend_ps - L) / L

    L = production per field so far; s = the objective's label std from its 95 % interval ((hi - lo) / 3.92), or,
    where an end is unknown (censored), the spread (std) of the objective over the measured designs: the variance an
    extension removes, as a label's variance falls as 1/length; busy_s = the worker seconds the ledger measured for
    the run so far (setup included: an upper estimate)."""
    objective, sign = objective_name(study.goal), 1.0 if study.goal.maximize else -1.0
    rows = snap.rows(None, target_only=True)
    if len(rows) < 2:
        return []
    ys = np.array([r.targets[objective] for r in rows], float)
    spread = float(np.std(ys)) or 1.0
    ends = [(bounds(r.targets, objective) if has_bounds(r.targets, objective) else (None, None))[::int(sign)]
            for r in rows]  # (pessimistic, optimistic) end of each interval in the goal's direction
    worst = [sign * e[0] for e in ends if e[0] is not None]
    best_low = max(worst) if worst else -math.inf
    out = []
    for r, end in zip(rows, ends, strict=True):
        busy = snap.busy_s.get(r.design_id)
        if busy is None:
            continue
        run = snap.measurement(r).run
        if run is None or run.stopped not in ("cap", "fixed") or run.production_ps <= 0:
            continue
        option = extension_option(run.production_ps, study.acquisition.extend_max_ps, end, sign, best_low, spread,
                                  busy)
        if option is not None:
            out.append({"design_id": r.design_id, **option})
    return out


def extension_option(length: float, extend_max_ps: float, end: tuple[float | None, float | None], sign: float,
                     best_low: float, spread: float, busy_s: float) -> dict | None:
    """{extend_ps, value, cost_s} of extending one run of `length` ps per field (`extension_options`' rule), None
    when it is not worth it: already at extend_max_ps, or its objective interval `end` (pessimistic, optimistic end
    in the goal's direction, None where unknown) cannot pass `best_low`, the best pessimistic end measured."""
    to = min(2.0 * length, extend_max_ps)
    low, high = end
    if to <= length * (1 + 1e-6) or (high is not None and sign * high <= best_low):
        return None
    s = abs(high - low) / (2 * 1.96) if high is not None and low is not None else spread
    return {"extend_ps": to, "value": s ** 2 * (1.0 - length / to),
            "cost_s": max(busy_s, 1e-9) * (to - length) / length}


def choose_extensions(snap: Snapshot, study: Study, pick_value: np.ndarray, step: int) -> tuple[list[int], list[dict]]:
    """Replace the batch's picks by extensions of existing runs (`extension_options`) while an extension's value
    per cost exceeds the lowest of the picks': pick_value (q,) = each pick's value per cost (the model's epistemic
    variance of the objective at the target fidelity over that fidelity's median cost; inf: not replaceable).
    Both values are variances of the objective a simulation can remove, so they compare. Returns the indices of
    the picks kept and the extensions' ledger rows (Ledger.record_iteration)."""
    keep = list(range(len(pick_value)))
    chosen = []
    for e in sorted(extension_options(snap, study), key=lambda e: -e["value"] / e["cost_s"]):
        if not keep:
            break
        worst = min(keep, key=lambda k: pick_value[k])
        if e["value"] / e["cost_s"] <= pick_value[worst]:
            break
        keep.remove(worst)
        chosen.append({"design_id": e["design_id"], "round": step, "extend_ps": e["extend_ps"],
                       "score": e["value"] / e["cost_s"], "fidelity": None, "source": "extend"})
    return keep, chosen


def space_filling_count(q: int, fraction: float) -> int:
    """How many of a model-guided batch of q come from the pool's space-filling order: round(fraction * q), and at
    least one while fraction > 0 and q >= 2 (the rest follow the acquisition)."""
    n = int(math.floor(fraction * q + 0.5))
    return min(q, max(n, 1 if fraction > 0 and q >= 2 else 0))


def heldout_metrics(y: np.ndarray, mu: np.ndarray, sd: np.ndarray, intervals: bool = False) -> dict:
    """`heldout_<metric>`: surrogate.metrics.regression_metrics of the measured objective y against the predicted
    mean and std (each (n,), `prospective`), None where a metric has no value; with `intervals` also
    `heldout_<metric>_ci`, [low, high] of surrogate.metrics.metric_intervals (95 % bootstrap)."""
    def value(x):
        return None if isinstance(x, float) and math.isnan(x) else x

    out = {f"heldout_{k}": value(v) for k, v in regression_metrics(y, mu, sd).items()}
    if intervals:
        out |= {f"heldout_{k}_ci": [value(lo), value(hi)] for k, (lo, hi) in metric_intervals(y, mu, sd).items()}
    return out


def _metrics(snap: Snapshot, study: Study, pred, n_train: int, max_round: int | None) -> dict:
    objective = objective_name(study.goal)
    best, who = best_observed(snap.measured, study)
    out = {"n_train": n_train, "completed": snap.counts["completed"], "failed": snap.counts["failed"],
           "abandoned": snap.counts["abandoned"], "best_objective": best,
           "on_current_of_best_nA": math.exp(who["log_on_current"])
           if who and not upper_censored(who, "log_on_current") else None}
    y, mu, sd = prospective(snap, objective, max_round)
    if len(y) >= 2:
        out |= heldout_metrics(y, mu, sd)
    if pred is not None and len(pred):
        out["mean_uncertainty"] = float(np.mean(pred.epistemic[objective]))
    return out


def step_seed(study: Study, step: int) -> int:
    """The seed of iteration `step`'s random choices (random and Thompson scores, the batch's k-means++)."""
    return study.seed * 7919 + step


def _scores(snap: Snapshot, study: Study, model, pred, avail, step: int, train_round: int | None):
    spec, goal = study.acquisition, study.goal
    kw = dict(spec.params)
    kind = spec.kind
    if kind != "grid" and (model is None or pred is None):
        kind = "random"  # no model yet (or training failed): explore at random, seeded
    if kind == "random":
        kw = {"seed": step_seed(study, step)}
    if kind == "thompson":
        kw.setdefault("seed", step_seed(study, step))
    if kind in ("ei", "constrained_ei"):  # incumbent from the training rounds only (deterministic picks)
        kw.setdefault("best_f", _best_feasible(snap, study, kind, train_round))
    if kind == "constrained_ei":
        kw.setdefault("threshold", math.log(goal.on_current_min_nA))
    if kind != "grid":
        kw.setdefault("target", objective_name(goal))
        kw.setdefault("maximize", goal.maximize)
    acq = resolve_acquisition(kind, model, **kw)
    scores = np.asarray(acq.score(pred) if pred is not None else acq(avail), float)
    if goal.on_current_min_nA is not None and pred is not None and kind not in ("grid", "random", "constrained_ei"):
        scores = respect_constraint(scores, pred, math.log(goal.on_current_min_nA))
    return acq, scores


def respect_constraint(scores: np.ndarray, pred, log_threshold: float, p_min: float = P_FEASIBLE_MIN) -> np.ndarray:
    """The goal's ON-current constraint in every model-based acquisition (ucb, ei, max_uncertainty; random and
    grid stay baselines):
    candidates whose predicted probability of ln ON current >= log_threshold is below p_min rank after every
    plausible one (among themselves by that probability), so that no pick is spent where the model is
    confident the constraint fails. constrained_ei weighs by the probability itself. scores, result: (n,)."""
    cm = np.asarray(pred.mean["log_on_current"], float)
    cs = np.maximum(np.asarray(pred.std["log_on_current"], float), 1e-9)
    p = norm.sf((log_threshold - cm) / cs)
    ok = p >= p_min
    if ok.all() or not ok.any():
        return scores if ok.all() else p
    floor = scores[ok].min() - 1.0
    return np.where(ok, scores, floor - (1.0 - p))


def _best_feasible(snap: Snapshot, study: Study, kind: str, max_round: int | None) -> float | None:
    """EI's incumbent: the best objective measured in rounds <= max_round by a design known to meet the goal's ON
    current (an ON current known only from above, "< x", is not); without one None for constrained_ei, else -inf."""
    thr, objective = study.goal.on_current_min_nA, objective_name(study.goal)
    vals = [m.targets[objective] for m in snap.rows(max_round) if thr is None or (
        not upper_censored(m.targets, "log_on_current") and m.targets["log_on_current"] >= math.log(thr))]
    if not vals:
        return None if kind == "constrained_ei" else -np.inf
    return max(vals) if study.goal.maximize else min(vals)
