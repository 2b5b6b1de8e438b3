"""Null tests of the MD current on real MD, where the answer is known, before and after the settle protocol.

Cases (tiny preset, 1.0 M KCl, 4 fs, 1 CPU thread per run, `--seeds` seeds each):
  blocked    COO-/NH3+ with the narrowest pore the builder allows (0.4 nm circle): no ion can pass; at +2 V/nm the
             current is 0
  zero-field the 1-Janus-layer pore (COO-/NH3+) at 0 V/nm: the current is 0
  symmetric  COO-/NH3+/COO- (its own mirror image) simulated at +2 and -2 V/nm, symmetry use off: ICR = 1
  long       the 1-Janus-layer pore at +-2 V/nm for --long-ps per sign (first seed only): the displacement sum
             minus the polarisation change it contains equals the crossed charge, and the two currents agree
"after" is the protocol of sim.protocol (settle rule at zero field and after field-on, crossing counts with exact
Poisson intervals, --ps of production, --null-ps for the blocked and zero-field cases). "before" is what the
earlier protocol reported for the same trajectories: the first 80 ps after field-on (BEFORE_PS) with no settle,
the displacement estimator with its transient detection
(`correlated_mean(..., drop_transient=True)`) and MOVER ICRs; it is recomputed from the per-update series every
counter keeps from field-on (state/E*/progress.json). Coverage = the fraction of seeds whose 95 % interval holds
the known answer.

Writes --out (default benchmarks/results/md_null): summary.json (every number, interval, settle length, CPU
seconds), report.txt, <case>-s<seed>.measurement.json. Run directories stay under --runs; a rerun resumes them.

Run: nice -n 19 .venv/bin/python benchmarks/md_null.py [--seeds 1,2,3] [--ps 100] [--null-ps 60] [--long-ps 400]
     [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

from porelab.sim.design import make_conditions, make_design
from porelab.sim.estimators import correlated_mean
from porelab.sim.md_settings import MDSettings
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement
from porelab.sim.observables import icr_interval, icr_results
from porelab.sim.production import field_tag
from porelab.sim.protocol import run_md
from porelab.sim.transport import CrossingCounter

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "blocked": ({"layers": ["COO-", "NH3+"], "pore": {"shape": "circle", "width_nm": 0.4, "height_nm": 0.4}}, [2.0]),
    "zero-field": ({"janus_layers": 1}, [0.0]),
    "symmetric": ({"layers": ["COO-", "NH3+", "COO-"]}, [2.0, -2.0]),
    "long": ({"janus_layers": 1}, [2.0, -2.0]),
}


def simulate(case: str, seed: int, ps: float, runs: Path) -> dict:
    spec, fields = CASES[case]
    settings = MDSettings(production_ps=ps, equil_ps=20.0, timestep_fs=4.0, checkpoint_ps=20.0, seed=seed,
                          platform="CPU", cpu_threads=1)
    out = runs / f"{case}-s{seed}"
    m = run_md(make_design(spec, "tiny"), make_conditions({"fields_V_per_nm": fields}), out, settings,
               progress=False, use_symmetry=False)
    return {"case": case, "seed": seed, "json": m.to_json(), "before": before(out, m, BEFORE_PS)}


BEFORE_PS = 80.0


def before(out: Path, m: Measurement, before_ps: float) -> list[dict]:
    """What the earlier protocol reported for the first before_ps after field-on, per field (nA)."""
    rows = []
    for f in m.fields:
        c = CrossingCounter.from_state_dict(json.loads(
            (out / "state" / field_tag(f.field_V_per_nm) / "progress.json").read_text())["counter"]["counter"])
        t = np.cumsum(c.dt_series)
        n = int(np.searchsorted(t, before_ps + 1e-9))
        r = correlated_mean(c.current_series[:n], c.dt_series[:n], drop_transient=True)
        crossed = float(np.sum(c.crossed_series[:n]))
        rows.append({"field_V_per_nm": f.field_V_per_nm, "time_ps": float(t[n - 1]),
                     "displacement_nA": r.mean * E_PER_NS_TO_NA,
                     "displacement_ci_nA": [r.ci[0] * E_PER_NS_TO_NA, r.ci[1] * E_PER_NS_TO_NA],
                     "reliable": bool(r.reliable), "transient_dropped_ps": r.dropped, "crossed_e": crossed,
                     "polarisation_change_e": c.polarisation_series[n - 1] - c.polarisation0})
    return rows


def covers(ci, x) -> bool:
    return bool(ci[0] <= x <= (ci[1] if ci[1] is not None else float("inf")))


def after_row(f: FieldResult) -> dict:
    return {"field_V_per_nm": f.field_V_per_nm, "production_ps": 1000 * f.time_ns, "settle_ps": 1000 * f.settle_ns,
            "settled": f.settled, "crossed_e": f.charge_crossings_e,
            "current_nA": f.current_nA, "current_ci_nA": list(f.current_ci_nA),
            "displacement_nA": f.current_displacement_nA, "displacement_ci_nA": list(f.current_displacement_ci_nA),
            "polarisation_change_e": f.polarisation_change_e}


def analyse(res: dict) -> dict:
    m = Measurement.model_validate_json(res["json"])
    row = {"case": res["case"], "seed": res["seed"], "cpu_s": m.run.cpu_s,
           "equilibration": m.provenance["equilibration"], "after": [after_row(f) for f in m.fields],
           "before": res["before"]}
    if res["case"] in ("blocked", "zero-field"):
        a, b = row["after"][0], row["before"][0]
        row["covers"] = {"after_crossings": covers(a["current_ci_nA"], 0.0),
                         "after_displacement": covers(a["displacement_ci_nA"], 0.0),
                         "before_displacement": covers(b["displacement_ci_nA"], 0.0)}
    else:
        (icr,) = icr_results(m.fields)
        bp, bm = row["before"]
        b_icr, b_ci, b_cens = icr_interval(bp["displacement_nA"], bp["displacement_ci_nA"], bm["displacement_nA"],
                                           bm["displacement_ci_nA"])
        row["icr_after"] = {"icr": icr.icr, "ci": list(icr.icr_ci), "censored": icr.icr_censored,
                            "upper_censored": icr.icr_upper_censored}
        row["icr_before"] = {"icr": b_icr, "ci": list(b_ci), "censored": b_cens}
        if res["case"] == "symmetric":  # ICR = 1 by symmetry
            row["covers"] = {"after_icr": covers(icr.icr_ci, 1.0), "before_icr": covers(b_ci, 1.0)}
        else:  # long: displacement - polarisation change = crossed charge (+ in-pore partials); the two agree
            row["agree"] = [{"field_V_per_nm": a["field_V_per_nm"],
                             "overlap": bool(max(a["current_ci_nA"][0], a["displacement_ci_nA"][0])
                             <= min(a["current_ci_nA"][1], a["displacement_ci_nA"][1])),
                             "displacement_minus_polarisation_e": a["displacement_nA"] * a["production_ps"] / 1000
                             / E_PER_NS_TO_NA - a["polarisation_change_e"], "crossed_e": a["crossed_e"]}
                            for a in row["after"]]
            row["covers"] = {f"agree_at_{g['field_V_per_nm']:+g}": g["overlap"] for g in row["agree"]}
    return row


def fmt(v, ci) -> str:
    return f"{v:+.3g} [{ci[0]:+.3g}, {'inf' if ci[1] is None else f'{ci[1]:+.3g}'}]"


def report(rows: list[dict], command: str) -> str:
    lines = [f"md_null: {command}", ""]
    for case in CASES:
        rs = [r for r in rows if r["case"] == case]
        if not rs:
            continue
        lines.append(f"{case}:")
        for r in rs:
            eq = r["equilibration"] or {}
            head = f"  seed {r['seed']}: {r['cpu_s'] / 60:.1f} CPU-min, equilibration {eq.get('equil_ps', 0):g} ps"
            lines.append(head + ("" if eq.get("settled", True) else " (not settled)"))
            for a, b in zip(r["after"], r["before"], strict=True):
                lines.append(f"    {a['field_V_per_nm']:+g} V/nm  after: settle {a['settle_ps']:.0f} ps"
                             f"{'' if a['settled'] else ' (cap)'}, {a['production_ps']:.0f} ps, crossed "
                             f"{a['crossed_e']:+g} e, I {fmt(a['current_nA'], a['current_ci_nA'])} nA; displacement "
                             f"{fmt(a['displacement_nA'], a['displacement_ci_nA'])} nA (polarisation change "
                             f"{a['polarisation_change_e']:+.2f} e)")
                lines.append(f"               before: first {b['time_ps']:.0f} ps, displacement "
                             f"{fmt(b['displacement_nA'], b['displacement_ci_nA'])} nA "
                             f"({'reliable' if b['reliable'] else 'unreliable'}, crossed {b['crossed_e']:+g} e, "
                             f"polarisation change {b['polarisation_change_e']:+.2f} e)")
            if "icr_after" in r:
                ia, ib = r["icr_after"], r["icr_before"]
                lines.append(f"    ICR after {fmt(ia['icr'], ia['ci'])}, before {fmt(ib['icr'], ib['ci'])}")
            for g in r.get("agree", []):
                lines.append(f"    {g['field_V_per_nm']:+g} V/nm: crossing and displacement currents "
                             f"{'agree' if g['overlap'] else 'DISAGREE'}; displacement - polarisation change = "
                             f"{g['displacement_minus_polarisation_e']:+.2f} e vs crossed {g['crossed_e']:+g} e")
        keys = sorted({k for r in rs for k in r.get("covers", {})})
        cov = ", ".join(f"{k} {sum(r['covers'][k] for r in rs)}/{len(rs)}" for k in keys)
        lines.append(f"  {'agreement' if case == 'long' else 'coverage of the known answer'}: {cov}")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--ps", type=float, default=100.0, help="production per field after the settle (symmetric), ps")
    ap.add_argument("--null-ps", type=float, default=60.0, help="the same for blocked and zero-field, ps")
    ap.add_argument("--long-ps", type=float, default=400.0)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "md_null")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "md_null")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    length = {"long": args.long_ps, "symmetric": args.ps, "blocked": args.null_ps, "zero-field": args.null_ps}
    jobs = [(c, s, length[c]) for c in args.cases.split(",")
            for s in (seeds[:1] if c == "long" else seeds)]
    jobs.sort(key=lambda j: -j[2] * len(CASES[j[0]][1]))  # the longest first: two workers finish together
    args.out.mkdir(parents=True, exist_ok=True)
    command = "benchmarks/md_null.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "runs"))
    rows, t0 = [], time.perf_counter()
    with ProcessPoolExecutor(args.workers) as ex:
        futures = {ex.submit(simulate, c, s, ps, args.runs): (c, s) for c, s, ps in jobs}
        for k, fut in enumerate(as_completed(futures), 1):
            res = fut.result()
            (args.out / f"{res['case']}-s{res['seed']}.measurement.json").write_text(res["json"])
            rows.append(analyse(res))
            print(f"[{k}/{len(jobs)}] {res['case']} seed {res['seed']} done ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    rows.sort(key=lambda r: (list(CASES).index(r["case"]), r["seed"]))
    (args.out / "summary.json").write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    text = report(rows, command)
    (args.out / "report.txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
