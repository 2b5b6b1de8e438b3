"""Checks of the surrogate's keywords (DeepEnsemble, RFBaseline, GPBaseline, GraphSettings) without importing torch.

Each check raises ValueError with a one-line message naming the keyword and its allowed range, so a typo in a
study or a train config is refused before anything is written, not deep inside training.
"""

from __future__ import annotations

import math
from typing import Any

_INT, _FLOAT, _BOOL, _STR = "an integer", "a number", "true or false", "a string"

#: DeepEnsemble keyword -> (kind, lowest, highest, lowest excluded); None: unbounded on that side.
ENSEMBLE_PARAMS: dict[str, tuple] = {
    "n_members": (_INT, 1, 256, False), "hidden": (_INT, 1, 4096, False), "n_conv": (_INT, 0, 64, False),
    "msg_dim": (_INT, 1, 4096, False), "head_hidden": (_INT, 1, 4096, False), "lr": (_FLOAT, 0, 10, False),
    "weight_decay": (_FLOAT, 0, 10, False), "batch_designs": (_INT, 1, None, False),
    "max_epochs": (_INT, 1, None, False), "patience": (_INT, 1, None, False),
    "val_fraction": (_FLOAT, 0, 0.9, False), "beta": (_FLOAT, 0, 1, False), "icr_weight": (_FLOAT, 0, None, False),
    "schedule": (_STR, ("plateau", "cosine")), "symmetry": (_STR, ("none", "augment", "exact")),
    "calibrate": (_BOOL,), "graph_settings": ("graph",), "flux_scale_per_ns": (_FLOAT, 0, None, True),
    "warm_start": (_BOOL,), "seed": (_INT, 0, 2**32 - 1, False), "progress": (_BOOL,),
    "n_threads": (_INT, 1, 1024, False), "compile_predict": (_BOOL,),
}
#: RFBaseline / GPBaseline keywords, as above.
_DESCRIPTOR_COMMON: dict[str, tuple] = {
    "symmetric": (_BOOL,), "calibrate": (_BOOL,), "val_fraction": (_FLOAT, 0, 0.9, False),
    "flux_scale_per_ns": (_FLOAT, 0, None, True), "seed": (_INT, 0, 2**32 - 1, False), "learn_censored": (_BOOL,),
}
RF_PARAMS: dict[str, tuple] = {
    "n_estimators": (_INT, 2, 10_000, False), "min_samples_leaf": (_INT, 1, None, False),
    "max_features": (_FLOAT, 0, 1, True), "n_jobs": (_INT, 1, 1024, False), **_DESCRIPTOR_COMMON,
}
GP_PARAMS: dict[str, tuple] = {
    "max_train": (_INT, 2, 100_000, False), "max_iter": (_INT, 0, 100_000, False),
    "n_restarts": (_INT, 0, 100, False), "n_draws": (_INT, 2, 4096, False), **_DESCRIPTOR_COMMON,
}
MODEL_PARAMS = {"gnn": ENSEMBLE_PARAMS, "rf": RF_PARAMS, "gp": GP_PARAMS}  # by model kind
#: How surrogate.fidelity.FidelityModel learns several fidelities. Default delta: on continuum data plus synthetic
#: MD with a known gap (tests/surrogate/test_fidelity.py) it predicts held-out MD fluxes with < 0.5x the RMSE of
#: the continuum's answer, feature < 0.8x. Not yet compared on real held-out MD.
FIDELITY_APPROACHES = ("delta", "feature")
DEFAULT_FIDELITY_APPROACH = "delta"
GRAPH_PARAMS: dict[str, tuple] = {
    "shell_nm": (_FLOAT, 0, 5, False), "edge_cutoff_nm": (_FLOAT, 0, 2, True), "n_rbf": (_INT, 1, 64, False),
}


def _check_one(where: str, value: Any, spec: tuple) -> None:
    kind = spec[0]
    if kind == "graph":
        if value is not None:
            check_graph_params(value, f"{where}.")
        return
    if kind == _BOOL:
        if not isinstance(value, bool):
            raise ValueError(f"{where}={value!r} must be {kind}")
        return
    if kind == _STR:
        if value not in spec[1]:
            raise ValueError(f"{where}={value!r} is unknown; choose one of {', '.join(spec[1])}")
        return
    if where.endswith("n_threads") and value is None:
        return
    ok = isinstance(value, int) if kind == _INT else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        raise ValueError(f"{where}={value!r} must be {kind}")
    lo, hi, open_lo = spec[1:]
    if (lo is not None and (value <= lo if open_lo else value < lo)) or (hi is not None and value > hi):
        rng = f"{'(' if open_lo else '['}{lo}, {hi if hi is not None else 'inf'}]"
        raise ValueError(f"{where}={value!r} is outside {rng}")


def _check(params: Any, table: dict[str, tuple], prefix: str) -> None:
    if not isinstance(params, dict):
        raise ValueError(f"{prefix.rstrip('.') or 'params'} must be a mapping, got {params!r}")
    for key, value in params.items():
        if key not in table:
            raise ValueError(f"{prefix}{key} is not a keyword; known: {', '.join(table)}")
        _check_one(f"{prefix}{key}", value, table[key])


def check_ensemble_params(params: Any, prefix: str = "") -> None:
    """ValueError naming the first DeepEnsemble keyword that is unknown, of the wrong type or out of range."""
    _check(params, ENSEMBLE_PARAMS, prefix)


def check_graph_params(params: Any, prefix: str = "") -> None:
    """ValueError naming the first GraphSettings keyword that is unknown, of the wrong type or out of range."""
    _check(params, GRAPH_PARAMS, prefix)


def check_model_params(kind: str, params: Any, prefix: str = "") -> None:
    """ValueError naming the model kind when unknown, else the first keyword of that kind's model that is unknown,
    of the wrong type or out of range."""
    if kind not in MODEL_PARAMS:
        raise ValueError(f"{prefix}kind={kind!r} is unknown; choose one of {', '.join(MODEL_PARAMS)}")
    _check(params, MODEL_PARAMS[kind], prefix)
