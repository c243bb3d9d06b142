"""Black-box search strategies over a search space, driven by an estimator and a budget.

Every strategy has the signature

    strategy(space, estimator, budget, seed, **hyperparameters) -> SearchResult

- `space`: a space module (nasflow.spaces.get_space): `sample(n, seed)` draws random archs and
  `mutate(arch, rng)` changes one choice; policy-based strategies (REINFORCE, BOHB) also need the categorical
  encoding `choices()` (options per variable), `encode(arch)` and `decode(codes)`.
- `estimator(arch) -> (score, cost_seconds)`: higher scores are better; the cost is what the evaluation
  spent (simulated, from a cost model, or measured, for real proxy training). See nasflow.estimators.table.
  A non-finite score (a diverged training: the estimator returns -inf, or NaN) is the worst possible score:
  the `Tracker` records it as -inf with `status: "diverged"` (still paid), and the pick is never such an
  arch -- `best` is None when every evaluation diverged. REINFORCE rewards it with the worst finite reward
  seen so far (0 before any), BOHB with a large finite loss, so policies and models stay finite.
- `budget`: a `Budget` (number of evaluations and/or seconds of estimator cost) or an int (evaluations).
- `seed`: everything random in the strategy derives from it: same seed, same result.
- `log` (keyword, optional): called with one line of text per paid evaluation (its score, cost, the budget
  spent, the best score so far) and when the budget ends the search; None (the default) is silent.

Budget convention (ADL exps/NAS-Bench-201-algos, R_EA.py / RANDOM.py): evaluations are charged in order; the
first one whose cost would take the total past the seconds budget ends the search and is *not* kept (it is
reported as `SearchResult.overshoot`), so `spent <= budget.seconds` always holds. ADL's REINFORCE keeps that
last, unpaid arch in its trace and may pick it; here every strategy drops it (a deliberate, documented
difference). ADL also adds the strategy's own wall time to the budget; that is negligible and left out.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, NamedTuple

import numpy as np

from nasflow.errors import ParamsError

Estimator = Callable[[str], "tuple[float, float]"]
STATUS_OK, STATUS_DIVERGED = "ok", "diverged"


@dataclass(frozen=True)
class Budget:
    """Stop after `evaluations` evaluations and/or once `seconds` of estimator cost would be exceeded."""

    evaluations: int | None = None
    seconds: float | None = None

    def __post_init__(self):
        if self.evaluations is None and self.seconds is None:
            raise ParamsError("budget: give a number of evaluations and/or seconds")
        if self.evaluations is not None and (isinstance(self.evaluations, bool) or not isinstance(self.evaluations, int)
                                             or self.evaluations < 1):
            raise ParamsError(f"budget.evaluations must be a positive integer, got {self.evaluations!r}")
        if self.seconds is not None and (isinstance(self.seconds, bool) or not isinstance(self.seconds, (int, float))
                                         or not self.seconds > 0):
            raise ParamsError(f"budget.seconds must be a positive number, got {self.seconds!r}")

    @classmethod
    def of(cls, budget: "Budget | int | dict") -> "Budget":
        """A Budget from a Budget, an int (evaluations) or a mapping {evaluations: …, seconds: …}."""
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, int) and not isinstance(budget, bool):
            return cls(evaluations=budget)
        if isinstance(budget, dict):
            unknown = set(budget) - {"evaluations", "seconds"}
            if unknown:
                raise ParamsError(f"budget: unknown keys {sorted(unknown)} (use evaluations, seconds)")
            return cls(**budget)
        raise ParamsError(f"budget must be a Budget, an int (evaluations) or a mapping, got {budget!r}")

    def scaled(self, factor: float) -> "Budget":
        """The same budget with its seconds multiplied by `factor` (evaluations unchanged)."""
        return Budget(self.evaluations, None if self.seconds is None else self.seconds * factor)


class Evaluation(NamedTuple):
    """One paid evaluation: the arch, its score and cost, and the total cost spent once it was paid;
    `status` "diverged" when the estimator gave no finite score (the score is then -inf)."""

    arch: str
    score: float
    cost: float
    elapsed: float
    status: str = STATUS_OK


@dataclass
class SearchResult:
    """What a search did: every paid evaluation in order, the pick, and strategy-specific extras."""

    strategy: str
    seed: int
    budget: Budget
    history: list[Evaluation]
    best: Evaluation | None
    overshoot: Evaluation | None = None  # the evaluation that did not fit the seconds budget (not paid, not kept)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def best_arch(self) -> str | None:
        return None if self.best is None else self.best.arch

    @property
    def best_score(self) -> float | None:
        return None if self.best is None else self.best.score

    @property
    def n_evals(self) -> int:
        return len(self.history)

    @property
    def spent(self) -> float:
        return self.history[-1].elapsed if self.history else 0.0


class Tracker:
    """Charges evaluations against a budget and records them. Strategies call `evaluate` and stop at None."""

    def __init__(self, estimator: Estimator, budget: Budget, log: Callable[[str], None] | None = None):
        self.estimator = estimator
        self.budget = budget
        self.history: list[Evaluation] = []
        self.spent = 0.0
        self.overshoot: Evaluation | None = None
        self.log = log

    @property
    def done(self) -> bool:
        b = self.budget
        return (self.overshoot is not None
                or (b.evaluations is not None and len(self.history) >= b.evaluations)
                or (b.seconds is not None and self.spent >= b.seconds))

    def evaluate(self, arch: str) -> float | None:
        """The arch's score, or None when the budget is spent (then the search must stop)."""
        if self.done:
            return None
        score, cost = self.estimator(arch)
        status = STATUS_OK
        if not math.isfinite(score):  # diverged: the worst score there is, comparable with every other
            score, status = -math.inf, STATUS_DIVERGED
        total = self.spent + cost
        if self.budget.seconds is not None and total > self.budget.seconds:
            self.overshoot = Evaluation(arch, score, cost, total, status)
            if self.log is not None:
                self.log(f"eval {len(self.history) + 1} would bring the cost to {total:.1f} s, past the budget of "
                         f"{self.budget.seconds:g} s: stopping (it is not kept)")
            return None
        self.spent = total
        self.history.append(Evaluation(arch, score, cost, total, status))
        if self.log is not None:
            self._log(self.history[-1])
        return score

    def _log(self, e: Evaluation) -> None:
        top = self.best()
        new = top is e  # e is the history's last entry: new only if no earlier evaluation ties it
        b = self.budget
        n = len(self.history)
        spent = f"{self.spent:.1f}" + (f"/{b.seconds:g}" if b.seconds is not None else "")
        best = "-" if top is None else f"{top.score:.4g}"
        self.log(f"eval {n}{f'/{b.evaluations}' if b.evaluations is not None else ''}  "
                 f"score {'diverged' if e.status != STATUS_OK else f'{e.score:.4g}'}  cost {e.cost:.2f} s  "
                 f"spent {spent} s  best so far {best}{'  (new best)' if new else ''}  {e.arch}")

    def best(self) -> Evaluation | None:
        """Highest score; the earliest evaluation wins ties; never a diverged one (None if all diverged)."""
        finite = [e for e in self.history if e.status == STATUS_OK]
        if not finite:
            return None
        return max(finite, key=lambda e: e.score)  # max() keeps the first of equal keys

    def result(self, strategy: str, seed: int, best: Evaluation | None = None, **extra) -> SearchResult:
        return SearchResult(strategy, seed, self.budget, self.history, best if best is not None else self.best(),
                            self.overshoot, extra)


def _random_arch(space: ModuleType, rng: random.Random) -> str:
    # one uniform draw through the space's own sampler (with replacement across calls, as ADL draws them)
    return space.sample(1, seed=rng.getrandbits(63))[0]


# ------------------------------------------------------------------------------------------------- RS


def random_search(space: ModuleType, estimator: Estimator, budget, seed: int, *,
                  log: Callable[[str], None] | None = None) -> SearchResult:
    """Random search (ADL RANDOM.py): evaluate uniform random archs until the budget is spent; pick the best."""
    tracker, rng = Tracker(estimator, Budget.of(budget), log), random.Random(seed)
    while tracker.evaluate(_random_arch(space, rng)) is not None:
        pass
    return tracker.result("rs", seed)


# ------------------------------------------------------------------------------------------------ REA


def regularized_evolution(space: ModuleType, estimator: Estimator, budget, seed: int, *, population_size: int = 10,
                          sample_size: int = 3, log: Callable[[str], None] | None = None) -> SearchResult:
    """Regularized (aging) evolution, Real et al. 2019, as ADL's R_EA.py runs it on NB201.

    Fill a population of `population_size` random archs; then repeatedly draw `sample_size` members uniformly
    *with replacement*, mutate the best of them (`space.mutate`: one variable changes), evaluate the child,
    append it and remove the oldest member. Archs are not deduplicated (a revisit is paid again). The pick is
    the best arch of the whole history. Defaults: population 10, sample size 3 (ADL's R-EA.sh).
    """
    if population_size < 1 or not 1 <= sample_size:
        raise ParamsError(f"REA: population_size and sample_size must be >= 1, got {population_size}, {sample_size}")
    tracker, rng = Tracker(estimator, Budget.of(budget), log), random.Random(seed)
    population: list[tuple[str, float]] = []  # oldest first
    while len(population) < population_size:
        arch = _random_arch(space, rng)
        score = tracker.evaluate(arch)
        if score is None:
            return tracker.result("rea", seed)
        population.append((arch, score))
    start = 0  # population is population[start:]; popping the oldest only moves `start` (no O(n) shifts)
    while True:
        members = population[start:]
        parent = max((rng.choice(members) for _ in range(sample_size)), key=lambda m: m[1])
        child = space.mutate(parent[0], rng)
        score = tracker.evaluate(child)
        if score is None:
            break
        population.append((child, score))
        start += 1
        if start > 4096:  # keep the list short
            population, start = population[start:], 0
    return tracker.result("rea", seed)


# ------------------------------------------------------------------------------------------- REINFORCE


class _Adam:
    """torch.optim.Adam's update (betas 0.9/0.999, eps 1e-8, no weight decay) for one numpy array."""

    def __init__(self, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, (self.b1, self.b2), self.eps, self.t = lr, betas, eps, 0
        self.m = self.v = None

    def step(self, param: np.ndarray, grad: np.ndarray) -> None:
        if self.m is None:
            self.m, self.v = np.zeros_like(param), np.zeros_like(param)
        self.t += 1
        self.m = self.b1 * self.m + (1 - self.b1) * grad
        self.v = self.b2 * self.v + (1 - self.b2) * grad * grad
        m_hat = self.m / (1 - self.b1 ** self.t)
        v_hat = self.v / (1 - self.b2 ** self.t)
        param -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


class CategoricalPolicy:
    """Independent softmax distributions, one per categorical variable of a space (`space.choices()`).

    For NB201 that is ADL's 6 x 5 logit table (edges x ops). Logits start at 1e-3 * N(0, 1) as in ADL.
    Variables with fewer options than the widest are masked out of the softmax.
    """

    def __init__(self, n_options: list[int], rng: np.random.Generator):
        if not n_options or any(int(k) < 1 for k in n_options):
            raise ParamsError(f"policy: every variable needs at least one option, got {n_options}")
        self.n_options = [int(k) for k in n_options]
        width = max(self.n_options)
        self.mask = np.arange(width)[None, :] < np.array(self.n_options)[:, None]
        self.logits = 1e-3 * rng.standard_normal((len(self.n_options), width))
        self._rows = np.arange(len(self.n_options))

    def probs(self) -> np.ndarray:
        z = np.where(self.mask, self.logits, -np.inf)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(actions, probs): one option index per variable, drawn from the current distributions."""
        p = self.probs()
        u = rng.random(len(self.n_options))
        actions = (np.cumsum(p, axis=1) < u[:, None]).sum(axis=1)
        return np.minimum(actions, np.array(self.n_options) - 1), p

    def log_prob_grad(self, actions: np.ndarray, p: np.ndarray) -> np.ndarray:
        """d/d logits of sum_i log p_i(actions_i): one_hot(actions) - p (zero on masked entries)."""
        g = -p.copy()
        g[self._rows, actions] += 1.0
        return g

    def argmax(self) -> np.ndarray:
        return np.where(self.mask, self.logits, -np.inf).argmax(axis=1)


class _EMA:
    """ADL's ExponentialMovingAverage: a bias-corrected mean (numerator / denominator)."""

    def __init__(self, momentum: float):
        self.momentum, self.num, self.den = momentum, 0.0, 0.0

    def update(self, value: float) -> None:
        self.num = self.momentum * self.num + (1 - self.momentum) * value
        self.den = self.momentum * self.den + (1 - self.momentum)

    def value(self) -> float:
        return self.num / self.den


def reinforce(space: ModuleType, estimator: Estimator, budget, seed: int, *, lr: float = 0.01,
              ema_momentum: float = 0.9, log: Callable[[str], None] | None = None) -> SearchResult:
    """REINFORCE (Williams 1992) with a factorised softmax policy, as ADL's reinforce.py runs it on NB201.

    Each step samples one arch from the policy, evaluates it (reward = score), updates the EMA baseline
    *first* and then takes one Adam step on -log p(arch) * (reward - baseline). The pick is the best arch
    of the history (ADL's final version), not the policy's argmax; the final policy is in
    `extra["probs"]` / `extra["argmax_arch"]`. `lr`: ADL grid-searched 0.01-0.5 (scripts-search/algos/hps/
    GRID-RL.sh); NATS-Bench runs 0.01, the default here. EMA momentum 0.9 as ADL.
    """
    if not lr > 0 or not 0 <= ema_momentum < 1:
        raise ParamsError(f"REINFORCE: need lr > 0 and 0 <= ema_momentum < 1, got {lr}, {ema_momentum}")
    tracker, rng = Tracker(estimator, Budget.of(budget), log), np.random.default_rng(seed)
    policy = CategoricalPolicy(space.choices(), rng)
    adam, baseline = _Adam(lr), _EMA(ema_momentum)
    worst = None  # the worst finite reward so far: a diverged arch's reward (-inf would poison the policy)
    while True:
        actions, p = policy.sample(rng)
        reward = tracker.evaluate(space.decode(actions.tolist()))
        if reward is None:
            break
        if math.isfinite(reward):
            worst = reward if worst is None else min(worst, reward)
        else:
            reward = 0.0 if worst is None else worst
        baseline.update(reward)
        advantage = reward - baseline.value()
        # loss = -log p(a) * advantage  =>  dloss/dlogits = -advantage * (one_hot(a) - p)
        adam.step(policy.logits, -advantage * policy.log_prob_grad(actions, p))
    probs = policy.probs()
    return tracker.result("reinforce", seed, probs=[row[:k].tolist() for row, k in zip(probs, policy.n_options)],
                          argmax_arch=space.decode(policy.argmax().tolist()))
