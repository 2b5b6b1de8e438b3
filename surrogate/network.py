"""A message-passing GNN with mean and variance heads, for M ensemble members evaluated in one pass.

Every weight carries a leading member axis (M, ...), so the members of a deep ensemble train and predict
together in batched matrix products; hidden node states are (M, N, H).

Architecture (per member):
  atoms:   h = SiLU(W x); n_conv residual GINE-style convolutions with edge features (distance RBF, dz, |dz|);
  layers:  mean- and sum-pool h over the atoms of each layer, append the layer's z; a GRU reads the layers bottom
           to top (so the stack's order matters: the model knows up from down);
  design:  [GRU state, mean over layers];
  sample:  MLP([design, globals]) -> per species A, B; mean = sign(E) * A (odd in the field at fixed A),
           variance = softplus(B) + 1e-4 (standardised target units).
`symmetric_forward` averages a graph at E with its mirror image at -E, which makes the predicted flux reverse
exactly when the design is turned upside down and the field reversed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn import MessagePassing

from porelab.surrogate.graph import ODD_GLOBAL, ODD_NODE, DesignGraph, GraphSettings, mirror_globals

SIGN_E = ODD_GLOBAL[2]  # column of the globals holding sign(E)
MIN_VAR = 1e-4


class MemberLinear(nn.Module):
    """y = x W_m + b_m for every member m. x (M, N, d_in) or (N, d_in) -> (M, N, d_out)."""

    def __init__(self, n_members: int, d_in: int, d_out: int):
        super().__init__()
        bound = 1 / math.sqrt(d_in)
        self.weight = nn.Parameter(torch.empty(n_members, d_in, d_out).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_members, 1, d_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return torch.matmul(x, self.weight) + self.bias
        return torch.baddbmm(self.bias, x, self.weight)


class MemberMLP(nn.Sequential):
    def __init__(self, n_members: int, dims: list[int]):
        mods: list[nn.Module] = []
        for k, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
            mods.append(MemberLinear(n_members, a, b))
            if k < len(dims) - 2:
                mods.append(nn.SiLU())
        super().__init__(*mods)


class MemberGINEConv(MessagePassing):
    """h_i <- h_i + MLP([h_i, sum_j SiLU(P h_j + W_e e_ij) / deg_norm]), node states (M, N, H).

    Messages live in a narrow space (msg_dim < H), laid out (E, M * msg_dim) so that gathering and summing over
    edges run on contiguous rows: the per-edge tensors dominate the cost.
    """

    def __init__(self, n_members: int, hidden: int, n_edge: int, msg_dim: int = 16, deg_norm: float = 8.0):
        super().__init__(aggr="add", node_dim=0)
        self.down = MemberLinear(n_members, hidden, msg_dim)
        self.edge = MemberLinear(n_members, n_edge, msg_dim)
        self.mlp = MemberMLP(n_members, [hidden + msg_dim, hidden, hidden])
        self.deg_norm = deg_norm

    def forward(self, h: torch.Tensor, edge_index: torch.Tensor, edge_attr: torch.Tensor) -> torch.Tensor:
        m, n, _ = h.shape
        k = self.edge.weight.shape[-1]
        p = self.down(h).transpose(0, 1).reshape(n, m * k)  # (N, M*k)
        w = self.edge.weight.transpose(0, 1).reshape(-1, m * k)
        e = torch.addmm(self.edge.bias.reshape(1, m * k), edge_attr, w)  # (E, M*k)
        agg = self.propagate(edge_index, x=p, e=e).reshape(n, m, k).transpose(0, 1)
        return h + self.mlp(torch.cat([h, agg / self.deg_norm], dim=-1))

    def message(self, x_j: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return F.silu(x_j + e)

    def aggregate(self, inputs: torch.Tensor, index: torch.Tensor, ptr=None, dim_size: int | None = None):
        """Sum over incoming edges with index_add_ on contiguous rows (faster here than PyG's scatter)."""
        return inputs.new_zeros(dim_size, inputs.shape[1]).index_add_(0, index, inputs)


class MemberGRU(nn.Module):
    """GRU over a padded sequence (M, B, L, D) with lengths (B,); returns the last valid state (M, B, H)."""

    def __init__(self, n_members: int, d_in: int, hidden: int):
        super().__init__()
        self.hidden = hidden
        self.wx = MemberLinear(n_members, d_in, 3 * hidden)
        self.wh = MemberLinear(n_members, hidden, 3 * hidden)

    def forward(self, seq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        m, b, n_steps, d = seq.shape
        hd = self.hidden
        gx = self.wx(seq.reshape(m, b * n_steps, d)).reshape(m, b, n_steps, 3 * hd)
        h = seq.new_zeros(m, b, hd)
        for k in range(n_steps):
            gh = self.wh(h)
            r = torch.sigmoid(gx[:, :, k, :hd] + gh[..., :hd])
            z = torch.sigmoid(gx[:, :, k, hd:2 * hd] + gh[..., hd:2 * hd])
            n = torch.tanh(gx[:, :, k, 2 * hd:] + r * gh[..., 2 * hd:])
            h = torch.where((k < lengths)[None, :, None], (1 - z) * n + z * h, h)
        return h


@dataclass
class GraphBatch:
    """Graphs concatenated: x (N, F), edge_index (2, E), edge_attr (E, Fe), node_seg (N,) index of the node's
    (graph, layer) segment, seg_z (n_seg,) the layer's z (nm), seg_graph (n_seg,), seg_pos (n_seg,) layer index,
    n_layers (B,)."""

    x: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    node_seg: torch.Tensor
    seg_z: torch.Tensor
    seg_graph: torch.Tensor
    seg_pos: torch.Tensor
    n_layers: torch.Tensor

    @property
    def n_graphs(self) -> int:
        return len(self.n_layers)


def collate(graphs: list[DesignGraph]) -> GraphBatch:
    """Concatenate design graphs into one GraphBatch (node indices offset per graph)."""
    n_nodes = torch.tensor([g.x.shape[0] for g in graphs])
    n_layers = torch.tensor([g.n_layers for g in graphs])
    node_off = torch.cumsum(n_nodes, 0) - n_nodes
    seg_off = torch.cumsum(n_layers, 0) - n_layers
    ei = torch.cat([g.edge_index + o for g, o in zip(graphs, node_off.tolist(), strict=True)], dim=1)
    node_seg = torch.cat([g.layer + o for g, o in zip(graphs, seg_off.tolist(), strict=True)])
    seg_graph = torch.repeat_interleave(torch.arange(len(graphs)), n_layers)
    seg_pos = torch.arange(len(seg_graph)) - seg_off[seg_graph]
    return GraphBatch(torch.cat([g.x for g in graphs]), ei, torch.cat([g.edge_attr for g in graphs]), node_seg,
                      torch.cat([g.layer_z for g in graphs]), seg_graph, seg_pos, n_layers)


class PoreGNN(nn.Module):
    """M-member GNN: graphs -> design embeddings (M, B, D); (design, globals) -> mean, variance (M, n, S)."""

    def __init__(self, n_members: int, n_node: int, n_edge: int, n_global: int, n_out: int, hidden: int = 32,
                 n_conv: int = 3, msg_dim: int = 16, head_hidden: int = 64):
        super().__init__()
        m, hd = n_members, hidden
        self.n_members = m
        self.embed = MemberLinear(m, n_node, hd)
        self.convs = nn.ModuleList([MemberGINEConv(m, hd, n_edge, msg_dim) for _ in range(n_conv)])
        self.gru = MemberGRU(m, 2 * hd + 1, hd)
        self.head = MemberMLP(m, [hd + 2 * hd + 1 + n_global, head_hidden, head_hidden, 2 * n_out])
        self.n_out = n_out

    def encode(self, b: GraphBatch) -> torch.Tensor:
        """Design embeddings (M, B, 3H + 1)."""
        h = F.silu(self.embed(b.x))
        for conv in self.convs:
            h = conv(h, b.edge_index, b.edge_attr)
        n_seg = len(b.seg_z)
        m, _, hd = h.shape
        seg_sum = h.new_zeros(m, n_seg, hd).index_add_(1, b.node_seg, h)
        count = torch.bincount(b.node_seg, minlength=n_seg).clamp(min=1).to(h.dtype)
        z = b.seg_z[None, :, None].expand(m, n_seg, 1)
        layer_feat = torch.cat([seg_sum / count[None, :, None], seg_sum / 50.0, z], dim=-1)  # (M, n_seg, 2H+1)
        n_max = int(b.n_layers.max())
        seq = layer_feat.new_zeros(m, b.n_graphs, n_max, layer_feat.shape[-1])
        seq[:, b.seg_graph, b.seg_pos] = layer_feat
        state = self.gru(seq, b.n_layers)
        mean_layer = seq.sum(dim=2) / b.n_layers[None, :, None].to(h.dtype)
        return torch.cat([state, mean_layer], dim=-1)

    def head_forward(self, emb: torch.Tensor, sample_graph: torch.Tensor, u: torch.Tensor):
        """Mean and variance (M, n, S) for samples with globals u (n, G) on graphs sample_graph (n,)."""
        m = emb.shape[0]
        inp = torch.cat([emb[:, sample_graph], u[None].expand(m, -1, -1)], dim=-1)
        out = self.head(inp)
        a, v = out[..., :self.n_out], out[..., self.n_out:]
        return u[None, :, SIGN_E, None] * a, F.softplus(v) + MIN_VAR

    def forward(self, b: GraphBatch, sample_graph: torch.Tensor, u: torch.Tensor):
        return self.head_forward(self.encode(b), sample_graph, u)


def with_mirror(b: GraphBatch, settings: GraphSettings) -> GraphBatch:
    """The batch followed by the mirror image of each of its graphs: collate(graphs + [mirror_graph(g), ...]),
    made from the batch in a few tensor operations instead of graph by graph."""
    seg_off = torch.cumsum(b.n_layers, 0) - b.n_layers
    rev = seg_off[b.seg_graph] + b.n_layers[b.seg_graph] - 1 - b.seg_pos  # layer k of L <-> layer L - 1 - k
    x, e = b.x.clone(), b.edge_attr.clone()
    x[:, list(ODD_NODE)] *= -1
    e[:, list(settings.odd_edge)] *= -1
    n_nodes, n_seg = b.x.shape[0], len(b.seg_z)
    return GraphBatch(torch.cat([b.x, x]), torch.cat([b.edge_index, b.edge_index + n_nodes], dim=1),
                      torch.cat([b.edge_attr, e]), torch.cat([b.node_seg, rev[b.node_seg] + n_seg]),
                      torch.cat([b.seg_z, -b.seg_z[rev]]), torch.cat([b.seg_graph, b.seg_graph + b.n_graphs]),
                      torch.cat([b.seg_pos, b.seg_pos]), torch.cat([b.n_layers, b.n_layers]))


def symmetric_forward(model: PoreGNN, graphs: list[DesignGraph], sample_graph: torch.Tensor, u: torch.Tensor,
                      settings: GraphSettings | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exactly mirror-antisymmetric prediction (M, n, S) for samples with globals u (n, G) on graphs sample_graph.

    mean = (f(G, E) - f(mirror G, -E)) / 2, variance = (v(G, E) + v(mirror G, -E)) / 2.
    """
    settings = settings or GraphSettings()
    emb = model.encode(with_mirror(collate(graphs), settings))
    n = len(graphs)
    mu1, v1 = model.head_forward(emb[:, :n], sample_graph, u)
    mu2, v2 = model.head_forward(emb[:, n:], sample_graph, mirror_globals(u))
    return 0.5 * (mu1 - mu2), 0.5 * (v1 + v2)
