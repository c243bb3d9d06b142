"""RLNAS (Zhang et al., "Neural Architecture Search with Random Labels"): train a single-path supernet on
random (or true) labels, then score archs by the angle between their weights at init and after training,
or by their accuracy inside the supernet. This module trains the supernet and bundles its two scorers.

Three spaces (`space`: a name, or a space module with `NAME`): "nb201" (`NB201Supernet(channels,
cells_per_stage)`, `AngleScorer`), "darts" (`DartsSupernet(channels, layers)`, `DartsAngleScorer`) and
"mobilenet" (`MobileNetSupernet(width=channels / 40, input_size=image_size)`, `MobileNetAngleScorer`)."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from nasflow.cache import code_fingerprint, torch_save_atomic
from nasflow.data import Splits, random_labels
from nasflow.errors import CheckpointError
from nasflow.estimators.angle import AngleScorer
from nasflow.estimators.darts_angle import DartsAngleScorer
from nasflow.estimators.mobilenet_angle import MobileNetAngleScorer
from nasflow.estimators.proxy import train_config
from nasflow.estimators.supernet_acc import supernet_accuracies
from nasflow.models.darts_supernet import DartsSupernet
from nasflow.models.mobilenet_supernet import MobileNetSupernet
from nasflow.models.nb201_supernet import NB201Supernet
from nasflow.train import train

LABELS = ("random", "true")
INDICATORS = ("angle", "supernet_acc")
SPACES = ("nb201", "darts", "mobilenet")
_SCORERS = {"nb201": AngleScorer, "darts": DartsAngleScorer, "mobilenet": MobileNetAngleScorer}


def space_name(space) -> str:
    """The name of a space given as a name or as a space module (with `NAME`)."""
    name = getattr(space, "NAME", space)
    if name not in SPACES:
        raise ValueError(f"RLNAS supports the spaces {SPACES}, got {name!r}")
    return name


def build_supernet(setting: dict, num_classes: int, seed: int,
                   space="nb201") -> NB201Supernet | DartsSupernet | MobileNetSupernet:
    """The supernet of `space` for `setting` (channels + cells_per_stage for nb201, channels + layers for
    darts, channels = stem width and image_size for mobilenet), its weights initialised from
    `torch.manual_seed(seed)` and its path sampling seeded by `seed`."""
    name = space_name(space)
    torch.manual_seed(seed)
    if name == "mobilenet":
        from nasflow.spaces.mobilenet import channels_to_width

        return MobileNetSupernet(channels_to_width(setting["channels"]), num_classes,
                                 input_size=setting["image_size"], seed=seed)
    if name == "darts":
        return DartsSupernet(setting["channels"], setting["layers"], num_classes, seed=seed)
    return NB201Supernet(setting["channels"], setting["cells_per_stage"], num_classes, seed=seed)


def train_supernet(setting: dict, splits: Splits, *, labels: str, seed: int, device, work_dir,
                   progress: bool = True, space="nb201", grad_reset: str = "zeros") -> dict:
    """Train the supernet on `labels` ('random': drawn once per image from `seed`, fixed for the run).

    `grad_reset`: "zeros" (the default) is the reference's `network.zero_grad()` under PyTorch 1.4: gradients
    become zeros, so the ops a step did not sample still get weight decay and a momentum step once they have
    had a gradient; "none" sets them to None (PyTorch >= 2's default), leaving unsampled ops untouched.

    Returns {"init": state at epoch 0, "final": state after training, "result": train()'s result}. The
    epoch-0 weights are saved in work_dir first, so a resumed run scores against the same initial weights.
    """
    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    model = build_supernet(setting, splits.num_classes, seed, space)
    fingerprint = code_fingerprint(__name__)
    init_path = work_dir / "init.pt"
    init, meta = load_state(init_path) if init_path.exists() else (None, {})
    if init is None or meta.get("fingerprint") != fingerprint:  # other code may build other initial weights
        torch_save_atomic({"model": model.state_dict(), "meta": {"fingerprint": fingerprint}}, init_path)
        init, _ = load_state(init_path)
    y = random_labels(len(splits.y_train), splits.num_classes, seed) if labels == "random" else None
    result = train(model, splits, train_config({**setting, "grad_reset": grad_reset}), seed=seed, device=device,
                   checkpoint=work_dir / "train.pt", progress=progress, labels=y, desc=f"supernet[{labels}]",
                   fingerprint=fingerprint)
    final = {k: v.detach().cpu() if torch.is_tensor(v) else v for k, v in model.state_dict().items()}
    return {"init": init, "final": final, "result": result}


def load_state(path) -> tuple[dict, dict]:
    """(state dict, metadata) of a supernet checkpoint; a one-line error when missing or unreadable."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"missing checkpoint: {path}") from None
    except Exception as e:  # torch raises many types for a corrupt file
        raise CheckpointError(f"corrupt checkpoint {path}: {type(e).__name__}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict")
    state, meta = (obj["model"], obj.get("meta", {})) if "model" in obj else (obj, {})
    if not isinstance(state, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a state dict and its metadata")
    return state, meta


class SupernetScorer:
    """Both RLNAS indicators for one trained supernet: `angle` (no forward pass) and `supernet_acc`."""

    def __init__(self, init: dict, final: dict, setting: dict, splits: Splits | None, *, seed: int, device,
                 bn_batches: int = 10, max_eval: int | None = None, space="nb201"):
        """`splits` (the data) is needed for supernet_acc only; `space`: one of `SPACES`."""
        key = next((k for k in ("classifier.weight", "head.classifier.1.weight") if k in final), None)
        num_classes = final[key].shape[0] if key is not None else 10
        self.space = space_name(space)
        self.supernet = build_supernet(setting, num_classes, seed, self.space)
        try:
            self.supernet.load_state_dict(final)
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"supernet checkpoint does not match the setting: {str(e).splitlines()[0]}") from None
        self.angles = _SCORERS[self.space](init, final, self.supernet)
        self.setting, self.splits, self.seed, self.device = setting, splits, seed, device
        self.bn_batches, self.max_eval = bn_batches, max_eval

    def score(self, indicator: str, archs: list[str]) -> tuple[list[float], float]:
        """Scores of `archs` by `indicator`, and the seconds it took."""
        t0 = time.perf_counter()
        if indicator == "angle":
            scores = [float(s) for s in self.angles.scores(archs)]
        elif indicator == "supernet_acc":
            if self.splits is None:
                raise ValueError("supernet_acc needs the data (splits)")
            scores = supernet_accuracies(self.supernet, archs, self.splits, device=self.device,
                                         batch_size=self.setting["batch_size"], bn_batches=self.bn_batches,
                                         max_eval=self.max_eval, image_size=self.setting["image_size"],
                                         seed=self.seed, precision=self.setting.get("precision", 32),
                                         channels_last=self.setting.get("channels_last", True))
        else:
            raise ValueError(f"unknown indicator {indicator!r} (known: {INDICATORS})")
        return scores, time.perf_counter() - t0
