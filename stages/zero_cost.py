"""DAG node `zero_cost`: every proxy of `zero_cost.proxies` (nasflow.estimators.zero_cost) on one shard of an arch
set, on one seeded training batch, with each proxy's seconds per arch.

Arch sets: `sampled` (results/archs.jsonl), `extra` (`zero_cost.extra_archs` more NB201 cells, drawn seeded from
the cells not sampled: the set the ρ per proxy over many cells is measured on), `all` (every NB201 cell, 15,625).
Shards take every n-th arch (`--shard i/n`), as proxy training does; a gather merges them.

    python -m stages.zero_cost --params params.yaml --arch-set sampled --shard 0/2 --out results/zero_cost/sampled/shard-0-of-2.json
"""
import sys
import time

from stages.artifacts import write_json
from stages.devices import claim, configure_torch
from stages.estimation import zero_cost_batch, zero_cost_rows
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params
from stages.provenance import provenance
from stages.training import arch_set

ARCH_SETS = ("sampled", "extra", "all")


@main_guard
def main():
    from nasflow.devices import describe
    from nasflow.spaces import get_space

    p = parser(__doc__)
    p.add_argument("--arch-set", required=True, choices=ARCH_SETS)
    p.add_argument("--archs", default="results/archs.jsonl", help="the sampled archs (JSONL)")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    space = get_space(params["space"])
    i, n = args.shard
    records = arch_set(params, args.arch_set, args.archs, key="zero_cost.arch_sets")[i::n]
    archs = [space.canonical(r["arch"]) for r in records]
    proxies = params["zero_cost"]["proxies"]
    start = time.time()
    with claim(params) as device:
        print(f"zero_cost {args.arch_set}, shard {i}/{n}: {len(archs)} archs x {len(proxies)} proxies on "
              f"{describe(device)}", file=sys.stderr, flush=True)
        batch = zero_cost_batch(params, device) if proxies else None
        rows = [] if proxies else [{"arch": a} for a in archs]  # none asked (DVC runs the stage regardless)
        for k, arch in enumerate(archs if proxies else []):  # one at a time, so the log shows progress
            rows += zero_cost_rows(params, space, [arch], proxies, device, batch)
            if (k + 1) % 25 == 0 or k + 1 == len(archs):
                print(f"zero_cost {args.arch_set}: {k + 1}/{len(archs)} archs, {time.time() - start:.0f} s",
                      file=sys.stderr, flush=True)
        device_name = describe(device)
    results = [{"id": r["id"], **row} for r, row in zip(records, rows)]
    zc = params["zero_cost"]
    write_json(args.out, {
        "kind": "zero_cost", "arch_set": args.arch_set, "proxies": proxies, "shard": list(args.shard),
        "network": {k: zc[k] for k in ("channels", "cells_per_stage", "layers", "image_size", "batch_size")},
        "device": device_name, "seconds": time.time() - start, "results": results,
        "provenance": provenance(params, inputs=[args.archs] if args.arch_set != "all" else []),
    })


if __name__ == "__main__":
    main()
