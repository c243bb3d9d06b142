"""The study's plots: each estimator against the ground truth, τ against cost, the searches' best so far, softmax(α)
per edge, and the budget search's figures; labels placed so that they never overlap, a colour per family and a
marker per estimator. The frontier plot is nasflow.analysis.frontier's (it builds on these helpers)."""

from __future__ import annotations

import math
import textwrap
from collections import Counter

import numpy as np

from nasflow.analysis.result_warnings import _number, alpha_movement
from nasflow.analysis.workbook import _finite, _hp_label, _importance_key, _objective_label, pruned_per_round
from nasflow.errors import ParamsError

# family -> (colour, marker): fixed, so a family looks the same in every plot of the study
FAMILY_STYLE = {
    "budgeted training": ("tab:blue", "o"),
    "learning curve": ("tab:orange", "s"),
    "zero-cost": ("tab:green", "^"),
    "supernet": ("tab:red", "D"),
    "differentiable": ("tab:purple", "v"),
    "table": ("tab:gray", "*"),
    "model-based": ("tab:olive", "X"),
    "ensemble": ("tab:brown", "P"),
}

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


def label_boxes(texts, renderer=None) -> list:
    """Each label's text box in display space (an annotation's own extent would include its leader line)."""
    from matplotlib.text import Text

    if renderer is None and texts:
        canvas = texts[0].figure.canvas
        canvas.draw()  # places annotations and measures at the figure's own dpi (a savefig may have used another)
        renderer = canvas.get_renderer()
    return [Text.get_window_extent(t, renderer) for t in texts]


def label_overlaps(texts, renderer=None) -> list[tuple[int, int]]:
    """The pairs of labels whose boxes intersect (in display space)."""
    import itertools

    boxes = label_boxes(texts, renderer)
    return [(i, j) for i, j in itertools.combinations(range(len(boxes)), 2) if boxes[i].overlaps(boxes[j])]


def _label_column(ax, texts, xs, ys) -> None:
    """Leader-line layout: a strip added at the right of the axes holds the labels in one column, in the order of
    their points' heights, each as close to its point's height as the others allow and joined to it by a line."""
    renderer = ax.figure.canvas.get_renderer()
    boxes = label_boxes(texts, renderer)
    widths, height = [b.width for b in boxes], max(b.height for b in boxes) * 1.15
    box = ax.get_window_extent(renderer)
    # widen the x axis (log or linear alike, in axis units) so the data keeps 1 - share of its width
    share = min(0.6, (max(widths) + 14) / box.width)
    transform = ax.xaxis.get_transform()
    data_end = ax.get_xlim()[1]
    lo, hi = transform.transform(ax.get_xlim())
    ax.set_xlim(ax.get_xlim()[0], transform.inverted().transform(lo + (hi - lo) / (1 - share)))
    from matplotlib.ticker import FuncFormatter

    for set_formatter, formatter in ((ax.xaxis.set_major_formatter, ax.xaxis.get_major_formatter()),
                                     (ax.xaxis.set_minor_formatter, ax.xaxis.get_minor_formatter())):
        # no tick labels under the labels' strip: the axis' values end where the data's did
        set_formatter(FuncFormatter(lambda x, pos, f=formatter: "" if x > data_end * (1 + 1e-9) else f(x, pos)))
    strip_x = box.x1 - share * box.width + 8
    points = ax.transData.transform(np.column_stack([xs, ys]))
    order = np.argsort(points[:, 1])
    # 1-D placement: each label at its point's height, pushed up past the one below, then the column shifted down
    # as a whole when it leaves the axes at the top (fits while len(texts) * height <= the axes' height)
    slots = []
    for k in order:
        slots.append(max(points[k, 1], slots[-1] + height if slots else box.y0 + height / 2))
    overflow = slots[-1] - (box.y1 - height / 2)
    if overflow > 0:
        slots = [max(y - overflow, box.y0 + height / 2 + i * height) for i, y in enumerate(slots)]
    to_axes = ax.transAxes.inverted()
    for k, y in zip(order, slots):
        t = texts[k]
        t.remove()
        texts[k] = ax.annotate(t.get_text(), (xs[k], ys[k]), xytext=to_axes.transform((strip_x, y)),
                               textcoords="axes fraction", ha="left", va="center", fontsize=t.get_fontsize(),
                               color=t.get_color(), gid="label",
                               arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey", "shrinkA": 1, "shrinkB": 3})


COLUMN_FROM = 16  # labels in one panel from which the column is used at once: beyond it a scatter of moved labels
# among the points stops being readable even where no two overlap


def _place_labels(ax, xs, ys, labels, fontsize=7.5, colors=None):
    """Label each point: adjustText moves the labels apart (a grey leader line joins a moved label to its point);
    where it leaves two labels overlapping (a crowded cluster), or where there are COLUMN_FROM labels or more, all go
    to a column beside the data with leader lines instead (_label_column), so no two labels ever overlap. Call after
    tight_layout (placement is in display space)."""
    from adjustText import adjust_text

    texts = [ax.text(x, y, label, fontsize=fontsize, color=None if colors is None else colors[k])
             for k, (x, y, label) in enumerate(zip(xs, ys, labels))]
    if not texts:
        return texts
    if len(texts) >= COLUMN_FROM:
        _label_column(ax, texts, xs, ys)
    else:
        _, arrows = adjust_text(texts, x=list(xs), y=list(ys), ax=ax, expand=(1.15, 1.35), iter_lim=1000,
                                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "grey"})
        if label_overlaps(texts):
            for arrow in arrows:
                arrow.remove()  # adjustText's leader lines (the column draws its own)
            _label_column(ax, texts, xs, ys)
    for t in texts:
        t.set_gid("label")  # for tests that look the labels up among the axes' texts
    return texts


# one marker per estimator within its family (the colour says the family), so no two estimators look alike
ESTIMATOR_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p", "d", "8")


def estimator_styles(names) -> dict[str, tuple[str, str]]:
    """name -> (colour, marker): the colour of the estimator's family (FAMILY_STYLE; grey when the
    registry does not know the name), the marker cycling within the family in the order given."""
    from nasflow.errors import NasflowError
    from nasflow.estimators.registry import family_of

    styles, used = {}, Counter()
    for name in names:
        try:
            family = family_of(name)
        except (NasflowError, KeyError, ValueError):  # a plugin estimator whose module is not imported here
            family = None
        colour = FAMILY_STYLE[family][0] if family in FAMILY_STYLE else "tab:gray"
        styles[name] = (colour, ESTIMATOR_MARKERS[used[family] % len(ESTIMATOR_MARKERS)])
        used[family] += 1
    return styles


def plot_correlation_vs_cost(path, correlation: list[dict], warnings: list[str] = ()):
    """Kendall τ (95% bootstrap interval) of every estimator against its cost per arch (log scale, seconds),
    each point labelled with its estimator; n archs in the title (per estimator when they differ)."""
    rows = [c for c in correlation if math.isfinite(c["kendall_tau"]) and math.isfinite(c["seconds_per_arch"])
            and c["seconds_per_arch"] > 0]  # no finite pairs (e.g. every arch diverged): nothing to plot
    fig = _figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    ns = {int(c["n"]) for c in rows if isinstance(c.get("n"), (int, float)) and math.isfinite(c["n"])}
    styles = estimator_styles([c["estimator"] for c in rows])
    colors = [styles[c["estimator"]][0] for c in rows]
    for c, color in zip(rows, colors):
        tau, lo, hi = c["kendall_tau"], c["kendall_tau_low"], c["kendall_tau_high"]
        yerr = None if math.isnan(lo) or math.isnan(hi) else [[tau - lo], [hi - tau]]
        label = c["estimator"] if len(ns) <= 1 else f"{c['estimator']} (n = {int(c['n'])})"
        ax.errorbar(c["seconds_per_arch"], tau, yerr=yerr, fmt=styles[c["estimator"]][1], capsize=3,
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
                  title="estimator (colour: family)", title_fontsize=7.5,
                  ncols=2 if len(rows) > 16 else 1)
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


_ROUND_MARKERS = ("o", "s", "^", "D", "v", "P", "h", "<", ">")


# ------------------------------------------------------------------------------------------ BPE search plots

def pareto_front(seconds, objective) -> list[int]:
    """Indices of the points no other point beats (lower or equal cost with a higher objective), by increasing
    cost; points with a non-finite value or a cost <= 0 are left out."""
    seconds, objective = np.asarray(seconds, float), np.asarray(objective, float)
    keep = [i for i in range(len(seconds)) if np.isfinite(seconds[i]) and seconds[i] > 0 and np.isfinite(objective[i])]
    front, best = [], -math.inf
    for i in sorted(keep, key=lambda i: (seconds[i], -objective[i])):
        if objective[i] > best:
            front.append(i)
            best = objective[i]
    return front


def _n_archs_text(settings_rows: list[dict]) -> str:
    ns = sorted({int(row["n"]) for row in settings_rows if _finite(row.get("n"))})
    if not ns:
        return "n unknown"
    return f"n = {ns[0]} archs" if len(ns) == 1 else f"n = {ns[0]}–{ns[-1]} archs"


def _settings_text(settings_rows: list[dict]) -> str:
    return f"{len(settings_rows)} setting" + ("" if len(settings_rows) == 1 else "s")


def plot_bpe_search_cost(path, settings_rows: list[dict], objective: str,
                         named_points: dict[str, tuple[float, float]] | None = None, best: dict | None = None):
    """The objective (Kendall τ or Spearman ρ vs ground truth) of every sampled setting against its seconds per
    arch (log scale, decades labelled), coloured and marked by round; the Pareto front (higher objective, lower
    cost) as a step line; named_points: name -> (seconds per arch, objective) of the named settings (BPE1, BPE2),
    marked and labelled; best: best.json (the chosen setting, starred and labelled). Settings without a finite
    objective or cost are counted in a warning box."""
    label = _objective_label(objective)
    named_points = dict(named_points or {})
    sec = np.array([_number(row.get("seconds_per_arch")) for row in settings_rows], float)
    obj = np.array([_number(row.get(objective)) for row in settings_rows], float)
    ok = np.isfinite(sec) & (sec > 0) & np.isfinite(obj)
    fig = _figure(figsize=(7.5, 4.6))
    ax = fig.subplots()
    for k, r in enumerate(_sorted_values(row.get("round") for row in settings_rows)):
        idx = [i for i, row in enumerate(settings_rows) if row.get("round") == r and ok[i]]
        ax.scatter(sec[idx], obj[idx], s=26, alpha=0.85, color=f"C{k % 10}", label=f"round {_value_text(r)}",
                   marker=_ROUND_MARKERS[k % len(_ROUND_MARKERS)], zorder=3)
    front = pareto_front(sec, obj)
    if front:
        ax.step(sec[front], obj[front], where="post", color="grey", lw=1.2, ls="--", zorder=2,
                label="Pareto front")
    xs, ys, texts, colors = [], [], [], []
    for name, (s, o) in named_points.items():
        if _finite(s) and s > 0 and _finite(o):
            ax.plot([s], [o], marker="X", ms=9, color="black", ls="", zorder=4)
            xs, ys, texts, colors = [*xs, s], [*ys, o], [*texts, name], [*colors, "black"]
    if named_points:
        ax.plot([], [], marker="X", ms=8, color="black", ls="", label="named setting")
    if best is not None and _finite(best.get("seconds_per_arch")) and best["seconds_per_arch"] > 0 \
            and _finite(best.get(objective)):
        ax.plot([best["seconds_per_arch"]], [best[objective]], marker="*", ms=16, color="gold", mec="darkred",
                mew=1.0, ls="", zorder=5, label="chosen")
        xs, ys = [*xs, best["seconds_per_arch"]], [*ys, best[objective]]
        texts, colors = [*texts, f"chosen: {best['setting']}"], [*colors, "darkred"]
    ax.set_xscale("log")
    all_x = [*sec[ok], *xs]
    if all_x:
        lo, hi = _decade_limits(all_x)
        ax.set_xlim(lo, hi)
        _log_seconds_axis(ax.xaxis, lo, hi)
    ax.margins(y=0.12)  # room for the labels above the best points
    ax.set_xlabel("cost per arch (seconds, log scale)")
    ax.set_ylabel(f"{label} vs ground truth")
    ax.set_title(f"BPE search: {label} against cost ({_settings_text(settings_rows)}, {_n_archs_text(settings_rows)})",
                 fontsize=9)
    ax.grid(alpha=0.3)
    ax.grid(alpha=0.12, which="minor")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    fig.tight_layout()
    _place_labels(ax, xs, ys, texts, colors=colors)
    missing = int((~ok).sum())
    lines = [f"{missing} of {len(settings_rows)} settings have no finite {label} or cost (diverged or constant "
             f"accuracies): not drawn"] if missing else []
    _warning_box(fig, lines, y=-0.01, width=110)
    _save(fig, path)
    return fig


def plot_importance(path, importance_rows: list[dict]):
    """fANOVA importance of each hyperparameter, one group of bars per round (mean with the std over the forest
    seeds as error bar), one colour per hyperparameter; the hatched bar: the one the round pruned."""
    rounds = sorted({row["round"] for row in importance_rows})
    hps = []
    for row in sorted(importance_rows, key=_importance_key):  # colour order: first round's ranking
        if row["hyperparameter"] not in hps:
            hps.append(row["hyperparameter"])
    pruned = pruned_per_round(importance_rows)
    fig = _figure(figsize=(max(5.0, 1.2 + 0.45 * max(len(importance_rows), 1)), 4.2))
    ax = fig.subplots()
    width = 0.8 / max(len(hps), 1)
    for g, r in enumerate(rounds):
        rows = sorted((row for row in importance_rows if row["round"] == r), key=_importance_key)
        for j, row in enumerate(rows):
            v, s = _number(row.get("importance")), _number(row.get("importance_std"))
            if not math.isfinite(v):
                continue
            x = g + width * (j + 0.5 - len(rows) / 2)  # the round's bars centred on its tick
            hp = row["hyperparameter"]
            ax.bar(x, v, width * 0.9, yerr=s if math.isfinite(s) else None, capsize=2,
                   color=f"C{hps.index(hp) % 10}", hatch="//" if pruned.get(r) == hp else None, edgecolor="black",
                   lw=0.4, error_kw={"lw": 0.8})
    from matplotlib.patches import Patch

    handles = [Patch(color=f"C{k % 10}", label=_hp_label(hp)) for k, hp in enumerate(hps)]
    if any(v is not None for v in pruned.values()):
        handles.append(Patch(facecolor="white", edgecolor="black", hatch="//", label="pruned after the round"))
    ax.set_xticks(range(len(rounds)))
    ax.set_xticklabels([f"round {_value_text(r)}" for r in rounds])
    ax.set_ylabel("importance (fANOVA fraction of variance)")
    ax.set_title("BPE search: hyperparameter importance per round (mean ± std over forest seeds)", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    if handles:
        ax.legend(handles=handles, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0,
                  title="hyperparameter", title_fontsize=7.5)
    fig.tight_layout()
    _warning_box(fig, [] if importance_rows else ["no importance rows: nothing to plot"], y=-0.01, width=90)
    _save(fig, path)
    return fig


def most_important(importance_rows: list[dict], k: int = 2) -> list[str]:
    """The k most important hyperparameters of the latest round with at least k finite importances (the latest
    round with any when none has k): the axes of plot_objective_2d."""
    for r in sorted({row["round"] for row in importance_rows}, reverse=True):
        finite = sorted((row for row in importance_rows if row["round"] == r and _finite(row.get("importance"))),
                        key=_importance_key)
        if len(finite) >= k:
            return [row["hyperparameter"] for row in finite[:k]]
    finite = sorted((row for row in importance_rows if _finite(row.get("importance"))), key=lambda row: -row["round"])
    return [row["hyperparameter"] for row in finite[:k]]


def _sorted_values(values) -> list:
    """Distinct values in order: numbers ascending, then anything else by its text."""
    distinct = list(dict.fromkeys(values))
    numbers = sorted(v for v in distinct if _finite(v))
    return numbers + sorted((v for v in distinct if not _finite(v)), key=str)


def _value_text(v) -> str:
    return f"{v:g}" if _finite(v) else "—" if v is None else str(v)


def plot_objective_2d(path, settings_rows: list[dict], objective: str, hp_x: str, hp_y: str):
    """The mean objective per (hp_x, hp_y) value pair over the sampled settings, as a heat grid with each cell's
    mean and count k annotated (blank: no setting; "—": settings without a finite objective)."""
    label = _objective_label(objective)
    if hp_x == hp_y:
        raise ParamsError(f"plot_objective_2d: hp_x and hp_y are both {hp_x!r}; give two hyperparameters")
    for hp in (hp_x, hp_y):
        if not any(hp in row for row in settings_rows):
            raise ParamsError(f"plot_objective_2d: no sampled setting has hyperparameter {hp!r}")
    xs = _sorted_values(row.get(hp_x) for row in settings_rows)
    ys = _sorted_values(row.get(hp_y) for row in settings_rows)
    grid = [[[] for _ in xs] for _ in ys]
    for row in settings_rows:
        grid[ys.index(row.get(hp_y))][xs.index(row.get(hp_x))].append(_number(row.get(objective)))
    mean = np.full((len(ys), len(xs)), np.nan)
    for i in range(len(ys)):
        for j in range(len(xs)):
            finite = [v for v in grid[i][j] if math.isfinite(v)]
            if finite:
                mean[i, j] = float(np.mean(finite))
    fig = _figure(figsize=(1.6 + 1.1 * max(len(xs), 2), 1.4 + 0.8 * max(len(ys), 2)))
    ax = fig.subplots()
    finite = mean[np.isfinite(mean)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if vmin == vmax:
        vmin, vmax = vmin - 0.05, vmax + 0.05
    image = ax.imshow(np.ma.masked_invalid(mean), cmap="viridis", vmin=vmin, vmax=vmax, origin="lower",
                      aspect="auto")
    for i in range(len(ys)):
        for j in range(len(xs)):
            if not grid[i][j]:
                continue
            v = mean[i, j]
            text = (f"{v:.3f}" if math.isfinite(v) else "—") + f"\n(k = {len(grid[i][j])})"
            light = math.isfinite(v) and (v - vmin) / (vmax - vmin) < 0.5  # white on the dark end of viridis
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if light else "black")
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([_value_text(v) for v in xs], fontsize=8)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([_value_text(v) for v in ys], fontsize=8)
    ax.set_xlabel(_hp_label(hp_x))
    ax.set_ylabel(_hp_label(hp_y))
    fig.colorbar(image, ax=ax, label=f"mean {label} vs ground truth")
    ax.set_title(f"BPE search: mean {label} per {_hp_label(hp_x)} × {_hp_label(hp_y)}\n"
                 f"({_settings_text(settings_rows)}, {_n_archs_text(settings_rows)}; k: settings in the cell)",
                 fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return fig
