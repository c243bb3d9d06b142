"""DAG node `report`: results/report.xlsx, results/plots/*.png and results/metrics.json (DVC metrics)."""
import csv
import math
import shutil
from pathlib import Path

from nasflow.analysis import report
from stages.common import atomic_path, load_params, main_guard, parser, provenance, read_json, write_json


def _read_csv(path) -> list[dict]:
    def num(v):
        try:
            return float(v)
        except ValueError:
            return v

    with open(path, newline="") as f:
        return [{k: num(v) for k, v in row.items()} for row in csv.DictReader(f)]


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--estimates", default="results/estimates.csv")
    p.add_argument("--correlation", default="results/correlation.csv")
    p.add_argument("--found", default="results/found.json")
    p.add_argument("--search-dir", default="results/search")
    p.add_argument("--xlsx", default="results/report.xlsx")
    p.add_argument("--plots", default="results/plots")
    p.add_argument("--metrics", default="results/metrics.json")
    args = p.parse_args()
    params = load_params(args.params)
    estimates, correlation = _read_csv(args.estimates), _read_csv(args.correlation)
    gt = params["ground_truth"]
    gt_label = gt["setting"] if gt["source"] == "retrain" else f"table {gt['column']}"
    found = read_json(args.found)["results"]
    about = provenance(params, inputs=[args.estimates, args.correlation, args.found])

    with atomic_path(args.xlsx) as tmp:
        report.write_workbook(tmp, settings={n: params["settings"][n] for n in params["proxy"]["settings"]},
                              estimates=estimates, correlation=correlation, ground_truth_label=gt_label, about=about,
                              found=found)

    # build the plot folder beside the target and swap it in whole
    plots = Path(args.plots)
    tmp_dir = plots.with_name(f".{plots.name}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    truth = [r["ground_truth"] for r in estimates]
    for c in correlation:
        if c["estimator"] not in estimates[0]:  # e.g. angle over all archs: not a column of estimates.csv
            continue
        report.plot_estimate_vs_truth(tmp_dir / f"{c['estimator']}_vs_ground_truth.png", c["estimator"],
                                   [r[c["estimator"]] for r in estimates], truth, c)
    report.plot_correlation_vs_cost(tmp_dir / "correlation_vs_cost.png", correlation)
    cfg = params["search"]
    searches = [read_json(f"{args.search_dir}/{s}_{e}.json") for s in cfg["strategies"] for e in cfg["estimators"]]
    if searches:
        report.plot_best_so_far(tmp_dir / "search_best_so_far.png", searches)
    if params["differentiable"]["methods"]:
        from nasflow.spaces import get_space

        space = get_space(params["space"])
        if space.NAME == "nb201":
            edges, cells = [f"{src}→{dst}" for dst, src in space.EDGES], ()
        else:
            edges, cells = [f"{inp}→{node}" for node, inp in space.EDGE_INPUTS], space.CELLS
        for method in params["differentiable"]["methods"]:
            report.plot_alphas(tmp_dir / f"alphas_{method}.png", read_json(f"{args.search_dir}/{method}.json"),
                               space.OPS, edges, cells)
    shutil.rmtree(plots, ignore_errors=True)
    tmp_dir.rename(plots)

    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    write_json(args.metrics, {c["estimator"]: {k: clean(c[k]) for k in ("kendall_tau", "spearman_rho", "pearson_r")}
                              for c in correlation})


if __name__ == "__main__":
    main()
