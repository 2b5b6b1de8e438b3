"""ns/day of porelab's production phase (transport reporter, trajectory buffer, StateDataReporter log,
checkpoints, health checks, the estimators at the end)
vs the same System stepped bare by OpenMM, side by side in one run, alternating to share machine noise.

    python benchmarks/md_overhead.py [--preset tiny] [--ps 20] [--repeats 3] [--timestep-fs 4]

Prints one JSON line per repeat and a summary line with the ratio porelab/bare (goal >= 0.95).
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
from porelab.sim.protocol import MDRun, MDSettings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--ps", type=float, default=20.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timestep-fs", type=float, default=4.0)
    ap.add_argument("--platform", default=None)
    args = ap.parse_args()

    design = make_design({"layers": ["COO-", "NH3+", "COO-"]}, args.preset)
    field = 2.0
    cond = make_conditions({"fields_V_per_nm": [field]})
    work = Path(tempfile.mkdtemp(prefix="md_overhead_"))
    settings = MDSettings(production_ps=args.ps, equil_ps=2.0, settle_max_ps=0.0, timestep_fs=args.timestep_fs,
                          checkpoint_ps=min(10.0, args.ps / 2), platform=args.platform)
    run = MDRun(design, cond, work / "run", settings, progress=False)
    run._claim_directory()
    run._prepare()
    equilibrated = run._equilibrate()
    steps = round(args.ps * 1000 / args.timestep_fs)
    platform = run.platform.getName()

    def bare() -> float:
        sim = run.engine.simulation(cond.temperature_K, args.timestep_fs, settings.seed + 1)
        sim.context.setState(openmm.XmlSerializer.deserialize(equilibrated))
        sim.context.setParameter("Ez", field)
        sim.step(10)  # warm-up, as porelab's first chunk also pays context set-up outside the timing
        t = time.perf_counter()
        sim.step(steps)
        sim.context.getState(getEnergy=True)  # wait for the platform to finish
        return time.perf_counter() - t

    def porelab() -> float:
        shutil.rmtree(run.out / "state" / f"E{field:+.4g}", ignore_errors=True)

        class Bar:  # the progress bar's interface, silent
            n = 0.0

            def update(self, x):
                self.n += x

            def refresh(self):
                pass

            def set_postfix_str(self, s):
                pass

            def write(self, s):
                print(s)

        t = time.perf_counter()
        run._production(field).advance(args.ps, equilibrated, Bar())
        return time.perf_counter() - t

    ratios = []
    for r in range(args.repeats):
        tb = bare()
        tp = porelab()
        nsday = lambda sec: steps * args.timestep_fs * 1e-6 / sec * 86400  # noqa: E731
        ratios.append(tb / tp)
        print(json.dumps({"repeat": r, "platform": platform, "n_atoms": run.ss.system.getNumParticles(),
                          "steps": steps, "bare_ns_per_day": round(nsday(tb), 2),
                          "porelab_ns_per_day": round(nsday(tp), 2), "ratio": round(tb / tp, 4)}))
    print(json.dumps({"summary": "porelab production / bare OpenMM", "preset": args.preset,
                      "platform": platform, "timestep_fs": args.timestep_fs, "ps_per_run": args.ps,
                      "ratio_median": round(statistics.median(ratios), 4), "ratio_min": round(min(ratios), 4),
                      "ratio_max": round(max(ratios), 4), "openmm": openmm.__version__}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
