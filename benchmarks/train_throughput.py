"""Training images/s: nasflow's engine (DeviceLoader + nasflow.train) vs a plain PyTorch DataLoader loop,
each in both memory formats, so that the input pipeline's gain and the memory format's gain are told apart.

Both sides train the same model (same init), with the same SGD (momentum 0.9, Nesterov, wd 5e-4), batch
size, loss, gradient clipping (5) and fp32, for one warm-up epoch and then timed epochs over the same
images. Only the input pipeline, the loop and the memory format differ:

  ours   the split lives on the device, resized + normalised once; crop (pad image_size//8) + flip are
         one batched gather on the device; losses stay on the device until the epoch ends. "ours CL":
         model and batches channels_last (nasflow.train's default); "ours NCHW": channels_last off.
  plain  a torchvision-style Dataset over the same uint8 images: PIL RandomCrop(32, padding=4) +
         RandomHorizontalFlip (+ Resize(16) for 16 px settings, as BPE does) + ToTensor + Normalize,
         torch DataLoader(shuffle, num_workers 0 and 2; persistent workers, pin_memory on CUDA).
         "plain CL": model.to(memory_format=torch.channels_last) and each batch made channels_last
         (`.contiguous(memory_format=torch.channels_last)`) once on the device; "plain NCHW": neither.

The table gives two shares, each a ratio of images/s (best epoch / best epoch, in brackets median / median):

  pipeline  ours / best plain at the same memory format (CL / CL, NCHW / NCHW): what the input pipeline
            and the loop buy, the format held fixed. "best plain" is the faster worker count of that format
            (named in the cell; by best epoch, and by median epoch for the median ratio).
  format    CL / NCHW within ours, and within plain (best plain CL / best plain NCHW, whose worker
            counts may differ; the JSON also has it per worker count): what channels_last buys.

Their product, ours CL / best plain NCHW, is what this table called "ours / best plain" before the plain
loop had a channels_last variant; the JSON keeps it as `combined`. With `--precision 16` ours runs bf16
autocast on CUDA and plain stays fp32, so the pipeline share then includes the precision too.

Each variant runs one warm-up epoch, then `--repeats` timed epochs, interleaved round-robin (ours CL, ours
NCHW, plain w=0 CL, plain w=0 NCHW, plain w=2 CL, ..., ours CL, ...) so that load from other processes hits
all variants alike. For ours the timed part is the training phase of the epoch (`train_seconds` in
nasflow.train's history: evaluation excluded); its per-call setup (moving/resizing the split, resuming the
checkpoint that lets the runs interleave) is reported separately.

    python benchmarks/train_throughput.py                       # bpe1 on ../shared/data/cifar10.npz, 5000 images
    python benchmarks/train_throughput.py --sizes bpe1,bpe2,full --device cuda --images 20000
    python benchmarks/train_throughput.py --data digits --model cnn
    python benchmarks/train_throughput.py --model darts-supernet --sizes rlnas-darts-small   # RLNAS, DARTS space
    python benchmarks/train_throughput.py --model mobilenet-supernet --sizes rlnas-mobilenet-small  # MobileNet

Writes a markdown table to stdout and JSON to benchmarks/out/train_throughput.json: per setting, every
variant's warm-up, best, median and all epochs (`variants`), the best plain per format, and both shares.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
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
SIZES = {"bpe1": (8, 2, 16), "bpe2": (16, 5, 16), "full": (16, 5, 32),
         "rlnas-darts": (16, 8, 32), "rlnas-darts-small": (8, 5, 16),  # (C, layers, px) for --model darts-supernet
         # (stem width: 10 = width multiplier 0.25, choice blocks (fixed), px) for --model mobilenet-supernet
         "rlnas-mobilenet": (40, 21, 224), "rlnas-mobilenet-small": (10, 21, 32)}

MEMORY_FORMATS = {"cl": True, "nchw": False}  # variant-key suffix -> channels_last
FORMAT_LABELS = {"cl": "CL", "nchw": "NCHW"}


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
    """A function (channels, depth, num_classes, image_size) -> nn.Module, and a label saying what it builds."""
    if kind in ("auto", "nb201"):
        try:
            from nasflow.registry import build_network

            build_network("nb201", arch, channels=8, depth=1, num_classes=10)  # fail early
            return (lambda c, n, k, px: build_network("nb201", arch, channels=c, depth=n, num_classes=k),
                    f"NB201 TinyNetwork {arch}")
        except Exception as e:  # the space may not exist yet in a partial checkout
            if kind == "nb201":
                raise SystemExit(f"error: cannot build the NB201 network: {type(e).__name__}: {e}")
            print(f"note: NB201 network unavailable ({type(e).__name__}); using a small CNN", file=sys.stderr)
    if kind == "darts-supernet":  # RLNAS' DARTS supernet: a uniform 2-input-per-node path per batch
        from nasflow.models.darts_supernet import DartsSupernet

        return (lambda c, n, k, px: DartsSupernet(c, n, k)), "RLNAS DARTS supernet (depth = layers)"
    if kind == "mobilenet-supernet":  # RLNAS' MobileNet-like supernet: a uniform choice per block per batch
        from nasflow.models.mobilenet_supernet import MobileNetSupernet
        from nasflow.spaces.mobilenet import N_BLOCKS, channels_to_width

        def mobilenet(c: int, n: int, k: int, px: int) -> nn.Module:
            if n != N_BLOCKS:
                raise SystemExit(f"error: the mobilenet supernet has {N_BLOCKS} choice blocks, not {n} "
                                 "(use an rlnas-mobilenet* size)")
            return MobileNetSupernet(channels_to_width(c), k, input_size=px)

        return mobilenet, "RLNAS MobileNet-like supernet (C = stem width, 40 x width multiplier)"
    if ":" in kind:  # module:function taking (channels, depth, num_classes)
        import importlib

        mod, name = kind.split(":", 1)
        fn = getattr(importlib.import_module(mod), name)
        return (lambda c, n, k, px: fn(c, n, k)), kind
    return (lambda c, n, k, px: small_cnn(c, n, k)), "small CNN (3 stages x depth conv-BN-ReLU)"


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


class PlainRunner:
    """A plain DataLoader loop, one epoch per call (the DataLoader and its workers persist); with
    `channels_last` the model and each batch (once on the device) are channels_last, as a user would."""

    def __init__(self, model, splits: Splits, cfg: TrainConfig, device, workers: int, seed: int,
                 channels_last: bool):
        x_hwc = splits.x_train.permute(0, 2, 3, 1).contiguous().numpy()
        ds = PlainDataset(x_hwc, splits.y_train.numpy(),
                          plain_transform(x_hwc.shape[1], cfg.image_size, splits.mean, splits.std))
        self.loader = torch.utils.data.DataLoader(
            ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
            persistent_workers=workers > 0, pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed))
        self.model, self.device, self.cfg = model.to(device).train(), device, cfg
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                   weight_decay=cfg.weight_decay)

    def epoch(self) -> float:
        """Train one epoch; images/s."""
        dev, model, opt = self.device, self.model, self.opt
        loss_sum = torch.zeros((), device=dev)
        seen = 0
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        for x, y in self.loader:
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            x = x.contiguous(memory_format=self.memory_format)  # a no-op for NCHW
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), self.cfg.grad_clip)
            opt.step()
            loss_sum += loss.detach() * y.shape[0]
            seen += y.shape[0]
        float(loss_sum)  # one sync per epoch, like ours
        return seen / (time.perf_counter() - t0)

    def close(self):
        del self.loader  # shuts persistent workers down


# -------------------------------------------------------------------------------------------- ours

class OursRunner:
    """nasflow.train itself, one epoch per call: each call resumes from a checkpoint and stops after
    one more epoch (`stop_after_epochs`), so ours can be interleaved with the plain loops. The rate is
    the epoch's training phase (`train_seconds`); loader setup and the checkpoint write are outside it."""

    def __init__(self, model, splits: Splits, cfg: TrainConfig, device, seed: int, ckpt: Path):
        # a one-batch eval split: evaluation is not what we time
        self.splits = Splits(splits.x_train, splits.y_train, splits.x_eval[:cfg.batch_size],
                             splits.y_eval[:cfg.batch_size], splits.num_classes, splits.mean, splits.std,
                             splits.name, splits.eval_split)
        self.model, self.cfg, self.device, self.seed, self.ckpt = model, cfg, device, seed, ckpt
        self.done = 0
        self.setup_seconds = []

    def epoch(self) -> float:
        self.done += 1
        t0 = time.perf_counter()
        out = train(self.model, self.splits, self.cfg, seed=self.seed, device=self.device, progress=False,
                    checkpoint=self.ckpt, stop_after_epochs=self.done)
        h = out["history"][-1]
        self.setup_seconds.append(time.perf_counter() - t0 - h["seconds"])
        return h["train_images"] / h["train_seconds"]

    def close(self):
        self.ckpt.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ shares

def ratio(num: dict, den: dict) -> dict:
    return {"best": num["best"] / den["best"], "median": num["median"] / den["median"]}


def shares(variants: dict, workers: list[int]) -> dict:
    """The best plain per memory format, and the two shares of the gain (module docstring), from the
    variants' best/median images/s. The best plain's best and median may come from different worker counts."""
    plain_best = {}
    for fmt in MEMORY_FORMATS:
        plain = [f"plain_w{w}_{fmt}" for w in workers]
        by_best = max(plain, key=lambda k: variants[k]["best"])
        by_median = max(plain, key=lambda k: variants[k]["median"])
        plain_best[fmt] = {"best": variants[by_best]["best"], "median": variants[by_median]["median"],
                           "by_best": by_best, "by_median": by_median}
    pipeline = {fmt: ratio(variants[f"ours_{fmt}"], plain_best[fmt]) for fmt in MEMORY_FORMATS}
    fmt_share = {"ours": ratio(variants["ours_cl"], variants["ours_nchw"]),
                 "plain_best": ratio(plain_best["cl"], plain_best["nchw"])}
    fmt_share.update({f"plain_w{w}": ratio(variants[f"plain_w{w}_cl"], variants[f"plain_w{w}_nchw"])
                      for w in workers})
    return {"plain_best": plain_best, "pipeline_share": pipeline, "format_share": fmt_share,
            "combined": ratio(variants["ours_cl"], plain_best["nchw"])}


def best_plain_label(row: dict, fmt: str) -> str:
    """'w=2', or 'w=2 (w=0)' when the best median came from another worker count than the best epoch."""
    best = row["plain_best"][fmt]
    ws = [row["variants"][best[by]]["workers"] for by in ("by_best", "by_median")]
    return f"w={ws[0]}" if ws[0] == ws[1] else f"w={ws[0]} (w={ws[1]})"


# -------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"),
                    help="an .npz (x_train, y_train, x_test, y_test) or 'digits'")
    ap.add_argument("--images", type=int, default=5000, help="training images per epoch")
    ap.add_argument("--sizes", default="bpe1", help=f"comma list of {', '.join(SIZES)}")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--model", default="auto",
                    help="auto | nb201 | cnn | darts-supernet | mobilenet-supernet | "
                         "module:function(C, N, classes)")
    ap.add_argument("--arch", default=NB201_INDEX0, help="NB201 cell string (default: index 0)")
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed epochs per variant after one warm-up epoch, interleaved round-robin")
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
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()

    rows = []
    with claim_device(args.device) as device, tempfile.TemporaryDirectory(prefix="nasflow-bench-") as tmp:
        tmp_dir = Path(tmp)
        dev_name = describe(device)
        print(f"device: {dev_name}; data: {splits!r}; model: {model_label}", file=sys.stderr)
        for size in sizes:
            C, N, px = SIZES[size]
            cfg = TrainConfig(epochs=1 + args.repeats, batch_size=args.batch_size, lr=0.05, image_size=px,
                              momentum=0.9, nesterov=True, grad_clip=5.0,  # as the plain loop's optimiser
                              precision=args.precision)

            def fresh():
                seed_everything(args.seed)
                return factory(C, N, splits.num_classes, px)

            n_params = sum(p.numel() for p in fresh().parameters())
            runners, specs = {}, {}  # variant key -> runner; -> (loop, DataLoader workers, memory format)
            for fmt, channels_last in MEMORY_FORMATS.items():
                runners[f"ours_{fmt}"] = OursRunner(fresh(), splits,
                                                    dataclasses.replace(cfg, channels_last=channels_last),
                                                    device, args.seed, tmp_dir / f"{size}-{fmt}.pt")
                specs[f"ours_{fmt}"] = ("ours", None, fmt)
            for w in workers:
                for fmt, channels_last in MEMORY_FORMATS.items():
                    runners[f"plain_w{w}_{fmt}"] = PlainRunner(fresh(), splits, cfg, device, w, args.seed,
                                                               channels_last)
                    specs[f"plain_w{w}_{fmt}"] = ("plain", w, fmt)
            rates = {k: [] for k in runners}
            try:
                for rep in range(1 + args.repeats):  # round-robin: contention hits every variant alike
                    for k, r in runners.items():
                        rates[k].append(r.epoch())
                        print(f"[{size}] {'warm-up' if rep == 0 else f'epoch {rep}'} {k}: "
                              f"{rates[k][-1]:.0f} img/s", file=sys.stderr)
            finally:
                for r in runners.values():
                    r.close()
            variants = {}
            for k, v in rates.items():
                timed = v[1:] if len(v) > 1 else v
                loop, w, fmt = specs[k]
                variants[k] = {"loop": loop, "workers": w, "memory_format": fmt,
                               "best": max(timed), "median": float(np.median(timed)), "warmup": v[0], "all": v}
                if loop == "ours":
                    variants[k]["setup_seconds_median"] = float(np.median(runners[k].setup_seconds))
            row = {"setting": size, "channels": C, "cells_per_stage": N, "image_size": px,
                   "batch_size": args.batch_size, "params": n_params, "images": len(splits.y_train),
                   "variants": variants, **shares(variants, workers)}
            rows.append(row)

    result = {"device": dev_name, "torch": torch.__version__, "python": platform.python_version(),
              "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
              "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
              "data": args.data, "model": model_label, "precision_ours": args.precision,
              "timed": (f"best and median of {args.repeats} epochs per variant after one warm-up epoch, "
                        "interleaved round-robin; ours = training phase only"),
              "legend": ("variant keys: {ours, plain_w<workers>}_{cl = channels_last, nchw}; pipeline_share[f] "
                         "= ours_f / plain_best[f]; format_share[x] = x CL / x NCHW; combined = ours_cl / "
                         "plain_best[nchw]; each ratio as best / best and median / median"),
              "rows": rows}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out)

    vcols = [f"ours {FORMAT_LABELS[f]}" for f in MEMORY_FORMATS]
    vcols += [f"plain w={w} {FORMAT_LABELS[f]}" for w in workers for f in MEMORY_FORMATS]
    share_cols = ["pipeline, CL: ours CL / best plain CL", "pipeline, NCHW: ours NCHW / best plain NCHW",
                  "format, ours: ours CL / ours NCHW", "format, plain: best plain CL / best plain NCHW"]
    print(f"\nTraining images/s on {dev_name}, {model_label}, {rows[0]['images'] if rows else 0} images; "
          f"best (median) of {args.repeats} epochs after a warm-up; load average before "
          f"{load_before[0]:.1f}, after {result['loadavg_after'][0]:.1f}\n")
    print("| setting | C | N | px | batch | params | " + " | ".join(vcols + share_cols) + " |")
    print("|---" * (6 + len(vcols) + len(share_cols)) + "|")
    for r in rows:
        v = r["variants"]
        cell = lambda k: f"{v[k]['best']:.0f} ({v[k]['median']:.0f})"  # noqa: E731
        times = lambda q: f"{q['best']:.2f}x ({q['median']:.2f}x)"  # noqa: E731
        cells = [cell(k) for k in v]
        cells += [f"{times(r['pipeline_share'][f])} vs {best_plain_label(r, f)}" for f in MEMORY_FORMATS]
        cells += [times(r["format_share"]["ours"]), f"{times(r['format_share']['plain_best'])}, "
                  f"{best_plain_label(r, 'cl')} / {best_plain_label(r, 'nchw')}"]
        print(f"| {r['setting']} | {r['channels']} | {r['cells_per_stage']} | {r['image_size']} | "
              f"{r['batch_size']} | {r['params']:,} | " + " | ".join(cells) + " |")
    print("\nCL = channels_last. Variant cells: images/s, best (median) epoch. Ratio cells: best / best "
          "(median / median). best plain = the plain worker count (named) with the most images/s in that "
          "memory format, by best epoch (by median epoch for the median ratio, in brackets when it differs).")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
