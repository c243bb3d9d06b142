"""How long `nasflow table build` takes on a whole release, how big the table is, and how fast studies read it.

The releases are not on the development machines, so this writes a synthetic one with all 15,625 cells in
NATS-Bench's archive format (tests/release_fixtures.py: the official structure, 12 trials per cell, 200-epoch
curves; about the real files' size), converts it, and times the reads a study makes: one column through
nasflow.bench (what the stages call), the same with pandas, and the whole table.

    python benchmarks/table_build.py [--dir /tmp/nb201-release] [--workers 2] [--keep]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow import bench, bench_build  # noqa: E402
from nasflow.spaces import nb201  # noqa: E402
from tests import release_fixtures as rf  # noqa: E402

_TEMPLATES: dict = {}


def _write_cell(job):
    """Cell i as the release stores it: 16 distinct seeded cells reused under every index (values repeat; the
    format, the number of trials and the file sizes are the release's)."""
    root, i = job
    import collections

    archs = nb201.enumerate_all()
    if i % 16 not in _TEMPLATES:
        _TEMPLATES[i % 16] = {s: rf.cell(i % 16, s) for s in ("12", "200")}
    cell = collections.OrderedDict((s, {**c, "arch_index": i, "arch_str": archs[i]})
                                   for s, c in _TEMPLATES[i % 16].items())
    rf.dump_pbz2(cell, Path(root) / f"{i:06d}.pickle.pbz2")


def write_release(root: Path, workers: int) -> None:
    from concurrent.futures import ProcessPoolExecutor

    root.mkdir(parents=True)
    rf.dump_pbz2(rf.meta(), root / "meta.pickle.pbz2")
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_cell, [(str(root), i) for i in range(len(nb201.enumerate_all()))], chunksize=64))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", default="/tmp/nb201-release")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="reuse an archive already written there")
    args = ap.parse_args()
    root = Path(args.dir) / "NATS-tss-v1_0-3ffb9-simple"
    if not (args.keep and (root / "meta.pickle.pbz2").exists()):
        shutil.rmtree(root, ignore_errors=True)
        t = time.perf_counter()
        write_release(root, args.workers)
        print(f"wrote a synthetic release of 15,625 cells in {time.perf_counter() - t:.0f} s")
    size = sum(f.stat().st_size for f in root.iterdir())
    print(f"release: {size / 1e9:.2f} GB in {len(list(root.iterdir()))} files")
    out = Path(args.dir) / "nb201.parquet"
    t = time.perf_counter()
    done = bench_build.build_table(root, out, workers=args.workers, progress=False)
    build = time.perf_counter() - t
    print(f"build: {done['cells']} cells, {done['columns']} columns in {build:.0f} s with {args.workers} workers; "
          f"table {out.stat().st_size / 1e6:.0f} MB")
    t = time.perf_counter()
    values = bench.load_table(out, "cifar10_test_acc_200ep")
    one = time.perf_counter() - t
    import pandas as pd

    t = time.perf_counter()
    pd.read_parquet(out, columns=["arch", "cifar10_valid_valid_acc_200ep"])
    pandas_one = time.perf_counter() - t
    t = time.perf_counter()
    curves = bench.load_curves(out, "cifar10_valid_valid_acc_curve_200ep")
    curve = time.perf_counter() - t
    t = time.perf_counter()
    pd.read_parquet(out)
    whole = time.perf_counter() - t
    print(f"read one column via nasflow.bench: {one * 1e3:.0f} ms ({len(values)} cells); with pandas: "
          f"{pandas_one * 1e3:.0f} ms; one 200-epoch curve column: {curve:.2f} s ({len(curves)} curves); "
          f"the whole table with pandas: {whole:.1f} s")


if __name__ == "__main__":
    main()
