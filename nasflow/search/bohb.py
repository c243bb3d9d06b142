"""BOHB (Falkner et al., ICML 2018) through hpbandster, configured as ADL's NB201 baseline (exps/algos/BOHB.py,
scripts-search/algos/BOHB.sh): eta 3, min/max budget 12/200, num_samples 4, random_fraction 0,
bandwidth_factor 3, min_bandwidth 0.3, up to 50 iterations.

As in ADL, the worker ignores hpbandster's budget: every evaluation (at any rung) queries the same estimator
and pays its full cost, so successive halving re-pays for the configs it promotes. Once the seconds budget is
spent, further evaluations return loss inf without being charged (ADL returns 100 and stops charging), and
no new iteration starts (ADL's run keeps iterating on those dummy losses, which cannot change the pick).
The pick is hpbandster's incumbent: the best config among those evaluated at the *largest* budget (if none
reached it, the best evaluated arch). A diverged evaluation (non-finite score) reports the large finite loss
`DIVERGED_LOSS` to hpbandster (its KDE needs finite losses) and is never the pick.

Needs `pip install hpbandster` (0.7.4; pulls ConfigSpace, Pyro4, serpent, statsmodels, netifaces). ConfigSpace
>= 1.0 hands hpbandster numpy strings that Pyro4's default serializer rejects, so this module switches the
in-process Pyro4 serializer to pickle (the name server and the worker only listen on 127.0.0.1).
Each run starts its own name server and worker thread: about a second per run on a laptop core.
"""
from __future__ import annotations

import logging
import threading
import uuid
import warnings
from types import ModuleType

import numpy as np

from nasflow.errors import ParamsError
from nasflow.search.strategies import STATUS_OK, Budget, Estimator, SearchResult, Tracker

DIVERGED_LOSS = 1e9  # hpbandster's loss for a diverged evaluation: worse than any -score, still finite
_LOCK = threading.Lock()  # hpbandster state is global-ish (numpy's global RNG, Pyro config): one run at a time


def available() -> tuple[bool, str]:
    """(True, version) when hpbandster imports, else (False, why not)."""
    try:
        import hpbandster  # noqa: F401
        import ConfigSpace  # noqa: F401
        import Pyro4  # noqa: F401
    except Exception as e:  # ImportError, or a broken binary dependency
        return False, f"hpbandster is not usable here ({type(e).__name__}: {e}); pip install hpbandster"
    from importlib.metadata import version

    return True, f"hpbandster {version('hpbandster')}, ConfigSpace {version('ConfigSpace')}"


def bohb(space: ModuleType, estimator: Estimator, budget, seed: int, *, eta: int = 3, min_budget: float = 12,
         max_budget: float = 200, num_samples: int = 4, random_fraction: float = 0.0, bandwidth_factor: float = 3,
         min_bandwidth: float = 0.3, max_iterations: int = 50, log=None) -> SearchResult:
    ok, why = available()
    if not ok:
        raise ParamsError(f"strategy 'bohb': {why}")
    import ConfigSpace as CS
    import hpbandster.core.nameserver as hpns
    import Pyro4
    from hpbandster.core.worker import Worker
    from hpbandster.optimizers.bohb import BOHB

    tracker = Tracker(estimator, Budget.of(budget), log)  # log: one line per evaluation (strategies.Tracker)
    n_options = space.choices()
    names = [f"x{i}" for i in range(len(n_options))]
    at_max: list = []  # evaluations paid at the largest budget, in order

    class _Worker(Worker):
        def compute(self, config, budget, **kwargs):
            arch = space.decode([int(config[name]) for name in names])
            score = tracker.evaluate(arch)
            if score is None:
                return {"loss": float("inf"), "info": None}
            if budget >= max_budget * (1 - 1e-9):
                at_max.append(tracker.history[-1])
            if tracker.history[-1].status != STATUS_OK:
                return {"loss": DIVERGED_LOSS, "info": None}
            return {"loss": -float(score), "info": None}

    for name in ("hpbandster", "Pyro4", "BOHB"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with _LOCK, warnings.catch_warnings():
        # hpbandster's KDE warns on degenerate bandwidths (all-equal categorical columns); harmless
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # ConfigSpace 1.x deprecations hpbandster triggers
        Pyro4.config.SERIALIZER = "pickle"
        Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")
        saved_state = np.random.get_state()
        np.random.seed(seed % 2**32)  # hpbandster's KDE sampler draws from numpy's global RNG
        try:
            cs = CS.ConfigurationSpace(seed=seed % 2**31)
            for name, k in zip(names, n_options):
                cs.add(CS.CategoricalHyperparameter(name, [str(i) for i in range(k)]))
            run_id = f"nasflow-{uuid.uuid4().hex[:8]}"
            ns = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
            host, port = ns.start()
            try:
                worker = _Worker(nameserver=host, nameserver_port=port, run_id=run_id)
                worker.run(background=True)
                opt = BOHB(configspace=cs, run_id=run_id, nameserver=host, nameserver_port=port, eta=eta,
                           min_budget=min_budget, max_budget=max_budget, num_samples=num_samples,
                           random_fraction=random_fraction, bandwidth_factor=bandwidth_factor,
                           min_bandwidth=min_bandwidth, ping_interval=10)
                try:
                    iterations = 0
                    while not tracker.done and iterations < max_iterations:
                        opt.run(n_iterations=1, min_n_workers=1)  # the master keeps its model between calls
                        iterations += 1
                finally:
                    opt.shutdown(shutdown_workers=True)
            finally:
                ns.shutdown()
        finally:
            np.random.set_state(saved_state)
    finite = [e for e in at_max if e.status == STATUS_OK]
    best = max(finite, key=lambda e: e.score) if finite else None
    return tracker.result("bohb", seed, best=best, iterations=iterations, n_at_max_budget=len(at_max))
