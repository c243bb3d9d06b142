"""Stages as users run them (`python -m stages.…`): bad input gives one line and exit 2 with no finished-looking
output; a killed training stage resumes and ends with the metrics of an uninterrupted run."""
import json
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.test_engines import TINY, make_study


def stage(study, env, name, *args, check=False, **kw):
    cmd = [sys.executable, "-m", f"stages.{name}", "--params", "params.yaml", *args]
    return subprocess.run(cmd, cwd=study, env=env, capture_output=True, text=True, **kw)


def one_line_error(r, *words):
    assert r.returncode == 2, r.stderr
    # progress lines (stderr is not a terminal here) may come first; the error itself is one line, the last
    lines = r.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in errors[0]


@pytest.fixture
def study(tmp_path, engine_env):
    s = make_study(tmp_path)
    r = stage(s, engine_env, "sample_archs", "--out", "results/archs.jsonl")
    assert r.returncode == 0, r.stderr
    return s


def test_malformed_arch_in_archs_file(study, engine_env):
    (study / "results/archs.jsonl").write_text('{"id": 0, "arch": "|conv_9x9~0|+|none~0|none~1|"}\n')
    r = stage(study, engine_env, "proxy_train", "--setting", "bpe1", "--out", "results/proxy/bpe1.json")
    one_line_error(r, "conv_9x9")
    assert not (study / "results/proxy/bpe1.json").exists()


def test_missing_dataset_file(study, engine_env):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["data"] = {"dataset": "npz", "path": "nowhere/cifar10.npz"}
    (study / "params.yaml").write_text(yaml.safe_dump(params))
    r = stage(study, engine_env, "proxy_train", "--setting", "bpe1", "--out", "results/proxy/bpe1.json")
    one_line_error(r, "nowhere/cifar10.npz")
    assert not (study / "results/proxy/bpe1.json").exists()


def test_corrupt_checkpoint(study, engine_env):
    r = stage(study, engine_env, "proxy_train", "--setting", "bpe1", "--shard", "0/4", "--out", "results/p.json")
    assert r.returncode == 0, r.stderr
    work = next((study / "results/work").glob("bpe1-*"))
    done = next(work.glob("*.json"))
    done.unlink()
    done.with_suffix(".pt").write_bytes(b"not a checkpoint")
    (study / "results/p.json").unlink()
    r = stage(study, engine_env, "proxy_train", "--setting", "bpe1", "--shard", "0/4", "--out", "results/p.json")
    one_line_error(r, "checkpoint", str(done.with_suffix(".pt").name))
    assert not (study / "results/p.json").exists()


def test_gather_refuses_missing_shards(study, engine_env):
    r = stage(study, engine_env, "proxy_train", "--setting", "bpe1", "--shard", "0/2", "--out", "results/s0.json")
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "stages.gather", "--out", "results/all.json", "results/s0.json"],
                       cwd=study, env=engine_env, capture_output=True, text=True)
    one_line_error(r, "gather needs shards")
    assert not (study / "results/all.json").exists()


def test_table_ground_truth(study, engine_env, shared_data):
    params = yaml.safe_load((study / "params.yaml").read_text())
    params["ground_truth"] = {"source": "table", "setting": "full", "path": str(shared_data / "nb201-accuracies.csv"),
                              "column": "cifar10_test_acc_200ep"}
    (study / "params.yaml").write_text(yaml.safe_dump(params))
    r = stage(study, engine_env, "ground_truth", "--out", "results/ground_truth.json")
    assert r.returncode == 0, r.stderr
    out = json.loads((study / "results/ground_truth.json").read_text())
    assert len(out["results"]) == TINY["sample"]["n_archs"]
    assert all(0 < x["final_acc"] < 100 for x in out["results"])
    assert out["provenance"]["params"]["ground_truth"]["column"] == "cifar10_test_acc_200ep"


def test_killed_stage_resumes_to_the_same_result(tmp_path, engine_env):
    params = yaml.safe_load(yaml.safe_dump(TINY))
    params["sample"]["n_archs"] = 2
    params["settings"]["bpe2"]["epochs"] = 6
    results = {}
    for run in ("straight", "killed"):
        s = make_study(tmp_path / run, params)
        assert stage(s, engine_env, "sample_archs", "--out", "results/archs.jsonl").returncode == 0
        args = ("--setting", "bpe2", "--out", "results/proxy/bpe2.json")
        if run == "killed":
            proc = subprocess.Popen([sys.executable, "-m", "stages.proxy_train", "--params", "params.yaml", *args],
                                    cwd=s, env=engine_env, stderr=subprocess.DEVNULL)
            deadline = time.time() + 120
            while not list((s / "results").glob("work/bpe2-*/*.pt")) and time.time() < deadline:
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"
            assert not (s / "results/proxy/bpe2.json").exists()
        r = stage(s, engine_env, "proxy_train", *args)
        assert r.returncode == 0, r.stderr
        results[run] = json.loads((s / "results/proxy/bpe2.json").read_text())["results"]
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("seconds", "resumed_from", "history")} |
                        {"curve": [h["eval_acc"] for h in r["history"]]} for r in rs]
    assert strip(results["killed"]) == strip(results["straight"])
    assert any(r.get("resumed_from") is not None for r in results["killed"])
