"""The same numbers wherever a step runs: a recipe run whole in one process and step by step in fresh processes
writes identical metrics (each step seeds itself from the recipe alone, never from what an earlier step drew)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from skinart.errors import SkinartError
from skinart.recipes.executor import checked_plan, task_line
from skinart.rundir import RunDir
from helpers import invoke


def _recipe(root: Path) -> dict:
    return {
        "name": "steps", "seed": 0, "data": {"loader": "dermamnist", "root": str(root)}, "model": {"name": "skin_cnn"},
        "steps": [
            {"name": "train", "command": "train", "params": {"epochs": 1, "batch_size": 32, "lr": 3e-3, "device": "cpu"}},
            # PGD's random start draws from numpy's global state before the retraining itself seeds
            {"name": "rt", "command": "defend", "params": {"checkpoint": "train", "method": "retrain", "attacks": ["fgsm", "pgd"],
                                                           "ratio": 0.5, "retrain_epochs": 1}},
        ],
    }


STEP = "import sys; from skinart.cli import main; sys.argv[0] = 'skinart'; main()"


def _numbers(run: Path) -> dict:
    """Every step's measured numbers: training's history (its epoch timings left out) and the metrics."""
    found = {}
    for path in sorted([*run.glob("*/metrics.json"), *run.glob("*/history.json")]):
        numbers = json.loads(path.read_text())
        for record in numbers if isinstance(numbers, list) else [numbers]:
            record.pop("seconds", None)
        found[f"{path.parent.name}/{path.name}"] = numbers
    return found


@pytest.mark.slow
def test_a_retrain_step_gives_the_same_metrics_run_whole_or_alone_in_a_fresh_process(derma_subset, tmp_path):
    path = tmp_path / "steps.yaml"
    path.write_text(yaml.safe_dump(_recipe(derma_subset), sort_keys=False))
    result = invoke("run", path, "--out", tmp_path / "whole")
    assert result.exit_code == 0, result.output
    _, tasks, run_dir = checked_plan(path, tmp_path / "alone")
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": os.pathsep.join(sys.path)}
    for task in tasks:
        done = subprocess.run([sys.executable, "-c", STEP, *task_line(task, run_dir, True)], env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    whole = _numbers(tmp_path / "whole")
    assert set(whole) == {"train/history.json", "rt/history.json", "rt/metrics.json"}
    assert _numbers(run_dir) == whole


def test_a_run_on_another_thread_count_is_another_run(tmp_path):
    before = torch.get_num_threads()
    with RunDir("evaluate", tmp_path / "run", setting=1).staged():
        pass
    try:
        assert RunDir("evaluate", tmp_path / "run", setting=1).done
        torch.set_num_threads(before + 1)
        again = RunDir("evaluate", tmp_path / "run", setting=1)
        assert again.config["torch_threads"] == before + 1
        with pytest.raises(SkinartError, match="already holds a different run"):  # never skipped as the same run
            again.done
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_a_deterministic_run_is_recorded_with_its_device_and_versions_and_never_skips_another(derma_subset, tmp_path):
    args = ("train", "--data-root", derma_subset, "--model", "skin_cnn", "--epochs", 1, "--out", tmp_path / "run", "--device", "cpu")
    try:
        result = invoke(*args, "--deterministic")
        assert result.exit_code == 0, result.output
        config = json.loads((tmp_path / "run" / "config.json").read_text())
        assert torch.are_deterministic_algorithms_enabled()  # switched on for the run's work
    finally:
        torch.use_deterministic_algorithms(False)
    assert config["deterministic"] is True
    assert {k: config[k] for k in ("device", "torch", "torch_threads")} == {
        "device": "cpu", "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    again = invoke(*args)  # without --deterministic: another run, refused rather than skipped
    assert again.exit_code == 2 and "already holds a different run" in again.stderr
