"""RLNAS' angle metric: how far an arch's weights turned between the supernet's init and its trained state.

    angle(arch) = arccos( cos(v_init(arch), v_trained(arch)) )        larger = better

The weight vector v(arch) of an arch, as RLNAS builds it (megvii-model/RLNAS,
nas_bench_201/exps/algos/weight_angle.py, `get_arch_angle`; "Algorithm 1" of ABS), with the arch applied to
every cell, is the concatenation of

* the stem: conv weight and BN weight + bias;
* the two ResNet blocks: conv_a conv + BN weight/bias, conv_b conv + BN weight/bias, the shortcut's 1x1 conv;
* the head: last BN weight + bias, classifier weight + bias;
  (here: every parameter of the supernet outside its search cells, which is exactly that set)
* for each input->output path of the cell, [0,3], [0,2,3], [0,1,2,3], [0,1,3], and for each of the 3N
  cells: the flattened weights of the ops along the path, concatenated (not multiplied):
  - nor_conv_1x1 / nor_conv_3x3: the conv weight (the op BNs are non-affine: no parameters);
  - avg_pool_3x3: a fixed [C, 3, 3] tensor of 1/9 (the same in both vectors);
  - skip_connect: nothing;
  - a path with a `none` edge is dropped (in every cell); when all 4 paths are dropped the angle is 0.
  An edge on several paths appears once per path (edge 0->1 twice, edge 2->3 twice).

The reference appends the blocks in a different order (paths outer, cells inner, the ResNet blocks at
their cell positions during the first kept path, the head and tail around them); the cosine does not depend
on the order of the coordinates as long as both vectors use the same one, so it is the same number.
Differences from the reference: it computes the cosine in float32 on the GPU (`nn.CosineSimilarity`,
eps 1e-8) and can return NaN when rounding pushes the cosine above 1 (e.g. identical weights); here it is
computed in float64 and clamped to [-1, 1], so identical weights give exactly 0.

Speed: the cosine only needs three sums -- <a,b>, |a|^2, |b|^2 -- and those add up block by block.
`AngleScorer` computes them once for the arch-independent part and once per (edge, op) summed over the 3N
cells (5 x 6 triples); an arch's score is then ~8 additions of 3-vectors, vectorised over all archs (all
15,625 NB201 cells in a few milliseconds after a one-off pass over the two state dicts).
`angle_vector` / `angle` build the explicit vectors instead (the reference's way; used to cross-check).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nasflow.errors import CheckpointError
from nasflow.models.nb201_supernet import NONE, NB201Supernet, SearchCell, arch_to_ops
from nasflow.models.ops import AvgPool, Identity, ReLUConvBN, Zero
from nasflow.spaces import nb201 as space

__all__ = [
    "PATHS",
    "PATH_EDGES",
    "AngleLayout",
    "AngleScorer",
    "angle",
    "angle_layout",
    "angle_scores",
    "angle_vector",
    "kept_paths",
]

# The 4 input->output paths of a NB201 cell, as node sequences (RLNAS' order) and as edge indices.
PATHS: tuple[tuple[int, ...], ...] = ((0, 3), (0, 2, 3), (0, 1, 2, 3), (0, 1, 3))
PATH_EDGES: tuple[tuple[int, ...], ...] = tuple(
    tuple(space.EDGES.index((dst, src)) for src, dst in zip(p[:-1], p[1:])) for p in PATHS
)

_SKIP = space.OPS.index("skip_connect")
_POOL = space.OPS.index("avg_pool_3x3")


@dataclass(frozen=True)
class AngleLayout:
    """Where an arch's weights live in a supernet state dict.

    fixed: names of the arch-independent parameters (stem, ResNet blocks, head).
    cells: per search cell, (C, names) with names[e][o] the conv weight of op o on edge e (None if the op
           has no weights).
    """

    fixed: tuple[str, ...]
    cells: tuple[tuple[int, tuple[tuple[str | None, ...], ...]], ...]


def _as_supernet(supernet) -> nn.Module:
    if isinstance(supernet, nn.Module):
        return supernet
    if callable(supernet):  # a factory
        model = supernet()
        if isinstance(model, nn.Module):
            return model
    raise TypeError(f"expected a supernet module or a factory returning one, got {type(supernet).__name__}")


def angle_layout(supernet) -> AngleLayout:
    """The `AngleLayout` of an `NB201Supernet` (or of a factory's supernet)."""
    net = _as_supernet(supernet)
    names = {id(p): n for n, p in net.named_parameters()}
    in_cells: set[int] = set()
    cells = []
    for cell in net.modules():
        if not isinstance(cell, SearchCell):
            continue
        in_cells.update(id(p) for p in cell.parameters())
        per_edge = []
        for edge in cell.edges:
            per_op: list[str | None] = []
            for o, op in enumerate(edge):
                if isinstance(op, ReLUConvBN):
                    per_op.append(names[id(op.conv.weight)])
                elif isinstance(op, (Zero, Identity, AvgPool)):
                    per_op.append(None)
                else:
                    raise TypeError(f"angle: unexpected op module {type(op).__name__} (op {space.OPS[o]})")
            per_edge.append(tuple(per_op))
        cells.append((cell.C, tuple(per_edge)))
    if not cells:
        raise TypeError(f"angle: {type(net).__name__} has no NB201 search cells")
    fixed = tuple(n for n, p in net.named_parameters() if id(p) not in in_cells)
    return AngleLayout(fixed=fixed, cells=tuple(cells))


def _model_state(state) -> Mapping[str, torch.Tensor]:
    """A state dict from a state dict, a `nasflow.train` checkpoint dict, a module, or a checkpoint path."""
    if isinstance(state, nn.Module):
        return state.state_dict()
    if isinstance(state, (str, Path)):
        try:
            state = torch.load(state, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{state}: unreadable checkpoint ({type(e).__name__})") from None
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        return state["model"]  # a nasflow.train checkpoint
    if isinstance(state, Mapping):
        return state
    raise TypeError(f"expected a state dict, checkpoint or module, got {type(state).__name__}")


def _get(state: Mapping[str, torch.Tensor], name: str) -> torch.Tensor:
    try:
        t = state[name]
    except KeyError:
        raise CheckpointError(f"angle: state dict has no '{name}' (not a state of this supernet?)") from None
    return t.detach().to(device="cpu", dtype=torch.float64).reshape(-1)


def kept_paths(arch) -> list[tuple[int, ...]]:
    """The edge tuples of the paths of `arch` that have no `none` edge (the paths the angle uses)."""
    ops = arch_to_ops(arch)
    return [pe for pe in PATH_EDGES if all(ops[e] != NONE for e in pe)]


# ------------------------------------------------------------------------------------ explicit vectors

def angle_vector(supernet, arch, state=None) -> torch.Tensor:
    """The float64 weight vector of `arch` (applied to every cell) in `supernet`'s weights, or in `state`.

    Always contains the fixed part (stem, ResNet blocks, head), even when every path is dropped.
    """
    net = _as_supernet(supernet)
    layout = angle_layout(net)
    st = net.state_dict() if state is None else _model_state(state)
    ops = arch_to_ops(arch)
    pieces = [_get(st, n) for n in layout.fixed]
    for path in kept_paths(ops):
        for C, names in layout.cells:
            for e in path:
                o = ops[e]
                if o == _SKIP:
                    continue
                if o == _POOL:
                    pieces.append(torch.full((C * 9,), 1.0 / 9.0, dtype=torch.float64))
                else:
                    pieces.append(_get(st, names[e][o]))
    return torch.cat(pieces)


def _arccos_of(dot: float, n0: float, n1: float) -> float:
    denom = math.sqrt(n0 * n1)
    if denom == 0.0:
        return 0.0
    return math.acos(min(1.0, max(-1.0, dot / denom)))


def _arccos_of_rows(total: np.ndarray) -> np.ndarray:
    """`_arccos_of` for rows of (dot, |init|^2, |trained|^2): [A, 3] -> [A] radians."""
    denom = np.sqrt(total[:, 1] * total[:, 2])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.arccos(np.clip(total[:, 0] / denom, -1.0, 1.0))
    out[denom == 0] = 0.0
    return out


def angle(init_state, trained_state, arch, supernet) -> float:
    """RLNAS angle (radians) of `arch` between two states of `supernet`; 0 when all 4 paths are dropped."""
    if not kept_paths(arch):
        return 0.0
    v0 = angle_vector(supernet, arch, init_state)
    v1 = angle_vector(supernet, arch, trained_state)
    return _arccos_of(float(v0 @ v1), float(v0 @ v0), float(v1 @ v1))


# ------------------------------------------------------------------------------------------ fast path

class AngleScorer:
    """Angles of many archs from two states of one supernet, without building their vectors."""

    def __init__(self, init_state, trained_state, supernet):
        layout = angle_layout(supernet)
        s0, s1 = _model_state(init_state), _model_state(trained_state)

        def triple(name: str) -> np.ndarray:
            a, b = _get(s0, name), _get(s1, name)
            return np.array([float(a @ b), float(a @ a), float(b @ b)])

        self.fixed = np.zeros(3)
        for n in layout.fixed:
            self.fixed += triple(n)
        # edge_op[e, o] = sum over the 3N cells of (dot, |init|^2, |trained|^2) of op o's block on edge e
        self.edge_op = np.zeros((space.N_EDGES, len(space.OPS), 3))
        for C, names in layout.cells:
            for e in range(space.N_EDGES):
                for o, name in enumerate(names[e]):
                    if name is not None:
                        self.edge_op[e, o] += triple(name)
                    elif o == _POOL:
                        self.edge_op[e, o] += (C * 9) * (1.0 / 9.0) ** 2
        self.edge_op[:, NONE] = 0.0
        self.edge_op[:, _SKIP] = 0.0

    def scores(self, archs: Sequence) -> np.ndarray:
        """Angles (float64 array, radians) of `archs` (strings or op sequences)."""
        if len(archs) == 0:
            return np.zeros(0)
        ops = np.array([arch_to_ops(a) for a in archs], dtype=np.int64)  # [A, 6]
        per_edge = self.edge_op[np.arange(space.N_EDGES)[None, :], ops]   # [A, 6, 3]
        total = np.broadcast_to(self.fixed, (len(ops), 3)).copy()
        any_kept = np.zeros(len(ops), dtype=bool)
        for path in PATH_EDGES:
            idx = list(path)
            kept = np.all(ops[:, idx] != NONE, axis=1)
            total += kept[:, None] * per_edge[:, idx].sum(axis=1)
            any_kept |= kept
        out = _arccos_of_rows(total)
        out[~any_kept] = 0.0
        return out

    def score(self, arch) -> float:
        return float(self.scores([arch])[0])


def angle_scores(init_state, trained_state, archs: Sequence,
                 supernet: NB201Supernet | Callable[[], NB201Supernet]) -> list[float]:
    """Angles of `archs` (radians, larger = better), equal to `angle()` of each up to float rounding.

    `init_state` / `trained_state`: state dicts, `nasflow.train` checkpoint dicts or paths, or modules.
    `supernet`: a supernet of the same shape as the states (its weights are not used) or a factory.
    """
    return AngleScorer(init_state, trained_state, supernet).scores(list(archs)).tolist()
