"""Scoring a classifier and writing what every run shows: clean metrics (evaluate, defend) and clean vs
attacked metrics with the adversarial set and its figures (attack, rescore). Each run's metrics.json
names its `kind`, so the study report reads runs by kind."""

from __future__ import annotations

from pathlib import Path

import time

import numpy as np

from skinart.attack_config import AttackConfig
from skinart.data import Split
from skinart.errors import SkinartError
from skinart.metrics import (
    attack_metrics, classification_metrics, operating_threshold, p_malignant, perturbation_norms, prediction_shares, roc_points,
)
from skinart.models import predict
from skinart.presentation.figures import amplified, plot_confusions, plot_perturbations, plot_roc, save_image
from skinart.presentation.tables import attack_markdown, metrics_markdown, threat_label
from skinart.rundir import write_json


def evaluate(classifier, split: Split, meta: dict, malignant: list[str], out: Path, title: str, kind: str = "evaluate",
             about: dict | None = None) -> dict:
    """Clean metrics of `classifier` on `split`, at argmax and at the operating point `meta` (the scored checkpoint's
    metadata) stores: metrics.json (with `about` the run, e.g. its data), metrics.md, predictions.npz and the confusion
    matrices."""
    probs, classes = predict(classifier, split.images), meta["classes"]
    threshold = operating_threshold(meta.get("operating_point"), malignant)
    metrics = {"kind": kind, **(about or {}),
               **classification_metrics(split.labels, probs.argmax(1), tuple(classes), malignant, probs, threshold)}
    np.savez_compressed(out / "predictions.npz", ids=split.ids, labels=split.labels, probabilities=probs)
    write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(metrics_markdown(metrics, title))
    plot_confusions(metrics, classes, out, title)
    _plot_roc({"clean": (metrics, probs)}, split.labels, classes, out / "roc.png", title)
    return metrics


def score_attack(classifier, x: np.ndarray, adv: np.ndarray, labels: np.ndarray, malignant: list[str], meta: dict,
                 target: int | None) -> tuple[dict, np.ndarray, np.ndarray]:
    """(metrics, clean probabilities, attacked probabilities) of the (defended) classifier on clean and attacked images,
    both judged at the threshold the scored checkpoint stores (the deployed one: never re-chosen under attack)."""
    clean_probs, adv_probs = predict(classifier, x), predict(classifier, adv)
    threshold = operating_threshold(meta.get("operating_point"), malignant)
    metrics = attack_metrics(labels, clean_probs, adv_probs, tuple(meta["classes"]), tuple(malignant), target, threshold)
    metrics.update(perturbation_norms(x, adv))
    return metrics, clean_probs, adv_probs


def write_attack_outputs(out: Path, metrics: dict, x: np.ndarray, adv: np.ndarray, clean_probs: np.ndarray, adv_probs: np.ndarray,
                         labels: np.ndarray, ids: np.ndarray, classes: list[str], arrays: dict, title: str) -> None:
    """metrics.json/.md, adversarial.npz, the perturbation grid, the confusion matrices under attack, and the
    universal noise or patch (raw values and a viewable image)."""
    write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(attack_markdown(metrics, title))
    np.savez(out / "adversarial.npz", adversarial=adv, ids=ids, labels=labels, clean_probabilities=clean_probs,
             adversarial_probabilities=adv_probs)
    changed = np.flatnonzero(clean_probs.argmax(1) != adv_probs.argmax(1))
    shown = np.concatenate([changed, np.setdiff1d(np.arange(len(x)), changed)])[:4]
    plot_perturbations(x[shown], adv[shown], clean_probs[shown], adv_probs[shown], classes, labels[shown], out / "perturbations.png", title)
    plot_confusions(metrics["adversarial"], classes, out, title, "_adversarial")
    _plot_roc({"clean": (metrics["clean"], clean_probs), "attacked": (metrics["adversarial"], adv_probs)}, labels, classes,
              out / "roc.png", title)
    for name, array in arrays.items():
        np.savez(out / f"{name}.npz", **{name: array})
        save_image(array.transpose(1, 2, 0) if name == "patch" else amplified(array), out / f"{name}.png")


def write_attack(out: Path, cfg: AttackConfig, art_params: dict, classifier, meta: dict, threat: str, malignant: list[str],
                 x: np.ndarray, adv: np.ndarray, labels: np.ndarray, ids: np.ndarray, target: int | None, start: float,
                 info: dict, arrays: dict) -> dict:
    """Score clean and attacked images with the (defended) classifier and write the attack run's outputs. `art_params`
    is what ART ran with (read back from the attack); a bounded attack whose measured L∞ exceeds its ε is refused."""
    method, classes = cfg.row, meta["classes"]
    metrics, clean_probs, adv_probs = score_attack(classifier, x, adv, labels, malignant, meta, target)
    eps = art_params.get("eps") if method.bounded else None
    if eps is not None and metrics["linf_max"] is not None and metrics["linf_max"] > eps + 1e-6:
        raise SkinartError(f"{cfg.method} moved pixels by {metrics['linf_max'] * 255:.2f}/255, beyond its ε {eps * 255:.2f}/255: "
                           "the run is not written, as its numbers would not be those of the stated budget; report this as a bug")
    metrics = {"kind": "attack", **metrics, "threat_model": threat, "access": method.access, "method": cfg.method,
               "bounded": method.bounded, "images": len(x), "eps": eps, "art_params": art_params,
               "seconds": round(time.perf_counter() - start, 2), **info}
    if method.kind == "universal":  # one δ tends to push most images to one class: which one decides if the FNR rises or falls
        metrics["predicted_shares"] = {"clean": prediction_shares(clean_probs.argmax(1), classes),
                                       "attacked": prediction_shares(adv_probs.argmax(1), classes)}
    title = f"{cfg.method} on {meta['model']} ({threat_label(threat, method.access)}, {len(x)} test images)"
    write_attack_outputs(out, metrics, x, adv, clean_probs, adv_probs, labels, ids, classes, arrays, title)
    return metrics


def _plot_roc(halves: dict[str, tuple[dict, np.ndarray]], labels: np.ndarray, classes: list[str], path: Path, title: str) -> None:
    """ROC curves of p_malignant, one per (metrics, probabilities) pair (clean, attacked), each marked at the stored
    operating point when there is one."""
    curves = {}
    for name, (m, p) in halves.items():
        malignant_idx = [classes.index(c) for c in m["malignant"]]
        roc = roc_points(labels, p_malignant(p, malignant_idx), malignant_idx)
        if roc is not None:
            at = m["binary_at_threshold"]
            curves[name] = (roc[0], roc[1], m["auroc"], None if at is None else (1 - at["specificity"], at["sensitivity"]))
    plot_roc(curves, path, title)
