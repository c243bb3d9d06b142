"""DAG node `search_setting`: writes, for one multi-trial search estimator, the part of params.yaml's
`settings` (and table) it reads: `proxy_<s>` (and `sotl_<s>`, … with the learning_curve section) -> settings.<s>;
`angle_<labels>` / `supernet_acc_<labels>` -> settings.<supernet.setting>; `table` -> the table's path; a zero-cost
proxy -> the zero_cost section. Each `search` depends on its estimator's file, so
editing one setting reruns only the searches that train with it: DVC cannot narrow a matrix stage's params to
a name derived from its item, and this stage, which declares all settings, rewrites the other files unchanged.

    python -m stages.search_setting --params params.yaml --estimator proxy_bpe1 --out results/search_setting/proxy_bpe1.json
"""
import json

from nasflow.errors import ParamsError
from stages.artifacts import atomic_path
from stages.guard import main_guard, parser
from stages.params import CHOSEN_BUDGET_FILE, load_params, proxy_setting, table_path


def estimator_setting(params: dict, name: str, *, resolve: bool = True) -> dict:
    """What the search estimator `name` reads beyond the sections every search declares (search, supernet,
    data, space, seed), from what it needs (nasflow.estimators.registry); deterministic, so an unrelated edit
    leaves the file byte for byte the same. With resolve=False (Snakemake, before any job ran) the budget search's
    choice is named by its file, not read."""
    from nasflow.estimators import registry

    out: dict = {"estimator": name}
    for need in registry.get(name).needs:
        kind, _, what = need.partition(":")
        if kind == "proxy":
            values = CHOSEN_BUDGET_FILE if what not in params["settings"] and not resolve else proxy_setting(params, what)
            out.update(setting=what, values=values)
            if not name.startswith("proxy_"):
                out["learning_curve"] = params["estimators"]["learning_curve"]
        elif kind == "table":
            out["table"] = table_path(params)
        elif kind == "supernet":
            setting = params["supernet"]["setting"]
            out.update(setting=setting, values=params["settings"][setting])
        elif kind == "batch":
            out["zero_cost"] = params["zero_cost"]
        elif kind == "differentiable":
            out["differentiable"] = params["differentiable"]
    return out


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--estimator", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    if args.estimator not in params["search"]["estimators"]:
        raise ParamsError(f"{args.estimator} is not in search.estimators of {args.params}")
    with atomic_path(args.out) as tmp:
        tmp.write_text(json.dumps(estimator_setting(params, args.estimator), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
