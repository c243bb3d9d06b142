"""nasflow.train: learning, determinism, checkpoint/resume."""

import pytest
import torch
import torch.nn as nn

from nasflow.data import load_dataset, random_labels
from nasflow.errors import CheckpointError, ParamsError
from nasflow.train import TrainConfig, seed_everything, train, train_packed


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny_cnn(num_classes=10, dropout=0.0):
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(32 * 4 * 4, num_classes))


CFG = TrainConfig(epochs=3, batch_size=64, lr=0.05, image_size=16, nesterov=True, grad_clip=5.0)


def run(splits, cfg=CFG, seed=0, dropout=0.1, **kw):
    seed_everything(seed)
    model = tiny_cnn(dropout=dropout)
    out = train(model, splits, cfg, seed=seed, device="cpu", progress=False, **kw)
    return model, out


@pytest.fixture(scope="module")
def reference(digits):
    """One uninterrupted run (seed 0), shared by the tests that compare against it."""
    model, out = run(digits)
    return model, out


def test_learns_above_chance(reference):
    _, out = reference
    assert out["epochs"] == 3 and len(out["history"]) == 3
    assert out["final_acc"] > 50.0  # chance is 10%
    assert out["best_acc"] >= out["final_acc"]
    h = out["history"]
    assert h[0]["lr"] == pytest.approx(0.05) and h[-1]["lr"] < h[0]["lr"]  # cosine, per epoch
    assert h[-1]["train_loss"] < h[0]["train_loss"]
    assert out["precision_used"] == "fp32" and out["device"] == "cpu" and out["resumed_from"] is None
    assert out["seconds"] == pytest.approx(sum(e["seconds"] for e in h))


def test_same_seed_same_history(digits, reference):
    m1, a = reference
    m2, b = run(digits)
    strip = lambda h: [{k: v for k, v in e.items() if not k.endswith("seconds")} for e in h]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    _, c = run(digits, seed=1)
    assert strip(c["history"]) != strip(a["history"])


def test_resume_after_interruption_is_exact(digits, reference, tmp_path):
    ref_model, ref = reference
    ck = tmp_path / "ck" / "run.pt"
    _, part = run(digits, checkpoint=ck, stop_after_epochs=1)
    assert part["epochs"] == 1 and ck.exists()
    # a fresh process would rebuild the model (consuming RNG differently) and resume from the file
    model, out = run(digits, checkpoint=ck, seed=0)
    assert out["resumed_from"] == 1 and out["epochs"] == 3
    for k in ("final_acc", "best_acc", "final_train_acc"):
        assert out[k] == ref[k]
    assert [e["train_loss"] for e in out["history"]] == [e["train_loss"] for e in ref["history"]]
    assert all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), ref_model.state_dict().values()))
    # a finished checkpoint just returns the result
    _, again = run(digits, checkpoint=ck)
    assert again["resumed_from"] == 3 and again["final_acc"] == ref["final_acc"]


def test_bad_checkpoints(digits, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(CheckpointError, match=str(bad)):
        run(digits, checkpoint=bad)
    ck = tmp_path / "ok.pt"
    run(digits, cfg=TrainConfig(epochs=2, batch_size=64, lr=0.05, image_size=16), checkpoint=ck,
        stop_after_epochs=1)
    with pytest.raises(CheckpointError, match="different config"):
        run(digits, checkpoint=ck)  # CFG has epochs=3
    with pytest.raises(CheckpointError, match="seed"):
        run(digits, cfg=TrainConfig(epochs=2, batch_size=64, lr=0.05, image_size=16), checkpoint=ck, seed=7)


def test_random_labels_and_eval_every(digits):
    labels = random_labels(len(digits.y_train), 10, seed=0)
    cfg = TrainConfig(epochs=2, batch_size=128, lr=0.05, image_size=16, eval_every=2, cutout=4,
                      label_smoothing=0.1)
    _, out = run(digits, cfg=cfg, labels=labels)
    assert out["history"][0]["eval_acc"] is None and out["history"][1]["eval_acc"] is not None
    assert out["final_acc"] < 40.0  # random labels teach nothing about the test set


def test_config_validation():
    with pytest.raises(ParamsError, match="precision"):
        TrainConfig(epochs=1, batch_size=8, lr=0.1, precision=8)
    with pytest.raises(ParamsError, match="epochs"):
        TrainConfig(epochs=0, batch_size=8, lr=0.1)
    cfg = TrainConfig.from_dict({"epochs": 2, "batch_size": 8, "lr": 0.1, "channels": 8, "image_size": 16})
    assert cfg.image_size == 16


class _TwoHeads(nn.Module):
    """A stem and two heads: the first training step uses both heads, every later one only head `b` (as a
    supernet step that does not sample an op). `a_after_first` is head a's weight after the first step."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.a, self.b = nn.Linear(4, 10), nn.Linear(4, 10)
        self.steps, self.a_after_first = 0, None

    def forward(self, x):
        h = self.stem(x).mean((2, 3))
        if not self.training:
            return self.b(h)
        self.steps += 1
        if self.steps == 2:
            self.a_after_first = self.a.weight.detach().clone()
        return self.a(h) + self.b(h) if self.steps == 1 else self.b(h)


@pytest.mark.parametrize("grad_reset", ["none", "zeros"])
def test_grad_reset_moves_unused_params_only_with_zeros(digits, grad_reset):
    splits = load_dataset("digits", subset=256)
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, image_size=16, momentum=0.9, weight_decay=5e-4,
                      grad_reset=grad_reset)
    seed_everything(0)
    model = _TwoHeads()
    train(model, splits, cfg, seed=0, device="cpu", progress=False)
    assert model.steps == 4 and model.a_after_first is not None
    if grad_reset == "none":  # grads set to None: SGD skips head a after its one step
        assert torch.equal(model.a.weight, model.a_after_first) and model.a.weight.grad is None
    else:  # zeroed grads (PyTorch 1.4's zero_grad): weight decay and momentum keep moving head a
        assert not torch.allclose(model.a.weight, model.a_after_first, atol=1e-6)
        assert torch.count_nonzero(model.a.weight.grad) == 0


def test_grad_reset_and_augment_order_are_checked():
    neutral = TrainConfig(epochs=1, batch_size=8, lr=0.1)  # the params schema's defaults
    assert (neutral.grad_reset, neutral.nesterov, neutral.grad_clip, neutral.momentum) == ("none", False, None, 0.9)
    assert (neutral.lr_min, neutral.label_smoothing, neutral.augment_order) == (0.0, 0.0, "resize_then_crop")
    with pytest.raises(ParamsError, match="grad_reset"):
        TrainConfig(epochs=1, batch_size=8, lr=0.1, grad_reset="zero")
    with pytest.raises(ParamsError, match="augment_order"):
        TrainConfig(epochs=1, batch_size=8, lr=0.1, augment_order="crop")


# ------------------------------------------------------------------------------------------ packed training

def _strip(history):
    return [{k: v for k, v in e.items() if not k.endswith("seconds") and k != "pack"} for e in history]


def _built(seed, dropout=0.1):
    seed_everything(seed)
    return tiny_cnn(dropout=dropout)


def test_packed_equals_one_by_one(digits):
    # dropout draws from the global RNG inside every step: each model of the pack must get its own stream
    seeds = [0, 1, 2]
    alone = [run(digits, seed=s) for s in seeds]
    models = [_built(s) for s in seeds]
    packed = train_packed(models, digits, CFG, seeds=seeds, device="cpu", progress=False)
    for (m_alone, r_alone), m_packed, r_packed in zip(alone, models, packed):
        assert _strip(r_packed["history"]) == _strip(r_alone["history"])
        assert r_packed["final_acc"] == r_alone["final_acc"] and r_packed["status"] == "ok"
        assert all(torch.equal(p, q) for p, q in zip(m_alone.state_dict().values(), m_packed.state_dict().values()))
    assert len({r["final_acc"] for r in packed}) > 1  # the seeds do differ
    assert all(e["pack"] == 3 for r in packed for e in r["history"])  # each epoch's cost is a third of the pack's


def test_packed_resumes_each_model_from_its_own_checkpoint(digits, tmp_path):
    # model 0 was killed after 2 epochs, model 1 after 1, model 2 never started: one pack finishes all three
    seeds, ckpts = [0, 1, 2], [tmp_path / f"m{s}.pt" for s in range(3)]
    for s, stop in ((0, 2), (1, 1)):
        train(_built(s), digits, CFG, seed=s, device="cpu", checkpoint=ckpts[s], progress=False,
              stop_after_epochs=stop)
    models = [_built(s) for s in seeds]
    packed = train_packed(models, digits, CFG, seeds=seeds, device="cpu", checkpoints=ckpts, progress=False)
    assert [r["resumed_from"] for r in packed] == [2, 1, None]
    for s, m_packed, r_packed in zip(seeds, models, packed):
        m_alone, r_alone = run(digits, seed=s)
        assert _strip(r_packed["history"]) == _strip(r_alone["history"])
        assert all(torch.equal(p, q) for p, q in zip(m_alone.state_dict().values(), m_packed.state_dict().values()))


def test_packed_checks_its_arguments(digits):
    with pytest.raises(ParamsError, match="2 models, 1 seeds"):
        train_packed([tiny_cnn(), tiny_cnn()], digits, CFG, seeds=[0], device="cpu", progress=False)
    with pytest.raises(ParamsError, match="compile: expected one of"):
        train(tiny_cnn(), digits, CFG, seed=0, device="cpu", progress=False, compile="fast")


@pytest.mark.slow
def test_compiled_equals_eager_to_tolerance(digits):
    # torch.compile (inductor, C++ on the CPU) fuses kernels: the same training to float tolerance, not bit for bit
    # (one step agrees to ~1e-7; a small lr keeps SGD from amplifying that over the epoch)
    cfg = TrainConfig(epochs=1, batch_size=256, lr=0.005, image_size=16, grad_clip=5.0)
    eager_model, eager = run(digits, cfg=cfg, dropout=0.0)
    seed_everything(0)
    compiled_model = tiny_cnn(dropout=0.0)
    init = {k: v.clone() for k, v in compiled_model.state_dict().items()}
    compiled = train(compiled_model, digits, cfg, seed=0, device="cpu", progress=False, compile="default")
    assert compiled["compiled"] == "default" and "compiled" not in eager
    (a,), (b,) = eager["history"], compiled["history"]
    assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    assert b["eval_loss"] == pytest.approx(a["eval_loss"], rel=1e-3)
    # the epoch's weight updates agree to a few percent (per-step rounding differences compound over its 6 steps)
    eager_state, compiled_state = eager_model.state_dict(), compiled_model.state_dict()
    for k, w0 in init.items():
        if not w0.is_floating_point():
            continue
        update, gap = (eager_state[k] - w0).norm(), (compiled_state[k] - eager_state[k]).norm()
        assert gap <= 0.05 * update, (k, float(gap / update))
