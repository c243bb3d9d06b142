"""Candidate operations of the NAS-Bench-201 cell and the ResNet block between its stages.

Follows NB201 (ADL xautodl/models/cell_operations.py):

    none          zeros (the cell skips it instead of running it)
    skip_connect  identity
    nor_conv_1x1  ReLU -> Conv 1x1 (no bias) -> BN
    nor_conv_3x3  ReLU -> Conv 3x3, pad 1 (no bias) -> BN
    avg_pool_3x3  AvgPool2d(3, stride 1, pad 1, count_include_pad=False)

Cell ops keep the channel count and the resolution. `affine` / `track_running_stats` are the op BNs'
settings: True for fixed-arch networks, `affine=False` for weight-sharing supernets (RLNAS, GDAS).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch
from torch import nn

__all__ = [
    "OPS",
    "ThinNetwork",
    "ReLUConvBN",
    "Zero",
    "Identity",
    "AvgPool",
    "ResNetBasicBlock",
    "make_op",
    "path_rng_state",
    "load_path_rng_state",
    "PathSampling",
]


def path_rng_state(rng: random.Random) -> dict:
    """A supernet's path RNG as state-dict extra state: tensors and plain numbers, so that checkpoints load
    with `torch.load(weights_only=True)` and a resumed run draws the paths an uninterrupted one would."""
    version, internal, gauss = rng.getstate()
    return {"path_rng_version": int(version), "path_rng": torch.tensor(internal, dtype=torch.int64),
            "path_rng_gauss": gauss}


def load_path_rng_state(rng: random.Random, state: dict) -> None:
    """Restore what `path_rng_state` saved."""
    internal = tuple(int(v) for v in state["path_rng"].tolist())
    rng.setstate((int(state["path_rng_version"]), internal, state["path_rng_gauss"]))


class PathSampling:
    """For an nn.Module that samples paths: its own `random.Random` (`reseed`), saved in its state_dict as extra
    state, so a resumed run draws the paths an uninterrupted one would."""

    _path_rng: random.Random

    def reseed(self, seed: int) -> None:
        """Restart path sampling from `seed`."""
        self._path_rng = random.Random(seed)

    def get_extra_state(self) -> dict:
        return path_rng_state(self._path_rng)

    def set_extra_state(self, state: dict) -> None:
        load_path_rng_state(self._path_rng, state)


class ReLUConvBN(nn.Sequential):
    """ReLU -> Conv (no bias) -> BN."""

    def __init__(
        self,
        C_in: int,
        C_out: int,
        kernel_size: int,
        stride: int = 1,
        *,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(C_in, C_out, kernel_size, stride, padding=(kernel_size - 1) // 2, bias=False),
            nn.BatchNorm2d(C_out, affine=affine, track_running_stats=track_running_stats),
        )

    @property
    def conv(self) -> nn.Conv2d:
        return self[1]

    @property
    def bn(self) -> nn.BatchNorm2d:
        return self[2]


class Zero(nn.Module):
    """The `none` op: zeros shaped like the input. Cells skip it rather than call it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


class Identity(nn.Module):
    """The `skip_connect` op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class AvgPool(nn.AvgPool2d):
    """The `avg_pool_3x3` op (padding excluded from the average)."""

    def __init__(self):
        super().__init__(kernel_size=3, stride=1, padding=1, count_include_pad=False)


OpFactory = Callable[[int, bool, bool], nn.Module]

# name -> factory(C, affine, track_running_stats), in NB201's op order.
OPS: dict[str, OpFactory] = {
    "none": lambda C, affine, track: Zero(),
    "skip_connect": lambda C, affine, track: Identity(),
    "nor_conv_1x1": lambda C, affine, track: ReLUConvBN(C, C, 1, affine=affine, track_running_stats=track),
    "nor_conv_3x3": lambda C, affine, track: ReLUConvBN(C, C, 3, affine=affine, track_running_stats=track),
    "avg_pool_3x3": lambda C, affine, track: AvgPool(),
}


def make_op(name: str, C: int, *, affine: bool = True, track_running_stats: bool = True) -> nn.Module:
    """A fresh module for op `name` on `C` channels."""
    return OPS[name](C, affine, track_running_stats)


class ResNetBasicBlock(nn.Module):
    """The stride-2 block between NB201 stages: two ReLUConvBN 3x3 plus a pooled 1x1 shortcut.

    Its BNs are always affine (as in NB201's search networks too).
    """

    def __init__(self, C_in: int, C_out: int, stride: int = 2):
        super().__init__()
        self.conv_a = ReLUConvBN(C_in, C_out, 3, stride)
        self.conv_b = ReLUConvBN(C_out, C_out, 3, 1)
        if stride == 2:
            self.shortcut = nn.Sequential(
                nn.AvgPool2d(kernel_size=2, stride=2, padding=0),
                nn.Conv2d(C_in, C_out, kernel_size=1, bias=False),
            )
        elif C_in != C_out:
            self.shortcut = ReLUConvBN(C_in, C_out, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class ThinNetwork(nn.Module):
    """TE-NAS's thin network for counting linear regions (VITA-Group/TENAS prune_tenas.py `model_config_thin`:
    one channel, no stem, the first cells only): `body` maps a one-channel image to `channels` maps, then BN ->
    activation -> global average pool -> Linear, the head of NB201's network. Each space's `thin_network(arch)`
    builds one; nasflow.estimators.zero_cost_2022.te_nas_lr takes it."""

    def __init__(self, body: nn.Module, channels: int, num_classes: int, act: Callable[[], nn.Module] = nn.ReLU):
        super().__init__()
        self.body = body
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels), act())
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.global_pooling(self.lastact(self.body(x))).flatten(1))
