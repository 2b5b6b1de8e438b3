"""Mirror symmetry of the GNN surrogate: turning a design upside down and reversing E must reverse every flux.

Violation on the held-out designs of surrogate_accuracy.py: for each sample (G, E) and its mirror (MG, -E),
|y(G, E) + y(MG, -E)| on the asinh scale (y = asinh(J / 0.01 ions/ns)), and |ln ICR(G) + ln ICR(MG)| at each |E|.
Models: "none" (trained on the designs as given: before), "augment" (every design also shown upside down in
training) and "exact" (the same network, predictions averaged with the mirror image: after). "augment" and
"exact" are one trained network (surrogate_accuracy.py's, reloaded when present) evaluated both ways.
Writes benchmarks/results/surrogate_symmetry.json.
Run: MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \\
     .venv/bin/python benchmarks/surrogate_symmetry.py
"""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from continuum_data import generate  # noqa: E402
from surrogate_accuracy import DATA, HOLDOUT, N_DESIGNS, SEED  # noqa: E402

from porelab.sim.design import make_conditions  # noqa: E402
from porelab.sim.measurement import Measurement  # noqa: E402
from porelab.surrogate.dataset import Samples  # noqa: E402
from porelab.surrogate.derived import derive  # noqa: E402
from porelab.surrogate.ensemble import DeepEnsemble  # noqa: E402
from porelab.surrogate.metrics import evaluate  # noqa: E402
from porelab.surrogate.store import MODEL_FILE, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "runs" / "surrogate_bench" / "gnn_model"
OUT = ROOT / "benchmarks" / "results" / "surrogate_symmetry.json"


def mirror_pairs(test: Samples) -> tuple[Samples, Samples]:
    """Held-out designs at their conditions, and their mirror images at the reversed fields (rows aligned)."""
    designs, mirrored, c1, c2 = [], [], [], []
    for g in range(len(test.electrolytes)):
        rows = np.flatnonzero(test.group == g)
        d = test.designs[test.design_index[rows[0]]]
        fields = [float(e) for e in test.field[rows]]
        base = {"electrolyte": test.electrolytes[g], "temperature_K": test.temperatures[g]}
        designs.append(d)
        mirrored.append(d.mirrored())
        c1.append(make_conditions({**base, "fields_V_per_nm": fields}))
        c2.append(make_conditions({**base, "fields_V_per_nm": [-e for e in fields]}))
    return Samples.from_queries(designs, c1), Samples.from_queries(mirrored, c2)


def violation(model: DeepEnsemble, q: Samples, qm: Samples) -> dict:
    a, b = model.predict(q), model.predict(qm)
    v = np.abs(a.mean + b.mean)[a.present]
    on, off, _ = q.icr_pairs()
    la = derive(a, q, on, off, ("log_icr",), n_draws=16)["log_icr"][0]
    lb = derive(b, qm, on, off, ("log_icr",), n_draws=16)["log_icr"][0]  # row i of qm: the mirror of q's i at -E
    # ln ICR(MG) = ln |I_MG(+E)| / |I_MG(-E)|: rows `off` of qm hold +E of the mirror, rows `on` hold -E
    li = np.abs(la - lb)  # la = ln I_G(+)/I_G(-); lb = ln I_MG(-)/I_MG(+) = -ln ICR(MG)
    return {"flux_violation_mean": float(v.mean()), "flux_violation_max": float(v.max()),
            "flux_violation_relative": float(v.mean() / np.abs(a.mean[a.present]).mean()),
            "log_icr_violation_mean": float(li.mean()), "log_icr_violation_max": float(li.max())}


def main() -> None:
    paths = generate(DATA, N_DESIGNS, seed=SEED)
    samples = Samples.from_measurements([Measurement.load(p) for p in paths])
    train, test = samples.split_designs(HOLDOUT, seed=SEED)
    q, qm = mirror_pairs(test)
    res = {}
    t0 = time.perf_counter()
    before = DeepEnsemble(symmetry="none", seed=SEED, progress=False).fit(train)
    res["none"] = {"train_wall_s": round(time.perf_counter() - t0, 1)}
    after = load_model(MODEL).model if (MODEL / MODEL_FILE).exists() else \
        DeepEnsemble(seed=SEED, progress=False).fit(train)
    for name, model in (("none", before), ("augment", after), ("exact", after)):
        model.set_params(symmetry=name)
        m = evaluate(test, model.predict(test))
        res[name] = {**res.get(name, {}), **violation(model, q, qm),
                     **{k: m[k] for k in ("flux_rmse", "flux_nll", "log_icr_r2", "log_icr_nll")}}
        print(json.dumps({"symmetry": name, **{k: round(v, 6) for k, v in res[name].items()}}), flush=True)
    OUT.write_text(json.dumps({"date": datetime.date.today().isoformat(), "n_test_designs": test.n_designs,
                               "load_average_1min": os.getloadavg()[0], "results": res}, indent=1))


if __name__ == "__main__":
    main()
