"""DAG node `predictors`: the model-based predictors of `predictors.names` (nasflow.estimators.predictors) trained
on n cells of the ground-truth table and scored on held-out ones, and the hybrids of `predictors.hybrids`
(`<predictor>_<feature set>`: the encoding plus the set's zero-cost scores / tabular values), one shard of the
predictor x training-set size x trial jobs (`--shard i/n`: every n-th job; results do not depend on n), with both
costs a researcher pays:

- initialisation = evaluating the n training cells (their recorded training time of the ground truth's dataset
  and schedule when the table has it, else NB201's cost model scaled to the schedule's epochs: `init_cost_source`)
  + a hybrid's features of those cells + the fit's seconds;
- query = predicting one cell + (a hybrid) computing its features (`feature_seconds`, the test cells' mean).

The encoding-only predictors draw their cells from the whole table (`pool`: its size); a hybrid from the cells the
zero_cost stage scored beyond the study's own (arch set `all` if scored, else `extra`), the only cells with its
features.

    python -m stages.predictors --params params.yaml --shard 0/4 --out results/predictors/shard-0-of-4.json
"""
import time
from pathlib import Path

from stages.artifacts import read_results, write_json
from stages.devices import configure_torch
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params
from stages.provenance import provenance


@main_guard
def main():
    import numpy as np

    from nasflow import bench
    from nasflow.estimators import predictors as pred
    from nasflow.estimators.table import ground_truth_costs
    from nasflow.spaces import nb201
    from stages.estimation import ResultsContext

    p = parser(__doc__)
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--zero-cost-dir", default="results/zero_cost", help="where the hybrids' zero-cost scores lie")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch({**params, "threads": 1})  # the rule reserves one core per shard (torch for the GCN, BLAS)
    cfg, gt = params["predictors"], params["ground_truth"]
    i, n = args.shard
    doc = {"kind": "predictors", "shard": list(args.shard), "config": cfg, "results": []}
    start = time.time()
    names = cfg["names"] + cfg["hybrids"]
    if names:
        table = bench.load_table(gt["path"], gt["column"])
        ctx = ResultsContext(params, zero_cost_file=Path(args.zero_cost_dir) / "sampled.json")
        jobs = [(p_, size, t) for p_ in names for size in cfg["train_sizes"] for t in range(cfg["trials"])]
        mine = [(k, job) for k, job in enumerate(jobs) if k % n == i]
        pools: dict = {}
        for name in names:
            mine_here = [(k, job) for k, job in mine if job[0] == name]
            if not mine_here:
                continue
            base, _, fset = name.partition("_")
            if fset not in pools:  # the cells and features of this kind of row, once per shard
                if fset:
                    pool_file = ctx.zero_cost_pool()
                    archs = [r["arch"] for r in read_results(pool_file, keys=("arch",))["results"] if r["arch"] in table]
                    extra, feature_cost = ctx.features(cfg["features"][fset], archs, pool_file)
                else:
                    archs = [a for a in nb201.enumerate_all() if a in table]
                    extra, feature_cost = None, np.zeros(len(archs))
                costs, source = ground_truth_costs(gt["path"], gt["column"], archs)
                pools[fset] = (archs, np.array([table[a] for a in archs]), extra, feature_cost, costs, source)
            archs, y, extra, feature_cost, costs, source = pools[fset]
            rows = pred.run_protocol(nb201, archs, y, predictors=[base], sizes=cfg["train_sizes"],
                                     test_size=cfg["test_size"], trials=cfg["trials"], seed=params["seed"],
                                     encoding=cfg["encoding"], extra=extra,
                                     jobs=[(base, size, t) for _, (_, size, t) in mine_here])
            for (k, (_, size, trial)), row in zip(mine_here, rows):
                train, test = pred.splits(len(archs), size, cfg["test_size"], trial, params["seed"])
                row.update(predictor=name, id=k, pool=len(archs), feature_seconds=float(feature_cost[test].mean()),
                           init_seconds=float(costs[train].sum() + feature_cost[train].sum()) + row["fit_seconds"],
                           init_cost_source=source)
                row["query_seconds"] += row["feature_seconds"]
                doc["results"].append(row)
        doc["results"].sort(key=lambda r: r["id"])
        doc["column"] = gt["column"]
    doc["seconds"] = time.time() - start
    doc["provenance"] = provenance(params)
    write_json(args.out, doc)


if __name__ == "__main__":
    main()
