"""Benchmark mode: NAS-Bench-201's table baselines (REA, RS, REINFORCE, BOHB) reproduced on the table.

Protocol (NB201 paper, Table 5; ADL exps/NAS-Bench-201-algos): each run searches with the cheap 12-epoch
signal, paying a simulated training time per query until 12,000 s are spent, then reports the 200-epoch
accuracy of its pick on CIFAR-10 (valid and test), CIFAR-100 (test) and ImageNet16-120 (test); the paper
gives mean +- std over 500 runs.

Our table's cheap signal: the CSV has no 12-epoch *validation* column, only `*_test_acc_12ep_one_seed`
(one random seed of the 12-epoch schedule). We search by `cifar10_test_acc_12ep_one_seed`; ADL queries
cifar10-valid's 12-epoch validation accuracy of a random seed per query. Both are one noisy seed of the
12-epoch run on CIFAR-10; ours is measured on the test images, the split the CIFAR-10 test column also
reports on, which may flatter the CIFAR-10 test row slightly (the CIFAR-100 / ImageNet16-120 rows are
transfers either way). The seed is fixed per arch here, where ADL re-draws it per query.
Costs: with a table built from the official release, each query costs the queried cell's recorded time, as
NB201's baselines charge it (12 epochs of cifar10-valid training + one validation pass); with a table without
times (a CSV), nasflow.estimators.table.CostModel (affine in FLOPs, mean 112.9 s per query). The protocol's
cost_model "auto" picks the first; every row and the report say which was used (`cost_model`).

    rows = run_benchmark("../shared/data/nb201-accuracies.csv", seeds=500)
    print(format_report(summarize(rows)))
"""
from __future__ import annotations

import math
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Callable, Iterable

import numpy as np

from nasflow.errors import ParamsError
from nasflow.estimators.table import SEARCH_COLUMN, TABLE_COST_KINDS, CostModel, TableEstimator
from nasflow.search import Budget, get_strategy
from nasflow.spaces import nb201

BUDGET_SECONDS = 12_000.0
STRATEGIES = ("rea", "rs", "reinforce", "bohb")
LABELS = {"rea": "REA", "rs": "RS", "reinforce": "REINFORCE", "bohb": "BOHB", "bananas": "BANANAS-style"}

# name in reports -> column of the NB201 CSV
REPORT_COLUMNS = {
    "cifar10_valid": "cifar10_valid_acc_200ep",
    "cifar10_test": "cifar10_test_acc_200ep",
    "cifar100_test": "cifar100_test_acc_200ep",
    "imagenet16_120_test": "imagenet16_120_test_acc_200ep",
}
HEADERS = {"cifar10_valid": "C10 valid", "cifar10_test": "C10 test", "cifar100_test": "C100 test",
           "imagenet16_120_test": "IN16-120 test"}

# NB201 paper (Dong & Yang, ICLR 2020) Table 5, as in ADL's NAS-Bench-201 README: mean, std over 500 runs
PUBLISHED: dict[str, dict[str, tuple[float, float]]] = {
    "rea": {"cifar10_valid": (91.19, 0.31), "cifar10_test": (93.92, 0.30), "cifar100_valid": (71.81, 1.12),
            "cifar100_test": (71.84, 0.99), "imagenet16_120_valid": (45.15, 0.89),
            "imagenet16_120_test": (45.54, 1.03)},
    "rs": {"cifar10_valid": (90.93, 0.36), "cifar10_test": (93.70, 0.36), "cifar100_valid": (70.93, 1.09),
           "cifar100_test": (71.04, 1.07), "imagenet16_120_valid": (44.45, 1.10),
           "imagenet16_120_test": (44.57, 1.25)},
    "reinforce": {"cifar10_valid": (91.09, 0.37), "cifar10_test": (93.85, 0.37), "cifar100_valid": (71.61, 1.12),
                  "cifar100_test": (71.71, 1.09), "imagenet16_120_valid": (45.05, 1.02),
                  "imagenet16_120_test": (45.24, 1.18)},
    "bohb": {"cifar10_valid": (90.82, 0.53), "cifar10_test": (93.61, 0.52), "cifar100_valid": (70.74, 1.29),
             "cifar100_test": (70.85, 1.28), "imagenet16_120_valid": (44.26, 1.36),
             "imagenet16_120_test": (44.42, 1.49)},
    "optimal": {"cifar10_valid": (91.61, 0.0), "cifar10_test": (94.37, 0.0), "cifar100_valid": (73.49, 0.0),
                "cifar100_test": (73.51, 0.0), "imagenet16_120_valid": (46.77, 0.0),
                "imagenet16_120_test": (47.31, 0.0)},
}

# hyperparameters of the NB201 runs (ADL scripts-search/algos/*.sh; REINFORCE lr: NATS-Bench's 0.01)
DEFAULT_HYPER = {
    "rs": {},
    "rea": {"population_size": 10, "sample_size": 3},
    "reinforce": {"lr": 0.01, "ema_momentum": 0.9},
    "bohb": {"eta": 3, "min_budget": 12, "max_budget": 200, "num_samples": 4, "random_fraction": 0.0,
             "bandwidth_factor": 3, "min_bandwidth": 0.3, "max_iterations": 50},
    "bananas": {"predictor": "mlp", "initial": 10, "candidates": 100, "parents": 10},  # nasflow.search.predictor_guided
}


@dataclass(frozen=True)
class Scenario:
    """A cost model and a budget multiplier; the protocol is Scenario("auto", 1.0): the recorded times when
    the table has them, else the affine cost model."""

    cost_model: str = "auto"
    budget_scale: float = 1.0

    def __post_init__(self):
        if self.cost_model not in TABLE_COST_KINDS:
            raise ParamsError(f"scenario: unknown cost_model {self.cost_model!r} "
                              f"(known: {', '.join(TABLE_COST_KINDS)})")
        if not self.budget_scale > 0:
            raise ParamsError(f"scenario: budget_scale must be > 0, got {self.budget_scale!r}")

    @property
    def name(self) -> str:
        return f"{self.cost_model}x{self.budget_scale:g}"


PROTOCOL = Scenario()
DEFAULT_SCENARIOS = (PROTOCOL, Scenario("affine", 0.5), Scenario("affine", 2.0), Scenario("constant", 1.0),
                     Scenario("flops", 1.0))


# ------------------------------------------------------------------------------------------------ running

RELEASE_SEARCH_COLUMN = "cifar10_valid_valid_acc_12ep_s111"  # ADL's signal: cifar10-valid x-valid, 12 epochs


def search_column_for(table: str) -> str:
    """The cheap signal to search by: with a table built from the release, the protocol's own (the 12-epoch
    cifar10-valid validation accuracy of one seed, 111; ADL draws one of 111/777 per query), else SEARCH_COLUMN."""
    from nasflow import bench

    return RELEASE_SEARCH_COLUMN if bench.has_column(table, RELEASE_SEARCH_COLUMN) else SEARCH_COLUMN


_ESTIMATORS: dict[tuple, TableEstimator] = {}


def _estimator(table: str, column: str, cost_model: str) -> TableEstimator:
    key = (table, column, cost_model)
    if key not in _ESTIMATORS:
        kind = cost_model if cost_model in ("auto", "recorded") else CostModel(cost_model)
        _ESTIMATORS[key] = TableEstimator(table, column, kind)
    return _ESTIMATORS[key]


def _run_chunk(table: str, column: str, scenario: Scenario, budget_seconds: float, strategy: str, hyper: dict,
               seeds: list[int]) -> list[dict]:
    est = _estimator(table, column, scenario.cost_model)
    reports = {name: est.column_array(col) for name, col in REPORT_COLUMNS.items()}
    run = get_strategy(strategy)
    budget = Budget(seconds=budget_seconds * scenario.budget_scale)
    rows = []
    for seed in seeds:
        res = run(nb201, est, budget, seed, **hyper)
        i = est.index(res.best_arch)
        rows.append({"scenario": scenario.name, "cost_model": est.cost_source,
                     "budget_seconds": budget.seconds, "strategy": strategy, "seed": seed,
                     "n_evals": res.n_evals, "spent_seconds": round(res.spent, 3), "best_index": i,
                     "best_arch": res.best_arch, "search_score": res.best_score,
                     **{name: float(values[i]) for name, values in reports.items()}})
    return rows


def run_benchmark(table: str, *, strategies: Iterable[str] = STRATEGIES, seeds: int = 500, first_seed: int = 0,
                  max_seeds: dict[str, int] | None = None, scenarios: Iterable[Scenario] = (PROTOCOL,),
                  budget_seconds: float = BUDGET_SECONDS, search_column: str = SEARCH_COLUMN,
                  hyper: dict[str, dict] | None = None, workers: int = 1,
                  progress: Callable[[str], None] | None = None) -> list[dict]:
    """One row per (scenario, strategy, seed): the pick, its search score and its 200-epoch accuracies.

    seeds: runs per strategy (seeds first_seed, first_seed+1, ...; the same seeds for every strategy);
    max_seeds caps a strategy (e.g. {"bohb": 100}: BOHB takes ~1.4 s per run, the others ~1-4 ms).
    hyper: per-strategy hyperparameters over DEFAULT_HYPER. workers > 1 runs chunks in that many processes
    (results do not depend on it; it pays off for BOHB, whose runs mostly wait on its RPC layer).
    """
    strategies, scenarios = list(strategies), list(scenarios)
    for name in strategies:
        get_strategy(name)  # unknown names fail before any work
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ParamsError(f"seeds must be a positive integer, got {seeds!r}")
    if "bohb" in strategies:
        from nasflow.search.bohb import available

        ok, why = available()
        if not ok:
            raise ParamsError(f"strategy 'bohb': {why} (or leave bohb out of the strategies)")
    for name, kwargs in (hyper or {}).items():
        unknown = set(kwargs) - set(DEFAULT_HYPER.get(name, {}))
        if name not in DEFAULT_HYPER or unknown:
            raise ParamsError(f"hyperparameters of {name!r}: unknown {sorted(unknown) or name!r} "
                              f"(known: {', '.join(DEFAULT_HYPER.get(name, DEFAULT_HYPER))})")
    hyper = {name: {**DEFAULT_HYPER.get(name, {}), **(hyper or {}).get(name, {})} for name in strategies}
    _estimator(str(table), search_column, scenarios[0].cost_model)  # a bad table/column fails here, once
    jobs = []
    for scenario in scenarios:
        for name in strategies:
            n = min(seeds, (max_seeds or {}).get(name, seeds))
            all_seeds = list(range(first_seed, first_seed + n))
            size = max(1, math.ceil(n / max(1, workers * 4))) if workers > 1 else n
            for k in range(0, n, size):
                jobs.append((str(table), search_column, scenario, budget_seconds, name, hyper[name],
                             all_seeds[k:k + size]))
    rows: list[dict] = []
    left = defaultdict(int)
    for job in jobs:
        left[(job[2].name, job[4])] += len(job[6])

    def collect(job, chunk):
        rows.extend(chunk)
        key = (job[2].name, job[4])
        left[key] -= len(chunk)
        if progress and left[key] == 0:
            done = [r for r in rows if (r["scenario"], r["strategy"]) == key]
            mean = np.mean([r["cifar10_test"] for r in done])
            progress(f"{key[0]} {key[1]}: {len(done)} runs, CIFAR-10 test {mean:.2f}")

    if workers <= 1:
        for job in jobs:
            collect(job, _run_chunk(*job))
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
            for job, chunk in zip(jobs, pool.map(_run_chunk, *zip(*jobs))):
                collect(job, chunk)
    return rows


# ------------------------------------------------------------------------------------------------ summaries


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and std (ddof 0) per (scenario, strategy) of every report column, the queries and the seconds."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["scenario"], row["strategy"])].append(row)
    out = []
    for (scenario, strategy), rs in groups.items():
        entry = {"scenario": scenario, "strategy": strategy, "runs": len(rs),
                 "budget_seconds": rs[0]["budget_seconds"], "cost_model": rs[0]["cost_model"]}
        for key in ["n_evals", "spent_seconds", *REPORT_COLUMNS]:
            values = np.array([r[key] for r in rs], dtype=np.float64)
            entry[key] = {"mean": float(values.mean()), "std": float(values.std())}
        out.append(entry)
    return out


def _pm(stat) -> str:
    if isinstance(stat, dict):
        stat = (stat["mean"], stat["std"])
    return f"{stat[0]:.2f}±{stat[1]:.2f}"


def format_report(summary: list[dict], published: dict = PUBLISHED) -> str:
    """Markdown: the protocol table beside the published rows, then each strategy across the scenarios."""
    by = {(s["scenario"], s["strategy"]): s for s in summary}
    scenarios = list(dict.fromkeys(s["scenario"] for s in summary))
    present = list(dict.fromkeys(s["strategy"] for s in summary))
    strategies = [k for k in STRATEGIES if k in present] + [k for k in present if k not in STRATEGIES]
    protocol = PROTOCOL.name if PROTOCOL.name in scenarios else scenarios[0]
    cols = list(REPORT_COLUMNS)
    first = by[(protocol, strategies[0])]
    costs = ("the release's recorded training time of each queried cell" if first["cost_model"] == "recorded"
             else f"the {first['cost_model']} cost model (the table has no training times)")
    lines = [f"NB201 table baselines, scenario {protocol} (budget {first['budget_seconds']:.0f} s; each query "
             f"costs {costs}), ours vs NB201 paper Table 5", "",
             "| method | source | runs | queries | " + " | ".join(HEADERS[c] for c in cols) + " |",
             "|---|---|---:|---:|" + "---:|" * len(cols)]
    for k in strategies:
        pub = published.get(k)
        if pub:
            lines.append(f"| {LABELS.get(k, k)} | NB201 paper | 500 | | "
                         + " | ".join(_pm(pub[c]) if c in pub else "" for c in cols) + " |")
        s = by.get((protocol, k))
        if s:
            lines.append(f"| {LABELS.get(k, k)} | nasflow | {s['runs']} | {s['n_evals']['mean']:.1f} | "
                         + " | ".join(_pm(s[c]) for c in cols) + " |")
    if "optimal" in published:
        lines.append("| optimal | table | | | " + " | ".join(f"{published['optimal'][c][0]:.2f}" for c in cols) + " |")
    if len(scenarios) > 1:
        lines += ["", "Sensitivity to the cost model: CIFAR-10 test (mean±std), mean queries in brackets", "",
                  "| method | " + " | ".join(scenarios) + " |", "|---|" + "---:|" * len(scenarios)]
        for k in strategies:
            cells = []
            for sc in scenarios:
                s = by.get((sc, k))
                cells.append(f"{_pm(s['cifar10_test'])} [{s['n_evals']['mean']:.0f}]" if s else "")
            lines.append(f"| {LABELS.get(k, k)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def scenario_from_dict(d: dict) -> Scenario:
    unknown = set(d) - {"cost_model", "budget_scale"}
    if unknown:
        raise ParamsError(f"scenario: unknown keys {sorted(unknown)} (use cost_model, budget_scale)")
    return Scenario(**d)


__all__ = ["BUDGET_SECONDS", "DEFAULT_HYPER", "DEFAULT_SCENARIOS", "PROTOCOL", "PUBLISHED", "REPORT_COLUMNS",
           "Scenario", "format_report", "run_benchmark", "scenario_from_dict", "summarize"]
