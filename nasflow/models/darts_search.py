"""Search supernet of the DARTS cell space for differentiable and weight-sharing search (DARTS, GDAS, RSPS),
after quark0/darts cnn/model_search.py (`Network`, `Cell`, `MixedOp`).

Why it looks like this:

* One network for every method. The supernet is DARTS's: every intermediate node k = 2..5 reads *all* its
  k predecessors, one mixed edge each (14 edges per cell, edge index `sum(range(2, k)) + input`), and every
  edge owns all 8 ops of `spaces.darts.OPS`, `none` included -- so DARTS' softmax, GDAS' one-op-per-edge
  sample and a final 2-input genotype are all sub-networks of the same weights. A genotype is the supernet
  with `none` on every edge it does not use (`edge_ops`), which is how `fixed` and `uniform` run it.
* Two alpha tensors, `alphas_normal` and `alphas_reduce` (14 x 8, `1e-3 * randn`), each shared by all cells
  of its kind, as DARTS: a genotype has one normal and one reduce cell, so there is nothing per layer to
  learn. Both are `arch_parameters()`; `probs()` stacks their softmax as [2, 14, 8] (normal, reduce).
* BNs in the cells are not affine (DARTS' search model; an affine BN after a mixed op would let the weights
  rescale an op and fight the alphas), and by default do not track running statistics (batch statistics in
  train and eval mode, the NB201 paper's advice for weight sharing; DARTS itself tracks them). Pool ops get
  a non-affine BN after them, as DARTS, to put them on the scale of the conv ops. The stem keeps DARTS'
  ordinary BN.

`mode` (as `NB201SearchNetwork`; `set_mode` or `forward(x, mode=..., arch=...)`):

* `darts`   each edge is sum_o softmax(alpha)[o] * op_o(x); `none` is not run (it adds zero; its alpha
            still moves through the softmax).
* `gdas`    per forward one straight-through Gumbel hard sample for the normal alphas and one for the reduce
            alphas (`nb201_search.gumbel_hard_weights`), shared by all cells of a kind; each edge runs only
            its sampled op and adds the other (zero-valued) weights, so every alpha gets a gradient.
            Every edge stays live, so a node sums k sampled ops (GDAS in the DARTS space does the same).
* `uniform` per forward a random genotype (`random_arch`, the BPE paper's draw): only its 8 pairs per cell
            run (RSPS).
* `fixed`   a given genotype (string) or edge-op pair (as `last_arch`).

`setn` is not supported here: its final pick ranks whole architectures by probability, which in this space
means a top-k over ~1e18 genotypes (`NB201SearchNetwork.topk_archs` enumerates 15,625).

`last_arch` is the last discrete forward's arch as edge ops: (normal, reduce), 14 op indices each into
`spaces.darts.OPS` (`none` for an unused edge) -- forwardable as `arch=`. `genotype()` derives DARTS' final
cell: per node the two incoming edges whose strongest non-`none` softmax weight is largest, each with that
argmax op, written input-ascending, as a canonical genotype string.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import torch
from torch import nn

from nasflow.errors import ArchError, ParamsError
from nasflow.models.darts import FactorizedReduce, build_stem_and_cells, make_op
from nasflow.models.nb201_search import GumbelDraws
from nasflow.models.ops import PathSampling, ReLUConvBN
from nasflow.spaces import darts as space

__all__ = ["DartsSearchNetwork", "DartsSearchCell", "MODES", "N_EDGES", "EDGE_START", "edge_ops"]

MODES = ("darts", "gdas", "uniform", "fixed")
N_OPS = len(space.OPS)  # 8
NONE = space.OPS.index("none")
EDGE_START = {k: sum(range(2, k)) for k in space.NODES}  # node k's edges are EDGE_START[k] + input
N_EDGES = space.N_EDGES  # 2 + 3 + 4 + 5 = 14
_CHOICES = space.choices()

EdgeOps = tuple[tuple[int, ...], tuple[int, ...]]


def edge_ops(arch) -> EdgeOps:
    """`arch` as (normal, reduce) edge ops, 14 indices into `OPS` each (`none` where a genotype has no
    pair). `arch` is a genotype (string or object with its fields) or already such a pair."""
    if isinstance(arch, str) or all(hasattr(arch, f) for f in ("normal", "reduce", "normal_concat")):
        return space.to_edge_ops(arch)
    try:
        cells = tuple(tuple(operator.index(o) for o in cell) for cell in arch)
    except TypeError:
        raise ArchError(f"invalid arch {arch!r}: expected a genotype string or (normal, reduce) edge ops") from None
    if len(cells) != 2 or any(len(c) != N_EDGES for c in cells) or any(not 0 <= o < N_OPS for c in cells for o in c):
        raise ArchError(f"invalid arch {arch!r}: expected 2 cells of {N_EDGES} op indices in 0..{N_OPS - 1}")
    return cells[0], cells[1]


def _derive_cell(probs: Sequence[Sequence[float]]) -> list[tuple[str, int]]:
    """DARTS' `_parse`: per node the top-2 incoming edges by strongest non-`none` weight (ties: lower input),
    each with its argmax non-`none` op (ties: the first in `OPS`); pairs written input-ascending."""
    pairs: list[tuple[str, int]] = []
    for k in space.NODES:
        best = []
        for src in range(k):
            row = probs[EDGE_START[k] + src]
            o = max((o for o in range(N_OPS) if o != NONE), key=lambda o: row[o])  # max keeps the first
            best.append((row[o], o))
        top = sorted(range(k), key=lambda src: -best[src][0])[:2]  # stable sort: ties keep input order
        pairs += [(space.OPS[best[src][1]], src) for src in sorted(top)]
    return pairs


class DartsSearchCell(nn.Module):
    """A DARTS search cell: preprocessed inputs, 14 mixed edges of all 8 ops, output nodes 2..5 concatenated.

    `edges[e][o]` is op `OPS[o]` on edge e; edges reading nodes 0 and 1 of a reduction cell have stride 2.
    """

    def __init__(self, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool, *,
                 affine: bool = False, track_running_stats: bool = False):
        super().__init__()
        bn = dict(affine=affine, track_running_stats=track_running_stats)
        self.C, self.reduction = C, reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C, **bn)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1, **bn)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, **bn)
        edges = []
        for k in space.NODES:
            for src in range(k):
                stride = 2 if reduction and src < 2 else 1
                ops = []
                for name in space.OPS:
                    op = make_op(name, C, stride, **bn)
                    if "pool" in name:
                        op = nn.Sequential(op, nn.BatchNorm2d(C, **bn))
                    ops.append(op)
                edges.append(nn.ModuleList(ops))
        self.edges = nn.ModuleList(edges)
        self.multiplier = len(space.CONCAT)

    def _inputs(self, s0: torch.Tensor, s1: torch.Tensor) -> list[torch.Tensor]:
        return [self.preprocess0(s0), self.preprocess1(s1)]

    def _output(self, states: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([states[k] for k in space.CONCAT], dim=1)

    def forward_weighted(self, s0: torch.Tensor, s1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """DARTS mixed edges: node k = sum over inputs j of sum_o w[e, o] * op_o(state j), `none` skipped."""
        states = self._inputs(s0, s1)
        for k in space.NODES:
            acc = None
            for src in range(k):
                e = EDGE_START[k] + src
                for o in range(N_OPS):
                    if o == NONE:
                        continue
                    out = w[e, o] * self.edges[e][o](states[src])
                    acc = out if acc is None else acc + out
            states.append(acc)
        return self._output(states)

    def forward_gdas(self, s0: torch.Tensor, s1: torch.Tensor, w: torch.Tensor, index: Sequence[int]
                     ) -> torch.Tensor:
        """GDAS edges: the sampled op times its weight, plus the edge's other (zero-valued) weights."""
        states = self._inputs(s0, s1)
        for k in space.NODES:
            acc = rest = None
            for src in range(k):
                e = EDGE_START[k] + src
                o = index[e]
                others = torch.cat((w[e, :o], w[e, o + 1:])).sum()  # exactly 0 in value, not in gradient
                rest = others if rest is None else rest + others
                out = w[e, o] * self.edges[e][o](states[src])  # a sampled `none` gives w * zeros
                acc = out if acc is None else acc + out
            states.append(acc + rest)
        return self._output(states)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        """One op per edge (`ops`: 14 indices into OPS); `none` edges are not run."""
        states = self._inputs(s0, s1)
        for k in space.NODES:
            acc = None
            for src in range(k):
                e = EDGE_START[k] + src
                if ops[e] == NONE:
                    continue
                out = self.edges[e][ops[e]](states[src])
                acc = out if acc is None else acc + out
            if acc is None:  # every input `none`: zeros at the node's resolution
                acc = self.edges[EDGE_START[k]][NONE](states[0])
            states.append(acc)
        return self._output(states)

    def extra_repr(self) -> str:
        return f"C={self.C}, reduction={self.reduction}"


class DartsSearchNetwork(PathSampling, nn.Module):
    """The DARTS-space search supernet (DARTS' search setting: C=16, 8 layers). See the module docstring."""

    def __init__(
        self,
        C: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        *,
        mode: str = "darts",
        seed: int = 0,
        affine: bool = False,
        track_running_stats: bool = False,
    ):
        super().__init__()
        if C < 1 or layers < 1 or num_classes < 1:
            raise ValueError(f"need C >= 1, layers >= 1, num_classes >= 1; got C={C}, {layers=}, {num_classes=}")
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self.mode = "darts"
        self.fixed_ops: EdgeOps | None = None
        self.tau = 10.0
        self.last_arch: EdgeOps | None = None
        self.reseed(seed)
        self.gumbel = GumbelDraws()
        out_channels = build_stem_and_cells(
            self, C, layers,
            lambda C_pp, C_p, C_cell, reduction, reduction_prev: DartsSearchCell(
                C_pp, C_p, C_cell, reduction, reduction_prev, affine=affine,
                track_running_stats=track_running_stats))
        C_prev = out_channels[-1]
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)
        self.alphas_normal = nn.Parameter(1e-3 * torch.randn(N_EDGES, N_OPS))
        self.alphas_reduce = nn.Parameter(1e-3 * torch.randn(N_EDGES, N_OPS))
        self.set_mode(mode)

    # ------------------------------------------------------------------------------------ parameters

    def weights(self) -> list[nn.Parameter]:
        """Every parameter except the architecture parameters (the SGD group)."""
        return [p for name, p in self.named_parameters() if name not in ("alphas_normal", "alphas_reduce")]

    def arch_parameters(self) -> list[nn.Parameter]:
        """[alphas_normal, alphas_reduce] (the Adam group)."""
        return [self.alphas_normal, self.alphas_reduce]

    def probs(self) -> torch.Tensor:
        """softmax(alphas) per edge, detached: [2, 14, 8] (normal, reduce)."""
        return torch.stack([a.detach().softmax(dim=-1) for a in self.arch_parameters()])

    def genotype(self) -> str:
        """DARTS' derived genotype (top-2 inputs per node, `none` ignored), as a canonical string."""
        normal, reduce = self.probs().cpu().tolist()
        return space.format(space.Genotype(tuple(_derive_cell(normal)), space.CONCAT,
                                           tuple(_derive_cell(reduce)), space.CONCAT))

    # ------------------------------------------------------------------------------------------ modes

    @staticmethod
    def _check_mode(mode: str) -> None:
        if mode == "setn":
            raise ParamsError("search network mode 'setn' is not supported in the darts space "
                              f"(modes: {', '.join(MODES)})")
        if mode not in MODES:
            raise ParamsError(f"search network mode {mode!r} is not one of {', '.join(MODES)}")

    def set_mode(self, mode: str, arch=None) -> None:
        self._check_mode(mode)
        if mode == "fixed":
            if arch is None:
                raise ArchError("mode 'fixed' needs an arch")
            self.fixed_ops = edge_ops(arch)
        self.mode = mode

    def set_tau(self, tau: float) -> None:
        self.tau = float(tau)

    def presample(self, n: int) -> None:
        """Draw the next n GDAS forwards' samples (both cell types) now, with one host read (see `GumbelDraws`)."""
        self.gumbel.presample(self.arch_parameters(), self.tau, n)

    def random_arch(self) -> str:
        """A uniform random genotype as the BPE paper draws it (`spaces.darts.sample`), from the path RNG."""
        return space.decode([self._path_rng.randrange(n) for n in _CHOICES])

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "tau": float(self.tau)}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.tau = float(state.get("tau", self.tau))

    # ---------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, *, mode: str | None = None, arch=None) -> torch.Tensor:
        if arch is not None:
            mode, fixed = "fixed", edge_ops(arch)
        else:
            mode = self.mode if mode is None else mode
            self._check_mode(mode)
            fixed = self.fixed_ops
        weights = index = ops = None
        if mode == "darts":
            weights = (self.alphas_normal.softmax(dim=-1), self.alphas_reduce.softmax(dim=-1))
        elif mode == "gdas":
            (w_n, w_r), (i_n, i_r) = self.gumbel.take(self.arch_parameters(), self.tau)
            weights = (w_n, w_r)
            index = ops = (i_n, i_r)
        elif mode == "uniform":
            ops = edge_ops(self.random_arch())
        else:
            if fixed is None:
                raise ArchError("mode 'fixed' needs an arch")
            ops = fixed
        self.last_arch = ops

        s0 = s1 = self.stem(x)
        for cell in self.cells:
            r = int(cell.reduction)
            if mode == "darts":
                out = cell.forward_weighted(s0, s1, weights[r])
            elif mode == "gdas":
                out = cell.forward_gdas(s0, s1, weights[r], index[r])
            else:
                out = cell(s0, s1, ops[r])
            s0, s1 = s1, out
        return self.classifier(self.global_pooling(s1).flatten(1))

    def extra_repr(self) -> str:
        return f"C={self.C}, layers={self.layers}, num_classes={self.num_classes}, mode={self.mode!r}"
