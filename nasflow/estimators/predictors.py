"""Model-based performance predictors: a regressor trained on n evaluated archs predicts the rest.

The fourth estimator family of White et al. 2021 ("How Powerful are Performance Predictors in NAS?") and
NAS-Bench-Suite-Zero (2022). Each predictor encodes an arch (nasflow.spaces.encodings), optionally appends
features (zero-cost scores, a learning-curve value: the hybrids), and fits a regressor from a well-kept library:

    lgb    gradient-boosted trees (LightGBM, 300 trees,  one-hot
           lr 0.05, 31 leaves of >= 2 cells)
    rf     random forest (scikit-learn, 200 trees,       one-hot
           half the features per split)
    gp     Gaussian process, Matern 5/2 + white noise    one-hot
           (scikit-learn; kernel hyperparameters by marginal likelihood on the training set, one L-BFGS
           start from the initial kernel: a second random start never won on the NB201 table and doubled
           the cost, which is cubic in n)
    ngb    NGBoost (natural-gradient boosting, 200       one-hot
           trees of depth 3, lr 0.05)
    mlp    BANANAS-style ensemble of 5 MLPs              path encoding
           (scikit-learn MLPRegressor, 10 layers of 20 units, Adam lr 0.01, 200 epochs; the mean of the 5)
    gcn    a graph convolutional network on the cell     op-on-node graph (NB201)
           (PyTorch: 3 layers of 64 units, mean readout; Adam lr 3e-3, 200 epochs, full batch)

Hyperparameters are fixed (below, documented) and never tuned on test cells. Targets are standardised on the
training set; appended features are standardised too (NaN -> the training mean). Every regressor is seeded:
the same training cells and seed give the same predictions.

Protocol (`run_protocol`, as the literature runs it): per trial t, one seeded permutation of the pool; the
first `test_size` cells are the test set, the next n the training set (nested: the 5 cells of n=5 are among
the 8 of n=8), so every predictor, size and shard sees the same splits. Metrics on the test set: Kendall τ,
Spearman ρ (scipy), precision@10% (the share of the true top 10% among the predicted top 10%), top-1 regret
(the true best value minus the true value of the predicted best) and MAE.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from nasflow.errors import ParamsError
from nasflow.spaces import encodings

PREDICTORS = ("lgb", "rf", "gp", "ngb", "mlp", "gcn")
DEFAULT_ENCODING = {"lgb": "onehot", "rf": "onehot", "gp": "onehot", "ngb": "onehot", "mlp": "path", "gcn": "graph"}
DEFAULT_SIZES = (5, 8, 14, 24, 42, 71, 121, 205, 347, 589, 1000)
MLP_MEMBERS = 5


def _regressor(name: str, seed: int, n_features: int, n_samples: int):
    if name == "lgb":
        from lightgbm import LGBMRegressor

        # small data: leaves may hold 2 cells, every value its own bin; row / column subsampling as usual
        return LGBMRegressor(n_estimators=300, learning_rate=0.05, num_leaves=31, min_child_samples=2,
                             min_data_in_bin=1, subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                             random_state=seed, n_jobs=1, verbose=-1)
    if name == "rf":
        from sklearn.ensemble import RandomForestRegressor

        return RandomForestRegressor(n_estimators=200, max_features=0.5, random_state=seed, n_jobs=1)
    if name == "gp":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = ConstantKernel(1.0) * Matern(length_scale=math.sqrt(n_features), nu=2.5) + WhiteKernel(0.1)
        return GaussianProcessRegressor(kernel=kernel, normalize_y=False, n_restarts_optimizer=0, random_state=seed)
    if name == "ngb":
        from ngboost import NGBRegressor

        return NGBRegressor(n_estimators=200, learning_rate=0.05, verbose=False, random_state=seed)
    if name == "mlp":
        from sklearn.neural_network import MLPRegressor

        return [MLPRegressor(hidden_layer_sizes=(20,) * 10, learning_rate_init=0.01, max_iter=200,
                             batch_size=min(32, n_samples),
                             random_state=seed * MLP_MEMBERS + k) for k in range(MLP_MEMBERS)]
    raise ParamsError(f"unknown predictor {name!r} (known: {', '.join(PREDICTORS)})")


class _GCN:
    """Graph convolutions over the cell's op-on-node DAG (Kipf & Welling propagation, both directions plus self
    loops, normalised), mean over nodes, then a linear head; extra features join at the head."""

    def __init__(self, seed: int, hidden: int = 64, layers: int = 3, epochs: int = 200, lr: float = 3e-3):
        self.seed, self.hidden, self.layers, self.epochs, self.lr = seed, hidden, layers, epochs, lr

    @staticmethod
    def _graphs(archs):
        import torch

        adj, types = zip(*(encodings.nb201_graph(a) for a in archs))
        a = torch.tensor(np.stack(adj))
        a = a + a.transpose(1, 2) + torch.eye(a.shape[1])
        d = a.sum(-1).rsqrt()
        return d[:, :, None] * a * d[:, None, :], torch.tensor(np.stack(types))

    def _net(self, n_types: int, n_extra: int):
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(s):
                super().__init__()
                sizes = [n_types] + [self.hidden] * self.layers
                s.convs = nn.ModuleList(nn.Linear(i, o) for i, o in zip(sizes, sizes[1:]))
                s.head = nn.Linear(self.hidden + n_extra, 1)

            def forward(s, a, h, extra):
                for conv in s.convs:
                    h = torch.relu(a @ conv(h))
                return s.head(torch.cat([h.mean(1), extra], 1)).squeeze(1)

        return Net()

    def fit(self, archs, extra, y):
        import torch

        with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's RNG untouched
            torch.manual_seed(self.seed)
            a, h = self._graphs(archs)
            self.net = self._net(h.shape[-1], extra.shape[1])
        x, t = torch.tensor(extra, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, weight_decay=1e-4)
        for _ in range(self.epochs):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(self.net(a, h, x), t)
            loss.backward()
            opt.step()
        return self

    def predict(self, archs, extra):
        import torch

        a, h = self._graphs(archs)
        with torch.no_grad():
            return self.net(a, h, torch.tensor(extra, dtype=torch.float32)).numpy().astype(np.float64)


@dataclass
class Predictor:
    """`name` (one of PREDICTORS) on `encoding` (onehot | path | graph (gcn) | none: the extra features only)."""

    name: str
    space: ModuleType
    seed: int = 0
    encoding: str | None = None

    def __post_init__(self):
        if self.name not in PREDICTORS:
            raise ParamsError(f"unknown predictor {self.name!r} (known: {', '.join(PREDICTORS)})")
        self.encoding = self.encoding or DEFAULT_ENCODING[self.name]
        if (self.name == "gcn") != (self.encoding == "graph"):
            raise ParamsError(f"predictor {self.name}: encoding {self.encoding!r} (the gcn reads the cell graph, "
                              "the others onehot, path or none)")
        if self.name == "gcn" and self.space.NAME != "nb201":
            raise ParamsError("predictor gcn: the cell graph is defined for NB201 cells")

    def _extra(self, extra, n: int, fit: bool) -> np.ndarray:
        if extra is None:
            return np.zeros((n, 0))
        extra = np.asarray(extra, dtype=np.float64).reshape(n, -1)
        if fit:
            mean = np.nanmean(extra, 0) if len(extra) else np.zeros(extra.shape[1])
            self._mean = np.where(np.isfinite(mean), mean, 0.0)
            std = np.nanstd(extra, 0)
            self._std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        extra = np.where(np.isfinite(extra), extra, self._mean)
        return (extra - self._mean) / self._std

    def _features(self, archs, extra, fit: bool) -> np.ndarray:
        parts = [self._extra(extra, len(archs), fit)]
        if self.encoding not in ("none", "graph"):
            parts.insert(0, encodings.encode_many(self.space, archs, self.encoding).astype(np.float64))
        x = np.concatenate(parts, 1)
        if x.shape[1] == 0:
            raise ParamsError(f"predictor {self.name}: no features (encoding none and no extra features)")
        return x

    def fit(self, archs, y, extra=None) -> "Predictor":
        y = np.asarray(y, dtype=np.float64)
        self._y = (float(y.mean()), float(y.std()) or 1.0)
        t = (y - self._y[0]) / self._y[1]
        if self.name == "gcn":
            self.model = _GCN(self.seed).fit(archs, self._extra(extra, len(archs), True), t)
            return self
        x = self._features(archs, extra, True)
        self.model = _regressor(self.name, self.seed, x.shape[1], x.shape[0])
        import warnings

        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # GP bounds / MLP iterations: fixed budgets by design, not failures
            warnings.simplefilter("ignore", ConvergenceWarning)
            for m in self.model if isinstance(self.model, list) else [self.model]:
                m.fit(x, t)
        return self

    def predict(self, archs, extra=None) -> np.ndarray:
        if self.name == "gcn":
            t = self.model.predict(archs, self._extra(extra, len(archs), False))
        else:
            x = self._features(archs, extra, False)
            models = self.model if isinstance(self.model, list) else [self.model]
            t = np.mean([np.asarray(m.predict(x), dtype=np.float64) for m in models], 0)
        return t * self._y[1] + self._y[0]


# --------------------------------------------------------------------------------------------------------
# The protocol

def splits(pool: int, train_size: int, test_size: int, trial: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices) into a pool of `pool` cells: disjoint, seeded by (seed, trial) only."""
    if train_size + test_size > pool:
        raise ParamsError(f"training-set size {train_size} + test size {test_size} exceeds the {pool} cells")
    perm = np.random.default_rng([seed, trial]).permutation(pool)
    return perm[test_size:test_size + train_size], perm[:test_size]


def metrics(y_true, y_pred) -> dict:
    from scipy import stats

    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    k = max(1, int(round(0.1 * len(y_true))))
    if np.ptp(y_pred) == 0:  # a constant prediction ranks nothing: no correlation (scipy would say NaN)
        tau = rho = 0.0
    else:
        tau, rho = stats.kendalltau(y_true, y_pred).statistic, stats.spearmanr(y_true, y_pred).statistic
    top_true = set(np.argsort(-y_true, kind="stable")[:k].tolist())
    top_pred = set(np.argsort(-y_pred, kind="stable")[:k].tolist())
    return {"kendall_tau": float(tau), "spearman_rho": float(rho),
            "precision_at_10": len(top_true & top_pred) / k,
            "regret": float(y_true.max() - y_true[int(np.argmax(y_pred))]),
            "mae": float(np.mean(np.abs(y_true - y_pred)))}


def run_protocol(space: ModuleType, archs: list[str], y, *, predictors=PREDICTORS, sizes=DEFAULT_SIZES,
                 test_size: int = 200, trials: int = 20, seed: int = 0, extra=None, encoding: str | None = None,
                 jobs: list[tuple[str, int, int]] | None = None) -> list[dict]:
    """One row per predictor x training-set size x trial (or per `jobs` entry (predictor, size, trial): a shard).

    `extra`: (len(archs), f) features appended to the encoding (the hybrids); `encoding` overrides each
    predictor's default (onehot | path | none). fit_seconds: the fit; query_seconds: predicting one cell."""
    y = np.asarray(y, dtype=np.float64)
    extra = None if extra is None else np.asarray(extra, dtype=np.float64).reshape(len(archs), -1)
    for name in predictors:
        Predictor(name, space, encoding=encoding if name != "gcn" else None)  # bad names fail before any work
    for n in sizes:
        if n + test_size > len(archs):
            raise ParamsError(f"training-set size {n} + test size {test_size} exceeds the {len(archs)} cells")
    jobs = jobs or [(p, n, t) for p in predictors for n in sizes for t in range(trials)]
    rows = []
    for name, n, trial in jobs:
        train, test = splits(len(archs), n, test_size, trial, seed)
        pick = lambda idx: [archs[i] for i in idx]
        sub = lambda idx: None if extra is None else extra[idx]
        model = Predictor(name, space, seed=seed * 1000 + trial, encoding=encoding if name != "gcn" else None)
        start = time.perf_counter()
        model.fit(pick(train), y[train], sub(train))
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        predicted = model.predict(pick(test), sub(test))
        query_seconds = (time.perf_counter() - start) / len(test)
        rows.append({"predictor": name, "train_size": n, "trial": trial, **metrics(y[test], predicted),
                     "fit_seconds": fit_seconds, "query_seconds": query_seconds})
    return rows


def summarize(rows: list[dict]) -> list[dict]:
    """Mean and std (ddof 0) over trials per predictor x size, in first-seen order."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["predictor"], r["train_size"]), []).append(r)
    out = []
    for (name, n), rs in groups.items():
        entry = {"predictor": name, "train_size": n, "trials": len(rs)}
        for key in ("kendall_tau", "spearman_rho", "precision_at_10", "regret", "mae", "fit_seconds",
                    "query_seconds"):
            v = np.array([r[key] for r in rs], dtype=np.float64)
            entry[key], entry[f"{key}_std"] = float(np.nanmean(v)), float(np.nanstd(v))
        out.append(entry)
    return out
