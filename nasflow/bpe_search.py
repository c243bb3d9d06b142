"""The BPE paper's search for the training budget itself: Minimum Importance Pruning (MIP).

"Rethinking Performance Estimation in NAS" (Zheng et al., CVPR 2020, section 3) searches the training
hyperparameters of a budgeted proxy (epochs, batch size, lr, layers, channels, image size, precision, cutout):
start with the cheapest settings, fit a random forest from setting to the proxy's correlation with full training,
estimate each hyperparameter's importance by functional ANOVA over the forest, fix the least important one at
its cheapest value, and repeat on the smaller space. The paper's own repository has no code for it.

Pure functions over JSON-able values; the DAG stages (stages/bpe_search.py) do the training and the files.

- A *space* is {hyperparameter: [values]}; a hyperparameter with one value is fixed (pruned or never varied).
- A *row* is one trained setting: its hyperparameter values plus the objective (`kendall_tau` or
  `spearman_rho`, NaN/None when it could not be measured) and its cost (`seconds_per_arch`).
"""
from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from numbers import Real

import numpy as np

from nasflow.errors import ParamsError

SEARCHABLE = ("epochs", "batch_size", "lr", "channels", "cells_per_stage", "layers", "image_size", "cutout",
              "precision")

# Which value of a hyperparameter costs least to train: "ascending" = the smallest, "descending" = the largest
# (a larger batch takes fewer steps per epoch), "neutral" = the value does not change the cost.
COST_ORDER: dict[str, str] = {
    "epochs": "ascending",
    "batch_size": "descending",
    "lr": "neutral",
    "channels": "ascending",
    "cells_per_stage": "ascending",
    "layers": "ascending",
    "image_size": "ascending",
    "cutout": "neutral",
    "precision": "ascending",  # fp16 is cheaper than fp32
}

OBJECTIVES = ("kendall_tau", "spearman_rho")
DEFAULTS = {"n_settings": 6, "n_archs": 8, "rounds": 2, "objective": "kendall_tau",
            "budget_seconds_per_arch": None, "base": "bpe1"}
KEYS = ("space", *DEFAULTS)

# The depth hyperparameter each space's networks take (the mobilenet space's depth is fixed: neither).
_DEPTH_KEY = {"nb201": "cells_per_stage", "darts": "layers"}
_SIZES = ("epochs", "batch_size", "channels", "cells_per_stage", "layers", "image_size")
# Short prefixes of setting_name, in SEARCHABLE order.
_NAME_PREFIX = {"epochs": "e", "batch_size": "b", "lr": "lr", "channels": "c", "cells_per_stage": "n",
                "layers": "l", "image_size": "s", "cutout": "co", "precision": "p"}
# Up to this many combinations, sample_settings enumerates them; above, it draws and rejects repeats.
_ENUMERATE_LIMIT = 100_000


# ------------------------------------------------------------------------------------------------ checks
def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _value_problem(hp: str, v) -> str | None:
    """Why `v` is not a valid value of `hp`, or None."""
    if hp == "image_size":  # as the settings schema: the network's reductions need at least 4 px
        return None if _is_int(v) and v >= 4 else "must be an integer >= 4"
    if hp in _SIZES:
        return None if _is_int(v) and v > 0 else "must be an integer > 0"
    if hp == "lr":
        return None if _is_number(v) and v > 0 else "must be a number > 0"
    if hp == "precision":
        return None if _is_int(v) and v in (16, 32) else "must be 16 or 32"
    if hp == "cutout":
        return None if _is_int(v) and v >= 0 else "must be an integer >= 0"
    return "is not a searchable hyperparameter"


def _check_space(space, *, where: str = "bpe_search.space", space_name: str | None = None) -> dict[str, list]:
    """A copy of `space` ({hp: non-empty list of distinct valid values}), keys in SEARCHABLE order."""
    if not isinstance(space, Mapping) or not space:
        raise ParamsError(f"{where}: must be a non-empty mapping of hyperparameter -> list of values")
    for hp in space:
        if hp not in SEARCHABLE:
            raise ParamsError(f"{where}: unknown hyperparameter {hp!r} (searchable: {', '.join(SEARCHABLE)})")
        depth = _DEPTH_KEY.get(space_name)
        if space_name is not None and hp in _DEPTH_KEY.values() and hp != depth:
            uses = f"it uses {depth}" if depth else "its depth is fixed"
            raise ParamsError(f"{where}.{hp}: not a hyperparameter of the {space_name} space ({uses})")
        values = space[hp]
        if not isinstance(values, (list, tuple)) or not values:
            raise ParamsError(f"{where}.{hp}: must be a non-empty list of values, got {values!r}")
        for v in values:
            problem = _value_problem(hp, v)
            if problem:
                raise ParamsError(f"{where}.{hp}: {v!r} {problem}")
        if len(set(values)) != len(values):
            raise ParamsError(f"{where}.{hp}: a value is listed twice in {list(values)!r}")
    return {hp: list(space[hp]) for hp in SEARCHABLE if hp in space}


def _int_at_least(cfg: dict, key: str, low: int) -> int:
    v = cfg[key]
    if not _is_int(v) or v < low:
        raise ParamsError(f"bpe_search.{key}: must be an integer >= {low}, got {v!r}")
    return int(v)


def validate(cfg: dict, *, space_name: str, settings: dict) -> dict:
    """A checked, normalised copy of params.yaml's `bpe_search` block (defaults filled in); ParamsError with a
    one-line message naming the first problem."""
    if not isinstance(cfg, Mapping):
        raise ParamsError(f"bpe_search: must be a mapping (or null = off), got {cfg!r}")
    for key in cfg:
        if key not in KEYS:
            raise ParamsError(f"bpe_search: unknown key {key!r} (known: {', '.join(KEYS)})")
    if "space" not in cfg:
        raise ParamsError("bpe_search.space: required (hyperparameter -> list of values)")
    out = {**DEFAULTS, **cfg}
    out["space"] = _check_space(cfg["space"], space_name=space_name)
    out["n_settings"] = _int_at_least(out, "n_settings", 2)
    out["n_archs"] = _int_at_least(out, "n_archs", 3)
    out["rounds"] = _int_at_least(out, "rounds", 1)
    if out["objective"] not in OBJECTIVES:
        raise ParamsError(f"bpe_search.objective: {out['objective']!r} is not one of {', '.join(OBJECTIVES)}")
    budget = out["budget_seconds_per_arch"]
    if budget is not None and not (_is_number(budget) and budget > 0):
        raise ParamsError(f"bpe_search.budget_seconds_per_arch: must be a number > 0 or null, got {budget!r}")
    base = out["base"]
    if not isinstance(base, str) or base not in settings:
        raise ParamsError(f"bpe_search.base: {base!r} is not a setting (defined: {', '.join(settings)})")
    return out


# ------------------------------------------------------------------------------------------------- costs
def _finite(v) -> bool:
    return _is_number(v)


def cheapest_value(hp: str, values: Sequence, rows: Iterable[Mapping] | None = None, objective: str | None = None):
    """The value of `hp` among `values` that costs least to train (COST_ORDER). For a cost-neutral hp (lr,
    cutout), the value whose rows have the best mean objective (ties: the earlier listed), or the first listed
    value when `rows` holds no finite objective for any of them."""
    if hp not in COST_ORDER:
        raise ParamsError(f"bpe_search: unknown hyperparameter {hp!r} (searchable: {', '.join(SEARCHABLE)})")
    values = list(values)
    if not values:
        raise ParamsError(f"bpe_search: no values to choose the cheapest {hp} from")
    order = COST_ORDER[hp]
    if order == "ascending":
        return min(values)
    if order == "descending":
        return max(values)
    if rows is None or objective is None:
        return values[0]
    scores: dict[int, list[float]] = {}
    for row in rows:
        v, y = row.get(hp), row.get(objective)
        if v in values and _finite(y):
            scores.setdefault(values.index(v), []).append(float(y))
    if not scores:
        return values[0]
    best = max(sorted(scores), key=lambda i: np.mean(scores[i]))  # max keeps the first of equal means
    return values[best]


def cheapest_corner(space: Mapping[str, Sequence]) -> dict:
    """Every hyperparameter of `space` at its cheapest value (a cost-neutral one at its first listed value)."""
    return {hp: cheapest_value(hp, space[hp]) for hp in SEARCHABLE if hp in space}


# ---------------------------------------------------------------------------------------------- sampling
def _key(values: Mapping, hps: Sequence[str]) -> tuple:
    missing = object()  # a dict without one of the hps matches nothing
    return tuple(values.get(hp, missing) for hp in hps)


def sample_settings(space: Mapping[str, Sequence], n: int, seed: int,
                    exclude: Iterable[Mapping] = ()) -> list[dict]:
    """Up to `n` distinct settings (dicts {hp: value}, SEARCHABLE order) of `space`: its cheapest corner first
    (unless `exclude` holds it: sampled in an earlier round), then combinations drawn uniformly without
    replacement, none of them in `exclude`; fewer than `n` when fewer combinations remain. Same seed, same list."""
    space = _check_space(space, where="sample_settings: space")
    if not _is_int(n) or n < 0:
        raise ParamsError(f"sample_settings: n must be an integer >= 0, got {n!r}")
    hps = list(space)
    taken = {_key(e, hps) for e in exclude}
    picked: list[tuple] = []
    corner = _key(cheapest_corner(space), hps)
    if n > 0 and corner not in taken:
        picked.append(corner)
        taken.add(corner)
    total = math.prod(len(v) for v in space.values())
    rng = np.random.default_rng(seed)
    if total <= _ENUMERATE_LIMIT:
        remaining = [c for c in itertools.product(*space.values()) if c not in taken]
        order = rng.permutation(len(remaining))
        picked += [remaining[i] for i in order[:max(n - len(picked), 0)]]
    else:  # too many to list: draw each hp uniformly, skip repeats (the remaining count dwarfs n)
        left = total - sum(1 for t in taken if all(v in space[hp] for hp, v in zip(hps, t)))
        while len(picked) < n and left > 0:
            combo = tuple(space[hp][int(rng.integers(len(space[hp])))] for hp in hps)
            if combo not in taken:
                picked.append(combo)
                taken.add(combo)
                left -= 1
    return [dict(zip(hps, combo)) for combo in picked]


def full_setting(values: Mapping, base: Mapping) -> dict:
    """The complete setting to train: `base` (a named setting) with the sampled `values` put in."""
    return {**base, **values}


def _format_value(v) -> str:
    if _is_int(v):
        return str(int(v))
    # positional and shortest-round-trip: no exponent (whose '-' would read as a separator), distinct per value
    return np.format_float_positional(float(v), trim="-")


def setting_name(values: Mapping) -> str:
    """A stable, readable, filename-safe name of sampled `values`, e.g. "e2-b128-lr0.01-c8-n2-s16-co0-p32"
    (hyperparameters in SEARCHABLE order: e epochs, b batch_size, lr, c channels, n cells_per_stage, l layers,
    s image_size, co cutout, p precision)."""
    unknown = [hp for hp in values if hp not in SEARCHABLE]
    if unknown:
        raise ParamsError(f"setting_name: unknown hyperparameter {unknown[0]!r} (searchable: {', '.join(SEARCHABLE)})")
    return "-".join(f"{_NAME_PREFIX[hp]}{_format_value(values[hp])}" for hp in SEARCHABLE if hp in values)


# -------------------------------------------------------------------------------------------- importance
def _varying(space: Mapping[str, Sequence]) -> list[str]:
    return [hp for hp in SEARCHABLE if hp in space and len(space[hp]) > 1]


@contextlib.contextmanager
def _quiet_optuna():
    """Optuna logs every study and trial it creates; keep the caller's verbosity once done."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield optuna
    finally:
        optuna.logging.set_verbosity(before)


def _usable_rows(rows: Iterable[Mapping], space: Mapping[str, Sequence], hps: Sequence[str],
                 objective: str) -> list[Mapping]:
    """Rows with a finite objective and, for every hp in `hps`, a value of the space."""
    return [row for row in rows if _finite(row.get(objective)) and all(row.get(hp) in space[hp] for hp in hps)]


def importance(rows: Iterable[Mapping], space: Mapping[str, Sequence], objective: str,
               seeds: Iterable[int] = range(5)) -> dict[str, tuple[float, float]]:
    """{hp: (mean, std)} functional-ANOVA importance of each hyperparameter that varies in `space` (more than one
    value) for `objective` over `rows`: Optuna's fANOVA over a random forest (64 trees), once per forest seed;
    each seed's importances are normalised to sum 1 (Optuna's convention), then the mean and the (population)
    std over the seeds. Every hp is categorical over its values in `space`.

    Rows with a NaN/None objective, or with a value outside `space`, are left out. Edge cases: nothing varies ->
    {}; a single varying hp -> {hp: (1.0, 0.0)} (it explains whatever varies); fewer than 2 usable rows -> every
    varying hp (nan, nan) (no forest can be fitted: not measured); an objective that does not vary -> equal
    shares (Optuna's normalisation of all-zero importances)."""
    hps = _varying(space)
    if not hps:
        return {}
    if len(hps) == 1:
        return {hps[0]: (1.0, 0.0)}
    usable = _usable_rows(rows, space, hps, objective)
    if len(usable) < 2:
        return {hp: (math.nan, math.nan) for hp in hps}
    if len({float(row[objective]) for row in usable}) == 1:  # nothing to explain (Optuna's fANOVA raises here)
        return {hp: (1.0 / len(hps), 0.0) for hp in hps}
    with _quiet_optuna() as optuna:
        distributions = {hp: optuna.distributions.CategoricalDistribution(tuple(space[hp])) for hp in hps}
        study = optuna.create_study(direction="maximize")
        study.add_trials([optuna.trial.create_trial(params={hp: row[hp] for hp in hps}, distributions=distributions,
                                                    value=float(row[objective])) for row in usable])
        per_seed = []
        for s in seeds:
            imp = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=s), params=hps)
            per_seed.append([imp[hp] for hp in hps])
    if not per_seed:
        raise ParamsError("importance: no forest seeds given")
    table = np.asarray(per_seed, dtype=float)
    return {hp: (float(table[:, j].mean()), float(table[:, j].std())) for j, hp in enumerate(hps)}


def _mean_of(value) -> float:
    """The mean of an importance entry: (mean, std) as importance() returns it, [mean, std] read back from JSON,
    or a bare number."""
    mean = value[0] if isinstance(value, (list, tuple)) else value
    return float(mean) if _finite(mean) else math.nan


def prune(space: Mapping[str, Sequence], imp: Mapping[str, Sequence[float] | float], rows: Iterable[Mapping],
          objective: str) -> tuple[dict, dict]:
    """MIP's step: (the next round's space, {hp: value} fixed now). The least important varying hp (lowest mean
    importance; ties: the earlier in SEARCHABLE) stays in the space with one value, its cheapest
    (`cheapest_value`, judged on `rows` for a cost-neutral hp). Hps whose importance is missing or NaN are not
    candidates; when none is (nothing varies, or importance() could not measure), nothing is fixed and the space
    comes back as a copy."""
    rows = list(rows)
    nxt = {hp: list(vals) for hp, vals in space.items()}
    candidates = [(_mean_of(imp[hp]), SEARCHABLE.index(hp), hp) for hp in _varying(space) if hp in imp]
    candidates = [c for c in candidates if not math.isnan(c[0])]
    if not candidates:
        return nxt, {}
    _, _, hp = min(candidates)
    value = cheapest_value(hp, space[hp], rows, objective)
    nxt[hp] = [value]
    return nxt, {hp: value}


# ---------------------------------------------------------------------------------------------- the pick
def _cost(row: Mapping, cost: str) -> float:
    c = row.get(cost)
    return float(c) if _finite(c) else math.inf


def pareto_front(rows: Sequence[Mapping], objective: str, cost: str = "seconds_per_arch") -> list[int]:
    """Indices of the rows no other row dominates (an objective at least as high at a cost at most as low, one of
    them strictly), by increasing cost (then decreasing objective, then index). Rows with a non-finite objective
    or cost are left out; rows equal in both are all kept."""
    keep = [i for i, row in enumerate(rows) if _finite(row.get(objective)) and _finite(row.get(cost))]
    points = {i: (float(rows[i][objective]), float(rows[i][cost])) for i in keep}

    def dominated(i: int) -> bool:
        y, c = points[i]
        return any(yj >= y and cj <= c and (yj > y or cj < c) for j, (yj, cj) in points.items() if j != i)

    front = [i for i in keep if not dominated(i)]
    return sorted(front, key=lambda i: (points[i][1], -points[i][0], i))


def choose(rows: Sequence[Mapping], objective: str, budget_seconds_per_arch: float | None = None,
           cost: str = "seconds_per_arch") -> dict | None:
    """The row with the best finite `objective` among those whose cost is within the budget (None: no limit;
    a row without a finite cost is then outside any budget); ties: the cheaper by COST_ORDER (not by measured
    seconds, which vary from run to run), then the earlier. None when no row qualifies."""
    ok = [(i, row) for i, row in enumerate(rows) if _finite(row.get(objective))
          and (budget_seconds_per_arch is None or _cost(row, cost) <= budget_seconds_per_arch)]
    if not ok:
        return None
    _, best = min(ok, key=lambda ir: (-float(ir[1][objective]), cost_rank(ir[1]), ir[0]))
    return best


def cost_rank(values: Mapping) -> tuple:
    """A deterministic 'cheaper first' key of a setting's values: SEARCHABLE order, each hyperparameter by its
    COST_ORDER (cost-neutral ones do not count)."""
    key = []
    for hp in SEARCHABLE:
        v = values.get(hp)
        if v is None or COST_ORDER[hp] == "neutral":
            continue
        key.append(float(v) if COST_ORDER[hp] == "ascending" else -float(v))
    return tuple(key)
