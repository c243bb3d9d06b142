"""The study's report: the xlsx workbook (the BPE paper's Search_Hyperparameters_Results.xlsx layout plus the
ground truth and correlation sheets), plots, and the DVC metrics file."""
from __future__ import annotations

import math

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Font

# rows of the settings sheet: (label, key in a setting)
SETTING_ROWS = [("epochs", "epochs"), ("batch size", "batch_size"), ("lr", "lr"), ("layers", "layers"),
                ("cells per stage", "cells_per_stage"), ("channels", "channels"), ("image size", "image_size"),
                ("cutout", "cutout"), ("precision", "precision")]


def _cell(v):
    """openpyxl cannot store NaN; an empty cell says 'undefined' (or diverged)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _finite_stat(values: np.ndarray, stat: str):
    """Mean or sample std over the finite values (diverged archs are NaN); None when too few."""
    v = values[np.isfinite(values)]
    if stat == "mean":
        return float(v.mean()) if len(v) else None
    return float(v.std(ddof=1)) if len(v) > 1 else None


def write_workbook(path, *, settings: dict[str, dict], estimates: list[dict], correlation: list[dict],
                   ground_truth_label: str, about: dict, found: list[dict] | None = None,
                   diverged: list[dict] | None = None) -> None:
    """settings: proxy setting name -> setting dict; estimates: rows of estimates.csv (dicts; a diverged
    training's score NaN or None: an empty cell, left out of Mean/Std); found: the searches' picks with their
    ground truth (results/found.json's results); diverged: {"estimator", "arch", "epoch"} per diverged training
    (sheet `diverged`, which says "none" when there is none)."""
    wb = Workbook()
    bold = Font(bold=True)

    ws = wb.active
    ws.title = "settings"
    names = list(settings)
    ws.append(["setting", *names])
    for label, key in SETTING_ROWS:
        if any(key in settings[n] for n in names):
            ws.append([label, *(settings[n].get(key) for n in names)])
    ws.append(["arch", *([None] * len(names))])
    for row in estimates:
        ws.append([row["arch"], *(_cell(row[f"proxy_{n}"]) for n in names)])
    by_name = {c["estimator"]: c for c in correlation}
    scores = {n: np.array([r[f"proxy_{n}"] for r in estimates], float) for n in names}
    ws.append(["Mean", *(_finite_stat(scores[n], "mean") for n in names)])
    ws.append(["Std", *(_finite_stat(scores[n], "std") for n in names)])
    ws.append(["Spearman", *(_cell(by_name[f"proxy_{n}"]["spearman_rho"]) for n in names)])
    ws.append(["Kendall", *(_cell(by_name[f"proxy_{n}"]["kendall_tau"]) for n in names)])
    ws.append(["seconds per arch", *(_cell(by_name[f"proxy_{n}"]["seconds_per_arch"]) for n in names)])
    for c in ws[1]:
        c.font = bold
    ws.column_dimensions["A"].width = 70

    ws = wb.create_sheet("ground_truth")
    ws.append(["arch", f"accuracy ({ground_truth_label})"])
    for row in estimates:
        ws.append([row["arch"], _cell(row["ground_truth"])])
    ws.column_dimensions["A"].width = 70

    ws = wb.create_sheet("correlation")
    columns = list(correlation[0]) if correlation else ["estimator"]
    ws.append(columns)
    for c in correlation:
        ws.append([_cell(c[k]) for k in columns])

    rlnas = [f for f in found or [] if f["method"] == "rlnas_evolution"]
    if rlnas:  # RLNAS Table 1: labels x indicator -> the found arch's ground truth
        ws = wb.create_sheet("rlnas")
        ws.append(["labels", "indicator", "found arch", f"ground truth ({ground_truth_label})", "indicator score",
                   "search seconds", "supernet training seconds"])
        for f in rlnas:
            ws.append([_cell(v) for v in (f["labels"], f["indicator"], f["arch"], f["ground_truth"],
                                          f["search_score"], f["search_seconds"], f["supernet_train_seconds"])])
        ws.column_dimensions["C"].width = 70

    if found:  # every search's pick: method, estimator, the arch, its ground truth and what the search cost
        ws = wb.create_sheet("searches")
        ws.append(["search", "method", "estimator / indicator", "found arch", "search score",
                   f"ground truth ({ground_truth_label})", "search seconds", "status"])
        for f in found:
            if f.get("estimator"):
                how = f["estimator"]
            elif f.get("indicator"):
                how = f"{f['indicator']} ({f['labels']} labels)"
            else:  # differentiable: the search's own weight-sharing supernet
                how = "weight-sharing supernet"
            status = next((f[k] for k in ("search_status", "ground_truth_status") if f.get(k) not in (None, "ok")),
                          "ok")  # diverged search (no pick) or diverged retraining of the pick
            ws.append([_cell(v) for v in (f["search"], f["method"], how, f["arch"], f["search_score"],
                                          f["ground_truth"], f["search_seconds"], status)])
        ws.column_dimensions["D"].width = 70

    ws = wb.create_sheet("diverged")  # every training that ended on a non-finite loss: never a score
    ws.append(["estimator", "arch", "epoch"])
    for d in diverged or []:
        ws.append([d["estimator"], d["arch"], d.get("epoch")])
    if not diverged:
        ws.append(["none"])
    ws.column_dimensions["B"].width = 70

    ws = wb.create_sheet("about")
    ws.append(["what made this workbook"])
    for key, value in about.items():
        ws.append([key, str(value)])
    for sheet in wb.worksheets:
        for c in sheet[1]:
            c.font = bold
    wb.save(path)


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (stages run without a display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_estimate_vs_truth(path, name: str, estimate, truth, row: dict) -> None:
    plt = _pyplot()

    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    keep = np.isfinite(estimate) & np.isfinite(truth)  # a diverged training has no point
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.scatter(truth[keep], estimate[keep], s=18, alpha=0.8)
    ax.set_xlabel("ground-truth accuracy (%)")
    ax.set_ylabel(name if not name.startswith("proxy_") else f"{name} accuracy (%)")
    ax.set_title(f"{name}: Kendall τ {row['kendall_tau']:.3f}, Spearman ρ {row['spearman_rho']:.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_correlation_vs_cost(path, correlation: list[dict]) -> None:
    plt = _pyplot()

    fig, ax = plt.subplots(figsize=(5, 4))
    for c in correlation:
        tau, lo, hi = c["kendall_tau"], c["kendall_tau_low"], c["kendall_tau_high"]
        if not (math.isfinite(tau) and math.isfinite(c["seconds_per_arch"])):
            continue  # no finite pairs (e.g. every arch diverged): nothing to plot
        yerr = None if math.isnan(lo) or math.isnan(hi) else [[tau - lo], [hi - tau]]
        ax.errorbar(c["seconds_per_arch"], tau, yerr=yerr, fmt="o", capsize=3, label=c["estimator"])
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # minor log labels collide on short ranges
    ax.set_xlabel("cost per arch (seconds)")
    ax.set_ylabel("Kendall τ vs ground truth (95% bootstrap)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_best_so_far(path, searches: list[dict]) -> None:
    """Best score found so far against the estimator cost spent, one line per strategy x estimator."""
    plt = _pyplot()

    estimators = sorted({s["estimator"] for s in searches})
    fig, axes = plt.subplots(1, max(len(estimators), 1), figsize=(4.5 * max(len(estimators), 1), 3.8), squeeze=False)
    for ax, est in zip(axes[0], estimators):
        for s in (s for s in searches if s["estimator"] == est):
            elapsed = [h["elapsed"] for h in s["history"]]
            # a diverged evaluation's score is NaN (or null): it never raises the best so far
            scores = np.array([np.nan if h["score"] is None else h["score"] for h in s["history"]], float)
            best = np.fmax.accumulate(np.where(np.isfinite(scores), scores, np.nan)) if len(scores) else []
            ax.step(elapsed, best, where="post", label=s["method"])
        ax.set_title(est, fontsize=9)
        ax.set_xlabel("estimator cost spent (s)")
        ax.set_ylabel("best score so far")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_alphas(path, search: dict, ops: tuple[str, ...], edge_labels: list[str],
                cell_names: tuple[str, ...] = ()) -> None:
    """Softmax(α) per edge over the epochs of one differentiable search: one panel per edge, one line per op;
    one row per cell type when the α are per cell type (DARTS: normal, reduce)."""
    plt = _pyplot()

    epochs = [h for h in search["history"] if h.get("alphas")]
    if not epochs:
        return
    probs = np.array([h["alphas"] for h in epochs])  # epochs x [cells x] edges x ops
    if probs.ndim == 3:
        probs = probs[:, None]
    n_rows, n_edges = probs.shape[1], probs.shape[2]
    fig, axes = plt.subplots(n_rows, n_edges, figsize=(2.2 * n_edges, 2.4 * n_rows), sharey=True, squeeze=False)
    for r in range(n_rows):
        for e, ax in enumerate(axes[r]):
            for o, op in enumerate(ops):
                ax.plot(range(1, len(epochs) + 1), probs[:, r, e, o], label=op)
            cell = f"{cell_names[r]} " if r < len(cell_names) else ""
            ax.set_title(f"{cell}edge {edge_labels[e]}", fontsize=8)
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[r][0].set_ylabel("softmax(α)")
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(f"{search['name']}: derived {search['best']}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
