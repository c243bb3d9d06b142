"""Zero-cost proxies: score an untrained network from one batch, in a forward/backward pass or two.

Definitions (each summed over the Conv/Linear layers of the network unless said otherwise), after
Abdelfattah et al. 2021 (SamsungLabs/zero-cost-nas, `foresight/pruners/measures`), Mellor et al. 2021
(BayesWatch/nas-without-training) and Lin et al. 2021 (idstcv/ZenNAS):

    grad_norm  sum of the L2 norms of dL/dW, L = cross-entropy of the batch (train-mode BN)
    snip       sum |W * dL/dW|  (= |dL/dmask| of a multiplicative mask at 1, SNIP's saliency)
    grasp      sum -W * (H g), g = dL/dW, H the Hessian of L w.r.t. the weights (a Hessian-gradient product)
    fisher     per output channel k of every Conv/Linear layer, with a its (pre-BN) activation:
               0.5 * mean_n (sum_spatial a * dL/da)^2, summed over channels and layers
    synflow    sum |W * dR/dW| where R = sum of the logits of the network with every weight made |W|, BN
               bypassed (identity), in float64, on one all-ones image
    jacob_cov  -sum_i log(v_i + k) + 1/(v_i + k), v the eigenvalues of the correlation matrix of the
               per-image input gradients of the summed logits, k = 1e-5
    naswot     log|det K|, K = sum over ReLU calls of N_A - d_H: the Hamming similarity of the images' binary
               codes (ReLU input > 0); every ReLU counts, nn.ReLU modules and functional F.relu/torch.relu
    zen        log E_n sum |f(x) - f(x + 0.01 e)| + sum_BN log sqrt(mean running_var), f the feature map before
               global pooling, x, e ~ N(0, 1), weights re-drawn N(0, 1) (BN weight 1, biases 0), train mode
    params     parameter count (nasflow.counting)
    flops      multiply-accumulates per image (nasflow.counting, NAS-Bench-201's convention)

Like the references, the network is in training mode (BN uses batch statistics; a DARTS network returns
(logits, aux_logits) there, and the logits are used). Differences, all deliberate:
- grasp takes H g from one forward pass (grad with `create_graph`, then the gradient of g_detached . g);
  the reference runs the same batch forward twice, which gives the same numbers in training mode.
- jacob_cov: eigenvalues of the (symmetric) correlation matrix by `eigvalsh`, clipped at 0 (rounding can make
  them slightly negative); the reference's `eig` can return complex values there. A constant Jacobian row
  (an image the network ignores) makes the correlation undefined: NaN, as in the reference.
- zen: `repeat=1` by default (Zen-NAS averages 32 draws); its random inputs come from a generator seeded
  with `seed`, so the score is reproducible.
A disconnected network (NB201 cells with no path) gives -inf or NaN for some proxies; they are not errors.

The proxies cited since 2022 (meco, meco_opt, zico, swap, swap_reg, AZ-NAS's four, te_nas_ntk, te_nas_lr, epe_nas,
l2_norm, plain) live in nasflow.estimators.zero_cost_2022 and are accepted by every function here (`ALL_PROXIES`;
the default stays `PROXIES`); `az_nas` and `te_nas` are population aggregates (`AGGREGATES`), computed by
`score_archs` / `add_aggregates` over the archs scored together, never by `score` for one arch.

`score` builds a fresh, identically seeded network for every proxy, so one proxy's changes (synflow's |W|,
zen's re-initialisation, BN running statistics) never reach another, except that grad_norm, snip, fisher and
grasp share one network and one forward pass, grad_norm, snip and fisher one gradient too (none of them changes a
weight; the values equal those computed one by one). Costs `<name>_seconds` time the proxy itself, not the
network's construction; a shared proxy's cost is what it would cost alone (the shared forward and gradient plus
its own part), so the costs of several proxies add up to more than the time they took together.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasflow.counting import count_flops, count_params
from nasflow.errors import ParamsError
from nasflow.estimators.zero_cost_hooks import _elapsed, _logits, _ReLUInputs, input_jacobian
from nasflow.registry import get_space, network_builder, network_module

__all__ = [
    "PROXIES",
    "ALL_PROXIES",
    "AGGREGATES",
    "score",
    "add_aggregates",
    "per_arch_names",
    "score_archs",
    "vote",
    "check_proxies",
    "train_batch",
    "grad_norm",
    "snip",
    "grasp",
    "fisher",
    "synflow",
    "jacob_cov",
    "naswot",
    "zen",
    "params",
    "flops",
    "hamming_kernel",
    "jacob_cov_score",
]

PROXIES: tuple[str, ...] = (
    "grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov", "naswot", "zen", "params", "flops",
)
# proxies whose value depends on the batch's labels
NEEDS_LABELS = frozenset({"grad_norm", "snip", "grasp", "fisher", "zico", "epe_nas", "plain"})

_WEIGHTED = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
JACOB_COV_K = 1e-5
ZEN_MIXUP_GAMMA = 1e-2


# ------------------------------------------------------------------------------------------- helpers

def _weighted_layers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _WEIGHTED)]


def _loss(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    model.train()
    return F.cross_entropy(_logits(model(batch)), labels)


def _weight_grads(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """(Conv/Linear weights, dL/dW or None where a layer does not reach the loss)."""
    weights = [m.weight for m in _weighted_layers(model)]
    loss = _loss(model, batch, labels)
    if not weights or not loss.requires_grad:
        return weights, [None] * len(weights)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return weights, list(grads)


def _total(terms) -> float:
    return float(sum((t.sum().item() for t in terms), 0.0))


# --------------------------------------------------------------------------------------- the proxies

def grad_norm(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over Conv/Linear layers of ||dL/dW||_2."""
    _, grads = _weight_grads(model, batch, labels)
    return _total(g.norm() for g in grads if g is not None)


def snip(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over Conv/Linear weights of |W * dL/dW|."""
    weights, grads = _weight_grads(model, batch, labels)
    return _total((w * g).abs() for w, g in zip(weights, grads) if g is not None)


def grasp(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over Conv/Linear weights of -W * (H g) (GraSP, with Abdelfattah et al.'s sign)."""
    weights = [m.weight for m in _weighted_layers(model)]
    loss = _loss(model, batch, labels)
    if not weights or not loss.requires_grad:
        return 0.0
    return _grasp_from_loss(loss, weights)


def _grasp_from_loss(loss: torch.Tensor, weights: list[torch.Tensor]) -> float:
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    if not used:
        return 0.0
    # d/dW of (g_detached . g) = H g_detached: the Hessian-gradient product without forming H
    z = sum((g.detach() * g).sum() for _, g in used)
    if not z.requires_grad:  # g does not depend on the weights: H = 0
        return 0.0
    hg = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return _total(-w.detach() * h for (w, _), h in zip(used, hg) if h is not None)


def fisher(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over the output channels of every Conv/Linear call of 0.5 * mean_n (sum_spatial a * dL/da)^2."""
    activations: list[torch.Tensor] = []

    def keep(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            activations.append(output)

    handles = [m.register_forward_hook(keep) for m in _weighted_layers(model)]
    try:
        loss = _loss(model, batch, labels)
    finally:
        for h in handles:
            h.remove()
    if not activations or not loss.requires_grad:
        return 0.0
    return _fisher_total(activations, torch.autograd.grad(loss, activations, allow_unused=True))


def _fisher_total(activations, grads) -> float:
    """Sum over the channels of every activation of 0.5 * mean_n (sum_spatial a * dL/da)^2."""
    total = 0.0
    for act, grad in zip(activations, grads):
        if grad is None:  # a layer off the loss's path (e.g. an auxiliary head)
            continue
        prod = act.detach() * grad
        per_channel = prod.sum(dim=tuple(range(2, prod.dim()))) if prod.dim() > 2 else prod
        total += per_channel.pow(2).mean(0).mul(0.5).sum().item()
    return float(total)


# proxies read off one forward pass and a gradient of its loss (grasp: a gradient that keeps its graph, then a
# Hessian-gradient product through it): `score` computes them from one forward pass instead of one each
LOSS_GRADIENT = ("grad_norm", "snip", "fisher", "grasp")
# ... and NASLib's plain (nasflow.estimators.zero_cost_2022), read off the same gradient
LOSS_GRADIENT_ALL = LOSS_GRADIENT + ("plain",)


def loss_gradient_proxies(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor,
                          names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """({name: value}, {name: seconds}) for the `LOSS_GRADIENT` proxies in `names`, from one forward pass: the
    values equal `grad_norm`, `snip`, `fisher` and `grasp` computed one by one on the same network.

    grad_norm, snip and fisher read one plain gradient of the loss; grasp takes a second gradient through the
    same graph, one that keeps its own graph, and the Hessian-gradient product through that. A proxy's seconds
    are what it costs alone: the forward, its gradient, its own reduction (grasp: its product)."""
    names = [n for n in LOSS_GRADIENT_ALL if n in names]
    device = batch.device
    activations: list[torch.Tensor] = []

    def keep(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.requires_grad:
            activations.append(output)

    start = time.perf_counter()
    layers = _weighted_layers(model)
    weights = [m.weight for m in layers]
    handles = [m.register_forward_hook(keep) for m in layers] if "fisher" in names else []
    try:
        loss = _loss(model, batch, labels)
    finally:
        for h in handles:
            h.remove()
    forward = _elapsed(start, device)
    reaches = bool(weights) and loss.requires_grad  # else no Conv/Linear layer reaches the loss: every proxy is 0
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}

    plain = [n for n in names if n != "grasp"]
    if plain:
        start = time.perf_counter()
        grads = [None] * (len(weights) + len(activations))
        if reaches:
            grads = list(torch.autograd.grad(loss, weights + activations, retain_graph="grasp" in names,
                                             allow_unused=True))
        weight_grads, act_grads = grads[:len(weights)], grads[len(weights):]
        gradient = _elapsed(start, device)

        reductions = {
            "grad_norm": lambda: _total(g.norm() for g in weight_grads if g is not None),
            "snip": lambda: _total((w.detach() * g).abs() for w, g in zip(weights, weight_grads) if g is not None),
            "fisher": lambda: _fisher_total(activations, act_grads),
            # NASLib's plain: sum W * dL/dW, signed
            "plain": lambda: _total(w.detach() * g for w, g in zip(weights, weight_grads) if g is not None),
        }
        for name in plain:
            start = time.perf_counter()
            values[name] = reductions[name]()
            seconds[name] = forward + gradient + _elapsed(start, device)
    if "grasp" in names:
        start = time.perf_counter()
        values["grasp"] = _grasp_from_loss(loss, weights) if reaches else 0.0
        seconds["grasp"] = forward + _elapsed(start, device)
    return {n: values[n] for n in names}, {n: seconds[n] for n in names}


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@contextlib.contextmanager
def _synflow_network(model: nn.Module) -> Iterator[None]:
    """The model with |W| everywhere, float64, BN bypassed; afterwards the weights' signs, the dtype and BN's
    forward are restored (the sign trick of SynFlow)."""
    dtypes = {p.dtype for p in model.parameters()} | {b.dtype for b in model.buffers() if b.is_floating_point()}
    dtype = next(iter(dtypes)) if len(dtypes) == 1 else torch.float32
    state = _unique_float_state(model)
    with torch.no_grad():
        signs = {k: torch.sign(v) for k, v in state.items()}
        for v in state.values():
            v.abs_()
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in bns:
        bn.forward = _identity  # an instance attribute shadows the class's forward
    model.double()
    try:
        yield
    finally:
        model.to(dtype)
        for bn in bns:
            del bn.forward
        with torch.no_grad():
            for k, v in _unique_float_state(model).items():
                v.mul_(signs[k].to(v.dtype))


def _unique_float_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The floating-point state tensors, each storage once (a tied weight must not flip its sign twice)."""
    seen: set[int] = set()
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point() and value.data_ptr() not in seen:
            seen.add(value.data_ptr())
            state[key] = value
    return state


def synflow(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Sum over Conv/Linear weights of |W * dR/dW|, R the summed logits of the |W|-network (BN bypassed,
    float64) on one all-ones image shaped like the batch's."""
    device = batch.device
    with _synflow_network(model):
        weights = [m.weight for m in _weighted_layers(model)]
        ones = torch.ones((1, *batch.shape[1:]), dtype=torch.float64, device=device)
        total_output = _logits(model(ones)).sum()
        if not weights or not total_output.requires_grad:
            return 0.0
        grads = torch.autograd.grad(total_output, weights, allow_unused=True)
        return _total((w.detach() * g).abs() for w, g in zip(weights, grads) if g is not None)


def jacob_cov_score(jacobians: np.ndarray, k: float = JACOB_COV_K) -> float:
    """-sum(log(v + k) + 1/(v + k)) over the eigenvalues v of the correlation matrix of the rows."""
    with np.errstate(divide="ignore", invalid="ignore"):  # a constant row: NaN correlations, checked next
        corr = np.atleast_2d(np.corrcoef(np.asarray(jacobians, dtype=np.float64)))
    if not np.all(np.isfinite(corr)):
        return math.nan
    eig = np.clip(np.linalg.eigvalsh(corr), 0.0, None)
    return float(-np.sum(np.log(eig + k) + 1.0 / (eig + k)))


def jacob_cov(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """`jacob_cov_score` of the per-image gradients of the summed logits w.r.t. the input (constant rows, when
    the output ignores the input: NaN)."""
    jac, _ = input_jacobian(model, batch)
    return jacob_cov_score(jac.double().cpu().numpy())


def hamming_kernel(codes: np.ndarray) -> np.ndarray:
    """K[i, j] = N_A - d_H(c_i, c_j) for binary codes c (rows): the number of units on which i and j agree."""
    c = np.asarray(codes, dtype=np.float64)
    return c @ c.T + (1.0 - c) @ (1.0 - c).T


def naswot(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """log|det K| of the Hamming kernel of the ReLU codes of the batch (Mellor et al. 2021)."""
    n = batch.shape[0]
    kernel = torch.zeros((n, n), dtype=torch.float64, device=batch.device)

    def add(x: torch.Tensor) -> None:
        nonlocal kernel
        codes = (x.detach().reshape(x.shape[0], -1) > 0)
        units = codes.shape[1]
        # agreements = units - |c_i| - |c_j| + 2 c_i . c_j; one matmul, exact in float32 below 2^24 units
        dtype = torch.float32 if units < 2 ** 24 else torch.float64
        c = codes.to(dtype)
        ones = c.sum(1, dtype=torch.float64)
        kernel = kernel + units - ones[:, None] - ones[None, :] + 2.0 * (c @ c.T).double()

    model.train()
    with torch.no_grad(), _ReLUInputs(add):
        model(batch)
    _, logdet = np.linalg.slogdet(kernel.cpu().numpy())
    return float(logdet)


def _pre_gap_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The feature map entering the network's last global pooling (Zen-NAS's `forward_pre_GAP`); without
    one, the input of the last Linear layer; without that, the output."""
    seen: dict[str, torch.Tensor] = {}

    def pooled(module, inputs):
        seen["pool"] = inputs[0]

    def classified(module, inputs):
        seen["linear"] = inputs[0]

    handles = [m.register_forward_pre_hook(pooled) for m in model.modules()
               if isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool1d))]
    handles += [m.register_forward_pre_hook(classified) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        out = _logits(model(x))
    finally:
        for h in handles:
            h.remove()
    return seen.get("pool", seen.get("linear", out))


def _gaussian_init(model: nn.Module, generator: torch.Generator) -> None:
    """Zen-NAS's init: Conv/Linear weights N(0, 1), their biases 0; BN/GroupNorm weight 1, bias 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _WEIGHTED):
                m.weight.normal_(0.0, 1.0, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)):
                if m.weight is not None:
                    m.weight.fill_(1.0)
                if m.bias is not None:
                    m.bias.zero_()


def zen(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0, *,
        mixup_gamma: float = ZEN_MIXUP_GAMMA, repeat: int = 1) -> float:
    """Zen score (Lin et al. 2021), averaged over `repeat` draws. Re-initialises the model's weights."""
    generator = torch.Generator(device=batch.device)
    generator.manual_seed(int(seed))
    shape, device, dtype = tuple(batch.shape), batch.device, batch.dtype
    scores = []
    model.train()  # the BN scaling factor reads the running variance the two passes leave behind
    with torch.no_grad():
        for _ in range(repeat):
            _gaussian_init(model, generator)
            x = torch.randn(shape, generator=generator, device=device, dtype=dtype)
            noise = torch.randn(shape, generator=generator, device=device, dtype=dtype)
            f_x = _pre_gap_features(model, x)
            f_mix = _pre_gap_features(model, x + mixup_gamma * noise)
            delta = (f_x - f_mix).abs().reshape(shape[0], -1).sum(1).mean()
            log_bn = 0.0
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
                    log_bn += math.log(math.sqrt(m.running_var.double().mean().item()))
            scores.append((math.log(delta.item()) if delta.item() > 0 else -math.inf) + log_bn)
    return float(np.mean(scores))


def params(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Number of parameters."""
    return float(count_params(model))


def flops(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor | None = None, seed: int = 0) -> float:
    """Multiply-accumulates of one image of the batch's shape."""
    return float(count_flops(model, tuple(batch.shape[1:])))


def plain(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Sum over Conv2d/Linear weights of W * dL/dW (signed), L the batch's cross-entropy in training mode
    (NASLib measures/plain.py). Shares the loss-gradient pass of grad_norm/snip/fisher in `score`."""
    return loss_gradient_proxies(model, batch, labels, ["plain"])[0]["plain"]


_FUNCS: dict[str, Callable[..., float]] = {
    "grad_norm": grad_norm, "snip": snip, "grasp": grasp, "fisher": fisher, "synflow": synflow,
    "jacob_cov": jacob_cov, "naswot": naswot, "zen": zen, "params": params, "flops": flops,
}


from nasflow.estimators import zero_cost_2022 as _zc22  # noqa: E402 (it imports helpers defined above)

_FUNCS.update(_zc22.FUNCS_2022)
_FUNCS["plain"] = plain  # NAS-Bench-Suite-Zero's, here beside the loss-gradient pass it reads
# every name `check_proxies` accepts: the 2021 set (the default), then the 2022+ set (nasflow.estimators.zero_cost_2022)
ALL_PROXIES: tuple[str, ...] = PROXIES + _zc22.PROXIES_2022
AGGREGATES = _zc22.AGGREGATES
FORWARD = _zc22.FORWARD
AZ = _zc22.AZ


# ------------------------------------------------------------------------------------------- scoring

def check_proxies(proxies: Sequence[str] | None) -> list[str]:
    """The proxy names to compute (all of `PROXIES` for None), each known and named once."""
    if proxies is None:
        return list(PROXIES)
    if isinstance(proxies, str):
        proxies = [proxies]
    names = list(proxies)
    if not names:
        raise ParamsError("proxies: the list is empty (choose from " + ", ".join(ALL_PROXIES) + ")")
    for name in names:
        if name not in _FUNCS and name not in AGGREGATES:
            raise ParamsError(f"unknown zero-cost proxy {name!r} (choose from {', '.join(ALL_PROXIES)})")
    if len(set(names)) != len(names):
        raise ParamsError(f"proxies: a name is repeated in {', '.join(names)}")
    return names


def _check_batch(batch, labels, names: Sequence[str]) -> None:
    if not isinstance(batch, torch.Tensor) or batch.dim() < 2 or batch.shape[0] < 1:
        raise ParamsError("batch: expected an image tensor [N, C, H, W] with N >= 1")
    if not batch.is_floating_point():
        raise ParamsError(f"batch: expected floating-point images, got {batch.dtype}")
    if labels is None:
        needing = [n for n in names if n in NEEDS_LABELS]
        if needing:
            raise ParamsError(f"labels: needed by {', '.join(needing)}")
        return
    if not isinstance(labels, torch.Tensor) or labels.dim() != 1 or len(labels) != batch.shape[0]:
        raise ParamsError(f"labels: expected a 1-D tensor of {batch.shape[0]} class indices")


def _cuda_ids(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def score(model_factory: Callable[[], nn.Module], batch: torch.Tensor, labels: torch.Tensor | None, *,
          proxies: Sequence[str] | None = None, seed: int = 0, device="cpu",
          own_networks: Mapping[str, Callable[[], nn.Module]] | None = None) -> dict[str, float]:
    """{proxy: value, ..., proxy_seconds: cost, ...} for `proxies` (default all, `PROXIES` order).

    Each proxy gets a fresh network, `model_factory()` called right after `torch.manual_seed(seed)`, so all
    proxies see identical initial weights and none sees another's changes; the `LOSS_GRADIENT` proxies share
    one such network and its forward pass (`loss_gradient_proxies`), which changes no weight. The proxies of
    `OWN_NETWORK` (TE-NAS's two) get `own_networks[name]()` instead: the network their authors score (the space
    module's builder `OWN_NETWORK[name]` names; `score_archs` passes them). The caller's torch RNG state is left
    as it was."""
    names = check_proxies(proxies)
    population = [n for n in names if n in AGGREGATES]
    if population:
        raise ParamsError(f"{', '.join(population)}: a population aggregate (ranks among archs), not a per-arch "
                          f"score: use score_archs, or score its members ({', '.join(AGGREGATES[population[0]][1])})")
    _check_batch(batch, labels, names)
    device = torch.device(device)
    batch = batch.to(device)
    labels = labels.to(device) if labels is not None else None
    values: dict[str, float] = {}
    seconds: dict[str, float] = {}

    own_networks = dict(own_networks or {})
    for name in names:
        if name in _zc22.OWN_NETWORK and name not in own_networks:
            raise ParamsError(f"{name}: scores its own network for the arch (the space's {_zc22.OWN_NETWORK[name]}): "
                              f"pass own_networks={{{name!r}: factory}}, or use score_archs")

    def fresh_network(factory=model_factory) -> nn.Module:
        torch.manual_seed(seed)
        return factory().to(device)

    # shared passes, each on one fresh network (the values as one by one; each proxy's seconds as alone)
    passes = [
        ([n for n in names if n in LOSS_GRADIENT_ALL], lambda m, ns: loss_gradient_proxies(m, batch, labels, ns)),
        ([n for n in names if n in FORWARD] if any(n.startswith("meco") for n in names) else [],
         lambda m, ns: _zc22.forward_proxies(m, batch, ns, seed=seed)),
        ([n for n in names if n in AZ], lambda m, ns: _zc22.az_proxies(m, batch, ns, seed=seed)),
    ]
    shared: set[str] = set()
    for group, run in passes:
        if not group:
            continue
        with torch.random.fork_rng(devices=_cuda_ids(device)):
            model = fresh_network()
            found, cost = run(model, group)
        values.update(found)
        seconds.update({f"{n}_seconds": s for n, s in cost.items()})
        shared.update(group)
        del model
    for name in names:
        if name in shared:
            continue
        with torch.random.fork_rng(devices=_cuda_ids(device)):
            model = fresh_network(own_networks.get(name, model_factory))
            start = time.perf_counter()
            values[name] = float(_FUNCS[name](model, batch, labels, seed))
            seconds[f"{name}_seconds"] = _elapsed(start, device)
        del model
    values = {n: values[n] for n in names}  # in the order asked
    seconds = {f"{n}_seconds": seconds[f"{n}_seconds"] for n in names}
    return {**values, **seconds}


def _builder_kwargs(builder) -> dict:
    """Extra keywords for the space's `build_network`: the network as evaluated, without an auxiliary head
    (DARTS's only runs in training mode, which the proxies use, and would add its ReLUs and weights)."""
    accepted = inspect.signature(builder).parameters
    return {"auxiliary": False} if "auxiliary" in accepted else {}


def score_archs(archs: Sequence, *, space, channels: int, depth: int, num_classes: int, batch: torch.Tensor,
                labels: torch.Tensor | None, proxies: Sequence[str] | None = None, seed: int = 0,
                device="cpu") -> list[dict]:
    """One `score` row per arch, in order, each led by `"arch"` (the canonical string). `space` is a space
    module (nasflow.spaces) or its name; every arch is validated before anything is scored."""
    if isinstance(space, str):
        space = get_space(space)
    names = check_proxies(proxies)
    per_arch = per_arch_names(names)
    canonical = [space.canonical(arch) for arch in archs]
    builder = network_builder(space)
    extra = _builder_kwargs(builder)
    own = {name: getattr(network_module(space), kind) for name, kind in _zc22.OWN_NETWORK.items() if name in per_arch}
    rows = []
    for arch in canonical:
        def build(arch=arch) -> nn.Module:
            return builder(arch, channels=channels, depth=depth, num_classes=num_classes, **extra)

        own_networks = {name: functools.partial(make, arch, num_classes=num_classes) for name, make in own.items()}
        rows.append({"arch": arch, **score(build, batch, labels, proxies=per_arch, seed=seed, device=device,
                                           own_networks=own_networks)})
    return add_aggregates(rows, names)


def per_arch_names(names: Sequence[str]) -> list[str]:
    """`names` with each population aggregate replaced by its members (each once, in order)."""
    out: list[str] = []
    for n in names:
        for m in (AGGREGATES[n][1] if n in AGGREGATES else (n,)):
            if m not in out:
                out.append(m)
    return out


def add_aggregates(rows: Sequence[Mapping], names: Sequence[str]) -> list[dict]:
    """`rows` with the columns of `names` in order (`<name>`s, then `<name>_seconds`), each population aggregate
    (`AGGREGATES`: az_nas, te_nas) computed over these rows, the archs scored together; members not asked for
    are dropped."""
    names = list(names)
    extra = {}
    for n in names:
        if n in AGGREGATES:
            extra[n] = _zc22.aggregate(n, rows)
    out = []
    for i, row in enumerate(rows):
        values = {n: (extra[n][0][i] if n in extra else row[n]) for n in names}
        costs = {f"{n}_seconds": (extra[n][1][i] if n in extra else row[f"{n}_seconds"]) for n in names}
        keep = {k: v for k, v in row.items() if k not in values and k not in costs and not _is_proxy_key(k)}
        out.append({**keep, **values, **costs})
    return out


def _is_proxy_key(key: str) -> bool:
    base = key[:-len("_seconds")] if key.endswith("_seconds") else key
    return base in _FUNCS


def vote(rows: Sequence[Mapping], names: Sequence[str]) -> list[float]:
    """Rank-average ensemble: for each row, the mean over `names` of its rank among the rows (1 = lowest
    value, ties averaged; NaN ranks lowest). Higher = better, like every proxy here."""
    from nasflow.estimators.registry import vote_scores

    if not names:
        raise ParamsError("vote: no estimator names given")
    if not rows:
        return []
    try:
        columns = [[float(row[name]) for row in rows] for name in names]
    except KeyError as e:
        raise ParamsError(f"vote: estimator {e.args[0]!r} is missing from a row") from None
    return vote_scores(columns, nan_ranks_lowest=True)


def train_batch(splits, *, batch_size: int, seed: int = 0, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The first batch of the training split's seeded, augmented pass (nasflow.data.DeviceLoader at the
    dataset's own image size): the one batch zero-cost proxies see, as the references draw it from their
    training loader."""
    from nasflow.data import DeviceLoader

    if batch_size < 1:
        raise ParamsError(f"batch_size: expected a positive integer, got {batch_size!r}")
    loader = DeviceLoader(splits.x_train, splits.y_train, batch_size=batch_size, device=device,
                          image_size=splits.image_size, train=True, mean=splits.mean, std=splits.std,
                          seed=seed, channels_last=False)
    images, labels = next(iter(loader))
    return images.contiguous(), labels
