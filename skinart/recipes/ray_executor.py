"""`skinart run --executor ray`: a recipe's tasks as Ray tasks, each sent once the tasks it reads are done, so
independent ones (a grid's members, the attacks on one checkpoint) run at the same time. Each task is
`runner.execute_task` on a worker: the same step command, run directory and seeds as the in-process runner.
Ray is an optional extra (`skinart[ray]`), imported only here and only when this executor runs."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import socket
import sys
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from skinart import __version__
from skinart.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, SkinartError
from skinart.recipes.plan import Task
from skinart.recipes.ray_options import RayOptions, refused_without_gpu, step_cpus, step_gpus, task_device
from skinart.recipes.executor import checked_plan, execute_task, task_line, write_plan
from skinart.rundir import CONFIG_FILE

EXTRA = "pip install 'skinart[ray]'"


def import_ray():
    try:
        import ray
    except ImportError:
        raise SkinartError(f"--executor ray needs Ray, skinart's optional extra: {EXTRA}") from None
    return ray


def _check_reachable(address: str) -> None:
    """Something answers at HOST:PORT (Ray itself retries an address nobody listens at for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except OSError as e:
        raise SkinartError(f"--address {address}: nothing answers at {host}:{port} ({e.strerror or e}); start the cluster "
                           "with `ray start --head` on its head node, or check the address") from None


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at `address`, or start a local instance; False when this process was already connected."""
    if address not in (None, "auto"):
        _check_reachable(address)
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address) if address else ray.init(include_dashboard=False)
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as e:
        raise SkinartError(f"cannot reach a Ray cluster at --address {address} ({_first_line(e)}); start one with "
                           "`ray start --head` on the head node, or leave --address out for a local instance") from None
    return True


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "cause", None)  # a RayTaskError carries the exception raised on the worker
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}".strip().splitlines()[0]
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


def _probe(marker: str) -> str | None:
    """On a worker: the marker's content (skinart's version on the driver) if the worker sees it."""
    path = Path(marker)
    return path.read_text() if path.is_file() else None


def _check_cluster(ray, options: RayOptions, run_dir: Path, tasks: list[Task]) -> None:
    """Some node can hold each step, and every node that can hold one sees `run_dir` (a marker file) and runs this
    skinart."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    gpus = options.gpus or 0.0
    alive = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU", 0) >= gpus]
    largest = max(tasks, key=lambda t: step_cpus(t, options))
    if not any(n["Resources"].get("CPU", 0) >= step_cpus(largest, options) for n in alive):
        whose, lower = (f" (step {largest.name}'s cpus)", ", or the step's cpus") if largest.cpus is not None else ("", "")
        raise SkinartError(f"no node of the Ray cluster has {step_cpus(largest, options):g} CPU{whose} and {gpus:g} GPU free "
                           f"for a step ({ray.cluster_resources()}); lower --cpus-per-step/--gpus-per-step{lower}, or add nodes")
    smallest = min(step_cpus(t, options) for t in tasks)
    nodes = [n for n in alive if n["Resources"].get("CPU", 0) >= smallest]
    marker = run_dir / f".skinart-ray-{uuid.uuid4().hex}"
    marker.write_text(__version__)
    try:
        for node in nodes:
            where, pinned = node["NodeManagerAddress"], NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            try:
                seen = ray.get(ray.remote(_probe).options(num_cpus=0, scheduling_strategy=pinned).remote(str(marker)), timeout=300)
            except ray.exceptions.RayError as e:
                raise SkinartError(f"the Ray worker on {where} cannot run skinart ({_first_line(e)}); install skinart "
                                   f"{__version__} with {EXTRA} on every node") from None
            if seen is None:
                raise SkinartError(f"--out {run_dir} is not visible to the Ray worker on {where}; put --out on a filesystem "
                                   "every node mounts at the same path (NFS, Lustre, a cloud file store)")
            if seen != __version__:
                raise SkinartError(f"the Ray worker on {where} runs skinart {seen}, this machine {__version__}; "
                                   "install the same skinart on every node")
    finally:
        marker.unlink(missing_ok=True)


def dependencies(tasks: list[Task]) -> dict[str, list[str]]:
    """The tasks each task reads: the runs it names, or for a report every task before it."""
    return {t.name: [u.name for u in tasks[:i]] if t.command == "report" else list(dict.fromkeys(t.uses.values()))
            for i, t in enumerate(tasks)}


def waiting_on(tasks: list[Task], deps: dict) -> dict[str, int]:
    """How many tasks read each task, directly or through others: sent in that order when several are ready (the one
    most of the graph hangs on first, a retraining before an attack only the report reads; ties in recipe order), so
    on a few CPUs the longest chain starts early. The order of sending changes no step's numbers."""
    readers: dict[str, set[str]] = {t.name: set() for t in tasks}
    for task in reversed(tasks):  # plan order is a topological order: a task's readers come after it
        for d in deps[task.name]:
            readers[d] |= {task.name} | readers[task.name]
    return {name: len(r) for name, r in readers.items()}


def already_done(tasks: list[Task], deps: dict, previous: list[dict], run_dir: Path, resume: bool) -> set[str]:
    """Tasks not sent at all: written by an earlier run of the same plan entry, reading only tasks that are done too
    (a report is always redone). A task sent anyway is still skipped by its step when its config is unchanged."""
    before = {t.get("name"): t for t in previous}
    done: set[str] = set()
    for task in tasks if resume else []:
        same = before.get(task.name) == json.loads(json.dumps(asdict(task), default=str))
        if same and task.command != "report" and (run_dir / task.name / CONFIG_FILE).is_file() and set(deps[task.name]) <= done:
            done.add(task.name)
    return done


class _Tee(io.StringIO):
    """stderr as it was, and kept: the step's one-line error is its outcome."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(text)
        return super().write(text)


def step_on_worker(task: Task, run_dir: str, resume: bool) -> dict:
    """On a Ray worker: `execute_task`, timed, with the worker's name (and torch threads: Ray sets OMP_NUM_THREADS to the
    step's CPUs, and the numbers match an in-process run with as many threads) and the step's error line; a step asking
    for CUDA without a GPU from Ray is refused, not run."""
    ray = import_ray()
    # a worker sets OMP_NUM_THREADS once, from the first task it runs: a step's own CPUs are set for each step
    torch.set_num_threads(max(1, math.floor(ray.get_runtime_context().get_assigned_resources().get("CPU", 1))))
    worker, start = f"{socket.gethostname()} pid {os.getpid()}, {torch.get_num_threads()} threads", time.time()
    refusal = refused_without_gpu(task, ray.get_gpu_ids())
    if refusal:
        print(f"error: {refusal}", file=sys.stderr, flush=True)
        return {"code": EXIT_BAD_INPUT, "worker": worker, "seconds": 0.0, "error": refusal}
    print(f"started {task.name} on {worker}: skinart {' '.join(task_line(task, Path(run_dir), resume))}", file=sys.stderr, flush=True)
    with contextlib.redirect_stderr(_Tee(sys.stderr)) as captured:
        code = execute_task(task, Path(run_dir), resume)
    errors = [line[len("error: "):] for line in captured.getvalue().splitlines() if line.startswith("error: ")]
    return {"code": code, "worker": worker, "seconds": time.time() - start,
            "error": (errors[-1] if errors else f"exit code {code}") if code else None}


def _outcome(ray, ref) -> dict:
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as e:  # a bug in the step (its traceback is in the worker's log) or a lost worker
        return {"code": 1, "worker": "a Ray worker", "error": _first_line(e)}


def _show(results: dict, task: Task, total: int) -> None:
    result = results[task.name]
    counted = f"[{sum(1 for r in results.values() if 'code' in r)}/{total}] {task.name}"
    if result["code"]:
        print(f"{counted}: failed on {result['worker']}: {result['error']}", file=sys.stderr, flush=True)
    else:
        print(f"{counted}: finished on {result['worker']} in {result['seconds']:.1f} s", file=sys.stderr, flush=True)


def _send_ready(remote, waiting: list[Task], *, deps: dict, results: dict, run_dir: Path, resume: bool) -> dict:
    """Send every waiting task whose inputs are done (`remote(task)`: the Ray function with the task's resources); mark
    those reading a failed task as not run. Returns ref -> task."""
    sent = {}
    for task in list(waiting):
        failed = [d for d in deps[task.name] if d in results and (results[d].get("code") or "blocked" in results[d])]
        if failed:
            results[task.name] = {"blocked": failed[0]}
            print(f"{task.name}: not run, it reads {failed[0]}, which did not finish", file=sys.stderr, flush=True)
        elif all(d in results for d in deps[task.name]):
            sent[remote(task).remote(task, str(run_dir), resume)] = task
        else:
            continue
        waiting.remove(task)
    return sent


def _cancel(ray, running: dict, run_dir: Path) -> None:
    """Ctrl-C: cancel the tasks (each removes its staged directory), then sweep what a killed one left."""
    for ref in running:
        ray.cancel(ref)
    ray.wait(list(running), num_returns=len(running), timeout=60)
    for partial in run_dir.glob(".*.partial*"):
        shutil.rmtree(partial, ignore_errors=True) if partial.is_dir() else partial.unlink(missing_ok=True)


def _run_graph(ray, tasks: list[Task], *, deps: dict, done: set[str], run_dir: Path, resume: bool, options: RayOptions) -> dict:
    """name -> outcome: {} skipped, {"blocked": input} not run, else {"code", "worker", "seconds", "error"}."""
    step, cluster_gpus = ray.remote(step_on_worker), ray.cluster_resources().get("GPU", 0)

    def remote(task: Task):
        return step.options(num_cpus=step_cpus(task, options), num_gpus=step_gpus(options.gpus, cluster_gpus, task_device(task)))

    results: dict = {name: {} for name in done}
    order = waiting_on(tasks, deps)
    waiting, running = sorted((t for t in tasks if t.name not in done), key=lambda t: -order[t.name]), {}
    try:
        while waiting or running:
            running |= _send_ready(remote, waiting, deps=deps, results=results, run_dir=run_dir, resume=resume)
            if not running:
                continue
            ready, _ = ray.wait(list(running), num_returns=1)
            task = running.pop(ready[0])
            results[task.name] = _outcome(ray, ready[0])
            if results[task.name]["code"] == EXIT_INTERRUPTED:
                raise KeyboardInterrupt
            _show(results, task, len(tasks) - len(done))
    except KeyboardInterrupt:
        _cancel(ray, running, run_dir)
        raise
    return results


def longest_path(tasks: list[Task], deps: dict, seconds: dict) -> tuple[float, list[str]]:
    """The chain of dependent tasks with the most seconds of work (skipped tasks count 0): the floor on wall time."""
    best: dict[str, tuple[float, list[str]]] = {}
    for task in tasks:
        before = max((best[d] for d in deps[task.name]), key=lambda b: b[0], default=(0.0, []))
        best[task.name] = (before[0] + seconds.get(task.name, 0.0), before[1] + [task.name])
    total, path = max(best.values(), key=lambda b: b[0], default=(0.0, []))
    return total, [name for name in path if name in seconds]


def summary(tasks: list[Task], deps: dict, results: dict, wall: float) -> str:
    ran = {n: r["seconds"] for n, r in results.items() if "seconds" in r}
    finished = [r for r in results.values() if "code" in r]
    failed = sum(1 for r in finished if r["code"])
    blocked = sum(1 for r in results.values() if "blocked" in r)
    total, path = longest_path(tasks, deps, ran)
    return (f"ray: {len(finished) - failed} run, {sum(1 for r in results.values() if not r)} skipped (done), {failed} failed, "
            f"{blocked} not run (an input failed); wall time {wall:.1f} s; longest path {total:.1f} s: {' → '.join(path) or '-'}")


def _prepared_dir(ray, options: RayOptions, run_dir: Path, tasks: list[Task]) -> None:
    """Create `run_dir` for the visibility check; a refused or interrupted check leaves nothing it created."""
    created = next((p for p in [*reversed(run_dir.parents), run_dir] if not p.exists()), None)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        _check_cluster(ray, options, run_dir, tasks)
    except BaseException:  # refused or interrupted
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def execute_on_ray(path: Path, out: Path | None, overrides: list[str], resume: bool, options: RayOptions) -> Path:
    """`runner.execute_recipe` on a Ray cluster: validate, then send each task once its inputs are done; a failed task
    stops only the tasks that read it, and the run ends with an error naming it."""
    ray = import_ray()
    recipe, tasks, run_dir = checked_plan(path, out, overrides)
    run_dir = run_dir.resolve()  # the workers' view of the same shared path
    started = _connect(ray, options.address)
    try:
        _prepared_dir(ray, options, run_dir, tasks)
        deps, clock = dependencies(tasks), time.monotonic()
        done = already_done(tasks, deps, write_plan(path, recipe, tasks, run_dir), run_dir, resume)
        results = _run_graph(ray, tasks, deps=deps, done=done, run_dir=run_dir, resume=resume, options=options)
        print(summary(tasks, deps, results, time.monotonic() - clock), file=sys.stderr, flush=True)
    finally:
        if started:
            ray.shutdown()
    failed = [(name, r["error"]) for name, r in results.items() if r.get("code")]
    if failed:
        more = f" (and {len(failed) - 1} more, above)" if len(failed) > 1 else ""
        raise SkinartError(f"step {failed[0][0]} failed: {failed[0][1]}{more}; the steps not reading it finished: "
                           "fix it and run the recipe again to resume")
    return run_dir
