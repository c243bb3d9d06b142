"""The NAS-Bench-201 cell search space (Dong & Yang, ICLR 2020).

A cell is a DAG of 4 nodes (0 = input, 3 = output); every pair i < j is joined by one edge carrying one of
5 operations, and each node is the sum of its incoming edges. 6 edges x 5 ops = 5^6 = 15,625 cells.

The string form, as the benchmark writes it, lists for node 1, 2, 3 the op of each incoming edge:

    |op~0|+|op~0|op~1|+|op~0|op~1|op~2|

`parse` turns a string into 6 op names in `EDGES` order and `format` turns them back; the canonical string
is `format(parse(s))`. The benchmark's index of a cell is its position in ADL's enumeration order
(`CellStructure.gen_all`, i.e. `itertools.product(OPS, repeat=6)` over the edges in string order) after
`random.seed(88); random.shuffle(...)` -- checked against all 15,625 rows of the benchmark's table.

Isomorphism: `unique_key` maps cells that compute the same function to the same key. Over the 15,625
cells it gives **4,930** distinct keys, not the 6,466 "unique topologies" of the NAS-Bench-201 paper. The
paper's number comes from ADL's `Structure.to_unique_str(consider_zero=True)`, reproduced here as
`adl_unique_str` (6,466 distinct strings, asserted in tests), which splits some equivalent cells; see
`unique_key` for the details.
"""

from __future__ import annotations

import functools
import itertools
import operator
import random
from collections.abc import Sequence

from nasflow.errors import ArchError, ParamsError

NAME = "nb201"

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# (to_node, from_node) in the order the string lists them.
EDGES: list[tuple[int, int]] = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
N_EDGES = 6
N_NODES = 4
N_ARCHS = len(OPS) ** N_EDGES  # 15,625

_OP_SET = frozenset(OPS)


# --------------------------------------------------------------------------------------------------------
# Strings


def _fail(arch: object, reason: str) -> ArchError:
    return ArchError(f"invalid arch {arch!r}: {reason}")


def parse(arch: str) -> tuple[str, ...]:
    """The 6 op names of `arch` in `EDGES` order. Raises `ArchError` saying what is wrong."""
    if not isinstance(arch, str):
        raise _fail(arch, f"expected a string, got {type(arch).__name__}")
    text = arch.strip()
    if not text:
        raise _fail(arch, "empty string")
    nodes = text.split("+")
    if len(nodes) != N_NODES - 1:
        raise _fail(arch, f"expected {N_NODES - 1} nodes separated by '+', got {len(nodes)}")
    ops: list[str] = []
    for to_node, node_text in enumerate(nodes, start=1):
        if len(node_text) < 2 or not (node_text.startswith("|") and node_text.endswith("|")):
            raise _fail(arch, f"node {to_node} {node_text!r} must look like '|op~0|...|'")
        inputs = node_text[1:-1].split("|")
        if len(inputs) != to_node:
            raise _fail(arch, f"node {to_node} must have {to_node} input(s), got {len(inputs)}")
        for from_node, token in enumerate(inputs):
            op, sep, index = token.partition("~")
            if not sep:
                raise _fail(arch, f"node {to_node} input {token!r} must look like 'op~{from_node}'")
            if index != str(from_node):
                raise _fail(
                    arch, f"node {to_node} input {token!r} has index {index!r}, expected {from_node}"
                )
            if op not in _OP_SET:
                raise _fail(arch, f"unknown op {op!r} (known: {', '.join(OPS)})")
            ops.append(op)
    return tuple(ops)


def format(ops: Sequence[str]) -> str:  # noqa: A001 - the space's own verb, like str.format
    """The canonical string of 6 op names given in `EDGES` order."""
    ops = tuple(ops)
    if len(ops) != N_EDGES:
        raise _fail(ops, f"expected {N_EDGES} ops, got {len(ops)}")
    for op in ops:
        if op not in _OP_SET:
            raise _fail(ops, f"unknown op {op!r} (known: {', '.join(OPS)})")
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def canonical(arch: str) -> str:
    """`arch` rewritten in the benchmark's exact spelling (surrounding whitespace removed)."""
    return format(parse(arch))


def validate(arch: str) -> str:
    """Raise `ArchError` if `arch` is not a cell of this space; return its canonical string."""
    return canonical(arch)


# --------------------------------------------------------------------------------------------------------
# The whole space


@functools.lru_cache(maxsize=1)
def _all_archs() -> tuple[str, ...]:
    archs = [format(ops) for ops in itertools.product(OPS, repeat=N_EDGES)]
    random.Random(88).shuffle(archs)  # == random.seed(88); random.shuffle(archs) in ADL's main.py
    return tuple(archs)


@functools.lru_cache(maxsize=1)
def _index() -> dict[str, int]:
    return {arch: i for i, arch in enumerate(_all_archs())}


def enumerate_all() -> list[str]:
    """All 15,625 canonical strings in the benchmark's index order (a fresh list each call)."""
    return list(_all_archs())


def index_of(arch: str) -> int:
    """The benchmark index (0..15624) of `arch`."""
    return _index()[canonical(arch)]


def sample(n: int, seed: int, unique: bool = True) -> list[str]:
    """`n` cells drawn uniformly from the space, deterministic for `seed` (without replacement if unique)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ParamsError(f"sample size must be a non-negative integer, got {n!r}")
    if unique and n > N_ARCHS:
        raise ParamsError(f"cannot draw {n} unique archs from a space of {N_ARCHS}")
    rng = random.Random(seed)
    archs = _all_archs()
    if unique:
        return [archs[i] for i in rng.sample(range(N_ARCHS), n)]
    return [archs[rng.randrange(N_ARCHS)] for _ in range(n)]


def mutate(arch: str, rng: random.Random) -> str:
    """`arch` with one uniformly chosen edge switched to a different, uniformly chosen op."""
    ops = list(parse(arch))
    edge = rng.randrange(N_EDGES)
    ops[edge] = rng.choice([op for op in OPS if op != ops[edge]])
    return format(ops)


# --------------------------------------------------------------------------------------------------------
# Categorical encoding (for search strategies that learn a distribution over choices, e.g. REINFORCE, BOHB)


def choices() -> list[int]:
    """The number of options of each categorical variable: one variable per edge (in `EDGES` order), each
    with `len(OPS)` options. A space with this, `encode` and `decode` plugs into nasflow.search's policies."""
    return [len(OPS)] * N_EDGES


_OP_INDEX = {op: i for i, op in enumerate(OPS)}


def encode(arch: str) -> tuple[int, ...]:
    """The op index (into `OPS`) of each edge of `arch`, in `EDGES` order."""
    return tuple(_OP_INDEX[op] for op in parse(arch))


def decode(codes: Sequence[int]) -> str:
    """The canonical string of the cell whose edge `i` carries `OPS[codes[i]]` (inverse of `encode`)."""
    try:
        codes = tuple(operator.index(c) for c in codes)  # ints, numpy ints; not floats or bools-as-strings
    except TypeError:
        raise _fail(codes, f"expected {N_EDGES} integer op indices") from None
    if len(codes) != N_EDGES or not all(0 <= c < len(OPS) for c in codes):
        raise _fail(codes, f"expected {N_EDGES} op indices in 0..{len(OPS) - 1}")
    return format([OPS[c] for c in codes])


# --------------------------------------------------------------------------------------------------------
# Graph properties


def is_connected(arch: str) -> bool:
    """Whether some path of non-`none` edges leads from the input (node 0) to the output (node 3)."""
    ops = parse(arch)
    reached = [True, False, False, False]
    for (to_node, from_node), op in zip(EDGES, ops):
        if op != "none" and reached[from_node]:
            reached[to_node] = True
    return reached[3]


def unique_key(arch: str) -> str:
    """A key shared by the cells that compute the same function (same computation up to weights).

    Each node is written as a sum of terms over the input `x`: a `none` edge adds nothing; `skip_connect`
    adds the source node's terms unchanged (identity); any other op adds one term `op(<source>)`; an op
    applied to a node that is identically zero adds nothing (NB201's convention: a conv's BN shift on a
    zero input is ignored). Sums are commutative (terms are sorted and skips flattened) but not idempotent
    (`a + a` stays two terms: the two edges hold different weights). Ops are otherwise opaque (average
    pooling is not distributed over sums). Only the output node's expression is kept, so edges into nodes
    that do not reach the output vanish. A cell whose output is identically zero has the key `"zero"`.

    Over all 15,625 cells this gives **4,930** keys. The paper's 6,466 is the count of ADL's
    `to_unique_str(consider_zero=True)` (`adl_unique_str` below), which keeps `#` (zero) placeholders in
    sums, nests a skip's source sum as one sorted item instead of flattening it, and treats a node as zero
    only when it has a single zero input. It therefore tells apart, e.g., `#+#+0` and `#+#+#+0` (both
    the identity), or the same four terms sorted in two orders. Counting with only some of those fixes:
    flattening skips alone gives 5,755, dropping `#` alone 5,390, both 4,930.
    """
    ops = parse(arch)
    exprs: list[tuple[str, ...]] = [("x",), (), (), ()]
    for to_node in range(1, N_NODES):
        terms: list[str] = []
        for (dst, src), op in zip(EDGES, ops):
            if dst != to_node or op == "none" or not exprs[src]:
                continue
            if op == "skip_connect":
                terms.extend(exprs[src])
            else:
                terms.append(f"{op}({'+'.join(exprs[src])})")
        exprs[to_node] = tuple(sorted(terms))
    return "+".join(exprs[3]) or "zero"


def representatives(archs: Sequence[str]) -> list[int]:
    """The positions in `archs` of one cell per isomorphism class (`unique_key`): the first of each class, in the
    order given (a correlation with `dedup: true` keeps that cell's own score and ground truth)."""
    seen: set[str] = set()
    keep = []
    for i, arch in enumerate(archs):
        key = unique_key(arch)
        if key not in seen:
            seen.add(key)
            keep.append(i)
    return keep


def adl_unique_str(arch: str) -> str:
    """ADL's `Structure.to_unique_str(consider_zero=True)` string for `arch`, spelled as ADL spells it.

    Its 6,466 distinct values over the space are the paper's "unique topologies"; prefer `unique_key`,
    which merges the equivalent cells this string keeps apart.
    """
    ops = parse(arch)
    nodes = ["0", "", "", ""]
    for to_node in range(1, N_NODES):
        terms = []
        for (dst, src), op in zip(EDGES, ops):
            if dst != to_node:
                continue
            if op == "none" or nodes[src] == "#":
                terms.append("#")
            elif op == "skip_connect":
                terms.append(nodes[src])
            else:
                terms.append(f"({nodes[src]})@{op}")
        nodes[to_node] = "+".join(sorted(terms))
    return nodes[3]
