"""Parameter and FLOP counts, with NAS-Bench-201's conventions (ADL xautodl/utils/flop_benchmark.py).

FLOPs are multiply-accumulates per image of Conv and Linear layers, plus one per output element for a
bias; pooling, BN, activations and additions are not counted (ADL hooks pooling layers but leaves them out
of the sum). Parameters are all of the model's parameters, BN affine included. The benchmark reports both
in millions (FLOPs / 1e6, params / 1e6): on CIFAR-10 with C=16, N=5, cell index 0 has 15,647,370 FLOPs and
129,306 parameters.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["count_params", "count_flops"]


def count_params(model: nn.Module) -> int:
    """The number of parameters of `model` (every parameter, trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def _conv_flops(module: nn.modules.conv._ConvNd, output: torch.Tensor) -> int:
    positions = output[0].numel() // module.out_channels  # output positions per image
    kernel = 1
    for k in module.kernel_size:
        kernel *= k
    per_position = kernel * (module.in_channels // module.groups) * module.out_channels
    bias = module.out_channels if module.bias is not None else 0
    return positions * (per_position + bias)


def _linear_flops(module: nn.Linear, output: torch.Tensor) -> int:
    rows = output[0].numel() // module.out_features  # 1 for a (batch, features) input
    bias = module.out_features if module.bias is not None else 0
    return rows * (module.in_features * module.out_features + bias)


def count_flops(model: nn.Module, input_size: Sequence[int] = (3, 32, 32)) -> int:
    """Multiply-accumulates of one image of shape `input_size` (C, H, W) through `model`.

    Runs one forward pass in eval mode without gradients, on the model's device, then restores every
    submodule's training flag. Each Conv/Linear call counts (a module used twice counts twice).
    """
    total = 0

    def hook(module: nn.Module, inputs, output) -> None:
        nonlocal total
        if isinstance(module, nn.Linear):
            total += _linear_flops(module, output)
        else:
            total += _conv_flops(module, output)

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear))
    ]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_size, device=device))
    finally:
        for module, training in modes:
            module.training = training
        for handle in handles:
            handle.remove()
    return total
