"""DAG node `differentiable_search`: one differentiable / weight-sharing search (GDAS, DARTS-V1, DARTS-V2,
RSPS, SETN, ENAS; nasflow.search.differentiable) in the params' `space` (nb201: all six; darts: all but SETN
and ENAS), its arch going on to `found_ground_truth`.

    python -m stages.differentiable_search --params params.yaml --method gdas --out results/search/gdas.json

Parameters: the `differentiable:` section of params.yaml (`epochs` is a number or a per-method mapping;
`overrides: {method: {key: value}}` sets any other key for one method, e.g. ENAS' own batch size and lr). The
`ctl_*` keys set ENAS' controller and are passed to (and part of the work-dir digest of) ENAS only.
The supernet's depth is `cells_per_stage` in the nb201 space and `layers` (total cells) in the darts space.
`parallel.compile` compiles the weight step (see nasflow.train); `precision: 16` trains under bf16 on CUDA.
The data are loaded with eval_split "valid": weights train on the first half of the training images, the
architecture on the second. The search checkpoints every epoch under results/work/search-<method>-<digest>/
and a rerun resumes there. A search whose losses turn non-finite ends with `status: diverged`,
`diverged_epoch` and `best` null (found_ground_truth then records NaN).
"""
from __future__ import annotations

import sys
import time

from nasflow.errors import ParamsError
from stages.artifacts import write_json
from stages.devices import claim, configure_torch, training_options
from stages.guard import main_guard, parser
from stages.params import load_params
from stages.provenance import provenance
from stages.training import load_splits, work_dir

# key -> run_search keyword (None: not passed through)
KEYS = {
    "methods": None, "overrides": None, "channels": "C", "cells_per_stage": "depth", "layers": "depth",
    "image_size": "image_size", "batch_size": "batch_size",
    "epochs": "epochs", "w_lr": "w_lr", "w_lr_min": "w_lr_min", "w_momentum": "w_momentum",
    "w_nesterov": "w_nesterov", "w_wd": "w_wd",
    "grad_clip": "grad_clip", "a_lr": "a_lr", "a_betas": "a_betas", "a_wd": "a_wd", "tau_max": "tau_max",
    "tau_min": "tau_min", "select_num": "select_num", "select_batch_size": "select_batch_size",
    "track_running_stats": "track_running_stats", "valid_images": "valid_images", "precision": "precision",
    **{k: k for k in ("ctl_lstm_size", "ctl_lstm_layers", "ctl_tanh_constant", "ctl_temperature", "ctl_lr",
                      "ctl_betas", "ctl_eps", "ctl_entropy_weight", "ctl_baseline_decay", "ctl_train_steps",
                      "ctl_num_aggregate", "ctl_baseline_mode")},
}
DEFAULTS = {"methods": ["gdas", "darts-v1", "darts-v2", "rsps", "setn"], "w_lr_min": 0.001, "w_momentum": 0.9,
            "w_nesterov": True, "grad_clip": 5.0, "a_betas": [0.5, 0.999], "tau_max": 10.0, "tau_min": 0.1,
            "select_num": 100, "select_batch_size": None, "track_running_stats": False, "valid_images": None,
            "precision": 32,
            # ENAS' controller (ADL ENAS.sh / ENAS.config)
            "ctl_lstm_size": 32, "ctl_lstm_layers": 2, "ctl_tanh_constant": 2.5, "ctl_temperature": 5.0,
            "ctl_lr": 1e-3, "ctl_betas": [0.0, 0.999], "ctl_eps": 1e-3, "ctl_entropy_weight": 1e-4,
            "ctl_baseline_decay": 0.99, "ctl_train_steps": 50, "ctl_num_aggregate": 20,
            "ctl_baseline_mode": "running"}
REQUIRED = ("channels", "image_size", "batch_size", "epochs", "w_lr", "w_wd", "a_lr", "a_wd")  # + DEPTH_KEYS
DEPTH_KEYS = {"nb201": "cells_per_stage", "darts": "layers"}  # space -> its depth key (the other is an error)


def search_config(params: dict, method: str) -> dict:
    """run_search's keywords for `method` from params["differentiable"] (defaults filled, epochs resolved)."""
    from nasflow.search.differentiable import METHODS, SPACE_METHODS

    if method not in METHODS:
        raise ParamsError(f"--method: unknown method {method!r} (known: {', '.join(METHODS)})")
    space = params.get("space")
    if space not in DEPTH_KEYS:
        raise ParamsError(f"space: differentiable search runs in the {' and '.join(DEPTH_KEYS)} spaces, "
                          f"not {space!r}")
    if method not in SPACE_METHODS[space]:
        raise ParamsError(f"--method: {method!r} is not available in the {space} space "
                          f"(available: {', '.join(SPACE_METHODS[space])})")
    section = params.get("differentiable")
    if not isinstance(section, dict):
        raise ParamsError("differentiable: section missing from params (see stages/differentiable_search.py)")
    unknown = sorted(set(section) - set(KEYS))
    if unknown:
        raise ParamsError(f"differentiable: unknown key(s) {', '.join(unknown)} (known: {', '.join(KEYS)})")
    depth_key = DEPTH_KEYS[space]
    for other in DEPTH_KEYS.values():
        if other != depth_key and other in section:
            raise ParamsError(f"differentiable.{other}: not a key of the {space} space (use {depth_key})")
    missing = [k for k in REQUIRED + (depth_key,) if k not in section]
    if missing:
        raise ParamsError(f"differentiable: missing key(s) {', '.join(missing)}")
    overrides = section.get("overrides") or {}
    per_method = overrides.get(method) or {}
    bad = sorted(set(per_method) - set(KEYS) | {"methods", "overrides", "cells_per_stage", "layers"} & set(per_method))
    if bad:
        raise ParamsError(f"differentiable.overrides.{method}: key(s) {', '.join(bad)} cannot be set per method")
    d = {**DEFAULTS, **section, **per_method}  # a method's overrides win (ADL trains ENAS with its own batch/lr/wd)
    epochs = d["epochs"]
    if isinstance(epochs, dict):
        if method not in epochs:
            raise ParamsError(f"differentiable.epochs: no entry for method {method!r}")
        epochs = epochs[method]
    cfg = {kw: d[key] for key, kw in KEYS.items() if kw not in (None, "depth")}
    cfg["space"] = space
    cfg["depth"] = d[depth_key]
    cfg["epochs"] = epochs
    cfg["a_betas"] = tuple(cfg["a_betas"])
    if method == "enas":
        cfg["ctl_betas"] = tuple(cfg["ctl_betas"])
    else:  # the other methods' keywords (and work-dir digests) stay as they were
        cfg = {k: v for k, v in cfg.items() if not k.startswith("ctl_")}
    return cfg


def run(params: dict, method: str, out, *, progress: bool = True) -> dict:
    """Run the search of `method` under `params` and write its JSON to `out`; returns the record."""
    from nasflow.devices import describe
    from nasflow.search.differentiable import run_search

    cfg = search_config(params, method)
    setting = {"eval_split": "valid", "method": method, **{k: list(v) if isinstance(v, tuple) else v
                                                          for k, v in cfg.items()}}
    splits = load_splits(params, setting)
    work = work_dir(params, f"search-{method}", setting)
    start = time.time()
    with claim(params) as device:
        result = run_search(method, splits, **cfg, seed=params["seed"], device=device,
                            checkpoint=work / "search.pt", progress=progress,
                            compile=training_options(params)["compile"])
        device_name = describe(device)
    if progress:
        print(f"{method}: {'picked ' + result['best'] if result['best'] else 'no pick'} (status {result['status']}, "
              f"{result['epochs']} epochs, {result['seconds']:.1f} s on {device_name})", file=sys.stderr, flush=True)
    record = {
        "kind": "search", "method": method, "name": method, "best": result["best"], "best_score": None,
        "status": result["status"], "diverged_epoch": result["diverged_epoch"], "history": result["history"], "alphas": result["alphas"], "selection": result["selection"],
        "search_seconds": result["seconds"], "wall_seconds": time.time() - start,
        "resumed_from": result["resumed_from"], "device": device_name, "config": result["config"],
        "provenance": provenance(params, inputs=[str(work / "search.pt")]),
    }
    write_json(out, record)
    return record


@main_guard
def main():
    from nasflow.search.differentiable import METHODS

    p = parser(__doc__)
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    run(params, args.method, args.out)


if __name__ == "__main__":
    main()
