"""Does exploration collapse on a narrow landscape? Campaigns on benchmarks/landscapes.py (high ICR only with a
charge dipole, tight spacing and a field near a layer-dependent optimum; flat elsewhere), each acquisition against
random, several seeds, the same budget. Prints, per landscape and strategy, the best true ICR found by each seed (in
the orientation that rectifies, max(ICR, 1/ICR): the campaigns' objective, campaign.targets),
the median and the worst, and how many seeds end below random's median. Random's median is also computed exactly
enough to judge by: `--random-seeds` draws of the same budget from the same pools (the first `--initial` designs of
the seeded Sobol pool, then uniform picks), evaluated on the landscape directly (no campaign needed).

Run: .venv/bin/python benchmarks/al_landscape.py [--seeds 5] [--budget 60] [--model rf] [--explore-fraction 0.25]
     [--landscapes NarrowJanus,my_landscapes.py:Mine] [--no-novelty-floor]
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
LANDSCAPES = ("NarrowJanus", "NarrowJanusShifted")
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
                  "novelty_floor": not args.no_novelty_floor},
        "acquisition": {"kind": strategy, "pool_size": args.pool, "explore_fraction": args.explore_fraction},
    }


def landscape_path(landscape: str) -> str:
    """file.py:Class of a landscape named `Class` (benchmarks/landscapes.py) or `path/to/file.py:Class`."""
    if ":" not in landscape:
        return f"{ROOT / 'benchmarks/landscapes.py'}:{landscape}"
    path, name = landscape.rsplit(":", 1)
    return f"{Path(path).resolve()}:{name}"


def random_reference(landscape: str, args) -> np.ndarray:
    """Best true |ln ICR| of `args.random_seeds` random campaigns of the same budget (initial Sobol designs, then
    uniform picks from the rest of the pool), each seed its own pool, evaluated on the landscape directly."""
    import importlib.util

    path, name = landscape_path(landscape).rsplit(":", 1)
    spec = importlib.util.spec_from_file_location("landscapes", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    truth = getattr(mod, name)()
    best = []
    for seed in range(args.random_seeds):
        pool, _ = candidate_pool(parse_study(study(landscape, "random", seed, args)))
        rng = np.random.default_rng(10_000 + seed)
        rest = rng.permutation(np.arange(args.initial, len(pool)))[: args.budget - args.initial]
        picks = [pool[i] for i in [*range(args.initial), *rest]]
        best.append(max(abs(truth.log_icr(c.design, abs(c.conditions.fields_V_per_nm[0]))) for c in picks))
    return np.array(best)


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
                found, secs = [], []
                for seed in range(args.seeds):
                    t = time.time()
                    f = Path(tmp) / f"{land.rsplit(':', 1)[-1]}-{s}-{seed}.yaml"
                    f.write_text(yaml.safe_dump(study(land, s, seed, args)))
                    d = Path(tmp) / f.stem
                    Campaign.from_study(f, d, log=lambda m: None).run()
                    found.append(best_found(d))
                    secs.append(time.time() - t)
                res[land][s] = {"best_log_icr": found, "seconds": secs}
                print(f"{land:19s} {s:16s} best ICR per seed " + " ".join(f"{math.exp(x):7.3g}" for x in found)
                      + f"  ({np.sum(secs):.0f} s)", flush=True)
    print(f"\n{'landscape':19s} {'strategy':16s} {'median ICR':>10s} {'worst':>8s} {'seeds < random median':>22s}")
    for land, by in res.items():
        ref = random_reference(land, args)
        rmed = float(np.median(ref))
        res[land]["random_reference"] = {"seeds": len(ref), "median_icr": math.exp(rmed),
                                         "quartiles_icr": [math.exp(float(np.quantile(ref, q))) for q in (.25, .75)]}
        print(f"{land:19s} {'random (exact)':16s} {math.exp(rmed):10.3g}  over {len(ref)} seeds, quartiles "
              + " ".join(f"{x:.3g}" for x in res[land]["random_reference"]["quartiles_icr"]))
        for s, r in by.items():
            if s == "random_reference":
                continue
            x = np.array(r["best_log_icr"])
            r |= {"median_icr": math.exp(np.median(x)), "worst_icr": math.exp(x.min()),
                  "seeds_below_random_median": int(np.sum(x < rmed - TIE))}
            print(f"{land:19s} {s:16s} {r['median_icr']:10.3g} {r['worst_icr']:8.3g} "
                  f"{r['seeds_below_random_median']:>16d} of {len(x)}")
    flags = " ".join(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}") for k, v in vars(args).items()
                     if k != "out" and v is not False)
    doc = {"command": f".venv/bin/python benchmarks/al_landscape.py {flags}",
           "date": time.strftime("%Y-%m-%d"), "results": res, "seconds": time.time() - t0}
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
