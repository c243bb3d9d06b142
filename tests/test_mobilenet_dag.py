"""`space: mobilenet` through the real Snakemake DAG: a tiny study on the digits (BPE proxy, retrained ground
truth, the RLNAS MobileNet supernet on random labels with the angle, evolution under a FLOPs limit, one
random search with the proxy)."""
from __future__ import annotations

import json
import sys

import pytest
import yaml

from nasflow.spaces import mobilenet as space
from tests.test_engines import OPT, TINY, make_study, read_csv, run

MAX_FLOPS = 400_000  # at width 0.2 (stem 8), 8 px, 10 classes: about half the archs (340k..475k) fit


@pytest.mark.slow
def test_mobilenet_space_study_through_snakemake(tmp_path, engine_env):
    small = {"epochs": 1, "batch_size": 64, "lr": 0.05, "weight_decay": 3e-4, **OPT, "channels": 8,
             "image_size": 8, "cutout": 0, "precision": 32}
    supernet = {**small, "label_smoothing": 0.1, "eval_split": "valid"}
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params.update(space="mobilenet", sample={"n_archs": 3}, parallel={"shards": 1},
                  data={**TINY["data"], "subset": 200},
                  settings={"bpe1": small, "full": {**small, "image_size": 16}, "supernet": supernet},
                  proxy={"settings": ["bpe1"]},
                  supernet={"setting": "supernet", "labels": ["random"], "arch_sets": ["sampled"],
                            "bn_batches": 1, "max_eval": 32},
                  evolution={**TINY["evolution"], "indicators": ["angle"], "max_flops": MAX_FLOPS},
                  search={"strategies": ["rs"], "estimators": ["proxy_bpe1"], "budget": {"evaluations": 2}},
                  differentiable={k: v for k, v in TINY["differentiable"].items() if k != "cells_per_stage"}
                  | {"methods": []},
                  bpe_search=None)
    study = make_study(tmp_path, params)
    run([sys.executable, "-m", "snakemake", "--cores", "2"], study, engine_env)

    est = read_csv(study / "results" / "estimates.csv")
    assert len(est) == 3 and all(space.canonical(r["arch"]) == r["arch"] for r in est)
    assert all(0 <= float(r["proxy_bpe1"]) <= 100 for r in est)
    assert all(0 < float(r["angle"]) < 3.15 for r in est)
    assert all(0 <= float(r["supernet_acc"]) <= 100 for r in est)
    found = json.loads((study / "results" / "found.json").read_text())["results"]
    assert sorted(f["search"] for f in found) == ["rlnas_random_angle", "rs_proxy_bpe1"]
    assert all(space.canonical(f["arch"]) == f["arch"] for f in found)
    evo = json.loads((study / "results" / "search" / "rlnas_random_angle.json").read_text())
    scored = [a["arch"] for g in evo["history"] for a in g["archs"]]
    assert evo["n_scored"] == len(scored) == 8  # population 4, then 2 mutations + 2 crossovers (or random fill)
    flops = [space.flops_of(a, width=0.2, input_size=8, num_classes=10, convention="rlnas") for a in scored]
    assert max(flops) <= MAX_FLOPS
