"""Pages for the HTML report (`snakemake --report results/report.html` embeds them; each also opens on its own):
a table page (the correlation and frontier tables) and the interactive frontier (Bokeh: hover a point for its
estimator, τ with its interval, cost and n). Every page is self-contained (BokehJS inline: the report is sent
to co-authors and opened offline) and names the nasflow version that made it."""
from __future__ import annotations

import html

import pandas as pd

import nasflow
from nasflow.analysis.frontier import FAMILIES, FAMILY_STYLE, METRIC_LABELS, _finite

# matplotlib's marker -> Bokeh's, so a family looks the same in the PNG and on the page
_MARKERS = {"o": "circle", "s": "square", "^": "triangle", "D": "diamond", "v": "inverted_triangle", "*": "star",
            "P": "plus"}
_STYLE = """<style>
body { font-family: sans-serif; font-size: 13px; margin: 1em; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f0f0f0; } td:first-child, th:first-child { text-align: left; }
p.note { color: #555; max-width: 60em; }
</style>"""


def _footer() -> str:
    return f'<p class="note">Made by nasflow {html.escape(nasflow.__version__)}.</p>'


def _colour(name: str) -> str:
    from matplotlib.colors import to_hex

    return to_hex(name)


def table_page(path, table: pd.DataFrame, title: str, notes: list[str] = (), digits: int = 3) -> None:
    """`table` as one HTML page: a title, the table (floats with `digits` decimals, NaN as —), notes below."""
    shown = table.to_html(index=False, na_rep="—", float_format=lambda v: f"{v:.{digits}g}" if abs(v) >= 1000
                          else f"{v:.{digits}f}", border=0)
    body = "\n".join([f"<h3>{html.escape(title)}</h3>", shown,
                      *(f'<p class="note">{html.escape(n)}</p>' for n in notes), _footer()])
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{_STYLE}"
                f"</head><body>{body}</body></html>")


def frontier_page(path, table: pd.DataFrame, title: str) -> None:
    """The frontier (frontier_table's rows) as an interactive Bokeh page: Kendall τ with its 95% interval against
    cost per arch (log axis), one glyph per family in the PNG's colours and markers, each point named; hovering a
    point shows the estimator, τ and its interval, ρ, the cost and n. A cost of 0 (a table look-up) sits a decade
    left of the cheapest positive cost, said in its hover text. Only BokehJS's core is inlined (~1.3 MB): a page
    over 2 MB would not open inside the report in Chromium (its limit on a data: address)."""
    from bokeh.embed import file_html
    from bokeh.models import ColumnDataSource, HoverTool, LabelSet, Range1d, Span, Whisker
    from bokeh.plotting import figure
    from bokeh.resources import INLINE

    rows = [r for r in table.to_dict("records") if _finite(r["kendall_tau"]) and _finite(r["seconds_per_arch"])]
    positive = [float(r["seconds_per_arch"]) for r in rows if r["seconds_per_arch"] > 0]
    zero_x = min(positive) / 10 if positive else 1e-3

    def x_of(r) -> float:
        return float(r["seconds_per_arch"]) if r["seconds_per_arch"] > 0 else zero_x

    fig = figure(title=title, x_axis_type="log", width=1000, height=600, tools="pan,wheel_zoom,box_zoom,reset,save",
                 x_axis_label="cost per arch (seconds, log scale)",
                 y_axis_label=f"{METRIC_LABELS['kendall_tau']} vs ground truth (95% bootstrap interval)")
    points = []
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        if not mine:
            continue
        colour, marker = _colour(FAMILY_STYLE[family][0]), FAMILY_STYLE[family][1]
        finite = [_finite(r["kendall_tau_low"]) and _finite(r["kendall_tau_high"]) for r in mine]
        source = ColumnDataSource({
            "x": [x_of(r) for r in mine], "y": [float(r["kendall_tau"]) for r in mine],
            "low": [float(r["kendall_tau_low"]) if f else float(r["kendall_tau"]) for r, f in zip(mine, finite)],
            "high": [float(r["kendall_tau_high"]) if f else float(r["kendall_tau"]) for r, f in zip(mine, finite)],
            "estimator": [str(r["estimator"]) for r in mine], "family": [family] * len(mine),
            "tau": [f"{r['kendall_tau']:+.3f}" + (f" [{r['kendall_tau_low']:+.3f}, {r['kendall_tau_high']:+.3f}]"
                                                  if f else "") for r, f in zip(mine, finite)],
            "rho": [f"{r['spearman_rho']:+.3f}" if _finite(r["spearman_rho"]) else "—" for r in mine],
            "cost": [f"{r['seconds_per_arch']:.3g} s per arch" if r["seconds_per_arch"] > 0
                     else "0 s per arch (a table look-up; drawn at the left)" for r in mine],
            "n": [f"{int(r['n']):,} archs" if _finite(r["n"]) else "—" for r in mine],
            "front": ["on the Pareto front" if r["on_front"] else "" for r in mine],
        })
        fig.add_layout(Whisker(source=source, base="x", lower="low", upper="high", line_color=colour,
                               line_alpha=0.6))
        points.append(fig.scatter("x", "y", source=source, marker=_MARKERS.get(marker, "circle"), size=11,
                                  color=colour, legend_label=family))
        fig.add_layout(LabelSet(x="x", y="y", text="estimator", source=source, x_offset=6, y_offset=4,
                                text_font_size="8pt", text_color=colour))
    front = sorted((r for r in rows if r["on_front"]), key=x_of)
    if front:
        fig.step([x_of(r) for r in front], [float(r["kendall_tau"]) for r in front], mode="after", color="black",
                 line_dash="dashed", legend_label="Pareto front")
    fig.add_layout(Span(location=0, dimension="width", line_dash="dotted", line_color="grey"))
    fig.add_tools(HoverTool(renderers=points, tooltips=[
        ("estimator", "@estimator (@family)"), ("Kendall τ (95%)", "@tau"), ("Spearman ρ", "@rho"),
        ("cost", "@cost"), ("n", "@n"), ("", "@front")]))
    if rows:  # room for every interval and label (Bokeh fits the range to the points alone)
        xs = [x_of(r) for r in rows]
        ys = [v for r in rows for v in (r["kendall_tau"], r["kendall_tau_low"], r["kendall_tau_high"]) if _finite(v)]
        pad = max(0.05, 0.08 * (max(ys) - min(ys)))
        fig.x_range, fig.y_range = Range1d(min(xs) / 1.6, max(xs) * 2.5), Range1d(min(ys) - pad, max(ys) + pad)
    if fig.legend:
        fig.legend.click_policy = "hide"
        fig.add_layout(fig.legend[0], "right")  # beside the plot, not over the points
    note = (f"<p class='note'>Hover a point for its estimator, τ with its 95% bootstrap interval, ρ, cost and n; "
            f"drag or scroll to zoom (the tools at the right), click a family in the legend to hide it. Rows without "
            f"a finite τ or cost are left out ({len(table) - len(rows)} here).</p>{_footer()}")
    page = file_html(fig, resources=INLINE, title=title)  # only the BokehJS parts the figure uses
    with open(path, "w", encoding="utf-8") as f:
        f.write(page.replace("</body>", f"{_STYLE}{note}</body>", 1))  # the note under the figure
