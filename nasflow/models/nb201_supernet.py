"""Single-path weight-sharing supernet of the NAS-Bench-201 space (SPOS / RLNAS).

Macro-structure as `TinyNetwork` (models/nb201.py): stem Conv 3x3 + BN, three stages of N cells at C, 2C,
4C separated by the stride-2 ResNet blocks, head BN -> ReLU -> global average pool -> Linear. Every edge of
every cell owns all 5 ops (`cell.edges[k][o]` is op `OPS[o]` of edge `EDGES[k]`); the op BNs are
non-affine (`affine=False`, as RLNAS' `--affine 0`) and track running statistics (RLNAS trains with
`--track_running_stats 1`; `estimators.supernet_acc` recomputes them per arch before evaluating).

`forward(x, arch=None)`:

* `arch=None` (and `fixed_arch` unset): every cell independently draws one op per edge, uniformly over the
  5 ops, on every forward. As ADL/RLNAS `forward_urs` does, the draw is made node by node: all incoming
  edges of node j are drawn together and drawn again while they are all `none`, so no node is ever fed
  only by `none` (and every cell has an input->output path). This happens in eval mode too.
* `arch` given (a NB201 string, any spelling `space.parse` accepts): that arch in every cell, like a
  `TinyNetwork(arch)` that shares the supernet's weights; a node fed only by `none` outputs zeros.

Path sampling uses a Python `random.Random` owned by the module (seeded by `seed`), not the global RNGs.
Its state is part of `state_dict()` (via `get_extra_state`, as an int64 tensor so that checkpoints load
with `torch.load(weights_only=True)`), so a training run resumed from `nasflow.train`'s checkpoint draws
exactly the paths an uninterrupted run would have drawn.
"""

from __future__ import annotations

import functools
import operator
import random
from collections.abc import Sequence

import torch
from torch import nn

from nasflow.errors import ArchError
from nasflow.models.nb201 import build_macro
from nasflow.models.ops import PathSampling, ResNetBasicBlock, make_op
from nasflow.spaces import nb201 as space

__all__ = ["SearchCell", "NB201Supernet", "sample_cell_ops", "arch_to_ops", "NONE"]

NONE = space.OPS.index("none")
N_OPS = len(space.OPS)

# For node j = 1..3: the (edge index, source node) pairs of its incoming edges, in string order.
_INPUTS: list[list[tuple[int, int]]] = [[] for _ in range(space.N_NODES)]
for _k, (_dst, _src) in enumerate(space.EDGES):
    _INPUTS[_dst].append((_k, _src))


def sample_cell_ops(rng: random.Random) -> tuple[int, ...]:
    """One uniform cell (op indices in `EDGES` order), no node fed only by `none`.

    Node by node, the ops of all incoming edges of the node are drawn (uniformly over the 5 ops) and drawn
    again while they are all `none` -- RLNAS' / ADL's `forward_urs`.
    """
    ops = [NONE] * space.N_EDGES
    for node in range(1, space.N_NODES):
        edges = [k for k, _ in _INPUTS[node]]
        while True:
            draw = [rng.randrange(N_OPS) for _ in edges]
            if any(o != NONE for o in draw):
                break
        for k, o in zip(edges, draw):
            ops[k] = o
    return tuple(ops)


@functools.lru_cache(maxsize=4096)
def _parse_ops(arch: str) -> tuple[int, ...]:
    return tuple(space.OPS.index(op) for op in space.parse(arch))


def arch_to_ops(arch) -> tuple[int, ...]:
    """Op indices (EDGES order) of an arch string, or of a sequence of 6 op names / indices."""
    if isinstance(arch, str):
        return _parse_ops(arch)
    ops = tuple(arch)
    if len(ops) != space.N_EDGES:
        raise ArchError(f"invalid arch {arch!r}: expected {space.N_EDGES} ops, got {len(ops)}")
    out = []
    for op in ops:
        if isinstance(op, str):
            if op not in space.OPS:
                raise ArchError(f"invalid arch {arch!r}: unknown op {op!r}")
            out.append(space.OPS.index(op))
        else:
            try:
                o = operator.index(op)
            except TypeError:
                o = -1
            if not 0 <= o < N_OPS:
                raise ArchError(f"invalid arch {arch!r}: op {op!r} is not an op name or index")
            out.append(o)
    return tuple(out)


class SearchCell(nn.Module):
    """A NB201 cell holding all 5 ops on each of its 6 edges; `forward(x, ops)` runs one choice."""

    def __init__(self, C: int, *, affine: bool = False, track_running_stats: bool = True):
        super().__init__()
        self.C = C
        self.edges = nn.ModuleList(
            nn.ModuleList(make_op(op, C, affine=affine, track_running_stats=track_running_stats)
                          for op in space.OPS)
            for _ in range(space.N_EDGES)
        )

    def forward(self, x: torch.Tensor, ops: Sequence[int]) -> torch.Tensor:
        nodes = [x]
        for node in range(1, space.N_NODES):
            acc = None
            for k, src in _INPUTS[node]:
                o = ops[k]
                if o == NONE:
                    continue  # `none` adds zeros: skip it
                out = self.edges[k][o](nodes[src])
                acc = out if acc is None else acc + out
            nodes.append(torch.zeros_like(x) if acc is None else acc)
        return nodes[-1]

    def extra_repr(self) -> str:
        return f"C={self.C}"


class NB201Supernet(PathSampling, nn.Module):
    """The NB201 one-shot supernet (RLNAS: C=16, N=5). See the module docstring."""

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        *,
        seed: int = 0,
        affine: bool = False,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if C < 1 or N < 0 or num_classes < 1:
            raise ValueError(f"need C >= 1, N >= 0, num_classes >= 1; got C={C}, N={N}, {num_classes=}")
        self.C, self.N, self.num_classes = C, N, num_classes
        self.fixed_arch: str | None = None  # when set, forward(x) uses it instead of sampling
        self.last_sampled: list[tuple[int, ...]] = []  # per search cell, the ops of the last forward
        self.reseed(seed)

        build_macro(self, C, N, num_classes,
                    lambda C_stage: SearchCell(C_stage, affine=affine, track_running_stats=track_running_stats))

    # ------------------------------------------------------------------------------------------ paths

    def search_cells(self) -> list[SearchCell]:
        """The 3N search cells (without the reduction blocks), in order."""
        return [m for m in self.cells if isinstance(m, SearchCell)]

    def reduction_blocks(self) -> list[ResNetBasicBlock]:
        return [m for m in self.cells if isinstance(m, ResNetBasicBlock)]

    # ---------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, arch=None) -> torch.Tensor:
        if arch is None:
            arch = self.fixed_arch
        fixed = None if arch is None else arch_to_ops(arch)
        sampled: list[tuple[int, ...]] = []
        x = self.stem(x)
        for layer in self.cells:
            if isinstance(layer, SearchCell):
                ops = fixed if fixed is not None else sample_cell_ops(self._path_rng)
                sampled.append(ops)
                x = layer(x, ops)
            else:
                x = layer(x)
        self.last_sampled = sampled
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)
