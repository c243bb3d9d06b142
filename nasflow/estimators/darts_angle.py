"""RLNAS' angle metric in the DARTS cell space (megvii-model/RLNAS darts_search_space/cifar10,
evolution_search/test_server.py `get_arch_vector` / `get_angle`).

    angle(arch) = arccos( cos(v_init(arch), v_trained(arch)) )        larger = better

v(arch) concatenates (each normal cell runs the normal cell of the genotype, each reduction cell its reduce
cell), in the reference's order:

* per cell, for each of the 30 paths of the full cell DAG (`PATHS`, the reference's order) whose edges are
  all non-`none` in that cell's arch (a path with a `none` edge is dropped for that cell), per edge on the
  path the op's block:
  - max_pool_3x3 / avg_pool_3x3: a constant [C, 3, 3] tensor of 1/9, then the weight and bias of the BN
    that follows the pool in the supernet;
  - skip_connect: at stride 1 the identity matrix eye(C), flattened (the same in both vectors); at stride 2
    (a FactorizedReduce) its conv_1 and conv_2 weights, BN weight and BN bias;
  - sep_conv_3x3 / 5x5: its 4 conv weights (depthwise, pointwise, depthwise, pointwise), then BN1 weight,
    BN1 bias, BN2 weight, BN2 bias;
  - dil_conv_3x3 / 5x5: its 2 conv weights, then its BN weight *twice*. This reproduces a bug of the
    reference, which reads `.weight` where it means `.bias` for the second piece, so dil_conv's BN bias
    never enters the angle.
  An edge on several kept paths appears once per path.
* the arch-independent part: stem conv weight, stem BN weight + bias; per cell its preprocess0
  (FactorizedReduce: conv_1, conv_2, BN weight, BN bias; ReLU-Conv-BN: conv, BN weight, BN bias) and
  preprocess1 (conv, BN weight, BN bias); the classifier weight (not its bias).

Differences from the reference: it computes the cosine in float32 on the GPU (`nn.CosineSimilarity`) and can
return NaN when rounding pushes the cosine above 1; here it is float64, clamped to [-1, 1] (identical
weights give exactly 0).

Speed: the cosine only needs <a,b>, |a|^2, |b|^2, which add up block by block. `DartsAngleScorer` sums
those triples per (cell type, edge, op) over the cells of that type once; an arch's total is then the fixed
triple plus, per cell type and edge, (number of kept paths through the edge) x (the triple of the edge's
op) -- vectorised over all archs. `darts_angle_vector` / `darts_angle` build the explicit vectors
(the reference's way; used to cross-check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from nasflow.estimators.angle import _arccos_of, _arccos_of_rows, _as_supernet, _get, _model_state
from nasflow.models.darts import DilConv, FactorizedReduce, SepConv
from nasflow.models.darts import Zero
from nasflow.models.darts_search import DartsSearchCell
from nasflow.models.darts_supernet import NONE, arch_to_edge_ops
from nasflow.models.ops import ReLUConvBN
from nasflow.spaces import darts as space

__all__ = [
    "PATHS",
    "PATH_EDGES",
    "DartsAngleLayout",
    "DartsAngleScorer",
    "darts_angle",
    "darts_angle_layout",
    "darts_angle_vector",
    "darts_kept_paths",
]

# The 30 paths of a cell (node sequences, from an input node 0/1), in the reference's order.
PATHS: tuple[tuple[int, ...], ...] = (
    (0, 2, 3, 4, 5), (0, 2, 3, 5), (0, 2, 4, 5), (0, 2, 5), (0, 3, 4, 5), (0, 3, 5), (0, 4, 5), (0, 5),
    (1, 2, 3, 4, 5), (1, 2, 3, 5), (1, 2, 4, 5), (1, 2, 5), (1, 3, 4, 5), (1, 3, 5), (1, 4, 5), (1, 5),
    (0, 2, 3, 4), (0, 2, 4), (0, 3, 4), (0, 4),
    (1, 2, 3, 4), (1, 2, 4), (1, 3, 4), (1, 4),
    (0, 2, 3), (0, 3),
    (1, 2, 3), (1, 3),
    (0, 2),
    (1, 2),
)
PATH_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(sum(range(2, dst)) + src for src, dst in zip(p[:-1], p[1:])) for p in PATHS
)
# _INCIDENCE[p, e] = 1 if edge e lies on path p
_INCIDENCE = np.zeros((len(PATHS), space.N_EDGES))
for _p, _edges in enumerate(PATH_EDGES):
    for _e in _edges:
        _INCIDENCE[_p, _e] = 1.0
_PATH_MASK = _INCIDENCE.astype(bool)

# A piece of a block: a parameter name in the state dict, or a constant (float64) tensor.
Piece = str | torch.Tensor


@dataclass(frozen=True)
class DartsAngleLayout:
    """Where an arch's weights live in a `DartsSupernet` state dict.

    fixed: the arch-independent pieces (stem, per cell preprocess0/1, classifier weight), in order.
    cells: per cell, (reduction, blocks) with blocks[e][o] the pieces of op o on edge e (empty for `none`).
    """

    fixed: tuple[Piece, ...]
    cells: tuple[tuple[bool, tuple[tuple[tuple[Piece, ...], ...], ...]], ...]


def _op_pieces(op: nn.Module, C: int, names: dict[int, str]) -> tuple[Piece, ...]:
    def n(p):
        return names[id(p)]

    if isinstance(op, Zero):
        return ()
    if isinstance(op, nn.Sequential) and len(op) == 2 and isinstance(op[0], (nn.MaxPool2d, nn.AvgPool2d)):
        return (torch.full((C * 9,), 1.0 / 9.0, dtype=torch.float64), n(op[1].weight), n(op[1].bias))
    if isinstance(op, nn.Identity):
        return (torch.eye(C, dtype=torch.float64).reshape(-1),)
    if isinstance(op, FactorizedReduce):
        return (n(op.conv_1.weight), n(op.conv_2.weight), n(op.bn.weight), n(op.bn.bias))
    if isinstance(op, SepConv):
        return (n(op[1].weight), n(op[2].weight), n(op[5].weight), n(op[6].weight),
                n(op[3].weight), n(op[3].bias), n(op[7].weight), n(op[7].bias))
    if isinstance(op, DilConv):
        # the reference's bug: BN weight twice (its second piece reads .weight where it means .bias)
        return (n(op[1].weight), n(op[2].weight), n(op[3].weight), n(op[3].weight))
    raise TypeError(f"darts angle: unexpected op module {type(op).__name__}")


def _preprocess_pieces(pre: nn.Module, names: dict[int, str]) -> tuple[str, ...]:
    if isinstance(pre, FactorizedReduce):
        return (names[id(pre.conv_1.weight)], names[id(pre.conv_2.weight)],
                names[id(pre.bn.weight)], names[id(pre.bn.bias)])
    if isinstance(pre, ReLUConvBN):
        return names[id(pre.conv.weight)], names[id(pre.bn.weight)], names[id(pre.bn.bias)]
    raise TypeError(f"darts angle: unexpected preprocess module {type(pre).__name__}")


def darts_angle_layout(supernet) -> DartsAngleLayout:
    """The `DartsAngleLayout` of a `DartsSupernet` (or of a factory's supernet)."""
    net = _as_supernet(supernet)
    names = {id(p): name for name, p in net.named_parameters()}
    cells = [m for m in net.cells if isinstance(m, DartsSearchCell)] if hasattr(net, "cells") else []
    if not cells:
        raise TypeError(f"darts angle: {type(net).__name__} has no DARTS search cells")
    fixed: list[Piece] = [names[id(net.stem[0].weight)], names[id(net.stem[1].weight)],
                          names[id(net.stem[1].bias)]]
    layout_cells = []
    for cell in cells:
        fixed += _preprocess_pieces(cell.preprocess0, names)
        fixed += _preprocess_pieces(cell.preprocess1, names)
        blocks = tuple(tuple(_op_pieces(op, cell.C, names) for op in edge) for edge in cell.edges)
        layout_cells.append((bool(cell.reduction), blocks))
    fixed.append(names[id(net.classifier.weight)])
    return DartsAngleLayout(fixed=tuple(fixed), cells=tuple(layout_cells))


def _value(state, piece: Piece) -> torch.Tensor:
    return piece if isinstance(piece, torch.Tensor) else _get(state, piece)


def darts_kept_paths(ops: Sequence[int]) -> list[tuple[int, ...]]:
    """The edge tuples of the paths with no `none` edge in one cell's 14-edge op vector."""
    return [pe for pe in PATH_EDGES if all(ops[e] != NONE for e in pe)]


# ------------------------------------------------------------------------------------ explicit vectors

def darts_angle_vector(supernet, arch, state=None) -> torch.Tensor:
    """The float64 weight vector of `arch` (a genotype, or a (normal, reduce) pair of 14-edge vectors) in
    `supernet`'s weights, or in `state` (a state dict, `nasflow.train` checkpoint dict or path, a module)."""
    net = _as_supernet(supernet)
    layout = darts_angle_layout(net)
    st = net.state_dict() if state is None else _model_state(state)
    normal, reduce = arch_to_edge_ops(arch)
    pieces: list[torch.Tensor] = []
    for reduction, blocks in layout.cells:
        ops = reduce if reduction else normal
        for path in darts_kept_paths(ops):
            for e in path:
                pieces += [_value(st, piece) for piece in blocks[e][ops[e]]]
    pieces += [_value(st, piece) for piece in layout.fixed]
    return torch.cat(pieces)


def darts_angle(init_state, trained_state, arch, supernet) -> float:
    """RLNAS angle (radians) of `arch` between two states of a `DartsSupernet`."""
    v0 = darts_angle_vector(supernet, arch, init_state)
    v1 = darts_angle_vector(supernet, arch, trained_state)
    return _arccos_of(float(v0 @ v1), float(v0 @ v0), float(v1 @ v1))


# ------------------------------------------------------------------------------------------ fast path

class DartsAngleScorer:
    """Angles of many genotypes from two states of one `DartsSupernet`, without building their vectors."""

    def __init__(self, init_state, trained_state, supernet):
        layout = darts_angle_layout(supernet)
        s0, s1 = _model_state(init_state), _model_state(trained_state)
        cache: dict[str, np.ndarray] = {}

        def triple(piece: Piece) -> np.ndarray:
            if isinstance(piece, torch.Tensor):
                sq = float(piece @ piece)
                return np.array([sq, sq, sq])
            if piece not in cache:
                a, b = _get(s0, piece), _get(s1, piece)
                cache[piece] = np.array([float(a @ b), float(a @ a), float(b @ b)])
            return cache[piece]

        self.fixed = np.zeros(3)
        for piece in layout.fixed:
            self.fixed += triple(piece)
        # edge_op[t, e, o]: (dot, |init|^2, |trained|^2) of op o's block on edge e, summed over the cells
        # of type t (0 normal, 1 reduce)
        self.edge_op = np.zeros((2, space.N_EDGES, len(space.OPS), 3))
        for reduction, blocks in layout.cells:
            for e in range(space.N_EDGES):
                for o, pieces in enumerate(blocks[e]):
                    for piece in pieces:
                        self.edge_op[int(reduction), e, o] += triple(piece)
        self.edge_op[:, :, NONE] = 0.0

    def scores(self, archs: Sequence) -> np.ndarray:
        """Angles (float64 array, radians) of `archs` (genotypes or (normal, reduce) vector pairs)."""
        if len(archs) == 0:
            return np.zeros(0)
        pairs = [arch_to_edge_ops(a) for a in archs]
        total = np.broadcast_to(self.fixed, (len(pairs), 3)).copy()
        edges = np.arange(space.N_EDGES)[None, :]
        for t in (0, 1):
            ops = np.array([p[t] for p in pairs], dtype=np.int64)              # [A, 14]
            per_edge = self.edge_op[t][edges, ops]                             # [A, 14, 3]
            is_none = ops == NONE                                              # [A, 14]
            # kept[a, p]: no edge of path p is `none` in arch a
            kept = ~(is_none[:, None, :] & _PATH_MASK[None, :, :]).any(axis=2)  # [A, 30]
            uses = kept.astype(np.float64) @ _INCIDENCE                        # [A, 14] kept paths per edge
            total += np.einsum("ae,aec->ac", uses, per_edge)
        return _arccos_of_rows(total)

    def score(self, arch) -> float:
        return float(self.scores([arch])[0])
