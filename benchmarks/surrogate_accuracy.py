"""Surrogate accuracy on held-out designs: GNN deep ensemble vs Gaussian-process and random-forest baselines.

Data: N_DESIGNS continuum measurements from benchmarks/continuum_data.py (1-8 layers, varied spacing, pores, rim
patterns, KCl and MgCl2 at 0.05-2 M, |E| = 0.05-4 V/nm at both signs). HOLDOUT of the designs (whole designs) are
held out; each model holds out a further 15 % of its training designs for early stopping and calibration.
Prints one JSON line per model (R² of ln ICR, RMSE, NLL, 95 % coverage, ...) and writes
benchmarks/results/surrogate_accuracy.json, _parity.png and _calibration.png. The GNN is saved to
runs/surrogate_bench/gnn_model for benchmarks/surrogate_speed.py.
Run: MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \\
     .venv/bin/python benchmarks/surrogate_accuracy.py
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from continuum_data import generate  # noqa: E402

from porelab.sim.measurement import Measurement  # noqa: E402
from porelab.surrogate.baselines import GPBaseline, RFBaseline  # noqa: E402
from porelab.surrogate.dataset import Samples  # noqa: E402
from porelab.surrogate.ensemble import DeepEnsemble  # noqa: E402
from porelab.surrogate.metrics import calibration_plot, evaluate, flux_arrays, icr_arrays  # noqa: E402
from porelab.surrogate.store import save_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "runs" / "surrogate_bench" / "data"
OUT = ROOT / "benchmarks" / "results" / "surrogate_accuracy"
N_DESIGNS, HOLDOUT, SEED = 400, 0.2, 0
KEYS = ("log_icr_r2", "log_icr_rmse", "log_icr_nll", "log_icr_coverage_95", "flux_r2", "flux_rmse", "flux_nll",
        "flux_coverage_68", "flux_coverage_95", "flux_spearman", "log_icr_spearman", "log_icr_n", "flux_n")


def models() -> dict:
    return {"gnn_ensemble": DeepEnsemble(seed=SEED, progress=False), "random_forest": RFBaseline(seed=SEED),
            "gaussian_process": GPBaseline(seed=SEED)}


def main() -> None:
    paths = generate(DATA, N_DESIGNS, seed=SEED)
    ms = [Measurement.load(p) for p in paths]
    samples = Samples.from_measurements(ms)
    train, test = samples.split_designs(HOLDOUT, seed=SEED)
    print(f"{samples.n_designs} designs, {len(samples)} samples; training on {train.n_designs} designs, "
          f"testing on {test.n_designs} held-out designs; load average {os.getloadavg()[0]:.1f}", flush=True)
    rows, curves, parity = [], {}, {}
    for name, model in models().items():
        t0, c0 = time.perf_counter(), time.process_time()
        model.fit(train)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        pred = model.predict(test)
        m = evaluate(test, pred)
        row = {"model": name, **{k: m[k] for k in KEYS}, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
               "n_train_designs": train.n_designs, "n_test_designs": test.n_designs}
        if isinstance(model, DeepEnsemble):
            row["epochs"] = model.n_epochs_
            seen = set(train.designs)
            save_model(ROOT / "runs" / "surrogate_bench" / "gnn_model", model, [m for m in ms if m.design in seen],
                       provenance={"created_by": "benchmarks/surrogate_accuracy.py"})
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        rows.append(row)
        flux, icr = flux_arrays(test, pred), icr_arrays(test, pred)
        parity[name] = (flux, icr)
        curves[f"{name} flux"] = flux
        curves[f"{name} ln ICR"] = icr
    gnn = rows[0]
    goals = {"gnn_beats_baselines_on_flux_nll": all(gnn["flux_nll"] < r["flux_nll"] for r in rows[1:]),
             "gnn_beats_baselines_on_log_icr_nll": all(gnn["log_icr_nll"] < r["log_icr_nll"] for r in rows[1:]),
             "gnn_log_icr_r2_at_least_0.9": gnn["log_icr_r2"] >= 0.9,
             "gnn_flux_coverage_95_in_0.90_0.98": 0.90 <= gnn["flux_coverage_95"] <= 0.98,
             "gnn_log_icr_coverage_95_in_0.90_0.98": 0.90 <= gnn["log_icr_coverage_95"] <= 0.98}
    print(json.dumps({"goals": goals}))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps({
        "date": datetime.date.today().isoformat(), "n_designs": samples.n_designs, "n_samples": len(samples),
        "holdout_fraction": HOLDOUT, "seed": SEED, "load_average_1min": os.getloadavg()[0],
        "models": rows, "goals": goals,
        "params": {name: {k: v for k, v in m.get_params().items()} for name, m in models().items()}}, indent=1))
    _plots(parity, curves)


def _plots(parity: dict, curves: dict) -> None:
    from matplotlib.figure import Figure

    from porelab.surrogate.metrics import regression_metrics

    fig = Figure(figsize=(4 * len(parity), 8), dpi=110)
    axes = fig.subplots(2, len(parity), squeeze=False)
    for col, (name, (flux, icr)) in enumerate(parity.items()):
        for row, ((y, mu, sd), label) in enumerate(((flux, "asinh(J / 0.01 ions/ns)"), (icr, "ln ICR"))):
            ax = axes[row, col]
            ax.errorbar(y, mu, yerr=sd, fmt="o", ms=2, alpha=0.4, elinewidth=0.5)
            lo, hi = min(y.min(), mu.min()), max(y.max(), mu.max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
            r = regression_metrics(y, mu, sd)
            ax.set_title(f"{name}: R²={r['r2']:.3f} NLL={r['nll']:.2f} cov95={r['coverage_95']:.2f}", fontsize=8)
            ax.set_xlabel(f"measured {label}")
            ax.set_ylabel(f"predicted {label}")
    fig.tight_layout()
    fig.savefig(f"{OUT}_parity.png")
    calibration_plot(curves, f"{OUT}_calibration.png", "held-out designs: central-interval coverage")


if __name__ == "__main__":
    main()
