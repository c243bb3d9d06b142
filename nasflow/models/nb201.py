"""NAS-Bench-201 fixed-architecture network (`TinyNetwork`), as trained for the benchmark.

    stem   Conv 3x3 (3 -> C, no bias) + BN
    stage  N cells at C
    block  ResNet basic block, stride 2, C -> 2C
    stage  N cells at 2C
    block  ResNet basic block, stride 2, 2C -> 4C
    stage  N cells at 4C
    head   BN -> ReLU -> global average pool -> Linear

Every cell uses the same arch. A cell has 4 nodes; node j is the sum of its edges from nodes i < j and node
3 is the output. `cell.edges[k]` is the op module of edge `EDGES[k]` (string order), so supernet and angle
code can find each edge's conv weights. `none` edges hold a `Zero` module for alignment but are never run.
Any input size divisible by 4 and any number of classes work.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from nasflow.models.ops import ResNetBasicBlock, ThinNetwork, make_op
from nasflow.spaces import nb201 as space

__all__ = ["InferCell", "TinyNetwork", "build_network", "thin_network", "ntk_network"]


class InferCell(nn.Module):
    """One NB201 cell with a fixed op per edge."""

    def __init__(
        self, arch: str, C: int, *, affine: bool = True, track_running_stats: bool = True
    ):
        super().__init__()
        self.arch = space.canonical(arch)
        self.op_names: tuple[str, ...] = space.parse(self.arch)
        self.edges = nn.ModuleList(
            make_op(op, C, affine=affine, track_running_stats=track_running_stats)
            for op in self.op_names
        )
        # For each node 1..3: the (edge index, source node) pairs that actually contribute.
        self._inputs: list[list[tuple[int, int]]] = [[] for _ in range(space.N_NODES)]
        for k, ((to_node, from_node), op) in enumerate(zip(space.EDGES, self.op_names)):
            if op != "none":
                self._inputs[to_node].append((k, from_node))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in range(1, space.N_NODES):
            node = None
            for k, from_node in self._inputs[to_node]:
                out = self.edges[k](nodes[from_node])
                node = out if node is None else node + out
            nodes.append(torch.zeros_like(x) if node is None else node)
        return nodes[-1]

    def extra_repr(self) -> str:
        return f"arch={self.arch}"


def build_macro(net: nn.Module, C: int, N: int, num_classes: int, make_cell: Callable[[int], nn.Module]) -> None:
    """NB201's macro skeleton on `net`, shared by the fixed network and the supernets: stem Conv3x3 + BN; N cells
    (`make_cell(width)`) at C, 2C and 4C separated by the ResNet reduction blocks (`net.cells`, ADL's layout);
    head BN -> ReLU -> global average pool -> Linear. The attribute names are those state dicts (and the angle
    estimator) rely on; modules are created in this order, so initial weights follow from the torch seed."""
    net.stem = nn.Sequential(nn.Conv2d(3, C, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(C))
    layers: list[nn.Module] = []
    C_prev = C
    for stage, C_stage in enumerate((C, 2 * C, 4 * C)):
        if stage > 0:
            layers.append(ResNetBasicBlock(C_prev, C_stage, stride=2))
        layers.extend(make_cell(C_stage) for _ in range(N))
        C_prev = C_stage
    net.cells = nn.ModuleList(layers)
    net.lastact = nn.Sequential(nn.BatchNorm2d(C_prev), nn.ReLU(inplace=True))
    net.global_pooling = nn.AdaptiveAvgPool2d(1)
    net.classifier = nn.Linear(C_prev, num_classes)


class TinyNetwork(nn.Module):
    """The benchmark's network for one cell; NB201 trains it with C=16, N=5."""

    def __init__(
        self,
        arch: str,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        *,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        if C < 1 or N < 0 or num_classes < 1:
            raise ValueError(f"need C >= 1, N >= 0, num_classes >= 1; got C={C}, N={N}, {num_classes=}")
        self.arch = space.canonical(arch)
        self.C, self.N, self.num_classes = C, N, num_classes

        build_macro(self, C, N, num_classes,
                    lambda C_stage: InferCell(self.arch, C_stage, affine=affine,
                                              track_running_stats=track_running_stats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)

    def infer_cells(self) -> list[InferCell]:
        """The 3N cells (without the reduction blocks), in order."""
        return [m for m in self.cells if isinstance(m, InferCell)]

    def reduction_blocks(self) -> list[ResNetBasicBlock]:
        """The two ResNet blocks between stages."""
        return [m for m in self.cells if isinstance(m, ResNetBasicBlock)]


def build_network(arch: str, *, channels: int = 16, depth: int = 5, num_classes: int = 10) -> TinyNetwork:
    """The benchmark's fixed-arch network for `arch` (nasflow.registry's common API); `depth` is N, the cells
    per stage."""
    return TinyNetwork(arch, C=channels, N=depth, num_classes=num_classes)


def thin_network(arch: str, *, num_classes: int = 10) -> ThinNetwork:
    """TE-NAS's thin network for `arch` (prune_tenas.py on NB201: C=1, N=1, depth=1, no stem): the arch's cell at
    one channel, then the head; input one channel. TE-NAS runs its pruned supernet; for one arch that is this
    cell (the zero-weighted ops it still runs are left out)."""
    return ThinNetwork(InferCell(arch, 1), 1, num_classes)


def ntk_network(arch: str, *, num_classes: int = 10) -> TinyNetwork:
    """The network TE-NAS computes the NTK on (prune_tenas.py on NB201 `model_config`: C=3, N=1, with the stem):
    the benchmark's skeleton with one cell per stage at 3, 6 and 12 channels."""
    return TinyNetwork(arch, C=3, N=1, num_classes=num_classes)
