"""Issue 26's measurements of the zero-cost proxies since 2022 (nasflow.estimators.zero_cost_2022).

    # seconds per proxy on one NB201 cell (C=16, N=5, 32 px, batch 64), one CPU thread, alone and all together
    python benchmarks/zero_cost_2022.py timing [--arch A] [--repeats 3]

    # ρ / τ over the frontier study's extra cells (params/frontier-nb201-cifar10.yaml: seed 0, 1,000 cells not
    # among its 100 sampled ones), the study's one batch (seeded, its data and subset), the study's network;
    # scores go to OUT (JSON lines, appended: a rerun resumes); shards i/n take every n-th of the first --cells
    python benchmarks/zero_cost_2022.py score --params P.yaml --cells 1000 --shard 0/2 --out scores-0.jsonl \
        [--skip te_nas_ntk]
    python benchmarks/zero_cost_2022.py correlate --table nb201-accuracies.csv scores-*.jsonl
    python benchmarks/zero_cost_2022.py correlate --table nb201-accuracies.csv results/zero_cost/extra.json

P is the study file with `data` pointing at a CIFAR-10 copy (the study downloads torchvision's; e.g. merge
tests/studies/dev-data.yaml on a development machine). `correlate` prints, per proxy, Spearman ρ and Kendall τ
against the 200-epoch CIFAR-10 validation accuracy (cifar10-valid, NB201's `cifar10_valid_acc_200ep`) and test
accuracy, over all scored cells and over one per isomorphism class (nasflow.spaces.nb201.representatives);
az_nas and te_nas are ranked among the cells scored.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _timing(args) -> None:
    import torch

    from nasflow.estimators import zero_cost as zc
    from nasflow.estimators import zero_cost_2022 as z22
    from nasflow.models.nb201 import build_network, ntk_network, thin_network

    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    names = [n for n in z22.PROXIES_2022 if n not in z22.AGGREGATES]

    def factory():
        return build_network(args.arch, channels=16, depth=5, num_classes=10)

    own = {"te_nas_lr": lambda: thin_network(args.arch, num_classes=10),  # TE-NAS's networks
           "te_nas_ntk": lambda: ntk_network(args.arch, num_classes=10)}

    load = os.getloadavg()
    alone = {n: [] for n in names}
    together, without_ntk, floor = [], [], []
    for _ in range(args.repeats):
        for n in names:  # each proxy alone: its own score() call, wall time of the call (network build included)
            start = time.perf_counter()
            row = zc.score(factory, x, y, proxies=[n], seed=0, own_networks=own)
            alone[n].append((row[f"{n}_seconds"], time.perf_counter() - start))
        start = time.perf_counter()
        zc.score(factory, x, y, proxies=names, seed=0, own_networks=own)
        together.append(time.perf_counter() - start)
        start = time.perf_counter()
        zc.score(factory, x, y, proxies=[n for n in names if n != "te_nas_ntk"], seed=0, own_networks=own)
        without_ntk.append(time.perf_counter() - start)
        floor.append((_one_backward(factory(), x), _one_backward(own["te_nas_ntk"](), x)))
    print(f"# {args.arch}")
    print(f"# NB201 C=16 N=5, 32 px, batch 64, torch.set_num_threads(1), median of {args.repeats}; "
          f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"# uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print(f"{'proxy':<18} {'proxy s':>9} {'call s':>9}")
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    for n in names:
        print(f"{n:<18} {med([a for a, _ in alone[n]]):>9.3f} {med([b for _, b in alone[n]]):>9.3f}")
    print(f"{'sum alone':<18} {sum(med([a for a, _ in alone[n]]) for n in names):>9.3f} "
          f"{sum(med([b for _, b in alone[n]]) for n in names):>9.3f}")
    print(f"{'all together':<18} {'':>9} {med(together):>9.3f}")
    print(f"{'all but te_nas_ntk':<18} {'':>9} {med(without_ntk):>9.3f}")
    full, ntk = med([f for f, _ in floor]), med([k for _, k in floor])
    print(f"# one backward of the summed logits (after one forward): {full:.3f} s through this network (the unit of "
          f"zico, plain, epe_nas, az_trainability), {ntk:.3f} s through TE-NAS's NTK network (C=3, N=1): "
          f"te_nas_ntk's {x.shape[0]} per-image rows need {x.shape[0]} of those (BN couples the images), about "
          f"{x.shape[0] * ntk:.1f} s on this core")


def _one_backward(model, x) -> float:
    """Seconds of one backward pass of the summed logits to every weight, training mode: te_nas_ntk's unit."""
    import torch

    from nasflow.estimators.zero_cost_hooks import _logits

    model.train()
    weights = [p for name, p in model.named_parameters() if "weight" in name]
    out = _logits(model(x)).sum()
    start = time.perf_counter()
    torch.autograd.grad(out, weights, allow_unused=True)
    return time.perf_counter() - start


def _score(args) -> None:
    import torch

    from nasflow.estimators import zero_cost_2022 as z22
    from nasflow.spaces import get_space
    from stages.common import load_params
    from stages.estimation import zero_cost_batch, zero_cost_rows
    from stages.training import arch_set

    torch.set_num_threads(1)
    params = load_params(args.params)
    space = get_space(params["space"])
    sampled = Path(args.out).with_suffix(".sampled.jsonl")  # the study's sampled archs (sample_archs's draw)
    sampled.write_text("".join(json.dumps({"id": i, "arch": a}) + "\n"
                               for i, a in enumerate(space.sample(params["sample"]["n_archs"], seed=params["seed"]))))
    records = arch_set(params, "extra", sampled, key="zero_cost.arch_sets")[: args.cells]
    i, n = (int(v) for v in args.shard.split("/"))
    records = records[i::n]
    done = set()
    out = Path(args.out)
    if out.exists():
        done = {json.loads(line)["id"] for line in out.read_text().splitlines() if line.strip()}
    names = args.only or ([p for p in z22.PROXIES_2022 if p not in z22.AGGREGATES and p not in args.skip]
                          + ["naswot", "synflow"])
    batch = zero_cost_batch(params, torch.device("cpu"))
    start = time.time()
    with out.open("a") as f:
        for k, r in enumerate(records):
            if r["id"] in done:
                continue
            row = zero_cost_rows(params, space, [r["arch"]], names, torch.device("cpu"), batch)[0]
            f.write(json.dumps({"id": r["id"], **{key: (None if isinstance(v, float) and math.isnan(v) else v)
                                                   for key, v in row.items()}}) + "\n")
            f.flush()
            print(f"{k + 1}/{len(records)} {time.time() - start:.0f} s", file=sys.stderr, flush=True)


def _correlate(args) -> None:
    import numpy as np
    import pandas as pd
    from scipy import stats

    from nasflow.estimators import zero_cost as zc
    from nasflow.spaces import nb201

    rows = {}
    for path in args.scores:
        text = Path(path).read_text()
        if path.endswith(".json"):  # the zero_cost stage's gathered file (results/zero_cost/extra.json)
            found = [{k: v for k, v in r.items() if k != "error"} for r in json.loads(text)["results"]]
        else:
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
        for r in found:  # files may score different proxies of the same cells (e.g. te_nas_ntk on a subset)
            rows[r["id"]] = {**rows.get(r["id"], {}), **r}
    rows = [rows[k] for k in sorted(rows)]
    table = pd.read_csv(args.table).set_index("arch")
    names = list(dict.fromkeys(n for r in rows for n in r if n not in ("id", "arch") and not n.endswith("_seconds")))
    aggregates = [a for a, (_, members) in zc.AGGREGATES.items() if all(m in names for m in members)]
    print(f"# {len(rows)} extra cells of the frontier study (seed 0); "
          f"{len(nb201.representatives([r['arch'] for r in rows]))} isomorphism classes among them")
    if args.markdown:
        print("| proxy | n | ρ valid | τ valid | ρ test | τ test | ρ valid, dedup | τ valid, dedup | n dedup "
              "| ρ test 95% bootstrap |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    else:
        print(f"{'proxy':<18} {'n':>5} {'ρ valid':>8} {'τ valid':>8} {'ρ test':>8} {'τ test':>8} "
              f"{'ρ valid dedup':>14} {'τ valid dedup':>14} {'n dedup':>8}   ρ test 95% bootstrap")
    # --log-rank a,b,c: AZ-NAS's sum of log-ranks over any proxies (the `log_rank` ensemble kind)
    ensembles = {f"log_rank({'+'.join(m)})": m for m in args.log_rank}
    for name in names + aggregates + list(ensembles):
        # the cells scored with this proxy (its members, for an aggregate, ranked among those cells)
        members = zc.AGGREGATES[name][1] if name in zc.AGGREGATES else ensembles.get(name, (name,))
        subset_rows = [r for r in rows if all(m in r for m in members)]
        if name in zc.AGGREGATES:
            subset_rows = zc.add_aggregates(subset_rows, [name])
        elif name in ensembles:
            from nasflow.estimators.zero_cost_2022 import log_rank_scores

            values = log_rank_scores([[np.nan if r[m] is None else r[m] for r in subset_rows] for m in members])
            subset_rows = [{**r, name: v} for r, v in zip(subset_rows, values)]
        keep = nb201.representatives([r["arch"] for r in subset_rows])

        def corr(subset, column):
            s = np.array([np.nan if r[name] is None else r[name] for r in subset], dtype=float)
            t = np.array([table.loc[r["arch"], column] for r in subset], dtype=float)
            s = np.where(np.isnan(s), -np.inf, s)  # a proxy's NaN (a disconnected cell) ranks lowest
            return stats.spearmanr(s, t)[0], stats.kendalltau(s, t)[0]

        rows_here = subset_rows
        rv, tv = corr(rows_here, "cifar10_valid_acc_200ep")
        rt, tt = corr(rows_here, "cifar10_test_acc_200ep")
        rd, td = corr([rows_here[i] for i in keep], "cifar10_valid_acc_200ep")
        # 95% bootstrap interval of the test-accuracy ρ (the cells resampled, seeded): the sampling noise of a
        # subset when it is compared with a figure over all 15,625 cells
        rng = np.random.default_rng(0)
        boot = [corr([rows_here[i] for i in rng.integers(0, len(rows_here), len(rows_here))],
                     "cifar10_test_acc_200ep")[0] for _ in range(args.boot)]
        lo, hi = np.nanpercentile(boot, [2.5, 97.5]) if args.boot else (np.nan, np.nan)
        if args.markdown:
            print(f"| {name} | {len(rows_here)} | {rv:.3f} | {tv:.3f} | {rt:.3f} | {tt:.3f} | {rd:.3f} | {td:.3f} "
                  f"| {len(keep)} | [{lo:.3f}, {hi:.3f}] |")
            continue
        print(f"{name:<18} {len(rows_here):>5} {rv:>8.3f} {tv:>8.3f} {rt:>8.3f} {tt:>8.3f} {rd:>14.3f} {td:>14.3f} {len(keep):>8} "
              f"  [{lo:.3f}, {hi:.3f}]")


def _meco_one_image(args) -> None:
    """MeCo as its correlation script runs it (a batch of one image: BN statistics of that image) beside ours
    (the batch of 64 forwarded, the first image read), on the cells of the score files: isolates the batch-size
    part of a difference from the published ρ."""
    import numpy as np
    import pandas as pd
    import torch
    from scipy import stats

    from nasflow.estimators import zero_cost as zc
    from nasflow.registry import build_network
    from nasflow.spaces import get_space
    from stages.common import load_params
    from stages.estimation import zero_cost_batch

    torch.set_num_threads(1)
    params = load_params(args.params)
    space = get_space(params["space"])
    images, labels, classes = zero_cost_batch(params, torch.device("cpu"))
    rows = [json.loads(line) for path in args.scores for line in Path(path).read_text().splitlines() if line.strip()]
    table = pd.read_csv(args.table).set_index("arch")
    one = []
    for r in rows:
        def build(arch=r["arch"]):
            return build_network(space, arch, channels=16, depth=5, num_classes=classes)
        one.append(zc.score(build, images[:1], None, proxies=["meco"], seed=params["seed"])["meco"])
    for column in ("cifar10_valid_acc_200ep", "cifar10_test_acc_200ep"):
        gt = [table.loc[r["arch"], column] for r in rows]
        ours = stats.spearmanr([r["meco"] for r in rows], gt)[0]
        single = stats.spearmanr(np.nan_to_num(one, nan=-np.inf), gt)[0]
        print(f"{column}: n={len(rows)}  meco (batch 64, first image) ρ={ours:.3f}  meco (one image) ρ={single:.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("timing")
    t.add_argument("--arch", default=DEFAULT_ARCH)
    t.add_argument("--repeats", type=int, default=3)
    s = sub.add_parser("score")
    s.add_argument("--params", required=True)
    s.add_argument("--cells", type=int, default=1000)
    s.add_argument("--shard", default="0/1")
    s.add_argument("--out", required=True)
    s.add_argument("--only", default=None, type=lambda t: t.split(","), help="just these proxies (e.g. te_nas_ntk)")
    s.add_argument("--skip", default=[], type=lambda t: t.split(","), help="proxies to leave out (e.g. te_nas_ntk: "
                   "64 backward passes per cell)")
    c = sub.add_parser("correlate")
    c.add_argument("--table", required=True)
    c.add_argument("--boot", type=int, default=1000)
    c.add_argument("--markdown", action="store_true", help="print a Markdown table")
    c.add_argument("--log-rank", action="append", default=[], type=lambda t: tuple(t.split(",")), metavar="A,B,...",
                   help="also a log-rank ensemble of these proxies (repeatable)")
    c.add_argument("scores", nargs="+")
    m = sub.add_parser("meco1")
    m.add_argument("--params", required=True)
    m.add_argument("--table", required=True)
    m.add_argument("scores", nargs="+")
    args = p.parse_args()
    {"timing": _timing, "score": _score, "correlate": _correlate, "meco1": _meco_one_image}[args.cmd](args)


if __name__ == "__main__":
    main()
