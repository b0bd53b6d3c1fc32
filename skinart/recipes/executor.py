"""`skinart run`: validate a recipe, write its plan.json, then run its tasks in order through the step commands.
Every task writes its own run directory atomically and is skipped when done, so a killed run resumes by
running the same command again. `execute_task` runs one task; the Ray executor (skinart.recipes.ray_executor) runs the same
function on its workers."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from skinart.commands.steps import step_group
from skinart.errors import EXIT_INTERRUPTED, SkinartError
from skinart.recipes.plan import Task, load_recipe, plan
from skinart.rundir import CONFIG_FILE, PLAN_FILE, read_plan, write_json


def _check_run_dir(run_dir: Path) -> None:
    """A recipe writes into an empty folder or its own earlier run (plan.json), never into a run it may read."""
    if not run_dir.exists() or (run_dir.is_dir() and ((run_dir / PLAN_FILE).is_file() or not any(run_dir.iterdir()))):
        return
    try:
        kind = json.loads((run_dir / CONFIG_FILE).read_text()).get("kind", "older")
    except (OSError, ValueError, AttributeError):
        raise SkinartError(f"--out {run_dir} holds files that are not a skinart run (no {PLAN_FILE}); choose another --out") from None
    raise SkinartError(f"--out {run_dir} holds a skinart {kind} run, not a recipe run (no {PLAN_FILE}); a recipe's --out is never "
                       "an input or another run: choose another --out")


def checked_plan(path: Path, out: Path | None = None, overrides: list[str] = ()) -> tuple[dict, list[Task], Path]:
    """(recipe, its tasks, the run directory), everything validated and nothing written."""
    recipe = load_recipe(path, overrides)
    tasks = plan(recipe)
    run_dir = Path(out or Path("runs") / recipe["name"])
    _check_run_dir(run_dir)
    if (run_dir / PLAN_FILE).is_file() and read_plan(run_dir)["recipe"].get("name") != recipe["name"]:
        raise SkinartError(f"{run_dir} holds a run of recipe '{read_plan(run_dir)['recipe'].get('name')}'; choose another --out")
    return recipe, tasks, run_dir


def write_plan(path: Path, recipe: dict, tasks: list[Task], run_dir: Path) -> list[dict]:
    """Write plan.json atomically; returns the tasks of the plan it replaces (none for a new run)."""
    previous = read_plan(run_dir)["tasks"] if (run_dir / PLAN_FILE).is_file() else []
    run_dir.mkdir(parents=True, exist_ok=True)
    plan_tmp = run_dir / f".{PLAN_FILE}.partial"
    write_json(plan_tmp, {"recipe": recipe, "recipe_file": str(Path(path).resolve()), "tasks": [asdict(t) for t in tasks]})
    plan_tmp.replace(run_dir / PLAN_FILE)
    return previous


def task_line(task: Task, run_dir: Path, resume: bool) -> list[str]:
    """The task's command line; without resume every step but the report replaces its earlier run."""
    return task.argv(run_dir) + ([] if resume or task.command == "report" else ["--overwrite"])


def execute_task(task: Task, run_dir: Path, resume: bool = True) -> int:
    """Run one task through its step command, in this process; its exit code (0 also when skipped as done)."""
    return step_group().main(task_line(task, run_dir, resume), prog_name="skinart", standalone_mode=False) or 0


def execute_recipe(path: Path, out: Path | None = None, overrides: list[str] = (), resume: bool = True) -> Path:
    """Validate, then run every task in order; finished tasks (same config) are skipped, so a re-run resumes."""
    recipe, tasks, run_dir = checked_plan(path, out, overrides)
    write_plan(path, recipe, tasks, run_dir)
    for i, task in enumerate(tasks, 1):
        print(f"[{i}/{len(tasks)}] {task.name}: skinart {' '.join(task_line(task, run_dir, resume))}", file=sys.stderr, flush=True)
        code = execute_task(task, run_dir, resume)
        if code == EXIT_INTERRUPTED:  # the step left nothing half-written: re-running resumes here
            raise KeyboardInterrupt
        if code:
            raise SkinartError(f"step {task.name} failed (see the error above); fix it and run the recipe again to resume")
    return run_dir
