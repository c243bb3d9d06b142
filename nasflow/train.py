"""The training engine: one loop for every setting (proxy budgets, ground-truth retraining, random labels).

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

CHECKPOINT_FORMAT = 1
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


def _load_checkpoint(path: Path, cfg: TrainConfig, seed: int, fingerprint: str) -> dict | None:
    """The checkpoint's state to resume from, or None when other code wrote it (then training starts again)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}); delete it to start "
                              "again") from None
    need = ("format", "model", "optimizer", "scheduler", "epoch", "history", "rng", "cfg", "seed")
    if not isinstance(state, dict) or any(k not in state for k in need) or not isinstance(state["cfg"], dict):
        raise CheckpointError(f"{path}: not a nasflow training checkpoint")
    if _stale(path, state, fingerprint):
        return None
    if state["cfg"] != asdict(cfg):
        diff = sorted(k for k in asdict(cfg) if state["cfg"].get(k) != asdict(cfg)[k])
        raise CheckpointError(f"{path}: checkpoint was written with a different config "
                              f"({', '.join(diff) or 'keys'} differ); delete it to start again")
    if state["seed"] != seed:
        raise CheckpointError(f"{path}: checkpoint was written with seed {state['seed']}, not {seed}")
    mask = state.get("has_grad")  # checked after the fingerprint: older code wrote none, and is started again
    if not (torch.is_tensor(mask) and mask.dtype == torch.bool and mask.dim() == 1):
        raise CheckpointError(f"{path}: not a nasflow training checkpoint (no gradient mask)")
    return state


# ---------------------------------------------------------------------------------------------- train

def _split_output(out):
    if isinstance(out, (tuple, list)):
        return out[0], (out[1] if len(out) > 1 else None)
    return out, None


def train(model: nn.Module, splits: Splits, cfg: TrainConfig, *, seed: int, device, checkpoint=None,
          progress: bool = True, labels: torch.Tensor | None = None, desc: str = "",
          stop_after_epochs: int | None = None, fingerprint: str | None = None) -> dict:
    """Train `model` (built by the caller) on `splits.x_train` and evaluate on `splits.x_eval`.

    `labels` replaces `splits.y_train` (random labels). A fresh run seeds Python/NumPy/torch with `seed`
    first (so any randomness inside the model is reproducible); a resumed run restores the saved RNG
    states instead. `stop_after_epochs` ends the call early after that many epochs in total (to simulate an
    interruption); the checkpoint then resumes it. `fingerprint` names the code that shapes the result
    (default: this module and the model's, see `nasflow.cache`); a checkpoint written by other code is not
    resumed from, and the result records it.
    """
    if fingerprint is None:
        own = type(model).__module__  # a model from outside the project is pinned by the torch version only
        fingerprint = code_fingerprint(__name__, *([own] if own.startswith("nasflow.") else []))
    device = torch.device(device)
    cuda = device.type == "cuda"
    use_bf16 = cuda and cfg.precision == 16
    channels_last = cfg.channels_last
    y_train = splits.y_train if labels is None else torch.as_tensor(labels, dtype=torch.int64)
    if len(y_train) != len(splits.x_train):
        raise DataError(f"labels: {len(y_train)} labels for {len(splits.x_train)} training images")

    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                nesterov=cfg.nesterov and cfg.momentum > 0, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.lr_min)

    history: list[dict] = []
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    state = _load_checkpoint(ckpt, cfg, seed, fingerprint) if ckpt is not None and ckpt.exists() else None
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except Exception as e:
            raise CheckpointError(f"{ckpt}: checkpoint does not match this model "
                                  f"({type(e).__name__})") from None
        _restore_grads(ckpt, model, state["has_grad"])
        history = list(state["history"])
        start = int(state["epoch"])
        _set_rng_state(state["rng"])
    else:
        seed_everything(seed)
    resumed_from = start if start > 0 else None
    diverged_epoch = next((h["epoch"] for h in history if h.get("diverged")), None)

    last = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, int(stop_after_epochs))
    if diverged_epoch is not None:  # a resumed diverged run ends as it ended, without training on
        last = start
    if start < last:  # the data move to the device only when there is an epoch to run
        train_loader = DeviceLoader(splits.x_train, y_train, batch_size=cfg.batch_size, device=device,
                                    image_size=cfg.image_size, train=True, mean=splits.mean,
                                    std=splits.std, crop_padding=cfg.crop_padding, flip=cfg.flip,
                                    cutout=cfg.cutout, seed=seed, channels_last=channels_last,
                                    augment_order=cfg.augment_order)
        eval_loader = DeviceLoader(splits.x_eval, splits.y_eval, batch_size=max(cfg.batch_size, 256),
                                   device=device, image_size=cfg.image_size, train=False, mean=splits.mean,
                                   std=splits.std, channels_last=channels_last)
        steps = len(train_loader)
    else:
        steps = 0
    bar = _progress(progress, total=cfg.epochs * steps, initial=start * steps, desc=desc)
    if resumed_from is not None and start < last:
        bar.line(f"resumed from its checkpoint after epoch {start}/{cfg.epochs}")
    try:
        for epoch in range(start, last):
            t0 = time.perf_counter()
            if cfg.drop_path > 0 and hasattr(model, "drop_path_prob"):
                model.drop_path_prob = cfg.drop_path * epoch / cfg.epochs
            lr_now = optimizer.param_groups[0]["lr"]
            model.train()
            train_loader.set_epoch(epoch)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.int64, device=device)
            seen = 0
            for x, y in train_loader:
                with _autocast(use_bf16):
                    logits, aux = _split_output(model(x))
                    loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
                    if cfg.aux_weight > 0 and aux is not None:
                        loss = loss + cfg.aux_weight * F.cross_entropy(
                            aux, y, label_smoothing=cfg.label_smoothing)
                optimizer.zero_grad(set_to_none=cfg.grad_reset == "none")
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                n = y.shape[0]
                seen += n
                loss_sum += loss.detach().float() * n
                correct += (logits.detach().argmax(1) == y).sum()
                bar.update(1)
            scheduler.step()

            record = {"epoch": epoch + 1, "lr": lr_now,
                      "train_loss": float(loss_sum) / max(seen, 1),  # the epoch's one host sync
                      "train_acc": 100.0 * int(correct) / max(seen, 1),
                      "eval_loss": None, "eval_acc": None,
                      "train_seconds": time.perf_counter() - t0, "train_images": seen}
            # a non-finite loss (NaN/inf) ends the run: no evaluation of NaN weights, no score
            diverged = not math.isfinite(record["train_loss"])
            if not diverged and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == cfg.epochs):
                record["eval_loss"], record["eval_acc"] = evaluate(model, eval_loader, use_bf16=use_bf16)
                if len(splits.x_eval) and not math.isfinite(record["eval_loss"]):
                    diverged, record["eval_acc"] = True, math.nan  # argmax of NaN logits is not an accuracy
            if diverged:
                record["diverged"] = True
                diverged_epoch = epoch + 1
            if cuda:
                torch.cuda.synchronize(device)
            record["seconds"] = time.perf_counter() - t0  # training + evaluation
            history.append(record)
            bar.set_postfix(acc=f"{record['eval_acc']:.2f}" if record["eval_acc"] is not None else "-",
                            refresh=False)
            bar.line(f"epoch {epoch + 1}/{cfg.epochs}  train_loss {fmt(record['train_loss'], '.4f')}  "
                     f"train_acc {fmt(record['train_acc'], '.2f', '%')}  eval_acc {fmt(record['eval_acc'], '.2f', '%')}"
                     f"  {record['seconds']:.1f} s" + ("  DIVERGED" if diverged else ""))
            if ckpt is not None:
                _save_checkpoint(ckpt, {
                    "format": CHECKPOINT_FORMAT, "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "epoch": epoch + 1, "history": history, "rng": _rng_state(), "cfg": asdict(cfg),
                    "seed": seed, "fingerprint": fingerprint, "has_grad": _grad_mask(model)})
            if diverged:  # the checkpoint above holds the diverged epoch: a rerun returns this result
                break
    finally:
        bar.close()

    evals = [h["eval_acc"] for h in history if h["eval_acc"] is not None]
    ok = diverged_epoch is None
    return {
        "history": history,
        "status": STATUS_OK if ok else STATUS_DIVERGED,
        "diverged_epoch": diverged_epoch,  # 1-based; None when the run did not diverge
        "final_acc": (history[-1]["eval_acc"] if history else None) if ok else math.nan,
        "best_acc": (max(evals) if evals else None) if ok else math.nan,
        "final_train_acc": history[-1]["train_acc"] if history else None,
        "seconds": sum(h["seconds"] for h in history),
        "epochs": len(history),
        "device": str(device),
        "precision_used": "bf16" if use_bf16 else "fp32",
        "resumed_from": resumed_from,
        "eval_split": splits.eval_split,
        "fingerprint": fingerprint,
    }


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, *, use_bf16: bool = False) -> tuple[float, float]:
    """(mean cross-entropy, top-1 accuracy in percent) of `model` in eval mode over `loader`."""
    model.eval()
    loss_sum = torch.zeros((), device=loader.device)
    correct = torch.zeros((), dtype=torch.int64, device=loader.device)
    seen = 0
    for x, y in loader:
        with _autocast(use_bf16):
            logits, _ = _split_output(model(x))
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
    if seen == 0:
        return math.nan, math.nan
    return float(loss_sum) / seen, 100.0 * int(correct) / seen


def _autocast(bf16: bool):
    return torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _progress(enabled: bool, **kw) -> Progress:
    # a step bar when stderr is a terminal; else (a job log) one plain line per epoch via .line()
    return Progress(enabled, **kw)
