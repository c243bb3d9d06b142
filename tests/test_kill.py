"""Kill anywhere: every training stage, SIGKILLed at a random point and rerun, ends with the artifacts of an
uninterrupted run (times aside). Resume comes from per-epoch checkpoints and the per-arch cache."""
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from tests.test_engines import TINY, make_study

# times, and what depends on them (a search's cost-based budget bookkeeping, which host ran it)
VOLATILE = {"resumed_from", "provenance", "device", "cost", "elapsed", "spent", "spent_seconds", "gathered_from"}


def timeless(obj):
    if torch.is_tensor(obj):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: timeless(v) for k, v in obj.items() if k not in VOLATILE and "seconds" not in k}
    if isinstance(obj, list):
        return [timeless(v) for v in obj]
    return obj


def params():
    p = yaml.safe_load(yaml.safe_dump(TINY))
    p["sample"]["n_archs"] = 2
    p["settings"]["bpe1"]["epochs"] = 3
    p["settings"]["full"]["epochs"] = 4
    p["settings"]["supernet"]["epochs"] = 4
    p["differentiable"]["epochs"] = 4
    p["search"]["estimators"] = ["proxy_bpe1"]
    return p


# stage -> (arguments, the artifacts to compare); ground_truth trains through the same run_training as proxy_train
STAGES = {
    "proxy_train": (["--setting", "bpe1", "--out", "results/proxy/bpe1.json"], ["results/proxy/bpe1.json"]),
    "supernet_train": (["--labels", "random", "--out-dir", "results/supernet/random"],
                       ["results/supernet/random/init.pt", "results/supernet/random/final.pt"]),
    "differentiable_search": (["--method", "gdas", "--out", "results/search/gdas.json"], ["results/search/gdas.json"]),
    "search": (["--strategy", "rea", "--estimator", "proxy_bpe1", "--out", "results/search/rea_proxy_bpe1.json"],
               ["results/search/rea_proxy_bpe1.json"]),
}


def load(path):
    if path.suffix == ".pt":
        obj = torch.load(path, weights_only=True)
        return timeless(obj)
    return timeless(json.loads(path.read_text()))


def command(name):
    return [sys.executable, "-m", f"stages.{name}", "--params", "params.yaml", *STAGES[name][0]]


def first_work_file(s, proc):
    """Seconds until the run has written something under results/work (training has begun), or None if it
    ended first."""
    t0 = time.monotonic()
    while proc.poll() is None:
        if any(p.is_file() for p in (s / "results").glob("work/*/*")):
            return time.monotonic() - t0
        time.sleep(0.01)
    return None


@pytest.mark.slow
@pytest.mark.parametrize("name", list(STAGES))
def test_killed_stage_reruns_to_the_uninterrupted_artifacts(name, tmp_path, engine_env):
    rng = random.Random(name)  # a random point, the same one in every CI run
    runs = {}
    for run in ("straight", "killed"):
        s = make_study(tmp_path / run, params())
        subprocess.run([sys.executable, "-m", "stages.sample_archs", "--params", "params.yaml", "--out",
                        "results/archs.jsonl"], cwd=s, env=engine_env, check=True)
        if run == "straight":
            t0 = time.monotonic()
            proc = subprocess.Popen(command(name), cwd=s, env=engine_env, stderr=subprocess.PIPE, text=True)
            started = first_work_file(s, proc)
            _, err = proc.communicate()
            assert proc.returncode == 0 and started is not None, err
            training = time.monotonic() - t0 - started  # from the first work file to the end
        else:
            for attempt in range(4):  # kill at a random point after training began; earlier if it finished
                proc = subprocess.Popen(command(name), cwd=s, env=engine_env, stderr=subprocess.DEVNULL)
                if first_work_file(s, proc) is not None:
                    try:
                        proc.wait(timeout=rng.uniform(0.05, 0.7) * training / 2 ** attempt)
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        if not all((s / out).exists() for out in STAGES[name][1]):
                            break  # killed before it finished
                proc.wait()
                subprocess.run(["rm", "-rf", str(s / "results/work"), *(str(s / o) for o in STAGES[name][1])],
                               check=True)
            assert proc.returncode == -signal.SIGKILL, "the stage always finished before it could be killed"
            assert not all((s / out).exists() for out in STAGES[name][1])  # nothing looks finished
            r = subprocess.run(command(name), cwd=s, env=engine_env, capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
        runs[run] = [load(s / out) for out in STAGES[name][1]]
    assert runs["killed"] == runs["straight"]
