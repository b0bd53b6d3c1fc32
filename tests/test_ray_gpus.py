"""Ray's GPUs for a step, without Ray: the choice (one per step on a cluster with GPUs unless the step is on the CPU)
and the refusal of a step that asks for CUDA where Ray gave it no GPU (never run on the CPU instead)."""

from __future__ import annotations

import types

import pytest

from skinart.errors import EXIT_BAD_INPUT
from skinart.recipes import ray_executor
from skinart.recipes.plan import Task
from skinart.recipes.ray_executor import step_on_worker
from skinart.recipes import ray_options
from skinart.recipes.ray_options import step_gpus


@pytest.mark.parametrize("given, cluster, device, expected", [
    (None, 8, "auto", 1.0), (None, 8, "cuda", 1.0), (None, 8, "cpu", 0.0),  # a cluster with GPUs: one each, not for cpu
    (None, 0, "auto", 0.0), (None, 0.5, "auto", 0.0),  # no whole GPU: none
    (0.5, 8, "auto", 0.5), (0, 8, "cuda", 0.0), (2, 8, "cpu", 0.0),  # --gpus-per-step, but a cpu step holds none
])
def test_a_step_holds_one_gpu_by_default_on_a_cluster_with_gpus_unless_it_runs_on_the_cpu(given, cluster, device, expected):
    assert step_gpus(given, cluster, device) == expected


def test_a_report_holds_no_gpu():
    assert ray_options.task_device(Task(name="report", step="report", command="report", params={})) == "cpu"


def test_a_cuda_step_given_no_gpu_by_ray_is_refused_in_one_line_and_not_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(ray_executor, "import_ray", lambda: types.SimpleNamespace(get_gpu_ids=lambda: []))
    ran = []
    monkeypatch.setattr(ray_executor, "execute_task", lambda *args: ran.append(args) or 0)
    task = Task(name="train", step="train", command="train", params={"device": "cuda", "epochs": 1})
    result = step_on_worker(task, str(tmp_path), False)
    assert ran == [] and result["code"] == EXIT_BAD_INPUT
    assert result["error"] == ("train asks for --device cuda but Ray gave it no GPU; run on a cluster with GPUs (a step "
                               "then holds one) or give --gpus-per-step 1")
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {result['error']}"
    monkeypatch.setattr(ray_executor, "import_ray", lambda: types.SimpleNamespace(get_gpu_ids=lambda: [0]))
    assert step_on_worker(task, str(tmp_path), False)["code"] == 0 and len(ran) == 1  # with a GPU it runs
