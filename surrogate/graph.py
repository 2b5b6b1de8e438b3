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
import hashlib
import json
import math
from collections import OrderedDict
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
FIDELITY_COLUMNS = tuple(GLOBAL_FEATURES.index(f"fid_{f}") for f in (*FIDELITIES, "other"))
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
    return featurise_designs([design], settings)[0]


REGION_MARGIN_NM = 0.01
CACHE_SIZE = 8192  # graphs kept (least recently used dropped)
_CACHE: OrderedDict = OrderedDict()


def featurise_designs(designs: list[Design], settings: GraphSettings = GraphSettings()) -> list[DesignGraph]:
    """The graph of each design: cached ones reused, the others featurised together (vectorised over designs;
    the same graphs as one at a time). Cached and shared: do not modify them in place."""
    out: list[DesignGraph | None] = [None] * len(designs)
    todo: dict[Design, list[int]] = {}
    for k, d in enumerate(designs):
        g = _CACHE.get((d, settings))
        if g is None:
            todo.setdefault(d, []).append(k)
        else:
            _CACHE.move_to_end((d, settings))
            out[k] = g
    if todo:
        for d, g in zip(todo, _featurise_many(list(todo), settings), strict=True):
            for k in todo[d]:
                out[k] = g
            _CACHE[(d, settings)] = g
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return out


def clear_cache() -> None:
    """Forget every cached graph."""
    _CACHE.clear()


def _featurise_many(designs: list[Design], settings: GraphSettings) -> list[DesignGraph]:
    """Graphs of designs, built in one vectorised pass over all their atoms (see the module docstring)."""
    import torch  # here, not at import: the descriptor models (RF, GP) use this module without torch

    # the builder's pore region with a margin (its minimum image differs from ours by rounding); filtered below
    structs = [build(d, pore_region_nm=settings.shell_nm + REGION_MARGIN_NM) for d in designs]
    n_atoms = np.array([s.n_atoms for s in structs])
    n_layers = np.array([len(d.layers) for d in designs])
    dsg = np.repeat(np.arange(len(designs)), n_atoms)  # design of each atom
    seg = np.concatenate([s.layer for s in structs]) + np.repeat(np.cumsum(n_layers) - n_layers, n_atoms)
    pos = np.concatenate([s.positions for s in structs])
    roles = np.concatenate([s.roles for s in structs])
    centres = np.concatenate([s.pore_center for s in structs])  # (total layers, 2)
    box = np.array([s.box[:2] for s in structs])  # (designs, 2)
    rel_own = _wrap(pos[:, :2] - centres[seg], box[dsg])
    r_own = np.hypot(rel_own[:, 0], rel_own[:, 1])
    is_sheet, rim = roles == "sheet", roles == "rim"
    starts = np.searchsorted(seg, np.arange(len(centres)))  # atoms come layer by layer, design by design
    r_rim_max = np.maximum.reduceat(np.where(rim, r_own, 0.0), starts)  # per layer, at least 0
    idx = np.flatnonzero(~is_sheet | (r_own < r_rim_max[seg] + settings.shell_nm))

    axes = np.array([pore_axis(s.pore_center, s.box[:2]) for s in structs])
    nd = dsg[idx]
    rel = _wrap(pos[idx, :2] - axes[nd], box[nd])
    z = pos[idx, 2] - np.array([d.box_z_nm / 2 for d in designs])[nd]  # the stack is centred on the box centre
    layer = seg[idx] - (np.cumsum(n_layers) - n_layers)[nd]
    x = np.zeros((len(idx), len(NODE_FEATURES)), np.float32)
    x[:, :len(ELEMENTS)] = _one_hot(np.concatenate([s.elements for s in structs])[idx], ELEMENTS)
    x[:, len(ELEMENTS)] = np.concatenate([s.charges for s in structs])[idx]
    x[:, len(ELEMENTS) + 1:len(ELEMENTS) + 1 + len(ROLES)] = _one_hot(roles[idx], ROLES)
    x[:, ODD_NODE[0]] = layer - (n_layers[nd] - 1) / 2
    x[:, ODD_NODE[1]] = z
    x[:, -1] = np.hypot(rel[:, 0], rel[:, 1])

    pairs = _pairs(rel, z, nd, box, settings.edge_cutoff_nm)  # (P, 2), sorted by design
    attr = _edge_features(rel, z, pairs, box[nd[pairs[:, 0]]], settings)
    node_end = np.searchsorted(nd, np.arange(len(designs)), side="right")
    pair_end = np.searchsorted(nd[pairs[:, 0]], np.arange(len(designs)), side="right")
    out = []
    for k, d in enumerate(designs):
        n0, n1 = (node_end[k - 1] if k else 0), node_end[k]
        p0, p1 = (pair_end[k - 1] if k else 0), pair_end[k]
        p = (pairs[p0:p1] - n0).T
        ea = np.concatenate([attr[p0:p1], attr[p0:p1]])
        ea[p1 - p0:, settings.n_rbf] *= -1  # the reverse edge sees the opposite dz
        layer_z = np.asarray(d.layer_z_nm()) - d.box_z_nm / 2
        out.append(DesignGraph(torch.from_numpy(x[n0:n1]), torch.from_numpy(np.concatenate([p, p[::-1]], axis=1)),
                               torch.from_numpy(ea), torch.from_numpy(layer[n0:n1]),
                               torch.from_numpy(layer_z.astype(np.float32))))
    return out


def _one_hot(values: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """(n, len(names)) 0/1 of values (n,) str; a value not in names gives a zero row."""
    order = np.argsort(names)
    sorted_names = np.asarray(names)[order]
    pos = np.minimum(np.searchsorted(sorted_names, values), len(names) - 1)
    found = sorted_names[pos] == values
    out = np.zeros((len(values), len(names)), np.float32)
    out[np.flatnonzero(found), order[pos[found]]] = 1.0
    return out


def _pairs(rel_xy: np.ndarray, z: np.ndarray, design: np.ndarray, box: np.ndarray, cut: float) -> np.ndarray:
    """(P, 2) node pairs i < j of the same design at most `cut` apart (minimum image in x and y), sorted by
    design. Nodes (n,): rel_xy (n, 2), z (n,), design (n,) ascending; box (designs, 2) nm."""
    out = []
    for b in np.unique(box, axis=0):  # one periodic k-d tree per cell size; designs stacked far apart in z
        sel = np.flatnonzero((box[design] == b).all(axis=1))
        span = float(np.abs(z[sel]).max(initial=0.0)) + cut + 1.0
        zz = z[sel] + span + 2 * span * design[sel]
        xy = rel_xy[sel] % b
        xy[xy >= b] = 0.0  # -1e-17 % b is b: the same point of the periodic cell
        tree = cKDTree(np.column_stack([xy, zz]), boxsize=[b[0], b[1], 2 * span * (design[-1] + 2)])
        p = sel[tree.query_pairs(cut, output_type="ndarray")]
        out.append(np.sort(p, axis=1))
    p = np.concatenate(out) if out else np.zeros((0, 2), int)
    return p[np.argsort(design[p[:, 0]], kind="stable")]


def _edge_features(rel_xy: np.ndarray, z: np.ndarray, pairs: np.ndarray, box: np.ndarray,
                   settings: GraphSettings) -> np.ndarray:
    """(P, n_rbf + 2) features of the edges i -> j of pairs (P, 2): RBF(distance), dz / cutoff, |dz| / cutoff."""
    cut = settings.edge_cutoff_nm
    i, j = pairs[:, 0], pairs[:, 1]
    dxy = rel_xy[j] - rel_xy[i]
    dxy -= box * np.round(dxy / box)  # a no-op for pairs that are not across the periodic boundary
    dz = z[j] - z[i]
    dist = np.sqrt((dxy * dxy).sum(axis=1) + dz * dz)
    nr = settings.n_rbf
    centres = np.linspace(0.1, cut, nr)
    width = (cut - 0.1) / max(nr - 1, 1)
    half = np.empty((len(pairs), nr + 2), np.float32)
    half[:, :nr] = np.exp(-(((dist[:, None] - centres[None, :]) / width) ** 2))
    half[:, nr] = dz / cut  # target minus source: > 0 when the message travels up
    half[:, nr + 1] = np.abs(dz) / cut
    return half


def global_features(design: Design, electrolyte: dict[str, float], temperature_K: float, field_V_per_nm: float,
                    fidelity: str) -> np.ndarray:
    """Condition features, shape (len(GLOBAL_FEATURES),); the bias is E * box_z_nm (the periodic box's V)."""
    e = float(field_V_per_nm)
    bias = e * design.box_z_nm
    u = [e / 4, bias / 20, math.copysign(1.0, e) if e else 0.0, math.log(max(abs(bias), 1e-3)) / 3]
    u += [electrolyte.get(sp, 0.0) for sp in SPECIES]
    u += [math.log(electrolyte[sp]) / 3 if sp in electrolyte else 0.0 for sp in SPECIES]
    u += [(temperature_K - 300.0) / 50]
    u += fidelity_onehot(fidelity)
    u += [design.box_z_nm / 10, design.sheet_nm / 4, len(design.layers) / 8]
    return np.asarray(u, np.float32)


def fidelity_onehot(fidelity: str) -> list[float]:
    """The fidelity's one-hot part of the globals (columns FIDELITY_COLUMNS)."""
    return [float(fidelity == f) for f in FIDELITIES] + [float(fidelity not in FIDELITIES)]


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
    import torch  # torch and PyG only when a graph is made (the descriptor models use this module without)
    from torch_geometric.data import Data

    g = featurise_design(design, settings)
    u = global_features(design, conditions.electrolyte, conditions.temperature_K, field_V_per_nm, fidelity)
    return Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr, layer=g.layer, layer_z=g.layer_z,
                u=torch.from_numpy(u)[None], num_nodes=g.x.shape[0])
