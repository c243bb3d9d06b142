"""The DARTS search space: genotype strings, sampling, mutation, encoding, NetworkCIFAR, counts, CLI, training."""

import collections
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasflow.counting import count_flops, count_params
from nasflow.errors import ArchError, ParamsError
from nasflow.models import darts as darts_net
from nasflow.spaces import available_spaces, darts, get_space

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]

# A genotype of our own that uses every op, with skip_connect both on a reduction input (FactorizedReduce)
# and on an intermediate node (identity) of the reduce cell.
MINE_NORMAL = [("sep_conv_5x5", 1), ("dil_conv_3x3", 0), ("skip_connect", 0), ("avg_pool_3x3", 2),
               ("sep_conv_3x3", 3), ("max_pool_3x3", 1), ("dil_conv_5x5", 4), ("skip_connect", 2)]
MINE_REDUCE = [("skip_connect", 0), ("sep_conv_3x3", 1), ("max_pool_3x3", 1), ("skip_connect", 2),
               ("dil_conv_5x5", 0), ("avg_pool_3x3", 3), ("sep_conv_5x5", 4), ("dil_conv_3x3", 1)]


def flat_text(normal, reduce, concat="[2, 3, 4, 5]"):
    cell = lambda pairs: "[" + ", ".join(f"('{op}', {i})" for op, i in pairs) + "]"  # noqa: E731
    return f"Genotype(normal={cell(normal)}, normal_concat={concat}, reduce={cell(reduce)}, reduce_concat={concat})"


MINE = flat_text(MINE_NORMAL, MINE_REDUCE)

# The same genotype in BPE's spelling: pairs nested per node, double quotes, tuples, range(2, 6), newlines.
MINE_NESTED = """Genotype(
    normal=[[("sep_conv_5x5", 1), ("dil_conv_3x3", 0)], [("skip_connect", 0), ("avg_pool_3x3", 2)],
            [("sep_conv_3x3", 3), ("max_pool_3x3", 1)], [("dil_conv_5x5", 4), ("skip_connect", 2)]],
    normal_concat=range(2, 6),
    reduce=([["skip_connect", 0], ["sep_conv_3x3", 1]], [["max_pool_3x3", 1], ["skip_connect", 2]],
            [["dil_conv_5x5", 0], ["avg_pool_3x3", 3]], [["sep_conv_5x5", 4], ["dil_conv_3x3", 1]]),
    reduce_concat=range(2, 6),
)"""


# ------------------------------------------------------------------------------------------- strings

def test_registered():
    assert "darts" in available_spaces()
    space = get_space("darts")
    assert space is darts and space.NAME == "darts"
    assert darts.OPS == ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
                         "dil_conv_3x3", "dil_conv_5x5")
    assert not hasattr(darts, "enumerate_all")


def test_round_trip_both_spellings():
    assert darts.canonical(MINE) == MINE  # the flat spelling is canonical
    assert darts.canonical(MINE_NESTED) == MINE
    assert darts.canonical(MINE.replace("[2, 3, 4, 5]", "range(2, 6)")) == MINE
    assert darts.canonical(MINE.replace("'", '"')) == MINE
    assert darts.canonical("  genotypes.Genotype" + MINE[len("Genotype"):] + "\n") == MINE
    g = darts.parse(MINE_NESTED)
    assert g.normal == tuple(MINE_NORMAL) and g.reduce == tuple(MINE_REDUCE)
    assert g.normal_concat == g.reduce_concat == (2, 3, 4, 5)
    assert darts.format(g) == MINE and darts.parse(darts.format(g)) == g
    positional = f"Genotype({MINE_NORMAL!r}, [2, 3, 4, 5], {MINE_REDUCE!r}, range(2, 6))"
    assert darts.canonical(positional) == MINE
    # DARTS's own namedtuple objects (concat as range) are accepted too
    DartsGenotype = collections.namedtuple("Genotype", "normal normal_concat reduce reduce_concat")
    assert darts.canonical(DartsGenotype(MINE_NORMAL, range(2, 6), MINE_REDUCE, range(2, 6))) == MINE


def test_published_genotypes():
    assert darts.DARTS_V2.startswith("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ")
    assert darts.DARTS_V1 != darts.DARTS_V2
    for g in (darts.DARTS_V1, darts.DARTS_V2):
        assert darts.validate(g) == g


def _bad_cases():
    p = list(MINE_NORMAL)
    yield flat_text(p[:7], MINE_REDUCE), "normal: expected 8 (op, input) pairs"
    yield flat_text(MINE_NORMAL, MINE_REDUCE + [("sep_conv_3x3", 0)]), "reduce: expected 8 (op, input) pairs"
    yield MINE_NESTED.replace('[("sep_conv_3x3", 3), ("max_pool_3x3", 1)],', ""), "normal: expected 4 nodes"
    yield MINE_NESTED.replace('("dil_conv_3x3", 0)]', '("dil_conv_3x3", 0), ("skip_connect", 1)]'), \
        "normal node 2: expected 2 (op, input) pairs, got 3"
    yield flat_text(p[:6] + [("dil_conv_5x5", 5), p[7]], MINE_REDUCE), "normal node 5: input 5 out of range 0..4"
    yield flat_text(p[:2] + [("skip_connect", 3)] + p[3:], MINE_REDUCE), "normal node 3: input 3 out of range 0..2"
    yield flat_text(p[:1] + [("sep_conv_3x3", -1)] + p[2:], MINE_REDUCE), "input -1 out of range 0..1"
    yield flat_text(p[:4] + [("conv_7x1_1x7", 3)] + p[5:], MINE_REDUCE), "normal node 4: unknown op 'conv_7x1_1x7'"
    yield flat_text(MINE_NORMAL, [("none", 0)] + MINE_REDUCE[1:]), "reduce node 2: op 'none' is not allowed"
    yield flat_text(p[:6] + [("dil_conv_5x5", 2), p[7]], MINE_REDUCE), "normal node 5: both pairs take input 2"
    yield MINE.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[4, 5]"), "reduce_concat: expected [2, 3, 4, 5]"
    yield MINE.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 7)"), "normal_concat: expected"
    yield MINE[:-1], "malformed genotype text"
    yield MINE.replace("('sep_conv_5x5', 1)", "('sep_conv_5x5' 1)"), "malformed genotype text"
    yield MINE.replace("('sep_conv_5x5', 1)", "('sep_conv_5x5', 1.0)"), "malformed genotype text"
    yield MINE.replace("('sep_conv_5x5', 1)", "('sep_conv_5x5', True)"), "malformed genotype text"
    yield MINE.replace("normal_concat=", "normal_cat="), "unknown Genotype field 'normal_cat'"
    yield MINE.replace(", reduce_concat=[2, 3, 4, 5]", ""), "Genotype is missing reduce_concat"
    yield "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", "malformed genotype text"
    yield "Genotype", "expected text of the form Genotype("
    yield "", "empty string"
    yield "Genotype(" + "[" * 5000 + "]" * 5000 + ")", "malformed genotype text"


@pytest.mark.parametrize("bad,reason", list(_bad_cases()))
def test_bad_genotypes_rejected(bad, reason):
    with pytest.raises(ArchError) as info:
        darts.parse(bad)
    message = str(info.value)
    assert reason in message
    assert message.startswith("invalid arch ") and "\n" not in message


def test_eval_injection_is_never_run(tmp_path):
    target = tmp_path / "pwned"
    payload = f"__import__('pathlib').Path({str(target)!r}).touch()"
    for text in (payload,
                 MINE.replace("normal_concat=[2, 3, 4, 5]", f"normal_concat={payload}"),
                 MINE.replace("('sep_conv_5x5', 1)", f"({payload}, 1)"),
                 f"Genotype(normal=[(op, 0) for op in {payload}], normal_concat=[2, 3, 4, 5], "
                 f"reduce=[], reduce_concat=[2, 3, 4, 5])",
                 f"({payload}, {MINE})[1]"):
        with pytest.raises(ArchError, match="malformed genotype text|expected text of the form"):
            darts.parse(text)
    assert not target.exists()
    with pytest.raises(ArchError, match="got a call to __import__"):
        darts.parse(MINE.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=__import__('os')"))
    with pytest.raises(ArchError, match="expected a genotype string, got int"):
        darts.parse(5)


def test_unique_key_merges_pair_order_only():
    swapped = MINE.replace("('sep_conv_5x5', 1), ('dil_conv_3x3', 0)", "('dil_conv_3x3', 0), ('sep_conv_5x5', 1)")
    assert darts.canonical(swapped) != MINE  # the canonical string keeps the order as written
    assert darts.unique_key(swapped) == darts.unique_key(MINE)
    assert darts.unique_key(darts.DARTS_V1) != darts.unique_key(darts.DARTS_V2)


# -------------------------------------------------------------------------------- sample and mutate

def test_sample_deterministic_valid_unique_and_uniform():
    a = darts.sample(40, seed=0)
    assert a == darts.sample(40, seed=0) and a != darts.sample(40, seed=1)
    assert len(set(a)) == 40 and all(darts.validate(x) == x for x in a)
    assert darts.sample(0, seed=0) == [] and len(darts.sample(3, seed=0, unique=False)) == 3
    with pytest.raises(ParamsError):
        darts.sample(-1, seed=0)
    ops, node5_inputs = collections.Counter(), collections.Counter()
    for arch in darts.sample(500, seed=2):
        g = darts.parse(arch)
        for pairs in (g.normal, g.reduce):
            ops.update(op for op, _ in pairs)
            node5_inputs.update(inp for _, inp in pairs[6:])
    assert set(ops) == set(darts.OPS) - {"none"}
    assert all(abs(n / 8000 - 1 / 7) < 0.025 for n in ops.values()), ops  # 500 x 2 cells x 8 pairs
    assert set(node5_inputs) == {0, 1, 2, 3, 4}
    assert all(abs(n / 2000 - 1 / 5) < 0.04 for n in node5_inputs.values()), node5_inputs


def test_mutate_changes_exactly_one_op_or_input():
    rng, arch = random.Random(0), darts.DARTS_V2
    kinds = collections.Counter()
    for _ in range(400):
        child = darts.mutate(arch, rng)
        assert darts.validate(child) == child
        before, after = darts.parse(arch), darts.parse(child)
        diffs = [(cell, i) for cell in ("normal", "reduce") for i in range(8)
                 if getattr(before, cell)[i] != getattr(after, cell)[i]]
        assert len(diffs) == 1
        (op0, in0), (op1, in1) = getattr(before, diffs[0][0])[diffs[0][1]], getattr(after, diffs[0][0])[diffs[0][1]]
        assert (op0 != op1) != (in0 != in1)
        kinds["op" if op0 != op1 else "input"] += 1
        arch = child
    assert kinds["op"] > 100 and kinds["input"] > 100
    assert darts.mutate(darts.DARTS_V2, random.Random(7)) == darts.mutate(darts.DARTS_V2, random.Random(7))


# ------------------------------------------------------------------------------------------ encoding

def test_encoding_any_assignment_is_valid():
    sizes = darts.choices()
    assert sizes == [1, 7, 7, 3, 7, 7, 6, 7, 7, 10, 7, 7] * 2
    rng = random.Random(0)
    for _ in range(300):
        codes = [rng.randrange(n) for n in sizes]
        arch = darts.decode(codes)
        assert darts.validate(arch) == arch
        assert darts.encode(arch) == tuple(codes)
    assert darts.decode(darts.encode(MINE)) == darts.unique_key(MINE)
    for bad in ([0] * 23, [0] * 25, [1] + [0] * 23, [0, 7] + [0] * 22, [0.0] * 24):
        with pytest.raises(ArchError):
            darts.decode(bad)


def test_search_strategies_run_on_darts():
    from nasflow.search.strategies import random_search, regularized_evolution, reinforce

    def estimator(arch):  # toy score: the number of separable convs
        return float(arch.count("sep_conv")), 1.0

    for strategy in (random_search, regularized_evolution, reinforce):
        result = strategy(darts, estimator, 25, seed=0)
        assert result.n_evals == 25
        assert all(darts.validate(e.arch) == e.arch for e in result.history)
        assert result.best_score == max(e.score for e in result.history)


# ---------------------------------------------------------------------------------- network, counts

def _hand_count(normal, reduce, C, layers, num_classes):
    """Parameters of NetworkCIFAR without the auxiliary head, from per-op formulas."""
    def sep(c, k):
        return 2 * (c * k * k + c * c + 2 * c)  # twice: depthwise + pointwise + BN

    def dil(c, k):
        return c * k * k + c * c + 2 * c

    def factorized_reduce(c_in, c_out):
        return 2 * c_in * (c_out // 2) + 2 * c_out  # two 1x1 convs to c_out/2 + BN

    def relu_conv_bn(c_in, c_out):
        return c_in * c_out + 2 * c_out

    def op(name, c, stride):
        return {"max_pool_3x3": 0, "avg_pool_3x3": 0,
                "skip_connect": 0 if stride == 1 else factorized_reduce(c, c),
                "sep_conv_3x3": sep(c, 3), "sep_conv_5x5": sep(c, 5),
                "dil_conv_3x3": dil(c, 3), "dil_conv_5x5": dil(c, 5)}[name]

    total = 3 * (3 * C) * 3 * 3 + 2 * (3 * C)  # stem conv 3x3 (3 -> 3C) + BN
    c_pp = c_p = 3 * C
    c, reduction_prev = C, False
    for i in range(layers):
        reduction = i in (layers // 3, 2 * layers // 3)
        if reduction:
            c *= 2
        total += factorized_reduce(c_pp, c) if reduction_prev else relu_conv_bn(c_pp, c)
        total += relu_conv_bn(c_p, c)
        for name, inp in (reduce if reduction else normal):
            total += op(name, c, 2 if reduction and inp < 2 else 1)
        reduction_prev = reduction
        c_pp, c_p = c_p, 4 * c
    return total + c_p * num_classes + num_classes  # classifier


def test_darts_v2_params_and_flops():
    model = darts_net.build_network(darts.DARTS_V2, channels=36, depth=20, num_classes=10, auxiliary=False)
    assert count_params(model) == 3_349_342  # DARTS: 3.3M
    g = darts.parse(darts.DARTS_V2)
    assert _hand_count(g.normal, g.reduce, 36, 20, 10) == 3_349_342
    assert count_flops(model, (3, 32, 32)) == 528_359_050  # 528M MACs, as the literature quotes


@pytest.mark.parametrize("C,layers,expected", [(8, 6, 46_338), (16, 16, 485_082)])
def test_own_genotype_params_by_hand(C, layers, expected):
    assert _hand_count(MINE_NORMAL, MINE_REDUCE, C, layers, 10) == expected
    model = darts_net.build_network(MINE_NESTED, channels=C, depth=layers, num_classes=10, auxiliary=False)
    assert count_params(model) == expected
    with_aux = darts_net.build_network(MINE, channels=C, depth=layers, num_classes=10)
    c_aux = 4 * 4 * C  # after the second reduction cell: 4 nodes x 4C channels
    head = c_aux * 128 + 2 * 128 + 128 * 768 * 2 * 2 + 2 * 768 + 768 * 10 + 10
    assert count_params(with_aux) == expected + head


@pytest.mark.parametrize("size", [16, 32])
@pytest.mark.parametrize("layers", [3, 6])
def test_forward_shapes_with_aux_head(size, layers):
    torch.manual_seed(0)
    model = darts_net.build_network(MINE, channels=4, depth=layers, num_classes=7)
    x = torch.randn(2, 3, size, size)
    model.train()
    model.drop_path_prob = 0.2
    logits, aux = model(x)
    assert logits.shape == (2, 7) and aux.shape == (2, 7)
    model.eval()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 7)
    no_aux = darts_net.build_network(MINE, channels=4, depth=layers, num_classes=7, auxiliary=False).train()
    logits, aux = no_aux(x)
    assert logits.shape == (2, 7) and aux is None


def test_odd_channels_and_sizes():
    model = darts_net.build_network(MINE, channels=5, depth=4, num_classes=3).train()
    logits, aux = model(torch.randn(2, 3, 15, 15))
    assert logits.shape == aux.shape == (2, 3)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    model = darts_net.build_network(MINE, channels=4, depth=3, num_classes=5, auxiliary=False)
    assert model.drop_path_prob == 0.0
    x = torch.randn(8, 3, 16, 16)
    model.eval()
    ref = model(x)
    model.drop_path_prob = 0.9
    assert torch.equal(model(x), ref)  # eval: drop path off
    model.train()
    model.drop_path_prob = 0.0
    a = model(x)[0]
    model.drop_path_prob = 0.9
    b = model(x)[0]
    assert not torch.allclose(a, b)


# -------------------------------------------------------------------------------------------- CLI

def nasflow(*args):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"  # the machine is shared: one thread is faster than two contended ones
    return subprocess.run([sys.executable, "-m", "nasflow", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=120)


def test_cli_info_darts_json():
    r = nasflow("info", "--space", "darts", "--arch", darts.DARTS_V2, "--arch", MINE_NESTED, "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert rows[0] == {"arch": darts.DARTS_V2, "params": 3_349_342, "flops": 528_359_050}
    assert rows[1]["arch"] == MINE
    mine = darts_net.build_network(MINE, channels=36, depth=20, num_classes=10, auxiliary=False)
    assert rows[1]["params"] == count_params(mine) == _hand_count(MINE_NORMAL, MINE_REDUCE, 36, 20, 10)


def test_cli_info_darts_errors():
    r = nasflow("info", "--space", "darts", "--arch", MINE, "--layers", "6", "--channels", "8", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)[0]["params"] == 46_338
    for args, message in [
        (("--space", "darts", "--arch", MINE, "--cells", "2"), "--cells does not apply to the darts space"),
        (("--space", "nb201", "--arch", MINE, "--layers", "2"), "--layers does not apply to the nb201 space"),
        (("--space", "darts", "--arch", MINE.replace("('skip_connect', 2)]", "('none', 2)]")),
         "normal node 5: op 'none' is not allowed"),
    ]:
        r = nasflow("info", *args, "--json")
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith("nasflow: error: ") and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


# ------------------------------------------------------------------------------------------ training

def test_tiny_bpe_like_training_run():
    from nasflow.data import load_dataset
    from nasflow.estimators.proxy import depth_of, train_arch

    setting = {"epochs": 2, "batch_size": 64, "lr": 0.03, "weight_decay": 3e-4, "channels": 4, "layers": 3,
               "image_size": 16, "cutout": 0, "precision": 32, "aux_weight": 0.4, "drop_path": 0.2}
    assert depth_of(darts, setting) == 3
    splits = load_dataset("digits", subset=300)
    result = train_arch(MINE, space=darts, setting=setting, splits=splits, seed=0, device="cpu", progress=False)
    assert result["epochs"] == 2 and result["arch"] == MINE
    assert 0.0 <= result["final_acc"] <= 100.0 and 0.0 <= result["best_acc"] <= 100.0
