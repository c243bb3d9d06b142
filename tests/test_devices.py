"""nasflow.devices: a GPU (or one of its jobs_per_gpu slots) per job by file locks (tested with a fake device count, no GPU needed)."""

import contextlib
import multiprocessing as mp
import queue
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


# --- several jobs per GPU: K slot locks per device ---------------------------------------------------------

def test_slots_spread_before_they_stack(tmp_path):
    held = [try_lock(2, tmp_path, slots=2) for _ in range(4)]
    assert [i for i, _ in held] == [0, 1, 0, 1]  # one per GPU first, then a second on each
    assert sorted(p.name for p in tmp_path.glob("gpu*")) == ["gpu0.slot0.lock", "gpu0.slot1.lock",
                                                           "gpu1.slot0.lock", "gpu1.slot1.lock"]
    assert try_lock(2, tmp_path, slots=2) is None  # G·K = 4 held: the fifth finds nothing
    # free GPU 1 entirely and GPU 0's slot 0: GPU 0 (one job, on slot 1) is busier than GPU 1 (none), so the
    # next job goes to GPU 1 even though GPU 0's slot 0, the first slot in order, is free
    for _, fd in (held[0], held[1], held[3]):
        release_lock(fd)
    i, fd = try_lock(2, tmp_path, slots=2)
    j, fd2 = try_lock(2, tmp_path, slots=2)  # now 1 + 1: the tie goes to the lower index, its free slot 0
    assert (i, j) == (1, 0) and try_lock(2, tmp_path, slots=2)[0] == 1
    with pytest.raises(ValueError, match="slots"):
        try_lock(2, tmp_path, slots=0)


def test_one_slot_keeps_the_old_lock_files(tmp_path):
    i, fd = try_lock(2, tmp_path, names=["gpu-aaa", "gpu-bbb"], slots=1)
    assert i == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["gpu-aaa.lock"]  # no slot files, no mutex
    release_lock(fd)
    i, fd = try_lock(2, tmp_path, names=["gpu-aaa", "gpu-bbb"], slots=3)
    assert i == 0 and (tmp_path / "gpu-aaa.slot0.lock").exists() and (tmp_path / "gpu-bbb.slot2.lock").exists()
    release_lock(fd)


def _hold_slot(job, lock_dir, start, q, go, counts, peak):
    """One job: claim a slot of 2 GPUs x 2, count itself on its GPU while holding it, leave when `go` is set."""
    start.wait(10)
    i, fd = acquire_lock(2, lock_dir, slots=2, poll=0.02)
    with counts.get_lock():
        counts[i] += 1
        peak[i] = max(peak[i], counts[i])
        peak[2] = max(peak[2], counts[0] + counts[1])
    q.put(("claim", job, i, time.monotonic()))
    go.wait(10)
    with counts.get_lock():
        counts[i] -= 1
    q.put(("leave", job, i, time.monotonic()))  # stamped before the release: a later claim cannot predate it
    release_lock(fd)


def test_concurrent_jobs_share_gpus_up_to_k(tmp_path):
    ctx = mp.get_context("fork")
    q, start = ctx.Queue(), ctx.Barrier(4)
    counts, peak = ctx.Array("i", 2), ctx.Array("i", 3)  # jobs now on GPU 0, 1; peaks on 0, 1 and in all
    gos = [ctx.Event() for _ in range(5)]
    procs = [ctx.Process(target=_hold_slot, args=(k, tmp_path, start, q, gos[k], counts, peak)) for k in range(4)]
    for p in procs:
        p.start()
    claims = [q.get(timeout=10) for _ in range(4)]  # all four started together
    assert sorted(i for _, _, i, _ in claims) == [0, 0, 1, 1]
    assert (peak[0], peak[1], peak[2]) == (2, 2, 4)
    # the fifth job waits while G·K = 4 slots are held ...
    fifth = ctx.Process(target=_hold_slot, args=(4, tmp_path, ctx.Barrier(1), q, gos[4], counts, peak))
    fifth.start()
    with pytest.raises(queue.Empty):  # no claim while all slots are held
        q.get(timeout=0.4)
    # ... until one job (on GPU 1) leaves; it gets that GPU's freed slot
    leaving = next(job for _, job, i, _ in claims if i == 1)
    gos[leaving].set()
    events = {kind: (job, i, at) for kind, job, i, at in (q.get(timeout=5) for _ in range(2))}  # either order
    assert events["leave"][:2] == (leaving, 1) and events["claim"][:2] == (4, 1)
    assert events["claim"][2] >= events["leave"][2]
    for go in gos:
        go.set()
    for p in [*procs, fifth]:
        p.join(10)
        assert p.exitcode == 0
    assert (peak[0], peak[1], peak[2]) == (2, 2, 4)  # never more than K on a GPU nor G·K in all


def _claim_fake_gpu(lock_dir, start, q, hold_s):
    start.wait(10)
    with claim_device("auto", lock_dir=lock_dir, poll=0.02, jobs_per_gpu=2) as d:
        q.put(d.index)
        time.sleep(hold_s)


def _fake_gpus(monkeypatch, n):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(devices, "_gpu_lock_names", lambda n: [f"gpu{i}" for i in range(n)])


def test_two_jobs_starting_together_take_one_gpu_each(tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 2)  # the forked jobs inherit the fake GPUs
    ctx = mp.get_context("fork")
    for attempt in range(5):  # they race to the locks each time: every round must still split 1 + 1
        q, start = ctx.Queue(), ctx.Barrier(2)
        procs = [ctx.Process(target=_claim_fake_gpu, args=(tmp_path / str(attempt), start, q, 0.2))
                 for _ in range(2)]
        for p in procs:
            p.start()
        assert sorted(q.get(timeout=10) for _ in range(2)) == [0, 1]
        for p in procs:
            p.join(10)
            assert p.exitcode == 0


def test_claim_device_jobs_per_gpu(tmp_path, monkeypatch):
    _fake_gpus(monkeypatch, 2)
    with contextlib.ExitStack() as stack:
        got = [stack.enter_context(claim_device("cuda", lock_dir=tmp_path, jobs_per_gpu=2)).index for _ in range(4)]
        assert got == [0, 1, 0, 1]
        with pytest.raises(NasflowError, match=r"all 2 GPU\(s\) \(2 jobs each\) stayed busy"):
            with claim_device("auto", lock_dir=tmp_path, poll=0.05, timeout=0.2, jobs_per_gpu=2):
                pass
    with claim_device("auto", lock_dir=tmp_path, jobs_per_gpu=2) as d:  # all released on exit
        assert d == torch.device("cuda", 0)
    for bad in (0, 1.5, True):
        with pytest.raises(ParamsError, match="parallel.jobs_per_gpu"):
            with claim_device("cpu", jobs_per_gpu=bad):
                pass


def test_stages_claim_with_params_jobs_per_gpu(tmp_path, monkeypatch):
    from stages.common import claim

    _fake_gpus(monkeypatch, 2)
    monkeypatch.setenv("NASFLOW_LOCK_DIR", str(tmp_path))
    params = {"device": "auto", "parallel": {"shards": 1, "jobs_per_gpu": 2}}
    with claim(params) as a, claim(params) as b, claim(params) as c:  # a third job fits: K = 2 slots per GPU
        assert [a.index, b.index, c.index] == [0, 1, 0]
    assert (tmp_path / "gpu0.slot1.lock").exists()
