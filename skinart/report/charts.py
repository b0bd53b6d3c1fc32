"""The study report's figures, computed from its rows: the recap (each metric per attack as grouped bars, a bar per
model, each attacked bar drawn over the clean bar of its own images), robustness curves as small multiples (a panel
per model and metric against ε, a colour per attack, a line style per threat model, bands of bootstrap intervals),
natural-shift severity curves as small multiples (a panel per run and metric, a line per shift, clean as reference),
metrics against the poisoned share of a label-flip grid and accuracy against the adversarial share."""

from __future__ import annotations

from pathlib import Path

from skinart.report.certified import certified_figure
from skinart.presentation.figures import plot_grouped_bars, plot_lines, plot_small_multiples
from skinart.report.findings import NOT_ATTACKED
from skinart.report.rows import attacked, pivot_rows, threat_suffix

RECAP_METRICS = ("accuracy", "macro_recall", "sensitivity", "npv", "fnr", "fnr_at_threshold")
CURVE_METRICS = ("accuracy", "fnr_at_threshold")
SEVERITY_METRICS = (("sensitivity_at_threshold", "sensitivity @t"), ("balanced_accuracy", "balanced accuracy"))
RECAP_MODELS = 12  # more bars than this to a category cannot be told apart


def metric_label(key: str) -> str:
    """A metrics key as the figures name it: fnr_at_threshold -> FNR @t."""
    return key.replace("_at_threshold", " @t").replace("_", " ").replace("npv", "NPV").replace("fnr", "FNR")


def recap(rows: list[dict]) -> dict[str, tuple[list[str], dict[str, list], dict[str, list]]]:
    """metric -> (the attack columns of the Table 2 layout, model -> its value in each column, model -> the clean value
    of the same images in each attacked column); none for a single bar. A model no attack ran on says so in its name."""
    models = list(dict.fromkeys(r["model"] for r in rows))[:RECAP_MODELS]
    hit = {r["model"] for r in rows if attacked(r)}
    columns, cells = pivot_rows([r for r in rows if r["model"] in models])
    name = {model: model if model in hit else f"{model} ({NOT_ATTACKED})" for model in cells}
    panels = {}
    for key in RECAP_METRICS:
        values = {name[m]: [c[col]["metrics"][key] if col in c else None for col in columns] for m, c in cells.items()}
        before = {name[m]: [(c[col].get("clean_metrics") or {}).get(key) if col in c and attacked(c[col]) else None
                            for col in columns] for m, c in cells.items()}
        panels[metric_label(key)] = (columns, values, before)
    return panels if sum(len(c) for c in cells.values()) > 1 else {}


def _curve(points: dict[float, dict]) -> tuple[list, list, list, list]:
    """ε -> row as (ε in /255, values, interval lows, interval highs), ε ascending."""
    eps = sorted(points)
    bounds = [points[e]["ci"] or (None, None) for e in eps]
    return [255 * e for e in eps], [points[e]["value"] for e in eps], [b[0] for b in bounds], [b[1] for b in bounds]


def robustness_curves(rows: list[dict]) -> dict[str, dict[str, dict[tuple[str, str], tuple]]]:
    """model -> metric -> (attack, threat model) -> its curve (`_curve`), for each attack that ran at two ε or more;
    where the same attack, model, threat model and ε ran twice, the run on more images makes the point."""
    epsilons: dict[str, set] = {}
    for r in rows:
        if r["eps"] is not None:
            epsilons.setdefault(r["attack"], set()).add(r["eps"])
    points: dict[str, dict[str, dict]] = {}
    for r in rows:
        if r["eps"] is None or len(epsilons[r["attack"]]) < 2:
            continue
        for key in CURVE_METRICS:
            line = points.setdefault(r["model"], {}).setdefault(metric_label(key), {}).setdefault((r["attack"], r["threat"]), {})
            if r.get("images", 0) > line.get(r["eps"], {"images": -1})["images"]:
                line[r["eps"]] = {"images": r.get("images", 0), "value": r["metrics"][key], "ci": r["ci"].get(key)}
    curves = {model: {metric: {key: _curve(line) for key, line in lines.items() if len(line) > 1} for metric, lines in panels.items()}
              for model, panels in points.items()}
    return {model: panels for model, panels in curves.items() if any(panels.values())}  # a point alone is no curve


def severity_curves(entries: list[dict]) -> tuple[dict, dict]:
    """(run -> metric -> (shift, '') -> (severities, values) with clean at severity 0, run -> metric -> clean value)
    from the natural-shift entries of the report."""
    grid: dict[str, dict] = {}
    references: dict[str, dict] = {}
    names: dict[str, str] = {}  # a panel per model and data, named by its run where one model has two runs on them
    for e in entries:
        name = f"{e['model']} ({e.get('data') or 'test'})"
        run = name if names.setdefault(name, e["task"]) == e["task"] else f"{e['task']} ({e.get('data') or 'test'})"
        for key, name in SEVERITY_METRICS:
            if e["shift"] == "clean":
                references.setdefault(run, {})[name] = e[key]
                continue
            x, y = grid.setdefault(run, {}).setdefault(name, {}).setdefault((e["shift"], ""), ([0], [None]))
            x.append(e["severity"])
            y.append(e[key])
    for run, panels in grid.items():  # each line starts at its run's clean value (severity 0)
        for name, lines in panels.items():
            for _, y in lines.values():
                y[0] = references.get(run, {}).get(name)
    return grid, references


def _series(panels: dict, panel: str, name: str, x, y) -> None:
    points = panels.setdefault(panel, {}).setdefault(name, ([], []))
    points[0].append(x)
    points[1].append(y)


def _shares(rows: list[dict], tasks: dict[str, dict]) -> tuple[dict, dict]:
    """(accuracy vs the adversarial share of a retraining grid, metrics vs the poisoned share of a label-flip grid)."""
    share, poisoned = {}, {}
    for r in rows:
        model_task = tasks.get(r["model"], {})
        if "ratio" in model_task.get("grid", {}):
            _series(share, model_task["step"], r["attack"] + threat_suffix(r), float(model_task["grid"]["ratio"]), r["metrics"]["accuracy"])
        if r["threat"] == "poisoned training" and "fraction" in r["grid"]:
            for metric in ("accuracy", "macro_recall", "macro_specificity", "fnr"):
                _series(poisoned, f"{r['step']} ({r['attack']})", metric_label(metric), float(r["grid"]["fraction"]), r["metrics"][metric])
    return share, poisoned


def study_figures(rows: list[dict], entries: list[dict], tasks: dict[str, dict], folder: Path) -> list[tuple[str, Path]]:
    """(title, file) of each figure the rows and natural-shift entries call for, drawn into `folder`; `tasks` by name
    give the grids of a recipe."""
    folder.mkdir(parents=True, exist_ok=True)
    share, poisoned = _shares(rows, tasks)
    severity, clean = severity_curves([e for e in entries if e["section"] == "shift"])
    out = [("Recap: each metric per attack, a bar per model (pale: the same images unattacked)",
            plot_grouped_bars(recap(rows), folder / "recap.png", "%", before_label="the same images unattacked")),
           ("Robustness curves: accuracy and FNR @t against ε, a panel per model, a colour per attack, a line style per "
            "threat model (bands: 95% bootstrap intervals)",
            plot_small_multiples(robustness_curves(rows), folder / "robustness.png", "ε (/255)", colour_title="attack",
                                 style_title="threat model")),
           ("Natural shift: sensitivity at the stored t and balanced accuracy against severity, a panel per run, a line per "
            "shift (dashed: clean)",
            plot_small_multiples(severity, folder / "severity.png", "severity (0: clean)", colour_title="shift", references=clean)),
           ("Metrics vs poisoned share of the training data (the thesis's Fig. 4.6)",
            plot_lines(poisoned, folder / "poisoned_share.png", "poisoned share", "%")),
           ("Accuracy vs adversarial share of the training data", plot_lines(share, folder / "adversarial_share.png", "adversarial share", "accuracy %")),
           ("Certified robustness: certified accuracy (lower bound) and what PGD with EOT left (upper bound) of each smoothed "
            "classifier against the L2 radius",
            certified_figure([e for e in entries if e["section"] == "certified"], folder / "certified.png"))]
    if not any(folder.iterdir()):  # nothing to draw: no empty folder either
        folder.rmdir()
    return [(title, path) for title, path in out if path is not None]
