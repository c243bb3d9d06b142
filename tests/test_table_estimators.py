"""A built table's recorded times and curves: benchmark mode's cost accounting and the tabular estimators."""
from __future__ import annotations

import numpy as np
import pytest

from nasflow.estimators import registry
from nasflow.estimators.table import TableEstimator, cost_source_of
from nasflow.search import Budget, bench_mode, get_strategy
from nasflow.spaces import nb201
from stages.estimation import _Common
from tests import release_fixtures as rf


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("table") / "nb201.parquet"
    return path, rf.write_full_table(path).set_index("arch")


def test_queries_cost_the_recorded_time(table):
    """NB201's baselines charge 12 recorded training epochs + one validation pass per query (R_EA.py)."""
    path, df = table
    est = TableEstimator(path, "cifar10_valid_valid_acc_12ep_s111")
    assert est.cost_source == "recorded" and "recorded" in cost_source_of(path)
    queried = []

    def recording(arch):
        queried.append(arch)
        return est(arch)

    budget = Budget(seconds=12_000.0)
    res = get_strategy("rs")(nb201, recording, budget, 3)
    by_hand = [12 * df.loc[a, "cifar10_valid_train_seconds_per_epoch_12ep"]
               + df.loc[a, "cifar10_valid_valid_eval_seconds_12ep"] for a in queried]
    # the query that would take the total past 12,000 s ends the search and is not kept (strategies.py)
    assert res.n_evals == len(queried) - 1 and res.spent == pytest.approx(sum(by_hand[:-1]))
    assert sum(by_hand[:-1]) <= 12_000.0 < sum(by_hand)
    assert res.overshoot.arch == queried[-1] and res.overshoot.cost == pytest.approx(by_hand[-1])
    assert [est(a)[0] for a in queried] == [df.loc[a, "cifar10_valid_valid_acc_12ep_s111"] for a in queried]
    # the protocol's benchmark run says which costs it spent, and searches by the release's own signal
    rows = bench_mode.run_benchmark(str(path), strategies=["rs"], seeds=2)
    assert {r["cost_model"] for r in rows} == {"recorded"}
    assert bench_mode.search_column_for(str(path)) == "cifar10_valid_valid_acc_12ep_s111"
    assert "recorded training time" in bench_mode.format_report(bench_mode.summarize(rows))
    # what-if scenarios still use the cost model, and say so
    assert TableEstimator(path, cost_model="flops").cost_source == "flops"


def test_a_csv_without_times_uses_the_cost_model(table, tmp_path):
    path, df = table
    csv = tmp_path / "t.csv"
    df.reset_index()[["index", "arch", "cifar10_test_acc_12ep_one_seed"]].to_csv(csv, index=False)
    est = TableEstimator(csv)
    assert est.cost_source == "affine" and "cost model" in cost_source_of(csv)
    with pytest.raises(Exception, match="no recorded training times"):
        TableEstimator(csv, cost_model="recorded")


class _Ctx(_Common):
    def __init__(self, path):
        super().__init__({"ground_truth": {"source": "table", "path": str(path)}, "bench_search": {},
                          "estimators": {"learning_curve": {"extrapolate_to": 200}}})


def test_tabular_estimators_read_the_release_curves(table):
    path, df = table
    archs = list(df.index[[0, 7, 6111, 15624]])
    ctx = _Ctx(path)
    curve = lambda a, name, s: np.asarray(df.loc[a, f"cifar10_valid_{name}_curve_{s}ep"], dtype=np.float64)
    per_epoch = lambda a, s: (df.loc[a, f"cifar10_valid_train_seconds_per_epoch_{s}ep"]
                              + df.loc[a, f"cifar10_valid_valid_eval_seconds_{s}ep"])
    got = registry.get("table_acc_200ep_e25").fn(archs, ctx, schedule="200", k="25")
    for a, e in zip(archs, got):
        assert e.score == pytest.approx(curve(a, "valid_acc", 200)[24])  # after epoch 25 (1-based)
        assert e.seconds == pytest.approx(25 * per_epoch(a, 200))
    got = registry.get("table_sotl_12ep_e12").fn(archs, ctx, schedule="12", k="12")
    for a, e in zip(archs, got):
        assert e.score == pytest.approx(-curve(a, "train_loss", 12).sum(), rel=1e-6)
    got = registry.get("table_sotl_e_200ep_e10").fn(archs, ctx, schedule="200", k="10")
    assert [e.score for e in got] == pytest.approx([-curve(a, "train_loss", 200)[9] for a in archs], rel=1e-6)
    got = registry.get("table_lce_200ep_e10").fn(archs, ctx, schedule="200", k="10")
    assert all(0 <= e.score <= 100 for e in got)
    with pytest.raises(Exception, match="schedules are 12 and 200"):
        registry.get("table_acc_12ep_e13").fn(archs, ctx, schedule="12", k="13")
    with pytest.raises(Exception, match="schedules are 12 and 200"):
        registry.get("table_acc_50ep_e3").fn(archs, ctx, schedule="50", k="3")
