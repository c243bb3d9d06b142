"""The `nasflow` command (also `python -m nasflow`).

    nasflow info --space nb201 --arch A|INDEX [--arch B ...] [--dataset D] [--channels C] [--cells N] [--json]
    nasflow info --space darts --arch GENOTYPE [...] [--dataset D] [--channels C] [--layers L] [--json]
    nasflow info --space mobilenet --arch A [...] [--input-size 224] [--classes 1000] [--width 1.0] [--json]
    nasflow predictors --space nb201 --table FILE --column COL [--predictors lgb,rf,...] [--train-sizes 20,100,400]
                       [--test-size 200] [--trials 20] [--seed 0] [--features onehot|path|none|FILE.csv,...] [--json]
    nasflow table build --from RELEASE --out FILE.parquet [--workers N] [--quiet]
    nasflow proxies --space S (--arch A [--arch B ...] | --arch-file F) --data digits|npz [--path P]
                    [--batch-size 64] [--seed 0] [--proxies synflow,snip,...] [--channels 16] [--depth 5] [--json]

Every error prints one line on stderr, `nasflow: error: ...`, never a traceback: status 2 for user errors (a bad
arch, a bad option), 1 for an internal error (NASFLOW_DEBUG=1 shows its traceback).
Add a subcommand by writing `_add_<name>(subparsers)` that sets `func`, and calling it in `build_parser`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from nasflow import __version__
from nasflow.errors import NasflowError, describe
from nasflow.spaces import available_spaces, get_space

PROG = "nasflow"

# name -> (number of classes, image side in pixels), as NAS-Bench-201 trains on them.
DATASETS: dict[str, tuple[int, int]] = {
    "cifar10": (10, 32),
    "cifar100": (100, 32),
    "imagenet16-120": (120, 16),
}


class UsageError(NasflowError):
    """Bad input on the command line (argparse's own errors too); printed as one line."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one line (`nasflow: error: ...`), not a usage block."""

    def error(self, message):
        raise UsageError(f"{' '.join(message.split())} (see {self.prog} --help)")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


# ---------------------------------------------------------------------------------------------- info


def _add_info(subparsers) -> None:
    p = subparsers.add_parser(
        "info",
        help="parameter and FLOP counts of architectures",
        description="Canonical string, parameter count and FLOPs (multiply-accumulates per image of Conv "
        "and Linear layers, NAS-Bench-201's convention) of each --arch.",
    )
    p.add_argument(
        "--space", choices=available_spaces(), default="nb201", help="search space (default nb201)"
    )
    p.add_argument(
        "--arch", action="append", required=True, metavar="ARCH",
        help="architecture string, or for nb201 a NAS-Bench-201 index (0..15624), for mobilenet also RLNAS' "
        "integer code; repeat for several",
    )
    p.add_argument(
        "--dataset", choices=sorted(DATASETS), default=None,
        help="nb201/darts: sets the number of classes and the image size (default cifar10)",
    )
    p.add_argument(
        "--channels", type=_positive_int, default=None, metavar="C",
        help="channels of the first stage (nb201) or first cell (darts) (default 16 for nb201, 36 for darts)",
    )
    p.add_argument(
        "--cells", type=_positive_int, default=None, metavar="N", help="nb201 only: cells per stage (default 5)"
    )
    p.add_argument(
        "--layers", type=_positive_int, default=None, metavar="L",
        help="darts only: number of cells (default 20); the parameter count leaves out the auxiliary head",
    )
    p.add_argument("--input-size", type=_positive_int, default=None, metavar="PX",
                   help="mobilenet only: image side in pixels (default 224)")
    p.add_argument("--classes", type=_positive_int, default=None, metavar="K",
                   help="mobilenet only: number of classes (default 1000)")
    p.add_argument("--width", type=_positive_float, default=None, metavar="W",
                   help="mobilenet only: width multiplier, channels rounded to multiples of 8 (default 1.0)")
    p.add_argument("--json", action="store_true", help="print a JSON list of {arch, params, flops}")
    p.set_defaults(func=_run_info)


# space -> (default channels, depth option, its default, the other space's depth option)
_INFO_DEFAULTS = {"nb201": (16, "cells", 5, "layers"), "darts": (36, "layers", 20, "cells")}


def _run_info(args: argparse.Namespace) -> int:
    if args.space == "mobilenet":
        return _run_info_mobilenet(args)
    for opt in ("input_size", "classes", "width"):
        if getattr(args, opt) is not None:
            raise UsageError(f"--{opt.replace('_', '-')} only applies to the mobilenet space (use --dataset)")
    dataset = args.dataset or "cifar10"
    space = get_space(args.space)
    default_channels, depth_opt, default_depth, wrong_opt = _INFO_DEFAULTS[args.space]
    if getattr(args, wrong_opt) is not None:
        raise UsageError(f"--{wrong_opt} does not apply to the {args.space} space (use --{depth_opt})")
    channels = default_channels if args.channels is None else args.channels
    depth = default_depth if getattr(args, depth_opt) is None else getattr(args, depth_opt)
    build_kw = {"auxiliary": False} if args.space == "darts" else {}  # DARTS counts params without the aux head
    archs = []
    for arch in args.arch:  # every arch is checked before anything is built or printed
        if args.space == "nb201" and arch.strip().isdigit():  # a NAS-Bench-201 index, in the benchmark's order
            cells = space.enumerate_all()
            if int(arch) >= len(cells):
                raise UsageError(f"--arch {arch.strip()}: no such NAS-Bench-201 index (0..{len(cells) - 1})")
            archs.append(cells[int(arch)])
            continue
        try:
            archs.append(space.canonical(arch))
        except NasflowError as err:
            raise UsageError(str(err)) from None

    from nasflow.counting import count_flops, count_params  # torch is only needed from here on
    from nasflow.registry import build_network

    num_classes, image_size = DATASETS[dataset]
    rows = []
    for arch in archs:
        model = build_network(space, arch, channels=channels, depth=depth, num_classes=num_classes, **build_kw)
        rows.append(
            {
                "arch": arch,
                "params": count_params(model),
                "flops": count_flops(model, (3, image_size, image_size)),
            }
        )

    if args.json:
        print(json.dumps(rows))
        return 0

    print(
        f"# {args.space} on {dataset} ({num_classes} classes, {image_size}x{image_size} px), "
        f"C={channels}, {'N' if depth_opt == 'cells' else 'layers'}={depth}"
    )
    _print_info_table(rows)
    return 0


def _print_info_table(rows: list[dict]) -> None:
    width = max(len("arch"), *(len(row["arch"]) for row in rows))
    print(f"{'arch':<{width}}  {'params':>10}  {'M params':>9}  {'MFLOPs':>9}")
    for row in rows:
        print(
            f"{row['arch']:<{width}}  {row['params']:>10,d}  {row['params'] / 1e6:>9.6f}  "
            f"{row['flops'] / 1e6:>9.3f}"
        )


def _run_info_mobilenet(args: argparse.Namespace) -> int:
    """`info` for the MobileNet-like space: RLNAS' ImageNet network by default (224 px, 1000 classes)."""
    for opt in ("dataset", "channels", "cells", "layers"):
        if getattr(args, opt) is not None:
            raise UsageError(f"--{opt} does not apply to the mobilenet space "
                             "(use --input-size, --classes, --width)")
    space = get_space("mobilenet")
    input_size = 224 if args.input_size is None else args.input_size
    num_classes = 1000 if args.classes is None else args.classes
    width = 1.0 if args.width is None else args.width
    try:
        archs = [space.canonical(arch) for arch in args.arch]  # all checked before anything is built
    except NasflowError as err:
        raise UsageError(str(err)) from None

    from nasflow.counting import count_flops, count_params  # torch is only needed from here on
    from nasflow.models.mobilenet import build_mobilenet

    rows = []
    for arch in archs:
        model = build_mobilenet(arch, width=width, num_classes=num_classes, input_size=input_size)
        rows.append({"arch": arch, "params": count_params(model),
                     "flops": count_flops(model, (3, input_size, input_size))})
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"# mobilenet at {input_size}x{input_size} px, {num_classes} classes, width {width}")
    _print_info_table(rows)
    return 0


# ------------------------------------------------------------------------------------------- proxies


def _add_proxies(subparsers) -> None:
    p = subparsers.add_parser(
        "proxies",
        help="zero-cost proxy scores of architectures",
        description="Score each architecture, untrained, with zero-cost proxies (grad_norm, snip, grasp, "
        "fisher, synflow, jacob_cov, naswot, zen, params, flops by default; on request also meco, meco_opt, zico, "
        "swap, swap_reg, az_expressivity, az_progressivity, az_trainability, az_complexity, te_nas_ntk, te_nas_lr, "
        "epe_nas, l2_norm, plain, and the aggregates az_nas and te_nas, ranked among the archs of this call) on "
        "the first seeded, augmented training batch of a dataset; each proxy gets a freshly built network with the "
        "same seed. See nasflow.estimators.zero_cost and zero_cost_2022 for the definitions.",
    )
    p.add_argument("--space", choices=available_spaces(), default="nb201", help="search space (default nb201)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--arch", action="append", metavar="ARCH",
        help="architecture string, or for nb201 a NAS-Bench-201 index (0..15624); repeat for several",
    )
    source.add_argument(
        "--arch-file", metavar="FILE",
        help="text file with one architecture per line (blank lines and lines starting with # are skipped)",
    )
    p.add_argument("--data", choices=("digits", "npz"), required=True,
                   help="digits: the embedded sklearn dataset; npz: the .npz file given by --path")
    p.add_argument("--path", metavar="NPZ", default=None, help="the .npz file (x_train, y_train, x_test, y_test)")
    p.add_argument("--batch-size", type=_positive_int, default=64, metavar="B", help="images in the batch (default 64)")
    p.add_argument("--seed", type=int, default=0, help="network and batch seed (default 0)")
    p.add_argument("--proxies", default=None, metavar="NAMES",
                   help="comma-separated proxy names (default: the 2021 set, grad_norm … flops)")
    p.add_argument("--channels", type=_positive_int, default=16, metavar="C",
                   help="channels of the first stage (nb201) or first cell (darts) (default 16)")
    p.add_argument("--depth", type=_positive_int, default=5, metavar="D",
                   help="cells per stage (nb201) or number of cells (darts) (default 5)")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"arch", "<proxy>": value, ..., "<proxy>_seconds": cost}')
    p.set_defaults(func=_run_proxies)


def _proxy_names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise UsageError("--proxies: no proxy names given")
    return names


def _arch_texts(args: argparse.Namespace) -> list[str]:
    if args.arch is not None:
        return list(args.arch)
    from pathlib import Path

    path = Path(args.arch_file)
    if not path.is_file():
        raise UsageError(f"--arch-file {path}: no such file")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--arch-file {path}: cannot be read ({type(err).__name__})") from None
    texts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not texts:
        raise UsageError(f"--arch-file {path}: no architectures in it")
    return texts


def _resolve_arch(space, text: str) -> str:
    """The canonical arch for `text`; for nb201 a number is a NAS-Bench-201 index."""
    if space.NAME == "nb201" and text.strip().isdigit():
        cells = space.enumerate_all()
        if int(text) >= len(cells):
            raise UsageError(f"--arch {text.strip()}: no such NAS-Bench-201 index (0..{len(cells) - 1})")
        return cells[int(text)]
    return space.canonical(text)


def _json_value(value):
    """JSON has no NaN or infinity (a disconnected cell can score them): null instead."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def _run_proxies(args: argparse.Namespace) -> int:
    space = get_space(args.space)
    if args.data == "npz" and args.path is None:
        raise UsageError("--data npz needs --path FILE.npz")
    if args.data != "npz" and args.path is not None:
        raise UsageError("--path only applies to --data npz")
    archs = [_resolve_arch(space, text) for text in _arch_texts(args)]  # all checked before any work

    from nasflow.data import load_dataset  # torch is only needed from here on
    from nasflow.estimators import zero_cost

    names = zero_cost.check_proxies(_proxy_names(args.proxies))
    splits = load_dataset(args.data, path=args.path)
    batch, labels = zero_cost.train_batch(splits, batch_size=args.batch_size, seed=args.seed)
    rows = zero_cost.score_archs(
        archs, space=space, channels=args.channels, depth=args.depth, num_classes=splits.num_classes,
        batch=batch, labels=labels, proxies=names, seed=args.seed,
    )

    if args.json:
        print(json.dumps([{key: _json_value(value) for key, value in row.items()} for row in rows]))
        return 0

    print(
        f"# {args.space} on {args.data} ({splits.num_classes} classes, {splits.image_size}x{splits.image_size} px), "
        f"C={args.channels}, depth={args.depth}, batch={len(labels)}, seed={args.seed}"
    )
    width = max(len("arch"), *(len(row["arch"]) for row in rows))
    cols = [max(len(name), 11) for name in names]
    print(f"{'arch':<{width}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, cols)) + f"  {'seconds':>8}")
    for row in rows:
        cost = sum(row[f"{name}_seconds"] for name in names)
        values = "  ".join(f"{row[n]:>{w}.6g}" for n, w in zip(names, cols))
        print(f"{row['arch']:<{width}}  {values}  {cost:>8.3f}")
    return 0


# ------------------------------------------------------------------------------------------- predictors


def _add_predictors(subparsers) -> None:
    from nasflow.estimators.predictors import DEFAULT_SIZES, PREDICTORS

    p = subparsers.add_parser(
        "predictors", help="model-based predictors trained on evaluated cells of a table",
        description="Train each predictor on n cells of a ground-truth table and rank held-out cells: Kendall "
        "tau, Spearman rho, precision@10%%, top-1 regret and MAE per predictor and training-set size, over "
        "seeded trials (nasflow.estimators.predictors). Predictors: " + ", ".join(PREDICTORS) + ".")
    p.add_argument("--space", choices=available_spaces(), default="nb201", help="search space (tables: nb201)")
    p.add_argument("--table", required=True, metavar="FILE", help="a table built by `nasflow table build`, or a CSV")
    p.add_argument("--column", required=True, metavar="COL", help="the column to predict, e.g. cifar10_valid_acc_200ep")
    p.add_argument("--predictors", default=",".join(PREDICTORS), metavar="NAMES", help="comma-separated (default: all)")
    p.add_argument("--train-sizes", default=",".join(map(str, DEFAULT_SIZES)), metavar="N,N,...",
                   help="training-set sizes (default: the literature's ladder 5 ... 1000)")
    p.add_argument("--test-size", type=_positive_int, default=200, metavar="N", help="held-out cells (default 200)")
    p.add_argument("--trials", type=_positive_int, default=20, metavar="T", help="seeded trials (default 20)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--features", default=None, metavar="SPEC",
                   help="comma-separated: an encoding (onehot, path or none; default: each predictor's own) and/or "
                        "CSV files keyed by `arch` whose numeric columns join the encoding (e.g. zero-cost scores; "
                        "their `<col>_seconds` count in the query cost); the cells are then those of the CSV")
    p.add_argument("--json", action="store_true", help="one JSON object per predictor x size x trial")
    p.set_defaults(func=_run_predictors)


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UsageError(f"{what}: expected positive integers, got {text!r}")
    return values


def _feature_file(path: str, table: dict) -> tuple[list[str], list[str], "object", float]:
    """(archs, feature names, values (n, f), feature seconds per cell) of a CSV keyed by `arch`."""
    import math

    import pandas as pd

    from nasflow.errors import DataError

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"features file not found: {path}") from None
    except Exception as e:
        raise DataError(f"features file {path}: not a readable CSV ({type(e).__name__})") from None
    if "arch" not in frame.columns:
        raise DataError(f"features file {path}: no `arch` column")
    skip = {"arch", "id", "index", "ground_truth"}
    names = [c for c in frame.columns if c not in skip and not c.endswith(("_seconds", "_status"))
             and pd.api.types.is_numeric_dtype(frame[c])]
    if not names:
        raise DataError(f"features file {path}: no numeric feature columns besides arch")
    missing = [a for a in frame["arch"] if a not in table]
    if missing:
        raise DataError(f"features file {path}: {len(missing)} cells are not in the table (first: {missing[0]})")
    empty = {c: int(frame[c].isna().sum()) for c in names if frame[c].isna().any()}
    if empty:
        c, n = next(iter(empty.items()))
        raise DataError(f"features file {path}: column {c!r} has no value for {n} cells")
    seconds = sum(float(frame[f"{c}_seconds"].mean()) for c in names if f"{c}_seconds" in frame.columns)
    return list(frame["arch"]), names, frame[names].to_numpy(dtype=float), (0.0 if math.isnan(seconds) else seconds)


def _run_predictors(args: argparse.Namespace) -> int:
    import numpy as np

    from nasflow import bench
    from nasflow.estimators import predictors as pred

    space = get_space(args.space)
    if space.NAME != "nb201":
        raise UsageError(f"--space {args.space}: ground-truth tables exist for nb201 cells only")
    names = [n.strip() for n in args.predictors.split(",") if n.strip()]
    sizes = _int_list(args.train_sizes, "--train-sizes")
    encoding, files = None, []
    for token in (args.features or "").split(","):
        token = token.strip()
        if token in ("onehot", "path", "none"):
            encoding = token
        elif token:
            files.append(token)
    table = bench.load_table(args.table, args.column)
    archs, blocks, feature_seconds = list(table), [], 0.0
    for path in files:  # the cells are those every features file has
        cells, _, values, seconds = _feature_file(path, table)
        by_arch = dict(zip(cells, values))
        archs = [a for a in archs if a in by_arch]
        blocks.append(by_arch)
        feature_seconds += seconds
    extra = np.stack([np.concatenate([b[a] for b in blocks]) for a in archs]) if blocks else None
    archs = [space.canonical(a) for a in archs]
    y = [table[a] for a in archs]
    rows = pred.run_protocol(space, archs, y, predictors=names, sizes=sizes, test_size=args.test_size,
                             trials=args.trials, seed=args.seed, extra=extra, encoding=encoding)
    for r in rows:
        r["query_seconds"] += feature_seconds
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'predictor':<10} {'n':>5} {'trials':>6} {'kendall_tau':>13} {'spearman':>8} {'p@10%':>6} {'regret':>7} "
          f"{'MAE':>6} {'fit s':>7} {'query s':>9}")
    for s in pred.summarize(rows):
        print(f"{s['predictor']:<10} {s['train_size']:>5} {s['trials']:>6} {s['kendall_tau']:>7.3f}±{s['kendall_tau_std']:.3f} "
              f"{s['spearman_rho']:>8.3f} {s['precision_at_10']:>6.2f} {s['regret']:>7.2f} {s['mae']:>6.2f} "
              f"{s['fit_seconds']:>7.2f} {s['query_seconds']:>9.2e}")
    return 0


# ------------------------------------------------------------------------------------------------ table


def _add_table(subparsers) -> None:
    p = subparsers.add_parser("table", help="the NAS-Bench-201 ground-truth table",
                              description="The ground-truth table nasflow's table studies read.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    b = actions.add_parser(
        "build", help="convert an official NAS-Bench-201 / NATS-Bench release into the table",
        description="Read NATS-Bench's topology archive (the NATS-tss-v1_0-3ffb9-simple/ directory) or "
        "NAS-Bench-201's single file (NAS-Bench-201-v1_1-096897.pth or v1_0-e61699.pth) without running code "
        "from it, and write one Parquet table: per cell, dataset, split, schedule (12 and 200 epochs) and seed "
        "the final accuracy and loss, the per-epoch curves, the recorded training and evaluation times, params, "
        "FLOPs and latency. Column names: nasflow.bench_build.COLUMNS_DOC.")
    b.add_argument("--from", dest="source", required=True, metavar="RELEASE",
                   help="the NATS-Bench tss directory or the NAS-Bench-201 .pth file")
    b.add_argument("--out", required=True, metavar="FILE.parquet", help="where to write the table")
    b.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="processes reading the archive's cell files (default: the CPUs, at most 8)")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=_run_table_build)


def _run_table_build(args: argparse.Namespace) -> int:
    import time

    from nasflow.bench_build import NB201_CELLS, build_table

    start = time.perf_counter()
    done = build_table(args.source, args.out, workers=args.workers, progress=not args.quiet)
    print(f"{PROG}: wrote {done['out']}: {done['cells']:,} cells, {done['columns']} columns, from the "
          f"{'NATS-Bench archive' if done['kind'] == 'nats' else 'NAS-Bench-201 file'} "
          f"in {time.perf_counter() - start:.1f} s")
    if not done["complete"]:
        print(f"{PROG}: note: the release held {done['cells']:,} of the {NB201_CELLS:,} cells; the table has "
              "only those", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Performance estimation for neural architecture search."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_info(subparsers)
    _add_proxies(subparsers)
    _add_predictors(subparsers)
    _add_table(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]); return the exit status.

    Any failure is one line on stderr, `nasflow: error: ...`: status 2 for bad input (or a full disk, out of
    memory), 1 for an internal error, whose traceback NASFLOW_DEBUG=1 shows."""
    import os

    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        message, status = describe(err)
        if os.environ.get("NASFLOW_DEBUG", "") not in ("", "0"):
            import traceback

            traceback.print_exc()
        elif status == 1:
            message += " (set NASFLOW_DEBUG=1 to see the traceback)"
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(main())
