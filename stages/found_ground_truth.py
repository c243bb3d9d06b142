"""DAG node `found_ground_truth`: the ground truth of the arch each search found (retrained under the
ground-truth setting, sharing the ground_truth node's cache, or looked up in the table).

A search without a pick (`best` None: it diverged) gets ground_truth NaN with the search's `status`; a
retrained pick that diverges gets NaN with `ground_truth_status: diverged`."""
import math
import time

from stages.artifacts import read_results, write_json
from stages.devices import claim, configure_torch, training_options
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params, search_names
from stages.provenance import provenance
from stages.training import load_splits, work_dir


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--out", required=True)
    p.add_argument("--search-dir", default="results/search", help="where the searches of params wrote <name>.json")
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    from nasflow.spaces import get_space

    space = get_space(params["space"])
    i, n = args.shard
    ids = list(range(len(search_names(params))))[i::n]
    paths = [f"{args.search_dir}/{name}.json" for name in search_names(params)][i::n]
    searches = [read_results(path, top=("name", "method", "best"), rows=None) for path in paths]
    picks = [space.canonical(s["best"]) if s.get("best") is not None else None for s in searches]
    archs = list(dict.fromkeys(a for a in picks if a is not None))  # the picks to look up / retrain
    gt = params["ground_truth"]
    start = time.time()
    if not archs:
        truth = []
    elif gt["source"] == "table":
        from nasflow.bench import lookup

        truth = [{"final_acc": acc, "seconds": 0.0} for acc in lookup(archs, gt["path"], gt["column"])]
    else:
        from nasflow.estimators.proxy import train_archs

        setting = params["settings"][gt["setting"]]
        with claim(params) as device:
            truth = train_archs(archs, space=space, setting=setting, splits=load_splits(params, setting),
                                seed=params["seed"], device=device,
                                work_dir=work_dir(params, gt["setting"], setting), **training_options(params))
    by_arch = dict(zip(archs, truth))

    def truth_of(s, a):  # no pick: NaN with the search's status ("diverged"), else the pick's (table: ok)
        if a is None:
            status = s.get("status", "ok")
            return {"final_acc": math.nan, "status": status if status != "ok" else "no_pick"}
        return {"final_acc": by_arch[a]["final_acc"], "status": by_arch[a].get("status", "ok")}

    results = [{
        "id": k, "search": s["name"], "method": s["method"], "labels": s.get("labels"), "indicator": s.get("indicator"),
        "estimator": s.get("estimator"), "arch": a, "search_score": s.get("best_score"),
        "search_status": s.get("status", "ok"), "ground_truth": t["final_acc"], "ground_truth_status": t["status"],
        "search_seconds": s.get("search_seconds"),
        "supernet_train_seconds": s.get("supernet_train_seconds"),
    } for k, s, a in zip(ids, searches, picks) for t in [truth_of(s, a)]]
    write_json(args.out, {"kind": "found", "ground_truth": gt, "shard": list(args.shard), "device": None,
                          "seconds": time.time() - start, "results": results,
                          "provenance": provenance(params, inputs=paths)})


if __name__ == "__main__":
    main()
