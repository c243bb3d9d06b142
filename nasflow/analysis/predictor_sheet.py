"""The workbook's `predictors` sheet and the predictor learning-curve plot (τ against training-set size)."""
from __future__ import annotations

from pathlib import Path

from nasflow.estimators.predictors import summarize

COLUMNS = ("predictor", "train_size", "trials", "pool", "kendall_tau", "kendall_tau_std", "spearman_rho",
           "precision_at_10", "regret", "mae", "init_seconds", "fit_seconds", "query_seconds", "feature_seconds")


def summary_rows(results: list[dict]) -> list[dict]:
    """One row per predictor x size: the protocol's metrics (mean, τ's std) and both costs (means over trials)."""
    rows = summarize(results)
    for row in rows:
        mine = [r for r in results if (r["predictor"], r["train_size"]) == (row["predictor"], row["train_size"])]
        row["init_seconds"] = sum(r["init_seconds"] for r in mine) / len(mine)
        row["feature_seconds"] = sum(r.get("feature_seconds", 0.0) for r in mine) / len(mine)
        row["pool"] = mine[0].get("pool")
    return rows


def add_sheet(xlsx: str | Path, results: list[dict], cost_source: str) -> None:
    """Append the `predictors` sheet to the workbook at `xlsx`."""
    from openpyxl import load_workbook

    with open(xlsx, "rb") as f:  # a file object: openpyxl checks a path's extension (ours may be a temporary name)
        wb = load_workbook(f)
    ws = wb.create_sheet("predictors")
    ws.append(list(COLUMNS))
    for row in summary_rows(results):
        ws.append([row[c] for c in COLUMNS])
    ws.append([])
    ws.append(["init_seconds: evaluating the training cells (" + cost_source + ") + a hybrid's features of them + "
               "the fit; query_seconds: predicting one cell + its features (feature_seconds); metrics on held-out "
               "cells, mean over trials; pool: the cells training and test cells are drawn from (the whole table, "
               "or for a hybrid <predictor>_<feature set> the cells with zero-cost scores)"])
    wb.save(xlsx)


def plot_learning_curves(results: list[dict], path: str | Path, references: dict[str, float] | None = None) -> None:
    """τ against training-set size per predictor (mean ± std over trials), with other estimators' τ as
    horizontal references."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary_rows(results)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(r["predictor"] for r in rows):
        mine = [r for r in rows if r["predictor"] == name]
        hybrid = "_" in name  # <predictor>_<feature set>: dashed, beside its encoding-only line
        ax.errorbar([r["train_size"] for r in mine], [r["kendall_tau"] for r in mine],
                    yerr=[r["kendall_tau_std"] for r in mine], marker="s" if hybrid else "o", capsize=2, label=name,
                    ls="--" if hybrid else "-")
    by_tau: dict[float, list[str]] = {}  # estimators with the same τ share one line and one label
    for label, tau in (references or {}).items():
        by_tau.setdefault(round(tau, 3), []).append(label)
    for k, (tau, labels) in enumerate(by_tau.items()):
        ax.axhline(tau, ls="--", lw=0.8, color=f"C{(k + 6) % 10}")
        ax.annotate(", ".join(labels), (0.01, tau), xycoords=("axes fraction", "data"), fontsize=7, va="bottom")
    ax.set_xscale("log")
    ax.set_xlabel("training-set size (cells)")
    ax.set_ylabel("Kendall τ on held-out cells")
    ax.set_title("Model-based predictors: τ against the cells they were trained on")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
