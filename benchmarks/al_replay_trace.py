"""One replayed campaign of benchmarks/al_replay.py, pick by pick: why a model finds the best MD design early or
late. At each pick (UCB, beta 4, al_replay's default ON-current constraint of 2 nA applied as a campaign applies it),
over the designs not yet evaluated: the range of the model's predicted |ln ICR| mean and std,
the Spearman correlation of the mean with MD's measured |ln ICR|, the best design's prediction and its rank by UCB,
and the design picked (its prediction and its measured |ln ICR|). Stops when the best design is evaluated.

Writes benchmarks/results/al_replay_trace_<model>_seed<seed>.txt.
Run: nice -n 10 .venv/bin/python benchmarks/al_replay_trace.py gnn 0   (or rf, rf+twin; ~4 min for the GNN)
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from al_replay import ROOT, Models, Replay  # noqa: E402

from porelab.active_learning.campaign.acquisition import resolve_acquisition, select_batch  # noqa: E402
from porelab.active_learning.campaign.iteration import respect_constraint  # noqa: E402
from porelab.active_learning.campaign.study import Goal  # noqa: E402
from porelab.active_learning.campaign.targets import ICR_OBJECTIVE  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("seed", type=int)
    ap.add_argument("--store", type=Path, default=ROOT / "data" / "md")
    ap.add_argument("--initial", type=int, default=2)
    args = ap.parse_args()
    pool = Replay(args.store, Goal(on_current_min_nA=2.0))
    models = Models(pool)
    n = len(pool)
    chosen = [int(i) for i in np.random.default_rng(args.seed).choice(n, args.initial, replace=False)]
    meas = np.array([pool.t[i][ICR_OBJECTIVE] for i in range(n)])
    out = ROOT / "benchmarks" / "results" / f"al_replay_trace_{args.model.replace('+', '_')}_seed{args.seed}.txt"
    lines = [f"# nice -n 10 .venv/bin/python benchmarks/al_replay_trace.py {args.model} {args.seed}: {n} designs, "
             f"best {pool.ids[pool.best]} {'/'.join(pool.ms[pool.best].design.layers)} (|ln ICR| "
             f"{meas[pool.best]:.2f})",
             "# evaluated | Spearman(mean, MD) | mean range | std range | best: mean, std, UCB rank | picked: layers, "
             "mean, std, MD |ln ICR|"]
    print("\n".join(lines), flush=True)
    while pool.best not in chosen:
        rest = [i for i in range(n) if i not in chosen]
        model, pred = models.predict(args.model, args.seed, chosen, rest)
        if pred is None:
            raise SystemExit(f"{args.model} cannot be trained on {len(chosen)} designs")
        score = np.asarray(resolve_acquisition("ucb", model, target=ICR_OBJECTIVE, maximize=True, beta=4.0)
                           .score(pred), float)
        mu, sd = np.asarray(pred.mean[ICR_OBJECTIVE], float), np.asarray(pred.std[ICR_OBJECTIVE], float)
        score = respect_constraint(score, pred, math.log(pool.goal.on_current_min_nA))
        b, p = rest.index(pool.best), int(select_batch(score, 1, seed=args.seed)[0])
        pick = rest[p]
        rank = 1 + int((score > score[b]).sum())
        lines.append(f"{len(chosen):2d} | {spearmanr(mu, meas[rest]).statistic:+.2f} | [{mu.min():.2f}, {mu.max():.2f}]"
                     f" | [{sd.min():.2f}, {sd.max():.2f}] | {mu[b]:.2f}, {sd[b]:.2f}, {rank}"
                     f" | {'/'.join(pool.ms[pick].design.layers)}, {mu[p]:.2f}, {sd[p]:.2f}, {meas[pick]:.2f}")
        print(lines[-1], flush=True)
        chosen.append(pick)
    lines.append(f"# best design evaluated after {len(chosen)} evaluations")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
