"""The cost–quality frontier: its table against correlation.csv (written from correlation_row on synthetic data),
a hand-computed Pareto front, the published anchors, the sheet read back with openpyxl, and the plot."""
import csv
import math

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook

from nasflow.analysis.correlation import correlation_row
from nasflow.analysis.frontier import (
    COLUMNS,
    CORRELATION_COLUMNS,
    PUBLISHED,
    add_frontier_sheet,
    base_name,
    frontier_table,
    plot_frontier,
)
from nasflow.analysis.report import seconds_format
from nasflow.errors import ParamsError

FAMILIES = {"proxy_bpe1": "budgeted training", "sotl_bpe1": "learning curve", "synflow": "zero-cost",
            "snip": "zero-cost", "angle_random": "supernet", "table_12ep": "table", "proxy_dead": "budgeted training"}


def _correlation_rows() -> list[dict]:
    """Real correlation rows on synthetic scores: sampled archs, suffixed rows over more cells, a cost-0 table
    look-up, and an estimator with 2 finite points (a NaN row)."""
    rng = np.random.default_rng(7)
    truth, more = rng.normal(size=30), rng.normal(size=120)

    def row(name, noise, t, seconds):
        return correlation_row(name, t + rng.normal(scale=noise, size=len(t)), t, [seconds] * len(t), n_boot=30)

    dead = np.full(30, np.nan)
    dead[:2] = [1.0, 2.0]
    return [row("proxy_bpe1", 0.5, truth, 31.5), row("sotl_bpe1", 0.8, truth, 31.5), row("synflow", 0.9, truth, 0.07),
            row("synflow_extra", 0.9, more, 0.06), row("synflow_all_archs", 0.9, more, 0.065),
            row("snip", 1.5, truth, 0.05), row("angle_random_all_archs", 1.0, more, 2e-4),
            row("table_12ep", 0.3, truth, 0.0), correlation_row("proxy_dead", dead, truth, [31.5] * 30)]


@pytest.fixture
def correlation(tmp_path) -> tuple[pd.DataFrame, list[dict]]:
    """results/correlation.csv as the correlate stage writes it, read back with pandas; and the rows written."""
    rows = _correlation_rows()
    path = tmp_path / "correlation.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return pd.read_csv(path), rows


def _same(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) if isinstance(a, float) and math.isnan(a) else a == b


def test_table_numbers_equal_the_correlation_table(correlation):
    df, rows = correlation
    table = frontier_table(df, FAMILIES, "cifar10_test_acc_200ep")
    assert list(table.columns) == list(COLUMNS)
    assert sorted(table["estimator"]) == sorted(r["estimator"] for r in rows)
    by_name = {r["estimator"]: r for r in rows}
    for got in table.to_dict("records"):
        src = df[df["estimator"] == got["estimator"]].iloc[0]
        for k in CORRELATION_COLUMNS[1:]:  # exactly the DataFrame's numbers, which are correlation_row's
            assert _same(got[k], src[k]), (got["estimator"], k)
            assert got[k] == pytest.approx(by_name[got["estimator"]][k], rel=1e-14, nan_ok=True), k
        assert got["family"] == FAMILIES[base_name(got["estimator"])]
    assert math.isnan(by_name["proxy_dead"]["kendall_tau"])  # the NaN row is kept, never on the front
    assert not table.set_index("estimator").loc["proxy_dead", "on_front"]
    costs = table["seconds_per_arch"].to_numpy()
    assert list(costs) == sorted(costs) and table["estimator"].iloc[0] == "table_12ep"


def test_on_front_matches_a_hand_computed_front():
    # (τ, cost): T (0.3, 0 s) beats A (0.2, 1 s); C (0.4, 20 s) is beaten by B (0.5, 10 s); front T, B, D
    df = pd.DataFrame({"estimator": ["A", "B", "C", "D", "T"], "n": [10] * 5,
                       "kendall_tau": [0.2, 0.5, 0.4, 0.7, 0.3], "kendall_tau_low": [0.0] * 5,
                       "kendall_tau_high": [0.9] * 5, "spearman_rho": [0.3, 0.6, 0.5, 0.8, 0.4],
                       "seconds_per_arch": [1.0, 10.0, 20.0, 100.0, 0.0]})
    table = frontier_table(df, {n: "budgeted training" for n in "ABCD"} | {"T": "table"}, None)
    assert dict(zip(table["estimator"], table["on_front"])) == {"T": True, "A": False, "B": True, "C": False,
                                                                 "D": True}
    assert list(table["estimator"]) == ["T", "A", "B", "C", "D"]
    assert table["published_value"].isna().all()
    # a row over other cells (B_extra: better and cheaper than all) is not compared with the sampled archs' rows
    extra = pd.concat([df, df.iloc[[1]].assign(estimator="B_extra", kendall_tau=0.99, seconds_per_arch=0.0)])
    table = frontier_table(extra, {n: "budgeted training" for n in "ABCD"} | {"T": "table"}, None)
    assert dict(zip(table["estimator"], table["on_front"])) == {"T": True, "A": False, "B": True, "C": False,
                                                                 "D": True, "B_extra": False}


def test_unknown_family_is_a_params_error(correlation):
    df, _ = correlation
    families = {k: v for k, v in FAMILIES.items() if k != "synflow"}
    with pytest.raises(ParamsError, match="synflow") as e:  # the base name of all three synflow rows, once
        frontier_table(df, families, None)
    assert "synflow_extra" not in str(e.value)
    with pytest.raises(ParamsError, match="oracle"):
        frontier_table(df, {**FAMILIES, "snip": "oracle"}, None)


def test_anchors_attach_to_the_right_rows(correlation):
    df, _ = correlation
    table = frontier_table(df, FAMILIES, "cifar100_test_acc_200ep").set_index("estimator")
    anchored = table[table["published_value"].notna()]
    # REFERENCE.md: synflow ρ 0.763 on CIFAR-100 over all cells, to our all-cells row (not _extra, not sampled);
    # snip 0.637 to the sampled row, the only one; RLNAS angle τ 0.516 (random labels, all cells)
    assert set(anchored.index) == {"synflow_all_archs", "snip", "angle_random_all_archs"}
    assert anchored.loc["synflow_all_archs", ["published_metric", "published_value"]].tolist() == ["spearman_rho", 0.763]
    assert anchored.loc["snip", ["published_metric", "published_value"]].tolist() == ["spearman_rho", 0.637]
    assert anchored.loc["angle_random_all_archs", ["published_metric", "published_value"]].tolist() == \
        ["kendall_tau", 0.516]
    assert "15,625" in anchored.loc["synflow_all_archs", "published_source"]
    # without the all-cells row, the extra cells' row takes the anchor
    no_all = df[df["estimator"] != "synflow_all_archs"]
    table = frontier_table(no_all, FAMILIES, "cifar10_test_acc_200ep").set_index("estimator")
    assert table.loc["synflow_extra", "published_value"] == 0.737 and pd.isna(table.loc["synflow", "published_value"])
    assert frontier_table(df, FAMILIES, None)["published_value"].isna().all()


def test_naslib_params_anchor_says_491_cells():
    value, source = PUBLISHED[("params", "spearman_rho", "cifar10_test_acc_200ep")]
    assert value == 0.693 and "491" in source
    assert PUBLISHED[("flops", "spearman_rho", "cifar10_test_acc_200ep")].value == 0.663


def test_sheet_round_trips_through_openpyxl(correlation, tmp_path):
    df, _ = correlation
    table = frontier_table(df, FAMILIES, "cifar10_test_acc_200ep")
    wb = Workbook()
    add_frontier_sheet(wb, table)
    wb.save(tmp_path / "r.xlsx")
    ws = load_workbook(tmp_path / "r.xlsx")["frontier"]
    assert [c.value for c in ws[1]] == list(COLUMNS) and ws.freeze_panes == "B2" and ws["A1"].font.bold
    col = {k: i for i, k in enumerate(COLUMNS)}
    for r, expected in enumerate(table.to_dict("records"), start=2):
        cells = ws[r]
        assert cells[0].value == expected["estimator"]
        for k in ("kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho"):
            if math.isnan(expected[k]):
                assert cells[col[k]].value is None  # an empty cell, never a NaN
            else:
                assert cells[col[k]].value == pytest.approx(expected[k], rel=1e-14)  # xlsx keeps 17 digits
                assert cells[col[k]].number_format == "0.000"
        sec = cells[col["seconds_per_arch"]]
        assert sec.value == pytest.approx(expected["seconds_per_arch"], rel=1e-14)
        assert sec.number_format == seconds_format(expected["seconds_per_arch"])
        assert cells[col["n"]].value == expected["n"]
        assert cells[col["on_front"]].value == ("yes" if expected["on_front"] else "no")
        if not math.isnan(expected["published_value"]):
            assert cells[col["published_value"]].value == expected["published_value"]
            assert cells[col["published_metric"]].value == expected["published_metric"]
    notes = [ws.cell(r, 1).value for r in range(len(table) + 3, ws.max_row + 1)]
    assert any("Pareto front" in n for n in notes)
    assert any(n.startswith("synflow_all_archs: ours Spearman ρ") and "over 120 cells" in n and "0.737" in n
               for n in notes)


def _png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_draws_zero_cost_rows_anchors_and_leaves_nan_rows_out(correlation, tmp_path):
    df, _ = correlation
    table = frontier_table(df, FAMILIES, "cifar10_test_acc_200ep")
    fig = plot_frontier(tmp_path / "f.png", table)
    assert _png(tmp_path / "f.png")
    tau_ax, rho_ax = fig.axes[:2]
    points = [tuple(line.get_xydata()[0]) for line in tau_ax.get_lines() if line.get_gid() == "estimator"]
    assert len(points) == len(table) - 1  # every row but the NaN one
    left = min(x for x, _ in points)
    table_tau = float(table.set_index("estimator").loc["table_12ep", "kendall_tau"])
    assert (left, table_tau) in points and left < 2e-4  # the cost-0 row, left of the cheapest positive cost
    fig.canvas.draw()
    assert "0" in [t.get_text() for t in tau_ax.get_xticklabels()]
    texts = [t.get_text() for t in tau_ax.texts]
    assert "proxy_dead" not in " ".join(texts) and "table_12ep" in texts
    assert any("proxy_dead" in t.get_text() for t in fig.texts)  # named in the box as not drawn
    # the anchors: τ of the angle on the τ panel, snip's and synflow's ρ on the ρ panel, at our estimator's cost
    tau_published = [tuple(line.get_xydata()[0]) for line in tau_ax.get_lines() if line.get_gid() == "published"]
    rho_published = [tuple(line.get_xydata()[0]) for line in rho_ax.get_lines() if line.get_gid() == "published"]
    assert tau_published == [(pytest.approx(2e-4), 0.508)] and "published" in texts
    assert sorted(rho_published) == [(pytest.approx(0.05), 0.596), (pytest.approx(0.065), 0.737)]
    assert any(line.get_gid() == "front" for line in tau_ax.get_lines())


def test_plot_with_an_empty_table_says_so(tmp_path):
    empty = frontier_table(pd.DataFrame(columns=list(CORRELATION_COLUMNS)), {}, None)
    fig = plot_frontier(tmp_path / "empty.png", empty)
    assert _png(tmp_path / "empty.png")
    assert all("no estimator to plot" in [t.get_text() for t in ax.texts] for ax in fig.axes[:2])


def test_plot_with_only_nan_rows_and_a_title(correlation, tmp_path):
    df, _ = correlation
    table = frontier_table(df[df["estimator"] == "proxy_dead"], FAMILIES, None)
    fig = plot_frontier(tmp_path / "nan.png", table, title="only a dead estimator")
    assert _png(tmp_path / "nan.png") and fig._suptitle.get_text() == "only a dead estimator"
    assert "no estimator to plot" in [t.get_text() for t in fig.axes[0].texts]


def test_a_one_off_cost_adds_a_panel_of_the_cost_of_ranking_the_cells(correlation, tmp_path):
    """init_seconds (a model-based predictor's training cells and fit) goes through the table unchanged; the plot's
    third panel puts each estimator at n x its cost per arch + its one-off cost, with its own Pareto front."""
    df, rows = correlation
    assert (frontier_table(df, FAMILIES, None)["init_seconds"] == 0).all()  # a correlation.csv from before: none
    rng = np.random.default_rng(3)
    truth = np.array([r for r in rng.normal(size=30)])
    pred = correlation_row("pred_lgb_n100", truth + rng.normal(scale=0.2, size=30), truth, [0.001] * 30, n_boot=30)
    df = pd.concat([df.assign(init_seconds=0.0), pd.DataFrame([{**pred, "init_seconds": 9000.0}])], ignore_index=True)
    table = frontier_table(df, {**FAMILIES, "pred_lgb_n100": "model-based"}, None)
    got = table.set_index("estimator")
    assert got.loc["pred_lgb_n100", "init_seconds"] == 9000.0 and got.loc["synflow", "init_seconds"] == 0.0
    fig = plot_frontier(tmp_path / "f3.png", table)
    assert _png(tmp_path / "f3.png")
    ranking = fig.axes[2]
    points = {round(float(line.get_xydata()[0][1]), 6): float(line.get_xydata()[0][0])
              for line in ranking.get_lines() if line.get_gid() == "estimator"}
    # every row over the 30 sampled archs (not _extra / _all_archs; not the NaN one), at n x cost + one-off cost
    assert len(points) == 6
    assert points[round(pred["kendall_tau"], 6)] == pytest.approx(30 * 0.001 + 9000)
    synflow = got.loc["synflow"]
    assert points[round(synflow["kendall_tau"], 6)] == pytest.approx(30 * synflow["seconds_per_arch"])
    assert "one-off" in ranking.get_xlabel() and any(line.get_gid() == "front" for line in ranking.get_lines())
    # on the per-arch panel the predictor sits at its query cost
    per_arch = [tuple(line.get_xydata()[0]) for line in fig.axes[0].get_lines() if line.get_gid() == "estimator"]
    assert (pytest.approx(0.001), pytest.approx(pred["kendall_tau"])) in per_arch
    assert len(plot_frontier(tmp_path / "f2.png", frontier_table(correlation[0], FAMILIES, None)).axes) == 2
