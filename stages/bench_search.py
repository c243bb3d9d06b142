"""Stage `bench_search` (benchmark mode): NAS-Bench-201's table baselines (REA, RS, REINFORCE, BOHB), each run
for many seeds on the NB201 table under a 12,000 s budget of simulated training time (the release's recorded
times with a table built by `nasflow table build`, else the FLOPs cost model), reported beside the NB201 paper's rows.

Writes one CSV row per (scenario, strategy, seed) to --out, the summary (mean±std per scenario and strategy,
the published rows, provenance) to --summary (default: <out>.json) and the markdown tables to --report
(default: <out>.md; also printed). Parameters come from the `bench_search:` section of params.yaml when
there is one; the options below override them, so the stage also runs before that section exists:

    python -m stages.bench_search --params params.yaml --out results/bench_search.csv \\
        --table data/nb201.parquet [--seeds 500] [--strategies rea,rs,reinforce,bohb]
"""
import csv
import time

from nasflow.errors import ParamsError
from nasflow.search import bench_mode
from stages.artifacts import atomic_path, write_json
from stages.guard import main_guard, parser
from stages.params import load_params, table_path
from stages.provenance import provenance

DEFAULTS = {
    "table": None,
    "search_column": None,  # None: bench_mode.search_column_for(table)
    "budget_seconds": bench_mode.BUDGET_SECONDS,
    "seeds": 500,
    "first_seed": 0,
    "strategies": list(bench_mode.STRATEGIES),
    "max_seeds": {"bohb": 100},
    "scenarios": [{"cost_model": s.cost_model, "budget_scale": s.budget_scale} for s in bench_mode.DEFAULT_SCENARIOS],
    "workers": 1,
    "rea": {}, "reinforce": {}, "bohb": {}, "rs": {}, "bananas": {},
}
CSV_COLUMNS = ["scenario", "cost_model", "budget_seconds", "strategy", "seed", "n_evals", "spent_seconds",
               "best_index", "best_arch", "search_score", *bench_mode.REPORT_COLUMNS]


def _scenarios(text: str) -> list[dict]:
    """'affine:1,affine:0.5,flops:1' -> [{cost_model: affine, budget_scale: 1.0}, ...]."""
    out = []
    for item in text.split(","):
        kind, _, scale = item.strip().partition(":")
        try:
            out.append({"cost_model": kind, "budget_scale": float(scale or 1)})
        except ValueError:
            raise ParamsError(f"--scenarios: {item!r} must look like cost_model:budget_scale") from None
    return out


def resolve(params: dict, args) -> dict:
    """The run's configuration: defaults < params.yaml `bench_search:` < command-line options."""
    section = params.get("bench_search") or {}
    unknown = set(section) - set(DEFAULTS)
    if unknown:
        raise ParamsError(f"bench_search: unknown keys {sorted(unknown)} (known: {', '.join(DEFAULTS)})")
    cfg = {**DEFAULTS, **section}
    if cfg["table"] is None:
        cfg["table"] = table_path(params)
    for key in ("table", "seeds", "workers"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if cfg["search_column"] is None and cfg["table"]:
        cfg["search_column"] = bench_mode.search_column_for(cfg["table"])
    if args.strategies is not None:
        cfg["strategies"] = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.scenarios is not None:
        cfg["scenarios"] = _scenarios(args.scenarios)
    return cfg


def _skip_reason(cfg: dict) -> str | None:
    """Why benchmark mode cannot run: no table (the demo), or a table of only some cells (e.g. a test archive)."""
    if not cfg["table"]:
        return ("skipped: no NAS-Bench-201 table configured (set bench_search.table to a table built by "
                "`nasflow table build`, or use a table ground truth)")
    from nasflow import bench
    from nasflow.bench_build import NB201_CELLS

    cells = len(bench.load_table(cfg["table"], cfg["search_column"]))
    if cells < NB201_CELLS:
        return (f"skipped: the table {cfg['table']} holds {cells:,} of the {NB201_CELLS:,} cells; benchmark mode "
                "searches them all")
    return None


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--out", default="results/bench_search.csv")
    p.add_argument("--summary", default=None, help="summary JSON (default: <out>.json)")
    p.add_argument("--report", default=None, help="markdown tables (default: <out>.md)")
    p.add_argument("--table", default=None, help="the NB201 table (overrides bench_search.table)")
    p.add_argument("--seeds", type=int, default=None, help="runs per strategy (overrides bench_search.seeds)")
    p.add_argument("--strategies", default=None, help="comma-separated, e.g. rea,rs,reinforce,bohb")
    p.add_argument("--scenarios", default=None, help="comma-separated cost_model:budget_scale, e.g. affine:1,flops:1")
    p.add_argument("--workers", type=int, default=None, help="processes (pays off for BOHB)")
    args = p.parse_args()
    params = load_params(args.params)
    cfg = resolve(params, args)
    stem = args.out[:-4] if args.out.endswith(".csv") else args.out
    note = _skip_reason(cfg)
    if note:  # say so in every output rather than fail the DAG
        with atomic_path(args.out) as tmp:
            tmp.write_text(",".join(CSV_COLUMNS) + "\n")
        write_json(args.summary or f"{stem}.json", {"skipped": note, "provenance": provenance(params)})
        with atomic_path(args.report or f"{stem}.md") as tmp:
            tmp.write_text(f"bench_search {note}\n")
        print(f"bench_search {note}")
        return
    scenarios = [bench_mode.scenario_from_dict(d) for d in cfg["scenarios"]]
    hyper = {name: cfg[name] for name in ("rs", "rea", "reinforce", "bohb", "bananas") if cfg[name]}
    start = time.perf_counter()
    rows = bench_mode.run_benchmark(cfg["table"], strategies=cfg["strategies"], seeds=cfg["seeds"],
                                    first_seed=cfg["first_seed"], max_seeds=cfg["max_seeds"], scenarios=scenarios,
                                    budget_seconds=cfg["budget_seconds"], search_column=cfg["search_column"],
                                    hyper=hyper, workers=cfg["workers"],
                                    progress=lambda msg: print(f"bench_search: {msg}", flush=True))
    seconds = time.perf_counter() - start
    summary = bench_mode.summarize(rows)
    report = bench_mode.format_report(summary)
    with atomic_path(args.out) as tmp:
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
            w.writeheader()
            w.writerows(rows)
    write_json(args.summary or f"{stem}.json",
               {"config": cfg, "report_columns": bench_mode.REPORT_COLUMNS, "summary": summary,
                "published": bench_mode.PUBLISHED, "seconds": round(seconds, 2),
                "provenance": provenance(params)})
    with atomic_path(args.report or f"{stem}.md") as tmp:
        tmp.write_text(report)
    print(report, end="")


if __name__ == "__main__":
    main()
