"""DAG node `evolution_search` (RLNAS): evolution over the space, scoring candidates with a trained supernet
by one indicator (angle or supernet accuracy). Saves every generation; the best arch goes on to
`found_ground_truth`. With a diverged supernet (meta `status: diverged`) there is no pick: `best` None,
`status: diverged`.

`evolution.max_flops` (mobilenet space): candidates over the limit, in FLOPs per image of the network at the
supernet setting's width (channels / 40) and image size and the data's classes, RLNAS' counting, are
rejected before they are scored."""
import sys
import time

from stages.artifacts import write_json
from stages.devices import claim, configure_torch
from stages.guard import main_guard, parser
from stages.params import load_params
from stages.provenance import provenance
from stages.training import load_splits


@main_guard
def main():
    from nasflow.devices import describe
    from nasflow.estimators.rlnas import INDICATORS, LABELS, SupernetScorer, load_state
    from nasflow.search.rlnas_evolution import evolution_search, flops_limit
    from nasflow.spaces import get_space

    p = parser(__doc__)
    p.add_argument("--labels", required=True, choices=LABELS)
    p.add_argument("--indicator", required=True, choices=INDICATORS)
    p.add_argument("--supernet-dir", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    space = get_space(params["space"])
    sn, ev = params["supernet"], params["evolution"]
    setting = params["settings"][sn["setting"]]
    init, _ = load_state(f"{args.supernet_dir}/init.pt")
    final, meta = load_state(f"{args.supernet_dir}/final.pt")
    status = meta.get("status", "ok")
    start = time.time()
    constraint = None
    if ev.get("max_flops") is not None:
        from nasflow.spaces.mobilenet import channels_to_width

        num_classes = next(final[k].shape[0] for k in ("head.classifier.1.weight", "classifier.weight") if k in final)
        constraint = flops_limit(space, ev["max_flops"], width=channels_to_width(setting["channels"]),
                                 input_size=setting["image_size"], num_classes=num_classes)
    if status != "ok":  # a diverged supernet ranks nothing: no pick
        found, device_name = {"best": None, "best_score": None, "topk": [], "history": [], "n_scored": 0}, None
    else:
        splits = load_splits(params, setting) if args.indicator == "supernet_acc" else None
        with claim(params) as device:
            scorer = SupernetScorer(init, final, setting, splits, seed=params["seed"], device=device,
                                    bn_batches=sn["bn_batches"], max_eval=sn["max_eval"], space=params["space"])
            found = evolution_search(lambda archs: scorer.score(args.indicator, archs)[0], space=space,
                                     seed=params["seed"], population=ev["population"], topk=ev["topk"],
                                     n_mutations=ev["mutations"], n_crossovers=ev["crossovers"],
                                     mutation_prob=ev["mutation_prob"], generations=ev["generations"],
                                     constraint=constraint,
                                     log=lambda text: print(f"rlnas_{args.labels}_{args.indicator}: {text}",
                                                            file=sys.stderr, flush=True))
            device_name = describe(device)
    write_json(args.out, {
        "kind": "search", "method": "rlnas_evolution", "name": f"rlnas_{args.labels}_{args.indicator}",
        "labels": args.labels, "indicator": args.indicator, **found, "status": status,
        "diverged_epoch": meta.get("diverged_epoch"), "device": device_name,
        "search_seconds": time.time() - start, "supernet_train_seconds": meta.get("train_seconds"),
        "provenance": provenance(params, inputs=[args.supernet_dir]),
    })


if __name__ == "__main__":
    main()
