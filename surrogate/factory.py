"""Surrogates by kind: a new unfitted model of a kind (gnn: DeepEnsemble, rf: RFBaseline, gp: GPBaseline), the kind of
a model, and what its inputs are computed with. The multi-fidelity wrapper is surrogate.fidelity's."""

from __future__ import annotations

from porelab.surrogate.descriptors import DESCRIPTOR_VERSION
from porelab.surrogate.params import check_model_params

KINDS = ("gnn", "rf", "gp")  # DeepEnsemble, RFBaseline, GPBaseline


def new_model(kind: str, **params):
    """An unfitted surrogate of `kind` with constructor keywords `params`; ValueError naming a bad one."""
    check_model_params(kind, params)
    if kind == "gnn":  # imported here: torch and PyG load only when a GNN is asked for
        from porelab.surrogate.ensemble import DeepEnsemble  # torch and PyG: see the line above

        return DeepEnsemble(**params)
    from porelab.surrogate.baselines import GPBaseline, RFBaseline  # here: sklearn loads only when one is asked for

    return RFBaseline(**params) if kind == "rf" else GPBaseline(**params)


def model_kind(model) -> str:
    """"gnn", "rf" or "gp": the class's `kind` (a FidelityModel's is its base model's)."""
    return model.kind


def featuriser(model) -> str:
    """What the model's inputs were computed with: the graph featuriser's hash, or the descriptors' version."""
    if model_kind(model) == "gnn":
        return f"graph-{model.settings.hash()}"
    return f"descriptors-v{DESCRIPTOR_VERSION}"
