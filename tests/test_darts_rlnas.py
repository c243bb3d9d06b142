"""RLNAS in the DARTS cell space: edge encoding, supernet, angle (30 paths), evolution, scorer."""

import copy
import io
import itertools

import numpy as np
import pytest
import torch

from nasflow.data import load_dataset
from nasflow.errors import ArchError
from nasflow.estimators.darts_angle import (
    PATH_EDGES,
    PATHS,
    DartsAngleScorer,
    darts_angle,
    darts_angle_vector,
    darts_kept_paths,
)
from nasflow.estimators.rlnas import SupernetScorer, build_supernet, train_supernet
from nasflow.models.darts_supernet import DartsSupernet, arch_to_edge_ops
from nasflow.search.rlnas_evolution import evolution_search
from nasflow.spaces import darts as space


def genotype(normal, reduce):
    cell = lambda pairs: "[" + ", ".join(f"('{op}', {i})" for op, i in pairs) + "]"  # noqa: E731
    return space.canonical(f"Genotype(normal={cell(normal)}, normal_concat=[2, 3, 4, 5], "
                           f"reduce={cell(reduce)}, reduce_concat=[2, 3, 4, 5])")


# normal: a chain 0,1 -> 2 -> 3 -> 4 -> 5 (node k reads k-2 and k-1), all sep_conv_3x3
CHAIN = [(0, 1), (1, 2), (2, 3), (3, 4)]
MIXED_REDUCE = [("max_pool_3x3", 0), ("avg_pool_3x3", 1), ("skip_connect", 0), ("skip_connect", 1),
                ("dil_conv_3x3", 0), ("dil_conv_5x5", 1), ("sep_conv_5x5", 0), ("skip_connect", 1)]
ARCH = genotype([("sep_conv_3x3", i) for pair in CHAIN for i in pair], MIXED_REDUCE)


def tiny(seed=0, C=2, layers=3):
    torch.manual_seed(seed)
    return DartsSupernet(C, layers, 10, seed=seed)


def valid_cell(ops):
    return all(sum(ops[e] != 0 for e in space.NODE_EDGES[k]) == 2 for k in space.NODES)


# ------------------------------------------------------------------------------------------- encoding

def test_edge_ops_round_trip():
    assert space.N_EDGES == 14 and len(space.EDGE_INPUTS) == 14
    assert [space.EDGE_INPUTS.index((k, 0)) for k in space.NODES] == [0, 2, 5, 9]
    normal, reduce = space.to_edge_ops(space.DARTS_V2)
    # DARTS_V2 normal: node 2 sep3(0) sep3(1); node 3 sep3(0) sep3(1); node 4 sep3(1) skip(0);
    # node 5 skip(0) dil3(2)
    assert normal == (4, 4, 4, 4, 0, 3, 4, 0, 0, 3, 0, 6, 0, 0)
    assert space.from_edge_ops(normal, reduce) == space.unique_key(space.DARTS_V2)
    assert space.unique_key(space.from_edge_ops(normal, reduce)) == space.unique_key(space.DARTS_V2)
    for arch in [space.DARTS_V1, *space.sample(30, seed=1)]:
        n, r = space.to_edge_ops(arch)
        assert valid_cell(n) and valid_cell(r)
        assert space.from_edge_ops(n, r) == space.unique_key(arch)
        assert space.to_edge_ops(space.from_edge_ops(n, r)) == (n, r)
    with pytest.raises(ArchError):
        space.from_edge_ops([0] * 14, reduce)  # nodes without inputs
    with pytest.raises(ArchError):
        space.from_edge_ops([1] * 14, reduce)  # nodes with too many inputs
    with pytest.raises(ArchError):
        space.from_edge_ops(normal[:13], reduce)
    with pytest.raises(ArchError):
        space.from_edge_ops((8,) + normal[1:], reduce)


def test_repair_edge_ops():
    rng = np.random.RandomState(0)
    drawn = set()
    for _ in range(500):
        raw = rng.randint(8, size=14)
        fixed = space.repair_edge_ops(raw, rng)
        assert valid_cell(fixed)
        # only the edges the repair had to touch change: a kept non-none edge keeps its op
        for e, (a, b) in enumerate(zip(raw, fixed)):
            assert b == a or b == 0 or a == 0
        drawn.update(fixed)
    assert drawn == set(range(8))
    for arch in space.sample(20, seed=2):
        for cell in space.to_edge_ops(arch):
            state = rng.get_state()
            assert space.repair_edge_ops(cell, rng) == cell
            assert rng.get_state()[2] == state[2]  # nothing drawn


# ------------------------------------------------------------------------------------------- supernet

def test_supernet_structure_and_sampling():
    net = tiny()
    assert len(net.search_cells()) == 3 and net.reduction_layers == (1, 2)
    assert [c.reduction for c in net.cells] == [False, True, True]
    big = DartsSupernet()
    assert (big.C, big.layers, len(big.cells)) == (16, 8, 8) and big.reduction_layers == (2, 5)
    assert all(m.affine for m in big.modules() if isinstance(m, torch.nn.BatchNorm2d))
    x = torch.randn(2, 3, 8, 8)
    seen = set()
    for _ in range(20):
        assert net(x).shape == (2, 10)
        normal, reduce = net.last_sampled
        assert valid_cell(normal) and valid_cell(reduce)
        seen.add(space.from_edge_ops(normal, reduce))
    assert len(seen) == 20
    assert net(x, ARCH).shape == (2, 10) and net.last_sampled == space.to_edge_ops(ARCH)
    net.fixed_arch = space.DARTS_V2
    net(x)
    assert net.last_sampled == space.to_edge_ops(space.DARTS_V2)


def test_path_rng_deterministic_and_checkpointed():
    x = torch.randn(2, 3, 8, 8)

    def draws(net, n=3):
        out = []
        for _ in range(n):
            net(x)
            out.append(net.last_sampled)
        return out

    assert draws(tiny(seed=3)) == draws(tiny(seed=3))
    assert draws(tiny(seed=3)) != draws(tiny(seed=4))
    a = tiny(seed=5)
    draws(a, 2)
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    b = tiny(seed=99)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert draws(a) == draws(b)
    b.reseed(5)
    assert draws(b, 2) == draws(tiny(seed=5), 2)


def test_fixed_arch_uses_only_its_edges():
    net = tiny()
    net(torch.randn(4, 3, 8, 8), ARCH).square().mean().backward()
    normal, reduce = space.to_edge_ops(ARCH)
    for cell in net.cells:
        ops = reduce if cell.reduction else normal
        for e, edge in enumerate(cell.edges):
            for o, op in enumerate(edge):
                for p in op.parameters():
                    if o == ops[e]:
                        assert p.grad is not None and p.grad.abs().sum() > 0
                    else:
                        assert p.grad is None
    for p in [*net.stem.parameters(), *net.classifier.parameters(),
              *net.cells[2].preprocess0.parameters()]:
        assert p.grad is not None


def test_fixed_arch_equals_darts_network_with_shared_weights():
    from nasflow.models.darts import NetworkCIFAR

    # no pools (the supernet's pools carry an extra BN); each node's pairs input-ascending (summing order)
    arch = genotype([("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0), ("dil_conv_3x3", 2),
                     ("sep_conv_5x5", 1), ("dil_conv_5x5", 3), ("skip_connect", 2), ("sep_conv_3x3", 4)],
                    [("skip_connect", 0), ("sep_conv_5x5", 1), ("dil_conv_3x3", 1), ("skip_connect", 2),
                     ("sep_conv_3x3", 0), ("skip_connect", 3), ("dil_conv_5x5", 2), ("skip_connect", 4)])
    net = tiny(C=4)
    ref = NetworkCIFAR(arch, C=4, layers=3, num_classes=10, auxiliary=False)
    g = space.parse(arch)
    sd = net.state_dict()
    mapped = {}
    for key in ref.state_dict():
        parts = key.split(".")
        if parts[0] == "cells" and parts[2] == "ops":  # cells.i.ops.j.rest -> cells.i.edges.e.o.rest
            i, j = int(parts[1]), int(parts[3])
            op, inp = (g.reduce if ref.cells[i].reduction else g.normal)[j]
            e = space.EDGE_INPUTS.index((space.NODES[j // 2], inp))
            key_s = ".".join(["cells", parts[1], "edges", str(e), str(space.OPS.index(op))] + parts[4:])
        else:
            key_s = key
        mapped[key] = sd[key_s]
    ref.load_state_dict(mapped)
    x = torch.randn(4, 3, 8, 8)
    net.train(), ref.train()
    torch.testing.assert_close(net(x, arch), ref(x)[0])
    net.eval(), ref.eval()
    torch.testing.assert_close(net(x, arch), ref(x))


# ---------------------------------------------------------------------------------------------- angle

def test_paths():
    # all 30 paths from an input node (0 or 1) through intermediate nodes, each ending at some node 2..5
    every = {p for start in (0, 1) for end in space.NODES for r in range(4)
             for mid in itertools.combinations(range(2, end), r) for p in [(start, *mid, end)]}
    assert len(PATHS) == 30 and set(PATHS) == every
    assert PATH_EDGES[0] == (0, 4, 8, 13) and PATH_EDGES[-1] == (1,)
    normal, _ = space.to_edge_ops(ARCH)
    assert len(darts_kept_paths(normal)) == 18


def test_angle_vector_length_by_hand():
    # C=2, layers=3: cell 0 normal (C=2), cells 1 and 2 reduce (C=4, 8); 10 classes.
    #   stem: conv 6*3*9 = 162 + BN 2*6 = 12                                                  ->  174
    #   cell 0: pre0 ReLUConvBN 6->2: 12 + 4, pre1 6->2: 12 + 4                               ->   32
    #   cell 1: pre0 ReLUConvBN 6->4: 24 + 8, pre1 8->4: 32 + 8                               ->   72
    #   cell 2: pre0 FactorizedReduce 8->8: 4*8 + 4*8 + 16, pre1 16->8: 128 + 16              ->  224
    #   classifier weight (no bias): 32*10                                                    ->  320
    fixed = 174 + 32 + 72 + 224 + 320  # 822
    # normal cell (the chain, all sep_conv_3x3): the kept paths (no none edge) are
    #   [0,2,3,4,5] [0,2,3,5] [0,2,4,5] [1,2,3,4,5] [1,2,3,5] [1,2,4,5] [1,3,4,5] [1,3,5]
    #   [0,2,3,4] [0,2,4] [1,2,3,4] [1,2,4] [1,3,4] [0,2,3] [1,2,3] [1,3] [0,2] [1,2]
    #   with 4+3+3+4+3+3+3+2 + 3+2+3+2+2 + 2+2+1+1+1 = 44 edges
    #   sep_conv_3x3 at C=2: dw 2*9, pw 2*2, dw 2*9, pw 2*2, 4 BN vectors 4*2 = 52
    normal = 44 * 52
    # reduce cells: every node reads 0 and 1 (stride 2): 8 one-edge paths [k, n], each edge once
    #   pools: 1/9 tensor C*9 + BN 2C = 11C (x2); skip = FactorizedReduce C*C + 2C (x3);
    #   dil3: C*9 + C*C + BN weight twice 2C; dil5: C*25 + C*C + 2C; sep5: 2*(C*25 + C*C) + 4C
    #   -> 22C + 3C^2 + 6C + C^2 + 11C + C^2 + 27C + 2C^2 + 54C = 7C^2 + 120C, at C = 4 and 8
    reduce = (7 * 16 + 120 * 4) + (7 * 64 + 120 * 8)  # 592 + 1408
    net = DartsSupernet(2, 3)
    assert darts_angle_vector(net, ARCH).numel() == fixed + normal + reduce == 5110
    # skip_connect at stride 1 is eye(C): C*C = 4 per edge instead of 52
    skips = ARCH.replace("sep_conv_3x3", "skip_connect")
    assert darts_angle_vector(net, skips).numel() == fixed + 44 * 4 + reduce


def test_dil_conv_uses_bn_weight_twice():
    net = tiny()
    for cell in net.cells:
        for edge in cell.edges:
            for op in edge:
                for name, p in op.named_parameters():
                    if name.endswith("bias"):
                        torch.nn.init.constant_(p, 7.0)
    v = darts_angle_vector(net, ARCH)
    dil = net.cells[1].edges[space.EDGE_INPUTS.index((4, 0))][space.OPS.index("dil_conv_3x3")]
    bn = dil[3].weight.detach().double()
    flat = torch.cat([dil[1].weight.detach().double().reshape(-1), dil[2].weight.detach().double().reshape(-1),
                      bn, bn])
    hits = [i for i in range(len(v) - len(flat) + 1) if torch.equal(v[i:i + len(flat)], flat)]
    assert len(hits) == 1


def test_fast_scorer_matches_explicit():
    a, b = tiny(seed=0, C=3, layers=4), tiny(seed=1, C=3, layers=4)  # two different random inits
    archs = space.sample(20, seed=5) + [ARCH, space.DARTS_V2]
    scorer = DartsAngleScorer(a.state_dict(), {"model": b.state_dict()}, lambda: tiny(C=3, layers=4))
    fast = scorer.scores(archs)
    slow = [darts_angle(a, b, arch, a) for arch in archs]
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-9)
    assert len(set(np.round(fast, 8))) == len(archs) and all(0 < s < np.pi for s in fast)
    assert scorer.score(ARCH) == pytest.approx(slow[-2], abs=1e-9)
    assert scorer.score(space.to_edge_ops(ARCH)) == pytest.approx(slow[-2], abs=1e-9)
    same = DartsAngleScorer(a, a, a)
    assert same.scores(archs[:5]).tolist() == [0.0] * 5
    assert darts_angle(b.state_dict(), b.state_dict(), ARCH, b) == 0.0
    assert scorer.scores([]).shape == (0,)


# --------------------------------------------------------------------------------------------- search

def sep3_count(archs):
    return [float(a.count("sep_conv_3x3")) for a in archs]


def test_evolution_darts():
    scored = []

    def score(archs):
        scored.extend(archs)
        return sep3_count(archs)

    kw = dict(space=space, seed=0, population=50, topk=10, n_mutations=25, n_crossovers=25, generations=8)
    res = evolution_search(score, **kw)
    assert [len(h["archs"]) for h in res["history"]] == [50] * 8
    assert len(scored) == len(set(scored)) == res["n_scored"] == 400
    assert all(space.canonical(a) == a for a in scored)  # valid genotypes, canonical spelling
    bests = [h["best_score"] for h in res["history"]]
    assert bests == sorted(bests) and bests[-1] > bests[0]
    assert len(res["topk"]) == 10
    assert evolution_search(sep3_count, **kw) == res
    assert evolution_search(sep3_count, **{**kw, "seed": 1})["history"] != res["history"]


# --------------------------------------------------------------------------------------------- scorer

def test_supernet_scorer_darts(tmp_path):
    splits = load_dataset("digits", subset=64)
    setting = {"epochs": 1, "batch_size": 32, "lr": 0.025, "lr_min": 0.001, "nesterov": False,
               "weight_decay": 3e-4, "grad_clip": 5.0, "channels": 2, "layers": 3, "image_size": 8}
    assert isinstance(build_supernet(setting, 10, 0, "darts"), DartsSupernet)
    out = train_supernet(setting, splits, labels="random", seed=0, device="cpu", work_dir=tmp_path,
                         progress=False, space=space)
    archs = [ARCH, space.DARTS_V2]
    scorer = SupernetScorer(out["init"], out["final"], setting, splits, seed=0, device="cpu", bn_batches=1,
                            max_eval=32, space="darts")
    angles, _ = scorer.score("angle", archs)
    assert all(a > 0 for a in angles)
    ref = DartsAngleScorer(out["init"], out["final"], scorer.supernet).scores(archs)
    np.testing.assert_allclose(angles, ref, rtol=0, atol=1e-12)
    before = copy.deepcopy(scorer.supernet.state_dict())
    accs, _ = scorer.score("supernet_acc", archs)
    assert len(accs) == 2 and all(0.0 <= a <= 100.0 for a in accs)
    assert scorer.score("supernet_acc", archs)[0] == accs
    after = scorer.supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k != "_extra_state")
    assert arch_to_edge_ops(ARCH) == space.to_edge_ops(ARCH)
