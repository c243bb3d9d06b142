"""The study's report: the xlsx workbook (the BPE paper's Search_Hyperparameters_Results.xlsx layout plus the
ground truth and correlation sheets), plots, and the DVC metrics file.

Warnings (sheet `warnings`, and a yellow box on the plot concerned) flag results a researcher must not read as
findings; thresholds:
- `alpha_static`: a differentiable search whose final softmax(α) stays within ALPHA_MIN_MOVE (0.05) of uniform
  (1/#ops) on every edge: the architecture weights have barely moved, the derived arch is close to a coin toss;
- `chance_accuracy`: a supernet accuracy (RLNAS `supernet_acc_*` over the sampled archs, or a differentiable
  search's per-epoch `valid_acc`) whose best value stays below chance (100/#classes) + CHANCE_MARGIN (5) points;
- `tau_includes_zero`: an estimator whose 95% bootstrap interval of Kendall τ contains 0 (no evidence of any
  rank correlation);
- `few_archs`: an estimator correlated over fewer than MIN_ARCHS (10) archs: τ's interval is wide."""
from __future__ import annotations

import math
import textwrap

import numpy as np
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

ALPHA_MIN_MOVE = 0.05   # max |softmax(α) - 1/#ops| below this: α barely moved
CHANCE_MARGIN = 5.0     # percentage points above chance (100/#classes) still read as chance level
MIN_ARCHS = 10          # fewer archs than this: τ's interval is too wide to read

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


# ---------------------------------------------------------------------------------------------- warnings

def _warning(kind, subject, message, value=None, threshold=None) -> dict:
    return {"kind": kind, "subject": subject, "message": message, "value": value, "threshold": threshold}


def alpha_movement(search: dict) -> float | None:
    """max |softmax(α) - 1/#ops| over the edges (and cell types) at the last epoch with α; None without α."""
    last = next((h["alphas"] for h in reversed(search.get("history") or []) if h.get("alphas")), None)
    if last is None:
        last = search.get("alphas")
    if not last:
        return None
    try:
        probs = np.asarray(last, float)
    except (TypeError, ValueError):  # ragged or not numbers: plot_alphas reports the file
        return None
    if probs.ndim < 2 or not np.isfinite(probs).all():
        return None
    return float(np.abs(probs - 1.0 / probs.shape[-1]).max())


def _number(v) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def find_warnings(*, correlation: list[dict], estimates: list[dict] | None = None,
                  differentiable: dict[str, dict] | None = None, num_classes: int | None = None) -> list[dict]:
    """Every result that must not be read as a finding (module docstring: kinds and thresholds), as
    {"kind", "subject", "message", "value", "threshold"}. differentiable: method -> its search document (history
    with `alphas` and `valid_acc`); num_classes None: no chance-level check."""
    out = []
    chance = 100.0 / num_classes if num_classes else None
    for method, doc in (differentiable or {}).items():
        move = alpha_movement(doc)
        if move is not None and move < ALPHA_MIN_MOVE:
            epochs = sum(1 for h in doc.get("history") or [] if h.get("alphas"))
            out.append(_warning(
                "alpha_static", method,
                f"{method}: softmax(α) barely moved (max |α − uniform| {move:.3f} < {ALPHA_MIN_MOVE} after "
                f"{epochs} epochs): the derived arch is close to arbitrary, not a search result", move,
                f"< {ALPHA_MIN_MOVE}"))
        out += _chance_warning(method, [h["valid_acc"] for h in doc.get("history") or []
                                        if isinstance(h.get("valid_acc"), (int, float))], chance, num_classes,
                               "the supernet's validation accuracy stays at chance", "its ranking of archs is noise")
    columns = list(estimates[0]) if estimates else []
    for col in (c for c in columns if c.startswith("supernet_acc") and not c.endswith(("_seconds", "_status"))):
        out += _chance_warning(col, [_number(r[col]) for r in estimates], chance, num_classes,
                               "every arch's supernet accuracy is at chance", "its τ measures noise")
    for c in correlation:
        name, n = c["estimator"], c.get("n")
        lo, hi = c.get("kendall_tau_low"), c.get("kendall_tau_high")
        if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo) and \
                math.isfinite(hi) and lo <= 0 <= hi:
            out.append(_warning("tau_includes_zero", name,
                                f"{name}: τ's 95% interval [{lo:.2f}, {hi:.2f}] includes 0: no evidence of a rank "
                                f"correlation", _number(c.get("kendall_tau")), "low ≤ 0 ≤ high"))
        if isinstance(n, (int, float)) and math.isfinite(n) and 1 < n < MIN_ARCHS:
            out.append(_warning("few_archs", name,
                                f"{name}: only {int(n)} archs (< {MIN_ARCHS}): τ's interval is wide", int(n),
                                f"< {MIN_ARCHS}"))
    return out


def _chance_warning(subject: str, accuracies, chance: float | None, num_classes, what: str, so: str) -> list[dict]:
    """[a chance_accuracy warning] when the best finite accuracy stays below chance + CHANCE_MARGIN, else []."""
    accs = np.array(accuracies, float)
    accs = accs[np.isfinite(accs)]
    if chance is None or not len(accs) or accs.max() >= chance + CHANCE_MARGIN:
        return []
    return [_warning("chance_accuracy", subject,
                     f"{subject}: {what} (best {accs.max():.1f}% vs chance {chance:.1f}% for {num_classes} classes): "
                     f"{so}", float(accs.max()), f"< {chance:.1f} + {CHANCE_MARGIN:g}")]


def warning_lines(warnings: list[dict], *subjects: str, kinds: tuple[str, ...] = ()) -> list[str]:
    """The messages of the warnings about `subjects` (all when none given), optionally only of `kinds`."""
    return [w["message"] for w in warnings
            if (not subjects or w["subject"] in subjects) and (not kinds or w["kind"] in kinds)]


def summary_lines(warnings: list[dict]) -> list[str]:
    """The τ warnings of every estimator in two lines (for the τ-vs-cost plot), plus the chance-level ones."""
    out = []
    zero = [w["subject"] for w in warnings if w["kind"] == "tau_includes_zero"]
    if zero:
        out.append(f"τ's 95% interval includes 0 for {', '.join(zero)}: no evidence of a rank correlation")
    few = [f"{w['subject']} ({w['value']})" for w in warnings if w["kind"] == "few_archs"]
    if few:
        out.append(f"fewer than {MIN_ARCHS} archs for {', '.join(few)}: τ's interval is wide")
    chance = [w["subject"] for w in warnings if w["kind"] == "chance_accuracy" and w["subject"].startswith("supernet_acc")]
    if chance:
        out.append(f"supernet accuracy at chance for {', '.join(chance)}: its τ measures noise")
    return out


# ---------------------------------------------------------------------------------------------- workbook

def write_workbook(path, *, settings: dict[str, dict], estimates: list[dict], correlation: list[dict],
                   ground_truth_label: str, about: dict, found: list[dict] | None = None,
                   diverged: list[dict] | None = None, warnings: list[dict] | None = None) -> None:
    """settings: proxy setting name -> setting dict; estimates: rows of estimates.csv (dicts; a diverged
    training's score NaN or None: an empty cell, left out of Mean/Std); found: the searches' picks with their
    ground truth (results/found.json's results); diverged: {"estimator", "arch", "epoch"} per diverged training
    (sheet `diverged`, which says "none" when there is none); warnings: find_warnings' rows (sheet `warnings`,
    "none" when there is none)."""
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
    wb.save(path)


# ---------------------------------------------------------------------------------------------- plots

def _figure(*args, **kwargs):
    """A matplotlib Figure on the file-only Agg canvas (stages run without a display; no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(*args, **kwargs)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path, dpi=120) -> None:
    if path is not None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight")


def _warning_box(fig, lines: list[str], y: float = 0.0, width: int = 90):
    """The warnings as a visible yellow box under the axes (the saved image grows to hold it)."""
    if not lines:
        return None
    text = "\n".join(textwrap.fill(f"⚠ {line}", width, subsequent_indent="   ") for line in lines)
    return fig.text(0.01, y, text, ha="left", va="top", fontsize=7, color="#7a4f00", gid="warning",
                    bbox={"boxstyle": "round,pad=0.4", "fc": "#fff3cd", "ec": "#d39e00"})


def score_label(name: str) -> str:
    """An estimator's score with its unit, for an axis."""
    if name.startswith("proxy_") or name in ("table", "ground_truth"):
        return f"{name}: accuracy (%)"
    if name.startswith("angle"):
        return "angle (rad)" if name == "angle" else f"{name}: angle (rad)"
    if name.startswith("supernet_acc"):
        return "supernet accuracy (%)" if name == "supernet_acc" else f"{name}: supernet accuracy (%)"
    return name


def _interval(row: dict) -> str:
    lo, hi = row.get("kendall_tau_low", math.nan), row.get("kendall_tau_high", math.nan)
    if not (isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f" [{lo:.3f}, {hi:.3f}]"


def plot_estimate_vs_truth(path, name: str, estimate, truth, row: dict, warnings: list[str] = (),
                           chance: float | None = None):
    """One point per arch: the estimator's score against the ground truth; the title gives n, Kendall τ with
    its 95% interval and Spearman ρ; chance: a supernet accuracy's chance level (a dashed line)."""
    estimate, truth = np.asarray(estimate, float), np.asarray(truth, float)
    keep = np.isfinite(estimate) & np.isfinite(truth)  # a diverged training has no point
    fig = _figure(figsize=(5, 4.3))
    ax = fig.subplots()
    ax.scatter(truth[keep], estimate[keep], s=22, alpha=0.85)
    if chance is not None and name.startswith("supernet_acc"):
        ax.axhline(chance, ls="--", lw=1, color="grey", label=f"chance ({chance:.1f}%)")
        ax.legend(fontsize=7, loc="best")
    ax.set_xlabel("ground-truth accuracy (%)")
    ax.set_ylabel(score_label(name))
    tau, rho = row.get("kendall_tau", math.nan), row.get("spearman_rho", math.nan)
    ax.set_title(f"{name} vs ground truth (n = {int(keep.sum())} archs)\n"
                 f"Kendall τ {tau:.3f}{_interval(row)} (95%), Spearman ρ {rho:.3f}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _warning_box(fig, list(warnings), y=-0.01, width=75)
    _save(fig, path)
    return fig


def duration_unit(seconds: float) -> tuple[float, str]:
    """(factor, unit) that shows a duration of about `seconds` in its natural unit: µs, ms, s, min or h."""
    v = abs(seconds)
    for limit, scale, unit in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (120.0, 1.0, "s"), (7200.0, 1 / 60, "min")):
        if v < limit:
            return scale, unit
    return 1 / 3600, "h"


def _family(name: str) -> str:
    for prefix in ("proxy", "angle", "supernet_acc"):
        if name.startswith(prefix):
            return prefix
    return "other"


_MARKERS = {"proxy": "o", "angle": "^", "supernet_acc": "s", "other": "D"}


def _decade_limits(values) -> tuple[float, float]:
    """Log-axis limits on whole decades around the values (so at least two decades are labelled)."""
    lo, hi = math.log10(min(values)), math.log10(max(values))
    a, b = math.floor(lo - 0.05), math.ceil(hi + 0.05)
    return 10.0 ** a, 10.0 ** max(b, a + 1)


def _log_seconds_axis(axis, lo: float, hi: float) -> None:
    """Decades labelled 10^k; the 2 and 5 minor ticks labelled too when the axis spans at most 3 decades."""
    from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator

    axis.set_major_locator(LogLocator(base=10, numticks=30))
    axis.set_major_formatter(LogFormatterSciNotation(base=10))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=30))
    few = math.log10(hi / lo) <= 3

    def minor(x, _pos):
        m = x / 10 ** math.floor(math.log10(x) + 1e-9)
        return f"{x:g}" if few and round(m) in (2, 5) and abs(m - round(m)) < 1e-6 else ""

    axis.set_minor_formatter(FuncFormatter(minor))
    axis.set_tick_params(which="minor", labelsize=7)


def _place_labels(ax, xs, ys, labels, fontsize=7.5, colors=None):
    """Annotate each point with its label, trying offsets around it until the label overlaps neither an
    earlier label nor a point (a small stand-in for adjustText); the last try when all collide."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    points = ax.transData.transform(np.column_stack([xs, ys])) if len(xs) else np.zeros((0, 2))
    placed, texts = [], []
    offsets = [(7, 4, "left"), (7, -11, "left"), (-7, 4, "right"), (-7, -11, "right"), (7, 15, "left"),
               (7, -22, "left"), (-7, 15, "right"), (-7, -22, "right"), (7, 27, "left"), (7, -34, "left"),
               (-7, 27, "right"), (-7, -34, "right")]
    for k, (x, y, label) in enumerate(zip(xs, ys, labels)):
        for dx, dy, ha in offsets:
            t = ax.annotate(label, (x, y), xytext=(dx, dy), textcoords="offset points", ha=ha, fontsize=fontsize,
                            color=None if colors is None else colors[k],
                            arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"} if abs(dy) > 12 else None)
            box = t.get_window_extent(renderer).expanded(1.05, 1.15)
            axes_box = ax.get_window_extent(renderer)
            inside = axes_box.x0 <= box.x0 and box.x1 <= axes_box.x1 and axes_box.y0 <= box.y0 and box.y1 <= axes_box.y1
            hits_point = any(box.contains(px, py) for j, (px, py) in enumerate(points) if j != k)
            if inside and not hits_point and not any(box.overlaps(b) for b in placed):
                break
            if (dx, dy, ha) != offsets[-1]:
                t.remove()
        placed.append(box)
        texts.append(t)
    return texts


def plot_correlation_vs_cost(path, correlation: list[dict], warnings: list[str] = ()):
    """Kendall τ (95% bootstrap interval) of every estimator against its cost per arch (log scale, seconds),
    each point labelled with its estimator; n archs in the title (per estimator when they differ)."""
    rows = [c for c in correlation if math.isfinite(c["kendall_tau"]) and math.isfinite(c["seconds_per_arch"])
            and c["seconds_per_arch"] > 0]  # no finite pairs (e.g. every arch diverged): nothing to plot
    fig = _figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    ns = {int(c["n"]) for c in rows if isinstance(c.get("n"), (int, float)) and math.isfinite(c["n"])}
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for c, color in zip(rows, colors):
        tau, lo, hi = c["kendall_tau"], c["kendall_tau_low"], c["kendall_tau_high"]
        yerr = None if math.isnan(lo) or math.isnan(hi) else [[tau - lo], [hi - tau]]
        label = c["estimator"] if len(ns) <= 1 else f"{c['estimator']} (n = {int(c['n'])})"
        ax.errorbar(c["seconds_per_arch"], tau, yerr=yerr, fmt=_MARKERS[_family(c["estimator"])], capsize=3,
                    color=color, label=label, ms=6)
    ax.axhline(0, color="grey", lw=0.8, ls=":")
    ax.set_xscale("log")
    if rows:
        lo, hi = _decade_limits([c["seconds_per_arch"] for c in rows])
        ax.set_xlim(lo, hi)
        _log_seconds_axis(ax.xaxis, lo, hi)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("cost per arch (seconds, log scale)")
    ax.set_ylabel("Kendall τ vs ground truth (95% bootstrap)")
    n_text = f"n = {ns.pop()} archs" if len(ns) == 1 else "n per estimator in the legend"
    ax.set_title(f"Rank correlation against cost ({n_text})", fontsize=9)
    ax.grid(alpha=0.3)
    ax.grid(alpha=0.12, which="minor")
    if rows:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  title="estimator (marker: family)", title_fontsize=7.5)
    fig.tight_layout()
    _place_labels(ax, [c["seconds_per_arch"] for c in rows], [c["kendall_tau"] for c in rows],
                  [c["estimator"] for c in rows], colors=colors)
    _warning_box(fig, list(warnings), y=-0.01, width=110)
    _save(fig, path)
    return fig


def plot_best_so_far(path, searches: list[dict], found: list[dict] | None = None, warnings: list[str] = ()):
    """Best score found so far per strategy, one column per estimator: against the evaluations (top row) and
    against the estimator cost spent (bottom row); each search's pick is starred with its ground truth
    (found: results/found.json's rows, matched by search name)."""
    from matplotlib.ticker import MaxNLocator

    picks = {f["search"]: f for f in found or []}
    estimators = sorted({s["estimator"] for s in searches})
    methods = sorted({s["method"] for s in searches})
    color = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    # identical paths stay visible: the first drawn is the widest
    style = {m: ("-", "--", ":", "-.")[i % 4] for i, m in enumerate(methods)}
    width = {m: 2.8 - 1.8 * i / max(len(methods) - 1, 1) for i, m in enumerate(methods)}
    k = max(len(estimators), 1)
    fig = _figure(figsize=(4.6 * k, 7.2))
    axes = fig.subplots(2, k, squeeze=False, gridspec_kw={"hspace": 0.75, "wspace": 0.32})
    fig.subplots_adjust(left=0.12 / k ** 0.5, right=0.98, top=0.9, bottom=0.08)
    for col, est in enumerate(estimators):
        top, bottom = axes[0][col], axes[1][col]
        notes = []
        spent = [h["elapsed"] for s in searches if s["estimator"] == est for h in s["history"]]
        scale, unit = duration_unit(max(spent) if spent else 1.0)  # the cost axis in its natural unit
        for s in sorted((s for s in searches if s["estimator"] == est), key=lambda s: methods.index(s["method"])):
            elapsed = np.array([h["elapsed"] for h in s["history"]], float) * scale
            # a diverged evaluation's score is NaN (or null): it never raises the best so far
            scores = np.array([np.nan if h["score"] is None else h["score"] for h in s["history"]], float)
            best = np.fmax.accumulate(np.where(np.isfinite(scores), scores, np.nan)) if len(scores) else scores
            evals = np.arange(1, len(scores) + 1)
            c = color[s["method"]]
            ls, lw = style[s["method"]], width[s["method"]]
            top.step(evals, best, where="post", color=c, ls=ls, lw=lw, label=s["method"])
            top.plot(evals, scores, ".", color=c, alpha=0.35, ms=4)
            bottom.step(elapsed, best, where="post", color=c, ls=ls, lw=lw, label=s["method"])
            f = picks.get(s.get("name", f"{s['method']}_{est}"))
            if len(scores) and np.isfinite(scores).any():
                i = int(np.nanargmax(scores))
                gt = None if f is None else f.get("ground_truth")
                text = "pick → ground truth " + (f"{gt:.2f}%" if isinstance(gt, (int, float)) and math.isfinite(gt)
                                               else "—")
                for ax, x in ((top, evals[i]), (bottom, elapsed[i])):
                    ax.plot([x], [scores[i]], marker="*", ms=11, color=c, mec="black", mew=0.5, zorder=5)
                notes.append((f"{s['method']} {text} (evaluation {i + 1})", c))
            else:
                notes.append((f"{s['method']}: no pick (diverged)", c))
        for j, (note, c) in enumerate(notes):  # below the top panel, clear of the lines
            top.annotate(note, (0, 0), xycoords="axes fraction", xytext=(0, -38 - 10 * j), textcoords="offset points",
                         fontsize=7.5, color=c, va="top", gid="pick")
        top.set_title(f"estimator {est}", fontsize=9)
        top.set_xlabel("evaluations")
        top.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=8))
        bottom.set_xlabel(f"estimator cost spent ({unit})")
        bottom.xaxis.set_major_locator(MaxNLocator(nbins=6))
        for ax in (top, bottom):
            ax.set_ylabel(f"best so far — {score_label(est)}", fontsize=8)
            ax.grid(alpha=0.3)
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=color[m], ls=style[m], lw=width[m], label=m) for m in methods]
    handles.append(Line2D([], [], ls="", marker="*", ms=10, color="grey", mec="black",
                          label="pick (ground truth in text)"))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.99, 0.9), fontsize=8, title="strategy")
    fig.suptitle("Multi-trial searches: best score so far (dots: each evaluation)", fontsize=10)
    _warning_box(fig, list(warnings), y=0.02, width=110)
    _save(fig, path)
    return fig


def plot_alphas(path, search: dict, ops: tuple[str, ...], edge_labels: list[str],
                cell_names: tuple[str, ...] = (), warnings: list[str] = ()):
    """Softmax(α) per edge over the epochs of one differentiable search: one panel per edge, one line per op
    (the dotted line: uniform, 1/#ops); one row per cell type when the α are per cell type (DARTS: normal,
    reduce). None when the search has no α (RSPS, SETN's selection only)."""
    epochs = [h for h in search["history"] if h.get("alphas")]
    if not epochs:
        return None
    probs = np.array([h["alphas"] for h in epochs])  # epochs x [cells x] edges x ops
    if probs.ndim == 3:
        probs = probs[:, None]
    n_rows, n_edges = probs.shape[1], probs.shape[2]
    ncols = min(n_edges, 7)
    grid_rows = n_rows * math.ceil(n_edges / ncols)
    fig = _figure(figsize=(2.3 * ncols + 1.8, 2.3 * grid_rows + 0.6))
    axes = fig.subplots(grid_rows, ncols, sharey=True, squeeze=False)
    x = np.arange(1, len(epochs) + 1)
    per_row = math.ceil(n_edges / ncols)
    for r in range(n_rows):
        for e in range(per_row * ncols):
            ax = axes[r * per_row + e // ncols][e % ncols]
            if e >= n_edges:
                ax.set_visible(False)
                continue
            for o, op in enumerate(ops):
                ax.plot(x, probs[:, r, e, o], label=op, marker="." if len(x) < 10 else None)
            ax.axhline(1.0 / len(ops), color="grey", ls=":", lw=1)
            cell = f"{cell_names[r]} " if r < len(cell_names) else ""
            ax.set_title(f"{cell}edge {edge_labels[e]}", fontsize=8)
            ax.set_xlabel("epoch", fontsize=8)
            ax.set_xticks(x if len(x) <= 8 else x[:: math.ceil(len(x) / 8)])
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        for row in range(per_row):
            axes[r * per_row + row][0].set_ylabel("softmax(α)", fontsize=8)
    move = alpha_movement(search)
    moved = "" if move is None else f"; max |softmax(α) − 1/{len(ops)}| at the end: {move:.3f}"
    fig.suptitle(f"{search['name']}: derived {search['best']}{moved}", fontsize=8)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.92), fontsize=7, title="op",
               title_fontsize=7)
    fig.tight_layout()
    _warning_box(fig, list(warnings), y=-0.01, width=130)
    _save(fig, path, dpi=110)
    return fig
