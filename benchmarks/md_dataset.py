"""A small tiny-preset MD dataset: designs drawn from a space of 1-4 sheet stacks, simulated at +-|E| with
interval-driven length, for held-out tests of the surrogate (fidelity models, prospective R^2 and coverage).

Designs: the first `--n` non-symmetric designs of a scrambled-Sobol sample (seeded) of the space below (ICR = 1
is known for symmetric ones), on the tiny preset (2.5 nm sheets, 5 nm box), 1.0 M KCl. Each runs in its own
process with one OpenMM thread (`--workers` at once), `until: decisive` in chunks of `--chunk-ps` up to
`--max-ps` per field. Output: `--out/<design_id>/measurement.json` (committed; trajectories stay in `--runs`) and
`--out/index.json` (design, ICR with its interval, run length, stop reason, CPU seconds, per design).

Run: .venv/bin/python benchmarks/md_dataset.py [--n 20] [--field 2] [--max-ps 40] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from porelab.active_learning.campaign.space import DesignSpace, Range, Sequence
from porelab.sim.md_settings import MDSettings
from porelab.sim.protocol import run_md

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "layers": Sequence(sequence=["COO-", "NH3+", "OH", "none"], length=(2, 4)),
    "spacing_nm": Range(low=0.3, high=0.6),
    "groups_per_rim": Range(low=2, high=6, integer=True),
}


def designs(n: int, field: float, seed: int):
    space = DesignSpace(SPACE, {}, {"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [field, -field]},
                        "tiny")
    pool = [c for c in space.sample(8 * n, seed) if not c.design.is_symmetric()]
    return pool[:n]


def simulate(cand, runs: Path, settings: MDSettings) -> dict:
    m = run_md(cand.design, cand.conditions, runs / cand.design_id, settings, progress=False)
    return {"design_id": cand.design_id, "json": m.to_json()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--field", type=float, default=2.0)
    ap.add_argument("--chunk-ps", type=float, default=20.0)
    ap.add_argument("--max-ps", type=float, default=40.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "md_dataset")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "md_dataset")
    args = ap.parse_args()
    settings = MDSettings(until="decisive", chunk_ps=args.chunk_ps, max_production_ps=args.max_ps, equil_ps=20.0,
                          timestep_fs=4.0, checkpoint_ps=args.chunk_ps, seed=args.seed, platform="CPU",
                          cpu_threads=1)
    cands = designs(args.n, args.field, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    index = []
    with ProcessPoolExecutor(args.workers) as ex:
        futures = [ex.submit(simulate, c, args.runs, settings) for c in cands]
        for k, fut in enumerate(as_completed(futures), 1):
            res = fut.result()
            d = args.out / res["design_id"]
            d.mkdir(exist_ok=True)
            (d / "measurement.json").write_text(res["json"])
            m = json.loads(res["json"])
            row = {"design_id": res["design_id"], "layers": m["design"]["layers"],
                   "spacing_nm": m["design"]["spacing_nm"], "groups_per_rim": m["design"]["groups_per_rim"],
                   "status": m["status"], "error": m["error"]}
            if m["status"] == "ok":
                r = m["icr"][0]
                row |= {"icr_displacement": r["icr_displacement"], "icr_displacement_ci": r["icr_displacement_ci"],
                        "icr_displacement_censored": r["icr_displacement_censored"],
                        "production_ps": m["run"]["production_ps"], "stopped": m["run"]["stopped"],
                        "cpu_s": m["run"]["cpu_s"]}
            index.append(row)
            print(f"[{k}/{len(cands)}] {row}", flush=True)
    index.sort(key=lambda r: r["design_id"])
    (args.out / "index.json").write_text(json.dumps({
        "command": "benchmarks/md_dataset.py " + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                                           if k not in ("out", "runs")),
        "md_settings": vars(settings), "designs": index}, indent=1, default=str))
    stale = {p.name for p in args.out.iterdir() if p.is_dir()} - {r["design_id"] for r in index}
    for name in stale:  # designs of an earlier, different draw
        shutil.rmtree(args.out / name)


if __name__ == "__main__":
    main()
