"""Hand what Snakemake made over to DVC: `dvc commit -f` the stages of dvc.yaml whose outputs and dependencies
all exist, so that `dvc status` is clean for them and `dvc repro` runs only the rest: the stages Snakemake did
not run (e.g. bench_search, which the Snakefile skips without a NAS-Bench-201 table, or all that follows a
target you asked Snakemake for). A plain `dvc commit -f` fails on the first stage without outputs.

    python workflow/dvc_adopt.py [--dry-run]

Run it in the repository root after a finished `snakemake` run (with the same params.yaml). The other way
round, `snakemake --touch` adopts what `dvc repro` made.
"""
import argparse
import subprocess
import sys


def split_stages(repo) -> tuple[list[str], list[str]]:
    """(stages whose outs and deps all exist, the others), by DVC address (e.g. `proxy_train@bpe1`)."""
    ready, missing = [], []
    for stage in repo.index.stages:
        if not stage.cmd:  # a .dvc file, not a pipeline stage
            continue
        complete = all(o.exists for o in stage.outs) and all(d.exists for d in stage.deps)
        (ready if complete else missing).append(stage.addressing)
    return ready, missing


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dry-run", "-n", action="store_true", help="list the stages only")
    args = p.parse_args(argv)
    from dvc.repo import Repo

    with Repo() as repo:
        ready, missing = split_stages(repo)
    print(f"adopting {len(ready)} stages: {' '.join(ready) or '-'}", flush=True)
    print(f"left for dvc repro ({len(missing)}): {' '.join(missing) or '-'}", flush=True)
    if args.dry_run or not ready:
        return 0
    return subprocess.call([sys.executable, "-m", "dvc", "commit", "-f", *ready])


if __name__ == "__main__":
    sys.exit(main())
