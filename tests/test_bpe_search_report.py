"""The BPE setting search's sheets and plots, from a hand-made case (3 settings, 4 archs) read back with openpyxl;
statistics checked against numpy and scipy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from openpyxl import Workbook, load_workbook
from scipy import stats

from nasflow.analysis.report import (
    add_bpe_search_sheets,
    most_important,
    pareto_front,
    plot_bpe_search_cost,
    plot_importance,
    plot_objective_2d,
    pruned_per_round,
)
from nasflow.errors import CheckpointError, ParamsError

ARCHS = ["a0", "a1", "a2", "a3"]
TRUTH = [90.0, 92.5, 91.0, 93.25]
ACCS = {"s_e5_b256": [40.0, 45.5, 41.25, 44.0],        # one swapped pair vs the ground truth
        "s_e10_b128": [50.0, 55.0, 52.0, 57.125],      # same order as the ground truth
        "s_e10_b256": [60.0, math.nan, 58.0, 61.0]}    # a diverged arch: left out of Mean/Std and τ
HPS = {"s_e5_b256": (5, 256, 0), "s_e10_b128": (10, 128, 0), "s_e10_b256": (10, 256, 1)}
SECONDS = {"s_e5_b256": 4.5, "s_e10_b128": 12.0, "s_e10_b256": 9.0}


def _correlations(name):
    acc, truth = np.array(ACCS[name]), np.array(TRUTH)
    keep = np.isfinite(acc)
    return (int(keep.sum()), stats.kendalltau(acc[keep], truth[keep]).statistic,
            stats.spearmanr(acc[keep], truth[keep]).statistic)


def _case():
    settings_rows, accuracies = [], []
    for name, (epochs, batch, rnd) in HPS.items():
        n, tau, rho = _correlations(name)
        settings_rows.append({"setting": name, "round": rnd, "epochs": epochs, "batch_size": batch, "n": n,
                              "kendall_tau": tau, "spearman_rho": rho, "seconds_per_arch": SECONDS[name],
                              "gpu_hours_per_arch": SECONDS[name] / 3600})
        accuracies += [{"arch": a, "setting": name, "accuracy": v, "ground_truth": t}
                       for a, v, t in zip(ARCHS, ACCS[name], TRUTH)]
    importance = [{"round": 0, "hyperparameter": "batch_size", "importance": 0.2, "importance_std": 0.05},
                  {"round": 0, "hyperparameter": "epochs", "importance": 0.7, "importance_std": 0.1},
                  {"round": 0, "hyperparameter": "lr", "importance": 0.1, "importance_std": 0.02},
                  {"round": 1, "hyperparameter": "batch_size", "importance": 0.3, "importance_std": 0.04},
                  {"round": 1, "hyperparameter": "epochs", "importance": 0.6, "importance_std": math.nan}]
    best = {"setting": "s_e10_b128", "values": {"epochs": 10, "batch_size": 128},
            "full": {"epochs": 10, "batch_size": 128, "lr": 0.03, "channels": 8, "image_size": 16},
            "objective": "kendall_tau", "kendall_tau": settings_rows[1]["kendall_tau"],
            "spearman_rho": settings_rows[1]["spearman_rho"], "seconds_per_arch": 12.0,
            "gpu_hours_per_arch": 12.0 / 3600, "round": 0}
    named = {"bpe1": {"epochs": 10, "batch_size": 128, "lr": 0.03, "channels": 8, "image_size": 16},
             "bpe2": {"epochs": 30, "batch_size": 128, "lr": 0.03, "channels": 16, "image_size": 16}}
    return settings_rows, accuracies, importance, best, named


def _rows_by_label(ws) -> dict:
    out = {}
    for row in ws.iter_rows():
        if row[0].value is not None:
            out.setdefault(row[0].value, row[1:])  # the first row of a label: the table, not the reference block
    return out


def test_bpe_search_sheet_layout_statistics_and_formats(tmp_path):
    settings_rows, accuracies, importance, best, named = _case()
    wb = Workbook()
    add_bpe_search_sheets(wb, settings_rows=settings_rows, accuracies=accuracies, importance=importance, best=best,
                          named=named)
    wb.save(tmp_path / "r.xlsx")
    ws = load_workbook(tmp_path / "r.xlsx")["bpe_search"]
    header = [c.value for c in ws[1]]
    assert header == ["setting", "s_e5_b256", "s_e10_b128 (chosen)", "s_e10_b256", "ground truth"]
    assert ws.freeze_panes == "B2"
    labels = [ws.cell(r, 1).value for r in range(2, 10)]
    assert labels == ["round", "epochs", "batch size", "arch", *ARCHS]
    rows = _rows_by_label(ws)
    assert [c.value for c in rows["round"][:3]] == [0, 0, 1]
    assert [c.value for c in rows["epochs"][:3]] == [5, 10, 10]
    assert [c.value for c in rows["batch size"][:3]] == [256, 128, 256]
    names = list(ACCS)
    for k, arch in enumerate(ARCHS):
        values = [c.value for c in rows[arch][:4]]
        assert values[3] == TRUTH[k]
        for j, name in enumerate(names):
            assert values[j] is None if math.isnan(ACCS[name][k]) else values[j] == ACCS[name][k]
        assert rows[arch][0].number_format == "0.00"
    for j, name in enumerate(names):
        acc = np.array(ACCS[name])
        acc = acc[np.isfinite(acc)]
        n, tau, rho = _correlations(name)
        assert rows["Mean"][j].value == pytest.approx(np.mean(acc))
        assert rows["Std"][j].value == pytest.approx(np.std(acc, ddof=1))
        assert rows["Kendall τ (objective)"][j].value == pytest.approx(tau)
        assert rows["Spearman ρ"][j].value == pytest.approx(rho)
        assert rows["n (archs correlated)"][j].value == n
        assert rows["Mean time (s per arch)"][j].value == SECONDS[name]
    assert rows["Mean"][3].value == pytest.approx(np.mean(TRUTH))  # the ground-truth column too
    assert rows["Kendall τ (objective)"][0].value == pytest.approx(4 / 6)  # hand count: 5 concordant, 1 discordant
    assert rows["Kendall τ (objective)"][1].value == pytest.approx(1.0)
    assert rows["Mean"][0].number_format == "0.00" and rows["Std"][2].number_format == "0.00"
    assert rows["Kendall τ (objective)"][0].number_format == "0.000"
    assert rows["Spearman ρ"][2].number_format == "0.000"
    assert rows["Mean time (s per arch)"][0].number_format == '0.00 "s"'  # shortest 4.5 s: 2 decimals
    assert rows["Mean time (GPU-h per arch)"][0].number_format == "0.00E+00"
    assert ws.cell(1, 3).fill.fgColor.rgb.endswith("D4EDDA") and ws.cell(1, 2).fill.fgColor.rgb != \
        ws.cell(1, 3).fill.fgColor.rgb
    # the reference block: the chosen setting in full beside bpe1/bpe2, and which sampled setting matches them
    block = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "setting (complete)")
    assert [ws.cell(block, c).value for c in (2, 3, 4)] == ["s_e10_b128 (chosen)", "bpe1", "bpe2"]
    assert [c.value for c in rows["channels"][:3]] == [8, 8, 16]
    assert [c.value for c in rows["sampled setting"][:3]] == ["s_e10_b128", "s_e10_b128", "—"]
    assert any("chosen: s_e10_b128" in str(ws.cell(r, 1).value) for r in range(1, ws.max_row + 1))


def test_importance_sheet_sorted_per_round_with_the_pruned_line(tmp_path):
    settings_rows, accuracies, importance, best, named = _case()
    wb = Workbook()
    add_bpe_search_sheets(wb, settings_rows=settings_rows, accuracies=accuracies, importance=importance, best=best,
                          named=named)
    wb.save(tmp_path / "r.xlsx")
    ws = load_workbook(tmp_path / "r.xlsx")["importance"]
    assert [c.value for c in ws[1]] == ["round", "hyperparameter", "importance", "std"]
    table = [[c.value for c in row] for row in ws.iter_rows(min_row=2, max_row=6)]
    assert [(r[0], r[1]) for r in table] == [(0, "epochs"), (0, "batch_size"), (0, "lr"), (1, "epochs"),
                                             (1, "batch_size")]
    assert table[3][3] is None  # NaN std: an empty cell
    assert ws["C2"].number_format == "0.000" and ws["D2"].number_format == "0.000"
    lines = [ws.cell(r, 1).value for r in range(7, ws.max_row + 1) if isinstance(ws.cell(r, 1).value, str)]
    assert len(lines) == 1 and lines[0].startswith("round 0: pruned lr")  # the last round prunes nothing
    assert pruned_per_round(importance) == {0: "lr"}
    assert most_important(importance) == ["epochs", "batch_size"]


def test_inconsistent_inputs_raise_one_line_errors():
    settings_rows, accuracies, importance, best, named = _case()
    with pytest.raises(CheckpointError, match="best.json"):
        add_bpe_search_sheets(Workbook(), settings_rows=settings_rows, accuracies=accuracies, importance=importance,
                              best={**best, "setting": "nope"}, named=named)
    with pytest.raises(CheckpointError, match="'ghost'"):
        add_bpe_search_sheets(Workbook(), settings_rows=settings_rows, importance=importance, best=best, named=named,
                              accuracies=[*accuracies, {"arch": "a0", "setting": "ghost", "accuracy": 1.0,
                                                        "ground_truth": 90.0}])
    with pytest.raises(ParamsError, match="hyperparameter 'cutout'"):
        plot_objective_2d(None, settings_rows, "kendall_tau", "epochs", "cutout")


def test_pareto_front_by_hand():
    # (cost, objective): 2 is the cheapest; 1 beats 0 at the same cost; 3 is beaten by 1; 4 the best; 5 has no cost
    seconds = [2.0, 2.0, 1.0, 3.0, 10.0, math.nan]
    objective = [0.3, 0.5, 0.4, 0.35, 0.6, 0.9]
    assert pareto_front(seconds, objective) == [2, 1, 4]


def _png(path) -> bool:
    return path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cost_plot_labels_named_and_chosen_and_survives_nan(tmp_path):
    settings_rows, _, _, best, _ = _case()
    rows = [*settings_rows, {**settings_rows[0], "setting": "s_nan", "kendall_tau": math.nan}]
    fig = plot_bpe_search_cost(tmp_path / "cost.png", rows, "kendall_tau",
                               named_points={"bpe1": (12.0, 1.0), "bpe2": (40.0, 0.8)}, best=best)
    assert _png(tmp_path / "cost.png")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert "bpe1" in texts and "bpe2" in texts and "chosen: s_e10_b128" in texts
    assert "n = 3–4 archs" in ax.get_title() and "4 settings" in ax.get_title()
    assert any("1 of 4 settings" in t.get_text() for t in fig.texts)  # the NaN one is said, not drawn
    lo, hi = ax.get_xlim()
    assert math.log10(lo).is_integer() and math.log10(hi).is_integer()  # whole decades
    front = [line for line in ax.get_lines() if line.get_label() == "Pareto front"]
    assert len(front) == 1 and list(front[0].get_xdata()) == [4.5, 12.0]
    plot_bpe_search_cost(tmp_path / "one.png", settings_rows[:1], "spearman_rho")
    assert _png(tmp_path / "one.png")
    plot_bpe_search_cost(tmp_path / "none.png", rows[-1:], "kendall_tau")
    assert _png(tmp_path / "none.png")


def test_importance_and_2d_plots(tmp_path):
    settings_rows, _, importance, _, _ = _case()
    fig = plot_importance(tmp_path / "imp.png", importance)
    assert _png(tmp_path / "imp.png")
    bars = [p for p in fig.axes[0].patches if p.get_height() > 0]
    assert sorted(round(b.get_height(), 3) for b in bars) == [0.1, 0.2, 0.3, 0.6, 0.7]
    assert [b.get_hatch() for b in bars if round(b.get_height(), 3) == 0.1] == ["//"]  # lr, pruned in round 0
    plot_importance(tmp_path / "imp1.png", importance[:1])
    assert _png(tmp_path / "imp1.png")

    fig = plot_objective_2d(tmp_path / "2d.png", settings_rows, "kendall_tau", "epochs", "batch_size")
    assert _png(tmp_path / "2d.png")
    texts = [t.get_text() for t in fig.axes[0].texts]
    taus = {r["setting"]: r["kendall_tau"] for r in settings_rows}
    assert sorted(texts) == sorted(f"{taus[s]:.3f}\n(k = 1)" for s in taus)
    rows = [{**settings_rows[0], "kendall_tau": math.nan}]
    fig = plot_objective_2d(tmp_path / "2d1.png", rows, "kendall_tau", "epochs", "batch_size")
    assert _png(tmp_path / "2d1.png") and [t.get_text() for t in fig.axes[0].texts] == ["—\n(k = 1)"]
