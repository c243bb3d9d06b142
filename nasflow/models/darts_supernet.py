"""Single-path weight-sharing supernet of the DARTS cell space (RLNAS, megvii-model/RLNAS
darts_search_space/cifar10 `Network(C=16, layers=8)`).

Macro-structure as DARTS' search network: stem Conv 3x3 (3 -> 3C, no bias) + BN; `layers` cells, cells
layers//3 and 2*layers//3 are reduction cells (stride 2, channels doubled); global average pool -> Linear.
A cell preprocesses its inputs to its channel count C (node 0: FactorizedReduce when the previous cell was a
reduction cell, else ReLU-Conv1x1-BN; node 1: ReLU-Conv1x1-BN), then its 4 intermediate nodes each read
*every* earlier node: 14 edges (edge order: `space.EDGE_INPUTS`), each holding all 8 ops of `space.OPS`
(`cell.edges[e][o]` is op `OPS[o]` of edge e; stride 2 on the edges from nodes 0 and 1 of a reduction cell).
The cells are the differentiable search's (`nasflow.models.darts_search.DartsSearchCell`: the evaluation
network's ops, pools followed by a BatchNorm2d, as in RLNAS' MixedOp), built with affine BNs that track
running statistics (RLNAS builds every op with `affine=True`; unlike the NB201 supernet); `none` (zeros) is
never run. The output concatenates nodes 2..5.

`forward(x, arch=None)`:

* `arch=None` (and `fixed_arch` unset): on every forward one normal and one reduce 14-edge vector are drawn
  (14 uniform draws over all 8 ops each, then repaired by `space.repair_edge_ops`, RLNAS' `check_cand`, so
  that every node keeps exactly two non-`none` edges); all normal cells run the normal vector, all
  reduction cells the reduce vector. The draws are a DARTS genotype; this happens in eval mode too.
* `arch` given: a genotype (string, any spelling `space.parse` accepts, or a `Genotype`) or a pair
  (normal, reduce) of 14-edge op vectors with exactly two non-`none` edges per node.

Only the non-`none` edges run (two per node). `last_sampled` is the (normal, reduce) pair of edge vectors
of the last forward (`space.from_edge_ops(*net.last_sampled)` is its genotype).

Path sampling uses a `numpy.random.RandomState` owned by the module (seeded by `seed`), not the global
RNGs. Its state is part of `state_dict()` (via `get_extra_state`, as tensors and plain numbers, so that
checkpoints load with `torch.load(weights_only=True)`): a training run resumed from a `nasflow.train`
checkpoint draws exactly the paths an uninterrupted run would have drawn.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from nasflow.models.darts import build_stem_and_cells
from nasflow.models.darts_search import DartsSearchCell
from nasflow.spaces import darts as space

__all__ = ["DartsSupernet", "arch_to_edge_ops", "sample_edge_ops", "NONE"]

NONE = space.NONE_INDEX
N_OPS = len(space.OPS)


def sample_edge_ops(rng: np.random.RandomState) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """One (normal, reduce) pair as RLNAS' supernet training draws it: 14 + 14 uniform op indices (`none`
    included), then each cell repaired with `space.repair_edge_ops`."""
    normal = rng.randint(N_OPS, size=space.N_EDGES)
    reduce = rng.randint(N_OPS, size=space.N_EDGES)
    return space.repair_edge_ops(normal, rng), space.repair_edge_ops(reduce, rng)


@functools.lru_cache(maxsize=4096)
def _parse_edge_ops(arch: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return space.to_edge_ops(arch)


def arch_to_edge_ops(arch) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal, reduce) 14-edge op vectors of a genotype string / `Genotype`, or of a (normal, reduce)
    pair of vectors (validated: exactly two non-`none` edges per node)."""
    if isinstance(arch, str):
        return _parse_edge_ops(arch)
    if isinstance(arch, (tuple, list)) and len(arch) == 2 and not isinstance(arch[0], str):
        space.from_edge_ops(arch[0], arch[1])  # validates
        return tuple(int(o) for o in arch[0]), tuple(int(o) for o in arch[1])
    return space.to_edge_ops(arch)


class DartsSupernet(nn.Module):
    """The DARTS-space one-shot supernet (RLNAS: C=16, 8 layers). See the module docstring."""

    def __init__(self, C: int = 16, layers: int = 8, num_classes: int = 10, *, seed: int = 0):
        super().__init__()
        if C < 1 or layers < 1 or num_classes < 1:
            raise ValueError(f"need C >= 1, layers >= 1, num_classes >= 1; got C={C}, {layers=}, {num_classes=}")
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self.fixed_arch = None  # when set, forward(x) uses it instead of sampling
        self.last_sampled: tuple[tuple[int, ...], tuple[int, ...]] | None = None
        self._path_rng = np.random.RandomState(seed)
        out_channels = build_stem_and_cells(
            self, C, layers,
            lambda C_pp, C_p, C_cell, reduction, reduction_prev: DartsSearchCell(
                C_pp, C_p, C_cell, reduction, reduction_prev,
                affine=True, track_running_stats=True))  # RLNAS: affine BNs everywhere
        C_prev = out_channels[-1]
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    # ------------------------------------------------------------------------------------------ paths

    def reseed(self, seed: int) -> None:
        """Restart path sampling from `seed`."""
        self._path_rng = np.random.RandomState(seed)

    def get_extra_state(self) -> dict:
        name, keys, pos, has_gauss, gauss = self._path_rng.get_state()
        return {"path_rng_name": str(name),
                "path_rng": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "path_rng_pos": int(pos), "path_rng_has_gauss": int(has_gauss),
                "path_rng_gauss": float(gauss)}

    def set_extra_state(self, state: dict) -> None:
        keys = state["path_rng"].numpy().astype(np.uint32)
        self._path_rng.set_state((state["path_rng_name"], keys, int(state["path_rng_pos"]),
                                  int(state["path_rng_has_gauss"]), float(state["path_rng_gauss"])))

    def search_cells(self) -> list[DartsSearchCell]:
        """The `layers` cells, in order (every cell is a search cell)."""
        return list(self.cells)

    # ---------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, arch=None) -> torch.Tensor:
        if arch is None:
            arch = self.fixed_arch
        normal, reduce = sample_edge_ops(self._path_rng) if arch is None else arch_to_edge_ops(arch)
        self.last_sampled = (normal, reduce)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def extra_repr(self) -> str:
        return f"C={self.C}, layers={self.layers}, num_classes={self.num_classes}"
