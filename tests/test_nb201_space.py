"""The NAS-Bench-201 space: strings, enumeration order, sampling, mutation, connectivity, isomorphism."""

import csv
import itertools
import random

import pytest

from nasflow.errors import ArchError, ParamsError
from nasflow.spaces import available_spaces, get_space, nb201

INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
BEST_C10 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def cell(*ops: str) -> str:
    return nb201.format(ops)


# ------------------------------------------------------------------------------------------ strings


def test_constants():
    assert nb201.NAME == "nb201"
    assert nb201.OPS == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
    assert nb201.EDGES == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    assert nb201.N_EDGES == 6


def test_parse_format_round_trip():
    ops = nb201.parse(INDEX0)
    assert ops == (
        "avg_pool_3x3", "nor_conv_1x1", "skip_connect", "nor_conv_1x1", "skip_connect", "skip_connect"
    )
    assert nb201.format(ops) == INDEX0
    for ops in itertools.islice(itertools.product(nb201.OPS, repeat=6), 0, None, 97):
        assert nb201.parse(nb201.format(ops)) == ops


def test_canonical_strips_whitespace():
    assert nb201.canonical(f"  {INDEX0}\n") == INDEX0
    assert nb201.validate(INDEX0) == INDEX0


@pytest.mark.parametrize(
    "bad, reason",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|", "3 nodes"),
        (INDEX0 + "+|none~0|", "3 nodes"),
        ("|avg_pool_3x3~0|+|nor_conv_1x1~0|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|", "2 input"),
        ("|avg_pool_3x3~0|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "1 input"),
        ("|avg_pool_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "index"),
        ("|none~0|+|none~1|none~0|+|none~0|none~1|none~2|", "index"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~x|", "index"),
        ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'conv_3x3'"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("none~0+|none~0|none~1|+|none~0|none~1|none~2|", "must look like"),
        ("|none~0||+|none~0|none~1|+|none~0|none~1|none~2|", "input"),
    ],
)
def test_bad_strings_rejected(bad, reason):
    with pytest.raises(ArchError) as info:
        nb201.parse(bad)
    message = str(info.value)
    assert repr(bad) in message  # names the offending string
    assert reason in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_non_string_rejected():
    with pytest.raises(ArchError, match="expected a string"):
        nb201.parse(None)


def test_format_rejects_bad_ops():
    with pytest.raises(ArchError, match="6 ops"):
        nb201.format(["none"] * 5)
    with pytest.raises(ArchError, match="unknown op"):
        nb201.format(["none"] * 5 + ["conv"])


# ------------------------------------------------------------------------------------ enumeration


def test_enumerate_all_is_the_whole_space():
    archs = nb201.enumerate_all()
    assert len(archs) == 15625 == len(set(archs))
    assert archs[0] == INDEX0
    assert archs[6111] == BEST_C10
    archs.append("mutating the returned list must not touch the cache")
    assert len(nb201.enumerate_all()) == 15625


def test_enumeration_order_matches_benchmark_table(shared_data):
    path = shared_data / "nb201-accuracies.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    with path.open(newline="") as f:
        rows = [(int(row["index"]), row["arch"]) for row in csv.DictReader(f)]
    assert rows == list(enumerate(nb201.enumerate_all()))  # all 15,625, in index order


def test_index_of():
    assert nb201.index_of(INDEX0) == 0
    assert nb201.index_of(" " + BEST_C10) == 6111
    archs = nb201.enumerate_all()
    assert all(nb201.index_of(archs[i]) == i for i in range(0, 15625, 311))
    with pytest.raises(ArchError):
        nb201.index_of("|none~0|")


# ------------------------------------------------------------------------------ sample and mutate


def test_sample_is_deterministic_and_uniform_over_the_space():
    a = nb201.sample(50, seed=3)
    assert a == nb201.sample(50, seed=3)
    assert a != nb201.sample(50, seed=4)
    assert len(set(a)) == 50
    assert all(nb201.canonical(x) == x for x in a)
    with_replacement = nb201.sample(20, seed=3, unique=False)
    assert with_replacement == nb201.sample(20, seed=3, unique=False)
    assert len(nb201.sample(15625, seed=0)) == 15625


def test_sample_rejects_bad_sizes():
    with pytest.raises(ParamsError):
        nb201.sample(15626, seed=0)
    with pytest.raises(ParamsError):
        nb201.sample(-1, seed=0)


def test_mutate_changes_exactly_one_edge():
    rng = random.Random(0)
    arch = INDEX0
    for _ in range(300):
        child = nb201.mutate(arch, rng)
        diff = sum(a != b for a, b in zip(nb201.parse(arch), nb201.parse(child)))
        assert diff == 1
        arch = child
    a, b = random.Random(7), random.Random(7)
    assert nb201.mutate(INDEX0, a) == nb201.mutate(INDEX0, b)


# -------------------------------------------------------------------------------- graph properties


def test_connected_counts():
    flags = [nb201.is_connected(a) for a in nb201.enumerate_all()]
    assert sum(flags) == 15284
    assert len(flags) - sum(flags) == 341


def test_connected_hand_cases():
    assert not nb201.is_connected(cell(*["none"] * 6))
    assert nb201.is_connected(cell("none", "none", "none", "skip_connect", "none", "none"))
    # 0 -> 1 -> 2 -> 3, all conv
    assert nb201.is_connected(cell("nor_conv_3x3", "none", "nor_conv_3x3", "none", "none", "nor_conv_3x3"))
    # 0 -> 1 -> 2 but nothing reaches 3 from a reached node
    assert not nb201.is_connected(cell("nor_conv_3x3", "none", "nor_conv_3x3", "none", "none", "none"))
    # node 1 unreachable, so its edge to 3 does not help
    assert not nb201.is_connected(cell("none", "none", "none", "none", "nor_conv_3x3", "none"))


def test_unique_key_hand_cases():
    key = nb201.unique_key
    # Edges into a dead node (node 2 does not feed node 3) do not matter.
    dead_a = cell("nor_conv_3x3", "nor_conv_1x1", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "none")
    dead_b = cell("nor_conv_3x3", "none", "skip_connect", "skip_connect", "nor_conv_3x3", "none")
    assert key(dead_a) == key(dead_b)
    # Symmetric paths: conv1x1 then conv3x3 via node 1, or via node 2, to the output.
    via_node_1 = cell("nor_conv_1x1", "none", "none", "none", "nor_conv_3x3", "none")
    via_node_2 = cell("none", "nor_conv_1x1", "none", "none", "none", "nor_conv_3x3")
    assert key(via_node_1) == key(via_node_2)
    # Skip is identity: 0 -skip-> 1 -conv-> 3 equals 0 -conv-> 3.
    assert key(cell("skip_connect", "none", "none", "none", "nor_conv_3x3", "none")) == key(
        cell("none", "none", "none", "nor_conv_3x3", "none", "none")
    )
    # Sum is commutative: swap which direct edge carries which op, through skips.
    a = cell("nor_conv_1x1", "avg_pool_3x3", "none", "none", "skip_connect", "skip_connect")
    b = cell("avg_pool_3x3", "nor_conv_1x1", "none", "none", "skip_connect", "skip_connect")
    assert key(a) == key(b)
    # Different functions stay apart: order of ops along a path, and x + x vs x.
    assert key(cell("nor_conv_1x1", "none", "none", "none", "nor_conv_3x3", "none")) != key(
        cell("nor_conv_3x3", "none", "none", "none", "nor_conv_1x1", "none")
    )
    assert key(cell("skip_connect", "none", "none", "skip_connect", "skip_connect", "none")) != key(
        cell("none", "none", "none", "skip_connect", "none", "none")
    )
    # All disconnected cells compute zero.
    dead_end = cell("nor_conv_3x3", "none", "none", "none", "none", "none")
    assert key(cell(*["none"] * 6)) == key(dead_end) == "zero"


def test_unique_key_counts():
    archs = nb201.enumerate_all()
    keys = {nb201.unique_key(a) for a in archs}
    assert len(keys) == 4930  # true function identity; see unique_key's docstring
    disconnected = {nb201.unique_key(a) for a in archs if not nb201.is_connected(a)}
    assert disconnected == {"zero"}
    # ADL's to_unique_str(consider_zero=True) gives the paper's 6,466 "unique topologies".
    assert len({nb201.adl_unique_str(a) for a in archs}) == 6466
    # It only ever splits what unique_key merges, never the reverse.
    by_adl = {}
    for a in archs:
        assert by_adl.setdefault(nb201.adl_unique_str(a), nb201.unique_key(a)) == nb201.unique_key(a)


# ------------------------------------------------------------------------------------------ registry


def test_registry():
    assert "nb201" in available_spaces()
    assert get_space("nb201") is nb201
    with pytest.raises(ParamsError, match="'resnet'"):
        get_space("resnet")
