"""The estimator registry: every performance estimator by name, as timm registers models.

An estimator is a name, a family, what it needs, and a function `fn(archs, ctx, **groups) -> [Estimate]`: one
(score, cost seconds, status) per arch, higher = better. `ctx` supplies what the estimator needs (a
`Context`); the engine decides how: the `correlate` stage reads what the DAG's stages computed, a search trains
or scores on demand. So `search`, `correlate`, `report` and the DAG take any registered name, and adding an
estimator is one module that calls `register` (named in `estimators.plugins` of params.yaml, or imported
before use), with no edit to the stages:

    from nasflow.estimators.registry import Estimate, register

    @register("depth", family="zero-cost", needs=())
    def depth(archs, ctx):
        return [Estimate(float(a.count("conv")), 0.0) for a in archs]

Names are exact (`synflow`) or patterns with named groups passed to `fn` (`proxy_<setting>`: `setting`).
Built-in families (`FAMILIES`): budgeted training `proxy_<setting>`; learning curve `sotl_<setting>`,
`sotl_e_<setting>`, `acc_<setting>_e<k>`, `lce_<setting>` (nasflow.estimators.learning_curve); zero-cost
proxies (nasflow.estimators.zero_cost: grad_norm, snip, grasp, fisher, synflow, jacob_cov, naswot, zen, params,
flops); supernet `angle[_<labels>]`, `supernet_acc[_<labels>]`; differentiable `alpha_<method>` (the
log-probability of the arch under a differentiable search's final softmax(α), NB201); table `table` (a column of
the NAS-Bench-201 table with its simulated or recorded cost) and the tabular learning-curve estimators
`table_acc_<schedule>ep_e<k>`, `table_sotl[_e]_<schedule>ep_e<k>`, `table_lce_<schedule>ep_e<k>` (read off the
release's own per-epoch curves at NB201's real budgets: no training is run); ensembles (`vote`, rank averages of other estimators, and `log_rank`, AZ-NAS's sum of log-ranks: made
from their scores, so only where a population of archs is scored together, see `vote_scores`).
"""
from __future__ import annotations

import difflib
import importlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from nasflow.errors import ParamsError
from nasflow.estimators.estimate import FAMILIES, STATUS_OK, Estimate

__all__ = ["FAMILIES", "STATUS_OK", "Estimate", "Context", "Estimator", "register", "load_plugins", "get", "available",
           "family_of", "vote_scores", "for_search"]

class Context(Protocol):
    """What estimators may ask for. Each method takes archs (canonical strings) and answers in their order."""
    params: dict

    def trained(self, setting: str, archs: Sequence[str]) -> list[dict]:
        """Training results under a named setting (nasflow.train: history, final_acc, seconds, status)."""

    def supernet(self, labels: str, indicator: str, archs: Sequence[str]) -> list[Estimate]:
        """A trained RLNAS supernet's `angle` / `supernet_acc` per arch."""

    def zero_cost(self, proxy: str, archs: Sequence[str]) -> list[Estimate]:
        """A zero-cost proxy per arch (one seeded batch, an untrained network)."""

    def table(self, column: str, archs: Sequence[str]) -> list[Estimate]:
        """A NAS-Bench-201 table column per arch, with its simulated cost."""

    def differentiable(self, method: str) -> dict:
        """A differentiable search's result (alphas, seconds)."""


@dataclass(frozen=True)
class Estimator:
    name: str
    family: str
    needs: tuple[str, ...]   # e.g. ("proxy:bpe1",), ("supernet:random",), ("batch",), ("table",)
    fn: Callable[..., list[Estimate]]
    groups: tuple[tuple[str, str], ...] = ()

    def __call__(self, archs: Sequence[str], ctx: Context) -> list[Estimate]:
        out = list(self.fn(list(archs), ctx, **dict(self.groups)))
        if len(out) != len(archs):
            raise ValueError(f"estimator {self.name}: {len(out)} estimates for {len(archs)} archs")
        return [Estimate(float(e[0]), float(e[1]), *(e[2:] or (STATUS_OK,))) for e in out]


class _Entry(NamedTuple):
    pattern: re.Pattern
    label: str          # as people write it: `proxy_<setting>`
    family: str
    needs: tuple[str, ...]
    fn: Callable[..., list[Estimate]]


_ENTRIES: list[_Entry] = []
_BUILTINS_LOADED = False


def _pattern(name: str) -> tuple[re.Pattern, str]:
    """`acc_<setting>_e<k>` -> a regex with groups `setting`, `k`; exact names match themselves."""
    label, regex, pos = name, "", 0
    for m in re.finditer(r"<([a-z_]+)>", name):
        regex += re.escape(name[pos:m.start()])
        group = m.group(1)
        regex += rf"(?P<{group}>[0-9]+)" if group in ("k", "schedule") else rf"(?P<{group}>[a-z][a-z0-9_-]*?)"
        pos = m.end()
    return re.compile(regex + re.escape(name[pos:]) + r"\Z"), label


def register(name: str, *, family: str, needs: Iterable[str] = ()):
    """Decorator: register `fn(archs, ctx, **groups) -> [Estimate]` under `name` (exact, or a pattern such as
    `sotl_<setting>`). A later registration of the same name replaces the earlier one (a plugin may override)."""
    if family not in FAMILIES:
        raise ParamsError(f"estimator {name}: unknown family {family!r} (known: {', '.join(FAMILIES)})")

    def wrap(fn):
        pattern, label = _pattern(name)
        _ENTRIES[:] = [e for e in _ENTRIES if e.label != label]
        # exact names and longer fixed prefixes first, so `sotl_e_<setting>` wins over `sotl_<setting>`
        _ENTRIES.append(_Entry(pattern, label, family, tuple(needs), fn))
        _ENTRIES.sort(key=lambda e: ("<" in e.label, -len(e.label.split("<")[0])))
        return fn

    return wrap


def load_plugins(modules: Iterable[str]) -> None:
    """Import the modules that register more estimators (params.yaml `estimators.plugins`)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ParamsError(f"estimators.plugins: cannot import {module!r} ({e})") from None


def _builtins() -> None:
    """Register the built-in estimators (nasflow.estimators.builtin lists them) on first use, as before any lookup;
    a plugin registered earlier under a built-in's name is replaced, as by any later registration."""
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        from nasflow.estimators.builtin import BUILTINS

        for name, family, needs, fn in BUILTINS:
            register(name, family=family, needs=needs)(fn)


def get(name: str) -> Estimator:
    """The estimator registered under `name`; ParamsError (with the nearest names) when none is."""
    _builtins()
    for e in _ENTRIES:
        m = e.pattern.match(name)
        if m:
            groups = tuple(sorted((k, v) for k, v in m.groupdict().items()))
            needs = tuple(n.format(**m.groupdict()) for n in e.needs)
            return Estimator(name, e.family, needs, e.fn, groups)
    known = [e.label for e in _ENTRIES]
    tail = name.split("_", 1)[1] if "_" in name else ""  # `sotll_bpe1` -> try each pattern's prefix + "bpe1"
    guesses = [k if "<" not in k else k.split("<")[0] + tail for k in known]
    near = difflib.get_close_matches(name, guesses, n=3)
    hint = f"; did you mean {' or '.join(near)}?" if near else f" (known: {', '.join(known)})"
    raise ParamsError(f"unknown estimator {name!r}{hint}")


def available() -> list[str]:
    """Every registered name or pattern."""
    _builtins()
    return [e.label for e in _ENTRIES]


def family_of(name: str) -> str:
    """The family of an estimator, or of a correlation row over other archs (`<name>_all_archs`, `<name>_extra`)
    or an ensemble row (`vote…`)."""
    for suffix in ("_dedup", "_all_archs", "_extra"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    if name.startswith("vote") or name in _DECLARED_ENSEMBLES:
        return "ensemble"
    return get(name).family


ENSEMBLE_KINDS = ("vote", "log_rank")
_DECLARED_ENSEMBLES: set[str] = set()


def ensemble_specs(ensembles: dict) -> dict[str, tuple[str, list[str]]]:
    """{name: (kind, members)} of params.yaml's `estimators.ensembles`: `vote<name>: [members]` (the rank average)
    or `<name>: {kind: vote | log_rank, members: [...]}`. The names become known to `family_of` ("ensemble")."""
    out = {}
    for name, spec in (ensembles or {}).items():
        if isinstance(spec, (list, tuple)):
            kind, members = "vote", list(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("members"), (list, tuple)):
            kind, members = spec.get("kind", "vote"), list(spec["members"])
        else:
            raise ParamsError(f"estimators.ensembles.{name}: expected [estimators] or {{kind, members: [estimators]}}")
        if kind not in ENSEMBLE_KINDS:
            raise ParamsError(f"estimators.ensembles.{name}: unknown kind {kind!r} (known: {', '.join(ENSEMBLE_KINDS)})")
        if len(members) < 2 or len(set(members)) != len(members):
            raise ParamsError(f"estimators.ensembles.{name}: needs two or more different members, got {members}")
        out[name] = (kind, members)
    _DECLARED_ENSEMBLES.update(out)
    return out


def ensemble_scores(kind: str, columns: Sequence[Sequence[float]], *, nan_ranks_lowest: bool = False) -> list[float]:
    """The scores of an ensemble of `kind` (`vote`: `vote_scores`; `log_rank`: `log_rank_scores`)."""
    if kind == "log_rank":
        return log_rank_scores(columns, nan_ranks_lowest=nan_ranks_lowest)
    return vote_scores(columns, nan_ranks_lowest=nan_ranks_lowest)


def log_rank_scores(columns: Sequence[Sequence[float]], *, nan_ranks_lowest: bool = False) -> list[float]:
    """AZ-NAS's aggregation (Lee & Ham, CVPR 2024; cvlab-yonsei/AZ-NAS NB201/tss_general.ipynb): per arch the sum
    over estimators of log(rank / n), rank among the n archs (1 = lowest score, ties averaged). Like
    `vote_scores`, an arch with a NaN member has no score unless `nan_ranks_lowest` (then NaN ranks lowest)."""
    import numpy as np
    from scipy.stats import rankdata

    if not len(columns):
        raise ParamsError("log_rank: no estimators given")
    values = np.array(columns, dtype=np.float64).reshape(len(columns), -1)
    n = values.shape[1]
    if n == 0:
        return []
    missing = np.isnan(values).any(axis=0) & (not nan_ranks_lowest)
    logs = np.array([np.log(rankdata(np.where(np.isnan(v), -np.inf, v)) / n) for v in values])
    return [math.nan if m else float(r) for m, r in zip(missing, logs.sum(axis=0))]


def vote_scores(columns: Sequence[Sequence[float]], *, nan_ranks_lowest: bool = False) -> list[float]:
    """Rank-average ensemble over archs: per arch the mean over estimators of its rank (1 = lowest score, ties
    averaged). An arch without a score (NaN: a diverged training) in any member has none, unless
    `nan_ranks_lowest` (a zero-cost proxy's NaN is a disconnected cell: the worst)."""
    import numpy as np
    from scipy.stats import rankdata

    if not len(columns):
        raise ParamsError("vote: no estimators given")
    values = np.array(columns, dtype=np.float64).reshape(len(columns), -1)
    missing = np.isnan(values).any(axis=0) & (not nan_ranks_lowest)
    ranks = np.array([rankdata(np.where(np.isnan(v), -np.inf, v)) for v in values])
    return [math.nan if m else float(r) for m, r in zip(missing, ranks.mean(axis=0))]


def for_search(name: str, ctx: Context) -> Callable[[str], tuple[float, float]]:
    """`estimator(arch) -> (score, cost)` for nasflow.search's strategies: no score (a diverged training) is the
    worst score, -inf, so a search never picks it."""
    est = get(name)

    def one(arch: str) -> tuple[float, float]:
        e = est([arch], ctx)[0]
        ok = e.status == STATUS_OK and not math.isnan(e.score)
        return (e.score if ok else -math.inf), e.seconds

    return one
