"""DAG node `correlate`: one table of every estimator's score per arch (results/estimates.csv) and one row
of rank correlations per estimator against the ground truth (results/correlation.csv).

A supernet estimator's cost per arch is its scoring time plus the supernet's training time shared out over
the sampled archs. When the ground truth is a table and every cell was scored by angle, a row
`<angle column>_all_archs` gives the angle's correlation over the whole space.

A diverged training (a result with `status: diverged`, NaN accuracy) is never a score: its estimates.csv cell
is empty, the `<estimator>_status` / `ground_truth_status` columns (after the seconds columns) say `ok` or
`diverged`, and each correlation row counts only the archs where both the estimate and the ground truth are
finite (`n`).
"""
import csv
import math

from nasflow.analysis.correlation import correlation_row
from nasflow.errors import CheckpointError
from stages.common import atomic_path, load_params, main_guard, parser, read_results, supernet_estimators

CORRELATION_COLUMNS = ["estimator", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
                       "pearson_r", "top10_overlap", "seconds_per_arch"]


def _by_id(path, *keys) -> tuple[dict, dict]:
    """{id: result} and the whole document; every result checked to have an id and `keys`."""
    doc = read_results(path, keys=("id", *keys))
    return {r["id"]: r for r in doc["results"]}, doc


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--proxy-dir", default="results/proxy", help="where <setting>.json of each proxy setting lies")
    p.add_argument("--scores-dir", default="results/scores", help="where <labels>-<arch set>.json supernet scores lie")
    p.add_argument("--ground-truth", required=True)
    p.add_argument("--estimates", default="results/estimates.csv")
    p.add_argument("--correlation", default="results/correlation.csv")
    args = p.parse_args()
    params = load_params(args.params)
    truth, _ = _by_id(args.ground_truth, "arch", "final_acc", "seconds")
    ids = sorted(truth)

    # estimator column -> ({id: score}, {id: seconds}); and -> {id: status} ("ok" | "diverged")
    estimators: dict[str, tuple[dict, dict]] = {}
    statuses: dict[str, dict] = {}
    for name in params["proxy"]["settings"]:
        res, _ = _by_id(f"{args.proxy_dir}/{name}.json", "final_acc", "seconds")
        estimators[f"proxy_{name}"] = ({i: r["final_acc"] for i, r in res.items()},
                                       {i: r["seconds"] for i, r in res.items()})
        statuses[f"proxy_{name}"] = {i: r.get("status", "ok") for i, r in res.items()}
    sampled = "sampled" in params["supernet"]["arch_sets"]
    for column, labels, ind in supernet_estimators(params) if sampled else []:
        res, doc = _by_id(f"{args.scores_dir}/{labels}-sampled.json", ind, f"{ind}_seconds")
        share = (doc.get("supernet_train_seconds") or 0.0) / max(len(res), 1)
        estimators[column] = ({i: r[ind] for i, r in res.items()},
                              {i: r[f"{ind}_seconds"] + share for i, r in res.items()})
        statuses[column] = {i: r.get("status", "ok") for i, r in res.items()}
    for name, (scores, _) in estimators.items():
        if sorted(scores) != ids:
            where = f"{args.proxy_dir}/{name[len('proxy_'):]}.json" if name.startswith("proxy_") else args.scores_dir
            raise CheckpointError(f"{where}: {name} scored a different set of archs than the ground truth "
                                  f"{args.ground_truth} (rerun the stages that write them)")

    def cell(v):  # NaN (a diverged training) or None: an empty cell, never a number
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v

    columns = ["arch", *estimators, "ground_truth", *(f"{n}_seconds" for n in estimators), "ground_truth_seconds",
               *(f"{n}_status" for n in estimators), "ground_truth_status"]
    with atomic_path(args.estimates) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i in ids:
            w.writerow([truth[i]["arch"], *(cell(estimators[n][0][i]) for n in estimators), cell(truth[i]["final_acc"]),
                        *(round(estimators[n][1][i], 4) for n in estimators), round(truth[i]["seconds"], 3),
                        *(statuses[n][i] for n in estimators), truth[i].get("status", "ok")])

    gt = [truth[i]["final_acc"] for i in ids]
    opts = dict(n_boot=params["report"]["bootstrap"], seed=params["seed"])
    rows = [correlation_row(n, [scores[i] for i in ids], gt, [secs[i] for i in ids], **opts)
            for n, (scores, secs) in estimators.items()]
    gt_params = params["ground_truth"]
    if gt_params["source"] == "table" and "all" in params["supernet"]["arch_sets"]:
        from nasflow.bench import load_table

        table = load_table(gt_params["path"], gt_params["column"])
        for column, labels, ind in supernet_estimators(params):
            if ind != "angle":
                continue
            res, doc = _by_id(f"{args.scores_dir}/{labels}-all.json", "arch", "angle", "angle_seconds")
            archs = [r["arch"] for r in res.values()]
            share = (doc.get("supernet_train_seconds") or 0.0) / max(len(res), 1)
            rows.append(correlation_row(f"{column}_all_archs", [r["angle"] for r in res.values()],
                                        [table[a] for a in archs],
                                        [r["angle_seconds"] + share for r in res.values()], **opts))
    with atomic_path(args.correlation) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, CORRELATION_COLUMNS)
        w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
