"""Differentiable search (GDAS, DARTS-V1/V2, RSPS, SETN) on tiny NB201 search networks, on the CPU."""
import json

import pytest
import torch
import torch.nn.functional as F

from nasflow.data import load_dataset
from nasflow.errors import CheckpointError, ParamsError
from nasflow.models.nb201_search import NB201SearchNetwork, gumbel_hard_weights
from nasflow.search.differentiable import METHODS, darts_v2_arch_grad, hessian_vector_product, run_search
from nasflow.spaces import nb201 as space
from nasflow.train import seed_everything

KW = dict(C=4, depth=1, batch_size=64, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9, w_wd=5e-4, grad_clip=5.0,
          a_lr=3e-3, a_betas=(0.5, 0.999), a_wd=1e-3, tau_max=10.0, tau_min=0.1, seed=0, device="cpu",
          progress=False, image_size=8, select_num=8)


def setup_module():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", eval_split="valid", subset=192)


def _no_seconds(history):
    return [{k: v for k, v in h.items() if k not in ("seconds", "train_seconds")} for h in history]


# ------------------------------------------------------------------------------------------- the model

def test_straight_through_weights_are_one_hot_and_reach_every_alpha():
    torch.manual_seed(0)
    alphas = torch.randn(6, 5, requires_grad=True)
    w, index = gumbel_hard_weights(alphas, tau=1.0)
    one_hot = F.one_hot(index, 5).float()
    assert torch.allclose(w.detach(), one_hot, atol=1e-6, rtol=0)
    assert w.detach()[one_hot == 0].abs().max() == 0  # exactly zero off the sample
    (w * torch.randn(6, 5)).sum().backward()
    assert (alphas.grad != 0).all()


def test_gdas_forward_runs_the_sampled_arch_and_grads_every_alpha():
    torch.manual_seed(1)
    model = NB201SearchNetwork(C=4, N=1, num_classes=3, mode="gdas").double()
    model.set_tau(1.0)
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    out = model(x)
    sampled = model.last_arch
    assert len(sampled) == 6
    # value: exactly the sampled single path (the other ops' zero weights add nothing)
    assert torch.allclose(out, model(x, arch=sampled), atol=1e-12, rtol=1e-12)
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    assert model.alphas.grad is not None and (model.alphas.grad != 0).all()


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_presampled_gdas_draws_equal_fresh_ones_and_refuse_stale_alphas(space_name):
    # a GDAS iteration draws both steps' samples at once (one host read of their indices): the same noise, in the
    # same order, as two forwards drawing one each
    from nasflow.models.darts_search import DartsSearchNetwork

    def net():
        torch.manual_seed(3)
        m = (NB201SearchNetwork(C=4, N=1, num_classes=3, mode="gdas") if space_name == "nb201"
             else DartsSearchNetwork(C=4, layers=3, num_classes=3, mode="gdas"))
        m.set_tau(2.0)
        with torch.no_grad():
            for a in m.arch_parameters():
                a.normal_()  # not uniform: argmax depends on alphas and noise
        return m

    x = torch.randn(4, 3, 8, 8)
    fresh = net()
    torch.manual_seed(7)
    outs_fresh = [(fresh(x), fresh.last_arch) for _ in range(2)]
    pre = net()
    torch.manual_seed(7)
    pre.presample(2)
    assert len(pre.gumbel.queue) == 2 and all(isinstance(i, tuple) for _, _, idx in pre.gumbel.queue for i in idx)
    outs_pre = [(pre(x), pre.last_arch) for _ in range(2)]
    assert [a for _, a in outs_pre] == [a for _, a in outs_fresh]
    assert all(torch.equal(p, f) for (p, _), (f, _) in zip(outs_pre, outs_fresh))
    assert outs_pre[0][1] != outs_pre[1][1]  # two draws, not one reused
    pre.presample(1)
    with torch.no_grad():
        pre.arch_parameters()[0].add_(1.0)  # an optimiser step in between
    with pytest.raises(RuntimeError, match="stale"):
        pre(x)


def test_darts_and_setn_modes_grad_alphas_uniform_does_not():
    torch.manual_seed(2)
    model = NB201SearchNetwork(C=4, N=1, num_classes=3, mode="darts")
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    assert (model.alphas.grad != 0).all()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x, mode="uniform"), y).backward()
    assert model.alphas.grad is None
    assert all(p.grad is not None for p in model.stem.parameters())
    assert {id(p) for p in model.weights()}.isdisjoint({id(p) for p in model.arch_parameters()})
    assert len(model.weights()) + 1 == len(list(model.parameters()))


def test_genotype_is_argmax_with_none():
    model = NB201SearchNetwork(C=2, N=1)
    with torch.no_grad():
        model.alphas.zero_()
        for k, op in enumerate(["none", "skip_connect", "none", "nor_conv_3x3", "avg_pool_3x3", "none"]):
            model.alphas[k, space.OPS.index(op)] = 1.0
    expected = "|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|avg_pool_3x3~1|none~2|"
    assert model.genotype() == expected
    assert model.topk_archs(1) == [expected]
    top = model.topk_archs(5)
    assert len(set(top)) == 5 and top[0] == expected
    assert model.log_prob(expected) == pytest.approx(max(model.log_prob(a) for a in top))
    # an all-`none` cell still runs (zeros into the next stage)
    assert model(torch.randn(2, 3, 8, 8), arch=space.format(["none"] * 6)).shape == (2, 10)


def test_path_rng_is_saved_in_the_state_dict():
    a = NB201SearchNetwork(C=2, N=1, seed=5)
    a.sample_uniform()
    b = NB201SearchNetwork(C=2, N=1, seed=9)
    b.load_state_dict(a.state_dict())
    assert [a.sample_uniform() for _ in range(5)] == [b.sample_uniform() for _ in range(5)]
    a.reseed(3)
    arch = a.random_arch()
    a.reseed(3)
    assert arch == space.decode(a.sample_uniform()) == space.canonical(arch)


# ---------------------------------------------------------------------------------------------- DARTS-V2

class _TinyMixed(torch.nn.Module):
    """A smooth two-edge DARTS-style model (tanh / sigmoid / linear mixed ops)."""

    def __init__(self):
        super().__init__()
        self.inp = torch.nn.Linear(5, 4)
        self.ops = torch.nn.ModuleList(torch.nn.Linear(4, 4) for _ in range(6))
        self.out = torch.nn.Linear(4, 3)
        self.alphas = torch.nn.Parameter(torch.randn(2, 3))

    def weights(self):
        return [p for n, p in self.named_parameters() if n != "alphas"]

    def arch_parameters(self):
        return [self.alphas]

    def forward(self, x):
        h = self.inp(x)
        for e in range(2):
            w = self.alphas[e].softmax(-1)
            a, b, c = self.ops[3 * e:3 * e + 3]
            h = w[0] * torch.tanh(a(h)) + w[1] * torch.sigmoid(b(h)) + w[2] * c(h)
        return self.out(h)


def _exact_hvp(model, vector, x, y):
    loss = F.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, model.weights(), create_graph=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vector))
    return torch.autograd.grad(dot, model.arch_parameters())[0]


def test_finite_difference_hvp_matches_autograd():
    torch.manual_seed(3)
    model = _TinyMixed()  # float32, as in a search
    x, y = torch.randn(16, 5), torch.randint(0, 3, (16,))
    vector = [torch.randn_like(p) for p in model.weights()]
    before = [p.detach().clone() for p in model.weights()]
    approx = hessian_vector_product(model, vector, x, y, r=1e-2)[0]
    exact = _exact_hvp(model, vector, x, y)
    assert torch.allclose(approx, exact, rtol=1e-2, atol=1e-2 * exact.abs().max().item())
    assert all(torch.equal(p, b) for p, b in zip(model.weights(), before))  # weights restored exactly


def test_finite_difference_hvp_on_the_search_network():
    # ReLU kinks make the finite difference of a tiny ReLU network noisy at DARTS' r = 0.01 (a few
    # pre-activations cross 0); with a small r (float64) it matches autograd closely.
    torch.manual_seed(3)
    model = NB201SearchNetwork(C=3, N=1, num_classes=3, mode="darts").double()
    with torch.no_grad():
        model.alphas.normal_()
    x, y = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    vector = [torch.randn_like(p) for p in model.weights()]
    approx = hessian_vector_product(model, vector, x, y, r=1e-5)[0]
    exact = _exact_hvp(model, vector, x, y)
    assert torch.allclose(approx, exact, rtol=1e-4, atol=1e-4 * exact.abs().max().item())


def test_darts_v2_with_zero_lr_is_first_order():
    torch.manual_seed(4)
    model = NB201SearchNetwork(C=3, N=1, num_classes=3, mode="darts").double()
    opt = torch.optim.SGD(model.weights(), lr=0.0, momentum=0.9, weight_decay=5e-4)
    xt, yt = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    xv, yv = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([2, 1, 0, 1])
    darts_v2_arch_grad(model, opt, (xt, yt), (xv, yv))
    second = model.alphas.grad.clone()
    model.alphas.grad = None
    first = torch.autograd.grad(F.cross_entropy(model(xv), yv), model.alphas)[0]
    assert torch.allclose(second, first, atol=1e-12)


# ------------------------------------------------------------------------------------------- run_search

def test_tiny_gdas_run_moves_alpha(digits):
    r = run_search("gdas", digits, epochs=3, **KW)
    seed_everything(KW["seed"])
    init = NB201SearchNetwork(KW["C"], KW["depth"], 10).alphas.detach().softmax(-1)
    final = torch.tensor(r["alphas"])
    assert (final - init).abs().max() > 1e-3
    assert final.shape == (6, 5) and torch.allclose(final.sum(-1), torch.ones(6))
    h = r["history"]
    assert [e["epoch"] for e in h] == [1, 2, 3]
    assert h[0]["tau"] == pytest.approx(10.0) and h[-1]["tau"] == pytest.approx(0.1)
    assert h[1]["tau"] == pytest.approx(5.05)
    assert h[-1]["lr"] < h[0]["lr"]
    for e in h:
        assert e["arch"] == space.canonical(e["arch"]) and 0 <= e["valid_acc"] <= 100
        assert e["arch_acc"] is not None and e["train_loss"] > 0 and e["seconds"] > 0
    assert r["best"] == h[-1]["arch"] == space.decode(final.argmax(-1).tolist())
    assert r["method"] == "gdas" and r["device"] == "cpu" and r["seconds"] > 0


@pytest.mark.parametrize("method", ["darts-v1", "darts-v2", "rsps", "setn"])
def test_every_method_runs(digits, method):
    r = run_search(method, digits, epochs=1, **KW)
    assert r["best"] == space.canonical(r["best"])
    assert len(r["history"]) == 1
    if method in ("rsps", "setn"):
        assert r["selection"]["evaluated"] == KW["select_num"]
        assert r["best"] in [c["arch"] for c in r["selection"]["candidates"]]
    if method == "rsps":
        assert r["alphas"] is None and r["history"][0]["arch_acc"] is None
    else:
        assert r["history"][0]["arch"] is not None


@pytest.mark.parametrize("method", ["gdas", "darts-v2"])
def test_resume_after_interruption_gives_the_same_alphas(digits, tmp_path, method):
    full = run_search(method, digits, epochs=2, **KW)
    ckpt = tmp_path / "search.pt"
    part = run_search(method, digits, epochs=2, checkpoint=ckpt, stop_after_epochs=1, **KW)
    assert not part["completed"] and part["best"] is None and ckpt.exists()
    resumed = run_search(method, digits, epochs=2, checkpoint=ckpt, **KW)
    assert resumed["resumed_from"] == 1 and resumed["completed"]
    assert resumed["alphas"] == full["alphas"]  # bit-identical on the CPU
    assert resumed["best"] == full["best"]
    assert _no_seconds(resumed["history"]) == _no_seconds(full["history"])
    with pytest.raises(CheckpointError, match="different config"):
        run_search(method, digits, epochs=3, checkpoint=ckpt, **KW)


def test_refuses_test_split_and_unknown_method(digits):
    with pytest.raises(ParamsError, match="eval_split"):
        run_search("gdas", load_dataset("digits", eval_split="test", subset=64), epochs=1, **KW)
    with pytest.raises(ParamsError, match="unknown method"):
        run_search("enas-x", digits, epochs=1, **KW)
    assert set(METHODS) == {"gdas", "darts-v1", "darts-v2", "rsps", "setn", "enas"}


def test_engine_options_are_checked(digits):
    with pytest.raises(ParamsError, match="precision: expected 16 or 32"):
        run_search("gdas", digits, epochs=1, precision=8, **KW)
    with pytest.raises(ParamsError, match="compile: expected one of"):
        run_search("gdas", digits, epochs=1, compile="fast", **KW)


def test_sampling_searches_skip_compiling_in_one_line(digits, capsys):
    # a new sampled graph every step would only recompile: GDAS trains eagerly, says so, and gets the eager result
    eager = run_search("gdas", digits, epochs=1, **KW)
    asked = run_search("gdas", digits, epochs=1, compile="default", **KW)
    said = capsys.readouterr().err
    assert "gdas: compile: skipped" in said and len([l for l in said.splitlines() if "compile" in l]) == 1
    assert "compiled" not in asked and asked["alphas"] == eager["alphas"]


def test_search_and_training_checkpoints_are_not_mistaken_for_each_other(digits, tmp_path):
    # one engine, one checkpoint format: each loop refuses the other's file by its kind, in one line
    from nasflow.train import TrainConfig, train

    search_ckpt = tmp_path / "search.pt"
    run_search("rsps", digits, epochs=2, checkpoint=search_ckpt, stop_after_epochs=1, **KW)
    assert torch.load(search_ckpt, weights_only=True)["kind"] == "search"
    net = NB201SearchNetwork(C=4, N=1, num_classes=10, mode="uniform")
    with pytest.raises(CheckpointError, match="not a nasflow training checkpoint"):
        train(net, digits, TrainConfig(epochs=1, batch_size=64, lr=0.1, image_size=8), seed=0, device="cpu",
              progress=False, checkpoint=search_ckpt)
    train_ckpt = tmp_path / "train.pt"
    seed_everything(0)
    from tests.test_train import tiny_cnn
    train(tiny_cnn(), digits, TrainConfig(epochs=2, batch_size=64, lr=0.1, image_size=16), seed=0, device="cpu",
          progress=False, checkpoint=train_ckpt, stop_after_epochs=1)
    with pytest.raises(CheckpointError, match="not a nasflow search checkpoint"):
        run_search("rsps", digits, epochs=2, checkpoint=train_ckpt, **KW)


# ------------------------------------------------------------------------------------------------ stage

def test_stage_writes_the_search_record(tmp_path, monkeypatch):
    from stages.differentiable_search import run, search_config

    monkeypatch.chdir(tmp_path)
    params = {
        "seed": 0, "device": "cpu", "threads": 1, "space": "nb201",
        "data": {"dataset": "digits", "root": "data", "path": None, "download": False, "subset": 128},
        "differentiable": {"channels": 4, "cells_per_stage": 1, "image_size": 8, "batch_size": 64,
                           "epochs": {"gdas": 1, "setn": 2}, "w_lr": 0.025, "w_wd": 5e-4, "a_lr": 3e-4,
                           "a_wd": 1e-3, "select_num": 4},
    }
    assert search_config(params, "setn")["epochs"] == 2
    with pytest.raises(ParamsError, match="rsps"):
        search_config(params, "rsps")
    rec = run(params, "gdas", tmp_path / "out/gdas.json", progress=False)
    on_disk = json.loads((tmp_path / "out/gdas.json").read_text())
    for key in ("kind", "method", "name", "best", "best_score", "history", "search_seconds", "provenance"):
        assert key in on_disk
    assert on_disk["kind"] == "search" and on_disk["name"] == on_disk["method"] == "gdas"
    assert on_disk["best_score"] is None and on_disk["best"] == space.canonical(rec["best"])
    assert list((tmp_path / "results/work").glob("search-gdas-*/search.pt"))
    params["differentiable"]["typo"] = 1
    with pytest.raises(ParamsError, match="typo"):
        search_config(params, "gdas")
