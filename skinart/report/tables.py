"""The study report's tables, built from its rows and section entries: each names the data its rows stand on (its title,
and a data column where rows differ), every metric with its bootstrap interval or the mark saying why none, and in the
accuracy-by-attack table every attacked number beside the clean number of its own images."""

from __future__ import annotations

from typing import NamedTuple

from skinart.metrics import MIN_INTERVAL_IMAGES
from skinart.presentation.tables import pct
from skinart.report.findings import NOT_ATTACKED, row_anchor
from skinart.report.rows import ReportOptions, attacked, pivot_rows, threat_suffix
from skinart.report.sanity import sanity_cell
from skinart.report.certified import certified_tables
from skinart.report.shifts import shift_tables
from skinart.report.subgroups import subgroup_tables

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


def _label(row: dict) -> str:
    return row["task"] + threat_suffix(row)


def _data(row: dict) -> str:
    return row.get("data") or "test"


def on_data(items: list[dict]) -> str:
    """What a table's title says its rows stand on: the one data set and split, or that each row's data column says."""
    labels = list(dict.fromkeys(_data(i) for i in items))
    return f" — on {labels[0]}" if len(labels) == 1 else f" — on {', '.join(labels)} (each row's data column)"


def _fmt(value, ci=None) -> str:
    text = pct(value)
    return f"{text} [{pct(ci[0])}–{pct(ci[1])}]" if ci and value is not None else text


def marked(row: dict, key: str, shown: bool) -> tuple[str, str]:
    """(a metric's cell with its interval, the mark it carries where it has none: too small, or, in a column where
    other rows have intervals, no per-image predictions)."""
    value, ci = row["metrics"].get(key), row["ci"].get(key)
    mark = "" if ci or value is None else TOO_SMALL if key in row["ci"] else NO_PREDICTIONS if shown and "images" not in row else ""
    return _fmt(value, ci) + mark, mark


def _intervals(rows: list[dict], key: str) -> tuple[str, list[str], set[str]]:
    """A metric's column: (" [95% CI]" when any row has an interval, else nothing; each row's cell; the marks used)."""
    shown = any(r["ci"].get(key) for r in rows)
    cells = [marked(r, key, shown) for r in rows]
    return " [95% CI]" if shown else "", [cell for cell, _ in cells], {mark for _, mark in cells} - {""}


def _table(title: str, rows: list[dict], columns: list[tuple], anchors: list[str] | None = None) -> Table:
    """A table of one line per row from (header, cell): a metrics key is that metric with its interval (`_intervals`),
    a function makes the cell from the row. Its title names the data the rows stand on; its data column is left out
    where that is one data set and split for every row (the title says it for all)."""
    header, cells, marks = [], [], set()
    uniform = len({_data(r) for r in rows}) == 1
    for name, cell in columns:
        if name == "data" and uniform:
            continue
        if callable(cell):
            header.append(name)
            cells.append([cell(r) for r in rows])
        else:
            suffix, column, used = _intervals(rows, cell)
            header.append(name + suffix)
            cells.append(column)
            marks |= used
    return Table(title + on_data(rows), header, [list(line) for line in zip(*cells)], anchors, tuple(NOTES[m] for m in sorted(marks)))


def _metric(key: str):
    return lambda r: pct(r["metrics"].get(key))


def _images(row: dict) -> str:
    return "n/a" if row.get("images") is None else str(row["images"])


def _sanity(row: dict) -> str:
    return sanity_cell(row["sanity_checks"]) if row.get("sanity_checks") else row.get("sanity", "—")


def _by_attack(rows: list[dict]) -> Table:
    """Accuracy by model and attack: the clean column on the whole split, each attacked cell `clean → attacked` on the
    images that attack ran on; a model no attack ran on says so in every attack column."""
    columns, cells = pivot_rows(rows)
    hit = {r["model"] for r in rows if attacked(r)}

    def cell(model: str, column: str) -> str:
        row = cells[model].get(column)
        if row is None:
            return "—" if model in hit or column.startswith("clean") else NOT_ATTACKED
        before = (row.get("clean_metrics") or {}).get("accuracy")
        return pct(row["metrics"]["accuracy"]) if row["attack"] == "clean" or before is None else \
            f"{pct(before)} → {pct(row['metrics']['accuracy'])}"
    return Table("Accuracy by model and attack" + on_data(rows), ["model", *columns],
                 [[model] + [cell(model, c) for c in columns] for model in cells],
                 notes=("A clean column holds the whole split's accuracy; an attacked cell holds the accuracy of the images that "
                        "attack ran on, clean → attacked (a sample: the images column of the multi-class table), so each "
                        f"attacked number stands beside the clean number of its own images. {NOT_ATTACKED}: no attack ran on "
                        "that model, so its robustness is unknown (not shown as robust).",))


def _references(rows: list[dict], reference: dict) -> tuple[list[list[str]], set[str]]:
    """(a line per published number: ours beside it with its interval, or marked why none; the marks used)."""
    lines, marks = [], set()
    for name, values in reference.items():
        row = next((r for r in rows if r["task"] == name), None) or next((r for r in rows if r["step"] == name), None)
        for metric, published in values.items():
            ours = None if row is None else row["metrics"].get(metric)
            delta = "n/a" if ours is None else f"{100 * (ours - published):+.1f}"
            cell, mark = ("not run", "") if row is None else marked(row, metric, True)
            lines.append([name, metric.replace("_", " "), pct(published), cell, delta, "not run" if row is None else _data(row)])
            marks.add(mark)
    return lines, marks - {""}


def _row_tables(rows: list[dict], options: ReportOptions) -> list[Table]:
    """The tables of one line per row: multi-class, health, training data, the second mapping, universal shares."""
    at_t = [(f"{name} @t", _metric(f"{key}_at_threshold")) for name, key in (("sensitivity",) * 2, ("specificity",) * 2, ("NPV", "npv"))]
    tables = [
        _table("Model performance (multi-class)", rows, [
            ("run", lambda r: r["task"]), ("model", lambda r: r["model"]), ("attack", lambda r: r["attack"]),
            ("threat", lambda r: r["threat"]), ("data", _data), ("images", _images),
            ("accuracy", "accuracy"), ("macro recall", "macro_recall"), ("macro specificity", _metric("macro_specificity")),
            ("fooling rate", _metric("fooling_rate")), ("error rate", _metric("error_rate")), ("sanity checks", _sanity)],
            [row_anchor(i) for i in range(len(rows))]),
        # binary metrics at argmax, the AUROC of p_malignant, and at the checkpoint's stored threshold (the same for
        # clean, attacked and defended rows of a model: it is never re-chosen)
        _table("Health (binary, malignant = positive; at argmax, then at the operating point @t)", rows, [
            ("run", _label), ("data", _data), ("attack", lambda r: r["attack"]), ("binary accuracy", _metric("binary_accuracy")),
            ("sensitivity", _metric("sensitivity")), ("NPV", _metric("npv")), ("FNR", "fnr"), ("AUROC", "auroc"), *at_t,
            ("FNR @t", "fnr_at_threshold")]),
    ]
    if any(r.get("training_data") or r.get("import_check") for r in rows):  # every number on an imported model says so
        tables.append(_table("Training data and import check (of the model each row scores)", rows, [
            ("run", _label), ("model", lambda r: r["model"]), ("data", _data),
            ("training data", lambda r: r.get("training_data") or "skinart's train split (ids recorded)"),
            ("import check", lambda r: r.get("import_check") or "— (trained by skinart)")]))
    also = options.also_malignant
    if also:
        tables.append(_table(f"Health under the {options.also_label} (malignant = {', '.join(also)})", [r for r in rows if r["also"]], [
            ("run", _label), ("data", _data), *((name, lambda r, k=k: pct(r["also"][k])) for name, k in (
                ("binary accuracy", "accuracy"), ("sensitivity", "sensitivity"), ("NPV", "npv"), ("FNR", "fnr")))]))
    shares = [r for r in rows if r.get("predicted_shares")]
    if shares:
        classes = list(shares[0]["predicted_shares"])
        tables.append(_table("Where universal perturbations send the images (share of attacked images predicted as each class)",
                             shares, [("run", _label), ("data", _data), ("attack", lambda r: r["attack"]),
                                      *((c, lambda r, c=c: pct(r["predicted_shares"].get(c))) for c in classes)]))
    return tables


def build_tables(rows: list[dict], entries: list[dict], recipe: dict, options: ReportOptions) -> list[Table]:
    """Every table of the report, in order, none empty (a report of shift runs alone has no attack rows)."""
    tables = _row_tables(rows, options) if rows else []
    if len(pivot_rows(rows)[0]) > 1:
        tables.append(_by_attack(rows))
    if recipe.get("reference"):
        lines, marks = _references(rows, recipe["reference"])
        header = ["run", "metric", "published", "ours [95% CI]", "Δ (points)", "ours on"]
        tables.append(Table("Published numbers beside ours", header, lines, notes=tuple(NOTES[m] for m in sorted(marks))))
    poison = [d for d in entries if d["section"] == "poison"]
    if poison:
        tables.append(Table("Poison detection (the poisoned training split)", ["run", "detector", "precision", "recall", "F1", "flagged", "poisoned"],
                            [[d["task"], str(d["detector"]), pct(d["precision"]), pct(d["recall"]), pct(d["f1"]), str(d["flagged"]),
                              str(d["poisoned"])] for d in poison]))
    for section, make in (("shift", shift_tables), ("subgroup", subgroup_tables), ("certified", certified_tables)):
        mine = [d for d in entries if d["section"] == section]
        tables += [Table(title + on_data(mine), header, lines, notes=notes) for title, header, lines, notes in make(mine)]
    return [table for table in tables if table.lines]
