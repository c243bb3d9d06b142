"""The MobileNet-like search space of RLNAS (megvii-model/RLNAS mobilenet_search_space/, after ProxylessNAS).

A network is a fixed skeleton with 21 *choice blocks*; each block is one of

    k3e3  k3e6  k5e3  k5e6  k7e3  k7e6    an MBConv block with kernel k and expansion ratio e
    skip                                  identity (the block is left out)

in RLNAS' code order 0..5, with `skip` = -1. The blocks form 6 stages (channels, blocks, stride of the
first block) (32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1); the first block
of a stage (blocks 0, 4, 8, 12, 16, 20) changes the channels or the resolution, so it cannot be `skip`
(RLNAS' `stage_last_id` list; every other block keeps its input's shape, so identity fits). That leaves
6^6 * 7^15 ~ 2.2e17 archs -- far too many to enumerate, so there is no `enumerate_all` (as in darts).

The string form is the 21 choice names joined by commas (the canonical spelling):

    k3e3,k5e6,skip,...

`parse` also reads RLNAS' integer code, 21 integers separated by spaces (`--model_id` of its retrain.py)
or commas, optionally in one pair of brackets (a printed Python tuple/list), and mixes of names and
codes; names are case-insensitive and RLNAS' block keys (`mobilenet_3x3_ratio_3`, ...) and `identity`
are accepted too. Nothing is evaluated.

Categorical encoding (`choices`, `encode`, `decode`): one variable per block, an index into `OPS`;
first blocks of a stage have 6 options (no `skip`, which is the last of `OPS`), the others 7. Every
assignment decodes to a valid arch and a uniform assignment is exactly `sample`'s (and RLNAS'
`get_random`'s) distribution.

The network (`build_network`, `build_mobilenet`) and its FLOPs look-up table (`flops_table`, `flops_of`)
live in nasflow.models.mobilenet (see nasflow.registry); this module stays free of torch.
"""

from __future__ import annotations

import operator
import random
import re
from collections.abc import Sequence
from typing import NamedTuple

from nasflow.errors import ArchError, ParamsError

NAME = "mobilenet"

SKIP = "skip"
# RLNAS' blocks_keys order (codes 0..5), then skip (code -1).
OPS: tuple[str, ...] = ("k3e3", "k3e6", "k5e3", "k5e6", "k7e3", "k7e6", SKIP)
MBCONV_OPS: tuple[str, ...] = OPS[:-1]
KERNEL_EXPANSION: dict[str, tuple[int, int]] = {
    name: (int(name[1]), int(name[3])) for name in MBCONV_OPS
}

# (output channels at width 1.0, blocks, stride of the first block), RLNAS' interverted_residual_setting.
STAGES: tuple[tuple[int, int, int], ...] = (
    (32, 4, 2), (56, 4, 2), (112, 4, 2), (128, 4, 1), (256, 4, 2), (432, 1, 1),
)
N_BLOCKS = sum(n for _, n, _ in STAGES)  # 21
FIRST_BLOCKS: tuple[int, ...] = tuple(sum(n for _, n, _ in STAGES[:s]) for s in range(len(STAGES)))
STEM_CHANNELS = 40  # conv 3x3 stride 2, at width 1.0
FIRST_BLOCK_CHANNELS = 24  # the fixed MBConv e=1 after the stem
LAST_CHANNELS = 1728  # the final 1x1 conv
N_ARCHS = (len(OPS) - 1) ** len(FIRST_BLOCKS) * len(OPS) ** (N_BLOCKS - len(FIRST_BLOCKS))

_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_FIRST = frozenset(FIRST_BLOCKS)
# Accepted spellings (lower case) -> canonical name.
_ALIASES: dict[str, str] = {op: op for op in OPS}
_ALIASES.update({f"mobilenet_{k}x{k}_ratio_{e}": name for name, (k, e) in KERNEL_EXPANSION.items()})
_ALIASES["identity"] = SKIP
_INT = re.compile(r"[+-]?\d+")
_MAX_TEXT = 10_000  # a canonical string is ~100 characters


# --------------------------------------------------------------------------------------------------------
# Strings


def _fail(arch: object, reason: str) -> ArchError:
    text = repr(arch)
    if len(text) > 300:
        text = text[:200] + "..." + text[-60:]
    return ArchError(f"invalid arch {text}: {reason}")


def allowed_choices(block: int) -> tuple[str, ...]:
    """The choices block `block` may take: no `skip` in the first block of a stage."""
    return MBCONV_OPS if block in _FIRST else OPS


def _tokens(arch: str) -> list[str]:
    text = arch.strip()
    if not text:
        raise _fail(arch, "empty string")
    if len(text) > _MAX_TEXT:
        raise _fail(arch, f"text too long ({len(text)} characters) for an arch")
    if (text[0], text[-1]) in (("(", ")"), ("[", "]")):
        text = text[1:-1].strip()
    if "," in text:
        tokens = [t.strip() for t in text.split(",")]
        if tokens and tokens[-1] == "" and len(tokens) == N_BLOCKS + 1:
            tokens.pop()  # a trailing comma, as Python prints a tuple
        return tokens
    return text.split()


def _choice(arch: object, block: int, token: object) -> str:
    """The canonical name of one block's choice (a name or an RLNAS code), checked against the block."""
    if isinstance(token, str):
        text = token.strip()
        if not text:
            raise _fail(arch, f"block {block} is empty")
        if _INT.fullmatch(text):
            token = int(text)
        else:
            name = _ALIASES.get(text.lower())
            if name is None:
                raise _fail(arch, f"block {block}: unknown choice {text!r} (known: {', '.join(OPS)}, "
                                  f"or an RLNAS code -1..{len(MBCONV_OPS) - 1})")
            return _check_block(arch, block, name)
    if isinstance(token, bool):
        raise _fail(arch, f"block {block}: expected a choice name or an integer code, got {token!r}")
    try:
        code = operator.index(token)  # ints and numpy ints, not floats
    except TypeError:
        raise _fail(arch, f"block {block}: expected a choice name or an integer code, got {token!r}") from None
    if not -1 <= code < len(MBCONV_OPS):
        raise _fail(arch, f"block {block}: code {code} out of range (RLNAS codes: -1 = skip, "
                          f"0..{len(MBCONV_OPS) - 1} = {', '.join(MBCONV_OPS)})")
    return _check_block(arch, block, SKIP if code == -1 else MBCONV_OPS[code])


def _check_block(arch: object, block: int, name: str) -> str:
    if name == SKIP and block in _FIRST:
        raise _fail(arch, f"block {block}: 'skip' is not allowed in the first block of a stage "
                          f"(blocks {', '.join(map(str, FIRST_BLOCKS))})")
    return name


def parse(arch) -> tuple[str, ...]:
    """The 21 canonical choice names of `arch`: a string (names and/or RLNAS codes, comma- or
    space-separated) or a sequence of names / integer codes. Raises `ArchError` naming the bad block."""
    if isinstance(arch, str):
        tokens: Sequence = _tokens(arch)
    elif isinstance(arch, (list, tuple)):
        tokens = arch
    else:
        raise _fail(arch, f"expected a string or a sequence of {N_BLOCKS} choices, got {type(arch).__name__}")
    if len(tokens) != N_BLOCKS:
        raise _fail(arch, f"expected {N_BLOCKS} blocks, got {len(tokens)}")
    return tuple(_choice(arch, block, token) for block, token in enumerate(tokens))


def format(ops: Sequence) -> str:  # noqa: A001 - the space's own verb, like nb201.format
    """The canonical string of 21 choices (names or RLNAS codes), validated."""
    if isinstance(ops, str):
        raise _fail(ops, "format takes a sequence of choices; use canonical() for a string")
    return ",".join(parse(tuple(ops)))


def canonical(arch) -> str:
    """`arch` in the canonical spelling: the 21 choice names joined by commas."""
    return ",".join(parse(arch))


def validate(arch) -> str:
    """Raise `ArchError` if `arch` is not an arch of this space; return its canonical string."""
    return canonical(arch)


def to_rlnas_code(arch) -> tuple[int, ...]:
    """RLNAS' integer code of `arch` (`-1` = skip, 0..5 in `OPS` order): its `cand` tuple; joined by
    spaces it is retrain.py's `--model_id`."""
    return tuple(-1 if op == SKIP else _OP_INDEX[op] for op in parse(arch))


def from_rlnas_code(codes: Sequence[int]) -> str:
    """The canonical string of an RLNAS integer code (inverse of `to_rlnas_code`)."""
    if isinstance(codes, str):
        return canonical(codes)
    return format(tuple(codes))


# --------------------------------------------------------------------------------------------------------
# Categorical encoding (REINFORCE, BOHB, ... in nasflow.search)


def choices() -> list[int]:
    """Options of each of the 21 variables (one per block): 6 for the first block of a stage, else 7."""
    return [len(allowed_choices(block)) for block in range(N_BLOCKS)]


def encode(arch) -> tuple[int, ...]:
    """The index into `OPS` of each block's choice."""
    return tuple(_OP_INDEX[op] for op in parse(arch))


def decode(codes: Sequence[int]) -> str:
    """The canonical string of the arch whose block `i` is `OPS[codes[i]]` (inverse of `encode`)."""
    sizes = choices()
    try:
        codes = tuple(operator.index(c) for c in codes)  # ints and numpy ints; not floats
    except TypeError:
        raise _fail(codes, f"expected {N_BLOCKS} integer indices into OPS") from None
    if len(codes) != N_BLOCKS:
        raise _fail(codes, f"expected {N_BLOCKS} indices, got {len(codes)}")
    for block, (c, n) in enumerate(zip(codes, sizes)):
        if not 0 <= c < n:
            if c == _OP_INDEX[SKIP] and block in _FIRST:
                _check_block(codes, block, SKIP)  # raises the first-block message
            raise _fail(codes, f"block {block}: index {c} out of range 0..{n - 1}")
    return ",".join(OPS[c] for c in codes)


# --------------------------------------------------------------------------------------------------------
# Sampling, mutation, crossover


def _random_ops(rng: random.Random) -> tuple[str, ...]:
    return tuple(rng.choice(allowed_choices(block)) for block in range(N_BLOCKS))


def sample(n: int, seed: int, unique: bool = True) -> list[str]:
    """`n` archs, each block uniform over its allowed choices (RLNAS' `get_random`), deterministic for
    `seed`; with `unique`, no arch twice."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ParamsError(f"sample size must be a non-negative integer, got {n!r}")
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        arch = ",".join(_random_ops(rng))
        if unique:
            if arch in seen:
                continue
            seen.add(arch)
        out.append(arch)
    return out


def mutate(arch, rng: random.Random, prob: float | None = None) -> str:
    """A mutation of `arch`.

    Default: one uniformly chosen block switched to a different, uniformly chosen allowed choice (the
    result always differs, as nb201's `mutate`). With `prob`: RLNAS' `get_mutation` -- every block,
    with probability `prob`, is redrawn uniformly from its allowed choices (it may keep its choice, so
    the result may equal `arch`)."""
    ops = list(parse(arch))
    if prob is None:
        block = rng.randrange(N_BLOCKS)
        ops[block] = rng.choice([op for op in allowed_choices(block) if op != ops[block]])
    else:
        if not 0.0 <= prob <= 1.0:
            raise ParamsError(f"mutation probability must be in [0, 1], got {prob!r}")
        for block in range(N_BLOCKS):
            if rng.random() < prob:
                ops[block] = rng.choice(allowed_choices(block))
    return ",".join(ops)


def crossover(arch_a, arch_b, rng: random.Random) -> str:
    """RLNAS' `get_crossover`: each block's choice from `arch_a` or `arch_b` with probability 1/2 (valid,
    as both parents are)."""
    a, b = parse(arch_a), parse(arch_b)
    return ",".join(x if rng.random() < 0.5 else y for x, y in zip(a, b))


# --------------------------------------------------------------------------------------------------------
# Layout: channels, strides and feature-map sides (torch-free; the network and the FLOPs table use it)


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """`value` rounded to the nearest multiple of `divisor` (at least `min_value`, default `divisor`),
    rounded up once more if that lost over 10% -- the rule ProxylessNAS (and MobileNetV2) apply to
    width-multiplied channel counts."""
    floor = divisor if min_value is None else min_value
    rounded = max(floor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def _out_side(side: int, stride: int) -> int:
    # every conv here pads k // 2 with an odd k: out = ceil(side / stride)
    return (side - 1) // stride + 1


class BlockSpec(NamedTuple):
    """One choice block: its index, input and output channels, stride, and input feature-map side."""

    index: int
    inp: int
    oup: int
    stride: int
    side: int


class Layout(NamedTuple):
    """The skeleton at a width multiplier and an input size (square images)."""

    width: float
    input_size: int
    stem_channels: int
    first_block_channels: int
    blocks: tuple[BlockSpec, ...]
    last_channels: int
    final_side: int  # side of the feature map entering the final 1x1 conv


def check_width(width) -> float:
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width < float("inf"):
        raise ParamsError(f"width multiplier must be a positive number, got {width!r}")
    return float(width)


def check_positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamsError(f"{name} must be a positive integer, got {value!r}")
    return value


def layout(width: float = 1.0, input_size: int = 224) -> Layout:
    """Channels (RLNAS' at width 1.0; `make_divisible(c * width)` otherwise, the final conv kept at 1728
    unless width > 1, as ProxylessNAS keeps its 1280) and feature-map sides for `input_size` px."""
    width = check_width(width)
    check_positive("input size", input_size)
    stem = make_divisible(STEM_CHANNELS * width)
    first = make_divisible(FIRST_BLOCK_CHANNELS * width)
    side = _out_side(input_size, 2)  # after the stem (the first MBConv keeps the side)
    blocks: list[BlockSpec] = []
    inp = first
    for channels, n, first_stride in STAGES:
        oup = make_divisible(channels * width)
        for j in range(n):
            stride = first_stride if j == 0 else 1
            blocks.append(BlockSpec(len(blocks), inp, oup, stride, side))
            side = _out_side(side, stride)
            inp = oup
    last = make_divisible(LAST_CHANNELS * width) if width > 1.0 else LAST_CHANNELS
    return Layout(width, input_size, stem, first, tuple(blocks), last, side)


# --------------------------------------------------------------------------------------------------------
# Networks


def channels_to_width(channels: int | None) -> float:
    """The width multiplier for the common API's `channels`: the stem's channel count, 40 at width 1.0."""
    if channels is None:
        return 1.0
    check_positive("channels", channels)
    return channels / STEM_CHANNELS
