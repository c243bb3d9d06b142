"""The training engine: one loop for every setting (proxy budgets, ground-truth retraining, random labels)
and every search that trains weights (`nasflow.search.differentiable` runs its searches as a `Run` subclass).

SGD (momentum, Nesterov, weight decay) with a cosine learning rate stepped per epoch, cross-entropy with
optional label smoothing, gradient clipping, data kept on the device by `nasflow.data.DeviceLoader`, bf16
autocast on CUDA, channels_last memory format (on the CPU too: oneDNN's NHWC kernels and NB201's
avg-pool run faster that way, see benchmarks/train_throughput.py). Losses and accuracies accumulate on the device and are read once per
epoch, so a step never waits for the host.

Model output convention: a tensor of logits, or a tuple `(logits, aux_logits)` (DARTS' auxiliary head;
`aux_logits` may be None). With `aux_weight > 0` the auxiliary loss is added during training. With
`drop_path > 0` and a model attribute `drop_path_prob`, it is ramped linearly 0 -> drop_path over the
epochs (DARTS' schedule).

Checkpoints: after every epoch (when `checkpoint` is a path) the whole state -- model, optimizer,
scheduler, history, RNG states, config, seed, and which parameters hold a gradient (grad_reset "zeros"
keeps stepping those) -- is written atomically; a rerun resumes at the next epoch and ends with exactly
the metrics and weights of an uninterrupted run (on the CPU; CUDA kernels may differ in the last bits).

Divergence: a non-finite epoch loss (training, or the evaluation's) ends the run after that epoch -- no
evaluation of NaN weights, no further epochs. The result then says `status: "diverged"` (else "ok"),
`diverged_epoch` (1-based), and `final_acc` / `best_acc` NaN (the epoch's history record gets
`diverged: True`); its checkpoint makes a rerun return the same without training on. The loss is read only
where it already is, once per epoch.
"""

from __future__ import annotations

import contextlib
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from nasflow.cache import code_fingerprint, torch_save_atomic
from nasflow.data import DeviceLoader, Splits
from nasflow.errors import CheckpointError, DataError, ParamsError
from nasflow.progress import Progress, fmt

CHECKPOINT_FORMAT = 2  # 2: `kind` (train, search) and `extra` (a loop's own state)
STATUS_OK, STATUS_DIVERGED = "ok", "diverged"  # a result's `status`: a diverged run is never a score


@dataclass
class TrainConfig:
    """One training budget. Field names match params.yaml settings where they overlap."""

    epochs: int
    batch_size: int
    lr: float
    # optimiser defaults are neutral (no Nesterov, no clipping), as the params schema's: a protocol states its own
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    grad_clip: float | None = None    # max global grad norm; None or 0 = off
    cutout: int = 0                   # side of the zeroed square; 0 = off
    precision: int = 32               # 16 = bf16 autocast on CUDA; the CPU always runs fp32
    image_size: int = 32
    lr_min: float = 0.0
    crop_padding: int | None = None   # None = size // 8 of the size cropped at (4 at 32 px, 2 at 16 px, as NB201)
    flip: bool = True
    augment_order: str = "resize_then_crop"  # NB201; "crop_then_resize" = BPE (crop+flip at native size, then resize)
    grad_reset: str = "none"          # between steps: "none" = grads set to None (PyTorch >= 2: unused params
                                      # untouched); "zeros" = zeroed (PyTorch 1.4's zero_grad, RLNAS: every
                                      # param, used or not, still gets weight decay and a momentum step)
    channels_last: bool = True        # NHWC model + batches; ~1.3-2x faster on CPU too (benchmarks/)
    eval_every: int = 1               # evaluate every k epochs (and always after the last)
    aux_weight: float = 0.0           # DARTS auxiliary head loss weight (BPE: 0.4)
    drop_path: float = 0.0            # final drop-path probability (BPE: 0.2), if the model has one

    def __post_init__(self):
        def bad(key, why):
            raise ParamsError(f"{key}: {why} (got {getattr(self, key)!r})")

        for key in ("epochs", "batch_size", "image_size", "eval_every"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                bad(key, "expected a positive integer")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            bad("lr", "expected a positive number")
        if self.precision not in (16, 32):
            bad("precision", "expected 16 or 32")
        if not 0 <= self.momentum < 1:
            bad("momentum", "expected 0 <= momentum < 1")
        if self.weight_decay < 0 or self.lr_min < 0:
            bad("weight_decay" if self.weight_decay < 0 else "lr_min", "must be >= 0")
        if not 0 <= self.label_smoothing < 1:
            bad("label_smoothing", "expected 0 <= value < 1")
        if self.cutout < 0:
            bad("cutout", "must be >= 0")
        if self.crop_padding is not None and self.crop_padding < 0:
            bad("crop_padding", "must be >= 0 or null")
        if self.grad_clip is not None and self.grad_clip < 0:
            bad("grad_clip", "must be >= 0 or null")
        if not 0 <= self.drop_path < 1:
            bad("drop_path", "expected 0 <= value < 1")
        if self.aux_weight < 0:
            bad("aux_weight", "must be >= 0")
        if self.augment_order not in ("resize_then_crop", "crop_then_resize"):
            bad("augment_order", "expected resize_then_crop or crop_then_resize")
        if self.grad_reset not in ("none", "zeros"):
            bad("grad_reset", "expected none or zeros")

    @classmethod
    def from_dict(cls, d: dict, **overrides) -> "TrainConfig":
        """Build from a params.yaml setting, ignoring keys that belong to the network (channels, ...)."""
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in {**d, **overrides}.items() if k in names}
        missing = [k for k in ("epochs", "batch_size", "lr") if k not in kw]
        if missing:
            raise ParamsError(f"setting is missing {', '.join(missing)}")
        return cls(**kw)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device). CPU kernels are deterministic as is."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds all CUDA devices


# ---------------------------------------------------------------------------------------- RNG states

def _rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate()}
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    st["numpy"] = (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached))
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    kind, keys, pos, has_gauss, cached = st["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in st and torch.cuda.is_available() and len(st["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(st["cuda"])


# ------------------------------------------------------------------------------------------ checkpoint

def _save_checkpoint(path: Path, state: dict) -> None:
    torch_save_atomic(state, path)


def _stale(path: Path, state: dict, fingerprint: str) -> bool:
    """True (and says so) when a checkpoint was written by other code: it is then not resumed from."""
    if state.get("fingerprint") == fingerprint:
        return False
    print(f"{path}: written by other code (fingerprint {state.get('fingerprint')}, now {fingerprint}): "
          "starting again", file=sys.stderr)
    return True


def _grad_mask(model: nn.Module) -> torch.Tensor:
    """Which parameters hold a `.grad` tensor (not None), in `model.parameters()` order."""
    return torch.tensor([p.grad is not None for p in model.parameters()], dtype=torch.bool)


def _restore_grads(path: Path, model: nn.Module, mask: torch.Tensor) -> None:
    """Give back a `.grad` to exactly the parameters that had one when the checkpoint was written.

    With grad_reset "zeros" the next `zero_grad` zeroes grads in place and leaves None grads None, and SGD
    skips a None grad: a parameter that had a gradient once keeps getting weight decay and a momentum step
    in the steps that do not sample it, one that never had one does not. A fresh process starts with every
    grad None, so without this a resumed supernet would drift from an uninterrupted run from its first step.
    Only presence matters (the next step zeroes or drops the values), so zeros stand in for the values."""
    params = list(model.parameters())
    if mask.shape != (len(params),):
        raise CheckpointError(f"{path}: checkpoint does not match this model (gradient mask of "
                              f"{mask.numel()} parameters, the model has {len(params)})")
    with torch.no_grad():
        for p, has_grad in zip(params, mask.tolist()):
            p.grad = torch.zeros_like(p) if has_grad else None  # zeros_like keeps the param's (NHWC) strides


def _load_checkpoint(path: Path, cfg: TrainConfig, seed: int, fingerprint: str, *, kind: str = "train",
                     config: dict | None = None, extra_keys: tuple = ()) -> dict | None:
    """The checkpoint's state to resume from, or None when other code wrote it (then training starts again).

    `kind` names what wrote it ("train", "search"); `config` is the dict it must have been written with
    (default: `cfg`'s); `extra_keys` are what its `extra` (the loop's own state) must hold."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}); delete it to start "
                              "again") from None
    what = "training" if kind == "train" else kind
    need = ("format", "model", "optimizer", "scheduler", "epoch", "history", "rng", "cfg", "seed")
    if not isinstance(state, dict) or any(k not in state for k in need) or not isinstance(state["cfg"], dict) \
            or state.get("kind", "train") != kind:
        raise CheckpointError(f"{path}: not a nasflow {what} checkpoint")
    if _stale(path, state, fingerprint):
        return None
    config = asdict(cfg) if config is None else config
    if state["cfg"] != config:
        diff = sorted(k for k in config if state["cfg"].get(k) != config[k])
        raise CheckpointError(f"{path}: checkpoint was written with a different config "
                              f"({', '.join(diff) or 'keys'} differ); delete it to start again")
    if state["seed"] != seed:
        raise CheckpointError(f"{path}: checkpoint was written with seed {state['seed']}, not {seed}")
    mask = state.get("has_grad")  # checked after the fingerprint: older code wrote none, and is started again
    extra = state.get("extra", {})
    if not (torch.is_tensor(mask) and mask.dtype == torch.bool and mask.dim() == 1) \
            or not isinstance(extra, dict) or any(k not in extra for k in extra_keys):
        raise CheckpointError(f"{path}: not a nasflow {what} checkpoint (incomplete)")
    return state


# ---------------------------------------------------------------------------------------------- train

def _split_output(out):
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


def train(model: nn.Module, splits: Splits, cfg: TrainConfig, *, seed: int, device, checkpoint=None,
          progress: bool = True, labels: torch.Tensor | None = None, desc: str = "",
          stop_after_epochs: int | None = None, fingerprint: str | None = None, compile: str = "off") -> dict:
    """Train `model` (built by the caller) on `splits.x_train` and evaluate on `splits.x_eval`.

    `labels` replaces `splits.y_train` (random labels). A fresh run seeds Python/NumPy/torch with `seed`
    first (so any randomness inside the model is reproducible); a resumed run restores the saved RNG
    states instead. `stop_after_epochs` ends the call early after that many epochs in total (to simulate an
    interruption); the checkpoint then resumes it. `fingerprint` names the code that shapes the result
    (default: this module and the model's, see `nasflow.cache`); a checkpoint written by other code is not
    resumed from, and the result records it. `compile`: see `train_packed`.
    """
    return train_packed([model], splits, cfg, seeds=[seed], device=device, checkpoints=[checkpoint],
                        progress=progress, labels=labels, descs=[desc], stop_after_epochs=stop_after_epochs,
                        fingerprint=fingerprint, compile=compile)[0]


COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")


def check_compile(mode: str) -> None:
    """A one-line ParamsError unless `mode` is one of `COMPILE_MODES` (checked before any data or checkpoint loads)."""
    if mode not in COMPILE_MODES:
        raise ParamsError(f"compile: expected one of {', '.join(COMPILE_MODES)} (got {mode!r})")


def train_packed(models: list[nn.Module], splits: Splits, cfg: TrainConfig, *, seeds: list[int], device,
                 checkpoints: list | None = None, progress: bool = True, labels: torch.Tensor | None = None,
                 descs: list[str] | None = None, stop_after_epochs: int | None = None,
                 fingerprint: str | None = None, compile: str = "off") -> list[dict]:
    """Train several models under one config in one process, step by step side by side: the result of each
    equals `train` of that model alone (bit for bit on the CPU), with its own seed, data order, optimiser,
    RNG state and checkpoint, so a killed pack resumes every model where its own checkpoint left it.

    What packing buys is the device's idle time: a small network leaves a large GPU mostly idle, so on CUDA
    each model steps on its own stream and their kernels overlap; the models share one copy of the data on the
    device (each draws its own batches from it). On the CPU it only saves the per-process start (data loading).

    `compile`: "off" (eager), or a `torch.compile` mode ("default"; "reduce-overhead" adds CUDA graphs on a
    GPU) for the model's forward and backward; where compiling fails (no compiler), one line says so and the
    run goes on eagerly. Results then equal eager ones to float tolerance, not bit for bit.
    """
    check_compile(compile)
    n = len(models)
    checkpoints = list(checkpoints) if checkpoints is not None else [None] * n
    descs = list(descs) if descs is not None else [""] * n
    if not (len(seeds) == len(checkpoints) == len(descs) == n) or n == 0:
        raise ParamsError(f"train_packed: {n} models, {len(seeds)} seeds, {len(checkpoints)} checkpoints")
    device = torch.device(device)
    y_train = splits.y_train if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    if len(y_train) != len(splits.x_train):
        raise DataError(f"labels: {len(y_train)} labels for {len(splits.x_train)} training images")
    # one model alone uses the global RNG as `train` always did; a pack gives each model its own RNG state
    runs = [Run(m, cfg, seed=s, device=device, checkpoint=c, fingerprint=fingerprint, desc=d,
                 packed=n > 1, stop_after_epochs=stop_after_epochs)
            for m, s, c, d in zip(models, seeds, checkpoints, descs)]
    active = [r for r in runs if r.epoch < r.last]
    train_loader = eval_loader = None
    if active:  # the data move to the device only when there is an epoch to run, once for the whole pack
        train_loader = DeviceLoader(splits.x_train, y_train, batch_size=cfg.batch_size, device=device,
                                    image_size=cfg.image_size, train=True, mean=splits.mean,
                                    std=splits.std, crop_padding=cfg.crop_padding, flip=cfg.flip,
                                    cutout=cfg.cutout, seed=active[0].seed, channels_last=cfg.channels_last,
                                    augment_order=cfg.augment_order)
        eval_loader = DeviceLoader(splits.x_eval, splits.y_eval, batch_size=max(cfg.batch_size, 256),
                                   device=device, image_size=cfg.image_size, train=False, mean=splits.mean,
                                   std=splits.std, channels_last=cfg.channels_last)
    steps = len(train_loader) if train_loader is not None else 0
    for r in runs:
        r.start(train_loader, eval_loader, steps, progress=progress, compile=compile)
    run_epochs(runs)
    return [r.result(splits) for r in runs]


def run_epochs(runs: list["Run"]) -> None:
    """The epoch loop of every training in nasflow (proxies, ground truth, supernets, differentiable searches):
    an epoch of each unfinished run, their steps side by side, then each one's evaluation and checkpoint, until
    every run has reached its last epoch. Runs must have been `start`ed."""
    active = [r for r in runs if r.epoch < r.last]
    device = runs[0].device if runs else None
    try:
        while active:
            t0 = time.perf_counter()
            for r in active:
                with r.context():
                    r.begin_epoch()
            batches = [iter(r.loader) for r in active]
            for pairs in zip(*batches):
                for r, (x, y) in zip(active, pairs):
                    with r.context():
                        r.step(x, y)
            records = []
            for r in active:
                with r.context():
                    records.append(r.end_training())  # reads the epoch's loss: waits for its steps
            train_seconds = time.perf_counter() - t0
            for r, record in zip(active, records):
                with r.context():
                    r.evaluate(record)
            # the cost of an epoch of each: the pack's time shared out (its steps interleave with the others')
            seconds = time.perf_counter() - t0
            for r, record in zip(active, records):
                record["train_seconds"], record["seconds"] = train_seconds / len(active), seconds / len(active)
                if len(active) > 1:
                    record["pack"] = len(active)
                with r.context():
                    r.save(record)
            active = [r for r in active if r.epoch < r.last]
    finally:
        for r in runs:
            if r.bar is not None:
                r.bar.close()
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)


class Run:
    """One model's training: its optimiser, scheduler, history, checkpoint, data order and (in a pack) RNG.

    The plain run is supervised training under a `TrainConfig`; a loop with more to it (a differentiable search:
    architecture steps, its own evaluation and record) subclasses it and overrides `begin_epoch` and the hooks `before_step`,
    `after_step`, `forward_kwargs`, `end_training`, `evaluate`, `epoch_line` and `extra_state` (the
    `load_extra_state` of what it saved), passing its own `optimizer` / `scheduler` (`step_scheduler`
    "step": the scheduler steps after every weight step rather than every epoch) and `config` (what its
    checkpoint must have been written with)."""

    kind = "train"             # what the checkpoint says wrote it
    score_key = "eval_acc"     # the record's value on the progress bar
    extra_keys: tuple = ()     # what `extra_state` holds (a checkpoint without them is refused)

    def __init__(self, model: nn.Module, cfg: TrainConfig, *, seed: int, device: torch.device, checkpoint,
                 fingerprint: str | None, desc: str, packed: bool, stop_after_epochs: int | None,
                 optimizer: torch.optim.Optimizer | None = None, scheduler=None, step_scheduler: str = "epoch",
                 config: dict | None = None, seeded: bool = False):
        if fingerprint is None:
            own = type(model).__module__  # a model from outside the project is pinned by the torch version only
            fingerprint = code_fingerprint(__name__, *([own] if own.startswith("nasflow.") else []))
        self.model, self.cfg, self.seed, self.device, self.desc = model, cfg, seed, device, desc
        self.fingerprint = fingerprint
        self.config = asdict(cfg) if config is None else config
        self.use_bf16 = device.type == "cuda" and cfg.precision == 16
        model.to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        self.optimizer = optimizer or torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay)
        self.scheduler = scheduler or torch.optim.lr_scheduler.CosineAnnealingLR(
            self.optimizer, T_max=cfg.epochs, eta_min=cfg.lr_min)
        self.step_scheduler = step_scheduler
        # the parameters the weight step trains (a search's alphas have their own optimiser)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.all_params = len(self.params) == len(list(model.parameters()))
        self.history: list[dict] = []
        self.epoch = 0
        self.ckpt = Path(checkpoint) if checkpoint is not None else None
        state = (_load_checkpoint(self.ckpt, cfg, seed, fingerprint, kind=self.kind, config=self.config,
                                  extra_keys=self.extra_keys)
                 if self.ckpt is not None and self.ckpt.exists() else None)
        if state is not None:
            try:
                model.load_state_dict(state["model"])
                self.optimizer.load_state_dict(state["optimizer"])
                self.scheduler.load_state_dict(state["scheduler"])
                self.load_extra_state(state.get("extra", {}))
            except Exception as e:
                raise CheckpointError(f"{self.ckpt}: checkpoint does not match this model "
                                      f"({type(e).__name__})") from None
            _restore_grads(self.ckpt, model, state["has_grad"])
            self.history = list(state["history"])
            self.epoch = int(state["epoch"])
            _set_rng_state(state["rng"])
        elif not seeded:  # `seeded`: the caller seeded before building the model (and its RNG use goes on)
            seed_everything(seed)
        # in a pack, this run's RNG state lives here between its turns (the global one belongs to the turn)
        self.rng = _rng_state() if packed else None
        self.resumed_from = self.epoch if self.epoch > 0 else None
        self.diverged_epoch = next((h["epoch"] for h in self.history if h.get("diverged")), None)
        self.last = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, int(stop_after_epochs))
        if self.diverged_epoch is not None:  # a resumed diverged run ends as it ended, without training on
            self.last = self.epoch
        self.stream = torch.cuda.Stream(device) if packed and device.type == "cuda" else None
        self.compiled = "off"
        self.bar = None

    # ------------------------------------------------------------------------------------ the hooks

    def load_extra_state(self, extra: dict) -> None:
        """Restore what `extra_state` saved (a subclass' own state: a second optimiser, a controller)."""

    def extra_state(self) -> dict:
        return {}

    def forward_kwargs(self) -> dict:
        """Keywords of this step's forward (e.g. the arch a controller sampled)."""
        return {}

    def before_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Runs before each weight step (DARTS-V2's architecture step)."""

    def after_step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Runs after each weight step (the other searches' architecture step)."""

    def epoch_line(self, record: dict) -> str:
        cfg = self.cfg
        return (f"epoch {record['epoch']}/{cfg.epochs}  train_loss {fmt(record['train_loss'], '.4f')}  "
                f"train_acc {fmt(record['train_acc'], '.2f', '%')}  eval_acc {fmt(record['eval_acc'], '.2f', '%')}"
                f"  {record['seconds']:.1f} s" + ("  DIVERGED" if record.get("diverged") else ""))

    # ------------------------------------------------------------------------------------ the loop

    def start(self, train_loader: DeviceLoader | None, eval_loader: DeviceLoader | None, steps: int, *,
              progress: bool, compile: str) -> None:
        check_compile(compile)
        self.loader = train_loader.with_seed(self.seed) if train_loader is not None else None
        self.eval_loader = eval_loader
        self.bar = _progress(progress, total=self.cfg.epochs * steps, initial=self.epoch * steps, desc=self.desc)
        if self.resumed_from is not None and self.epoch < self.last:
            self.bar.line(f"resumed from its checkpoint after epoch {self.epoch}/{self.cfg.epochs}")
        self.forward, self.compile_checked = self.model, False
        if compile != "off" and self.epoch < self.last:
            self.forward, self.compiled = torch.compile(self.model, mode=compile), compile
        if self.stream is not None:  # the model and the data were put on the device by the default stream
            self.stream.wait_stream(torch.cuda.current_stream(self.device))

    @contextlib.contextmanager
    def context(self):
        """This run's turn: its RNG state (in a pack) and its CUDA stream (in a pack on a GPU)."""
        if self.rng is not None:
            _set_rng_state(self.rng)
        stream = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        try:
            with stream:
                yield
        finally:
            if self.rng is not None:
                self.rng = _rng_state()

    def begin_epoch(self) -> None:
        cfg, model = self.cfg, self.model
        if cfg.drop_path > 0 and hasattr(model, "drop_path_prob"):
            model.drop_path_prob = cfg.drop_path * self.epoch / cfg.epochs
        self.lr_now = self.optimizer.param_groups[0]["lr"]
        model.train()
        self.loader.set_epoch(self.epoch)
        self.loss_sum = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)
        self.seen = 0

    def _forward(self, x: torch.Tensor, **kw):
        if self.forward is self.model:
            return self.model(x, **kw)
        try:  # torch.compile compiles on the first call: that is where a missing compiler shows
            return self.forward(x, **kw)
        except Exception as e:
            if self.compile_checked:
                raise
            # said whether or not progress is on: the result's missing `compiled` is otherwise the only sign
            print(f"{self.desc + ': ' if self.desc else ''}compile: torch.compile failed ({type(e).__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else ''}); training eagerly", file=sys.stderr, flush=True)
            self.forward, self.compiled = self.model, "off"
            return self.model(x, **kw)
        finally:
            self.compile_checked = True

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One weight step on (x, y), between the `before_step` and `after_step` hooks."""
        cfg = self.cfg
        self.before_step(x, y)
        with bf16_autocast(self.use_bf16):
            logits, aux = _split_output(self._forward(x, **self.forward_kwargs()))
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
            if cfg.aux_weight > 0 and aux is not None:
                loss = loss + cfg.aux_weight * F.cross_entropy(aux, y, label_smoothing=cfg.label_smoothing)
        self.optimizer.zero_grad(set_to_none=cfg.grad_reset == "none")
        # only the optimiser's parameters get gradients (a search's alphas keep theirs)
        loss.backward(inputs=None if self.all_params else self.params)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        if self.step_scheduler == "step":
            self.scheduler.step()
        n = y.shape[0]
        self.seen += n
        self.loss_sum += loss.detach().float() * n
        self.correct += (logits.detach().argmax(1) == y).sum()
        self.after_step(x, y)
        self.bar.update(1)

    def end_training(self) -> dict:
        """The epoch's record so far: its training loss and accuracy (one host read)."""
        if self.step_scheduler == "epoch":
            self.scheduler.step()
        return {"epoch": self.epoch + 1, "lr": self.lr_now,
                "train_loss": float(self.loss_sum) / max(self.seen, 1),  # the epoch's one host sync
                "train_acc": 100.0 * int(self.correct) / max(self.seen, 1),
                "eval_loss": None, "eval_acc": None, "train_images": self.seen}

    def evaluate(self, record: dict) -> None:
        """Evaluate after the epoch (unless it diverged, or it is not an evaluation epoch); mark a divergence."""
        cfg, epoch = self.cfg, self.epoch
        # a non-finite loss (NaN/inf) ends the run: no evaluation of NaN weights, no score
        diverged = not math.isfinite(record["train_loss"])
        if not diverged and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
            record["eval_loss"], record["eval_acc"] = evaluate(self.model, self.eval_loader, use_bf16=self.use_bf16)
            if len(self.eval_loader) and not math.isfinite(record["eval_loss"]):
                diverged, record["eval_acc"] = True, math.nan  # argmax of NaN logits is not an accuracy
        if diverged:
            record["diverged"] = True
        self.sync()

    def sync(self) -> None:
        """Wait for this run's queued kernels (CUDA): the epoch's time is then its own."""
        if self.device.type == "cuda":
            (self.stream or torch.cuda.current_stream(self.device)).synchronize()

    def save(self, record: dict) -> None:
        """Close the epoch: its record into the history, a progress line, the checkpoint."""
        diverged = bool(record.get("diverged"))
        if diverged:
            self.diverged_epoch = record["epoch"]
        self.history.append(record)
        score = record.get(self.score_key)
        self.bar.set_postfix(acc=f"{score:.2f}" if score is not None else "-", refresh=False)
        self.bar.line(self.epoch_line(record))
        self.epoch += 1
        if self.ckpt is not None:
            _save_checkpoint(self.ckpt, {
                "format": CHECKPOINT_FORMAT, "kind": self.kind, "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "epoch": self.epoch, "history": self.history, "rng": _rng_state(), "cfg": self.config,
                "seed": self.seed, "fingerprint": self.fingerprint, "has_grad": _grad_mask(self.model),
                "extra": self.extra_state()})
        if diverged:  # the checkpoint above holds the diverged epoch: a rerun returns this result
            self.last = self.epoch

    def result(self, splits: Splits) -> dict:
        history = self.history
        evals = [h["eval_acc"] for h in history if h["eval_acc"] is not None]
        ok = self.diverged_epoch is None
        return {
            "history": history,
            "status": STATUS_OK if ok else STATUS_DIVERGED,
            "diverged_epoch": self.diverged_epoch,  # 1-based; None when the run did not diverge
            "final_acc": (history[-1]["eval_acc"] if history else None) if ok else math.nan,
            "best_acc": (max(evals) if evals else None) if ok else math.nan,
            "final_train_acc": history[-1]["train_acc"] if history else None,
            "seconds": sum(h["seconds"] for h in history),
            "epochs": len(history),
            "device": str(self.device),
            "precision_used": "bf16" if self.use_bf16 else "fp32",
            "resumed_from": self.resumed_from,
            "eval_split": splits.eval_split,
            "fingerprint": self.fingerprint,
            **({"compiled": self.compiled} if self.compiled != "off" else {}),
        }


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, *, use_bf16: bool = False, **forward_kw) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in percent) of `model` in eval mode over `loader`; `forward_kw` go to
    the model (a supernet's or search network's `arch`, `mode`). Sums stay on the device (the loss in float64,
    as exact as summing each batch's on the host) and are read once."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    seen = 0
    for x, y in loader:
        with bf16_autocast(use_bf16):
            logits, _ = _split_output(model(x, **forward_kw))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
    if seen == 0:
        return math.nan, math.nan
    return float(loss_sum) / seen, 100.0 * int(correct) / seen


def bf16_autocast(bf16: bool):
    """torch.autocast to bfloat16 on CUDA when `bf16`, else nothing (the CPU trains in fp32)."""
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _progress(enabled: bool, **kw) -> Progress:
    # a step bar when stderr is a terminal; else (a job log) one plain line per epoch via .line()
    return Progress(enabled, **kw)
