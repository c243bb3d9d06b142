"""Proxy training (budgeted performance estimation, BPE): train each arch under a named setting and score it
by its accuracy on the evaluation split after the last epoch. The same code produces the ground truth when
the setting is the full protocol (the `retrain` node of the DAG).

Each arch is trained with its own seed (derived from the study seed and the arch string, never from its
position), so results are identical however the archs are split into shards. Finished archs are kept in a
work directory and a running one checkpoints every epoch, so a killed job resumes where it stopped.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import zlib
from dataclasses import fields
from pathlib import Path

import torch

from nasflow.cache import code_fingerprint, key_lock, write_text_atomic
from nasflow.data import Splits
from nasflow.progress import say as progress_say
from nasflow.registry import build_network
from nasflow.train import TrainConfig, train, train_packed

# setting keys that are not training hyperparameters (they shape the network or the data split)
_NETWORK_KEYS = {"channels", "width", "cells_per_stage", "layers", "eval_split"}


def train_config(setting: dict) -> TrainConfig:
    """A setting (a plain dict as in params.yaml) -> the training engine's config."""
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(setting) - known - _NETWORK_KEYS
    if unknown:
        from nasflow.errors import ParamsError

        raise ParamsError(f"setting has keys the training engine does not know: {sorted(unknown)}")
    return TrainConfig(**{k: v for k, v in setting.items() if k in known})


def arch_seed(seed: int, arch: str) -> int:
    """A per-arch seed that does not depend on the arch's position or shard."""
    return (seed * 1_000_003 + zlib.crc32(arch.encode())) % 2**31


def digest(obj) -> str:
    """Short stable hash of a JSON-able object: names work directories by everything that shapes a result."""
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def depth_of(space, setting: dict) -> int | None:
    """The setting's depth key for `space`; None in the mobilenet space, whose depth is fixed."""
    if space.NAME == "mobilenet":
        return None
    return setting["cells_per_stage"] if space.NAME == "nb201" else setting["layers"]


def seeded_network(space, arch: str, setting: dict, splits: Splits, seed: int) -> tuple[int, torch.nn.Module]:
    """(the arch's seed, its network built right after seeding torch with it)."""
    s = arch_seed(seed, arch)
    torch.manual_seed(s)
    return s, build_network(space, arch, channels=setting["channels"], depth=depth_of(space, setting),
                            num_classes=splits.num_classes)


def train_arch(arch: str, *, space, setting: dict, splits: Splits, seed: int, device, checkpoint=None,
               progress: bool = True, fingerprint: str | None = None, desc: str | None = None) -> dict:
    """Train one arch under one setting; returns the per-arch result (curves, final/best accuracy, cost).
    `desc` labels its progress (default: the arch)."""
    s, model = seeded_network(space, arch, setting, splits, seed)
    result = train(model, splits, train_config(setting), seed=s, device=device, checkpoint=checkpoint,
                   progress=progress, desc=arch if desc is None else desc, fingerprint=fingerprint)
    return {"arch": arch, "seed": s, "setting": setting, **result}


def train_archs(archs: list[str], *, space, setting: dict, splits: Splits, seed: int, device, work_dir,
                progress: bool = True, pack: int = 1, compile: str = "off") -> list[dict]:
    """Train every arch, reusing those already finished in work_dir by the same code; results in the order of
    `archs`.

    work_dir is shared by every job that trains under this setting (proxy_train shards, the searches that
    query a proxy, ground_truth and found_ground_truth), so each arch is trained under a per-arch lock: a job
    that finds an arch locked trains its other archs first, then waits and reads the result. A result is
    reused only when its code fingerprint matches this code's (`nasflow.cache`); otherwise it is retrained.
    `pack` archs at a time train side by side in this process (`nasflow.train.train_packed`: each result as if
    trained alone); the archs another job holds are waited for one at a time. With `progress`, one line per
    arch on stderr says what happened to it (trained, reused, waited for) and the training prints its epochs.
    """
    if not isinstance(pack, int) or isinstance(pack, bool) or pack < 1:
        from nasflow.errors import ParamsError

        raise ParamsError(f"pack: expected a positive integer, got {pack!r}")
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = code_fingerprint(__name__, space.__name__)
    results: dict[str, dict] = {}
    pending = list(dict.fromkeys(archs))
    number = {arch: f"arch {k}/{len(pending)}" for k, arch in enumerate(pending, 1)}
    say = progress_say if progress else (lambda text: None)
    for blocking in (False, True):  # first pass: skip archs another job is training; second: wait for them
        deferred, queue = [], list(pending)
        # waiting while holding other archs' locks could deadlock two jobs: the waiting pass takes one at a time
        size = 1 if blocking else pack
        while queue:
            with contextlib.ExitStack() as held:
                group = []  # the archs this job holds the locks of and trains now
                while queue and len(group) < size:
                    arch = queue.pop(0)
                    key, name = digest(arch), f"{number[arch]} {arch}"
                    result = _finished(work_dir / f"{key}.json", fingerprint)
                    if result is not None:
                        say(f"{name}: reused from the cache ({_outcome(result)})")
                        results[arch] = result
                        continue
                    if blocking:
                        say(f"{name}: waiting for the job that trains it")
                    if not held.enter_context(key_lock(work_dir / f"{key}.lock", blocking=blocking)):
                        say(f"{name}: another job is training it; training the others first")
                        deferred.append(arch)
                        continue
                    result = _finished(work_dir / f"{key}.json", fingerprint)  # another job may have finished it
                    if result is not None:
                        say(f"{name}: trained by another job ({_outcome(result)})")
                        results[arch] = result
                        continue
                    say(f"{name}: training" + (f" (pack of up to {size})" if size > 1 else ""))
                    group.append(arch)
                if group:
                    results.update(_train_group(group, work_dir=work_dir, space=space, setting=setting, splits=splits,
                                                seed=seed, device=device, progress=progress, fingerprint=fingerprint,
                                                descs=[number[a] for a in group], compile=compile, say=say))
        pending = deferred
    return [results[arch] for arch in archs]


def _train_group(group: list[str], *, work_dir: Path, space, setting: dict, splits: Splits, seed: int, device,
                 progress: bool, fingerprint: str, descs: list[str], compile: str, say) -> dict[str, dict]:
    """Train the archs of `group` side by side (each checkpointed to, and kept in, work_dir): {arch: result}."""
    seeds, models = zip(*(seeded_network(space, arch, setting, splits, seed) for arch in group))
    ckpts = [work_dir / f"{digest(arch)}.pt" for arch in group]
    trained = train_packed(list(models), splits, train_config(setting), seeds=list(seeds), device=device, checkpoints=ckpts,
                           progress=progress, descs=descs, fingerprint=fingerprint, compile=compile)
    results = {}
    for arch, s, ckpt, desc, out in zip(group, seeds, ckpts, descs, trained):
        result = {"arch": arch, "seed": s, "setting": setting, **out}
        write_text_atomic(work_dir / f"{digest(arch)}.json", json.dumps(result, default=str))
        ckpt.unlink(missing_ok=True)  # the result is kept; the optimiser state is not needed
        resumed = f", resumed after epoch {result['resumed_from']}" if result.get("resumed_from") else ""
        say(f"{desc}: trained in {result['seconds']:.1f} s ({_outcome(result)}{resumed})")
        results[arch] = result
    return results


def _outcome(result: dict) -> str:
    """'final acc 81.2%', or how it diverged, for a progress line."""
    if result.get("status", "ok") != "ok":
        return f"diverged in epoch {result.get('diverged_epoch')}"
    acc = result.get("final_acc")
    return f"final acc {acc:.2f}%" if isinstance(acc, (int, float)) else "no accuracy"


def _finished(path: Path, fingerprint: str) -> dict | None:
    """The finished result at `path` if the same code made it, else None (missing, torn or stale)."""
    try:
        result = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None  # not there yet, or a torn file from before writes were atomic: train (again)
    if not isinstance(result, dict) or result.get("fingerprint") != fingerprint:
        if isinstance(result, dict):
            progress_say(f"{path}: made by other code (fingerprint {result.get('fingerprint')}, now "
                         f"{fingerprint}): training again")
        return None
    return result
