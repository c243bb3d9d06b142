"""Small archives in the official NATS-Bench tss / NAS-Bench-201 formats, written by the tests.

The structure follows the official APIs (D-X-Y/NATS-Bench nats_bench/api_utils.py: ArchResults.state_dict /
ResultsCount; D-X-Y/NAS-Bench-201 nas_201_api/api_201.py) and the release files themselves: a cell is
`{'12': …, '200': …}` of `{arch_index, arch_str, all_results: {(dataset, seed): trial}, dataset_seed,
clear_net_done}`; numbers are numpy float64 scalars where the release has them (params, flop, latency).
Values are seeded and plausible, and every value written is returned so tests compare against it.
"""
from __future__ import annotations

import bz2
import collections
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from nasflow.spaces import nb201

if TYPE_CHECKING:
    import pandas as pd

SEEDS = {"12": {"cifar10-valid": [111, 777], "cifar10": [111], "cifar100": [111], "ImageNet16-120": [111]},
         "200": {d: [777, 888, 999] for d in ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")}}
CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
# which splits each dataset evaluates after every epoch, and which only after the last (the 200-epoch schedule)
EVERY_EPOCH = {"cifar10-valid": ["x-valid"], "cifar10": ["ori-test"], "cifar100": ["ori-test"],
               "ImageNet16-120": ["ori-test"]}
LAST_ONLY = {"cifar10-valid": ["ori-test"], "cifar10": [], "cifar100": ["x-valid", "x-test"],
             "ImageNet16-120": ["x-valid", "x-test"]}


def trial(index: int, dataset: str, seed: int, epochs: int, schedule: str) -> dict:
    """One ResultsCount state dict with seeded values; per-epoch times constant per cell (as the release's)."""
    rng = np.random.default_rng([index, seed, epochs, CLASSES[dataset], len(dataset)])
    top = 40 + (index % 50) + rng.uniform(0, 3)
    curve = lambda: top * (1 - np.exp(-(np.arange(epochs) + 1) / (epochs / 4))) + rng.normal(0, 0.3, epochs)
    train_time = 5.0 + index % 7 + (10.0 if dataset == "ImageNet16-120" else 0.0)
    if dataset == "cifar10-valid":
        train_time /= 2  # 25k training images
    splits = ["x-valid", "ori-test"] if dataset == "cifar10-valid" else (
        ["ori-test"] if dataset == "cifar10" else ["x-valid", "x-test", "ori-test"])
    acc, loss, times = collections.OrderedDict(), collections.OrderedDict(), collections.OrderedDict()
    for split in splits:
        values = curve()
        if schedule == "12" or split in EVERY_EPOCH[dataset]:
            epochs_here = range(epochs)
        else:
            epochs_here = [epochs - 1]
        for e in epochs_here:
            acc[f"{split}@{e}"] = float(values[e])
            loss[f"{split}@{e}"] = float(3.0 - values[e] / 40)
            times[f"{split}@{e}"] = 0.5 + index % 3 + (0.5 if split == "ori-test" else 0.0)
    train_acc = curve()
    params = np.float64(0.1 + index / 1000 + CLASSES[dataset] / 1e4)
    flops = np.float64(15.0 + index / 10)
    return {
        "name": dataset, "net_state_dict": None, "seed": f"{seed:04d}", "epochs": epochs,
        "train_acc1es": collections.OrderedDict((e, float(train_acc[e])) for e in range(epochs)),
        "train_acc5es": collections.OrderedDict((e, float(min(100.0, train_acc[e] + 20))) for e in range(epochs)),
        "train_losses": collections.OrderedDict((e, float(3.0 - train_acc[e] / 40)) for e in range(epochs)),
        "train_times": collections.OrderedDict((e, train_time) for e in range(epochs)),
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": nb201.enumerate_all()[index],
                        "class_num": CLASSES[dataset]},
        "params": params, "flop": flops, "latency": [np.float64(0.01 + index / 1e4)],
        "eval_names": splits, "eval_acc1es": acc, "eval_losses": loss, "eval_times": times,
    }


def cell(index: int, schedule: str, epochs: int | None = None) -> dict:
    epochs = epochs or int(schedule)
    seeds = SEEDS[schedule]
    return {"arch_index": index, "arch_str": nb201.enumerate_all()[index],
            "all_results": {(d, s): trial(index, d, s, epochs, schedule) for d, ss in seeds.items() for s in ss},
            "dataset_seed": {d: list(ss) for d, ss in seeds.items()}, "clear_net_done": True}


def meta() -> dict:
    archs = nb201.enumerate_all()
    return {"meta_archs": list(archs), "total_archs": len(archs), "arch2infos": None, "evaluated_indexes": set()}


def dump_pbz2(obj, path: Path) -> None:
    path.write_bytes(bz2.compress(pickle.dumps(obj, protocol=4)))


def write_nats(root: Path, indexes=(0, 1, 6111, 15624)) -> dict[int, dict]:
    """A NATS-tss-v1_0-3ffb9-simple directory with the given cells; returns {index: {'12': cell, '200': cell}}."""
    root.mkdir(parents=True, exist_ok=True)
    dump_pbz2(meta(), root / "meta.pickle.pbz2")
    cells = {}
    for i in indexes:
        cells[i] = collections.OrderedDict([("12", cell(i, "12")), ("200", cell(i, "200"))])
        dump_pbz2(cells[i], root / f"{i:06d}.pickle.pbz2")
    return cells


def write_pth(path: Path, indexes=(0, 1, 6111, 15624)) -> dict[int, dict]:
    """A NAS-Bench-201-v1_1-096897.pth-style file (an old, pre-zip torch.save) with the given cells."""
    import torch

    cells = {i: {"less": cell(i, "12"), "full": cell(i, "200")} for i in indexes}
    data = {**meta(), "arch2infos": cells, "evaluated_indexes": set(indexes)}
    del data["total_archs"]  # the v1_0/v1_1 files have no total_archs key
    torch.save(data, path, _use_new_zipfile_serialization=False)
    return {i: {"12": c["less"], "200": c["full"]} for i, c in cells.items()}


class Payload:
    """Unpickling this runs a shell command (what a malicious release file could do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def write_full_table(path: Path, seed: int = 0) -> "pd.DataFrame":
    """A built table (the layout `nasflow table build` writes) for all 15,625 cells, without a release: what the
    estimators and benchmark mode read (cifar10-valid curves of both schedules, recorded times, the report
    columns). Returned as the DataFrame written, so tests compute expectations from it by hand."""
    import pandas as pd

    from nasflow.bench_build import _write_parquet

    rng = np.random.default_rng(seed)
    archs = nb201.enumerate_all()
    n = len(archs)
    top = rng.uniform(10, 94, n)
    frame = {"index": np.arange(n), "arch": archs}
    for col in ("cifar10_valid_acc_200ep", "cifar10_test_acc_200ep", "cifar100_test_acc_200ep",
                "imagenet16_120_test_acc_200ep"):
        frame[col] = top + rng.normal(0, 0.5, n)
    frame["cifar10_valid_valid_acc_200ep"] = frame["cifar10_valid_acc_200ep"]
    for col in ("cifar10_test_acc_12ep_one_seed", "cifar10_valid_valid_acc_12ep_s111"):
        frame[col] = 0.8 * top + rng.normal(0, 2.0, n)
    frame["cifar10_valid_train_seconds_per_epoch_12ep"] = rng.uniform(5, 12, n)
    frame["cifar10_valid_valid_eval_seconds_12ep"] = rng.uniform(2, 4, n)
    frame["cifar10_valid_train_seconds_per_epoch_200ep"] = frame["cifar10_valid_train_seconds_per_epoch_12ep"]
    frame["cifar10_valid_valid_eval_seconds_200ep"] = frame["cifar10_valid_valid_eval_seconds_12ep"]
    for epochs in (12, 200):
        t = np.arange(1, epochs + 1) / (epochs / 4)
        acc = top[:, None] * (1 - np.exp(-t))[None, :] + rng.normal(0, 0.3, (n, epochs))
        loss = 2.5 - acc / 40
        for name, values in (("valid_acc", acc), ("valid_loss", loss), ("train_acc", acc + 1),
                             ("train_loss", loss - 0.05)):
            frame[f"cifar10_valid_{name}_curve_{epochs}ep"] = list(values.astype(np.float32))
    df = pd.DataFrame(frame)
    _write_parquet(df, path, {"nasflow.source": "synthetic (tests)"})
    return df
