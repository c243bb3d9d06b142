"""DAG node `proxy_train`: train this shard's archs under one named setting (a BPE) -> one JSON of results.

`--shard i/n` takes every n-th arch starting at i; `gather` merges the shards. DVC runs it unsharded (0/1).
"""
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params
from stages.training import run_training


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--setting", required=True, help="a key of `settings` in params")
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--archs", default="results/archs.jsonl")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    run_training(params, args.setting, kind="proxy", shard=args.shard, archs_path=args.archs, out=args.out)


if __name__ == "__main__":
    main()
