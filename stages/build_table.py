"""DAG node `build_table`: ground_truth.build_from (an official NATS-Bench / NAS-Bench-201 release) ->
results/table/nb201.parquet, converted once (nasflow.bench_build) and read in milliseconds by every stage after.

Without build_from it writes only results/table/manifest.json saying so (both engines keep the node)."""
import time
from pathlib import Path

from nasflow.bench_build import build_table
from stages.artifacts import write_json
from stages.guard import main_guard, parser
from stages.params import BUILT_TABLE, load_params
from stages.provenance import provenance


@main_guard
def main():
    p = parser(__doc__)
    p.add_argument("--out", default=str(Path(BUILT_TABLE).parent), help="the folder of the table and its manifest")
    args = p.parse_args()
    params = load_params(args.params)
    source = params["ground_truth"].get("build_from")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not source:
        (out / Path(BUILT_TABLE).name).unlink(missing_ok=True)
        write_json(out / "manifest.json", {"built": False, "note": "ground_truth.build_from is not set: nothing "
                                           "to convert", "provenance": provenance(params)})
        return
    start = time.perf_counter()
    done = build_table(source, out / Path(BUILT_TABLE).name, progress=True)
    print(f"build_table: {done['cells']:,} cells from {source} in {time.perf_counter() - start:.1f} s")
    write_json(out / "manifest.json", {"built": True, "source": str(source), **done,
                                       "seconds": round(time.perf_counter() - start, 2),
                                       "provenance": provenance(params, inputs=[str(source)])})


if __name__ == "__main__":
    main()
