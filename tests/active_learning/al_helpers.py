"""Shared helpers for the active_learning tests: small continuum studies written to YAML, and test oracles."""

import copy
import textwrap
from pathlib import Path

import yaml

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

