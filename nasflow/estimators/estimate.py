"""What an estimator returns, and the families estimators belong to (nasflow.estimators.registry re-exports both)."""

from __future__ import annotations

from typing import NamedTuple

FAMILIES = ("budgeted training", "learning curve", "zero-cost", "supernet", "differentiable", "table", "model-based",
            "ensemble")
STATUS_OK = "ok"


class Estimate(NamedTuple):
    score: float          # higher = better; NaN when there is no score (a diverged training)
    seconds: float        # the estimate's cost for this arch
    status: str = STATUS_OK
