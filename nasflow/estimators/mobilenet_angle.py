"""RLNAS' angle metric in the MobileNet-like space (megvii-model/RLNAS mobilenet_search_space/rlnas/
evolution_search/test_server.py, `get_arch_vector` / `get_angle`).

    angle(arch) = arccos( cos(v_init(arch), v_trained(arch)) )        larger = better

v(arch) concatenates, in the reference's order:

* the fixed layers: the stem conv weight; the fixed MBConv e=1's depthwise and 1x1 conv weights; the head's
  1x1 conv weight; the classifier's weight (not its bias). Their BNs do not enter the vector.
* per choice block, in order, the sampled path's weights:
  - an MBConv: its expansion conv weight, the BN after it (weight, bias), the depthwise conv weight, the BN
    after it (weight, bias), the projection conv weight (the last BN does not enter);
  - `skip`: the constant identity matrix eye(oup, inp), flattened (the same in both vectors).

The reference computes the cosine in float32 (`nn.CosineSimilarity`); here it is float64, clamped to
[-1, 1] (identical weights give exactly 0).

Speed: as in nasflow.estimators.darts_angle, the cosine needs only <a,b>, |a|^2, |b|^2, which add up over
pieces: `MobileNetAngleScorer` sums them once for the fixed part and once per (block, choice); an arch's total
is the fixed triple plus one triple per block, vectorised over archs. `mobilenet_angle_vector` /
`mobilenet_angle` build the explicit vectors (the reference's way; used to cross-check).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from nasflow.estimators.angle import _arccos_of, _arccos_of_rows, _as_supernet, _get, _model_state
from nasflow.models.mobilenet_supernet import SKIP_CODE, MobileNetSupernet, arch_to_codes
from nasflow.spaces import mobilenet as space

__all__ = ["MobileNetAngleLayout", "MobileNetAngleScorer", "mobilenet_angle", "mobilenet_angle_layout",
           "mobilenet_angle_vector"]

Piece = str | torch.Tensor  # a parameter name in the state dict, or a constant (float64) tensor
N_CODES = len(space.MBCONV_OPS) + 1  # column of `skip` in the per-block tables: the last one (code -1)


@dataclass(frozen=True)
class MobileNetAngleLayout:
    """Where an arch's weights live in a `MobileNetSupernet` state dict.

    fixed: the arch-independent pieces, in the reference's order.
    blocks: per choice block, per RLNAS code c (0..5, then -1 at index -1) the pieces of that choice
            (`None` where the block does not allow `skip`).
    """

    fixed: tuple[Piece, ...]
    blocks: tuple[tuple[tuple[Piece, ...] | None, ...], ...]


def mobilenet_angle_layout(supernet) -> MobileNetAngleLayout:
    """The `MobileNetAngleLayout` of a `MobileNetSupernet` (or of a factory's supernet)."""
    net = _as_supernet(supernet)
    if not isinstance(net, MobileNetSupernet):
        raise TypeError(f"mobilenet angle: expected a MobileNetSupernet, got {type(net).__name__}")
    names = {id(p): name for name, p in net.named_parameters()}

    def n(p) -> str:
        return names[id(p)]

    first = net.stem.first_block.conv
    fixed = (n(net.stem.conv[0].weight), n(first[0].weight), n(first[3].weight), n(net.head.conv[0].weight),
             n(net.head.classifier[-1].weight))
    blocks = []
    for block in net.blocks:
        per_code: list[tuple[Piece, ...] | None] = []
        for op in block.ops:
            c = op.conv  # expansion conv 0, BN 1, depthwise 3, BN 4, projection 6 (as in RLNAS)
            per_code.append((n(c[0].weight), n(c[1].weight), n(c[1].bias), n(c[3].weight), n(c[4].weight),
                             n(c[4].bias), n(c[6].weight)))
        eye = torch.eye(block.output_channel, block.input_channel, dtype=torch.float64).reshape(-1)
        per_code.append((eye,) if block.allows_skip else None)
        blocks.append(tuple(per_code))
    return MobileNetAngleLayout(fixed=fixed, blocks=tuple(blocks))


def _value(state, piece: Piece) -> torch.Tensor:
    return piece if isinstance(piece, torch.Tensor) else _get(state, piece)


def _column(code: int) -> int:
    return N_CODES - 1 if code == SKIP_CODE else code


def mobilenet_angle_vector(supernet, arch, state=None) -> torch.Tensor:
    """The float64 weight vector of `arch` in `supernet`'s weights, or in `state` (a state dict,
    `nasflow.train` checkpoint dict or path, a module)."""
    net = _as_supernet(supernet)
    layout = mobilenet_angle_layout(net)
    st = net.state_dict() if state is None else _model_state(state)
    pieces = [_value(st, p) for p in layout.fixed]
    for per_code, code in zip(layout.blocks, arch_to_codes(arch)):
        pieces += [_value(st, p) for p in per_code[_column(code)]]
    return torch.cat(pieces)


def mobilenet_angle(init_state, trained_state, arch, supernet) -> float:
    """RLNAS angle (radians) of `arch` between two states of a `MobileNetSupernet`."""
    v0 = mobilenet_angle_vector(supernet, arch, init_state)
    v1 = mobilenet_angle_vector(supernet, arch, trained_state)
    return _arccos_of(float(v0 @ v1), float(v0 @ v0), float(v1 @ v1))


class MobileNetAngleScorer:
    """Angles of many archs from two states of one `MobileNetSupernet`, without building their vectors."""

    def __init__(self, init_state, trained_state, supernet):
        layout = mobilenet_angle_layout(supernet)
        s0, s1 = _model_state(init_state), _model_state(trained_state)

        def triple(pieces: Sequence[Piece]) -> np.ndarray:
            # one concatenation per group of pieces: three dot products instead of three per piece
            a = torch.cat([p if isinstance(p, torch.Tensor) else _get(s0, p) for p in pieces])
            b = torch.cat([p if isinstance(p, torch.Tensor) else _get(s1, p) for p in pieces])
            return np.array([float(a @ b), float(a @ a), float(b @ b)])

        self.fixed = triple(layout.fixed)
        # block_code[b, c]: (dot, |init|^2, |trained|^2) of code c's pieces in block b (0 where not allowed)
        self.block_code = np.zeros((len(layout.blocks), N_CODES, 3))
        for b, per_code in enumerate(layout.blocks):
            for c, pieces in enumerate(per_code):
                if pieces is not None:
                    self.block_code[b, c] = triple(pieces)

    def scores(self, archs: Sequence) -> np.ndarray:
        """Angles (float64 array, radians) of `archs`."""
        if len(archs) == 0:
            return np.zeros(0)
        cols = np.array([[_column(c) for c in arch_to_codes(a)] for a in archs], dtype=np.int64)  # [A, 21]
        per_block = self.block_code[np.arange(self.block_code.shape[0])[None, :], cols]           # [A, 21, 3]
        return _arccos_of_rows(self.fixed[None, :] + per_block.sum(axis=1))

    def score(self, arch) -> float:
        return float(self.scores([arch])[0])
