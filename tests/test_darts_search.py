"""The DARTS-space search supernet (models/darts_search.py) and differentiable search in the darts space."""
import pytest
import torch
import torch.nn.functional as F

from nasflow.data import load_dataset
from nasflow.errors import ArchError, ParamsError
from nasflow.models.darts import make_op
from nasflow.models.darts_search import EDGE_START, N_EDGES, DartsSearchNetwork, edge_ops
from nasflow.search.differentiable import SPACE_METHODS, darts_v2_arch_grad, run_search
from nasflow.spaces import darts as space

KW = dict(space="darts", C=4, depth=3, batch_size=64, w_lr=0.025, w_lr_min=0.001, w_momentum=0.9,
          w_nesterov=False, w_wd=3e-4, grad_clip=5.0, a_lr=3e-4, a_betas=(0.5, 0.999), a_wd=1e-3, tau_max=10.0,
          tau_min=0.1, seed=0, device="cpu", progress=False, image_size=8, select_num=4)
OPS = space.OPS


def setup_module():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", eval_split="valid", subset=128)


def _edge(node: int, inp: int) -> int:
    return EDGE_START[node] + inp


# ------------------------------------------------------------------------------------------- the ops

def test_make_op_affine_keyword_and_none():
    conv = make_op("sep_conv_3x3", 4, 1)
    assert all(m.affine for m in conv.modules() if isinstance(m, torch.nn.BatchNorm2d))  # default unchanged
    for name in ("sep_conv_5x5", "dil_conv_3x3", "skip_connect"):
        op = make_op(name, 4, 2, affine=False, track_running_stats=False)
        bns = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        assert bns and not any(m.affine or m.track_running_stats for m in bns)
    x = torch.randn(2, 4, 7, 7)
    assert make_op("none", 4, 2)(x).shape == make_op("sep_conv_3x3", 4, 2)(x).shape == (2, 4, 4, 4)
    assert not make_op("none", 4, 1)(x).any()


def test_supernet_layout():
    model = DartsSearchNetwork()  # DARTS' search size: C=16, 8 layers
    assert sum(p.numel() for p in model.weights()) == 1_930_618  # quark0/darts search: "param size = 1.930618MB"
    assert model.reduction_layers == (2, 5)
    assert [a.shape for a in model.arch_parameters()] == [(14, 8), (14, 8)]
    assert len(model.weights()) + 2 == len(list(model.parameters()))
    assert model.probs().shape == (2, 14, 8)
    assert not any(m.affine for c in model.cells for m in c.modules() if isinstance(m, torch.nn.BatchNorm2d))


# ------------------------------------------------------------------------------------------ derivation

def test_genotype_takes_top2_inputs_and_ignores_none():
    model = DartsSearchNetwork(C=2, layers=3)
    with torch.no_grad():
        n, r = model.alphas_normal, model.alphas_reduce
        n.zero_()
        r.zero_()
        n[_edge(2, 0), OPS.index("sep_conv_3x3")] = 3.0
        n[_edge(2, 1), OPS.index("skip_connect")] = 2.0
        # node 3: the edge from 0 is dominated by `none` (largest weight of the whole node): it must lose
        n[_edge(3, 0), OPS.index("none")] = 10.0
        n[_edge(3, 0), OPS.index("max_pool_3x3")] = 1.0
        n[_edge(3, 1), OPS.index("dil_conv_5x5")] = 2.0
        n[_edge(3, 2), OPS.index("avg_pool_3x3")] = 2.5
        # node 4: `none` is the largest weight of the edge from 3, which still wins with its best real op
        n[_edge(4, 3), OPS.index("none")] = 5.0
        n[_edge(4, 3), OPS.index("sep_conv_5x5")] = 4.9
        n[_edge(4, 0), OPS.index("max_pool_3x3")] = 1.0
        n[_edge(4, 2), OPS.index("skip_connect")] = 1.5
        n[_edge(5, 4), OPS.index("dil_conv_3x3")] = 3.0
        n[_edge(5, 0), OPS.index("sep_conv_3x3")] = 2.0
        n[_edge(5, 2), OPS.index("none")] = 8.0
        # reduce: all ties but one -> lower inputs, first non-`none` op (max_pool_3x3)
        r[_edge(2, 1), OPS.index("avg_pool_3x3")] = 1.0
    expected = space.canonical(
        "Genotype(normal=[('sep_conv_3x3', 0), ('skip_connect', 1), ('dil_conv_5x5', 1), ('avg_pool_3x3', 2), "
        "('skip_connect', 2), ('sep_conv_5x5', 3), ('sep_conv_3x3', 0), ('dil_conv_3x3', 4)], "
        "normal_concat=[2, 3, 4, 5], "
        "reduce=[('max_pool_3x3', 0), ('avg_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1), "
        "('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('max_pool_3x3', 1)], "
        "reduce_concat=[2, 3, 4, 5])")
    assert model.genotype() == expected == space.validate(model.genotype())


def test_edge_ops_of_a_genotype():
    normal, reduce = edge_ops(space.DARTS_V2)
    g = space.parse(space.DARTS_V2)
    for cell, pairs in ((normal, g.normal), (reduce, g.reduce)):
        assert sum(o != OPS.index("none") for o in cell) == 8
        for i, (op, inp) in enumerate(pairs):
            assert cell[_edge(space.NODES[i // 2], inp)] == OPS.index(op)
    assert edge_ops((normal, reduce)) == (normal, reduce)
    with pytest.raises(ArchError):
        edge_ops(((0,) * 13, (0,) * 14))


# ---------------------------------------------------------------------------------------------- forward

def test_darts_mode_forward_reaches_both_alphas():
    torch.manual_seed(0)
    model = DartsSearchNetwork(C=4, layers=3, num_classes=3, mode="darts")
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    out = model(x)
    assert out.shape == (4, 3) and torch.isfinite(out).all()
    F.cross_entropy(out, y).backward()
    for a in model.arch_parameters():
        assert a.grad is not None and torch.isfinite(a.grad).all()
        none = OPS.index("none")
        assert (a.grad[:, [o for o in range(8) if o != none]] != 0).all()
    assert model.last_arch is None


def test_gdas_forward_is_the_sampled_arch_and_grads_every_alpha():
    torch.manual_seed(1)
    model = DartsSearchNetwork(C=4, layers=3, num_classes=3, mode="gdas").double()
    model.set_tau(1.0)
    model.train()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    out = model(x)
    sampled = model.last_arch
    assert len(sampled) == 2 and all(len(c) == N_EDGES for c in sampled)
    assert torch.allclose(out, model(x, arch=sampled), atol=1e-12, rtol=1e-12)
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    for a in model.arch_parameters():
        assert a.grad is not None and (a.grad != 0).all()


def test_uniform_and_fixed_modes_run_genotypes():
    torch.manual_seed(2)
    model = DartsSearchNetwork(C=4, layers=3, num_classes=3, mode="uniform", seed=7)
    x, y = torch.randn(4, 3, 8, 8), torch.tensor([0, 1, 2, 0])
    F.cross_entropy(model(x), y).backward()
    assert all(a.grad is None for a in model.arch_parameters())
    assert all(sum(o != OPS.index("none") for o in cell) == 8 for cell in model.last_arch)
    # the path RNG draws the BPE paper's random genotypes (spaces.darts.sample) and lives in the state dict
    model.reseed(7)
    assert [model.random_arch() for _ in range(4)] == space.sample(4, seed=7, unique=False)
    other = DartsSearchNetwork(C=4, layers=3, num_classes=3, seed=99)
    other.load_state_dict(model.state_dict())
    assert [model.random_arch() for _ in range(3)] == [other.random_arch() for _ in range(3)]
    model.set_mode("fixed", space.DARTS_V1)
    assert model(x).shape == (4, 3) and model.last_arch == edge_ops(space.DARTS_V1)


def test_setn_is_refused_in_the_darts_space(digits):
    model = DartsSearchNetwork(C=2, layers=3)
    with pytest.raises(ParamsError, match="setn"):
        model.set_mode("setn")
    with pytest.raises(ParamsError, match="setn"):
        model(torch.randn(2, 3, 8, 8), mode="setn")
    with pytest.raises(ParamsError, match="not available in the darts space"):
        run_search("setn", digits, epochs=1, **KW)
    assert SPACE_METHODS["darts"] == ("gdas", "darts-v1", "darts-v2", "rsps")


def test_darts_v2_grad_covers_both_alpha_tensors():
    torch.manual_seed(4)
    model = DartsSearchNetwork(C=3, layers=3, num_classes=3, mode="darts").double()
    opt = torch.optim.SGD(model.weights(), lr=0.0, momentum=0.9, weight_decay=3e-4)
    xt, yt = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 0])
    xv, yv = torch.randn(4, 3, 8, 8, dtype=torch.float64), torch.tensor([2, 1, 0, 1])
    darts_v2_arch_grad(model, opt, (xt, yt), (xv, yv))
    second = [a.grad.clone() for a in model.arch_parameters()]
    first = torch.autograd.grad(F.cross_entropy(model(xv), yv), model.arch_parameters())
    for s, f in zip(second, first):
        assert torch.allclose(s, f, atol=1e-12) and (s != 0).any()


# ------------------------------------------------------------------------------------------- run_search

@pytest.mark.parametrize("method", ["gdas", "darts-v1", "darts-v2", "rsps"])
def test_every_method_runs_in_the_darts_space(digits, method):
    r = run_search(method, digits, epochs=1, **KW)
    assert r["completed"] and r["best"] == space.validate(r["best"])
    assert len(r["history"]) == 1 and r["config"]["space"] == "darts" and r["config"]["depth"] == 3
    h = r["history"][0]
    assert 0 <= h["valid_acc"] <= 100 and h["train_loss"] > 0
    if method == "rsps":
        assert r["alphas"] is None and h["arch"] is None
        assert r["selection"]["evaluated"] == KW["select_num"]
        assert r["best"] in [c["arch"] for c in r["selection"]["candidates"]]
    else:
        probs = torch.tensor(r["alphas"])
        assert probs.shape == (2, 14, 8) and torch.allclose(probs.sum(-1), torch.ones(2, 14))
        assert h["arch"] == r["best"] and h["arch_acc"] is not None


def test_resume_in_the_darts_space_gives_the_same_alphas(digits, tmp_path):
    full = run_search("gdas", digits, epochs=2, **KW)
    ckpt = tmp_path / "search.pt"
    part = run_search("gdas", digits, epochs=2, checkpoint=ckpt, stop_after_epochs=1, **KW)
    assert not part["completed"] and ckpt.exists()
    resumed = run_search("gdas", digits, epochs=2, checkpoint=ckpt, **KW)
    assert resumed["resumed_from"] == 1 and resumed["completed"]
    assert resumed["alphas"] == full["alphas"]  # bit-identical on the CPU
    assert resumed["best"] == full["best"]


# ------------------------------------------------------------------------------------------------ stage

def test_stage_depth_key_follows_the_space():
    from stages.differentiable_search import search_config

    section = {"channels": 4, "image_size": 8, "batch_size": 64, "epochs": 1, "w_lr": 0.025, "w_wd": 3e-4,
               "a_lr": 3e-4, "a_wd": 1e-3}
    cfg = search_config({"space": "darts", "differentiable": {**section, "layers": 5, "w_nesterov": False}}, "gdas")
    assert cfg["space"] == "darts" and cfg["depth"] == 5 and cfg["w_nesterov"] is False
    cfg = search_config({"space": "nb201", "differentiable": {**section, "cells_per_stage": 2}}, "setn")
    assert cfg["space"] == "nb201" and cfg["depth"] == 2 and cfg["w_nesterov"] is True
    with pytest.raises(ParamsError, match="differentiable.cells_per_stage: not a key of the darts space"):
        search_config({"space": "darts", "differentiable": {**section, "cells_per_stage": 5}}, "gdas")
    msg = r"differentiable.layers: not a key of the nb201 space \(use cells_per_stage\)"
    with pytest.raises(ParamsError, match=msg):
        search_config({"space": "nb201", "differentiable": {**section, "layers": 5, "cells_per_stage": 1}}, "gdas")
    with pytest.raises(ParamsError, match="layers"):
        search_config({"space": "darts", "differentiable": section}, "gdas")
    with pytest.raises(ParamsError, match="setn"):
        search_config({"space": "darts", "differentiable": {**section, "layers": 5}}, "setn")
