"""Search strategies x estimators: synthetic objectives with known optima, budgets and histories, determinism,
the table estimator and cost model against the CSV, and NB201's table baselines in benchmark mode."""
import csv
import random
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from nasflow.errors import ArchError, ParamsError
from nasflow.estimators import table as tbl
from nasflow.models import nb201 as nb201_net
from nasflow.search import Budget, available_strategies, bench_mode, get_strategy
from nasflow.search.bohb import available as bohb_available
from nasflow.spaces import nb201

ROOT = Path(__file__).resolve().parents[1]
OPT = nb201.format(["nor_conv_3x3"] * 6)
CHEAP = ["rs", "rea", "reinforce"]
needs_bohb = pytest.mark.skipif(not bohb_available()[0], reason=bohb_available()[1])


def conv_count(arch):
    """Synthetic objective: conv3x3 edges (+0.1 per conv1x1); unique optimum OPT (score 6); 1 s per query."""
    ops = nb201.parse(arch)
    return ops.count("nor_conv_3x3") + 0.1 * ops.count("nor_conv_1x1"), 1.0


def first_hit(result, arch=OPT):
    return next((i + 1 for i, e in enumerate(result.history) if e.arch == arch), None)


class Counting:
    """Wraps an estimator and records every call (to check that the history misses none)."""

    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, arch):
        out = self.fn(arch)
        self.calls.append((arch, *out))
        return out


def varied_cost(arch):
    """Score = conv count, cost 1..30 s depending on the arch (to exercise the seconds budget)."""
    return conv_count(arch)[0], 1.0 + nb201.index_of(arch) % 30


# ------------------------------------------------------------------------------------------ the space encoding


def test_nb201_encoding_round_trips_every_cell():
    assert nb201.choices() == [5] * 6
    archs = nb201.enumerate_all()
    codes = {nb201.encode(a) for a in archs}
    assert len(codes) == nb201.N_ARCHS
    assert all(nb201.decode(nb201.encode(a)) == a for a in archs)
    assert nb201.decode(np.array([3] * 6)) == OPT  # numpy ints are fine
    for bad in ([5] * 6, [0] * 5, [1.0] * 6):
        with pytest.raises(ArchError):
            nb201.decode(bad)


# ------------------------------------------------------------------------------------------ strategies


def test_registry():
    assert available_strategies() == ["rs", "rea", "reinforce", "bohb", "bananas"]
    with pytest.raises(ParamsError, match="unknown search strategy 'ga'"):
        get_strategy("ga")


def test_rea_finds_the_optimum_with_far_fewer_evaluations_than_rs():
    cap = 1500
    rea = [first_hit(get_strategy("rea")(nb201, conv_count, cap, seed)) or cap for seed in range(10)]
    rs = [first_hit(get_strategy("rs")(nb201, conv_count, cap, seed)) or cap for seed in range(10)]
    assert max(rea) < cap  # REA always gets there (a hill-climb of <= 6 improving mutations)
    assert np.mean(rea) * 4 < np.mean(rs)  # RS needs ~15,625 on average (1 in 5^6)


def test_reinforce_policy_concentrates_on_the_optimum():
    for seed in range(3):
        res = get_strategy("reinforce")(nb201, conv_count, 500, seed, lr=0.05)
        probs = np.array(res.extra["probs"])
        assert probs.shape == (6, 5) and np.allclose(probs.sum(axis=1), 1)
        assert (probs[:, nb201.OPS.index("nor_conv_3x3")] > 0.9).all()
        assert res.extra["argmax_arch"] == OPT and res.best_arch == OPT


def test_reinforce_on_another_categorical_space():
    # 3 variables with 2, 3 and 4 options; the best is (1, 2, 3): masking the unused logits must work
    n_options = [2, 3, 4]
    space = types.SimpleNamespace(
        choices=lambda: list(n_options),
        encode=lambda arch: tuple(int(c) for c in arch.split("-")),
        decode=lambda codes: "-".join(str(int(c)) for c in codes),
        sample=lambda n, seed: ["-".join(str(random.Random(seed).randrange(k)) for k in n_options)] * n,
    )
    res = get_strategy("reinforce")(space, lambda a: (float(sum(space.encode(a))), 1.0), 400, 0, lr=0.1)
    assert res.extra["argmax_arch"] == "1-2-3"
    assert [len(p) for p in res.extra["probs"]] == n_options
    assert all(all(0 <= c < k for c, k in zip(space.encode(e.arch), n_options)) for e in res.history)


@pytest.mark.parametrize("name", CHEAP)
def test_deterministic_per_seed(name):
    run = get_strategy(name)
    a, b, c = (run(nb201, varied_cost, Budget(seconds=3000), s) for s in (7, 7, 8))
    assert a.history == b.history and a.best == b.best
    assert a.history != c.history


@pytest.mark.parametrize("name", CHEAP)
def test_history_is_complete_and_evaluation_budget_respected(name):
    est = Counting(conv_count)
    res = get_strategy(name)(nb201, est, Budget(evaluations=37), 3)
    assert res.n_evals == 37 and len(est.calls) == 37 and res.overshoot is None
    assert [(e.arch, e.score, e.cost) for e in res.history] == est.calls
    assert res.best == max(res.history, key=lambda e: e.score)
    assert res.strategy == name and res.seed == 3


@pytest.mark.parametrize("name", CHEAP)
def test_seconds_budget_respected(name):
    est = Counting(varied_cost)
    res = get_strategy(name)(nb201, est, Budget(seconds=500), 1)
    elapsed = np.cumsum([e.cost for e in res.history])
    assert np.allclose([e.elapsed for e in res.history], elapsed)
    assert res.spent <= 500
    # the search stops when the budget is used up exactly, or at the first query that does not fit (that one
    # is reported, not kept)
    if res.overshoot is None:
        assert res.spent == 500 and len(est.calls) == res.n_evals
    else:
        assert res.spent + res.overshoot.cost > 500
        assert len(est.calls) == res.n_evals + 1 and est.calls[-1][0] == res.overshoot.arch
    overshoots = [get_strategy(name)(nb201, varied_cost, Budget(seconds=500), s).overshoot for s in range(5)]
    assert sum(o is not None for o in overshoots) >= 3
    both = get_strategy(name)(nb201, varied_cost, Budget(evaluations=5, seconds=500), 1)
    assert both.n_evals == 5


def test_budget_validation():
    assert Budget.of(10) == Budget(evaluations=10)
    assert Budget.of({"seconds": 12000}) == Budget(seconds=12000)
    assert Budget(seconds=100).scaled(0.5) == Budget(seconds=50)
    for bad in ({}, {"evaluations": 0}, {"seconds": -1}, {"evaluations": 2.5}):
        with pytest.raises(ParamsError):
            Budget(**bad)
    with pytest.raises(ParamsError):
        Budget.of("12000s")
    with pytest.raises(ParamsError):
        get_strategy("rea")(nb201, conv_count, 10, 0, population_size=0)


@needs_bohb
def test_bohb_runs_within_budget_and_is_deterministic():
    a = get_strategy("bohb")(nb201, varied_cost, Budget(seconds=800), 5)
    b = get_strategy("bohb")(nb201, varied_cost, Budget(seconds=800), 5)
    assert a.history == b.history and a.best == b.best
    assert 0 < a.spent <= 800 and a.n_evals >= 13
    # the pick is among the configs evaluated at the largest budget (hpbandster's incumbent)
    assert a.extra["n_at_max_budget"] >= 1 and a.best in a.history


# ------------------------------------------------------------------------------------------ estimators


def test_closed_form_flops_match_count_flops():
    from nasflow.counting import count_flops

    archs = [nb201.enumerate_all()[i] for i in (0, 6111)] + nb201.sample(2, seed=1)
    for arch in archs:
        assert tbl.nb201_flops(arch) == count_flops(nb201_net.build_network(arch))
    assert tbl.nb201_flops(archs[0]) == 15_647_370 and tbl.nb201_flops(archs[1]) == 153_272_970
    mflops = tbl.nb201_mflops_all()
    assert mflops.shape == (15_625,) and mflops.min() == pytest.approx(7.78305)


def test_cost_models():
    m = tbl.nb201_mflops_all()
    for kind in tbl.COST_KINDS:
        costs = tbl.CostModel(kind).costs(m)
        assert costs.mean() == pytest.approx(tbl.MEAN_COST_S) and (costs > 0).all()
    assert tbl.MEAN_COST_S == pytest.approx(112.9, abs=0.1)
    affine = tbl.CostModel().costs(m)
    assert np.corrcoef(affine, m)[0, 1] == pytest.approx(1.0)
    assert 85 < affine.min() < affine.max() < 200  # a large fixed part: not proportional to FLOPs
    flops = tbl.CostModel("flops").costs(m)
    assert flops.max() / flops.min() == pytest.approx(220.11969 / 7.78305)
    assert tbl.CostModel(mean_seconds=50).cost(OPT) == pytest.approx(affine.max() * 50 / tbl.MEAN_COST_S)
    with pytest.raises(ParamsError):
        tbl.CostModel("latency")


def test_table_estimator_matches_the_csv(shared_data):
    path = shared_data / "nb201-accuracies.csv"
    est = tbl.TableEstimator(path, tbl.SEARCH_COLUMN)
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15_625
    model = tbl.CostModel()
    for row in rows[:50] + rows[-50:] + rows[6111:6112]:
        arch = row["arch"]
        score, cost = est(arch)
        assert score == float(row[tbl.SEARCH_COLUMN])
        assert cost == pytest.approx(model.cost(arch))
        assert est.index(arch) == int(row["index"])
        assert est.value(arch, "cifar100_test_acc_200ep") == float(row["cifar100_test_acc_200ep"])
    spaced = " " + rows[5]["arch"] + " "
    assert est(spaced) == est(rows[5]["arch"])
    assert tbl.TableEstimator(path, cost_model=42.0)(OPT)[1] == 42.0
    with pytest.raises(ParamsError, match="not a column"):
        tbl.TableEstimator(path, "cifar10_valid_acc_12ep")
    with pytest.raises(ArchError):
        est("|conv~0|")


def test_proxy_estimator_adapter():
    seen = []

    def fake_train(arch, **kw):
        seen.append((arch, kw["seed"], kw["setting"]["epochs"]))
        return {"final_acc": 50.0 + nb201.encode(arch).count(3), "best_acc": 99.0}

    est = tbl.proxy_estimator(space=nb201, setting={"epochs": 2}, splits=None, seed=4, device="cpu",
                              train_fn=fake_train)
    score, cost = est(OPT)
    assert score == 56.0 and 0 <= cost < 1 and seen == [(OPT, 4, 2)]
    res = get_strategy("rea")(nb201, est, Budget(evaluations=12), 0)
    assert res.n_evals == 12 and len(seen) == 13


# ------------------------------------------------------------------------------------------ benchmark mode


def test_bench_mode_reproduces_the_table_baselines(shared_data):
    rows = bench_mode.run_benchmark(shared_data / "nb201-accuracies.csv", strategies=CHEAP, seeds=20)
    summary = {s["strategy"]: s for s in bench_mode.summarize(rows)}
    assert len(rows) == 60 and set(summary) == set(CHEAP)
    for name, s in summary.items():
        assert s["runs"] == 20 and 80 < s["n_evals"]["mean"] < 115 and s["spent_seconds"]["mean"] <= 12_000
        assert 93.0 < s["cifar10_test"]["mean"] <= 94.37  # NB201: REA 93.92, RS 93.70, REINFORCE 93.85
        assert 69.0 < s["cifar100_test"]["mean"] <= 73.51 and 42.0 < s["imagenet16_120_test"]["mean"] <= 47.31
    assert summary["rea"]["cifar10_test"]["mean"] > 93.5
    report = bench_mode.format_report(bench_mode.summarize(rows))
    assert "| REA | NB201 paper | 500 | | 91.19±0.31 | 93.92±0.30 | 71.84±0.99 | 45.54±1.03 |" in report
    # the budget matters: half the seconds, fewer queries and a worse pick on average
    half = bench_mode.run_benchmark(shared_data / "nb201-accuracies.csv", strategies=["rea"], seeds=20,
                                    scenarios=[bench_mode.Scenario("affine", 0.5)])
    assert np.mean([r["n_evals"] for r in half]) < 0.6 * summary["rea"]["n_evals"]["mean"]
    with pytest.raises(ParamsError, match="unknown"):
        bench_mode.run_benchmark(shared_data / "nb201-accuracies.csv", strategies=["rea"], seeds=1,
                                 hyper={"rea": {"tournament": 3}})


@needs_bohb
def test_bench_mode_bohb(shared_data):
    rows = bench_mode.run_benchmark(shared_data / "nb201-accuracies.csv", strategies=["bohb"], seeds=3)
    assert len(rows) == 3 and all(r["spent_seconds"] <= 12_000 and r["cifar10_test"] > 90 for r in rows)


def test_bench_search_stage(shared_data, tmp_path, engine_env):
    out = tmp_path / "bench_search.csv"
    cmd = [sys.executable, "-m", "stages.bench_search", "--params", str(ROOT / "params.yaml"), "--out", str(out),
           "--table", str(shared_data / "nb201-accuracies.csv"), "--seeds", "3", "--strategies", "rea,rs",
           "--scenarios", "affine:1,constant:1"]
    r = subprocess.run(cmd, cwd=ROOT, env=engine_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and {r["scenario"] for r in rows} == {"affinex1", "constantx1"}
    assert (tmp_path / "bench_search.json").exists() and "NB201 paper" in (tmp_path / "bench_search.md").read_text()
    bad = subprocess.run(cmd[:-6] + ["--seeds", "1", "--strategies", "ga"], cwd=ROOT, env=engine_env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("error: bench_search: unknown search strategy")

