"""Does exploration collapse on a narrow landscape? Campaigns on benchmarks/landscapes.py (high ICR only with a
charge dipole, tight spacing and a field near a layer-dependent optimum; flat elsewhere), each acquisition against
random, several seeds, the same budget. Prints, per landscape and strategy, the best true ICR found by each seed,
the median and the worst, and how many seeds end below random's median.

Run: .venv/bin/python benchmarks/al_landscape.py [--seeds 5] [--budget 60] [--model rf]
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
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
LANDSCAPES = ("NarrowJanus", "NarrowJanusShifted")
STRATEGIES = ("ucb", "max_uncertainty", "random")


def study(landscape: str, strategy: str, seed: int, args) -> dict:
    return {
        "name": f"{landscape}-{strategy}-{seed}", "seed": seed, "preset": "tiny",
        "base": {"conditions": {"electrolyte": {"K+": 1.0, "Cl-": 1.0}}},
        "space": {"layers": {"sequence": ["COO-", "NH3+", "OH", "none"], "length": [2, 6]},
                  "spacing_nm": {"low": 0.24, "high": 0.8}, "groups_per_rim": {"low": 1, "high": 8, "integer": True},
                  "field_V_per_nm": {"low": 0.05, "high": 2.0, "log": True}},
        "oracle": {"kind": "user", "path": f"{ROOT / 'benchmarks/landscapes.py'}:{landscape}", "settings": {}},
        "budget": {"simulations": args.budget, "initial": args.initial, "batch": args.batch},
        "executor": {"kind": "local", "workers": 2},
        "model": {"kind": args.model, "params": {"n_members": 3} if args.model == "gnn" else {}},
        "acquisition": {"kind": strategy, "pool_size": args.pool},
    }


def best_found(d: Path) -> float:
    """The best measured ln ICR of the campaign (the landscape's numbers are exact to 1 %)."""
    led = Ledger(d / LEDGER_FILE)
    try:
        return max(r["targets"]["log_icr"] for r in led.measurements(ok_only=True))
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
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/al_landscape.json")
    args = ap.parse_args()
    t0, res = time.time(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for land in LANDSCAPES:
            res[land] = {}
            for s in STRATEGIES:
                found, secs = [], []
                for seed in range(args.seeds):
                    t = time.time()
                    f = Path(tmp) / f"{land}-{s}-{seed}.yaml"
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
        rmed = float(np.median(by["random"]["best_log_icr"]))
        for s, r in by.items():
            x = np.array(r["best_log_icr"])
            r |= {"median_icr": math.exp(np.median(x)), "worst_icr": math.exp(x.min()),
                  "seeds_below_random_median": int(np.sum(x < rmed))}
            print(f"{land:19s} {s:16s} {r['median_icr']:10.3g} {r['worst_icr']:8.3g} "
                  f"{r['seeds_below_random_median']:>16d} of {len(x)}")
    doc = {"command": "benchmarks/al_landscape.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                              if k != "out"),
           "date": time.strftime("%Y-%m-%d"), "results": res, "seconds": time.time() - t0}
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
