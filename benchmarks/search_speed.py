"""Search speed on the NB201 table: 500 seeds of each strategy under the 12,000 s simulated budget.

Two estimators answer the same queries with the same numbers:

  table   nasflow.estimators.table.TableEstimator: arch string -> benchmark index once per query (one dict
          lookup), scores and simulated costs precomputed for all 15,625 cells as plain floats.
  naive   a {arch: accuracy} dict from nasflow.bench.load_table plus the cost model evaluated per query
          (FLOPs from the arch string, then the affine cost) -- what a first version would do.

Reports wall seconds for all seeds, ms per run, and queries per second (best of --repeats, since the
machine may be shared). BOHB is left out: its ~1.4 s per run is hpbandster's RPC round trips, not queries.

    python benchmarks/search_speed.py [--table ../shared/data/nb201-accuracies.csv] [--seeds 500]

Writes a markdown table to stdout and JSON to benchmarks/out/search_speed.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow import bench  # noqa: E402
from nasflow.estimators.table import SEARCH_COLUMN, CostModel, TableEstimator  # noqa: E402
from nasflow.search import Budget, get_strategy  # noqa: E402
from nasflow.spaces import nb201  # noqa: E402


def naive_estimator(table: str, column: str):
    values, model = bench.load_table(table, column), CostModel()
    return lambda arch: (values[arch], model.cost(arch))


def time_strategy(name: str, estimator, seeds: int, repeats: int) -> dict:
    run, budget = get_strategy(name), Budget(seconds=12_000)
    best, queries, picks = float("inf"), 0, []
    for _ in range(repeats):
        start, queries, picks = time.perf_counter(), 0, []
        for seed in range(seeds):
            res = run(nb201, estimator, budget, seed)
            queries += res.n_evals
            picks.append(res.best_arch)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "ms_per_run": 1000 * best / seeds, "queries": queries,
            "queries_per_s": queries / best, "picks": picks}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "nb201-accuracies.csv"))
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--strategies", default="rea,rs,reinforce")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "search_speed.json"))
    args = ap.parse_args()

    start = time.perf_counter()
    table = TableEstimator(args.table, SEARCH_COLUMN)
    setup = time.perf_counter() - start
    naive = naive_estimator(args.table, SEARCH_COLUMN)
    rows = []
    for name in args.strategies.split(","):
        fast = time_strategy(name, table, args.seeds, args.repeats)
        slow = time_strategy(name, naive, args.seeds, args.repeats)
        assert fast.pop("picks") == slow.pop("picks"), f"{name}: the two estimators disagree"
        rows.append({"strategy": name, "table": fast, "naive": slow})

    print(f"{args.seeds} seeds per strategy, 12,000 s simulated budget, best of {args.repeats}; "
          f"TableEstimator setup {setup * 1000:.0f} ms\n")
    print("| strategy | table: s total | ms/run | queries/s | naive: s total | ms/run | speed-up |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        f, s = r["table"], r["naive"]
        print(f"| {r['strategy']} | {f['seconds']:.2f} | {f['ms_per_run']:.2f} | {f['queries_per_s']:,.0f} | "
              f"{s['seconds']:.2f} | {s['ms_per_run']:.2f} | {s['seconds'] / f['seconds']:.1f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"seeds": args.seeds, "repeats": args.repeats, "setup_seconds": setup, "rows": rows,
              "python": platform.python_version(), "host": platform.node(), "processor": platform.processor()}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


if __name__ == "__main__":
    main()
