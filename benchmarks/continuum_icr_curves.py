"""Continuum ICR vs |E| for 1-4 layers of the seed design (alternating COO-/NH3+, COO- at the bottom).

Writes benchmarks/results/continuum_icr_vs_field.png and .json (ICR, its numerical interval, currents).
Run: .venv/bin/python benchmarks/continuum_icr_curves.py
"""

import datetime
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from porelab.sim.continuum import simulate_continuum  # noqa: E402
from porelab.sim.design import make_conditions, make_design  # noqa: E402

OUT = Path(__file__).parent / "results" / "continuum_icr_vs_field"
FIELDS_ABS = [0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]


def main() -> None:
    fields = [s * e for e in FIELDS_ABS for s in (1, -1)]
    cond = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": fields})
    curves = {}
    for n in range(1, 5):
        design = make_design({"layers": (["COO-", "NH3+"] * 2)[:n]}, "seed")
        m = simulate_continuum(design, cond)
        curves[n] = {
            "layers": list(design.layers),
            "field_abs_V_per_nm": [r.field_abs_V_per_nm for r in m.icr],
            "icr": [r.icr for r in m.icr],
            "icr_ci": [list(r.icr_ci) for r in m.icr],
            "current_on_nA": [m.field(r.field_abs_V_per_nm).current_nA for r in m.icr],
            "current_off_nA": [m.field(-r.field_abs_V_per_nm).current_nA for r in m.icr],
            "grid_nodes": m.provenance["grid_nodes"],
        }
        print(f"{n} layer(s) {'/'.join(design.layers):24} " + " ".join(f"{x:.4f}" for x in curves[n]["icr"]))
    print("|E| (V/nm):" + " " * 24 + " ".join(f"{e:6.2f}" for e in FIELDS_ABS))

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for n, c in curves.items():
        icr = np.array(c["icr"])
        ci = np.array(c["icr_ci"], dtype=float)
        ax.errorbar(c["field_abs_V_per_nm"], icr, yerr=[icr - ci[:, 0], ci[:, 1] - icr], marker="osD^"[n - 1],
                    ms=7 - n, capsize=2, label=f"{n} layer{'s' if n > 1 else ''} ({'/'.join(c['layers'])})")
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.text(0.98, 0.3, "1 and 3 layers: mirror-symmetric stacks,\nICR = 1 in a 1D model", fontsize=7,
            ha="right", transform=ax.transAxes)
    ax.set_xlabel("|E| (V/nm), V = E * 10 nm box")
    ax.set_ylabel("ICR = |I(+E)| / |I(-E)|")
    ax.set_title("Continuum PNP, seed design, 1 M KCl")
    ax.legend(fontsize=7)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT.with_suffix(".png"), dpi=150)
    doc = {"date": datetime.date.today().isoformat(), "design_preset": "seed",
           "electrolyte_M": {"K+": 1.0, "Cl-": 1.0}, "oracle": "porelab.sim.continuum.simulate_continuum (defaults)",
           "curves": curves}
    OUT.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    print(f"wrote {OUT.with_suffix('.png')} and {OUT.with_suffix('.json')}")


if __name__ == "__main__":
    main()
