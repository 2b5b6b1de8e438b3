"""Worker utilisation of the campaign loop with 2 local workers: busy time / (workers x wall time).

Each case runs a real campaign (ledger, MLflow tracking, rf surrogate, UCB, local process pool) on the
continuum-al design space. The oracle is the continuum model plus a fixed sleep of `--task-s` seconds (this
file's SleepyContinuum, loaded as a user oracle from its file path) to stand in for a simulation of known
length; `--task-s 0` measures the bare continuum oracle (~10 ms per design, where the driver is the bottleneck).
Busy time is measured inside the workers; wall time is the driver's loop (executor start to last result).

Run: .venv/bin/python benchmarks/async_utilisation.py [--task-s 2 --sims 24]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import yaml

from porelab.sim.continuum import run_continuum

ROOT = Path(__file__).resolve().parents[1]


class SleepyContinuum:
    """The continuum oracle, then `sleep_s` seconds of sleep (a stand-in for a longer simulation)."""

    fidelity = "continuum"

    def __init__(self, sleep_s: float = 2.0):
        self.sleep_s = sleep_s

    def __call__(self, design, conditions, run_dir):
        m = run_continuum(design, conditions)
        time.sleep(self.sleep_s)
        return m


def run_case(refill: str, task_s: float, sims: int, batch: int, workspace: Path) -> dict:
    from porelab.active_learning.campaign.directory import create
    from porelab.active_learning.campaign.driver import Campaign
    from porelab.active_learning.campaign.study import parse_study
    from porelab.active_learning.tracking.view import MlflowView

    doc = yaml.safe_load((ROOT / "experiments" / "continuum-al.yaml").read_text())
    doc.update(name=f"util-{refill}-{task_s:g}",
               oracle={"kind": "user", "path": f"{Path(__file__).resolve()}:SleepyContinuum",
                       "settings": {"sleep_s": task_s}},
               budget={"simulations": sims, "initial": batch, "batch": batch},
               executor={"kind": "local", "workers": 2, "refill": refill},
               model={"kind": "rf", "params": {"n_estimators": 100}})
    study = parse_study(doc)
    d = create(study, workspace / study.name)
    t0 = time.monotonic()
    s = Campaign(d, log=lambda m: None, views=[MlflowView(d)]).run()
    u = s["utilisation"]
    return {"refill": refill, "task_s": task_s, "sims": sims, "batch": batch, "completed": s["completed"],
            "busy_s": u["busy_s"], "loop_wall_s": u["wall_s"], "utilisation": u["fraction"],
            "campaign_wall_s": time.monotonic() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task-s", type=float, nargs="+", default=[2.0, 0.0])
    ap.add_argument("--sims", type=int, default=24)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "async_utilisation.json")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for task_s in args.task_s:
            for refill in ("async", "batch"):
                r = run_case(refill, task_s, args.sims, args.batch, Path(tmp))
                rows.append(r)
                print(f"task {task_s:g} s + continuum, refill {refill:5s}: {r['completed']} sims, busy "
                      f"{r['busy_s']:.1f} s over {r['loop_wall_s']:.1f} s x 2 workers -> utilisation "
                      f"{r['utilisation']:.0%} (campaign {r['campaign_wall_s']:.0f} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "cases": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
