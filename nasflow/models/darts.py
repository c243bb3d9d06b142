"""DARTS's evaluation network for a fixed genotype (`NetworkCIFAR`, quark0/darts cnn/model.py).

    stem        Conv 3x3 (3 -> 3C, no bias) + BN                        (stem multiplier 3)
    cells       `layers` cells; cells layers//3 and 2*layers//3 are reduction cells (stride 2, channels
                doubled there), the others normal cells. A cell's output concatenates its 4 intermediate
                nodes, so it has 4x the cell's channels.
    aux head    after cell 2*layers//3 (the second reduction cell), training only
    head        global average pool -> Linear

A cell preprocesses its two inputs to its own channel count C: the previous cell's output with a
ReLU-Conv1x1-BN, the one before it with a FactorizedReduce when the previous cell was a reduction cell
(to halve its resolution), a ReLU-Conv1x1-BN otherwise. In a reduction cell the pairs that read node 0 or 1
run with stride 2 (`skip_connect` there is a FactorizedReduce).

Ops (quark0/darts cnn/operations.py; all convs bias-free, BNs affine; the ops take `affine` /
`track_running_stats` keywords for the search supernet, models/darts_search.py, whose BNs are not affine):

    max_pool_3x3  MaxPool2d(3, stride, pad 1)
    avg_pool_3x3  AvgPool2d(3, stride, pad 1, count_include_pad=False)
    skip_connect  identity; FactorizedReduce(C, C) at stride 2
    sep_conv_kxk  twice [ReLU, depthwise Conv kxk (pad k//2), pointwise Conv1x1, BN], stride on the first
    dil_conv_kxk  ReLU, depthwise Conv kxk dilation 2 (pad k-1), pointwise Conv1x1, BN
    none          zeros at the op's stride (search supernet only; a genotype never holds it)

Drop path (DARTS utils.drop_path): in training, when `drop_path_prob` > 0, the output of every pair whose op
is not the identity is zeroed per sample with that probability and the kept samples scaled by
1/(1 - p). The trainer (nasflow.train) ramps the `drop_path_prob` attribute from 0 each epoch.

Output: in training mode `(logits, aux_logits)` (`aux_logits` is None without an auxiliary head), in eval
mode the logits alone -- so counting and evaluation code can treat it as any classifier.

Auxiliary head (DARTS AuxiliaryHeadCIFAR): ReLU, average-pool to 2x2, Conv1x1 (-> 128) + BN + ReLU,
Conv2x2 (-> 768) + BN + ReLU, Linear. DARTS pools with AvgPool2d(5, stride 3), written for the 8x8 maps
that 32-px inputs give at 2/3 depth; at 16 px (BPE's settings) the map is 4x4, smaller than that window,
and the layer fails. The pool here is chosen from the map it receives: DARTS's 5x5 window with stride
H-5 on 8x8 and 7x7 maps (exactly DARTS at 32 px), AdaptiveAvgPool2d(2) on any other size (at 16 px: the
mean of each 2x2 quarter of the 4x4 map). This is also BPE's choice (its AugmentCNN AuxiliaryHead keeps
the 5x5 window for 7/8-px maps and pools adaptively to 2x2 otherwise). The pool has no weights, so the
head's parameters do not depend on the image size.

Beyond DARTS, so that any C, depth and image size work: FactorizedReduce gives its second conv
C_out - C_out//2 channels (DARTS gives both C_out//2, which breaks for odd C_out) and zero-pads its shifted
input at odd resolutions (DARTS's two halves differ in size there). For even C and even sizes both are
exactly DARTS.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasflow.models.ops import ReLUConvBN, ThinNetwork
from nasflow.spaces import darts as space

__all__ = [
    "thin_network",
    "ntk_network",
    "DilConv",
    "SepConv",
    "FactorizedReduce",
    "Zero",
    "make_op",
    "drop_path",
    "Cell",
    "AuxiliaryHeadCIFAR",
    "NetworkCIFAR",
    "build_stem_and_cells",
    "build_network",
]


class DilConv(nn.Sequential):
    """ReLU -> depthwise Conv kxk (stride, dilation) -> pointwise Conv 1x1 -> BN."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, dilation: int, *,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, dilation=dilation, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )


class SepConv(nn.Sequential):
    """Two ReLU-depthwise-pointwise-BN blocks; the stride is on the first depthwise conv."""

    def __init__(self, C_in: int, C_out: int, kernel_size: int, stride: int, padding: int, *,
                 affine: bool = True, track_running_stats: bool = True):
        bn = dict(affine=affine, track_running_stats=track_running_stats)
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, stride, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_in, 1, bias=False),
            nn.BatchNorm2d(C_in, **bn),
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_in, kernel_size, 1, padding, groups=C_in, bias=False),
            nn.Conv2d(C_in, C_out, 1, bias=False),
            nn.BatchNorm2d(C_out, **bn),
        )


class FactorizedReduce(nn.Module):
    """Halve the resolution: ReLU, two stride-2 Conv1x1 on the input and on the input shifted by one pixel,
    concatenated (C_out//2 + the rest channels), BN."""

    def __init__(self, C_in: int, C_out: int, *, affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(C_in, C_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(C_in, C_out - C_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if x.shape[-2] % 2 or x.shape[-1] % 2:  # keep both halves ceil(H/2) x ceil(W/2)
            shifted = F.pad(shifted, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


class Zero(nn.Module):
    """The `none` op of the search supernet: zeros shaped like the op's output (stride 1 or 2)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return torch.zeros_like(x)
        return torch.zeros_like(x[:, :, ::self.stride, ::self.stride])

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def make_op(name: str, C: int, stride: int, *, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """A fresh module for op `name` on `C` channels (stride 1 or 2); `affine` / `track_running_stats` are
    its BNs' settings. `none` (a `Zero`) is for the search supernet; `NetworkCIFAR` never builds it."""
    bn = dict(affine=affine, track_running_stats=track_running_stats)
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(C, C, **bn)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(C, C, k, stride, k // 2, **bn)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(C, C, k, stride, k - 1, dilation=2, **bn)
    raise ValueError(f"no module for op {name!r}")


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples of `x` with probability `drop_prob`, scaling the rest by 1/(1 - drop_prob)."""
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0], 1, 1, 1), dtype=torch.float32, device=x.device).bernoulli_(keep)
    return x * mask.div_(keep).to(x.dtype)


class Cell(nn.Module):
    """One normal or reduction cell of a fixed genotype."""

    def __init__(self, pairs, C_prev_prev: int, C_prev: int, C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0 = FactorizedReduce(C_prev_prev, C)
        else:
            self.preprocess0 = ReLUConvBN(C_prev_prev, C, 1)
        self.preprocess1 = ReLUConvBN(C_prev, C, 1)
        self.op_names = tuple(op for op, _ in pairs)
        self.indices = tuple(inp for _, inp in pairs)
        self.ops = nn.ModuleList(
            make_op(op, C, 2 if reduction and inp < 2 else 1) for op, inp in pairs
        )
        self._identity = tuple(isinstance(op, nn.Identity) for op in self.ops)
        self.multiplier = len(space.CONCAT)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        drop = self.training and drop_prob > 0
        for i in range(0, len(self.ops), 2):
            node = None
            for j in (i, i + 1):
                h = self.ops[j](states[self.indices[j]])
                if drop and not self._identity[j]:
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[k] for k in space.CONCAT], dim=1)

    def extra_repr(self) -> str:
        return f"reduction={self.reduction}"


class AuxiliaryHeadCIFAR(nn.Module):
    """DARTS's auxiliary classifier; pools any map to 2x2 first (see the module docstring)."""

    def __init__(self, C: int, num_classes: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.features = nn.Sequential(
            nn.Conv2d(C, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if h == w and h in (7, 8):  # DARTS: AvgPool2d(5, stride 3) on 8x8 (32-px inputs); stride 2 on 7x7
            return F.avg_pool2d(x, 5, stride=h - 5, padding=0)
        return F.adaptive_avg_pool2d(x, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(self.pool(self.relu(x)))
        return self.classifier(x.flatten(1))


def build_stem_and_cells(module: nn.Module, C: int, layers: int, make_cell) -> list[int]:
    """DARTS' macro-structure up to the head, on `module` (the evaluation network, the RLNAS supernet and the
    differentiable search network share it): `stem` (Conv 3x3, 3 -> 3C, + BN; stem multiplier 3) and `cells`,
    `layers` cells from `make_cell(C_prev_prev, C_prev, C_cell, reduction, reduction_prev)`, cells layers//3 and
    2*layers//3 reducing (channels doubled there); sets `reduction_layers`. Returns each cell's output channels
    (`cell.multiplier * C_cell`)."""
    module.reduction_layers = tuple(sorted({layers // 3, 2 * layers // 3}))
    C_curr = 3 * C
    module.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
    C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
    cells, out_channels, reduction_prev = [], [], False
    for i in range(layers):
        reduction = i in module.reduction_layers
        if reduction:
            C_curr *= 2
        cell = make_cell(C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
        out_channels.append(C_prev)
    module.cells = nn.ModuleList(cells)
    return out_channels


class NetworkCIFAR(nn.Module):
    """DARTS's CIFAR evaluation network for one genotype; DARTS trains it with C=36, 20 layers."""

    def __init__(self, genotype, C: int = 36, layers: int = 20, num_classes: int = 10, auxiliary: bool = True):
        super().__init__()
        if C < 1 or layers < 1 or num_classes < 1:
            raise ValueError(f"need C >= 1, layers >= 1, num_classes >= 1; got C={C}, {layers=}, {num_classes=}")
        g = space.parse(genotype)
        self.genotype = space.format(g)
        self.C, self.layers, self.num_classes = C, layers, num_classes
        self.drop_path_prob = 0.0  # set (ramped) by the trainer; used in training mode only
        self.aux_layer = 2 * layers // 3
        out_channels = build_stem_and_cells(
            self, C, layers,
            lambda C_pp, C_p, C_cell, reduction, reduction_prev: Cell(
                g.reduce if reduction else g.normal, C_pp, C_p, C_cell, reduction, reduction_prev))
        C_prev, C_aux = out_channels[-1], out_channels[self.aux_layer]
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor):
        aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_layer and self.training and self.auxiliary_head is not None:
                aux_logits = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        if self.training:
            return logits, aux_logits
        return logits

    def extra_repr(self) -> str:
        return f"C={self.C}, layers={self.layers}, num_classes={self.num_classes}"


def build_network(arch, *, channels: int = 36, depth: int = 20, num_classes: int = 10,
                  auxiliary: bool = True) -> NetworkCIFAR:
    """DARTS's evaluation network for `arch` (nasflow.registry's common API); `depth` is the number of cells
    (`layers`).

    The auxiliary head (at 2/3 depth) only runs in training mode; pass `auxiliary=False` to leave it out
    (DARTS reports parameter counts without it: DARTS_V2 at C=36, 20 layers has 3,349,342).
    """
    return NetworkCIFAR(arch, C=channels, layers=depth, num_classes=num_classes, auxiliary=auxiliary)


class _ThinCells(nn.Module):
    """The cells of a thin network, fed the input as both states (no stem), as TE-NAS's NASNetworkDARTS."""

    def __init__(self, cells: list[nn.Module]):
        super().__init__()
        self.cells = nn.ModuleList(cells)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = x
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return s1


def _two_cells(arch) -> _ThinCells:
    g = space.parse(arch)
    multiplier = len(space.CONCAT)
    return _ThinCells([Cell(g.normal, 1, 1, 1, reduction=False, reduction_prev=False),
                       Cell(g.reduce, 1, multiplier, 2, reduction=True, reduction_prev=False)])


def thin_network(arch, *, num_classes: int = 10) -> ThinNetwork:
    """TE-NAS's thin network for `arch` (prune_tenas.py on DARTS `model_config_thin`: C=1, N=1, depth=2, stem
    multiplier 1, no stem): a normal cell at one channel and a reduction cell at two, then the head; input one
    channel."""
    return ThinNetwork(_two_cells(arch), 2 * len(space.CONCAT), num_classes)


def ntk_network(arch, *, num_classes: int = 10) -> ThinNetwork:
    """The network TE-NAS computes the NTK on (prune_tenas.py on DARTS `model_config`: as the thin network, with
    the stem Conv 3x3 (3 -> 1) + BN); input RGB."""
    stem = nn.Sequential(nn.Conv2d(3, 1, 3, padding=1, bias=False), nn.BatchNorm2d(1))
    return ThinNetwork(nn.Sequential(stem, _two_cells(arch)), 2 * len(space.CONCAT), num_classes)
