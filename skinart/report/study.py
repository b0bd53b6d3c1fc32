"""`skinart report`: every scored run of a recipe run, or of run directories given by hand, in the seeds' table
layout, with bootstrap intervals (or why a number has none), the published numbers beside ours and the study figures;
report.md, report.html (self-contained) and report.json."""

from __future__ import annotations

import base64
import json
import os
from html import escape
from pathlib import Path
from typing import NamedTuple

from skinart.metrics import MIN_INTERVAL_IMAGES
from skinart.presentation.tables import pct
from skinart.report.charts import study_figures
from skinart.report.findings import findings, row_anchor
from skinart.report.rows import ReportOptions, collect_rows, pivot, threat_suffix
from skinart.report.shifts import shift_findings, shift_tables
from skinart.report.runs import Labels, check_report_out, collect_run_rows, find_runs
from skinart.rundir import PLAN_FILE, read_plan

FIGURES = ("training_curves", "confusion_matrix", "confusion_matrix_binary", "confusion_matrix_adversarial",
           "confusion_matrix_adversarial_binary", "confusion_matrix_poisoned", "perturbations", "roc", "noise", "patch",
           "severity_curves", "shift_gallery")
# At 1280 px a table fits the page: long cells (run names, sanity verdicts) wrap instead of widening it, and a table
# with more columns than the width holds (a long ε grid) scrolls inside a box as wide as the page, not the page itself.
STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
         ".table{max-width:100%;overflow-x:auto}table{border-collapse:collapse;margin:1em 0 .3em;font-size:13px}"
         "td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;overflow-wrap:anywhere}td:first-child,th:first-child{text-align:left}"
         "th{max-width:9em}.note{font-size:12px;color:#444;margin:0 0 1em}img{max-width:100%}figure{display:inline-block;margin:4px}")
TOO_SMALL = "*"
NO_PREDICTIONS = "†"
NOTES = {TOO_SMALL: f"Marked {TOO_SMALL}: too small for an interval, fewer than {MIN_INTERVAL_IMAGES} images behind the number (malignant "
                    "images behind an FNR, images of the rarer of malignant and benign behind an AUROC)",
         NO_PREDICTIONS: f"Marked {NO_PREDICTIONS}: no interval, the run keeps no per-image predictions (a poisoned model's scores)"}


class Table(NamedTuple):
    """One table of the report: its lines, the row anchors Findings link to, and what its marks mean (said once under it)."""

    title: str
    header: list[str]
    lines: list[list[str]]
    anchors: list[str] | None = None
    notes: tuple[str, ...] = ()


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _label(row: dict) -> str:
    return row["task"] + threat_suffix(row)


def _fmt(value, ci=None) -> str:
    text = pct(value)
    return f"{text} [{pct(ci[0])}–{pct(ci[1])}]" if ci and value is not None else text


def _marked(row: dict, key: str, shown: bool) -> tuple[str, str]:
    """(a metric's cell with its interval, the mark it carries where it has none: too small, or, in a column where
    other rows have intervals, no per-image predictions)."""
    value, ci = row["metrics"].get(key), row["ci"].get(key)
    mark = "" if ci or value is None else TOO_SMALL if key in row["ci"] else NO_PREDICTIONS if shown and "images" not in row else ""
    return _fmt(value, ci) + mark, mark


def _intervals(rows: list[dict], key: str) -> tuple[str, list[str], set[str]]:
    """A metric's column: (" [95% CI]" when any row has an interval, else nothing; each row's cell; the marks used)."""
    shown = any(r["ci"].get(key) for r in rows)
    cells = [_marked(r, key, shown) for r in rows]
    return " [95% CI]" if shown else "", [cell for cell, _ in cells], {mark for _, mark in cells} - {""}


def _table(title: str, rows: list[dict], columns: list[tuple], anchors: list[str] | None = None) -> Table:
    """A table of one line per row from (header, cell): a metrics key is that metric with its interval (`_intervals`),
    a function makes the cell from the row."""
    header, cells, marks = [], [], set()
    for name, cell in columns:
        if callable(cell):
            header.append(name)
            cells.append([cell(r) for r in rows])
        else:
            suffix, column, used = _intervals(rows, cell)
            header.append(name + suffix)
            cells.append(column)
            marks |= used
    return Table(title, header, [list(line) for line in zip(*cells)], anchors, tuple(NOTES[m] for m in sorted(marks)))


def _metric(key: str):
    return lambda r: pct(r["metrics"].get(key))


def _references(rows: list[dict], reference: dict) -> tuple[list[list[str]], set[str]]:
    """(a line per published number: ours beside it with its interval, or marked why none; the marks used)."""
    lines, marks = [], set()
    for name, values in reference.items():
        row = next((r for r in rows if r["task"] == name), None) or next((r for r in rows if r["step"] == name), None)
        for metric, published in values.items():
            ours = None if row is None else row["metrics"].get(metric)
            delta = "n/a" if ours is None else f"{100 * (ours - published):+.1f}"
            cell, mark = ("not run", "") if row is None else _marked(row, metric, True)
            lines.append([name, metric.replace("_", " "), pct(published), cell, delta])
            marks.add(mark)
    return lines, marks - {""}


def _tables(rows: list[dict], detections: list[dict], recipe: dict, options: ReportOptions) -> list[Table]:
    """Every table of the report, in order."""
    at_t = [(f"{name} @t", _metric(f"{key}_at_threshold")) for name, key in (("sensitivity",) * 2, ("specificity",) * 2, ("NPV", "npv"))]
    tables = [
        _table("Model performance (multi-class)", rows, [
            ("run", lambda r: r["task"]), ("model", lambda r: r["model"]), ("attack", lambda r: r["attack"]), ("threat", lambda r: r["threat"]),
            ("accuracy", "accuracy"), ("macro recall", "macro_recall"), ("macro specificity", _metric("macro_specificity")),
            ("fooling rate", _metric("fooling_rate")), ("error rate", _metric("error_rate")), ("sanity checks", lambda r: r.get("sanity", "—"))],
            [row_anchor(i) for i in range(len(rows))]),
        # binary metrics at argmax, the AUROC of p_malignant, and at the checkpoint's stored threshold (the same for
        # clean, attacked and defended rows of a model: it is never re-chosen)
        _table("Health (binary, malignant = positive; at argmax, then at the operating point @t)", rows, [
            ("run", _label), ("attack", lambda r: r["attack"]), ("binary accuracy", _metric("binary_accuracy")),
            ("sensitivity", _metric("sensitivity")), ("NPV", _metric("npv")), ("FNR", "fnr"), ("AUROC", "auroc"), *at_t,
            ("FNR @t", "fnr_at_threshold")]),
    ]
    if any(r.get("training_data") for r in rows):  # every number on an imported model says what cannot be known
        tables.append(Table("Training data (of the model each row scores)", ["run", "model", "training data"],
                            [[_label(r), r["model"], r.get("training_data") or "skinart's train split (ids recorded)"] for r in rows]))
    also = options.also_malignant
    if also:
        tables.append(Table(f"Health under the {options.also_label} (malignant = {', '.join(also)})", ["run", "binary accuracy", "sensitivity", "NPV", "FNR"],
                            [[_label(r)] + [pct(r["also"][k]) for k in ("accuracy", "sensitivity", "npv", "fnr")] for r in rows if r["also"]]))
    shares = [r for r in rows if r.get("predicted_shares")]
    if shares:
        classes = list(shares[0]["predicted_shares"])
        tables.append(Table("Where universal perturbations send the images (share of attacked test images predicted as each class)",
                            ["run", "attack", *classes], [[_label(r), r["attack"]] + [pct(r["predicted_shares"].get(c)) for c in classes]
                                                          for r in shares]))
    attacks, cells = pivot(rows)
    if len(attacks) > 1:
        tables.append(Table("Accuracy by model and attack", ["model"] + attacks,
                            [[model] + [pct(values.get(a)) for a in attacks] for model, values in cells.items()]))
    if recipe.get("reference"):
        lines, marks = _references(rows, recipe["reference"])
        tables.append(Table("Published numbers beside ours", ["run", "metric", "published", "ours [95% CI]", "Δ (points)"], lines,
                            notes=tuple(NOTES[m] for m in sorted(marks))))
    poison = [d for d in detections if d["section"] == "poison"]
    if poison:
        tables.append(Table("Poison detection", ["run", "detector", "precision", "recall", "F1", "flagged", "poisoned"],
                            [[d["task"], str(d["detector"]), pct(d["precision"]), pct(d["recall"]), pct(d["f1"]), str(d["flagged"]),
                              str(d["poisoned"])] for d in poison]))
    tables += [Table(title, header, lines, notes=notes)
               for title, header, lines, notes in shift_tables([d for d in detections if d["section"] == "shift"])]
    return [table for table in tables if table.lines]  # a report of shift runs alone has no attack rows: no empty tables


def _table_md(header: list[str], lines: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines])


def _table_html(header: list[str], lines: list[list[str]], anchors: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    ids = [f" id='{a}'" for a in anchors] if anchors else [""] * len(lines)
    body = "".join(f"<tr{row_id}>" + "".join(f"<td>{escape(c)}</td>" for c in line) + "</tr>" for row_id, line in zip(ids, lines))
    return f"<div class='table'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _inline(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def _findings(found: list[tuple[str, int | None]]) -> tuple[list[str], list[str]]:
    """The Findings section first, in markdown and HTML, each finding naming (linking, in HTML) its table row (a shift
    finding, None, names the Natural shift tables)."""
    if not found:
        return [], []
    md = ["## Findings", ""] + [f"- {text} " + ("(Natural shift tables)" if i is None else f"(multi-class table, row {i + 1})")
                                for text, i in found] + [""]
    html = ["<h2 id='findings'>Findings</h2><ul>"] + [f"<li>{escape(text)}</li>" if i is None else
                                                     f"<li><a href='#{row_anchor(i)}'>{escape(text)}</a></li>" for text, i in found] + ["</ul>"]
    return md, html


def _link(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def _documents(base: Path, title: str, *, intro: list[str], found: list[tuple[str, int]], tables: list[Table], figures: list,
               images: list[tuple[str, Path, list[Path]]]) -> tuple[str, str]:
    """(report.md, report.html) written into `base`: the same sections, Findings first, none left empty; markdown links
    figures relative to `base`, the HTML inlines every figure so it stands alone. `images`: (run, its folder, figures)."""
    found_md, found_html = _findings(found)
    md = [f"# {title}", ""] + found_md + [p + "\n" for p in intro if p]
    html = [f"<h1>{escape(title)}</h1>"] + found_html + [f"<p>{escape(p)}</p>" for p in intro if p]
    for table in tables:
        md += [f"## {table.title}", "", _table_md(table.header, table.lines), ""] + [note + "\n" for note in table.notes]
        html += [f"<h2>{escape(table.title)}</h2>", _table_html(table.header, table.lines, table.anchors)]
        html += [f"<p class='note'>{escape(note)}</p>" for note in table.notes]
    if figures:
        md += ["## Figures", ""]
        html.append("<h2>Figures</h2>")
    for figure_title, path in figures:
        md += [f"### {figure_title}", "", f"![{figure_title}]({_link(path, base)})", ""]
        html += [f"<h3>{escape(figure_title)}</h3>", f'<img src="{_inline(path)}" alt="{escape(figure_title)}">']
    if any(paths for *_, paths in images):
        md += ["## Per-run figures", ""]
        html.append("<h2>Per-run figures</h2>")
    for name, folder, paths in images:
        if paths:
            md.append(f"- {name}: " + ", ".join(f"[{p.relative_to(folder).as_posix()}]({_link(p, base)})" for p in paths))
            html.append(f"<details><summary>{escape(name)}</summary>" + "".join(
                f'<figure><img src="{_inline(p)}" alt="{escape(p.stem)}"><figcaption>{escape(p.relative_to(folder).as_posix())}</figcaption></figure>'
                for p in paths) + "</details>")
    document = f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{STYLE}</style></head><body>{''.join(html)}</body></html>"
    return "\n".join(md) + "\n", document


def _run_figures(name: str, folder: Path) -> tuple[str, Path, list[Path]]:
    return name, folder, sorted(p for p in folder.rglob("*.png") if p.stem in FIGURES)


def _reading(options: ReportOptions) -> str:
    """How to read the numbers, the same in every report."""
    intervals = (f"Intervals: {options.bootstrap}-resample percentile bootstrap over test images (seed {options.seed}); none "
                 f"where fewer than {MIN_INTERVAL_IMAGES} images stand behind a number ({TOO_SMALL}). " if options.bootstrap
                 else "No intervals (--bootstrap 0). ")
    return ("All values in %. " + intervals + "p_malignant is the sum of the malignant classes' probabilities; AUROC is its "
            "binary ROC area; @t marks the binary metrics at the operating point, p_malignant ≥ the threshold each checkpoint "
            "chose once on its validation split for its target sensitivity and kept fixed under every attack and defence "
            "(n/a: none stored).")


def _write(out: Path, title: str, intro: list[str], rows: list[dict], detections: list[dict], *, recipe: dict, tasks: dict[str, dict],
           images: list, options: ReportOptions, extra: dict) -> dict:
    """Figures, then report.md, report.html and report.json into `out`, each under a temporary name then renamed."""
    figures = study_figures(rows, tasks, out / "report_figures")
    found = findings(rows) + [(text, None) for text in shift_findings([d for d in detections if d["section"] == "shift"])]
    md, html = _documents(out, title, intro=intro, found=found, figures=figures, images=images,
                          tables=_tables(rows, detections, recipe, options))
    result = {"rows": rows, "detections": detections, **extra}
    for name, text in (("report.md", md), ("report.html", html), ("report.json", json.dumps(result, indent=2, default=str))):
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
    intro = [recipe.get("description", "").strip(), f"Recipe `{plan['recipe_file']}`, seed {recipe.get('seed', 0)}. " + _reading(options)]
    if missing:
        intro.append(f"Not run yet: {', '.join(missing)} (run the recipe again to resume).")
    images = [_run_figures(task["name"], run_dir / task["name"]) for task in plan["tasks"] if (run_dir / task["name"]).is_dir()]
    out.mkdir(parents=True, exist_ok=True)
    return out, _write(out, recipe["name"], intro, rows, detections, recipe=recipe, tasks={t["name"]: t for t in plan["tasks"]},
                       images=images, options=options, extra={"missing": missing, "references": recipe.get("reference", {})})


def write_runs_report(paths: list[Path], out: Path | None, options: ReportOptions) -> tuple[Path, dict]:
    """(where it went, what it holds): the report of run directories (a checkpoint with the runs made from it beside it)."""
    runs, stale = find_runs(paths)
    out = check_report_out(out, runs)
    rows, detections = collect_run_rows(runs, options)
    label = Labels.of(runs)
    found = [label(p) for p in runs if p.resolve() not in {given.resolve() for given in paths}]
    intro = [f"Runs under {label.root}: {', '.join(label(p) for p in paths)}"
             + (f", and those found beside a checkpoint, made from its weights: {', '.join(found)}. " if found else ". ") + _reading(options)]
    if stale:
        intro.append(f"Left out: {', '.join(label(p) for p in stale)} (made from other weights once at their checkpoint's path).")
    out.mkdir(parents=True, exist_ok=True)
    return out, _write(out, f"Report: {', '.join(label(p) for p in paths)}", intro, rows, detections, recipe={}, tasks={},
                       images=[_run_figures(label(p), p) for p in runs], options=options, extra={"runs": [str(p) for p in runs]})


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
