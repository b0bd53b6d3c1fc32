"""Recipes: one YAML file replays a study as an ordered list of skinart commands; `plan` validates it and
expands it into tasks (one per step, or per member of a step's grid). The runner is skinart.recipes.executor.

The schema of a step's `params` *is* the signature of its command: validation and argument conversion
go through the Typer/click command itself, so a recipe step and a command line can never disagree.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import typer

from skinart.commands.steps import STEP_COMMANDS, step_group
from skinart.defences.table import DEFENCES, defence_takes
from skinart.errors import SkinartError
from skinart.recipes.file import GLOBAL_PATHS, STEP_KEYS, expect, load_recipe, recipe_globals, unknown
from skinart.report.rows import ROW_METRICS
from skinart.commands.checks import check_step
from skinart.recipes.tasks import READS, Task, check_sources, writes

# Options naming another run directory: a step name there means that step's output.
REFERENCE_OPTIONS = ("checkpoint", "source_checkpoint", "retrained", "poisoned_run", "adversarial_run")
RUNNER_OPTIONS = ("out", "overwrite")  # set by the runner, never by a recipe


def _options(command) -> dict:
    return {p.name: p for p in command.params if p.param_type_name == "option" and p.name not in RUNNER_OPTIONS + ("help",)}


def _slug(value) -> str:
    return re.sub(r"[^A-Za-z0-9.+-]", "_", str(value))


def _check_shape(path: str, option, value) -> None:
    """What the command line cannot express: a flag needs true/false, only --param takes a mapping."""
    if option.is_flag != isinstance(value, bool):
        raise SkinartError(f"{path}: expected {'true or false' if option.is_flag else 'a value, not true/false'}, got {value!r}")
    if isinstance(value, dict) != bool(option.multiple):
        raise SkinartError(f"{path}: expected {'a mapping of ART keywords' if option.multiple else 'one value, not a mapping'}, got {value!r}")


def _parsed(command, task: Task):
    """The task's command line parsed exactly as `skinart` will: the context with its options."""
    return command.make_context(task.command, task.argv(Path("runs"))[1:])


def _check_parsed(task: Task, ctx) -> None:
    given = {name for name in ctx.params if ctx.get_parameter_source(name).name != "DEFAULT"}
    check_step(task.command, ctx.params, given)


def _parse(path: str, command, task: Task, grid: dict):
    """`_parsed`, a parse error (a type, a missing option) naming its key path."""
    try:
        return _parsed(command, task)
    except typer.TyperException as e:
        name = getattr(getattr(e, "param", None), "name", None)
        where = f"{path}.grid.{name}" if name in grid else f"{path}.params.{name}" if name else path
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        raise SkinartError(f"{where}: {message}") from None


def _check_task(path: str, command, task: Task, step: dict) -> None:
    """Build the task's whole configuration as its command will (commands.checks), naming the key an error comes from."""
    ctx = _parse(path, command, task, step.get("grid", {}))  # its errors name their key path already
    try:
        _check_parsed(task, ctx)
    except SkinartError as e:
        raise SkinartError(f"{_culprit(path, command, task, step, str(e))}: {e}") from None


def _culprit(path: str, command, task: Task, step: dict, error: str) -> str:
    """The key path of the recipe value behind `error`: of the keys the message names (by flag, or by the value quoted:
    "unknown dataset 'ham9'"), or else of all the task's keys, the first without which the task passes; else the first
    key named; else the step."""
    options, grid = _options(command), step.get("grid", {})
    keys = [k for k in dict.fromkeys(list(grid) + list(task.params)) if k not in REFERENCE_OPTIONS]
    named = [k for k in keys if f"'{task.params[k]}'" in error
             or any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", error) for flag in options[k].opts)]
    key = next((k for k in named or keys if _passes(command, task, k)), named[0] if named else None)
    if key is None:
        return path
    if key in grid:
        return f"{path}.grid.{key}[{grid[key].index(task.params[key])}]"
    return f"{path}.params.{key}" if key in step.get("params", {}) else GLOBAL_PATHS.get(key, path)


def _passes(command, task: Task, key: str) -> bool:
    """Whether the task passes every check with `key` left at the command's default."""
    without = Task(task.name, task.step, task.command, {k: v for k, v in task.params.items() if k != key}, uses=task.uses)
    try:
        _check_parsed(without, _parsed(command, without))
    except (SkinartError, typer.TyperException):
        return False
    return True


def _check_step(path: str, step, members: dict) -> tuple[str, str]:
    """The step's keys, name and command; returns (name, command)."""
    expect(path, step, dict)
    for key, value in step.items():
        if key not in STEP_KEYS:
            raise unknown(path, key, STEP_KEYS)
        expect(f"{path}.{key}", value, STEP_KEYS[key])
    name, command = step.get("name"), step.get("command")
    if not name or not re.fullmatch(r"[A-Za-z0-9_.+-]+", name):
        raise SkinartError(f"{path}.name: expected a step name of letters, digits and _.+-, got {name!r}")
    if name in members:
        raise SkinartError(f"{path}.name: step '{name}' is defined twice; step names must be unique")
    if command not in STEP_COMMANDS:
        raise SkinartError(f"{path}.command: expected one of {', '.join(STEP_COMMANDS)}, got {command!r}")
    if "cpus" in step and not (0 < step["cpus"] < math.inf):  # `not`: NaN fails too
        raise SkinartError(f"{path}.cpus: expected a positive number of CPUs (what the step holds under --executor ray), "
                           f"got {step['cpus']!r}; e.g. cpus: 2")
    return name, command


def _step_options(path: str, step: dict, options: dict, globals_: dict) -> tuple[dict, dict]:
    """(params with the recipe-wide settings filled in, grid), every key an option of the step's command."""
    params, grid = dict(step.get("params", {})), dict(step.get("grid", {}))
    for where, keys in (("params", params), ("grid", grid)):
        for key in keys:
            if key not in options:
                raise unknown(f"{path}.{where}", key, options)
            if key in params and key in grid:
                raise SkinartError(f"{path}.grid.{key}: also set in params; set it in one place")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SkinartError(f"{path}.grid.{key}: expected a non-empty list of values, got {values!r}")
    # a recipe-wide setting reaches the steps that take it: of a defend step, the options its defence takes (data.balance
    # reaches training under noise, not a retraining, which keeps its checkpoint's)
    method = params.get("method")
    takes = defence_takes(method) if step.get("command") == "defend" and method in DEFENCES else set(options)
    for key, value in globals_.items():
        if key in options and key in takes and key not in params and key not in grid:
            params[key] = value
    return params, grid


def _fan_out(path: str, params: dict, grid: dict, options: dict, members: dict) -> dict:
    """key -> list of (value, referenced task name): a grid key takes each of its values; a reference option naming
    an earlier step takes each of that step's tasks; anything else a reference names must be a directory."""
    choices = {k: [(v, None) for v in grid[k]] for k in grid}
    for key in [k for k in REFERENCE_OPTIONS if k in options]:
        refs = choices.pop(key, [(params.pop(key), None)] if key in params else [])
        for j, (target, _) in enumerate(refs):
            where = f"{path}.grid.{key}[{j}]" if key in grid else f"{path}.params.{key}"
            if not isinstance(target, str):
                raise SkinartError(f"{where}: expected a step name or a directory, got {target!r}")
            if target not in members and not Path(target).is_dir():
                raise SkinartError(f"{where}: '{target}' is neither an earlier step ({', '.join(members) or 'none yet'}) "
                                   "nor an existing directory")
            for task in members.get(target, []):
                if READS[key] not in writes(task, members):
                    raise SkinartError(f"{where}: step '{target}' ({task.command} {task.params.get('method', '')}) writes no "
                                       f"{READS[key]}; name a step that does")
        if refs:
            choices[key] = [(None, t.name) for target, _ in refs if target in members for t in members[target]] + \
                           [(target, None) for target, _ in refs if target not in members]
    return choices


def _check_values(path: str, step: dict, params: dict, grid: dict, options: dict) -> None:
    """Flags and mappings, each error naming its key path (a recipe-wide setting's own: `model.pretrained`; the
    values themselves: `_check_task`)."""
    for key, value in params.items():
        where = f"{path}.params.{key}" if key in step.get("params", {}) else GLOBAL_PATHS.get(key, f"{path}.params.{key}")
        _check_shape(where, options[key], value)
    for key in grid:
        if key not in REFERENCE_OPTIONS:
            for j, value in enumerate(grid[key]):
                _check_shape(f"{path}.grid.{key}[{j}]", options[key], value)


def _grid_tasks(name: str, command: str, params: dict, grid: dict, choices: dict, cpus: float | None) -> list[Task]:
    """One task per combination of the choices (the product of a grid over several keys), named step@key=value…"""
    keys, tasks = list(choices), []
    for combo in itertools.product(*(choices[k] for k in keys)):
        task_params, uses, label = dict(params), {}, []
        for key, (value, ref) in zip(keys, combo):
            if ref is not None:
                uses[key], task_params[key] = ref, ref
                if len(choices[key]) > 1:
                    label.append(ref)
            else:
                task_params[key] = value
                if key in grid:
                    label.append(f"{key}={_slug(value)}")
        grid_values = {k: task_params[k] for k in keys if len(choices[k]) > 1 or k in grid}
        tasks.append(Task(name="@".join([name] + label), step=name, command=command, params=task_params, grid=grid_values, uses=uses,
                          cpus=cpus))
    return tasks


def plan(recipe: dict) -> list[Task]:
    """Validate a recipe and expand it into tasks; every error names its key path."""
    globals_ = recipe_globals(recipe)
    commands = step_group().commands
    tasks: list[Task] = []
    members: dict[str, list[Task]] = {}  # step name -> its tasks
    for i, step in enumerate(recipe["steps"]):
        path = f"steps[{i}]"
        name, command = _check_step(path, step, members)
        options = _options(commands[command])
        params, grid = _step_options(path, step, options, globals_)
        choices = _fan_out(path, params, grid, options, members)
        _check_values(path, step, params, grid, options)
        members[name] = _grid_tasks(name, command, params, grid, choices, step.get("cpus"))
        for task in members[name]:
            _check_task(path, commands[command], task, step)
            check_sources(path, step, task, members)
        tasks += members[name]
    _check_references(recipe.get("reference", {}), tasks)
    return tasks


def _check_references(reference: dict, tasks: list[Task]) -> None:
    names = {t.name for t in tasks} | {t.step for t in tasks}
    for task_name, values in reference.items():
        if task_name not in names:
            raise unknown("reference", task_name, sorted(names))
        expect(f"reference.{task_name}", values, dict)
        for metric, value in values.items():
            if metric not in ROW_METRICS:
                raise unknown(f"reference.{task_name}", metric, ROW_METRICS)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise SkinartError(f"reference.{task_name}.{metric}: expected a fraction in [0, 1] (70.19 % is 0.7019), got {value!r}")


def validate(path: Path, overrides: list[str] = ()) -> str:
    recipe = load_recipe(path, overrides)
    try:
        tasks = plan(recipe)
    except SkinartError as e:
        raise SkinartError(f"{path}: {e}") from None
    return f"{path}: ok — '{recipe['name']}', {len(recipe['steps'])} steps, {len(tasks)} runs"
