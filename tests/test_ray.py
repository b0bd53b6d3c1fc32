"""`skinart run --executor ray` on a local Ray instance (2 CPUs): the same metrics as the in-process runner, resume,
a failing step stopping only its dependents, and the one-line refusals (the missing extra, bad options, a cluster
that cannot hold a step or does not see --out). Skipped without the `ray` extra."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile

import pytest
import torch

from skinart.recipes import ray_executor
from helpers import invoke
from tests.test_recipes import tiny_recipe, write

ray = pytest.importorskip("ray")

WALL_CLOCK = ("seconds", "fit_seconds")


@pytest.fixture(scope="module")
def local_ray():
    """One small local instance for the module (the executor joins a connected one and leaves it connected). Its temp
    folder is short (socket paths) and outside $HOME; token auth off, as it would write ~/.ray/auth_token."""
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
        yield
        ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def small_recipe(root) -> dict:
    recipe = tiny_recipe(root)
    recipe["name"] = "small"
    recipe["steps"] = [s for s in recipe["steps"] if s["name"] in ("train", "clean", "fgsm", "llt", "report")]
    recipe["steps"][0]["params"]["epochs"] = 1
    recipe["steps"][-1]["params"]["bootstrap"] = 20
    recipe["reference"] = {}
    return recipe


def metrics(run) -> dict:
    """Every metrics.json of a run, wall-clock fields left out."""
    return {str(p.relative_to(run)): {k: v for k, v in json.loads(p.read_text()).items() if k not in WALL_CLOCK}
            for p in sorted(run.rglob("metrics.json"))}


def summary(stderr: str) -> str:
    return next(line for line in stderr.splitlines() if line.startswith("ray: "))


@pytest.fixture(scope="module")
def runs(derma_subset, tmp_path_factory, local_ray):
    """The small recipe in process and on Ray. A Ray step with --cpus-per-step 1 runs with one torch thread (Ray sets
    OMP_NUM_THREADS), so the in-process run uses one too: the float sums, hence the weights, then agree bit for bit."""
    root = tmp_path_factory.mktemp("ray")
    path = write(root / "small.yaml", small_recipe(derma_subset))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        local = invoke("run", path, "--out", root / "local")
    finally:
        torch.set_num_threads(threads)
    assert local.exit_code == 0, local.output
    result = invoke("run", path, "--out", root / "ray", "--executor", "ray", "--cpus-per-step", 1)
    assert result.exit_code == 0, result.output
    return path, root, result


@pytest.mark.slow
def test_ray_run_gives_the_in_process_metrics(runs):
    _, root, result = runs
    on_ray = metrics(root / "ray")
    assert len(on_ray) == 4 and on_ray == metrics(root / "local")  # clean, 2 fgsm, llt
    assert (root / "ray" / "report.md").is_file() and not list((root / "ray").glob(".*"))
    assert result.stderr.count(": finished on ") == 6 and "1 threads" in result.stderr
    assert "ray: 6 run, 0 skipped (done), 0 failed" in summary(result.stderr)
    assert "longest path" in summary(result.stderr) and "train → " in summary(result.stderr)


@pytest.mark.slow
def test_ray_rerun_sends_only_what_is_not_done(runs):
    path, root, _ = runs
    run = root / "ray"
    before = {p: p.stat().st_mtime_ns for p in run.glob("*/metrics.json")}
    result = invoke("run", path, "--out", run, "--executor", "ray")
    assert result.exit_code == 0, result.output
    assert "ray: 1 run, 5 skipped (done)" in summary(result.stderr)  # the report is always redone
    assert {p: p.stat().st_mtime_ns for p in run.glob("*/metrics.json")} == before
    # killed while attacking: one step absent, its staged directory left behind; resumed in place
    uninterrupted = metrics(run)
    shutil.rmtree(run / "fgsm@eps=8_255")
    (run / ".fgsm@eps=8_255.partial-999").mkdir()
    result = invoke("run", path, "--out", run, "--executor", "ray", "--cpus-per-step", 1)
    assert result.exit_code == 0, result.output
    assert "ray: 2 run, 4 skipped (done)" in summary(result.stderr)
    assert metrics(run) == uninterrupted and not list(run.glob(".*partial*"))


@pytest.mark.slow
def test_a_failing_step_stops_its_dependents_and_the_rest_finishes(runs, tmp_path):
    _, root, _ = runs
    checkpoint = str(root / "ray" / "train")  # an existing checkpoint directory, read by every step
    recipe = small_recipe(root)
    recipe["name"], recipe["data"] = "failing", {"loader": "dermamnist"}
    recipe["steps"] = [
        {"name": "clean", "command": "evaluate", "params": {"checkpoint": checkpoint}},
        {"name": "llt", "command": "defend", "params": {"checkpoint": checkpoint, "method": "llt", "data_root": str(tmp_path / "gone.npz")}},
        {"name": "llt_fgsm", "command": "attack", "params": {"checkpoint": "llt", "method": "fgsm"}},
        {"name": "report", "command": "report", "params": {"bootstrap": 0}},
    ]
    result = invoke("run", write(tmp_path / "failing.yaml", recipe), "--out", tmp_path / "out", "--executor", "ray")
    assert result.exit_code == 2, result.output
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step llt failed: ") and "gone.npz" in last and "run the recipe again" in last
    assert "ray: 1 run, 0 skipped (done), 1 failed, 2 not run" in summary(result.stderr)
    assert "llt_fgsm: not run, it reads llt" in result.stderr
    assert (tmp_path / "out" / "clean" / "metrics.json").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["clean", "plan.json"]


def test_without_the_extra_the_ray_executor_is_one_line(tmp_path, derma_subset, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    result = invoke("run", write(tmp_path / "r.yaml", small_recipe(derma_subset)), "--out", tmp_path / "out", "--executor", "ray")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "pip install 'skinart[ray]'" in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["--executor", "ray", "--address", "nowhere"], "--address 'nowhere': expected auto, HOST:PORT"),
    (["--executor", "ray", "--cpus-per-step", "0"], "--cpus-per-step 0: a step needs a positive number of CPUs"),
    (["--executor", "ray", "--gpus-per-step", "-1"], "--gpus-per-step -1: expected 0 or more GPUs"),
    (["--executor", "dask"], "unknown --executor 'dask'; choose one of local, ray"),
    (["--address", "auto"], "--address is for --executor ray"),
])
def test_bad_ray_options_are_one_line(tmp_path, derma_subset, args, expected):
    result = invoke("run", write(tmp_path / "r.yaml", small_recipe(derma_subset)), "--out", tmp_path / "out", *args)
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert expected in result.stderr and not (tmp_path / "out").exists()


def test_a_cluster_that_cannot_hold_a_step_or_see_out_is_refused(tmp_path, derma_subset, local_ray, monkeypatch):
    path = write(tmp_path / "r.yaml", small_recipe(derma_subset))
    result = invoke("run", path, "--out", tmp_path / "new" / "out", "--executor", "ray", "--address", "127.0.0.1:1")
    assert result.exit_code == 2 and "--address 127.0.0.1:1: nothing answers at 127.0.0.1:1" in result.stderr
    result = invoke("run", path, "--out", tmp_path / "new" / "out", "--executor", "ray", "--gpus-per-step", 1)
    assert result.exit_code == 2 and "no node of the Ray cluster has 1 CPU and 1 GPU" in result.stderr
    recipe = small_recipe(derma_subset)
    recipe["steps"][0]["cpus"] = 3  # the local instance has 2
    result = invoke("run", write(tmp_path / "big.yaml", recipe), "--out", tmp_path / "new" / "out", "--executor", "ray")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert f"no node of the Ray cluster has 3 CPU (step {recipe['steps'][0]['name']}'s cpus) and 0 GPU" in result.stderr

    def blind(marker):  # a worker on another machine, without the shared filesystem
        return None

    monkeypatch.setattr(ray_executor, "_probe", blind)
    result = invoke("run", path, "--out", tmp_path / "new" / "out", "--executor", "ray")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "is not visible to the Ray worker on" in result.stderr and not (tmp_path / "new").exists()
