"""Differentiable and weight-sharing search: GDAS, DARTS (first and second order), RSPS, SETN and ENAS, as
NAS-Bench-201's baselines run them (ADL exps/NAS-Bench-201-algos: GDAS.py, DARTS-V1.py, DARTS-V2.py,
RANDOM-NAS.py, SETN.py, ENAS.py), in two spaces (`space`):

    nb201   `nasflow.models.nb201_search.NB201SearchNetwork`; `depth` = cells per stage (N). All methods.
    darts   `nasflow.models.darts_search.DartsSearchNetwork` (quark0/darts' 8-op supernet, two alpha
            tensors); `depth` = total cells (`layers`). GDAS, DARTS-V1/V2 and RSPS (`SPACE_METHODS`); the
            result is DARTS' top-2-inputs derivation. DARTS' own scripts use plain momentum SGD
            (`w_nesterov=False`); NB201's ADL scripts use Nesterov (the default).

Data. The caller loads the dataset with `eval_split="valid"`: `splits.x_train` (the first half of the
training images) trains the weights and `splits.x_eval` (the other half) trains the architecture
parameters, both through a `DeviceLoader` with training augmentation (random crop + flip), as ADL's
`SearchDataset` feeds both halves with the training transform. Each weight step is paired with one batch of
the valid half (cycled when the halves differ in size; an epoch is one pass over the train half). The
valid half, without augmentation, also scores archs: the per-epoch `valid_acc` and the final pick of RSPS
and SETN. Splits loaded with `eval_split="test"` are refused (the search would see the test set).

Methods (one iteration = one train batch + one valid batch):

    gdas      weights: a Gumbel hard sample at temperature tau; alphas: the same, fresh noise.
              Result: argmax of alphas at the last epoch.
    darts-v1  weights: softmax-weighted mixed ops; alphas: first-order gradient of the valid loss.
              Result: argmax of alphas.
    darts-v2  as darts-v1, but alphas get the second-order gradient: one virtual SGD step of the weights
              (the unrolled model) and the finite-difference Hessian-vector product (r = 0.01 / ||dw||).
    rsps      weights: one uniform path per batch; no alphas. Result: the best of `select_num` uniform
              archs, each scored on one valid batch (ADL RANDOM-NAS `search_find_best`).
    setn      weights: one uniform path per batch; alphas: softmax-weighted mixed ops (ADL `joint`).
              Result: the best of the `select_num` archs most probable under softmax(alphas), each
              scored on one valid batch (ADL SETN `get_best_arch`).
    enas      weights: the arch sampled by an LSTM controller (`nasflow.search.enas`, no grad) per batch;
              no alphas. After the weight steps of an epoch, the controller trains by REINFORCE for
              `ctl_train_steps * ctl_num_aggregate` valid batches (reward = the sampled arch's batch accuracy
              + `ctl_entropy_weight` * entropy, moving-average baseline, one Adam step per `ctl_num_aggregate`
              batches); then 10 controller samples are scored on one valid batch each and the best is the
              epoch's arch. Result: the best of `select_num` controller samples, one valid batch each.

DARTS-V2 takes the alpha step *before* the weight step (as ADL and DARTS do); the others after it. The loop is
the training engine's (`nasflow.train.run_epochs`, the alpha step a hook around its weight step); losses and
accuracies stay on the device until the epoch's one read, the Hessian-vector product never reads a value on the
host, and a GDAS iteration reads its two samples' ops (which must be known to run only them) in one transfer.
Weights: SGD (Nesterov unless `w_nesterov` is False) with momentum `w_momentum`, weight decay `w_wd`,
cosine from `w_lr` to `w_lr_min` stepped every iteration over the whole run (ADL's scheduler updates per
iteration), gradient norm clipped to `grad_clip` over the weights. Alphas: Adam(`a_lr`, `a_betas`, weight
decay `a_wd`). GDAS' tau falls linearly from `tau_max` (first epoch) to `tau_min` (last epoch):
tau_e = tau_max - (tau_max - tau_min) * e / (epochs - 1).

ENAS' controller lives on the CPU whatever `device` (a batch-1 LSTM); its Adam (`ctl_lr`, `ctl_betas`,
`ctl_eps`) takes the place of the alpha optimizer. The `ctl_*` settings only enter the config of ENAS.

Every epoch appends to `history`: epoch, lr (at its start), tau, train loss/acc (weight steps), arch
loss/acc (alpha steps; augmented, train mode), valid loss/acc (eval mode, no augmentation, of the derived
arch -- for RSPS of a uniform path per batch, as ADL's RANDOM-NAS `valid_func`), the derived arch (argmax
of alphas; None for RSPS), alphas (`model.probs()`: softmax per edge, NB201 [6][5], DARTS [2][14][8]; None
for RSPS and ENAS) and seconds; ENAS adds ctl_loss, ctl_reward, ctl_entropy (means over the controller
steps), ctl_baseline (at the epoch's end), ctl_grad_norm and pick_batch_acc, its arch_loss/arch_acc being
the sampled archs' on the controller's batches. With `checkpoint` the whole state (model incl. alphas and
the path RNG, both optimizers, the scheduler, RNG states, history; ENAS' controller and baseline) is written
atomically after every epoch and a rerun resumes from it; on the CPU the resumed run ends with
bit-identical alphas (ENAS: controller, baseline and pick).

Where this differs from ADL's scripts: the gradient norm is clipped over the weights only (ADL's GDAS and
DARTS clip `network.parameters()`, alphas included, whose gradients from the weight step are then zeroed;
SETN's script does not clip); `valid_acc` is the *derived* arch's (ADL's DARTS scripts evaluate the mixed
supernet, GDAS reports the alpha-step accuracy, here `arch_acc`), so it shows the discretisation gap;
the learning rate follows torch's CosineAnnealingLR per iteration rather than ADL's own cosine helper
(same curve). ENAS: by default the baseline is a running average over every controller step of the search
(`ctl_baseline_mode="adl"` reproduces ADL's, which every step of an epoch recomputes from the epoch's
starting value: see `nasflow.search.enas`); the cosine has no warm-up (ADL: 10 of its 310 epochs); the
epoch's and the final picks score on the valid half without augmentation (ADL's reuse the augmented
controller loader).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from nasflow.data import DeviceLoader, Splits
from nasflow.errors import ParamsError
from nasflow.models.darts_search import DartsSearchNetwork
from nasflow.models.nb201_search import NB201SearchNetwork
from nasflow.search.enas import BASELINE_MODES, EPOCH_PICK, Controller, sample_archs, train_controller
from nasflow.spaces import nb201 as nb201_space
from nasflow.cache import code_fingerprint
from nasflow.progress import fmt
from nasflow.train import Run, TrainConfig, bf16_autocast, check_compile, evaluate, run_epochs, seed_everything

__all__ = ["METHODS", "SPACE_METHODS", "SearchConfig", "run_search", "hessian_vector_product",
           "darts_v2_arch_grad"]

METHODS = ("gdas", "darts-v1", "darts-v2", "rsps", "setn", "enas")
# The methods each space supports: SETN's final pick ranks whole archs by probability (a top-k over the
# space), which the ~1e18 DARTS genotypes do not allow; ENAS' controller samples NB201 cells.
SPACE_METHODS = {"nb201": METHODS, "darts": ("gdas", "darts-v1", "darts-v2", "rsps")}
# method -> (model mode for the weight step, model mode for the alpha step or None)
_MODES = {
    "gdas": ("gdas", "gdas"),
    "darts-v1": ("darts", "darts"),
    "darts-v2": ("darts", "darts"),
    "rsps": ("uniform", None),
    "setn": ("uniform", "darts"),
    "enas": ("uniform", None),  # every forward passes the controller's arch explicitly
}
CTL_DEFAULTS = dict(ctl_lstm_size=32, ctl_lstm_layers=2, ctl_tanh_constant=2.5, ctl_temperature=5.0, ctl_lr=1e-3,
                    ctl_betas=(0.0, 0.999), ctl_eps=1e-3, ctl_entropy_weight=1e-4, ctl_baseline_decay=0.99,
                    ctl_train_steps=50, ctl_num_aggregate=20, ctl_baseline_mode="running")


@dataclass
class SearchConfig:
    """Everything that shapes a search's result (checked against a checkpoint before resuming)."""

    method: str
    space: str
    C: int
    depth: int
    epochs: int
    batch_size: int
    w_lr: float
    w_lr_min: float
    w_momentum: float
    w_nesterov: bool
    w_wd: float
    grad_clip: float | None
    a_lr: float
    a_betas: tuple
    a_wd: float
    tau_max: float
    tau_min: float
    image_size: int
    select_num: int
    select_batch_size: int
    track_running_stats: bool
    hvp_r: float
    valid_images: int | None
    channels_last: bool
    precision: int = 32  # 16: bf16 autocast on CUDA for the weight and first-order alpha steps
    # ENAS' controller (ADL ENAS.sh / ENAS.config); not part of `plain()` for the other methods
    ctl_lstm_size: int = 32
    ctl_lstm_layers: int = 2
    ctl_tanh_constant: float = 2.5
    ctl_temperature: float = 5.0
    ctl_lr: float = 1e-3
    ctl_betas: tuple = (0.0, 0.999)
    ctl_eps: float = 1e-3
    ctl_entropy_weight: float = 1e-4
    ctl_baseline_decay: float = 0.99
    ctl_train_steps: int = 50
    ctl_num_aggregate: int = 20
    ctl_baseline_mode: str = "running"

    def __post_init__(self):
        if self.method not in METHODS:
            raise ParamsError(f"differentiable search: unknown method {self.method!r} "
                              f"(known: {', '.join(METHODS)})")
        if self.space not in SPACE_METHODS:
            raise ParamsError(f"differentiable search: unknown space {self.space!r} "
                              f"(known: {', '.join(SPACE_METHODS)})")
        if self.method not in SPACE_METHODS[self.space]:
            raise ParamsError(f"differentiable search: method {self.method!r} is not available in the "
                              f"{self.space} space (available: {', '.join(SPACE_METHODS[self.space])})")
        for key in ("C", "depth", "epochs", "batch_size", "image_size", "select_num", "select_batch_size"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParamsError(f"{key}: expected a positive integer (got {v!r})")
        for key in ("w_lr", "a_lr", "tau_max", "tau_min", "hvp_r"):
            v = getattr(self, key)
            if not isinstance(v, (int, float)) or not v > 0:
                raise ParamsError(f"{key}: expected a positive number (got {v!r})")
        if self.w_lr_min < 0 or self.w_wd < 0 or self.a_wd < 0:
            raise ParamsError("w_lr_min, w_wd and a_wd must be >= 0")
        if not 0 <= self.w_momentum < 1:
            raise ParamsError(f"w_momentum: expected 0 <= value < 1 (got {self.w_momentum!r})")
        if not isinstance(self.w_nesterov, bool):
            raise ParamsError(f"w_nesterov: expected true or false (got {self.w_nesterov!r})")
        if self.grad_clip is not None and self.grad_clip < 0:
            raise ParamsError(f"grad_clip: must be >= 0 or null (got {self.grad_clip!r})")
        betas = tuple(float(b) for b in self.a_betas)
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ParamsError(f"a_betas: expected two numbers in [0, 1) (got {self.a_betas!r})")
        self.a_betas = betas
        for key in ("ctl_lstm_size", "ctl_lstm_layers", "ctl_train_steps", "ctl_num_aggregate"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ParamsError(f"{key}: expected a positive integer (got {v!r})")
        for key in ("ctl_tanh_constant", "ctl_temperature", "ctl_lr", "ctl_eps"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ParamsError(f"{key}: expected a positive number (got {v!r})")
        if isinstance(self.ctl_entropy_weight, bool) or not isinstance(self.ctl_entropy_weight, (int, float)) \
                or self.ctl_entropy_weight < 0:
            raise ParamsError(f"ctl_entropy_weight: expected a number >= 0 (got {self.ctl_entropy_weight!r})")
        if not isinstance(self.ctl_baseline_decay, (int, float)) or not 0 <= self.ctl_baseline_decay <= 1:
            raise ParamsError(f"ctl_baseline_decay: expected 0 <= value <= 1 (got {self.ctl_baseline_decay!r})")
        ctl_betas = tuple(float(b) for b in self.ctl_betas)
        if len(ctl_betas) != 2 or not all(0 <= b < 1 for b in ctl_betas):
            raise ParamsError(f"ctl_betas: expected two numbers in [0, 1) (got {self.ctl_betas!r})")
        self.ctl_betas = ctl_betas
        if self.ctl_baseline_mode not in BASELINE_MODES:
            raise ParamsError(f"ctl_baseline_mode: expected one of {', '.join(BASELINE_MODES)} "
                              f"(got {self.ctl_baseline_mode!r})")
        if self.precision not in (16, 32):
            raise ParamsError(f"precision: expected 16 or 32 (got {self.precision!r})")
        if self.valid_images is not None and (not isinstance(self.valid_images, int) or self.valid_images < 1):
            raise ParamsError(f"valid_images: expected a positive integer or null (got {self.valid_images!r})")

    def plain(self) -> dict:
        d = asdict(self)
        d["a_betas"] = list(d["a_betas"])
        if self.method == "enas":
            d["ctl_betas"] = list(d["ctl_betas"])
        else:  # the other methods' configs (and checkpoints) stay as they were
            for key in CTL_DEFAULTS:
                del d[key]
        return d


# ------------------------------------------------------------------------------------------ DARTS-V2

def _ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def hessian_vector_product(model: nn.Module, vector, inputs: torch.Tensor, targets: torch.Tensor, *,
                           r: float = 1e-2, weights=None, alphas=None, loss_fn=None) -> list[torch.Tensor]:
    """DARTS' finite-difference approximation of (d^2 L / d alpha d w) . vector on one batch.

        R = r / ||vector||;  (grad_alpha L(w + R v) - grad_alpha L(w - R v)) / (2 R)

    `weights` / `alphas` default to `model.weights()` / `model.arch_parameters()`; `loss_fn(model, x, y)`
    defaults to the cross-entropy of `model(x)`. The weights are restored exactly (copied back, not
    re-added). Returns one tensor per alpha parameter (e.g. DARTS' normal and reduce alphas): zeros for a
    zero `vector`, NaN for a non-finite one (diverged weights: the alphas then turn NaN and the epoch's one read
    of the losses marks the search diverged). R stays a device tensor: no host sync per step.
    """
    weights = list(model.weights() if weights is None else weights)
    alphas = list(model.arch_parameters() if alphas is None else alphas)
    loss_fn = _ce if loss_fn is None else loss_fn
    vector = [torch.zeros_like(p) if v is None else v.detach() for p, v in zip(weights, vector)]
    norm = torch.cat([v.reshape(-1) for v in vector]).norm()
    # a zero vector: R = r / 1e-12, w +- R*0 = w, and the difference below is exactly 0
    R = r / norm.clamp_min(1e-12)
    saved = [p.detach().clone() for p in weights]
    try:
        with torch.no_grad():
            for p, v in zip(weights, vector):
                p.add_(v * R)
        grads_p = torch.autograd.grad(loss_fn(model, inputs, targets), alphas, allow_unused=True)
        with torch.no_grad():
            for p, s, v in zip(weights, saved, vector):
                p.copy_(s).sub_(v * R)
        grads_n = torch.autograd.grad(loss_fn(model, inputs, targets), alphas, allow_unused=True)
    finally:
        with torch.no_grad():
            for p, s in zip(weights, saved):
                p.copy_(s)
    # an alpha tensor the loss does not use (e.g. DARTS' normal alphas in a net without normal cells): 0
    return [torch.zeros_like(a) if gp is None else (gp - gn) / (2 * R)
            for a, gp, gn in zip(alphas, grads_p, grads_n)]


def darts_v2_arch_grad(model: nn.Module, w_optimizer: torch.optim.SGD, train_batch, valid_batch, *,
                       r: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """Set `alphas.grad` to DARTS' second-order architecture gradient; return (valid loss, valid logits).

    w' = w - lr * (momentum * buffer + dL_train/dw + wd * w)     (one virtual SGD step, as ADL/DARTS)
    grad = dL_val(w', alpha)/dalpha - lr * hessian_vector_product(dL_val(w')/dw', at w, on the train batch)
    """
    weights, alphas = model.weights(), model.arch_parameters()
    group = w_optimizer.param_groups[0]
    lr, wd, momentum = group["lr"], group["weight_decay"], group["momentum"]
    xt, yt = train_batch
    xv, yv = valid_batch

    grads = torch.autograd.grad(_ce(model, xt, yt), weights, allow_unused=True)
    saved = [p.detach().clone() for p in weights]
    try:
        with torch.no_grad():
            for p, g in zip(weights, grads):
                step = p * wd if g is None else g + p * wd
                buf = w_optimizer.state.get(p, {}).get("momentum_buffer")
                if buf is not None and momentum:
                    step = step + momentum * buf
                p.sub_(step, alpha=lr)
        logits = model(xv)
        loss = F.cross_entropy(logits, yv)
        g = torch.autograd.grad(loss, alphas + weights, allow_unused=True)
    finally:
        with torch.no_grad():
            for p, s in zip(weights, saved):
                p.copy_(s)
    dalphas, vector = g[:len(alphas)], g[len(alphas):]
    implicit = hessian_vector_product(model, vector, xt, yt, r=r, weights=weights, alphas=alphas)
    for a, da, h in zip(alphas, dalphas, implicit):
        a.grad = (torch.zeros_like(a) if da is None else da) - lr * h
    return loss.detach(), logits.detach()


# -------------------------------------------------------------------------------------------- helpers

def _cycle(loader: DeviceLoader, epoch: int):
    """Batches of `loader` for one search epoch, passing over it again as often as needed."""
    k = 0
    while True:
        loader.set_epoch(epoch * 1000 + k)
        yield from loader
        k += 1


@torch.no_grad()
def _select(model: nn.Module, loader: DeviceLoader, archs: list[str]) -> dict:
    """Score each arch on the next batch of `loader` (cycled; eval mode) and keep the best (the first of
    ties): ADL's RANDOM-NAS `search_find_best` and SETN `get_best_arch`."""
    model.eval()
    batches = _cycle(loader, 0)
    scored = []
    for arch in archs:
        x, y = next(batches)
        logits = model(x, arch=arch)
        scored.append((arch, 100.0 * int((logits.argmax(1) == y).sum()) / int(y.shape[0])))
    best = max(range(len(scored)), key=lambda j: scored[j][1])
    return {"best": scored[best][0], "best_batch_acc": scored[best][1], "evaluated": len(scored),
            "candidates": [{"arch": a, "batch_acc": acc} for a, acc in scored]}


def _diverged(record: dict) -> bool:
    """True when a loss of an epoch's record (weights, alphas, controller, validation) or its alphas are
    non-finite: the search has diverged."""
    values = [record.get(k) for k in ("train_loss", "arch_loss", "valid_loss", "ctl_loss")]
    if any(v is not None and not math.isfinite(v) for v in values):
        return True
    alphas = record.get("alphas")
    return alphas is not None and not all(math.isfinite(v) for v in _flat(alphas))


def _flat(values):
    for v in values:
        if isinstance(v, (list, tuple)):
            yield from _flat(v)
        else:
            yield v


def _epoch_line(record: dict, epochs: int, method: str, space: str) -> str:
    """One epoch of a search for the job log: losses, accuracies, seconds, GDAS' tau, the derived NB201 cell
    (a DARTS genotype is too long for a line; it is in the history)."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"train_loss {fmt(record.get('train_loss'), '.4f')}",
             f"train_acc {fmt(record.get('train_acc'), '.2f', '%')}",
             f"valid_acc {fmt(record.get('valid_acc'), '.2f', '%')}"]
    if method == "gdas" and record.get("tau") is not None:
        parts.append(f"tau {record['tau']:.3f}")
    parts.append(f"{record.get('seconds', 0.0):.1f} s")
    if record.get("diverged"):
        parts.append("DIVERGED")
    elif space == "nb201" and record.get("arch"):
        parts.append(f"arch {record['arch']}")
    return "  ".join(parts)


# ------------------------------------------------------------------------------------ the search loop

class _SearchRun(Run):
    """A search in the training engine (`nasflow.train`): the weight step is the engine's (SGD on the weights
    only, the cosine stepped every iteration, gradient clipping over the weights, bf16 / compile /
    channels_last as for any training); the architecture step is a hook around it -- before it for DARTS-V2,
    after it for the others; ENAS trains its controller after the epoch's weight steps. Its checkpoint holds the
    alpha optimiser (ENAS: the controller's Adam, the controller and the baseline) besides the engine's state."""

    kind = "search"
    score_key = "valid_acc"

    def __init__(self, model: nn.Module, cfg: "SearchConfig", *, w_opt, a_opt, sched, controller, arch_loader,
                 seed: int, device: torch.device, checkpoint, fingerprint: str, stop_after_epochs):
        self.search, self.a_opt, self.controller, self.arch_loader = cfg, a_opt, controller, arch_loader
        self.enas = controller is not None
        self.w_mode, self.a_mode = _MODES[cfg.method]
        self.alphas = model.arch_parameters()
        self.baseline = None
        self.extra_keys = ("a_optimizer",) + (("controller", "baseline") if self.enas else ())
        weights_cfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.w_lr, momentum=cfg.w_momentum,
                                  nesterov=cfg.w_nesterov, weight_decay=cfg.w_wd, grad_clip=cfg.grad_clip,
                                  image_size=cfg.image_size, lr_min=cfg.w_lr_min, channels_last=cfg.channels_last,
                                  precision=cfg.precision)
        # the model was built right after seeding (its init draws from the RNG): a fresh search goes on from there
        super().__init__(model, weights_cfg, seed=seed, device=device, checkpoint=checkpoint,
                         fingerprint=fingerprint, desc=cfg.method, packed=False, stop_after_epochs=stop_after_epochs,
                         optimizer=w_opt, scheduler=sched, step_scheduler="step", config=cfg.plain(), seeded=True)

    def extra_state(self) -> dict:
        extra = {"a_optimizer": self.a_opt.state_dict()}
        if self.enas:
            extra.update(controller=self.controller.state_dict(), baseline=self.baseline)
        return extra

    def load_extra_state(self, extra: dict) -> None:
        self.a_opt.load_state_dict(extra["a_optimizer"])
        if self.enas:
            self.controller.load_state_dict(extra["controller"])
            self.baseline = extra["baseline"]

    def begin_epoch(self) -> None:
        cfg, epoch = self.search, self.epoch
        self.tau = cfg.tau_max - (cfg.tau_max - cfg.tau_min) * epoch / (cfg.epochs - 1) if cfg.epochs > 1 \
            else cfg.tau_max
        self.model.set_tau(self.tau)
        super().begin_epoch()
        if self.enas:
            self.controller.eval()
        self.arch_batches = _cycle(self.arch_loader, epoch) if self.a_mode else None
        self.a_loss = torch.zeros((), device=self.device)
        self.a_correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.a_seen = 0

    def forward_kwargs(self) -> dict:
        if not self.enas:
            return {}
        with torch.no_grad():  # the weight step trains the arch the controller samples
            return {"arch": self.controller()[2]}

    def _count(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.a_loss += loss.detach().float() * y.shape[0]
        self.a_correct += (logits.detach().argmax(1) == y).sum()
        self.a_seen += int(y.shape[0])

    def before_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.a_mode:
            self.xv, self.yv = next(self.arch_batches)
        if self.search.method == "gdas":  # both steps' samples of the same alphas: one host read, not two
            self.model.presample(2)
        if self.search.method == "darts-v2":  # alpha step first, on the unrolled model; fp32 (finite differences)
            self.model.set_mode(self.a_mode)
            self.a_opt.zero_grad(set_to_none=True)
            loss, logits = darts_v2_arch_grad(self.model, self.optimizer, (x, y), (self.xv, self.yv),
                                              r=self.search.hvp_r)
            self.a_opt.step()
            self._count(loss, logits, self.yv)
        if not self.enas:
            self.model.set_mode(self.w_mode)

    def after_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if not self.a_mode or self.search.method == "darts-v2":
            return
        self.model.set_mode(self.a_mode)
        with bf16_autocast(self.use_bf16):
            logits = self.model(self.xv)
            loss = F.cross_entropy(logits, self.yv)
        self.a_opt.zero_grad(set_to_none=True)
        loss.backward(inputs=self.alphas)
        self.a_opt.step()
        self._count(loss, logits, self.yv)

    def end_training(self) -> dict:
        """The epoch's record so far (one host read of the sums): weight and alpha steps' loss and accuracy."""
        weights = super().end_training()  # the weight steps' (the scheduler steps per iteration here)
        return {
            "epoch": weights["epoch"], "lr": weights["lr"], "tau": self.tau if self.search.method == "gdas" else None,
            "train_loss": weights["train_loss"], "train_acc": weights["train_acc"],
            "arch_loss": float(self.a_loss) / self.a_seen if self.a_seen else None,
            "arch_acc": 100.0 * int(self.a_correct) / self.a_seen if self.a_seen else None,
            "valid_loss": None, "valid_acc": None, "arch": None, "alphas": None,
            **({"ctl_loss": None, "ctl_reward": None, "ctl_entropy": None, "ctl_baseline": self.baseline,
                "ctl_grad_norm": None, "pick_batch_acc": None} if self.enas else {}),
        }

    def evaluate(self, record: dict) -> None:
        """After the epoch's steps: (ENAS) the controller's training and pick; the derived arch's validation.
        Nothing is evaluated on non-finite losses; non-finite validation or alphas mark the search diverged."""
        model, cfg = self.model, self.search
        if _diverged(record):
            record["diverged"] = True
        elif self.enas:
            ctl = train_controller(self.controller, self.a_opt, model, _cycle(self.arch_loader, self.epoch),
                                   steps=cfg.ctl_train_steps, num_aggregate=cfg.ctl_num_aggregate,
                                   entropy_weight=cfg.ctl_entropy_weight, baseline_decay=cfg.ctl_baseline_decay,
                                   baseline=self.baseline, grad_clip=5.0, baseline_mode=cfg.ctl_baseline_mode)
            self.baseline = ctl["baseline"]
            pick = _select(model, self.eval_loader,
                           [nb201_space.decode(ops) for ops in sample_archs(self.controller, EPOCH_PICK)])
            v_loss, v_acc = evaluate(model, self.eval_loader, use_bf16=self.use_bf16, arch=pick["best"])
            record.update(arch_loss=ctl["ce"], arch_acc=ctl["acc"], valid_loss=v_loss, valid_acc=v_acc,
                          arch=pick["best"], ctl_loss=ctl["loss"], ctl_reward=ctl["reward"],
                          ctl_entropy=ctl["entropy"], ctl_baseline=ctl["baseline"], ctl_grad_norm=ctl["grad_norm"],
                          pick_batch_acc=pick["best_batch_acc"])
        else:
            if cfg.method == "rsps":  # a uniform path per batch, as ADL's RANDOM-NAS valid_func
                arch, (v_loss, v_acc) = None, evaluate(model, self.eval_loader, use_bf16=self.use_bf16,
                                                       mode="uniform")
            else:
                arch = model.genotype()
                v_loss, v_acc = evaluate(model, self.eval_loader, use_bf16=self.use_bf16, arch=arch)
            record.update(valid_loss=v_loss, valid_acc=v_acc, arch=arch,
                          alphas=None if cfg.method == "rsps" else model.probs().cpu().tolist())
        if not self.enas:
            model.set_mode(self.w_mode)
        if not record.get("diverged") and _diverged(record):
            record["diverged"] = True
            if record["valid_loss"] is not None and not math.isfinite(record["valid_loss"]):
                record["valid_acc"] = math.nan  # argmax of NaN logits is not an accuracy
        self.sync()

    def epoch_line(self, record: dict) -> str:
        return _epoch_line(record, self.search.epochs, self.search.method, self.search.space)


# ----------------------------------------------------------------------------------------- run_search

def run_search(method: str, splits: Splits, *, space: str = "nb201", C: int, depth: int, epochs: int,
               batch_size: int, w_lr: float, w_lr_min: float, w_momentum: float, w_nesterov: bool = True,
               w_wd: float, grad_clip: float | None, a_lr: float, a_betas=(0.5, 0.999), a_wd: float,
               tau_max: float, tau_min: float, seed: int, device,
               checkpoint=None, progress: bool = True, image_size: int | None = None, select_num: int = 100,
               select_batch_size: int | None = None, track_running_stats: bool = False, hvp_r: float = 1e-2,
               valid_images: int | None = None, channels_last: bool = True, precision: int = 32,
               compile: str = "off", stop_after_epochs: int | None = None, ctl_lstm_size: int = 32, ctl_lstm_layers: int = 2,
               ctl_tanh_constant: float = 2.5, ctl_temperature: float = 5.0, ctl_lr: float = 1e-3,
               ctl_betas=(0.0, 0.999), ctl_eps: float = 1e-3, ctl_entropy_weight: float = 1e-4,
               ctl_baseline_decay: float = 0.99, ctl_train_steps: int = 50, ctl_num_aggregate: int = 20,
               ctl_baseline_mode: str = "running") -> dict:
    """Run one search (see the module docstring) and return

        {"method", "best" (canonical arch string), "history" (one record per epoch), "alphas" (final
         softmax per edge, None for rsps/enas), "selection" (rsps/setn/enas: the scored candidates), "seconds"
         (epochs + final pick, resumed epochs included), "device", "epochs", "resumed_from", "completed",
         "status" ("ok" | "diverged"), "diverged_epoch", "config" (the SearchConfig as a dict)}

    A non-finite weight, alpha, controller or validation loss (read once per epoch from the accumulated
    sums; DARTS-V2's Hessian-vector product and GDAS' sampling pass NaN on to those sums) or non-finite
    alphas end the search after that epoch: its record gets `diverged: True` (no evaluation), the result
    `status: "diverged"`, `diverged_epoch` (1-based) and `best` None; a rerun from the checkpoint returns
    the same without training on.

    `space` is "nb201" (`depth` = cells per stage) or "darts" (`depth` = total cells, DARTS' `layers`);
    `SPACE_METHODS` lists the methods of each. `image_size` defaults to the images' size;
    `select_batch_size` (images per candidate in RSPS/SETN's pick, and the batch of the per-epoch
    validation) defaults to `batch_size`; `valid_images` caps the images of the per-epoch validation
    (None = the whole valid half). `stop_after_epochs` ends the call early (to simulate an interruption;
    `completed` is then False and `best` None). The `ctl_*` keywords set ENAS' controller (see
    `nasflow.search.enas`; ADL's ENAS values by default) and are ignored by the other methods.

    The loop is the training engine's (`nasflow.train.run_epochs`): `precision` 16 runs the weight step, the
    first-order alpha step and the validation under bf16 autocast on CUDA (DARTS-V2's alpha step stays fp32:
    its finite differences need the precision); `compile` (a `nasflow.train.COMPILE_MODES` mode) compiles
    the weight step's forward of DARTS-V1/V2 (a fixed mixed graph); GDAS, RSPS, SETN and ENAS run a new sampled
    graph every step, which would only recompile, so for them one line says it is skipped.
    """
    if splits.eval_split != "valid":
        raise ParamsError("differentiable search: load the data with eval_split='valid' (the architecture is "
                          "trained on the valid half of the training images, never on the test split)")
    cfg = SearchConfig(method=method, space=space, C=C, depth=depth, epochs=epochs, batch_size=batch_size,
                       w_lr=w_lr, w_lr_min=w_lr_min, w_momentum=w_momentum, w_nesterov=w_nesterov,
                       w_wd=w_wd,
                       grad_clip=grad_clip if grad_clip else None, a_lr=a_lr, a_betas=tuple(a_betas),
                       a_wd=a_wd, tau_max=tau_max, tau_min=tau_min,
                       image_size=int(image_size or splits.image_size), select_num=select_num,
                       select_batch_size=int(select_batch_size or batch_size),
                       track_running_stats=bool(track_running_stats), hvp_r=hvp_r, valid_images=valid_images,
                       channels_last=bool(channels_last), precision=precision, ctl_lstm_size=ctl_lstm_size,
                       ctl_lstm_layers=ctl_lstm_layers, ctl_tanh_constant=ctl_tanh_constant,
                       ctl_temperature=ctl_temperature, ctl_lr=ctl_lr, ctl_betas=tuple(ctl_betas), ctl_eps=ctl_eps,
                       ctl_entropy_weight=ctl_entropy_weight, ctl_baseline_decay=ctl_baseline_decay,
                       ctl_train_steps=ctl_train_steps, ctl_num_aggregate=ctl_num_aggregate,
                       ctl_baseline_mode=ctl_baseline_mode)
    check_compile(compile)
    device = torch.device(device)
    cuda = device.type == "cuda"
    w_mode, a_mode = _MODES[method]
    if compile != "off" and w_mode != "darts":
        # measured on the CPU: a 3-step GDAS epoch compiled for 6 min, recompiling for every new sample
        print(f"{method}: compile: skipped (its weight step runs a new sampled graph every step; the compiler "
              "would recompile until its limit, then run eagerly)", file=sys.stderr, flush=True)
        compile = "off"

    seed_everything(seed)
    network = NB201SearchNetwork if space == "nb201" else DartsSearchNetwork
    model = network(C, depth, splits.num_classes, mode=w_mode, seed=seed,
                    track_running_stats=cfg.track_running_stats).to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    weights, alphas = model.weights(), model.arch_parameters()
    w_opt = torch.optim.SGD(weights, lr=w_lr, momentum=w_momentum, nesterov=cfg.w_nesterov and w_momentum > 0,
                            weight_decay=w_wd)
    enas = method == "enas"
    controller = None
    if enas:  # the controller's Adam takes the alpha optimizer's place (and checkpoint slot)
        controller = Controller(nb201_space.N_EDGES, len(nb201_space.OPS), lstm_size=cfg.ctl_lstm_size,
                                lstm_layers=cfg.ctl_lstm_layers, tanh_constant=cfg.ctl_tanh_constant,
                                temperature=cfg.ctl_temperature)
        a_opt = torch.optim.Adam(controller.parameters(), lr=cfg.ctl_lr, betas=cfg.ctl_betas, eps=cfg.ctl_eps)
    else:
        a_opt = torch.optim.Adam(alphas, lr=a_lr, betas=cfg.a_betas, weight_decay=a_wd)

    def loader(x, y, train, bs, s):
        return DeviceLoader(x, y, batch_size=bs, device=device, image_size=cfg.image_size, train=train,
                            mean=splits.mean, std=splits.std, seed=s, channels_last=cfg.channels_last)

    train_loader = loader(splits.x_train, splits.y_train, True, batch_size, seed)
    steps = len(train_loader)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(w_opt, T_max=epochs * steps, eta_min=w_lr_min)
    x_val, y_val = splits.x_eval, splits.y_eval
    if valid_images is not None:
        x_val, y_val = x_val[:valid_images], y_val[:valid_images]
    arch_loader = (loader(splits.x_eval, splits.y_eval, True, batch_size, seed + 100_003)
                   if a_mode or enas else None)
    eval_loader = loader(x_val, y_val, False, cfg.select_batch_size, seed)

    fingerprint = code_fingerprint(__name__)
    run = _SearchRun(model, cfg, w_opt=w_opt, a_opt=a_opt, sched=sched, controller=controller,
                     arch_loader=arch_loader, seed=seed, device=device, checkpoint=checkpoint,
                     fingerprint=fingerprint, stop_after_epochs=stop_after_epochs)
    run.start(train_loader, eval_loader, steps, progress=progress, compile=compile)
    run_epochs([run])
    history, diverged_epoch = run.history, run.diverged_epoch

    completed = len(history) >= epochs and diverged_epoch is None
    best, selection, t_sel = None, None, 0.0
    if completed:
        t0 = time.perf_counter()
        if method == "rsps":
            candidates = [model.random_arch() for _ in range(cfg.select_num)]
        elif method == "setn":
            candidates = model.topk_archs(cfg.select_num)
        elif enas:
            candidates = [nb201_space.decode(ops) for ops in sample_archs(controller, cfg.select_num)]
        else:
            candidates = None
        if candidates is None:  # GDAS, DARTS: the argmax of the alphas
            best = model.genotype()
        else:  # pick the best candidate on one valid batch each
            selection = _select(model, eval_loader, candidates)
            best = selection["best"]
        if cuda:
            torch.cuda.synchronize(device)
        t_sel = time.perf_counter() - t0
        if selection is not None:
            selection["seconds"] = t_sel
    return {
        "method": method,
        "best": best,
        "history": history,
        "alphas": None if method in ("rsps", "enas") else model.probs().cpu().tolist(),
        "selection": selection,
        "seconds": sum(h["seconds"] for h in history) + t_sel,
        "device": str(device),
        "epochs": len(history),
        "resumed_from": run.resumed_from,
        "completed": completed,
        "status": "ok" if diverged_epoch is None else "diverged",
        "diverged_epoch": diverged_epoch,  # 1-based; None when the search did not diverge
        "config": cfg.plain(),
        "fingerprint": fingerprint,
        **({"compiled": run.compiled} if run.compiled != "off" else {}),
    }
