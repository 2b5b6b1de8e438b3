"""Synthetic rectification landscapes, as porelab user oracles: narrow (a small high-ICR region) and broad.

They test that exploration does not collapse when the first designs all look flat: ICR is high only where a
design has a charge dipole along the stack (a Janus arrangement), tight spacing, and a field near an optimum that
depends on the number of sheets. Everywhere else ln ICR is near 0 (a little structure from the outer sheets'
charges, so a model has something to learn from the flat part too). Like the physics, ln ICR is odd under the
mirror image (z -> -z): a mirror-symmetric stack has ICR 1 exactly. Use one in a study as

    oracle: {kind: user, path: benchmarks/landscapes.py:NarrowJanus, settings: {}}

Each call returns a Measurement with K+ and Cl- fluxes at +E and -E (1 % intervals, deterministic) whose currents
give exactly the landscape's ICR; `log_icr(design, |E|)` gives the truth for the benchmarks.
"""

from __future__ import annotations

import math
import time

import numpy as np

from porelab.sim.design import Conditions, Design, design_id
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult, oracle_identity
from porelab.sim.observables import icr_results


def dipole(design: Design) -> float:
    """Janus character in [-1, 1]: the rim-charge dipole along z normalised by the largest one the same charges
    could make, times the balance of positive and negative charge (0 when only one sign is present)."""
    q = np.asarray(design.layer_charge_e())
    z = np.asarray(design.layer_z_nm()) - design.box_z_nm / 2
    best = np.abs(q).sum() * max(float(np.abs(z).max()), 1e-9)
    pos, neg = q[q > 0].sum(), -q[q < 0].sum()
    balance = min(pos, neg) / max(pos, neg) if max(pos, neg) > 0 else 0.0
    return float((q * z).sum() / best) * balance if best > 0 else 0.0


class NarrowJanus:
    """ln ICR = peak · d · g(spacing) · h(|E|) + 0.1 · (q_bottom - q_top) / 8, with
    d = the normalised dipole (positive: COO- below NH3+), g = exp(-((s - s0)/w_s)^2),
    h = exp(-(ln(|E| / E*(n)) / w_E)^2), E*(n) = e0 · (n_sheets / 2)^0.5 V/nm.
    ON current = conductance · |E| · (1 + 0.1 · groups_per_rim) nA."""

    fidelity = "landscape"

    def __init__(self, peak: float = math.log(60.0), s0: float = 0.32, w_s: float = 0.06, e0: float = 0.12,
                 w_e: float = 0.35, conductance: float = 4.0, cost_s: float = 0.0):
        self.settings = {"peak": peak, "s0": s0, "w_s": w_s, "e0": e0, "w_e": w_e, "conductance": conductance,
                         "cost_s": cost_s}

    def log_icr(self, design: Design, field_abs: float) -> float:
        p = self.settings
        e_opt = p["e0"] * math.sqrt(len(design.layers) / 2)
        g = math.exp(-(((design.spacing_nm - p["s0"]) / p["w_s"]) ** 2))
        h = math.exp(-((math.log(field_abs / e_opt) / p["w_e"]) ** 2))
        q = design.layer_charge_e()
        return p["peak"] * dipole(design) * g * h + 0.1 * (q[0] - q[-1]) / 8

    def __call__(self, design: Design, conditions: Conditions, run_dir) -> Measurement:
        time.sleep(self.settings["cost_s"])  # what one evaluation costs, to test cost-aware acquisition
        fields = []
        for e in conditions.fields_V_per_nm:
            on = self.settings["conductance"] * abs(e) * (1 + 0.1 * design.groups_per_rim)
            li = self.log_icr(design, abs(e))
            # the ON side carries `on` nA; the other side on / ICR (ICR < 1 puts the ON side at -E)
            mag = on if (e > 0) == (li >= 0) else on * math.exp(-abs(li))
            current = math.copysign(mag, e)
            k_share = 0.6
            species = {}
            for s, share, z in (("K+", k_share, 1), ("Cl-", 1 - k_share, -1)):
                flux = share * current / E_PER_NS_TO_NA / z  # ions/ns, sign of the carried charge
                species[s] = SpeciesResult(flux_per_ns=flux, flux_ci_per_ns=(flux - 0.01 * abs(flux),
                                                                              flux + 0.01 * abs(flux)))
            fields.append(FieldResult(field_V_per_nm=e, time_ns=0.0, current_nA=current,
                                      current_ci_nA=(current - 0.01 * mag, current + 0.01 * mag), species=species))
        return Measurement(design_id=design_id(design, conditions), design=design, conditions=conditions,
                           fidelity=self.fidelity, fields=fields, icr=icr_results(fields),
                           oracle=oracle_identity("user", self.settings, f"{__file__}:{type(self).__name__}"),
                           provenance={"oracle": f"benchmarks/landscapes.py:{type(self).__name__}"})


class NarrowJanusShifted(NarrowJanus):
    """The same kind of landscape with its peak elsewhere: wider spacing, a stronger field, a sharper peak."""

    def __init__(self, **kw):
        super().__init__(**{"s0": 0.55, "w_s": 0.05, "e0": 0.6, "w_e": 0.3, "peak": math.log(30.0), **kw})


class BroadJanus(NarrowJanus):
    """The other kind: a broad hill. ln ICR rises smoothly towards its peak over much of the space (a wide
    spacing window, a wide field window, more groups per rim rectify more), so most Janus stacks rectify somewhat
    and the best are found by climbing, not by searching: exploitation pays where on a narrow landscape it
    collapses. ln ICR = NarrowJanus's with w_s = 0.35, w_E = 1.5, times (groups_per_rim / 8)^0.5."""

    def __init__(self, **kw):
        super().__init__(**{"s0": 0.3, "w_s": 0.35, "e0": 0.4, "w_e": 1.5, "peak": math.log(20.0), **kw})

    def log_icr(self, design: Design, field_abs: float) -> float:
        return super().log_icr(design, field_abs) * math.sqrt(design.groups_per_rim / 8)


class NarrowJanusTwin(NarrowJanus):
    """A cheap, biased twin of NarrowJanus (fidelity "twin"), as the continuum is of MD: the right direction, not
    the right size, ln ICR_twin = 0.6 · ln ICR + 0.05, and a wider peak. The low rung of a fidelity ladder."""

    fidelity = "twin"

    def __init__(self, **kw):
        super().__init__(**{"w_s": 0.09, "w_e": 0.5, **kw})

    def log_icr(self, design: Design, field_abs: float) -> float:
        return 0.6 * super().log_icr(design, field_abs) + 0.05
