"""DAG node `correlate`: one table of every estimator's score per arch (results/estimates.csv) and one row
of rank correlations per estimator against the ground truth (results/correlation.csv).

A supernet estimator's cost per arch is its scoring time plus the supernet's training time shared out over
the sampled archs. When the ground truth is a table and every cell was scored by angle, a row
`<angle column>_all_archs` gives the angle's correlation over the whole space.
"""
import csv

from nasflow.analysis.correlation import correlation_row
from nasflow.errors import CheckpointError
from stages.common import atomic_path, load_params, main_guard, parser, read_json, supernet_estimators

CORRELATION_COLUMNS = ["estimator", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
                       "pearson_r", "top10_overlap", "seconds_per_arch"]


def _by_id(path) -> tuple[dict, dict]:
    doc = read_json(path)
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
    truth, _ = _by_id(args.ground_truth)
    ids = sorted(truth)

    # estimator column -> ({id: score}, {id: seconds})
    estimators: dict[str, tuple[dict, dict]] = {}
    for name in params["proxy"]["settings"]:
        res, _ = _by_id(f"{args.proxy_dir}/{name}.json")
        estimators[f"proxy_{name}"] = ({i: r["final_acc"] for i, r in res.items()},
                                       {i: r["seconds"] for i, r in res.items()})
    sampled = "sampled" in params["supernet"]["arch_sets"]
    for column, labels, ind in supernet_estimators(params) if sampled else []:
        res, doc = _by_id(f"{args.scores_dir}/{labels}-sampled.json")
        share = (doc.get("supernet_train_seconds") or 0.0) / max(len(res), 1)
        estimators[column] = ({i: r[ind] for i, r in res.items()},
                              {i: r[f"{ind}_seconds"] + share for i, r in res.items()})
    for name, (scores, _) in estimators.items():
        if sorted(scores) != ids:
            raise CheckpointError(f"{name} scored a different set of archs than the ground truth")

    columns = ["arch", *estimators, "ground_truth", *(f"{n}_seconds" for n in estimators), "ground_truth_seconds"]
    with atomic_path(args.estimates) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i in ids:
            w.writerow([truth[i]["arch"], *(estimators[n][0][i] for n in estimators), truth[i]["final_acc"],
                        *(round(estimators[n][1][i], 4) for n in estimators), round(truth[i]["seconds"], 3)])

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
            res, doc = _by_id(f"{args.scores_dir}/{labels}-all.json")
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
