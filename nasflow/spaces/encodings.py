"""Fixed-length vector encodings of architectures, for model-based predictors (nasflow.estimators.predictors).

    onehot(space, arch)      every space: the one-hot of each categorical variable of `space.encode(arch)`
                             (sizes `space.choices()`), concatenated. NB201: 6 edges x 5 ops = 30; DARTS: per
                             cell and node, the input pair and both ops (24 variables, 2 x (1+3+6+10 + 8 x 7) =
                             152); MobileNet-like: one block choice each (21 blocks, 141). Inverse: from_onehot.
    nb201_paths(arch)        NB201's path encoding (BANANAS, White et al. 2021): one bit per sequence of ops
                             along some input -> output path of the cell whose ops are all not `none`: the 4
                             non-none ops give 4 + 16 + 64 = 84 possible sequences of lengths 1 to 3.
    darts_paths(arch)        DARTS's path encoding (BANANAS' DARTS variant, untruncated): per cell (normal,
                             reduce) and cell input (c_{k-2}, c_{k-1}), one bit per sequence of ops along some
                             path from that input through intermediate nodes to a node of the cell's concat: 7 ops,
                             lengths 1 to 4, so 2 x 2 x (7 + 49 + 343 + 2,401) = 11,200 bits (sparse: a genotype
                             sets a few dozen).
    nb201_graph(arch)        the cell as an op-on-node DAG (for a GCN): 8 nodes (input, one per edge, output),
                             adjacency and one-hot node types (input, output, the 5 ops).

Isomorphic NB201 cells (different strings computing the same function, nb201.unique_key) get different
one-hot vectors but often the same path encoding (paths through `none` edges vanish, and the three input ->
output paths of length 2 cannot be told apart); we do not merge them: a predictor sees what a search would see.
Numpy only (spaces never import torch).
"""
from __future__ import annotations

from itertools import product
from types import ModuleType

import numpy as np

from nasflow.errors import ParamsError
from nasflow.spaces import darts, nb201

KINDS = ("onehot", "path")


def onehot(space: ModuleType, arch) -> np.ndarray:
    sizes, codes = space.choices(), space.encode(arch)
    out = np.zeros(sum(sizes), dtype=np.float32)
    offset = 0
    for size, code in zip(sizes, codes):
        out[offset + code] = 1.0
        offset += size
    return out


def from_onehot(space: ModuleType, vector) -> str:
    """The arch whose one-hot is `vector` (argmax per variable)."""
    vector, codes, offset = np.asarray(vector), [], 0
    for size in space.choices():
        codes.append(int(np.argmax(vector[offset:offset + size])))
        offset += size
    if offset != len(vector):
        raise ParamsError(f"one-hot of length {len(vector)}: the {space.NAME} space's has {offset}")
    return space.decode(codes)


# NB201: node i's inputs are nodes 0..i-1; edge order as in the arch string (1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)
_EDGE = {(to, frm): e for e, (to, frm) in enumerate(nb201.EDGES)}
# every input -> output path as the edges it uses: 0->3, 0->1->3, 0->2->3, 0->1->2->3
_PATHS = tuple(tuple(_EDGE[(b, a)] for a, b in zip(nodes, nodes[1:]))
               for nodes in ((0, 3), (0, 1, 3), (0, 2, 3), (0, 1, 2, 3)))
_LIVE_OPS = tuple(op for op in nb201.OPS if op != "none")
_SEQUENCES = {seq: i for i, seq in enumerate(s for n in (1, 2, 3) for s in product(_LIVE_OPS, repeat=n))}
N_PATH_BITS = len(_SEQUENCES)  # 84


def nb201_paths(arch: str) -> np.ndarray:
    ops = nb201.parse(arch)
    out = np.zeros(N_PATH_BITS, dtype=np.float32)
    for path in _PATHS:
        seq = tuple(ops[e] for e in path)
        if "none" not in seq:
            out[_SEQUENCES[seq]] = 1.0
    return out


_DARTS_SEQUENCES = {seq: i for i, seq in enumerate(s for n in (1, 2, 3, 4)
                                                  for s in product(darts.CELL_OPS, repeat=n))}
_DARTS_BLOCK = len(_DARTS_SEQUENCES)  # 2,800 sequences per (cell, input)
N_DARTS_PATH_BITS = len(darts.CELLS) * 2 * _DARTS_BLOCK  # 11,200


def _darts_cell_paths(pairs, concat) -> set[tuple[int, tuple[str, ...]]]:
    """(cell input, op sequence) of every path from a cell input to a node of `concat`."""
    into: dict[int, list[tuple[int, tuple[str, ...]]]] = {}
    for k, node in enumerate(darts.NODES):  # nodes in order: a node's inputs come before it
        into[node] = [p for (op, j) in pairs[2 * k:2 * k + 2]
                      for p in ([(j, (op,))] if j < 2 else [(i, seq + (op,)) for i, seq in into[j]])]
    return {p for node in concat for p in into[node]}


def darts_paths(arch) -> np.ndarray:
    g = darts.parse(arch)
    out = np.zeros(N_DARTS_PATH_BITS, dtype=np.float32)
    for c, (pairs, concat) in enumerate(((g.normal, g.normal_concat), (g.reduce, g.reduce_concat))):
        for inp, seq in _darts_cell_paths(pairs, concat):
            out[(2 * c + inp) * _DARTS_BLOCK + _DARTS_SEQUENCES[seq]] = 1.0
    return out


GRAPH_TYPES = ("input", "output", *nb201.OPS)


def nb201_graph(arch: str) -> tuple[np.ndarray, np.ndarray]:
    """(adjacency 8x8 with a[i, j] = 1 for an edge i -> j, node types one-hot 8 x 7)."""
    ops = nb201.parse(arch)
    n = 2 + len(ops)
    adj = np.zeros((n, n), dtype=np.float32)
    types = np.zeros((n, len(GRAPH_TYPES)), dtype=np.float32)
    types[0, 0], types[n - 1, 1] = 1.0, 1.0
    for e, ((to, frm), op) in enumerate(zip(nb201.EDGES, ops)):
        node = 1 + e
        types[node, GRAPH_TYPES.index(op)] = 1.0
        # the edge's op node reads what feeds node `frm` (the input, or the op nodes ending in it) ...
        sources = [0] if frm == 0 else [1 + f for f, (t, _) in enumerate(nb201.EDGES) if t == frm]
        for s in sources:
            adj[s, node] = 1.0
        if to == 3:  # ... and the op nodes ending in the output node feed the output
            adj[node, n - 1] = 1.0
    return adj, types


def encode_many(space: ModuleType, archs, kind: str = "onehot") -> np.ndarray:
    """(len(archs), width) float32 matrix of one encoding."""
    if kind not in KINDS:
        raise ParamsError(f"encoding {kind!r}: known {', '.join(KINDS)}")
    if kind == "path":
        paths = {"nb201": nb201_paths, "darts": darts_paths}.get(space.NAME)
        if paths is None:  # a chain of blocks has one path: its one-hot says it all
            raise ParamsError(f"the path encoding is defined for NB201 and DARTS cells; the {space.NAME} space has onehot")
        return np.stack([paths(a) for a in archs])
    return np.stack([onehot(space, a) for a in archs])
