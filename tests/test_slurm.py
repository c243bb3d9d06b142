"""`snakemake --profile workflow/profiles/slurm` on a real one-node SLURM cluster (tests/slurm/start.sh): the tiny
study (its BPE part) gives the accuracies and correlations of a local run, every job really goes through sbatch, the node's two
(fake) GPUs bound the training jobs to two at a time and the stages fall back to the CPU, and a failing training
job fails the run in bounded time instead of hanging.

Needs root and Debian's slurm packages (start.sh installs them with apt-get); skipped otherwise, or with
NASFLOW_SKIP_SLURM=1. The cluster is stopped (tests/slurm/stop.sh) when the module ends."""
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.test_engines import TINY, make_study, read_csv

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
SLURM = ROOT / "tests" / "slurm"
# the user-facing profile, with the test cluster's overrides (squeue status checks, fast first check) layered on top
PROFILE_ARGS = ["--profile", str(ROOT / "workflow/profiles/slurm"), "--workflow-profile", str(SLURM / "profile")]
PARAMS = copy.deepcopy(TINY)
PARAMS["device"] = "auto"  # a GPU if the job has one, else the CPU: what the fallback test checks
# Every SLURM job costs ~15 s here (sbatch, two Snakemake start-ups, the plugin's status-check backoff), so the
# test runs the BPE part of the study (TARGETS: sample -> proxy_train x2, ground_truth -> gathers -> correlate),
# unsharded: still 3 training jobs asking for a GPU each, for 2 GPUs. RLNAS (supernets) is switched off, and
# the searches keep only estimators that need no supernet, so that the params stay valid.
PARAMS["parallel"]["shards"] = 1
if "supernet" in PARAMS:
    PARAMS["supernet"]["labels"] = []
if "search" in PARAMS:
    PARAMS["search"]["estimators"] = [e for e in PARAMS["search"]["estimators"] if e.startswith("proxy_")]
TARGETS = ["results/estimates.csv", "results/correlation.csv"]
NODE_GPUS = 2


def tool_env(**extra) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The state dir of a running test cluster; SLURM_CONF for the tools is `<state>/slurm.conf`."""
    if os.environ.get("NASFLOW_SKIP_SLURM") == "1":
        pytest.skip("NASFLOW_SKIP_SLURM=1")
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root on Linux (slurmd runs jobs as their users)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    state = tmp_path_factory.mktemp("slurm")
    t0 = time.monotonic()
    r = subprocess.run(["bash", str(SLURM / "start.sh"), str(state)], capture_output=True, text=True, timeout=600)
    if r.returncode in (3, 4):  # 3: packages not installable here; 4: /etc/slurm/slurm.conf belongs to someone else
        pytest.skip(f"no SLURM test cluster: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, f"start.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip().splitlines()[-1] == str(state)
    print(f"SLURM test cluster up in {time.monotonic() - t0:.1f} s: {state}")
    try:
        yield state
    finally:
        subprocess.run(["bash", str(SLURM / "stop.sh"), str(state), "--keep"], capture_output=True, timeout=120)


def slurm_env(cluster, **extra) -> dict:
    return tool_env(SLURM_CONF=str(cluster / "slurm.conf"), **extra)


def squeue(cluster, *args) -> list[list[str]]:
    """Rows of `squeue -h -t all -O ...`, fields split on '|' (the plugin names jobs by run id and comments them
    with the rule)."""
    fmt = "JobID:|,Comment:|,State:|,tres-per-job:|,Reason:|,StartTime:|,EndTime:|,Name:"
    r = subprocess.run(["squeue", "-h", "-t", "all", "-O", fmt, *args], capture_output=True, text=True,
                       env=slurm_env(cluster), timeout=30)
    assert r.returncode == 0, r.stderr
    return [[f.strip() for f in line.split("|")] for line in r.stdout.splitlines() if line.strip()]


def is_gpu(row) -> bool:
    return "gpu" in row[3]


class Poller(threading.Thread):
    """Polls squeue twice a second: the most GPU jobs RUNNING at once, and whether GPU jobs ever waited while
    others ran."""

    def __init__(self, cluster):
        super().__init__(daemon=True)
        self.cluster, self.stop, self.max_running, self.samples, self.waited = cluster, threading.Event(), 0, 0, False

    def run(self):
        while not self.stop.is_set():
            try:
                rows = squeue(self.cluster)
            except (AssertionError, subprocess.TimeoutExpired):
                rows = []
            gpu = [r for r in rows if is_gpu(r)]
            running = sum(r[2] == "RUNNING" for r in gpu)
            self.max_running = max(self.max_running, running)
            self.waited |= running == NODE_GPUS and any(r[2] == "PENDING" for r in gpu)
            self.samples += 1
            self.stop.wait(0.5)


@pytest.fixture(scope="module")
def demo(cluster, tmp_path_factory):
    """The tiny study run twice: through the SLURM profile (squeue polled meanwhile) and locally with --cores 2,
    side by side."""
    base = tmp_path_factory.mktemp("demo")
    slurm_study, local_study = make_study(base / "slurm", PARAMS), make_study(base / "local", PARAMS)
    local = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2", *TARGETS], cwd=local_study,
                             env=tool_env(NASFLOW_LOCK_DIR=str(base / "local-locks")),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    poller = Poller(cluster)
    poller.start()
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, "-m", "snakemake", *PROFILE_ARGS, *TARGETS], cwd=slurm_study,
                           env=slurm_env(cluster, NASFLOW_LOCK_DIR=str(base / "slurm-locks")),
                           capture_output=True, text=True, timeout=420)
    finally:
        seconds = time.monotonic() - t0
        poller.stop.set()
        poller.join()
        try:
            local_out = local.communicate(timeout=420)[0]
        except subprocess.TimeoutExpired:
            local.kill()
            local_out = local.communicate()[0]
    print(f"SLURM run: {seconds:.0f} s, {poller.samples} squeue samples")
    assert r.returncode == 0, f"snakemake on SLURM failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    assert local.returncode == 0, f"local snakemake failed:\n{local_out[-5000:]}"
    return {"slurm": slurm_study, "local": local_study, "log": r.stdout + r.stderr, "poller": poller,
            "jobs": squeue(cluster)}


def strip_costs(rows):
    return [{k: v for k, v in row.items() if not k.endswith("_seconds") and k != "seconds_per_arch"} for row in rows]


def test_slurm_run_matches_local_run(demo):
    for name in ("estimates.csv", "correlation.csv"):
        on_slurm = read_csv(demo["slurm"] / "results" / name)
        local = read_csv(demo["local"] / "results" / name)
        assert on_slurm and len(on_slurm) == len(local)
        assert strip_costs(on_slurm) == strip_costs(local), name


def test_every_job_went_through_slurm(demo):
    log = demo["log"]
    total = int(re.search(r"^total\s+(\d+)$", log, re.M).group(1))  # from the "Job stats" table
    local = len(re.findall(r"^localrule \w+:", log, re.M))  # e.g. `all`, when it is a target
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert len(submitted) == total - local >= 6, log[-3000:]
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    done = {row[0]: row for row in demo["jobs"] if row[7] == run_id}
    assert sorted(done, key=int) == sorted(submitted, key=int)
    assert all(row[2] == "COMPLETED" for row in done.values())
    assert {"rule_sample_archs", "rule_correlate"} <= {row[1] for row in done.values()}
    logs = list((demo["slurm"] / ".snakemake" / "slurm_logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == sorted(submitted)  # kept by the test profile (slurm-keep-successful-logs)


def _interval(row):
    start, end = (datetime.fromisoformat(t) for t in row[5:7])
    return start, end


def test_at_most_two_gpu_jobs_ran_at_once(demo, cluster):
    gpu_jobs = [row for row in demo["jobs"] if is_gpu(row)]
    rules = {row[1].split("_wildcards")[0] for row in gpu_jobs}
    assert {"rule_proxy_train", "rule_ground_truth"} <= rules and len(gpu_jobs) > NODE_GPUS, gpu_jobs
    assert all(row[3] == "gres:gpu:1" for row in gpu_jobs)  # the profile's `gpu: 1` became --gpus=1
    # the node alone (16 CPUs, 96 GB) would run 3+ of these 4-CPU 16 GB jobs at once: only the gres limits them
    node = subprocess.run(["scontrol", "show", "node", "-o"], capture_output=True, text=True,
                          env=slurm_env(cluster)).stdout
    fields = dict(f.split("=", 1) for f in node.split() if "=" in f)
    assert int(fields["CPUTot"]) // 4 >= 3 and int(fields["RealMemory"]) // 16000 >= 3
    assert fields["Gres"] == f"gpu:{NODE_GPUS}"
    # from SLURM's own start/end times: at most 2 overlap ([start, end), 1 s resolution) ...
    events = sorted((t, delta) for row in gpu_jobs for t, delta in zip(_interval(row), (+1, -1)))
    running, most = 0, 0
    for _, delta in events:  # at the same second an end (-1) sorts before a start (+1)
        running += delta
        most = max(most, running)
    assert most == NODE_GPUS, gpu_jobs
    # ... and from polling squeue during the run: never more than 2 running, and some waited for a GPU
    poller = demo["poller"]
    assert poller.samples > 20
    assert poller.max_running == NODE_GPUS
    assert poller.waited


def test_training_fell_back_to_the_cpu(demo):
    shards = sorted((demo["slurm"] / "results").rglob("shard-*.json"))  # proxy_train and ground_truth outputs
    assert len(shards) >= 3
    for shard in shards:
        out = json.loads(shard.read_text())
        assert out["device"].startswith("cpu"), (shard, out["device"])
        assert all(r["device"].startswith("cpu") for r in out["results"])


def test_gpu_job_sees_slurm_gpu_and_claims_the_cpu(cluster, tmp_path):
    """Two jobs with --gpus=1 at once: SLURM gives each its own (fake) GPU index in CUDA_VISIBLE_DEVICES (or none
    where start.sh could not make device nodes), and nasflow's device claim falls back to the CPU."""
    probe = ("import json, os; from nasflow.devices import claim_device\n"
             "with claim_device('auto', lock_dir=os.environ['NASFLOW_LOCK_DIR']) as d:\n"
             "    print(json.dumps({'cvd': os.environ.get('CUDA_VISIBLE_DEVICES'), 'device': str(d)}))\n")
    (tmp_path / "probe.py").write_text(probe)
    env = slurm_env(cluster, NASFLOW_LOCK_DIR=str(tmp_path / "locks"))
    procs = [subprocess.Popen(["sbatch", "--wait", "--gpus=1", "-p", "main", "-t", "5", "--mem", "1000",
                               "-o", str(tmp_path / f"probe{i}.out"),
                               "--wrap", f"srun {sys.executable} {tmp_path / 'probe.py'}"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    seen = [json.loads((tmp_path / f"probe{i}.out").read_text().strip().splitlines()[-1]) for i in range(2)]
    assert all(s["device"] == "cpu" for s in seen), seen
    cvd = sorted(str(s["cvd"]) for s in seen)
    assert cvd in (["0", "1"], ["None", "None"]), seen


def test_failing_training_job_fails_the_run_without_hanging(cluster, tmp_path):
    study = make_study(tmp_path, PARAMS)
    (study / "results").mkdir()
    (study / "results" / "archs.jsonl").write_text('{"id": 0, "arch": "|conv_9x9~0|+|none~0|none~1|"}\n')
    target = "results/proxy/bpe1/shard-0-of-1.json"
    t0 = time.monotonic()
    # --retries 0: the profile's one retry would add a resubmission and a longer status-check backoff (~40 s)
    r = subprocess.run([sys.executable, "-m", "snakemake", *PROFILE_ARGS, "--retries", "0", target], cwd=study,
                       env=slurm_env(cluster, NASFLOW_LOCK_DIR=str(tmp_path / "locks")),
                       capture_output=True, text=True, timeout=180)
    seconds = time.monotonic() - t0
    log = r.stdout + r.stderr
    print(f"failing run ended in {seconds:.0f} s")
    assert r.returncode != 0, log[-3000:]
    assert "Error in rule proxy_train" in log and "failed, SLURM status is: 'FAILED'" in log, log[-3000:]
    assert log.count("has been submitted with SLURM jobid") == 1, log[-3000:]
    assert "conv_9x9" in (study / "results/logs/proxy_train/bpe1-0-of-1.log").read_text()
    assert not (study / target).exists()
    assert not any(row[2] in ("PENDING", "RUNNING") for row in squeue(cluster))
