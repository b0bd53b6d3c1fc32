"""The settings of `skinart run --executor ray`, checked before Ray is imported, and its resource policy: how many CPUs
and GPUs Ray holds for a step, and the refusal of a CUDA step that Ray gave no GPU."""

from __future__ import annotations

import re
from dataclasses import dataclass

from skinart.errors import SkinartError
from skinart.options import choose
from skinart.recipes.plan import Task

EXECUTORS = ("local", "ray")
ADDRESS = re.compile(r"auto|(ray://)?[A-Za-z0-9_.-]+:\d{1,5}")


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: start a local Ray instance
    cpus: float = 1.0  # per step
    gpus: float | None = None  # per step; None: `step_gpus` chooses


def step_gpus(gpus_per_step: float | None, cluster_gpus: float, device: str) -> float:
    """The GPUs Ray holds for a step: none for a step on the CPU (--device cpu, or a report, which takes no device);
    else --gpus-per-step when given, or one when the cluster has a GPU."""
    if device == "cpu":
        return 0.0
    if gpus_per_step is not None:
        return gpus_per_step
    return 1.0 if cluster_gpus >= 1 else 0.0


def step_cpus(task: Task, options: RayOptions) -> float:
    """The CPUs Ray holds for a step: its recipe's `cpus` (a training nothing else can run beside), else --cpus-per-step."""
    return options.cpus if task.cpus is None else task.cpus


def task_device(task: Task) -> str:
    """The device a task's command computes on (`cpu` for a report, which computes nothing on a GPU)."""
    return "cpu" if task.command == "report" else task.params.get("device", "auto")


def refused_without_gpu(task: Task, gpu_ids: list) -> str | None:
    """The one-line refusal of a step that asks for CUDA where Ray gave it no GPU (it would fail, or with another
    device setting run on the CPU, far slower than planned); None when it may run."""
    if task_device(task) != "cuda" or gpu_ids:
        return None
    return (f"{task.name} asks for --device cuda but Ray gave it no GPU; run on a cluster with GPUs (a step then holds "
            "one) or give --gpus-per-step 1")


def executor_options(executor: str, address: str | None, cpus: float | None, gpus: float | None) -> RayOptions | None:
    """The Ray settings, checked (None for the in-process runner, which takes none of them)."""
    choose(executor, EXECUTORS, "--executor")
    given = [flag for flag, value in (("--address", address), ("--cpus-per-step", cpus), ("--gpus-per-step", gpus)) if value is not None]
    if executor == "local":
        if given:
            raise SkinartError(f"{given[0]} is for --executor ray; add --executor ray or drop {given[0]}")
        return None
    if address is not None and not ADDRESS.fullmatch(address):
        raise SkinartError(f"--address '{address}': expected auto, HOST:PORT (a cluster started with `ray start --head`) "
                           "or ray://HOST:10001 (Ray Client); leave it out to start a local Ray instance")
    if cpus is not None and not cpus > 0:
        raise SkinartError(f"--cpus-per-step {cpus:g}: a step needs a positive number of CPUs, e.g. --cpus-per-step 1")
    if gpus is not None and not gpus >= 0:
        raise SkinartError(f"--gpus-per-step {gpus:g}: expected 0 or more GPUs per step, e.g. --gpus-per-step 1")
    return RayOptions(address, 1.0 if cpus is None else cpus, gpus)
