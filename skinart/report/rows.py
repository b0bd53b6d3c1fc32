"""The rows of a study report: one per scored run (and per threat model of an `evaluate --attack` run), each with
its flat metrics, bootstrap intervals from the per-image predictions and a second binary mapping. Runs are read by
the `kind` their metrics.json names."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from skinart.attacks.table import METHODS
from skinart.data import DEFAULT_MALIGNANT
from skinart.errors import SkinartError
from skinart.metrics import binary_metrics, bootstrap_ci, p_malignant
from skinart.presentation.tables import threat_label
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE, PER_IMAGE_FILE, PREDICTIONS_FILE
from skinart.attacks.sanity import sanity_label
from skinart.report.basis import data_label, import_check
from skinart.report.certified import certified_entries
from skinart.report.subgroups import subgroup_entries
from skinart.shifts.config import ImageShift, under

ROW_METRICS = ("accuracy", "macro_recall", "macro_specificity", "fooling_rate", "error_rate", "clean_accuracy",
               "binary_accuracy", "sensitivity", "specificity", "npv", "fnr", "auroc", "sensitivity_at_threshold",
               "specificity_at_threshold", "npv_at_threshold", "fnr_at_threshold")
AT_THRESHOLD = ("sensitivity", "specificity", "npv", "fnr")
PREDICTIONS = {"attack": (ADVERSARIAL_FILE, "adversarial_probabilities"), "evaluate": (PREDICTIONS_FILE, "probabilities"),
               "defend": (PREDICTIONS_FILE, "probabilities")}


@dataclass(frozen=True)
class ReportOptions:
    """How a report computes its numbers: bootstrap resamples and seed, and a second malignant set with its name."""

    bootstrap: int = 1000
    seed: int = 0
    also_malignant: list[str] | None = None
    also_label: str = "alternative mapping"


def _flat(m: dict) -> dict:
    """The reported numbers of one set of metrics; AUROC and the operating point are None in runs that predate them."""
    b, at = m["binary"], m.get("binary_at_threshold") or {}
    return {"accuracy": m["accuracy"], "macro_recall": m["macro_recall"], "macro_specificity": m["macro_specificity"],
            "binary_accuracy": b["accuracy"], "sensitivity": b["sensitivity"], "specificity": b["specificity"],
            "npv": b["npv"], "fnr": b["fnr"], "auroc": m.get("auroc"), "threshold": at.get("threshold"),
            **{f"{k}_at_threshold": at.get(k) for k in AT_THRESHOLD}}


def _per_image(where: Path, classes: list[str]) -> tuple | None:
    """(labels, predicted classes, attacked p_malignant) from a worst case's per_image.csv (it saves no probabilities)."""
    if not (where / PER_IMAGE_FILE).is_file():
        return None
    with open(where / PER_IMAGE_FILE, newline="") as f:
        rows = list(csv.DictReader(f))
    return (np.array([classes.index(r["true_class"]) for r in rows], dtype=int),
            np.array([classes.index(r["attacked_prediction"]) for r in rows], dtype=int),
            np.array([float(r["attacked_p_malignant"]) for r in rows]))


def _predictions(where: Path, kind: str, classes: list[str], malignant: list[int]) -> tuple | None:
    """(labels, predicted classes, p_malignant) a run saved per image, or None for a run kind that saves none."""
    if kind == "worst_case":
        return _per_image(where, classes)
    if kind not in PREDICTIONS or not (where / PREDICTIONS[kind][0]).is_file():
        return None
    file, key = PREDICTIONS[kind]
    with np.load(where / file) as f:
        labels, probs = f["labels"], f[key]
    return labels, probs.argmax(1), p_malignant(probs, malignant)


def _row(task: dict, where: Path, metrics: dict, options: ReportOptions, *, model: str, attack: str, threat: str, kind: str) -> dict:
    """One reported line: flat metrics, bootstrap CIs from the per-image predictions, the alternative binary mapping."""
    m = metrics.get("adversarial", metrics)
    shift = ImageShift(metrics["shift"], metrics["severity"]) if metrics.get("shift") else None  # evaluate --attack --shift
    row = {"task": task["name"], "step": task["step"], "grid": task["grid"], "model": model, "attack": attack + under(shift),
           "method": attack, "threat": threat_label(threat, METHODS[attack].access if attack in METHODS else "gradients"),
           "eps": metrics.get("eps"), "dir": str(where), "metrics": _flat(m), "ci": {}, "also": None, "sanity": "—",
           "predicted_shares": (metrics.get("predicted_shares") or {}).get("attacked"),  # universal runs: where δ sends the images
           "training_data": metrics.get("training_data")}  # a model imported from outside skinart: unknown
    row["metrics"].update({k: metrics.get(k) for k in ("fooling_rate", "error_rate")})
    clean = metrics.get("clean") or {}
    # the same images unattacked: an attacked row's "before" (the whole split's clean numbers stand on other images)
    row["clean_metrics"] = _flat(clean) if "binary" in clean else None
    row["metrics"]["clean_accuracy"] = clean.get("accuracy")
    row["metrics"]["clean_fnr_at_threshold"] = (clean.get("binary_at_threshold") or {}).get("fnr")
    classes = list(m["per_class"])
    malignant = [classes.index(c) for c in m.get("malignant", DEFAULT_MALIGNANT)]
    arrays = _predictions(where, kind, classes, malignant)
    if arrays is not None:
        labels, predicted, scores = arrays
        row["images"] = len(labels)
        row["ci"] = bootstrap_ci(labels, predicted, n_classes=len(classes), malignant_idx=malignant, resamples=options.bootstrap,
                                 seed=options.seed, scores=scores, threshold=row["metrics"]["threshold"])
        if options.also_malignant:
            row["also"] = binary_metrics(labels, predicted, [classes.index(c) for c in options.also_malignant])
    return row


def threat_suffix(row: dict) -> str:
    """The threat model as a suffix, left out where it goes without saying (clean rows, white-box)."""
    return "" if row["threat"] in ("—", "white-box") else f" ({row['threat']})"


def eps_label(eps: float | None) -> str:
    """ε as k/255 when it is one, else as a decimal."""
    if eps is None:
        return "ε unbounded"
    return f"ε={round(eps * 255)}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 else f"ε={eps:g}"


def pivot_rows(rows: list[dict]) -> tuple[list[str], dict[str, dict[str, dict]]]:
    """(columns, model -> column -> row): the paper's Table 2 layout, one column per attack and threat model (and
    per ε for an attack run at several ε, so a sweep is not folded into its first value); a cell's first row wins."""
    attack_key = lambda r: r["attack"] + threat_suffix(r)  # noqa: E731
    epsilons: dict[str, set] = {}
    for r in rows:
        epsilons.setdefault(attack_key(r), set()).add(r["eps"])
    column = lambda r: attack_key(r) + (f" {eps_label(r['eps'])}" if len(epsilons[attack_key(r)]) > 1 else "")  # noqa: E731
    cells: dict[str, dict] = {}
    for r in rows:
        cells.setdefault(r["model"], {}).setdefault(column(r), r)
    return list(dict.fromkeys(column(r) for r in rows)), cells


def pivot(rows: list[dict], metric: str = "accuracy") -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """(columns, model -> column -> metric) of `pivot_rows`."""
    columns, cells = pivot_rows(rows)
    return columns, {model: {c: r["metrics"][metric] for c, r in values.items()} for model, values in cells.items()}


def attacked(row: dict) -> bool:
    """An attack's row (a poisoned training is no attack on the model it scores)."""
    return row["attack"] != "clean" and row["threat"] != "poisoned training"


def _read(where: Path) -> dict:
    metrics = json.loads((where / METRICS_FILE).read_text())
    if "kind" not in metrics:
        raise SkinartError(f"{where / METRICS_FILE} names no run kind (written by an older skinart); "
                           "re-run the recipe with --no-resume")
    return metrics


def _model(task: dict) -> str:
    """The model a task scored: the step it reads, or the directory's name."""
    params = task["params"]
    return task["uses"].get("checkpoint") or task["uses"].get("retrained") or \
        Path(str(params.get("checkpoint") or params.get("retrained") or "")).name


def _data_label(metrics: dict) -> str:
    """The threat column of a clean evaluation: none, or the external data it scored (not the model's own test split)."""
    return f"external data: {metrics['data']['name']}" if metrics.get("external") else "—"


def _threat_rows(task: dict, where: Path, m: dict, options: ReportOptions, sanity: dict | None) -> tuple[list[dict], list[dict]]:
    """(rows, subgroup entries): one row per threat model of an `evaluate --attack` run (one attack sub-run each), with
    its sanity verdict, and with --by its attacked images' subgroups."""
    runs = {t: _read(where / t) for t in m["threats"]}
    rows = [_row(task, where / t, sub, options, model=_model(task), attack=m["method"], threat=t, kind="attack") for t, sub in runs.items()]
    for row in rows:
        row["sanity"], row["sanity_checks"] = sanity_label(sanity), sanity
    return rows, [e for row, sub in zip(rows, runs.values())
                  for e in subgroup_entries(task, _model(task), [{**sub["adversarial"], **_shift_of(sub)}],
                                            attack=row["attack"] + threat_suffix(row))]


def _worst_case_rows(task: dict, where: Path, m: dict, options: ReportOptions) -> tuple[list[dict], list[dict]]:
    """(rows, subgroup entries): each attack's rows, then one per threat model for the per-image worst case over them
    (robust accuracy); each attack's subgroup entries (with --by)."""
    rows, entries = [], []
    for method in m["methods"]:
        method_rows, method_entries = _threat_rows(task, where / method, _read(where / method), options, m["sanity"])
        rows, entries = rows + method_rows, entries + method_entries
    label = f"worst case ({', '.join(m['methods'])})"
    if "autoattack" in m["methods"]:  # the number a robustness claim is judged by, named as reviewers expect it
        label = f"robust accuracy (AutoAttack): {label}"
    eps = rows[0]["eps"] if rows else None
    for threat, worst in m["worst_case_metrics"].items():
        clean = _read(where / m["methods"][0] / threat)["clean"]  # every attack scored the same images (checked when written)
        row = _row(task, where / threat, {"adversarial": worst, "clean": clean, "eps": eps, **_shift_of(m),
                                 "training_data": m.get("training_data"),
                                 "fooling_rate": m["worst_case"][threat]["fooling_rate"], "error_rate": 1 - worst["accuracy"]},
                   options, model=_model(task), attack=label, threat=threat, kind="worst_case")
        rows.append({**row, "sanity": sanity_label(m["sanity"]), "sanity_checks": m["sanity"], "worst_case": True})
    return rows, entries


def _shift_of(m: dict) -> dict:
    """The shift an attacked run's clean images were under (`evaluate --attack --shift`), as its metrics.json says it."""
    return {k: m[k] for k in ("shift", "severity") if k in m}


def _shift_entries(task: dict, m: dict) -> list[dict]:
    """A natural-shift run's lines (its clean row first), for the report's Natural shift section: every number at the
    checkpoint's stored threshold, as the run computed it (its own bootstrap intervals over the same images)."""
    entries = []
    for row in [m["clean"], *m["rows"]]:
        at = row["metrics"]["binary_at_threshold"]
        entries.append({"section": "shift", "task": task["name"], "model": _model(task), "shift": row["shift"],
                        "severity": row["severity"], "shift_kind": row["kind"], "images": m["images"],
                        "data": _data_label(m) if m["external"] else "test split", "threshold": m["threshold"], "target": m["target_sensitivity"],
                        "sensitivity_at_threshold": at["sensitivity"], "specificity_at_threshold": at["specificity"],
                        "sensitivity_ci": row["ci"].get("sensitivity_at_threshold"),
                        "balanced_accuracy": row["metrics"]["macro_recall"], "auroc": row["metrics"]["auroc"],
                        "relative_balanced_error": row.get("relative_balanced_error"),
                        "restoring_threshold": row["restoring_threshold"], "clean_floor": m["clean_sensitivity_floor"]})
    return entries


# run kind -> (task, its directory, its metrics, options) -> (rows, section entries: poison detections, shift lines)
ROWS_BY_KIND = {
    "threats": lambda task, where, m, options: _threat_rows(task, where, m, options, m.get("sanity")),
    "worst_case": _worst_case_rows,
    "attack": lambda task, where, m, options: ([_row(task, where, m, options, model=_model(task), attack=m["method"], threat=m["threat_model"], kind="attack")], []),
    "poison": lambda task, where, m, options: ([
        _row(task, where, m["poisoned_model"], options, model=task["name"], attack=m["method"], threat="poisoned training", kind="poison")], []),
    "detect-poison": lambda task, where, m, options: ([], [
        {"section": "poison", "task": task["name"], **{k: m.get(k) for k in ("detector", "precision", "recall", "f1", "flagged", "poisoned")}}]),
    "shift": lambda task, where, m, options: ([], _shift_entries(task, m) + subgroup_entries(task, _model(task), [m["clean"], *m["rows"]])),
    "evaluate": lambda task, where, m, options: ([_row(task, where, m, options, model=_model(task), attack="clean", threat=_data_label(m), kind="evaluate")],
                                                 subgroup_entries(task, _model(task), [m])),
    # a defended checkpoint's clean test metrics: the row is the defended model itself
    "defend": lambda task, where, m, options: ([_row(task, where, m, options, model=task["name"], attack="clean", threat="—", kind="defend")], []),
    # a certification: both bounds per radius, for the report's Certified robustness section (report.certified)
    "certify": lambda task, where, m, options: ([], certified_entries(task, _model(task), m)),
}


SCORES_NOTHING = ("train", "import")  # run kinds whose only output is a checkpoint: no row of their own


def run_rows(task: dict, where: Path, options: ReportOptions) -> tuple[list[dict], list[dict]]:
    """(rows, section entries) of one finished run directory, read by its kind; each names the data it stands on and,
    for an imported model, the verdict of its import check."""
    metrics = _read(where)
    rows, entries = ROWS_BY_KIND[metrics["kind"]](task, where, metrics, options)
    data, verdict = data_label(where), import_check(where)
    for item in rows + [e for e in entries if "data" in e]:
        item.update(data=data, import_check=verdict)
    return rows, entries


def collect_rows(run_dir: Path, plan: dict, options: ReportOptions) -> tuple[list[dict], list[dict], list[str]]:
    """(rows, poison detections, tasks not yet run) from the run directories of a recipe run."""
    rows, detections, missing = [], [], []
    for task in plan["tasks"]:
        where = run_dir / task["name"]
        if task["command"] in ("report", "train", "import"):
            continue
        if not (where / METRICS_FILE).is_file():
            missing.append(task["name"])
            continue
        task_rows, task_detections = run_rows(task, where, options)
        rows += task_rows
        detections += task_detections
    return rows, detections, missing
