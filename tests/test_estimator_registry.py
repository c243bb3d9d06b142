"""The estimator registry: names, families and errors; a plugin estimator (a module this test writes, outside
nasflow and stages/) runs through the real `correlate` and `search` stages beside the learning-curve and
zero-cost estimators, each correlation checked against scipy on numbers computed here independently."""
import json
import math
import sys

import numpy as np
import pytest
import yaml
from scipy import stats

from nasflow.errors import ParamsError
from nasflow.estimators import registry
from nasflow.spaces import nb201
from stages.common import validate_params
from tests.test_engines import TINY, make_study, read_csv, run

PLUGIN = '''"""A toy estimator registered from outside nasflow: the number of conv ops in the cell."""
from nasflow.estimators.registry import Estimate, register
from nasflow.spaces import nb201


@register("n_convs", family="zero-cost")
def n_convs(archs, ctx):
    return [Estimate(float(sum(op.startswith("nor_conv") for op in nb201.parse(a))), 0.001) for a in archs]
'''


def n_convs(arch):
    return float(sum(op.startswith("nor_conv") for op in nb201.parse(arch)))


def test_names_resolve_to_families_and_groups():
    cases = {"proxy_bpe1": ("budgeted training", ("proxy:bpe1",)), "sotl_bpe2": ("learning curve", ("proxy:bpe2",)),
             "sotl_e_bpe1": ("learning curve", ("proxy:bpe1",)), "acc_bpe1_e3": ("learning curve", ("proxy:bpe1",)),
             "lce_full": ("learning curve", ("proxy:full",)), "synflow": ("zero-cost", ("batch",)),
             "angle_random": ("supernet", ("supernet:random",)), "supernet_acc": ("supernet", ("supernet",)),
             "table": ("table", ("table",)), "alpha_darts-v1": ("differentiable", ("differentiable:darts-v1",))}
    for name, (family, needs) in cases.items():
        est = registry.get(name)
        assert (est.family, est.needs) == (family, needs), name
    assert dict(registry.get("sotl_e_bpe1").groups) == {"setting": "bpe1"}  # not sotl_<setting> with "e_bpe1"
    assert dict(registry.get("acc_bpe1_e3").groups) == {"setting": "bpe1", "k": "3"}
    assert registry.family_of("synflow_all_archs") == registry.family_of("synflow_extra") == "zero-cost"
    assert registry.family_of("vote") == "ensemble"
    with pytest.raises(ParamsError, match="did you mean synflow"):
        registry.get("synflw")
    with pytest.raises(ParamsError, match="unknown family"):
        registry.register("x", family="magic")


def test_vote_is_the_mean_rank_and_missing_stays_missing():
    a, b = [3.0, 1.0, 2.0, 5.0], [10.0, 30.0, 20.0, math.nan]
    got = registry.vote_scores([a, [1.0, 2.0, 3.0, 4.0]])
    assert got == pytest.approx(list((stats.rankdata(a) + np.arange(1, 5)) / 2))
    assert math.isnan(registry.vote_scores([a, b])[3])


def test_params_name_unknown_estimators_and_unmet_needs_in_one_line():
    def check(**changes):
        params = yaml.safe_load(yaml.safe_dump(TINY))
        for key, value in changes.items():
            params[key] = {**params.get(key, {}), **value}
        return validate_params(params, "p.yaml")

    with pytest.raises(ParamsError, match=r"^p.yaml: estimators.extra: unknown estimator 'sotll_bpe1'; did you mean"):
        check(estimators={"extra": ["sotll_bpe1"]})
    with pytest.raises(ParamsError, match=r"^p.yaml: estimators.extra: sotl_bpe9: unknown setting 'bpe9'"):
        check(estimators={"extra": ["sotl_bpe9"]})
    with pytest.raises(ParamsError, match="add it to zero_cost.proxies"):
        check(estimators={"extra": ["synflow"]})
    with pytest.raises(ParamsError, match="needs bench_search.table or a ground-truth table"):
        check(search={"estimators": ["table"]})
    with pytest.raises(ParamsError, match="cannot import 'no_such_plugin'"):
        check(estimators={"plugins": ["no_such_plugin"]})
    with pytest.raises(ParamsError, match=r"^p.yaml: zero_cost.proxies.*'synflo'"):
        check(zero_cost={"proxies": ["synflo"]})
    with pytest.raises(ParamsError, match=r"estimators.ensembles.vote: sotl_bpe1 is not correlated"):
        check(estimators={"ensembles": {"vote": ["proxy_bpe1", "sotl_bpe1"]}})
    filled = check()
    assert filled["zero_cost"]["batch_size"] == 64 and filled["estimators"]["learning_curve"]["kinds"] == []


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """6 sampled cells: bpe1 (3 epochs) with its learning curves, three zero-cost proxies, the plugin, a vote;
    a retrained ground truth; correlate and one random search with the plugin estimator."""
    tmp_path = tmp_path_factory.mktemp("registry")
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params["settings"]["bpe1"]["epochs"] = 3
    params.update(
        sample={"n_archs": 6}, proxy={"settings": ["bpe1"]},
        supernet={**params["supernet"], "labels": [], "arch_sets": []},
        evolution={**params["evolution"], "indicators": []},
        search={**params["search"], "strategies": ["rs"], "estimators": ["n_convs"], "budget": {"evaluations": 4}},
        differentiable={**params["differentiable"], "methods": []},
        estimators={"plugins": ["nasflow_test_plugin"], "extra": ["n_convs"],
                    "learning_curve": {"kinds": ["sotl", "sotl_e", "lce"], "acc_epochs": [1, 2]},
                    "ensembles": {"vote": ["n_convs", "proxy_bpe1"],
                                  "logrank": {"kind": "log_rank", "members": ["n_convs", "proxy_bpe1", "meco"]}}},
        zero_cost={"proxies": ["params", "flops", "synflow", "meco", "az_nas"], "arch_sets": ["sampled"], "channels": 4,
                   "cells_per_stage": 1, "image_size": 8, "batch_size": 16})
    study = make_study(tmp_path, params)
    (study / "nasflow_test_plugin.py").write_text(PLUGIN)
    env = {**__import__("os").environ, **_env(tmp_path)}
    py = [sys.executable, "-m"]
    run([*py, "stages.sample_archs"], study, env)
    run([*py, "stages.proxy_train", "--setting", "bpe1", "--shard", "0/1", "--out", "results/proxy/bpe1.json"], study, env)
    run([*py, "stages.ground_truth", "--shard", "0/1", "--out", "results/ground_truth.json"], study, env)
    run([*py, "stages.zero_cost", "--arch-set", "sampled", "--out", "results/zero_cost/sampled.json"], study, env)
    run([*py, "stages.correlate", "--ground-truth", "results/ground_truth.json"], study, env)
    run([*py, "stages.search", "--strategy", "rs", "--estimator", "n_convs", "--out", "results/search/rs_n_convs.json"],
        study, env)
    return study


def _env(tmp_path):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    return {"PYTHONPATH": str(root), "NASFLOW_LOCK_DIR": str(tmp_path / "locks"),
            "PATH": f"{Path(sys.executable).parent}:{__import__('os').environ['PATH']}"}


def _tau(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    return stats.kendalltau(x[ok], y[ok]).statistic


def test_every_estimator_correlates_as_scipy_says(study):
    res = study / "results"
    corr = {r["estimator"]: r for r in read_csv(res / "correlation.csv")}
    est = read_csv(res / "estimates.csv")
    assert list(corr) == ["proxy_bpe1", "sotl_bpe1", "sotl_e_bpe1", "lce_bpe1", "acc_bpe1_e1", "acc_bpe1_e2",
                          "params", "flops", "synflow", "meco", "az_nas", "n_convs", "vote", "logrank"]
    truth = {r["arch"]: r["final_acc"] for r in json.loads((res / "ground_truth.json").read_text())["results"]}
    proxy = {r["arch"]: r for r in json.loads((res / "proxy" / "bpe1.json").read_text())["results"]}
    archs = [r["arch"] for r in est]
    gt = [truth[a] for a in archs]
    expected = {
        "n_convs": [n_convs(a) for a in archs],
        "sotl_bpe1": [-sum(h["train_loss"] for h in proxy[a]["history"]) for a in archs],
        "sotl_e_bpe1": [-proxy[a]["history"][-1]["train_loss"] for a in archs],
        "acc_bpe1_e2": [proxy[a]["history"][1]["eval_acc"] for a in archs],
        "proxy_bpe1": [proxy[a]["final_acc"] for a in archs],
    }
    expected["vote"] = list((stats.rankdata(expected["n_convs"]) + stats.rankdata(expected["proxy_bpe1"])) / 2)
    # AZ-NAS's sum of log(rank / n) over the correlated archs: of an ensemble's members, of az_nas's four proxies
    zc_rows = {r["arch"]: r for r in json.loads((res / "zero_cost" / "sampled.json").read_text())["results"]}
    meco = [zc_rows[a]["meco"] for a in archs]
    expected["logrank"] = list(sum(np.log(stats.rankdata(v) / len(archs))
                                   for v in (expected["n_convs"], expected["proxy_bpe1"], meco)))
    expected["az_nas"] = list(sum(np.log(stats.rankdata([zc_rows[a][m] for a in archs]) / len(archs))
                                  for m in ("az_expressivity", "az_progressivity", "az_trainability", "az_complexity")))
    for name, scores in expected.items():
        assert [float(r[name]) for r in est] == pytest.approx(scores, rel=1e-9), name
        tau = float(corr[name]["kendall_tau"])
        assert tau == pytest.approx(_tau(scores, gt), abs=1e-12) or (math.isnan(tau) and math.isnan(_tau(scores, gt)))
    # an estimate that needs only the first epoch costs the first epoch
    assert [float(r["acc_bpe1_e1_seconds"]) for r in est] == pytest.approx(
        [proxy[a]["history"][0]["seconds"] for a in archs], abs=1e-4)
    # zero-cost `params` is the untrained network's parameter count, counted here with torch
    from nasflow.models.nb201 import build_network

    counts = [float(sum(p.numel() for p in build_network(a, channels=4, depth=1, num_classes=10).parameters()))
              for a in archs]
    assert [float(r["params"]) for r in est] == counts


def test_search_runs_a_plugin_estimator(study):
    doc = json.loads((study / "results" / "search" / "rs_n_convs.json").read_text())
    assert doc["estimator"] == "n_convs" and doc["n_evals"] == 4
    scores = {e["arch"]: e["score"] for e in doc["history"]}
    assert all(s == n_convs(a) for a, s in scores.items())
    assert doc["best_score"] == max(scores.values()) == n_convs(doc["best"])


def test_extra_cells_are_seeded_and_not_sampled(tmp_path):
    from stages.training import arch_set

    archs = tmp_path / "archs.jsonl"
    sampled = nb201.sample(5, seed=0)
    archs.write_text("".join(json.dumps({"id": i, "arch": a}) + "\n" for i, a in enumerate(sampled)))
    params = validate_params({**yaml.safe_load(yaml.safe_dump(TINY)), "zero_cost": {"proxies": [], "arch_sets": ["sampled"], "extra_archs": 50}})
    extra = arch_set(params, "extra", archs, key="zero_cost.arch_sets")
    assert len(extra) == 50 == len({r["arch"] for r in extra}) and not {r["arch"] for r in extra} & set(sampled)
    assert extra == arch_set(params, "extra", archs, key="zero_cost.arch_sets")
    assert len(arch_set(params, "all", archs, key="zero_cost.arch_sets")) == 15625


def test_snakemake_shards_every_nb201_cell_over_zero_cost_jobs(tmp_path, engine_env):
    """`zero_cost.arch_sets: [all]` fans all 15,625 cells out over `zero_cost.shards` jobs (a dry run)."""
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params.update(zero_cost={"proxies": ["synflow"], "arch_sets": ["sampled", "all"], "shards": 8},
                  ground_truth={"source": "table", "path": "../shared/data/nb201-accuracies.csv",
                                "column": "cifar10_test_acc_200ep"})
    study = make_study(tmp_path, params)
    out = run([sys.executable, "-m", "snakemake", "-n", "--cores", "2", "results/correlation.csv"], study, engine_env)
    text = out.stdout + out.stderr
    jobs = {int(m) for m in __import__("re").findall(r"results/zero_cost/all/shard-(\d+)-of-8\.json", text)}
    assert jobs == set(range(8))
    assert "results/zero_cost/sampled/shard-7-of-8.json" in text and "results/zero_cost/extra" not in text
