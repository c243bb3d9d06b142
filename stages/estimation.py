"""The two Contexts estimators run in (nasflow.estimators.registry): `ResultsContext` reads what the DAG's stages
computed (correlate, report); `ComputeContext` trains and scores on demand (a search), sharing proxy_train's
per-arch cache. Both know the DAG's file layout; the estimators do not."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from nasflow.errors import CheckpointError, DivergedError, ParamsError
from nasflow.estimators.registry import Estimate
from stages.artifacts import read_results
from stages.params import proxy_setting, table_path


def supernet_share(doc: dict) -> float:
    """A supernet's training seconds shared out over the archs a scores file holds: part of each one's cost."""
    return (doc.get("supernet_train_seconds") or 0.0) / max(len(doc["results"]), 1)


def _by_arch(path, keys=()) -> tuple[dict, dict]:
    doc = read_results(path, keys=("arch", *keys))
    return {r["arch"]: r for r in doc["results"]}, doc


class _Common:
    def __init__(self, params: dict):
        self.params = params
        self._tables: dict = {}
        self._zero_cost_docs: dict = {}
        self.zero_cost_dir: Path | None = None
        self.init_seconds: dict[str, float] = {}  # one-off costs (a predictor's training cells and fit), by name

    def table(self, column: str, archs):
        from nasflow.estimators.table import TableEstimator

        path = table_path(self.params)
        if not path:
            raise ParamsError("the table estimator needs bench_search.table or a ground-truth table")
        if column not in self._tables:
            self._tables[column] = TableEstimator(path, column)
        return [Estimate(*self._tables[column](a)) for a in archs]

    def table_histories(self, schedule: str, archs):
        from nasflow.estimators.table import release_histories

        path = table_path(self.params)
        if not path:
            raise ParamsError("the tabular estimators need bench_search.table or a ground-truth table")
        return release_histories(path, list(archs), schedule)

    def zero_cost_pool(self) -> Path:
        """The zero-cost scores the hybrid predictors' training cells come from: the `all` arch set if scored,
        else the `extra` one (never the study's own cells)."""
        sets = self.params["zero_cost"]["arch_sets"]
        return self.zero_cost_dir / f"{'all' if 'all' in sets else 'extra'}.json"

    def features(self, names, archs, zero_cost_file) -> tuple[np.ndarray, np.ndarray]:
        """(len(archs), len(names)) feature values for a hybrid predictor and each arch's cost of computing them:
        a zero-cost proxy's scores from `zero_cost_file`, a tabular estimator's values from the table."""
        from nasflow.estimators import registry

        columns, cost = [], np.zeros(len(archs))
        for name in names:
            if name in self.params["zero_cost"]["proxies"]:  # (validated: a proxy feature is one of them)
                if zero_cost_file not in self._zero_cost_docs:
                    doc = read_results(zero_cost_file, keys=("arch",))
                    self._zero_cost_docs[zero_cost_file] = ({r["arch"]: r for r in doc["results"]}, doc)
                rows, doc = self._zero_cost_docs[zero_cost_file]
                missing = [a for a in archs if a not in rows]
                if name not in doc.get("proxies", []) or missing:
                    raise CheckpointError(f"{zero_cost_file}: no {name} score of "
                                          f"{missing[0] if missing else 'its cells'} (rerun the zero_cost stage)")
                found = [Estimate(math.nan if rows[a][name] is None else rows[a][name], rows[a][f"{name}_seconds"])
                         for a in archs]
            else:
                found = registry.get(name)(list(archs), self)
            columns.append([e.score for e in found])
            cost += [e.seconds for e in found]
        return np.array(columns, dtype=np.float64).T.reshape(len(archs), len(names)), cost

    def predicted(self, predictor: str, k: int, archs):
        """Predictions of `archs` by `predictor` (`lgb`, or `lgb_<feature set>`: a hybrid reading the set's
        features too) trained on k other cells of the ground-truth table (seeded); a hybrid's training cells are
        drawn from the zero-cost pool (zero_cost_pool). Records the one-off cost in `init_seconds`: the training
        cells' evaluation (recorded times or the cost model) + their features + the fit."""
        import time

        from nasflow.bench import load_table
        from nasflow.estimators.predictors import Predictor
        from nasflow.estimators.table import ground_truth_costs
        from nasflow.spaces import nb201

        name, _, fset = predictor.partition("_")
        label = f"pred_{predictor}_n{k}"
        gt = self.params["ground_truth"]
        if gt["source"] != "table":
            raise ParamsError(f"{label}: trains on a ground-truth table (ground_truth.source: table)")
        features = self.params["predictors"]["features"].get(fset) if fset else []
        if features is None:
            raise ParamsError(f"{label}: no feature set {fset!r} in predictors.features")
        if features and self.zero_cost_dir is None:
            raise ParamsError(f"{label}: a hybrid reads the zero_cost stage's scores; it cannot be a search's estimator")
        table = load_table(gt["path"], gt["column"])
        asked = set(archs)
        pool = self.zero_cost_pool() if features else None
        candidates = ([r["arch"] for r in read_results(pool, keys=("arch",))["results"]] if pool else list(table))
        others = sorted(a for a in candidates if a in table and a not in asked)
        if k > len(others):
            raise ParamsError(f"{label}: only {len(others)} other cells {f'in {pool} ' if pool else ''}to train on")
        rng = np.random.default_rng([self.params["seed"], k])
        train = [others[i] for i in rng.choice(len(others), size=k, replace=False)]
        x_train, train_feature_cost = self.features(features, train, pool) if features else (None, np.zeros(k))
        x_query, query_feature_cost = (self.features(features, list(archs), self.zero_cost_file) if features
                                       else (None, np.zeros(len(archs))))
        start = time.perf_counter()
        model = Predictor(name, nb201, seed=self.params["seed"]).fit(train, [table[a] for a in train], x_train)
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        scores = model.predict(list(archs), x_query)
        per_arch = (time.perf_counter() - start) / max(len(archs), 1)
        evaluation, _ = ground_truth_costs(gt["path"], gt["column"], train)
        self.init_seconds[label] = float(np.sum(evaluation) + train_feature_cost.sum() + fit_seconds)
        return [Estimate(float(s), per_arch + float(c)) for s, c in zip(scores, query_feature_cost)]

    def differentiable(self, method: str) -> dict:
        path = Path("results/search") / f"{method}.json"
        if method not in self.params["differentiable"]["methods"]:
            raise ParamsError(f"alpha_{method}: {method} is not in differentiable.methods")
        return read_results(path, rows=None, top=("alphas",))


class ResultsContext(_Common):
    """Reads results/proxy/<setting>.json, results/scores/<labels>-sampled.json, results/zero_cost/<set>.json."""

    def __init__(self, params: dict, *, proxy_dir="results/proxy", scores_dir="results/scores",
                 zero_cost_file="results/zero_cost/sampled.json"):
        super().__init__(params)
        self.proxy_dir, self.scores_dir, self.zero_cost_file = Path(proxy_dir), Path(scores_dir), Path(zero_cost_file)
        self.zero_cost_dir = self.zero_cost_file.parent
        self._docs: dict = {}

    def _lookup(self, path: Path, keys, archs, what: str) -> tuple[list[dict], dict]:
        if path not in self._docs:
            self._docs[path] = _by_arch(path, keys)
        rows, doc = self._docs[path]
        missing = [a for a in archs if a not in rows]
        if missing:
            raise CheckpointError(f"{path}: {what} has no result for {len(missing)} of the archs (e.g. {missing[0]}); "
                                  f"rerun the stages that write it")
        return [rows[a] for a in archs], doc

    def trained(self, setting, archs):
        return self._lookup(self.proxy_dir / f"{setting}.json", ("final_acc", "seconds"), archs, f"proxy_{setting}")[0]

    def supernet(self, labels, indicator, archs):
        rows, doc = self._lookup(self.scores_dir / f"{labels}-sampled.json", (indicator, f"{indicator}_seconds"), archs,
                                 f"the {labels}-label supernet")
        share = supernet_share(doc)
        return [Estimate(r[indicator] if r.get("status", "ok") == "ok" else math.nan,
                         r[f"{indicator}_seconds"] + share, r.get("status", "ok")) for r in rows]

    def zero_cost(self, proxy, archs):
        from nasflow.estimators.zero_cost import AGGREGATES, add_aggregates

        rows, doc = self._lookup(self.zero_cost_file, (), archs, "the zero-cost stage")
        if proxy not in doc.get("proxies", []):
            raise CheckpointError(f"{self.zero_cost_file}: no {proxy} scores (add it to zero_cost.proxies and rerun)")
        if proxy in AGGREGATES:  # a population aggregate: over the archs asked (those correlated), from its members
            rows = add_aggregates(rows, [proxy])
        return [Estimate(math.nan if r[proxy] is None else r[proxy], r[f"{proxy}_seconds"]) for r in rows]


class ComputeContext(_Common):
    """Trains (through proxy_train's per-arch cache and locks) and scores on demand, on `device`."""

    def __init__(self, params: dict, space, device):
        super().__init__(params)
        self.space, self.device = space, device
        self._scorers: dict = {}
        self._batch = None

    def trained(self, setting, archs):
        from nasflow.estimators.proxy import train_archs
        from stages.training import cache_name, load_splits, work_dir

        values = proxy_setting(self.params, setting)
        work = work_dir(self.params, cache_name(self.params, setting, values), values)
        return train_archs(list(archs), space=self.space, setting=values, splits=load_splits(self.params, values),
                           seed=self.params["seed"], device=self.device, work_dir=work)

    def supernet(self, labels, indicator, archs):
        from nasflow.estimators.rlnas import SupernetScorer, load_state
        from stages.training import load_splits

        key = (labels, indicator)
        if key not in self._scorers:
            sn = self.params["supernet"]
            setting = self.params["settings"][sn["setting"]]
            init, _ = load_state(f"results/supernet/{labels}/init.pt")
            final, meta = load_state(f"results/supernet/{labels}/final.pt")
            if meta.get("status", "ok") != "ok":
                raise DivergedError(f"the {labels}-label supernet diverged (epoch {meta.get('diverged_epoch')})")
            splits = load_splits(self.params, setting) if indicator == "supernet_acc" else None
            self._scorers[key] = SupernetScorer(init, final, setting, splits, seed=self.params["seed"],
                                                device=self.device, bn_batches=sn["bn_batches"],
                                                max_eval=sn["max_eval"], space=self.params["space"])
        scores, seconds = self._scorers[key].score(indicator, list(archs))
        return [Estimate(s, seconds / max(len(archs), 1)) for s in scores]

    def zero_cost(self, proxy, archs):
        from nasflow.estimators.zero_cost import AGGREGATES

        if proxy in AGGREGATES:
            raise ParamsError(f"{proxy}: a population aggregate (ranks among the archs scored together): it cannot "
                              f"score one arch at a time in a search; use one of its members "
                              f"({', '.join(AGGREGATES[proxy][1])})")
        if self._batch is None:
            self._batch = zero_cost_batch(self.params, self.device)
        rows = zero_cost_rows(self.params, self.space, archs, [proxy], self.device, self._batch)
        return [Estimate(r[proxy], r[f"{proxy}_seconds"]) for r in rows]


def zero_cost_batch(params: dict, device) -> tuple:
    """(images, labels, num_classes): the first seeded training batch of `zero_cost.batch_size` images at
    `zero_cost.image_size`, the one batch every zero-cost proxy sees."""
    from nasflow.data import load_dataset
    from nasflow.estimators import zero_cost

    zc, d = params["zero_cost"], params["data"]
    splits = load_dataset(d["dataset"], root=d["root"], path=d["path"], download=d["download"],
                          split_seed=params["seed"], subset=d["subset"], image_size=zc["image_size"])
    images, labels = zero_cost.train_batch(splits, batch_size=zc["batch_size"], seed=params["seed"], device=device)
    return images, labels, splits.num_classes


def zero_cost_rows(params: dict, space, archs, proxies, device, batch: tuple) -> list[dict]:
    """nasflow.estimators.zero_cost.score_archs on `batch` (zero_cost_batch), the network at params'
    `zero_cost` channels and depth."""
    from nasflow.estimators import zero_cost

    zc = params["zero_cost"]
    images, labels, num_classes = batch
    proxies = zero_cost.per_arch_names(proxies)  # aggregates (az_nas, te_nas): their members; combined by readers
    depth = {"darts": zc["layers"], "nb201": zc["cells_per_stage"]}.get(space.NAME)  # mobilenet: fixed depth
    return zero_cost.score_archs(archs, space=space, channels=zc["channels"], depth=depth, num_classes=num_classes,
                                 batch=images, labels=labels, proxies=proxies, seed=params["seed"], device=device)
