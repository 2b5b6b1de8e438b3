"""Does exploration collapse on a narrow landscape, and does it still exploit a broad one? Campaigns on
benchmarks/landscapes.py (narrow: high ICR only with a charge dipole, tight spacing and a field near a
layer-dependent optimum, flat elsewhere; broad: BroadJanus, a hill most Janus stacks climb), each acquisition against
random, several seeds, the same budget. Prints, per landscape and strategy, the best true ICR found by each seed (in
the orientation that rectifies, max(ICR, 1/ICR): the campaigns' objective, campaign.targets),
the median and the worst, how many seeds end below random's median, and the rank of the best design found among
the pool's (1: the pool's best). Random's median is also computed exactly
enough to judge by: `--random-seeds` draws of the same budget from the same pools (the first `--initial` designs of
the seeded Sobol pool, then uniform picks), evaluated on the landscape directly (no campaign needed).

Run: .venv/bin/python benchmarks/al_landscape.py [--seeds 5] [--budget 60] [--model rf] [--explore-fraction 0.25]
     [--landscapes NarrowJanus,my_landscapes.py:Mine] [--no-novelty-floor | --floor-decay | --floor-flat]
     [--gnn-members 5]
Writes benchmarks/results/al_landscape.json.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from porelab.active_learning.campaign.directory import LEDGER_FILE
from porelab.active_learning.campaign.driver import Campaign, candidate_pool
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.study import parse_study

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPES = ("NarrowJanus", "NarrowJanusShifted", "BroadJanus")
STRATEGIES = ("ucb", "max_uncertainty", "random")
TIE = 1e-6  # ln ICR: the flat part's values are discrete; a seed ending on random's median value is not below it


def study(landscape: str, strategy: str, seed: int, args) -> dict:
    return {
        "name": f"{landscape.rsplit(':', 1)[-1]}-{strategy}-{seed}", "seed": seed, "preset": "tiny",
        "base": {"conditions": {"electrolyte": {"K+": 1.0, "Cl-": 1.0}}},
        "space": {"layers": {"sequence": ["COO-", "NH3+", "OH", "none"], "length": [2, 6]},
                  "spacing_nm": {"low": 0.24, "high": 0.8}, "groups_per_rim": {"low": 1, "high": 8, "integer": True},
                  "field_V_per_nm": {"low": 0.05, "high": 2.0, "log": True}},
        "oracle": {"kind": "user", "path": landscape_path(landscape), "settings": {}},
        "budget": {"simulations": args.budget, "initial": args.initial, "batch": args.batch},
        "executor": {"kind": "local", "workers": 2},
        "model": {"kind": args.model, "params": {"n_members": args.gnn_members} if args.model == "gnn" else {},
                  "novelty_floor": "decay" if args.floor_decay else "flat" if args.floor_flat
                  else not args.no_novelty_floor},
        "acquisition": {"kind": strategy, "pool_size": args.pool, "explore_fraction": args.explore_fraction},
    }


def landscape_path(landscape: str) -> str:
    """file.py:Class of a landscape named `Class` (benchmarks/landscapes.py) or `path/to/file.py:Class`."""
    if ":" not in landscape:
        return f"{ROOT / 'benchmarks/landscapes.py'}:{landscape}"
    path, name = landscape.rsplit(":", 1)
    return f"{Path(path).resolve()}:{name}"


def pool_truth(landscape: str, seed: int, args) -> np.ndarray:
    """True |ln ICR| (n,) of each design of the seed's pool (the campaign's, in its order)."""
    import importlib.util

    path, name = landscape_path(landscape).rsplit(":", 1)
    spec = importlib.util.spec_from_file_location("landscapes", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    truth = getattr(mod, name)()
    pool, _ = candidate_pool(parse_study(study(landscape, "random", seed, args)))
    return np.array([abs(truth.log_icr(c.design, abs(c.conditions.fields_V_per_nm[0]))) for c in pool])


def rank_in_pool(best: float, truth: np.ndarray) -> int:
    """1 + how many designs of the pool beat `best` (1: the pool's best design was found)."""
    return 1 + int(np.sum(truth > best + TIE))


def random_reference(landscape: str, args) -> tuple[np.ndarray, np.ndarray]:
    """Best true |ln ICR| of `args.random_seeds` random campaigns of the same budget (initial Sobol designs, then
    uniform picks from the rest of the pool), each seed its own pool, evaluated on the landscape directly; and
    its rank in that pool."""
    best, rank = [], []
    for seed in range(args.random_seeds):
        truth = pool_truth(landscape, seed, args)
        rng = np.random.default_rng(10_000 + seed)
        rest = rng.permutation(np.arange(args.initial, len(truth)))[: args.budget - args.initial]
        best.append(truth[[*range(args.initial), *rest]].max())
        rank.append(rank_in_pool(best[-1], truth))
    return np.array(best), np.array(rank)


def best_found(d: Path) -> float:
    """The best measured |ln ICR| of the campaign (the landscape's numbers are exact to 1 %)."""
    led = Ledger(d / LEDGER_FILE)
    try:
        return max(r.targets["abs_log_icr"] for r in led.measurements(ok_only=True))
    finally:
        led.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--initial", type=int, default=12)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--pool", type=int, default=2048)
    ap.add_argument("--model", default="rf", choices=("rf", "gp", "gnn"))
    ap.add_argument("--explore-fraction", type=float, default=0.0, help="acquisition.explore_fraction")
    ap.add_argument("--gnn-members", type=int, default=5, help="the GNN ensemble's members (5: its default)")
    ap.add_argument("--no-novelty-floor", action="store_true", help="model.novelty_floor: false (the model's own std)")
    ap.add_argument("--floor-decay", action="store_true", help="model.novelty_floor: decay (weighted by the share "
                    "of the budget left)")
    ap.add_argument("--floor-flat", action="store_true", help="model.novelty_floor: flat (in full while the model's "
                    "means over the pool are flat, fading as they spread)")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--landscapes", default=",".join(LANDSCAPES),
                    help="classes of benchmarks/landscapes.py, or path/to/file.py:Class (with log_icr(design, |E|))")
    ap.add_argument("--random-seeds", type=int, default=500, help="seeds of the exact random reference")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/al_landscape.json")
    args = ap.parse_args()
    t0, res = time.time(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for land in args.landscapes.split(","):
            res[land] = {}
            for s in args.strategies.split(","):
                found, ranks, secs = [], [], []
                for seed in range(args.seeds):
                    t = time.time()
                    f = Path(tmp) / f"{land.rsplit(':', 1)[-1]}-{s}-{seed}.yaml"
                    f.write_text(yaml.safe_dump(study(land, s, seed, args)))
                    d = Path(tmp) / f.stem
                    Campaign.from_study(f, d, log=lambda m: None).run()
                    found.append(best_found(d))
                    ranks.append(rank_in_pool(found[-1], pool_truth(land, seed, args)))
                    secs.append(time.time() - t)
                res[land][s] = {"best_log_icr": found, "rank_in_pool": ranks, "seconds": secs}
                print(f"{land:19s} {s:16s} best ICR per seed " + " ".join(f"{math.exp(x):7.3g}" for x in found)
                      + "; its rank in the pool " + " ".join(map(str, ranks)) + f"  ({np.sum(secs):.0f} s)", flush=True)
    print(f"\n{'landscape':19s} {'strategy':16s} {'median ICR':>10s} {'worst':>8s} {'seeds < random median':>22s} "
          f"{'median rank':>11s} {'worst rank':>10s} (of {args.pool})")
    for land, by in res.items():
        ref, ref_rank = random_reference(land, args)
        rmed = float(np.median(ref))
        res[land]["random_reference"] = {"seeds": len(ref), "median_icr": math.exp(rmed),
                                         "quartiles_icr": [math.exp(float(np.quantile(ref, q))) for q in (.25, .75)],
                                         "median_rank": float(np.median(ref_rank))}
        print(f"{land:19s} {'random (exact)':16s} {math.exp(rmed):10.3g}  over {len(ref)} seeds, quartiles "
              + " ".join(f"{x:.3g}" for x in res[land]["random_reference"]["quartiles_icr"])
              + f"; median rank {np.median(ref_rank):g}")
        for s, r in by.items():
            if s == "random_reference":
                continue
            x = np.array(r["best_log_icr"])
            r |= {"median_icr": math.exp(np.median(x)), "worst_icr": math.exp(x.min()),
                  "seeds_below_random_median": int(np.sum(x < rmed - TIE)),
                  "median_rank": float(np.median(r["rank_in_pool"])), "worst_rank": max(r["rank_in_pool"])}
            print(f"{land:19s} {s:16s} {r['median_icr']:10.3g} {r['worst_icr']:8.3g} "
                  f"{r['seeds_below_random_median']:>16d} of {len(x)} {r['median_rank']:>11g} {r['worst_rank']:>10d}")
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
                     if k != "out" and v is not False)
    doc = {"command": f".venv/bin/python benchmarks/al_landscape.py {flags}",
           "date": time.strftime("%Y-%m-%d"), "results": res, "seconds": time.time() - t0}
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
