"""What the surrogate learns from the tiny-preset MD measurements that exist (and what it cannot).

Reads every measurement.json with fidelity "md" under the given directories (default: benchmarks/results),
keeps those with a production run of at least MIN_TIME_NS, and reports, per design and field: measured flux
and interval per species (censored when the interval contains zero), and the predictions of
  (a) an ensemble trained on the MD measurements alone (all of them: how well it fits, whether censored
      labels stay inside their bounds),
  (b) the same, leaving each design out in turn (the only honest test with so few designs),
  (c) the continuum-trained ensemble of surrogate_accuracy.py asked at fidelity "continuum" (the continuum
      twin's answer) -- it has never seen an MD label.
Writes benchmarks/results/surrogate_md.json.
Run: .venv/bin/python benchmarks/surrogate_md.py [DIR ...]
"""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import numpy as np

from porelab.sim.measurement import Measurement
from porelab.surrogate.dataset import Samples, find_measurements
from porelab.surrogate.ensemble import DeepEnsemble
from porelab.surrogate.store import MODEL_FILE, load_model
from porelab.surrogate.targets import SPECIES_NAMES

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "runs" / "surrogate_bench" / "gnn_model"
OUT = ROOT / "benchmarks" / "results" / "surrogate_md.json"
MIN_TIME_NS = 0.05
MD_MODEL = {"max_epochs": 300, "patience": 300, "val_fraction": 0.0, "batch_designs": 1, "progress": False,
            "seed": 0}


def load_md(dirs: list[Path]) -> list[Measurement]:
    seen, out = set(), []
    for d in dirs:
        for p in find_measurements(d):
            m = Measurement.load(p)
            if m.fidelity == "md" and m.status == "ok" and m.design_id not in seen and \
                    min(f.time_ns for f in m.fields) >= MIN_TIME_NS:
                seen.add(m.design_id)
                out.append(m)
    return out


def table(s: Samples, preds: dict) -> list[dict]:
    t = s.transform
    rows = []
    for i in range(len(s)):
        for j in np.flatnonzero(s.mask[i]):
            r = {"design": "/".join(s.designs[s.design_index[i]].layers), "field_V_per_nm": float(s.field[i]),
                 "species": SPECIES_NAMES[j], "flux_per_ns": float(t.inverse(s.y[i, j])),
                 "flux_95ci_per_ns": [float(t.inverse(s.lo[i, j])), float(t.inverse(s.hi[i, j]))],
                 "censored": bool(s.censored[i, j])}
            for name, p in preds.items():
                lo, hi = p.mean[i, j] - 1.96 * p.std[i, j], p.mean[i, j] + 1.96 * p.std[i, j]
                r[name] = {"flux_per_ns": float(t.inverse(p.mean[i, j])),
                           "flux_95pi_per_ns": [float(t.inverse(lo)), float(t.inverse(hi))],
                           "inside_measured_interval": bool(s.lo[i, j] <= p.mean[i, j] <= s.hi[i, j])}
            rows.append(r)
    return rows


def main(dirs: list[Path]) -> None:
    ms = load_md(dirs)
    print(f"{len(ms)} MD measurements with >= {MIN_TIME_NS} ns per field: "
          + ", ".join("/".join(m.design.layers) + f" ({m.design.sheet_nm} nm sheet)" for m in ms))
    if not ms:
        return
    s = Samples.from_measurements(ms)
    preds = {"md_fit_all": DeepEnsemble(**MD_MODEL).fit(s).predict(s)}
    if s.n_designs >= 2:  # leave one design out
        loo = {k: np.zeros_like(preds["md_fit_all"].mean) for k in ("mean", "std")}
        for k in range(s.n_designs):
            rest = [j for j in range(s.n_designs) if j != k]
            p = DeepEnsemble(**MD_MODEL).fit(s.subset_designs(rest)).predict(s.subset_designs([k]))
            rows = np.flatnonzero(s.design_index == k)
            loo["mean"][rows], loo["std"][rows] = p.mean, p.std
        p = preds["md_fit_all"]
        preds["md_leave_one_design_out"] = type(p)(loo["mean"], loo["std"], 0 * loo["std"], loo["mean"][None],
                                                   loo["std"][None], p.present, p.transform)
    if (MODEL / MODEL_FILE).exists():
        twin_model = load_model(MODEL).model
        conds = [m.conditions.with_fields([f.field_V_per_nm for f in m.fields]) for m in ms]
        twin = Samples.from_queries([m.design for m in ms], conds, "continuum", twin_model.settings,
                                    twin_model.transform)
        preds["continuum_model"] = twin_model.predict(twin)
    rows = table(s, preds)
    for r in rows:
        print(json.dumps(r))
    OUT.write_text(json.dumps({"date": datetime.date.today().isoformat(), "n_md_designs": len(ms),
                               "sources": [str(d) for d in dirs], "rows": rows}, indent=1))


if __name__ == "__main__":
    main([Path(a) for a in sys.argv[1:]] or [ROOT / "benchmarks" / "results"])
