"""The `nasflow` command (also `python -m nasflow`).

    nasflow info --space nb201 --arch A|INDEX [--arch B ...] [--dataset D] [--channels C] [--cells N] [--json]
    nasflow info --space darts --arch GENOTYPE [...] [--dataset D] [--channels C] [--layers L] [--json]

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
        help="architecture string, or for nb201 a NAS-Bench-201 index (0..15624); repeat for several",
    )
    p.add_argument(
        "--dataset", choices=sorted(DATASETS), default="cifar10",
        help="sets the number of classes and the image size (default cifar10)",
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
    p.add_argument("--json", action="store_true", help="print a JSON list of {arch, params, flops}")
    p.set_defaults(func=_run_info)


# space -> (default channels, depth option, its default, the other space's depth option)
_INFO_DEFAULTS = {"nb201": (16, "cells", 5, "layers"), "darts": (36, "layers", 20, "cells")}


def _run_info(args: argparse.Namespace) -> int:
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

    num_classes, image_size = DATASETS[args.dataset]
    rows = []
    for arch in archs:
        model = space.build_network(arch, channels=channels, depth=depth, num_classes=num_classes, **build_kw)
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
        f"# {args.space} on {args.dataset} ({num_classes} classes, {image_size}x{image_size} px), "
        f"C={channels}, {'N' if depth_opt == 'cells' else 'layers'}={depth}"
    )
    width = max(len("arch"), *(len(row["arch"]) for row in rows))
    print(f"{'arch':<{width}}  {'params':>10}  {'M params':>9}  {'MFLOPs':>9}")
    for row in rows:
        print(
            f"{row['arch']:<{width}}  {row['params']:>10,d}  {row['params'] / 1e6:>9.6f}  "
            f"{row['flops'] / 1e6:>9.3f}"
        )
    return 0


# ---------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="Performance estimation for neural architecture search."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_info(subparsers)
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
