"""Design + conditions -> graph: the atoms of the pore region of the builder's structure, with edges and globals.

Nodes are atoms of `sim.builder.build(design)`: every rim atom and rim-group atom, plus sheet atoms within
`shell_nm` (radially, from the pore axis of their layer) beyond that layer's outermost rim atom. Edges join
atoms closer than `edge_cutoff_nm` (minimum image in x and y). Units: nm, e, V/nm, M, K.

Mirror symmetry: turning a design upside down (`Design.mirrored()`) flips the sign of the odd features (z,
centred layer index, edge dz, and the field in the globals) and reverses the layer numbering; `mirror_graph`
does that on a featurised graph without rebuilding it.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.spatial import cKDTree

from porelab.sim.builder import build
from porelab.sim.design import SPECIES, Conditions, Design
from porelab.surrogate.params import check_graph_params

if TYPE_CHECKING:
    import torch

ELEMENTS = ("C", "B", "N", "O", "H")
ROLES = ("sheet", "rim", "group")
FIDELITIES = ("continuum", "md")  # anything else is one-hot "other"
NODE_FEATURES = (*(f"el_{e}" for e in ELEMENTS), "charge_e", *(f"role_{r}" for r in ROLES),
                 "layer_centred", "z_nm", "r_nm")
GLOBAL_FEATURES = ("E_V_per_nm/4", "bias_V/20", "sign_E", "log_abs_bias_V/3",
                   *(f"c[{s}]_M" for s in SPECIES), *(f"log_c[{s}]/3" for s in SPECIES),
                   "(T-300)/50", *(f"fid_{f}" for f in FIDELITIES), "fid_other",
                   "box_z_nm/10", "sheet_nm/4", "n_layers/8")
ODD_NODE = (NODE_FEATURES.index("layer_centred"), NODE_FEATURES.index("z_nm"))
ODD_GLOBAL = (0, 1, 2)  # field, bias, sign of the field
FEATURISER_VERSION = 1  # bump whenever this file changes what it computes


@dataclass(frozen=True)
class GraphSettings:
    """Featuriser settings; their hash is stored beside processed data (a mismatch rebuilds it)."""

    shell_nm: float = 0.0  # sheet atoms kept this far (radially) beyond the layer's outermost rim atom
    edge_cutoff_nm: float = 0.35  # 0.35 joins atoms directly above each other at the seed spacing 0.34 nm
    n_rbf: int = 6  # Gaussian radial basis functions of the edge length

    def __post_init__(self):
        check_graph_params(self.to_dict())

    @property
    def edge_features(self) -> tuple[str, ...]:
        return (*(f"rbf_{k}" for k in range(self.n_rbf)), "dz_nm/cutoff", "abs_dz_nm/cutoff")

    @property
    def odd_edge(self) -> tuple[int, ...]:
        return (self.n_rbf,)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def hash(self) -> str:
        """16 hex digits over the settings, the feature names and the featuriser version."""
        state = {"settings": self.to_dict(), "node": NODE_FEATURES, "edge": self.edge_features,
                 "global": GLOBAL_FEATURES, "species": list(SPECIES), "version": FEATURISER_VERSION}
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class DesignGraph:
    """The condition-independent part of a graph (cached per design: treat the tensors as read-only).

    x (N, F) float32 node features; edge_index (2, E) int64 (row 0 source j, row 1 target i); edge_attr (E, Fe)
    float32; layer (N,) int64, 0 = bottom; layer_z (n_layers,) float32 nm from the stack centre.
    """

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    layer: torch.Tensor
    layer_z: torch.Tensor

    @property
    def n_layers(self) -> int:
        return len(self.layer_z)


def _wrap(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    return d - box * np.round(d / box)


def pore_axis(centres: np.ndarray, box_xy: np.ndarray) -> np.ndarray:
    """Mean (x, y) of the layers' pore centres (n_layers, 2), nm, by minimum image around layer 0's."""
    return centres[0] + _wrap(centres - centres[0], box_xy).mean(axis=0)


def featurise_design(design: Design, settings: GraphSettings = GraphSettings()) -> DesignGraph:
    """Pore-region graph of the atomistic structure `build(design)` (cached, shared: do not modify in place)."""
    return _featurise(design, settings)


@functools.lru_cache(maxsize=8192)
def _featurise(design: Design, settings: GraphSettings) -> DesignGraph:
    s = build(design)
    box_xy = s.box[:2]
    n_layers = len(design.layers)
    rel_own = _wrap(s.positions[:, :2] - s.pore_center[s.layer], box_xy)
    r_own = np.hypot(rel_own[:, 0], rel_own[:, 1])
    is_sheet = s.roles == "sheet"
    rim = s.roles == "rim"
    r_rim_max = np.zeros(n_layers)
    np.maximum.at(r_rim_max, s.layer[rim], r_own[rim])
    keep = ~is_sheet | (r_own < r_rim_max[s.layer] + settings.shell_nm)
    idx = np.flatnonzero(keep)

    zc = design.box_z_nm / 2  # the stack is centred on the box centre
    rel = _wrap(s.positions[idx, :2] - pore_axis(s.pore_center, box_xy), box_xy)
    z = s.positions[idx, 2] - zc
    layer = s.layer[idx]
    n = len(idx)
    x = np.zeros((n, len(NODE_FEATURES)), np.float32)
    el = s.elements[idx]
    for k, e in enumerate(ELEMENTS):
        x[:, k] = el == e
    x[:, len(ELEMENTS)] = s.charges[idx]
    roles = s.roles[idx]
    for k, r in enumerate(ROLES):
        x[:, len(ELEMENTS) + 1 + k] = roles == r
    x[:, ODD_NODE[0]] = layer - (n_layers - 1) / 2
    x[:, ODD_NODE[1]] = z
    x[:, -1] = np.hypot(rel[:, 0], rel[:, 1])

    edge_index, edge_attr = _edges(rel, z, box_xy, settings)
    layer_z = np.asarray(design.layer_z_nm()) - zc
    import torch  # here, not at import: the descriptor models (RF, GP) use this module without torch

    return DesignGraph(torch.from_numpy(x), torch.from_numpy(edge_index), torch.from_numpy(edge_attr),
                       torch.from_numpy(layer.astype(np.int64)), torch.from_numpy(layer_z.astype(np.float32)))


def _edges(rel_xy: np.ndarray, z: np.ndarray, box_xy: np.ndarray, settings: GraphSettings):
    """Directed pairs (both directions) closer than the cutoff, with RBF(distance), dz and |dz| features."""
    cut = settings.edge_cutoff_nm
    periodic = np.abs(rel_xy).max(initial=0.0) + cut >= box_xy.min() / 2  # could an image be within reach?
    if periodic:  # cKDTree wants coordinates inside [0, boxsize)
        tree = cKDTree(np.column_stack([rel_xy % box_xy, z + 500.0]), boxsize=[box_xy[0], box_xy[1], 1000.0])
    else:
        tree = cKDTree(np.column_stack([rel_xy, z]))
    pairs = tree.query_pairs(cut, output_type="ndarray")
    i, j = pairs[:, 0], pairs[:, 1]
    dxy = rel_xy[j] - rel_xy[i]
    if periodic:
        dxy -= box_xy * np.round(dxy / box_xy)
    dz = z[j] - z[i]
    dist = np.sqrt((dxy * dxy).sum(axis=1) + dz * dz)
    nr = settings.n_rbf
    centres = np.linspace(0.1, cut, nr)
    width = (cut - 0.1) / max(nr - 1, 1)
    half = np.empty((len(pairs), nr + 2), np.float32)
    half[:, :nr] = np.exp(-(((dist[:, None] - centres[None, :]) / width) ** 2))
    half[:, nr] = dz / cut  # target minus source: > 0 when the message travels up
    half[:, nr + 1] = np.abs(dz) / cut
    attr = np.concatenate([half, half])
    attr[len(pairs):, nr] *= -1
    edge_index = np.concatenate([pairs.T, pairs.T[::-1]], axis=1).astype(np.int64)
    return edge_index, attr


def global_features(design: Design, electrolyte: dict[str, float], temperature_K: float, field_V_per_nm: float,
                    fidelity: str) -> np.ndarray:
    """Condition features, shape (len(GLOBAL_FEATURES),); the bias is E * box_z_nm (the periodic box's V)."""
    e = float(field_V_per_nm)
    bias = e * design.box_z_nm
    u = [e / 4, bias / 20, math.copysign(1.0, e) if e else 0.0, math.log(max(abs(bias), 1e-3)) / 3]
    u += [electrolyte.get(sp, 0.0) for sp in SPECIES]
    u += [math.log(electrolyte[sp]) / 3 if sp in electrolyte else 0.0 for sp in SPECIES]
    u += [(temperature_K - 300.0) / 50]
    u += [float(fidelity == f) for f in FIDELITIES] + [float(fidelity not in FIDELITIES)]
    u += [design.box_z_nm / 10, design.sheet_nm / 4, len(design.layers) / 8]
    return np.asarray(u, np.float32)


def mirror_globals(u):
    """Globals (..., G) (tensor or ndarray) with the field reversed."""
    u = u.clone() if hasattr(u, "clone") else np.array(u)  # a torch tensor, or array-like
    u[..., list(ODD_GLOBAL)] *= -1
    return u


def mirror_graph(g: DesignGraph, settings: GraphSettings = GraphSettings()) -> DesignGraph:
    """The graph of the design turned upside down: odd features negated, layers renumbered top to bottom."""
    x, e = g.x.clone(), g.edge_attr.clone()
    x[:, list(ODD_NODE)] *= -1
    e[:, list(settings.odd_edge)] *= -1
    return DesignGraph(x, g.edge_index, e, g.n_layers - 1 - g.layer, -g.layer_z.flip(0))


def to_data(design: Design, conditions: Conditions, field_V_per_nm: float, fidelity: str = "continuum",
            settings: GraphSettings = GraphSettings()):
    """One graph as a torch_geometric Data: x, edge_index, edge_attr, layer, layer_z, u (1, G) globals."""
    import torch
    from torch_geometric.data import Data

    g = featurise_design(design, settings)
    u = global_features(design, conditions.electrolyte, conditions.temperature_K, field_V_per_nm, fidelity)
    return Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, layer=g.layer, layer_z=g.layer_z,
                u=torch.from_numpy(u)[None], num_nodes=g.x.shape[0])
