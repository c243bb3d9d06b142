"""Predictor-guided search (BANANAS-style: White, Neiswanger & Savani, AAAI 2021).

Evaluate `initial` random archs; then, until the budget is spent: fit a model-based predictor
(nasflow.estimators.predictors) on every arch evaluated so far, make `candidates` new archs by mutating the
`parents` best ones (one to two mutations each, none already evaluated), and spend the next evaluation on the
candidate with the best prediction. Differences from the paper, said here: the acquisition is the predicted
value itself (BANANAS uses independent Thompson sampling over its ensemble), and the predictor is any of ours
(default `mlp`: BANANAS' ensemble of MLPs on the path encoding). As in NB201's protocol, only the estimator's
costs count against the budget; fitting the predictor is not charged (its seconds are in `extra`).
"""
from __future__ import annotations

import math
import random
import time
from types import ModuleType
from typing import Callable

from nasflow.errors import ParamsError
from nasflow.search.strategies import Budget, Estimator, SearchResult, Tracker, _random_arch


def predictor_guided(space: ModuleType, estimator: Estimator, budget, seed: int, *, predictor: str = "mlp",
                     initial: int = 10, candidates: int = 100, parents: int = 10,
                     log: Callable[[str], None] | None = None) -> SearchResult:
    from nasflow.estimators.predictors import Predictor

    if initial < 2 or candidates < 1 or parents < 1:
        raise ParamsError(f"predictor-guided search: initial >= 2, candidates and parents >= 1 "
                          f"(got {initial}, {candidates}, {parents})")
    Predictor(predictor, space)  # an unknown predictor fails before any evaluation
    tracker, rng = Tracker(estimator, Budget.of(budget), log), random.Random(seed)
    seen: dict[str, float] = {}
    while len(seen) < initial:
        arch = _random_arch(space, rng)
        if arch in seen:
            continue
        score = tracker.evaluate(arch)
        if score is None:
            return tracker.result("bananas", seed, fit_seconds=0.0)
        seen[arch] = score
    fit_seconds = 0.0
    while True:
        finite = [(a, s) for a, s in seen.items() if math.isfinite(s)]
        start = time.perf_counter()
        model = Predictor(predictor, space, seed=seed).fit([a for a, _ in finite], [s for _, s in finite])
        best = [a for a, _ in sorted(finite, key=lambda p: -p[1])[:parents]]
        pool: list[str] = []
        for _ in range(candidates * 20):  # enough tries even in a crowded neighbourhood
            if len(pool) >= candidates:
                break
            child = rng.choice(best)
            for _ in range(rng.choice((1, 2))):
                child = space.mutate(child, rng)
            if child not in seen and child not in pool:
                pool.append(child)
        if not pool:
            pool = [_random_arch(space, rng)]
        predicted = model.predict(pool)
        fit_seconds += time.perf_counter() - start
        pick = pool[max(range(len(pool)), key=lambda i: predicted[i])]
        score = tracker.evaluate(pick)
        if score is None:
            break
        seen[pick] = score
    return tracker.result("bananas", seed, fit_seconds=round(fit_seconds, 3))
