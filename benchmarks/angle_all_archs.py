"""Scoring all 15,625 NB201 cells by the RLNAS angle: time, and (optionally) Kendall tau vs the benchmark.

Timing: an `NB201Supernet` (C, N) is built, its initial state kept, and its weights moved -- by a random
perturbation (default) or by a short training on random labels (`--train-epochs`) -- then
`nasflow.estimators.angle.AngleScorer` scores all 15,625 cells (one pass over the two state dicts, then a
vectorised score of every arch; best of `--repeats`). A sample of archs is re-scored the slow way
(`angle()`, explicit vectors as RLNAS builds them) to check agreement and give the per-arch cost of it.

Training (`--train-epochs E`): the supernet is trained with `nasflow.train.train` on random labels
(`nasflow.data.random_labels`, RLNAS' protocol: SGD Nesterov 0.9, lr 0.025 cosine to 0.001, wd 5e-4,
batch 64, no gradient clipping, crop + flip; `--grad-reset zeros` (default) zeroes the gradients between steps
as the reference's `network.zero_grad()` did under PyTorch 1.4, `none` sets them to None, PyTorch 2's default,
so unsampled ops are left untouched), on `--subset` training images, then Kendall tau (scipy,
tau-b) of the angle against the 200-epoch CIFAR-10 test accuracy of all 15,625 cells is reported (RLNAS
README: 0.508 after 250 epochs on 25k images). The tau of the random-perturbation angle is reported too as
a baseline: what the metric gives from the arch structure alone.

    python benchmarks/angle_all_archs.py                                  # timing only (C=16, N=5)
    python benchmarks/angle_all_archs.py --train-epochs 2 --data npz --path ../shared/data/cifar10.npz \
        --subset 2000 --channels 8 --cells 2 --image-size 16 --grad-reset none

Writes JSON to benchmarks/out/angle_all_archs.json and a markdown summary to stdout.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow.bench import load_table  # noqa: E402
from nasflow.data import load_dataset, random_labels  # noqa: E402
from nasflow.estimators.angle import AngleScorer, angle  # noqa: E402
from nasflow.models.nb201_supernet import NB201Supernet  # noqa: E402
from nasflow.spaces import nb201 as space  # noqa: E402
from nasflow.train import TrainConfig, train  # noqa: E402

DEFAULT_TABLE = ROOT.parent / "shared" / "data" / "nb201-accuracies.csv"


def perturbed(net: torch.nn.Module, scale: float, seed: int) -> dict:
    """A copy of net's state with every parameter moved by scale * N(0, 1) * its std (a random turn)."""
    g = torch.Generator().manual_seed(seed)
    st = copy.deepcopy(net.state_dict())
    for name, p in net.named_parameters():
        t = st[name]
        t.add_(scale * (t.float().std() if t.numel() > 1 else 1.0) * torch.randn(t.shape, generator=g))
    return st


def kendall(scores, table: dict, archs: list[str]) -> dict:
    from scipy.stats import kendalltau, spearmanr

    acc = np.array([table[a] for a in archs])
    s = np.asarray(scores)
    connected = np.array([space.is_connected(a) for a in archs])
    return {
        "kendall_tau": float(kendalltau(s, acc).statistic),
        "spearman_rho": float(spearmanr(s, acc).statistic),
        "kendall_tau_connected": float(kendalltau(s[connected], acc[connected]).statistic),
        "n": len(archs), "n_connected": int(connected.sum()),
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--cells", type=int, default=5, help="cells per stage (N)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--perturb", type=float, default=0.1, help="perturbation scale (x parameter std)")
    ap.add_argument("--check", type=int, default=50, help="archs re-scored the slow way")
    ap.add_argument("--train-epochs", type=int, default=0)
    ap.add_argument("--data", default="npz")
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "cifar10.npz"))
    ap.add_argument("--subset", type=int, default=None, help="training images (and evaluation images)")
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.025)
    ap.add_argument("--lr-min", type=float, default=0.001)
    ap.add_argument("--label-seed", type=int, default=0)
    ap.add_argument("--grad-reset", choices=["zeros", "none"], default="zeros",
                    help="gradients between steps: zeros (RLNAS under PyTorch 1.4) or none (PyTorch 2)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--table", default=str(DEFAULT_TABLE))
    ap.add_argument("--column", default="cifar10_test_acc_200ep")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "angle_all_archs.json"))
    args = ap.parse_args(argv)

    archs = space.enumerate_all()
    table = load_table(args.table, args.column) if Path(args.table).is_file() else None
    result: dict = {"settings": vars(args), "host": {"python": platform.python_version(),
                                                     "torch": torch.__version__,
                                                     "threads": torch.get_num_threads()}}

    torch.manual_seed(args.seed)
    net = NB201Supernet(C=args.channels, N=args.cells, num_classes=10, seed=args.seed)
    init_state = copy.deepcopy(net.state_dict())
    result["supernet_params"] = sum(p.numel() for p in net.parameters())

    states = {"perturbed": perturbed(net, args.perturb, args.seed + 1)}
    if args.train_epochs > 0:
        splits = load_dataset(args.data, path=args.path, subset=args.subset)
        labels = random_labels(len(splits.y_train), splits.num_classes, args.label_seed)
        cfg = TrainConfig(epochs=args.train_epochs, batch_size=args.batch_size, lr=args.lr,
                          lr_min=args.lr_min, momentum=0.9, nesterov=True, weight_decay=5e-4,
                          grad_clip=None, image_size=args.image_size, eval_every=args.train_epochs,
                          grad_reset=args.grad_reset)
        t0 = time.perf_counter()
        res = train(net, splits, cfg, seed=args.seed, device=args.device, labels=labels, progress=False)
        result["training"] = {"seconds": time.perf_counter() - t0, "images": len(labels),
                              "epochs": args.train_epochs,
                              "final_train_acc_random_labels": res["final_train_acc"],
                              "final_eval_acc_true_labels_random_paths": res["final_acc"],
                              "train_loss": [h["train_loss"] for h in res["history"]]}
        net.cpu()
        states["trained"] = {k: (v.cpu() if torch.is_tensor(v) else v) for k, v in net.state_dict().items()}

    for kind, state in states.items():
        times_setup, times_score = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            scorer = AngleScorer(init_state, state, net)
            t1 = time.perf_counter()
            scores = scorer.scores(archs)
            t2 = time.perf_counter()
            times_setup.append(t1 - t0)
            times_score.append(t2 - t1)
        rng = np.random.RandomState(args.seed)
        check = [archs[i] for i in rng.choice(len(archs), size=min(args.check, len(archs)), replace=False)]
        t0 = time.perf_counter()
        slow = [angle(init_state, state, a, net) for a in check]
        slow_s = (time.perf_counter() - t0) / max(len(check), 1)
        fast = scorer.scores(check)
        entry = {
            "seconds_all_archs": min(a + b for a, b in zip(times_setup, times_score)),
            "seconds_setup": min(times_setup), "seconds_scoring": min(times_score),
            "explicit_seconds_per_arch": slow_s,
            "explicit_seconds_all_archs_est": slow_s * len(archs),
            "max_abs_diff_vs_explicit": float(np.max(np.abs(np.array(slow) - fast))) if check else None,
            "angle_min": float(scores.min()), "angle_max": float(scores.max()),
            "angle_mean": float(scores.mean()),
            "best_arch": archs[int(np.argmax(scores))],
        }
        if table is not None:
            entry.update(kendall(scores, table, archs))
            entry["best_arch_test_acc"] = table[entry["best_arch"]]
        result[kind] = entry

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    print(f"## Angle over all {len(archs):,} NB201 cells (supernet C={args.channels}, N={args.cells}, "
          f"{result['supernet_params']:,} params, {torch.get_num_threads()} threads)\n")
    if "training" in result:
        t = result["training"]
        print(f"Training: {t['epochs']} epoch(s) at {args.image_size} px on {t['images']:,} images with random "
              f"labels, grad reset {args.grad_reset}, "
              f"{t['seconds']:.0f} s; train loss {t['train_loss'][0]:.3f} -> {t['train_loss'][-1]:.3f}\n")
    print("| weights | all archs (s) | setup (s) | scoring (s) | explicit (s/arch) | max diff | "
          "Kendall tau | tau (connected) | Spearman | best arch test acc |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for kind in states:
        e = result[kind]
        print(f"| {kind} | {e['seconds_all_archs']:.3f} | {e['seconds_setup']:.3f} | "
              f"{e['seconds_scoring']:.3f} | {e['explicit_seconds_per_arch']:.4f} | "
              f"{e['max_abs_diff_vs_explicit']:.1e} | {e.get('kendall_tau', float('nan')):.3f} | "
              f"{e.get('kendall_tau_connected', float('nan')):.3f} | "
              f"{e.get('spearman_rho', float('nan')):.3f} | "
              f"{e.get('best_arch_test_acc', float('nan')):.2f} |")
    print(f"\nJSON: {out}")
    return result


if __name__ == "__main__":
    main()
