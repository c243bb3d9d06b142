"""What filling a device buys: packed training, compiled steps and several jobs per device, each against its
baseline, measured side by side in one run on one machine.

  packed    `pack` NB201 archs trained side by side in one process (nasflow.train.train_packed: on CUDA each on
            its own stream) vs the same archs one by one (nasflow.train.train), same setting, same seeds. The
            results are checked equal (bit for bit on the CPU). Reported: seconds per arch amortised (the whole
            pack's wall time / archs) and images/s, for every pack size of `--packs`.
  compiled  one arch, torch.compile (`--compile-mode`) vs eager: seconds per epoch after the first (the first
            epoch, which compiles, is reported apart), and the final loss of both.
  jobs      K processes training at once on the device (each claims one of the device's K slots, as
            `parallel.jobs_per_gpu: K` does) vs one job: archs per second over all jobs. On the CPU the
            cores are held equal: K jobs of `threads / K` threads vs one job of `threads` threads.

Every variant trains the same archs (`--archs` sampled with seed 0) at one setting (`--size`: bpe1 = C 8, N 2,
16 px). Ratios > 1 favour packing / compiling / K jobs.

    python benchmarks/packing.py                                   # CPU: bpe1, 4 archs, digits-sized data
    python benchmarks/packing.py --device cuda --data cifar10 --images 50000 --archs 16 --packs 1,4,8,16 --jobs 1,2,4

Writes a markdown table to stdout and JSON to benchmarks/out/packing.json (`--out`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow.data import load_dataset  # noqa: E402
from nasflow.devices import describe  # noqa: E402
from nasflow.estimators.proxy import seeded_network, train_config  # noqa: E402
from nasflow.spaces import get_space  # noqa: E402
from nasflow.train import train, train_packed  # noqa: E402

SIZES = {  # the proxy settings' network and training keys (BPE1 as the paper; one short epoch count)
    "bpe1": {"channels": 8, "cells_per_stage": 2, "image_size": 16},
    "bpe2": {"channels": 16, "cells_per_stage": 5, "image_size": 16},
    "full": {"channels": 16, "cells_per_stage": 5, "image_size": 32},
}
BASE = {"batch_size": 128, "lr": 0.03, "weight_decay": 3e-4, "momentum": 0.9, "nesterov": False, "grad_clip": 5.0,
        "augment_order": "crop_then_resize", "cutout": 0, "precision": 32}


def setting_of(args) -> dict:
    return {**BASE, **SIZES[args.size], "epochs": args.epochs, "precision": 16 if args.bf16 else 32}


def splits_of(args):
    if args.data == "digits":
        return load_dataset("digits", image_size=SIZES[args.size]["image_size"])
    return load_dataset("npz", path=args.path, split_seed=0, subset=args.images, image_size=SIZES[args.size]["image_size"])


def models_of(archs, setting, splits, space):
    """(seeds, networks) of `archs`, each built as proxy training builds it."""
    seeds, models = zip(*(seeded_network(space, arch, setting, splits, seed=0) for arch in archs))
    return list(seeds), list(models)


def synced(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def bench_packed(args, archs, setting, splits, space) -> list[dict]:
    cfg = train_config(setting)
    images = len(splits.x_train) * setting["epochs"] * len(archs)
    rows, reference = [], None
    # one untimed training first: the CUDA context, cuDNN's kernel choices and the CPU's first-call setup would
    # otherwise be charged to whichever pack size runs first
    seeds, models = models_of(archs[:1], setting, splits, space)
    train(models[0], splits, train_config({**setting, "epochs": 1}), seed=seeds[0], device=args.device,
          progress=False)
    for pack in args.packs:
        seeds, models = models_of(archs, setting, splits, space)
        start = synced(args.device)
        results = []
        for i in range(0, len(archs), pack):
            if pack == 1:
                results.append(train(models[i], splits, cfg, seed=seeds[i], device=args.device, progress=False))
            else:
                results += train_packed(models[i:i + pack], splits, cfg, seeds=seeds[i:i + pack],
                                        device=args.device, progress=False)
        wall = synced(args.device) - start
        accs = [r["final_acc"] for r in results]
        reference = accs if reference is None else reference
        rows.append({"pack": pack, "seconds": wall, "seconds_per_arch": wall / len(archs), "images_per_s": images / wall,
                     "final_acc": accs, "equal_to_one_by_one": accs == reference})
        print(f"  pack {pack}: {wall / len(archs):.2f} s per arch", file=sys.stderr, flush=True)
    return rows


def bench_compiled(args, archs, setting, splits, space) -> list[dict]:
    cfg = train_config({**setting, "epochs": max(setting["epochs"], 2)})
    rows = []
    for mode in ("off", args.compile_mode):
        seeds, models = models_of(archs[:1], setting, splits, space)
        result = train(models[0], splits, cfg, seed=seeds[0], device=args.device, progress=False, compile=mode)
        epochs = [h["train_seconds"] for h in result["history"]]
        rows.append({"compile": result.get("compiled", "off"), "first_epoch_seconds": epochs[0],
                     "epoch_seconds": min(epochs[1:]), "images_per_s": len(splits.x_train) / min(epochs[1:]),
                     "final_train_loss": result["history"][-1]["train_loss"]})
        print(f"  compile {mode}: {min(epochs[1:]):.2f} s per epoch", file=sys.stderr, flush=True)
    return rows


JOB = """
import json, sys, time, torch
sys.path.insert(0, {root!r})
from nasflow.devices import claim_device
sys.argv = {argv!r}
import benchmarks.packing as b
args = b.parse()
torch.set_num_threads(args.threads)
space = b.get_space("nb201")
setting, splits = b.setting_of(args), b.splits_of(args)
archs = json.loads({archs!r})
with claim_device(args.device, jobs_per_gpu={k}) as device:
    seeds, models = b.models_of(archs, setting, splits, space)
    for s, m in zip(seeds, models):
        b.train(m, splits, b.train_config(setting), seed=s, device=device, progress=False)
"""


def bench_jobs(args, archs) -> list[dict]:
    rows = []
    for k in args.jobs:
        threads = max(1, args.threads // k) if args.device == "cpu" else args.threads
        argv = ["packing.py", *sys.argv[1:], "--threads", str(threads)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", JOB.format(root=str(ROOT), argv=argv, archs=json.dumps(archs[j::k]), k=k)],
                                  env=env, cwd=ROOT) for j in range(k)]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        if any(codes):
            raise SystemExit(f"error: a job of the K={k} run failed")
        rows.append({"jobs": k, "threads_per_job": threads, "seconds": wall, "archs_per_s": len(archs) / wall,
                     "seconds_per_arch": wall / len(archs)})
        print(f"  {k} jobs: {wall / len(archs):.2f} s per arch", file=sys.stderr, flush=True)
    return rows


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", choices=["digits", "cifar10"], default="digits")
    p.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"))
    p.add_argument("--images", type=int, default=5000, help="CIFAR-10 training images (--data cifar10)")
    p.add_argument("--size", choices=sorted(SIZES), default="bpe1")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--archs", type=int, default=4)
    p.add_argument("--packs", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4])
    p.add_argument("--jobs", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    p.add_argument("--compile-mode", default="default", help="torch.compile mode (reduce-overhead on a GPU)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads in all")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (CUDA)")
    p.add_argument("--skip", default="", help="comma list of parts to skip: packed, compiled, jobs")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "packing.json"), help="the JSON written")
    return p.parse_args()


def main():
    args = parse()
    torch.set_num_threads(args.threads)
    space = get_space("nb201")
    setting, splits = setting_of(args), splits_of(args)
    archs = space.sample(args.archs, seed=0)
    skip = set(filter(None, args.skip.split(",")))
    out = {"machine": platform.node(), "device": describe(torch.device(args.device)), "torch": torch.__version__,
           "args": {k: v for k, v in vars(args).items()}, "setting": setting, "train_images": len(splits.x_train)}
    print(f"{out['device']}, {args.size} ({len(splits.x_train)} images, {args.epochs} epochs), {len(archs)} archs",
          file=sys.stderr, flush=True)
    if "packed" not in skip:
        out["packed"] = bench_packed(args, archs, setting, splits, space)
    if "compiled" not in skip:
        out["compiled"] = bench_compiled(args, archs, setting, splits, space)
    if "jobs" not in skip:
        out["jobs"] = bench_jobs(args, archs)

    print(f"\n{out['device']}: {args.size}, {len(archs)} archs x {args.epochs} epochs on {len(splits.x_train)} images\n")
    print("| variant | s per arch (amortised) | images/s | vs baseline |\n|---|---|---|---|")
    for rows, key, label in ((out.get("packed"), "pack", "pack {}"), (out.get("jobs"), "jobs", "{} jobs")):
        for row in rows or []:
            ratio = rows[0]["seconds_per_arch"] / row["seconds_per_arch"]
            ips = row.get("images_per_s", len(splits.x_train) * args.epochs / row["seconds_per_arch"])
            note = "" if row.get("equal_to_one_by_one", True) else " (results differ!)"
            print(f"| {label.format(row[key])} | {row['seconds_per_arch']:.2f} | {ips:,.0f} | {ratio:.2f}x{note} |")
    for row in out.get("compiled") or []:
        ratio = out["compiled"][0]["epoch_seconds"] / row["epoch_seconds"]
        print(f"| compile {row['compile']} (epoch after the first; first: {row['first_epoch_seconds']:.1f} s) | "
              f"{row['epoch_seconds']:.2f} s/epoch | {row['images_per_s']:,.0f} | {ratio:.2f}x |")
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"\n(JSON: {path})")


if __name__ == "__main__":
    main()
