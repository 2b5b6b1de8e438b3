"""Candidates scored per second by the inverse-design screen: candidate generation (space sampling and design
validation), then builder + graph + GNN ensemble (and the random forest for comparison), side by side.

The GNN (CampaignModel kind gnn: surrogate.ensemble.DeepEnsemble, default settings) is trained on `--train`
continuum measurements of experiments/continuum-al.yaml's space, then `--n` fresh candidates are scored in
chunks of `--chunk` in `--workers` forked processes, exactly as `porelab design` does (inverse.screen); the
1-process vs `--workers` ratio, and the cost of the novelty floor (surrogate/novelty.py, on vs off), are measured
side by side on the first `--n-ratio` candidates.

Run: .venv/bin/python benchmarks/inverse_speed.py [--n 100000] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from porelab.active_learning.campaign.model import CampaignModel
from porelab.active_learning.campaign.study import Goal, load_study
from porelab.active_learning.inverse import search as inverse
from porelab.sim.continuum import run_continuum

STUDY = Path(__file__).resolve().parents[1] / "experiments" / "continuum-al.yaml"
OUT = Path(__file__).resolve().parent / "results" / "inverse_speed.json"


def _evaluate(c):
    return run_continuum(c.design, c.conditions)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-ratio", type=int, default=8192)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    space, goal = load_study(STUDY).design_space(), Goal()
    with ProcessPoolExecutor(2) as ex:
        ms = [m for m in ex.map(_evaluate, space.sample(args.train, 7), chunksize=8) if m.status == "ok"]
    malloc = " ".join(f"{k}={os.environ[k]}" for k in sorted(os.environ) if k.startswith("MALLOC_"))
    out = f" --out {args.out}" if args.out != OUT else ""
    res = {"command": f"{malloc} .venv/bin/python benchmarks/inverse_speed.py --n {args.n}{out}".strip(),
           "date": time.strftime("%Y-%m-%d"), "n": args.n, "train": len(ms), "chunk": args.chunk,
           "torch_threads": args.threads,
           "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    t0 = time.perf_counter()
    cands = space.sample(args.n, 11)
    res["generate_s"] = time.perf_counter() - t0
    res["candidates"] = len(cands)
    print(f"generated {len(cands):,} valid candidates in {res['generate_s']:.1f} s", flush=True)
    for kind in ("rf", "gnn"):
        t0 = time.perf_counter()
        model = CampaignModel(kind, goal, seed=0).fit(ms)
        res[f"{kind}_train_s"] = time.perf_counter() - t0
        few = cands[:args.n_ratio]
        one = inverse.score(model, few, goal, args.chunk, workers=1).seconds
        many = inverse.score(model, few, goal, args.chunk, workers=args.workers).seconds
        res[f"{kind}_ratio_1_vs_{args.workers}_workers"] = one / many
        print(f"{kind}: {len(few):,} candidates: 1 process {one:.1f} s, {args.workers} processes {many:.1f} s "
              f"(x{one / many:.2f})", flush=True)
        model.novelty_floor = False  # the novelty floor's cost, side by side on the same candidates
        bare = inverse.score(model, few, goal, args.chunk, workers=args.workers).seconds
        model.novelty_floor = True
        res[f"{kind}_ratio_floor_vs_none"] = many / bare
        print(f"{kind}: with the novelty floor {many:.1f} s, without {bare:.1f} s (x{many / bare:.2f})", flush=True)
        s = inverse.score(model, cands, goal, args.chunk, workers=args.workers)
        res[f"{kind}_score_s"] = s.seconds
        total = res["generate_s"] + s.seconds
        res[f"{kind}_candidates_per_s"] = len(cands) / total
        res[f"{kind}_scored_per_s"] = len(cands) / s.seconds
        print(f"{kind}: trained in {res[f'{kind}_train_s']:.0f} s; scored {len(cands):,} in {s.seconds:.1f} s "
              f"({len(cands) / s.seconds:,.0f}/s); "
              f"generation + scoring {total:.1f} s = {len(cands) / total:,.0f} candidates/s", flush=True)
    args.out.write_text(json.dumps(res, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
