"""DAG node `correlate`: one table of every estimator's score per arch (results/estimates.csv) and one row
of rank correlations per estimator against the ground truth (results/correlation.csv)."""
import csv

from nasflow.analysis.correlation import correlation_row
from nasflow.errors import CheckpointError
from stages.common import atomic_path, load_params, main_guard, parser, read_json

CORRELATION_COLUMNS = ["estimator", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
                       "pearson_r", "top10_overlap", "seconds_per_arch"]


def _scores(path) -> dict[int, dict]:
    return {r["id"]: r for r in read_json(path)["results"]}


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--proxy-dir", default="results/proxy", help="where <setting>.json of each proxy setting lies")
    p.add_argument("--ground-truth", required=True)
    p.add_argument("--estimates", default="results/estimates.csv")
    p.add_argument("--correlation", default="results/correlation.csv")
    args = p.parse_args()
    params = load_params(args.params)

    truth = _scores(args.ground_truth)
    ids = sorted(truth)
    estimators = {}  # column name -> {id: result}
    for name in params["proxy"]["settings"]:
        estimators[f"proxy_{name}"] = _scores(f"{args.proxy_dir}/{name}.json")
    for name, scores in estimators.items():
        if sorted(scores) != ids:
            raise CheckpointError(f"{name} scored a different set of archs than the ground truth")

    columns = ["arch", *estimators, "ground_truth", *(f"{n}_seconds" for n in estimators), "ground_truth_seconds"]
    with atomic_path(args.estimates) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for i in ids:
            w.writerow([truth[i]["arch"], *(estimators[n][i]["final_acc"] for n in estimators), truth[i]["final_acc"],
                        *(round(estimators[n][i]["seconds"], 3) for n in estimators), round(truth[i]["seconds"], 3)])

    gt = [truth[i]["final_acc"] for i in ids]
    with atomic_path(args.correlation) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, CORRELATION_COLUMNS)
        w.writeheader()
        for n, scores in estimators.items():
            w.writerow(correlation_row(n, [scores[i]["final_acc"] for i in ids], gt,
                                       [scores[i]["seconds"] for i in ids],
                                       n_boot=params["report"]["bootstrap"], seed=params["seed"]))


if __name__ == "__main__":
    main()
