"""RLNAS library side: NB201 supernet, angle metric, supernet accuracy, evolution search."""

import copy
import io
import random

import numpy as np
import pytest
import torch

from nasflow.data import load_dataset, random_labels
from nasflow.estimators.angle import PATH_EDGES, AngleScorer, angle, angle_scores, angle_vector, kept_paths
from nasflow.estimators.supernet_acc import supernet_accuracies, supernet_accuracy
from nasflow.models.nb201 import TinyNetwork
from nasflow.models.nb201_supernet import NONE, NB201Supernet, arch_to_ops, sample_cell_ops
from nasflow.search.rlnas_evolution import evolution_search
from nasflow.spaces import nb201 as space

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
ALL_NONE = space.format(["none"] * 6)
ALL_1X1 = space.format(["nor_conv_1x1"] * 6)
ALL_3X3 = space.format(["nor_conv_3x3"] * 6)
# none on 1<-0, 2<-0 and 3<-0: every input->output path starts with a none edge
NO_PATH = "|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def small(seed=0, **kw):
    torch.manual_seed(seed)
    return NB201Supernet(C=kw.pop("C", 4), N=kw.pop("N", 1), num_classes=10, seed=seed, **kw)


def perturbed_states(net, scale=0.05, seed=1):
    s0 = copy.deepcopy(net.state_dict())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return s0, copy.deepcopy(net.state_dict())


# ---------------------------------------------------------------------------------------------- supernet

def test_forward_shapes():
    net = small()
    x = torch.randn(3, 3, 16, 16)
    assert net(x).shape == (3, 10)
    assert net(x, ARCH).shape == (3, 10)
    assert net(x, ALL_NONE).shape == (3, 10)
    assert len(net.last_sampled) == 3 and all(ops == arch_to_ops(ALL_NONE) for ops in net.last_sampled)
    assert len(net.search_cells()) == 3 and len(net.reduction_blocks()) == 2
    big = NB201Supernet()
    assert (big.C, big.N) == (16, 5) and len(big.search_cells()) == 15
    assert all(isinstance(op, torch.nn.Module) for cell in big.search_cells() for e in cell.edges for op in e)
    # op BNs are non-affine
    conv = big.search_cells()[0].edges[0][space.OPS.index("nor_conv_3x3")]
    assert conv.bn.affine is False and conv.bn.track_running_stats is True


def test_sampled_cells_never_feed_a_node_only_none():
    rng = random.Random(0)
    seen_ops = [set() for _ in range(6)]
    for _ in range(3000):
        ops = sample_cell_ops(rng)
        for node in (1, 2, 3):
            assert any(ops[k] != NONE for k, (dst, _) in enumerate(space.EDGES) if dst == node)
        assert space.is_connected(space.format([space.OPS[o] for o in ops]))
        for k, o in enumerate(ops):
            seen_ops[k].add(o)
    # every op is drawn on every edge, none included, except on 1<-0 (node 1's only input)
    assert seen_ops[0] == {1, 2, 3, 4} and all(s == set(range(5)) for s in seen_ops[1:])
    net = small()
    for _ in range(5):
        net(torch.randn(2, 3, 8, 8))
        assert len(net.last_sampled) == 3
        assert all(ops[0] != NONE for ops in net.last_sampled)  # node 1 has a single input


def test_path_sampling_deterministic_and_checkpointed():
    x = torch.randn(2, 3, 8, 8)

    def draws(net, n=4):
        out = []
        for _ in range(n):
            net(x)
            out.append(list(net.last_sampled))
        return out

    assert draws(small(seed=3)) == draws(small(seed=3))
    assert draws(small(seed=3)) != draws(small(seed=4))
    # the path RNG travels in the state dict (and survives torch.load(weights_only=True))
    a = small(seed=5)
    draws(a, 2)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = small(seed=99)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert draws(a, 3) == draws(b, 3)


def test_fixed_arch_uses_only_its_ops():
    net = small()
    out = net(torch.randn(4, 3, 16, 16), ARCH)
    out.square().mean().backward()
    chosen = arch_to_ops(ARCH)
    for cell in net.search_cells():
        for e, edge in enumerate(cell.edges):
            for o, op in enumerate(edge):
                for p in op.parameters():
                    if o == chosen[e]:
                        assert p.grad is not None and p.grad.abs().sum() > 0
                    else:
                        assert p.grad is None
    for p in [*net.stem.parameters(), *net.classifier.parameters()]:
        assert p.grad is not None


def test_fixed_arch_equals_tinynetwork_with_shared_weights():
    net = small()
    tiny = TinyNetwork(ARCH, C=4, N=1, num_classes=10, affine=False)
    ops = arch_to_ops(ARCH)
    sd = net.state_dict()
    mapped = {}
    for key in tiny.state_dict():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "edges":  # cells.k.edges.e.rest -> cells.k.edges.e.o.rest
            e = int(parts[3])
            key_s = ".".join(parts[:4] + [str(ops[e])] + parts[4:])
        else:
            key_s = key
        mapped[key] = sd[key_s]
    tiny.load_state_dict(mapped)
    x = torch.randn(4, 3, 16, 16)
    net.train(), tiny.train()
    torch.testing.assert_close(net(x, ARCH), tiny(x))
    net.eval(), tiny.eval()
    torch.testing.assert_close(net(x, ARCH), tiny(x))


# ------------------------------------------------------------------------------------------------- angle

def test_angle_vector_length_small_case():
    # C=2, N=1, 10 classes, arch all nor_conv_1x1:
    #   stem: conv 3*2*9 = 54 + BN 2*2 = 4                                           ->   58
    #   block 2->4: conv_a 4*2*9=72 + BN 8, conv_b 4*4*9=144 + BN 8, shortcut 1x1 4*2=8 ->  240
    #   block 4->8: conv_a 8*4*9=288 + BN 16, conv_b 8*8*9=576 + BN 16, shortcut 32    ->  928
    #   head: BN 2*8 = 16, classifier 8*10 + 10 = 90                                    ->  106
    #   cells: paths [0,3],[0,2,3],[0,1,2,3],[0,1,3] hold 1+2+3+2 = 8 1x1 convs per cell,
    #          C*C each at C = 2, 4, 8: 8 * (4 + 16 + 64)                               ->  672
    #   total                                                                           -> 2004
    net = NB201Supernet(C=2, N=1)
    assert angle_vector(net, ALL_1X1).numel() == 2004
    # avg_pool adds C*9 entries per path edge, skip adds none: all-skip = the fixed part only
    assert angle_vector(net, space.format(["skip_connect"] * 6)).numel() == 2004 - 672
    assert (angle_vector(net, space.format(["avg_pool_3x3"] * 6)).numel()
            == 2004 - 672 + 8 * 9 * (2 + 4 + 8))


def test_angle_zero_cases():
    net = small()
    s0, s1 = perturbed_states(net)
    assert kept_paths(ALL_NONE) == [] and kept_paths(NO_PATH) == []
    assert angle(s0, s1, ALL_NONE, net) == 0.0
    assert angle(s0, s1, NO_PATH, net) == 0.0
    assert angle_scores(s0, s1, [ALL_NONE, NO_PATH], net) == [0.0, 0.0]
    assert angle(s0, s1, ARCH, net) > 0
    for arch in (ARCH, ALL_3X3, ALL_1X1):
        assert angle(s0, s0, arch, net) == 0.0
    assert angle_scores(s1, s1, [ARCH, ALL_3X3], net) == [0.0, 0.0]
    # a path with a none edge is dropped: only the path [0,3] is kept here
    assert kept_paths("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|") == [PATH_EDGES[0]]


def test_angle_positive_after_one_step():
    net = small()
    s0 = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    loss = torch.nn.functional.cross_entropy(net(torch.randn(8, 3, 16, 16)), torch.randint(0, 10, (8,)))
    loss.backward()
    opt.step()
    s1 = net.state_dict()
    assert angle(s0, s1, ARCH, net) > 0
    assert AngleScorer(s0, s1, net).score(ARCH) == pytest.approx(angle(s0, s1, ARCH, net), abs=1e-12)


def test_angle_scores_match_angle():
    net = small(C=3, N=2)
    s0, s1 = perturbed_states(net, scale=0.2)
    archs = space.sample(200, seed=7)
    fast = angle_scores(s0, s1, archs, lambda: small(C=3, N=2))
    slow = [angle(s0, s1, a, net) for a in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-10)
    assert len(set(np.round(fast, 8))) > 50  # not degenerate
    # also from nasflow.train-style checkpoint dicts
    fast2 = angle_scores({"model": s0}, {"model": s1}, archs[:5], net)
    np.testing.assert_allclose(fast2, slow[:5], rtol=0, atol=1e-10)


# ----------------------------------------------------------------------------------- labels and val-acc

def test_random_labels_fixed_and_seeded():
    a, b, c = random_labels(1000, 10, 0), random_labels(1000, 10, 0), random_labels(1000, 10, 1)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.int64 and a.min() >= 0 and a.max() <= 9
    assert torch.equal(a, torch.from_numpy(np.random.RandomState(0).randint(0, 10, 1000)))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_supernet_accuracy_deterministic(digits):
    net = small()
    before = copy.deepcopy(net.state_dict())
    kw = dict(device="cpu", batch_size=64, bn_batches=2, max_eval=200)
    a = supernet_accuracy(net, ARCH, digits, **kw)
    b = supernet_accuracy(net, ARCH, digits, **kw)
    assert a == b and 0.0 <= a <= 100.0
    accs = supernet_accuracies(net, [ARCH, ALL_3X3], digits, **kw)
    assert accs[0] == a
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k != "_extra_state")
    assert net.training  # mode restored


def test_supernet_accuracy_is_the_hand_counted_accuracy_in_either_memory_format(digits):
    from nasflow.data import DeviceLoader

    net = small()
    kw = dict(device="cpu", batch_size=64, bn_batches=0)  # no recalibration: the supernet's own BN statistics
    acc = supernet_accuracy(net, ARCH, digits, **kw)
    loader = DeviceLoader(digits.x_eval, digits.y_eval, batch_size=97, device="cpu", image_size=digits.image_size,
                          train=False, mean=digits.mean, std=digits.std, channels_last=False)
    net.eval()
    with torch.no_grad():
        correct = sum(int((net(x, arch=ARCH).argmax(1) == y).sum()) for x, y in loader)
    net.train()
    assert acc == pytest.approx(100.0 * correct / len(digits.y_eval), abs=1e-9)
    # NHWC kernels round differently: at most an image's argmax may move
    assert abs(supernet_accuracy(net, ARCH, digits, channels_last=True, **kw) - acc) <= 100.0 / len(digits.y_eval)


# ---------------------------------------------------------------------------------------------- search

def conv3_count(archs):
    return [float(space.parse(a).count("nor_conv_3x3")) for a in archs]


def test_evolution_finds_optimum_without_repeats():
    scored = []

    def score(archs):
        scored.extend(archs)
        return conv3_count(archs)

    res = evolution_search(score, space=space, seed=0)
    assert res["best"] == ALL_3X3 and res["best_score"] == 6.0
    assert len(scored) == len(set(scored)) == res["n_scored"]
    assert len(res["history"]) == 20 and len(res["history"][0]["archs"]) == 100
    assert res["n_scored"] <= 2000 and len(res["topk"]) == 30
    bests = [h["best_score"] for h in res["history"]]
    assert bests == sorted(bests)  # elitist top-k
    assert evolution_search(conv3_count, space=space, seed=0) == res
    assert evolution_search(conv3_count, space=space, seed=1)["history"] != res["history"]


def test_evolution_constraint_and_small_budget():
    res = evolution_search(conv3_count, space=space, seed=2, population=10, topk=3, n_mutations=4,
                           n_crossovers=4, generations=3, constraint=space.is_connected)
    archs = [r["arch"] for h in res["history"] for r in h["archs"]]
    assert all(space.is_connected(a) for a in archs) and len(archs) == len(set(archs)) <= 30


def test_supernet_training_resumes_exactly(tmp_path):
    from nasflow.train import TrainConfig, train

    splits = load_dataset("digits", subset=96)
    labels = random_labels(len(splits.y_train), 10, 0)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.025, lr_min=0.001, grad_clip=None, image_size=16)
    full = small(seed=1)
    train(full, splits, cfg, seed=1, device="cpu", labels=labels, progress=False)
    ckpt = tmp_path / "ckpt.pt"
    part = small(seed=1)
    train(part, splits, cfg, seed=1, device="cpu", labels=labels, progress=False, checkpoint=ckpt,
          stop_after_epochs=1)
    resumed = small(seed=1)  # a fresh process: same init, path RNG restored from the checkpoint
    train(resumed, splits, cfg, seed=1, device="cpu", labels=labels, progress=False, checkpoint=ckpt)
    a, b = full.state_dict(), resumed.state_dict()
    for k in a:
        if k == "_extra_state":
            assert torch.equal(a[k]["path_rng"], b[k]["path_rng"])
        else:
            assert torch.equal(a[k], b[k]), k


def test_supernet_resume_keeps_stepping_ops_with_zeroed_grads(tmp_path):
    """grad_reset "zeros" (RLNAS, the stage's default): an op sampled once keeps getting weight decay and a
    momentum step while unsampled. A resumed process starts with every grad None, so the checkpoint must say
    which params had one, or the resumed supernet drifts from its first step (a kill between epochs did)."""
    from nasflow.train import TrainConfig, train

    splits = load_dataset("digits", subset=96)
    labels = random_labels(len(splits.y_train), 10, 0)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, momentum=0.9, weight_decay=5e-4, image_size=8,
                      grad_reset="zeros")
    full = small(seed=0)
    train(full, splits, cfg, seed=0, device="cpu", labels=labels, progress=False)
    ckpt = tmp_path / "train.pt"
    part = small(seed=0)
    train(part, splits, cfg, seed=0, device="cpu", labels=labels, progress=False, checkpoint=ckpt,
          stop_after_epochs=1)  # what a SIGKILL right after the epoch-1 checkpoint leaves
    had_grad = [p.grad is not None for p in part.parameters()]
    assert torch.load(ckpt, weights_only=True)["has_grad"].tolist() == had_grad
    assert 0 < sum(had_grad) < len(had_grad)  # some ops were never sampled: None must stay None
    resumed = small(seed=0)  # a fresh process: no grads at all
    out = train(resumed, splits, cfg, seed=0, device="cpu", labels=labels, progress=False, checkpoint=ckpt)
    assert out["resumed_from"] == 1
    a, b = full.state_dict(), resumed.state_dict()
    assert torch.equal(a["_extra_state"]["path_rng"], b["_extra_state"]["path_rng"])
    assert [k for k in a if k != "_extra_state" and not torch.equal(a[k], b[k])] == []
