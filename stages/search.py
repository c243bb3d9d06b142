"""DAG node `search`: one multi-trial search (RS, REA, REINFORCE, BOHB) with one estimator, from the
`search:` matrix of params. Estimators: `proxy_<setting>` (train each queried arch under that budget,
sharing proxy_train's cache; cost = its training seconds), `table` (look up `search.table_column` of the
NB201 table; cost from the documented cost model), `angle_<labels>` / `supernet_acc_<labels>` (a trained
RLNAS supernet; cost = scoring seconds). The pick goes on to `found_ground_truth`.

A diverged proxy training scores -inf (the worst score; its history entry says `status: diverged` and
writes the score as NaN), so the pick is never a diverged arch; when every evaluation diverged, or the
supernet estimator's supernet diverged (then nothing is searched), `best` is None and `status` "diverged"."""
import math
import sys
import time

from nasflow.errors import DivergedError, ParamsError
from stages.common import configure_torch, load_params, main_guard, parser, provenance, proxy_setting, table_path, write_json
from stages.training import cache_name, load_splits, work_dir


def make_estimator(name: str, params: dict, space, device):
    """Estimator name -> callable(arch) -> (score, cost seconds)."""
    seed = params["seed"]
    if name.startswith("proxy_"):
        from nasflow.estimators.proxy import train_archs

        setting_name = name[len("proxy_"):]
        setting = proxy_setting(params, setting_name)
        splits = load_splits(params, setting)
        work = work_dir(params, cache_name(params, setting_name, setting), setting)

        def proxy(arch):
            result = train_archs([arch], space=space, setting=setting, splits=splits, seed=seed, device=device,
                                 work_dir=work)[0]  # its epochs (or `reused`) go to the job's log
            if result.get("status", "ok") != "ok":  # diverged: the worst score, never NaN
                return -math.inf, float(result["seconds"])
            return float(result["final_acc"]), float(result["seconds"])

        return proxy
    if name == "table":
        from nasflow.estimators.table import TableEstimator

        return TableEstimator(table_path(params), params["search"]["table_column"])
    labels, indicator = name.rsplit("_", 1)[1], name.rsplit("_", 1)[0]
    from nasflow.estimators.rlnas import SupernetScorer, load_state

    sn = params["supernet"]
    setting = params["settings"][sn["setting"]]
    init, _ = load_state(f"results/supernet/{labels}/init.pt")
    final, meta = load_state(f"results/supernet/{labels}/final.pt")
    if meta.get("status", "ok") != "ok":
        raise DivergedError(f"the {labels}-label supernet diverged (epoch {meta.get('diverged_epoch')})")
    scorer = SupernetScorer(init, final, setting, load_splits(params, setting) if indicator == "supernet_acc" else None,
                            seed=seed, device=device, bn_batches=sn["bn_batches"], max_eval=sn["max_eval"],
                            space=params["space"])

    def supernet(arch):
        scores, seconds = scorer.score(indicator, [arch])
        return scores[0], seconds

    return supernet


@main_guard
def main():
    from nasflow.devices import claim_device, describe
    from nasflow.search import Budget, get_strategy
    from nasflow.spaces import get_space

    p = parser(__doc__)
    p.add_argument("--strategy", required=True)
    p.add_argument("--estimator", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    cfg = params["search"]
    if args.estimator not in cfg["estimators"] or args.strategy not in cfg["strategies"]:
        raise ParamsError(f"search: {args.strategy} x {args.estimator} is not in the search matrix of {args.params}")
    space = get_space(params["space"])
    start = time.time()
    strategy = get_strategy(args.strategy)
    with claim_device(params["device"]) as device:
        try:
            estimator = make_estimator(args.estimator, params, space, device)
        except DivergedError:  # a diverged supernet ranks nothing: no search, no pick
            estimator = None
        name = f"{args.strategy}_{args.estimator}"
        if estimator is None:
            print(f"{name}: the supernet diverged: nothing to search", file=sys.stderr)
        result = None if estimator is None else strategy(space, estimator, Budget.of(cfg["budget"]), params["seed"],
                                                         **cfg.get(args.strategy, {}),
                                                         log=lambda text: print(f"{name}: {text}", file=sys.stderr,
                                                                                flush=True))
        device_name = describe(device)
    history = result.history if result is not None else []
    best = result.best if result is not None else None
    diverged = [e for e in history if e.status != "ok"]
    status = "ok" if best is not None or (result is not None and not diverged) else "diverged"
    write_json(args.out, {
        "kind": "search", "method": args.strategy, "name": f"{args.strategy}_{args.estimator}",
        "estimator": args.estimator, "best": best.arch if best else None, "best_score": best.score if best else None,
        "status": status, "n_diverged": len(diverged),
        "history": [{**e._asdict(), "score": e.score if e.status == "ok" else math.nan} for e in history],
        "budget": cfg["budget"], "spent_seconds": result.spent if result is not None else 0.0,
        "n_evals": len(history), "search_seconds": time.time() - start,
        "device": device_name, "provenance": provenance(params),
    })


if __name__ == "__main__":
    main()
