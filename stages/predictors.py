"""DAG node `predictors`: the model-based predictors of `predictors.names` (nasflow.estimators.predictors) trained
on n cells of the ground-truth table and scored on held-out ones, one shard of the predictor x training-set size x
trial jobs (`--shard i/n`: every n-th job; results do not depend on n), with both costs a researcher pays:

- initialisation = evaluating the n training cells (their recorded training time of the ground truth's dataset
  and schedule when the table has it, else NB201's cost model scaled to the schedule's epochs: `init_cost_source`)
  + the fit's seconds;
- query = predicting one cell.

    python -m stages.predictors --params params.yaml --shard 0/4 --out results/predictors/shard-0-of-4.json
"""
import time

from stages.artifacts import write_json
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

    p = parser(__doc__)
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    cfg, gt = params["predictors"], params["ground_truth"]
    i, n = args.shard
    doc = {"kind": "predictors", "shard": list(args.shard), "config": cfg, "results": []}
    start = time.time()
    if cfg["names"]:
        table = bench.load_table(gt["path"], gt["column"])
        archs = [a for a in nb201.enumerate_all() if a in table]
        y = np.array([table[a] for a in archs])
        costs, source = ground_truth_costs(gt["path"], gt["column"], archs)
        jobs = [(p_, size, t) for p_ in cfg["names"] for size in cfg["train_sizes"] for t in range(cfg["trials"])]
        mine = [(k, job) for k, job in enumerate(jobs) if k % n == i]
        rows = pred.run_protocol(nb201, archs, y, predictors=cfg["names"], sizes=cfg["train_sizes"],
                                 test_size=cfg["test_size"], trials=cfg["trials"], seed=params["seed"],
                                 encoding=cfg["encoding"], jobs=[job for _, job in mine])
        for (k, (_, size, trial)), row in zip(mine, rows):
            train, _ = pred.splits(len(archs), size, cfg["test_size"], trial, params["seed"])
            row.update(id=k, init_seconds=float(costs[train].sum()) + row["fit_seconds"], init_cost_source=source)
        doc["results"] = rows
        doc["column"] = gt["column"]
    doc["seconds"] = time.time() - start
    doc["provenance"] = provenance(params)
    write_json(args.out, doc)


if __name__ == "__main__":
    main()
