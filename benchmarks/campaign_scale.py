"""How a campaign's own overhead grows with its length: campaigns of 10^2, 10^3 and 10^4 trials with a cheap user
oracle (an analytic design -> currents map, well under a millisecond per call) and the rf model, the MLflow view on.

Per campaign: the driver process's CPU time (time.process_time: what it costs whatever else the machine runs; the
simulations run in worker processes and are not in it) split into planning (iteration.plan: the model's fit and
scoring of the pool, CPU seconds inside it) and the rest, the overhead (dispatch, ingest, ledger, plots, the MLflow
view), per trial; wall time beside it. The overhead per trial should stay flat from 10^3 to 10^4: each stored
measurement is parsed once, the view logs only what is new and nothing reads the whole ledger per result.

Run: nice -n 10 .venv/bin/python benchmarks/campaign_scale.py [--sizes 100 1000 10000] [--batch 100]
Writes benchmarks/results/campaign_scale.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import platform
import sys
import tempfile
import time
from pathlib import Path

import yaml

from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult
from porelab.sim.observables import icr_results

ROOT = Path(__file__).resolve().parents[1]
CHARGE = {"COO-": -1.0, "SO3-": -1.0, "NH3+": 1.0, "OH": 0.0, "none": 0.0}


class CheapOracle:
    """Currents from a closed form of the design (no physics claimed: only its cost, microseconds, matters here):
    I(+E) = E (1 + g q), I(-E) = -E (1 - g q) / 2 with q the rims' mean charge gradient and g groups per rim."""

    fidelity = "continuum"

    def __call__(self, design: Design, conditions: Conditions, run_dir: Path) -> Measurement:
        q = [CHARGE.get(x, 0.0) for x in design.layers]
        grad = (q[0] - q[-1]) / len(q) if q else 0.0
        fields = []
        for e in conditions.fields_V_per_nm:
            i = e * (1.0 + 0.1 * design.groups_per_rim * grad) if e > 0 else \
                e * (1.0 - 0.1 * design.groups_per_rim * grad) / 2.0
            i *= 1.0 + 0.2 * math.sin(7.0 * design.spacing_nm)
            j = i / E_PER_NS_TO_NA
            sp = SpeciesResult(flux_per_ns=j, flux_ci_per_ns=(0.9 * j, 1.1 * j) if j > 0 else (1.1 * j, 0.9 * j))
            fields.append(FieldResult(field_V_per_nm=e, time_ns=0.0, current_nA=i,
                                      current_ci_nA=tuple(sorted((0.9 * i, 1.1 * i))), species={"K+": sp}))
        return Measurement(design_id=design_id(design, conditions), design=design, conditions=conditions,
                           fidelity="continuum", fields=fields, icr=icr_results(fields), oracle={})


def study(n: int, batch: int) -> dict:
    return {
        "name": f"scale-{n}", "seed": 0, "preset": "tiny",
        "base": {"conditions": {"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [1.0, -1.0]}},
        "space": {"layers": {"sequence": ["COO-", "NH3+", "OH", "none"], "length": [1, 4]},
                  "groups_per_rim": {"low": 1, "high": 8, "integer": True},
                  "spacing_nm": {"low": 0.3, "high": 0.7}},
        "oracle": {"kind": "user", "path": f"{Path(__file__).resolve()}:CheapOracle"},
        "goal": {"objective": "icr"},
        "budget": {"simulations": n, "initial": min(batch, n), "batch": batch},
        "executor": {"kind": "local", "workers": 2},
        "model": {"kind": "rf", "params": {"n_estimators": 50}},
        "acquisition": {"kind": "ucb", "pool_size": 2 * n + 1024},  # mirror-symmetric designs leave ~40 %
    }


def run(n: int, batch: int, work: Path) -> dict:
    from mlflow.tracking import MlflowClient

    from porelab.active_learning.campaign import driver, model_cache
    from porelab.active_learning.campaign.directory import LEDGER_FILE, create
    from porelab.active_learning.campaign.driver import Campaign
    from porelab.active_learning.campaign.ledger import Ledger
    from porelab.active_learning.campaign.study import load_study
    from porelab.active_learning.tracking import view as view_module
    from porelab.active_learning.tracking.view import MlflowView

    planning, iterating, model_io, tracking = [0.0], [0.0], [0.0], [0.0]
    plan, iterate, final = driver.plan, driver.Campaign._iterate, driver.Campaign._final_iteration
    save, log_model = model_cache.ModelCache.save, view_module.log_model
    client_calls = {k: getattr(MlflowClient, k) for k in ("create_run", "log_batch", "set_terminated")}

    def timed(fn, acc):  # fn, adding the CPU seconds spent inside it to acc[0]
        def wrapper(*args, **kw):
            t = time.process_time()
            try:
                return fn(*args, **kw)
            finally:
                acc[0] += time.process_time() - t
        return wrapper

    f = work / f"scale-{n}.yaml"
    f.write_text(yaml.safe_dump(study(n, batch), sort_keys=False))
    d = work / f"scale-{n}"
    create(load_study(f), d)
    t0, c0 = time.perf_counter(), time.process_time()
    driver.plan = timed(plan, planning)  # the model: fit and pool scoring
    driver.Campaign._iterate = timed(iterate, iterating)  # an iteration: plan, save, plots, its MLflow sync
    driver.Campaign._final_iteration = timed(final, iterating)
    model_cache.ModelCache.save = timed(save, model_io)  # the model's own O(n) costs beside its fit: saving it
    logging = [False]  # (training set included) and logging it to MLflow

    def model_log(*a, **kw):
        logging[0] = True
        try:
            return timed(log_model, model_io)(*a, **kw)
        finally:
            logging[0] = False

    def run_call(f):  # MLflow's own work on a run (a simulation's: one of each); in a model's log: counted there
        timed_f = timed(f, tracking)
        return lambda *a, **kw: f(*a, **kw) if logging[0] else timed_f(*a, **kw)

    view_module.log_model = model_log
    for k, f in client_calls.items():
        setattr(MlflowClient, k, run_call(f))
    try:
        summary = Campaign(d, log=lambda m: None, views=[MlflowView(d)]).run()
    finally:
        driver.plan, driver.Campaign._iterate, driver.Campaign._final_iteration = plan, iterate, final
        model_cache.ModelCache.save, view_module.log_model = save, log_model
        for k, f in client_calls.items():
            setattr(MlflowClient, k, f)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    led = Ledger(d / LEDGER_FILE)
    iterations, busy, done = len(led.iterations()) - 1, led.get("utilisation")["busy_s"], led.n_trials(True)
    runs_before = mlflow_runs(d)
    t = time.perf_counter()
    view = MlflowView(d)  # a fresh view (as after a restart) finds everything logged: it logs nothing again
    view.sync(led)
    view.close(led)
    resync = time.perf_counter() - t
    led.close()
    runs_after = mlflow_runs(d)
    assert runs_after == runs_before == 1 + (iterations + 1) + done, (runs_before, runs_after, iterations, done)
    return {"trials": done, "asked": n, "completed": summary["completed"], "iterations": iterations, "wall_s": wall,
            "driver_cpu_s": cpu, "planning_cpu_s": planning[0], "overhead_cpu_s": cpu - planning[0],
            "overhead_per_trial_ms": 1000 * (cpu - planning[0]) / max(done, 1),
            "per_iteration_overhead_s": (iterating[0] - planning[0]) / max(iterations, 1),
            "per_result_overhead_ms": 1000 * (cpu - iterating[0]) / max(done, 1),
            "model_io_per_iteration_s": model_io[0] / max(iterations, 1),
            "overhead_without_model_io_per_trial_ms": 1000 * (cpu - planning[0] - model_io[0]) / max(done, 1),
            "mlflow_runs_per_trial_ms": 1000 * tracking[0] / max(done, 1),
            "ours_per_trial_ms": 1000 * (cpu - planning[0] - model_io[0] - tracking[0]) / max(done, 1),
            "planning_per_iteration_s": planning[0] / max(iterations, 1), "oracle_busy_s": busy,
            "mlflow_runs": runs_after, "resync_s": resync}


def mlflow_runs(campaign: Path) -> int:
    """Runs in the campaign's MLflow experiment (its workspace's mlflow.db), all pages."""
    from mlflow.tracking import MlflowClient

    from porelab.surrogate.mlflow_store import workspace_uri

    client = MlflowClient(workspace_uri(campaign.parent))
    exp = client.get_experiment_by_name(campaign.name)
    n, token = 0, None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=5000, page_token=token)
        n += len(page)
        token = page.token
        if not token:
            return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--batch", type=int, default=100, help="picks per iteration (every size)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir=ROOT / "runs" if (ROOT / "runs").is_dir() else None) as tmp:
        for n in args.sizes:
            r = run(n, args.batch, Path(tmp))
            rows.append(r)
            print(f"{n:>6} trials: {r['wall_s']:8.1f} s wall, driver CPU {r['driver_cpu_s']:7.1f} s: planning "
                  f"{r['planning_cpu_s']:7.1f} s over {r['iterations']} iterations, overhead "
                  f"{r['overhead_per_trial_ms']:6.1f} ms CPU per trial", flush=True)
    command = "nice -n 10 .venv/bin/python benchmarks/campaign_scale.py " + " ".join(sys.argv[1:])
    meta = {"command": command.strip(), "date": datetime.date.today().isoformat(), "machine": platform.machine(),
            "cpus": 2, "python": platform.python_version()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "campaign_scale.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    lines = [f"# Campaign overhead against length ({meta['date']}, `{meta['command']}`)", "",
             "Driver CPU seconds (time.process_time); planning = model fit + pool scoring inside iteration.plan; "
             "overhead = the rest (dispatch, ingest, ledger, plots, MLflow view), split into per result (everything "
             "outside iterations: dispatch, ingest, progress line, the MLflow run of each simulation) and per "
             "iteration (saving and registering its model, its plots, its MLflow run); model save + log: saving "
             "each iteration's model (its training set included) and logging it to MLflow, O(trials) like its fit, "
             "and the overhead without them beside; MLflow runs: MLflow's own calls on runs (create_run, "
             "log_batch, set_terminated; one of each per simulation); ours: the overhead without the model's save + "
             "log and those calls. 2 local workers, rf model, "
             f"batch {args.batch}, pool = 2 x trials + 1024 drawn (the mirror-symmetric ~40 % left out); trials: "
             "those completed.", "",
             "| trials | iterations | wall s | driver CPU s | planning CPU s | planning s / iteration "
             "| overhead CPU s | overhead ms / trial | of which per result, ms | per iteration (not planning), s "
             "| model save + log s / iteration | overhead without them, ms / trial | MLflow runs, ms / trial "
             "| ours, ms / trial "
             "| oracle busy s | MLflow runs | re-sync s |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['trials']} | {r['iterations']} | {r['wall_s']:.0f} | {r['driver_cpu_s']:.1f} "
              f"| {r['planning_cpu_s']:.1f} | {r['planning_per_iteration_s']:.2f} | {r['overhead_cpu_s']:.1f} "
              f"| {r['overhead_per_trial_ms']:.1f} | {r['per_result_overhead_ms']:.1f} "
              f"| {r['per_iteration_overhead_s']:.2f} | {r['model_io_per_iteration_s']:.2f} "
              f"| {r['overhead_without_model_io_per_trial_ms']:.1f} | {r['mlflow_runs_per_trial_ms']:.1f} "
              f"| {r['ours_per_trial_ms']:.1f} | {r['oracle_busy_s']:.1f} | {r['mlflow_runs']} "
              f"| {r['resync_s']:.1f} |" for r in rows]
    lines += ["", "MLflow runs = 1 parent + one per iteration (initial design and final model included) + one per "
              "simulation, counted after the campaign and again after a fresh view re-synced it (re-sync s): "
              "nothing is logged twice."]
    (args.out / "campaign_scale.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
