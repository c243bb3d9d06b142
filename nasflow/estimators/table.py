"""Estimators for searches: look an arch up in the NAS-Bench-201 table and charge a simulated training time,
or train it for real (an adapter around nasflow.estimators.proxy.train_arch).

An estimator is any callable `estimator(arch) -> (score, cost_seconds)` (nasflow.search.strategies).

Recorded times (a table built from the official release)
-------------------------------------------------------
A table built by `nasflow table build` holds the release's own training time of every cell. Then each query
costs exactly what NB201's baselines charge for it (ADL exps/NAS-Bench-201-algos/R_EA.py `train_and_eval`, the
API's `simulate_train_eval`): the 12-epoch schedule's `train-all-time` on cifar10-valid (12 x its recorded
epoch time) plus one validation pass (`valid-per-time`):

    cost(arch) = 12 * cifar10_valid_train_seconds_per_epoch_12ep + cifar10_valid_valid_eval_seconds_12ep

`TableEstimator(cost_model="auto")` (the default) uses them when the table has them, else the cost model
below; `cost_source` says which ("recorded" or the model's kind), and every output that spends a cost says it.

Cost model (tables without training times, e.g. a CSV)
-----------------------------------------------------
NB201's search baselines pay, per queried arch, the benchmark's recorded time of the 12-epoch schedule on
cifar10-valid: `train-all-time + valid-per-time` (ADL exps/NAS-Bench-201-algos/R_EA.py, `train_and_eval`),
against a 12,000 s budget. We simulate that time from the arch's FLOPs:

    cost(arch) = k * (A + B * MFLOPs(arch)),   k chosen so that the mean over all 15,625 cells is MEAN_COST_S.

- Shape (A, B): an affine fit through the two NB201 cifar10-valid timing records we could find (per-epoch
  train time and one validation pass, `get_more_info(..., hp='200')`): index 0 (15.65 MFLOPs) 7.221 s/epoch
  + 2.549 s valid; index 1 (113.95 MFLOPs) 10.848 s/epoch + 3.754 s valid. As a 12-epoch cost: 89.2 s and
  133.9 s, so A = 82.1 s and B = 0.455 s/MFLOP. Training time is far from proportional to FLOPs (a large
  fixed part: data pipeline, memory-bound ops, kernel launches), which `kind="flops"` shows as a what-if.
- Scale: NATS-Bench tss (NB201's topologies) on cifar10-valid with the 12-epoch schedule has a mean
  `train-per-time` of 9.14 s/epoch over 15,000 archs (a public average, computed by Mirofil/SOTL_NAS
  nasbench.py with the official API); the valid pass is ~0.35 of an epoch's training (0.353 and 0.346 in the
  two records above). Mean cost = 9.14 * (12 + 0.35) = 112.9 s, so a 12,000 s budget buys ~106 queries of
  an average arch (fewer as a search drifts towards conv-heavy cells: 7.8-220 MFLOPs -> 90-192 s).
- FLOPs: the benchmark's counting (nasflow.counting.count_flops on the C=16, N=5 CIFAR network) is exactly
  additive over edges: 7,783,050 + 3,932,160 per nor_conv_1x1 edge + 35,389,440 per nor_conv_3x3 edge
  (checked against count_flops in the tests). count_flops takes ~0.1 s per arch (25 min for the space);
  the closed form takes microseconds, so nothing is cached to disk.
"""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np

from nasflow import bench
from nasflow.errors import DataError, ParamsError
from nasflow.spaces import nb201

# --------------------------------------------------------------------------------------------------------
# FLOPs of NB201 cells (CIFAR-10, 32 px, C=16, N=5, 10 classes), exact closed form of count_flops

NB201_BASE_FLOPS = 7_783_050  # stem, residual blocks, classifier (an all-skip cell)
NB201_EDGE_FLOPS = {"nor_conv_1x1": 3_932_160, "nor_conv_3x3": 35_389_440}  # per edge, summed over the 15 cells


def nb201_flops(arch: str) -> int:
    """Multiply-accumulates of the benchmark's CIFAR-10 network for `arch` (== count_flops(build_network))."""
    return NB201_BASE_FLOPS + sum(NB201_EDGE_FLOPS.get(op, 0) for op in nb201.parse(arch))


@functools.lru_cache(maxsize=1)
def _nb201_mflops() -> np.ndarray:
    return np.array([nb201_flops(a) for a in nb201.enumerate_all()], dtype=np.float64) / 1e6


def nb201_mflops_all() -> np.ndarray:
    """MFLOPs of all 15,625 cells in benchmark index order (a fresh copy)."""
    return _nb201_mflops().copy()


# --------------------------------------------------------------------------------------------------------
# Cost model

# (MFLOPs, train seconds per epoch, seconds of one validation pass): NB201 cifar10-valid records (see above)
NB201_TIMING_RECORDS = ((15.64737, 7.221092998981476, 2.54897923696609),  # index 0
                        (113.95137, 10.848206877708435, 3.754198976925442))  # index 1
NB201_EPOCHS = 12
NB201_MEAN_TRAIN_PER_EPOCH_S = 9.14  # NATS-Bench tss, cifar10-valid, hp=12, mean over archs
_VALID_RATIO = float(np.mean([v / t for _, t, v in NB201_TIMING_RECORDS]))
MEAN_COST_S = NB201_MEAN_TRAIN_PER_EPOCH_S * (NB201_EPOCHS + _VALID_RATIO)  # ~112.9 s


def _affine_fit() -> tuple[float, float]:
    (f0, t0, v0), (f1, t1, v1) = NB201_TIMING_RECORDS
    c0, c1 = NB201_EPOCHS * t0 + v0, NB201_EPOCHS * t1 + v1
    slope = (c1 - c0) / (f1 - f0)
    return c0 - slope * f0, slope


AFFINE_INTERCEPT_S, AFFINE_SLOPE_S_PER_MFLOP = _affine_fit()  # ~82.1 s, ~0.455 s/MFLOP (before scaling)

COST_KINDS = ("affine", "flops", "constant")
TABLE_COST_KINDS = ("auto", "recorded", *COST_KINDS)  # what a TableEstimator takes (auto: recorded if present)

# the recorded times of the query NB201's baselines pay (see the module docstring)
RECORDED_TRAIN_COLUMN = "cifar10_valid_train_seconds_per_epoch_12ep"
RECORDED_VALID_COLUMN = "cifar10_valid_valid_eval_seconds_12ep"


def has_recorded_times(path: str | Path) -> bool:
    return bench.has_column(path, RECORDED_TRAIN_COLUMN) and bench.has_column(path, RECORDED_VALID_COLUMN)


def cost_source_of(path: str | Path | None) -> str:
    """What a table's query costs come from, in words (for reports)."""
    if path and has_recorded_times(path):
        return ("recorded: the release's training times (12 x the cifar10-valid 12-epoch epoch time + one "
                "validation pass per query)")
    return "cost model: affine in FLOPs, mean 112.9 s per query (the table has no training times)"


@dataclass(frozen=True)
class CostModel:
    """Simulated seconds to train-and-validate an arch once (the 12-epoch query of NB201's baselines).

    kind: "affine" (default, A + B*MFLOPs), "flops" (proportional to FLOPs) or "constant" (every arch costs
    the mean). All kinds have the same mean over the space, `mean_seconds`, so a budget buys the same number
    of average queries under each.
    """

    kind: str = "affine"
    mean_seconds: float = MEAN_COST_S

    def __post_init__(self):
        if self.kind not in COST_KINDS:
            raise ParamsError(f"cost model: unknown kind {self.kind!r} (known: {', '.join(COST_KINDS)})")
        if not self.mean_seconds > 0:
            raise ParamsError(f"cost model: mean_seconds must be > 0, got {self.mean_seconds!r}")

    def costs(self, mflops: np.ndarray, reference_mflops: np.ndarray | None = None) -> np.ndarray:
        """Seconds for archs of the given MFLOPs; the mean is taken over `reference_mflops` (the whole space)."""
        mflops = np.asarray(mflops, dtype=np.float64)
        ref = _nb201_mflops() if reference_mflops is None else np.asarray(reference_mflops, dtype=np.float64)
        if self.kind == "constant":
            return np.full_like(mflops, self.mean_seconds)
        if self.kind == "flops":
            shape, ref_shape = mflops, ref
        else:
            shape = AFFINE_INTERCEPT_S + AFFINE_SLOPE_S_PER_MFLOP * mflops
            ref_shape = AFFINE_INTERCEPT_S + AFFINE_SLOPE_S_PER_MFLOP * ref
        return shape * (self.mean_seconds / ref_shape.mean())

    def cost(self, arch: str) -> float:
        """Seconds for one NB201 arch."""
        return float(self.costs(np.array([nb201_flops(arch) / 1e6]))[0])


# --------------------------------------------------------------------------------------------------------
# Table estimator

SEARCH_COLUMN = "cifar10_test_acc_12ep_one_seed"  # the table's only CIFAR-10 12-epoch signal (see bench_mode)


class TableEstimator:
    """`estimator(arch) -> (table[column][arch], simulated cost)` for NB201 cells, O(1) per query.

    Archs are looked up by their exact canonical string (what nb201.sample/mutate/decode return); other
    spellings are canonicalised first. `value(arch, column)` reads any other column of the same table;
    `index(arch)` gives the benchmark index. Arrays in benchmark index order: `scores`, `costs`.
    """

    def __init__(self, path: str | Path, column: str = SEARCH_COLUMN,
                 cost_model: CostModel | float | str = "auto"):
        self.path, self.column = str(path), column
        self.archs = nb201.enumerate_all()
        self._index = {a: i for i, a in enumerate(self.archs)}
        self.scores = self.column_array(column)
        if isinstance(cost_model, (int, float)) and not isinstance(cost_model, bool):
            cost_model = CostModel("constant", float(cost_model))
        if isinstance(cost_model, str):
            if cost_model not in TABLE_COST_KINDS:
                raise ParamsError(f"cost model: unknown kind {cost_model!r} (known: {', '.join(TABLE_COST_KINDS)})")
            recorded = cost_model in ("auto", "recorded") and has_recorded_times(self.path)
            if cost_model == "recorded" and not recorded:
                raise ParamsError(f"cost model 'recorded': {self.path} has no recorded training times (build the "
                                  "table from the official release: nasflow table build)")
            cost_model = "recorded" if recorded else CostModel("affine" if cost_model == "auto" else cost_model)
        self.cost_model = cost_model
        if cost_model == "recorded":
            self.costs = (NB201_EPOCHS * self.column_array(RECORDED_TRAIN_COLUMN)
                          + self.column_array(RECORDED_VALID_COLUMN))
            self.cost_source = "recorded"
        else:
            self.costs = cost_model.costs(_nb201_mflops())
            self.cost_source = cost_model.kind
        self._pairs = list(zip(self.scores.tolist(), self.costs.tolist()))  # plain floats: fastest lookups
        self._columns = {column: self.scores}

    def column_array(self, column: str) -> np.ndarray:
        """`column` for all cells in benchmark index order."""
        table = bench.load_table(self.path, column)
        try:
            return np.array([table[a] for a in self.archs], dtype=np.float64)
        except KeyError as e:
            raise DataError(f"ground-truth table {self.path} lacks the cell {e.args[0]!r}") from None

    def index(self, arch: str) -> int:
        i = self._index.get(arch)
        if i is None:
            i = self._index.get(nb201.canonical(arch))  # raises ArchError for a malformed arch
        return i

    def __call__(self, arch: str) -> tuple[float, float]:
        i = self._index.get(arch)
        if i is None:
            i = self.index(arch)
        return self._pairs[i]

    def value(self, arch: str, column: str) -> float:
        if column not in self._columns:
            self._columns[column] = self.column_array(column)
        return float(self._columns[column][self.index(arch)])


def ground_truth_costs(path: str | Path, column: str, archs: list[str]) -> tuple[np.ndarray, str]:
    """(seconds to evaluate each arch as the ground-truth `column` was, what they come from): the recorded
    training time of the column's dataset and schedule (epochs x the epoch time + one evaluation pass) when the
    table has it, else the cost model (NB201's 12-epoch query cost, scaled to the schedule's epochs)."""
    import re

    m = re.match(r"(cifar10_valid|cifar100|cifar10|imagenet16_120)_.*?_(12|200)ep", column)
    dataset, epochs = (m.group(1), int(m.group(2))) if m else ("cifar10_valid", 200)
    train, evals = f"{dataset}_train_seconds_per_epoch_{epochs}ep", None
    for split in ("valid", "test", "valtest"):
        if bench.has_column(path, f"{dataset}_{split}_eval_seconds_{epochs}ep"):
            evals = f"{dataset}_{split}_eval_seconds_{epochs}ep"
            break
    if evals and bench.has_column(path, train):
        t, e = bench.load_table(path, train), bench.load_table(path, evals)
        return (np.array([epochs * t[a] + e[a] for a in archs]),
                f"recorded: {dataset}, {epochs} epochs x the cell's epoch time + one evaluation")
    model = CostModel().costs(np.array([nb201_flops(a) / 1e6 for a in archs])) * epochs / NB201_EPOCHS
    return model, f"cost model: NB201's 12-epoch query cost (affine in FLOPs) x {epochs}/12 epochs"


# --------------------------------------------------------------------------------------------------------
# The release's per-epoch curves as training histories (the tabular learning-curve estimators)

CURVE_DATASET = "cifar10_valid"  # NB201's search split: trained on 25k, validated on the other 25k (x-valid)


def release_histories(path: str | Path, archs: list[str], schedule: str,
                      dataset: str = CURVE_DATASET) -> list[list[dict]]:
    """Each arch's per-epoch records of the release's `schedule` ("12" or "200"), in the form
    nasflow.estimators.learning_curve reads (`epoch`, `train_loss`, `train_acc`, `eval_acc`, `eval_loss`,
    `seconds`): mean over seeds; `seconds` = the recorded training time of one epoch + one validation pass.
    Needs a table built from the release (`nasflow table build`); an arch it lacks is an error naming it."""
    s = f"{schedule}ep"
    curves = {key: bench.load_curves(path, f"{dataset}_{col}_curve_{s}")
              for key, col in (("train_loss", "train_loss"), ("train_acc", "train_acc"), ("eval_acc", "valid_acc"),
                               ("eval_loss", "valid_loss"))}
    train_s = bench.load_table(path, f"{dataset}_train_seconds_per_epoch_{s}")
    eval_s = bench.load_table(path, f"{dataset}_valid_eval_seconds_{s}")
    out = []
    for arch in archs:
        if arch not in curves["eval_acc"]:
            raise DataError(f"arch {arch!r} has no {schedule}-epoch curve in the table {path}")
        seconds = train_s[arch] + eval_s[arch]
        n = len(curves["eval_acc"][arch])
        out.append([{"epoch": e + 1, **{key: float(c[arch][e]) for key, c in curves.items()}, "seconds": seconds}
                    for e in range(n)])
    return out


# --------------------------------------------------------------------------------------------------------
# Real training as an estimator


def proxy_estimator(*, space: ModuleType, setting: dict, splits, seed: int, device, score: str = "final_acc",
                    progress: bool = False, train_fn: Callable | None = None) -> Callable[[str], tuple[float, float]]:
    """An estimator that trains each queried arch under `setting` (nasflow.estimators.proxy.train_arch).

    score: the key of train_arch's result used as the score ("final_acc" or "best_acc"). The cost is the
    measured wall-clock seconds of the call (model build, training and evaluation). Repeated queries of the
    same arch are trained again and paid again, as a real search would (wrap it in a cache if you want
    otherwise). `train_fn` replaces train_arch (tests).
    """
    if train_fn is None:
        from nasflow.estimators.proxy import train_arch as train_fn

    def estimate(arch: str) -> tuple[float, float]:
        start = time.perf_counter()
        result = train_fn(arch, space=space, setting=setting, splits=splits, seed=seed, device=device,
                          progress=progress)
        value = result.get(score)
        if value is None:
            raise DataError(f"proxy training of {arch!r} returned no {score!r}")
        return float(value), time.perf_counter() - start

    return estimate
