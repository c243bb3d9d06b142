"""DAG node `report`: results/report.xlsx, results/plots/*.png and results/metrics.json (DVC metrics); for the HTML
report (`snakemake --report`) also plots/frontier.html (interactive), plots/correlation_table.html and
plots/frontier_table.html.

A diverged training (status `diverged`) is an empty estimates.csv cell, read as NaN: plots leave it out,
metrics.json says null for a NaN correlation, and the workbook's `diverged` sheet lists every one (estimator,
arch, epoch; read from the per-arch results that correlate read) -- "none" when there is none.

The `warnings` sheet and a box on the plot concerned flag what must not be read as a result (α that barely
moved, a supernet accuracy at chance, τ's interval including 0, too few archs; thresholds in
nasflow.analysis.report); chance = 100 / the dataset's classes (an .npz's labels are read for it)."""
import csv
import math
import shutil
from pathlib import Path

import pandas as pd

from nasflow.analysis import frontier, html, report
from nasflow.errors import CheckpointError
from stages.artifacts import atomic_path, read_results, write_json
from stages.guard import main_guard, parser
from stages.params import load_params, proxy_setting, supernet_estimators, table_path
from stages.provenance import provenance


def _read_csv(path, columns=(), nonempty=False) -> list[dict]:
    """The rows of a CSV artifact (numbers as floats); CheckpointError naming the file when it is missing, not a
    CSV, empty, ragged or lacks one of `columns`."""
    def num(v):
        if v == "":  # an empty cell: a diverged training's NaN (estimates.csv), not text
            return math.nan
        try:
            return float(v)
        except (TypeError, ValueError):
            return v

    again = "(rerun the stage that writes it)"
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            rows = [{k: num(v) for k, v in row.items()} for row in reader]
    except FileNotFoundError:
        raise CheckpointError(f"missing input file: {path}") from None
    except (csv.Error, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: corrupt CSV ({type(e).__name__}: {e}) {again}") from None
    for column in columns:
        if column not in header:
            raise CheckpointError(f"{path}: no column {column!r} {again}")
    for i, row in enumerate(rows, 2):
        if None in row or None in row.values():  # more or fewer fields than the header
            raise CheckpointError(f"{path}:{i}: {len(row) - (None in row)} fields where the header has {len(header)} "
                                  f"{again}")
    if nonempty and not rows:
        raise CheckpointError(f"{path}: no rows {again}")
    return rows


def _diverged(params: dict, proxy_dir, scores_dir, ground_truth) -> list[dict]:
    """{"estimator", "arch", "epoch"} of every diverged training behind estimates.csv, in its column order."""
    sources = [(f"proxy_{n}", f"{proxy_dir}/{n}.json") for n in params["proxy"]["settings"]]
    if "sampled" in params["supernet"]["arch_sets"]:
        sources += [(column, f"{scores_dir}/{labels}-sampled.json") for column, labels, _ in supernet_estimators(params)]
    sources.append(("ground_truth", ground_truth))
    out = []
    for name, path in sources:
        doc = read_results(path, keys=("arch",))
        for r in doc["results"]:
            if r.get("status", "ok") != "ok":  # a supernet's scores carry its epoch at the top
                out.append({"estimator": name, "arch": r["arch"],
                            "epoch": r.get("diverged_epoch", doc.get("diverged_epoch"))})
    return out


def _curves(params: dict, proxy_dir) -> pd.DataFrame:
    """Every proxy training's per-epoch curve, long format (estimator, id, epoch, train_loss, eval_acc): DVC's
    per-epoch plot (`dvc plots show`) reads it; an epoch without evaluation has an empty eval_acc."""
    rows = []
    for name in params["proxy"]["settings"]:
        for r in read_results(f"{proxy_dir}/{name}.json", keys=("arch",))["results"]:
            rows += [{"estimator": f"proxy_{name}", "id": r.get("id"), "epoch": h.get("epoch"),
                      "train_loss": h.get("train_loss"), "eval_acc": h.get("eval_acc")} for h in r.get("history", [])]
    return pd.DataFrame(rows, columns=["estimator", "id", "epoch", "train_loss", "eval_acc"])


def _budget_search(params: dict, folder, gt_label: str) -> dict | None:
    """The budget search's outputs (stages/bpe_search.py) as add_bpe_search_sheets' arguments; None when it is off."""
    if not params.get("bpe_search"):
        return None
    folder = Path(folder)
    return {
        "settings_rows": _read_csv(folder / "settings.csv", ["setting", "round", "kendall_tau", "spearman_rho",
                                                             "seconds_per_arch"], nonempty=True),
        "accuracies": _read_csv(folder / "accuracies.csv", ["arch", "setting", "accuracy", "ground_truth"]),
        "importance": _read_csv(folder / "importance.csv", ["round", "hyperparameter", "importance", "importance_std"]),
        "best": read_results(folder / "best.json", rows=None, top=("setting", "full")),
        "named": {n: s for n, s in params["settings"].items() if n in params["proxy"]["settings"]},
        "ground_truth_label": gt_label,
    }


def _num_classes(data: dict) -> int | None:
    """The dataset's number of classes (chance level = 100 / it) without loading the images; None when the
    .npz cannot be read here (the chance-level warning is then left out)."""
    known = {"digits": 10, "cifar10": 10, "cifar10-valid": 10, "cifar100": 100, "imagenet16-120": 120}
    if data["dataset"] in known:
        return known[data["dataset"]]
    try:
        import numpy as np

        with np.load(data["path"], allow_pickle=False) as z:
            return int(max(int(z["y_train"].max()), int(z["y_test"].max())) + 1)
    except Exception:  # a missing or unreadable file: the training stages have said so already
        return None


def _frontier(correlation_csv, ground_truth_column):
    """The frontier table (nasflow.analysis.frontier) of correlation.csv, each estimator's family from the registry."""
    from nasflow.estimators.registry import family_of

    table = pd.read_csv(correlation_csv)
    families = {frontier.base_name(e): family_of(e) for e in table["estimator"]}
    return frontier.frontier_table(table, families, ground_truth_column)


def _predictor_results(params: dict, path: str) -> list[dict]:
    """The predictors stage's rows, when it ran (predictors.names)."""
    if not (params["predictors"]["names"] or params["predictors"]["hybrids"]) or not Path(path).is_file():
        return []
    return read_results(path, keys=("predictor", "train_size", "trial", "kendall_tau"), rows="results")["results"]


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
    p.add_argument("--proxy-dir", default="results/proxy", help="per-arch proxy results (for the diverged sheet)")
    p.add_argument("--scores-dir", default="results/scores", help="supernet scores (for the diverged sheet)")
    p.add_argument("--ground-truth", default="results/ground_truth.json")
    p.add_argument("--bpe-search-dir", default="results/bpe_search", help="the budget search's outputs (when on)")
    p.add_argument("--predictors", default="results/predictors.json", help="the predictors stage's output (when on)")
    args = p.parse_args()
    params = load_params(args.params)
    # every input is read and checked before anything is written
    proxies = [f"proxy_{n}" for n in params["proxy"]["settings"]]
    estimates = _read_csv(args.estimates, ["arch", "ground_truth", *proxies], nonempty=True)
    correlation = _read_csv(args.correlation, ["estimator", "kendall_tau", "kendall_tau_low", "kendall_tau_high",
                                               "spearman_rho", "pearson_r", "seconds_per_arch"])
    missing = [n for n in proxies if n not in {c["estimator"] for c in correlation}]
    if missing:
        raise CheckpointError(f"{args.correlation}: no row for {', '.join(missing)} (rerun correlate)")
    gt = params["ground_truth"]
    gt_label = gt["setting"] if gt["source"] == "retrain" else f"table {gt['column']}"
    # a found `arch` is null when its search has no pick (it diverged): not checked as a string
    found = read_results(args.found, keys=("search", "method", "labels", "indicator", "estimator",
                                           "search_score", "ground_truth", "search_seconds",
                                           "supernet_train_seconds"))["results"]
    cfg = params["search"]
    searches = [read_results(f"{args.search_dir}/{s}_{e}.json", ("elapsed", "score"), top=("estimator", "method"),
                             rows="history") for s in cfg["strategies"] for e in cfg["estimators"]]
    alphas = {m: read_results(f"{args.search_dir}/{m}.json", top=("name", "best"), rows="history")
              for m in params["differentiable"]["methods"]}
    diverged = _diverged(params, args.proxy_dir, args.scores_dir, args.ground_truth)
    about = provenance(params, inputs=[args.estimates, args.correlation, args.found])
    if any(str(c["estimator"]).startswith("table_") for c in correlation):
        about["tabular_estimators"] = ("table_acc_* / table_sotl* / table_lce_*: read off the official release's "
                                       "per-epoch curves; no training was run (their cost is the release's "
                                       "recorded time for those epochs)")
    table = table_path(params)
    if table:  # what the table estimators' costs (the frontier's cost axis for them) come from
        from nasflow.estimators.table import cost_source_of

        about["table_costs"] = cost_source_of(table)
    num_classes = _num_classes(params["data"])
    warnings = report.find_warnings(correlation=correlation, estimates=estimates, differentiable=alphas,
                                    num_classes=num_classes)

    bpe = _budget_search(params, args.bpe_search_dir, gt_label)
    frontier_rows = _frontier(args.correlation, gt.get("column") if gt["source"] == "table" else None)

    with atomic_path(args.xlsx) as tmp:
        report.write_workbook(tmp, settings={n: proxy_setting(params, n) for n in params["proxy"]["settings"]},
                              estimates=estimates, correlation=correlation, ground_truth_label=gt_label, about=about,
                              found=found, diverged=diverged, warnings=warnings, bpe_search=bpe,
                              frontier=frontier_rows)
        predicted = _predictor_results(params, args.predictors)
        if predicted:
            from nasflow.analysis import predictor_sheet

            predictor_sheet.add_sheet(tmp, predicted, predicted[0]["init_cost_source"])

    # build the plot folder beside the target and swap it in whole
    plots = Path(args.plots)
    tmp_dir = plots.with_name(f".{plots.name}.tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    if predicted:
        from nasflow.analysis import predictor_sheet
        from nasflow.estimators.registry import family_of

        refs = {c["estimator"]: float(c["kendall_tau"]) for c in correlation  # the other families, for reference
                if c["estimator"] in estimates[0] and c["kendall_tau"] == c["kendall_tau"]
                and family_of(c["estimator"]) != "model-based"}
        predictor_sheet.plot_learning_curves(predicted, tmp_dir / "predictors_tau_vs_train_size.png", refs)
    truth = [r["ground_truth"] for r in estimates]
    for c in correlation:
        if c["estimator"] not in estimates[0]:  # e.g. angle over all archs: not a column of estimates.csv
            continue
        report.plot_estimate_vs_truth(tmp_dir / f"{c['estimator']}_vs_ground_truth.png", c["estimator"],
                                      [r[c["estimator"]] for r in estimates], truth, c,
                                      warnings=report.warning_lines(warnings, c["estimator"]),
                                      chance=100.0 / num_classes if num_classes else None)
    report.plot_correlation_vs_cost(tmp_dir / "correlation_vs_cost.png", correlation,
                                    warnings=report.summary_lines(warnings))
    frontier_title = f"Cost–quality frontier: every estimator against {gt_label} ({len(estimates)} sampled archs)"
    frontier.plot_frontier(tmp_dir / "frontier.png", frontier_rows, title=frontier_title)
    # the same as pages of the HTML report: the frontier to hover over, the two tables
    html.frontier_page(tmp_dir / "frontier.html", frontier_rows, frontier_title)
    html.table_page(tmp_dir / "correlation_table.html", pd.read_csv(args.correlation),
                    f"Rank correlation of every estimator with {gt_label} (results/correlation.csv)",
                    ["kendall_tau: scipy's tau-b; kendall_tau_low/high: its 95% seeded bootstrap interval; n: the archs "
                     "where both the estimate and the ground truth are finite; top10_overlap: the share of the ground "
                     "truth's top 10% also in the estimator's top 10%; seconds_per_arch: the estimate's cost."])
    _curves(params, args.proxy_dir).to_csv(tmp_dir / "curves.csv", index=False)
    html.table_page(tmp_dir / "frontier_table.html", frontier_rows, f"The frontier against {gt_label}",
                    frontier.frontier_notes(frontier_rows))
    if searches:
        report.plot_best_so_far(tmp_dir / "search_best_so_far.png", searches, found)
    if params["differentiable"]["methods"]:
        from nasflow.spaces import get_space

        space = get_space(params["space"])
        if space.NAME == "nb201":
            edges, cells = [f"{src}→{dst}" for dst, src in space.EDGES], ()
        else:
            edges, cells = [f"{inp}→{node}" for node, inp in space.EDGE_INPUTS], space.CELLS
        for method, doc in alphas.items():
            try:
                report.plot_alphas(tmp_dir / f"alphas_{method}.png", doc, space.OPS, edges, cells,
                                   warnings=report.warning_lines(warnings, method))
            except (KeyError, TypeError, ValueError, IndexError) as e:  # alphas of the wrong shape
                raise CheckpointError(f"{args.search_dir}/{method}.json: unreadable alphas ({type(e).__name__}: "
                                      f"{e}) (rerun differentiable_search)") from None
    if bpe:
        objective = params["bpe_search"]["objective"]
        costs = {r["estimator"]: r for r in correlation}
        named = {n: (costs[f"proxy_{n}"]["seconds_per_arch"], costs[f"proxy_{n}"][objective])
                 for n in params["proxy"]["settings"] if n != "bpe_search" and f"proxy_{n}" in costs}
        report.plot_bpe_search_cost(tmp_dir / "bpe_search_objective_vs_cost.png", bpe["settings_rows"], objective,
                                    named_points=named, best=bpe["best"])
        report.plot_importance(tmp_dir / "bpe_search_importance.png", bpe["importance"])
        top = report.most_important(bpe["importance"], 2)
        if len(top) == 2:
            report.plot_objective_2d(tmp_dir / "bpe_search_objective_2d.png", bpe["settings_rows"], objective, *top)
    shutil.rmtree(plots, ignore_errors=True)
    tmp_dir.rename(plots)

    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v

    write_json(args.metrics, {c["estimator"]: {k: clean(c[k]) for k in ("kendall_tau", "spearman_rho", "pearson_r")}
                              for c in correlation})


if __name__ == "__main__":
    main()
