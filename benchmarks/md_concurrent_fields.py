"""Wall time of one design's MD at +E and -E: the fields stepped one after another on all the run's CPU threads
(`concurrent_fields: false`) vs at once, each on its share of them (the default, `sim.engine.Engine.split`), side
by side in one run, alternating to share machine noise.

The same design (tiny preset, COO-/NH3+, 1.0 M KCl, +-2 V/nm, 4 fs), both from one equilibrated state, --ps of
production per field after no settle (settle_max_ps 0: the settle is stepped the same way as production).

    nice -n 0 .venv/bin/python benchmarks/md_concurrent_fields.py [--ps 10] [--repeats 2] [--threads 2]

Prints one JSON line per run and a summary (ps of production per wall second each way, and their ratio); --out
writes them as JSON (default benchmarks/results/md_concurrent_fields.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import openmm

from porelab.sim.design import make_conditions, make_design
from porelab.sim.protocol import MDRun, MDSettings, run_md


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ps", type=float, default=10.0, help="production per field, ps")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="the run's CPU threads")
    ap.add_argument("--out", default="benchmarks/results/md_concurrent_fields.json")
    args = ap.parse_args()

    design = make_design({"layers": ["COO-", "NH3+"]}, "tiny")
    cond = make_conditions({"fields_V_per_nm": [2.0, -2.0]})
    common = dict(production_ps=args.ps, equil_ps=2.0, settle_max_ps=0.0, timestep_fs=4.0, seed=7, platform="CPU",
                  cpu_threads=args.threads)
    work = Path(tempfile.mkdtemp(prefix="md_concurrent_"))
    eq = MDRun(design, cond, work / "eq", MDSettings(**common), progress=False)
    eq._claim_directory()
    eq._prepare()
    eq._equilibrate()

    rows = []
    for r in range(args.repeats):
        for concurrent in (False, True):
            out = work / f"r{r}-{'together' if concurrent else 'apart'}"
            (out / "state").mkdir(parents=True)
            shutil.copy(work / "eq" / "state" / "equilibrated.xml", out / "state")
            t = time.perf_counter()
            m = run_md(design, cond, out, MDSettings(concurrent_fields=concurrent, **common), progress=False)
            wall = time.perf_counter() - t
            row = {"repeat": r, "fields_at_once": m.provenance["fields_at_once"],
                   "threads_per_field": m.provenance["threads_per_field"], "wall_s": round(wall, 1),
                   "ps_per_wall_s": round(2 * args.ps / wall, 3), "n_atoms": m.provenance["n_atoms"]}
            rows.append(row)
            print(json.dumps(row), flush=True)
    rate = {k: statistics.median(x["ps_per_wall_s"] for x in rows if x["fields_at_once"] == k) for k in (1, 2)}
    summary = {"summary": "ps of production per wall second, both fields of one design", "preset": "tiny",
               "platform": "CPU", "threads": args.threads, "timestep_fs": 4.0, "ps_per_field": args.ps,
               "apart_median": rate[1], "together_median": rate[2], "together_over_apart": round(rate[2] / rate[1], 3),
               "openmm": openmm.__version__,
               "command": f"benchmarks/md_concurrent_fields.py --ps {args.ps:g} --repeats {args.repeats} "
                          f"--threads {args.threads}"}
    print(json.dumps(summary))
    Path(args.out).write_text(json.dumps({"runs": rows, **summary}, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
