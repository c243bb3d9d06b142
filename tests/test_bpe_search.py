"""The BPE setting search's library (Minimum Importance Pruning): sampling, naming, fANOVA importance, pruning
and the final pick, on synthetic objectives whose variance decomposition is known by hand."""
from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest

from nasflow import bpe_search as bs
from nasflow.analysis.report import pareto_front as report_pareto_front
from nasflow.errors import ParamsError

SPACE = {"epochs": [1, 2, 3, 4], "batch_size": [64, 128, 256], "lr": [0.01, 0.03, 0.1], "channels": [4, 8, 16]}
BPE1 = {"epochs": 10, "batch_size": 128, "lr": 0.03, "weight_decay": 3e-4, "momentum": 0.9, "nesterov": False,
        "grad_clip": 5.0, "augment_order": "crop_then_resize", "channels": 8, "cells_per_stage": 2, "image_size": 16,
        "cutout": 0, "precision": 32}
SETTINGS = {"bpe1": BPE1, "bpe2": {**BPE1, "epochs": 30, "channels": 16, "cells_per_stage": 5}}


def epochs_only(values: dict, rng: np.random.Generator) -> float:
    """A synthetic correlation that only the number of epochs moves (plus noise far below its effect)."""
    return 0.2 * values["epochs"] + 1e-3 * rng.standard_normal()


def grid_rows(space: dict, objective, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for combo in itertools.product(*space.values()):
        values = dict(zip(space, combo))
        rows.append({**values, "kendall_tau": objective(values, rng)})
    return rows


# ------------------------------------------------------------------------------------------------ validate
def test_validate_fills_defaults_and_copies():
    cfg = {"space": {"epochs": [1, 2], "batch_size": [64, 128], "lr": [0.01, 0.1], "channels": [4, 8],
                     "cells_per_stage": [1, 2], "image_size": [16], "cutout": [0], "precision": [32]}}
    out = bs.validate(cfg, space_name="nb201", settings=SETTINGS)
    assert out == {**cfg, "n_settings": 6, "n_archs": 8, "rounds": 2, "objective": "kendall_tau",
                   "budget_seconds_per_arch": None, "base": "bpe1"}
    out["space"]["epochs"].append(3)
    assert cfg["space"]["epochs"] == [1, 2]  # a copy, not the caller's lists
    darts = bs.validate({"space": {"layers": [6, 8]}, "objective": "spearman_rho", "budget_seconds_per_arch": 30,
                         "base": "bpe2"}, space_name="darts", settings=SETTINGS)
    assert (darts["objective"], darts["budget_seconds_per_arch"], darts["base"]) == ("spearman_rho", 30, "bpe2")


@pytest.mark.parametrize("cfg, space_name, message", [
    ({"space": {"epochs": [1]}, "x": 1}, "nb201", "bpe_search: unknown key 'x'"),
    ({"space": {"cells_per_stage": [1, 2]}}, "darts", "bpe_search.space.cells_per_stage: not a hyperparameter of the darts space"),
    ({"space": {"layers": [6]}}, "nb201", "bpe_search.space.layers: not a hyperparameter of the nb201 space"),
    ({"space": {"layers": [6]}}, "mobilenet", "bpe_search.space.layers: not a hyperparameter of the mobilenet space"),
    ({"space": {"epochs": [1]}, "objective": "pearson"}, "nb201", "bpe_search.objective: 'pearson' is not one of"),
    ({"space": {"epochs": [1]}, "base": "bpe9"}, "nb201", "bpe_search.base: 'bpe9' is not a setting"),
    ({"space": {"momentum": [0.9]}}, "nb201", "bpe_search.space: unknown hyperparameter 'momentum'"),
    ({"space": {"epochs": []}}, "nb201", "bpe_search.space.epochs: must be a non-empty list"),
    ({"space": {"epochs": 2}}, "nb201", "bpe_search.space.epochs: must be a non-empty list"),
    ({"space": {"epochs": [0]}}, "nb201", "bpe_search.space.epochs: 0 must be an integer > 0"),
    ({"space": {"batch_size": [64.5]}}, "nb201", "bpe_search.space.batch_size: 64.5 must be an integer > 0"),
    ({"space": {"lr": [-0.1]}}, "nb201", "bpe_search.space.lr: -0.1 must be a number > 0"),
    ({"space": {"precision": [8]}}, "nb201", "bpe_search.space.precision: 8 must be 16 or 32"),
    ({"space": {"cutout": [-1]}}, "nb201", "bpe_search.space.cutout: -1 must be an integer >= 0"),
    ({"space": {"epochs": [1, 1]}}, "nb201", "bpe_search.space.epochs: a value is listed twice"),
    ({"space": {"epochs": [1]}, "n_settings": 1}, "nb201", "bpe_search.n_settings: must be an integer >= 2"),
    ({"space": {"epochs": [1]}, "n_archs": 2}, "nb201", "bpe_search.n_archs: must be an integer >= 3"),
    ({"space": {"epochs": [1]}, "rounds": 0}, "nb201", "bpe_search.rounds: must be an integer >= 1"),
    ({"space": {"epochs": [1]}, "budget_seconds_per_arch": 0}, "nb201", "bpe_search.budget_seconds_per_arch"),
    ({"n_settings": 4}, "nb201", "bpe_search.space: required"),
])
def test_validate_errors_are_one_line(cfg, space_name, message):
    with pytest.raises(ParamsError) as err:
        bs.validate(cfg, space_name=space_name, settings=SETTINGS)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


# ------------------------------------------------------------------------------------------------- costs
def test_cheapest_values_follow_the_cost_order():
    assert bs.cheapest_value("epochs", [10, 2, 5]) == 2
    assert bs.cheapest_value("batch_size", [64, 256, 128]) == 256     # larger batch: fewer steps
    assert bs.cheapest_value("precision", [32, 16]) == 16
    assert bs.cheapest_value("layers", [16, 6]) == 6
    assert bs.cheapest_value("lr", [0.1, 0.01]) == 0.1                # neutral, no rows: the first listed
    assert bs.cheapest_corner(SPACE) == {"epochs": 1, "batch_size": 256, "lr": 0.01, "channels": 4}
    with pytest.raises(ParamsError, match="unknown hyperparameter 'momentum'"):
        bs.cheapest_value("momentum", [0.9])


def test_neutral_hp_takes_the_value_with_the_best_mean_objective():
    rows = [{"lr": 0.1, "kendall_tau": 0.5}, {"lr": 0.1, "kendall_tau": 0.7},      # mean 0.6
            {"lr": 0.01, "kendall_tau": 0.65}, {"lr": 0.01, "kendall_tau": math.nan},  # mean 0.65 (NaN left out)
            {"lr": 0.3, "kendall_tau": 0.99}]                                         # not a listed value
    assert bs.cheapest_value("lr", [0.1, 0.01], rows, "kendall_tau") == 0.01
    tie = [{"cutout": 0, "kendall_tau": 0.4}, {"cutout": 16, "kendall_tau": 0.4}]
    assert bs.cheapest_value("cutout", [16, 0], tie, "kendall_tau") == 16           # tie: the earlier listed
    assert bs.cheapest_value("lr", [0.1, 0.01], [{"lr": 0.1, "kendall_tau": None}], "kendall_tau") == 0.1


# ---------------------------------------------------------------------------------------------- sampling
def test_sample_settings_corner_first_distinct_and_deterministic():
    got = bs.sample_settings(SPACE, 10, seed=3)
    assert got[0] == bs.cheapest_corner(SPACE)
    assert len(got) == 10 and len({tuple(v.values()) for v in got}) == 10
    assert all(list(v) == list(SPACE) and all(v[hp] in SPACE[hp] for hp in SPACE) for v in got)
    assert bs.sample_settings(SPACE, 10, seed=3) == got
    assert bs.sample_settings(SPACE, 10, seed=4) != got


def test_sample_settings_respects_exclude_and_the_combination_count():
    small = {"epochs": [1, 2], "batch_size": [64, 128], "lr": [0.1]}
    every = bs.sample_settings(small, 10, seed=0)
    assert len(every) == 4 and len({tuple(v.values()) for v in every}) == 4
    earlier = bs.sample_settings(small, 2, seed=0)
    later = bs.sample_settings(small, 10, seed=1, exclude=earlier)
    assert len(later) == 2 and not any(v in earlier for v in later)
    assert later[0] != bs.cheapest_corner(small)       # the corner was sampled before
    assert bs.sample_settings(small, 10, seed=2, exclude=every) == []
    # an exclude entry from a bigger space (extra keys) still matches on the space's own hps
    assert {"epochs": 1, "batch_size": 128, "lr": 0.1} not in bs.sample_settings(
        small, 10, seed=0, exclude=[{"epochs": 1, "batch_size": 128, "lr": 0.1, "channels": 8}])


def test_sample_settings_draws_uniformly():
    small = {"epochs": [1, 2, 3], "batch_size": [64, 128]}   # corner (1, 128) + 5 others, one drawn per seed
    counts: dict[tuple, int] = {}
    for seed in range(1000):
        _, drawn = bs.sample_settings(small, 2, seed=seed)
        counts[tuple(drawn.values())] = counts.get(tuple(drawn.values()), 0) + 1
    assert len(counts) == 5 and (1, 128) not in counts
    assert all(150 <= c <= 250 for c in counts.values()), counts   # 200 each; binomial sd ~12.6


def test_sample_settings_large_space_by_rejection():
    big = {"epochs": list(range(1, 13)), "batch_size": [32, 64, 128, 256, 512], "lr": [0.01, 0.02, 0.05, 0.1, 0.2],
           "channels": [4, 8, 16, 32, 64], "cells_per_stage": [1, 2, 3, 5], "image_size": [8, 16, 32],
           "cutout": [0, 8, 16], "precision": [16, 32]}
    assert math.prod(map(len, big.values())) > 100_000
    got = bs.sample_settings(big, 20, seed=5, exclude=[{"epochs": 2, **{k: v[0] for k, v in big.items() if k != "epochs"}}])
    assert got[0] == bs.cheapest_corner(big) == {"epochs": 1, "batch_size": 512, "lr": 0.01, "channels": 4,
                                                 "cells_per_stage": 1, "image_size": 8, "cutout": 0, "precision": 16}
    assert len({tuple(v.values()) for v in got}) == 20
    assert got == bs.sample_settings(big, 20, seed=5, exclude=[{"epochs": 2, **{k: v[0] for k, v in big.items()
                                                                             if k != "epochs"}}])


def test_full_setting_and_names():
    values = {"epochs": 2, "batch_size": 128, "lr": 0.01, "channels": 8, "cells_per_stage": 2, "image_size": 16,
              "cutout": 0, "precision": 32}
    assert bs.setting_name(values) == "e2-b128-lr0.01-c8-n2-s16-co0-p32"
    assert bs.setting_name(dict(reversed(values.items()))) == "e2-b128-lr0.01-c8-n2-s16-co0-p32"  # fixed order
    assert bs.setting_name({"layers": 6, "lr": 1e-5}) == "lr0.00001-l6"
    full = bs.full_setting(values, BPE1)
    assert full == {**BPE1, "epochs": 2, "lr": 0.01} and BPE1["epochs"] == 10
    names = [bs.setting_name(dict(zip(SPACE, c))) for c in itertools.product(*SPACE.values())]
    assert len(set(names)) == len(names) and all(re.fullmatch(r"[A-Za-z0-9.-]+", n) for n in names)


# -------------------------------------------------------------------------------------------- importance
def test_importance_matches_a_hand_computed_variance_decomposition():
    # additive, no noise: epochs effect variance 2.5, batch_size 2/3, lr and channels none -> 0.789 / 0.211 / 0 / 0
    eff_epochs, eff_batch = {1: -2, 2: -1, 3: 1, 4: 2}, {64: -1, 128: 0, 256: 1}
    rows = grid_rows(SPACE, lambda v, rng: eff_epochs[v["epochs"]] + eff_batch[v["batch_size"]])
    imp = bs.importance(rows, SPACE, "kendall_tau")
    assert list(imp) == ["epochs", "batch_size", "lr", "channels"]
    assert imp["epochs"][0] == pytest.approx(2.5 / (2.5 + 2 / 3), abs=0.05)
    assert imp["batch_size"][0] == pytest.approx((2 / 3) / (2.5 + 2 / 3), abs=0.05)
    assert imp["lr"][0] < 0.01 and imp["channels"][0] < 0.01
    assert sum(m for m, _ in imp.values()) == pytest.approx(1.0)


def test_importance_ranks_the_only_relevant_hp_first_and_reports_a_spread():
    rows = grid_rows(SPACE, epochs_only)
    imp = bs.importance(rows, SPACE, "kendall_tau")
    assert max(imp, key=lambda hp: imp[hp][0]) == "epochs" and imp["epochs"][0] > 0.95
    assert all(math.isfinite(s) and s >= 0 for _, s in imp.values())
    print("importance (mean, std over 5 forest seeds):", imp)   # std > 0 expected (bootstrap), not asserted
    # rows without an objective change nothing
    broken = [{**rows[0], "kendall_tau": math.nan}, {**rows[1], "kendall_tau": None}]
    assert bs.importance(rows + broken, SPACE, "kendall_tau") == imp


def test_importance_edge_cases():
    assert bs.importance([], {"epochs": [1], "lr": [0.1]}, "kendall_tau") == {}          # nothing varies
    assert bs.importance([], {"epochs": [1, 2], "lr": [0.1]}, "kendall_tau") == {"epochs": (1.0, 0.0)}
    one = bs.importance([{"epochs": 1, "lr": 0.1, "kendall_tau": 0.3}], {"epochs": [1, 2], "lr": [0.1, 0.3]},
                        "kendall_tau")
    assert set(one) == {"epochs", "lr"} and all(math.isnan(m) and math.isnan(s) for m, s in one.values())


# ------------------------------------------------------------------------------------------------- prune
def test_prune_fixes_the_least_important_hp_at_its_cheapest_value():
    space = {"epochs": [1, 2], "batch_size": [64, 256], "channels": [4, 8]}
    nxt, fixed = bs.prune(space, {"epochs": (0.8, 0.1), "batch_size": (0.05, 0.0), "channels": (0.15, 0.0)}, [],
                          "kendall_tau")
    assert fixed == {"batch_size": 256} and nxt == {**space, "batch_size": [256]}
    assert space["batch_size"] == [64, 256]                      # the caller's space is left alone
    # ties go to the earlier hp in SEARCHABLE order; [mean, std] lists (read back from JSON) work too
    _, fixed = bs.prune(space, {"channels": [0.2, 0.0], "batch_size": [0.2, 0.0], "epochs": [0.6, 0.0]}, [],
                        "kendall_tau")
    assert fixed == {"batch_size": 256}
    _, fixed = bs.prune(space, {"epochs": (0.1, 0.0), "batch_size": (0.1, 0.0), "channels": (0.8, 0.0)}, [],
                        "kendall_tau")
    assert fixed == {"epochs": 1}
    for imp in ({}, {"epochs": (math.nan, math.nan), "batch_size": (math.nan, math.nan)}):
        nxt, fixed = bs.prune(space, imp, [], "kendall_tau")   # importance not measured: nothing fixed
        assert fixed == {} and nxt == space and nxt is not space
    flat = {"epochs": [1], "batch_size": [256]}
    assert bs.prune(flat, {}, [], "kendall_tau") == (flat, {})


def test_mip_prunes_the_irrelevant_hps_before_epochs():
    """The search loop the stages run: sample a round (excluding earlier settings), fit on every consistent
    row, prune; only epochs moves the objective, so it is the one left varying."""
    rng = np.random.default_rng(7)
    space, history, pruned = {hp: list(v) for hp, v in SPACE.items()}, [], []
    for r in range(3):
        earlier = [{hp: row[hp] for hp in SPACE} for row in history]
        for values in bs.sample_settings(space, 12, seed=100 + r, exclude=earlier):
            history.append({**values, "kendall_tau": epochs_only(values, rng)})
        fit = [row for row in history if all(row[hp] in space[hp] for hp in space)]
        imp = bs.importance(fit, space, "kendall_tau", seeds=range(3))
        assert max(imp, key=lambda hp: imp[hp][0]) == "epochs"
        space, fixed = bs.prune(space, imp, fit, "kendall_tau")
        (hp, value), = fixed.items()
        pruned.append(hp)
        if hp == "lr":   # cost-neutral: the listed value with the best mean objective over the fitted rows
            means = [np.mean([row["kendall_tau"] for row in fit if row["lr"] == v] or [-np.inf]) for v in SPACE["lr"]]
            assert value == SPACE["lr"][int(np.argmax(means))]
        else:
            assert value == {"batch_size": 256, "channels": 4}[hp]
        assert all(v[hp] == value for v in bs.sample_settings(space, 50, seed=r))   # never varies again
    assert sorted(pruned) == ["batch_size", "channels", "lr"]
    assert space["epochs"] == [1, 2, 3, 4] and bs.importance(history, space, "kendall_tau") == {"epochs": (1.0, 0.0)}


# ---------------------------------------------------------------------------------------------- the pick
ROWS = [{"setting": "a", "kendall_tau": 0.5, "seconds_per_arch": 10.0},
        {"setting": "b", "kendall_tau": 0.6, "seconds_per_arch": 20.0},
        {"setting": "c", "kendall_tau": 0.55, "seconds_per_arch": 25.0},      # dominated by b
        {"setting": "d", "kendall_tau": 0.7, "seconds_per_arch": 40.0},
        {"setting": "e", "kendall_tau": math.nan, "seconds_per_arch": 1.0},   # diverged: never on the front
        {"setting": "f", "kendall_tau": 0.6, "seconds_per_arch": 20.0},       # equal to b: kept too
        {"setting": "g", "kendall_tau": 0.4, "seconds_per_arch": 10.0},       # same cost as a, worse
        {"setting": "h", "kendall_tau": 0.9, "seconds_per_arch": None}]       # cost unknown


def test_pareto_front_hand_made_and_against_the_report():
    assert bs.pareto_front(ROWS, "kendall_tau") == [0, 1, 5, 3]
    rng = np.random.default_rng(1)
    rows = [{"spearman_rho": float(y), "cost": float(c)} for y, c in zip(rng.random(40), rng.random(40) * 100 + 1)]
    assert bs.pareto_front(rows, "spearman_rho", cost="cost") == report_pareto_front(
        [r["cost"] for r in rows], [r["spearman_rho"] for r in rows])


def test_importance_of_an_objective_that_does_not_vary_is_equal_shares():
    space = {"epochs": [1, 2], "batch_size": [64, 128]}
    rows = [{"epochs": e, "batch_size": b, "kendall_tau": 0.5} for e in (1, 2) for b in (64, 128)]
    assert bs.importance(rows, space, "kendall_tau") == {"epochs": (0.5, 0.0), "batch_size": (0.5, 0.0)}


def test_choose_best_within_budget():
    assert bs.choose(ROWS, "kendall_tau")["setting"] == "h"            # no budget: the best objective
    assert bs.choose(ROWS, "kendall_tau", 30)["setting"] == "b"        # b and f tie: the earlier
    # a tie on the objective goes to the cheaper by the cost order of its values (fewer epochs first, then a
    # larger batch), never by the measured seconds, which differ from run to run
    tied = [{"setting": "x", "kendall_tau": 0.6, "seconds_per_arch": 5.0, "epochs": 2, "batch_size": 64},
            {"setting": "y", "kendall_tau": 0.6, "seconds_per_arch": 9.0, "epochs": 1, "batch_size": 64},
            {"setting": "z", "kendall_tau": 0.6, "seconds_per_arch": 8.0, "epochs": 1, "batch_size": 128}]
    assert bs.choose(tied, "kendall_tau")["setting"] == "z"
    assert bs.choose(ROWS, "kendall_tau", 5) is None                   # only the diverged one fits
    assert bs.choose([], "kendall_tau") is None
