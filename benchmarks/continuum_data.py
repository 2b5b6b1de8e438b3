"""A varied set of continuum-oracle measurements for the surrogate benchmarks.

Design space: 1-8 layers; rim patterns iid, Janus-alternating or in two blocks of COO-/NH3+/OH/none; spacing
0.24-1.0 nm; ellipse/circle/hexagon/rectangle pores 0.88-2.27 nm wide; 2-8 groups per rim; graphene oxide or
h-BN; some laterally offset layers; seed (4 nm, 10 nm box) and tiny (2.5 nm, 5 nm box) cells; KCl or MgCl2 at
0.05-2 M; 280-340 K; |E| in FIELDS_ABS at both signs. Each design goes to OUT/<design_id>/measurement.json;
existing files are kept, so a second call only adds what is missing.
Run: .venv/bin/python benchmarks/continuum_data.py OUT N [SEED]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from porelab.sim.continuum import run_continuum
from porelab.sim.design import Design, DesignError, design_id, make_conditions, make_design

GROUPS = ["COO-", "NH3+", "OH", "none"]
FIELDS_ABS = [0.05, 0.1, 0.3, 0.6, 1.0, 2.0, 4.0]  # V/nm; the seed study's 0.3-4 plus two low fields


def random_layers(rng: np.random.Generator) -> list[str]:
    n = int(rng.integers(1, 9))
    kind = rng.random()
    if kind < 0.4:
        return [str(g) for g in rng.choice(GROUPS, n, p=[0.35, 0.35, 0.15, 0.15])]
    a, b = (str(g) for g in rng.choice(GROUPS, 2, replace=False, p=[0.4, 0.4, 0.1, 0.1]))
    if kind < 0.7:
        return [a if k % 2 == 0 else b for k in range(n)]
    cut = int(rng.integers(0, n + 1))
    return [a] * cut + [b] * (n - cut)


def random_design(rng: np.random.Generator) -> Design:
    """A buildable random design (retries until the builder accepts it)."""
    from porelab.sim.builder import build

    while True:
        preset = "tiny" if rng.random() < 0.25 else "seed"
        shape = str(rng.choice(["ellipse", "circle", "hexagon", "rectangle"], p=[0.4, 0.2, 0.2, 0.2]))
        w = float(np.round(rng.uniform(0.88, 2.27 if preset == "seed" else 1.6), 3))
        h = w if shape in ("circle", "hexagon") else float(np.round(w * rng.uniform(0.75, 1.0), 3))
        layers = random_layers(rng)
        spec = {"layers": layers, "spacing_nm": float(np.round(rng.uniform(0.24, 1.0), 3)),
                "pore": {"shape": shape, "width_nm": w, "height_nm": h},
                "groups_per_rim": int(rng.integers(2, 9)),
                "material": "hbn" if rng.random() < 0.15 else "graphene_oxide"}
        if rng.random() < 0.15:
            spec["offsets_nm"] = [[float(np.round(rng.uniform(-0.15, 0.15), 3)), 0.0] for _ in layers]
        try:
            d = make_design(spec, preset)
            build(d)
            return d
        except DesignError:
            continue


def random_conditions(rng: np.random.Generator):
    c = float(np.round(np.exp(rng.uniform(np.log(0.05), np.log(2.0))), 4))
    el = {"K+": c, "Cl-": c} if rng.random() < 0.5 else {"Mg2+": c, "Cl-": 2 * c}
    fields = [s * e for e in FIELDS_ABS for s in (1.0, -1.0)]
    return make_conditions({"electrolyte": el, "fields_V_per_nm": fields,
                            "temperature_K": float(np.round(rng.uniform(280, 340), 1))})


def generate(out: str | Path, n: int, seed: int = 0, verbose: bool = True) -> list[Path]:
    """n continuum measurements under out/ (deterministic in seed); returns their paths."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    paths, t0, n_new, n_failed = [], time.perf_counter(), 0, 0
    while len(paths) < n:
        d, c = random_design(rng), random_conditions(rng)
        path = out / design_id(d, c) / "measurement.json"
        if not path.exists():
            m = run_continuum(d, c)
            if m.status != "ok":
                n_failed += 1
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            m.save(path)
            n_new += 1
        paths.append(path)
    if verbose:
        print(f"{n} measurements in {out} ({n_new} new, {n_failed} solver failures skipped) "
              f"in {time.perf_counter() - t0:.1f} s")
    return paths


if __name__ == "__main__":
    generate(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
