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


def _spread(ys: list[float], gap: float) -> list[float]:
    """`ys` (sorted ascending) moved apart to at least `gap` from each other, as little as possible (label rows)."""
    out = list(ys)
    for i in range(1, len(out)):
        out[i] = max(out[i], out[i - 1] + gap)
    shift = (sum(out) - sum(ys)) / len(out) if out else 0.0  # centre the stack on where the lines are
    return [y - shift for y in out]


def plot_learning_curves(results: list[dict], path: str | Path, references: dict[str, float] | None = None) -> None:
    """τ against training-set size per predictor (mean ± std over trials): one colour per regressor, a hybrid
    (`<predictor>_<feature set>`) dashed in its regressor's colour with its set's marker; other estimators' τ
    (the study's zero-cost, budget, table ... estimators) as grey horizontal references, named in the right margin."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasflow.estimators.predictors import PREDICTORS

    rows = summary_rows(results)
    names = list(dict.fromkeys(r["predictor"] for r in rows))
    sets = list(dict.fromkeys(n.partition("_")[2] for n in names if "_" in n))
    markers, dashes = "sD^vP*", [(5, 2), (2, 1.5), (6, 2, 1, 2), (1, 1), (8, 3)]
    fig, ax = plt.subplots(figsize=(8.5, 5))
    for name in names:
        mine = [r for r in rows if r["predictor"] == name]
        base, _, fset = name.partition("_")
        colour = f"C{PREDICTORS.index(base) % 10}" if base in PREDICTORS else "black"
        style = {"marker": "o", "ls": "-"} if not fset else {
            "marker": markers[sets.index(fset) % len(markers)], "ls": (0, dashes[sets.index(fset) % len(dashes)])}
        ax.errorbar([r["train_size"] for r in mine], [r["kendall_tau"] for r in mine],
                    yerr=[r["kendall_tau_std"] for r in mine], capsize=2, label=name, color=colour, ms=5, **style)
    by_tau: dict[float, list[str]] = {}  # estimators with the same τ share one line and one label
    for label, tau in (references or {}).items():
        by_tau.setdefault(round(tau, 3), []).append(label)
    taus = sorted(by_tau)
    lo, hi = ax.get_ylim()
    lo, hi = min([lo, *taus]) - 0.02, max([hi, *taus]) + 0.02
    ax.set_ylim(lo, hi)
    for tau, y in zip(taus, _spread(taus, 0.035 * (hi - lo))):
        ax.axhline(tau, ls=":", lw=0.9, color="grey", zorder=1)
        ax.annotate(f"{', '.join(by_tau[tau])} ({tau:.2f})", xy=(1.0, tau), xytext=(1.02, y),
                    xycoords=("axes fraction", "data"), textcoords=("axes fraction", "data"), fontsize=7,
                    va="center", color="dimgrey", annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "color": "lightgrey", "lw": 0.6})
    sizes = sorted({r["train_size"] for r in rows})
    ax.set_xscale("log")
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set_xlabel("training-set size (cells)")
    ax.set_ylabel("Kendall τ on held-out cells (mean ± std over trials)")
    ax.set_title("Model-based predictors: τ against the cells they were trained on"
                 + ("\n(dotted: the study's other estimators on its sampled cells)" if by_tau else ""), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=min(6, len(names)), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
