"""DAG family `bpe_search`: the BPE paper's search for the training budget itself (Minimum Importance Pruning).

Each round samples settings from the current space (the cheapest corner first), trains the first
`bpe_search.n_archs` archs of results/archs.jsonl under each (through the per-arch cache of proxy_train: a
sampled setting equal to a named one reuses its results), measures each setting's correlation with the ground
truth and its cost, estimates each hyperparameter's importance (fANOVA, `nasflow.bpe_search`) and prunes the
least important one at its cheapest value; the next round samples the smaller space. Steps:

    python -m stages.bpe_search sample   --round R            # -> results/bpe_search/round-R/settings.json
    python -m stages.bpe_search train    --round R --setting S  # -> results/bpe_search/round-R/train/S.json
    python -m stages.bpe_search evaluate --round R            # -> results/bpe_search/round-R/round.json
    python -m stages.bpe_search report                        # -> settings.csv, accuracies.csv, importance.csv, best.json
    python -m stages.bpe_search all                           # every step of every round in one process (DVC)
    python -m stages.bpe_search adopt                         # the choice -> settings.bpe_search in params.yaml
    python -m stages.bpe_search base --out F                  # DVC: the base setting as a file (see dvc.yaml)

Snakemake runs `sample` as a checkpoint (the settings a round trains are known only once it ran) and one
`train` job per setting; DVC runs `all` as one stage. Both write the same files.
"""
from __future__ import annotations

import csv
import json
import math
import sys
import time
from pathlib import Path

from nasflow.errors import CheckpointError, ParamsError
from stages.artifacts import atomic_path, read_json, read_results, write_json
from stages.devices import claim, configure_torch, training_options
from stages.guard import main_guard, parser
from stages.params import load_params
from stages.provenance import provenance

OUT = Path("results/bpe_search")
COLUMNS_AFTER = ["n", "kendall_tau", "spearman_rho", "seconds_per_arch", "gpu_hours_per_arch"]


def config(params: dict) -> dict:
    from nasflow import bpe_search

    cfg = params.get("bpe_search")
    if not cfg:
        raise ParamsError("bpe_search is off in the params (bpe_search: null); nothing to search")
    cfg = bpe_search.validate(cfg, space_name=params["space"], settings=params["settings"])
    if cfg["n_archs"] > params["sample"]["n_archs"]:
        raise ParamsError(f"bpe_search.n_archs: {cfg['n_archs']} archs, but sample.n_archs samples only "
                          f"{params['sample']['n_archs']}")
    return cfg


def round_dir(r: int, out: Path = OUT) -> Path:
    return out / f"round-{r}"


def _read(path: Path, what: str):
    if not Path(path).is_file():
        raise CheckpointError(f"missing input file: {path} (run {what} first)")
    return read_json(path)


def named_setting(params: dict, full: dict) -> str | None:
    """The named setting equal to `full`, if any: its per-arch cache is reused."""
    from stages.training import cache_name

    name = cache_name(params, "bpe_search", full)
    return None if name == "bpe_search" else name


# ------------------------------------------------------------------------------------------------- steps
def sample(params: dict, r: int, out: Path = OUT) -> dict:
    from nasflow import bpe_search

    cfg = config(params)
    if not 0 <= r < cfg["rounds"]:
        raise ParamsError(f"--round {r}: bpe_search.rounds is {cfg['rounds']} (rounds 0..{cfg['rounds'] - 1})")
    earlier = []
    if r == 0:
        space, fixed = cfg["space"], {}
    else:
        prev = _read(round_dir(r - 1, out) / "round.json", f"bpe_search evaluate --round {r - 1}")
        space, fixed = prev["next_space"], prev["fixed"]
        for k in range(r):
            earlier += [s["values"] for s in _read(round_dir(k, out) / "settings.json", "bpe_search sample")["settings"]]
    base = params["settings"][cfg["base"]]
    values = bpe_search.sample_settings(space, cfg["n_settings"], seed=params["seed"] * 1000 + r, exclude=earlier)
    settings = []
    for v in values:
        full = bpe_search.full_setting(v, base)
        settings.append({"setting": bpe_search.setting_name(v), "values": v, "full": full,
                         "same_as": named_setting(params, full)})
    doc = {"round": r, "space": space, "fixed": fixed, "settings": settings, "provenance": provenance(params)}
    write_json(round_dir(r, out) / "settings.json", doc)
    names = ", ".join(s["setting"] for s in settings) or "none (the space is exhausted)"
    print(f"bpe_search round {r}: {len(settings)} settings: {names}", file=sys.stderr, flush=True)
    return doc


def _search_archs(params: dict, cfg: dict, archs_path: str) -> list[dict]:
    from stages.training import read_archs

    records = read_archs(archs_path)
    if len(records) < cfg["n_archs"]:
        raise CheckpointError(f"{archs_path}: {len(records)} archs, bpe_search.n_archs needs {cfg['n_archs']}")
    return records[:cfg["n_archs"]]


def train(params: dict, r: int, name: str, *, archs_path: str = "results/archs.jsonl", out: Path = OUT) -> None:
    from nasflow.devices import describe
    from nasflow.estimators.proxy import train_archs
    from nasflow.spaces import get_space
    from stages.training import cache_name, load_splits, work_dir

    cfg = config(params)
    doc = _read(round_dir(r, out) / "settings.json", f"bpe_search sample --round {r}")
    entry = next((s for s in doc["settings"] if s["setting"] == name), None)
    if entry is None:
        raise ParamsError(f"--setting {name}: not a setting of round {r} "
                          f"(sampled: {', '.join(s['setting'] for s in doc['settings'])})")
    configure_torch(params)
    space = get_space(params["space"])
    records = _search_archs(params, cfg, archs_path)
    archs = [space.canonical(rec["arch"]) for rec in records]
    setting = entry["full"]
    cache = work_dir(params, cache_name(params, "bpe_search", setting), setting)
    splits = load_splits(params, setting)
    start = time.time()
    with claim(params) as device:
        print(f"bpe_search round {r}, setting {name}: {len(archs)} archs on {describe(device)}, cache {cache}",
              file=sys.stderr, flush=True)
        results = train_archs(archs, space=space, setting=setting, splits=splits, seed=params["seed"],
                              device=device, work_dir=cache, **training_options(params))
        device_name = describe(device)
    rows = [{"id": rec["id"], "arch": a, "final_acc": res["final_acc"], "seconds": res["seconds"],
             "status": res.get("status", "ok")} for rec, a, res in zip(records, archs, results)]
    write_json(round_dir(r, out) / "train" / f"{name}.json", {
        "round": r, "setting": name, "values": entry["values"], "full": setting, "device": device_name,
        "seconds": time.time() - start, "results": rows,
        "provenance": provenance(params, inputs=[str(archs_path)])})


def _ground_truth(path: str) -> dict[int, float]:
    doc = read_results(path, keys=("id", "final_acc"))
    return {r["id"]: r["final_acc"] for r in doc["results"]}


def _consistent(values: dict, space: dict) -> bool:
    """A setting of an earlier round still belongs to the (pruned) space: it may inform this round's forest."""
    return all(values.get(hp) in choices for hp, choices in space.items())


def evaluate(params: dict, r: int, *, ground_truth: str = "results/ground_truth.json", out: Path = OUT) -> dict:
    from nasflow import bpe_search
    from nasflow.analysis.correlation import correlation_row

    cfg = config(params)
    doc = _read(round_dir(r, out) / "settings.json", f"bpe_search sample --round {r}")
    truth = _ground_truth(ground_truth)
    rows = []
    for s in doc["settings"]:
        path = round_dir(r, out) / "train" / f"{s['setting']}.json"
        res = read_results(path, keys=("id", "final_acc", "seconds"))["results"] if path.exists() else None
        if res is None:
            raise CheckpointError(f"missing input file: {path} (run bpe_search train --round {r} --setting "
                                  f"{s['setting']} first)")
        missing = [x["id"] for x in res if x["id"] not in truth]
        if missing:
            raise CheckpointError(f"{ground_truth}: no ground truth for arch id {missing[0]} (rerun ground_truth)")
        acc = [math.nan if x["final_acc"] is None else float(x["final_acc"]) for x in res]
        corr = correlation_row(s["setting"], acc, [truth[x["id"]] for x in res], n_boot=0)
        seconds = sum(x["seconds"] for x in res) / max(len(res), 1)
        rows.append({"setting": s["setting"], "round": r, **s["values"], "n": corr["n"],
                     "kendall_tau": corr["kendall_tau"], "spearman_rho": corr["spearman_rho"],
                     "seconds_per_arch": seconds, "gpu_hours_per_arch": seconds / 3600})
    space = doc["space"]
    history = [row for k in range(r) for row in _read(round_dir(k, out) / "round.json", "bpe_search evaluate")["rows"]]
    fit = [row for row in history + rows if _consistent(row, space)]
    importance = bpe_search.importance(fit, space, cfg["objective"])
    next_space, newly_fixed = bpe_search.prune(space, importance, fit, cfg["objective"])
    result = {"round": r, "space": space, "rows": rows, "fit_rows": len(fit),
              "importance": {hp: list(v) for hp, v in importance.items()},
              "pruned": newly_fixed, "fixed": {**doc["fixed"], **newly_fixed}, "next_space": next_space,
              "provenance": provenance(params, inputs=[ground_truth])}
    write_json(round_dir(r, out) / "round.json", result)
    ranking = ", ".join(f"{hp} {m:.2f}±{s:.2f}" for hp, (m, s) in sorted(importance.items(), key=lambda kv: -kv[1][0]))
    print(f"bpe_search round {r}: importance {ranking or 'n/a'}; pruned {newly_fixed or 'nothing'}",
          file=sys.stderr, flush=True)
    return result


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)


def _cell(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _number(v) -> float:
    """v as a float for sorting, NaN (sorted last with a minus sign) when missing."""
    return math.nan if v is None else float(v)


def report(params: dict, *, ground_truth: str = "results/ground_truth.json", out: Path = OUT) -> dict:
    from nasflow import bpe_search

    cfg = config(params)
    rounds = [_read(round_dir(r, out) / "round.json", f"bpe_search evaluate --round {r}") for r in range(cfg["rounds"])]
    hps = [hp for hp in bpe_search.SEARCHABLE if hp in cfg["space"]]
    rows = [row for rd in rounds for row in rd["rows"]]
    chosen = bpe_search.choose(rows, cfg["objective"], cfg["budget_seconds_per_arch"])  # before anything is written
    if chosen is None:
        raise CheckpointError(f"bpe_search: no sampled setting has a finite {cfg['objective']}"
                              + (f" within {cfg['budget_seconds_per_arch']} s per arch" if cfg["budget_seconds_per_arch"]
                                 else "") + f" (see {round_dir(0, out).parent}/round-*/round.json)")
    _write_csv(out / "settings.csv", ["setting", "round", *hps, *COLUMNS_AFTER],
               [[row["setting"], row["round"], *(row[hp] for hp in hps), *(_cell(row[c]) for c in COLUMNS_AFTER)]
                for row in rows])
    truth = _ground_truth(ground_truth)
    long = []
    for rd in rounds:
        for row in rd["rows"]:
            res = read_results(round_dir(rd["round"], out) / "train" / f"{row['setting']}.json",
                               keys=("id", "arch", "final_acc"))["results"]
            long += [[x["arch"], row["setting"], _cell(x["final_acc"]), truth[x["id"]]] for x in res]
    _write_csv(out / "accuracies.csv", ["arch", "setting", "accuracy", "ground_truth"], long)
    _write_csv(out / "importance.csv", ["round", "hyperparameter", "importance", "importance_std", "pruned"],
               [[rd["round"], hp, _cell(m), _cell(sd), "yes" if hp in rd["pruned"] else ""] for rd in rounds
                for hp, (m, sd) in sorted(rd["importance"].items(), key=lambda kv: -_number(kv[1][0]))])
    entry = next(s for rd in range(cfg["rounds"])
                 for s in _read(round_dir(rd, out) / "settings.json", "bpe_search sample")["settings"]
                 if s["setting"] == chosen["setting"])
    best = {"setting": chosen["setting"], "values": entry["values"], "full": entry["full"],
            "objective": cfg["objective"], cfg["objective"]: chosen[cfg["objective"]],
            "kendall_tau": chosen["kendall_tau"], "spearman_rho": chosen["spearman_rho"],
            "seconds_per_arch": chosen["seconds_per_arch"], "gpu_hours_per_arch": chosen["gpu_hours_per_arch"],
            "round": chosen["round"], "budget_seconds_per_arch": cfg["budget_seconds_per_arch"],
            "provenance": provenance(params, inputs=[ground_truth])}
    write_json(out / "best.json", best)
    print(f"bpe_search: chose {best['setting']} ({cfg['objective']} {best[cfg['objective']]:.3f}, "
          f"{best['seconds_per_arch']:.3g} s per arch, round {best['round']})", file=sys.stderr, flush=True)
    return best


def run_all(params: dict, *, archs_path: str, ground_truth: str, out: Path = OUT) -> None:
    """Every round in one process (DVC's stage): the same files as the Snakemake jobs write."""
    cfg = config(params)
    for r in range(cfg["rounds"]):
        doc = sample(params, r, out)
        for s in doc["settings"]:
            train(params, r, s["setting"], archs_path=archs_path, out=out)
        evaluate(params, r, ground_truth=ground_truth, out=out)
    report(params, ground_truth=ground_truth, out=out)


def adopt(params: dict, params_path: Path, out: Path = OUT) -> None:
    """Write the chosen setting into the params file as `settings.bpe_search` (a line under `settings:`, comments
    kept). DVC reads a stage's params from params.yaml only, so `proxy.settings: [bpe_search]` needs this there;
    Snakemake reads best.json directly."""
    best = read_results(out / "best.json", rows=None, top=("full", "setting"))
    if "bpe_search" in params["settings"]:
        raise ParamsError(f"{params_path}: settings.bpe_search is already defined; remove it to adopt a new choice")
    lines = params_path.read_text().splitlines(keepends=True)
    import re

    import yaml

    at = next((i for i, line in enumerate(lines) if re.match(r"settings:\s*(#.*)?$", line.rstrip())), None)
    if at is None:
        raise ParamsError(f"{params_path}: no top-level 'settings:' block to add the chosen setting to")
    indent = next((line[:len(line) - len(line.lstrip())] for line in lines[at + 1:] if line.strip()
                   and not line.lstrip().startswith("#")), "  ")
    value = yaml.safe_dump(best["full"], default_flow_style=True, sort_keys=False, width=10**9).strip()
    lines.insert(at + 1, f"{indent}bpe_search: {value}  # chosen by bpe_search ({best['setting']})\n")
    from stages.params import validate_params

    text = "".join(lines)
    validate_params(yaml.safe_load(text), str(params_path))  # the edited file must still validate
    with atomic_path(params_path) as tmp:
        tmp.write_text(text)
    print(f"{params_path}: settings.bpe_search = {best['setting']}", flush=True)


def round_settings(path) -> list[str]:
    """The setting names a round's settings.json lists (Snakemake's checkpoint reads them)."""
    return [s["setting"] for s in json.loads(Path(path).read_text())["settings"]]


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("step", choices=["sample", "train", "evaluate", "report", "all", "adopt", "base"])
    p.add_argument("--round", type=int, default=0)
    p.add_argument("--setting", help="train: the sampled setting's name")
    p.add_argument("--archs", default="results/archs.jsonl")
    p.add_argument("--ground-truth", default="results/ground_truth.json")
    p.add_argument("--out-dir", default=str(OUT),
                   help=f"the search's files (default {OUT}; a study keeps it: the `bpe_search` proxy setting is read "
                        "from results/bpe_search/best.json)")
    p.add_argument("--out", help="base: the file to write")
    args = p.parse_args()
    params = load_params(args.params)
    out = Path(args.out_dir)
    if args.step == "sample":
        sample(params, args.round, out)
    elif args.step == "train":
        if not args.setting:
            raise ParamsError("train needs --setting (a name from the round's settings.json)")
        train(params, args.round, args.setting, archs_path=args.archs, out=out)
    elif args.step == "evaluate":
        evaluate(params, args.round, ground_truth=args.ground_truth, out=out)
    elif args.step == "report":
        report(params, ground_truth=args.ground_truth, out=out)
    elif args.step == "base":  # DVC: the base setting as a file the search depends on (see dvc.yaml)
        cfg = params.get("bpe_search")
        doc = {"base": cfg["base"], "values": params["settings"][cfg["base"]]} if cfg else {"base": None}
        with atomic_path(args.out or "results/bpe_search_base.json") as tmp:
            tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    elif args.step == "adopt":
        adopt(params, Path(args.params), out)
    elif not params.get("bpe_search"):  # `all` is DVC's stage, which exists whether or not the search is on
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        with atomic_path(out / "OFF.txt") as tmp:
            tmp.write_text("bpe_search is off in the params (bpe_search: null): nothing was searched.\n")
        print("bpe_search: off (bpe_search: null)", file=sys.stderr, flush=True)
    else:
        run_all(params, archs_path=args.archs, ground_truth=args.ground_truth, out=out)


if __name__ == "__main__":
    main()
