"""A recipe's tasks: one command invocation each (a step, or one member of its grid) as its command line, and what
each writes for the tasks that read it: a checkpoint (one skinart can retrain, one skinart trained), a retrained
checkpoint, a poisoned run, an adversarial test set. `check_sources` refuses before the first step what a run would
refuse at its start: a retraining or a poisoning of a model it cannot retrain, combined's --checkpoint that is not the
one its --retrained was retrained from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from skinart.attacks.table import check_method
from skinart.defences.table import check_defence
from skinart.errors import SkinartError
from skinart.models.foreign import TRAINABLE
from skinart.models.model_files import detect_format


@dataclass
class Task:
    """One command invocation of a run: a step, or one member of a step's grid."""

    name: str
    step: str
    command: str
    params: dict
    grid: dict = field(default_factory=dict)  # the grid values (and referenced members) that made this task
    uses: dict = field(default_factory=dict)  # reference option -> task name it reads
    cpus: float | None = None  # the CPUs it holds under --executor ray (None: --cpus-per-step)

    def argv(self, run_dir: Path) -> list[str]:
        # every command writes its own run directory; report reads the whole run instead
        args = [self.command] + ([str(run_dir)] if self.command == "report" else ["--out", str(run_dir / self.name)])
        params = {k: str(run_dir / self.uses[k]) if k in self.uses else v for k, v in self.params.items()}
        return args + [a for key, value in params.items() for a in cli_args(key, value)]


def cli_args(key: str, value) -> list[str]:
    """A recipe value as command-line words: lists comma-joined, mappings as repeated key=value, flags as --x/--no-x."""
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return [flag if value else "--no-" + key.replace("_", "-")]
    if isinstance(value, dict):  # --param: ART keywords
        return [w for k, v in value.items() for w in (flag, f"{k}={v}")]
    if isinstance(value, list):
        return [flag, ",".join(map(str, value))]
    return [flag, str(value)]


RETRAINABLE = "checkpoint skinart can retrain"
SKINART_TRAINED = "checkpoint trained by skinart"
# what each reference option reads, and what each kind of defence writes
READS = {"checkpoint": "checkpoint", "source_checkpoint": "checkpoint", "retrained": "retrained checkpoint",
         "poisoned_run": "poisoned run", "adversarial_run": "adversarial test set"}
_DEFENCE_WRITES = {"preprocess": {"checkpoint"}, "combined": {"checkpoint"},
                   "retrain": {"checkpoint", "retrained checkpoint", RETRAINABLE}, "detect": set(),
                   "noise": {"checkpoint", RETRAINABLE}}
# why a checkpoint lacks what a retraining or a poisoning reads, and what to do
_LACKS = {RETRAINABLE: "an imported program or archive (import the model's state dict with --model to retrain it) or "
                       "weights behind a preprocessing defence (retrain its source)",
          SKINART_TRAINED: "a model trained outside skinart, whose training cannot be repeated; name a step that trains"}


def writes(task: Task, members: dict[str, list[Task]]) -> set[str]:
    """What an (already validated) task's run directory is, for the tasks that read it. A defence inherits from the
    checkpoint it defends whether skinart trained it; a directory given by path is not known before it is read."""
    if task.command == "train":
        return {"checkpoint", RETRAINABLE, SKINART_TRAINED}
    if task.command == "import":
        return {"checkpoint"} | ({RETRAINABLE} if detect_format(task.params["weights"]) in TRAINABLE else set())
    if task.command == "attack":
        poison = check_method(task.params["method"]).kind == "poison"
        return {"checkpoint", "poisoned run", RETRAINABLE, SKINART_TRAINED} if poison else {"adversarial test set"}
    if task.command == "defend":
        source = _task(members, task.uses.get("retrained") or task.uses.get("checkpoint"))
        inherited = writes(source, members) & {SKINART_TRAINED} if source else {SKINART_TRAINED}
        written = _DEFENCE_WRITES[check_defence(task.params["method"]).kind]
        return written | inherited if written else written
    return set()


def _task(members: dict[str, list[Task]], name: str | None) -> Task | None:
    return next((t for tasks in members.values() for t in tasks if t.name == name), None)


def _needs(task: Task) -> set[str]:
    """What a task needs of the checkpoint it reads: a poisoning retrains it from scratch on skinart's split; a retraining
    defence (adversarial, or under noise) finetunes it, or re-initialises it: then nothing of an imported model is left."""
    if task.command == "attack" and check_method(task.params["method"]).kind == "poison":
        return {SKINART_TRAINED}
    if task.command == "defend" and check_defence(task.params["method"]).kind in ("retrain", "noise"):
        return {RETRAINABLE} | ({SKINART_TRAINED} if task.params.get("init") == "scratch" else set())
    return set()


def check_sources(path: str, step: dict, task: Task, members: dict[str, list[Task]]) -> None:
    """A (validated) task's sources, as its run will check them: a retraining or a poisoning reads a checkpoint skinart
    can retrain, or trained; combined's --checkpoint is the step its --retrained was retrained from."""
    where = lambda key: f"{path}.{'grid' if key in step.get('grid', {}) else 'params'}.{key}"  # noqa: E731
    source = _task(members, task.uses.get("checkpoint"))
    lacking = sorted(_needs(task) - writes(source, members)) if source else []
    if lacking:
        raise SkinartError(f"{where('checkpoint')}: {task.command} --method {task.params['method']} retrains the model, and "
                           f"step '{source.step}' writes no {lacking[0]}: it is {_LACKS[lacking[0]]}")
    retrained = _task(members, task.uses.get("retrained"))
    if source and retrained and retrained.uses.get("checkpoint") != source.name:
        raise SkinartError(f"{where('checkpoint')}: step '{retrained.step}' was retrained from "
                           f"'{retrained.uses.get('checkpoint') or retrained.params.get('checkpoint')}', not from step "
                           f"'{source.name}'; name the step it was retrained from, or drop checkpoint (combined defends "
                           "retrained's weights)")
