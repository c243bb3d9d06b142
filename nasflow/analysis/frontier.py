"""The cost–quality frontier of the performance estimators: each estimator's rank correlation with the ground
truth (Kendall τ with its bootstrap interval, Spearman ρ) against its cost per arch, its family, whether it is on
the Pareto front (no other estimator ranks at least as well for at most its cost), and the published value to read
it against (../shared/REFERENCE.md). As a table (frontier_table, from results/correlation.csv read with pandas), a
workbook sheet (add_frontier_sheet) and a plot (plot_frontier).

An estimator named `<name>_all_archs` (over every NB201 cell) or `<name>_extra` (over the extra cells) is its own
row, in the family of `<name>`."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from nasflow.analysis.plots import (
    FAMILY_STYLE,
    _decade_limits,
    _figure,
    _log_seconds_axis,
    _place_labels,
    _save,
    _warning_box,
)
from nasflow.analysis.workbook import CORR, _cell, _finish_sheet, _fmt, seconds_format
from nasflow.bpe_search import pareto_front
from nasflow.errors import CheckpointError, ParamsError

FAMILIES = ("budgeted training", "learning curve", "zero-cost", "supernet", "differentiable", "table", "model-based",
            "ensemble")
DEDUP_SUFFIXES = ("_all_archs_dedup", "_extra_dedup")
SUFFIXES = ("_all_archs", "_extra", *DEDUP_SUFFIXES)  # the same estimator over every NB201 cell / over the extra cells (dedup: one cell per isomorphism class)

COLUMNS = ("estimator", "family", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
           "seconds_per_arch", "init_seconds", "on_front", "published_metric", "published_value", "published_source")
CORRELATION_COLUMNS = ("estimator", "n", "kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho",
                       "seconds_per_arch")  # what the frontier reads of results/correlation.csv
METRIC_LABELS = {"kendall_tau": "Kendall τ", "spearman_rho": "Spearman ρ"}


class Anchor(NamedTuple):
    value: float
    source: str


# ---------------------------------------------------------------------------------------------- published anchors
# ../shared/REFERENCE.md. Zero-cost ρ: Abdelfattah et al. 2021's notebook, over all 15,625 cells, so they anchor our
# `<proxy>_all_archs` row first (then `_extra`, then the sampled archs). RLNAS τ: random labels, all cells.
_C10, _C100, _IN16 = "cifar10_test_acc_200ep", "cifar100_test_acc_200ep", "imagenet16_120_test_acc_200ep"
_ZERO_COST_PROXIES = ("grad_norm", "snip", "grasp", "fisher", "synflow", "jacob_cov")
_ZERO_COST_RHO = {_C10: (0.594, 0.596, 0.514, 0.36, 0.737, 0.731),
                  _C100: (0.637, 0.637, 0.547, 0.385, 0.763, 0.704),
                  _IN16: (0.578, 0.578, 0.549, 0.327, 0.751, 0.701)}
_ZERO_COST_SOURCE = "Abdelfattah et al. 2021, all 15,625 NB201 cells, one batch of 64"
# NASLib's params/flops ρ: REFERENCE.md names no dataset; CIFAR-10 is NASLib's default NB201 task
_NASLIB_SOURCE = "NASLib's data, 491 NB201 cells (not all 15,625)"
_RLNAS_TAU = {_C10: 0.508, _C100: 0.516, _IN16: 0.495}
_RLNAS_SOURCE = "RLNAS README, all 15,625 NB201 cells, random labels"

PUBLISHED: dict[tuple[str, str, str], Anchor] = {
    **{(proxy, "spearman_rho", column): Anchor(rho, _ZERO_COST_SOURCE)
       for column, rhos in _ZERO_COST_RHO.items() for proxy, rho in zip(_ZERO_COST_PROXIES, rhos)},
    ("params", "spearman_rho", _C10): Anchor(0.693, _NASLIB_SOURCE),
    ("flops", "spearman_rho", _C10): Anchor(0.663, _NASLIB_SOURCE),
    # AZ-NAS's notebook output (cvlab-yonsei/AZ-NAS NB201/tss_general.ipynb, seed 1, batch 64): all cells,
    # CIFAR-10 ori-test accuracy at 200 epochs, duplicates kept; τ 0.741 there (docs/zero-cost-2022.md)
    ("az_nas", "spearman_rho", _C10): Anchor(0.913, "AZ-NAS notebook, all 15,625 NB201 cells, CIFAR-10 test"),
    # `angle_random` when both label kinds run, `angle` when one does (stages.params.supernet_estimators)
    **{(name, "kendall_tau", column): Anchor(tau, _RLNAS_SOURCE)
       for name in ("angle_random_all_archs", "angle_all_archs") for column, tau in _RLNAS_TAU.items()},
}


def base_name(estimator: str) -> str:
    """The estimator without its `_all_archs` / `_extra` suffix: the name its family is given under."""
    for suffix in SUFFIXES:
        if estimator.endswith(suffix):
            return estimator[: -len(suffix)]
    return estimator


def _finite(v) -> bool:
    return isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def _anchors(rows: dict[str, dict], ground_truth_column: str | None) -> dict[str, tuple[str, Anchor]]:
    """Our estimator -> (metric, anchor) for every published value of this ground truth: the first present of
    `<name>_all_archs`, `<name>_extra`, `<name>` with a finite value of the metric (else the first present)."""
    out = {}
    for (name, metric, column), anchor in PUBLISHED.items():
        if column != ground_truth_column:
            continue
        candidates = [name] if name.endswith(SUFFIXES) else [f"{name}{s}" for s in SUFFIXES] + [name]
        present = [c for c in candidates if c in rows]
        if present:
            ours = next((c for c in present if _finite(rows[c][metric])), present[0])
            out[ours] = (metric, anchor)
    return out


# ---------------------------------------------------------------------------------------------- table

def _front(records: list[dict], metric: str) -> list[int]:
    """Indices of the Pareto front of `metric` against cost among the rows over the sampled archs: a row over other
    cells (`_all_archs`, `_extra`) is not compared with them."""
    same = [i for i, r in enumerate(records) if not str(r["estimator"]).endswith(SUFFIXES)]
    return [same[j] for j in pareto_front([records[i] for i in same], metric, "seconds_per_arch")]


def frontier_table(correlation: pd.DataFrame, families: Mapping[str, str],
                   ground_truth_column: str | None) -> pd.DataFrame:
    """One row per estimator of `correlation` (results/correlation.csv as a DataFrame), its numbers unchanged, with
    its family (`families`: base name -> one of FAMILIES), on_front (on the Pareto front of Kendall τ against
    seconds per arch, among the rows over the sampled archs) and the published value for `ground_truth_column` (a column of nb201-accuracies.csv; None or
    a column without published values: no anchors); sorted by cost per arch (no cost last)."""
    missing = [c for c in CORRELATION_COLUMNS if c not in correlation.columns]
    if missing:
        raise CheckpointError(f"correlation table: no column {', '.join(missing)} (expected those of "
                              f"results/correlation.csv: {', '.join(CORRELATION_COLUMNS)})")
    names = [str(n) for n in correlation["estimator"]]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CheckpointError(f"correlation table: estimator {', '.join(twice)} appears more than once")
    bad = sorted(f"{k}: {v!r}" for k, v in families.items() if v not in FAMILIES)
    if bad:
        raise ParamsError(f"unknown family for {', '.join(bad)}: expected one of {', '.join(FAMILIES)}")
    unknown = sorted({base_name(n) for n in names} - set(families))
    if unknown:
        raise ParamsError(f"no family given for estimator {', '.join(unknown)} (families are keyed by the name "
                          f"without {' / '.join(SUFFIXES)})")
    if (correlation["seconds_per_arch"] < 0).any():
        raise CheckpointError("correlation table: a negative seconds_per_arch (a cost is at least 0)")

    table = correlation.loc[:, list(CORRELATION_COLUMNS)].copy()
    # one-off costs (a model-based predictor's training cells and fit); a correlation.csv from before has none
    table["init_seconds"] = (correlation["init_seconds"].fillna(0.0).astype(float) if "init_seconds" in correlation
                             else 0.0)
    table.insert(1, "family", [families[base_name(n)] for n in names])
    records = table.to_dict("records")
    front = set(_front(records, "kendall_tau"))
    table["on_front"] = [i in front for i in range(len(records))]
    anchors = _anchors(dict(zip(names, records)), ground_truth_column)
    table["published_metric"] = pd.Series([anchors[n][0] if n in anchors else None for n in names],
                                          index=table.index, dtype=object)
    table["published_value"] = [anchors[n][1].value if n in anchors else math.nan for n in names]
    table["published_source"] = pd.Series([anchors[n][1].source if n in anchors else None for n in names],
                                          index=table.index, dtype=object)
    return table.sort_values("seconds_per_arch", kind="stable", na_position="last").reset_index(drop=True)


def _check_table(table: pd.DataFrame, what: str) -> None:
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ParamsError(f"{what}: the table has no column {', '.join(missing)} (make it with frontier_table)")


def _native(v):
    """A pandas/numpy value as openpyxl stores it: Python scalars, None for a missing one."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------------------------------------- sheet

def frontier_notes(table: pd.DataFrame) -> list[str]:
    """The lines under the frontier sheet: what the front is, and each published anchor against ours."""
    lines = ["on_front: on the Pareto front of Kendall τ against cost per arch: no other estimator has a τ at least as "
             "high for at most its cost (one of the two strictly), among the estimators over the sampled archs (rows "
             "over other cells, _all_archs and _extra, are not compared); without a finite τ or cost, not on it. A "
             "cost of 0 s is a table look-up.",
             "init_seconds: a one-off cost before the first arch is scored (a model-based predictor: evaluating its "
             "training cells, their features, the fit); the plot's third panel adds it to n x the cost per arch.",
             "published_*: the value published for the same estimator and ground truth (../shared/REFERENCE.md), "
             "to read ours against; n is the number of cells ours is over."]
    anchored = [r for r in table.to_dict("records") if _finite(r["published_value"])]
    for r in anchored:
        metric = r["published_metric"]
        ours = f"{r[metric]:.3f}" if _finite(r[metric]) else "—"
        lines.append(f"{r['estimator']}: ours {METRIC_LABELS[metric]} {ours} over {int(r['n']):,} cells; published "
                     f"{r['published_value']:.3f} ({r['published_source']})")
    if not anchored:
        lines.append("published: no published value for these estimators against this ground truth")
    return lines


def add_frontier_sheet(wb, table: pd.DataFrame) -> None:
    """Sheet `frontier` of `wb` (an openpyxl Workbook): frontier_table's rows (τ and ρ with 3 decimals, seconds in
    their own format, on_front yes/no), then frontier_notes."""
    _check_table(table, "frontier sheet")
    ws = wb.create_sheet("frontier")
    ws.append(list(COLUMNS))
    for r in table.to_dict("records"):
        ws.append([_cell(_native(r[c])) if c != "on_front" else ("yes" if r[c] else "no") for c in COLUMNS])
        for column, cell in zip(COLUMNS, ws[ws.max_row]):
            if column in ("kendall_tau", "kendall_tau_low", "kendall_tau_high", "spearman_rho", "published_value"):
                _fmt(cell, CORR)
            elif column == "n":
                _fmt(cell, "0")
            elif column in ("seconds_per_arch", "init_seconds"):  # costs span decades: each its own format
                _fmt(cell, seconds_format(cell.value))
    _finish_sheet(ws, freeze="B2")
    ws.append([])  # after the widths: the notes spill over the empty cells to their right
    for line in frontier_notes(table):
        ws.append([line])


# ---------------------------------------------------------------------------------------------- plot

def _mark_zero_cost(axis, zero_x: float, lo: float) -> None:
    """Label the left-edge tick (where cost-0 rows sit) "0", and no minor tick in the gap before `lo`."""
    from matplotlib.ticker import FuncFormatter

    major, minor = axis.get_major_formatter(), axis.get_minor_formatter()
    axis.set_major_formatter(FuncFormatter(
        lambda x, pos: "0" if math.isclose(x, zero_x, rel_tol=1e-6) else major(x, pos)))
    axis.set_minor_formatter(FuncFormatter(lambda x, pos: "" if x < lo * (1 - 1e-9) else minor(x, pos)))


def _draw_panel(ax, points: list[dict], metric: str, x_of, n_usual, right: float) -> tuple[list, list, list, list]:
    """One panel's estimators, front (its last level carried to `right`, the axis' right end) and anchors; y limits
    from what is drawn. Returns the labels to place: (xs, ys, texts, colours)."""
    xs, ys, texts, colours, extent = [], [], [], [], []
    for r in points:
        colour, marker = FAMILY_STYLE[r["family"]]
        x, y = x_of(r["seconds_per_arch"]), float(r[metric])
        low, high = r["kendall_tau_low"], r["kendall_tau_high"]
        interval = metric == "kendall_tau" and _finite(low) and _finite(high)
        anchored = r["published_metric"] == metric and _finite(r["published_value"])
        # a row over other cells (_all_archs, _extra) is context: faded, and named only where it meets its anchor
        other = str(r["estimator"]).endswith(SUFFIXES)
        bars = ax.errorbar([x], [y], yerr=[[y - low], [high - y]] if interval else None, fmt=marker, color=colour,
                           ms=10 if marker == "*" else 7, capsize=3, zorder=3, alpha=0.45 if other else 1.0)
        bars.lines[0].set_gid("estimator")  # the point (its caps and bar are lines too)
        extent += [y, float(low), float(high)] if interval else [y]
        n = int(r["n"]) if _finite(r["n"]) else None
        if anchored or not other:
            xs, ys, colours = [*xs, x], [*ys, y], [*colours, colour]
            texts.append(r["estimator"] if n in (n_usual, None) else f"{r['estimator']} (n = {n:,})")
        if anchored:
            published = float(r["published_value"])
            ax.plot([x, x], [y, published], color=colour, lw=0.7, zorder=2, gid="anchor line")
            ax.plot([x], [published], marker=marker, ms=10 if marker == "*" else 7, mfc="none", mec=colour, mew=1.3,
                    ls="", zorder=3, gid="published")
            xs, ys, texts, colours = [*xs, x], [*ys, published], [*texts, "published"], [*colours, colour]
            extent.append(published)
    front = [points[i] for i in _front(points, metric)]
    if front:
        levels = [float(r[metric]) for r in front]
        ax.step([*(x_of(r["seconds_per_arch"]) for r in front), right], [*levels, levels[-1]], where="post",
                color="black", lw=1.1, ls="--", zorder=2, gid="front")
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    if extent:  # τ and ρ lie in [-1, 1]: room for the labels around what is drawn, never beyond
        pad = max(0.05, 0.12 * (max(extent) - min(extent)))
        ax.set_ylim(max(-1.05, min(extent) - pad), min(1.05, max(extent) + pad))
    else:
        ax.set_ylim(-1.05, 1.05)
    return xs, ys, texts, colours


def _label_count(points: list[dict], metric: str) -> int:
    """How many labels _draw_panel writes: one per row over the sampled archs, two per anchored row."""
    anchored = sum(r["published_metric"] == metric and _finite(r["published_value"]) for r in points)
    return sum(not str(r["estimator"]).endswith(SUFFIXES) for r in points) + 2 * anchored


def _ranking_cost_rows(rows: list[dict]) -> list[dict]:
    """The rows over the sampled archs with the cost of ranking all n of them, one-off costs included, as their
    cost (n x seconds per arch + init_seconds); no published anchors (those are per-arch comparisons)."""
    out = []
    for r in rows:
        if str(r["estimator"]).endswith(SUFFIXES) or not (_finite(r["n"]) and _finite(r["seconds_per_arch"])):
            continue
        init = float(r["init_seconds"]) if _finite(r.get("init_seconds")) else 0.0
        out.append({**r, "seconds_per_arch": int(r["n"]) * float(r["seconds_per_arch"]) + init,
                    "published_metric": None, "published_value": math.nan})
    return out


def plot_frontier(path, table: pd.DataFrame, title: str | None = None):
    """Two panels: Kendall τ (95% bootstrap interval) and Spearman ρ of every estimator against its cost per arch
    (log scale), coloured and marked by family, each labelled; the Pareto front of each panel as a dashed step line;
    a published value as a hollow marker at our estimator's cost, joined to ours. A cost of 0 (a table look-up)
    sits at the left edge, its tick labelled 0; rows without a finite value or cost are left out (named in a
    box). When an estimator has a one-off cost (`init_seconds`: a model-based predictor's training cells and fit),
    a third panel shows τ against the cost of ranking the n archs, n x cost per arch + the one-off cost, so a
    predictor's cheap queries are seen with what it took to train it. `table`: frontier_table's."""
    from matplotlib.lines import Line2D

    _check_table(table, "frontier plot")
    # the dedup rows repeat their _extra / _all_archs rows over one cell per isomorphism class: the tables carry
    # them; drawn too they would only double the faded context
    rows = [r for r in table.to_dict("records") if not str(r["estimator"]).endswith(DEDUP_SUFFIXES)]
    drawn = {m: [r for r in rows if _finite(r[m]) and _finite(r["seconds_per_arch"])] for m in METRIC_LABELS}
    ranking = _ranking_cost_rows(drawn["kendall_tau"])
    with_init = any(_finite(r["init_seconds"]) and r["init_seconds"] > 0 for r in ranking)
    panels = [(metric, drawn[metric], f"{METRIC_LABELS[metric]} against cost", "cost per arch")
              for metric in METRIC_LABELS]
    if with_init:
        panels.append(("kendall_tau", ranking, "Kendall τ against the cost of ranking the n archs",
                       "n x cost per arch + one-off cost"))
    # the n the labelled rows share (the sampled archs), not the faded rows' over other cells
    ns = Counter(int(r["n"]) for m in drawn for r in drawn[m]
                 if _finite(r["n"]) and not str(r["estimator"]).endswith(SUFFIXES))
    ns = ns or Counter(int(r["n"]) for m in drawn for r in drawn[m] if _finite(r["n"]))
    n_usual = ns.most_common(1)[0][0] if ns else None
    # tall enough for the panel with the most labels to hold them in one column (_label_column)
    most = max(_label_count(points, metric) for metric, points, _, _ in panels)
    fig = _figure(figsize=(13 if not with_init else 19, max(5.2, 1.6 + 0.18 * most)))
    axes = fig.subplots(1, len(panels))
    labels = []
    for k, (ax, (metric, points, panel_title, what)) in enumerate(zip(axes, panels)):
        # the two per-arch panels share one axis; the ranking-cost panel has its own
        costs = [float(r["seconds_per_arch"]) for r in (points if k == 2 else drawn["kendall_tau"] + drawn["spearman_rho"])]
        positive = [c for c in costs if c > 0]
        lo, hi = _decade_limits(positive) if positive else (1e-3, 1.0)
        zero_x = lo / 10 if 0 in costs else None  # a decade left of the cheapest positive cost: a visible gap

        def x_of(cost, zero_x=zero_x) -> float:
            return float(cost) if cost > 0 else zero_x

        labels.append(_draw_panel(ax, points, metric, x_of, n_usual, hi))
        if not points:
            ax.text(0.5, 0.5, "no estimator to plot", transform=ax.transAxes, ha="center", va="center",
                    color="grey", gid="empty", bbox={"fc": "white", "ec": "none"})
        ax.set_xscale("log")
        ax.set_xlim(lo if zero_x is None else zero_x / 10 ** 0.25, hi)
        _log_seconds_axis(ax.xaxis, lo, hi)
        if zero_x is not None:
            _mark_zero_cost(ax.xaxis, zero_x, lo)
            ax.axvline(zero_x * 10 ** 0.5, color="grey", lw=0.8, ls=(0, (1, 3)))  # where the log axis starts
        ax.set_xlabel(f"{what} (seconds, log scale" + ("; 0 = a table look-up, at the left edge)"
                                                        if zero_x is not None else ")"))
        interval = " (95% bootstrap interval)" if metric == "kendall_tau" else ""
        ax.set_ylabel(f"{METRIC_LABELS[metric]} vs ground truth{interval}")
        ax.set_title(panel_title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.12, which="minor")
    present = [f for f in FAMILIES if any(r["family"] == f for m in drawn for r in drawn[m])]
    handles = [Line2D([], [], ls="", marker=FAMILY_STYLE[f][1], color=FAMILY_STYLE[f][0], ms=7, label=f)
               for f in present]
    if present:
        handles.append(Line2D([], [], color="black", lw=1.1, ls="--", label="Pareto front"))
    if any(r["published_metric"] == m and _finite(r["published_value"]) for m in drawn for r in drawn[m]):
        handles.append(Line2D([], [], ls="", marker="o", mfc="none", mec="black", ms=7, label="published (hollow)"))
    if handles:
        axes[-1].legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1),
                        borderaxespad=0, title="family", title_fontsize=7.5)
    n_text = f"n = {n_usual:,} archs unless labelled" if n_usual is not None else "no estimator"
    fig.suptitle(title or f"Cost–quality frontier of the performance estimators ({n_text})", fontsize=10)
    fig.tight_layout()
    for ax, (xs, ys, texts, colours) in zip(axes, labels):
        _place_labels(ax, xs, ys, texts, colors=colours)
    shown = {r["estimator"] for m in drawn for r in drawn[m]}
    left_out = [r["estimator"] for r in rows if r["estimator"] not in shown]
    _warning_box(fig, [f"not drawn (no finite τ or ρ, or no cost per arch): {', '.join(left_out)}"]
                 if left_out else [], y=-0.01, width=150)
    _save(fig, path)
    return fig
