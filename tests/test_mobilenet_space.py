"""The MobileNet-like (ProxylessNAS) space of RLNAS: strings, validation, sampling, the network and its counts."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nasflow.cli import main
from nasflow.counting import count_flops, count_params
from nasflow.errors import ArchError, ParamsError
from nasflow.models.mobilenet import MBConv, build_mobilenet, flops_of, flops_table
from nasflow.registry import build_network
from nasflow.spaces import available_spaces, get_space

ROOT = Path(__file__).resolve().parents[1]
space = get_space("mobilenet")

FIRSTS = (0, 4, 8, 12, 16, 20)  # REFERENCE.md: skip not allowed in the first block of each stage
# An arch and its RLNAS code, written out by hand (code order k3e3 k3e6 k5e3 k5e6 k7e3 k7e6, -1 = skip).
CODE = "5 2 -1 4 2 5 3 -1 1 1 5 3 5 -1 3 1 1 5 1 -1 3"
NAMES = ("k7e6,k5e3,skip,k7e3,k5e3,k7e6,k5e6,skip,k3e6,k3e6,k7e6,k5e6,k7e6,skip,k5e6,k3e6,k3e6,k7e6,k3e6,"
         "skip,k5e6")
# Smallest arch: k3e3 where a block is required, skip elsewhere.
MINIMAL = ",".join("k3e3" if i in FIRSTS else "skip" for i in range(21))
LARGEST = ",".join(["k7e6"] * 21)


def _message(arch) -> str:
    with pytest.raises(ArchError) as info:
        space.canonical(arch)
    text = str(info.value)
    assert "\n" not in text and text.startswith("invalid arch ")
    return text


# ------------------------------------------------------------------------------------------ strings


def test_registered():
    assert "mobilenet" in available_spaces() and space.NAME == "mobilenet"


def test_both_spellings_parse_to_the_same_arch():
    assert space.canonical(NAMES) == NAMES
    assert space.canonical(CODE) == NAMES
    assert space.canonical(CODE.replace(" ", ", ")) == NAMES  # comma-separated ints
    assert space.canonical("(" + CODE.replace(" ", ", ") + ",)") == NAMES  # a printed Python tuple
    assert space.canonical(f"  {NAMES.upper().replace(',', ' , ')}  ") == NAMES
    assert space.canonical(NAMES.replace("k7e6", "mobilenet_7x7_ratio_6").replace("skip", "identity")) == NAMES
    assert space.canonical([int(c) for c in CODE.split()]) == NAMES
    assert space.to_rlnas_code(NAMES) == tuple(int(c) for c in CODE.split())
    assert space.from_rlnas_code(space.to_rlnas_code(NAMES)) == NAMES
    assert space.validate(CODE) == NAMES and space.format(space.parse(NAMES)) == NAMES
    for arch in space.sample(20, seed=3):
        assert space.canonical(arch) == arch == space.canonical(" ".join(map(str, space.to_rlnas_code(arch))))


@pytest.mark.parametrize("block", FIRSTS)
@pytest.mark.parametrize("skip", ["skip", "-1"])
def test_skip_in_first_block_of_a_stage(block, skip):
    tokens = NAMES.split(",")
    tokens[block] = skip
    text = _message(",".join(tokens))
    assert f": block {block}: 'skip' is not allowed in the first block of a stage" in text


@pytest.mark.parametrize("arch, reason", [
    ("", "empty string"),
    (",".join(NAMES.split(",")[:20]), "expected 21 blocks, got 20"),
    (CODE + " 1", "expected 21 blocks, got 22"),
    (NAMES.replace("k5e3", "k9e3", 1), "block 1: unknown choice 'k9e3'"),
    (CODE.replace("-1", "6", 1), "block 2: code 6 out of range"),
    (CODE.replace("5", "-2", 1), "block 0: code -2 out of range"),
    (NAMES.replace("k5e3,", ",", 1), "block 1 is empty"),
    (42, "expected a string or a sequence of 21 choices, got int"),
    ([1.5] * 21, "block 0: expected a choice name or an integer code, got 1.5"),
])
def test_invalid_archs_say_what_is_wrong(arch, reason):
    assert f": {reason}" in _message(arch)


def test_skip_is_fine_outside_first_blocks():
    tokens = ["k3e3"] * 21
    for block in set(range(21)) - set(FIRSTS):
        tokens[block] = "skip"
    assert space.canonical(",".join(tokens)).count("skip") == 15


# ------------------------------------------------------------------------------------------ search ops


def test_encoding_covers_the_space():
    sizes = space.choices()
    assert [i for i, n in enumerate(sizes) if n == 6] == list(FIRSTS) and sizes.count(7) == 15
    assert space.N_ARCHS == 6 ** 6 * 7 ** 15
    assert space.decode(space.encode(NAMES)) == NAMES
    rng = random.Random(0)
    for _ in range(50):  # every assignment within choices() is an arch
        codes = [rng.randrange(n) for n in sizes]
        assert space.encode(space.decode(codes)) == tuple(codes)
    with pytest.raises(ArchError, match="block 4: 'skip' is not allowed"):
        space.decode([0] * 4 + [6] + [0] * 16)
    with pytest.raises(ArchError, match="block 1: index 7 out of range 0..6"):
        space.decode([0, 7] + [0] * 19)


def test_sample_is_seeded_valid_and_uniform_per_block():
    archs = space.sample(1500, seed=7)
    assert archs == space.sample(1500, seed=7) and archs[:5] != space.sample(5, seed=8)
    assert len(set(archs)) == 1500 and all(space.canonical(a) == a for a in archs)
    blocks = [a.split(",") for a in archs]
    assert all(b[i] != "skip" for b in blocks for i in FIRSTS)
    skip_rate = sum(b[1] == "skip" for b in blocks) / len(blocks)
    assert 0.10 < skip_rate < 0.19  # 1/7 per non-first block
    assert len(space.sample(3, seed=1, unique=False)) == 3
    with pytest.raises(ParamsError):
        space.sample(-1, seed=0)


def test_mutate_and_crossover_are_valid_and_deterministic():
    parents = space.sample(10, seed=11)
    for arch in parents:
        child = space.mutate(arch, random.Random(5))
        assert child == space.mutate(arch, random.Random(5)) and space.canonical(child) == child
        assert sum(x != y for x, y in zip(arch.split(","), child.split(","))) == 1
        assert space.mutate(arch, random.Random(5), prob=0.0) == arch
        assert space.canonical(space.mutate(arch, random.Random(5), prob=1.0))
    a, b = parents[0], parents[1]
    child = space.crossover(a, b, random.Random(2))
    assert child == space.crossover(a, b, random.Random(2)) and space.canonical(child) == child
    assert all(c in (x, y) for c, x, y in zip(*(s.split(",") for s in (child, a, b))))
    assert child not in (a, b)  # 21 coin flips, with this seed from both parents
    assert space.crossover(a, a, random.Random(0)) == a
    with pytest.raises(ParamsError):
        space.mutate(a, random.Random(0), prob=1.5)


def test_width_rounding_is_proxylessnas_make_divisible():
    # by hand: round to the nearest multiple of 8 (at least 8), one more step up if that lost > 10%
    assert [space.make_divisible(v) for v in (10, 6, 14, 28, 108, 40, 1728)] == [16, 8, 16, 32, 112, 40, 1728]
    lay = space.layout(1.0, 224)
    assert (lay.stem_channels, lay.first_block_channels, lay.last_channels) == (40, 24, 1728)
    assert [b.oup for b in lay.blocks if b.index in FIRSTS] == [32, 56, 112, 128, 256, 432]
    assert space.layout(0.25, 32).last_channels == 1728 and space.layout(1.5, 32).last_channels == 2592


# ------------------------------------------------------------------------------------------ network


def test_forward_at_32px_width_quarter():
    torch.manual_seed(0)
    net = build_mobilenet(NAMES, width=0.25, num_classes=10, input_size=32)
    out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert [i for i, b in enumerate(net.blocks) if isinstance(b, nn.Identity)] == [2, 7, 13, 19]
    assert [b.use_residual for b in net.blocks[:2]] == [False, True]  # stride 2 / stride 1, same channels
    net16 = build_network(space, NAMES, channels=10, num_classes=10)  # channels = stem width: 10/40 = 0.25
    assert net16.width == 0.25 and count_params(net16) == count_params(net)
    with pytest.raises(ParamsError, match="fixed depth of 21"):
        build_network("mobilenet", NAMES, channels=16, depth=5)
    with pytest.raises(ParamsError, match="not both"):
        build_network(space, NAMES, channels=16, width=0.5)
    with pytest.raises(ParamsError):
        build_mobilenet(NAMES, width=0)


def test_counts_of_one_block_by_hand():
    # k3e3, 8 -> 8, stride 1 on 8x4x4: 1x1 8->24, dw 3x3 on 24, 1x1 24->8, 16 positions each
    block = MBConv(8, 8, 3, 1, 3)
    assert count_flops(block, (8, 4, 4)) == 16 * 8 * 24 + 16 * 9 * 24 + 16 * 24 * 8 == 9600
    assert count_params(block) == 8 * 24 + 2 * 24 + 9 * 24 + 2 * 24 + 24 * 8 + 2 * 8 == 712  # BN affine in
    # e=1 (the stem's block), 16 -> 8 on 16x16: dw 3x3 on 16, 1x1 16->8
    assert count_flops(MBConv(16, 8, 3, 1, 1), (16, 16, 16)) == 256 * 9 * 16 + 256 * 16 * 8


def test_counts_of_a_small_network_by_hand():
    # width 0.25 (stem 16, first block 8, stages 8 16 32 32 64 112, final 1728), 32 px, 10 classes;
    # sides 16 after the stem, 8, 4, 2, 2, 1, 1 after blocks 0, 4, 8, 12, 16, 20.
    flops = (256 * 27 * 16                              # stem conv 3 -> 16, 16x16 out
             + 256 * 9 * 16 + 256 * 16 * 8              # MBConv e=1 16 -> 8
             + 256 * 8 * 24 + 64 * 9 * 24 + 64 * 24 * 8  # block 0, k3e3 s2 8 -> 8
             + 64 * 8 * 24 + 16 * 9 * 24 + 16 * 24 * 16  # block 4, s2 8 -> 16
             + 16 * 16 * 48 + 4 * 9 * 48 + 4 * 48 * 32   # block 8, s2 16 -> 32
             + 4 * 32 * 96 + 4 * 9 * 96 + 4 * 96 * 32    # block 12, s1 32 -> 32
             + 4 * 32 * 96 + 1 * 9 * 96 + 1 * 96 * 64    # block 16, s2 32 -> 64
             + 64 * 192 + 9 * 192 + 192 * 112            # block 20, s1 64 -> 112
             + 112 * 1728 + 1728 * 10 + 10)              # final conv, linear with bias
    params = (27 * 16 + 32 + 9 * 16 + 32 + 16 * 8 + 16
              + (192 + 48 + 216 + 48 + 192 + 16) + (192 + 48 + 216 + 48 + 384 + 32)
              + (768 + 96 + 432 + 96 + 1536 + 64) + (3072 + 192 + 864 + 192 + 3072 + 64)
              + (3072 + 192 + 864 + 192 + 6144 + 128) + (12288 + 384 + 1728 + 384 + 21504 + 224)
              + 112 * 1728 + 2 * 1728 + 1728 * 10 + 10)
    assert (flops, params) == (591_210, 274_250)
    net = build_mobilenet(MINIMAL, width=0.25, num_classes=10, input_size=32)
    assert count_flops(net, (3, 32, 32)) == flops == flops_of(MINIMAL, width=0.25, input_size=32, num_classes=10)
    assert count_params(net) == params


def _mbconv_counts(inp: int, oup: int, k: int, e: int, stride: int, side: int) -> tuple[int, int]:
    """(MACs, params) of an MBConv by formula; `side` is the input side."""
    hidden, out = inp * e, (side - 1) // stride + 1
    flops = (side * side * inp * hidden if e > 1 else 0) + out * out * (k * k * hidden + hidden * oup)
    params = (inp * hidden + 2 * hidden if e > 1 else 0) + k * k * hidden + 2 * hidden + hidden * oup + 2 * oup
    return flops, params


def _reference_counts(arch: str) -> tuple[int, int]:
    """RLNAS' ImageNet network (224 px, 1000 classes) by formula from REFERENCE.md's layout."""
    flops, params = 112 * 112 * 27 * 40, 27 * 40 + 80
    f, p = _mbconv_counts(40, 24, 3, 1, 1, 112)
    flops, params = flops + f, params + p
    inp, side, ops = 24, 112, arch.split(",")
    for channels, n, first_stride in [(32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1)]:
        for j in range(n):
            op, stride = ops.pop(0), (first_stride if j == 0 else 1)
            if op != "skip":
                f, p = _mbconv_counts(inp, channels, int(op[1]), int(op[3]), stride, side)
                flops, params = flops + f, params + p
            side, inp = (side - 1) // stride + 1, channels
    assert side == 7
    flops += 49 * 432 * 1728 + 1728 * 1000 + 1000
    params += 432 * 1728 + 2 * 1728 + 1728 * 1000 + 1000
    return flops, params


def test_imagenet_network_against_the_reference_layout():
    for arch in (MINIMAL, LARGEST, NAMES, *space.sample(3, seed=5)):
        flops, params = _reference_counts(arch)
        assert flops_of(arch) == flops
        # RLNAS' thop counts the linear as (2 in - 1) out: the number its 475M limit applies to
        assert flops_of(arch, convention="rlnas") == flops + (1728 - 2) * 1000
        if arch == NAMES:  # one full build at 224 px: count_flops and params of the real modules
            net = build_mobilenet(arch)
            assert (count_flops(net, (3, 224, 224)), count_params(net)) == (flops, params)
    # the search's limit sits inside the space: 182M (smallest) .. 1.04G (largest)
    assert flops_of(MINIMAL) < 475e6 < flops_of(LARGEST)


@pytest.mark.parametrize("width, input_size, num_classes", [(0.25, 32, 10), (0.5, 48, 100), (1.0, 32, 7)])
def test_flops_table_equals_count_flops(width, input_size, num_classes):
    table = flops_table(width, input_size, num_classes)
    assert "skip" not in table.blocks[0] and table.blocks[1]["skip"] == 0
    for arch in space.sample(4, seed=int(width * 100) + input_size):
        net = build_mobilenet(arch, width=width, num_classes=num_classes, input_size=input_size)
        assert flops_of(arch, width=width, input_size=input_size, num_classes=num_classes) == \
            count_flops(net, (3, input_size, input_size)) == table.flops(arch)
    with pytest.raises(ParamsError, match="unknown FLOPs convention"):
        table.flops(NAMES, convention="thop")


# ------------------------------------------------------------------------------------------ CLI


def test_cli_info_json(capsys):
    status = main(["info", "--space", "mobilenet", "--arch", MINIMAL, "--arch", CODE,
                   "--input-size", "32", "--classes", "10", "--width", "0.25", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert status == 0 and [r["arch"] for r in rows] == [MINIMAL, NAMES]
    assert (rows[0]["params"], rows[0]["flops"]) == (274_250, 591_210)  # the hand count above
    assert rows[1]["flops"] == flops_of(NAMES, width=0.25, input_size=32, num_classes=10)
    assert main(["info", "--space", "mobilenet", "--arch", MINIMAL]) == 0  # defaults: 224 px, 1000 classes
    out = capsys.readouterr().out
    flops, params = _reference_counts(MINIMAL)
    assert out.startswith("# mobilenet at 224x224 px, 1000 classes, width 1.0\n")
    assert out.splitlines()[-1].split()[1:] == [f"{params:,d}", f"{params / 1e6:.6f}", f"{flops / 1e6:.3f}"]


@pytest.mark.parametrize("argv, message", [
    (["--space", "mobilenet", "--arch", MINIMAL, "--cells", "3"], "--cells does not apply to the mobilenet space"),
    (["--space", "mobilenet", "--arch", MINIMAL, "--dataset", "cifar10"], "--dataset does not apply"),
    (["--space", "nb201", "--arch", "0", "--width", "0.5"], "--width only applies to the mobilenet space"),
    (["--space", "mobilenet", "--arch", MINIMAL, "--width", "-1"], "expected a positive number"),
])
def test_cli_info_option_errors(argv, message, capsys):
    assert main(["info", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_bad_arch_exits_2_with_one_line():
    tokens = CODE.split()
    tokens[8] = "-1"  # the first block of stage 3 made skip
    bad = " ".join(tokens)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "nasflow", "info", "--space", "mobilenet", "--arch", MINIMAL,
                             "--arch", bad, "--json"], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=120)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"nasflow: error: invalid arch {bad!r}: block 8: 'skip' is not allowed")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
