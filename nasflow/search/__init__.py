"""Search strategies by name. Each is `strategy(space, estimator, budget, seed, **hyperparameters) -> SearchResult`
(nasflow.search.strategies explains the contract, the budget and the result).

    rs          random search (ADL RANDOM.py)
    rea         regularized evolution: population 10, tournament sample 3, one-variable mutation, aging
    reinforce   REINFORCE with a factorised softmax policy (6 x 5 logits on NB201), Adam, EMA baseline 0.9
    bohb        BOHB through hpbandster (optional dependency: `pip install hpbandster`)
    bananas     predictor-guided (BANANAS-style): a model-based predictor fitted on what was evaluated picks the
                next of many mutated candidates (nasflow.search.predictor_guided)
"""
from __future__ import annotations

from typing import Callable

from nasflow.errors import ParamsError
from nasflow.search.strategies import (Budget, CategoricalPolicy, Evaluation, SearchResult, Tracker, random_search,
                                       regularized_evolution, reinforce)


def _bohb(*args, **kwargs):
    from nasflow.search.bohb import bohb

    return bohb(*args, **kwargs)


def _bananas(*args, **kwargs):
    from nasflow.search.predictor_guided import predictor_guided

    return predictor_guided(*args, **kwargs)


STRATEGIES: dict[str, Callable[..., SearchResult]] = {
    "rs": random_search,
    "rea": regularized_evolution,
    "reinforce": reinforce,
    "bohb": _bohb,
    "bananas": _bananas,
}


def available_strategies() -> list[str]:
    return list(STRATEGIES)


def get_strategy(name: str) -> Callable[..., SearchResult]:
    """The strategy called `name`; ParamsError for an unknown name."""
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ParamsError(f"unknown search strategy {name!r} (known: {', '.join(STRATEGIES)})") from None


__all__ = ["Budget", "CategoricalPolicy", "Evaluation", "SearchResult", "Tracker", "STRATEGIES", "available_strategies",
           "get_strategy", "random_search", "regularized_evolution", "reinforce"]
