"""Ray's CPUs and GPUs for a step, without Ray: the GPU choice (one per step on a cluster with GPUs unless the step is on
the CPU), the refusal of a step that asks for CUDA where Ray gave it no GPU (never run on the CPU instead), a step's own
CPUs and the torch threads it runs with, and the order ready steps are sent in."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
import torch

from skinart.errors import EXIT_BAD_INPUT
from skinart.recipes import ray_executor
from skinart.recipes.file import load_recipe
from skinart.recipes.plan import Task, plan
from skinart.recipes.ray_executor import step_on_worker
from skinart.recipes import ray_options
from skinart.recipes.ray_options import step_gpus

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("given, cluster, device, expected", [
    (None, 8, "auto", 1.0), (None, 8, "cuda", 1.0), (None, 8, "cpu", 0.0),  # a cluster with GPUs: one each, not for cpu
    (None, 0, "auto", 0.0), (None, 0.5, "auto", 0.0),  # no whole GPU: none
    (0.5, 8, "auto", 0.5), (0, 8, "cuda", 0.0), (2, 8, "cpu", 0.0),  # --gpus-per-step, but a cpu step holds none
])
def test_a_step_holds_one_gpu_by_default_on_a_cluster_with_gpus_unless_it_runs_on_the_cpu(given, cluster, device, expected):
    assert step_gpus(given, cluster, device) == expected


def test_a_report_holds_no_gpu():
    assert ray_options.task_device(Task(name="report", step="report", command="report", params={})) == "cpu"


def fake_ray(gpus: list, cpus: float | None = None):
    """What a worker asks Ray: its GPUs, and the CPUs it holds (default: the threads this process has)."""
    held = {"CPU": torch.get_num_threads() if cpus is None else cpus}
    context = types.SimpleNamespace(get_assigned_resources=lambda: held)
    return lambda: types.SimpleNamespace(get_gpu_ids=lambda: gpus, get_runtime_context=lambda: context)


def test_a_cuda_step_given_no_gpu_by_ray_is_refused_in_one_line_and_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ray_executor, "import_ray", fake_ray([]))
    ran = []
    monkeypatch.setattr(ray_executor, "execute_task", lambda *args: ran.append(args) or 0)
    task = Task(name="train", step="train", command="train", params={"device": "cuda", "epochs": 1})
    result = step_on_worker(task, str(tmp_path), False)
    assert ran == [] and result["code"] == EXIT_BAD_INPUT
    assert result["error"] == ("train asks for --device cuda but Ray gave it no GPU; run on a cluster with GPUs (a step "
                               "then holds one) or give --gpus-per-step 1")
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {result['error']}"
    monkeypatch.setattr(ray_executor, "import_ray", fake_ray([0]))
    assert step_on_worker(task, str(tmp_path), False)["code"] == 0 and len(ran) == 1  # with a GPU it runs


def test_a_step_holds_its_own_cpus_or_the_runs_and_runs_with_as_many_torch_threads(tmp_path, monkeypatch):
    options = ray_options.RayOptions(cpus=1.0)
    own = Task(name="train", step="train", command="train", params={}, cpus=2)
    assert ray_options.step_cpus(own, options) == 2
    assert ray_options.step_cpus(Task(name="clean", step="clean", command="evaluate", params={}), options) == 1.0
    threads, seen = torch.get_num_threads(), []
    monkeypatch.setattr(ray_executor, "execute_task", lambda *args: seen.append(torch.get_num_threads()) or 0)
    try:
        for held in (1, 2, 0.5, 1.7):  # a worker Ray reuses for steps of other sizes: each gets its own threads
            monkeypatch.setattr(ray_executor, "import_ray", fake_ray([], held))
            assert step_on_worker(own, str(tmp_path), False)["worker"].endswith(f"{max(1, int(held))} threads")
    finally:
        torch.set_num_threads(threads)
    assert seen == [1, 2, 1, 1]


def test_ready_steps_are_sent_most_awaited_first():
    """On the quickstart's graph: after training, the retraining (which combined and every defended run of either read)
    before the WebP defence, before an attack only the report reads; equals keep the recipe's order."""
    tasks = plan(load_recipe(ROOT / "recipes" / "quickstart.yaml"))
    order = ray_executor.waiting_on(tasks, ray_executor.dependencies(tasks))
    assert order["report"] == 0 and order["fgsm"] == order["clean"] == 1
    assert order["train"] == len(tasks) - 1  # every other task reads it
    assert order["retrain"] > order["llt"] > order["pgd"]
    ready = [t for t in tasks if ray_executor.dependencies(tasks)[t.name] == ["train"]]
    assert [t.name for t in sorted(ready, key=lambda t: -order[t.name])][:3] == ["retrain", "llt", "clean"]
