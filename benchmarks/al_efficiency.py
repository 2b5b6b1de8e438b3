"""Active-learning efficiency on the continuum oracle: evaluations each strategy needs to
  (a) bring the held-out R^2 of ln ICR to 0.9, and
  (b) find a design within 5 % of the best ICR in the pool,
over several seeds, and the ratio to random selection.

Pool: `--pool` designs of experiments/continuum-al.yaml's space (scrambled Sobol, fixed seed), each evaluated
once with the continuum oracle (failed solves dropped). Per seed: a random quarter of the pool is the held-out
set, the rest the candidates; every strategy starts from the same `--initial` random designs, then picks
batches of `--batch` with porelab's own acquisition objects and diverse batch selection (k-means++), training
a fresh surrogate (CampaignModel, `--model`, default rf) after every batch, up to `--budget` evaluations.
A run that never reaches a goal counts as budget + batch (a lower bound) and is reported as not reached. Each run's
CPU seconds (this process and its threads: model training and scoring included, the pool's oracle calls not) are
reported beside its evaluations, with the mean and the worst seed.

Run: .venv/bin/python benchmarks/al_efficiency.py [--seeds 5] [--model rf]
     .venv/bin/python benchmarks/al_efficiency.py --model gnn --gnn-members 3 --strategies random,ei --budget 150 \
         --batch 15 --out benchmarks/results/al_efficiency_gnn.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from porelab.active_learning.campaign.acquisition import resolve_acquisition, select_batch
from porelab.active_learning.campaign.model import CampaignModel
from porelab.active_learning.campaign.study import load_study
from porelab.active_learning.campaign.targets import InvalidMeasurement, targets
from porelab.sim.continuum import run_continuum

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "continuum-al.yaml"
STRATEGIES = ("random", "max_uncertainty", "ei", "constrained_ei")


def _evaluate(c):
    return run_continuum(c.design, c.conditions)


def build_pool(n: int, seed: int, workers: int = 2):
    study = load_study(STUDY)
    cands = study.design_space().sample(n, seed)
    with ProcessPoolExecutor(workers) as ex:
        ms = list(ex.map(_evaluate, cands, chunksize=16))
    keep_c, keep_m, y, on = [], [], [], []
    for c, m in zip(cands, ms, strict=True):
        if m.status != "ok":
            continue
        try:
            t = targets(m, study.goal)
        except InvalidMeasurement:
            continue
        keep_c.append(c), keep_m.append(m), y.append(t["log_icr"]), on.append(t["log_on_current"])
    return study, keep_c, keep_m, np.array(y), np.array(on)


def r2(y: np.ndarray, p: np.ndarray) -> float:
    return 1 - float(np.sum((y - p) ** 2)) / float(np.sum((y - y.mean()) ** 2))


def run_one(strategy, seed, study, cands, ms, y, on, args):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(cands))
    n_hold = len(cands) // 4
    hold, pool = order[:n_hold], order[n_hold:]
    best_pool = float(np.max(y[pool]))
    thr_on = float(np.median(on[pool]))  # constrained EI: ON current at least the pool's median
    chosen = list(rng.choice(pool, args.initial, replace=False))
    curve = []
    n_r2 = n_best = None
    while True:
        params = {"rf": {"n_estimators": 100}, "gnn": {"n_members": args.gnn_members}}.get(args.model, {})
        model = CampaignModel(args.model, study.goal, seed, novelty_floor=not args.no_novelty_floor, **params)
        model.fit([ms[i] for i in chosen])
        score_r2 = r2(y[hold], model.predict([cands[i] for i in hold]).mean["log_icr"])
        best = float(np.max(y[chosen]))
        curve.append((len(chosen), score_r2, math.exp(best)))
        if n_r2 is None and score_r2 >= 0.9:
            n_r2 = len(chosen)
        if n_best is None and best >= best_pool + math.log(0.95):
            n_best = len(chosen)
        if len(chosen) >= args.budget or (n_r2 is not None and n_best is not None):
            break
        rest = np.setdiff1d(pool, chosen)
        if len(rest) == 0:
            break
        pred = model.predict([cands[i] for i in rest])
        kw = {"seed": seed * 1000 + len(chosen)} if strategy == "random" else {}
        if strategy == "ei":
            kw["best_f"] = best
        if strategy == "constrained_ei":
            feas = [y[i] for i in chosen if on[i] >= thr_on]
            kw.update(best_f=max(feas) if feas else None, threshold=thr_on)
        acq = resolve_acquisition(strategy, model, **kw)
        scores = acq.score(pred)
        idx = select_batch(scores, args.batch, pred.embedding, seed=seed, diverse=strategy != "random")
        chosen += [int(rest[i]) for i in idx]
    cap = args.budget + args.batch
    return {"n_r2": n_r2 or cap, "n_best": n_best or cap, "reached_r2": n_r2 is not None,
            "reached_best": n_best is not None, "curve": curve}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=1024)
    ap.add_argument("--pool-seed", type=int, default=12345)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--initial", type=int, default=10)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--budget", type=int, default=400)
    ap.add_argument("--model", default="rf", choices=("rf", "gp", "gnn"))
    ap.add_argument("--gnn-members", type=int, default=3, help="deep-ensemble members of the GNN")
    ap.add_argument("--no-novelty-floor", action="store_true", help="the model's own std (no surrogate.novelty floor)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated; random is always run")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "al_efficiency.json")
    args = ap.parse_args()
    t0 = time.time()
    study, cands, ms, y, on = build_pool(args.pool, args.pool_seed)
    print(f"pool: {len(cands)} valid designs of {args.pool} ({time.time() - t0:.0f} s); ln ICR in "
          f"[{y.min():.2f}, {y.max():.2f}], ICR max {math.exp(y.max()):.3g}, median {math.exp(np.median(y)):.3g}")
    strategies = list(dict.fromkeys(["random", *args.strategies.split(",")]))
    res: dict[str, list] = {s: [] for s in strategies}
    for seed in range(args.seeds):
        for s in strategies:
            t, cpu = time.time(), time.process_time()
            r = run_one(s, seed, study, cands, ms, y, on, args)
            r["cpu_s"] = time.process_time() - cpu
            res[s].append(r)
            print(f"seed {seed} {s:16s} R2>=0.9 at {r['n_r2']:4d}{'' if r['reached_r2'] else '+'}  "
                  f"best within 5% at {r['n_best']:4d}{'' if r['reached_best'] else '+'}  "
                  f"(last R2 {r['curve'][-1][1]:.2f} at {r['curve'][-1][0]}; {time.time() - t:.0f} s, "
                  f"{r['cpu_s']:.0f} CPU-s)",
                  flush=True)
    base_r2 = np.mean([r["n_r2"] for r in res["random"]])
    base_best = np.mean([r["n_best"] for r in res["random"]])
    summary = {}
    print(f"\n{'strategy':16s} {'evals to R2>=0.9':>18s} {'ratio':>6s} {'evals to 5% of best':>20s} {'ratio':>6s} "
          f"{'R2 at 50/100/200 evals':>24s} {'evals to R2>=0.7 (ratio)':>26s}")
    for s in strategies:
        a = np.array([r["n_r2"] for r in res[s]])
        b = np.array([r["n_best"] for r in res[s]])
        r2_end = np.array([r["curve"][-1][1] for r in res[s]])
        cap = args.budget + args.batch
        c07 = np.array([next((c[0] for c in r["curve"] if c[1] >= 0.7), cap) for r in res[s]])
        c07_random = np.mean([next((c[0] for c in r["curve"] if c[1] >= 0.7), cap) for r in res["random"]])
        at = {n: np.mean([next((c[1] for c in r["curve"] if c[0] >= n), r["curve"][-1][1]) for r in res[s]])
              for n in (50, 100, 200)}
        summary[s] = {"evals_r2_mean": a.mean(), "evals_r2_per_seed": a.tolist(),
                      "r2_at_50": at[50], "r2_at_100": at[100], "r2_at_200": at[200],
                      "r2_at_end_mean": r2_end.mean(), "evals_r2_0.7_mean": c07.mean(),
                      "evals_r2_0.7_per_seed": c07.tolist(), "random_over_strategy_r2_0.7": c07_random / c07.mean(),
                      "r2_reached": sum(r["reached_r2"] for r in res[s]),
                      "evals_best_mean": b.mean(), "evals_best_per_seed": b.tolist(),
                      "best_reached": sum(r["reached_best"] for r in res[s]),
                      "random_over_strategy_r2": base_r2 / a.mean(), "random_over_strategy_best": base_best / b.mean(),
                      "evals_best_worst_seed": int(b.max()),
                      "random_over_strategy_best_worst_seed": base_best / b.max(),
                      "cpu_s_mean": float(np.mean([r["cpu_s"] for r in res[s]])),
                      "cpu_s_worst_seed": float(np.max([r["cpu_s"] for r in res[s]]))}
        print(f"{s:16s} {a.mean():12.0f} ({summary[s]['r2_reached']}/{len(a)}) {base_r2 / a.mean():6.2f} "
              f"{b.mean():14.0f} ({summary[s]['best_reached']}/{len(b)}) {base_best / b.mean():6.2f} "
              f"{summary[s]['r2_at_50']:10.2f} {summary[s]['r2_at_100']:6.2f} {summary[s]['r2_at_200']:6.2f} "
              f"{summary[s]['evals_r2_0.7_mean']:14.0f} ({summary[s]['random_over_strategy_r2_0.7']:.2f})")
    print("ratio = mean evaluations of random / mean evaluations of the strategy (> 1: fewer than random); "
          "(k/n): seeds that reached the goal within the budget")
    print(f"\n{'strategy':16s} {'5% of best: worst seed':>24s} {'ratio (worst)':>14s} {'CPU-s mean':>11s} "
          f"{'CPU-s worst':>12s}")
    for s in strategies:
        x = summary[s]
        print(f"{s:16s} {x['evals_best_worst_seed']:24d} {x['random_over_strategy_best_worst_seed']:14.2f} "
              f"{x['cpu_s_mean']:11.0f} {x['cpu_s_worst_seed']:12.0f}")
    doc = {"date": time.strftime("%Y-%m-%d"), "args": {k: str(v) for k, v in vars(args).items()},
           "pool_valid": len(cands), "icr_max": math.exp(y.max()), "summary": summary,
           "runs": {s: [{k: v for k, v in r.items()} for r in res[s]] for s in strategies},
           "seconds": time.time() - t0}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
