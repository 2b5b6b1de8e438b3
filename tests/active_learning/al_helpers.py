"""Shared helpers for the active_learning tests: small continuum studies written to YAML, and test oracles."""

import copy
import math
import textwrap
from pathlib import Path

import yaml

from porelab.sim.design import design_id, make_conditions, make_design
from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult
from porelab.sim.observables import icr_results

SMALL = {
    "name": "small",
    "seed": 3,
    "preset": "tiny",
    "base": {"conditions": {"electrolyte": {"K+": 0.1, "Cl-": 0.1}}},
    "space": {
        "layers": {"sequence": ["COO-", "NH3+", "OH", "none"], "length": [1, 3]},
        "groups_per_rim": {"low": 1, "high": 8, "integer": True},
        "spacing_nm": {"low": 0.3, "high": 0.7},
        "field_V_per_nm": {"low": 0.02, "high": 0.3, "log": True},
    },
    "oracle": {"kind": "continuum"},
    "budget": {"simulations": 12, "initial": 4, "batch": 4},
    "executor": {"kind": "local", "workers": 2},
    "model": {"kind": "rf", "params": {"n_estimators": 50}},
    "acquisition": {"kind": "ucb", "pool_size": 256},
}

# A user oracle: the continuum model, plus a log line per finished call, an optional delay, and designs
# that raise (groups_per_rim == 2) or return NaN (groups_per_rim == 3) when `faulty` is set.
USER_ORACLE = textwrap.dedent('''
    import math
    import os
    import time

    from porelab.sim.continuum import run_continuum


    class LoggedContinuum:
        fidelity = "continuum"

        def __init__(self, log, delay_s=0.0, faulty=False):
            self.log, self.delay_s, self.faulty = log, delay_s, faulty

        def __call__(self, design, conditions, run_dir):
            time.sleep(self.delay_s)
            if self.faulty and design.groups_per_rim == 2:
                raise RuntimeError("solver exploded on purpose")
            m = run_continuum(design, conditions)
            if self.faulty and design.groups_per_rim == 3:
                f = m.fields[0]
                m.fields[0] = f.model_copy(update={"current_nA": math.nan})
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, (m.design_id + "\\n").encode())
            os.close(fd)
            return m
''')


def write_study(path: Path, **changes) -> Path:
    """SMALL with top-level sections updated by `changes` (dicts are merged one level deep)."""
    doc = copy.deepcopy(SMALL)
    for k, v in changes.items():
        if isinstance(v, dict) and isinstance(doc.get(k), dict):
            doc[k] = {**doc[k], **v}
        else:
            doc[k] = v
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# A user oracle whose runs can be extended like MD's: Poisson crossing counts (K+ one way, Cl- the other) at rates
# set by the design (ln ICR = 0.15 groups_per_rim (n COO- - n NH3+) / n layers), accumulated in run_dir/state.json
# segment by segment, so a longer `production_ps` resumes the counts so far; each call appends
# "<design id> <from ps> <to ps>" to `log`. Intervals: +-2 sqrt(n + 1) per direction.
COUNTING_MD = textwrap.dedent('''
    import json
    import math
    import os
    import zlib
    from pathlib import Path

    import numpy as np

    from porelab.sim.design import design_id
    from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, RunRecord, SpeciesResult
    from porelab.sim.observables import icr_results


    class CountingMD:
        fidelity = "md"
        length_setting = "production_ps"

        def __init__(self, log, production_ps=10.0, rate_per_ps=0.4):
            self.log, self.production_ps, self.rate = log, production_ps, rate_per_ps

        def __call__(self, design, conditions, run_dir):
            did = design_id(design, conditions)
            f = Path(run_dir) / "state.json"
            st = json.loads(f.read_text()) if f.exists() else {"ps": 0.0, "counts": {}}
            n_coo, n_nh3 = design.layers.count("COO-"), design.layers.count("NH3+")
            ln_icr = 0.15 * design.groups_per_rim * (n_coo - n_nh3) / len(design.layers)
            dt = self.production_ps - st["ps"]
            rng = np.random.default_rng([zlib.crc32(did.encode()), int(st["ps"] * 1000)])
            fields = []
            for e in conditions.fields_V_per_nm:
                rate = self.rate * (1.0 if e > 0 else math.exp(-ln_icr))
                key = f"{e:+g}"
                c = st["counts"].setdefault(key, [0, 0])
                c[0] += int(rng.poisson(rate * dt))
                c[1] += int(rng.poisson(rate * dt))
                t_ns, sign = self.production_ps / 1000, 1 if e > 0 else -1
                k_j, cl_j = sign * c[0] / t_ns, -sign * c[1] / t_ns
                hk, hcl = 2 * math.sqrt(c[0] + 1) / t_ns, 2 * math.sqrt(c[1] + 1) / t_ns
                sp = {"K+": SpeciesResult(crossings_up=c[0] if e > 0 else 0, crossings_down=0 if e > 0 else c[0],
                                          crossings=sign * c[0], flux_per_ns=k_j, flux_ci_per_ns=(k_j - hk, k_j + hk)),
                      "Cl-": SpeciesResult(crossings_up=0 if e > 0 else c[1], crossings_down=c[1] if e > 0 else 0,
                                           crossings=-sign * c[1], flux_per_ns=cl_j,
                                           flux_ci_per_ns=(cl_j - hcl, cl_j + hcl))}
                i, h = (k_j - cl_j) * E_PER_NS_TO_NA, (hk + hcl) * E_PER_NS_TO_NA
                fields.append(FieldResult(field_V_per_nm=e, time_ns=t_ns, current_nA=i, current_ci_nA=(i - h, i + h),
                                          species=sp))
            frm, st["ps"] = st["ps"], self.production_ps
            f.write_text(json.dumps(st))
            fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            os.write(fd, f"{did} {frm:g} {self.production_ps:g}\\n".encode())
            os.close(fd)
            run = RunRecord(rule={"until": "fixed", "production_ps": self.production_ps},
                            production_ps=self.production_ps, stopped="fixed", reason="fixed length", cpu_s=0.0,
                            wall_s=0.0)
            return Measurement(design_id=did, design=design, conditions=conditions, fidelity="md", fields=fields,
                               icr=icr_results(fields), run=run)
''')


# A user oracle of MD-like crossing counts whose rectification follows the stack's charge dipole: with q = -1 for a
# COO- sheet, +1 for NH3+, 0 otherwise, d = sum_i q_i (i - (n - 1) / 2) and ln ICR = 1.5 d. A Janus COO-/NH3+ stack
# (d = 1) is ON at +E (docs/physics.md §6); its mirror image NH3+/COO- (d = -1) rectifies the other way, ICR 0.22.
# Exact counts: K+ transits only, `n_on` at the ON sign and n_on / ICR at the other, over 1 ns.
DIPOLE_MD = textwrap.dedent('''
    import math

    from porelab.sim.design import design_id
    from porelab.sim.measurement import E_PER_NS_TO_NA, FieldResult, Measurement, SpeciesResult
    from porelab.sim.observables import icr_results

    CHARGE = {"COO-": -1.0, "NH3+": 1.0}


    class DipoleMD:
        fidelity = "md"

        def __init__(self, n_on=400):
            self.n_on = n_on

        def __call__(self, design, conditions, run_dir):
            n = len(design.layers)
            d = sum(CHARGE.get(g, 0.0) * (i - (n - 1) / 2) for i, g in enumerate(design.layers))
            icr = math.exp(1.5 * d)
            fields = []
            for e in conditions.fields_V_per_nm:
                k = round(self.n_on * min(1.0, icr if e > 0 else 1 / icr))
                up, down = (k, 0) if e > 0 else (0, k)
                j, half = (up - down) / 1.0, 2 * math.sqrt(k + 1)
                sp = {"K+": SpeciesResult(crossings_up=up, crossings_down=down, crossings=up - down, flux_per_ns=j,
                                          flux_ci_per_ns=(j - half, j + half)),
                      "Cl-": SpeciesResult(crossings_up=0, crossings_down=0, crossings=0, flux_per_ns=0.0,
                                           flux_ci_per_ns=(-2.0, 2.0))}
                i, h = j * E_PER_NS_TO_NA, (half + 2.0) * E_PER_NS_TO_NA
                fields.append(FieldResult(field_V_per_nm=e, time_ns=1.0, current_nA=i, current_ci_nA=(i - h, i + h),
                                          species=sp))
            return Measurement(design_id=design_id(design, conditions), design=design, conditions=conditions,
                               fidelity="md", fields=fields, icr=icr_results(fields))
''')


# Synthetic MD measurements from crossing counts (tests of honest tables and extensions)
E = 1.0
COND = make_conditions({"electrolyte": {"K+": 1.0, "Cl-": 1.0}, "fields_V_per_nm": [E, -E]})


def counted(e: float, k_up: int, k_down: int, cl_up: int, cl_down: int, t_ns: float = 1.0) -> FieldResult:
    """An MD result from crossing counts alone, with Poisson-like intervals (+-2 sqrt(n) per direction)."""
    def sp(up, down, z):
        j = (up - down) / t_ns
        half = 2 * math.sqrt(up + down + 1) / t_ns
        return SpeciesResult(crossings_up=up, crossings_down=down, crossings=up - down, flux_per_ns=j,
                             flux_ci_per_ns=(j - half, j + half)), z * j, half

    k, ik, hk = sp(k_up, k_down, 1)
    cl, icl, hcl = sp(cl_up, cl_down, -1)
    i = (ik + icl) * E_PER_NS_TO_NA
    h = (hk + hcl) * E_PER_NS_TO_NA
    return FieldResult(field_V_per_nm=e, time_ns=t_ns, current_nA=i, current_ci_nA=(i - h, i + h),
                       species={"K+": k, "Cl-": cl})


def md(layers: list[str], plus: tuple, minus: tuple) -> Measurement:
    design = make_design({"layers": layers}, "tiny")
    fields = [counted(E, *plus), counted(-E, *minus)]
    return Measurement(design_id=design_id(design, COND), design=design, conditions=COND, fidelity="md",
                       fields=fields, icr=icr_results(fields), oracle={"kind": "md", "settings": {}})


# crossings (K+ up, K+ down, Cl- up, Cl- down) at +E, then at -E
SYMMETRIC_NOISY = md(["COO-", "NH3+", "COO-"], (60, 0, 0, 40), (0, 20, 15, 0))  # ICR ~2.9, interval wide
DECISIVE = md(["COO-", "NH3+"], (400, 0, 0, 300), (0, 180, 150, 0))  # ICR ~2.1, narrow: the honest best
WIDE = md(["COO-", "OH"], (15, 0, 0, 10), (0, 4, 3, 0))  # ICR ~3.6, interval too wide to beat DECISIVE's bound
CENSORED = md(["NH3+", "OH"], (4, 0, 0, 2), (0, 0, 0, 0))  # no transit at -E: ICR only "> x"
REVERSED = md(["NH3+", "OH", "COO-"], (0, 30, 25, 0), (120, 0, 0, 100))  # ICR ~0.25: its mirror image rectifies, ~4
UPPER = md(["OH", "OH", "COO-"], (0, 0, 0, 0), (30, 0, 0, 20))  # no transit at +E: ICR only "< x"
UNRESOLVED = md(["COO-", "COO-", "OH"], (0, 0, 0, 0), (0, 0, 0, 0))  # no transit at either sign
