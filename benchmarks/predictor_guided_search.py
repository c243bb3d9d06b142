"""The predictor-guided search (BANANAS-style) in benchmark mode, beside REA and RS on the same table and budget.

Issue 25's target: under NB201's benchmark protocol (12,000 s of simulated 12-epoch queries) the predictor-guided
search must beat REA's published mean (93.92 on CIFAR-10 test) or say by how much it does not. REA and RS run
`--seeds` seeds, the predictor-guided search `--bananas-seeds` per predictor (an MLP-ensemble fit per query makes
a run ~1 min on one core, so fewer seeds: their standard error is in the output).

    python benchmarks/predictor_guided_search.py [--table TABLE] [--seeds 500] [--bananas-seeds 20]
        [--predictors mlp,lgb] [--workers 2] [--out benchmarks/out/predictor_guided_search.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from nasflow.search import bench_mode  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "nb201-accuracies.csv"))
    ap.add_argument("--seeds", type=int, default=500)
    ap.add_argument("--bananas-seeds", type=int, default=20)
    ap.add_argument("--predictors", default="mlp,lgb")
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "predictor_guided_search.json"))
    args = ap.parse_args()
    rows, walls = [], {}
    start = time.perf_counter()
    rows += bench_mode.run_benchmark(args.table, strategies=["rea", "rs"], seeds=args.seeds, workers=args.workers)
    walls["rea+rs"] = time.perf_counter() - start
    for predictor in args.predictors.split(","):
        start = time.perf_counter()
        part = bench_mode.run_benchmark(args.table, strategies=["bananas"], seeds=args.bananas_seeds,
                                        hyper={"bananas": {"predictor": predictor}}, workers=args.workers)
        walls[f"bananas_{predictor}"] = time.perf_counter() - start
        for r in part:  # one strategy name per predictor, so the report keeps them apart
            r["strategy"] = f"bananas_{predictor}"
        rows += part
    summary = bench_mode.summarize(rows)
    print(bench_mode.format_report(summary))
    rea = bench_mode.PUBLISHED["rea"]["cifar10_test"][0]
    for s in summary:
        if s["strategy"].startswith("bananas"):
            test = np.array([r["cifar10_test"] for r in rows if r["strategy"] == s["strategy"]])
            sem = test.std(ddof=1) / np.sqrt(len(test)) if len(test) > 1 else float("nan")
            print(f"{s['strategy']}: CIFAR-10 test {test.mean():.2f} ± {sem:.2f} (standard error, {len(test)} runs) "
                  f"vs REA published {rea:.2f}: {test.mean() - rea:+.2f}")
    print("wall seconds:", {k: round(v) for k, v in walls.items()}, "load:", os.getloadavg())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"summary": summary, "walls": walls, "rows": rows}, indent=1, default=float))


if __name__ == "__main__":
    main()
