"""The ground-truth table from an official NAS-Bench-201 / NATS-Bench release, read without running its code.

    build_table("NATS-tss-v1_0-3ffb9-simple", "data/nb201.parquet")   # or NAS-Bench-201-v1_1-096897.pth
    nasflow table build --from PATH --out FILE                        # the same from the console

Inputs (layouts learnt from the official APIs, D-X-Y/NATS-Bench `nats_bench/api_utils.py` and
D-X-Y/NAS-Bench-201 `nas_201_api/api_201.py`; see ../shared/REFERENCE.md):
- NATS-Bench tss archive: a directory with `meta.pickle.pbz2` (`meta_archs`, `total_archs`, …) and one
  `{index:06d}.pickle.pbz2` per cell: `{'12': cell, '200': cell}` for the two schedules.
- NAS-Bench-201 `.pth` (v1_0 / v1_1): one torch.save'd dict `{meta_archs, total_archs, arch2infos: {index:
  {'less': cell (12 epochs), 'full': cell (200 epochs)}}, evaluated_indexes}`.
A cell (the API's ArchResults state dict) is `{arch_index, arch_str, dataset_seed: {dataset: [seeds]},
all_results: {(dataset, seed): trial}}`; a trial holds per-epoch `train_acc1es / train_losses / train_times`
(keyed by epoch), `eval_acc1es / eval_losses / eval_times` keyed by `'<split>@<epoch>'`, and `params` (M),
`flop` (M), `latency` ([s]).

Safety: the official API unpickles these files with plain pickle.load, so a file whose pickle calls a
`__reduce__` payload runs it. We never do: the archive's pickles go through `_ReleaseUnpickler`, which admits
only what the format holds (OrderedDict and numeric numpy scalars / dtypes); the `.pth` goes through
torch.load(weights_only=True), whose own restricted unpickler admits plain containers and tensors, with the same
numpy names allowed. Anything else is a one-line DataError naming the file, and no table is written.

Output: one row per cell, columns named `<dataset>_<split>_<metric>_<schedule>ep[_s<seed>]` (see COLUMNS_DOC)
plus today's CSV names as aliases; written to a temporary name and renamed into place when complete.
"""
from __future__ import annotations

import bz2
import collections
import io
import os
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from nasflow.errors import DataError, one_line

# the release's dataset names -> ours in column names
DATASETS = {"cifar10-valid": "cifar10_valid", "cifar10": "cifar10", "cifar100": "cifar100",
            "ImageNet16-120": "imagenet16_120"}
# the release's evaluation splits -> the split names of NB201's get_more_info (its x-valid / x-test / ori-test
# conventions): cifar10-valid trains on 25k, `valid` = the other 25k of the training set, `test` = CIFAR-10 test;
# cifar10 trains on 50k, `test` = CIFAR-10 test; cifar100 / ImageNet16-120: `valid` and `test` = the two halves
# of the test set (x-valid, x-test), `valtest` = both (ori-test).
SPLITS = {"cifar10-valid": {"x-valid": "valid", "ori-test": "test"},
          "cifar10": {"ori-test": "test"},
          "cifar100": {"x-valid": "valid", "x-test": "test", "ori-test": "valtest"},
          "ImageNet16-120": {"x-valid": "valid", "x-test": "test", "ori-test": "valtest"}}
SCHEDULES = ("12", "200")
NB201_CELLS = 15_625

# today's CSV column names (../shared/data/README.md) -> the built table's columns; kept as real columns.
# "one seed" of the 12-epoch schedule: cifar10 / cifar100 / ImageNet16-120 have exactly one there, seed 111.
ALIASES = {
    "cifar10_valid_acc_200ep": "cifar10_valid_valid_acc_200ep",
    "cifar10_test_acc_12ep_one_seed": "cifar10_test_acc_12ep_s111",
    "cifar100_test_acc_12ep_one_seed": "cifar100_test_acc_12ep_s111",
    "imagenet16_120_test_acc_12ep_one_seed": "imagenet16_120_test_acc_12ep_s111",
}

COLUMNS_DOC = """\
index, arch                                  the benchmark index and NB201's arch string
<d>_<split>_{acc,loss}_<s>ep                 after the last epoch, mean over the release's seeds
<d>_<split>_{acc,loss}_<s>ep_s<seed>         the same for one seed (NaN where the cell lacks that seed)
<d>_<split>_{acc,loss}_curve_<s>ep           per epoch (a list), mean over seeds; only splits evaluated every epoch
<d>_train_seconds_per_epoch_<s>ep            the release's recorded training time of one epoch (mean over seeds)
<d>_<split>_eval_seconds_<s>ep               the recorded time of one evaluation pass on that split
<d>_seeds_<s>ep                              how many seeds the mean is over
<d>_params_m, <d>_flops_m, <d>_latency_s     as recorded (params in millions, FLOPs in M multiply-adds)
d: cifar10_valid | cifar10 | cifar100 | imagenet16_120;  s: 12 | 200;
split: train | valid | test | valtest (NB201's get_more_info names: cifar10_valid valid = x-valid, test = ori-test;
cifar10 test = ori-test; cifar100 / imagenet16_120 valid = x-valid, test = x-test, valtest = ori-test)
aliases: """ + ", ".join(f"{a} = {c}" for a, c in ALIASES.items())


# --------------------------------------------------------------------------------------------------------
# Reading the release without running code from it

def _numpy_scalar(dtype, data=None):
    """numpy's scalar reconstructor, for numeric dtypes only (an object dtype could smuggle anything)."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in "biuf" or not isinstance(data, bytes):
        raise pickle.UnpicklingError(f"numpy scalar of dtype {dtype!r} is not part of the release format")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_dtype(name, align=False, copy=False):
    dtype = np.dtype(name)
    if dtype.kind not in "biuf":
        raise pickle.UnpicklingError(f"numpy dtype {name!r} is not part of the release format")
    return dtype


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy", "dtype"): _numpy_dtype,
}


class _ReleaseUnpickler(pickle.Unpickler):
    """Admits only the globals the release's pickles contain; anything else (os.system, eval, …) is refused."""

    def find_class(self, module, name):
        found = _ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (not part of the release format; "
                                         "a pickle that calls it could run code)")
        return found


def read_pbz2(path: Path):
    """One bz2-compressed pickle of the NATS-Bench archive, through the restricted unpickler."""
    try:
        raw = bz2.decompress(path.read_bytes())
        return _ReleaseUnpickler(io.BytesIO(raw)).load()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pickle.UnpicklingError as e:
        raise DataError(f"{path}: {one_line(e)}") from None
    except (OSError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError,
            RecursionError) as e:
        raise DataError(f"{path}: corrupt or truncated ({type(e).__name__}: {one_line(e)})") from None


def read_pth(path: Path) -> dict:
    """The NAS-Bench-201 .pth through torch.load(weights_only=True) (no code runs; numeric numpy admitted)."""
    import torch

    safe = [np.dtype]
    for mod in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            safe.append(getattr(__import__(mod, fromlist=["scalar"]), "scalar"))
            break
        except (ImportError, AttributeError):
            continue
    safe += [type(np.dtype(t)) for t in ("f8", "f4", "i8", "i4", "u1", "b1")]  # numpy >= 1.25's dtype classes
    try:
        with torch.serialization.safe_globals(safe):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pickle.UnpicklingError as e:  # what weights_only raises for a forbidden global
        raise DataError(f"{path}: refused to load ({one_line(e).split(' Check the documentation')[0][:300]})") from None
    except Exception as e:  # torch raises RuntimeError / EOFError / zipfile errors for damaged files
        raise DataError(f"{path}: corrupt or truncated ({type(e).__name__}: {one_line(e)[:200]})") from None
    if not isinstance(data, dict) or not {"meta_archs", "arch2infos"} <= set(data):
        raise DataError(f"{path}: not a NAS-Bench-201 file (expected a dict with meta_archs and arch2infos)")
    return data


# --------------------------------------------------------------------------------------------------------
# One cell -> one row

def _num(value, where: str) -> float:
    if isinstance(value, (list, tuple)):  # latency is recorded as [seconds]
        value = value[0] if value else float("nan")
    if value is None:
        return float("nan")
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.number)):
        raise DataError(f"{where}: expected a number, got {type(value).__name__}")
    return float(value)


def _epochs(trial: dict, where: str) -> int:
    epochs = trial.get("epochs")
    if not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise DataError(f"{where}: trial has no valid 'epochs'")
    return int(epochs)


def _curve(values, epochs: int, where: str, key=lambda e: e) -> np.ndarray | None:
    """Values for epochs 0..epochs-1 of a dict keyed by `key(epoch)`; None if any epoch is missing."""
    if not isinstance(values, dict):
        return None
    try:
        return np.array([_num(values[key(e)], where) for e in range(epochs)], dtype=np.float64)
    except KeyError:
        return None


def cell_row(cell_by_schedule: dict, index: int, arch: str, where: str) -> dict:
    """The table row of one cell: {'index', 'arch', column: value or np.ndarray curve}."""
    row: dict = {"index": index, "arch": arch}
    costs: dict[str, list] = collections.defaultdict(list)
    for schedule in SCHEDULES:
        cell = cell_by_schedule.get(schedule)
        if not isinstance(cell, dict):
            raise DataError(f"{where}: the {schedule}-epoch schedule is missing")
        if cell.get("arch_index") not in (index, None) or cell.get("arch_str") not in (arch, None):
            raise DataError(f"{where}: {schedule}-epoch results are for cell {cell.get('arch_index')!r} "
                            f"{cell.get('arch_str')!r}, expected {index} {arch}")
        seeds_of, results = cell.get("dataset_seed"), cell.get("all_results")
        if not isinstance(seeds_of, dict) or not isinstance(results, dict):
            raise DataError(f"{where}: {schedule}-epoch results lack dataset_seed / all_results")
        for dataset, d in DATASETS.items():
            seeds = seeds_of.get(dataset)
            if not seeds:
                raise DataError(f"{where}: dataset {dataset} is missing from the {schedule}-epoch schedule")
            trials = []
            for seed in seeds:
                trial = results.get((dataset, seed))
                if not isinstance(trial, dict):
                    raise DataError(f"{where}: no {schedule}-epoch trial for {dataset} seed {seed}")
                trials.append((int(seed), trial))
            _add_dataset(row, costs, d, dataset, schedule, trials, f"{where} {dataset} {schedule}ep")
    for name, values in costs.items():  # params / FLOPs / latency: one value per dataset (as the API reports)
        row[name] = _cost_value(values)
    for alias, column in ALIASES.items():
        row[alias] = row.get(column, float("nan"))
    return row


def _cost_value(values: list[tuple[int, float]]) -> float:
    """The API's get_compute_costs: the mean over seeds, or seed 888's where seeds disagree (a legacy fix)."""
    nums = [v for _, v in values if v == v]
    if not nums:
        return float("nan")
    if len({f"{v:.5f}" for v in nums}) > 1:
        by_seed = dict(values)
        if 888 in by_seed:
            return by_seed[888]
    return float(np.mean(nums))


def _add_dataset(row: dict, costs: dict, d: str, dataset: str, schedule: str, trials: list, where: str) -> None:
    s = schedule
    finals: dict[str, list[float]] = collections.defaultdict(list)
    curves: dict[str, list[np.ndarray]] = collections.defaultdict(list)
    train_times, eval_times = [], collections.defaultdict(list)
    for seed, trial in trials:
        epochs = _epochs(trial, where)
        last = epochs - 1
        metrics = {("train", "acc"): (trial.get("train_acc1es"), lambda e: e),
                   ("train", "loss"): (trial.get("train_losses"), lambda e: e)}
        for split, name in SPLITS[dataset].items():
            metrics[(name, "acc")] = (trial.get("eval_acc1es"), lambda e, sp=split: f"{sp}@{e}")
            metrics[(name, "loss")] = (trial.get("eval_losses"), lambda e, sp=split: f"{sp}@{e}")
        for (split, metric), (values, key) in metrics.items():
            if not isinstance(values, dict) or key(last) not in values:
                continue  # that split is not evaluated after the last epoch in this schedule
            value = _num(values[key(last)], where)
            row[f"{d}_{split}_{metric}_{s}ep_s{seed}"] = value
            finals[f"{d}_{split}_{metric}_{s}ep"].append(value)
            curve = _curve(values, epochs, where, key)
            if curve is not None:
                curves[f"{d}_{split}_{metric}_curve_{s}ep"].append(curve)
        per_epoch = _curve(trial.get("train_times"), epochs, where)
        if per_epoch is not None:
            train_times.append(per_epoch.mean())
        times = trial.get("eval_times")
        if isinstance(times, dict):
            for split, name in SPLITS[dataset].items():
                vals = [_num(v, where) for k, v in times.items() if isinstance(k, str) and k.split("@")[0] == split]
                if vals:
                    eval_times[name].append(float(np.mean(vals)))
        for key, name in (("params", "params_m"), ("flop", "flops_m"), ("latency", "latency_s")):
            costs[f"{d}_{name}"].append((seed, _num(trial.get(key), where)))
    for name, values in finals.items():
        row[name] = float(np.mean(values))
    for name, values in curves.items():
        if len(values) == len(trials) and len({len(v) for v in values}) == 1:
            row[name] = np.mean(values, axis=0).astype(np.float32)
    row[f"{d}_seeds_{s}ep"] = len(trials)
    row[f"{d}_train_seconds_per_epoch_{s}ep"] = float(np.mean(train_times)) if train_times else float("nan")
    for name, values in eval_times.items():
        row[f"{d}_{name}_eval_seconds_{s}ep"] = float(np.mean(values))


# --------------------------------------------------------------------------------------------------------
# The two release formats

def detect(path: Path) -> str:
    """'nats' for a NATS-Bench tss archive directory, 'pth' for a NAS-Bench-201 .pth file."""
    if path.is_dir():
        if not (path / "meta.pickle.pbz2").exists():
            raise DataError(f"{path}: no meta.pickle.pbz2 (expected NATS-Bench's NATS-tss-v1_0-3ffb9-simple/ "
                            "directory or a NAS-Bench-201-v1_*.pth file)")
        return "nats"
    if path.is_file():
        return "pth"
    raise DataError(f"{path}: not found (expected NATS-Bench's NATS-tss-v1_0-3ffb9-simple/ directory or a "
                    "NAS-Bench-201-v1_*.pth file)")


def _check_meta(meta, where: str) -> list[str]:
    from nasflow.spaces import nb201

    if not isinstance(meta, dict) or not isinstance(meta.get("meta_archs"), list):
        raise DataError(f"{where}: no meta_archs list (not a NAS-Bench-201 / NATS-Bench topology release)")
    archs = meta["meta_archs"]
    total = meta.get("total_archs", len(archs))
    if total != len(archs) or len(archs) != NB201_CELLS:
        raise DataError(f"{where}: {len(archs)} arch strings, total_archs {total!r}; the topology space has "
                        f"{NB201_CELLS} cells")
    ours = nb201.enumerate_all()
    for i, (theirs, mine) in enumerate(zip(archs, ours)):
        if theirs != mine:
            raise DataError(f"{where}: cell {i} is {theirs!r}, expected {mine!r} (not NAS-Bench-201's index order)")
    return archs


def _nats_cell(args) -> dict:
    path, index, arch = args
    data = read_pbz2(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict of schedules, got {type(data).__name__}")
    return cell_row(data, index, arch, str(path))


def _cell_files(root: Path, archs: list[str]) -> list[tuple[Path, int, str]]:
    jobs = []
    for f in sorted(root.glob("*.pickle.pbz2")):
        stem = f.name.split(".")[0]
        if stem == "meta":
            continue
        if not stem.isdigit() or int(stem) >= len(archs):
            raise DataError(f"{f}: not a cell file of the {len(archs)}-cell space (expected 000000 … "
                            f"{len(archs) - 1:06d}.pickle.pbz2)")
        jobs.append((f, int(stem), archs[int(stem)]))
    if not jobs:
        raise DataError(f"{root}: no cell files (NNNNNN.pickle.pbz2) beside meta.pickle.pbz2")
    return jobs


def read_release(path: str | Path, *, workers: int | None = None, progress: bool = True) -> list[dict]:
    """Every cell's row of the release at `path` (a NATS-Bench tss directory or a NAS-Bench-201 .pth)."""
    from tqdm import tqdm

    path = Path(path)
    kind = detect(path)
    bar = dict(unit="cell", disable=not progress, file=sys.stderr, mininterval=1.0)
    if kind == "nats":
        archs = _check_meta(read_pbz2(path / "meta.pickle.pbz2"), str(path / "meta.pickle.pbz2"))
        jobs = _cell_files(path, archs)
        workers = workers or min(len(os.sched_getaffinity(0)), 8)
        if workers > 1 and len(jobs) > 64:
            with ProcessPoolExecutor(workers) as pool:
                return list(tqdm(pool.map(_nats_cell, jobs, chunksize=32), total=len(jobs),
                                 desc=f"reading {path.name}", **bar))
        return [_nats_cell(job) for job in tqdm(jobs, desc=f"reading {path.name}", **bar)]
    data = read_pth(path)
    archs = _check_meta(data, str(path))
    infos = data["arch2infos"]
    if not isinstance(infos, dict) or not infos:
        raise DataError(f"{path}: arch2infos is empty")
    rows = []
    for index in tqdm(sorted(infos, key=lambda k: (not isinstance(k, int), k)), desc=f"reading {path.name}", **bar):
        if not isinstance(index, int) or not 0 <= index < len(archs):
            raise DataError(f"{path}: arch2infos has key {index!r}, not a cell index of the {len(archs)}-cell space")
        info = infos[index]
        if not isinstance(info, dict):
            raise DataError(f"{path}: cell {index}: expected a dict with 'less' and 'full'")
        where = f"{path} cell {index}"
        rows.append(cell_row({"12": info.get("less"), "200": info.get("full")}, index, archs[index], where))
    return rows


def build_table(source: str | Path, out: str | Path, *, workers: int | None = None, progress: bool = True) -> dict:
    """Convert the release at `source` into the Parquet table `out`; returns a summary (cells, columns, kind).

    Written to a temporary name and renamed into place only when every cell has been read and checked.
    """
    import pandas as pd

    out = Path(out)
    if out.suffix != ".parquet":
        raise DataError(f"{out}: the table is written as Parquet; name it *.parquet")
    rows = read_release(source, workers=workers, progress=progress)
    frame = pd.DataFrame(rows)
    first = ["index", "arch"] + list(ALIASES)
    frame = frame[first + sorted(c for c in frame.columns if c not in first)]
    frame = frame.sort_values("index", kind="stable").reset_index(drop=True)
    for name in frame.columns:  # a curve a cell lacks is null, not NaN, in a list column
        if "_curve_" in name:
            frame[name] = [v if isinstance(v, np.ndarray) else None for v in frame[name]]
    if frame["index"].duplicated().any():
        raise DataError(f"{source}: cell {int(frame['index'][frame['index'].duplicated()].iloc[0])} appears twice")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        from nasflow import __version__

        meta = {"nasflow.source": str(Path(source).name), "nasflow.kind": detect(Path(source)),
                "nasflow.version": __version__, "nasflow.cells": str(len(frame))}
        _write_parquet(frame, tmp, meta)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {"cells": len(frame), "columns": len(frame.columns), "kind": detect(Path(source)), "out": str(out),
            "complete": len(frame) == NB201_CELLS}


def _write_parquet(frame, path: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{k.encode(): v.encode() for k, v in meta.items()}})
    pq.write_table(table, path, compression="zstd")
