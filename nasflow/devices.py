"""Claim a device per job: a whole GPU, or one of its `jobs_per_gpu` slots.

Snakemake's `--resources gpu=N` only bounds how many training jobs run at once; it never says which GPU a
job should use (snakemake#281). So each job claims one itself with a non-blocking `flock` on lock files in
one directory (visible GPUs = what torch sees, which honours CUDA_VISIBLE_DEVICES as set by SLURM or the
user); when every slot is busy the job polls every second. With `jobs_per_gpu` K = 1 there is one lock per
GPU (`gpu-<uuid>.lock`) and the first free GPU wins; with K > 1 each GPU has K slot locks
(`gpu-<uuid>.slot<j>.lock`, j < K) and a job takes the lowest free slot of the least-loaded GPU, so jobs
spread over the GPUs before they stack: never more than K on one GPU, at most G·K at once on G GPUs. The
load count and the pick happen under one short-lived `claim.lock`, so jobs starting together still spread.
Locks are named after the GPU's UUID (falling back to `gpu<i>`), not its visible index: two SLURM jobs on
one node that each see "their" GPU as cuda:0 must not wait for each other. The kernel drops a lock when its
process dies, so a crashed job never leaves a slot claimed. Jobs sharing a lock directory must agree on K
(K = 1 and K = 2 use different files).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import time
from pathlib import Path

import torch

from nasflow.errors import NasflowError, ParamsError

PREFERENCES = ("auto", "cpu", "cuda")


def default_lock_dir() -> Path:
    env = os.environ.get("NASFLOW_LOCK_DIR")
    return Path(env) if env else Path(f"/tmp/nasflow-locks-{os.getuid()}")


def _lock_names(n_devices: int, names) -> list[str]:
    names = [f"gpu{i}" for i in range(n_devices)] if names is None else list(names)
    if len(names) != n_devices:
        raise ValueError(f"{len(names)} lock names for {n_devices} devices")
    return names


def _try_flock(path: Path) -> int | None:
    """An open fd holding `path`'s exclusive lock, or None when another holder has it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _mark_holder(fd: int) -> int:
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for humans
    return fd


def try_lock(n_devices: int, lock_dir, names=None, *, slots: int = 1) -> tuple[int, int] | None:
    """Try once to lock a slot of one of devices 0..n_devices-1: (index, open fd holding the lock) or None.

    `names[i]` names device i's lock files (default `gpu<i>`); each device has `slots` slots. With one slot
    the first free device wins; with more, the lowest free slot of the least-loaded device (lowest index
    among equals)."""
    if slots < 1:
        raise ValueError("slots must be >= 1")
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    names = _lock_names(n_devices, names)
    if slots == 1:  # every free device is idle, so the first is as good as any
        for i, name in enumerate(names):
            fd = _try_flock(lock_dir / f"{name}.lock")
            if fd is not None:
                return i, _mark_holder(fd)
        return None
    mutex = os.open(lock_dir / "claim.lock", os.O_RDWR | os.O_CREAT, 0o666)
    free: list[list[int]] = []  # per device, fds holding its free slots while the load is counted
    chosen = None
    try:
        # one counter at a time: two jobs starting together must not both see the same idle GPU and stack on it
        fcntl.flock(mutex, fcntl.LOCK_EX)
        for name in names:
            free.append([])
            for j in range(slots):
                fd = _try_flock(lock_dir / f"{name}.slot{j}.lock")
                if fd is not None:
                    free[-1].append(fd)
        index = max(range(n_devices), key=lambda i: len(free[i]))  # least loaded; the lowest index among equals
        if free[index]:
            chosen = free[index].pop(0)
    finally:
        for fd in itertools.chain.from_iterable(free):
            release_lock(fd)
        os.close(mutex)  # drops the mutex
    return None if chosen is None else (index, _mark_holder(chosen))


def acquire_lock(n_devices: int, lock_dir, *, names=None, slots: int = 1, poll: float = 1.0,
                 timeout: float | None = None, on_wait=None) -> tuple[int, int]:
    """Lock a slot of one of devices 0..n_devices-1 (see try_lock), waiting (polling every `poll` s) while all
    are busy.

    Returns (index, fd); release with `release_lock(fd)`. `timeout` (seconds) raises NasflowError.
    `on_wait()` is called once when the first attempt finds every slot busy.
    """
    if n_devices < 1:
        raise ValueError("n_devices must be >= 1")
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        got = try_lock(n_devices, lock_dir, names, slots=slots)
        if got is not None:
            return got
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        if deadline is not None and time.monotonic() >= deadline:
            each = f" ({slots} jobs each)" if slots > 1 else ""
            raise NasflowError(f"all {n_devices} GPU(s){each} stayed busy for {timeout:g} s "
                               f"(locks in {lock_dir})")
        time.sleep(poll)


def release_lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_device(preference: str = "auto", lock_dir=None, *, poll: float = 1.0, timeout: float | None = None,
                 jobs_per_gpu: int = 1):
    """Yield a torch.device for this job: "cpu", "cuda" (a GPU is required) or "auto" (a GPU if any).

    With CUDA one of the GPU's `jobs_per_gpu` slots is claimed by a lock (see the module docstring), the GPU
    made the current device, and the slot released on exit.
    """
    if preference not in PREFERENCES:
        raise ParamsError(f"device: '{preference}' is not one of {', '.join(PREFERENCES)}")
    if isinstance(jobs_per_gpu, bool) or not isinstance(jobs_per_gpu, int) or jobs_per_gpu < 1:
        raise ParamsError(f"parallel.jobs_per_gpu: {jobs_per_gpu!r} is not an integer >= 1")
    if preference == "cpu":
        yield torch.device("cpu")
        return
    has_cuda = torch.cuda.is_available()
    if not has_cuda:
        if preference == "cuda":
            raise NasflowError("device: cuda requested but no CUDA device is available "
                               f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')})")
        yield torch.device("cpu")
        return
    lock_dir = Path(lock_dir) if lock_dir is not None else default_lock_dir()
    n = torch.cuda.device_count()
    index, fd = acquire_lock(n, lock_dir, names=_gpu_lock_names(n), slots=jobs_per_gpu, poll=poll,
                             timeout=timeout)
    try:
        torch.cuda.set_device(index)
        yield torch.device("cuda", index)
    finally:
        release_lock(fd)


def _gpu_lock_names(n: int) -> list[str]:
    names = []
    for i in range(n):
        try:
            uuid = str(torch.cuda.get_device_properties(i).uuid)
        except Exception:  # older torch / odd driver: the visible index is the best we have
            uuid = ""
        names.append(f"gpu-{uuid}" if uuid else f"gpu{i}")
    return names


def describe(device) -> str:
    """A short human description: "cpu (2 threads)" or "NVIDIA H100 80GB HBM3 (cuda:0)"."""
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"{torch.cuda.get_device_name(index)} (cuda:{index})"
    return f"{device.type} ({torch.get_num_threads()} threads)"
