"""Speed of BPE1 proxy training per DARTS genotype: images/s and seconds per architecture.

BPE1 (Zheng et al., CVPR 2020) trains each genotype's NetworkCIFAR with C=8, 6 layers, 16-px images, batch
128, SGD lr 0.03 (momentum 0.9, wd 3e-4, cosine), auxiliary head weight 0.4, drop path ramped to 0.2, grad
clip 5, fp32, for 10 epochs over CIFAR-10's 50,000 training images, evaluating the 10,000 test images
after every epoch (the score is the best test accuracy). The paper reports 0.085 GPU-hours per arch.

Here each genotype is trained with nasflow's engine (nasflow.train, the code the pipeline runs) on a
subset of CIFAR-10 (`--images` training and as many evaluation images, from ../shared/data/cifar10.npz
via nasflow.data.load_dataset("npz")) for 1 + `--repeats` epochs: the first warms up (allocator,
oneDNN/cuDNN kernel selection), the others are timed -- the best training phase gives training images/s,
the best evaluation phase evaluation images/s (the best, not the mean, because other processes on a shared
machine only ever slow an epoch down; all timings are in the JSON). Drop path is on from the second epoch
(the ramp 0 -> 0.2 of the cosine schedule over the 1 + repeats epochs). A full BPE1 run is extrapolated as

    seconds per arch = 10 x (50,000 / train images/s + 10,000 / eval images/s)

Genotypes: DARTS_V2, DARTS_V1 and `--random` BPE-style random ones (nasflow.spaces.darts.sample).

    python benchmarks/darts_bpe_speed.py                        # CPU, 2,560 images, 2 random genotypes
    python benchmarks/darts_bpe_speed.py --threads 1            # on a CPU shared with other jobs
    python benchmarks/darts_bpe_speed.py --device cuda --images 20000 --random 8

On a CPU whose cores are busy with other jobs, use `--threads 1`: torch's intra-op threads wait for each
other at every op, and a descheduled thread stalls the step (here 2 threads on 2 busy cores ran a BPE1
step 13x slower than 1 thread).

Prints a markdown table; writes JSON to benchmarks/out/darts_bpe_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow.counting import count_flops, count_params  # noqa: E402
from nasflow.data import load_dataset  # noqa: E402
from nasflow.devices import claim_device, describe  # noqa: E402
from nasflow.models.darts import build_network  # noqa: E402
from nasflow.spaces import darts  # noqa: E402
from nasflow.train import TrainConfig, train  # noqa: E402

BPE1 = {"channels": 8, "layers": 6, "image_size": 16, "batch_size": 128, "lr": 0.03, "epochs": 10}
FULL_TRAIN, FULL_EVAL = 50_000, 10_000  # CIFAR-10 train / test images per BPE1 epoch
PAPER_GPU_HOURS = 0.085  # BPE1 cost per arch in the paper


def bench_arch(arch: str, splits, device, precision: int, seed: int, repeats: int) -> dict:
    torch.manual_seed(seed)
    model = build_network(arch, channels=BPE1["channels"], depth=BPE1["layers"], num_classes=10)
    bare = build_network(arch, channels=BPE1["channels"], depth=BPE1["layers"], num_classes=10, auxiliary=False)
    params = count_params(bare)
    flops = count_flops(bare, (3, BPE1["image_size"], BPE1["image_size"]))
    cfg = TrainConfig(epochs=1 + repeats, batch_size=BPE1["batch_size"], lr=BPE1["lr"], momentum=0.9, nesterov=False,
                      weight_decay=3e-4, grad_clip=5.0, image_size=BPE1["image_size"], cutout=0,
                      precision=precision, aux_weight=0.4, drop_path=0.2)
    t0 = time.perf_counter()
    result = train(model, splits, cfg, seed=seed, device=device, progress=False)
    wall = time.perf_counter() - t0
    timed = result["history"][1:]
    train_s = [h["train_seconds"] for h in timed]
    eval_s = [h["seconds"] - h["train_seconds"] for h in timed]
    train_ips = timed[0]["train_images"] / min(train_s)
    eval_ips = len(splits.y_eval) / min(eval_s)
    epoch_s = FULL_TRAIN / train_ips + FULL_EVAL / eval_ips
    return {
        "arch": arch,
        "params": params,
        "mflops_16px": flops / 1e6,
        "train_images": timed[0]["train_images"],
        "eval_images": len(splits.y_eval),
        "train_images_per_s": train_ips,
        "eval_images_per_s": eval_ips,
        "full_epoch_seconds": epoch_s,
        "seconds_per_arch": BPE1["epochs"] * epoch_s,
        "timed_train_seconds": train_s,
        "timed_eval_seconds": eval_s,
        "warmup_seconds": result["history"][0]["seconds"],
        "wall_seconds": wall,
        "final_eval_acc": result["final_acc"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"),
                    help="CIFAR-10 .npz (x_train, y_train, x_test, y_test)")
    ap.add_argument("--images", type=int, default=2560, help="training (and evaluation) images per epoch")
    ap.add_argument("--random", type=int, default=2, help="random genotypes besides DARTS_V2 and DARTS_V1")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--precision", type=int, default=32, choices=[16, 32], help="16 = bf16 autocast on CUDA")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--repeats", type=int, default=2, help="timed epochs after the warm-up epoch")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "darts_bpe_speed.json"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    archs = [("DARTS_V2", darts.DARTS_V2), ("DARTS_V1", darts.DARTS_V1)]
    archs += [(f"random {i}", a) for i, a in enumerate(darts.sample(args.random, seed=args.seed))]
    splits = load_dataset("npz", path=args.data, subset=args.images, split_seed=args.seed)

    rows = []
    load_before = os.getloadavg()
    with claim_device(args.device) as device:
        dev_name = describe(device)
        for name, arch in archs:
            row = bench_arch(arch, splits, device, args.precision, args.seed, args.repeats)
            row["name"] = name
            rows.append(row)
            print(f"  {name}: {row['train_images_per_s']:.0f} train img/s, {row['seconds_per_arch']:.0f} s/arch",
                  file=sys.stderr, flush=True)

    load_after = os.getloadavg()
    median_s = statistics.median(r["seconds_per_arch"] for r in rows)
    print(f"# BPE1 speed per DARTS genotype on {dev_name}, {'bf16' if args.precision == 16 else 'fp32'}")
    print(f"C={BPE1['channels']}, {BPE1['layers']} layers, {BPE1['image_size']} px, batch {BPE1['batch_size']}, "
          f"aux head 0.4, drop path 0.2; best of {args.repeats} timed epochs of {args.images} CIFAR-10 images "
          f"(after one warm-up), "
          f"extrapolated to {BPE1['epochs']} epochs x ({FULL_TRAIN:,} train + {FULL_EVAL:,} eval images)\n")
    print("| genotype | params | MFLOPs (16 px) | train img/s | eval img/s | s / full epoch | s / arch (10 ep) "
          "| h / arch |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['params']:,} | {r['mflops_16px']:.2f} | {r['train_images_per_s']:,.0f} | "
              f"{r['eval_images_per_s']:,.0f} | {r['full_epoch_seconds']:,.1f} | {r['seconds_per_arch']:,.0f} | "
              f"{r['seconds_per_arch'] / 3600:.3f} |")
    print(f"\nmedian {median_s:,.0f} s/arch = {median_s / 3600:.3f} h/arch; the paper: {PAPER_GPU_HOURS} GPU-h "
          f"({PAPER_GPU_HOURS * 3600:.0f} s) per arch")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "darts_bpe_speed",
        "device": dev_name,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "repeats": args.repeats,
        "precision": args.precision,
        "setting": {**BPE1, "aux_weight": 0.4, "drop_path": 0.2, "weight_decay": 3e-4, "momentum": 0.9},
        "images": args.images,
        "extrapolation": {"train_images": FULL_TRAIN, "eval_images": FULL_EVAL, "epochs": BPE1["epochs"]},
        "median_seconds_per_arch": median_s,
        "paper_gpu_hours_per_arch": PAPER_GPU_HOURS,
        "rows": rows,
    }
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
