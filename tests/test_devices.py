"""nasflow.devices: one GPU per job by file locks (tested with a fake device count, no GPU needed)."""

import multiprocessing as mp
import time

import pytest
import torch

from nasflow import devices
from nasflow.devices import acquire_lock, claim_device, describe, release_lock, try_lock
from nasflow.errors import NasflowError, ParamsError


def test_locks_hand_out_distinct_devices(tmp_path):
    held = [try_lock(3, tmp_path) for _ in range(3)]
    assert [i for i, _ in held] == [0, 1, 2]
    assert try_lock(3, tmp_path) is None  # all busy
    release_lock(held[1][1])
    i, fd = try_lock(3, tmp_path)
    assert i == 1  # the freed one
    for _, f in [held[0], (i, fd), held[2]]:
        release_lock(f)


def test_acquire_waits_then_times_out(tmp_path):
    i, fd = acquire_lock(1, tmp_path)
    waited = []
    t0 = time.monotonic()
    with pytest.raises(NasflowError, match="busy"):
        acquire_lock(1, tmp_path, poll=0.05, timeout=0.3, on_wait=lambda: waited.append(1))
    assert time.monotonic() - t0 >= 0.3 and waited == [1]
    release_lock(fd)


def _hold(lock_dir, n, q, hold_s):
    i, fd = acquire_lock(n, lock_dir, poll=0.05)
    q.put(i)
    time.sleep(hold_s)
    release_lock(fd)


def test_concurrent_processes_get_different_devices(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(tmp_path, 2, q, 0.8)) for _ in range(2)]
    for p in procs:
        p.start()
    first = sorted(q.get(timeout=10) for _ in range(2))
    assert first == [0, 1]
    # a third job waits until one of them exits, then gets the freed device
    t0 = time.monotonic()
    i, fd = acquire_lock(2, tmp_path, poll=0.05)
    assert time.monotonic() - t0 > 0.2 and i in (0, 1)
    release_lock(fd)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0


def test_dead_process_releases_its_lock(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_hold, args=(tmp_path, 1, q, 60))
    p.start()
    assert q.get(timeout=10) == 0
    assert try_lock(1, tmp_path) is None
    p.kill()
    p.join(10)
    i, fd = acquire_lock(1, tmp_path, poll=0.05, timeout=5)
    assert i == 0
    release_lock(fd)


def test_named_locks(tmp_path):
    i, fd = try_lock(2, tmp_path, names=["gpu-aaa", "gpu-bbb"])
    assert i == 0 and (tmp_path / "gpu-aaa.lock").exists()
    j, fd2 = try_lock(2, tmp_path, names=["gpu-bbb", "gpu-aaa"])  # another job's visible order
    assert j == 0 and (tmp_path / "gpu-bbb.lock").exists()
    release_lock(fd)
    release_lock(fd2)


def test_claim_device_cpu_and_auto(tmp_path, monkeypatch):
    with claim_device("cpu") as d:
        assert d == torch.device("cpu")
    with pytest.raises(ParamsError, match="tpu"):
        with claim_device("tpu"):
            pass
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with claim_device("auto", lock_dir=tmp_path) as d:
        assert d.type == "cpu"
    with pytest.raises(NasflowError, match="cuda"):
        with claim_device("cuda"):
            pass
    assert describe("cpu").startswith("cpu (")


def test_claim_device_auto_with_fake_gpus(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(devices, "_gpu_lock_names", lambda n: [f"gpu{i}" for i in range(n)])
    with claim_device("auto", lock_dir=tmp_path) as a, claim_device("cuda", lock_dir=tmp_path) as b:
        assert (a, b) == (torch.device("cuda", 0), torch.device("cuda", 1))
        with pytest.raises(NasflowError, match="busy"):
            with claim_device("auto", lock_dir=tmp_path, poll=0.05, timeout=0.2):
                pass
    with claim_device("auto", lock_dir=tmp_path) as c:  # released on exit
        assert c == torch.device("cuda", 0)


def test_default_lock_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("NASFLOW_LOCK_DIR", str(tmp_path))
    assert devices.default_lock_dir() == tmp_path
    monkeypatch.delenv("NASFLOW_LOCK_DIR")
    assert "nasflow-locks-" in str(devices.default_lock_dir())
