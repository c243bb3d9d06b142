"""The DARTS cell search space (Liu et al., ICLR 2019; quark0/darts cnn/genotypes.py).

A network stacks two kinds of cell, *normal* and *reduce*. A cell has two inputs (node 0 = the output of
the cell before the previous one, node 1 = the previous cell), four intermediate nodes 2..5 and an output
that concatenates nodes 2, 3, 4, 5. Intermediate node k is the sum of exactly two (op, input) pairs whose
inputs are two *different* nodes among 0..k-1. A final genotype uses the 7 non-`none` ops of `OPS`.

The string form is the repr of DARTS's `Genotype` namedtuple:

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...8 pairs], normal_concat=[2, 3, 4, 5],
             reduce=[...8 pairs], reduce_concat=[2, 3, 4, 5])

Pairs 2i and 2i+1 feed node 2+i. `parse` also reads the spellings found in the wild: the pairs nested per
node (`[[('op', 0), ('op', 1)], [...], ...]`, as BPE's files write them), `range(2, 6)` for the concat lists,
tuples or lists, single or double quotes, any whitespace, positional fields, and `Genotype` qualified by
a module name (`genotypes.Genotype(...)`). Text is read with `ast.parse` and only literal nodes (strings,
integers, lists, tuples) and `range(...)` calls are accepted -- nothing is ever evaluated, so text such as
`__import__('os')` is rejected as malformed. The canonical string is the flat spelling above (the exact
text `str(genotype)` prints in quark0/darts); it keeps the order of the two pairs of a node as given, so
published genotypes keep their published spelling. `unique_key` sorts each node's pairs, which merges
spellings that differ only in that order (the sum is commutative).

The space is far too large to enumerate (about 1.1e18 genotypes, 1.04e9 per cell up to pair order), so
there is no `enumerate_all`.

Categorical encoding for policy-based search (`choices`, `encode`, `decode`), 24 variables: for the normal
cell and then the reduce cell, for node k = 2, 3, 4, 5, three variables

    pair   the node's two inputs {a, b}, a < b: an index into `itertools.combinations(range(k), 2)`
           (C(k, 2) = 1, 3, 6, 10 options; node 2 always takes {0, 1}, a one-option variable)
    op_a   the op applied to input a: an index into `CELL_OPS` (7 options)
    op_b   the op applied to input b (7 options)

Every assignment decodes to a valid genotype, and a uniform assignment is exactly the BPE paper's random
genotype (uniform distinct pair of predecessors, uniform non-`none` ops), so REINFORCE starts from the
random-search distribution. `decode` writes each node's pairs input-ascending; `encode(decode(c)) == c`,
and `decode(encode(g)) == unique_key(g)`. BPE's own REINFORCE instead uses 28 variables, one op (of 7) per
edge of the 14 edges of each cell, and keeps *every* edge -- its genotypes give node k all k inputs, which
is not this space; we keep the 2-input DARTS space and pick the pair explicitly.
"""

from __future__ import annotations

import ast
import itertools
import operator
import random
from collections.abc import Sequence
from typing import NamedTuple

from nasflow.errors import ArchError, ParamsError

NAME = "darts"

# quark0/darts PRIMITIVES, in its order.
OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELL_OPS: tuple[str, ...] = OPS[1:]  # the ops a final genotype may use (no `none`)
CELLS: tuple[str, ...] = ("normal", "reduce")
NODES: tuple[int, ...] = (2, 3, 4, 5)  # intermediate nodes; node k takes inputs from 0..k-1
N_PAIRS = 2 * len(NODES)  # 8 (op, input) pairs per cell
CONCAT: tuple[int, ...] = NODES  # the cell output concatenates every intermediate node

# For each node k: the unordered input pairs (a, b), a < b, in `itertools.combinations` order.
INPUT_PAIRS: dict[int, tuple[tuple[int, int], ...]] = {
    k: tuple(itertools.combinations(range(k), 2)) for k in NODES
}

_OP_SET = frozenset(OPS)
_CELL_OP_INDEX = {op: i for i, op in enumerate(CELL_OPS)}
_PAIR_INDEX = {k: {pair: i for i, pair in enumerate(pairs)} for k, pairs in INPUT_PAIRS.items()}
_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_MAX_TEXT = 20_000  # a genotype string is ~450 characters; refuse megabytes of text before parsing it


class Genotype(NamedTuple):
    """A parsed genotype: per cell 8 (op, input) pairs (pairs 2i, 2i+1 feed node 2+i) and its concat."""

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]


# --------------------------------------------------------------------------------------------------------
# Strings


def _fail(arch: object, reason: str) -> ArchError:
    text = repr(arch)
    if len(text) > 600:
        text = text[:300] + "..." + text[-100:]
    return ArchError(f"invalid arch {text}: {reason}")


class _Malformed(Exception):
    """Raised inside the literal reader; turned into an ArchError naming the whole input."""


def _describe(node: ast.AST) -> str:
    try:
        snippet = ast.unparse(node)
    except Exception:  # pragma: no cover - unparse handles every node ast.parse makes
        snippet = type(node).__name__
    return snippet if len(snippet) <= 60 else snippet[:57] + "..."


def _literal(node: ast.AST):
    """The value of a literal node: str, int, list (for lists and tuples), or a list from `range(...)`."""
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (str, int)):
            raise _Malformed(f"unexpected constant {_describe(node)}")
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = _literal(node.operand)
        if isinstance(value, int):
            return -value  # a negative input index: reported later as out of range, not as malformed
        raise _Malformed(f"unexpected expression {_describe(node)}")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(item) for item in node.elts]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        if node.keywords or not 1 <= len(node.args) <= 3:
            raise _Malformed(f"range() takes 1 to 3 integers, got {_describe(node)}")
        bounds = [_literal(arg) for arg in node.args]
        if not all(isinstance(b, int) for b in bounds) or (len(bounds) == 3 and bounds[2] == 0):
            raise _Malformed(f"bad range {_describe(node)}")
        r = range(*bounds)
        if len(r) > 64:
            raise _Malformed(f"range too long: {_describe(node)}")
        return list(r)
    if isinstance(node, ast.Call):
        raise _Malformed(f"only literals and range() are allowed, got a call to {_describe(node.func)}")
    raise _Malformed(f"only literals and range() are allowed, got {_describe(node)}")


def _is_genotype_name(func: ast.AST) -> bool:
    return (isinstance(func, ast.Name) and func.id == "Genotype") or (
        isinstance(func, ast.Attribute) and func.attr == "Genotype"
    )


def _read_text(arch: str) -> dict:
    """The four fields of a `Genotype(...)` text as plain values (lists, strs, ints), unchecked."""
    text = arch.strip()
    if not text:
        raise _fail(arch, "empty string")
    if len(text) > _MAX_TEXT:
        raise _fail(arch, f"text too long ({len(text)} characters) for a genotype")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as err:
        raise _fail(arch, f"malformed genotype text ({err.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise _fail(arch, "malformed genotype text") from None
    call = tree.body
    if not (isinstance(call, ast.Call) and _is_genotype_name(call.func)):
        raise _fail(arch, "expected text of the form Genotype(normal=[...], normal_concat=[...], "
                          "reduce=[...], reduce_concat=[...])")
    if len(call.args) > len(_FIELDS):
        raise _fail(arch, f"Genotype takes {len(_FIELDS)} fields, got {len(call.args)} positional values")
    nodes: dict[str, ast.AST] = {}
    for name, value in zip(_FIELDS, call.args):
        if isinstance(value, ast.Starred):
            raise _fail(arch, "malformed genotype text (unexpected *args)")
        nodes[name] = value
    for kw in call.keywords:
        if kw.arg is None:
            raise _fail(arch, "malformed genotype text (unexpected **kwargs)")
        if kw.arg not in _FIELDS:
            raise _fail(arch, f"unknown Genotype field {kw.arg!r} (fields: {', '.join(_FIELDS)})")
        if kw.arg in nodes:
            raise _fail(arch, f"Genotype field {kw.arg!r} given twice")
        nodes[kw.arg] = kw.value
    missing = [name for name in _FIELDS if name not in nodes]
    if missing:
        raise _fail(arch, f"Genotype is missing {', '.join(missing)}")
    try:
        return {name: _literal(node) for name, node in nodes.items()}
    except _Malformed as err:
        raise _fail(arch, f"malformed genotype text: {err}") from None
    except RecursionError:
        raise _fail(arch, "malformed genotype text (nested too deeply)") from None


def _is_pair_like(item) -> bool:
    return isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)


def _cell_pairs(arch, cell: str, value) -> list[tuple[str, int]]:
    """One cell's 8 (op, input) pairs from the flat or the nested spelling, validated."""
    if not isinstance(value, (list, tuple)):
        raise _fail(arch, f"{cell}: expected a list of (op, input) pairs, got {value!r}")
    nested = len(value) > 0 and all(
        isinstance(group, (list, tuple)) and len(group) > 0 and all(isinstance(p, (list, tuple)) for p in group)
        for group in value
    )
    if nested:  # [[pair, pair], [pair, pair], ...]: one group per intermediate node
        if len(value) != len(NODES):
            raise _fail(arch, f"{cell}: expected {len(NODES)} nodes of 2 (op, input) pairs, got {len(value)} nodes")
        for node, group in zip(NODES, value):
            if len(group) != 2:
                raise _fail(arch, f"{cell} node {node}: expected 2 (op, input) pairs, got {len(group)}")
        flat = [pair for group in value for pair in group]
    else:
        flat = list(value)
    if len(flat) != N_PAIRS:
        raise _fail(arch, f"{cell}: expected {N_PAIRS} (op, input) pairs (2 per node), got {len(flat)}")
    pairs: list[tuple[str, int]] = []
    for i, item in enumerate(flat):
        node = NODES[i // 2]
        if not _is_pair_like(item):
            raise _fail(arch, f"{cell} node {node}: expected an (op, input) pair, got {item!r}")
        op, inp = item
        try:
            if isinstance(inp, bool):
                raise TypeError
            inp = operator.index(inp)  # ints and numpy ints, not floats or bools
        except TypeError:
            raise _fail(arch, f"{cell} node {node}: input must be an integer, got {inp!r}") from None
        if op not in _OP_SET:
            raise _fail(arch, f"{cell} node {node}: unknown op {op!r} (known: {', '.join(CELL_OPS)})")
        if op == "none":
            raise _fail(arch, f"{cell} node {node}: op 'none' is not allowed in a final genotype "
                              f"(use one of {', '.join(CELL_OPS)})")
        if not 0 <= inp < node:
            raise _fail(arch, f"{cell} node {node}: input {inp} out of range 0..{node - 1}")
        pairs.append((op, inp))
    for node in NODES:
        (_, a), (_, b) = pairs[2 * (node - 2)], pairs[2 * (node - 2) + 1]
        if a == b:
            raise _fail(arch, f"{cell} node {node}: both pairs take input {a} (a node's two inputs must differ)")
    return pairs


def _concat(arch, cell: str, value) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple, range)) or list(value) != list(CONCAT):
        shown = value if isinstance(value, (list, tuple, range)) else repr(value)
        raise _fail(arch, f"{cell}_concat: expected [2, 3, 4, 5], got {shown}")
    return CONCAT


def _from_fields(arch, fields: dict) -> Genotype:
    return Genotype(
        normal=tuple(_cell_pairs(arch, "normal", fields["normal"])),
        normal_concat=_concat(arch, "normal", fields["normal_concat"]),
        reduce=tuple(_cell_pairs(arch, "reduce", fields["reduce"])),
        reduce_concat=_concat(arch, "reduce", fields["reduce_concat"]),
    )


def parse(arch) -> Genotype:
    """The `Genotype` of `arch`: a genotype string (either spelling), or any object with the four fields
    (this module's `Genotype`, DARTS's namedtuple). Raises `ArchError` with a one-line reason."""
    if isinstance(arch, str):
        return _from_fields(arch, _read_text(arch))
    if all(hasattr(arch, name) for name in _FIELDS):
        return _from_fields(arch, {name: getattr(arch, name) for name in _FIELDS})
    raise _fail(arch, f"expected a genotype string, got {type(arch).__name__}")


def _cell_text(pairs: Sequence[tuple[str, int]]) -> str:
    return "[" + ", ".join(f"('{op}', {inp})" for op, inp in pairs) + "]"


def format(genotype) -> str:  # noqa: A001 - the space's own verb, like nb201.format
    """The canonical (flat) string of a genotype given as a `Genotype` or any object with its fields."""
    g = parse(genotype)  # validates (a string is read first)
    concat = "[" + ", ".join(str(k) for k in CONCAT) + "]"
    return (f"Genotype(normal={_cell_text(g.normal)}, normal_concat={concat}, "
            f"reduce={_cell_text(g.reduce)}, reduce_concat={concat})")


def canonical(arch) -> str:
    """`arch` in the canonical flat spelling (the text quark0/darts prints for a genotype)."""
    return format(parse(arch))


def validate(arch) -> str:
    """Raise `ArchError` if `arch` is not a genotype of this space; return its canonical string."""
    return canonical(arch)


def _sorted_cell(pairs) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for i in range(0, N_PAIRS, 2):
        out.extend(sorted(pairs[i:i + 2], key=lambda p: (p[1], p[0])))
    return tuple(out)


def unique_key(arch) -> str:
    """The canonical string with each node's two pairs sorted by input: spellings that differ only in the
    order of a node's two pairs (the same network, as a node sums its pairs) share a key. No other
    equivalences are merged (e.g. permutations of intermediate nodes)."""
    g = parse(arch)
    return format(g._replace(normal=_sorted_cell(g.normal), reduce=_sorted_cell(g.reduce)))


# Published genotypes (quark0/darts cnn/genotypes.py): first- and second-order DARTS on CIFAR-10.
DARTS_V1 = canonical(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], "
    "normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], "
    "reduce_concat=[2, 3, 4, 5])"
)
DARTS_V2 = canonical(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], "
    "normal_concat=[2, 3, 4, 5], "
    "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=[2, 3, 4, 5])"
)
DARTS = DARTS_V2  # quark0/darts: DARTS = DARTS_V2


# --------------------------------------------------------------------------------------------------------
# Categorical encoding (REINFORCE, BOHB, ... in nasflow.search): see the module docstring.


def choices() -> list[int]:
    """Options of each of the 24 categorical variables: per cell (normal, reduce), per node k = 2..5,
    [C(k, 2) input pairs, 7 ops for the lower input, 7 ops for the higher input]."""
    per_cell: list[int] = []
    for k in NODES:
        per_cell += [len(INPUT_PAIRS[k]), len(CELL_OPS), len(CELL_OPS)]
    return per_cell * len(CELLS)


N_VARIABLES = len(choices())  # 24


def encode(arch) -> tuple[int, ...]:
    """The 24 codes of `arch` (see `choices`); the order of a node's two pairs is forgotten."""
    g = parse(arch)
    codes: list[int] = []
    for pairs in (g.normal, g.reduce):
        for k in NODES:
            (op_x, x), (op_y, y) = pairs[2 * (k - 2)], pairs[2 * (k - 2) + 1]
            if x > y:
                (op_x, x), (op_y, y) = (op_y, y), (op_x, x)
            codes += [_PAIR_INDEX[k][(x, y)], _CELL_OP_INDEX[op_x], _CELL_OP_INDEX[op_y]]
    return tuple(codes)


def decode(codes: Sequence[int]) -> str:
    """The canonical string of the genotype with these 24 codes (each node's pairs input-ascending)."""
    sizes = choices()
    try:
        codes = tuple(operator.index(c) for c in codes)  # ints and numpy ints; not floats
    except TypeError:
        raise _fail(codes, f"expected {len(sizes)} integer codes") from None
    if len(codes) != len(sizes):
        raise _fail(codes, f"expected {len(sizes)} codes, got {len(codes)}")
    for i, (c, n) in enumerate(zip(codes, sizes)):
        if not 0 <= c < n:
            raise _fail(codes, f"code {i} is {c}, expected 0..{n - 1}")
    cells = []
    it = iter(codes)
    for _ in CELLS:
        pairs: list[tuple[str, int]] = []
        for k in NODES:
            a, b = INPUT_PAIRS[k][next(it)]
            pairs += [(CELL_OPS[next(it)], a), (CELL_OPS[next(it)], b)]
        cells.append(tuple(pairs))
    return format(Genotype(cells[0], CONCAT, cells[1], CONCAT))


# --------------------------------------------------------------------------------------------------------
# Sampling and mutation


def _random_codes(rng: random.Random) -> list[int]:
    return [rng.randrange(n) for n in choices()]


def sample(n: int, seed: int, unique: bool = True) -> list[str]:
    """`n` random genotypes as the BPE paper draws them (random_darts_generator.py): per node two distinct
    predecessors uniformly, each with a uniform non-`none` op; normal and reduce cells independent.
    Deterministic for `seed`; with `unique`, no two share a `unique_key`. Each node's pairs are written
    input-ascending."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ParamsError(f"sample size must be a non-negative integer, got {n!r}")
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        arch = decode(_random_codes(rng))  # decode writes pairs sorted, so the string is its own key
        if unique:
            if arch in seen:
                continue
            seen.add(arch)
        out.append(arch)
    return out


def mutate(arch, rng: random.Random) -> str:
    """`arch` with one change: a uniformly chosen cell and (op, input) pair; then, with probability 1/2,
    its op becomes another of the 7 ops, otherwise its input becomes another predecessor not already used
    by its node (node 2 has no other, so its pairs always change op). The result is valid and differs from
    `arch`; the other pairs keep their order."""
    g = parse(arch)
    cell = rng.randrange(len(CELLS))
    slot = rng.randrange(N_PAIRS)
    pairs = list(g[2 * cell])
    node = NODES[slot // 2]
    op, inp = pairs[slot]
    partner = pairs[slot ^ 1][1]
    free_inputs = [j for j in range(node) if j not in (inp, partner)]
    if free_inputs and rng.random() < 0.5:
        pairs[slot] = (op, rng.choice(free_inputs))
    else:
        pairs[slot] = (rng.choice([o for o in CELL_OPS if o != op]), inp)
    return format(g._replace(**{CELLS[cell]: tuple(pairs)}))


# --------------------------------------------------------------------------------------------------------
# Edge encoding (weight-sharing supernets, RLNAS): one op index per edge of the full cell DAG.
#
# Node k (2..5) reads every earlier node 0..k-1, so a cell has 2 + 3 + 4 + 5 = 14 edges; the edge from
# input i to node k has index sum(range(2, k)) + i (node 2: 0, 1; node 3: 2..4; node 4: 5..8; node 5:
# 9..13), RLNAS' / DARTS' MixedOp order. A cell is 14 indices into `OPS` (0 = `none`); a genotype is a
# vector with exactly two non-`none` edges per node.

N_EDGES = sum(NODES)  # 14
NONE_INDEX = OPS.index("none")  # 0
# (node, input) of each edge, in edge order.
EDGE_INPUTS: tuple[tuple[int, int], ...] = tuple((k, i) for k in NODES for i in range(k))
_EDGE_INDEX = {pair: e for e, pair in enumerate(EDGE_INPUTS)}
# The edge indices of each node (node k: its k incoming edges, input-ascending).
NODE_EDGES: dict[int, tuple[int, ...]] = {k: tuple(_EDGE_INDEX[(k, i)] for i in range(k)) for k in NODES}


def to_edge_ops(arch) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(normal, reduce): per cell 14 op indices into `OPS` in edge order (0 = `none` where the genotype
    has no pair). The order of a node's two pairs is forgotten."""
    g = parse(arch)
    cells = []
    for pairs in (g.normal, g.reduce):
        ops = [NONE_INDEX] * N_EDGES
        for j, (op, inp) in enumerate(pairs):
            ops[_EDGE_INDEX[(NODES[j // 2], inp)]] = OPS.index(op)
        cells.append(tuple(ops))
    return cells[0], cells[1]


def _check_edge_ops(ops, what: str) -> tuple[int, ...]:
    try:
        out = tuple(operator.index(o) for o in ops)  # ints and numpy ints; not floats or strings
    except TypeError:
        raise _fail(ops, f"{what}: expected {N_EDGES} integer op indices") from None
    if len(out) != N_EDGES:
        raise _fail(ops, f"{what}: expected {N_EDGES} op indices, got {len(out)}")
    for e, o in enumerate(out):
        if not 0 <= o < len(OPS):
            raise _fail(ops, f"{what}: edge {e} has op index {o}, expected 0..{len(OPS) - 1}")
    return out


def from_edge_ops(normal: Sequence[int], reduce: Sequence[int]) -> str:
    """The canonical genotype string of two 14-edge op vectors (each node's pairs input-ascending, so
    `from_edge_ops(*to_edge_ops(g)) == unique_key(g)`). `ArchError` unless every node of both cells has
    exactly two non-`none` edges."""
    cells = []
    for cell, ops in zip(CELLS, (normal, reduce)):
        ops = _check_edge_ops(ops, cell)
        pairs: list[tuple[str, int]] = []
        for k in NODES:
            kept = [(OPS[ops[e]], i) for i, e in enumerate(NODE_EDGES[k]) if ops[e] != NONE_INDEX]
            if len(kept) != 2:
                raise _fail(ops, f"{cell} node {k}: expected exactly 2 non-none edges, got {len(kept)}")
            pairs += kept
        cells.append(tuple(pairs))
    return format(Genotype(cells[0], CONCAT, cells[1], CONCAT))


def repair_edge_ops(ops: Sequence[int], rng) -> tuple[int, ...]:
    """RLNAS' `check_cand` on one cell's 14-edge vector, with `rng` (a `numpy.random.RandomState`).

    Node by node (node 2+j, j = 0..3, has 2+j edges and must keep j `none` edges): with fewer than j
    `none` edges, `rng.choice` (without replacement) picks j - #none of its non-`none` edges and sets them
    to `none`; with more than j, it picks #none - j of its `none` edges and gives each a uniform
    non-`none` op (`1 + rng.randint(7)`). A vector that is already a genotype comes back unchanged (and
    draws nothing from `rng`)."""
    out = list(_check_edge_ops(ops, "cell"))
    for j, k in enumerate(NODES):
        edges = NODE_EDGES[k]
        nones = [m for m, e in enumerate(edges) if out[e] == NONE_INDEX]
        if len(nones) < j:
            others = [m for m in range(len(edges)) if m not in nones]
            for m in rng.choice(others, size=j - len(nones), replace=False):
                out[edges[int(m)]] = NONE_INDEX
        elif len(nones) > j:
            for m in rng.choice(nones, size=len(nones) - j, replace=False):
                out[edges[int(m)]] = 1 + int(rng.randint(len(OPS) - 1))
    return tuple(out)
