"""Cost of one search epoch of each differentiable / weight-sharing method (nasflow.search.differentiable).

Each method runs `--epochs` epochs (default 2) of `run_search` on the same data at the same size; the table
gives the steady-state seconds per epoch (the fastest epoch after the first, which warms up), the
seconds per iteration (one train batch + one valid batch), images per second (train-half images) and
the cost relative to GDAS. An epoch's seconds include its validation pass (the derived arch over the valid
half, no augmentation; a few percent of the epoch). RSPS/SETN's final pick (`--select-num` archs, one
valid batch each) is reported separately since it is paid once per search. ENAS' epoch includes its
controller's training (`--ctl-train-steps` x `--ctl-num-aggregate` forwards of the shared network on valid
batches, ADL: 50 x 20 = 1,000 per epoch whatever the data size, so with few `--images` its relative cost is
far above the paper-size one) and its 10-sample per-epoch pick; its final pick (`--select-num` controller
samples) is reported like RSPS/SETN's.

Small size on the CPU (the default; CIFAR-10 from ../shared/data/cifar10.npz when present, else digits):

    python benchmarks/search_cost.py                      # C=8, N=1, 16 px, 1,024 images per half
    python benchmarks/search_cost.py --space darts        # DARTS space: C=8, 5 layers (no SETN, ENAS)

Paper size on a GPU (NB201: C=16, N=5, 32 px, batch 64, 25k images per half; then multiply s/epoch by the
paper's epochs -- GDAS 240 (ADL's GDAS.config; 250 in the paper's text), DARTS 50, RSPS/SETN 250, ENAS
310 (ADL's ENAS.config; ADL trains ENAS at batch 128) -- to compare with NB201's search seconds: RSPS 8007,
DARTS-V1 11626, DARTS-V2 35782, GDAS 31610, SETN 34140):

    python benchmarks/search_cost.py --device cuda --C 16 --N 5 --image-size 32 --images 25000 --epochs 2

DARTS space at DARTS' search size (C=16, 8 layers, batch 64, 32 px, 25k images per half; DARTS' plain
momentum SGD and weight decay 3e-4):

    python benchmarks/search_cost.py --space darts --device cuda --C 16 --layers 8 --image-size 32 --images 25000

Writes a markdown table to stdout and JSON to benchmarks/out/search_cost.json (search_cost_darts.json for
`--space darts`). On a shared machine the
figures vary with the load (best-of epochs helps, nothing removes it).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from nasflow.data import load_dataset  # noqa: E402
from nasflow.search.differentiable import SPACE_METHODS, run_search  # noqa: E402

# NB201's search runs (the nb201 space only)
PAPER_EPOCHS = {"gdas": 240, "darts-v1": 50, "darts-v2": 50, "rsps": 250, "setn": 250, "enas": 310}
PAPER_SECONDS = {"rsps": 8007.13, "darts-v1": 11625.77, "darts-v2": 35781.80, "gdas": 31609.80, "setn": 34139.53}
# space -> (C, depth, weight decay, nesterov) defaults: small CPU sizes; NB201's ADL / DARTS' own optimiser
SPACE_DEFAULTS = {"nb201": (8, 1, 5e-4, True), "darts": (8, 5, 3e-4, False)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"),
                    help="an .npz (x_train/y_train/x_test/y_test); 'digits' or a missing file = digits")
    ap.add_argument("--images", type=int, default=1024, help="images per half (train / valid)")
    ap.add_argument("--space", choices=sorted(SPACE_METHODS), default="nb201")
    ap.add_argument("--C", type=int, default=None, help="channels (default 8)")
    ap.add_argument("--depth", "--N", "--layers", dest="depth", type=int, default=None,
                    help="nb201: cells per stage N (default 1); darts: total cells, layers (default 5)")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--select-num", type=int, default=100)
    ap.add_argument("--ctl-train-steps", type=int, default=50, help="ENAS controller steps per epoch (ADL: 50)")
    ap.add_argument("--ctl-num-aggregate", type=int, default=20,
                    help="ENAS valid batches per controller step (ADL: 20)")
    ap.add_argument("--methods", default=None, help="comma-separated (default: every method of the space)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--out", default=None,
                    help="JSON path (default benchmarks/out/search_cost.json; search_cost_darts.json for darts)")
    args = ap.parse_args()
    C_default, depth_default, w_wd, w_nesterov = SPACE_DEFAULTS[args.space]
    args.C = C_default if args.C is None else args.C
    args.depth = depth_default if args.depth is None else args.depth
    if args.out is None:
        name = "search_cost.json" if args.space == "nb201" else f"search_cost_{args.space}.json"
        args.out = str(ROOT / "benchmarks" / "out" / name)
    if args.methods is None:
        args.methods = ",".join(SPACE_METHODS[args.space])
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.data != "digits" and Path(args.data).is_file():
        splits = load_dataset("npz", path=args.data, eval_split="valid", subset=args.images)
        data_name = Path(args.data).name
    else:
        splits = load_dataset("digits", eval_split="valid", subset=args.images)
        data_name = "digits"
    n_train = len(splits.y_train)
    steps = -(-n_train // args.batch_size)
    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        t0 = time.perf_counter()
        r = run_search(method, splits, space=args.space, C=args.C, depth=args.depth, epochs=args.epochs,
                       batch_size=args.batch_size, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9,
                       w_nesterov=w_nesterov, w_wd=w_wd, grad_clip=5.0, a_lr=3e-4,
                       a_betas=(0.5, 0.999), a_wd=1e-3, tau_max=10.0, tau_min=0.1, seed=0, device=args.device,
                       progress=False, image_size=args.image_size, select_num=args.select_num,
                       ctl_train_steps=args.ctl_train_steps, ctl_num_aggregate=args.ctl_num_aggregate)
        wall = time.perf_counter() - t0
        secs = [h["seconds"] for h in r["history"]]
        epoch_s = min(secs[1:]) if len(secs) > 1 else secs[0]
        rows.append({"method": method, "epoch_seconds": epoch_s, "epoch_seconds_all": secs,
                     "ms_per_iteration": 1000 * epoch_s / steps, "images_per_s": n_train / epoch_s,
                     "select_seconds": (r["selection"] or {}).get("seconds"), "wall_seconds": wall,
                     "best": r["best"],
                     "paper_epochs": PAPER_EPOCHS.get(method) if args.space == "nb201" else None,
                     "paper_search_seconds": PAPER_SECONDS.get(method) if args.space == "nb201" else None})
        print(f"{method}: {epoch_s:.2f} s/epoch", file=sys.stderr)
    gdas = next((r["epoch_seconds"] for r in rows if r["method"] == "gdas"), None)
    for r in rows:
        r["relative_to_gdas"] = r["epoch_seconds"] / gdas if gdas else None

    device = args.device
    if torch.device(device).type == "cuda":
        device = torch.cuda.get_device_name(torch.device(device))
    else:
        device = f"cpu ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()})"
    depth_name = "N" if args.space == "nb201" else "layers"
    print(f"\nSearch cost per epoch ({args.space} space): {data_name}, {n_train} + {len(splits.y_eval)} images, "
          f"C={args.C}, {depth_name}={args.depth}, {args.image_size} px, batch {args.batch_size}, "
          f"{steps} iterations/epoch, {device}\n")
    print("| method | s / epoch | ms / iteration | images / s | x GDAS | final pick (s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        rel = f"{r['relative_to_gdas']:.2f}" if r["relative_to_gdas"] else "-"
        sel = f"{r['select_seconds']:.2f}" if r["select_seconds"] is not None else "-"
        print(f"| {r['method']} | {r['epoch_seconds']:.2f} | {r['ms_per_iteration']:.1f} | "
              f"{r['images_per_s']:.0f} | {rel} | {sel} |")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "space": args.space, "data": data_name, "images_per_half": n_train, "valid_images": len(splits.y_eval),
        "C": args.C, "depth": args.depth, "w_wd": w_wd, "w_nesterov": w_nesterov,
        "image_size": args.image_size, "batch_size": args.batch_size, "epochs": args.epochs,
        "select_num": args.select_num, "ctl_train_steps": args.ctl_train_steps,
        "ctl_num_aggregate": args.ctl_num_aggregate, "iterations_per_epoch": steps, "device": device,
        "torch": torch.__version__, "python": platform.python_version(), "rows": rows,
    }, indent=1) + "\n")


if __name__ == "__main__":
    main()
