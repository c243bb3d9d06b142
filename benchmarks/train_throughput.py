"""Training images/s: nasflow's engine (DeviceLoader + nasflow.train) vs a plain PyTorch DataLoader loop.

Both sides train the same model (same init), with the same SGD (momentum 0.9, Nesterov, wd 5e-4), batch
size, loss, gradient clipping (5) and fp32, for one warm-up epoch and then one timed epoch over the same
images. Only the input pipeline and the loop differ:

  ours   the split lives on the device, resized + normalised once; crop (pad image_size//8) + flip are
         one batched gather on the device; losses stay on the device until the epoch ends.
  plain  a torchvision-style Dataset over the same uint8 images: PIL RandomCrop(32, padding=4) +
         RandomHorizontalFlip (+ Resize(16) for 16 px settings, as BPE does) + ToTensor + Normalize,
         torch DataLoader(shuffle, num_workers 0 and 2; persistent workers, pin_memory on CUDA) --
         the better of the two is the baseline.

The timed number for ours is the training phase of epoch 2 (`train_seconds` in nasflow.train's history,
evaluation excluded); its one-time setup (moving/resizing the split) is reported separately.

    python benchmarks/train_throughput.py                       # bpe1 on ../shared/data/cifar10.npz, 5000 images
    python benchmarks/train_throughput.py --sizes bpe1,bpe2,full --device cuda --images 20000
    python benchmarks/train_throughput.py --data digits --model cnn

Writes a markdown table to stdout and JSON to benchmarks/out/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow.data import Splits, load_dataset  # noqa: E402
from nasflow.devices import claim_device, describe  # noqa: E402
from nasflow.train import TrainConfig, seed_everything, train  # noqa: E402

NB201_INDEX0 = ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+"
                "|nor_conv_1x1~0|skip_connect~1|skip_connect~2|")
# name: (channels C, cells per stage N, image size)
SIZES = {"bpe1": (8, 2, 16), "bpe2": (16, 5, 16), "full": (16, 5, 32)}


# ------------------------------------------------------------------------------------------- models

def small_cnn(channels: int, depth: int, num_classes: int) -> nn.Module:
    """Fallback model when nasflow.spaces is unavailable: a few conv-BN-ReLU layers."""
    layers, c_in = [], 3
    for stage in range(3):
        c = channels * 2 ** stage
        for i in range(depth):
            stride = 2 if (i == 0 and stage > 0) else 1
            layers += [nn.Conv2d(c_in, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, num_classes))


def model_factory(kind: str, arch: str):
    """A function (channels, depth, num_classes) -> nn.Module, and a label saying what it builds."""
    if kind in ("auto", "nb201"):
        try:
            from nasflow.spaces import get_space

            space = get_space("nb201")
            space.build_network(arch, channels=8, depth=1, num_classes=10)  # fail early
            return (lambda c, n, k: space.build_network(arch, channels=c, depth=n, num_classes=k),
                    f"NB201 TinyNetwork {arch}")
        except Exception as e:  # the space may not exist yet in a partial checkout
            if kind == "nb201":
                raise SystemExit(f"error: cannot build the NB201 network: {type(e).__name__}: {e}")
            print(f"note: NB201 network unavailable ({type(e).__name__}); using a small CNN", file=sys.stderr)
    if ":" in kind:  # module:function taking (channels, depth, num_classes)
        import importlib

        mod, fn = kind.split(":", 1)
        return getattr(importlib.import_module(mod), fn), kind
    return small_cnn, "small CNN (3 stages x depth conv-BN-ReLU)"


# ------------------------------------------------------------------------------------- plain loop

class PlainDataset(torch.utils.data.Dataset):
    """What a typical CIFAR script does: uint8 HWC array -> PIL -> torchvision transforms per image."""

    def __init__(self, x_hwc: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x_hwc, y, transform

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def plain_transform(src_size: int, image_size: int, mean, std):
    import torchvision.transforms as T

    ts = [T.RandomCrop(src_size, padding=src_size // 8), T.RandomHorizontalFlip()]
    if image_size != src_size:
        ts.append(T.Resize(image_size))  # after the crop, as BPE does
    ts += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(ts)


def plain_epoch_rate(model, splits: Splits, cfg: TrainConfig, device, workers: int, seed: int) -> dict:
    """Images/s of the second epoch of a plain DataLoader loop (the first one warms up)."""
    x_hwc = splits.x_train.permute(0, 2, 3, 1).contiguous().numpy()
    ds = PlainDataset(x_hwc, splits.y_train.numpy(),
                      plain_transform(x_hwc.shape[1], cfg.image_size, splits.mean, splits.std))
    g = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, pin_memory=device.type == "cuda",
                                         generator=g)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                          weight_decay=cfg.weight_decay)
    rates = []
    for epoch in range(2):
        loss_sum = torch.zeros((), device=device)
        seen = 0
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            loss_sum += loss.detach() * y.shape[0]
            seen += y.shape[0]
        float(loss_sum)  # one sync per epoch, like ours
        rates.append(seen / (time.perf_counter() - t0))
    del loader  # shuts persistent workers down
    return {"images_per_s": rates[-1], "warmup_images_per_s": rates[0]}


# -------------------------------------------------------------------------------------------- ours

def ours_epoch_rate(model, splits: Splits, cfg: TrainConfig, device, seed: int) -> dict:
    # a one-batch eval split: evaluation is not what we time (train_seconds excludes it anyway)
    small = Splits(splits.x_train, splits.y_train, splits.x_eval[:cfg.batch_size],
                   splits.y_eval[:cfg.batch_size], splits.num_classes, splits.mean, splits.std,
                   splits.name, splits.eval_split)
    t0 = time.perf_counter()
    out = train(model, small, cfg, seed=seed, device=device, progress=False)
    total = time.perf_counter() - t0
    h = out["history"]
    setup = total - sum(e["seconds"] for e in h)
    return {"images_per_s": h[-1]["train_images"] / h[-1]["train_seconds"],
            "warmup_images_per_s": h[0]["train_images"] / h[0]["train_seconds"],
            "setup_seconds": setup}


# -------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"),
                    help="an .npz (x_train, y_train, x_test, y_test) or 'digits'")
    ap.add_argument("--images", type=int, default=5000, help="training images per epoch")
    ap.add_argument("--sizes", default="bpe1", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--model", default="auto", help="auto | nb201 | cnn | module:function(C, N, classes)")
    ap.add_argument("--arch", default=NB201_INDEX0, help="NB201 cell string (default: index 0)")
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    ap.add_argument("--precision", type=int, default=32, choices=[16, 32],
                    help="ours only (16 = bf16 autocast on CUDA); the plain loop is always fp32")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "train_throughput.json"))
    args = ap.parse_args(argv)

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        ap.error(f"unknown size(s) {', '.join(bad)} (known: {', '.join(SIZES)})")
    workers = [int(w) for w in args.workers.split(",")]
    if args.data == "digits":
        splits = load_dataset("digits", subset=args.images)
    else:
        splits = load_dataset("npz", path=args.data, subset=args.images)
    factory, model_label = model_factory(args.model, args.arch)

    rows = []
    with claim_device(args.device) as device:
        dev_name = describe(device)
        print(f"device: {dev_name}; data: {splits!r}; model: {model_label}", file=sys.stderr)
        for size in sizes:
            C, N, px = SIZES[size]
            cfg = TrainConfig(epochs=2, batch_size=args.batch_size, lr=0.05, image_size=px,
                              precision=args.precision)
            cfg_plain = TrainConfig(epochs=2, batch_size=args.batch_size, lr=0.05, image_size=px)

            def fresh():
                seed_everything(args.seed)
                return factory(C, N, splits.num_classes)

            n_params = sum(p.numel() for p in fresh().parameters())
            row = {"setting": size, "channels": C, "cells_per_stage": N, "image_size": px,
                   "batch_size": args.batch_size, "params": n_params, "images": len(splits.y_train)}
            print(f"[{size}] ours ...", file=sys.stderr)
            row["ours"] = ours_epoch_rate(fresh(), splits, cfg, device, args.seed)
            row["plain"] = {}
            for w in workers:
                print(f"[{size}] plain, num_workers={w} ...", file=sys.stderr)
                row["plain"][str(w)] = plain_epoch_rate(fresh(), splits, cfg_plain, device, w, args.seed)
            best_w = max(row["plain"], key=lambda k: row["plain"][k]["images_per_s"])
            row["plain_best_workers"] = int(best_w)
            row["speedup"] = row["ours"]["images_per_s"] / row["plain"][best_w]["images_per_s"]
            rows.append(row)

    result = {"device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "data": args.data, "model": model_label, "precision_ours": args.precision,
              "timed": "second epoch, training phase only; first epoch = warm-up", "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)

    wcols = " | ".join(f"plain w={w} img/s" for w in workers)
    print(f"\nTraining throughput on {dev_name} ({model_label}; {rows[0]['images'] if rows else 0} "
          f"images, second epoch)\n")
    print(f"| setting | C | N | px | batch | params | ours img/s | {wcols} | speed-up vs best plain |")
    print("|---|---|---|---|---|---|---|" + "---|" * len(workers) + "---|")
    for r in rows:
        ws = " | ".join(f"{r['plain'][str(w)]['images_per_s']:.0f}" for w in workers)
        print(f"| {r['setting']} | {r['channels']} | {r['cells_per_stage']} | {r['image_size']} | "
              f"{r['batch_size']} | {r['params']:,} | {r['ours']['images_per_s']:.0f} | {ws} | "
              f"{r['speedup']:.2f}x |")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
