"""Pages for the HTML report (`snakemake --report results/report.html` embeds them; each also opens on its own):
a table page (the correlation and frontier tables) and the interactive frontier (plotly: hover a point for its
estimator, τ with its interval, cost and n). Every page is self-contained (plotly.js inline: the report is sent
to co-authors and opened offline) and names the nasflow version that made it."""
from __future__ import annotations

import html

import pandas as pd

import nasflow
from nasflow.analysis.frontier import FAMILIES, FAMILY_STYLE, METRIC_LABELS, _finite

# matplotlib's marker -> plotly's symbol, so a family looks the same in the PNG and on the page
_SYMBOLS = {"o": "circle", "s": "square", "^": "triangle-up", "D": "diamond", "v": "triangle-down", "*": "star",
            "P": "cross"}
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
    """The frontier (frontier_table's rows) as an interactive plotly page: Kendall τ with its 95% interval against
    cost per arch (log axis), one trace per family in the PNG's colours and markers; hovering a point shows the
    estimator, τ and its interval, ρ, the cost and n. A cost of 0 (a table look-up) sits a decade left of the
    cheapest positive cost, said in its hover text."""
    import plotly.graph_objects as go

    rows = [r for r in table.to_dict("records") if _finite(r["kendall_tau"]) and _finite(r["seconds_per_arch"])]
    positive = [float(r["seconds_per_arch"]) for r in rows if r["seconds_per_arch"] > 0]
    zero_x = min(positive) / 10 if positive else 1e-3
    fig = go.Figure()
    for family in FAMILIES:
        mine = [r for r in rows if r["family"] == family]
        if not mine:
            continue
        colour, marker = FAMILY_STYLE[family]
        low = [r["kendall_tau"] - r["kendall_tau_low"] if _finite(r["kendall_tau_low"]) else 0 for r in mine]
        high = [r["kendall_tau_high"] - r["kendall_tau"] if _finite(r["kendall_tau_high"]) else 0 for r in mine]

        def hover(r):
            interval = (f" [{r['kendall_tau_low']:+.3f}, {r['kendall_tau_high']:+.3f}]"
                        if _finite(r["kendall_tau_low"]) and _finite(r["kendall_tau_high"]) else "")
            rho = f"{r['spearman_rho']:+.3f}" if _finite(r["spearman_rho"]) else "—"
            cost = (f"{r['seconds_per_arch']:.3g} s per arch" if r["seconds_per_arch"] > 0
                    else "0 s per arch (a table look-up; drawn at the left)")
            n = f"{int(r['n']):,}" if _finite(r["n"]) else "—"
            front = "<br>on the Pareto front" if r["on_front"] else ""
            return (f"<b>{html.escape(str(r['estimator']))}</b> ({family})<br>Kendall τ {r['kendall_tau']:+.3f}"
                    f"{interval} (95%)<br>Spearman ρ {rho}<br>cost {cost}<br>n = {n} archs{front}")

        fig.add_trace(go.Scatter(
            x=[r["seconds_per_arch"] if r["seconds_per_arch"] > 0 else zero_x for r in mine],
            y=[r["kendall_tau"] for r in mine], mode="markers+text", name=family,
            text=[str(r["estimator"]) for r in mine], textposition="top center", textfont={"size": 9},
            marker={"color": _colour(colour), "symbol": _SYMBOLS.get(marker, "circle"), "size": 10},
            error_y={"type": "data", "symmetric": False, "array": high, "arrayminus": low, "thickness": 1},
            hovertext=[hover(r) for r in mine], hoverinfo="text"))
    front = sorted((r for r in rows if r["on_front"]), key=lambda r: r["seconds_per_arch"])
    if front:
        fig.add_trace(go.Scatter(x=[r["seconds_per_arch"] if r["seconds_per_arch"] > 0 else zero_x for r in front],
                                 y=[r["kendall_tau"] for r in front], mode="lines", name="Pareto front",
                                 line={"shape": "hv", "dash": "dash", "color": "black", "width": 1},
                                 hoverinfo="skip"))
    fig.add_hline(y=0, line={"dash": "dot", "color": "grey", "width": 1})
    fig.update_layout(title={"text": html.escape(title), "font": {"size": 14}}, template="plotly_white",
                      xaxis={"type": "log", "title": "cost per arch (seconds, log scale)"},
                      yaxis={"title": f"{METRIC_LABELS['kendall_tau']} vs ground truth (95% bootstrap interval)"},
                      legend={"title": "family"}, height=620, margin={"t": 60})
    if not rows:
        fig.add_annotation(text="no estimator with a finite τ and cost", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")
    note = (f"<p class='note'>Hover a point for its estimator, τ with its 95% bootstrap interval, ρ, cost and n; "
            f"drag to zoom, double-click to reset. Rows without a finite τ or cost are left out "
            f"({len(table) - len(rows)} here).</p>{_footer()}")
    page = fig.to_html(include_plotlyjs=True, full_html=True, config={"displaylogo": False, "responsive": True})
    with open(path, "w", encoding="utf-8") as f:
        f.write(page.replace("</body>", f"{note}</body>", 1))  # the note under the figure

