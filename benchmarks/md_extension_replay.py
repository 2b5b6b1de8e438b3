"""Does extending short MD runs pay on honest labels? (issue 23, part 3) A replay of the campaign's extension choice
on the MD dataset's recorded chunk histories: no simulation, only what the runs measured at 20, 40, 80 and 100 ps.

Designs: the records of `--store` (default data/md) whose run history holds the doubling ladder 20, 40, 80, 100 ps
per field (sim.protocol records the currents and the ICR after every chunk of a fixed-length run); a design at
length L is answered with its record's history entry at L (the same trajectory's first L ps: an extension continues
the run). The objective is the campaign's: |ln ICR| with its 95 % interval from the crossing counts
(campaign.targets); the ranking is the campaign's (campaign.measured.ranked: by the interval's lower end).
"The best design" is the top of that ranking with every design at 100 ps.

Policies, each over the same `--seeds` random orders of the designs (no surrogate: what extension alone changes):
  full          every design run at 100 ps;
  short         every design at 20 ps, never extended;
  extend        every new design at 20 ps; after each, runs are extended (doubled, to at most 100 ps) while one is
                worth it by the campaign's rule (iteration.extension_option: its objective interval still reaches
                past the best lower bound measured; the largest removed variance per ps first), before the next new
                design. A campaign also weighs each extension against a new design's predicted variance per cost;
                without a surrogate this replay always prefers an eligible extension (the extreme of that choice).
Cost: ps of production per field (every design runs both fields, so the sum is the same up to a factor 2).
Reported: P(the policy's top-ranked design is the best) at each budget, the budget after which it stays the best
for the rest of the run (mean over seeds with a bootstrap interval; a seed that never settles counts as the
policy's whole run, and is counted; the mean is then a lower bound, marked "> "), and the policy's total cost when
every design has been run.

Writes benchmarks/results/md_extension_replay.{json,md,png}.
Run: nice -n 10 .venv/bin/python benchmarks/md_extension_replay.py [--store data/md] [--seeds 2000]
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np
from report import ROOT, shown_path, write_report  # benchmarks/report.py

from porelab.active_learning.campaign.iteration import extension_option
from porelab.active_learning.campaign.measured import ranked, row_of
from porelab.active_learning.campaign.study import Goal
from porelab.active_learning.campaign.targets import ICR_OBJECTIVE, bounds, targets
from porelab.sim.measurement import Measurement
from porelab.sim.store import MeasurementStore

LADDER = (20.0, 40.0, 80.0, 100.0)  # ps per field: 20 ps, doubled, capped at the recorded 100 ps
GOAL = Goal()  # |ln ICR| at the largest |E| measured (the dataset's +-2 V/nm), no ON-current constraint


def at_length(m: Measurement, ps: float) -> Measurement | None:
    """The record answered at `ps` of production per field (its history entry there); None when not recorded."""
    h = next((h for h in m.run.history if abs(h.production_ps - ps) < 1e-6), None) if m.run else None
    return None if h is None else m.model_copy(update={"fields": h.fields, "icr": h.icr})


class Designs:
    """Every usable record at every rung of LADDER: its ranking row and objective interval (ln low, ln high)."""

    def __init__(self, store: Path):
        self.ids, self.layers, self.rows, self.ends = [], [], [], []
        for m in MeasurementStore(store).measurements("md"):
            if m.status != "ok" or m.design_id in self.ids:
                continue
            at = [at_length(m, ps) for ps in LADDER]
            if any(a is None for a in at):
                continue
            ts = [targets(a, GOAL) for a in at]
            self.ids.append(m.design_id)
            self.layers.append("/".join(m.design.layers))
            self.rows.append([row_of(a, t) for a, t in zip(at, ts, strict=True)])
            self.ends.append([bounds(t, ICR_OBJECTIVE) for t in ts])
        if len(self.ids) < 3:
            raise SystemExit(f"{store}: {len(self.ids)} records hold the history {LADDER} ps; 3 are needed")
        self.best = self.top({i: len(LADDER) - 1 for i in range(len(self.ids))})

    def top(self, state: dict[int, int]) -> str:
        """The design id ranked first with design i at rung state[i]."""
        return ranked([self.rows[i][k] for i, k in state.items()], GOAL)[0].design_id

    def objective(self, i: int, k: int) -> float:
        return float(self.rows[i][k].targets[ICR_OBJECTIVE])


def replay(d: Designs, order: list[int], policy: str) -> list[tuple[float, str]]:
    """(cumulative ps per field, top design id) after every run or extension of `policy` on designs in `order`."""
    state: dict[int, int] = {}
    spent, trace = 0.0, []
    for i in order:
        k0 = len(LADDER) - 1 if policy == "full" else 0
        state[i], spent = k0, spent + LADDER[k0]
        trace.append((spent, d.top(state)))
        while policy == "extend":
            best_low = max((d.ends[j][k][0] for j, k in state.items() if d.ends[j][k][0] is not None),
                           default=-np.inf)
            spread = float(np.std([d.objective(j, k) for j, k in state.items()])) or 1.0
            options = []
            for j, k in state.items():
                if k == len(LADDER) - 1:
                    continue
                o = extension_option(LADDER[k], LADDER[-1], d.ends[j][k], 1.0, best_low, spread, LADDER[k])
                if o is not None:
                    options.append((o["value"] / o["cost_s"], j, o["extend_ps"]))
            if not options:
                break
            _, j, to = max(options)
            k = LADDER.index(to)
            spent += to - LADDER[state[j]]
            state[j] = k
            trace.append((spent, d.top(state)))
    return trace


def settled(trace: list[tuple[float, str]], best: str) -> float | None:
    """The cost after which the top design is the best for the rest of the trace; None when it never is."""
    out = None
    for spent, top in trace:
        if top == best and out is None:
            out = spent
        elif top != best:
            out = None
    return out


def p_correct(traces: list[list[tuple[float, str]]], best: str, budgets: np.ndarray) -> np.ndarray:
    """P(top = best) at each budget (the state after the last action within it; nothing run: not correct)."""
    hit = np.zeros(len(budgets))
    for tr in traces:
        spent = np.array([s for s, _ in tr])
        ok = np.array([t == best for _, t in tr])
        idx = np.searchsorted(spent, budgets, side="right") - 1
        hit += np.where(idx >= 0, ok[np.maximum(idx, 0)], False)
    return hit / len(traces)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=ROOT / "data" / "md")
    ap.add_argument("--seeds", type=int, default=2000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "md_extension_replay")
    args = ap.parse_args()
    t0 = time.time()
    d = Designs(args.store)
    n = len(d.ids)
    print(f"{n} designs hold the history {LADDER} ps; best at 100 ps: {d.best}", flush=True)
    orders = [list(np.random.default_rng(s).permutation(n)) for s in range(args.seeds)]
    budgets = np.arange(0.0, LADDER[-1] * n + 1, 20.0)
    boot = np.random.default_rng(0)
    results = {}
    for policy in ("full", "short", "extend"):
        traces = [replay(d, o, policy) for o in orders]
        totals = np.array([tr[-1][0] for tr in traces])
        st = [settled(tr, d.best) for tr in traces]
        never = sum(s is None for s in st)
        cost = np.array([s if s is not None else tot for s, tot in zip(st, totals, strict=True)])
        means = cost[boot.integers(0, len(cost), (2000, len(cost)))].mean(axis=1)
        results[policy] = {"settled_mean_ps": float(cost.mean()),
                           "settled_mean_ci_ps": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
                           "settled_median_ps": float(np.median(cost)), "never_settled": never,
                           "ends_on_best": int(sum(tr[-1][1] == d.best for tr in traces)),
                           "total_mean_ps": float(totals.mean()), "total_range_ps": [float(totals.min()),
                                                                                     float(totals.max())],
                           "p_correct": p_correct(traces, d.best, budgets).tolist()}
        r = results[policy]
        print(f"{policy:7s} settles on the best after {r['settled_mean_ps']:.0f} ps per field on the mean "
              f"[{r['settled_mean_ci_ps'][0]:.0f}, {r['settled_mean_ci_ps'][1]:.0f}], never in {never} of "
              f"{args.seeds} seeds; total {r['total_mean_ps']:.0f} ps", flush=True)
    ratio = results["full"]["settled_mean_ps"] / results["extend"]["settled_mean_ps"]
    table = [{"design_id": d.ids[i], "layers": d.layers[i],
              **{f"{LADDER[k]:g}ps": [d.ends[i][k][0], d.objective(i, k), d.ends[i][k][1]] for k in range(len(LADDER))}}
             for i in range(n)]
    doc = {"date": datetime.date.today().isoformat(),
           "command": " ".join(["nice -n 10 .venv/bin/python benchmarks/md_extension_replay.py", *sys.argv[1:]]),
           "store": shown_path(args.store), "ladder_ps": LADDER, "designs": n, "best": d.best, "seeds": args.seeds,
           "budgets_ps": budgets.tolist(), "policies": results, "full_over_extend": ratio, "objective_by_length": table,
           "seconds": time.time() - t0}
    write_report(args.out, doc, json.dumps(doc, indent=1, default=float), markdown, plot)


def _iv(v: list) -> str:
    lo, x, hi = v
    return f"{x:.2f} [{lo:.2f}, {'inf' if hi is None else f'{hi:.2f}'}]"


def markdown(doc: dict) -> str:
    p = doc["policies"]
    lines = [f"# Does extending short MD runs pay? A replay of recorded chunk histories ({doc['date']})", "",
             f"Command: `{doc['command']}`  ",
             f"{doc['designs']} designs of `{doc['store']}` hold the history "
             f"{', '.join(f'{x:g}' for x in doc['ladder_ps'])} ps per field; the best at 100 ps (campaign "
             f"ranking, lower end of |ln ICR|): `{doc['best']}`; "
             f"{doc['seeds']} random orders of the designs per policy; runtime {doc['seconds']:.0f} s.", "",
             "| policy | cost until the top design stays the best, ps per field: mean [95 % bootstrap] | median | "
             "seeds that never settle on it | seeds that end on it | total cost, mean (range) |",
             "|---|---|---|---|---|---|"]
    for name, r in p.items():
        cut = "> " if r["never_settled"] else ""  # a seed that never settles counts its whole run: a lower bound
        lines.append(f"| {name} | {cut}{r['settled_mean_ps']:.0f} [{r['settled_mean_ci_ps'][0]:.0f}, "
                     f"{r['settled_mean_ci_ps'][1]:.0f}] | {cut}{r['settled_median_ps']:.0f} | {r['never_settled']} | "
                     f"{r['ends_on_best']} | {r['total_mean_ps']:.0f} ({r['total_range_ps'][0]:.0f}-"
                     f"{r['total_range_ps'][1]:.0f}) |")
    lines += ["", f"full / extend (mean cost to settle): {doc['full_over_extend']:.2f}x.", "",
              "## |ln ICR| [95 % interval] of each design by run length", "",
              "| design | layers | " + " | ".join(f"{x:g} ps" for x in doc["ladder_ps"]) + " |",
              "|---|---|" + "---|" * len(doc["ladder_ps"])]
    for row in doc["objective_by_length"]:
        lines.append(f"| {row['design_id']} | {row['layers']} | "
                     + " | ".join(_iv(row[f"{x:g}ps"]) for x in doc["ladder_ps"]) + " |")
    return "\n".join(lines) + "\n"


def plot(doc: dict, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=120)
    ax = fig.add_subplot()
    for name, r in doc["policies"].items():
        ax.step(doc["budgets_ps"], r["p_correct"], where="post", label=name)
    ax.set_xlabel("MD production spent, ps per field")
    ax.set_ylabel("P(top-ranked design is the best)")
    ax.set_title(f"Extension replayed on {doc['designs']} recorded MD histories ({doc['seeds']} orders)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    main()
