"""Learning-curve estimators: scores read off a proxy training's per-epoch history, at no extra training cost.

    sotl    -(sum over epochs of the training loss)    Ru et al. 2021, "Speedy Performance Estimation for
    sotl_e  -(training loss of the last epoch)         Neural Architecture Search" (SoTL, SoTL-E)
    acc     evaluation accuracy after epoch k          (early stopping: the cost of the first k epochs only)
    lce     the pow3 curve y(t) = c - a * t**(-alpha) fitted to the evaluated (epoch, eval_acc) points and
            read at `target_epoch`: Domhan et al. 2015, "Speeding up Automatic Hyperparameter Optimization
            of Deep Neural Networks by Extrapolation of Learning Curves" (IJCAI)

Higher is better for every score, hence the negated losses. A history's `train_loss` is the epoch's mean
loss per image (`nasflow.train`), where Ru et al. sum the minibatch losses: the two differ by the number of
minibatches per epoch, a factor shared by every arch trained under the same setting, so SoTL ranks archs as
Ru et al.'s does (exactly when all batches have the same size; a last, smaller batch weighs by its size here).

A diverged history -- an epoch marked `diverged`, or a non-finite loss or accuracy -- is never a score: every
estimator returns NaN for it. Costs (`seconds_until`, the second value of `estimate`) stay the seconds spent.
Pure functions of the history (numpy/scipy only), deterministic.
"""
from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from nasflow.errors import ParamsError

KINDS = ("sotl", "sotl_e", "acc", "lce")

_POW3_MIN_POINTS = 3  # pow3 has three parameters: fewer points do not determine it


def _records(history) -> list[dict]:
    """`history` checked to be a non-empty list of per-epoch dicts numbered 1, 2, ... in order."""
    if not isinstance(history, (list, tuple)) or not history:
        raise ParamsError(f"history: expected a non-empty list of per-epoch records (got {history!r:.80})")
    for position, record in enumerate(history, 1):
        if not isinstance(record, dict) or "train_loss" not in record or "seconds" not in record:
            raise ParamsError(f"history: epoch record {position} is not a per-epoch dict with train_loss "
                              "and seconds")
        if record.get("epoch") != position:
            raise ParamsError(f"history: record {position} says epoch {record.get('epoch')!r}; expected "
                              "epochs 1, 2, ... in order")
    return list(history)


def _not_finite(value) -> bool:
    return value is not None and not math.isfinite(value)


def diverged(history) -> bool:
    """True when any epoch is marked `diverged` or has a non-finite loss or accuracy."""
    return any(record.get("diverged") or _not_finite(record["train_loss"])
               or any(_not_finite(record.get(key)) for key in ("train_acc", "eval_loss", "eval_acc"))
               for record in _records(history))


def _is_epoch_number(k) -> bool:
    return not isinstance(k, bool) and isinstance(k, (int, np.integer)) and k >= 1


def _epoch_count(history, k, what: str) -> int:
    """`k` checked to be an epoch of `history` (1-based)."""
    n = len(history)
    if not _is_epoch_number(k) or k > n:
        raise ParamsError(f"{what}: k must be an epoch from 1 to {n} (got {k!r})")
    return int(k)


def sotl(history) -> float:
    """Sum of training losses, negated (higher = better); NaN for a diverged history."""
    if diverged(history):
        return math.nan
    return -float(sum(record["train_loss"] for record in history))


def sotl_e(history) -> float:
    """The last epoch's training loss, negated (higher = better); NaN for a diverged history."""
    if diverged(history):
        return math.nan
    return -float(history[-1]["train_loss"])


def acc_at(history, k: int) -> float:
    """The evaluation accuracy after epoch `k` (1-based); NaN for a diverged history.

    ParamsError when `k` is not an epoch of the history or that epoch was not evaluated (`eval_every`)."""
    if diverged(history) and _is_epoch_number(k):  # before the range check: a diverged run stops early
        return math.nan
    k = _epoch_count(history, k, "acc_at")
    acc = history[k - 1].get("eval_acc")
    if acc is None:
        raise ParamsError(f"acc_at: epoch {k} was not evaluated (evaluated epochs: "
                          f"{[r['epoch'] for r in history if r.get('eval_acc') is not None]})")
    return float(acc)


def seconds_until(history, k: int | None = None) -> float:
    """Seconds (training + evaluation) of epochs 1..k, all epochs when k is None: what an estimate that
    needs only the first k epochs costs."""
    history = _records(history)
    k = len(history) if k is None else _epoch_count(history, k, "seconds_until")
    return float(sum(record["seconds"] for record in history[:k]))


def _pow3(t, c, a, alpha):
    return c - a * np.power(t, -alpha)


def pow3_extrapolate(history, target_epoch: float) -> float:
    """The pow3 learning curve fitted to the evaluated (epoch, eval_acc) points, read at `target_epoch`
    and clipped to [0, 100]; NaN for a diverged history.

    Fallback: with fewer than 3 evaluated epochs, or when the least-squares fit fails (or gives a
    non-finite value), the last observed eval_acc is returned -- the curve's best guess without a fit.
    Bounds 0 <= c <= 100, a >= 0, alpha > 0; the initial guess depends on the points only (deterministic):
    c0 = the last accuracy, alpha0 = 0.5, a0 chosen so the curve passes through the first point.
    """
    if isinstance(target_epoch, bool) or not isinstance(target_epoch, Real) or not target_epoch >= 1:
        raise ParamsError(f"pow3_extrapolate: target_epoch must be a number >= 1 (got {target_epoch!r})")
    if diverged(history):
        return math.nan
    points = [(r["epoch"], r["eval_acc"]) for r in history if r.get("eval_acc") is not None]
    if not points:
        raise ParamsError("pow3_extrapolate: the history has no evaluated epoch")
    last_acc = float(points[-1][1])
    if len(points) < _POW3_MIN_POINTS:
        return last_acc
    epochs, accs = (np.array(column, dtype=np.float64) for column in zip(*points))
    c0 = float(np.clip(accs[-1], 1e-6, 100.0 - 1e-6))  # strictly inside the bounds, for the trust region
    alpha0 = 0.5
    a0 = max(c0 - accs[0], 1e-6) * epochs[0] ** alpha0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)  # an exact fit (3 points) has no covariance
            (c, a, alpha), _ = curve_fit(_pow3, epochs, accs, p0=(c0, a0, alpha0),
                                         bounds=((0.0, 0.0, 1e-8), (100.0, np.inf, np.inf)),
                                         method="trf", maxfev=10_000, ftol=1e-12, xtol=1e-12, gtol=1e-12)
    except (RuntimeError, ValueError):  # no convergence within maxfev, or a degenerate problem
        return last_acc
    value = float(_pow3(float(target_epoch), c, a, alpha))
    return float(np.clip(value, 0.0, 100.0)) if math.isfinite(value) else last_acc


def estimate(kind: str, result: dict, *, k: int | None = None, target_epoch: float = 200) -> tuple[float, float]:
    """(score, cost in seconds) of estimator `kind` (one of KINDS) from a training result dict.

    `k` (the epoch to read) is used by "acc" only, which costs the first k epochs; `target_epoch` by "lce"
    only. sotl, sotl_e and lce cost the whole history. A diverged result scores NaN and costs what was spent
    (for acc: the epochs up to k that ran)."""
    if kind not in KINDS:
        raise ParamsError(f"estimate: unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not isinstance(result, dict) or "history" not in result:
        raise ParamsError("estimate: result must be a training result dict with a history")
    history = _records(result["history"])
    if kind == "acc" and k is None:
        raise ParamsError("estimate: kind 'acc' needs k (the epoch to read the accuracy after)")
    if result.get("status") == "diverged" or diverged(history):  # the result's own verdict counts too
        if kind != "acc":
            return math.nan, seconds_until(history)
        if not _is_epoch_number(k):
            raise ParamsError(f"estimate: k must be an epoch number >= 1 (got {k!r})")
        return math.nan, seconds_until(history, min(int(k), len(history)))  # it may have stopped before k
    if kind == "acc":
        return acc_at(history, k), seconds_until(history, k)
    cost = seconds_until(history)
    if kind == "sotl":
        return sotl(history), cost
    if kind == "sotl_e":
        return sotl_e(history), cost
    return pow3_extrapolate(history, target_epoch), cost
