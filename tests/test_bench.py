"""The NAS-Bench-201 ground-truth table."""
import time

import pytest

from nasflow import bench
from nasflow.errors import DataError, ParamsError


def test_table_lookup_real_csv(shared_data):
    path = shared_data / "nb201-accuracies.csv"
    t0 = time.perf_counter()
    table = bench.load_table(path, "cifar10_test_acc_200ep")
    assert time.perf_counter() - t0 < 5  # milliseconds in practice; generous for a loaded CI machine
    assert len(table) == 15625
    best = max(table, key=table.get)
    assert table[best] == pytest.approx(94.37, abs=0.01)  # the known optimum (index 6111)
    assert "cifar100_test_acc_200ep" in bench.columns(path)
    cell0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    assert bench.lookup([cell0], path, "cifar10_test_acc_200ep") == [table[cell0]]


def test_table_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        bench.load_table(tmp_path / "nope.csv", "x")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="index, arch"):
        bench.load_table(bad, "b")
    good = tmp_path / "good.csv"
    good.write_text("index,arch,acc\n0,|x~0|,1.5\n")
    with pytest.raises(ParamsError, match="'nope' is not a column"):
        bench.load_table(good, "nope")
    with pytest.raises(DataError, match="not in the ground-truth table"):
        bench.lookup(["|y~0|"], good, "acc")
