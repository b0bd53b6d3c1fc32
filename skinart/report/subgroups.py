"""The report's subgroup tables (`evaluate --by sex|age|site`: clean, attacked or under natural shift): every metric per
group of the clean and the attacked images with its interval, small groups flagged, the largest gap between the groups
large enough to compare, and for a shift run the sensitivity at the stored threshold each group keeps under each
shift × severity."""

from __future__ import annotations

from skinart.data import SMALL_GROUP
from skinart.metrics import MIN_INTERVAL_IMAGES
from skinart.presentation.tables import gap_words, pct

SMALL = "⚑"
GAP_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "sensitivity_at_threshold": "sensitivity @t",
             "specificity_at_threshold": "specificity @t"}
# (column, the group's value, its interval key): every metric of a clean evaluation
COLUMNS = (("accuracy", lambda g: g["accuracy"], "accuracy"), ("balanced accuracy", lambda g: g["macro_recall"], "macro_recall"),
           ("AUROC", lambda g: g["auroc"], "auroc"),
           ("sensitivity @t", lambda g: (g["binary_at_threshold"] or {}).get("sensitivity"), "sensitivity_at_threshold"),
           ("specificity @t", lambda g: (g["binary_at_threshold"] or {}).get("specificity"), None),
           ("FNR @t", lambda g: (g["binary_at_threshold"] or {}).get("fnr"), "fnr_at_threshold"))


def subgroup_entries(task: dict, model: str, rows: list[dict], attack: str | None = None) -> list[dict]:
    """A report entry per scored row that carries subgroups (a clean evaluation's metrics; a shift run's clean row and
    each shift × severity row; an attack run's attacked images, named by `attack`, shifted or not): its groups and
    largest gaps."""
    return [{"section": "subgroup", "task": task["name"], "model": model, "data": None, "attack": attack, "shift": row.get("shift", "clean"),
             "severity": row.get("severity", 0), "by": row["subgroups"]["by"], "groups": row["subgroups"]["groups"],
             "largest_gap": row["subgroups"]["largest_gap"]} for row in rows if row.get("subgroups")]


def _cell(value, ci) -> str:
    return pct(value) + (f" [{pct(ci[0])}–{pct(ci[1])}]" if ci else "")




def subgroup_tables(entries: list[dict]) -> list[tuple[str, list[str], list[list[str]], tuple[str, ...]]]:
    """(title, header, lines, notes): every metric per group of the clean and the attacked rows, their largest gaps, and
    the sensitivity at t per group under each shift × severity of a shift run."""
    scored = [e for e in entries if e["shift"] == "clean" or e["attack"]]  # a shift run's shifted rows: the last table
    if not scored:
        return []
    images = lambda e: e["attack"] or "clean"  # noqa: E731
    lines = [[e["task"], e["data"], e["by"], images(e), f"{name} {SMALL}" if g["small"] else name, str(g["images"]),
              *(_cell(value(g), g["ci"].get(key) if key else None) for _, value, key in COLUMNS)]
             for e in scored for name, g in e["groups"].items()]
    gaps = [[e["task"], e["data"], e["by"], images(e), GAP_NAMES.get(metric, metric), gap_words(gap)]
            for e in scored for metric, gap in e["largest_gap"].items()]
    notes = (f"{SMALL} fewer than {SMALL_GROUP} images: shown, but too few to compare (left out of the largest gap). No interval "
             f"where fewer than {MIN_INTERVAL_IMAGES} images stand behind a number. @t: at the checkpoint's stored threshold.",)
    tables = [("Subgroups: every metric per group (clean and attacked images) [95% CI]",
               ["run", "data", "by", "images scored", "group", "images", *(name for name, *_ in COLUMNS)], lines, notes),
              ("Subgroups: the largest gap between groups", ["run", "data", "by", "images scored", "metric", "largest gap"], gaps,
               (f"Between known groups (not unknown) with at least {SMALL_GROUP} images behind the metric (malignant images "
                "for a sensitivity, benign ones for a specificity).",))]
    shifted = [e for e in entries if e["shift"] != "clean" and not e["attack"]]
    if shifted:
        groups = list(dict.fromkeys(name for e in entries for name in e["groups"]))
        sensitivity = [[e["task"], e["shift"], str(e["severity"])] + [
            "—" if name not in e["groups"] else pct((e["groups"][name]["binary_at_threshold"] or {}).get("sensitivity"))
            + (f" {SMALL}" if e["groups"][name]["small"] else "") for name in groups] for e in entries if not e["attack"] and
            e["task"] in {s["task"] for s in shifted}]
        tables.append(("Subgroups under natural shift: sensitivity @t per group", ["run", "shift", "severity", *groups],
                       sensitivity, notes[:1]))
    return tables
