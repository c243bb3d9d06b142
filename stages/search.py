"""DAG node `search`: one multi-trial search (RS, REA, REINFORCE, BOHB) with one estimator, from the
`search:` matrix of params. The estimator is any registered name (nasflow.estimators.registry), run on demand in
a ComputeContext: `proxy_<setting>` and the learning-curve estimators train each queried arch under that budget,
sharing proxy_train's cache (cost = its training seconds, or the first k epochs'), `table` looks up
`search.table_column` of the NB201 table (cost from the documented cost model), `angle_<labels>` /
`supernet_acc_<labels>` score with a trained RLNAS supernet, a zero-cost proxy scores the untrained network on
one batch. The pick goes on to `found_ground_truth`.

A diverged proxy training scores -inf (the worst score; its history entry says `status: diverged` and
writes the score as NaN), so the pick is never a diverged arch; when every evaluation diverged, or the
supernet estimator's supernet diverged (then nothing is searched), `best` is None and `status` "diverged"."""
import math
import sys
import time

from nasflow.errors import DivergedError, ParamsError
from stages.artifacts import write_json
from stages.devices import claim, configure_torch
from stages.estimation import ComputeContext
from stages.guard import main_guard, parser
from stages.params import load_params
from stages.provenance import provenance


@main_guard
def main():
    from nasflow.devices import describe
    from nasflow.estimators import registry
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
    with claim(params) as device:
        estimator = registry.for_search(args.estimator, ComputeContext(params, space, device))
        name = f"{args.strategy}_{args.estimator}"
        try:
            result = strategy(space, estimator, Budget.of(cfg["budget"]), params["seed"], **cfg.get(args.strategy, {}),
                              log=lambda text: print(f"{name}: {text}", file=sys.stderr, flush=True))
        except DivergedError as e:  # a diverged supernet ranks nothing: no search, no pick
            print(f"{name}: {e}: nothing to search", file=sys.stderr)
            result = None
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
