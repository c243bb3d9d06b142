"""One-shot validation accuracy of an arch inside a trained supernet (SPOS "val-acc" estimator).

For each arch, BatchNorm statistics are recomputed first (the supernet's running statistics average over
all sampled paths, which is wrong for any single arch): every BN's running mean/var are reset, its momentum
set to None (cumulative average), and the supernet runs the arch in train mode, without gradients, on
`bn_batches` batches of training images; then it is evaluated in eval mode. The training images used for
recalibration and the evaluation images (all of `splits.x_eval`, or a fixed subset of `max_eval`) are
chosen by `seed`, with no augmentation, so the result is deterministic (on the CPU; bit-for-bit on a GPU
only with deterministic kernels). The evaluation is the training engine's (`nasflow.train.evaluate`), with its
bf16 autocast on CUDA (`precision` 16) and channels_last.

The supernet is left as it was: BN buffers, momenta and train/eval mode are restored after each arch.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasflow.data import DeviceLoader, Splits
from nasflow.errors import ParamsError
from nasflow.train import bf16_autocast, evaluate

__all__ = ["supernet_accuracy", "supernet_accuracies"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _subset(n: int, k: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subset of k of n items (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


@torch.no_grad()
def supernet_accuracies(supernet: nn.Module, archs: Sequence[str], splits: Splits, *, device,
                        batch_size: int = 256, bn_batches: int = 10, max_eval: int | None = None,
                        image_size: int | None = None, seed: int = 0, precision: int = 32,
                        channels_last: bool = False) -> list[float]:
    """Top-1 accuracy (percent) on `splits.x_eval` of each arch inside `supernet`, after BN recalibration.

    bn_batches: training batches of `batch_size` images for the BN statistics (0: keep the supernet's).
    max_eval:   evaluate on a fixed seeded subset of this many evaluation images (None: all).
    precision:  16 = bf16 autocast on CUDA (the CPU runs fp32); channels_last: NHWC supernet and batches.
    """
    if batch_size < 1 or bn_batches < 0 or (max_eval is not None and max_eval < 1):
        raise ParamsError(f"supernet_accuracy: need batch_size >= 1, bn_batches >= 0, max_eval >= 1 "
                          f"(got {batch_size}, {bn_batches}, {max_eval})")
    device = torch.device(device)
    size = image_size or splits.image_size
    supernet.to(device)
    if channels_last:
        supernet.to(memory_format=torch.channels_last)
    use_bf16 = device.type == "cuda" and precision == 16

    bn_idx = _subset(len(splits.x_train), bn_batches * batch_size, seed)
    ev_idx = _subset(len(splits.x_eval), max_eval, seed + 1)
    common = dict(device=device, image_size=size, train=False, mean=splits.mean, std=splits.std,
                  channels_last=channels_last)
    bn_loader = (DeviceLoader(splits.x_train[bn_idx], splits.y_train[bn_idx], batch_size=batch_size,
                              **common) if bn_batches > 0 else None)
    ev_loader = DeviceLoader(splits.x_eval[ev_idx], splits.y_eval[ev_idx], batch_size=max(batch_size, 256),
                             **common)

    bns = [m for m in supernet.modules() if isinstance(m, _BN) and m.track_running_stats]
    saved = [(m.momentum, {k: v.clone() for k, v in m.named_buffers(recurse=False)}) for m in bns]
    was_training = supernet.training
    accs: list[float] = []
    try:
        for arch in archs:
            if bn_loader is not None:
                for m in bns:
                    m.reset_running_stats()
                    m.momentum = None  # cumulative moving average over the recalibration batches
                supernet.train()
                for x, _ in bn_loader:
                    with bf16_autocast(use_bf16):
                        supernet(x, arch=arch)
            accs.append(evaluate(supernet, ev_loader, use_bf16=use_bf16, arch=arch)[1])
    finally:
        for m, (momentum, buffers) in zip(bns, saved):
            m.momentum = momentum
            for k, v in buffers.items():
                getattr(m, k).copy_(v)
        supernet.train(was_training)
    return accs


def supernet_accuracy(supernet: nn.Module, arch: str, splits: Splits, *, device, batch_size: int = 256,
                      bn_batches: int = 10, max_eval: int | None = None, image_size: int | None = None,
                      seed: int = 0, precision: int = 32, channels_last: bool = False) -> float:
    """Accuracy (percent) of one arch; see `supernet_accuracies`."""
    return supernet_accuracies(supernet, [arch], splits, device=device, batch_size=batch_size,
                               bn_batches=bn_batches, max_eval=max_eval, image_size=image_size,
                               seed=seed, precision=precision, channels_last=channels_last)[0]
