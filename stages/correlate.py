"""DAG node `correlate`: one table of every estimator's score per arch (results/estimates.csv) and one row
of rank correlations per estimator against the ground truth (results/correlation.csv).

The estimators are every registered name the params ask for (stages.params.correlated_names: the proxy
settings and their learning-curve estimators, the supernet ones, the zero-cost proxies, `estimators.extra`), each
run through nasflow.estimators.registry on the ground truth's archs in a ResultsContext: it reads what the DAG's
stages computed, so nothing trains here. Then the `estimators.ensembles` (rank averages or AZ-NAS's sums of log-ranks of those columns; cost:
the sum of theirs).

A supernet estimator's cost per arch is its scoring time plus the supernet's training time shared out over
the sampled archs. When the ground truth is a table, a row `<name>_all_archs` gives the supernet angle's, a
zero-cost proxy's or a tabular estimator's (`table_acc_<s>ep_e<k>`, …, in `estimators.extra`) correlation over
every NB201 cell it scored (every cell of the table for the tabular ones), and `<name>_extra` a zero-cost proxy's
over the `zero_cost.extra_archs` more cells; with `zero_cost.dedup`, `<name>_extra_dedup` / `<name>_all_archs_dedup`
the same over one cell per isomorphism class (nasflow.spaces.nb201.representatives).

`init_seconds` is a one-off cost paid before the first arch is scored, beside `seconds_per_arch`: a model-based
predictor's (pred_<predictor>[_<feature set>]_n<k>) evaluation of its k training cells (recorded times or the
cost model), their features and the fit; 0 for the others (a supernet's training is shared out per arch).

A diverged training (a result with `status: diverged`, NaN accuracy) is never a score: its estimates.csv cell
is empty, the `<estimator>_status` / `ground_truth_status` columns (after the seconds columns) say `ok` or
`diverged`, and each correlation row counts only the archs where both the estimate and the ground truth are
finite (`n`). Tables are written through pandas.
"""
import math
from pathlib import Path

from nasflow.analysis.correlation import correlation_row
from nasflow.errors import ParamsError
from stages.artifacts import atomic_path, read_results
from stages.estimation import ResultsContext, supernet_share
from stages.guard import main_guard, parser
from stages.params import correlated_names, load_params, supernet_estimators

CORRELATION_COLUMNS = ["estimator", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
                       "pearson_r", "top10_overlap", "seconds_per_arch", "init_seconds"]


def _number(v) -> float:
    return math.nan if v is None else float(v)


def _over_other_archs(params, args, opts, ctx) -> list[dict]:
    """Correlation rows over arch sets beyond the sampled ones, against the ground-truth table."""
    from nasflow.bench import load_table
    from nasflow.estimators import registry
    from nasflow.estimators.zero_cost import add_aggregates

    gt = params["ground_truth"]
    if gt["source"] != "table":
        return []
    table = load_table(gt["path"], gt["column"])
    rows = []

    def row(name, doc, key, extra_seconds=0.0, dedup=False):
        res = doc["results"]
        if dedup:  # one cell per isomorphism class (nasflow.spaces.nb201.unique_key): the first in the set
            from nasflow.spaces import nb201

            res = [res[i] for i in nb201.representatives([r["arch"] for r in res])]
        rows.append(correlation_row(name, [_number(r[key]) for r in res], [table[r["arch"]] for r in res],
                                    [r[f"{key}_seconds"] + extra_seconds for r in res], **opts))

    if "all" in params["supernet"]["arch_sets"]:
        for column, labels, ind in supernet_estimators(params):
            if ind == "angle":
                doc = read_results(f"{args.scores_dir}/{labels}-all.json", keys=("arch", "angle", "angle_seconds"))
                row(f"{column}_all_archs", doc, "angle", supernet_share(doc))
    zc = params["zero_cost"]
    for arch_set, suffix in (("extra", "_extra"), ("all", "_all_archs")):
        if zc["proxies"] and arch_set in zc["arch_sets"]:
            doc = read_results(f"{args.zero_cost_dir}/{arch_set}.json", keys=("arch",))
            # population aggregates (az_nas, te_nas) over every cell of the set, from their members
            doc = {**doc, "results": add_aggregates(doc["results"], list(zc["proxies"]))}
            for proxy in zc["proxies"]:
                row(f"{proxy}{suffix}", doc, proxy)
                if zc["dedup"]:
                    row(f"{proxy}{suffix}_dedup", doc, proxy, dedup=True)
    # the tabular estimators cost nothing to run: over every cell of the ground-truth table too
    tabular = [n for n in params["estimators"]["extra"] if n != "table" and registry.get(n).family == "table"]
    everything = list(table)
    for name in tabular:
        found = registry.get(name)(everything, ctx)
        rows.append(correlation_row(f"{name}_all_archs", [e.score for e in found], [table[a] for a in everything],
                                    [e.seconds for e in found], **opts))
    return rows


@main_guard
def main():
    import pandas as pd

    from nasflow.estimators import registry

    p = parser(__doc__)
    p.add_argument("--proxy-dir", default="results/proxy", help="where <setting>.json of each proxy setting lies")
    p.add_argument("--scores-dir", default="results/scores", help="where <labels>-<arch set>.json supernet scores lie")
    p.add_argument("--zero-cost-dir", default="results/zero_cost", help="where <arch set>.json zero-cost scores lie")
    p.add_argument("--ground-truth", required=True)
    p.add_argument("--estimates", default="results/estimates.csv")
    p.add_argument("--correlation", default="results/correlation.csv")
    args = p.parse_args()
    params = load_params(args.params)
    truth = sorted(read_results(args.ground_truth, keys=("id", "arch", "final_acc", "seconds"))["results"],
                   key=lambda r: r["id"])
    archs = [r["arch"] for r in truth]
    ctx = ResultsContext(params, proxy_dir=args.proxy_dir, scores_dir=args.scores_dir,
                         zero_cost_file=Path(args.zero_cost_dir) / "sampled.json")

    scores, seconds, statuses = {}, {}, {}
    for name in correlated_names(params):
        estimates = registry.get(name)(archs, ctx)
        scores[name] = [e.score for e in estimates]
        seconds[name] = [e.seconds for e in estimates]
        statuses[name] = [e.status for e in estimates]
    for name, (kind, members) in registry.ensemble_specs(params["estimators"]["ensembles"]).items():
        unknown = [m for m in members if m not in scores]
        if unknown:
            raise ParamsError(f"{args.params}: estimators.ensembles.{name}: {', '.join(unknown)} not correlated here "
                              f"(correlated: {', '.join(scores)})")
        scores[name] = registry.ensemble_scores(kind, [scores[m] for m in members])
        seconds[name] = [sum(seconds[m][i] for m in members) for i in range(len(archs))]
        statuses[name] = ["ok" if all(statuses[m][i] == "ok" for m in members) else "diverged" for i in range(len(archs))]
        if any(m in ctx.init_seconds for m in members):
            ctx.init_seconds[name] = sum(ctx.init_seconds.get(m, 0.0) for m in members)

    gt = [_number(r["final_acc"]) for r in truth]
    table = {"arch": archs, **scores, "ground_truth": gt,
             **{f"{n}_seconds": [round(s, 4) for s in seconds[n]] for n in scores},
             "ground_truth_seconds": [round(r["seconds"], 3) for r in truth],
             **{f"{n}_status": statuses[n] for n in scores},
             "ground_truth_status": [r.get("status", "ok") for r in truth]}
    with atomic_path(args.estimates) as tmp:
        pd.DataFrame(table).to_csv(tmp, index=False)  # NaN (no score) is an empty cell, never a number

    opts = dict(n_boot=params["report"]["bootstrap"], seed=params["seed"])
    rows = [correlation_row(n, scores[n], gt, seconds[n], **opts) for n in scores]
    rows += _over_other_archs(params, args, opts, ctx)
    for row in rows:  # a one-off cost before the first arch is scored: a predictor's training cells and fit
        row["init_seconds"] = round(ctx.init_seconds.get(row["estimator"], 0.0), 3)
    with atomic_path(args.correlation) as tmp:
        pd.DataFrame(rows, columns=CORRELATION_COLUMNS).to_csv(tmp, index=False, na_rep="nan")  # as before: "nan"


if __name__ == "__main__":
    main()
