"""Continuum (PNP) oracle speed on one core: evaluations (design x field) per second.

Wall and CPU time are both printed: on a shared machine the CPU time is the fairer figure.
Each design is swept over 20 fields from -4 to 4 V/nm with simulate_continuum, which solves every field on two
grids (N and 2N nodes, for the numerical error) by continuation from equilibrium.
Layers are printed bottom to top as - (COO-), + (NH3+), o (OH), 0 (none).
Run: .venv/bin/python benchmarks/continuum_speed.py
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ[_var] = "1"

import time  # noqa: E402

import numpy as np  # noqa: E402

from porelab.sim.continuum import simulate_continuum  # noqa: E402
from porelab.sim.design import make_conditions, make_design  # noqa: E402

FIELDS = [float(e) for e in np.round(np.linspace(-4.0, 4.0, 20), 4)]
KCL = {"K+": 1.0, "Cl-": 1.0}
SYMBOL = {"COO-": "-", "NH3+": "+", "OH": "o", "none": "0"}
CASES = [  # (preset, design, electrolyte)
    ("seed", {"layers": ["COO-", "NH3+"]}, KCL),
    ("seed", {"layers": ["COO-"]}, KCL),
    ("seed", {"layers": ["COO-", "NH3+", "COO-"]}, KCL),
    ("seed", {"layers": ["COO-", "NH3+", "COO-", "NH3+"]}, KCL),
    ("seed", {"layers": ["COO-", "NH3+"] * 4, "spacing_nm": 0.6}, KCL),
    ("seed", {"layers": ["COO-", "NH3+"], "groups_per_rim": 8}, {"K+": 0.1, "Cl-": 0.1}),
    ("seed", {"layers": ["NH3+", "COO-"], "pore": {"shape": "circle", "width_nm": 0.9, "height_nm": 0.9}},
     KCL),
    ("tiny", {"layers": ["COO-", "NH3+"]}, KCL),
    ("tiny", {"layers": ["COO-", "none", "NH3+"]}, {"Na+": 0.5, "Cl-": 0.5}),
    ("tiny", {"layers": ["COO-", "NH3+"]}, {"Mg2+": 0.5, "SO4^2-": 0.5}),
]


def main() -> None:
    simulate_continuum(make_design(CASES[0][1], "seed"), make_conditions({"fields_V_per_nm": FIELDS}))  # warm
    times, cpu = [], []
    print(f"{'preset':6} {'layers':8} {'groups':>6} {'electrolyte (M)':24} {'nodes':>8} {'newton':>6} "
          f"{'sweep s':>8}")
    for preset, spec, electrolyte in CASES:
        design = make_design(spec, preset)
        cond = make_conditions({"electrolyte": electrolyte, "fields_V_per_nm": FIELDS})
        t0, c0 = time.perf_counter(), time.process_time()
        m = simulate_continuum(design, cond)
        dt = time.perf_counter() - t0
        times.append(dt)
        cpu.append(time.process_time() - c0)
        nodes = "/".join(str(n) for n in m.provenance["grid_nodes"])
        layers = "".join(SYMBOL[g] for g in design.layers)
        salt = " ".join(f"{k}:{v:g}" for k, v in electrolyte.items())
        print(f"{preset:6} {layers:8} {design.groups_per_rim:6d} {salt:24} {nodes:>8} "
              f"{m.provenance['solver']['newton_iterations']:6d} {dt:8.3f}")
    n_eval = len(CASES) * len(FIELDS)
    print(f"\n{len(CASES)} designs x {len(FIELDS)} fields = {n_eval} evaluations in {sum(times):.2f} s wall "
          f"({sum(cpu):.2f} s CPU) on one core: {n_eval / sum(times):.0f} evaluations/s wall, "
          f"{n_eval / sum(cpu):.0f} per CPU-second")
    print(f"20-field sweep: median {np.median(times):.3f} s, max {max(times):.3f} s wall "
          f"(median {np.median(cpu):.3f} s CPU); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
