"""Every command block of README.md runs as written (issue 37): each `skinart` line of each shell block, on generated
data, in a folder of its own, in the README's order (a line that reads a run another line writes waits for it).

What the test changes, all through the commands' own options, and nothing else:
- the README's notation: an optional `[--option value]` is given (each must work), `a|b` takes its first choice, and the
  placeholders DIR (the --data's folder), T (a threshold) are filled in; globs expand as a shell would;
- data: $SKINART_DATA holds the session's generated DermaMNIST npz and HAM10000 folder, DIR a generated folder;
- length: every count that makes a run long is cut (SHORTER), and added where a line leaves it at its default (ADDED); a
  recipe run gets the same cuts through `--set`; the gradient sanity checks of an attacked evaluation attack
  SANITY_IMAGES test images instead of their 64 (the one change made other than through an option).
Lines that are not skinart's, or need what this machine lacks, are skipped by a rule of SKIPPED naming why."""

from __future__ import annotations

import glob
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import invoke, lesion_images
from PIL import Image

from skinart.data.catalog import CLASSES
from skinart.runs import threats

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^ *```(\w*)\n(.*?)^ *```", re.MULTILINE | re.DOTALL)  # list items indent theirs
SHELL = ("", "sh", "bash", "shell", "console")

# a line's first words -> why the test does not run it
SKIPPED = {
    "python -m venv": "creates a virtual environment and installs skinart: the suite runs inside the installed one",
    "pip install": "installs packages: the suite runs with what is installed",
    "make demo": "runs recipes/quickstart.yaml, which the quick start's `skinart run` line runs here",
    "make test": "runs this suite",
    "SKINART_DATA=": "a benchmark: it measures real data on purpose (SKINART_DATA), run by hand",
    ".venv/bin/python benchmarks/": "a benchmark: it measures timings, run by hand",
    "PYTHON=": "the GPU check script: needs a CUDA device",
    "skinart run recipes/paper-skin-cnn28.yaml --executor ray": "needs Ray on this machine, and the paper's recipe takes hours",
    "skinart run RECIPE --executor ray --address auto": "needs a running Ray cluster with GPUs",
    "skinart run recipes/thesis-resnet50.yaml": "needs a Ray cluster with GPUs and a shared filesystem (/shared)",
}
# counts that make a run long -> the value the test runs with
SHORTER = {"--epochs": "1", "--img-size": "16", "--max-samples": "8", "--fit-samples": "16", "--max-iter": "2",
           "--rounds": "1", "--retrain-epochs": "1", "--bootstrap": "100", "--n": "100", "--n0": "20", "--attack-steps": "2",
           "--eot": "2"}
# AutoAttack's own counts (APGD's iterations, Square's queries), cut through --param where a line or step runs it
AUTOATTACK_PARAMS = {"max_iter": 2, "square_max_iter": 20}


def autoattack_params(command: str) -> dict:
    """AUTOATTACK_PARAMS as the command's --param takes them (evaluate names the method: it may run several)."""
    return {("autoattack." if command == "evaluate" else "") + key: value for key, value in AUTOATTACK_PARAMS.items()}
PLACEHOLDERS = {"T": "0.5"}
SANITY_IMAGES = 8
INPUTS = ("--checkpoint", "--retrained", "--poisoned-run", "--adversarial-run", "--source-checkpoint")


@dataclass
class Line:
    number: int  # in README.md
    text: str
    words: list[str] = field(default_factory=list)

    def value(self, option: str) -> str | None:
        return self.words[self.words.index(option) + 1] if option in self.words else None

    @property
    def out(self) -> str | None:
        return self.value("--out")

    @property
    def inputs(self) -> list[str]:
        given = [self.value(option) for option in INPUTS] + (self.words[2:] if self.words[1:2] == ["report"] else [])
        return [path for path in given if path and not path.startswith("-") and path != self.value("--out")]


def readme_lines(text: str) -> list[Line]:
    """The command lines of the shell blocks (a line ending in a backslash continues), comments dropped."""
    lines = []
    for block in FENCE.finditer(text):
        if block[1] not in SHELL:
            continue
        first = text[: block.start(2)].count("\n") + 1
        pending, start = "", first
        for i, raw in enumerate(block[2].splitlines()):
            start = start if pending else first + i
            pending += raw.rstrip("\\").rstrip() + " " if raw.endswith("\\") else raw
            if not raw.endswith("\\"):
                words = shlex.split(pending, comments=True)
                if words:
                    lines.append(Line(start, " ".join(words)))
                pending = ""
    return lines


def skip_reason(line: Line) -> str | None:
    return next((why for start, why in SKIPPED.items() if line.text.startswith(start)), None)


def as_written(words: list[str]) -> list[str]:
    """The README's notation read: an optional [group] given, its first alternative (`a | b`, `a|b`) taken."""
    out, group = [], None
    for word in words:
        if word.startswith("[") and group is None:
            group, word = [], word[1:]
        if group is None:
            out.append(word)
            continue
        closed = word.endswith("]")
        group.append(word[:-1] if closed else word)
        if closed:
            out += group[: group.index("|")] if "|" in group else group
            group = None
    return [word.split("|")[0] if "|" in word and not word.startswith("-") else word for word in out]


def added(words: list[str]) -> tuple[str, ...]:
    """The counts of SHORTER that a long run of this command and method takes when the line leaves them at their default."""
    value = dict(zip(words, words[1:]))
    command, method, attacks = words[1], value.get("--method", ""), value.get("--attacks", "")
    if command == "train":
        return ("--epochs",)
    if command == "attack" and not method.startswith("poison"):
        return ("--max-samples",) + (("--max-iter",) if method in ("uap", "uap-sgd") else ())
    if command == "evaluate" and {"--attack", "--shift"} & set(words):  # and PGD's steps where it is one of the attacks
        return ("--max-samples",) + (("--max-iter",) if "pgd" in value.get("--attack", "").split(",") else ())
    if command == "certify":
        return ("--max-samples", "--n", "--n0", "--attack-steps", "--eot")
    if command == "defend" and (method == "madry" or "pgd" in attacks):
        return ("--max-iter",)  # the PGD of every training batch
    return ()


def shortened(words: list[str], recipe_sets) -> list[str]:
    """Every count of SHORTER cut, and added where a long run leaves it at its default; a recipe run's through --set."""
    words = [SHORTER.get(words[i - 1], word) if i else word for i, word in enumerate(words)]
    words += [part for option in added(words) if option not in words for part in (option, SHORTER[option])]
    if any("autoattack" in word for word in words[2:]):
        words += [part for key, value in autoattack_params(words[1]).items() for part in ("--param", f"{key}={value}")]
    if words[1] == "run":
        words += [part for setting in recipe_sets(words[2]) for part in ("--set", setting)]
    return words


def recipe_sets(path: str) -> list[str]:
    """The --set cuts of a recipe: SHORTER's counts in every step that takes them, a sample for every attack, and a grid
    cut to its first value (a grid step runs once)."""
    sets = []
    for step in yaml.safe_load(Path(path).read_text())["steps"]:
        params, name = step.get("params", {}), step["name"]
        sets += [f"steps.{name}.grid.{key}=[{values[0]}]" for key, values in step.get("grid", {}).items()]
        cuts = {"train": {"epochs": 1}, "report": {"bootstrap": 100},
                "certify": {"max_samples": 8, "n": 100, "n0": 20, "attack_steps": 2, "eot": 2},
                "defend": {"retrain_epochs": 1} if params.get("method") in ("retrain", "randomized-smoothing") else {},
                }.get(step["command"], {})
        if step["command"] == "attack" or {"attack", "shift"} & set(params):
            cuts = {"max_samples": 8, **({"fit_samples": 16, "max_iter": 1} if params.get("method") == "uap" else {})}
        if "autoattack" in str(params.get("attack", "")) + str(params.get("method", "")):
            cuts["param"] = "{" + ", ".join(f"{key}: {value}" for key, value in autoattack_params(step["command"]).items()) + "}"
        sets += [f"steps.{name}.params.{key}={value}" for key, value in cuts.items()]
    return sets


def run_order(lines: list[Line]) -> list[Line]:
    """The README's order, except that a line reading a run that a later line writes waits for it."""
    def writes(line: Line, path: str) -> bool:
        return bool(line.out) and (path == line.out or path.startswith(line.out.rstrip("/") + "/"))

    todo, done = list(lines), []
    while todo:
        ready = next((line for line in todo if not any(writes(other, path) for other in todo if other is not line
                                                       for path in line.inputs)), todo[0])
        todo.remove(ready)
        done.append(ready)
    return done


def write_folder(root: Path, per_class: int = 4) -> Path:
    """A `--data folder` tree: a folder of generated lesions per class."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    for i, (label, image) in enumerate(zip(labels, lesion_images(labels, 40, 40, rng))):
        (root / CLASSES[label]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / CLASSES[label] / f"lesion_{i}.png")
    return root


def write_exported(path: Path, classes: int = 7, side: int = int(SHORTER["--img-size"])) -> Path:
    """The README's `theirs.pt2`: a small network trained elsewhere, saved with torch.export at the side it takes."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes))
    program = torch.export.export(net.eval(), (torch.rand(2, 3, side, side),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


def test_the_notation_is_read_as_the_readme_means_it():
    line = "skinart attack --method uap [--attacker fgsm|pgd] [--threshold T | --target-sensitivity 0.9] --out runs/x"
    assert as_written(line.split()) == ["skinart", "attack", "--method", "uap", "--attacker", "fgsm", "--threshold", "T",
                                        "--out", "runs/x"]
    words = shortened(["skinart", "attack", "--method", "pgd", "--max-iter", "50", "--out", "o"], recipe_sets)
    assert words == ["skinart", "attack", "--method", "pgd", "--max-iter", "2", "--out", "o", "--max-samples", "8"]
    first, second = Line(1, "", ["skinart", "attack", "--checkpoint", "runs/b", "--out", "runs/c"]), \
        Line(2, "", ["skinart", "train", "--out", "runs/b"])
    assert run_order([first, second]) == [second, first]


@pytest.fixture
def readme_folder(tmp_path, monkeypatch, derma_subset, ham_subset):
    """A folder as a new user's: the recipes beside, $SKINART_DATA with the generated data, DIR and theirs.pt2 made."""
    data = tmp_path / "data"
    (data / "dermamnist").mkdir(parents=True)
    (data / "dermamnist" / "dermamnist.npz").symlink_to(derma_subset)
    (data / "ham10000").symlink_to(ham_subset)
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    write_exported(tmp_path / "theirs.pt2")
    monkeypatch.setattr(threats, "SANITY_SAMPLES", SANITY_IMAGES)
    monkeypatch.setenv("SKINART_DATA", str(data))
    monkeypatch.chdir(tmp_path)
    return {"ham10000": str(ham_subset), "folder": str(write_folder(tmp_path / "folder")), "dermamnist": str(data / "dermamnist")}


@pytest.mark.slow
def test_every_command_of_the_readme_runs_as_written(readme_folder):
    lines = readme_lines((ROOT / "README.md").read_text())
    assert len(lines) > 40, "the README's command blocks were not found"
    runnable = []
    for line in lines:
        if skip_reason(line) is None:
            assert line.text.startswith("skinart "), f"README.md:{line.number}: no rule for {line.text!r}; add one to SKIPPED"
            words = as_written(shlex.split(line.text))
            words = [readme_folder[words[words.index("--data") + 1]] if w == "DIR" else PLACEHOLDERS.get(w, w) for w in words]
            words = [part for w in words for part in (sorted(glob.glob(w)) if "*" in w else [w])]
            runnable.append(Line(line.number, line.text, shortened(words, recipe_sets)))
    failed = []
    for line in run_order(runnable):
        result = invoke(*line.words[1:])
        if result.exit_code != 0:
            failed.append(f"README.md:{line.number}: {line.text}\n  ran: {' '.join(line.words)}\n  "
                          f"exit {result.exit_code}: {(result.stderr or result.output).strip().splitlines()[-1:]}")
    assert failed == [], "\n".join(failed)
