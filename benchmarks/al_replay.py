"""Active learning replayed on recorded MD (issue 23, part 3): how many evaluations each acquisition needs to find
the dataset's best design when every "simulation" is answered from the shared MD dataset (data/md) by the replay
oracle (porelab.sim.replay:ReplayOracle, built as a study builds a user oracle), against random picks.

Pool: every design the dataset holds when run (rerun as it grows). Best design: the campaign's own ranking
(active_learning.campaign.measured.ranked: by the pessimistic bound of the objective max(ICR, 1/ICR), i.e. the lower
end of its 95 % interval, ties by the value) among the designs that meet the ON-current constraint as EI's incumbent
does (iteration._best_feasible: ON current >= `--on-min` nA, not known only from above). Regret after k evaluations:
ln(bound of the best design) - ln(bound of the best feasible design evaluated so far) (0 once found).

Loop (offline, as benchmarks/al_efficiency.py runs porelab's acquisition objects without the campaign driver): per
seed, the same `--initial` random designs for every strategy, then one pick at a time: a fresh surrogate
(CampaignModel, novelty floor on: what a campaign trains) on the designs evaluated so far (model `<kind>+twin`: the
multi-fidelity model, delta approach, on them and the continuum twin calibrated on them, active_learning.campaign.twin,
answered at every pool design; recalibrated at every pick), the acquisition
(`resolve_acquisition`: ucb with beta 4, ei with the best feasible objective as incumbent, max_uncertainty) on the
ICR objective |ln ICR|, the ON-current constraint applied as every campaign applies it (iteration.respect_constraint),
until the best design is evaluated. A model that cannot be trained yet (too few exact labels) is replaced by a random
pick, counted. Random: the same initial designs, then uniform picks; its mean, median and spread come from
`--random-seeds` seeds (cheap: no model). The best any strategy can do after random initial designs ("perfect") is
reported beside, so the 2x goal can be read against what the pool size allows.

Goal (issue 23): mean evaluations >= 2x fewer than random's, and no seed worse than random's median.

Writes benchmarks/results/al_replay.{json,md,png}.
Run: nice -n 10 .venv/bin/python benchmarks/al_replay.py [--seeds 10] [--initial 2] [--models gnn,rf,rf+twin]
     [--on-min 2]
     (optionally with the Makefile's glibc malloc settings for the GNN, as benchmarks/surrogate_md.py says)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from report import ROOT, shown_path, write_report  # benchmarks/report.py
from scipy.stats import norm

from porelab.active_learning.campaign.acquisition import resolve_acquisition, select_batch
from porelab.active_learning.campaign.iteration import P_FEASIBLE_MIN, respect_constraint
from porelab.active_learning.campaign.measured import ranked, row_of
from porelab.active_learning.campaign.model import CampaignModel, ModelError
from porelab.active_learning.campaign.oracles import make_oracle
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import ICR_OBJECTIVE, targets, upper_censored
from porelab.active_learning.campaign.twin import Twin

REPLAY = "porelab.sim.replay:ReplayOracle"
STRATEGIES = ("ucb", "ei", "max_uncertainty")
PARAMS = {"gnn": {"n_members": 3}, "rf": {"n_estimators": 100}, "gp": {}}  # the GNN trains its default 300 epochs


class Replay:
    """The pool: every recorded design, answered by the replay oracle; its targets and the campaign's ranking."""

    def __init__(self, store: Path, goal: Goal):
        self.oracle = make_oracle("user", {"store": str(store), "kind": "md"}, REPLAY)
        self.goal = goal
        recorded = self.oracle.measurements()
        self.questions = [(m.design, m.conditions) for m in recorded]
        self.ms = [self.oracle(d, c, None) for d, c in self.questions]  # what the "simulations" answer
        self.t = [targets(m, goal) for m in self.ms]
        log_min = math.log(goal.on_current_min_nA) if goal.on_current_min_nA else -math.inf
        self.feasible = np.array([not upper_censored(t, "log_on_current") and t["log_on_current"] >= log_min
                                  for t in self.t], bool)
        rows = [row_of(m, t) for m, t in zip(self.ms, self.t, strict=True)]
        order = ranked([r for r, f in zip(rows, self.feasible, strict=True) if f] or rows, goal)
        self.ranking = [m.design_id for m in order]
        ids = [m.design_id for m in self.ms]
        self.bound = np.full(len(ids), -math.inf)  # the rank bound (ln of the objective's lower end), feasible ones
        for m in order:
            self.bound[ids.index(m.design_id)] = max(m.rank_bound, 0.0)
        self.best = ids.index(order[0].design_id)
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ms)

    def regret(self, chosen: list[int]) -> float:
        got = max((self.bound[i] for i in chosen if np.isfinite(self.bound[i])), default=0.0)
        return float(self.bound[self.best] - got)


def incumbent(pool: Replay, chosen: list[int]) -> float:
    """EI's incumbent: the best objective value measured by a feasible design (iteration._best_feasible), else -inf."""
    vals = [pool.t[i][ICR_OBJECTIVE] for i in chosen if pool.feasible[i]]
    return max(vals) if vals else -np.inf


class Models:
    """Fitted models and their predictions, cached by (kind, seed, designs evaluated): strategies share a state's."""

    def __init__(self, pool: Replay):
        self.pool, self.cache, self.fits, self.seconds = pool, {}, 0, 0.0
        self.twin, self.calibrations = Twin(pool.goal), []

    def _fit(self, kind: str, seed: int, md: list) -> CampaignModel:
        """`kind` on the MD evaluated; `<kind>+twin`: multi-fidelity (delta) on it and the twin calibrated on it
        (active_learning.campaign.twin), answered at every pool design (the twin is cheap and asked anywhere)."""
        base, _, twin = kind.partition("+")
        if not twin:
            return CampaignModel(base, self.pool.goal, seed, **PARAMS[base]).fit(md)
        cal = self.twin.calibrate(md)
        self.calibrations.append(cal.as_dict() | {"model": kind, "seed": seed, "evaluated": len(md)})
        cont = [c for c in (self.twin.answer(q, cal) for q in self.pool.questions) if c.status == "ok"]
        return CampaignModel(base, self.pool.goal, seed, target_fidelity="md", **PARAMS[base]).fit(md + cont)

    def predict(self, kind: str, seed: int, chosen: list[int], rest: list[int]):
        key = (kind, seed, frozenset(chosen))
        if key not in self.cache:
            t0 = time.process_time()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = self._fit(kind, seed, [self.pool.ms[i] for i in chosen])
                    everyone = [i for i in range(len(self.pool)) if i not in chosen]
                    self.cache[key] = (model, everyone, model.predict([self.pool.questions[i] for i in everyone]))
            except ModelError:
                self.cache[key] = None
            self.fits += 1
            self.seconds += time.process_time() - t0
        got = self.cache[key]
        if got is None:
            return None, None
        model, everyone, pred = got
        rows = [everyone.index(i) for i in rest]
        from porelab.surrogate.target_prediction import TargetPrediction

        sub = TargetPrediction({k: v[rows] for k, v in pred.mean.items()}, {k: v[rows] for k, v in pred.std.items()},
                               {k: v[rows] for k, v in pred.epistemic.items()}, pred.embedding[rows])
        return model, sub


def run_one(pool: Replay, models: Models, kind: str | None, strategy: str, seed: int, args) -> dict:
    """One replayed campaign; kind None: random picks."""
    n = len(pool)
    rng = np.random.default_rng(seed)
    chosen = [int(i) for i in rng.choice(n, min(args.initial, n), replace=False)]
    pick_rng = np.random.default_rng(10_000 + seed)
    regret = [pool.regret(chosen[:k + 1]) for k in range(len(chosen))]
    random_picks = constraint_only = 0
    while pool.best not in chosen and len(chosen) < n:
        rest = [i for i in range(n) if i not in chosen]
        model, pred = (None, None) if kind is None else models.predict(kind, seed, chosen, rest)
        if pred is None:
            random_picks += kind is not None
            pick = rest[int(pick_rng.integers(len(rest)))]
        else:
            kw = {"beta": args.beta} if strategy == "ucb" else {"best_f": incumbent(pool, chosen)} \
                if strategy == "ei" else {}
            acq = resolve_acquisition(strategy, model, target=ICR_OBJECTIVE, maximize=True, **kw)
            scores = np.asarray(acq.score(pred), float)
            if pool.goal.on_current_min_nA is not None:
                log_thr = math.log(pool.goal.on_current_min_nA)
                p_ok = norm.sf((log_thr - np.asarray(pred.mean["log_on_current"], float))
                               / np.maximum(np.asarray(pred.std["log_on_current"], float), 1e-9))
                # no candidate plausibly feasible: respect_constraint ranks by P(feasible) alone, not by acquisition
                constraint_only += not (p_ok >= P_FEASIBLE_MIN).any()
                scores = respect_constraint(scores, pred, log_thr)
            pick = rest[int(select_batch(scores, 1, seed=seed)[0])]
        pool.oracle(*pool.questions[pick], None)  # the replay answers it (raises for a design it does not hold)
        chosen.append(pick)
        regret.append(pool.regret(chosen))
    return {"evaluations": len(chosen), "order": [pool.ids[i] for i in chosen], "regret": regret,
            "random_picks": random_picks, "constraint_only_picks": constraint_only}


def twin_on_pool(pool: Replay, twin: Twin) -> dict:
    """How the twin calibrated on every pool design ranks them: the best design's rank by the twin's |ln ICR| and
    the Spearman correlation of the twin's |ln ICR| with MD's (designs where the solver failed left out)."""
    from scipy.stats import spearmanr

    cal = twin.calibrate(pool.ms)
    pred = [twin.targets(q, cal.eps_r) for q in pool.questions]
    ok = [i for i, t in enumerate(pred) if t is not None]
    score = {i: pred[i][ICR_OBJECTIVE] for i in ok}
    rank = 1 + sum(score[i] > score[pool.best] for i in ok) if pool.best in score else None
    rho = spearmanr([score[i] for i in ok], [pool.t[i][ICR_OBJECTIVE] for i in ok]).statistic
    return {"eps_r": cal.eps_r, "d_scale": math.exp(cal.log_s), "best_rank": rank, "spearman": float(rho),
            "solved": len(ok)}


def perfect(pool: Replay, seeds: int, initial: int) -> np.ndarray:
    """Evaluations of a strategy that knows the answer: the random initial designs, then the best at once."""
    out = []
    for seed in range(seeds):
        chosen = np.random.default_rng(seed).choice(len(pool), min(initial, len(pool)), replace=False)
        out.append(len(chosen) + (pool.best not in chosen))
    return np.array(out)


def command_line() -> str:
    """The command as run: the glibc malloc settings when set, nice, the script and its arguments."""
    import os

    env = [f"{k}={os.environ[k]}" for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_")
           if k in os.environ]
    return " ".join([*env, "nice -n 10 .venv/bin/python benchmarks/al_replay.py", *sys.argv[1:]])


def random_exact(n: int, k: int) -> float:
    """Mean evaluations of random picks to reach one given design: k initial designs (all counted), then uniform."""
    k = min(k, n)
    return k + (n - k) / n * (n - k + 1) / 2


def summarise(evals: np.ndarray) -> dict:
    return {"mean": float(evals.mean()), "median": float(np.median(evals)), "worst": int(evals.max()),
            "best": int(evals.min()), "per_seed": evals.tolist()}


def markdown(doc: dict) -> str:
    r, p = doc["random"], doc["perfect"]
    lines = [f"# Active learning replayed on recorded MD ({doc['date']})", "",
             f"Command: `{doc['command']}`  ",
             f"Pool: {doc['pool_size']} MD designs of `{doc['store']}` (every one the dataset held), answered by the "
             f"replay oracle `{REPLAY}`; ON-current constraint {doc['on_min_nA'] or 'none'} nA ({doc['feasible']} "
             f"designs meet it); {doc['initial']} random initial designs per seed; runtime {doc['seconds']:.0f} s.", "",
             f"Best design (campaign ranking by the lower bound of max(ICR, 1/ICR), feasible only): "
             f"`{doc['best']['design_id']}` {doc['best']['layers']}, |ln ICR| lower bound "
             f"{doc['best']['bound']:.2f} (ICR {doc['best']['icr']}), ON {doc['best']['on_nA']}.", "",
             f"Random ({doc['random_seeds']} seeds): mean {r['mean']:.2f} evaluations (exactly {r['exact_mean']:.2f}), "
             f"median {r['median']:.1f}; "
             f"a strategy that knows the answer (after the same random initial designs): mean {p['mean']:.2f}, so "
             f"the largest ratio this pool allows is {r['mean'] / p['mean']:.2f}x.", "",
             "| model | acquisition | seeds | mean evals [95 % bootstrap] | median | worst seed | random/strategy "
             "(mean) | seeds worse than random's median | random picks (model untrainable) | model picks made by "
             "P(ON feasible) alone | goal met |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in doc["results"]:
        s = row["summary"]
        seeds = s.get("seeds", len(s["per_seed"]))
        lines.append(f"| {row['model'] or '-'} | {row['strategy']} | {seeds} | {s['mean']:.2f} "
                     f"[{row['mean_ci'][0]:.2f}, {row['mean_ci'][1]:.2f}] | {s['median']:.1f} | {s['worst']} | "
                     f"{row['ratio']:.2f} | {row['worse_than_random_median']} of {seeds} | {row['random_picks']} | "
                     + (f"{row['constraint_only_picks']} of {row['model_picks']} | " if row["model"] else "- | ")
                     + f"{'yes' if row['goal_met'] else 'no'} |")
    lines += ["", "## Conclusions", "", *doc["conclusions"], ""]
    return "\n".join(lines)


def plot(doc: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    ax = fig.add_subplot()
    n = doc["pool_size"]
    x = np.arange(1, n + 1)
    groups: dict[tuple, list[str]] = {}  # strategies whose seeds all gave the same curves share one line
    for row in doc["results"]:
        label = f"{row['model']} {row['strategy']}" if row["model"] else "random"
        key = (row["model"], tuple(row["regret_mean"]), tuple(row["regret_p10"]), tuple(row["regret_p90"]))
        groups.setdefault(key, []).append(label if not groups.get(key) else row["strategy"])
    for (model, mean, lo, hi), labels in groups.items():
        style = {"color": "k", "lw": 2} if model is None else \
            {"lw": 1.2, "ls": "--" if model.startswith("gnn") else "-"}
        (line,) = ax.plot(x, mean, marker="o", ms=3, label=" = ".join(labels), **style)
        ax.fill_between(x, lo, hi, alpha=0.08, color=line.get_color())
    ax.set_xlabel("evaluations (replayed MD designs)")
    ax.set_ylabel("regret: ln lower bound of best ICR - best found")
    ax.set_title(f"AL replayed on {n} recorded MD designs: mean regret (band: 10-90 % of seeds)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=ROOT / "data" / "md")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--random-seeds", type=int, default=2000)
    ap.add_argument("--initial", type=int, default=2, help="random designs before the first model")
    ap.add_argument("--models", default="gnn,rf")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--beta", type=float, default=4.0, help="UCB's beta (acquisition default)")
    ap.add_argument("--on-min", type=float, default=2.0,
                    help="goal.on_current_min_nA (2 nA: experiments/design-continuum.yaml's; 0: no constraint)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "al_replay")
    args = ap.parse_args()
    t0 = time.time()
    goal = Goal(on_current_min_nA=args.on_min or None)
    pool = Replay(args.store, goal)
    models = Models(pool)
    n = len(pool)
    b = pool.best
    icr_t = pool.t[b]
    best = {"design_id": pool.ids[b], "layers": "/".join(pool.ms[b].design.layers), "bound": float(pool.bound[b]),
            "icr": f"{'> ' if icr_t['icr_censored'] else ''}{math.exp(icr_t['log_icr']):.3g}",
            "on_nA": f"{math.exp(icr_t['log_on_current']):.3g} nA"}
    print(f"pool: {n} designs, {int(pool.feasible.sum())} meet ON >= {args.on_min} nA; best {best}", flush=True)
    rand = [run_one(pool, models, None, "random", s, args) for s in range(args.random_seeds)]
    r_evals = np.array([r["evaluations"] for r in rand])
    r_median = float(np.median(r_evals))
    results = [{"model": None, "strategy": "random", "runs": rand[: args.seeds]}]
    for kind in [k for k in args.models.split(",") if k]:
        for strategy in args.strategies.split(","):
            t = time.time()
            runs = [run_one(pool, models, kind, strategy, s, args) for s in range(args.seeds)]
            results.append({"model": kind, "strategy": strategy, "runs": runs})
            ev = [r["evaluations"] for r in runs]
            print(f"{kind:4s} {strategy:16s} mean {np.mean(ev):.2f} worst {max(ev)} ({time.time() - t:.0f} s)",
                  flush=True)
    boot = np.random.default_rng(0)
    for row in results:
        runs = rand if row["model"] is None else row["runs"]
        ev = np.array([r["evaluations"] for r in runs])
        means = ev[boot.integers(0, len(ev), (2000, len(ev)))].mean(axis=1)
        row["summary"] = summarise(ev)
        row["mean_ci"] = [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]
        row["ratio"] = float(r_evals.mean() / ev.mean())
        row["worse_than_random_median"] = int((ev > r_median).sum())
        row["random_picks"] = int(sum(r["random_picks"] for r in runs))
        row["constraint_only_picks"] = int(sum(r["constraint_only_picks"] for r in runs))
        row["model_picks"] = int(sum(len(r["order"]) - min(args.initial, n) for r in runs)) - row["random_picks"] \
            if row["model"] else 0
        row["goal_met"] = row["model"] is not None and row["ratio"] >= 2 and row["worse_than_random_median"] == 0
        row["regret_curves"] = [r["regret"] for r in row["runs"]]
        curves = np.array([r["regret"] + [0.0] * (n - len(r["regret"])) for r in runs])  # every seed run
        row["regret_mean"] = curves.mean(axis=0).tolist()
        row["regret_p10"], row["regret_p90"] = (np.percentile(curves, q, axis=0).tolist() for q in (10, 90))
        if row["model"] is None:
            row["summary"]["per_seed"] = row["summary"]["per_seed"][: args.seeds]  # all seeds: in the summary
            row["summary"]["seeds"] = len(ev)
    pf = perfect(pool, args.random_seeds, args.initial)
    doc = {"date": datetime.date.today().isoformat(),
           "command": command_line(),
           "store": shown_path(args.store), "pool_size": n, "pool": pool.ids, "ranking": pool.ranking,
           "feasible": int(pool.feasible.sum()), "on_min_nA": args.on_min, "initial": args.initial,
           "random_seeds": args.random_seeds, "seeds": args.seeds, "best": best, "model_params": PARAMS,
           "random": summarise(r_evals) | {"per_seed": r_evals[: args.seeds].tolist(),
                                            "exact_mean": random_exact(n, args.initial)},
           "perfect": summarise(pf) | {"per_seed": pf[: args.seeds].tolist()},
           "model_fits": models.fits, "model_cpu_s": models.seconds, "twin_calibrations": models.calibrations,
           "results": [{k: v for k, v in row.items() if k != "runs"} | {"orders": [r["order"] for r in row["runs"]]}
                       for row in results]}
    doc["seconds"] = time.time() - t0
    guided = [row for row in doc["results"] if row["model"]]
    top = min(guided, key=lambda r: r["summary"]["mean"]) if guided else None
    doc["conclusions"] = [
        f"- Pool of {n} designs: weak evidence. Random needs {doc['random']['mean']:.2f} evaluations on average; "
        f"knowing the answer after {args.initial} random initial designs needs {doc['perfect']['mean']:.2f}, so no "
        f"strategy can be more than {doc['random']['mean'] / doc['perfect']['mean']:.2f}x better than random here"
        + (" (the 2x goal is out of reach by construction)." if doc['random']['mean'] / doc['perfect']['mean'] < 2
           else "."),
        *([f"- Fewest evaluations: {top['model']} {top['strategy']}, mean {top['summary']['mean']:.2f} "
           f"[{top['mean_ci'][0]:.2f}, {top['mean_ci'][1]:.2f}] ({top['ratio']:.2f}x random), worst seed "
           f"{top['summary']['worst']} (random's median {r_median:.1f}). Goal (>= 2x, no seed worse than random's "
           f"median) met by: " + (", ".join(f"{r['model']} {r['strategy']}" for r in guided if r["goal_met"])
                                  or "none") + "."] if top else []),
    ]
    for kind in dict.fromkeys(r["model"] for r in guided):
        rows = [r for r in guided if r["model"] == kind]
        same = len(rows) > 1 and all(r["orders"] == rows[0]["orders"] for r in rows)
        only = sum(r["constraint_only_picks"] for r in rows)
        picks = sum(r["model_picks"] for r in rows)
        doc["conclusions"].append(
            f"- {kind}: " + (f"{', '.join(r['strategy'] for r in rows)} picked the same designs in every seed; "
                             if same else "")
            + f"{only} of {picks} model-guided picks were made by the probability of meeting the ON-current "
            f"constraint alone (no candidate above {100 * P_FEASIBLE_MIN:.0f} %: iteration.respect_constraint "
            f"then ranks by that probability, not by the acquisition); {sum(r['random_picks'] for r in rows)} "
            "picks were random because the model could not be trained yet.")
    if any("+twin" in r["model"] for r in guided):
        doc["twin_on_pool"] = twin_on_pool(pool, models.twin)
        w = doc["twin_on_pool"]
        doc["conclusions"].append(
            f"- The twin calibrated on the whole pool (eps_r {w['eps_r'] or 'water'}, D scale {w['d_scale']:.3g}) "
            f"ranks the best design {w['best_rank']} of {n} by its |ln ICR|; Spearman correlation of its |ln ICR| "
            f"with MD's over the pool {w['spearman']:.2f}.")
    write_report(args.out, doc, json.dumps(doc, indent=1, default=float), markdown, plot)


if __name__ == "__main__":
    main()
