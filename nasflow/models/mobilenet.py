"""RLNAS' MobileNet-like network (mobilenet_search_space/, after ProxylessNAS) and its FLOPs look-up table.

    stem         conv 3x3 stride 2 (3 -> 40) + BN + ReLU6, then MBConv e=1 40 -> 24
                 (depthwise 3x3 + BN + ReLU6, 1x1 -> 24 + BN)
    blocks       21 choice blocks in 6 stages (nasflow.spaces.mobilenet.STAGES); `skip` = identity
    head         conv 1x1 -> 1728 + BN + ReLU6, global average pool, dropout 0.2, linear -> classes

MBConv(inp, oup, k, stride, e): 1x1 conv inp -> inp*e + BN + ReLU6; depthwise k x k (stride, pad k//2) +
BN + ReLU6; 1x1 conv -> oup + BN; plus the input when stride is 1 and inp == oup. No conv has a bias. In
each block's `conv` Sequential the three convs sit at indices 0, 3, 6 (e=1: depthwise 0, 1x1 3), as in
RLNAS, for code that reads weights by position (the angle).

Width multiplier: every channel count c becomes `make_divisible(c * width)` (multiples of 8, ProxylessNAS'
rule); the final conv keeps 1728 unless width > 1. RLNAS pools with AvgPool2d(input_size // 32), which is
the global average for input sizes that are multiples of 32; here the pool is always global, so any input
size works.

FLOPs look-up table: RLNAS' evolution search sums, from a pickled table, the FLOPs of the stem, of each
block's choice at its (inp, oup, side, stride) and of the head. `flops_table` builds the same table from
these modules (each entry is `count_flops` of the module alone on its input shape), and `flops_of` sums it
for an arch without building the network: equal to `count_flops(build_mobilenet(arch, ...))` because the
network is made of exactly these modules and FLOPs add up over modules. RLNAS counts with its own thop,
which counts convs as we do (multiply-accumulates, no bias here) but a Linear layer as (2 * in - 1) * out
(a multiply and an add each, no bias) instead of (in + 1) * out; `convention="rlnas"` gives its number
(`in - 2` more per class: 1,726,000 at 1728 -> 1000), the one its 475M limit applies to.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import nn

from nasflow.counting import count_flops
from nasflow.errors import ParamsError
from nasflow.models.ops import ThinNetwork
from nasflow.spaces import mobilenet as space

__all__ = ["thin_network", "ntk_network", "MBConv", "Stem", "Head", "MobileNetwork", "build_mobilenet", "build_network", "FlopsTable",
           "flops_table", "flops_of", "block_flops"]

DROPOUT = 0.2


def _bn_relu6(channels: int) -> list[nn.Module]:
    return [nn.BatchNorm2d(channels), nn.ReLU6(inplace=True)]


class MBConv(nn.Module):
    """Mobile inverted bottleneck (MobileNetV2's inverted residual) with kernel k and expansion e."""

    def __init__(self, inp: int, oup: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        self.inp, self.oup, self.kernel, self.stride, self.expansion = inp, oup, kernel, stride, expansion
        self.use_residual = stride == 1 and inp == oup
        hidden = inp * expansion
        depthwise = nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False)
        project = [nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        if expansion == 1:  # nothing to expand: depthwise straight on the input
            layers = [depthwise, *_bn_relu6(hidden), *project]
        else:
            layers = [nn.Conv2d(inp, hidden, 1, bias=False), *_bn_relu6(hidden), depthwise, *_bn_relu6(hidden),
                      *project]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out

    def extra_repr(self) -> str:
        return f"k={self.kernel}, e={self.expansion}, stride={self.stride}, residual={self.use_residual}"


def choice_block(choice: str, inp: int, oup: int, stride: int) -> nn.Module:
    """The module of one choice block: an MBConv, or `nn.Identity` for `skip`."""
    if choice == space.SKIP:
        return nn.Identity()
    kernel, expansion = space.KERNEL_EXPANSION[choice]
    return MBConv(inp, oup, kernel, stride, expansion)


class Stem(nn.Module):
    """Conv 3x3 stride 2 + BN + ReLU6, then the fixed MBConv e=1."""

    def __init__(self, stem_channels: int, out_channels: int):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, stem_channels, 3, 2, 1, bias=False), *_bn_relu6(stem_channels))
        self.first_block = MBConv(stem_channels, out_channels, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.first_block(self.conv(x))


class Head(nn.Module):
    """Conv 1x1 + BN + ReLU6, global average pool, dropout, linear."""

    def __init__(self, inp: int, last_channels: int, num_classes: int, dropout: float = DROPOUT):
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(inp, last_channels, 1, bias=False), *_bn_relu6(last_channels))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last_channels, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.conv(x)).flatten(1))


class MobileNetwork(nn.Module):
    """The fixed-arch network; `blocks[i]` is choice block i (`nn.Identity` where the arch says skip)."""

    def __init__(self, arch, width: float = 1.0, num_classes: int = 1000, input_size: int = 224,
                 dropout: float = DROPOUT):
        super().__init__()
        space.check_positive("number of classes", num_classes)
        self.arch = space.canonical(arch)
        self.choices: tuple[str, ...] = space.parse(self.arch)
        self.layout = space.layout(width, input_size)
        self.width, self.num_classes, self.input_size = self.layout.width, num_classes, input_size
        lay = self.layout
        self.stem = Stem(lay.stem_channels, lay.first_block_channels)
        self.blocks = nn.ModuleList(
            choice_block(choice, spec.inp, spec.oup, spec.stride) for choice, spec in zip(self.choices, lay.blocks)
        )
        self.head = Head(lay.blocks[-1].oup, lay.last_channels, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"arch={self.arch}, width={self.width}, input_size={self.input_size}"


def build_mobilenet(arch, *, width: float = 1.0, num_classes: int = 1000, input_size: int = 224) -> MobileNetwork:
    """RLNAS' network for `arch` (defaults: its ImageNet network, 224 px, 1000 classes, width 1.0).
    `input_size` is the image side it is meant for (the network itself accepts any size)."""
    return MobileNetwork(arch, width=width, num_classes=num_classes, input_size=input_size)


def build_network(arch, *, channels: int | None = None, depth: int | None = None, num_classes: int = 1000,
                  width: float | None = None, input_size: int = 224) -> MobileNetwork:
    """RLNAS' network for `arch`, with nasflow.registry's common API.

    `channels` is the stem's width, mapped to the width multiplier `channels / 40` (RLNAS' network has 40;
    channels are then rounded to multiples of 8); or give `width` directly (not both). The depth is fixed
    by the space (21 choice blocks; `skip` shortens the network), so `depth` must be left out or be 21.
    """
    if depth is not None and depth != space.N_BLOCKS:
        raise ParamsError(f"the {space.NAME} space has a fixed depth of {space.N_BLOCKS} choice blocks ('skip' "
                          f"shortens it): depth={depth!r} does not apply (leave it out or pass {space.N_BLOCKS})")
    if channels is not None and width is not None:
        raise ParamsError(f"{space.NAME}: give channels or width, not both")
    if width is None:
        width = space.channels_to_width(channels)
    return build_mobilenet(arch, width=width, num_classes=num_classes, input_size=input_size)


def _one_channel_blocks(arch) -> list[nn.Module]:
    blocks = []
    for choice, spec in zip(space.parse(arch), space.layout(1.0, 224).blocks):
        block = choice_block(choice, 1, 1, spec.stride)
        if isinstance(block, MBConv):
            block.use_residual = spec.stride == 1 and spec.inp == spec.oup
        blocks.append(block)
    return blocks


def thin_network(arch, *, num_classes: int = 1000) -> ThinNetwork:
    """nasflow's analogue of TE-NAS's thin network (TE-NAS defines it for cell spaces only): every choice block
    of `arch` at one input and output channel (hidden = the expansion), its stride and its residual as in the
    full network (at width 1.0), no stem and no head conv, then the head BN -> ReLU6 -> pool -> Linear; input
    one channel."""
    return ThinNetwork(nn.Sequential(*_one_channel_blocks(arch)), 1, num_classes, act=lambda: nn.ReLU6(inplace=True))


def ntk_network(arch, *, num_classes: int = 1000) -> MobileNetwork:
    """nasflow's analogue of TE-NAS's NTK network (on NB201 the benchmark's skeleton at C=3): this space's network
    at width 0.2 (blocks of 8 to 88 channels; one channel, as the thin network, leaves the NTK singular)."""
    return build_mobilenet(arch, width=0.2, num_classes=num_classes)


# --------------------------------------------------------------------------------------------------------
# FLOPs look-up table


@functools.lru_cache(maxsize=4096)
def block_flops(choice: str, inp: int, oup: int, stride: int, side: int) -> int:
    """FLOPs of one choice block on a (inp, side, side) input, counted on the module itself (0 for skip)."""
    if choice == space.SKIP:
        return 0
    return count_flops(choice_block(choice, inp, oup, stride), (inp, side, side))


@functools.lru_cache(maxsize=256)
def _stem_flops(stem_channels: int, out_channels: int, input_size: int) -> int:
    return count_flops(Stem(stem_channels, out_channels), (3, input_size, input_size))


@functools.lru_cache(maxsize=256)
def _head_flops(inp: int, last_channels: int, num_classes: int, side: int) -> int:
    return count_flops(Head(inp, last_channels, num_classes), (inp, side, side))


class FlopsTable(NamedTuple):
    """FLOPs of the fixed parts and of every (block, choice) at one width / input size / class count."""

    stem: int
    head: int
    blocks: tuple[Mapping[str, int], ...]  # blocks[i][choice] (read-only); 'skip' -> 0 where allowed
    head_linear: tuple[int, int]  # (in, out) features of the classifier, for the RLNAS convention

    def flops(self, arch, convention: str = "nasflow") -> int:
        total = self.stem + self.head + sum(self.blocks[i][op] for i, op in enumerate(space.parse(arch)))
        if convention == "rlnas":
            features_in, features_out = self.head_linear
            total += (features_in - 2) * features_out  # thop: (2 in - 1) out instead of (in + 1) out
        elif convention != "nasflow":
            raise ParamsError(f"unknown FLOPs convention {convention!r} (known: nasflow, rlnas)")
        return total


@functools.lru_cache(maxsize=64)
def flops_table(width: float = 1.0, input_size: int = 224, num_classes: int = 1000) -> FlopsTable:
    """RLNAS' per-block FLOPs look-up table, computed from this module's blocks (keys as RLNAS':
    a block's choice at its input/output channels, stride and input side)."""
    space.check_positive("number of classes", num_classes)
    lay = space.layout(width, input_size)
    blocks = tuple(
        MappingProxyType({op: block_flops(op, spec.inp, spec.oup, spec.stride, spec.side)
                          for op in space.allowed_choices(spec.index)})
        for spec in lay.blocks
    )
    stem = _stem_flops(lay.stem_channels, lay.first_block_channels, input_size)
    head = _head_flops(lay.blocks[-1].oup, lay.last_channels, num_classes, lay.final_side)
    return FlopsTable(stem, head, blocks, (lay.last_channels, num_classes))


def flops_of(arch, *, width: float = 1.0, input_size: int = 224, num_classes: int = 1000,
             convention: str = "nasflow") -> int:
    """FLOPs per image of `arch` from the look-up table. `convention="nasflow"` (nasflow.counting's:
    multiply-accumulates of convs and linears, bias included) equals `count_flops` of the built network;
    `"rlnas"` is the number RLNAS' table gives (its thop counts the classifier as (2 in - 1) out)."""
    return flops_table(space.check_width(width), input_size, num_classes).flops(arch, convention)
