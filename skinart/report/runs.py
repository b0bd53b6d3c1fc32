"""The runs a report reads when it is given run directories instead of a `skinart run` folder. Every argument is checked
before anything is written (a finished run of train, import, evaluate, attack or defend); a checkpoint brings the runs
beside it that were made from it (their config names its path and weights, as `Checkpoint.ref()` records them) and, a
defence among them being a checkpoint too, theirs in turn; each run becomes the task its rows are read from."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from skinart.models.checkpoint import Checkpoint
from skinart.errors import SkinartError
from skinart.report.rows import ROWS_BY_KIND, SCORES_NOTHING, ReportOptions, run_rows
from skinart.rundir import CONFIG_FILE, META_FILE, PLAN_FILE, check_out

REPORT_MD, REPORT_HTML, REPORT_JSON = "report.md", "report.html", "report.json"
GIVE = "give run directories written by skinart train, import, evaluate, attack or defend, or one `skinart run` folder alone"


def _config(path: Path) -> dict | None:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return config if isinstance(config, dict) and "kind" in config else None


def check_run(path: Path) -> dict:
    """The config of a run directory given to the report, or a one-line error saying what it is instead."""
    if not path.exists():
        raise SkinartError(f"{path} does not exist; {GIVE}")
    if (path / PLAN_FILE).is_file():
        raise SkinartError(f"{path} is a `skinart run` folder: report it alone (skinart report {path})")
    config = _config(path)
    if config is None:
        raise SkinartError(f"{path} is neither a skinart run directory (no {CONFIG_FILE} naming its kind) nor a `skinart run` "
                           f"folder (no {PLAN_FILE}); {GIVE}")
    if config["kind"] not in ROWS_BY_KIND and config["kind"] not in SCORES_NOTHING:
        raise SkinartError(f"{path} is a run of kind {config['kind']!r}, which this skinart does not report; {GIVE}")
    return config


def _made_from(checkpoint: Path) -> tuple[list[Path], list[Path]]:
    """(runs beside `checkpoint` made from it, runs beside it made from other weights once at its path)."""
    ref = Checkpoint.load(checkpoint).ref()
    made, stale = [], []
    for sibling in sorted(p for p in checkpoint.parent.iterdir() if p.is_dir() and not p.name.startswith(".") and p != checkpoint):
        config = _config(sibling) or {}
        named = config.get("checkpoint") or config.get("poisoned_run")  # detect-poison names the poisoned checkpoint it read
        if isinstance(named, dict) and named.get("path") == ref["path"]:
            (made if named == ref else stale).append(sibling)
    return made, stale


def find_runs(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(the runs to report: each given one, a checkpoint followed by the runs made from it; runs left out, made from
    weights no longer at their checkpoint's path). Every argument is checked first."""
    for path in paths:
        check_run(path)
    queue, seen, runs, stale = list(paths), set(), [], []
    while queue:
        path = queue.pop(0)
        if path.resolve() in seen:
            continue
        seen.add(path.resolve())
        runs.append(path)
        if (path / META_FILE).is_file():
            made, old = _made_from(path)
            queue[0:0] = made
            stale += old
    return runs, stale


def check_report_out(out: Path | None, runs: list[Path]) -> Path:
    """The folder a report of runs is written to: given, not one of the runs (nor inside or around one), not a run."""
    if out is None:
        raise SkinartError("give --out DIR, the folder for report.md, report.html and report.json (a report of run "
                           "directories never writes into the runs it reads)")
    check_out(out, runs)
    if out.exists() and not out.is_dir():
        raise SkinartError(f"--out {out} is a file; choose a folder for the report")
    if (out / CONFIG_FILE).is_file() or (out / PLAN_FILE).is_file():
        raise SkinartError(f"--out {out} holds a run; choose a folder of its own for the report")
    if out.is_dir() and any(out.iterdir()) and not _holds_a_report(out):
        names = sorted(p.name for p in out.iterdir())
        raise SkinartError(f"--out {out} holds files skinart report did not write ({', '.join(names[:3])}"
                           f"{', ...' if len(names) > 3 else ''}); choose a new or empty folder (a report replaces only a "
                           "report it wrote)")
    return out


def _holds_a_report(folder: Path) -> bool:
    """Whether `folder` holds a report skinart wrote: its report.json, with the rows and sections every report keeps."""
    try:
        written = json.loads((folder / REPORT_JSON).read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return isinstance(written, dict) and {"rows", "detections"} <= set(written)


@dataclass(frozen=True)
class Labels:
    """Names of run directories in a report: the path below the folder all of them share."""

    root: Path

    @classmethod
    def of(cls, runs: list[Path]) -> Labels:
        resolved = [str(p.resolve()) for p in runs]
        return cls(Path(os.path.commonpath(resolved)) if len(runs) > 1 else runs[0].resolve().parent)

    def __call__(self, path: str | Path) -> str:
        path = Path(path).resolve()
        return path.relative_to(self.root).as_posix() if path.is_relative_to(self.root) and path != self.root else path.name


def run_task(path: Path, config: dict, label: Labels) -> dict:
    """A run as the task the report's rows are read from: its label as name and step, the checkpoint it read as the model."""
    named = config.get("checkpoint")
    return {"name": label(path), "step": label(path), "grid": {}, "params": {},
            "uses": {"checkpoint": label(named["path"])} if isinstance(named, dict) else {}}


def collect_run_rows(runs: list[Path], options: ReportOptions) -> tuple[list[dict], list[dict]]:
    """(rows, poison detections) of run directories, in their order; checkpoint runs (train, import) have none."""
    label = Labels.of(runs)
    rows, detections = [], []
    for path in runs:
        config = check_run(path)
        if config["kind"] in SCORES_NOTHING:
            continue
        task_rows, task_detections = run_rows(run_task(path, config, label), path, options)
        rows += task_rows
        detections += task_detections
    return rows, detections
