"""ENAS (Pham et al. 2018) in the NAS-Bench-201 space, as NB201's baseline runs it (ADL
exps/NAS-Bench-201-algos/ENAS.py): the LSTM controller and its REINFORCE update.

`Controller` is a policy over the 6 edges of a cell, in `space.EDGES` order. Step k feeds the LSTM (2 layers,
hidden 32) with a learned input vector (k = 0) or the embedding of the op chosen at step k-1, and turns its
output into op logits

    logits_k = tanh_constant * tanh(Linear(output_k) / temperature)        (2.5, 5.0)

from which the op of edge k is drawn (`Categorical(logits)`, torch's global generator of the controller's
device). `forward()` returns (sum of the log-probabilities, sum of the entropies, op indices);
`forward(ops)` scores given ops instead (teacher forcing), `logits(ops)` gives the [6, n_ops] logits.
The input vector, the first LSTM layer's weights, the embedding and the prediction weight start
uniform(-0.1, 0.1); the rest keeps torch's default init (as ADL).

`train_controller` is one epoch of the controller's training: for `steps * num_aggregate` batches of the
valid half, sample an arch, score it with the shared network (eval mode, no grad) on the batch, and

    reward    = batch top-1 accuracy in [0, 1] + entropy_weight * entropy
    baseline  = the accuracy (first step of the search), else baseline - (1 - decay) * (baseline - reward)
    loss      = -log_prob * (reward - baseline) / num_aggregate          (backward, accumulated)

and every `num_aggregate` batches clip the controller's gradient norm and take an Adam step. As in ADL the
reward keeps the entropy's gradient (the advantage is not detached). `baseline_mode`:

* `running` (default; ENAS' own moving average): the baseline moves at every step and is carried over, as a
  plain number, from step to step and epoch to epoch.
* `adl`: what ADL's ENAS.py does (its config is an immutable namedtuple, so the baseline it updates is not
  fed back within an epoch): every step of an epoch starts from the baseline B the epoch started with --
  the accuracy itself when B is None (all of the first epoch) -- and the epoch hands on the last step's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.distributions import Categorical

__all__ = ["Controller", "update_baseline", "reinforce_loss", "train_controller", "sample_archs",
           "EPOCH_PICK", "BASELINE_MODES"]

BASELINE_MODES = ("running", "adl")
EPOCH_PICK = 10  # controller samples scored per epoch for the epoch's pick (ADL `get_best_arch` default)


class Controller(nn.Module):
    """ENAS' LSTM policy over the ops of the `n_edges` edges of a cell (ADL `Controller`)."""

    def __init__(self, n_edges: int = 6, n_ops: int = 5, *, lstm_size: int = 32, lstm_layers: int = 2,
                 tanh_constant: float = 2.5, temperature: float = 5.0):
        super().__init__()
        if n_edges < 1 or n_ops < 2 or lstm_size < 1 or lstm_layers < 1:
            raise ValueError(f"Controller: need n_edges >= 1, n_ops >= 2, lstm_size/lstm_layers >= 1 (got "
                             f"{n_edges}, {n_ops}, {lstm_size}, {lstm_layers})")
        self.n_edges, self.n_ops = int(n_edges), int(n_ops)
        self.tanh_constant, self.temperature = float(tanh_constant), float(temperature)
        self.input_vars = nn.Parameter(torch.empty(1, 1, lstm_size))
        self.lstm = nn.LSTM(input_size=lstm_size, hidden_size=lstm_size, num_layers=lstm_layers)
        self.embedding = nn.Embedding(n_ops, lstm_size)
        self.pred = nn.Linear(lstm_size, n_ops)
        for w in (self.input_vars, self.lstm.weight_ih_l0, self.lstm.weight_hh_l0, self.embedding.weight,
                  self.pred.weight):
            nn.init.uniform_(w, -0.1, 0.1)

    def _step_logits(self, inputs: torch.Tensor, state):
        out, state = self.lstm(inputs, state)
        logits = self.tanh_constant * torch.tanh(self.pred(out).reshape(self.n_ops) / self.temperature)
        return logits, state

    def _run(self, ops: Sequence[int] | None):
        inputs, state = self.input_vars, None
        chosen, all_logits = [], []
        for k in range(self.n_edges):
            logits, state = self._step_logits(inputs, state)
            if ops is None:
                op = Categorical(logits=logits).sample()
            else:
                op = torch.tensor(int(ops[k]), device=logits.device)
            chosen.append(op)
            all_logits.append(logits)
            inputs = self.embedding(op.view(1, 1))
        return torch.stack(all_logits), torch.stack(chosen)

    def logits(self, ops: Sequence[int]) -> torch.Tensor:
        """The [n_edges, n_ops] logits of every step when the ops `ops` are chosen (teacher forcing)."""
        return self._run(ops)[0]

    def forward(self, ops: Sequence[int] | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple[int, ...]]:
        """Sample an arch (or score `ops`): (sum of log-probs, sum of entropies, op indices)."""
        logits, chosen = self._run(ops)
        dist = Categorical(logits=logits)  # one distribution per edge
        return dist.log_prob(chosen).sum(), dist.entropy().sum(), tuple(int(o) for o in chosen.tolist())


# ------------------------------------------------------------------------------------------- REINFORCE

def update_baseline(baseline, reward, accuracy, decay: float):
    """ENAS' moving-average baseline: `accuracy` when there is none yet (`baseline` None), else
    baseline - (1 - decay) * (baseline - reward). Floats or tensors (a tensor reward keeps its graph)."""
    if baseline is None:
        return accuracy
    return baseline - (1.0 - decay) * (baseline - reward)


def reinforce_loss(log_prob: torch.Tensor, reward, baseline, num_aggregate: int = 1) -> torch.Tensor:
    """-log_prob * (reward - baseline) / num_aggregate."""
    return -log_prob * (reward - baseline) / num_aggregate


def _number(v) -> float:
    return float(v.detach()) if isinstance(v, torch.Tensor) else float(v)


@torch.no_grad()
def sample_archs(controller: Controller, n: int) -> list[tuple[int, ...]]:
    """`n` archs (op indices) drawn from the controller (eval mode, no grad)."""
    controller.eval()
    return [controller()[2] for _ in range(n)]


def train_controller(controller: Controller, optimizer: torch.optim.Optimizer, model: nn.Module,
                     batches: Iterator, *, steps: int, num_aggregate: int, entropy_weight: float,
                     baseline_decay: float, baseline: float | None, grad_clip: float | None = 5.0,
                     baseline_mode: str = "running") -> dict:
    """One epoch of the controller's training (module docstring) on `steps * num_aggregate` batches of
    `batches`, the shared network `model` scoring each sampled arch via `model(x, arch=ops)` in eval mode.

    Returns the epoch's means (`loss`, `reward`, `entropy`, `acc` (%, the sampled archs' batch accuracy),
    `ce` (their cross-entropy), `grad_norm` (before clipping)) and the final `baseline` (a float).
    """
    if baseline_mode not in BASELINE_MODES:
        raise ValueError(f"baseline_mode: {baseline_mode!r} is not one of {', '.join(BASELINE_MODES)}")
    model.eval()
    controller.train()
    optimizer.zero_grad(set_to_none=True)
    start = baseline
    total = steps * num_aggregate
    sums = {"loss": 0.0, "reward": 0.0, "entropy": 0.0, "acc": 0.0, "ce": 0.0}
    norms = []
    for step in range(total):
        x, y = next(batches)
        log_prob, entropy, ops = controller()
        with torch.no_grad():
            out = model(x, arch=ops)
            correct = (out.argmax(1) == y).sum()
            ce = F.cross_entropy(out, y)
        acc = float(correct) / int(y.shape[0])
        reward = acc + entropy_weight * entropy
        baseline_now = update_baseline(baseline if baseline_mode == "running" else start, reward, acc,
                                       baseline_decay)
        loss = reinforce_loss(log_prob, reward, baseline_now)
        (loss / num_aggregate).backward()
        baseline = _number(baseline_now)
        if (step + 1) % num_aggregate == 0:
            norm = nn.utils.clip_grad_norm_(controller.parameters(), grad_clip if grad_clip else float("inf"))
            norms.append(float(norm))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        sums["loss"] += _number(loss)
        sums["reward"] += _number(reward)
        sums["entropy"] += _number(entropy)
        sums["acc"] += 100.0 * acc
        sums["ce"] += float(ce)
    out = {k: v / total for k, v in sums.items()}
    out["grad_norm"] = sum(norms) / len(norms) if norms else None
    out["baseline"] = baseline
    return out
