"""The parts of a campaign's overhead that could grow with its length, each timed at 10^3 and 10^4 trials side by
side (campaign_scale.py times whole campaigns; this says which part costs what):

- per result: the ledger reads the driver and the MLflow view make after every result, on a ledger of N trials
  (synthetic rows: 2 kB measurement JSON, one iteration per 100 trials);
- per iteration: the full reads of every measured row (what the driver and the MLflow view once made each
  iteration) beside the reads of the trials changed since the last one (what they make now); saving the model (an
  rf over N designs of benchmarks/campaign_scale.py's cheap oracle, its training set included), hashing its
  directory, and logging it to MLflow (our signature check and MLflow's input example both predict with it);
- MLflow's own cost of one simulation run (create_run, one log_batch of 35 metrics and 15 params, set_terminated)
  as its SQLite store fills, per 500 runs.

Run: nice -n 10 .venv/bin/python benchmarks/campaign_scale_parts.py [--sizes 1000 10000] [--mlflow-runs 3000]
Writes benchmarks/results/campaign_scale_parts.txt (what it prints).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def timed(f, reps: int = 1) -> float:
    """CPU seconds per call of f()."""
    t = time.process_time()
    for _ in range(reps):
        f()
    return (time.process_time() - t) / reps


def ledger_reads(n: int, tmp: Path) -> dict[str, float]:
    """ms per call of each ledger read made after every result (or every iteration: marked), at n trials."""
    from porelab.active_learning.campaign.ledger import Ledger

    led = Ledger(tmp / f"ledger-{n}.sqlite")
    db = led.db
    db.execute("BEGIN")
    for i in range(n):
        did = f"d{i:06d}"
        db.execute("INSERT INTO designs VALUES (?,?,?,?)", (did, json.dumps({"layers": ["COO-"]}), "{}", 0))
        st = "completed" if i < n - 100 else "candidate"
        db.execute("INSERT INTO trials (design_id, round, source, status, busy_s, created_at, updated_at, prediction) "
                   "VALUES (?,?,?,?,?,?,?,?)", (did, i // 100, "x", st, random.random(), 0, 0,
                                                json.dumps({"log_icr_mean": 0.1, "log_icr_std": 0.2})))
        if st == "completed":
            db.execute("INSERT INTO measurements VALUES (?,?,?,?,?,?)",
                       (did, "ok", "continuum", "x" * 2000, json.dumps({"log_icr": 0.1}), 0))
        db.execute("INSERT INTO events (time, design_id, kind) VALUES (0, ?, 'finish')", (did,))
    for s in range(n // 100):
        db.execute("INSERT INTO iterations (step, round, started_at, metrics) VALUES (?,?,?,?)",
                   (s, s, 0, json.dumps({f"k{j}": 1.0 for j in range(30)})))
    db.execute("COMMIT")
    logged = set(range(n // 100))  # the MLflow view's: every iteration
    calls = {"rung_stats (counts: after every result)": lambda: led.rung_stats(median=False),
             "rung_stats (medians: now and then)": led.rung_stats, "n_trials": lambda: led.n_trials(True),
             "trials('candidate')": lambda: led.trials("candidate"), "any_running": lambda: led.any_running(n // 100),
             "finished_keys (new events)": lambda: led.finished_keys(n - 5), "trial": lambda: led.trial("d000005"),
             "next_step": led.next_step, "iterations (all logged)": lambda: led.iterations(skip=logged),
             "per iteration: measurements": lambda: led.measurements(ok_only=True),
             "per iteration: outcomes": led.outcomes, "per iteration: ok_targets": led.ok_targets,
             # what the driver's snapshot and the view's champion read instead: the batch changed since
             "per iteration, changed since: ids": lambda: led.changed_since(n - 100),
             "per iteration, changed since: measurements": lambda: led.measurements(ok_only=True,
                                                                                    after_event=n - 100),
             "per iteration, changed since: outcomes": lambda: led.outcomes(n - 100),
             "per iteration, changed since: ok_targets": lambda: led.ok_targets(n - 100)}
    out = {k: 1000 * timed(f, 20) for k, f in calls.items()}
    led.close()
    return out


def model_steps(n: int, tmp: Path) -> dict[str, float]:
    """CPU seconds of saving, hashing and MLflow-logging an rf campaign model trained on n measurements."""
    import mlflow
    from campaign_scale import CheapOracle

    from porelab.active_learning.campaign.model import CampaignModel
    from porelab.active_learning.campaign.model_cache import sha256_dir
    from porelab.active_learning.campaign.study import Goal
    from porelab.sim.design import Conditions, Design
    from porelab.surrogate.serving import log_model

    rng, oracle, ms = random.Random(0), CheapOracle(), {}
    cond = Conditions(electrolyte={"K+": 1.0, "Cl-": 1.0}, fields_V_per_nm=[1.0, -1.0])
    while len(ms) < n:
        d = Design(layers=[rng.choice(["COO-", "NH3+", "OH", "none"]) for _ in range(rng.randint(1, 4))],
                   spacing_nm=round(rng.uniform(0.3, 0.7), 4), groups_per_rim=rng.randint(1, 8))
        m = oracle(d, cond, None)
        ms[m.design_id] = m
    model = CampaignModel("rf", Goal(objective="icr"), 0, n_estimators=50)
    out = {"fit (planning)": timed(lambda: model.fit(list(ms.values())))}
    d = tmp / f"model-{n}"
    out["save"] = timed(lambda: model.save(d, keep=True))
    out["sha256 of its directory"] = timed(lambda: sha256_dir(d))
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow-{n}.db")
    with mlflow.start_run():
        log_model(d, name="warm-up")  # imports and MLflow's first-use costs
        out["log to MLflow"] = timed(lambda: log_model(d, name="surrogate"))
    return out


def mlflow_runs(n: int, tmp: Path) -> list[tuple[int, float]]:
    """(runs so far, ms CPU per simulation run over the last 500) as one SQLite store fills."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    c = MlflowClient(f"sqlite:///{tmp}/runs.db")
    eid = c.create_experiment("x")
    parent = c.create_run(eid).info.run_id
    out, t0 = [], time.process_time()
    for i in range(n):
        rid = c.create_run(eid, run_name=f"sim {i}", tags={
            "mlflow.parentRunId": parent, "porelab.kind": "simulation", "porelab.design_id": f"d{i:06d}",
            "porelab.status": "completed", "porelab.round": str(i // 100)}).info.run_id
        ts = int(time.time() * 1000)
        c.log_batch(rid, metrics=[Metric(f"m{k}", float(i + k), ts, 0) for k in range(35)],
                    params=[Param(f"p{k}", str(i * k)) for k in range(15)])
        c.set_terminated(rid, "FINISHED")
        if (i + 1) % 500 == 0:
            t = time.process_time()
            out.append((i + 1, 1000 * (t - t0) / 500))
            t0 = t
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[1000, 10000])
    ap.add_argument("--mlflow-runs", type=int, default=3000)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "campaign_scale_parts.txt")
    args = ap.parse_args()
    from porelab.surrogate.mlflow_quiet import quiet_mlflow

    a, b = args.sizes
    lines = [f"# {time.strftime('%Y-%m-%d')}: nice -n 10 .venv/bin/python benchmarks/campaign_scale_parts.py "
             f"--sizes {a} {b} --mlflow-runs {args.mlflow_runs}", ""]
    with tempfile.TemporaryDirectory() as t, quiet_mlflow():
        tmp = Path(t)
        ra, rb = ledger_reads(a, tmp), ledger_reads(b, tmp)
        lines += [f"{'ledger read, ms per call':44s} {a:>9d} {b:>9d}  ratio"]
        lines += [f"{k:44s} {ra[k]:9.3f} {rb[k]:9.3f} {rb[k] / ra[k]:6.1f}" for k in ra]
        ma, mb = model_steps(a, tmp), model_steps(b, tmp)
        lines += ["", f"{'rf model, CPU s':44s} {a:>9d} {b:>9d}  ratio"]
        lines += [f"{k:44s} {ma[k]:9.3f} {mb[k]:9.3f} {mb[k] / ma[k]:6.1f}" for k in ma]
        lines += ["", "MLflow, ms CPU per simulation run (per 500, as the store fills)"]
        lines += [f"{k:6d} runs {v:6.1f}" for k, v in mlflow_runs(args.mlflow_runs, tmp)]
    print("\n".join(lines))
    args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
