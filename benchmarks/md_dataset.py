"""Grow the shared MD dataset (data/md): tiny-preset designs simulated at +-|E| with the honest protocol, one
small record per design, resumable and idempotent.

Designs, in a fixed order (so that a dataset grows the same way wherever it is resumed): the seed study's 1-3
Janus-layer pores, then the non-symmetric designs of a scrambled-Sobol sample (seeded) of stacks of 1-4 sheets
with rim groups COO-/NH3+/OH/none, spacing 0.3-0.6 nm and 2-6 groups per rim (mirror-symmetric stacks are left
out: their ICR is 1 by symmetry). Tiny preset, 1.0 M KCl, +-|E| (default 2 V/nm). Protocol: sim.protocol's
(equilibration and field-on settle until the polarisation is stationary, then a fixed production of --ps per field,
crossing counts with exact intervals; docs/physics.md §3). Each design runs in its own process with one OpenMM
thread (--workers at once); run it under `nice -n 19`.

data/md is a measurement store (porelab.sim.store): data/md/md-<key>/<design_id>/measurement.json (the
Measurement, in the orientation drawn; committed) beside the run's own files (trajectories and
checkpoints: git-ignored, so an interrupted design resumes from its checkpoints and a longer run extends it), plus
data/md/index.csv (one row per design: design, currents, ICR and charge crossed with intervals, settle lengths, CPU
seconds) and data/md/README.md (protocol, versions, CPU-hours). A design already stored is skipped. A campaign run
with PORELAB_STORE=data/md and the same MD settings reuses these answers; `porelab train data/md` trains on them.

Run: nice -n 19 .venv/bin/python benchmarks/md_dataset.py [--n 64] [--field 2] [--ps 100] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from porelab.active_learning.campaign.space import Candidate, DesignSpace, Range, Sequence, make_candidate
from porelab.base.files import atomic_write_text
from porelab.sim.md_settings import MDSettings, md_identity
from porelab.sim.measurement import Measurement
from porelab.sim.protocol import run_md
from porelab.sim.run_length import look_times
from porelab.sim.store import MeasurementStore

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "layers": Sequence(sequence=["COO-", "NH3+", "OH", "none"], length=(1, 4)),
    "spacing_nm": Range(low=0.3, high=0.6),
    "groups_per_rim": Range(low=2, high=6, integer=True),
}
ELECTROLYTE = {"K+": 1.0, "Cl-": 1.0}


def designs(n: int, field: float, seed: int) -> list[Candidate]:
    """The first n designs of the dataset's fixed order (module docstring)."""
    cond = {"electrolyte": ELECTROLYTE, "fields_V_per_nm": [field, -field]}
    janus = [make_candidate({"janus_layers": k}, {}, cond, "tiny") for k in (1, 2, 3)]
    space = DesignSpace(SPACE, {}, cond, "tiny")
    seen = {c.design_id for c in janus}
    out = list(janus)
    for c in space.sample(16 * n, seed):
        if len(out) >= n:
            break
        if not c.design.is_symmetric() and c.design_id not in seen:
            seen.add(c.design_id)
            out.append(c)
    return out[:n]


def settings_for(args) -> MDSettings:
    return MDSettings(production_ps=args.ps, equil_ps=20.0, timestep_fs=4.0, checkpoint_ps=20.0, seed=args.seed,
                      platform="CPU", cpu_threads=1)


def simulate(cand: Candidate, store: Path, settings: MDSettings) -> str:
    """Run one design in its store entry (sim.store.MeasurementStore.answer), store it; its Measurement JSON."""
    m, _ = MeasurementStore(store).answer(md_identity(settings), cand.design, cand.conditions,
                                          lambda d, c, entry: run_md(d, c, entry, settings, progress=False))
    return m.to_json()


def _iv(v, ci, censored: str = "") -> str:
    """`v [lo, hi]`, or `> lo` / `< hi` for a censored value (icr_censored)."""
    if v is None:
        return ""
    if censored == ">" or ci[1] is None:
        return f"> {ci[0]:.4g}"
    return f"< {ci[1]:.4g}" if censored == "<" else f"{v:.4g} [{ci[0]:.4g}, {ci[1]:.4g}]"


def index_row(m: Measurement) -> dict:
    """One CSV row: the design, and every number with its interval (nA, e, ps, s)."""
    d = m.design
    row = {"design_id": m.design_id, "layers": "/".join(d.layers), "spacing_nm": d.spacing_nm,
           "groups_per_rim": d.groups_per_rim, "status": m.status, "error": m.error or ""}
    if m.status != "ok":
        return row
    (r,) = m.icr
    plus, minus = m.field(r.field_abs_V_per_nm), m.field(-r.field_abs_V_per_nm)
    row |= {"field_V_per_nm": r.field_abs_V_per_nm,
            "icr": r.icr, "icr_lo": r.icr_ci[0], "icr_hi": "" if r.icr_ci[1] is None else r.icr_ci[1],
            "icr_censored": ">" if r.icr_censored else "<" if r.icr_upper_censored else ""}
    for tag, f in (("plus", plus), ("minus", minus)):
        row |= {f"current_{tag}_nA": f.current_nA, f"current_{tag}_nA_lo": f.current_ci_nA[0],
                f"current_{tag}_nA_hi": f.current_ci_nA[1], f"crossed_{tag}_e": f.charge_crossings_e,
                f"dispersion_{tag}": f.crossing_dispersion, f"settle_{tag}_ps": 1000 * f.settle_ns,
                f"settled_{tag}": f.settled, f"production_{tag}_ps": 1000 * f.time_ns}
    eq = m.provenance.get("equilibration") or {}
    return row | {"equilibration_ps": eq.get("equil_ps"), "cpu_s": m.run.cpu_s,
                  "porelab_version": m.provenance["porelab_version"], "protocol": m.provenance["protocol"]}


def write_index(out: Path, records: list[Measurement], settings: MDSettings, command: str) -> None:
    rows = [index_row(m) for m in sorted(records, key=lambda m: m.design_id)]
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(out / "index.csv", buf.getvalue())
    ok = [m for m in records if m.status == "ok"]
    cpu_h = sum(m.run.cpu_s for m in ok) / 3600
    per = [m.run.cpu_s / 3600 for m in ok]
    looks = look_times(settings.chunk_ps, settings.chunk_ps, settings.production_ps)  # a fixed run's (sim.protocol)
    chunked = sum(len(m.run.history) >= len(looks) for m in ok)
    resolved = sum(1 for m in ok if not (m.icr[0].icr_censored and m.icr[0].icr_ci[0] == 0))
    versions = sorted({f"porelab {m.provenance['porelab_version']}, OpenMM {m.provenance['openmm_version']}, "
                       f"Python {m.provenance['python']}, {m.provenance['platform']}" for m in ok})
    text = f"""# The shared MD dataset

Tiny-preset MD of Janus and asymmetric stacks, grown by `{command}` (resumable; run it again to add designs,
`nice -n 19` while you work). This folder is a porelab measurement store (`sim/store.py`): every record
is a Measurement, `md-<key>/<design_id>/measurement.json` (the oracle's identity in `md-<key>/oracle.json`;
readable with `porelab.sim.measurement.Measurement.load`); `index.csv` has one row per design with every number
and its 95 % interval. Trajectories and checkpoints stay beside the records, git-ignored. Train on it with
`porelab train data/md --out ...`; a campaign run with `PORELAB_STORE=data/md` and these MD settings reuses it.

- Designs: the seed study's 1-3 Janus-layer pores, then non-symmetric stacks of 1-4 sheets (rim groups COO-, NH3+,
  OH, none; spacing 0.3-0.6 nm; 2-6 groups per rim) in the scrambled-Sobol order of `benchmarks/md_dataset.py`.
  Tiny preset (2.5 x 2.5 nm sheets, 5 nm box, 1.42 x 1.26 nm pore), 1.0 M KCl, 300 K.
- Protocol (docs/physics.md §3): equilibration at zero field for at least 20 ps and until the ions' polarisation
  is stationary; each field switched on with its own velocities and settled the same way (not counted); then
  {settings.production_ps:g} ps of production per field at 4 fs. Currents are crossing counts with exact Poisson
  intervals (widened by their measured dispersion); ICR from the exact conditional test, censored both ways
  ("> x" in `icr_censored`, "< x" the other way; `icr_lo` 0 and no `icr_hi` with no transit at all: unresolved).
  MD identity: `{json.dumps(md_identity(settings)["settings"], sort_keys=True)}`.
- Shorter lengths: {chunked} of the designs keep their currents and ICR every {settings.chunk_ps:g} ps of production
  (`run.history`), so a replay can answer at shorter lengths (`benchmarks/md_extension_replay.py`); the others
  (begun before 2026-12-05 evening) keep their end and, where a run was interrupted, the point it resumed from.
  Records from 2026-12-06 on keep the species' crossing counts there too; older ones the currents and ICR only.
  In the older records answered for the mirror image of the simulated design, an earlier
  `sim.observables.oriented` had recomputed those ICR rows from the currents instead of the counts; they were put
  back from each run's own rows (`state/run.json`, mirrored by `sim.observables.mirrored_icr`) on 2026-12-06.
- Software: {"; ".join(versions) or "-"}.
- So far: {len(records)} designs ({len(ok)} ok, {resolved} with a resolved ICR), {cpu_h:.1f} CPU-hours in all
  ({min(per, default=0):.2f}-{max(per, default=0):.2f} CPU-hours per design, 1 OpenMM thread each, 2-core machine;
  a design interrupted before it finished counts only the CPU time of the invocation that finished it).
"""
    atomic_write_text(out / "README.md", text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64, help="designs in the dataset (grows it; never shrinks it)")
    ap.add_argument("--field", type=float, default=2.0, help="|E|, V/nm (run at +E and -E)")
    ap.add_argument("--ps", type=float, default=100.0, help="production per field after the settle, ps")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "md")
    args = ap.parse_args()
    settings = settings_for(args)
    oracle = md_identity(settings)
    store = MeasurementStore(args.out)
    records = {m.design_id: m for m in store.measurements("md")}
    other = [k for k, m in records.items() if m.oracle != oracle]
    if other:
        sys.exit(f"md_dataset: {len(other)} records in {args.out} (e.g. {other[0]}) were made with other MD settings "
                 f"than these ({oracle['settings']}); use another --out")
    command = (f"nice -n 19 .venv/bin/python benchmarks/md_dataset.py --n {args.n} --field {args.field:g} "
               f"--ps {args.ps:g} --seed {args.seed}")
    todo = [c for c in designs(args.n, args.field, args.seed) if c.design_id not in records]
    print(f"md_dataset: {len(records)} designs recorded, {len(todo)} to simulate ({args.workers} workers)", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex, tqdm(total=len(todo), unit="design", desc="MD dataset") as bar:
        futures = {ex.submit(simulate, c, args.out, settings): c for c in todo}
        for fut in as_completed(futures):
            cand = futures[fut]
            m = Measurement.model_validate_json(fut.result())
            if m.status == "ok":
                records[cand.design_id] = m
            write_index(args.out, list(records.values()), settings, command)
            bar.update(1)
            r = index_row(m)
            icr = _iv(r.get("icr"), (r.get("icr_lo"), r.get("icr_hi") or None), r.get("icr_censored", ""))
            bar.write(f"{cand.design_id} {r['layers']}: ICR {icr} ({m.status}, "
                      f"{m.run.cpu_s / 60 if m.run else 0:.0f} CPU-min, {time.perf_counter() - t0:.0f} s in)")
    write_index(args.out, list(records.values()), settings, command)


if __name__ == "__main__":
    main()
