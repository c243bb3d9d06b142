"""ENAS (nasflow.search.enas + run_search("enas")) on tiny NB201 search networks, on the CPU."""
import pytest
import torch
from torch.distributions import Categorical

from nasflow.errors import ParamsError
from nasflow.search.differentiable import METHODS, SPACE_METHODS, run_search
from nasflow.search.enas import Controller, reinforce_loss, train_controller, update_baseline
from nasflow.spaces import nb201 as space
from tests.test_differentiable import _no_seconds, digits  # noqa: F401 - the same tiny search split

KW = dict(C=4, depth=1, batch_size=64, w_lr=0.05, w_lr_min=0.0005, w_momentum=0.9, w_wd=2.5e-4, grad_clip=5.0,
          a_lr=3e-4, a_wd=1e-3, tau_max=10.0, tau_min=0.1, seed=0, device="cpu", progress=False, image_size=8,
          select_num=6, ctl_train_steps=2, ctl_num_aggregate=2)


def setup_module():
    torch.set_num_threads(1)


# ------------------------------------------------------------------------------------------ controller

def test_controller_sampling_is_deterministic_under_the_seed():
    torch.manual_seed(0)
    ctl = Controller()
    draws = []
    for _ in range(2):
        torch.manual_seed(7)
        draws.append([ctl()[2] for _ in range(5)])
    assert draws[0] == draws[1]
    assert all(len(ops) == 6 and all(0 <= o < 5 for o in ops) for ops in draws[0])
    assert len(set(draws[0])) > 1
    torch.manual_seed(0)
    assert all(torch.equal(a, b) for a, b in zip(ctl.state_dict().values(), Controller().state_dict().values()))


def test_log_prob_and_entropy_match_the_logits():
    torch.manual_seed(1)
    ctl = Controller()
    log_prob, entropy, ops = ctl()
    log_prob, entropy = log_prob.detach(), entropy.detach()
    logits = ctl.logits(ops)
    assert logits.shape == (6, 5) and logits.abs().max() <= 2.5  # tanh_constant bounds the logits
    dists = [Categorical(logits=logits[k].detach()) for k in range(6)]
    want_lp = sum(float(d.log_prob(torch.tensor(o))) for d, o in zip(dists, ops))
    want_h = sum(float(d.entropy()) for d in dists)
    assert float(log_prob) == pytest.approx(want_lp, abs=1e-5)
    assert float(entropy) == pytest.approx(want_h, abs=1e-5)
    # by hand: log-softmax and -sum p log p
    logp = torch.log_softmax(logits.detach(), -1)
    assert float(log_prob) == pytest.approx(float(sum(logp[k, o] for k, o in enumerate(ops))), abs=1e-5)
    assert float(entropy) == pytest.approx(float(-(logp.exp() * logp).sum()), abs=1e-5)
    # teacher forcing scores the same ops identically; logits follow tanh_constant * tanh(pred / temperature)
    lp2, h2, ops2 = (t.detach() if torch.is_tensor(t) else t for t in ctl(ops))
    assert ops2 == ops and float(lp2) == pytest.approx(float(log_prob)) and float(h2) == pytest.approx(float(entropy))
    out, _ = ctl.lstm(ctl.input_vars)
    assert torch.allclose(logits[0], 2.5 * torch.tanh(ctl.pred(out).view(-1) / 5.0))


def test_reinforce_step_raises_the_log_prob_of_a_rewarded_arch():
    torch.manual_seed(2)
    ctl = Controller()
    target = (3, 1, 0, 4, 2, 3)
    opt = torch.optim.SGD(ctl.parameters(), lr=0.5)
    before = float(ctl(target)[0].detach())
    for _ in range(3):
        log_prob, _, _ = ctl(target)
        opt.zero_grad()
        reinforce_loss(log_prob, reward=0.9, baseline=0.5).backward()  # positive advantage
        opt.step()
    assert float(ctl(target)[0].detach()) > before
    # a negative advantage lowers it
    mid = float(ctl(target)[0].detach())
    log_prob, _, _ = ctl(target)
    opt.zero_grad()
    reinforce_loss(log_prob, reward=0.1, baseline=0.5, num_aggregate=2).backward()
    opt.step()
    assert float(ctl(target)[0].detach()) < mid


def test_baseline_update_sequence():
    accs, entropies, w, dec = [0.5, 0.7, 0.2, 0.9], [8.0, 7.0, 6.0, 5.0], 1e-4, 0.99
    b, seq = None, []
    for acc, h in zip(accs, entropies):
        b = update_baseline(b, acc + w * h, acc, dec)
        seq.append(b)
    r = [a + w * h for a, h in zip(accs, entropies)]
    want = [0.5]
    for x in r[1:]:
        want.append(want[-1] - 0.01 * (want[-1] - x))
    assert seq == pytest.approx(want, abs=1e-12)
    assert want[1] == pytest.approx(0.99 * 0.5 + 0.01 * (0.7 + 7e-4))


class _Oracle(torch.nn.Module):
    """A 'shared network' whose predictions are the batch's x: accuracy known in advance."""

    def forward(self, x, arch=None):
        assert arch is not None and len(arch) == 6
        return torch.nn.functional.one_hot(x, 4).float()


@pytest.mark.parametrize("mode, start", [("running", None), ("running", 0.4), ("adl", None), ("adl", 0.4)])
def test_train_controller_baseline_modes(mode, start):
    accs = [0.5, 0.25, 1.0, 0.75]
    y = torch.zeros(4, dtype=torch.int64)
    batches = iter([(torch.tensor([0] * round(4 * a) + [1] * (4 - round(4 * a))), y) for a in accs])
    torch.manual_seed(3)
    ctl = Controller()
    before = [p.detach().clone() for p in ctl.parameters()]
    opt = torch.optim.Adam(ctl.parameters(), lr=1e-3, betas=(0.0, 0.999), eps=1e-3)
    out = train_controller(ctl, opt, _Oracle(), batches, steps=2, num_aggregate=2, entropy_weight=0.0,
                           baseline_decay=0.99, baseline=start, baseline_mode=mode)
    if mode == "running":
        b = start
        for a in accs:
            b = a if b is None else b - 0.01 * (b - a)
    else:  # every step from the epoch's starting baseline; the last step's is handed on
        b = accs[-1] if start is None else start - 0.01 * (start - accs[-1])
    assert out["baseline"] == pytest.approx(b, abs=1e-6)  # the reward is a float32 tensor
    assert out["acc"] == pytest.approx(100 * sum(accs) / 4) and out["reward"] == pytest.approx(sum(accs) / 4)
    assert opt.state[ctl.pred.weight]["step"] == 2  # one Adam step per num_aggregate batches
    moved = any(not torch.equal(p, q) for p, q in zip(ctl.parameters(), before))
    # ADL's first epoch: baseline = accuracy at every step, so (entropy weight 0) no advantage, no update
    assert moved == (mode == "running" or start is not None)


# ------------------------------------------------------------------------------------------- run_search

def test_tiny_enas_run(digits):
    r = run_search("enas", digits, epochs=2, **KW)
    assert "enas" in METHODS and "enas" in SPACE_METHODS["nb201"] and "enas" not in SPACE_METHODS["darts"]
    assert r["completed"] and r["best"] == space.canonical(r["best"]) and r["alphas"] is None
    assert r["selection"]["evaluated"] == KW["select_num"]
    assert r["best"] in [c["arch"] for c in r["selection"]["candidates"]]
    h = r["history"]
    assert [e["epoch"] for e in h] == [1, 2] and h[1]["lr"] < h[0]["lr"] == pytest.approx(0.05)
    for e in h:
        assert e["arch"] == space.canonical(e["arch"]) and e["alphas"] is None and e["tau"] is None
        assert 0 <= e["valid_acc"] <= 100 and 0 <= e["arch_acc"] <= 100 and e["train_loss"] > 0
        assert 0 <= e["ctl_baseline"] <= 1.01 and e["ctl_entropy"] > 0 and e["ctl_grad_norm"] is not None
        assert e["ctl_reward"] == pytest.approx(e["arch_acc"] / 100 + 1e-4 * e["ctl_entropy"], abs=1e-6)
    cfg = r["config"]
    assert cfg["ctl_lr"] == 1e-3 and cfg["ctl_betas"] == [0.0, 0.999] and cfg["ctl_train_steps"] == 2
    assert "ctl_lr" not in run_search("rsps", digits, epochs=1, **KW)["config"]


def test_enas_resume_is_bit_identical(digits, tmp_path):
    full = run_search("enas", digits, epochs=2, **KW)
    ckpt = tmp_path / "search.pt"
    part = run_search("enas", digits, epochs=2, checkpoint=ckpt, stop_after_epochs=1, **KW)
    assert not part["completed"] and part["best"] is None
    state = torch.load(ckpt, weights_only=True)["extra"]  # the search's own part of the engine's checkpoint
    assert {"controller", "baseline", "a_optimizer"} <= set(state) and isinstance(state["baseline"], float)
    assert state["a_optimizer"]["param_groups"][0]["betas"] == (0.0, 0.999)
    resumed = run_search("enas", digits, epochs=2, checkpoint=ckpt, **KW)
    assert resumed["resumed_from"] == 1 and resumed["completed"]
    assert resumed["best"] == full["best"] and resumed["selection"]["candidates"] == full["selection"]["candidates"]
    assert _no_seconds(resumed["history"]) == _no_seconds(full["history"])
    final = torch.load(ckpt, weights_only=True)["extra"]
    full_ckpt = tmp_path / "full.pt"
    run_search("enas", digits, epochs=2, checkpoint=full_ckpt, **KW)
    other = torch.load(full_ckpt, weights_only=True)["extra"]
    assert final["baseline"] == other["baseline"]
    assert all(torch.equal(final["controller"][k], other["controller"][k]) for k in other["controller"])


def test_enas_is_nb201_only(digits):
    with pytest.raises(ParamsError, match="not available in the darts space"):
        run_search("enas", digits, space="darts", epochs=1, **KW)
    with pytest.raises(ParamsError, match="ctl_num_aggregate"):
        run_search("enas", digits, epochs=1, **{**KW, "ctl_num_aggregate": 0})
    with pytest.raises(ParamsError, match="ctl_baseline_mode"):
        run_search("enas", digits, epochs=1, ctl_baseline_mode="ema", **KW)
    r = run_search("enas", digits, epochs=1, ctl_baseline_mode="adl", **KW)
    assert r["completed"] and r["config"]["ctl_baseline_mode"] == "adl"


def test_stage_config_and_params_validation():
    from stages.differentiable_search import search_config

    section = {"channels": 4, "cells_per_stage": 1, "image_size": 8, "batch_size": 64, "epochs": {"enas": 3, "gdas": 1},
               "w_lr": 0.05, "w_wd": 2.5e-4, "a_lr": 3e-4, "a_wd": 1e-3, "ctl_train_steps": 7}
    cfg = search_config({"space": "nb201", "differentiable": section}, "enas")
    assert cfg["epochs"] == 3 and cfg["ctl_train_steps"] == 7 and cfg["ctl_num_aggregate"] == 20
    assert cfg["ctl_betas"] == (0.0, 0.999)
    assert not any(k.startswith("ctl_") for k in search_config({"space": "nb201", "differentiable": section}, "gdas"))
    darts = {k: v for k, v in section.items() if k != "cells_per_stage"} | {"layers": 5}
    with pytest.raises(ParamsError, match="'enas' is not available in the darts space"):
        search_config({"space": "darts", "differentiable": darts}, "enas")
    # params.yaml: enas in the darts space is one line naming the key
    import copy

    import yaml

    from stages.common import ROOT, validate_params

    params = yaml.safe_load((ROOT / "params" / "paper-darts-cifar10.yaml").read_text())
    params["differentiable"]["methods"] = ["gdas", "enas"]
    with pytest.raises(ParamsError, match="differentiable.methods: enas runs in the nb201 space only"):
        validate_params(copy.deepcopy(params))
