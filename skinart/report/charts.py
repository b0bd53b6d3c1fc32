"""The study report's figures, computed from its rows: the recap (each metric per attack as grouped bars, a bar per
model), robustness curves (accuracy and FNR@t against ε, a line per model and threat model, shaded by their bootstrap
intervals), metrics against the poisoned share of a label-flip grid and accuracy against the adversarial share."""

from __future__ import annotations

from pathlib import Path

from skinart.presentation.figures import plot_grouped_bars, plot_lines
from skinart.report.rows import pivot, threat_suffix

RECAP_METRICS = ("accuracy", "macro_recall", "sensitivity", "npv", "fnr", "fnr_at_threshold")
CURVE_METRICS = ("accuracy", "fnr_at_threshold")
RECAP_MODELS = 12  # more bars than this to a category cannot be told apart


def metric_label(key: str) -> str:
    """A metrics key as the figures name it: fnr_at_threshold -> FNR @t."""
    return key.replace("_at_threshold", " @t").replace("_", " ").replace("npv", "NPV").replace("fnr", "FNR")


def recap(rows: list[dict]) -> dict[str, tuple[list[str], dict[str, list]]]:
    """metric -> (the attack columns of the Table 2 layout, model -> its value in each column); none for a single bar."""
    models = list(dict.fromkeys(r["model"] for r in rows))[:RECAP_MODELS]
    rows = [r for r in rows if r["model"] in models]
    panels = {}
    for key in RECAP_METRICS:
        columns, cells = pivot(rows, key)
        panels[metric_label(key)] = (columns, {model: [values.get(c) for c in columns] for model, values in cells.items()})
    return panels if sum(len(cells) for cells in pivot(rows)[1].values()) > 1 else {}


def _curve(points: dict[float, dict]) -> tuple[list, list, list, list]:
    """ε -> row as (ε in /255, values, interval lows, interval highs), ε ascending."""
    eps = sorted(points)
    bounds = [points[e]["ci"] or (None, None) for e in eps]
    return [255 * e for e in eps], [points[e]["value"] for e in eps], [b[0] for b in bounds], [b[1] for b in bounds]


def robustness_curves(rows: list[dict]) -> dict[str, dict[str, tuple]]:
    """'attack: metric' -> 'model (threat model)' -> its curve (`_curve`), for each attack that ran at two ε or more;
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
            line = points.setdefault(f"{r['attack']}: {metric_label(key)}", {}).setdefault(f"{r['model']} ({r['threat']})", {})
            if r.get("images", 0) > line.get(r["eps"], {"images": -1})["images"]:
                line[r["eps"]] = {"images": r.get("images", 0), "value": r["metrics"][key], "ci": r["ci"].get(key)}
    return {panel: {name: _curve(line) for name, line in lines.items()} for panel, lines in points.items()}


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


def study_figures(rows: list[dict], tasks: dict[str, dict], folder: Path) -> list[tuple[str, Path]]:
    """(title, file) of each figure the rows call for, drawn into `folder`; `tasks` by name give the grids of a recipe."""
    folder.mkdir(parents=True, exist_ok=True)
    share, poisoned = _shares(rows, tasks)
    out = [("Recap: each metric per attack, a bar per model", plot_grouped_bars(recap(rows), folder / "recap.png", "%")),
           ("Robustness curves: accuracy and FNR @t against ε, per model and threat model (bands: 95% bootstrap intervals)",
            plot_lines(robustness_curves(rows), folder / "robustness.png", "ε (/255)", "%", cols=len(CURVE_METRICS))),
           ("Metrics vs poisoned share of the training data (the thesis's Fig. 4.6)",
            plot_lines(poisoned, folder / "poisoned_share.png", "poisoned share", "%")),
           ("Accuracy vs adversarial share of the training data", plot_lines(share, folder / "adversarial_share.png", "adversarial share", "accuracy %"))]
    if not any(folder.iterdir()):  # nothing to draw: no empty folder either
        folder.rmdir()
    return [(title, path) for title, path in out if path is not None]
