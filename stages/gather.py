"""Gather node: merge the shard JSONs of one training node into one file, ordered by arch id."""
from nasflow.errors import CheckpointError
from stages.common import main_guard, read_json, write_json
import argparse


@main_guard
def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("shards", nargs="+")
    args = p.parse_args()
    parts = [read_json(s) for s in args.shards]
    n = len(parts)
    seen = sorted(tuple(part["shard"]) for part in parts)
    if seen != [(i, n) for i in range(n)]:
        raise CheckpointError(f"gather needs shards 0/{n} … {n - 1}/{n}, got {seen}")
    merged = dict(parts[0])
    merged["results"] = sorted((r for part in parts for r in part["results"]), key=lambda r: r["id"])
    merged["shard"] = [0, 1]
    merged["seconds"] = sum(part["seconds"] for part in parts)
    merged["device"] = sorted({str(part["device"]) for part in parts})
    merged["gathered_from"] = list(args.shards)
    write_json(args.out, merged)


if __name__ == "__main__":
    main()
