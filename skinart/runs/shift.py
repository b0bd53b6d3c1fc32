"""`skinart evaluate --shift`: a checkpoint scored on its test split (or external data) under natural shifts, each at
its severities: every metric of a clean evaluation at the checkpoint's **stored** threshold, the threshold that would
restore the target sensitivity on the shifted images (reported, never used), and per shift the mean over severities
and the balanced error relative to clean. Each image is corrupted once per shift × severity, from a seed of its own
(the image's id), so every model meets the same corrupted images (paired comparisons)."""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from skinart.attacks.loops import sample_indices
from skinart.certification.smoothing import smoothing_record
from skinart.data import Split, subgroups
from skinart.defences.deployed import deployed
from skinart.errors import SkinartError
from skinart.metrics import bootstrap_ci, classification_metrics, p_malignant
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset
from skinart.presentation.figures import plot_lines
from skinart.presentation.tables import pct, smoothed_lines
from skinart.runs.scoring import restoring
from skinart.runs.subgroups import subgroup_metrics
from skinart.rundir import METRICS_FILE, METRICS_MD, PER_IMAGE_FILE, RunDir, RunOptions, write_json
from skinart.shifts.gallery import plot_shift_gallery
from skinart.shifts.apply import apply_shift
from skinart.shifts.config import ShiftConfig
from skinart.shifts.table import SHIFTS

SEVERITY_CURVES, GALLERY = "severity_curves.png", "shift_gallery.png"
GALLERY_IMAGES = 3  # test images the gallery shows under every shift and severity
PER_IMAGE_COLUMNS = ("index", "id", "true_class", "shift", "severity", "predicted_class", "p_malignant",
                     "malignant_at_threshold", "correct")


def shift_run(cfg: ShiftConfig, checkpoint: Checkpoint, out: Path, options: RunOptions, *, external: bool = False) -> dict | None:
    """Score `checkpoint` under every shift × severity of `cfg`; None when `out` already holds this run."""
    malignant = checkpoint.malignant_names(options.malignant)
    threshold = checkpoint.threshold(malignant)
    if threshold is None:
        raise SkinartError(f"{checkpoint} stores no operating point for the malignant set {','.join(malignant)}; a shift "
                           "evaluation judges the stored threshold: evaluate with the checkpoint's own --malignant")
    which = {"external": True} if external else {"split": "test"}
    settings = {k: v for k, v in asdict(cfg).items() if k != "by" or v}  # runs without --by keep their config hash
    run = RunDir("shift", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name(), **which),
                 malignant=malignant, shift=settings)
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root, external=external)
    test = dataset.splits["test"]
    keep = sample_indices(len(test), cfg.max_samples, cfg.seed)
    groups = None if cfg.by is None else subgroups(test.metadata, cfg.by, dataset.name)[keep]  # refused before writing
    classifier = deployed(checkpoint, options.device, precision=options.precision, samples=options.smoothing_n)
    scored = _score_all(cfg, classifier, test, keep, checkpoint.classes, malignant)
    target = checkpoint.meta.operating_point.get("target_sensitivity")  # none: the owner gave t
    metrics = shift_metrics(scored, test.labels[keep], classes=checkpoint.classes, malignant=malignant,
                            threshold=threshold, target=target, cfg=cfg, groups=groups)
    metrics.update({"kind": "shift", **checkpoint.provenance(), **smoothing_record(classifier), "external": external,
                    "images": len(keep),
                    "data": {**dataset.identity(), "split": "all" if external else "test"}, "seed": cfg.seed})
    with run.staged() as tmp:
        write_json(tmp / METRICS_FILE, metrics)
        (tmp / METRICS_MD).write_text(shift_markdown(metrics, f"{checkpoint.meta.model} under natural shift"))
        _write_per_image(tmp, scored, test, keep, checkpoint.classes, malignant, threshold)
        plot_severity_curves(metrics, tmp / SEVERITY_CURVES)
        few = keep[:GALLERY_IMAGES]
        plot_shift_gallery(test.images[few], cfg.shifts, cfg.severities, tmp / GALLERY, seed=cfg.seed, ids=test.ids[few])
    return metrics


def _score_all(cfg: ShiftConfig, classifier, test: Split, keep: np.ndarray, classes, malignant) -> dict:
    """{(shift, severity): probabilities}, clean as ("clean", 0); a progress line per shift."""
    images, ids = test.images[keep], test.ids[keep]
    scored = {("clean", 0): predict(classifier, images)}
    for name in cfg.shifts:
        start = time.perf_counter()
        for severity in cfg.severities:
            scored[(name, severity)] = predict(classifier, apply_shift(images, name, severity, cfg.seed, ids))
        print(f"  {name}: severities {','.join(map(str, cfg.severities))} on {len(keep)} images "
              f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return scored


def shift_metrics(scored: dict, labels: np.ndarray, *, classes, malignant, threshold: float, target: float | None,
                  cfg: ShiftConfig, groups: np.ndarray | None = None) -> dict:
    """The clean row, a row per shift × severity and a summary per shift, all at the stored `threshold` (and with
    `groups`, each image's subgroup, every row's metrics per group)."""
    malignant_idx = [list(classes).index(m) for m in malignant]
    rows = [_row(name, severity, probs, labels, classes=classes, malignant=malignant, malignant_idx=malignant_idx,
                 threshold=threshold, target=target, cfg=cfg) for (name, severity), probs in scored.items()]
    if groups is not None:
        for row, probs in zip(rows, scored.values()):
            row["subgroups"] = {"by": cfg.by, **subgroup_metrics(labels, probs, groups, classes=classes, malignant=malignant,
                                                                 threshold=threshold, resamples=cfg.bootstrap, seed=cfg.seed)}
    clean, shifted = rows[0], rows[1:]
    clean_error = 1 - clean["metrics"]["macro_recall"]
    for row in shifted:
        error = 1 - row["metrics"]["macro_recall"]
        row["relative_balanced_error"] = (error - clean_error) / clean_error if clean_error else None
    floor = (clean["ci"].get("sensitivity_at_threshold") or [None])[0]
    return {"malignant": list(malignant), "threshold": threshold, "target_sensitivity": target, "clean": clean,
            "rows": shifted, "by_shift": _by_shift(shifted, floor), "clean_sensitivity_floor": floor}


def _row(name: str, severity: int, probs: np.ndarray, labels: np.ndarray, *, classes, malignant, malignant_idx,
         threshold: float, target: float | None, cfg: ShiftConfig) -> dict:
    scores = p_malignant(probs, malignant_idx)
    metrics = classification_metrics(labels, probs.argmax(1), classes=tuple(classes), malignant=tuple(malignant),
                                     probs=probs, threshold=threshold)
    ci = bootstrap_ci(labels, probs.argmax(1), n_classes=len(classes), malignant_idx=malignant_idx,
                      resamples=cfg.bootstrap, seed=cfg.seed, scores=scores, threshold=threshold)
    fnr = ci.get("fnr_at_threshold")
    ci["sensitivity_at_threshold"] = None if fnr is None else [1 - fnr[1], 1 - fnr[0]]
    kind = "clean" if name == "clean" else SHIFTS[name].kind
    return {"shift": name, "severity": severity, "kind": kind, "metrics": metrics, "ci": ci,
            **restoring(labels, scores, malignant_idx, target, resamples=cfg.bootstrap, seed=cfg.seed)}


def _by_shift(rows: list[dict], floor: float | None) -> dict:
    """Per shift: means over its severities, its worst sensitivity at t, and the severities whose sensitivity at t
    falls below `floor` (the lower end of the clean sensitivity's interval: more than sampling explains)."""
    summary = {}
    for name in dict.fromkeys(r["shift"] for r in rows):
        mine = [r for r in rows if r["shift"] == name]
        sensitivity = [r["metrics"]["binary_at_threshold"]["sensitivity"] for r in mine]
        summary[name] = {
            "mean_balanced_accuracy": float(np.mean([r["metrics"]["macro_recall"] for r in mine])),
            "mean_sensitivity_at_threshold": _mean(sensitivity),
            "mean_relative_balanced_error": _mean([r["relative_balanced_error"] for r in mine]),
            "worst_sensitivity_at_threshold": min((s for s in sensitivity if s is not None), default=None),
            "below_clean_floor": [r["severity"] for r, s in zip(mine, sensitivity)
                                  if floor is not None and s is not None and s < floor],
        }
    return summary


def _mean(values: list) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _write_per_image(out: Path, scored: dict, test: Split, keep: np.ndarray, classes, malignant, threshold: float) -> None:
    """per_image.csv: one row per image × shift × severity (clean as severity 0)."""
    malignant_idx = [list(classes).index(m) for m in malignant]
    labels = test.labels[keep]
    with open(out / PER_IMAGE_FILE, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(PER_IMAGE_COLUMNS)
        for (name, severity), probs in scored.items():
            predicted, scores = probs.argmax(1), p_malignant(probs, malignant_idx)
            writer.writerows(zip(keep.tolist(), test.ids[keep].tolist(), [classes[i] for i in labels], [name] * len(keep),
                                 [severity] * len(keep), [classes[i] for i in predicted], np.round(scores, 6).tolist(),
                                 (scores >= threshold).astype(int).tolist(), (predicted == labels).astype(int).tolist()))


def plot_severity_curves(metrics: dict, path: Path) -> Path | None:
    """Sensitivity at the stored threshold and balanced accuracy against severity, a line per shift (clean at 0)."""
    clean = metrics["clean"]["metrics"]
    panels = {"sensitivity at the stored threshold": {}, "balanced accuracy": {}}
    for name in metrics["by_shift"]:
        mine = [r for r in metrics["rows"] if r["shift"] == name]
        x = [0] + [r["severity"] for r in mine]
        panels["sensitivity at the stored threshold"][name] = (
            x, [clean["binary_at_threshold"]["sensitivity"]] + [r["metrics"]["binary_at_threshold"]["sensitivity"] for r in mine])
        panels["balanced accuracy"][name] = (x, [clean["macro_recall"]] + [r["metrics"]["macro_recall"] for r in mine])
    return plot_lines(panels, path, "severity (0: clean)", "%", cols=2)


def _subgroup_sensitivity(metrics: dict) -> list[str]:
    """A row per shift × severity, a column per group: the sensitivity at t each group keeps (⚑: under 30 images)."""
    names = list(metrics["clean"]["subgroups"]["groups"])
    lines = ["| shift | severity | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in [metrics["clean"], *metrics["rows"]]:
        groups = row["subgroups"]["groups"]
        cells = [pct((groups[g]["binary_at_threshold"] or {}).get("sensitivity")) + (" ⚑" if groups[g]["small"] else "")
                 for g in names]
        lines.append(f"| {row['shift']} | {row['severity']} | " + " | ".join(cells) + " |")
    return lines


def shift_markdown(metrics: dict, title: str) -> str:
    """The table a reader sees first: per shift × severity, sensitivity and specificity at the stored t, balanced
    accuracy, AUROC and the threshold that would restore the target sensitivity."""
    t, target = metrics["threshold"], metrics["target_sensitivity"]
    chosen = "given by the model's owner" if target is None else f"chosen for sensitivity {pct(target)} on validation data"
    lines = [f"# {title}", "", *smoothed_lines(metrics),
             f"{metrics['images']} images; stored threshold t = {t:.4f} ({chosen}); severity 0 is clean.", "",
             "| shift | severity | sensitivity @ t (95 % CI) | specificity @ t | balanced accuracy | AUROC | t restoring "
             f"{pct(target)} sensitivity |" if target is not None else
             "| shift | severity | sensitivity @ t (95 % CI) | specificity @ t | balanced accuracy | AUROC | (no target: nothing to restore) |", "|---|---|---|---|---|---|---|"]
    for row in [metrics["clean"], *metrics["rows"]]:
        m, ci = row["metrics"], row["ci"].get("sensitivity_at_threshold")
        at = m["binary_at_threshold"]
        interval = f" ({pct(ci[0])}–{pct(ci[1])})" if ci else ""
        restore = "—" if row["restoring_threshold"] is None else f"{row['restoring_threshold']:.4f}"
        lines.append(f"| {row['shift']} | {row['severity']} | {pct(at['sensitivity'])}{interval} | {pct(at['specificity'])} | "
                     f"{pct(m['macro_recall'])} | {pct(m['auroc'])} | {restore} |")
    if "subgroups" in metrics["clean"]:
        lines += ["", f"## Sensitivity at t by {metrics['clean']['subgroups']['by']} (metrics.json: every metric per group)", "",
                  *_subgroup_sensitivity(metrics)]
    below = {name: s["below_clean_floor"] for name, s in metrics["by_shift"].items() if s["below_clean_floor"]}
    if below:
        lines += ["", "Sensitivity at t falls below the clean sensitivity's lower 95 % bound under: " +
                  "; ".join(f"{name} (severity {', '.join(map(str, sev))})" for name, sev in below.items()) + "."]
    return "\n".join(lines) + "\n"
