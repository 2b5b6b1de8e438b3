"""Tiny MD on this CPU with the same compute budget per strategy: the multi-fidelity campaign of `make demo`
(continuum twin + MD run until its ICR interval is decisive, experiments/quickstart.yaml) against random
fixed-length MD (the same space and MD settings, `until: fixed` at `--fixed-ps`, acquisition random, no ladder).
The multi-fidelity MD runs in `--chunk-ps` chunks until its ICR interval is decisive or `--max-ps` per field (the
demo's 12 ps cap leaves every tiny-MD ICR censored); with `--extend-ps` its rounds may also extend an undecided run
(acquisition.extend_max_ps: the cap doubled, up to that many ps) instead of starting a new design.

Each strategy gets `--minutes` of driver wall time on 2 workers (2 CPU threads: 2 x minutes CPU-minutes; a run
still going at the limit is not counted; an extension finished after it counts as the version before). Reported
per strategy: the MD runs and continuum evaluations made, the
best design by the lower bound of its MD ICR (ICR and ON current with 95 % intervals), and the surrogate's quality
on held-out MD: a model trained on one strategy's data (the ladder's model learns both fidelities and predicts at
MD) predicts ln ICR of the other strategy's MD designs it never saw — RMSE, R² and 95 % coverage (values only, not
bounds: neither "> x" nor "< x").

Run: .venv/bin/python benchmarks/md_budget.py [--minutes 25] [--fixed-ps 24] [--chunk-ps 12] [--max-ps 48]
         [--extend-ps 96]
Writes benchmarks/results/md_budget.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from porelab.active_learning.campaign.directory import LEDGER_FILE
from porelab.active_learning.campaign.driver import Campaign
from porelab.active_learning.campaign.ledger import Ledger
from porelab.active_learning.campaign.measured import ranked
from porelab.active_learning.campaign.model import CampaignModel
from porelab.active_learning.campaign.study import load_study
from porelab.active_learning.campaign.targets import only_a_bound
from porelab.sim.measurement import Measurement
from porelab.surrogate.metrics import regression_metrics

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "experiments" / "quickstart.yaml"


def studies(args) -> dict[str, dict]:
    mf = yaml.safe_load(QUICKSTART.read_text())
    mf["budget"] = {**mf["budget"], "simulations": 1000, "wall_clock_min": args.minutes}
    mf["fidelities"][0]["simulations"] = 200
    mf["oracle"]["settings"] |= {"chunk_ps": args.chunk_ps, "max_production_ps": args.max_ps}
    rnd = json.loads(json.dumps(mf))
    if args.extend_ps:
        mf["acquisition"]["extend_max_ps"] = args.extend_ps
    rnd.pop("fidelities")
    rnd["oracle"]["settings"] = {**{k: v for k, v in rnd["oracle"]["settings"].items()
                                    if k not in ("until", "chunk_ps", "max_production_ps")},
                                 "production_ps": args.fixed_ps}
    rnd["acquisition"] = {"kind": "random", "pool_size": mf["acquisition"]["pool_size"]}
    rnd["budget"]["initial"] = 2
    return {"multi-fidelity": {**mf, "name": "mf"}, "random fixed-length MD": {**rnd, "name": "random"}}


def read(d: Path, limit_s: float) -> tuple[list[dict], float]:
    """The campaign's ok measurements made within limit_s of its first trial (the driver lets the runs going at
    the limit finish: they are not counted; of an extended run, the latest version made in time) and the worker
    seconds they took (an MD run's own wall seconds over all its calls, RunRecord.wall_s; else the trial's)."""
    led = Ledger(d / LEDGER_FILE)
    try:
        t0 = led.db.execute("SELECT MIN(created_at) FROM trials").fetchone()[0]
        rows, busy = [], 0.0
        trials = {t.design_id: t for t in led.trials("completed")}
        for r in led.measurements(ok_only=True):
            made = [v for v in led.versions(r.design_id) if v["status"] == "ok" and v["created_at"] <= t0 + limit_s]
            if not made:
                continue
            rows.append(dataclasses.replace(r, json=made[-1]["json"], targets=made[-1]["targets"]))
            run = Measurement.model_validate_json(made[-1]["json"]).run
            busy += run.wall_s if run is not None else (trials[r.design_id].busy_s or 0.0)
        return rows, busy
    finally:
        led.close()


def heldout(rows_train: list[dict], rows_test: list[dict], study, approach: str = "delta") -> dict:
    """A fresh model of the study's kind on rows_train (every fidelity, learned by `approach`, at MD when there are
    several) asked for ln ICR of the MD designs of rows_test that it did not see and that were measured with a value,
    not only a bound either way (campaign.targets.only_a_bound)."""
    ms = [Measurement.model_validate_json(r.json) for r in rows_train]
    seen = {r.design_id for r in rows_train}
    test = [r for r in rows_test if r.fidelity == "md" and r.design_id not in seen
            and not only_a_bound(r.targets, "log_icr")]
    fids = {m.fidelity for m in ms}
    if len(test) < 2 or not any(m.fidelity == "md" for m in ms):
        return {"n": len(test)}
    target = "md" if len(fids) > 1 else None
    model = CampaignModel.for_study(study.model, study.goal, study.seed, target_fidelity=target,
                                    fidelity_approach=approach).fit(ms)
    tm = [Measurement.model_validate_json(r.json) for r in test]
    p = model.predict([(m.design, m.conditions) for m in tm])
    m = regression_metrics(np.array([r.targets["log_icr"] for r in test]), p.mean["log_icr"], p.std["log_icr"])
    return {k: m[k] for k in ("n", "rmse", "r2", "coverage_95")}


def _iv(row: dict, k: str) -> str:
    """`value [lo, hi]` or `> lo` (censored) of a flat summary row."""
    if k not in row:
        return "-"
    if row.get(f"{k}_censored"):
        return f"> {row[f'{k}_lo']:.3g}"
    return f"{row[k]:.3g} [{row[f'{k}_lo']:.3g}, {row[f'{k}_hi']:.3g}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=25.0, help="driver wall time per strategy (2 workers)")
    ap.add_argument("--fixed-ps", type=float, default=24.0, help="production per field of the random strategy")
    ap.add_argument("--chunk-ps", type=float, default=12.0, help="multi-fidelity MD: production added per chunk")
    ap.add_argument("--max-ps", type=float, default=48.0, help="multi-fidelity MD: cap on the production per field")
    ap.add_argument("--extend-ps", type=float, default=96.0, help="multi-fidelity: acquisition.extend_max_ps (0: off)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "md_budget.json")
    ap.add_argument("--analyse", type=Path, help="only analyse the campaigns already run in this directory")
    ap.add_argument("--keep", type=Path, help="run the campaigns in this directory (kept) instead of a temporary one")
    args = ap.parse_args()
    t0, res, rows, docs = time.time(), {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.analyse or args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for name, doc in studies(args).items():
            f, d = work / f"{doc['name']}.yaml", work / doc["name"]
            if not args.analyse:
                f.write_text(yaml.safe_dump(doc))
                print(f"--- {name}: {args.minutes:g} min on 2 workers", flush=True)
                Campaign.from_study(f, d, log=lambda m: print("   ", m[:140], flush=True)).run()
            (rows[name], busy), docs[name] = read(d, 60 * args.minutes), load_study(f)
            md = [r for r in rows[name] if r.fidelity == "md"]
            best = ranked(md, docs[name].goal)[:1]
            res[name] = {"md_runs": len(md), "continuum_evaluations": len(rows[name]) - len(md),
                         "md_extensions": sum(json.loads(r.json)["run"]["production_ps"] > (
                             args.max_ps if name == "multi-fidelity" else args.fixed_ps) + 1e-6 for r in md),
                         "worker_s": busy,
                         "best": best[0].as_dict() if best else None}
        a, b = list(rows)
        res[a]["heldout_md"] = heldout(rows[a], rows[b], docs[a])
        res[a]["heldout_md_feature"] = heldout(rows[a], rows[b], docs[a], "feature")  # the other fidelity approach
        res[b]["heldout_md"] = heldout(rows[b], rows[a], docs[b])
    print(f"\n{'strategy':24s} {'MD runs':>7s} {'extended':>8s} {'continuum':>9s} "
          f"{'best ICR (lower bound first)':>32s} {'ON nA':>20s} {'held-out MD: n, RMSE, R², 95 % cov':>36s}")
    for name, r in res.items():
        b, h = r["best"] or {}, r["heldout_md"]
        hs = f"{h['n']}, {h['rmse']:.2f}, {h['r2']:.2f}, {h['coverage_95']:.0%}" if "rmse" in h else f"{h['n']}, -"
        print(f"{name:24s} {r['md_runs']:7d} {r['md_extensions']:8d} {r['continuum_evaluations']:9d} "
              f"{_iv(b, 'icr'):>32s} {_iv(b, 'on_current_nA'):>20s} {hs:>36s}")
    h = res[a]["heldout_md_feature"]
    if "rmse" in h:
        print(f"{a} held-out MD with the other fidelity approach (feature instead of delta): n {h['n']}, "
              f"RMSE {h['rmse']:.2f}, R² {h['r2']:.2f}, 95 % coverage {h['coverage_95']:.0%}")
    doc = {"command": f".venv/bin/python benchmarks/md_budget.py --minutes {args.minutes:g} --fixed-ps "
                      f"{args.fixed_ps:g} --chunk-ps {args.chunk_ps:g} --max-ps {args.max_ps:g} "
                      f"--extend-ps {args.extend_ps:g}",
           "date": time.strftime("%Y-%m-%d"), "cpu": platform.processor(), "results": res,
           "seconds": time.time() - t0, "icr_log_scale_note": "held-out metrics on ln ICR"}
    if args.analyse:
        doc["analysed"] = f"campaigns of that command re-read with --analyse {args.analyse}"
    args.out.write_text(json.dumps(doc, indent=1, default=float))
    print(f"wrote {args.out} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
