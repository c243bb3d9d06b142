"""The zero-cost proxies cited since 2022 (issue 26), beside the 2021 set of nasflow.estimators.zero_cost.

Each function has the 2021 proxies' signature `fn(model, batch, labels, seed) -> float`, higher = better, and
follows its authors' official code (the file named in its docstring; the code was read, not copied):

    meco             MeCo (Jiang et al., NeurIPS 2023)           HamsterMimi/MeCo correlation/NAS_Bench_201.py
    meco_opt         MeCo_opt (same paper: 8 sampled channels)   same file, measure == 'meco_opt'
    zico             ZiCo (Li et al., ICLR 2023)                  SLDGroup/ZiCo ZeroShotProxy/compute_zico.py
                     (two mini-batches: the halves of the batch, as MeCo's correlation/foresight/.../zico.py)
    swap, swap_reg   SWAP (Peng et al., ICLR 2024)                pym1024/SWAP src/metrics/swap.py, correlation.py
    az_expressivity, az_progressivity, az_trainability, az_complexity
                     AZ-NAS (Lee & Ham, CVPR 2024)                cvlab-yonsei/AZ-NAS NB201/ZeroShotProxy/compute_az_nas_score.py
    te_nas_ntk, te_nas_lr
                     TE-NAS (Chen et al., ICLR 2021)              VITA-Group/TENAS prune_tenas.py, lib/procedures
                                                                  (per arch as AZ-NAS NB201/ZeroShotProxy/
                                                                  compute_te_nas_score.py; te_nas_lr on TE-NAS's
                                                                  thin network, which AZ-NAS's file leaves out)
    epe_nas          EPE-NAS (Lopes et al. 2021)                  automl/NASLib naslib/predictors/utils/pruners/measures/epe_nas.py
    l2_norm, plain   NAS-Bench-Suite-Zero (Krishnakumar et al. 2022) NASLib measures/l2_norm.py, plain.py

`az_nas` and `te_nas` are not per-arch numbers: AZ-NAS's score is the sum over its four proxies of
log(rank / n) among the n archs scored together, TE-NAS's the sum of the ranks of te_nas_ntk and te_nas_lr.
`AGGREGATES` names their members; `aggregate` computes them over a population of rows, which `score_archs`
(the archs of one call) and the correlate stage (the archs correlated) do after every arch is scored.

Deliberate differences from the official code, each said where it applies: eigenvalues of symmetric matrices by
`eigvalsh` in float64 (the references use `eig`/`eigh` in float32); every random draw (SWAP's and AZ-NAS's
re-initialisation, AZ-NAS's Gaussian inputs and ±1 gradients, TE-NAS's Gaussian inputs, MeCo_opt's channels)
comes from a generator seeded with `seed`, so the same seed gives the same number; SWAP's and TE-NAS's ReLU hooks
also count nn.ReLU6 (the MobileNet-like space has no nn.ReLU; the binary code `output > 0` is the same for both).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasflow.counting import count_flops, count_params
from nasflow.errors import ParamsError
from nasflow.estimators.zero_cost_hooks import _elapsed, _logits, _ReLUInputs, input_jacobian
from nasflow.models.ops import ThinNetwork

__all__ = [
    "PROXIES_2022", "AGGREGATES", "NEEDS_LABELS_2022", "FUNCS_2022", "aggregate", "log_rank_scores",
    "meco", "meco_opt", "zico", "swap", "swap_reg", "az_expressivity", "az_progressivity", "az_trainability",
    "az_complexity", "te_nas_ntk", "te_nas_lr", "te_nas_lr_inputs", "epe_nas", "l2_norm", "forward_proxies",
    "az_proxies", "OWN_NETWORK",
]

PROXIES_2022: tuple[str, ...] = (
    "meco", "meco_opt", "zico", "swap", "swap_reg", "az_expressivity", "az_progressivity", "az_trainability",
    "az_complexity", "az_nas", "te_nas_ntk", "te_nas_lr", "te_nas", "epe_nas", "l2_norm", "plain",
)
# population aggregates: (kind, members); not a per-arch number
AGGREGATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "az_nas": ("log_rank", ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")),
    "te_nas": ("rank_sum", ("te_nas_ntk", "te_nas_lr")),
}
NEEDS_LABELS_2022 = frozenset({"zico", "epe_nas", "plain"})

MECO_OPT_CHANNELS = 8          # MeCo_opt samples 8 channels per layer
ZICO_SPLITS = 2                # ZiCo's mini-batches: the batch split in two (MeCo's zico measure, split_data=2)
SWAP_SAMPLES = 16              # SWAP's correlation.py: --input_samples 16
# SWAP's regulariser exp(-(P - mu)^2 / sigma), P = parameters in thousands (src/utils count_parameters). The
# official code has no default (the paper sets mu, sigma to steer model size); these are ours: the centre and
# squared half-range of the NB201 C=16 N=5 parameter counts (73 K to 1,532 K).
SWAP_REG_MU = 800.0
SWAP_REG_SIGMA = 730.0 ** 2
TE_NAS_NAN_COND = 100000.0     # TE-NAS: np.nan_to_num(cond, nan=100000.0)
# TE-NAS's linear regions (prune_tenas.py): 3 batches of 1,000 one-channel 3 x 3 crops through the thin network
TE_NAS_LR_SAMPLES = 1000
TE_NAS_LR_BATCHES = 3
TE_NAS_LR_SIDE = 3
# proxies scored on a network of their own for the arch (TE-NAS's, prune_tenas.py `model_config_thin` and
# `model_config`), not on the study's network: the space's network module builds it, `builder(arch, num_classes=)`
OWN_NETWORK = {"te_nas_lr": "thin_network", "te_nas_ntk": "ntk_network"}
AZ_EPS = 1e-8


class ProxyError(ParamsError):
    """A proxy cannot score this network (one line, saying why)."""


def _weighted(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def _generator(seed: int, device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


# ---------------------------------------------------------------------------------------------- MeCo

def _min_corr_eig(fea: torch.Tensor, name: str) -> float:
    """Minimum eigenvalue of the correlation matrix of the rows (channels) of `fea` [C, M]; NaN/inf entries (a
    constant channel) are set to 0 first, as MeCo does."""
    if fea.shape[0] < 2:
        raise ProxyError(f"{name}: a module outputs a single-channel feature map (no correlation matrix)")
    corr = torch.corrcoef(fea.double())
    corr = torch.where(torch.isfinite(corr), corr, torch.zeros_like(corr))
    return float(torch.linalg.eigvalsh(corr)[0])


def _meco_terms(outputs: Sequence[torch.Tensor], *, opt: bool, seed: int) -> float:
    """Sum over the recorded module outputs of MeCo's per-layer term (of the first image's feature map)."""
    g = _generator(seed, "cpu")
    total = 0.0
    name = "meco_opt" if opt else "meco"
    for fea in outputs:  # each the first image's output of one module call
        if fea.dim() == 0:
            continue  # a per-image scalar: no channels (the reference cannot take it either)
        fea = fea.reshape(fea.shape[0], -1)
        n = fea.shape[0]
        if fea.shape[1] < 2:
            continue  # one value per channel (a Linear output, a pooled map): all correlations NaN -> 0, min eig 0
        if opt:
            if n < MECO_OPT_CHANNELS:
                raise ProxyError(f"meco_opt: a module outputs {n} channels, fewer than the {MECO_OPT_CHANNELS} it samples")
            idx = torch.randperm(n, generator=g)[:MECO_OPT_CHANNELS]
            value = _min_corr_eig(fea[idx], name) * n / MECO_OPT_CHANNELS
        else:
            value = _min_corr_eig(fea, name)
        if math.isfinite(value):
            total += value
    return float(total)


class _ModuleOutputs:
    """Records the output of every module call (the root included, containers included: MeCo hooks every
    `named_modules()` entry, so a tensor returned through k nested modules counts k times)."""

    def __init__(self, model: nn.Module):
        self.outputs: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._keep) for m in model.modules()]

    def _keep(self, module, inputs, output):
        out = output[0] if isinstance(output, (tuple, list)) else output
        if isinstance(out, torch.Tensor) and out.dim() >= 1:
            # the first image, copied now: MeCo reduces inside its hook, before a later in-place op (NB201's head
            # BN -> ReLU(inplace=True)) overwrites the tensor
            self.outputs.append(out[0].detach().clone())

    def remove(self):
        for h in self.handles:
            h.remove()


def meco(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0) -> float:
    """MeCo: sum over every module call of the minimum eigenvalue of the channel correlation matrix of the first
    image's output feature map, [C, H*W] (Jiang et al. 2023; HamsterMimi/MeCo correlation/NAS_Bench_201.py
    `get_score`, measure 'meco'). Training mode, the whole batch forwarded (BN uses its statistics; MeCo's
    correlation script forwards one image, its foresight measure a batch: we follow the latter)."""
    return forward_proxies(model, batch, ["meco"], seed=seed)[0]["meco"]


def meco_opt(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0) -> float:
    """MeCo_opt: as `meco` on 8 channels drawn per module call (seeded), times C / 8 (same file, 'meco_opt')."""
    return forward_proxies(model, batch, ["meco_opt"], seed=seed)[0]["meco_opt"]


# ---------------------------------------------------------------------------- binary ReLU codes

_RELU_MODULES = (nn.ReLU, nn.ReLU6)


class _ReLUCodes:
    """Post-activation outputs of nn.ReLU / nn.ReLU6 modules whose input is 4-D (SWAP's and TE-NAS's hook)."""

    def __init__(self, model: nn.Module):
        self.features: list[torch.Tensor] = []
        self.handles = [m.register_forward_hook(self._keep) for m in model.modules() if isinstance(m, _RELU_MODULES)]

    def _keep(self, module, inputs, output):
        if isinstance(inputs, tuple) and inputs and inputs[0].dim() == 4:
            self.features.append(output.detach() > 0)

    def codes(self, n: int, name: str) -> torch.Tensor:
        if not self.features:
            raise ProxyError(f"{name}: the network has no nn.ReLU/nn.ReLU6 module on 4-D feature maps")
        return torch.cat([f.reshape(n, -1) for f in self.features], 1)

    def remove(self):
        for h in self.handles:
            h.remove()


def _distinct_rows(codes: torch.Tensor) -> int:
    return int(torch.unique(codes.to(torch.uint8), dim=0).shape[0])


def naswot_kernel_add(kernel: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """`kernel` plus the Hamming-agreement kernel of one ReLU input's codes, the arithmetic of zero_cost.naswot (so
    the shared pass gives its value bit for bit)."""
    codes = (x.detach().reshape(x.shape[0], -1) > 0)
    units = codes.shape[1]
    dtype = torch.float32 if units < 2 ** 24 else torch.float64
    c = codes.to(dtype)
    ones = c.sum(1, dtype=torch.float64)
    return kernel + units - ones[:, None] - ones[None, :] + 2.0 * (c @ c.T).double()


# ------------------------------------------------------------------------------ shared forward

FORWARD = ("meco", "meco_opt", "naswot")


def forward_proxies(model: nn.Module, batch: torch.Tensor, names: Sequence[str], *,
                    seed: int = 0) -> tuple[dict[str, float], dict[str, float]]:
    """({name: value}, {name: seconds}) for `meco`, `meco_opt` and `naswot` from one training-mode forward of the
    batch without gradients (the network as built: none of them re-initialises it). The values equal those
    computed one by one (same network, same forward, same reductions); a proxy's seconds are what it costs alone:
    the forward plus its own reduction. naswot's ReLU inputs come from nasflow.estimators.zero_cost_hooks._ReLUInputs,
    so naswot here is zero_cost.naswot."""

    names = [n for n in FORWARD if n in names]
    device = batch.device
    n_img = batch.shape[0]
    kernel = torch.zeros((n_img, n_img), dtype=torch.float64, device=device)
    want_meco = any(n.startswith("meco") for n in names)
    in_hooks = {"naswot": 0.0, "meco": 0.0}

    def add(x: torch.Tensor) -> None:  # naswot's kernel, as zero_cost.naswot builds it: at each ReLU's call
        nonlocal kernel
        t = time.perf_counter()
        kernel = naswot_kernel_add(kernel, x)
        in_hooks["naswot"] += _elapsed(t, device)

    start = time.perf_counter()
    rec = _ModuleOutputs(model) if want_meco else None
    model.train()
    try:
        with torch.no_grad():
            if "naswot" in names:
                with _ReLUInputs(add):
                    model(batch)
            else:
                model(batch)
    finally:
        if rec is not None:
            rec.remove()
    forward = _elapsed(start, device) - in_hooks["naswot"]  # the forward itself (meco's copies included)
    values, seconds = {}, {}
    for name in names:
        start = time.perf_counter()
        if name == "naswot":
            _, logdet = np.linalg.slogdet(kernel.cpu().numpy())
            values[name] = float(logdet)
            seconds[name] = forward + in_hooks["naswot"] + _elapsed(start, device)
        else:
            values[name] = _meco_terms(rec.outputs, opt=name == "meco_opt", seed=seed)
            seconds[name] = forward + _elapsed(start, device)
    return values, seconds


# ----------------------------------------------------------------------------------------------- ZiCo

def zico(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0, *,
         splits: int = ZICO_SPLITS) -> float:
    """ZiCo: sum over Conv2d/Linear layers of log( sum_theta mean_b|g_b| / std_b(g_b) ) over the weights with a
    non-zero standard deviation, g_b = dL/dW of mini-batch b (Li et al. 2023; SLDGroup/ZiCo
    ZeroShotProxy/compute_zico.py `getgrad`, `caculate_zico`: std with ddof 0; a layer whose sum is 0 adds
    nothing). The mini-batches are the `splits` consecutive parts of the one batch, each a training-mode forward
    and cross-entropy backward (MeCo's correlation/foresight zico measure, split_data=2). A layer the loss does
    not reach has zero gradients (the reference's `none` op multiplies by 0), so no non-zero std: it adds nothing."""
    n = batch.shape[0]
    if splits < 2 or n < splits:
        raise ProxyError(f"zico: needs at least 2 mini-batches of at least one image (splits={splits}, batch {n})")
    layers = _weighted(model)
    per_layer: list[list[torch.Tensor]] = [[] for _ in layers]
    model.train()
    for sp in range(splits):
        st, en = sp * n // splits, (sp + 1) * n // splits
        loss = F.cross_entropy(_logits(model(batch[st:en])), labels[st:en])
        weights = [m.weight for m in layers]
        grads = torch.autograd.grad(loss, weights, allow_unused=True) if loss.requires_grad else [None] * len(weights)
        for k, (w, g) in enumerate(zip(weights, grads)):
            per_layer[k].append((torch.zeros_like(w) if g is None else g).detach().reshape(-1).double())
    total = 0.0
    for grads in per_layer:
        g = torch.stack(grads)
        std = g.std(0, unbiased=False)
        mean_abs = g.abs().mean(0)
        keep = std != 0
        s = float((mean_abs[keep] / std[keep]).sum())
        if s != 0:
            total += math.log(s)
    return float(total)


# ----------------------------------------------------------------------------------------------- SWAP

def _swap_init(model: nn.Module, generator: torch.Generator) -> None:
    """SWAP's `network_weight_gaussian_init`: Conv2d/Linear weights N(0, 1), biases 0; BN/GroupNorm weight 1,
    bias 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.normal_(0.0, 1.0, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _relu_codes(model: nn.Module, x: torch.Tensor, name: str):
    """The post-ReLU sign codes of one no-grad forward of `x` (_ReLUCodes), its hooks removed afterwards."""
    rec = _ReLUCodes(model)
    try:
        with torch.no_grad():
            model(x)
        return rec.codes(x.shape[0], name)
    finally:
        rec.remove()


def _swap_count(model: nn.Module, batch: torch.Tensor, seed: int, samples: int, repeats: int) -> float:
    x = batch[:samples]
    g = _generator(seed, batch.device)
    counts = []
    model.train()
    for _ in range(repeats):
        _swap_init(model, g)
        codes = _relu_codes(model, x, "swap")
        counts.append(_distinct_rows(codes.T))  # distinct per-neuron patterns over the samples
    return float(np.mean(counts))


def swap(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0, *, samples: int = SWAP_SAMPLES,
         repeats: int = 1) -> float:
    """SWAP: the number of distinct sample-wise activation patterns, i.e. of distinct rows of the [neurons, samples]
    matrix of post-ReLU signs over every nn.ReLU on 4-D maps, for the first `samples` (16) images, after SWAP's
    Gaussian re-initialisation (Peng et al. 2024; pym1024/SWAP src/metrics/swap.py `SWAP.forward`, `calSWAP`;
    correlation.py: 16 samples, training mode, mean over `repeats` re-initialisations: 32 there, 1 by default
    here as for zen). Re-initialises the model."""
    return _swap_count(model, batch, seed, samples, repeats)


def swap_reg(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0, *, samples: int = SWAP_SAMPLES,
             repeats: int = 1, mu: float = SWAP_REG_MU, sigma: float = SWAP_REG_SIGMA) -> float:
    """SWAP times exp(-(P - mu)^2 / sigma), P the parameter count in thousands (src/metrics/swap.py
    `cal_regular_factor`; mu, sigma: see SWAP_REG_MU)."""
    p_k = count_params(model) / 1e3
    factor = math.exp(-((p_k - mu) ** 2) / sigma)
    return _swap_count(model, batch, seed, samples, repeats) * factor


# --------------------------------------------------------------------------------------------- AZ-NAS

def _az_init(model: nn.Module, generator: torch.Generator) -> None:
    """AZ-NAS's `kaiming_norm_fanin`: Conv2d/Linear weights N(0, 2 / fan_in), biases 0; affine BN/GroupNorm
    weight 1, bias 0."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = nn.init._calculate_correct_fan(m.weight, "fan_in")
                m.weight.normal_(0.0, math.sqrt(2.0) / math.sqrt(fan_in), generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.affine:
                m.weight.fill_(1.0)
                m.bias.zero_()


def _stage_modules(model: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are AZ-NAS's 'cell features': the stem, then every cell / reduction block
    (NB201 `cells`, DARTS `cells`) or every MobileNet choice block that is not an identity (a skipped block
    outputs its input: no feature of its own)."""
    stem = getattr(model, "stem", None)
    body = getattr(model, "cells", None)
    if body is None:
        body = getattr(model, "blocks", None)
    if stem is None or body is None:
        raise ProxyError("az_*: the network has no `stem` and `cells`/`blocks` (AZ-NAS reads the cell features)")
    return [stem] + [m for m in body if not isinstance(m, nn.Identity)]


def _az_features(model: nn.Module, batch: torch.Tensor) -> list[torch.Tensor]:
    feats: list[torch.Tensor] = []

    def on_graph(module, inputs):
        # a disconnected NB201 cell outputs a fresh zeros tensor (its `none` edges are skipped, not multiplied by
        # 0 as in the reference): put it on the graph, so the next cell's gradient w.r.t. it exists as there
        for t in inputs:
            if isinstance(t, torch.Tensor) and not t.requires_grad and t.is_floating_point() and t.is_leaf:
                t.requires_grad_(True)

    modules = _stage_modules(model)
    handles = [m.register_forward_hook(lambda mod, i, o: feats.append(o)) for m in modules]
    handles += [m.register_forward_pre_hook(on_graph) for m in modules[1:]]
    model.train()
    try:
        x = batch.detach().clone().requires_grad_(True)  # so every feature is on a graph (a weightless stem too)
        model(x)
    finally:
        for h in handles:
            h.remove()
    return feats


def _expressivity_terms(feats: Sequence[torch.Tensor]) -> np.ndarray:
    out = []
    for f in feats:
        b, c, h, w = f.shape
        z = f.detach().double().permute(0, 2, 3, 1).reshape(b * h * w, c)
        z = z - z.mean(0, keepdim=True)
        sigma = z.T @ z / z.shape[0]
        s = torch.linalg.eigvalsh(sigma)
        p = s / s.sum()
        out.append(float((-p * torch.log(p + AZ_EPS)).sum()))
    return np.array(out)


def _trainability(feats: Sequence[torch.Tensor], seed: int) -> float:
    g = _generator(seed, feats[0].device)
    scores = []
    for i in reversed(range(1, len(feats))):
        f_out, f_in = feats[i], feats[i - 1]
        g_out = (torch.bernoulli(torch.full_like(f_out, 0.5), generator=g) - 0.5) * 2
        g_in = None
        if f_out.requires_grad and f_in.requires_grad:  # else a disconnected cell: its output ignores its input
            (g_in,) = torch.autograd.grad(f_out, f_in, grad_outputs=g_out, retain_graph=True, allow_unused=True)
        if g_in is None:
            g_in = torch.zeros_like(f_in)
        if g_out.shape == g_in.shape and torch.equal(g_in, g_out):
            scores.append(-math.inf)  # an identity cell (AZ-NAS's rule)
            continue
        if g_out.shape[2:] != g_in.shape[2:]:
            stride = g_in.shape[2] // g_out.shape[2]
            g_in = F.pixel_unshuffle(g_in, stride)
        bo, co, ho, wo = g_out.shape
        ci = g_in.shape[1]
        a = g_in.double().permute(0, 2, 3, 1).reshape(-1, ci)
        b = g_out.double().permute(0, 2, 3, 1).reshape(-1, co)
        mat = a.T @ b / (bo * ho * wo)
        s = float(torch.linalg.svdvals(mat).max())
        scores.append(-s - 1.0 / (s + 1e-6) + 2.0)
    value = float(np.mean(scores))
    return -math.inf if math.isnan(value) else value


AZ = ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")


def az_proxies(model: nn.Module, batch: torch.Tensor, names: Sequence[str], *, seed: int = 0,
               real_input: bool = False) -> tuple[dict[str, float], dict[str, float]]:
    """({name: value}, {name: seconds}) for the AZ-NAS proxies in `names` from one re-initialised network and one
    forward (AZ-NAS's `compute_nas_score`: kaiming-normal fan-in init, training mode, the cell features).

    The forward input is standard-normal noise shaped like `batch` (seeded), not the batch's images: AZ-NAS
    scores every search space on random inputs (NB201/tss_general.ipynb: `az_nas` is not in its
    `real_input_metrics`, so `trainloader=None` and `compute_nas_score` draws `torch.randn(batch_size, 3, res,
    res)`; ImageNet_MBV2's search scripts pass `--rand_input True`; ImageNet_AutoFormer passes
    `trainloader=None`). `real_input=True` forwards the batch instead (not AZ-NAS's definition; kept for
    comparison).

        expressivity   sum over features of the entropy of the normalised eigenvalues of the channel covariance
                       (features as [B*H*W, C], centred); NaN -> -inf
        progressivity  min over consecutive features of the increase of that entropy; NaN -> -inf
        trainability   mean over consecutive pairs of -s - 1/(s + 1e-6) + 2, s the largest singular value of
                       g_in^T g_out / (B H W), g_out random ±1 at a cell's output, g_in its gradient at the cell's
                       input (pixel-unshuffled when the resolution halves); an identity cell gives -inf
        complexity     FLOPs (AZ-NAS takes them from the benchmark's API; here nasflow.counting)

    The values equal those computed one by one; a proxy's seconds are the init, forward and its own part."""

    names = [n for n in AZ if n in names]
    values, seconds = {}, {}
    device = batch.device
    if "az_complexity" in names:
        start = time.perf_counter()
        values["az_complexity"] = float(count_flops(model, tuple(batch.shape[1:])))
        seconds["az_complexity"] = _elapsed(start, device)
    rest = [n for n in names if n != "az_complexity"]
    if not rest:
        return values, seconds
    start = time.perf_counter()
    g = _generator(seed, device)
    _az_init(model, g)
    x = batch if real_input else torch.randn(batch.shape, generator=g, device=device, dtype=batch.dtype)
    feats = _az_features(model, x)
    if len(feats) < 2:
        raise ProxyError("az_*: fewer than two cell features (AZ-NAS compares consecutive cells)")
    if any(f.dim() != 4 for f in feats):
        raise ProxyError("az_*: a cell feature is not a 4-D feature map")
    forward = _elapsed(start, device)
    if "az_expressivity" in rest or "az_progressivity" in rest:
        start = time.perf_counter()
        terms = _expressivity_terms(feats)
        shared = _elapsed(start, device)
        for name, fn in (("az_expressivity", lambda: np.sum(terms)), ("az_progressivity", lambda: np.min(np.diff(terms)))):
            if name in rest:
                v = float(fn())
                values[name] = -math.inf if math.isnan(v) else v
                seconds[name] = forward + shared
    if "az_trainability" in rest:
        start = time.perf_counter()
        values["az_trainability"] = _trainability(feats, seed)
        seconds["az_trainability"] = forward + _elapsed(start, device)
    return values, seconds


def _one_az(name):
    def fn(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0) -> float:
        return az_proxies(model, batch, [name], seed=seed)[0][name]

    fn.__name__ = name
    fn.__doc__ = f"AZ-NAS's {name[3:]} (see `az_proxies`). Re-initialises the model."
    return fn


az_expressivity = _one_az("az_expressivity")
az_progressivity = _one_az("az_progressivity")
az_trainability = _one_az("az_trainability")
az_complexity = _one_az("az_complexity")


# --------------------------------------------------------------------------------------------- TE-NAS

def te_nas_ntk(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0) -> float:
    """Minus the condition number lambda_max / lambda_min of the empirical NTK G G^T, G[i] = d(sum of logits of
    image i)/d(every parameter named `weight`: Conv, Linear and BN weights), training mode, the whole batch
    forwarded once, one backward per image (Chen et al. 2021; VITA-Group/TENAS lib/procedures/ntk.py `get_ntk_n`,
    train_mode=True, num_batch=1; per arch as AZ-NAS NB201/ZeroShotProxy/compute_te_nas_score.py
    `compute_NTK_score`: -cond, NaN -> -100000; a numerically singular NTK -> -inf). `model` is the network TE-NAS computes it on, its space's
    `ntk_network` (prune_tenas.py `model_config`: NB201 at C=3, N=1), as built (TE-NAS re-initialises nothing:
    see te_nas_lr); `score_archs` passes it. Eigenvalues in float64 (the reference: float32 `eigh`)."""
    model.train()
    weights = [p for name, p in model.named_parameters() if "weight" in name]
    logits = _logits(model(batch))
    if not logits.requires_grad or not weights:
        raise ProxyError("te_nas_ntk: no weight reaches the logits")
    n = batch.shape[0]
    rows = []
    for i in range(n):  # one backward per image, as the reference (BN couples the images: no per-sample shortcut)
        grads = torch.autograd.grad(logits[i].sum(), weights, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(torch.zeros_like(w) if g is None else g).reshape(-1) for w, g in zip(weights, grads)]))
    G = torch.stack(rows).double()
    eig = torch.linalg.eigvalsh(G @ G.T)
    if eig[0] <= eig[-1] * n * torch.finfo(torch.float64).eps:  # numerically singular (rank < images): an
        return -math.inf  # infinite condition number; the reference's float32 division gives a meaningless
        # +-huge number there (a positive one would rank best)
    cond = float(eig[-1] / eig[0])
    if math.isnan(cond):
        cond = TE_NAS_NAN_COND
    return -cond


def te_nas_lr_inputs(batch: torch.Tensor, seed: int = 0, *, samples: int = TE_NAS_LR_SAMPLES,
                     batches: int = TE_NAS_LR_BATCHES, side: int = TE_NAS_LR_SIDE) -> list[torch.Tensor]:
    """TE-NAS's linear-region inputs: `batches` batches of `samples` one-channel `side` x `side` crops, each of a
    random image, channel and position (TENAS lib/procedures/linear_region_counter.py: RandomCrop(3) and
    RandChannel(1) of normalised training images, input_size (1000, 1, 3, 3), sample_batch 3). Here the images
    are the batch's (TE-NAS draws 3,000 training images), the draw seeded by `seed`."""
    n, channels, height, width = batch.shape
    if height < side or width < side:
        raise ProxyError(f"te_nas_lr: images of {height}x{width} px are smaller than its {side}x{side} crops")
    g = _generator(seed, "cpu")
    total = samples * batches
    image, channel = torch.randint(n, (total,), generator=g), torch.randint(channels, (total,), generator=g)
    top = torch.randint(height - side + 1, (total,), generator=g)[:, None, None]
    left = torch.randint(width - side + 1, (total,), generator=g)[:, None, None]
    offset = torch.arange(side)
    rows, cols = top + offset[None, :, None], left + offset[None, None, :]
    crops = batch.detach().cpu()[image[:, None, None], channel[:, None, None], rows, cols]  # [total, side, side]
    return list(crops.unsqueeze(1).to(batch.device).split(samples))


def te_nas_lr(model: nn.Module, batch: torch.Tensor, labels=None, seed: int = 0, *,
              samples: int = TE_NAS_LR_SAMPLES, batches: int = TE_NAS_LR_BATCHES, side: int = TE_NAS_LR_SIDE) -> float:
    """TE-NAS's number of linear regions: of the arch's thin network (`model`: its space's `thin_network`,
    nasflow.models.ops.ThinNetwork) as built (PyTorch's default init: TE-NAS's launcher passes
    `--init kaiming_normal`, so `init_model(net, 'kaiming_normal_fanin')` matches none of its branches and
    re-initialises nothing), training mode, the distinct binary codes (post-ReLU > 0 over every nn.ReLU on 4-D maps) of `batches` x `samples` one-channel
    crops of the batch's images (`te_nas_lr_inputs`), each batch of crops forwarded on its own (BN statistics per
    batch) and the codes counted together (Chen et al. 2021; VITA-Group/TENAS prune_tenas.py
    `Linear_Region_Collector(input_size=(1000, 1, 3, 3), sample_batch=3)`, prune_launch.py;
    lib/procedures/linear_region_counter.py `calc_LR`: sum_i 1 / #(codes equal to code i) = the number of distinct
    codes)."""
    if not isinstance(model, ThinNetwork):
        raise ProxyError("te_nas_lr: counts the linear regions of the arch's thin network (TE-NAS: one channel, no "
                         f"stem; its space's thin_network(arch)), not of a {type(model).__name__}")
    model.train()
    codes = torch.cat([_relu_codes(model, x, "te_nas_lr")
                       for x in te_nas_lr_inputs(batch, seed, samples=samples, batches=batches, side=side)])
    return float(_distinct_rows(codes))


# ------------------------------------------------------------------------------------ NASLib's others

def epe_nas_score(jacobians: np.ndarray, labels: np.ndarray, n_classes: int, k: float = 1e-5) -> float:
    """EPE-NAS's `eval_score_perclass`: per class c, s_c = sum log(|corr| + k) over the correlation matrix of
    its images' Jacobians (one image: corr = 1), divided by its size when n_classes > 100; the score is
    sum_c |s_c| (n_classes <= 100) or sum_{c, c'} |s_c - s_c'| / #classes."""
    per_class = {}
    for c in np.unique(labels):
        rows = np.asarray(jacobians[labels == c], dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            corr = np.atleast_2d(np.corrcoef(rows)) if len(rows) > 1 else np.ones((1, 1))
        s = float(np.sum(np.log(np.abs(corr) + k)))
        if n_classes > 100:
            s /= len(corr)
        per_class[c] = s
    values = np.array(list(per_class.values()))
    if n_classes <= 100:
        return float(np.sum(np.abs(values)))
    return float(np.sum(np.abs(values[:, None] - values[None, :])) / len(values))


def epe_nas(model: nn.Module, batch: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """EPE-NAS (Lopes et al. 2021; NASLib naslib/predictors/utils/pruners/measures/epe_nas.py): `epe_nas_score` of
    the per-image input gradients of the summed logits (training mode), grouped by label. A constant Jacobian row
    (an image the network ignores) makes a correlation NaN: NaN, as in the reference."""
    jac, classes = input_jacobian(model, batch)
    return epe_nas_score(jac.double().cpu().numpy(), labels.cpu().numpy(), classes)


def l2_norm(model: nn.Module, batch: torch.Tensor = None, labels=None, seed: int = 0) -> float:
    """Sum over Conv2d/Linear layers of ||W||_2 (NASLib measures/l2_norm.py)."""
    with torch.no_grad():
        return float(sum(m.weight.double().norm().item() for m in _weighted(model)))


FUNCS_2022: dict[str, Callable[..., float]] = {
    "meco": meco, "meco_opt": meco_opt, "zico": zico, "swap": swap, "swap_reg": swap_reg,
    "az_expressivity": az_expressivity, "az_progressivity": az_progressivity, "az_trainability": az_trainability,
    "az_complexity": az_complexity, "te_nas_ntk": te_nas_ntk, "te_nas_lr": te_nas_lr, "epe_nas": epe_nas,
    "l2_norm": l2_norm,  # plain: nasflow.estimators.zero_cost (it reads the loss-gradient pass)
}


# ------------------------------------------------------------------------------------- aggregations

def _ranks(values: Sequence[float]) -> np.ndarray:
    """Average ranks (1 = lowest; ties averaged), NaN ranking lowest (a disconnected cell: the worst)."""
    from scipy.stats import rankdata

    v = np.asarray(values, dtype=np.float64)
    return rankdata(np.where(np.isnan(v), -np.inf, v))


def log_rank_scores(columns: Sequence[Sequence[float]]) -> list[float]:
    """AZ-NAS's aggregation (NB201/tss_general.ipynb): per arch, sum over the columns of log(rank / n), rank
    among the n archs (average ranks, 1 = lowest, NaN lowest). Higher = better."""
    if not len(columns):
        raise ParamsError("log_rank: no members given")
    n = len(columns[0])
    if n == 0:
        return []
    return [float(v) for v in np.sum([np.log(_ranks(c) / n) for c in columns], axis=0)]


def rank_sum_scores(columns: Sequence[Sequence[float]]) -> list[float]:
    """TE-NAS's combination (prune_tenas.py; AZ-NAS's notebook for per-arch scores): the sum of the ranks."""
    if not len(columns):
        raise ParamsError("rank_sum: no members given")
    if len(columns[0]) == 0:
        return []
    return [float(v) for v in np.sum([_ranks(c) for c in columns], axis=0)]


def aggregate(name: str, rows: Sequence[Mapping]) -> tuple[list[float], list[float]]:
    """(scores, seconds) of the population aggregate `name` (`AGGREGATES`) over `rows`, each holding its members
    and their `<member>_seconds`; the cost of an arch is the sum of its members' costs."""
    kind, members = AGGREGATES[name]
    try:
        columns = [[float("nan") if r[m] is None else float(r[m]) for r in rows] for m in members]
        seconds = [float(sum(r[f"{m}_seconds"] for m in members)) for r in rows]
    except KeyError as e:
        raise ParamsError(f"{name}: member {e.args[0]!r} is missing from a row (score its members first)") from None
    fn = log_rank_scores if kind == "log_rank" else rank_sum_scores
    return fn(columns), seconds
