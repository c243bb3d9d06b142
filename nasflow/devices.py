"""Claim one device per job.

Snakemake's `--resources gpu=N` only bounds how many training jobs run at once; it never says which GPU a
job should use (snakemake#281). So each job claims one itself: a non-blocking `flock` on
one lock file per visible GPU, in order (visible = what torch sees, which honours CUDA_VISIBLE_DEVICES
as set by SLURM or the user); the first free one wins, and when all are busy the job polls every second.
The lock file is named after the GPU's UUID (`gpu-<uuid>.lock`, falling back to `gpu<i>.lock`), not its
visible index: two SLURM jobs on one node that each see "their" GPU as cuda:0 must not wait for each other. Four concurrent jobs thus land on four different GPUs. The kernel drops a lock when
its process dies, so a crashed job never leaves a GPU claimed.
"""

from __future__ import annotations

import contextlib
import fcntl
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


def try_lock(n_devices: int, lock_dir, names=None) -> tuple[int, int] | None:
    """Try once to lock one of devices 0..n_devices-1: (index, open fd holding the lock) or None.

    `names[i]` names device i's lock file (default `gpu<i>`)."""
    lock_dir = Path(lock_dir)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(_lock_names(n_devices, names)):
        fd = os.open(lock_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())  # who holds it, for humans
        return i, fd
    return None


def acquire_lock(n_devices: int, lock_dir, *, names=None, poll: float = 1.0,
                 timeout: float | None = None, on_wait=None) -> tuple[int, int]:
    """Lock the first free device of 0..n_devices-1, waiting (polling every `poll` s) while all are busy.

    Returns (index, fd); release with `release_lock(fd)`. `timeout` (seconds) raises NasflowError.
    `on_wait()` is called once when the first attempt finds every device busy.
    """
    if n_devices < 1:
        raise ValueError("n_devices must be >= 1")
    deadline = None if timeout is None else time.monotonic() + timeout
    waited = False
    while True:
        got = try_lock(n_devices, lock_dir, names)
        if got is not None:
            return got
        if not waited and on_wait is not None:
            on_wait()
        waited = True
        if deadline is not None and time.monotonic() >= deadline:
            raise NasflowError(f"all {n_devices} GPU(s) stayed busy for {timeout:g} s "
                               f"(locks in {lock_dir})")
        time.sleep(poll)


def release_lock(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def claim_device(preference: str = "auto", lock_dir=None, *, poll: float = 1.0, timeout: float | None = None):
    """Yield a torch.device for this job: "cpu", "cuda" (a GPU is required) or "auto" (a GPU if any).

    With CUDA the GPU is claimed by a lock (see the module docstring), made the current device, and
    released on exit.
    """
    if preference not in PREFERENCES:
        raise ParamsError(f"device: '{preference}' is not one of {', '.join(PREFERENCES)}")
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
    index, fd = acquire_lock(n, lock_dir, names=_gpu_lock_names(n), poll=poll, timeout=timeout)
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
