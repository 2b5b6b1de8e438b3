"""Rectification in MD on this CPU: Janus pores against a mirror-symmetric control, with the continuum twin beside.

Designs (tiny preset, 1.0 M KCl): 1 Janus layer (COO-/NH3+), 2 Janus layers (COO-,COO-,NH3+,NH3+) and, on request,
the symmetric control COO-/NH3+/COO- (at +E only: its ICR is 1 by symmetry), each at the --fields |E|, +E and -E.
MD with the protocol of sim.protocol (settle until the polarisation is stationary, crossing counts, exact ICR
intervals) and the stop rule of sim.run_length (`until: decisive`: first look at --min-ps, then every --chunk-ps,
cap --max-ps per field, alpha spent over the looks), one design after another with --threads CPU threads. The same
designs go through the continuum twin. Writes to --out (default benchmarks/results/md_rectification):
summary.json (every number with its interval, charge crossed, settle lengths, run length, stop reason, CPU time),
icr_vs_field.png, on_current_vs_field.png, report.txt, and each design's measurement.json; the MD run directories
(trajectories) stay under --runs.

Run: nice -n 19 .venv/bin/python benchmarks/md_rectification.py [--fields 2,3] [--max-ps 200] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from porelab.sim.continuum import run_continuum
from porelab.sim.design import make_conditions, make_design
from porelab.sim.md_settings import MDSettings
from porelab.sim.observables import on_current
from porelab.sim.protocol import run_md

DESIGNS = {
    "janus-1": {"janus_layers": 1},
    "janus-2": {"janus_layers": 2},
    "symmetric": {"layers": ["COO-", "NH3+", "COO-"]},
}
ROOT = Path(__file__).resolve().parents[1]


def _fmt(v, lo, hi, censored=False, upper=False) -> str:
    if censored or hi is None:
        return f"> {lo:.3g}"
    if upper:
        return f"< {hi:.3g}"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]"


def md_rows(m) -> list[dict]:
    rows = []
    for r in m.icr:
        e = r.field_abs_V_per_nm
        plus, minus = m.field(e), m.field(-e)
        on = on_current(plus, minus)
        rows.append({
            "field_abs_V_per_nm": e, "icr": r.icr, "icr_ci": r.icr_ci, "icr_censored": r.icr_censored,
            "icr_upper_censored": r.icr_upper_censored, "by_symmetry": r.by_symmetry,
            "current_plus_nA": plus.current_nA, "current_plus_ci_nA": plus.current_ci_nA,
            "current_minus_nA": minus.current_nA, "current_minus_ci_nA": minus.current_ci_nA,
            "on_current_nA": on.value, "on_current_ci_nA": (on.low, on.high),
            "charge_crossed_e": [plus.charge_crossings_e, minus.charge_crossings_e],
            "dispersion": [plus.crossing_dispersion, minus.crossing_dispersion],
            "displacement_nA": [plus.current_displacement_nA, minus.current_displacement_nA],
            "polarisation_change_e": [plus.polarisation_change_e, minus.polarisation_change_e],
            "settle_ps": [1000 * (f.settle_ns or 0) for f in (plus, minus)],
            "production_ns": [plus.time_ns, minus.time_ns],
        })
    return rows


def continuum_rows(m) -> list[dict]:
    return [{"field_abs_V_per_nm": r.field_abs_V_per_nm, "icr": r.icr, "icr_ci": r.icr_ci,
             "icr_censored": r.icr_censored,
             "on_current_nA": on_current(m.field(r.field_abs_V_per_nm), m.field(-r.field_abs_V_per_nm)).value}
            for r in m.icr]


def plot(summary: dict, out: Path) -> None:
    from matplotlib.figure import Figure

    for key, ylabel, fname in (("icr", "ICR = |I(+E)| / |I(-E)|", "icr_vs_field.png"),
                               ("on_current_nA", "ON current (nA)", "on_current_vs_field.png")):
        fig = Figure(figsize=(6.2, 4.2))
        ax = fig.add_subplot()
        for k, (name, d) in enumerate(summary["designs"].items()):
            color = f"C{k}"
            e = np.array([r["field_abs_V_per_nm"] for r in d["md"]])
            y = np.array([r[key] for r in d["md"]], float)
            ci = [r[key.replace("_nA", "") + "_ci" + ("_nA" if key.endswith("_nA") else "")] for r in d["md"]]
            lo = np.array([c[0] for c in ci], float)
            hi = np.array([c[1] if c[1] is not None else np.nan for c in ci], float)
            shift = 1 + 0.03 * (k - 1)  # keep error bars apart
            ok = np.isfinite(hi) & (lo > 0)
            ax.errorbar(e[ok] * shift, y[ok], yerr=[y[ok] - lo[ok], hi[ok] - y[ok]], fmt="o", color=color,
                        capsize=3, label=f"{name} MD")
            low_only, high_only = ~np.isfinite(hi) & (lo > 0), np.isfinite(hi) & ~(lo > 0)
            if low_only.any():  # censored: lower bounds
                ax.plot(e[low_only] * shift, lo[low_only], "^", color=color, ms=8, label=f"{name} MD (lower bound)")
            if high_only.any():  # upper bounds
                ax.plot(e[high_only] * shift, hi[high_only], "v", color=color, ms=8, label=f"{name} MD (upper bound)")
            ec = [r["field_abs_V_per_nm"] for r in d["continuum"]]
            yc = [r[key] for r in d["continuum"]]
            ax.plot(ec, yc, "--", color=color, alpha=0.7, label=f"{name} continuum")
        if key == "icr":
            ax.axhline(1, color="0.6", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("|E| (V/nm)")
        ax.set_ylabel(ylabel)
        ax.set_title("tiny preset, 1.0 M KCl, MD (crossing counts, 95 % CI) vs continuum", fontsize=8)
        ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=120)


def report(summary: dict) -> str:
    lines = [f"md_rectification: {summary['command']}", f"MD settings: {summary['md_settings']}", ""]
    for name, d in summary["designs"].items():
        run = d["run"]
        lines.append(f"{name} ({'/'.join(d['layers'])}): stopped {run['stopped']} after {run['production_ps']:g} ps "
                     f"per field ({run['reason']}); {run['cpu_s'] / 60:.1f} CPU-min, {run['wall_s'] / 60:.1f} min wall")
        for r, c in zip(d["md"], d["continuum"], strict=True):
            lo, hi = r["on_current_ci_nA"]
            qp, qm = r["charge_crossed_e"]
            sp, sm = r["settle_ps"]
            lines.append(
                f"  |E|={r['field_abs_V_per_nm']:g} V/nm: ICR "
                f"{_fmt(r['icr'], *r['icr_ci'], r['icr_censored'], r.get('icr_upper_censored', False))}"
                f"{' (by symmetry)' if r['by_symmetry'] else ''} (charge crossed {qp:+.0f} e at +E, {qm:+.0f} e at -E;"
                f" settle {sp:.0f}/{sm:.0f} ps); ON {r['on_current_nA']:.3g} [{lo:.3g}, {hi:.3g}] nA; continuum ICR "
                f"{_fmt(c['icr'], *c['icr_ci'], c['icr_censored'])}, ON {c['on_current_nA']:.3g} nA")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fields", default="2,3", help="|E| values, V/nm")
    ap.add_argument("--min-ps", type=float, default=40.0)
    ap.add_argument("--chunk-ps", type=float, default=20.0)
    ap.add_argument("--max-ps", type=float, default=300.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--designs", default="janus-1,janus-2")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "md_rectification")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "md_rectification")
    args = ap.parse_args()
    fields = [float(x) for x in args.fields.split(",")]
    settings = MDSettings(until="decisive", min_production_ps=args.min_ps, chunk_ps=args.chunk_ps,
                          max_production_ps=args.max_ps, equil_ps=20.0, timestep_fs=4.0, checkpoint_ps=args.chunk_ps,
                          seed=args.seed, platform="CPU", cpu_threads=args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"command": "benchmarks/md_rectification.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("out", "runs")),
        "md_settings": settings.model_dump(), "designs": {}}
    for name in args.designs.split(","):
        design = make_design(DESIGNS[name], "tiny")
        conditions = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0},
                                      "fields_V_per_nm": [s * e for e in fields for s in (1, -1)]})
        t0 = time.perf_counter()
        m = run_md(design, conditions, args.runs / name, settings)
        if m.status != "ok":
            raise SystemExit(f"{name}: {m.error}")
        c = run_continuum(design, conditions)
        (args.out / f"{name}.measurement.json").write_text(m.to_json())
        summary["designs"][name] = {"layers": list(design.layers), "design_id": m.design_id,
                                    "run": m.run.model_dump(exclude={"history"}), "md": md_rows(m),
                                    "continuum": continuum_rows(c), "wall_s_this_call": time.perf_counter() - t0}
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
        print(f"{name}: {m.run.stopped} after {m.run.production_ps:g} ps, {m.run.cpu_s / 60:.1f} CPU-min", flush=True)
    plot(summary, args.out)
    text = report(summary)
    (args.out / "report.txt").write_text(text + "\n")
    print(text)
    assert all(math.isfinite(r["on_current_nA"]) for d in summary["designs"].values() for r in d["md"])


if __name__ == "__main__":
    main()
