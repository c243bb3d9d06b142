"""The study's xlsx workbook: the BPE paper's Search_Hyperparameters_Results.xlsx layout (sheet `settings`) plus the
ground truth, correlation, searches, warnings, diverged and about sheets, and the budget search's sheets; the number
formats every sheet shares. The frontier sheet is nasflow.analysis.frontier's; nasflow.analysis.report assembles
the file."""

from __future__ import annotations

import math

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from nasflow.analysis.result_warnings import _number
from nasflow.errors import CheckpointError, ParamsError

# rows of the settings sheet: (label, key in a setting), every key of a setting (params.schema.yaml `setting`);
# a key no setting has is left out (e.g. layers in the NB201 space), any other key follows under its own name
SETTING_ROWS = [("epochs", "epochs"), ("batch size", "batch_size"), ("lr", "lr"), ("lr_min", "lr_min"),
                ("momentum", "momentum"), ("nesterov", "nesterov"), ("weight decay", "weight_decay"),
                ("grad clip", "grad_clip"), ("label smoothing", "label_smoothing"), ("layers", "layers"),
                ("cells per stage", "cells_per_stage"), ("channels", "channels"), ("image size", "image_size"),
                ("augment order", "augment_order"), ("cutout", "cutout"), ("aux weight", "aux_weight"),
                ("drop path", "drop_path"), ("precision", "precision"), ("eval split", "eval_split")]

ACC = "0.00"     # accuracies (%)
CORR = "0.000"   # τ, ρ, r
BOLD = Font(bold=True)
WARN_FILL = PatternFill("solid", fgColor="FFF3CD")


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


def seconds_format(v) -> str:
    """Number format of a duration in seconds (the value stays seconds): more decimals for short ones."""
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "General"
    v = abs(v)
    if v == 0 or v >= 1000:
        return '#,##0 "s"'
    if v >= 10:
        return '0.0 "s"'
    if v >= 0.1:
        return '0.00 "s"'
    if v >= 0.001:
        return '0.000 "s"'
    return '0.00E+00 "s"'


def score_format(name: str | None) -> str:
    """Number format of an estimator's score: an angle in radians with 4 decimals, accuracies with 2."""
    return "0.0000" if name and name.startswith("angle") else ACC


def _fmt(cell, number_format: str) -> None:
    if isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool):
        cell.number_format = number_format


def _seconds_cells(cells) -> None:
    """One seconds format for a run of cells (a column or a row), from its shortest non-zero duration of at least
    1 ms; a shorter one (e.g. the angle over all archs) keeps a format of its own (scientific)."""
    cells = list(cells)
    values = [abs(c.value) for c in cells if isinstance(c.value, (int, float)) and not isinstance(c.value, bool)
              and math.isfinite(c.value) and c.value >= 1e-3]
    number_format = seconds_format(min(values)) if values else '0.000 "s"'
    for c in cells:
        short = isinstance(c.value, (int, float)) and 0 < abs(c.value) < 1e-3
        _fmt(c, seconds_format(c.value) if short else number_format)


def _setting_value(key: str, setting: dict):
    if key not in setting:
        return "—"
    v = setting[key]
    if v is None:
        return "off" if key == "grad_clip" else "—"
    return v


def _finish_sheet(ws, *, freeze: str = "A2", max_width: int = 90) -> None:
    """Bold header row, frozen panes, column widths from the content."""
    for c in ws[1]:
        c.font = BOLD
    ws.freeze_panes = freeze
    widths: dict[int, int] = {}
    for row in ws.iter_rows():
        for c in row:
            if c.value is None:
                continue
            if isinstance(c.value, float):
                n = len(f"{c.value:.4g}") + 3
            else:
                n = max(len(line) for line in str(c.value).split("\n")) + 1
            widths[c.column] = max(widths.get(c.column, 0), n)
    for col, n in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(max(n + 1, 8), max_width)



# ---------------------------------------------------------------------------------------------- workbook

def build_workbook(*, settings: dict[str, dict], estimates: list[dict], correlation: list[dict],
                   ground_truth_label: str, about: dict, found: list[dict] | None = None,
                   diverged: list[dict] | None = None, warnings: list[dict] | None = None,
                   bpe_search: dict | None = None) -> Workbook:
    """settings: proxy setting name -> setting dict; estimates: rows of estimates.csv (dicts; a diverged
    training's score NaN or None: an empty cell, left out of Mean/Std); found: the searches' picks with their
    ground truth (results/found.json's results); diverged: {"estimator", "arch", "epoch"} per diverged training
    (sheet `diverged`, which says "none" when there is none); warnings: find_warnings' rows (sheet `warnings`,
    "none" when there is none). The frontier sheet and the file: nasflow.analysis.report.write_workbook."""
    wb = Workbook()

    ws = wb.active
    ws.title = "settings"
    names = list(settings)
    ws.append(["setting", *names])
    keys = [k for _, k in SETTING_ROWS]
    extra = sorted({k for n in names for k in settings[n]} - set(keys))
    for label, key in [*SETTING_ROWS, *((k, k) for k in extra)]:
        if any(key in settings[n] for n in names):
            ws.append([label, *(_setting_value(key, settings[n]) for n in names)])
    ws.append(["arch", *([None] * len(names))])
    ws.cell(ws.max_row, 1).font = BOLD
    for row in estimates:
        ws.append([row["arch"], *(_cell(row[f"proxy_{n}"]) for n in names)])
        for c in ws[ws.max_row][1:]:
            _fmt(c, ACC)
    by_name = {c["estimator"]: c for c in correlation}
    scores = {n: np.array([r[f"proxy_{n}"] for r in estimates], float) for n in names}
    summary = [("Mean", ACC, [_finite_stat(scores[n], "mean") for n in names]),
               ("Std", ACC, [_finite_stat(scores[n], "std") for n in names]),
               ("Spearman", CORR, [_cell(by_name[f"proxy_{n}"]["spearman_rho"]) for n in names]),
               ("Kendall", CORR, [_cell(by_name[f"proxy_{n}"]["kendall_tau"]) for n in names]),
               ("seconds per arch", None, [_cell(by_name[f"proxy_{n}"]["seconds_per_arch"]) for n in names])]
    for label, number_format, values in summary:
        ws.append([label, *values])
        ws.cell(ws.max_row, 1).font = BOLD
        if number_format is None:
            _seconds_cells(ws[ws.max_row][1:])
        else:
            for c in ws[ws.max_row][1:]:
                _fmt(c, number_format)
    _finish_sheet(ws, freeze="B2")

    ws = wb.create_sheet("ground_truth")
    ws.append(["arch", f"accuracy ({ground_truth_label})"])
    for row in estimates:
        ws.append([row["arch"], _cell(row["ground_truth"])])
        _fmt(ws.cell(ws.max_row, 2), ACC)
    _finish_sheet(ws)

    ws = wb.create_sheet("correlation")
    columns = list(correlation[0]) if correlation else ["estimator"]
    ws.append(columns)
    formats = {"kendall_tau": CORR, "kendall_tau_low": CORR, "kendall_tau_high": CORR, "spearman_rho": CORR,
               "pearson_r": CORR, "top10_overlap": ACC, "n": "0"}
    for c in correlation:
        ws.append([_cell(c[k]) for k in columns])
        for k, cell in zip(columns, ws[ws.max_row]):
            if k in formats:
                _fmt(cell, formats[k])
    for i, k in enumerate(columns, 1):
        if "seconds" in k:
            _seconds_cells([row[0] for row in ws.iter_rows(min_row=2, min_col=i, max_col=i)])
    _finish_sheet(ws, freeze="B2")

    ws = wb.create_sheet("warnings")  # results not to be read as findings (module docstring: thresholds)
    ws.append(["warning", "about", "value", "threshold", "what it means"])
    for w in warnings or []:
        ws.append([w["kind"], w["subject"], _cell(w["value"]), w["threshold"], w["message"]])
        _fmt(ws.cell(ws.max_row, 3), {"chance_accuracy": ACC, "few_archs": "0"}.get(w["kind"], CORR))
        for c in ws[ws.max_row]:
            c.fill = WARN_FILL
    if not warnings:
        ws.append(["none"])
    _finish_sheet(ws, max_width=120)

    rlnas = [f for f in found or [] if f["method"] == "rlnas_evolution"]
    if rlnas:  # RLNAS Table 1: labels x indicator -> the found arch's ground truth
        ws = wb.create_sheet("rlnas")
        ws.append(["labels", "indicator", "found arch", f"ground truth ({ground_truth_label})", "indicator score",
                   "search seconds", "supernet training seconds"])
        for f in rlnas:
            ws.append([_cell(v) for v in (f["labels"], f["indicator"], f["arch"], f["ground_truth"],
                                          f["search_score"], f["search_seconds"], f["supernet_train_seconds"])])
            row = ws[ws.max_row]
            _fmt(row[3], ACC)
            _fmt(row[4], score_format(f["indicator"]))
        for i in (6, 7):
            _seconds_cells([row[0] for row in ws.iter_rows(min_row=2, min_col=i, max_col=i)])
        _finish_sheet(ws)

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
            score = _cell(f["search_score"])
            if score is None:  # never a blank without its reason
                if f.get("search_status") not in (None, "ok") or f.get("arch") is None:
                    score = "—, no pick (diverged)"
                elif not f.get("estimator") and not f.get("indicator"):
                    score = "—, weight-sharing"
                else:
                    score = "—"
            ws.append([_cell(v) for v in (f["search"], f["method"], how, f["arch"], score,
                                          f["ground_truth"], f["search_seconds"], status)])
            row = ws[ws.max_row]
            _fmt(row[4], score_format(f.get("estimator") or f.get("indicator")))
            _fmt(row[5], ACC)
            if isinstance(score, str):
                row[4].alignment = Alignment(horizontal="right")
        _seconds_cells([row[0] for row in ws.iter_rows(min_row=2, min_col=7, max_col=7)])
        _finish_sheet(ws)

    ws = wb.create_sheet("diverged")  # every training that ended on a non-finite loss: never a score
    ws.append(["estimator", "arch", "epoch"])
    for d in diverged or []:
        ws.append([d["estimator"], d["arch"], d.get("epoch")])
    if not diverged:
        ws.append(["none"])
    _finish_sheet(ws)

    ws = wb.create_sheet("about")
    ws.append(["what made this workbook"])
    for key, value in about.items():
        ws.append([key, str(value)])
    _finish_sheet(ws, max_width=120)
    if bpe_search:  # the budget search's sheets: add_bpe_search_sheets' keyword arguments
        add_bpe_search_sheets(wb, **bpe_search)
    return wb


# ---------------------------------------------------------------------------------------------- BPE setting search
# The BPE paper's search for the training budget itself (Minimum Importance Pruning): its sheets (`bpe_search`, laid
# out like the paper's SearchHyperparametersResults.xlsx, and `importance`) and plots. Inputs are the parsed rows of
# results/bpe_search/{settings.csv, accuracies.csv, importance.csv} and best.json (stages/bpe_search.py).

BPE_COLUMNS = ("setting", "round", "n", "kendall_tau", "spearman_rho", "seconds_per_arch", "gpu_hours_per_arch")
OBJECTIVE_LABELS = {"kendall_tau": "Kendall τ", "spearman_rho": "Spearman ρ"}
CHOSEN_FILL = PatternFill("solid", fgColor="D4EDDA")


def _hp_label(key: str) -> str:
    return dict((k, label) for label, k in SETTING_ROWS).get(key, key)


def _objective_label(objective: str) -> str:
    if objective not in OBJECTIVE_LABELS:
        raise ParamsError(f"objective {objective!r}: expected one of {', '.join(OBJECTIVE_LABELS)}")
    return OBJECTIVE_LABELS[objective]


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def searched_hyperparameters(settings_rows: list[dict]) -> list[str]:
    """The searched hyperparameters: every column of settings.csv but the name, round and results, in the
    settings sheet's row order (unknown ones after, sorted)."""
    keys = {k for row in settings_rows for k in row} - set(BPE_COLUMNS)
    known = [k for _, k in SETTING_ROWS]
    return [k for k in known if k in keys] + sorted(keys - set(known))


def _gpu_hours_cells(cells) -> None:
    """One GPU-hours format for a row, from its smallest non-zero value: scientific below 0.01 GPU-h (36 s)."""
    cells = list(cells)
    values = [abs(c.value) for c in cells if _finite(c.value) and c.value != 0]
    number_format = "0.000" if not values or min(values) >= 0.01 else "0.00E+00"
    for c in cells:
        _fmt(c, number_format)


def _hp_value(row: dict, key: str):
    v = row.get(key)
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else v


def _accuracy_table(settings_rows, accuracies) -> tuple[list[str], dict, dict]:
    """(archs in order of first appearance, (arch, setting) -> accuracy, arch -> ground truth)."""
    names = {row["setting"] for row in settings_rows}
    archs, acc, truth = [], {}, {}
    for a in accuracies:
        if a["setting"] not in names:
            raise CheckpointError(f"bpe_search accuracies: setting {a['setting']!r} is not in settings.csv")
        if a["arch"] not in truth:
            archs.append(a["arch"])
            truth[a["arch"]] = math.nan
        acc[(a["arch"], a["setting"])] = _number(a["accuracy"]) if a["accuracy"] is not None else math.nan
        if not _finite(truth[a["arch"]]) and _finite(a.get("ground_truth")):
            truth[a["arch"]] = float(a["ground_truth"])
    return archs, acc, truth


def _summary_row(ws, label: str, values, number_format: str | None = None) -> None:
    ws.append([label, *(_cell(v) for v in values)])
    ws.cell(ws.max_row, 1).font = BOLD
    if number_format is not None:
        for c in ws[ws.max_row][1:]:
            _fmt(c, number_format)


def add_bpe_search_sheets(wb, *, settings_rows: list[dict], accuracies: list[dict], importance: list[dict],
                          best: dict, named: dict[str, dict] | None = None,
                          ground_truth_label: str | None = None) -> None:
    """Sheets `bpe_search` and `importance` of the BPE setting search, added to `wb` (an openpyxl Workbook).

    bpe_search: one column per sampled setting (the chosen one shaded, "(chosen)" in its header), rows round and the
    searched hyperparameters, then one row per arch with its accuracy under each setting (ground truth in the last
    column), then Mean and Std (sample std, ddof 1, over the finite accuracies), n, Kendall τ, Spearman ρ (the
    objective marked) and the mean time per arch in seconds and GPU hours; below, the chosen setting in full beside
    the named settings (`named`: name -> setting dict). importance: importance.csv's rows sorted per round by
    importance, then which hyperparameter each round pruned (its least important, every round but the last)."""
    names = [row["setting"] for row in settings_rows]
    if len(set(names)) != len(names):
        raise CheckpointError("bpe_search settings: a setting name appears twice in settings.csv")
    chosen = best.get("setting")
    if chosen not in names:
        raise CheckpointError(f"bpe_search best.json: setting {chosen!r} is not in settings.csv")
    objective = best.get("objective", "spearman_rho")
    _objective_label(objective)
    hps = searched_hyperparameters(settings_rows)
    archs, acc, truth = _accuracy_table(settings_rows, accuracies)

    ws = wb.create_sheet("bpe_search")
    truth_header = f"ground truth ({ground_truth_label})" if ground_truth_label else "ground truth"
    ws.append(["setting", *(f"{n} (chosen)" if n == chosen else n for n in names), truth_header])
    ws.append(["round", *(_hp_value(row, "round") for row in settings_rows)])
    for c in ws[ws.max_row][1:]:
        _fmt(c, "0")
    for hp in hps:
        ws.append([_hp_label(hp), *(_hp_value(row, hp) for row in settings_rows)])
    ws.append(["arch"])
    ws.cell(ws.max_row, 1).font = BOLD
    for arch in archs:
        ws.append([arch, *(_cell(acc.get((arch, n), math.nan)) for n in names), _cell(truth[arch])])
        for c in ws[ws.max_row][1:]:
            _fmt(c, ACC)
    columns = [np.array([acc.get((a, n), math.nan) for a in archs], float) for n in names]
    columns.append(np.array([truth[a] for a in archs], float))
    _summary_row(ws, "Mean", [_finite_stat(col, "mean") for col in columns], ACC)
    _summary_row(ws, "Std", [_finite_stat(col, "std") for col in columns], ACC)
    _summary_row(ws, "n (archs correlated)", [row.get("n") for row in settings_rows], "0")
    for key in ("kendall_tau", "spearman_rho"):
        label = OBJECTIVE_LABELS[key] + (" (objective)" if key == objective else "")
        _summary_row(ws, label, [row.get(key) for row in settings_rows], CORR)
    _summary_row(ws, "Mean time (s per arch)", [row.get("seconds_per_arch") for row in settings_rows])
    _seconds_cells(ws[ws.max_row][1:])
    _summary_row(ws, "Mean time (GPU-h per arch)", [row.get("gpu_hours_per_arch") for row in settings_rows])
    _gpu_hours_cells(ws[ws.max_row][1:])
    col = names.index(chosen) + 2
    for r in range(1, ws.max_row + 1):
        ws.cell(r, col).fill = CHOSEN_FILL
    _named_block(ws, best, named or {}, settings_rows, hps)
    _finish_sheet(ws, freeze="B2")
    # after the widths: a long line spills over the empty cells to its right instead of widening column A
    ws.append([])
    ws.append([_chosen_line(best, objective)])

    _add_importance_sheet(wb, importance)


def _named_block(ws, best: dict, named: dict[str, dict], settings_rows: list[dict], hps: list[str]) -> None:
    """The chosen setting in full beside the named ones (for reference), and which sampled setting has a named
    one's searched values."""
    full = best.get("full") or {}
    columns = {f"{best['setting']} (chosen)": full, **named}
    if not any(columns.values()):
        return
    ws.append([])
    ws.append(["setting (complete)", *columns])
    for c in ws[ws.max_row]:
        c.font = BOLD
    keys = [k for _, k in SETTING_ROWS]
    extra = sorted({k for s in columns.values() for k in s} - set(keys))
    for label, key in [*SETTING_ROWS, *((k, k) for k in extra)]:
        if any(key in s for s in columns.values()):
            ws.append([label, *(_setting_value(key, s) for s in columns.values())])
    same = []
    for s in columns.values():
        match = [row["setting"] for row in settings_rows if hps and all(row.get(hp) == s.get(hp) for hp in hps)]
        same.append(", ".join(match) or "—")
    ws.append(["sampled setting", *same])  # the sampled setting with its searched values


def _chosen_line(best: dict, objective: str) -> str:
    value, sec, gpu_h = best.get(objective), best.get("seconds_per_arch"), best.get("gpu_hours_per_arch")
    value_text = f"{value:.3f}" if _finite(value) else "—"
    parts = [f"chosen: {best['setting']} (round {best.get('round', '—')}), "
             f"{_objective_label(objective)} {value_text}"]
    if _finite(sec):
        parts.append(f"{sec:.3g} s" + (f" ({gpu_h:.3g} GPU-h)" if _finite(gpu_h) else "") + " per arch")
    budget = best.get("budget_seconds_per_arch")
    if _finite(budget):
        parts.append(f"the best within the budget of {budget:g} s per arch")
    return "; ".join(parts)


def _importance_key(row: dict):
    v = row.get("importance")
    return (row["round"], -v if _finite(v) else math.inf, str(row["hyperparameter"]))


def pruned_per_round(importance_rows: list[dict]) -> dict[int, str | None]:
    """round -> the hyperparameter it pruned: its least important (finite importance), for every round but the
    last (whose pruning no round follows); None where no importance is finite."""
    rounds = sorted({row["round"] for row in importance_rows})
    out = {}
    if any("pruned" in row for row in importance_rows):  # importance.csv says what each round pruned
        for r in rounds:
            mine = [row for row in importance_rows if row["round"] == r and str(row.get("pruned")) == "yes"]
            out[r] = mine[0]["hyperparameter"] if mine else None
        return out
    for r in rounds[:-1]:
        finite = [row for row in importance_rows if row["round"] == r and _finite(row.get("importance"))]
        out[r] = min(finite, key=lambda row: (row["importance"], str(row["hyperparameter"])))["hyperparameter"] \
            if finite else None
    return out


def _add_importance_sheet(wb, importance_rows: list[dict]) -> None:
    ws = wb.create_sheet("importance")
    ws.append(["round", "hyperparameter", "importance", "std"])
    for row in sorted(importance_rows, key=_importance_key):
        ws.append([row["round"], row["hyperparameter"], _cell(row.get("importance")),
                   _cell(row.get("importance_std"))])
        cells = ws[ws.max_row]
        _fmt(cells[0], "0")
        _fmt(cells[2], CORR)
        _fmt(cells[3], CORR)
    _finish_sheet(ws)
    ws.append([])  # after the widths: the lines spill over the empty cells to their right
    pruned = pruned_per_round(importance_rows)
    for r, hp in pruned.items():
        ws.append([f"round {r}: pruned {hp} (the least important; fixed at its cheapest value from round {r + 1} on)"
                   if hp is not None else f"round {r}: no finite importance, the pruned hyperparameter is unknown"])
    if importance_rows and not pruned:
        ws.append(["one round: nothing pruned"])
    if not importance_rows:
        ws.append(["none"])
