"""How a training job uses its machine: threads, the device it claims, packing and compilation."""

from __future__ import annotations


def configure_torch(params: dict) -> None:
    """Same thread count in every job, so results do not depend on how the work is sharded; numpy's and scipy's
    BLAS (the predictors' GP, the eigenproblems) too, so a job uses the cores the engine gave it, no more."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(params["threads"])
    threadpool_limits(params["threads"])


def claim(params: dict):
    """nasflow.devices.claim_device for this job: params' device, parallel.jobs_per_gpu jobs per GPU."""
    from nasflow.devices import claim_device

    return claim_device(params["device"], jobs_per_gpu=params.get("parallel", {}).get("jobs_per_gpu", 1))


def training_options(params: dict) -> dict:
    """How a job trains its archs, which never changes a result beyond float tolerance: `parallel.pack` archs side
    by side, `parallel.compile` (a torch.compile mode, or off)."""
    par = params.get("parallel", {})
    return {"pack": par.get("pack", 1), "compile": par.get("compile", "off")}
