"""What the study found, in a few lines for the terminal: where the results are, Kendall τ per estimator, the
searches' picks, the report's warnings, and the stages this configuration skipped (and why).

Snakemake prints it at the end of every successful run (`onsuccess:` in the Snakefile); after `dvc repro`, run
`python -m stages.summary --params params.yaml`. It only reads: whatever is missing is reported as not made yet.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from stages.artifacts import read_json
from stages.guard import main_guard, parser
from stages.params import load_params, table_path


def skipped_stages(params: dict) -> list[str]:
    """Stages (or results) this configuration leaves out, each with the reason and how to get it."""
    out = [] if params.get("bpe_search") else [
        "bpe_search (the BPE paper's search for the budget itself): off; set bpe_search: in the params to run it"]
    table = table_path(params)
    if not table:
        out.append("bench_search (NAS-Bench-201's table baselines): no table; set bench_search.table or "
                   "ground_truth.source: table to run it")
        if "all" in params["supernet"]["arch_sets"]:
            out.append("τ of the angle over all archs: scored, but no ground-truth table to correlate with")
    return out


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return math.nan


def correlation_lines(path: Path) -> list[str]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    width = max((len(r["estimator"]) for r in rows), default=0)
    lines = []
    for r in rows:
        tau, lo, hi = (_number(r.get(k)) for k in ("kendall_tau", "kendall_tau_low", "kendall_tau_high"))
        cost = _number(r.get("seconds_per_arch"))
        tau_text = "n/a" if math.isnan(tau) else f"{tau:+.3f}"
        interval = "" if math.isnan(lo) else f"  [{lo:+.2f}, {hi:+.2f}]"
        cost_text = "" if math.isnan(cost) else f"  {cost:.3g} s/arch"
        lines.append(f"  {r['estimator']:<{width}}  τ {tau_text}{interval}  n={r.get('n', '?')}{cost_text}")
    return lines


def found_lines(path: Path) -> list[str]:
    lines = []
    for r in read_json(path).get("results", []):
        gt = r.get("ground_truth")
        gt_text = f"{gt:.2f}%" if isinstance(gt, (int, float)) and math.isfinite(gt) else "n/a"
        lines.append(f"  {r.get('search')}: ground truth {gt_text}  {r.get('arch')}")
    return lines


def budget_search_lines(path: Path) -> list[str]:
    best = read_json(path)
    tau, rho = best.get("kendall_tau"), best.get("spearman_rho")
    return [f"  chose {best.get('setting')} (round {best.get('round')}): τ {_number(tau):+.3f}, ρ {_number(rho):+.3f}, "
            f"{_number(best.get('seconds_per_arch')):.3g} s per arch; every sampled setting in "
            f"{path.parent}/settings.csv"]


def warning_lines(xlsx: Path) -> list[str]:
    from openpyxl import load_workbook

    wb = load_workbook(xlsx, read_only=True)
    if "warnings" not in wb.sheetnames:
        return []
    rows = list(wb["warnings"].iter_rows(values_only=True))
    header = [str(h) for h in rows[0]] if rows else []
    if "what it means" not in header:
        return []
    k = header.index("what it means")
    lines = [f"  ! {row[k]}" for row in rows[1:] if row and row[k]]
    shown = 8  # the terminal gets the first few; the workbook has them all
    return lines[:shown] + ([f"  … and {len(lines) - shown} more in {xlsx}"] if len(lines) > shown else [])


def summary(params: dict, results: Path) -> str:
    out = [f"nasflow: results in {results}/ (report.xlsx: the workbook; plots/: the figures; estimates.csv, "
           f"correlation.csv, found.json)"]
    sections = [
        ("Kendall τ of each estimator against the ground truth (95% bootstrap interval):", "correlation.csv",
         correlation_lines),
        ("Searches' picks:", "found.json", found_lines),
        ("Budget search (bpe_search, objective " + str((params.get("bpe_search") or {}).get("objective")) + "):",
         "bpe_search/best.json", budget_search_lines),
        ("Warnings (the workbook's `warnings` sheet; do not read these as results):", "report.xlsx", warning_lines),
    ]
    for title, name, lines_of in sections:
        if name.startswith("bpe_search/") and not params.get("bpe_search"):
            continue
        path = results / name
        if not path.is_file():
            out.append(f"{title} not made yet ({path})")
            continue
        lines = lines_of(path)
        if lines:
            out += [title, *lines]
    skipped = skipped_stages(params)
    if skipped:
        out += ["Skipped:", *(f"  - {s}" for s in skipped)]
    out += [f"One page to send (every figure, the tables, the workbook): snakemake --report {results}/report.html "
            f"(after dvc repro: dvc plots show, then dvc_plots/index.html)"]
    return "\n".join(out)


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--results", default="results")
    args = p.parse_args()
    print(summary(load_params(args.params), Path(args.results)), flush=True)


if __name__ == "__main__":
    main()
