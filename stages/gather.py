"""Gather node: merge the shard JSONs of one training node into one file, ordered by arch id."""
from nasflow.errors import CheckpointError
from stages.artifacts import read_results, write_json
from stages.guard import ArgumentParser, main_guard


@main_guard
def main():
    p = ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("shards", nargs="+")
    args = p.parse_args()
    parts = [read_results(s, keys=("id",), top=("shard", "seconds")) for s in args.shards]
    n = len(parts)
    seen = sorted(tuple(part["shard"]) for part in parts)
    if seen != [(i, n) for i in range(n)]:
        raise CheckpointError(f"gather needs shards 0/{n} … {n - 1}/{n}, got {seen}")
    merged = dict(parts[0])
    merged["results"] = sorted((r for part in parts for r in part["results"]), key=lambda r: r["id"])
    ids = [r["id"] for r in merged["results"]]
    if len(set(ids)) != len(ids):
        twice = next(a for a, b in zip(ids, ids[1:]) if a == b)
        raise CheckpointError(f"gather: arch id {twice} is in more than one of {', '.join(args.shards)}")
    merged["shard"] = [0, 1]
    merged["seconds"] = sum(part["seconds"] for part in parts)
    merged["device"] = sorted({str(part.get("device")) for part in parts})
    merged["gathered_from"] = list(args.shards)
    write_json(args.out, merged)


if __name__ == "__main__":
    main()
