"""DAG node `supernet_train` (RLNAS): train the single-path supernet of the space (NB201 cell, or DARTS cells
with two non-`none` inputs per node) on random or true labels.

Writes the epoch-0 weights (the angle needs them) and the trained weights, each with what made it; the
training checkpoints every epoch under results/work/, so a killed job resumes. A supernet whose loss turns
non-finite stops there and is written with meta `status: diverged` (and `diverged_epoch`); the stages that
score with it then write NaN scores / no pick with that status instead of scoring NaN weights.
"""
import time
from pathlib import Path

import torch

from stages.artifacts import atomic_path, plain
from stages.devices import claim, configure_torch
from stages.guard import main_guard, parser
from stages.params import load_params
from stages.provenance import provenance
from stages.training import load_splits, work_dir


@main_guard
def main():
    from nasflow.devices import describe
    from nasflow.estimators.rlnas import LABELS, train_supernet

    p = parser(__doc__)
    p.add_argument("--labels", required=True, choices=LABELS)
    p.add_argument("--out-dir", required=True, help="writes init.pt and final.pt here")
    args = p.parse_args()
    params = load_params(args.params)
    configure_torch(params)
    sn = params["supernet"]
    setting = params["settings"][sn["setting"]]
    splits = load_splits(params, setting)
    start = time.time()
    # the gradient reset shapes the trained weights: it is part of the work directory's digest
    shaped = {**setting, "grad_reset": sn["grad_reset"]}
    with claim(params) as device:
        out = train_supernet(setting, splits, labels=args.labels, seed=params["seed"], device=device,
                             work_dir=work_dir(params, f"supernet_{args.labels}", shaped), space=params["space"],
                             grad_reset=sn["grad_reset"])
        device_name = describe(device)
    meta = plain(provenance(params, labels=args.labels, setting=setting, device=device_name,
                      seconds=time.time() - start, train_seconds=out["result"]["seconds"],
                      history=out["result"]["history"],
                      # a diverged supernet is kept (the DAG goes on) but scores nothing: score_archs reads this
                      status=out["result"]["status"], diverged_epoch=out["result"]["diverged_epoch"]))
    out_dir = Path(args.out_dir)
    for name, state in (("init", out["init"]), ("final", out["final"])):  # final last: it marks completion
        with atomic_path(out_dir / f"{name}.pt") as tmp:
            torch.save({"model": state, "meta": {**meta, "weights": name}}, tmp)


if __name__ == "__main__":
    main()
