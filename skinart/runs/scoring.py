"""Scoring a classifier and writing what every run shows: clean metrics (evaluate, defend) and clean vs
attacked metrics with the adversarial set and its figures (attack, rescore). Each run's metrics.json
names its `kind`, so the study report reads runs by kind."""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from skinart.attacks.config import OBJECTIVES, AttackConfig, objective_words
from skinart.certification.smoothing import smoothing_record
from skinart.models.checkpoint import Checkpoint
from skinart.data import Split
from skinart.errors import SkinartError
from skinart.metrics import (
    attack_metrics, classification_metrics, p_malignant, prediction_shares,
    restoring_threshold, roc_points, threshold_interval,
)
from skinart.models.networks import predict
from skinart.presentation.figures import amplified, plot_confusions, plot_perturbations, plot_roc, save_image
from skinart.presentation.tables import attack_markdown, metrics_markdown, subgroup_markdown, threat_label
from skinart.rundir import ADVERSARIAL_FILE, METRICS_FILE, METRICS_MD, PER_IMAGE_FILE, PREDICTIONS_FILE, write_json
from skinart.runs.subgroups import subgroup_metrics
from skinart.shifts.config import ImageShift, under


def evaluate(classifier, split: Split, checkpoint: Checkpoint, *, malignant: list[str], out: Path, title: str,
             kind: str = "evaluate", about: dict | None = None, by: tuple[str, np.ndarray] | None = None) -> dict:
    """Clean metrics of `classifier` on `split`, at argmax and at the operating point the scored `checkpoint` stores:
    metrics.json (with `about` the run, e.g. its data), metrics.md, predictions.npz and the confusion matrices; with
    `by` (--by's name, each image's group) the metrics per group too."""
    probs, classes = predict(classifier, split.images), checkpoint.classes
    threshold = checkpoint.threshold(malignant)
    metrics = {"kind": kind, **(about or {}), **checkpoint.provenance(), **smoothing_record(classifier),
               **classification_metrics(split.labels, probs.argmax(1), classes=classes, malignant=malignant, probs=probs,
                                                  threshold=threshold)}
    metrics["operating_point_here"] = operating_point_here(checkpoint, split.labels, probs, malignant)
    if by is not None:
        metrics["subgroups"] = {"by": by[0], **subgroup_metrics(split.labels, probs, by[1], classes=classes, malignant=malignant,
                                                                threshold=threshold)}
    np.savez_compressed(out / PREDICTIONS_FILE, ids=split.ids, labels=split.labels, probabilities=probs)
    write_per_image(out, ids=split.ids, labels=split.labels, classes=classes, malignant=malignant, clean_probs=probs)
    write_json(out / METRICS_FILE, metrics)
    (out / METRICS_MD).write_text(evaluation_markdown(metrics, title))
    plot_confusions(metrics, classes, out, title)
    _plot_roc({"clean": (metrics, probs)}, split.labels, classes, out / "roc.png", title)
    return metrics


def evaluation_markdown(metrics: dict, title: str) -> str:
    """metrics.md of a clean evaluation: its metrics, and per group with --by."""
    groups = metrics.get("subgroups")
    return metrics_markdown(metrics, title) + ("" if groups is None else "\n" + subgroup_markdown(groups, metrics))


def operating_point_here(checkpoint: Checkpoint, labels: np.ndarray, probs: np.ndarray, malignant: list[str]) -> dict | None:
    """Whether the stored operating point holds on these images: the target it was chosen for, the sensitivity it
    gives here, and the threshold that would restore the target here (with its bootstrap interval), reported and never
    used (re-choosing it is an explicit step). None without a stored threshold for this malignant set."""
    threshold = checkpoint.threshold(malignant)
    if threshold is None:
        return None
    target = checkpoint.meta.operating_point.get("target_sensitivity")  # none: the owner gave t
    malignant_idx = [checkpoint.classes.index(m) for m in malignant]
    scores = p_malignant(probs, malignant_idx)
    positive = scores[np.isin(labels, malignant_idx)]
    return {"threshold": threshold, "target_sensitivity": target,
            "sensitivity": float(np.mean(positive >= threshold)) if len(positive) else None,
            **restoring(labels, scores, malignant_idx, target)}


def restoring(labels: np.ndarray, scores: np.ndarray, malignant_idx: list[int], target: float | None, *,
              resamples: int = 1000, seed: int = 0) -> dict:
    """The threshold that would restore `target` sensitivity on these images, and its bootstrap interval."""
    return {"restoring_threshold": restoring_threshold(scores[np.isin(labels, malignant_idx)], target),
            "restoring_threshold_ci": threshold_interval(labels, scores, malignant_idx, target, resamples=resamples, seed=seed)}


def score_attack(classifier, checkpoint: Checkpoint, *, x: np.ndarray, adv: np.ndarray, labels: np.ndarray, malignant: list[str],
                 target: int | None) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics, clean probabilities, attacked probabilities) of the (defended) classifier on clean and attacked images,
    both judged at the threshold the scored checkpoint stores (the deployed one: never re-chosen under attack)."""
    clean_probs, adv_probs = predict(classifier, x), predict(classifier, adv)
    metrics = attack_metrics(labels, clean_probs=clean_probs, adv_probs=adv_probs, classes=checkpoint.classes,
                             malignant=tuple(malignant), target=target, threshold=checkpoint.threshold(malignant))
    metrics.update(perturbation_norms(x, adv), **smoothing_record(classifier))
    return metrics, clean_probs, adv_probs


@dataclass(frozen=True)
class AttackOutcome:
    """What an attack produced, to be scored and written: the attack as configured and as ART ran it (`art_params`,
    read back from the attack), the threat model, the clean and adversarial images with their labels and ids, when
    crafting started, what a fit reported (`info`), the arrays to save (a universal noise or patch), the shift the
    clean images are under (`evaluate --attack --shift`) and each image's subgroup (--by's name, the groups)."""

    cfg: AttackConfig
    art_params: dict
    threat: str
    target: int | None
    x: np.ndarray
    adversarial: np.ndarray
    labels: np.ndarray
    ids: np.ndarray
    start: float
    info: dict = field(default_factory=dict)
    arrays: dict = field(default_factory=dict)
    shift: ImageShift | None = None
    groups: tuple[str, np.ndarray] | None = None


def _write_attack_outputs(out: Path, metrics: dict, o: AttackOutcome, *, clean_probs: np.ndarray, adv_probs: np.ndarray,
                          classes: list[str], title: str) -> None:
    """metrics.json/.md, adversarial.npz, the perturbation grid, the confusion matrices under attack, and the
    universal noise or patch (raw values and a viewable image)."""
    write_json(out / METRICS_FILE, metrics)
    (out / METRICS_MD).write_text(attack_markdown(metrics, title))
    np.savez(out / ADVERSARIAL_FILE, adversarial=o.adversarial, ids=o.ids, labels=o.labels, clean_probabilities=clean_probs,
             adversarial_probabilities=adv_probs)
    malignant = metrics["clean"]["malignant"]
    write_per_image(out, ids=o.ids, labels=o.labels, classes=classes, malignant=malignant, clean_probs=clean_probs,
                    attacked=(adv_probs.argmax(1), p_malignant(adv_probs, [classes.index(c) for c in malignant])),
                    norms=per_image_norms(o.x, o.adversarial), attack=[o.cfg.method] * len(o.x), shift=o.shift)
    changed = np.flatnonzero(clean_probs.argmax(1) != adv_probs.argmax(1))
    shown = np.concatenate([changed, np.setdiff1d(np.arange(len(o.x)), changed)])[:4]
    plot_perturbations(o.x[shown], o.adversarial[shown], clean_probs=clean_probs[shown], adv_probs=adv_probs[shown],
                       classes=classes, labels=o.labels[shown], path=out / "perturbations.png", title=title)
    plot_confusions(metrics["adversarial"], classes, out, title, "_adversarial")
    _plot_roc({"clean": (metrics["clean"], clean_probs), "attacked": (metrics["adversarial"], adv_probs)}, o.labels, classes,
              out / "roc.png", title)
    for name, array in o.arrays.items():
        np.savez(out / f"{name}.npz", **{name: array})
        save_image(array.transpose(1, 2, 0) if name == "patch" else amplified(array), out / f"{name}.png")


def write_attack(out: Path, outcome: AttackOutcome, classifier, checkpoint: Checkpoint, malignant: list[str]) -> dict:
    """Score clean and attacked images with the (defended) classifier of `checkpoint` and write the attack run's
    outputs. A bounded attack whose measured L∞ exceeds its ε is refused."""
    o, classes = outcome, checkpoint.classes
    method = o.cfg.row
    metrics, clean_probs, adv_probs = score_attack(classifier, checkpoint, x=o.x, adv=o.adversarial, labels=o.labels,
                                                   malignant=malignant, target=o.target)
    eps = o.art_params.get("eps") if method.bounded else None
    if eps is not None and metrics["linf_max"] is not None and metrics["linf_max"] > eps + 1e-6:
        raise SkinartError(f"{o.cfg.method} moved pixels by {metrics['linf_max'] * 255:.2f}/255, beyond its ε {eps * 255:.2f}/255: "
                           "the run is not written, as its numbers would not be those of the stated budget; report this as a bug")
    metrics = {"kind": "attack", **checkpoint.provenance(), **metrics, "threat_model": o.threat, "access": method.access, "method": o.cfg.method,
               "bounded": method.bounded, "images": len(o.x), "eps": eps, "art_params": o.art_params,
               # what the attack optimised, and so which test images it attacked (all; miss: malignant; alarm: benign)
               "objective": o.cfg.objective, "attacked_images": OBJECTIVES[o.cfg.objective].attacked,
               "seconds": round(time.perf_counter() - o.start, 2), **o.info, **shift_record(o.shift)}
    if o.groups is not None:  # the attacked images per group, and the same images unattacked beside them
        threshold = checkpoint.threshold(malignant)
        for half, probs in ((metrics["adversarial"], adv_probs), (metrics["clean"], clean_probs)):
            half["subgroups"] = {"by": o.groups[0], **subgroup_metrics(o.labels, probs, o.groups[1], classes=classes,
                                                                       malignant=malignant, threshold=threshold)}
    if method.kind == "universal":  # one δ tends to push most images to one class: which one decides if the FNR rises or falls
        metrics["predicted_shares"] = {"clean": prediction_shares(clean_probs.argmax(1), classes),
                                       "attacked": prediction_shares(adv_probs.argmax(1), classes)}
    title = (f"{o.cfg.method} on {checkpoint.meta.model} ({threat_label(o.threat, method.access)}, {len(o.x)} test images"
             f"{under(o.shift)}{objective_words(o.cfg.objective)})")
    _write_attack_outputs(out, metrics, o, clean_probs=clean_probs, adv_probs=adv_probs, classes=list(classes), title=title)
    return metrics


PER_IMAGE_COLUMNS = ("image_id", "true_class", "clean_prediction", "clean_p_malignant", "attacked_prediction",
                     "attacked_p_malignant", "linf", "l2", "robust", "attack", "shift", "severity")


def shift_settings(shift: ImageShift | None, by: str | None) -> dict:
    """A run config's shift and subgroup entries, absent when not given (so an unshifted run keeps its config hash)."""
    return {**({"shift": asdict(shift)} if shift else {}), **({"by": by} if by else {})}


def shift_record(shift: ImageShift | None) -> dict:
    """What an attack's metrics.json says of the shift its clean images are under: nothing without one."""
    return {} if shift is None else {"shift": shift.shift, "severity": shift.severity}


def perturbation_norms(clean: np.ndarray, adversarial: np.ndarray) -> dict:
    """Measured L∞ (max over samples) and mean L2 of adversarial − clean, in [0, 1] pixel units."""
    if not len(clean):
        return {"linf_max": None, "l2_mean": None}
    linf, l2 = per_image_norms(clean, adversarial)
    return {"linf_max": float(linf.max()), "l2_mean": float(l2.mean())}


def per_image_norms(clean: np.ndarray, adversarial: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L∞, L2) of adversarial − clean for each image, in [0, 1] pixel units."""
    delta = (adversarial.astype(np.float32) - clean.astype(np.float32)).reshape(len(clean), -1)
    return np.abs(delta).max(axis=1), np.linalg.norm(delta, axis=1)


def per_image_rows(*, ids: np.ndarray, labels: np.ndarray, classes: list[str], malignant: list[str], clean_probs: np.ndarray,
                   attacked: tuple[np.ndarray, np.ndarray] | None = None, norms: tuple[np.ndarray, np.ndarray] | None = None,
                   attack: list[str] | None = None, shift: ImageShift | None = None) -> list[dict]:
    """One row per image: its id and true class, the clean prediction and p_malignant, and under attack (`attacked`:
    predicted class indices and p_malignant) the attacked ones, the measured L∞/L2 (`norms`), whether it is robust
    (still its true class), which attack (`attack`) and the shift its clean image is under (`shift`: "clean" is then
    that shifted image). A clean evaluation leaves the attack's columns empty: no made-up robustness for images never
    attacked."""
    clean_p = p_malignant(clean_probs, [classes.index(c) for c in malignant])
    rows = []
    for i, (image_id, label) in enumerate(zip(ids, labels)):
        row = {"image_id": str(image_id), "true_class": classes[int(label)], "clean_prediction": classes[int(clean_probs[i].argmax())],
               "clean_p_malignant": f"{clean_p[i]:.6f}", **dict.fromkeys(PER_IMAGE_COLUMNS[4:], "")}
        if attacked is not None:
            pred, p = attacked
            row.update(attacked_prediction=classes[int(pred[i])], attacked_p_malignant=f"{p[i]:.6f}", robust=str(bool(pred[i] == label)).lower())
        if norms is not None:
            row.update(linf=f"{norms[0][i]:.6f}", l2=f"{norms[1][i]:.6f}")
        if attack is not None:
            row["attack"] = attack[i]
        if shift is not None:
            row.update(shift=shift.shift, severity=str(shift.severity))
        rows.append(row)
    return rows


def write_per_image(out: Path, **columns) -> None:
    """per_image.csv of the rows `per_image_rows` builds from `columns`."""
    with open(out / PER_IMAGE_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_IMAGE_COLUMNS)
        writer.writeheader()
        writer.writerows(per_image_rows(**columns))


def _plot_roc(halves: dict[str, tuple[dict, np.ndarray]], labels: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """ROC curves of p_malignant, one per (metrics, probabilities) pair (clean, attacked), each marked at the stored
    operating point when there is one; no figure where no curve exists."""
    curves = {}
    for name, (m, p) in halves.items():
        malignant_idx = [classes.index(c) for c in m["malignant"]]
        roc = roc_points(labels, p_malignant(p, malignant_idx), malignant_idx)
        if roc is not None:
            at = m["binary_at_threshold"]
            curves[name] = (roc[0], roc[1], m["auroc"], None if at is None else (1 - at["specificity"], at["sensitivity"]))
    if curves:  # none where the images are of one kind (an objective attacks malignant or benign images only)
        plot_roc(curves, path, title)
