"""The predictor protocol on a ground-truth table: τ per predictor and training-set size, and its wall time.

    python benchmarks/predictors.py --table TABLE [--column cifar10_valid_acc_200ep] [--trials 20]
        [--sizes 5,8,14,24,42,71,121,205,347,589,1000] [--predictors lgb,rf,gp,ngb,mlp,gcn] [--workers 2]
        [--hybrid cifar10_test_acc_12ep_one_seed] [--out benchmarks/out/predictors.json]

Encoding-only predictors by default. `--hybrid COL` adds a second run whose predictors also read COL of the same
table as a feature (e.g. the 12-epoch accuracy: a short-budget learning-curve feature, White et al.'s OMNI
idea) -- a stand-in where zero-cost scores of the whole pool are not at hand. Jobs (predictor x size x trial)
are spread over `--workers` processes; results do not depend on it (seeded splits and regressors).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from nasflow import bench  # noqa: E402
from nasflow.estimators import predictors as pred  # noqa: E402
from nasflow.spaces import nb201  # noqa: E402


def _chunk(args):
    table, column, hybrid, jobs, test_size, seed = args
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)  # one core per worker: BLAS threads of two workers on two cores would contend
    values = bench.load_table(table, column)
    archs = nb201.enumerate_all()
    feature = None if hybrid is None else bench.load_table(table, hybrid)
    extra = None if feature is None else np.array([[feature[a]] for a in archs])
    return pred.run_protocol(nb201, archs, [values[a] for a in archs], test_size=test_size, seed=seed,
                             extra=extra, jobs=jobs, predictors=sorted({j[0] for j in jobs}),
                             sizes=sorted({j[1] for j in jobs}))


def run(table, column, hybrid, names, sizes, trials, test_size, seed, workers):
    jobs = [(p, n, t) for p in names for n in sizes for t in range(trials)]
    chunks = [jobs[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers) as pool:
        rows = [r for part in pool.map(_chunk, [(table, column, hybrid, c, test_size, seed) for c in chunks if c])
                for r in part]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", default=str(ROOT.parent / "shared" / "data" / "nb201-accuracies.csv"))
    ap.add_argument("--column", default="cifar10_valid_acc_200ep")
    ap.add_argument("--predictors", default=",".join(pred.PREDICTORS))
    ap.add_argument("--sizes", default=",".join(map(str, pred.DEFAULT_SIZES)))
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--test-size", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--hybrid", default=None, metavar="COL")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    names, sizes = args.predictors.split(","), [int(s) for s in args.sizes.split(",")]
    out = {}
    for label, hybrid in [("encoding", None)] + ([("hybrid", args.hybrid)] if args.hybrid else []):
        start = time.perf_counter()
        rows = run(args.table, args.column, hybrid, names, sizes, args.trials, args.test_size, args.seed,
                   args.workers)
        wall = time.perf_counter() - start
        summary = pred.summarize(sorted(rows, key=lambda r: (names.index(r["predictor"]), r["train_size"],
                                                              r["trial"])))
        print(f"{label} ({hybrid or 'the encoding only'}): {len(rows)} fits in {wall:.0f} s wall, "
              f"{args.workers} workers")
        for s in summary:
            print(f"  {s['predictor']:<5} n={s['train_size']:<5} τ {s['kendall_tau']:.3f}±{s['kendall_tau_std']:.3f}"
                  f"  ρ {s['spearman_rho']:.3f}  p@10% {s['precision_at_10']:.2f}  regret {s['regret']:.2f}"
                  f"  fit {s['fit_seconds']:.2f} s")
        out[label] = {"wall_seconds": wall, "summary": summary, "hybrid": hybrid}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
