"""`space: mobilenet` through the real Snakemake DAG: a tiny study on the digits (BPE proxy, retrained ground
truth, the RLNAS MobileNet supernet on random labels with the angle, evolution under a FLOPs limit, one
random search with the proxy)."""
from __future__ import annotations

import json
import math
import sys
import warnings

import pytest
import yaml
from openpyxl import load_workbook
from scipy import stats

from nasflow.models.mobilenet import flops_of
from nasflow.spaces import mobilenet as space
from tests.test_engines import OPT, TINY, make_study, read_csv, run

MAX_FLOPS = 400_000  # at width 0.2 (stem 8), 8 px, 10 classes: about half the archs (340k..475k) fit
ESTIMATORS = ["proxy_bpe1", "angle", "supernet_acc"]  # one label kind: the supernet columns carry no suffix


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
    flops = [flops_of(a, width=0.2, input_size=8, num_classes=10, convention="rlnas") for a in scored]
    assert max(flops) <= MAX_FLOPS
    _check_workbook(study / "results" / "report.xlsx", est)
    _check_plots(study / "results" / "plots")


def _tau(estimate: list[float], truth: list[float]) -> float:
    """scipy's Kendall tau-b, NaN for constant input (as correlation.csv says it)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on constant input
        return float(stats.kendalltau(estimate, truth).statistic)


def _same_number(cell, expected: float) -> bool:
    """A workbook cell against a number: an empty cell stands for NaN."""
    if math.isnan(expected):
        return cell is None
    return cell == pytest.approx(expected, abs=1e-12)


def _check_workbook(path, est: list[dict]) -> None:
    wb = load_workbook(path)
    assert wb.sheetnames[0] == "settings"
    assert {"settings", "ground_truth", "correlation", "warnings", "rlnas", "searches"} <= set(wb.sheetnames)
    archs = [r["arch"] for r in est]
    truth = [float(r["ground_truth"]) for r in est]

    rows = [tuple(r) for r in wb["settings"].iter_rows(values_only=True)]
    assert rows[0] == ("setting", "bpe1")
    labels = [r[0] for r in rows]
    first, mean = labels.index("arch") + 1, labels.index("Mean")
    setting = {r[0]: r[1] for r in rows[1:first - 1]}  # the proxy setting as the study gave it
    assert (setting["epochs"], setting["batch size"], setting["channels"], setting["image size"]) == (1, 64, 8, 8)
    assert labels[first:mean] == archs  # one row per arch, in estimates.csv's order, with its proxy score
    assert [r[1] for r in rows[first:mean]] == pytest.approx([float(r["proxy_bpe1"]) for r in est])
    assert _same_number(rows[labels.index("Kendall")][1], _tau([float(r["proxy_bpe1"]) for r in est], truth))

    rows = list(wb["ground_truth"].iter_rows(values_only=True))
    assert [r[0] for r in rows[1:]] == archs and [r[1] for r in rows[1:]] == pytest.approx(truth)

    rows = list(wb["correlation"].iter_rows(values_only=True))
    header = list(rows[0])
    assert header[:3] == ["estimator", "n", "kendall_tau"]
    assert [r[0] for r in rows[1:]] == ESTIMATORS
    for r in rows[1:]:  # tau recomputed from estimates.csv, independently of the correlate stage
        row = dict(zip(header, r))
        assert row["n"] == len(est)
        assert _same_number(row["kendall_tau"], _tau([float(e[row["estimator"]]) for e in est], truth)), row

    rows = list(wb["rlnas"].iter_rows(values_only=True))
    assert [(r[0], r[1]) for r in rows[1:]] == [("random", "angle")]


def _check_plots(plots) -> None:
    expected = ["correlation_vs_cost.png", "frontier.png", "search_best_so_far.png", *(f"{e}_vs_ground_truth.png" for e in ESTIMATORS)]
    # no alphas (no differentiable search); Snakemake also leaves a .snakemake_timestamp in a directory output
    assert sorted(p.name for p in plots.glob("*.png")) == sorted(expected)
    for name in expected:
        data = (plots / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, name  # a real, non-empty image
