"""A diverged run is never a score: training, supernets and differentiable searches stop on a non-finite loss
and say `status: diverged`; estimates.csv leaves the cell empty, correlations count finite pairs only,
searches treat a diverged arch as the worst, the report lists it, and the whole DAG still finishes."""
import json
import math
import sys

import numpy as np
import pytest
import torch
import yaml
from openpyxl import load_workbook
from scipy import stats

from nasflow.analysis.correlation import correlation_row
from nasflow.data import load_dataset
from nasflow.models import nb201 as nb201_net
from nasflow.search import Budget, get_strategy
from nasflow.search.differentiable import hessian_vector_product, run_search
from nasflow.spaces import nb201
from nasflow.train import STATUS_DIVERGED, STATUS_OK, TrainConfig, train
from tests.test_engines import TINY, make_study, read_csv, run


def setup_module():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", subset=300)


ARCH = nb201.format(["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3", "skip_connect"])


def _train(splits, lr, epochs=4, **kw):
    torch.manual_seed(0)
    model = nb201_net.build_network(ARCH, channels=4, depth=1, num_classes=splits.num_classes)
    return train(model, splits, TrainConfig(epochs=epochs, batch_size=64, lr=lr, image_size=8), seed=0,
                 device="cpu", progress=False, **kw)


# ------------------------------------------------------------------------------------------------ train()

def test_huge_lr_diverges_stops_early_and_has_no_accuracy(digits, tmp_path):
    ckpt = tmp_path / "arch.pt"
    out = _train(digits, lr=1e6, checkpoint=ckpt)
    assert out["status"] == STATUS_DIVERGED == "diverged"
    assert math.isnan(out["final_acc"]) and math.isnan(out["best_acc"])
    assert 1 <= out["diverged_epoch"] == out["epochs"] == len(out["history"]) < 4  # stopped early
    last = out["history"][-1]
    assert last["diverged"] is True and last["epoch"] == out["diverged_epoch"]
    assert not math.isfinite(last["train_loss"]) or last["eval_loss"] is not None
    assert all("diverged" not in h for h in out["history"][:-1])
    # json keeps NaN as NaN (the per-arch result files)
    assert math.isnan(json.loads(json.dumps(out))["final_acc"])
    # the checkpoint of the diverged epoch: a rerun returns the same result without training on
    again = _train(digits, lr=1e6, checkpoint=ckpt)
    assert again["status"] == "diverged" and again["diverged_epoch"] == out["diverged_epoch"]
    assert again["epochs"] == out["epochs"] and again["resumed_from"] == out["epochs"]
    assert math.isnan(again["final_acc"])


def test_normal_run_is_ok(digits):
    out = _train(digits, lr=0.05, epochs=1)
    assert out["status"] == STATUS_OK == "ok" and out["diverged_epoch"] is None
    assert 0 <= out["final_acc"] <= 100 and out["best_acc"] == out["final_acc"]
    assert "diverged" not in out["history"][0]


# ------------------------------------------------------------------------------------------- correlation

def test_correlation_counts_finite_pairs_only():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=20)
    est = truth + rng.normal(scale=0.5, size=20)
    est[[2, 7, 11]] = np.nan  # diverged proxy trainings
    truth[5] = np.nan         # a diverged ground-truth retraining
    ok = np.isfinite(est) & np.isfinite(truth)
    row = correlation_row("proxy_x", est, truth, [1.0] * 20, n_boot=50, seed=0)
    assert row["n"] == int(ok.sum()) == 16
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau(est[ok], truth[ok]).statistic)
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(est[ok], truth[ok]).statistic)
    assert row["kendall_tau_low"] <= row["kendall_tau"] <= row["kendall_tau_high"]
    assert row["seconds_per_arch"] == 1.0  # a diverged training was paid for


@pytest.mark.parametrize("est", [[math.nan] * 4, [1.0, math.nan, math.nan, 2.0], [3.0, 3.0, 3.0, math.nan]])
def test_correlation_with_too_few_or_constant_pairs_is_nan(est):
    row = correlation_row("e", est, [1.0, 2.0, 3.0, 4.0], n_boot=20)
    assert row["n"] == sum(math.isfinite(v) for v in est)
    for key in ("kendall_tau", "spearman_rho", "pearson_r", "kendall_tau_low", "kendall_tau_high"):
        assert math.isnan(row[key]), key
    if row["n"] == 0:
        assert math.isnan(row["top10_overlap"])


# ----------------------------------------------------------------------------------------------- searches

def _conv_or_diverged(arch, bad=float("-inf")):
    ops = nb201.parse(arch)
    if "avg_pool_3x3" in ops:
        return bad, 1.0  # "diverged"
    return ops.count("nor_conv_3x3") + 0.1 * ops.count("nor_conv_1x1"), 1.0


@pytest.mark.parametrize("strategy", ["rs", "rea", "reinforce"])
@pytest.mark.parametrize("bad", [float("-inf"), float("nan")])
def test_strategies_never_pick_a_diverged_arch(strategy, bad):
    res = get_strategy(strategy)(nb201, lambda a: _conv_or_diverged(a, bad), Budget(evaluations=60), 0)
    statuses = {e.status for e in res.history}
    assert statuses == {"ok", "diverged"}  # the estimator diverged on some archs, not on others
    for e in res.history:
        assert (e.status == "diverged") == ("avg_pool_3x3" in nb201.parse(e.arch))
        assert e.score == -math.inf if e.status == "diverged" else math.isfinite(e.score)
    assert res.best is not None and res.best.status == "ok" and "avg_pool_3x3" not in nb201.parse(res.best.arch)
    assert res.best.score == max(e.score for e in res.history if e.status == "ok")
    if strategy == "reinforce":
        assert np.isfinite(np.array([p for row in res.extra["probs"] for p in row])).all()


def test_bohb_gets_a_finite_loss_and_never_picks_a_diverged_arch():
    from nasflow.search.bohb import available

    if not available()[0]:
        pytest.skip(available()[1])
    res = get_strategy("bohb")(nb201, _conv_or_diverged, Budget(evaluations=30), 0, max_iterations=3)
    assert {e.status for e in res.history} == {"ok", "diverged"}
    assert res.best is None or (res.best.status == "ok" and math.isfinite(res.best.score))


@pytest.mark.parametrize("strategy", ["rs", "rea", "reinforce"])
def test_all_diverged_means_no_pick(strategy):
    res = get_strategy(strategy)(nb201, lambda a: (float("-inf"), 1.0), Budget(evaluations=8), 0)
    assert res.n_evals == 8 and all(e.status == "diverged" for e in res.history)
    assert res.best is None and res.best_arch is None


# ---------------------------------------------------------------------------------- differentiable search

def test_hessian_vector_product_propagates_non_finite_without_a_host_sync():
    torch.manual_seed(0)
    from nasflow.models.nb201_search import NB201SearchNetwork

    model = NB201SearchNetwork(C=2, N=1, num_classes=3, mode="darts")
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    vector = [torch.full_like(p, math.nan) for p in model.weights()]
    before = [p.detach().clone() for p in model.weights()]
    nans = hessian_vector_product(model, vector, x, y)  # NaN alphas' grads: the epoch's read marks divergence
    assert all(torch.isnan(h).all() for h in nans)
    assert all(torch.equal(p, b) for p, b in zip(model.weights(), before))  # weights restored exactly
    zeros = hessian_vector_product(model, [torch.zeros_like(p) for p in model.weights()], x, y)
    assert all(torch.equal(z, torch.zeros_like(z)) for z in zeros)


SEARCH_KW = dict(C=4, depth=1, batch_size=64, w_lr=1e6, w_lr_min=0.001, w_momentum=0.9, w_wd=5e-4, grad_clip=5.0,
                 a_lr=3e-3, a_betas=(0.5, 0.999), a_wd=1e-3, tau_max=10.0, tau_min=0.1, seed=0, device="cpu",
                 progress=False, image_size=8, select_num=4)


@pytest.mark.parametrize("method", ["gdas", "darts-v2", "rsps"])
def test_differentiable_search_diverges_without_a_pick(method, tmp_path):
    splits = load_dataset("digits", eval_split="valid", subset=192)
    ckpt = tmp_path / "search.pt"
    r = run_search(method, splits, epochs=4, checkpoint=ckpt, **SEARCH_KW)
    assert r["status"] == "diverged" and r["best"] is None and not r["completed"]
    assert 1 <= r["diverged_epoch"] == len(r["history"]) < 4
    last = r["history"][-1]
    assert last["diverged"] is True and (last["valid_acc"] is None or math.isnan(last["valid_acc"]))
    again = run_search(method, splits, epochs=4, checkpoint=ckpt, **SEARCH_KW)  # resumes to the same end
    assert again["status"] == "diverged" and again["diverged_epoch"] == r["diverged_epoch"]
    assert again["best"] is None and len(again["history"]) == len(r["history"])


# ---------------------------------------------------------------------------- correlate + report stages

def _params(**changes):
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params.update(proxy={"settings": ["bpe1"]},
                  supernet={**params["supernet"], "labels": ["random"], "arch_sets": []},
                  evolution={**params["evolution"], "indicators": []},
                  search={**params["search"], "strategies": [], "estimators": []},
                  differentiable={**params["differentiable"], "methods": []}, **changes)
    return params


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_estimates_csv_empty_cell_status_columns_and_diverged_sheet(tmp_path, engine_env):
    study = make_study(tmp_path, _params())
    archs = nb201.sample(4, seed=0)
    res = results_dir = study / "results"
    proxy = [{"id": i, "arch": a, "final_acc": 50.0 + i, "seconds": 1.0, "status": "ok", "diverged_epoch": None}
             for i, a in enumerate(archs)]
    proxy[1].update(final_acc=math.nan, status="diverged", diverged_epoch=2)
    _write(res / "proxy" / "bpe1.json", {"results": proxy, "shard": [0, 1], "seconds": 4.0})
    truth = [{"id": i, "arch": a, "final_acc": 80.0 + i, "seconds": 2.0, "status": "ok"} for i, a in enumerate(archs)]
    _write(res / "ground_truth.json", {"results": truth, "shard": [0, 1], "seconds": 8.0})
    _write(res / "found.json", {"results": [], "shard": [0, 1], "seconds": 0.0})
    py = [sys.executable, "-m"]
    run([*py, "stages.correlate", "--ground-truth", "results/ground_truth.json"], study, engine_env)
    est = read_csv(results_dir / "estimates.csv")
    assert list(est[0]) == ["arch", "proxy_bpe1", "ground_truth", "proxy_bpe1_seconds", "ground_truth_seconds",
                            "proxy_bpe1_status", "ground_truth_status"]
    assert est[1]["proxy_bpe1"] == "" and est[1]["proxy_bpe1_status"] == "diverged"
    assert [r["proxy_bpe1_status"] for r in est] == ["ok", "diverged", "ok", "ok"]
    assert all(r["ground_truth_status"] == "ok" for r in est) and est[0]["proxy_bpe1"] == "50.0"
    corr = read_csv(results_dir / "correlation.csv")
    assert corr[0]["estimator"] == "proxy_bpe1" and corr[0]["n"] == "3"
    assert float(corr[0]["kendall_tau"]) == pytest.approx(1.0)

    run([*py, "stages.report"], study, engine_env)
    wb = load_workbook(results_dir / "report.xlsx")
    rows = list(wb["diverged"].iter_rows(values_only=True))
    assert rows == [("estimator", "arch", "epoch"), ("proxy_bpe1", archs[1], 2)]
    settings = {r[0]: r[1:] for r in wb["settings"].iter_rows(values_only=True)}
    assert settings[archs[1]] == (None,) and settings["Mean"][0] == pytest.approx((50 + 52 + 53) / 3)
    # the stage's warnings: 3 finite archs are too few for a readable τ
    assert ("few_archs", "proxy_bpe1", 3) in {r[:3] for r in wb["warnings"].iter_rows(values_only=True)}
    metrics = json.loads((results_dir / "metrics.json").read_text())
    assert metrics["proxy_bpe1"]["kendall_tau"] == pytest.approx(1.0)

    # nothing diverged: the sheet says so
    proxy[1].update(final_acc=51.0, status="ok", diverged_epoch=None)
    _write(res / "proxy" / "bpe1.json", {"results": proxy, "shard": [0, 1], "seconds": 4.0})
    run([*py, "stages.correlate", "--ground-truth", "results/ground_truth.json"], study, engine_env)
    run([*py, "stages.report"], study, engine_env)
    rows = list(load_workbook(results_dir / "report.xlsx")["diverged"].iter_rows(values_only=True))
    assert rows == [("estimator", "arch", "epoch"), ("none", None, None)]


# ------------------------------------------------------------------------------------- the whole DAG

@pytest.mark.slow
def test_dag_finishes_with_a_diverged_proxy_supernet_and_search(tmp_path, engine_env):
    """bpe1 (lr 1e6) diverges on every arch, so does the supernet and GDAS (w_lr 1e6); the DAG still finishes."""
    params = _params(sample={"n_archs": 4}, parallel={"shards": 1})
    params["proxy"]["settings"] = ["bpe1", "bpe2"]
    params["settings"]["bpe1"]["lr"] = 1.0e6
    params["settings"]["bpe2"]["epochs"] = 1
    params["settings"]["full"]["epochs"] = 1
    params["settings"]["supernet"].update(lr=1.0e6, epochs=1)
    params["supernet"]["arch_sets"] = ["sampled"]
    params["evolution"]["indicators"] = ["angle"]
    params["search"].update(strategies=["rs"], estimators=["proxy_bpe1", "angle_random"],
                            budget={"evaluations": 2})
    params["differentiable"].update(methods=["gdas"], w_lr=1.0e6)
    study = make_study(tmp_path, params)
    run([sys.executable, "-m", "snakemake", "--cores", "2"], study, engine_env)
    results = study / "results"

    est = read_csv(results / "estimates.csv")
    estimators = ["proxy_bpe1", "proxy_bpe2", "angle", "supernet_acc"]
    assert list(est[0]) == ["arch", *estimators, "ground_truth", *(f"{e}_seconds" for e in estimators),
                            "ground_truth_seconds", *(f"{e}_status" for e in estimators), "ground_truth_status"]
    for e in ("proxy_bpe1", "angle", "supernet_acc"):
        assert all(r[e] == "" and r[f"{e}_status"] == "diverged" for r in est), e
    assert all(r["proxy_bpe2"] != "" and r["proxy_bpe2_status"] == "ok" for r in est)
    corr = {c["estimator"]: c for c in read_csv(results / "correlation.csv")}
    assert corr["proxy_bpe1"]["n"] == "0" and corr["proxy_bpe1"]["kendall_tau"] == "nan"
    assert corr["proxy_bpe2"]["n"] == "4"
    metrics = json.loads((results / "metrics.json").read_text())
    assert metrics["proxy_bpe1"]["kendall_tau"] is None

    rs = json.loads((results / "search" / "rs_proxy_bpe1.json").read_text())
    assert rs["best"] is None and rs["status"] == "diverged" and rs["n_diverged"] == rs["n_evals"] == 2
    assert all(h["status"] == "diverged" and math.isnan(h["score"]) for h in rs["history"])
    for name in ("rs_angle_random", "rlnas_random_angle", "gdas"):
        doc = json.loads((results / "search" / f"{name}.json").read_text())
        assert doc["best"] is None and doc["status"] == "diverged", name
    found = json.loads((results / "found.json").read_text())["results"]
    assert len(found) == 4
    for f in found:
        assert f["arch"] is None and math.isnan(f["ground_truth"]) and f["ground_truth_status"] == "diverged"

    wb = load_workbook(results / "report.xlsx")
    rows = list(wb["diverged"].iter_rows(values_only=True))[1:]
    assert {r[0] for r in rows} == {"proxy_bpe1", "angle", "supernet_acc"}
    assert len(rows) == 3 * 4 and all(r[2] == 1 for r in rows)  # every one diverged in its first epoch
    assert [r[-1] for r in list(wb["searches"].iter_rows(values_only=True))[1:]] == ["diverged"] * 4
