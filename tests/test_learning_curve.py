"""nasflow.estimators.learning_curve: SoTL, SoTL-E, early accuracy, pow3 extrapolation, their costs."""
import math

import numpy as np
import pytest
import torch

from nasflow.data import load_dataset
from nasflow.errors import ParamsError
from nasflow.estimators import learning_curve as lc
from nasflow.models import nb201 as nb201_net
from nasflow.spaces import nb201
from nasflow.train import TrainConfig, train


def record(epoch, train_loss, eval_acc, seconds, **extra):
    return {"epoch": epoch, "lr": 0.1, "train_loss": train_loss, "train_acc": 50.0,
            "eval_loss": None if eval_acc is None else 1.0, "eval_acc": eval_acc,
            "train_seconds": seconds * 0.8, "seconds": seconds, **extra}


# epoch 2 not evaluated (eval_every)
HISTORY = [record(1, 2.0, 30.0, 1.5), record(2, 1.25, None, 2.0), record(3, 0.5, 60.0, 2.5)]


def test_hand_computed_scores_and_costs():
    assert lc.sotl(HISTORY) == -(2.0 + 1.25 + 0.5) == -3.75
    assert lc.sotl_e(HISTORY) == -0.5
    assert lc.acc_at(HISTORY, 1) == 30.0 and lc.acc_at(HISTORY, 3) == 60.0
    assert lc.seconds_until(HISTORY, 1) == 1.5
    assert lc.seconds_until(HISTORY, 2) == 3.5
    assert lc.seconds_until(HISTORY) == lc.seconds_until(HISTORY, 3) == 6.0
    result = {"history": HISTORY, "status": "ok", "final_acc": 60.0, "seconds": 6.0}
    assert lc.estimate("sotl", result) == (-3.75, 6.0)
    assert lc.estimate("sotl_e", result) == (-0.5, 6.0)
    assert lc.estimate("acc", result, k=1) == (30.0, 1.5)
    assert lc.KINDS == ("sotl", "sotl_e", "acc", "lce")


def pow3_history(c, a, alpha, epochs):
    return [record(t, 1.0 / t, c - a * t ** (-alpha), 1.0) for t in epochs]


def test_pow3_recovers_a_known_curve():
    c, a, alpha = 92.0, 65.0, 0.8
    history = pow3_history(c, a, alpha, range(1, 16))
    truth = c - a * 200 ** (-alpha)
    got = lc.pow3_extrapolate(history, 200)
    assert got == pytest.approx(truth, abs=1e-3)
    assert abs(got - history[-1]["eval_acc"]) > 1.0  # it extrapolated, not just returned the last point
    assert lc.pow3_extrapolate(history, 200) == got  # deterministic
    result = {"history": history, "status": "ok"}
    assert lc.estimate("lce", result, target_epoch=200) == (got, 15.0)
    # evaluated every 5 epochs: three points still determine the curve
    sparse = [r if r["epoch"] % 5 == 0 else {**r, "eval_acc": None, "eval_loss": None} for r in history]
    assert lc.pow3_extrapolate(sparse, 200) == pytest.approx(truth, abs=1e-3)


def test_pow3_clips_to_percent():
    # a curve heading above 100 % (c would be 120) is held to the bound c <= 100 and the result clipped
    history = pow3_history(120.0, 100.0, 0.3, range(1, 10))
    assert 0.0 <= lc.pow3_extrapolate(history, 10_000) <= 100.0


def test_pow3_falls_back_to_the_last_accuracy_with_two_points():
    assert lc.pow3_extrapolate(HISTORY, 200) == 60.0  # epochs 1 and 3 evaluated only
    with pytest.raises(ParamsError, match="no evaluated epoch"):
        lc.pow3_extrapolate([record(1, 1.0, None, 1.0)], 200)


@pytest.mark.parametrize("bad", [
    {"diverged": True},           # marked by nasflow.train
    {"train_loss": math.nan},
    {"train_loss": math.inf},
    {"eval_acc": math.nan},
])
def test_diverged_history_is_never_a_score(bad):
    history = pow3_history(90.0, 60.0, 0.5, range(1, 5))
    history[-1] = {**history[-1], **bad}
    assert lc.diverged(history)
    assert math.isnan(lc.sotl(history)) and math.isnan(lc.sotl_e(history))
    assert math.isnan(lc.acc_at(history, 1)) and math.isnan(lc.pow3_extrapolate(history, 200))
    assert math.isnan(lc.acc_at(history, 10))  # a diverged run stopped early: k past its end is NaN, too
    result = {"history": history, "status": "diverged"}
    for kind in lc.KINDS:
        score, cost = lc.estimate(kind, result, k=2)
        assert math.isnan(score) and cost == (2.0 if kind == "acc" else 4.0)
    assert lc.estimate("acc", result, k=10)[1] == 4.0  # the cost is what the run spent


def test_status_diverged_alone_is_nan():
    score, cost = lc.estimate("sotl", {"history": HISTORY, "status": "diverged"})
    assert math.isnan(score) and cost == 6.0
    assert not lc.diverged(HISTORY)


@pytest.mark.parametrize("k, match", [(0, "k must be an epoch from 1 to 3"), (4, "got 4"), (True, "got True"),
                                      (1.0, "got 1.0"), (2, "epoch 2 was not evaluated")])
def test_bad_k(k, match):
    with pytest.raises(ParamsError, match=match):
        lc.acc_at(HISTORY, k)
    with pytest.raises(ParamsError, match=match):
        lc.estimate("acc", {"history": HISTORY, "status": "ok"}, k=k)


def test_bad_input():
    result = {"history": HISTORY, "status": "ok"}
    with pytest.raises(ParamsError, match="unknown kind 'sotle'"):
        lc.estimate("sotle", result)
    with pytest.raises(ParamsError, match="needs k"):
        lc.estimate("acc", result)
    with pytest.raises(ParamsError, match="k must be"):
        lc.seconds_until(HISTORY, 5)
    with pytest.raises(ParamsError, match="non-empty list"):
        lc.sotl([])
    with pytest.raises(ParamsError, match="expected epochs 1, 2"):
        lc.sotl(HISTORY[::-1])
    with pytest.raises(ParamsError, match="target_epoch"):
        lc.pow3_extrapolate(HISTORY, 0)
    with pytest.raises(ParamsError, match="training result dict"):
        lc.estimate("sotl", HISTORY)


def test_sotl_ranks_the_arch_with_lower_training_loss_higher():
    rng = np.random.default_rng(0)
    base = np.sort(rng.uniform(0.5, 2.5, size=10))[::-1]  # a decreasing loss curve
    better = [record(t, loss - 0.1, None, 1.0) for t, loss in enumerate(base, 1)]
    worse = [record(t, loss, None, 1.0) for t, loss in enumerate(base, 1)]
    assert lc.sotl(better) > lc.sotl(worse)
    assert lc.sotl_e(better) > lc.sotl_e(worse)
    # a per-epoch constant factor (mean vs sum of minibatch losses) leaves the ranking unchanged
    scaled = lambda h: [{**r, "train_loss": 7 * r["train_loss"]} for r in h]  # noqa: E731
    assert lc.sotl(scaled(better)) > lc.sotl(scaled(worse))


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine this tiny net trains several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_real_training_history(one_thread):
    torch.manual_seed(0)
    splits = load_dataset("digits", subset=300)
    arch = nb201.format(["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "nor_conv_3x3",
                         "skip_connect"])
    model = nb201_net.build_network(arch, channels=4, depth=1, num_classes=splits.num_classes)
    result = train(model, splits, TrainConfig(epochs=3, batch_size=64, lr=0.05, image_size=8), seed=0,
                   device="cpu", progress=False)
    assert result["status"] == "ok" and len(result["history"]) == 3
    for kind in lc.KINDS:
        score, cost = lc.estimate(kind, result, k=2)
        assert math.isfinite(score) and math.isfinite(cost) and cost > 0
    score, cost = lc.estimate("acc", result, k=2)
    assert score == result["history"][1]["eval_acc"]
    assert cost == sum(r["seconds"] for r in result["history"][:2]) < result["seconds"]
    assert lc.estimate("sotl", result) == (-sum(r["train_loss"] for r in result["history"]),
                                           pytest.approx(result["seconds"]))
    assert 0.0 <= lc.estimate("lce", result)[0] <= 100.0
