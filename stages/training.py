"""Shared by proxy_train and ground_truth: read this shard's archs, claim a device, train, write the JSON."""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from nasflow.errors import CheckpointError, ParamsError
from stages.artifacts import write_json
from stages.devices import claim, configure_torch, training_options
from stages.params import proxy_setting
from stages.provenance import provenance


def read_archs(path, shard=(0, 1)) -> list[dict]:
    """The {id, arch} records of one shard: every n-th line starting at i."""
    from nasflow.errors import ArchError

    i, n = shard
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        raise CheckpointError(f"missing input file: {path} (run sample_archs first)") from None
    records = []
    for lineno, line in enumerate(lines, 1):
        try:
            rec = json.loads(line)
            records.append({"id": int(rec["id"]), "arch": str(rec["arch"])})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise ArchError(f"{path}:{lineno}: expected a JSON object with 'id' and 'arch'") from None
    return records[i::n]


def arch_set(params: dict, name: str, archs_path, *, key: str) -> list[dict]:
    """The {id, arch} records of an arch set, ids in the set's order: `sampled` (the archs file), `all` (every cell
    of an enumerable space, id = its index) or `extra` (`zero_cost.extra_archs` cells not sampled, drawn with the
    params' seed). `key` names the parameter in errors."""
    from nasflow.spaces import get_space

    space = get_space(params["space"])
    if name == "sampled":
        return read_archs(archs_path)
    if not hasattr(space, "enumerate_all"):
        raise ParamsError(f"{key}: {name!r} enumerates the nb201 space only; the {space.NAME} space is too large "
                          "(use sampled)")
    cells = space.enumerate_all()
    if name == "all":
        return [{"id": i, "arch": a} for i, a in enumerate(cells)]
    sampled = {space.canonical(r["arch"]) for r in read_archs(archs_path)}
    rest = [a for a in cells if a not in sampled]
    n = params["zero_cost"]["extra_archs"]
    if n > len(rest):
        raise ParamsError(f"zero_cost.extra_archs: {n} cells asked, only {len(rest)} are not sampled")
    return [{"id": i, "arch": a} for i, a in enumerate(random.Random(params["seed"]).sample(rest, n))]


def load_splits(params, setting):
    from nasflow.data import load_dataset

    d = params["data"]
    return load_dataset(d["dataset"], root=d["root"], path=d["path"], download=d["download"],
                        split_seed=params["seed"], eval_split=setting.get("eval_split", "test"), subset=d["subset"],
                        image_size=setting["image_size"])


def work_dir(params: dict, name: str, setting: dict) -> Path:
    """Where a training node keeps finished archs and checkpoints. Everything that shapes a result is in the
    name, so a changed setting never reuses stale results (and an unchanged one resumes)."""
    from nasflow.estimators.proxy import digest

    return Path("results/work") / f"{name}-{digest([params['space'], setting, params['data'], params['seed']])}"


def cache_name(params: dict, name: str, setting: dict) -> str:
    """The name a setting's per-arch cache goes under (results/work/<name>-<hash>): that of the first setting in
    `settings` equal to it, so equal settings share one cache (a result depends on the setting's values, never on
    its name). The budget search's settings (`bpe_search`: sampled, chosen or adopted) thus share the cache of an
    equal named setting, and an experiment that makes one named setting equal to another (`dvc exp run -S
    settings.bpe2.epochs=1` when bpe1 is bpe2 at 1 epoch) trains nothing."""
    return next((n for n, s in params["settings"].items() if n != "bpe_search" and s == setting), name)


def run_training(params: dict, setting_name: str, *, kind: str, shard, archs_path, out) -> None:
    from nasflow.devices import describe
    from nasflow.estimators.proxy import train_archs
    from nasflow.spaces import get_space

    configure_torch(params)
    space = get_space(params["space"])
    setting = proxy_setting(params, setting_name)
    records = read_archs(archs_path, shard)
    for r in records:
        r["arch"] = space.canonical(r["arch"])
    work = work_dir(params, cache_name(params, setting_name, setting), setting)
    splits = load_splits(params, setting)
    start = time.time()
    with claim(params) as device:
        print(f"{kind} {setting_name}, shard {shard[0]}/{shard[1]}: {len(records)} archs on {describe(device)}, "
              f"cache {work}", file=sys.stderr, flush=True)
        results = train_archs([r["arch"] for r in records], space=space, setting=setting, splits=splits,
                              seed=params["seed"], device=device, work_dir=work, **training_options(params))
        device_name = describe(device)
    for r, res in zip(records, results):
        res["id"] = r["id"]
    write_json(out, {
        "kind": kind, "setting_name": setting_name, "setting": setting, "shard": list(shard),
        "device": device_name, "seconds": time.time() - start, "results": results,
        "provenance": provenance(params, inputs=[str(archs_path)]),
    })


def write_lookup(params: dict, *, shard, archs_path, out) -> None:
    from nasflow.bench import lookup
    from nasflow.spaces import get_space

    space = get_space(params["space"])
    gt = params["ground_truth"]
    records = read_archs(archs_path, shard)
    archs = [space.canonical(r["arch"]) for r in records]
    accs = lookup(archs, gt["path"], gt["column"])
    print(f"ground_truth: looked up {len(archs)} archs in {gt['path']} ({gt['column']})", file=sys.stderr, flush=True)
    results = [{"id": r["id"], "arch": a, "final_acc": acc, "seconds": 0.0} for r, a, acc in zip(records, archs, accs)]
    write_json(out, {
        "kind": "ground_truth", "setting_name": f"table:{gt['column']}", "setting": gt, "shard": list(shard),
        "device": None, "seconds": 0.0, "results": results,
        "provenance": provenance(params, inputs=[str(archs_path), gt["path"]]),
    })
