"""Zero-cost proxies (nasflow.estimators.zero_cost) against hand computations on tiny models, and `nasflow
proxies`."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from torch import nn

from nasflow.cli import main
from nasflow.counting import count_flops, count_params
from nasflow.errors import ArchError, ParamsError
from nasflow.estimators import zero_cost as zc
from nasflow.models import darts as darts_net
from nasflow.models import nb201 as nb201_net
from nasflow.registry import build_network
from nasflow.spaces import darts, get_space, nb201

ROOT = Path(__file__).resolve().parents[1]
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"


def _data(n=8, size=8, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(0, classes, (n,), generator=g)


def _nb201(arch=INDEX0, seed=0):
    torch.manual_seed(seed)
    return nb201_net.build_network(arch, channels=4, depth=1, num_classes=10)


def _mlp(activation: nn.Module, seed=0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(3, 4), activation, nn.Linear(4, 3))


def _weights(model):
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


# ------------------------------------------------------------------------------ gradient-based proxies

def test_grad_norm_and_snip_equal_direct_autograd():
    x, y = _data()
    model = _nb201(ALL_CONV)
    model.train()
    weights = _weights(model)
    grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
    expected_norm = sum(g.norm().item() for g in grads if g is not None)
    expected_snip = sum((w * g).abs().sum().item() for w, g in zip(weights, grads) if g is not None)
    assert zc.grad_norm(_nb201(ALL_CONV), x, y) == pytest.approx(expected_norm, rel=1e-6)
    assert zc.snip(_nb201(ALL_CONV), x, y) == pytest.approx(expected_snip, rel=1e-6)


def test_snip_equals_the_mask_gradient():
    # SNIP's own definition: |dL/dm| for W * m with m = 1, on a hand-written forward pass
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 1, 0])
    model = _mlp(nn.ReLU())
    (w1, b1), (w2, b2) = [(m.weight.detach(), m.bias.detach()) for m in (model[0], model[2])]
    m1, m2 = torch.ones_like(w1, requires_grad=True), torch.ones_like(w2, requires_grad=True)
    loss = F.cross_entropy(F.linear(F.relu(F.linear(x, w1 * m1, b1)), w2 * m2, b2), y)
    g1, g2 = torch.autograd.grad(loss, [m1, m2])
    assert zc.snip(model, x, y) == pytest.approx((g1.abs().sum() + g2.abs().sum()).item(), rel=1e-6)


def test_grasp_equals_minus_w_hessian_gradient():
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    model = _mlp(nn.Tanh())
    (w1, b1), (w2, b2) = [(m.weight.detach(), m.bias.detach()) for m in (model[0], model[2])]

    def loss_of(theta):  # the loss as a function of the flattened weights (biases fixed)
        a, b = theta[:12].view(4, 3), theta[12:].view(3, 4)
        return F.cross_entropy(F.linear(torch.tanh(F.linear(x, a, b1)), b, b2), y)

    theta = torch.cat([w1.flatten(), w2.flatten()])
    hessian = torch.autograd.functional.hessian(loss_of, theta)  # the full 24x24 matrix
    gradient = torch.autograd.functional.jacobian(loss_of, theta)
    expected = (-theta * (hessian @ gradient)).sum().item()
    assert expected != 0
    assert zc.grasp(model, x, y) == pytest.approx(expected, rel=1e-5, abs=1e-9)


def test_fisher_equals_activation_times_gradient_per_channel():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 2, 4, 4, generator=g), torch.tensor([0, 3, 1, 4])
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(48, 5))
    conv, linear = model[0], model[3]
    a1 = F.conv2d(x, conv.weight.detach(), conv.bias.detach(), padding=1)
    a1.requires_grad_(True)
    a2 = F.linear(F.relu(a1).flatten(1), linear.weight.detach(), linear.bias.detach())
    a2.retain_grad()
    F.cross_entropy(a2, y).backward()
    act1, grad1 = a1.detach().numpy(), a1.grad.numpy()
    act2, grad2 = a2.detach().numpy(), a2.grad.numpy()
    per_channel_conv = (act1 * grad1).sum(axis=(2, 3))  # [n, channels]
    expected = 0.5 * (per_channel_conv ** 2).mean(0).sum() + 0.5 * ((act2 * grad2) ** 2).mean(0).sum()
    assert zc.fisher(model, x, y) == pytest.approx(float(expected), rel=1e-5)


# ------------------------------------------------------------------------------------------- synflow

def test_synflow_closed_form_and_model_restored():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.ReLU(), nn.Linear(3, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    a1, c1 = model[0].weight.detach().abs().double().numpy(), model[0].bias.detach().abs().double().numpy()
    a2 = model[3].weight.detach().abs().double().numpy()
    # all-ones input, |W|, BN bypassed: hidden h = |W1| 1 + |b1| (positive, ReLU passes it), R = 1'(|W2| h + |b2|)
    hidden = a1 @ np.ones(4) + c1
    expected = (a1 * a2.sum(0)[:, None]).sum() + (a2 * hidden[None, :]).sum()  # W1 . dR/dW1 + W2 . dR/dW2
    batch = torch.randn(5, 4)
    assert zc.synflow(model, batch) == pytest.approx(float(expected), rel=1e-12)
    # signs, dtype and BN's forward come back
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) and after[k].dtype == before[k].dtype for k in before)
    assert "forward" not in vars(model[1])


def test_synflow_uses_float64():
    seen = []
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 2))
    model.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0].dtype))
    zc.synflow(model, torch.randn(3, 3, 2, 2))
    assert seen == [torch.float64]
    assert model[1].weight.dtype == torch.float32


# ------------------------------------------------------------------------------------------ jacob_cov

def test_jacob_cov_closed_form_for_a_linear_model():
    # y = W x + b: every image's input gradient is 1'W, so the correlation matrix is all ones, eigenvalues N, 0...
    n, k = 6, 1e-5
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    expected = -(math.log(n + k) + 1 / (n + k)) - (n - 1) * (math.log(k) + 1 / k)
    assert zc.jacob_cov(model, torch.randn(n, 3, 2, 2)) == pytest.approx(expected, rel=1e-6)


def test_jacob_cov_equals_numpy_on_per_image_jacobians():
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(5))
    model = _mlp(nn.ReLU(), seed=5)
    rows = [torch.autograd.functional.jacobian(lambda v: model(v[None]).sum(), xi).numpy() for xi in x]
    eig = np.linalg.eigvals(np.corrcoef(np.stack(rows))).real
    expected = -np.sum(np.log(eig + 1e-5) + 1 / (eig + 1e-5))
    assert zc.jacob_cov(model, x) == pytest.approx(float(expected), rel=1e-6)


# --------------------------------------------------------------------------------------------- naswot

def test_hamming_kernel_and_naswot_on_known_codes():
    codes = np.array([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1], [1, 1, 1, 0, 0], [0, 1, 0, 1, 1]])
    n_units = codes.shape[1]
    kernel = n_units - cdist(codes, codes, metric="hamming") * n_units  # N_A - d_H
    assert np.allclose(zc.hamming_kernel(codes), kernel)
    # a network whose only ReLU sees the batch itself: its codes are the batch's signs
    x = torch.tensor(codes * 2.0 - 1.0, dtype=torch.float32)
    score = zc.naswot(nn.Sequential(nn.Identity(), nn.ReLU()), x)
    assert score == pytest.approx(np.linalg.slogdet(kernel)[1], rel=1e-12)


class _ThreeReLUs(nn.Module):
    """A functional F.relu, an in-place nn.ReLU module and a Tensor.relu method."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(6, 6), nn.Linear(6, 6)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(F.relu(x)))).relu()


def test_naswot_counts_functional_and_module_relus():
    torch.manual_seed(6)
    model = _ThreeReLUs()
    x = torch.randn(5, 6)
    with torch.no_grad():
        pre_act = model.fc1(F.relu(x))
        codes = [x > 0, pre_act > 0, model.fc2(F.relu(pre_act)) > 0]
    expected = np.linalg.slogdet(sum(zc.hamming_kernel(c.numpy()) for c in codes))[1]
    assert zc.naswot(model, x) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("space_name", ["nb201", "darts"])
def test_relu_capture_finds_every_relu_of_the_space_networks(space_name):
    space = get_space(space_name)
    arch = ALL_CONV if space_name == "nb201" else darts.DARTS_V2
    torch.manual_seed(0)
    model = build_network(space, arch, channels=4, depth=3 if space_name == "darts" else 1, num_classes=10,
                          **({"auxiliary": False} if space_name == "darts" else {}))
    module_calls = []
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.register_forward_hook(lambda *_: module_calls.append(1))
    captured = []
    with torch.no_grad(), zc._ReLUInputs(lambda t: captured.append(t.shape)):
        model(torch.randn(2, 3, 8, 8))
    assert len(module_calls) > 10 and len(captured) == len(module_calls)


# ------------------------------------------------------------------------------------------------ zen

def test_zen_equals_hand_computation():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    batch = torch.zeros(6, 3, 5, 5)
    # replay Zen's draws: conv weight, linear weight (module order), then x, then the perturbation
    g = torch.Generator().manual_seed(11)
    w = torch.empty(4, 3, 3, 3).normal_(0, 1, generator=g)
    torch.empty(2, 4).normal_(0, 1, generator=g)
    x = torch.randn(6, 3, 5, 5, generator=g)
    e = torch.randn(6, 3, 5, 5, generator=g)

    def features(inp):  # conv -> train-mode BN (weight 1, bias 0) -> ReLU; the map before the pooling
        a = F.conv2d(inp, w, padding=1)
        mean, var = a.mean(dim=(0, 2, 3), keepdim=True), a.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        return F.relu((a - mean) / torch.sqrt(var + 1e-5)), a.var(dim=(0, 2, 3), unbiased=True)

    f1, v1 = features(x)
    f2, v2 = features(x + 0.01 * e)
    running_var = 0.9 * (0.9 * 1.0 + 0.1 * v1) + 0.1 * v2  # BN momentum 0.1, two passes
    expected = math.log((f1 - f2).abs().flatten(1).sum(1).mean().item()) + math.log(
        math.sqrt(running_var.mean().item()))
    assert zc.zen(model, batch, seed=11) == pytest.approx(expected, rel=1e-5)


# ------------------------------------------------------------------------------------- params, flops

def test_params_and_flops_equal_counting():
    x, y = _data(size=16)
    model = _nb201(ALL_CONV)
    assert zc.params(model, x) == count_params(model)
    assert zc.flops(model, x) == count_flops(model, (3, 16, 16))


# ------------------------------------------------------------------------------------------ score(...)

def _values(row):
    return {k: v for k, v in row.items() if not k.endswith("_seconds")}


def test_score_is_deterministic_and_order_independent():
    x, y = _data()
    factory = lambda: nb201_net.build_network(ALL_CONV, channels=4, depth=1, num_classes=10)  # noqa: E731
    all_at_once = zc.score(factory, x, y, seed=3)
    assert list(all_at_once) == list(zc.PROXIES) + [f"{p}_seconds" for p in zc.PROXIES]
    assert all(all_at_once[f"{p}_seconds"] >= 0 for p in zc.PROXIES)
    assert _values(zc.score(factory, x, y, seed=3)) == _values(all_at_once)
    backwards = zc.score(factory, x, y, proxies=list(reversed(zc.PROXIES)), seed=3)
    assert _values(backwards) == _values(all_at_once)
    for name in ("synflow", "grad_norm"):  # alone, without the mutating proxies before it
        assert zc.score(factory, x, y, proxies=[name], seed=3)[name] == all_at_once[name]
    assert zc.score(factory, x, y, proxies=["grad_norm"], seed=4)["grad_norm"] != all_at_once["grad_norm"]


@pytest.mark.parametrize("arch", [INDEX0, ALL_CONV, ALL_SKIP, "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"])
@pytest.mark.parametrize("names", [zc.LOSS_GRADIENT, ("snip", "grasp"), ("fisher",), ("grasp",)])
def test_shared_loss_gradient_pass_equals_one_by_one(arch, names):
    # score() reads grad_norm, snip, fisher and grasp off one forward pass: exactly the values of each alone
    x, y = _data()
    found, seconds = zc.loss_gradient_proxies(_nb201(arch, seed=5), x, y, names)
    assert list(found) == list(seconds) == [n for n in zc.LOSS_GRADIENT if n in names]
    for name in names:
        assert found[name] == getattr(zc, name)(_nb201(arch, seed=5), x, y), name
        assert seconds[name] > 0
    row = zc.score(lambda: nb201_net.build_network(arch, channels=4, depth=1, num_classes=10), x, y, seed=5)
    assert {n: row[n] for n in names} == found


def test_score_leaves_the_callers_rng_alone():
    x, y = _data()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    zc.score(lambda: _nb201(), x, y, proxies=["zen", "snip"])
    assert torch.equal(torch.rand(3), expected)


def test_score_archs_nb201_and_darts():
    x, y = _data(size=8)
    rows_nb201 = zc.score_archs([" " + INDEX0, ALL_SKIP], space="nb201", channels=4, depth=1, num_classes=10,
                                batch=x, labels=y, proxies=None, seed=0)
    rows_darts = zc.score_archs([darts.DARTS_V2], space=darts, channels=4, depth=3, num_classes=10,
                                batch=x, labels=y, proxies=None, seed=0)
    assert [r["arch"] for r in rows_nb201] == [INDEX0, ALL_SKIP]
    for row in rows_nb201 + rows_darts:
        assert all(math.isfinite(row[p]) for p in zc.PROXIES), row
    # DARTS networks are scored as evaluated, without the auxiliary head
    torch.manual_seed(0)
    plain = darts_net.build_network(darts.DARTS_V2, channels=4, depth=3, num_classes=10, auxiliary=False)
    assert rows_darts[0]["params"] == count_params(plain)
    with pytest.raises(ArchError):
        zc.score_archs([INDEX0, "|nope~0|"], space="nb201", channels=4, depth=1, num_classes=10, batch=x,
                       labels=y)


def test_disconnected_cell_scores_without_errors(capsys):
    # no path from input to output: the logits ignore the image and every conv sees zeros
    no_path = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    x, y = _data()
    row = zc.score(lambda: nb201_net.build_network(no_path, channels=4, depth=1, num_classes=10), x, y)
    assert row["grad_norm"] == row["snip"] == row["grasp"] == row["synflow"] == 0.0
    assert math.isnan(row["jacob_cov"]) and row["naswot"] == row["zen"] == -math.inf
    assert main(["proxies", "--arch", no_path, "--data", "digits", "--channels", "4", "--depth", "1",
                 "--batch-size", "8", "--proxies", "jacob_cov,naswot", "--json"]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)[0]["jacob_cov"] is None and out.err == ""  # strict JSON: null, no NaN


def test_bad_input_raises_params_error():
    x, y = _data()
    with pytest.raises(ParamsError, match="unknown zero-cost proxy 'nope'"):
        zc.score(_nb201, x, y, proxies=["synflow", "nope"])
    with pytest.raises(ParamsError, match="labels"):
        zc.score(_nb201, x, None, proxies=["snip"])
    with pytest.raises(ParamsError, match="labels"):
        zc.score(_nb201, x, y[:3], proxies=["snip"])
    assert zc.score(_nb201, x, None, proxies=["synflow"])["synflow"] > 0  # label-free proxies need none


def test_vote_is_the_mean_rank():
    rows = [{"a": 1.0, "b": 10.0}, {"a": 3.0, "b": 20.0}, {"a": 2.0, "b": 30.0}, {"a": float("nan"), "b": 30.0}]
    # a ranks: 2, 4, 3, 1 (NaN lowest); b ranks: 1, 2, 3.5, 3.5 (tie averaged)
    assert zc.vote(rows, ["a", "b"]) == [1.5, 3.0, 3.25, 2.25]
    with pytest.raises(ParamsError):
        zc.vote(rows, ["c"])


# ------------------------------------------------------------------------------------ nasflow proxies

def test_cli_json_contract(capsys):
    args = ["proxies", "--arch", "0", "--arch", ALL_SKIP, "--data", "digits", "--channels", "4", "--depth", "1",
            "--batch-size", "8", "--seed", "2", "--proxies", "synflow, params", "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert [list(row) for row in out] == [["arch", "synflow", "params", "synflow_seconds", "params_seconds"]] * 2
    assert [row["arch"] for row in out] == [nb201.enumerate_all()[0], ALL_SKIP]
    # the same numbers as the library on the first seeded training batch of digits
    from nasflow.data import load_dataset

    batch, labels = zc.train_batch(load_dataset("digits"), batch_size=8, seed=2)
    assert batch.shape == (8, 3, 16, 16)
    expected = zc.score_archs([INDEX0, ALL_SKIP], space="nb201", channels=4, depth=1, num_classes=10,
                              batch=batch, labels=labels, proxies=["synflow", "params"], seed=2)
    assert [(r["synflow"], r["params"]) for r in out] == [(r["synflow"], r["params"]) for r in expected]


def test_cli_all_proxies_and_arch_file(tmp_path, capsys):
    arch_file = tmp_path / "archs.txt"
    arch_file.write_text(f"# two cells\n{ALL_SKIP}\n\n{INDEX0}\n")
    assert main(["proxies", "--arch-file", str(arch_file), "--data", "digits", "--channels", "4", "--depth", "1",
                 "--batch-size", "8", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [row["arch"] for row in out] == [ALL_SKIP, INDEX0]
    assert set(out[0]) == {"arch", *zc.PROXIES, *(f"{p}_seconds" for p in zc.PROXIES)}


@pytest.mark.parametrize("bad, message", [
    (["--arch", "0", "--data", "digits", "--proxies", "synflow,nope"], "unknown zero-cost proxy 'nope'"),
    (["--arch", "0", "--data", "digits", "--batch-size", "0"], "--batch-size"),
    (["--arch", "|nope~0|", "--data", "digits"], "invalid arch"),
    (["--arch", "0", "--data", "npz"], "--path"),
    (["--arch", "0", "--data", "npz", "--path", "missing.npz"], "missing.npz"),
])
def test_cli_bad_input_exit_2(bad, message, capsys):
    assert main(["proxies", "--channels", "4", "--depth", "1", "--json", *bad]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("nasflow: error: ") and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1


def test_cli_missing_arch_file_as_a_user_runs_it(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "nasflow", "proxies", "--arch-file", str(tmp_path / "missing.txt"), "--data",
         "digits", "--json"], capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip() == f"nasflow: error: --arch-file {tmp_path / 'missing.txt'}: no such file"
