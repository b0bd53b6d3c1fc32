"""`skinart report`: every scored run of a recipe run, or of run directories given by hand, in the seeds' table
layout, with bootstrap intervals (or why a number has none), the published numbers beside ours and the study figures;
report.md, report.html (self-contained) and report.json. A report with nothing to tabulate is refused, and so is an
--out holding files the report did not write."""

from __future__ import annotations

import json
from pathlib import Path

from skinart.errors import SkinartError
from skinart.metrics import MIN_INTERVAL_IMAGES
from skinart.report.charts import study_figures
from skinart.report.documents import documents, run_figures
from skinart.report.findings import findings
from skinart.report.rows import ReportOptions, collect_rows
from skinart.report.runs import REPORT_HTML, REPORT_JSON, REPORT_MD, Labels, check_report_out, collect_run_rows, find_runs
from skinart.report.certified import certified_findings
from skinart.report.shifts import shift_findings
from skinart.report.tables import TOO_SMALL, build_tables
from skinart.rundir import PLAN_FILE, read_plan


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _something(rows: list[dict], entries: list[dict], what: str) -> None:
    """Refuse in one line, before anything is written, a report that would hold no numbers."""
    if not rows and not entries:
        raise SkinartError(f"nothing to report: {what}")


def _reading(options: ReportOptions) -> str:
    """How to read the numbers, the same in every report."""
    intervals = (f"Intervals: {options.bootstrap}-resample percentile bootstrap over the images each row stands on (the "
                 f"data its table or data column names; seed {options.seed}); none "
                 f"where fewer than {MIN_INTERVAL_IMAGES} images stand behind a number ({TOO_SMALL}). " if options.bootstrap
                 else "No intervals (--bootstrap 0). ")
    return ("All values in %. " + intervals + "p_malignant is the sum of the malignant classes' probabilities; AUROC is its "
            "binary ROC area; @t marks the binary metrics at the operating point, p_malignant ≥ the threshold each checkpoint "
            "chose once on its validation split for its target sensitivity and kept fixed under every attack and defence "
            "(n/a: none stored).")


def _write(out: Path, title: str, intro: list[str], rows: list[dict], detections: list[dict], *, recipe: dict, tasks: dict[str, dict],
           images: list, options: ReportOptions, extra: dict) -> dict:
    """Figures, then report.md, report.html and report.json into `out`, each under a temporary name then renamed."""
    figures = study_figures(rows, detections, tasks, out / "report_figures")
    found = findings(rows) + [(text, None) for text in shift_findings([d for d in detections if d["section"] == "shift"])]
    found += [(text, "Certified robustness table") for text in certified_findings([d for d in detections if d["section"] == "certified"])]
    md, html = documents(out, title, intro=intro, found=found, figures=figures, images=images,
                         tables=build_tables(rows, detections, recipe, options))
    result = {"rows": rows, "detections": detections, **extra}
    for name, text in ((REPORT_MD, md), (REPORT_HTML, html), (REPORT_JSON, json.dumps(result, indent=2, default=str))):
        tmp = out / f".{name}.partial"
        tmp.write_text(text)
        tmp.replace(out / name)
    return result


def write_report(run_dir: Path, options: ReportOptions, out: Path | None = None) -> tuple[Path, dict]:
    """(where it went, what it holds): the report of a `skinart run` folder, into `out` (default: the folder itself)."""
    run_dir = Path(run_dir)
    plan = read_plan(run_dir)
    out = run_dir if out is None or out.resolve() == run_dir.resolve() else check_report_out(out, [])
    recipe = plan["recipe"]
    rows, detections, missing = collect_rows(run_dir, plan, options)
    _something(rows, detections, f"no step of {run_dir} has scored a model yet" + (
        f" (not run yet: {', '.join(missing)}; run the recipe again to resume)" if missing else
        " (its steps only train or import: add an evaluate, attack or defend step)"))
    intro = [recipe.get("description", "").strip(), f"Recipe `{plan['recipe_file']}`, seed {recipe.get('seed', 0)}. " + _reading(options)]
    if missing:
        intro.append(f"Not run yet: {', '.join(missing)} (run the recipe again to resume).")
    images = [run_figures(task["name"], run_dir / task["name"]) for task in plan["tasks"] if (run_dir / task["name"]).is_dir()]
    out.mkdir(parents=True, exist_ok=True)
    return out, _write(out, recipe["name"], intro, rows, detections, recipe=recipe, tasks={t["name"]: t for t in plan["tasks"]},
                       images=images, options=options, extra={"missing": missing, "references": recipe.get("reference", {})})


def write_runs_report(paths: list[Path], out: Path | None, options: ReportOptions) -> tuple[Path, dict]:
    """(where it went, what it holds): the report of run directories (a checkpoint with the runs made from it beside it)."""
    runs, stale = find_runs(paths)
    out = check_report_out(out, runs)
    rows, detections = collect_run_rows(runs, options)
    label = Labels.of(runs)
    _something(rows, detections, f"{', '.join(label(p) for p in runs)} hold no scores (a checkpoint of train or import "
               "alone has none): evaluate, attack or defend it first, e.g. skinart evaluate --checkpoint CHECKPOINT --out DIR")
    found = [label(p) for p in runs if p.resolve() not in {given.resolve() for given in paths}]
    intro = [f"Runs under {label.root}: {', '.join(label(p) for p in paths)}"
             + (f", and those found beside a checkpoint, made from its weights: {', '.join(found)}. " if found else ". ") + _reading(options)]
    if stale:
        intro.append(f"Left out: {', '.join(label(p) for p in stale)} (made from other weights once at their checkpoint's path).")
    out.mkdir(parents=True, exist_ok=True)
    return out, _write(out, f"Report: {', '.join(label(p) for p in paths)}", intro, rows, detections, recipe={}, tasks={},
                       images=[run_figures(label(p), p) for p in runs], options=options, extra={"runs": [str(p) for p in runs]})


def write_any_report(paths: list[Path], out: Path | None, options: ReportOptions) -> tuple[Path, dict]:
    """A `skinart run` folder given alone is reported as a recipe run; anything else as run directories."""
    if len(paths) == 1 and (paths[0] / PLAN_FILE).is_file():
        return write_report(paths[0], options, out)
    return write_runs_report(paths, out, options)


def summary(out: Path, result: dict) -> str:
    """The line `skinart report` prints: where the report is and how much it holds."""
    shift_lines = sum(d["section"] == "shift" for d in result["detections"])
    return f"{out}/report.md, report.html: {count(len(result['rows']), 'row')}" + (
        f", {count(shift_lines, 'natural-shift line')}" if shift_lines else "") + (
        f"; not run yet: {', '.join(result['missing'])}" if result.get("missing") else "")
