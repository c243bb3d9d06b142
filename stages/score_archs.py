"""DAG node `score_archs` (RLNAS): score archs with a trained supernet by angle and supernet accuracy.

`--arch-set sampled` scores the archs of `--archs` by both indicators; `--arch-set all` scores every cell of
the space by angle only (no forward pass: all 15,625 NB201 cells in seconds; NB201 only). Sharded like proxy training.
A supernet trained to a non-finite loss (meta `status: diverged`) gives every arch NaN scores with `status: diverged`.
"""
import math

from stages.artifacts import write_json
from stages.devices import claim, configure_torch
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params
from stages.provenance import provenance
from stages.training import arch_set, load_splits


@main_guard
def main():
    from nasflow.devices import describe
    from nasflow.estimators.rlnas import INDICATORS, LABELS, SupernetScorer, load_state
    from nasflow.spaces import get_space

    p = parser(__doc__)
    p.add_argument("--labels", required=True, choices=LABELS)
    p.add_argument("--supernet-dir", required=True, help="holds init.pt and final.pt")
    p.add_argument("--arch-set", required=True, choices=["sampled", "all"])
    p.add_argument("--archs", default="results/archs.jsonl", help="the sampled archs (JSONL)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    space = get_space(params["space"])
    i, n = args.shard
    records = arch_set(params, args.arch_set, args.archs, key="--arch-set")[i::n]
    archs = [space.canonical(r["arch"]) for r in records]
    sn = params["supernet"]
    setting = params["settings"][sn["setting"]]
    init, _ = load_state(f"{args.supernet_dir}/init.pt")
    final, meta = load_state(f"{args.supernet_dir}/final.pt")
    indicators = ["angle"] if args.arch_set == "all" else list(INDICATORS)
    status = meta.get("status", "ok")
    scores, seconds = {}, {}
    if status != "ok":  # a diverged supernet scores nothing: NaN for every arch, with its status
        scores = {ind: [math.nan] * len(archs) for ind in indicators}
        seconds = {ind: 0.0 for ind in indicators}
        device_name = None
    else:
        splits = load_splits(params, setting) if "supernet_acc" in indicators else None
        with claim(params) as device:
            scorer = SupernetScorer(init, final, setting, splits, seed=params["seed"], device=device,
                                    bn_batches=sn["bn_batches"], max_eval=sn["max_eval"], space=params["space"])
            for ind in indicators:
                scores[ind], seconds[ind] = scorer.score(ind, archs)
            device_name = describe(device)
    results = [{"id": r["id"], "arch": a, **{ind: scores[ind][k] for ind in indicators},
                **{f"{ind}_seconds": seconds[ind] / max(len(archs), 1) for ind in indicators}, "status": status}
               for k, (r, a) in enumerate(zip(records, archs))]
    write_json(args.out, {"kind": "supernet_scores", "labels": args.labels, "indicators": indicators,
                          "supernet_train_seconds": meta.get("train_seconds"),
                          "supernet_status": status, "diverged_epoch": meta.get("diverged_epoch"),
                          "shard": list(args.shard), "device": device_name, "seconds": sum(seconds.values()),
                          "results": results, "provenance": provenance(params, inputs=[args.supernet_dir, args.archs])})


if __name__ == "__main__":
    main()
