"""Inverse design: search a design space with a trained surrogate for membranes that rectify strongly while
passing a useful ON current, rank them risk-aware, and verify the best with the oracle.

Values are natural logs: the objective o = |ln ICR| (the rectification of the better orientation, campaign.targets;
or ln selectivity; negated when the goal minimises) and c = ln I_on (nA). A design whose predicted ln ICR is below 0
rectifies the other way round: it is reported as its mirror image (`Scores.flipped`, design.report). Risk-aware
values are lower confidence bounds LCB = mean - kappa * sd, sd being the surrogate's epistemic std (its uncertainty
about the design, not the measurement noise): a design ranks high only where the model is confident that it is good.
Ranked: the candidates with LCB(c) >= ln(on_current_min_nA) (all of them without that constraint), by LCB(o), best
first. Pareto front: the candidates that no other beats in both LCB(o) and LCB(c). For an ICR goal a mirror-symmetric
design is neither ranked nor on the front: its ICR is 1 by symmetry (docs/physics.md §3), whatever the surrogate says.

Two searches, both ending in that ranking of every candidate they scored:
  screen  a documented discrete search: a scrambled-Sobol pool of `candidates` designs of the space (the same
          pool for the same seed), every one scored, in chunks;
  nsga2   pymoo's NSGA-II on the space's mixed variables (ranges real or integer, log ranges on a ln scale,
          choices and sequence elements categorical, sequence lengths integer) maximising LCB(o) and LCB(c)
          with the ON-current constraint as an inequality; designs the builder rejects are infeasible.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from porelab.active_learning.campaign.executors import Task, run_task, store_for
from porelab.active_learning.campaign.model import ModelError
from porelab.active_learning.campaign.oracles import make_oracle
from porelab.active_learning.campaign.space import Candidate, Choice, DesignSpace, Range, Sequence, make_candidate
from porelab.active_learning.campaign.study import Goal, OracleSpec
from porelab.active_learning.campaign.targets import InvalidMeasurement, objective_name, target_names, targets
from porelab.sim.design import DesignError
from porelab.sim.measurement import Measurement

Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class Scores:
    """Surrogate scores of n candidates: columns (objective o, ln ON current c), each (n, 2); flipped (n,): the
    predicted ln ICR is below 0 (ICR goals), so the orientation that rectifies is the mirror image."""

    candidates: list[Candidate]
    mean: np.ndarray
    std: np.ndarray  # epistemic
    seconds: float  # wall time of candidate generation and scoring
    flipped: np.ndarray

    def lcb(self, kappa: float) -> np.ndarray:
        return self.mean - kappa * self.std


def _columns(model, goal: Goal) -> tuple[str, str, float]:
    obj = objective_name(goal)
    if obj not in model.targets:
        raise ModelError(f"the surrogate predicts {', '.join(model.targets)}, not {obj}: train it for this goal")
    return obj, "log_on_current", 1.0 if goal.maximize else -1.0


def prepare(model, goal: Goal):
    """The model set up to predict for `goal`: a GNN derives any goal from its fluxes; others keep theirs."""
    if model.kind == "gnn":
        model.goal, model.targets = goal, target_names(goal)
    _columns(model, goal)
    return model


_WORKER_MODEL = None  # the surrogate, inherited by forked scoring workers


def _chunk(model, cands: list[Candidate], goal: Goal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obj, on, sign = _columns(model, goal)
    p = model.predict(cands)
    flipped = p.mean["log_icr"] < 0 if goal.objective == "icr" else np.zeros(len(cands), bool)
    return (np.column_stack([sign * p.mean[obj], p.mean[on]]), np.column_stack([p.epistemic[obj], p.epistemic[on]]),
            flipped)


def _worker_chunk(cands: list[Candidate], goal: Goal) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _chunk(_WORKER_MODEL, cands, goal)


def score(model, candidates: list[Candidate], goal: Goal, chunk: int = 2048, progress: Progress | None = None,
          workers: int = 1) -> Scores:
    """Score candidates with the surrogate, `chunk` per call (memory stays bounded), in `workers` forked
    processes when there is more than one chunk (same numbers as one process)."""
    global _WORKER_MODEL
    _columns(model, goal)
    t0 = time.perf_counter()
    n = len(candidates)
    mean, std, flipped = np.zeros((n, 2)), np.zeros((n, 2)), np.zeros(n, bool)
    starts = range(0, n, chunk)
    parts = [candidates[i:i + chunk] for i in starts]
    if workers > 1 and len(parts) > 1:
        _WORKER_MODEL = model
        try:
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as ex:
                results = ex.map(_worker_chunk, parts, [goal] * len(parts))
                for i, (m, s, f) in zip(starts, results, strict=True):
                    mean[i:i + chunk], std[i:i + chunk], flipped[i:i + chunk] = m, s, f
                    if progress:
                        progress(min(i + chunk, n), n)
        finally:
            _WORKER_MODEL = None
    else:
        for i, part in zip(starts, parts, strict=True):
            mean[i:i + chunk], std[i:i + chunk], flipped[i:i + chunk] = _chunk(model, part, goal)
            if progress:
                progress(min(i + chunk, n), n)
    return Scores(list(candidates), mean, std, time.perf_counter() - t0, flipped)


def screen(space: DesignSpace, model, goal: Goal, n: int, seed: int, chunk: int = 2048,
           progress: Progress | None = None, workers: int = 1) -> Scores:
    """Draw up to n distinct valid designs (scrambled Sobol, seeded) and score them all."""
    t0 = time.perf_counter()
    cands = space.sample(n, seed)
    s = score(model, cands, goal, chunk, progress, workers)
    s.seconds = time.perf_counter() - t0
    return s


# --- NSGA-II (pymoo) -------------------------------------------------------------------------------------
def _variables(space: DesignSpace) -> tuple[dict, Callable[[dict], dict]]:
    """pymoo variables of the space and the decoder from a pymoo solution to dimension values."""
    from pymoo.core.variable import Choice as PChoice  # the optional extra `nsga2`, checked by nsga2()
    from pymoo.core.variable import Integer, Real

    pv: dict = {}
    for name, dim in space.dims.items():
        if isinstance(dim, Range):
            lo, hi = (math.log(dim.low), math.log(dim.high)) if dim.log and not dim.integer else (dim.low, dim.high)
            if lo < hi:
                pv[name] = Integer(bounds=(int(lo), int(hi))) if dim.integer else Real(bounds=(lo, hi))
        elif isinstance(dim, Choice):
            pv[name] = PChoice(options=list(range(len(dim.choices))))
        elif isinstance(dim, Sequence):
            pv[f"{name}#length"] = Integer(bounds=dim.length)
            for k in range(dim.length[1]):
                pv[f"{name}#{k}"] = PChoice(options=list(range(len(dim.sequence))))

    def decode(x: dict) -> dict:
        out = {}
        for name, dim in space.dims.items():
            if isinstance(dim, Range):
                v = x.get(name, dim.low)
                out[name] = int(v) if dim.integer else float(f"{math.exp(v) if dim.log and name in x else v:.4g}")
            elif isinstance(dim, Choice):
                out[name] = dim.choices[int(x[name])]
            else:
                out[name] = [dim.sequence[int(x[f"{name}#{k}"])] for k in range(int(x[f"{name}#length"]))]
        return out

    return pv, decode


def nsga2(space: DesignSpace, model, goal: Goal, population: int, generations: int, kappa: float, seed: int,
          progress: Progress | None = None) -> Scores:
    """NSGA-II over the space; returns the scores of every distinct valid design it evaluated."""
    try:  # pymoo is the optional extra `nsga2`, imported where it is used
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.mixed import MixedVariableDuplicateElimination, MixedVariableMating, MixedVariableSampling
        from pymoo.core.problem import Problem
        from pymoo.optimize import minimize
    except ImportError:
        raise DesignError("method nsga2 needs pymoo: pip install 'porelab[nsga2]' (or use method: screen)") from None
    if not space.dims:
        raise DesignError("nsga2 needs a design space with at least one dimension; use method: screen")
    _columns(model, goal)
    pv, decode = _variables(space)
    on_min = math.log(goal.on_current_min_nA) if goal.on_current_min_nA else None
    seen: dict[str, tuple[Candidate, np.ndarray, np.ndarray, bool]] = {}
    t0 = time.perf_counter()

    def evaluate(xs) -> tuple[np.ndarray, np.ndarray]:
        cands: list[Candidate | None] = []
        for x in xs:
            try:
                cands.append(make_candidate(decode(x), space.base_design, space.base_conditions, space.preset))
            except DesignError:
                cands.append(None)
        new = list({c.design_id: c for c in cands if c is not None and c.design_id not in seen}.values())
        if new:
            s = score(model, new, goal, len(new))
            for k, c in enumerate(new):
                seen[c.design_id] = (c, s.mean[k], s.std[k], bool(s.flipped[k]))
        f, g = np.full((len(xs), 2), 1e6), np.full((len(xs), 1), 1e6)
        for k, c in enumerate(cands):
            if c is not None:
                lcb = seen[c.design_id][1] - kappa * seen[c.design_id][2]
                f[k] = -lcb
                g[k] = on_min - lcb[1] if on_min is not None else -1.0
        return f, g

    class _Problem(Problem):
        def __init__(self):
            super().__init__(vars=pv, n_obj=2, n_ieq_constr=1)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"], out["G"] = evaluate(X)

    def callback(algorithm):
        if progress:
            progress(algorithm.n_gen, generations)

    algo = NSGA2(pop_size=population, sampling=MixedVariableSampling(),
                 mating=MixedVariableMating(eliminate_duplicates=MixedVariableDuplicateElimination()),
                 eliminate_duplicates=MixedVariableDuplicateElimination())
    minimize(_Problem(), algo, ("n_gen", generations), seed=seed, verbose=False, callback=callback)
    if not seen:
        raise DesignError("NSGA-II found no valid design in the space")
    rows = list(seen.values())
    return Scores([r[0] for r in rows], np.stack([r[1] for r in rows]), np.stack([r[2] for r in rows]),
                  time.perf_counter() - t0, np.array([r[3] for r in rows], bool))


# --- ranking -----------------------------------------------------------------------------------------------
def pareto_front(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Indices of the points that no other point beats in both a and b (maximised), by increasing b."""
    order = np.lexsort((-b, -a))  # a descending, ties by b descending
    keep, best_b = [], -np.inf
    for i in order:
        if b[i] > best_b:
            keep.append(i)
            best_b = b[i]
    return np.array(keep[::-1], dtype=int)


@dataclass
class Ranking:
    order: np.ndarray  # indices of the feasible candidates, best LCB(o) first
    pareto: np.ndarray  # indices on the risk-aware Pareto front, by increasing LCB(c)
    feasible: np.ndarray  # (n,) bool
    lcb: np.ndarray  # (n, 2)


def rank(scores: Scores, goal: Goal, kappa: float) -> Ranking:
    """Risk-aware ranking (see the module docstring); DesignError when no candidate meets the constraint."""
    lcb = scores.lcb(kappa)
    asked = np.ones(len(lcb), bool)
    if goal.objective == "icr":  # a mirror-symmetric design's ICR is 1 by symmetry: used, never searched for
        asked = np.array([not c.design.is_symmetric() for c in scores.candidates], bool)
        if not asked.any():
            raise DesignError(f"every candidate ({len(asked)}) is mirror-symmetric, so its ICR is 1 by symmetry: "
                              "widen the space")
    feasible = asked.copy()
    if goal.on_current_min_nA:
        feasible &= lcb[:, 1] >= math.log(goal.on_current_min_nA)
        if not feasible.any():
            raise DesignError(f"no candidate has ON current >= {goal.on_current_min_nA:g} nA at kappa={kappa:g} "
                              f"(the best lower bound is {math.exp(lcb[asked, 1].max()):.3g} nA); lower the "
                              "constraint or kappa, or widen the space")
    idx = np.flatnonzero(feasible)
    order = idx[np.argsort(-lcb[idx, 0], kind="stable")]
    kept = np.flatnonzero(asked)
    return Ranking(order, kept[pareto_front(lcb[kept, 0], lcb[kept, 1])], feasible, lcb)


# --- verification ------------------------------------------------------------------------------------------
@dataclass
class Verified:
    rank: int  # 1-based rank in the search
    candidate: Candidate
    measurement: Measurement | None
    measured: dict | None  # targets(): ln values, or None when the oracle gave nothing learnable
    error: str | None


def oracle_dir(run_root: Path, oracle: OracleSpec) -> Path:
    """run_root/<kind>-<digest of the oracle's kind, path and settings>: each oracle setup verifies in its own
    directories, so one never finds (nor overwrites) another's measurements."""
    spec = json.dumps(oracle.model_dump(mode="json"), sort_keys=True)
    return run_root / f"{oracle.kind}-{hashlib.sha256(spec.encode()).hexdigest()[:10]}"


def verify(ranked: list[Candidate], oracle: OracleSpec, run_root: Path, goal: Goal,
           progress: Progress | None = None) -> list[Verified]:
    """Run the oracle on each candidate (best first) in oracle_dir(run_root, oracle)/<design_id>/; a measurement
    that oracle already saved there for the same question is reused (turned to the candidate's orientation), so an
    interrupted verification resumes; MD goes through the workspace's measurement store (`executors.store_for`), so
    a design any campaign measured is not simulated again. Failures are reported, never recorded as numbers."""
    spec = {"kind": oracle.kind, "settings": oracle.settings, "path": oracle.path}
    root = oracle_dir(run_root, oracle)
    store = store_for(str(getattr(make_oracle(oracle.kind, oracle.settings, oracle.path), "fidelity", oracle.kind)))
    out = []
    for k, c in enumerate(ranked):
        res = run_task(Task(c.design_id, c.design.model_dump(mode="json"), c.conditions.model_dump(mode="json"),
                            spec, str(root / c.design_id), store=store))
        m = Measurement.model_validate_json(res.measurement) if res.measurement else None
        measured, error = None, res.error
        if m is not None and m.status != "ok":
            error = m.error or "the oracle failed"
        elif m is not None:
            try:
                measured = targets(m, goal)
            except InvalidMeasurement as err:
                error = str(err)
        out.append(Verified(k + 1, c, m, measured, error))
        if progress:
            progress(k + 1, len(ranked))
    return out
