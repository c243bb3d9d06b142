"""Single-path weight-sharing supernet of the MobileNet-like space (RLNAS mobilenet_search_space/, SPOS style).

The skeleton is `nasflow.models.mobilenet`'s (stem conv 3x3 + MBConv e=1, 21 choice blocks, head conv 1x1
+ pool + dropout + linear) at a width multiplier; every choice block holds all 6 MBConv choices
(`block.ops[c]` is `space.MBCONV_OPS[c]`, c = RLNAS' code 0..5) and, where the space allows it (not the
first block of a stage), the identity (code -1, no module). The BNs are affine and track running
statistics, as in the fixed network (`estimators.supernet_acc` recomputes them per arch).

`forward(x, arch=None)`:

* `arch=None` (and `fixed_arch` unset): one uniform path for the whole batch -- each block draws its choice
  uniformly over its allowed choices (6 or 7), as RLNAS' train.py draws `rng` once per step; this happens in
  eval mode too. `last_sampled` holds the drawn path as an RLNAS code tuple.
* `arch` given (any spelling `space.parse` accepts): that arch, like `build_mobilenet(arch)` sharing the
  supernet's weights.

Path sampling uses a Python `random.Random` owned by the module (seeded by `seed`); its state is part of
`state_dict()` (`get_extra_state`, int64 tensors, loadable with `torch.load(weights_only=True)`), so a resumed
training run draws the paths an uninterrupted one would have drawn.

RLNAS' own SuperNetwork file is not in its public repository; what is known of it (block names `features[i]
._ops[c]`, `input_channel` / `output_channel`, `conv_bn`, `MBConv_ratio_1`, `conv_1x1_bn`, `classifier[0]`)
comes from its evolution search's angle code; the dropout before the classifier follows the retrain network.
"""

from __future__ import annotations

import functools
import random

import torch
from torch import nn

from nasflow.models.mobilenet import DROPOUT, Head, MBConv, Stem
from nasflow.models.ops import PathSampling
from nasflow.spaces import mobilenet as space

__all__ = ["ChoiceBlock", "MobileNetSupernet", "SKIP_CODE", "arch_to_codes", "sample_codes"]

SKIP_CODE = -1
# per block, the RLNAS codes it may take (0..5, then -1 where skip is allowed), in RLNAS' `operations` order
ALLOWED_CODES: tuple[tuple[int, ...], ...] = tuple(
    tuple(range(len(space.MBCONV_OPS))) + ((SKIP_CODE,) if space.SKIP in space.allowed_choices(b) else ())
    for b in range(space.N_BLOCKS)
)


def sample_codes(rng: random.Random) -> tuple[int, ...]:
    """One uniform path: per block a uniform choice among its allowed codes."""
    return tuple(codes[rng.randrange(len(codes))] for codes in ALLOWED_CODES)


@functools.lru_cache(maxsize=4096)
def _parse_codes(arch: str) -> tuple[int, ...]:
    return space.to_rlnas_code(arch)


def arch_to_codes(arch) -> tuple[int, ...]:
    """RLNAS codes of an arch (string, or sequence of names / codes; validated)."""
    return _parse_codes(arch) if isinstance(arch, str) else space.to_rlnas_code(tuple(arch))


class ChoiceBlock(nn.Module):
    """One choice block: the 6 MBConvs of `space.MBCONV_OPS` at (inp, oup, stride); identity if allowed."""

    def __init__(self, index: int, inp: int, oup: int, stride: int):
        super().__init__()
        self.index, self.input_channel, self.output_channel, self.stride = index, inp, oup, stride
        self.allows_skip = space.SKIP in space.allowed_choices(index)
        self.ops = nn.ModuleList(
            MBConv(inp, oup, kernel, stride, expansion)
            for kernel, expansion in (space.KERNEL_EXPANSION[name] for name in space.MBCONV_OPS)
        )

    def forward(self, x: torch.Tensor, code: int) -> torch.Tensor:
        if code == SKIP_CODE:
            return x  # only drawn where allowed: the block keeps its input's shape
        return self.ops[code](x)

    def extra_repr(self) -> str:
        return f"index={self.index}, inp={self.input_channel}, oup={self.output_channel}, stride={self.stride}"


class MobileNetSupernet(PathSampling, nn.Module):
    """The MobileNet-like one-shot supernet (RLNAS: width 1.0, 224 px, 1000 classes). See the module doc."""

    def __init__(self, width: float = 1.0, num_classes: int = 1000, *, input_size: int = 224, seed: int = 0,
                 dropout: float = DROPOUT):
        super().__init__()
        space.check_positive("number of classes", num_classes)
        lay = space.layout(width, input_size)
        self.layout, self.width, self.num_classes, self.input_size = lay, lay.width, num_classes, input_size
        self.fixed_arch: str | None = None  # when set, forward(x) uses it instead of sampling
        self.last_sampled: tuple[int, ...] | None = None
        self.reseed(seed)
        self.stem = Stem(lay.stem_channels, lay.first_block_channels)
        self.blocks = nn.ModuleList(ChoiceBlock(s.index, s.inp, s.oup, s.stride) for s in lay.blocks)
        self.head = Head(lay.blocks[-1].oup, lay.last_channels, num_classes, dropout)

    # ------------------------------------------------------------------------------------------ paths

    # ---------------------------------------------------------------------------------------- forward

    def forward(self, x: torch.Tensor, arch=None) -> torch.Tensor:
        if arch is None:
            arch = self.fixed_arch
        codes = sample_codes(self._path_rng) if arch is None else arch_to_codes(arch)
        self.last_sampled = codes
        x = self.stem(x)
        for block, code in zip(self.blocks, codes):
            x = block(x, code)
        return self.head(x)

    def extra_repr(self) -> str:
        return f"width={self.width}, input_size={self.input_size}, num_classes={self.num_classes}"
