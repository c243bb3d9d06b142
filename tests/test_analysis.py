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


# ------------------------------------------------------------------- workbook formats, warnings, plots

SETTING = {"epochs": 10, "batch_size": 128, "lr": 0.03, "lr_min": 0.0, "momentum": 0.9, "nesterov": False,
           "weight_decay": 3e-4, "grad_clip": None, "label_smoothing": 0.0, "augment_order": "crop_then_resize",
           "channels": 8, "cells_per_stage": 2, "image_size": 16, "cutout": 0, "precision": 32, "eval_split": "test",
           "aux_weight": 0.0, "drop_path": 0.0}


def _study(n=12, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.uniform(40, 90, n)
    estimates = [{"arch": f"a{i}", "proxy_bpe1": float(t + rng.normal(scale=noise * 10)), "ground_truth": float(t)}
                 for i, t in enumerate(truth)]
    correlation = [correlation_row("proxy_bpe1", [r["proxy_bpe1"] for r in estimates], truth, [125.0] * n,
                                   n_boot=200, seed=1)]
    return estimates, correlation


def test_workbook_number_formats_frozen_headers_and_every_hyperparameter(tmp_path):
    estimates, correlation = _study()
    path = tmp_path / "r.xlsx"
    write_workbook(path, settings={"bpe1": SETTING, "bpe2": {**SETTING, "grad_clip": 5.0, "nesterov": True}},
                   estimates=[{**r, "proxy_bpe2": r["proxy_bpe1"] + 1} for r in estimates],
                   correlation=[*correlation, {**correlation[0], "estimator": "proxy_bpe2"}],
                   ground_truth_label="full", about={"seed": 0})
    wb = load_workbook(path)
    ws = wb["settings"]
    rows = {r[0].value: r[1:] for r in ws.iter_rows()}
    for label in ("weight decay", "momentum", "nesterov", "lr_min", "grad clip", "label smoothing", "augment order",
                  "aux weight", "drop path", "eval split", "precision"):
        assert label in rows, label
    assert [c.value for c in rows["nesterov"]] == [False, True]
    assert [c.value for c in rows["grad clip"]] == ["off", 5.0]  # null grad_clip: said, not blank
    assert [c.value for c in rows["weight decay"]] == [3e-4, 3e-4]
    assert rows["a0"][0].number_format == "0.00" and rows["Mean"][0].number_format == "0.00"
    assert rows["Kendall"][0].number_format == "0.000" and rows["Spearman"][1].number_format == "0.000"
    assert rows["seconds per arch"][0].number_format == '0.0 "s"'
    assert ws.freeze_panes == "B2" and ws["A1"].font.bold
    assert ws.column_dimensions["A"].width >= len("seconds per arch")
    corr = wb["correlation"]
    header = [c.value for c in corr[1]]
    assert corr.cell(2, header.index("kendall_tau") + 1).number_format == "0.000"
    assert corr.cell(2, header.index("kendall_tau_low") + 1).number_format == "0.000"
    assert corr.freeze_panes == "B2"
    gt = wb["ground_truth"]
    assert gt["B2"].number_format == "0.00" and gt.freeze_panes == "A2"
    assert list(wb["warnings"].iter_rows(values_only=True))[1][0] in ("none", "tau_includes_zero")


def test_search_score_cells_say_why_they_are_empty(tmp_path):
    found = [{"search": "gdas", "method": "gdas", "estimator": None, "arch": "c", "search_score": None,
              "ground_truth": 92.0, "search_seconds": 3.0, "search_status": "ok"},
             {"search": "rs_proxy_bpe1", "method": "rs", "estimator": "proxy_bpe1", "arch": None,
              "search_score": None, "ground_truth": math.nan, "search_seconds": 2.0, "search_status": "diverged"}]
    path = tmp_path / "r.xlsx"
    write_workbook(path, settings={}, estimates=[], correlation=[], ground_truth_label="full", about={}, found=found)
    ws = load_workbook(path)["searches"]
    assert [r[4] for r in ws.iter_rows(min_row=2, values_only=True)] == ["—, weight-sharing", "—, no pick (diverged)"]
    assert ws["G2"].number_format == '0.00 "s"' and ws.freeze_panes == "A2"


def _alpha_search(probs_last, epochs=3, valid_acc=(40.0, 45.0, 50.0)):
    """A differentiable search document: α from uniform (0.2 over 5 ops, 6 edges) to probs_last."""
    start = np.full((6, 5), 0.2)
    end = np.asarray(probs_last, float)
    history = [{"epoch": e, "alphas": (start + (end - start) * (e + 1) / epochs).tolist(), "valid_acc": v}
               for e, v in zip(range(epochs), valid_acc)]
    return {"name": "gdas", "best": "|x|", "history": history}


def test_warnings_alpha_chance_tau_and_few_archs():
    from nasflow.analysis.report import ALPHA_MIN_MOVE, find_warnings

    barely = np.full((6, 5), 0.2)
    barely[:, 0], barely[:, 1] = 0.202, 0.198  # 0.198-0.202 after 3 epochs: noise
    moved = np.full((6, 5), 0.1)
    moved[:, 2] = 0.6
    estimates, correlation = _study(n=30, noise=0.05)
    for r in estimates:
        r["supernet_acc_random"] = 10.0 + (hash(r["arch"]) % 3)  # 10-12% on 10 classes: chance
        r["supernet_acc_true"] = 55.0
    ws = find_warnings(correlation=correlation, estimates=estimates, num_classes=10,
                       differentiable={"gdas": _alpha_search(barely), "darts-v1": _alpha_search(moved),
                                       "rsps": {"history": [{"valid_acc": 11.0}, {"valid_acc": 12.5}]}})
    kinds = {(w["kind"], w["subject"]) for w in ws}
    assert ("alpha_static", "gdas") in kinds and ("alpha_static", "darts-v1") not in kinds
    assert next(w for w in ws if w["kind"] == "alpha_static")["value"] == pytest.approx(0.002)
    assert 0.002 < ALPHA_MIN_MOVE < 0.4
    assert ("chance_accuracy", "supernet_acc_random") in kinds and ("chance_accuracy", "rsps") in kinds
    assert ("chance_accuracy", "supernet_acc_true") not in kinds and ("chance_accuracy", "gdas") not in kinds
    # a clear correlation over 30 archs: no τ warning; a noisy one over 6 archs: interval includes 0, too few
    assert not any(w["subject"] == "proxy_bpe1" for w in ws)
    rows = [{"estimator": "noisy", "n": 6, "kendall_tau": 0.2, "kendall_tau_low": -0.4, "kendall_tau_high": 0.7}]
    assert {w["kind"] for w in find_warnings(correlation=rows)} == {"tau_includes_zero", "few_archs"}
    # without a class count there is no chance check
    assert not any(w["kind"] == "chance_accuracy" for w in find_warnings(correlation=[], estimates=estimates))


def test_warnings_sheet_lists_them(tmp_path):
    from nasflow.analysis.report import find_warnings

    estimates, correlation = _study(n=6)
    for r in estimates:
        r["supernet_acc_random"] = 10.5
    warnings = find_warnings(correlation=correlation, estimates=estimates, num_classes=10)
    path = tmp_path / "r.xlsx"
    write_workbook(path, settings={"bpe1": SETTING}, estimates=estimates, correlation=correlation,
                   ground_truth_label="full", about={}, warnings=warnings)
    ws = load_workbook(path)["warnings"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:2] == ("warning", "about") and ws.freeze_panes == "A2"
    assert ("chance_accuracy", "supernet_acc_random") in {r[:2] for r in rows[1:]}
    assert ("few_archs", "proxy_bpe1") in {r[:2] for r in rows[1:]}
    assert ws["C2"].number_format in ("0.00", "0.000", "0")


def _labelled_major_ticks(ax):
    ax.figure.canvas.draw()
    lo, hi = ax.get_xlim()
    return [t.get_text() for t in ax.xaxis.get_majorticklabels()
            if t.get_text() and lo <= t.get_position()[0] <= hi]


def test_correlation_vs_cost_has_decades_and_a_label_per_estimator():
    from nasflow.analysis.report import plot_correlation_vs_cost

    rows = [{"estimator": name, "n": 10, "kendall_tau": tau, "kendall_tau_low": tau - 0.3,
             "kendall_tau_high": tau + 0.3, "seconds_per_arch": sec}
            for name, tau, sec in [("proxy_bpe1", 0.1, 5.6), ("proxy_bpe2", 0.5, 8.9), ("angle_random", -0.4, 1.2),
                                   ("angle_true", -0.38, 1.25), ("supernet_acc_random", -0.1, 1.35)]]
    fig = plot_correlation_vs_cost(None, rows, warnings=["τ's 95% interval includes 0 for proxy_bpe1"])
    ax = fig.axes[0]
    assert len(_labelled_major_ticks(ax)) >= 2  # within one decade (1.2-8.9 s): still 10^0 and 10^1 labelled
    annotated = [t.get_text() for t in ax.texts]
    assert all(r["estimator"] in annotated for r in rows)
    assert ax.get_title().endswith("(n = 10 archs)")
    legend = ax.get_legend()
    assert legend is not None and legend.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1  # outside the axes
    assert any("includes 0" in t.get_text() for t in fig.texts)


def test_scatter_title_has_n_and_interval_and_units():
    from nasflow.analysis.report import plot_estimate_vs_truth

    row = {"kendall_tau": 0.2, "kendall_tau_low": -0.1, "kendall_tau_high": 0.5, "spearman_rho": 0.3}
    fig = plot_estimate_vs_truth(None, "angle_random", [0.1, 0.2, float("nan"), 0.15], [50, 60, 70, 80], row,
                                 warnings=["angle_random: only 3 archs"])
    ax = fig.axes[0]
    assert "n = 3 archs" in ax.get_title() and "[-0.100, 0.500]" in ax.get_title()
    assert "rad" in ax.get_ylabel()
    assert any("only 3 archs" in t.get_text() for t in fig.texts)
    fig = plot_estimate_vs_truth(None, "supernet_acc_random", [10, 11, 9], [50, 60, 70], row, chance=10.0)
    assert "supernet accuracy (%)" in fig.axes[0].get_ylabel()


def test_best_so_far_against_evaluations_and_cost_with_the_picks_ground_truth():
    from nasflow.analysis.report import plot_best_so_far

    searches = [{"name": f"{m}_angle_random", "method": m, "estimator": "angle_random",
                 "history": [{"elapsed": 1e-4 * (k + 1), "score": s} for k, s in enumerate(scores)]}
                for m, scores in [("rs", [0.1, 0.3, None, 0.2]), ("rea", [0.2, 0.25, 0.4, 0.1])]]
    found = [{"search": "rs_angle_random", "ground_truth": 81.25}, {"search": "rea_angle_random", "ground_truth": 70.5}]
    fig = plot_best_so_far(None, searches, found)
    top, bottom = fig.axes[:2]
    assert top.get_xlabel() == "evaluations" and "cost" in bottom.get_xlabel()
    notes = " ".join(t.get_text() for t in top.texts)
    assert "81.25%" in notes and "70.50%" in notes and "evaluation 2" in notes and "evaluation 3" in notes
    assert fig.legends  # one legend beside the panels


def test_alpha_plot_says_when_alpha_barely_moved():
    from nasflow.analysis.report import find_warnings, plot_alphas, warning_lines

    barely = np.full((6, 5), 0.2)
    barely[:, 0], barely[:, 1] = 0.201, 0.199
    doc = _alpha_search(barely, valid_acc=(10.0, 10.5, 11.0))
    warnings = find_warnings(correlation=[], differentiable={"gdas": doc}, num_classes=10)
    lines = warning_lines(warnings, "gdas")
    assert len(lines) == 2 and "barely moved" in lines[0] and "chance" in lines[1]
    ops = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    fig = plot_alphas(None, doc, ops, [f"e{i}" for i in range(6)], warnings=lines)
    assert any("barely moved" in t.get_text() for t in fig.texts)
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)  # the op legend covers no line
