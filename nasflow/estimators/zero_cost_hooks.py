"""What the zero-cost modules share below both of them (nasflow.estimators.zero_cost imports
nasflow.estimators.zero_cost_2022, so their common helpers live here): a proxy's elapsed seconds on its device, and
the inputs of every ReLU evaluated in a block."""
from __future__ import annotations

import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


def _elapsed(start: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


class _ReLUInputs(TorchFunctionMode):
    """Calls `seen(x)` with the input of every ReLU evaluated inside the block: nn.ReLU modules (which call
    F.relu), F.relu / torch.relu / Tensor.relu (in-place variants too), ReLU6 (F.relu6, nn.ReLU6 = hardtanh
    from 0). The input is read before the call, so an in-place ReLU is seen as it was."""

    _RELUS = frozenset({F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6})

    def __init__(self, seen: Callable[[torch.Tensor], None]):
        super().__init__()
        self.seen = seen

    @staticmethod
    def _is_relu6(func, args, kwargs) -> bool:
        if func is not F.hardtanh:
            return False
        min_val = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
        return float(min_val) == 0.0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func in self._RELUS or self._is_relu6(func, args, kwargs)) and args and isinstance(args[0], torch.Tensor):
            self.seen(args[0])
        return func(*args, **kwargs)


def _logits(output) -> torch.Tensor:
    """The logits of a forward pass: a DARTS network in training mode returns (logits, aux_logits)."""
    return output[0] if isinstance(output, (tuple, list)) else output


def input_jacobian(model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(per-image gradients of the summed logits w.r.t. the input, one row per image; the number of classes),
    in training mode: what jacob_cov and epe_nas read. An output that ignores the input (a cell without a path)
    gives zero rows."""
    model.train()
    x = batch.detach().clone().requires_grad_(True)
    out = _logits(model(x))
    jac = None
    if out.requires_grad:
        (jac,) = torch.autograd.grad(out, x, grad_outputs=torch.ones_like(out), allow_unused=True)
    if jac is None:
        jac = torch.zeros_like(x)
    return jac.reshape(jac.shape[0], -1), out.shape[-1]
