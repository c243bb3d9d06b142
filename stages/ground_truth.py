"""DAG node `ground_truth`: the reference accuracy of this shard's archs, by retraining them under the
ground-truth setting (`source: retrain`) or by looking them up in a table (`source: table`)."""
from stages.guard import main_guard, parse_shard, parser
from stages.params import load_params
from stages.training import run_training, write_lookup


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--shard", type=parse_shard, default=(0, 1), metavar="i/n")
    p.add_argument("--archs", default="results/archs.jsonl")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    gt = params["ground_truth"]
    if gt["source"] == "table":
        write_lookup(params, shard=args.shard, archs_path=args.archs, out=args.out)
    else:
        run_training(params, gt["setting"], kind="ground_truth", shard=args.shard, archs_path=args.archs,
                     out=args.out)


if __name__ == "__main__":
    main()
