"""Correlations against scipy and hand-computed cases; the workbook read back with openpyxl."""
import math

import numpy as np
import pytest
from openpyxl import load_workbook
from scipy import stats

from nasflow.analysis.correlation import bootstrap_tau, correlation_row, top_overlap
from nasflow.analysis.report import write_workbook


def test_correlation_row_matches_scipy_including_ties():
    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    est = np.round(truth + rng.normal(scale=0.7, size=40), 1)  # rounding makes ties: tau-b must handle them
    row = correlation_row("proxy_x", est, truth, seconds=[2.0] * 40, n_boot=200, seed=3)
    assert row["kendall_tau"] == pytest.approx(stats.kendalltau(est, truth).statistic)
    assert row["spearman_rho"] == pytest.approx(stats.spearmanr(est, truth).statistic)
    assert row["pearson_r"] == pytest.approx(stats.pearsonr(est, truth).statistic)
    assert row["kendall_tau_low"] < row["kendall_tau"] < row["kendall_tau_high"]
    assert row["n"] == 40 and row["seconds_per_arch"] == 2.0


def test_hand_computed_tau_and_overlap():
    # 4 archs, one discordant pair out of 6: tau = (5 - 1) / 6
    row = correlation_row("e", [1, 2, 4, 3], [1, 2, 3, 4], n_boot=0)
    assert row["kendall_tau"] == pytest.approx(4 / 6)
    assert math.isnan(row["kendall_tau_low"])
    # top 10% of 20 archs = 2: the estimator finds one of the two best
    truth = np.arange(20.0)
    est = truth.copy()
    est[19], est[0] = -1.0, 100.0  # best arch ranked last, worst ranked first
    assert top_overlap(est, truth) == 0.5


def test_bootstrap_is_seeded():
    x, y = np.arange(10.0), np.array([0, 2, 1, 3, 5, 4, 6, 8, 7, 9.0])
    assert bootstrap_tau(x, y, 100, seed=5) == bootstrap_tau(x, y, 100, seed=5)
    assert bootstrap_tau(x, y, 100, seed=5) != bootstrap_tau(x, y, 100, seed=6)


def test_constant_estimator_gives_nan_not_an_error():
    row = correlation_row("flat", [5, 5, 5], [1, 2, 3], n_boot=10)
    assert math.isnan(row["kendall_tau"]) and math.isnan(row["spearman_rho"])


def test_workbook_layout_read_back(tmp_path):
    settings = {"bpe1": {"epochs": 10, "batch_size": 128, "lr": 0.03, "cells_per_stage": 2, "channels": 8,
                         "image_size": 16, "cutout": 0, "precision": 32},
                "bpe2": {"epochs": 30, "batch_size": 128, "lr": 0.03, "cells_per_stage": 5, "channels": 16,
                         "image_size": 16, "cutout": 0, "precision": 32}}
    estimates = [{"arch": f"a{i}", "proxy_bpe1": 10.0 + i, "proxy_bpe2": 20.0 - i, "ground_truth": 50.0 + i}
                 for i in range(3)]
    correlation = [correlation_row(f"proxy_{n}", [r[f"proxy_{n}"] for r in estimates],
                                   [r["ground_truth"] for r in estimates], [1.0] * 3, n_boot=0) for n in settings]
    path = tmp_path / "r.xlsx"
    write_workbook(path, settings=settings, estimates=estimates, correlation=correlation,
                   ground_truth_label="full", about={"seed": 0})
    wb = load_workbook(path)
    assert wb.sheetnames[:3] == ["settings", "ground_truth", "correlation"]
    rows = {r[0]: r[1:] for r in wb["settings"].iter_rows(values_only=True)}
    assert rows["setting"] == ("bpe1", "bpe2")
    assert rows["epochs"] == (10, 30) and rows["channels"] == (8, 16) and rows["cells per stage"] == (2, 5)
    assert rows["a1"] == (11.0, 19.0)
    assert rows["Mean"] == pytest.approx((11.0, 19.0))
    assert rows["Std"] == pytest.approx((1.0, 1.0))
    assert rows["Kendall"] == pytest.approx((1.0, -1.0))
    assert rows["Spearman"] == pytest.approx((1.0, -1.0))
    gt = list(wb["ground_truth"].iter_rows(values_only=True))
    assert gt[1:] == [("a0", 50.0), ("a1", 51.0), ("a2", 52.0)]
    corr = list(wb["correlation"].iter_rows(values_only=True))
    assert corr[0][:3] == ("estimator", "n", "kendall_tau") and corr[1][0] == "proxy_bpe1"


def test_searches_and_rlnas_sheets(tmp_path):
    found = [{"search": "rlnas_random_angle", "method": "rlnas_evolution", "labels": "random", "indicator": "angle",
              "estimator": None, "arch": "a", "search_score": 0.3, "ground_truth": 90.0, "search_seconds": 1.0,
              "supernet_train_seconds": 5.0},
             {"search": "rea_proxy_bpe1", "method": "rea", "estimator": "proxy_bpe1", "arch": "b", "search_score": 80.0,
              "ground_truth": 91.0, "search_seconds": 2.0},
             {"search": "gdas", "method": "gdas", "estimator": None, "arch": "c", "search_score": None,
              "ground_truth": 92.0, "search_seconds": 3.0}]
    path = tmp_path / "r.xlsx"
    write_workbook(path, settings={}, estimates=[], correlation=[], ground_truth_label="full", about={}, found=found)
    wb = load_workbook(path)
    rows = list(wb["searches"].iter_rows(values_only=True))[1:]
    assert [r[2] for r in rows] == ["angle (random labels)", "proxy_bpe1", "weight-sharing supernet"]
    assert [r[5] for r in rows] == [90.0, 91.0, 92.0]
    assert list(wb["rlnas"].iter_rows(values_only=True))[1][:4] == ("random", "angle", "a", 90.0)
