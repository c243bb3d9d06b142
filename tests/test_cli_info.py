"""`nasflow info`, run as a user would (`python -m nasflow`)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INDEX0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


def nasflow(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "nasflow", *args],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )


def test_info_json_contract():
    result = nasflow("info", "--space", "nb201", "--arch", f" {ALL_SKIP} ", "--arch", INDEX0, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {"arch": ALL_SKIP, "params": 73306, "flops": 7783050},
        {"arch": INDEX0, "params": 129306, "flops": 15647370},
    ]


def test_info_table():
    result = nasflow(
        "info", "--space", "nb201", "--arch", INDEX0, "--dataset", "imagenet16-120", "--cells", "1"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("arch"))
    assert "params" in header and "M params" in header and "MFLOPs" in header
    row = next(line for line in lines if line.startswith(INDEX0))
    assert row.split()[1:] == ["91,656", "0.091656", "2.347"]  # 120 classes, 16 px, N=1: by hand


@pytest.mark.parametrize(
    "bad",
    ["|avg_pool_3x3~0|+|nor_conv_1x1~0|", INDEX0.replace("avg_pool_3x3", "max_pool_3x3")],
)
def test_info_invalid_arch(bad):
    result = nasflow("info", "--arch", INDEX0, "--arch", bad, "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"nasflow: error: invalid arch {bad!r}: ")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2_without_traceback():
    result = nasflow("info", "--arch", INDEX0, "--channels", "zero")
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr


def test_info_accepts_a_nas_bench_201_index():
    result = nasflow("info", "--arch", "0", "--arch", " 15624 ", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert rows[0] == {"arch": INDEX0, "params": 129306, "flops": 15647370}  # docs/estimators.md's "index 0"
    # row 15624 of the benchmark's table (the benchmark's order, not itertools.product's)
    assert rows[1]["arch"] == "|nor_conv_1x1~0|+|none~0|nor_conv_1x1~1|+|none~0|nor_conv_1x1~1|nor_conv_1x1~2|"


@pytest.mark.parametrize("args", [["--arch", "15625"], ["--space", "darts", "--arch", "0"]])
def test_info_index_out_of_range_or_other_space(args):
    result = nasflow("info", *args)
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    if args[-1] == "15625":
        assert result.stderr == "nasflow: error: --arch 15625: no such NAS-Bench-201 index (0..15624)\n"
