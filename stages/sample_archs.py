"""DAG node `sample_archs`: draw the study's architectures (uniform, seeded) -> results/archs.jsonl."""
from nasflow.spaces import get_space
from stages.artifacts import atomic_path
from stages.guard import main_guard, parser
from stages.params import load_params


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--out", default="results/archs.jsonl")
    args = p.parse_args()
    params = load_params(args.params)
    space = get_space(params["space"])
    archs = space.sample(params["sample"]["n_archs"], seed=params["seed"])
    with atomic_path(args.out) as tmp:
        import json

        tmp.write_text("".join(json.dumps({"id": i, "arch": a}) + "\n" for i, a in enumerate(archs)))


if __name__ == "__main__":
    main()
