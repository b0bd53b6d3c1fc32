"""The report's Certified robustness section, from `skinart certify` runs: per model and L2 radius the certified
accuracy (a lower bound, Cohen et al.'s randomized smoothing) beside what PGD with EOT left of the same smoothed
classifier (an upper bound), the inner L∞ ball of each radius, and the malignant decision certified; a finding per model
and a figure of both curves."""

from __future__ import annotations

from pathlib import Path

from skinart.presentation.figures import plot_lines
from skinart.presentation.tables import pct

SECTION = "certified"


def _share_at(points: list[dict], r: float) -> float:
    """A certify run's curve at radius r (its first point at or beyond r; 0 beyond its last)."""
    return next((p["share"] for p in points if p["l2"] >= r - 1e-12), 0.0)


def certified_entries(task: dict, model: str, m: dict) -> list[dict]:
    """A certify run's lines: radius 0 and each attacked radius, with both bounds and the malignant decision there."""
    binary = m["malignant_decision"]
    radii = [(0.0, 0.0, m["certified_accuracy_at_0"], None)] + \
        [(e["l2"], e["linf"], e["certified_accuracy"], e["empirical_robust_accuracy"]) for e in m["empirical"]]
    return [{"section": SECTION, "task": task["name"], "model": model, "sigma": m["sigma"], "n": m["n"], "images": m["images"],
             "l2": l2, "linf": linf, "certified": certified, "empirical": empirical, "abstained": m["abstained"],
             "malignant_certified": None if binary["threshold"] is None else _share_at(binary["malignant_certified_malignant"], l2),
             "curve": m["certified_accuracy_curve"]} for l2, linf, certified, empirical in radii]


def certified_tables(entries: list[dict]) -> list[tuple[str, list[str], list[list[str]], tuple[str, ...]]]:
    """(title, header, lines, notes) of the section's one table."""
    header = ["run", "σ", "images", "L2 radius", "inner L∞ (/255)", "certified accuracy", "left by PGD+EOT", "malignant certified malignant"]
    lines = [[e["task"], f"{e['sigma']:g}", str(e["images"]), f"{e['l2']:g}", f"{e['linf'] * 255:.2f}", pct(e["certified"]),
              "—" if e["empirical"] is None else pct(e["empirical"]), pct(e["malignant_certified"])] for e in entries]
    notes = ("certified: the smoothed classifier's class is proved for every perturbation of smaller L2 norm (each with "
             "probability 1 − α); left by PGD+EOT: what an attack on the same smoothed classifier left, at most the true "
             "robust accuracy. The first is a lower bound, the second an upper one; skinart refuses a run where they cross.",
             "inner L∞: the L∞ ball an L2 ball of radius r contains at the input size, r/√d: far smaller than 8/255.")
    return [("Certified robustness (randomized smoothing): lower and upper bounds", header, lines, notes)]


def certified_findings(entries: list[dict]) -> list[str]:
    """Per certify run, at its attacked radius nearest σ: "certified accuracy X % at L2 r; the attack left Y %"."""
    found = []
    for task in dict.fromkeys(e["task"] for e in entries):
        mine = [e for e in entries if e["task"] == task and e["empirical"] is not None]
        if mine:
            e = min(mine, key=lambda e: abs(e["l2"] - e["sigma"]))
            found.append(f"{task} (σ {e['sigma']:g}): certified accuracy {pct(e['certified'])} % at L2 {e['l2']:g} "
                         f"(an L∞ ball of only {e['linf'] * 255:.2f}/255); PGD with EOT left {pct(e['empirical'])} %")
    return found


def certified_figure(entries: list[dict], path: Path) -> Path | None:
    """One panel per certify run: its certified-accuracy curve and the empirical points at the attacked radii."""
    panels = {}
    for task in dict.fromkeys(e["task"] for e in entries):
        mine = [e for e in entries if e["task"] == task]
        curve, attacked = mine[0]["curve"], [e for e in mine if e["empirical"] is not None]
        panels[f"{task} (σ {mine[0]['sigma']:g})"] = {
            "certified (lower bound)": ([p["l2"] for p in curve], [p["share"] for p in curve]),
            **({"left by PGD+EOT (upper bound)": ([e["l2"] for e in attacked], [e["empirical"] for e in attacked])} if attacked else {})}
    return plot_lines(panels, path, "L2 radius", "accuracy %")
