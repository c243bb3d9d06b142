"""Search supernet of the NAS-Bench-201 space for differentiable and weight-sharing search (GDAS, DARTS,
RSPS, SETN), after ADL's `TinyNetworkGDAS` / `TinyNetworkDarts` / `TinyNetworkRANDOM` / `TinyNetworkSETN`.

Macro-structure as `TinyNetwork` (models/nb201.py): stem Conv 3x3 + BN, three stages of N cells at C, 2C,
4C separated by the stride-2 ResNet blocks, head BN -> ReLU -> global average pool -> Linear. Every edge of
every cell owns all 5 ops (`cell.edges[k][o]` is op `OPS[o]` of edge `EDGES[k]`, the layout of
`NB201Supernet`); the op BNs are non-affine (ADL's search models: `affine=False`) and by default do not
track running statistics (`track_running_stats=False`: batch statistics in train *and* eval mode -- the
NB201 paper's advice for weight-sharing search; ADL's scripts' `BN=0`).

Architecture parameters `alphas` (6 edges x 5 ops, `1e-3 * randn`) are shared by all cells. The two
parameter groups are `weights()` (everything else) and `arch_parameters()` ([alphas]).

`mode` (set with `set_mode`, or per call with `forward(x, mode=..., arch=...)`):

* `darts`   every edge is the softmax(alphas)-weighted sum of its ops (ADL `forward_joint`; `none` adds 0,
            so it is not run, yet its alpha still gets its softmax gradient).
* `gdas`    once per forward (shared by all cells, as ADL's `TinyNetworkGDAS.forward`): Gumbel noise
            g = -log(Exponential(1)); logits = (log_softmax(alphas) + g) / tau; probs = softmax(logits);
            one-hot of the argmax; weights = one_hot - probs.detach() + probs (straight-through: the value
            is one-hot, the gradient is the softmax's). On each edge only the sampled op runs; the edge
            outputs `w[k] * op_k(x) + sum(w[o] for o != k)` -- the other weights are 0 in value but are
            added as they are (ADL's `sum(w[o] * op(x) if o == k else w[o] ...)`), so every alpha of the edge
            gets a gradient. A sampled `none` contributes `w[none] * 0`. Knowing which ops run means reading
            the sample on the host: `presample(n)` draws the next n forwards' samples with one read
            (`GumbelDraws`; a GDAS search iteration reads once for its two steps).
* `uniform` once per forward, one op per edge uniformly over the 5 (`none` included, no rejection), the
            same arch in every cell (ADL `random_genotype(True)` + `forward_dynamic`; RSPS, SETN's weight step).
* `setn`    once per forward, one op per edge drawn from softmax(alphas) (ADL `dync_genotype(False)`).
* `fixed`   the arch given to `set_mode("fixed", arch)` / `forward(x, arch=...)` in every cell.

A node whose incoming edges all carry `none` outputs zeros. Path sampling (`uniform`, `setn`) uses a
`random.Random` owned by the module (seeded by `seed`, saved in `state_dict()` like `NB201Supernet`); the
Gumbel noise uses torch's global generator of the alphas' device. `last_arch` is the arch (op indices) of the
last discrete forward (`gdas`, `uniform`, `setn`, `fixed`).

`genotype()` is the argmax of alphas per edge, `none` included (ADL's NB201 search models), as a canonical
string.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from nasflow.errors import ArchError, ParamsError
from nasflow.models.nb201_supernet import SearchCell, arch_to_ops
from nasflow.models.nb201 import build_macro
from nasflow.models.ops import PathSampling, ResNetBasicBlock
from nasflow.spaces import nb201 as space

__all__ = ["NB201SearchNetwork", "MODES", "gumbel_hard_weights", "GumbelDraws"]

MODES = ("darts", "gdas", "uniform", "setn", "fixed")
N_OPS = len(space.OPS)
NONE = space.OPS.index("none")

# For node j = 1..3: the (edge index, source node) pairs of its incoming edges, in string order.
_INPUTS: list[list[tuple[int, int]]] = [[] for _ in range(space.N_NODES)]
for _k, (_dst, _src) in enumerate(space.EDGES):
    _INPUTS[_dst].append((_k, _src))


def gumbel_hard_weights(alphas: torch.Tensor, tau: float, generator: torch.Generator | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """GDAS' straight-through Gumbel-softmax sample of `alphas` [E, O]: (weights [E, O], index [E]).

    `weights` equals the one-hot of `index` in value and carries softmax((log_softmax(alphas) + g) / tau)'s
    gradient. The exponential noise is clamped away from 0 so every Gumbel draw is finite (ADL draws again
    instead, after reading the draw on the host: a sync per step); non-finite `alphas` (a diverged search) give
    NaN weights, so the step's loss is NaN and the epoch's one read of it marks the search diverged.
    """
    noise = torch.empty_like(alphas).exponential_(generator=generator)
    gumbels = -noise.clamp_min_(torch.finfo(noise.dtype).tiny).log()
    probs = ((alphas.log_softmax(dim=-1) + gumbels) / tau).softmax(dim=-1)
    index = probs.argmax(dim=-1)
    one_hot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
    return one_hot - probs.detach() + probs, index


class GumbelDraws:
    """GDAS samples of a search network's alpha tensors, drawn ahead with one host read of their indices.

    A GDAS forward must know its sampled ops on the host (only they run), so each forward waits for the device
    once per alpha tensor. A GDAS iteration samples twice (weight step, alpha step) from the same alphas, so
    `presample(alphas, tau, n)` draws the next n forwards' samples at once -- the Gumbel noise in the order
    those forwards would have drawn it, so the result is the same -- and reads all their indices in one
    transfer; `take` hands them out in order. A draw is refused once the alphas have changed in place (an
    optimiser step): it would no longer be the sample of the current alphas."""

    def __init__(self):
        self.queue: list[tuple[tuple[int, ...], list[torch.Tensor], list[tuple[int, ...]]]] = []

    def presample(self, alphas: list[torch.Tensor], tau: float, n: int) -> None:
        draws = [[gumbel_hard_weights(a, tau) for a in alphas] for _ in range(n)]
        flat = iter(torch.cat([index for draw in draws for _, index in draw]).tolist())  # the one host read
        versions = tuple(a._version for a in alphas)
        self.queue = [(versions, [w for w, _ in draw], [tuple(next(flat) for _ in range(index.numel()))
                                                        for _, index in draw]) for draw in draws]

    def take(self, alphas: list[torch.Tensor], tau: float) -> tuple[list[torch.Tensor], list[tuple[int, ...]]]:
        """The next sample: a presampled one, else one drawn now."""
        if not self.queue:
            self.presample(alphas, tau, 1)
        versions, weights, indices = self.queue.pop(0)
        if versions != tuple(a._version for a in alphas):
            self.queue = []
            raise RuntimeError("GDAS: presampled draws are stale (the alphas changed after `presample`)")
        return weights, indices


class NB201SearchNetwork(PathSampling, nn.Module):
    """The NB201 search supernet with architecture parameters (ADL's search setting: C=16, N=5)."""

    def __init__(
        self,
        C: int = 16,
        N: int = 5,
        num_classes: int = 10,
        *,
        mode: str = "gdas",
        seed: int = 0,
        affine: bool = False,
        track_running_stats: bool = False,
    ):
        super().__init__()
        if C < 1 or N < 0 or num_classes < 1:
            raise ValueError(f"need C >= 1, N >= 0, num_classes >= 1; got C={C}, N={N}, {num_classes=}")
        self.C, self.N, self.num_classes = C, N, num_classes
        self.mode = "gdas"
        self.fixed_ops: tuple[int, ...] | None = None
        self.tau = 10.0
        self.last_arch: tuple[int, ...] | None = None
        self.reseed(seed)
        self.gumbel = GumbelDraws()

        build_macro(self, C, N, num_classes,
                    lambda C_stage: SearchCell(C_stage, affine=affine, track_running_stats=track_running_stats))
        self.alphas = nn.Parameter(1e-3 * torch.randn(space.N_EDGES, N_OPS))
        self.set_mode(mode)

    # ------------------------------------------------------------------------------------ parameters

    def weights(self) -> list[nn.Parameter]:
        """Every parameter except the architecture parameters (the SGD group)."""
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def arch_parameters(self) -> list[nn.Parameter]:
        """[alphas] (the Adam group)."""
        return [self.alphas]

    def probs(self) -> torch.Tensor:
        """softmax(alphas) per edge, detached [6, 5]."""
        return self.alphas.detach().softmax(dim=-1)

    def genotype(self) -> str:
        """Argmax of alphas per edge (`none` included), as a canonical NB201 string."""
        return space.decode(self.alphas.detach().argmax(dim=-1).tolist())

    def log_prob(self, arch) -> float:
        """log P(arch) under the factorised softmax(alphas)."""
        ops = arch_to_ops(arch)
        logp = self.alphas.detach().log_softmax(dim=-1).cpu()
        return float(sum(logp[k, o] for k, o in enumerate(ops)))

    def topk_archs(self, k: int) -> list[str]:
        """The k archs of highest probability under softmax(alphas) (ADL SETN `return_topK`), best first."""
        logp = self.alphas.detach().log_softmax(dim=-1).cpu().double().numpy()  # [6, 5]
        archs = space.enumerate_all()
        codes = np.array([space.encode(a) for a in archs])  # [15625, 6]
        scores = logp[np.arange(space.N_EDGES)[None, :], codes].sum(axis=1)
        order = np.argsort(-scores, kind="stable")
        k = len(archs) if k < 0 or k >= len(archs) else k
        return [archs[i] for i in order[:k]]

    # ------------------------------------------------------------------------------------------ modes

    def set_mode(self, mode: str, arch=None) -> None:
        if mode not in MODES:
            raise ParamsError(f"search network mode {mode!r} is not one of {', '.join(MODES)}")
        if mode == "fixed":
            if arch is None:
                raise ArchError("mode 'fixed' needs an arch")
            self.fixed_ops = arch_to_ops(arch)
        self.mode = mode

    def set_tau(self, tau: float) -> None:
        self.tau = float(tau)

    def presample(self, n: int) -> None:
        """Draw the next n GDAS forwards' samples now, with one host read (see `GumbelDraws`)."""
        self.gumbel.presample(self.arch_parameters(), self.tau, n)

    def sample_uniform(self) -> tuple[int, ...]:
        """One op per edge, uniformly over the 5 ops (RSPS / SETN training; ADL `random_genotype(True)`)."""
        return tuple(self._path_rng.randrange(N_OPS) for _ in range(space.N_EDGES))

    def random_arch(self) -> str:
        """A uniform random arch (one op per edge, `none` included) as a canonical string, from the path RNG."""
        return space.decode(self.sample_uniform())

    def sample_from_alphas(self) -> tuple[int, ...]:
        """One op per edge drawn from softmax(alphas) (ADL SETN `dync_genotype(False)`)."""
        probs = self.probs().cpu().double().tolist()
        out = []
        for row in probs:
            u, acc, pick = self._path_rng.random() * sum(row), 0.0, N_OPS - 1
            for o, p in enumerate(row):
                acc += p
                if u < acc:
                    pick = o
                    break
            out.append(pick)
        return tuple(out)

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "tau": float(self.tau)}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.tau = float(state.get("tau", self.tau))

    def search_cells(self) -> list[SearchCell]:
        return [m for m in self.cells if isinstance(m, SearchCell)]

    def reduction_blocks(self) -> list[ResNetBasicBlock]:
        return [m for m in self.cells if isinstance(m, ResNetBasicBlock)]

    # ---------------------------------------------------------------------------------------- forward

    @staticmethod
    def _cell_weighted(cell: SearchCell, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """DARTS mixed edges: node j = sum over its edges of sum_o w[k, o] * op_o(source)."""
        nodes = [x]
        for node in range(1, space.N_NODES):
            acc = None
            for k, src in _INPUTS[node]:
                for o in range(N_OPS):
                    if o == NONE:
                        continue  # w * 0: nothing to add (its alpha still moves through the softmax)
                    out = w[k, o] * cell.edges[k][o](nodes[src])
                    acc = out if acc is None else acc + out
            nodes.append(acc)
        return nodes[-1]

    @staticmethod
    def _cell_gdas(cell: SearchCell, x: torch.Tensor, w: torch.Tensor, index: Sequence[int]) -> torch.Tensor:
        """GDAS edges: the sampled op times its weight, plus the other (zero-valued) weights as they are."""
        nodes = [x]
        for node in range(1, space.N_NODES):
            acc = None
            rest = None
            for k, src in _INPUTS[node]:
                o = index[k]
                others = torch.cat((w[k, :o], w[k, o + 1:])).sum()  # exactly 0 in value, not in gradient
                rest = others if rest is None else rest + others
                if o == NONE:
                    out = w[k, o] * torch.zeros_like(nodes[src])
                else:
                    out = w[k, o] * cell.edges[k][o](nodes[src])
                acc = out if acc is None else acc + out
            nodes.append(acc + rest)
        return nodes[-1]

    def forward(self, x: torch.Tensor, *, mode: str | None = None, arch=None) -> torch.Tensor:
        if arch is not None:
            mode, fixed = "fixed", arch_to_ops(arch)
        else:
            mode = self.mode if mode is None else mode
            if mode not in MODES:
                raise ParamsError(f"search network mode {mode!r} is not one of {', '.join(MODES)}")
            fixed = self.fixed_ops
        weights = index = ops = None
        if mode == "darts":
            weights = self.alphas.softmax(dim=-1)
        elif mode == "gdas":
            (weights,), (index,) = self.gumbel.take(self.arch_parameters(), self.tau)
            ops = index
        elif mode == "uniform":
            ops = self.sample_uniform()
        elif mode == "setn":
            ops = self.sample_from_alphas()
        else:
            if fixed is None:
                raise ArchError("mode 'fixed' needs an arch")
            ops = fixed
        self.last_arch = ops

        x = self.stem(x)
        for layer in self.cells:
            if isinstance(layer, SearchCell):
                if mode == "darts":
                    x = self._cell_weighted(layer, x, weights)
                elif mode == "gdas":
                    x = self._cell_gdas(layer, x, weights, index)
                else:
                    x = layer(x, ops)
            else:
                x = layer(x)
        x = self.global_pooling(self.lastact(x)).flatten(1)
        return self.classifier(x)
