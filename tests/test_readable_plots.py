"""Plots a reader can read: on a crowded frontier (26 estimators within 0.3–2 s per arch) no two labels
overlap; in τ against cost every estimator has its own colour-and-marker pair (colour = family); the interactive
frontier page says, per point, the estimator, τ with its interval, ρ, cost and n."""
import html
import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

import nasflow
from nasflow.analysis.frontier import FAMILY_STYLE, frontier_table, plot_frontier
from nasflow.analysis.html import frontier_page, table_page
from nasflow.analysis.report import label_boxes, label_overlaps, plot_correlation_vs_cost

NAMES = ["proxy_bpe1", "proxy_bpe2", "sotl_bpe1", "sotl_e_bpe1", "lce_bpe1", "acc_bpe1_e1", "sotl_bpe2", "sotl_e_bpe2",
         "lce_bpe2", "acc_bpe2_e1", "grad_norm", "snip", "grasp", "fisher", "jacob_cov", "naswot", "zen", "synflow",
         "params", "flops", "angle_random", "supernet_acc_random", "angle_true", "supernet_acc_true", "vote", "table"]


def _family(name: str) -> str:
    if name.startswith("proxy_"):
        return "budgeted training"
    if name.startswith(("sotl", "lce", "acc_")):
        return "learning curve"
    if name.startswith(("angle", "supernet_acc")):
        return "supernet"
    return {"vote": "ensemble", "table": "table"}.get(name, "zero-cost")


@pytest.fixture(scope="module")
def crowded() -> pd.DataFrame:
    """The demo's 26 estimators, all within 0.3–2 s per arch and τ 0.2–0.5: the cluster whose labels overprinted."""
    rng = np.random.default_rng(0)
    tau = rng.uniform(0.2, 0.5, len(NAMES))
    return pd.DataFrame({"estimator": NAMES, "n": 100, "kendall_tau": tau, "kendall_tau_low": tau - 0.1,
                         "kendall_tau_high": tau + 0.1, "spearman_rho": tau * 1.4,
                         "seconds_per_arch": 10 ** rng.uniform(np.log10(0.3), np.log10(2), len(NAMES))})


def _labels(ax):
    return [t for t in ax.texts if t.get_gid() == "label"]


def test_crowded_frontier_labels_never_overlap(crowded, tmp_path):
    table = frontier_table(crowded, {n: _family(n) for n in NAMES}, None)
    fig = plot_frontier(tmp_path / "frontier.png", table)
    fig.canvas.draw()  # measured at the figure's own dpi (savefig drew at another)
    renderer = fig.canvas.get_renderer()
    figure_box = fig.bbox
    for ax in fig.axes[:2]:
        labels = _labels(ax)
        assert sorted(t.get_text() for t in labels) == sorted(NAMES)  # every estimator named once
        assert label_overlaps(labels, renderer) == []
        for box in label_boxes(labels, renderer):  # and none drawn off the figure
            assert figure_box.x0 <= box.x0 and box.x1 <= figure_box.x1 and figure_box.y0 <= box.y0 and box.y1 <= figure_box.y1


def test_overlap_check_sees_overlapping_labels(tmp_path):
    # the check itself: two labels printed on the same spot are reported
    from nasflow.analysis.report import _figure

    ax = _figure().subplots()
    texts = [ax.text(0.5, 0.5, "proxy_bpe1"), ax.text(0.5, 0.5, "proxy_bpe2")]
    assert label_overlaps(texts) == [(0, 1)]


def test_tau_vs_cost_gives_every_estimator_its_own_look_and_its_family_colour(crowded):
    fig = plot_correlation_vs_cost(None, crowded.to_dict("records"))
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == sorted(NAMES)
    styles = {c.get_label(): (to_hex(c.lines[0].get_color()), c.lines[0].get_marker()) for c in ax.containers}
    assert set(styles) == set(NAMES)
    assert len(set(styles.values())) == len(NAMES)  # 26 estimators, 26 distinct colour-and-marker pairs
    for name, (colour, _) in styles.items():
        assert colour == to_hex(FAMILY_STYLE[_family(name)][0]), name
    assert label_overlaps(_labels(ax)) == []


def test_interactive_frontier_hover_says_estimator_tau_interval_cost_and_n(crowded, tmp_path):
    table = frontier_table(crowded, {n: _family(n) for n in NAMES}, None)
    frontier_page(tmp_path / "frontier.html", table, "crowded")
    page = (tmp_path / "frontier.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)  # BokehJS inline: the page works offline
    # under Chromium's 2 MB limit on a data: address once base64-encoded, so it opens inside the HTML report
    assert len(page.encode()) * 4 / 3 < 2 * 1024 ** 2
    doc = json.loads(re.search(r'<script type="application/json"[^>]*>\s*(.*?)\s*</script>', page, re.S).group(1))
    text = json.dumps(doc, ensure_ascii=False)
    for field in ("@estimator (@family)", "@tau", "@rho", "@cost", "@n"):  # the hover tool's lines
        assert json.dumps(field) in text
    for r in table.to_dict("records"):  # and each point's values behind them
        tau = f"{r['kendall_tau']:+.3f} [{r['kendall_tau_low']:+.3f}, {r['kendall_tau_high']:+.3f}]"
        for value in (r["estimator"], tau, f"{r['seconds_per_arch']:.3g} s per arch"):
            assert json.dumps(value, ensure_ascii=False) in text, value
    assert '"100 archs"' in text and f"Made by nasflow {nasflow.__version__}" in page


def test_table_page_shows_every_row_and_escapes_text(tmp_path):
    table = pd.DataFrame({"estimator": ["a<b", "synflow"], "kendall_tau": [0.5, np.nan]})
    table_page(tmp_path / "t.html", table, "Correlation", ["τ is <tau-b>"])
    page = (tmp_path / "t.html").read_text()
    assert "a&lt;b" in page and "0.500" in page and "—" in page and html.escape("τ is <tau-b>") in page


NEW_PROXIES = ["meco", "meco_opt", "zico", "swap", "swap_reg", "az_expressivity", "az_progressivity",
               "az_trainability", "az_complexity", "az_nas", "te_nas_lr", "epe_nas", "l2_norm", "plain"]


def test_frontier_with_forty_estimators_and_their_extra_rows_stays_readable(crowded, tmp_path):
    # issue 26's study: the 26 above plus 14 newer proxies, each also over 1,000 extra cells and deduplicated
    rng = np.random.default_rng(1)
    rows = [crowded]
    for suffix, n in (("", 100), ("_extra", 1000), ("_extra_dedup", 600)):
        tau = rng.uniform(0.1, 0.7, len(NEW_PROXIES))
        rows.append(pd.DataFrame({"estimator": [p + suffix for p in NEW_PROXIES], "n": n, "kendall_tau": tau,
                                  "kendall_tau_low": tau - 0.08, "kendall_tau_high": tau + 0.08,
                                  "spearman_rho": tau * 1.35, "seconds_per_arch": 10 ** rng.uniform(-3, 0.5, 14)}))
    table = frontier_table(pd.concat(rows, ignore_index=True),
                           {n: _family(n) for n in NAMES + NEW_PROXIES}, None)
    fig = plot_frontier(tmp_path / "frontier.png", table)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert "n = 100 archs" in fig._suptitle.get_text()  # the labelled rows' n, not the 1,000 of the faded ones
    for ax in fig.axes[:2]:
        labels = _labels(ax)
        assert sorted(t.get_text() for t in labels) == sorted(NAMES + NEW_PROXIES)
        assert label_overlaps(labels, renderer) == []
        for box in label_boxes(labels, renderer):
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1 and fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1
        # the _extra rows are drawn (faded), the _dedup rows are not (the tables carry them)
        points = [c for c in ax.containers]
        assert len(points) == len(NAMES) + 2 * len(NEW_PROXIES)
