"""RLNAS in the DARTS space: seconds per genotype of the angle, explicit vectors vs the fast scorer, and the
cost of a whole RLNAS evolution search (population 50, top-k 10, 25 + 25, 20 generations) by angle.

Both scorers read the same two states of one `DartsSupernet` (its random init, and a copy with every
parameter perturbed by 10% Gaussian noise, standing in for a trained supernet: the angle's cost does not
depend on the values). "explicit" builds both weight vectors the way RLNAS does (`darts_angle`), "fast"
sums per-(cell type, edge, op) dot products once and scores genotypes from them (`DartsAngleScorer`; its
one-off setup is reported apart). The two must agree to 1e-9 (checked here too).

    python benchmarks/darts_angle.py                          # paper size: C=16, 8 layers, 200 genotypes
    python benchmarks/darts_angle.py --channels 8 --layers 5 --genotypes 50

Prints a markdown table; writes JSON to benchmarks/out/darts_angle.json.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nasflow.estimators.darts_angle import DartsAngleScorer, darts_angle  # noqa: E402
from nasflow.models.darts_supernet import DartsSupernet  # noqa: E402
from nasflow.search.rlnas_evolution import evolution_search  # noqa: E402
from nasflow.spaces import darts  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--channels", type=int, default=16)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--genotypes", type=int, default=200, help="random genotypes scored by both scorers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "darts_angle.json"))
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    net = DartsSupernet(args.channels, args.layers, 10, seed=args.seed)
    init = net.state_dict()  # includes the path RNG's extra state (not a tensor)
    trained = {k: v + 0.1 * v.abs().mean() * torch.randn_like(v) if torch.is_tensor(v) and v.is_floating_point()
               else v for k, v in init.items()}
    archs = darts.sample(args.genotypes, seed=args.seed)

    t0 = time.perf_counter()
    explicit = [darts_angle(init, trained, a, net) for a in archs]
    t_explicit = time.perf_counter() - t0

    t0 = time.perf_counter()
    scorer = DartsAngleScorer(init, trained, net)
    t_setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast = scorer.scores(archs)
    t_fast = time.perf_counter() - t0
    max_diff = float(np.max(np.abs(np.array(explicit) - fast)))
    assert max_diff < 1e-9, f"fast and explicit angles differ by {max_diff}"

    t0 = time.perf_counter()
    found = evolution_search(lambda a: scorer.scores(a).tolist(), space=darts, seed=args.seed, population=50,
                             topk=10, n_mutations=25, n_crossovers=25, mutation_prob=0.1, generations=20)
    t_evo = time.perf_counter() - t0

    row = {"channels": args.channels, "layers": args.layers, "genotypes": len(archs),
           "params": sum(p.numel() for p in net.parameters()),
           "explicit_s_per_arch": t_explicit / len(archs), "fast_setup_s": t_setup,
           "fast_s_per_arch": t_fast / len(archs), "speedup_per_arch": t_explicit / max(t_fast, 1e-12),
           "max_abs_diff": max_diff, "evolution_archs": found["n_scored"], "evolution_seconds": t_evo}
    result = {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
              "torch_threads": torch.get_num_threads(), "loadavg": os.getloadavg(), "row": row}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nRLNAS angle in the DARTS space (C={args.channels}, {args.layers} layers, "
          f"{row['params']:,} supernet params), {len(archs)} random genotypes, one process\n")
    print("| explicit s/arch | fast setup s | fast s/arch | fast / explicit speed-up | max |diff| "
          "| evolution (archs, s) |")
    print("|---|---|---|---|---|---|")
    print(f"| {row['explicit_s_per_arch']:.4f} | {t_setup:.3f} | {row['fast_s_per_arch']:.2e} | "
          f"{row['speedup_per_arch']:,.0f}x | {max_diff:.1e} | {found['n_scored']}, {t_evo:.2f} |")
    print(f"\nJSON: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
