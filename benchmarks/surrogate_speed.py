"""Surrogate speed: graph building, inference (designs/s incl. graph building) and ensemble training time.

Parts (run all, or name some): graphs, inference, training.
- graphs: graphs/s on one core for seed-size designs (4 x 4 nm sheets) whose layers were built before (stacks of
  known layers: the builder's per-layer cache hits), with a new pore in every design (every layer cut afresh),
  and for a new condition of a featurised design.
- inference: designs/s predicting I(+E), I(-E) (hence ICR) for new designs, graph building included, at batch
  sizes 1 and 1024, with 1 and 2 threads; the model is runs/surrogate_bench/gnn_model (from
  surrogate_accuracy.py).
- training: wall and CPU time of DeepEnsemble().fit on 200 and 1000 designs of runs/surrogate_bench/data, and a
  warm-started refit after 20 new designs arrive (an active-learning round).
Wall and CPU seconds are both reported: the machine is shared, CPU time is the fairer figure.
Writes benchmarks/results/surrogate_speed.json (merged with earlier parts).
Run: MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \\
     .venv/bin/python benchmarks/surrogate_speed.py [graphs] [inference] [training]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # numpy on one core
    os.environ.setdefault(_var, "1")

import datetime  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import porelab.sim.builder as sim_builder  # noqa: E402
import porelab.surrogate.graph as surrogate_graph  # noqa: E402
from porelab.sim.design import make_conditions, make_design  # noqa: E402
from porelab.sim.measurement import Measurement  # noqa: E402
from porelab.surrogate.dataset import Samples, find_measurements  # noqa: E402
from porelab.surrogate.derived import derive  # noqa: E402
from porelab.surrogate.ensemble import DeepEnsemble  # noqa: E402
from porelab.surrogate.graph import featurise_design, to_data  # noqa: E402
from porelab.surrogate.store import MODEL_FILE, load_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "runs" / "surrogate_bench" / "data"
MODEL = ROOT / "runs" / "surrogate_bench" / "gnn_model"
OUT = ROOT / "benchmarks" / "results" / "surrogate_speed.json"
GROUPS = ["COO-", "NH3+", "OH", "none"]


def _clock():
    return time.perf_counter(), time.process_time()


def _since(t):
    return time.perf_counter() - t[0], time.process_time() - t[1]


def seed_designs(n: int, rng: np.random.Generator, new_pores: bool = False, min_layers: int = 1,
                 max_layers: int = 8):
    """Seed-preset designs with random stacks (min..max layers, spacing 0.24-1 nm); new_pores: random pore."""
    out = []
    for _ in range(n):
        n_layers = int(rng.integers(min_layers, max_layers + 1))
        spec = {"layers": [str(g) for g in rng.choice(GROUPS, n_layers)],
                "spacing_nm": float(np.round(rng.uniform(0.24, 1.0), 4))}
        if new_pores:
            w = float(np.round(rng.uniform(1.0, 2.2), 6))
            spec["pore"] = {"width_nm": w, "height_nm": float(np.round(w * rng.uniform(0.8, 1.0), 6))}
        out.append(make_design(spec, "seed"))
    return out


def clear_caches(builder: bool) -> None:
    surrogate_graph.clear_cache()
    if builder:
        sim_builder._cut.cache_clear()
        sim_builder._layer_block.cache_clear()


def bench_graphs() -> dict:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    res = {}
    two = {"min_layers": 2, "max_layers": 2}
    for label, kw, n in (("seed_2_layers_known_layers", two, 3000),
                         ("seed_1_8_layers_known_layers", {}, 2000),
                         ("seed_2_layers_new_pore_each", {**two, "new_pores": True}, 500)):
        designs = seed_designs(n, rng, **kw)
        clear_caches(builder=True)
        for d in seed_designs(50, np.random.default_rng(1), max_layers=2 if "2" in label else 8):
            featurise_design(d)  # warm the builder's layer cache (all four groups, seed pore)
        clear_caches(builder="new_pore" in label)  # keep the warm layer cache only for known layers
        t = _clock()
        graphs = [featurise_design(d) for d in designs]
        wall, cpu = _since(t)
        res[label] = {"graphs_per_s_wall": round(n / wall), "graphs_per_s_cpu": round(n / cpu), "n": n,
                      "mean_nodes": float(np.mean([g.x.shape[0] for g in graphs])),
                      "mean_edges": float(np.mean([g.edge_index.shape[1] for g in graphs]))}
    d = make_design({"layers": ["COO-", "NH3+"]}, "seed")
    cond = make_conditions({})
    featurise_design(d)
    fields = np.linspace(-4, 4, 5000)
    t = _clock()
    for e in fields:
        to_data(d, cond, float(e))
    wall, cpu = _since(t)
    res["seed_new_condition_cached_design_to_pyg_data"] = {"graphs_per_s_wall": round(len(fields) / wall),
                                                           "graphs_per_s_cpu": round(len(fields) / cpu)}
    return res


def bench_inference() -> dict:
    if (MODEL / MODEL_FILE).exists():
        model = load_model(MODEL).model
    else:  # no saved model: a quick one (speed does not depend on how well it is trained)
        files = find_measurements(DATA)[:50]
        model = DeepEnsemble(max_epochs=2, progress=False).fit(
            Samples.from_measurements([Measurement.load(p) for p in files]))
    cond = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [1.0, -1.0]})
    rng = np.random.default_rng(2)
    res = {}
    for threads in (1, 2):
        model.set_params(n_threads=threads)
        for batch, n_batches in ((1, 200), (1024, 3)):
            clear_caches(builder=False)
            designs = seed_designs(batch * n_batches, rng)
            t = _clock()
            for k in range(n_batches):
                q = Samples.from_queries(designs[k * batch:(k + 1) * batch], cond, "continuum", model.settings,
                                         model.transform)
                p = model.predict(q)
                on, off, _ = q.icr_pairs()
                derive(p, q, on, off, ("log_icr",), n_draws=64)
            wall, cpu = _since(t)
            res[f"batch_{batch}_threads_{threads}"] = {"designs_per_s_wall": round(len(designs) / wall, 1),
                                                       "designs_per_s_cpu": round(len(designs) / cpu, 1),
                                                       "n_designs": len(designs)}
            print(f"inference batch {batch} threads {threads}: {res[f'batch_{batch}_threads_{threads}']}",
                  flush=True)
    return res


def bench_training() -> dict:
    files = find_measurements(DATA)
    res = {}
    for n in (200, 1000):
        if len(files) < n:
            res[f"{n}_designs"] = f"only {len(files)} measurements in {DATA}"
            continue
        samples = Samples.from_measurements([Measurement.load(p) for p in files[:n]])
        model = DeepEnsemble(progress=False)
        t = _clock()
        model.fit(samples)
        wall, cpu = _since(t)
        res[f"{n}_designs"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "epochs": model.n_epochs_,
                               "wall_s_per_epoch": round(wall / model.n_epochs_, 2),
                               "load_average_1min": os.getloadavg()[0]}
        print(f"training {n}: {res[f'{n}_designs']}", flush=True)
        if n == 200:
            more = Samples.from_measurements([Measurement.load(p) for p in files[:220]])
            model.set_params(warm_start=True, max_epochs=40, patience=10)
            t = _clock()
            model.fit(more)
            wall, cpu = _since(t)
            res["warm_start_200_plus_20_designs"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                                                     "epochs": model.n_epochs_}
            print(f"warm start: {res['warm_start_200_plus_20_designs']}", flush=True)
    return res


def main(parts: list[str]) -> None:
    parts = parts or ["graphs", "inference", "training"]
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    bench = {"graphs": bench_graphs, "inference": bench_inference, "training": bench_training}
    for part in parts:
        res[part] = bench[part]()
        res[part]["date"] = datetime.date.today().isoformat()
        res[part]["load_average_1min_after"] = os.getloadavg()[0]
        print(json.dumps({part: res[part]}), flush=True)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
