"""`skinart certify`: a checkpoint's test images certified by randomized smoothing (Cohen, Rosenfeld & Kolter 2019,
through ART): per image the certified class or an abstention and its L2 radius, the certified-accuracy curve, the
malignant decision at the stored operating point certified the same way, and, beside these lower bounds, the upper
bound PGD with EOT over the noise leaves at the same radii (a certificate above it is refused)."""

from __future__ import annotations

import csv
import math
import sys
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import norm

from skinart.attacks.loops import sample_indices
from skinart.attacks.table import reads
from skinart.certification.curves import certify_markdown, curve, plot_certified, share_at
from skinart.certification.empirical import check_bounds, empirical_bounds
from skinart.certification.smoothing import (
    certified, certified_share, class_rule, malignant_class_rule, malignant_rule, smoothed,
)
from skinart.certification.table import CertifyConfig, smoothing_of
from skinart.data import to_model_input
from skinart.defences.deployed import deployed
from skinart.errors import SkinartError
from skinart.models.checkpoint import Checkpoint
from skinart.models.provenance import checkpoint_dataset
from skinart.rundir import METRICS_FILE, METRICS_MD, PER_IMAGE_FILE, RunDir, RunOptions, write_json

CERTIFIED_FIGURE = "certified.png"
PER_IMAGE_COLUMNS = ("index", "image_id", "true_class", "certified_class", "radius", "malignant_decision",
                     "malignant_radius", "attack_broke_at")


def certify_run(cfg: CertifyConfig, checkpoint: Checkpoint, out: Path, options: RunOptions) -> dict | None:
    """Certify (a seeded sample of) the checkpoint's test split at σ (given, or the one it was trained with) and attack
    the smoothed classifier at `cfg`'s radii; None when `out` already holds this run."""
    cfg.check()
    sigma = cfg.sigma or (checkpoint.meta.defence or {}).get("sigma")
    if sigma is None:
        raise SkinartError(f"{checkpoint} was not trained with noise, so it records no σ; give --sigma, e.g. --sigma 0.25")
    if checkpoint.meta.preprocessing:
        raise SkinartError(f"{checkpoint} carries a preprocessing defence, which ART would apply after the noise in "
                           "certifying but before it in training; certify its source checkpoint")
    if cfg.attack_radii(sigma) and not reads("pgd", checkpoint.access):  # the empirical bound is ART's PGD
        raise SkinartError(f"certify attacks the smoothed classifier with PGD at --radii, which reads gradients, and {checkpoint} "
                           f"gives {checkpoint.access} only; pass --radii none to certify it without the attack")
    malignant = checkpoint.malignant_names(options.malignant)
    run = RunDir("certify", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name(), split="test"),
                 malignant=malignant, seed=cfg.seed, certify={**asdict(cfg), "sigma": sigma, "radii": cfg.attack_radii(sigma)})
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    split = dataset.splits["test"]
    index = sample_indices(len(split), cfg.max_samples, cfg.seed)
    x, labels = to_model_input(split.images[index]), split.labels[index]
    classifier = deployed(checkpoint, options.device, precision=options.precision, base=True)  # smoothed below
    with run.staged() as tmp:
        found = _certify(classifier, x, labels, cfg, sigma, checkpoint, malignant)
        metrics = _metrics(found, cfg, sigma, x, labels, checkpoint, malignant, {**dataset.identity(), "split": "test"})
        check_bounds(metrics["empirical"])  # before anything is written: a refused run leaves nothing
        _write(tmp, metrics, found, index, split.ids[index], labels, checkpoint)
        return metrics


def _decisions(checkpoint: Checkpoint, malignant: list[str]) -> dict:
    """What the votes count (a rule and its number of decisions) and how each is certified: the class (Cohen's
    certificate), and the malignant decision at the stored operating point (when there is one). For a checkpoint
    deployed smoothed, t is a share of the copies voting a malignant class, and that share ≥ t is certified
    (`certified_share`); for another, the majority of the copies whose p_malignant ≥ t."""
    decisions = {"class": (class_rule, len(checkpoint.classes), certified)}
    if _why_none(checkpoint, malignant) is not None:
        return decisions
    threshold, malignant_idx = checkpoint.threshold(malignant), [checkpoint.classes.index(c) for c in malignant]
    decisions["malignant"] = (malignant_class_rule(malignant_idx), 2, partial(certified_share, threshold=threshold)) \
        if smoothing_of(checkpoint.meta.defence) else (malignant_rule(malignant_idx, threshold), 2, certified)
    return decisions


def _why_none(checkpoint: Checkpoint, malignant: list[str]) -> str | None:
    """Why no malignant decision is certified: no operating point, or a share threshold of 0 or 1 on a smoothed
    checkpoint (a decision no votes can change, whose radius would be infinite); None when one is."""
    threshold = checkpoint.threshold(malignant)
    if threshold is None:
        return f"{checkpoint} stores no operating point for the malignant set {','.join(malignant)}"
    if smoothing_of(checkpoint.meta.defence) and not 0 < threshold < 1:
        return (f"its t = {threshold:g} on the share of noisy copies voting a malignant class calls every image "
                f"{'malignant' if threshold <= 0 else 'benign'} whatever the votes: a constant decision")
    return None


MALIGNANT_RULES = {True: "the share of noisy copies voting a malignant class ≥ t (the smoothed classifier's p_malignant)",
                   False: "the majority of the noisy copies, each malignant where its p_malignant ≥ t"}


def _certify(classifier, x: np.ndarray, labels: np.ndarray, cfg: CertifyConfig, sigma: float, checkpoint: Checkpoint,
             malignant: list[str]) -> dict:
    """The certificates of each rule, then the attack at each radius; their times."""
    certifier = smoothed(classifier, sigma=sigma, sample_size=cfg.n0, alpha=cfg.alpha, seed=cfg.seed, batch_size=cfg.batch_size)
    print(f"certifying {len(x)} images at σ {sigma:g}: {cfg.n0} + {cfg.n} noisy copies each, {cfg.batch_size} rows per "
          "forward pass", file=sys.stderr)
    start = time.perf_counter()
    decisions = _decisions(checkpoint, malignant)
    votes = certifier.vote_counts(x, (cfg.n0, cfg.n), {name: d[:2] for name, d in decisions.items()}, cfg.batch_size)
    found = {name: decisions[name][2](v[:, 0], v[:, 1], cfg.n, sigma, cfg.alpha) for name, v in votes.items()}
    seconds = {"certify": round(time.perf_counter() - start, 2)}
    print(f"  certified in {seconds['certify']:.1f} s", file=sys.stderr)
    start = time.perf_counter()
    attacked = smoothed(classifier, sigma=sigma, sample_size=cfg.eot, alpha=cfg.alpha, seed=cfg.seed + 1, batch_size=cfg.batch_size)
    clean_correct = votes["class"][:, 1].argmax(1) == labels  # the smoothed majority of the n estimation votes
    bounds = empirical_bounds(certifier, attacked, x, labels, clean_correct=clean_correct,
                              radii=cfg.attack_radii(sigma), steps=cfg.attack_steps, votes=cfg.n0, batch_size=cfg.batch_size)
    seconds["attack"] = round(time.perf_counter() - start, 2)
    if bounds:
        print(f"  attacked at L2 {', '.join(f'{b.radius:g}' for b in bounds)} in {seconds['attack']:.1f} s", file=sys.stderr)
    return {**found, "clean_correct": clean_correct, "bounds": bounds, "seconds": seconds}


def _metrics(found: dict, cfg: CertifyConfig, sigma: float, x: np.ndarray, labels: np.ndarray, checkpoint: Checkpoint,
             malignant: list[str], data: dict) -> dict:
    predicted, radius = found["class"]
    dim = int(np.prod(x.shape[1:]))
    hit = predicted == labels
    largest = sigma * norm.ppf(cfg.alpha ** (1 / cfg.n))  # all n votes for one class
    kept = predicted >= 0
    return {
        "kind": "certify", **checkpoint.provenance(), "data": data, "sigma": sigma, "n": cfg.n, "n0": cfg.n0,
        "alpha": cfg.alpha, "images": len(x), "input_dim": dim, "noise_batch_rows": cfg.batch_size, "seconds": found["seconds"],
        "largest_certifiable_l2": float(largest), "largest_certifiable_linf": float(largest / math.sqrt(dim)),
        "abstained": float(np.mean(~kept)), "certified_accuracy_at_0": share_at(radius, hit, 0.0),
        "accuracy_where_not_abstained": float(np.mean(hit[kept])) if kept.any() else None,
        "median_radius_correct": float(np.median(radius[hit])) if hit.any() else None,
        "certified_accuracy_curve": curve(radius, hit, dim),
        "malignant_decision": _malignant(found.get("malignant"), labels, checkpoint, malignant, dim),
        "empirical": [{"l2": b.radius, "linf": b.radius / math.sqrt(dim), "certified_accuracy": share_at(radius, hit, b.radius),
                       "empirical_robust_accuracy": float(np.mean(b.robust)), "l2_max": b.l2_max,
                       "certified_yet_broken": int(np.sum(hit & (radius >= b.radius) & ~b.robust))} for b in found["bounds"]],
        "attack": {"art": "ProjectedGradientDescent (numpy), L2, weights frozen", "max_iter": cfg.attack_steps,
                   "eps_step": "2 × radius / max_iter", "random_init": 0, "eot_noise_samples": cfg.eot,
                   "judged_by": f"majority of {cfg.n0} noisy copies of the attacked image, and of the clean one's {cfg.n}"},
    }


def _malignant(found: tuple | None, labels: np.ndarray, checkpoint: Checkpoint, malignant: list[str], dim: int) -> dict:
    """The binary decision p_malignant ≥ t, smoothed and certified: for the malignant images, the share certified
    malignant at each radius (no perturbation of smaller L2 norm can hide them), and for the benign ones, benign."""
    if found is None:
        return {"threshold": None, "why_none": _why_none(checkpoint, malignant)}
    decision, radius = found
    positive = np.isin(labels, [checkpoint.classes.index(c) for c in malignant])
    return {"threshold": checkpoint.threshold(malignant), "rule": MALIGNANT_RULES[bool(smoothing_of(checkpoint.meta.defence))],
            "malignant_images": int(positive.sum()), "benign_images": int((~positive).sum()),
            "malignant_certified_malignant": curve(radius[positive], decision[positive] == 1, dim),
            "benign_certified_benign": curve(radius[~positive], decision[~positive] == 0, dim)}


def _broke_at(found: dict, i: int) -> str:
    """per_image.csv's attack_broke_at: "clean" when the smoothed majority was wrong on the clean image, else the
    smallest attacked radius whose attack made it wrong ("" if none did)."""
    if found["bounds"] and not found["clean_correct"][i]:
        return "clean"
    return next((f"{b.radius:g}" for b in found["bounds"] if not b.robust[i]), "")


def _write(out: Path, metrics: dict, found: dict, index: np.ndarray, ids: np.ndarray, labels: np.ndarray,
           checkpoint: Checkpoint) -> None:
    """per_image.csv, metrics.json, metrics.md and the figure."""
    classes = checkpoint.classes
    (predicted, radius), binary = found["class"], found.get("malignant")
    with open(out / PER_IMAGE_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=PER_IMAGE_COLUMNS)
        writer.writeheader()
        for i, (where, image_id, label) in enumerate(zip(index, ids, labels)):
            writer.writerow({"index": int(where), "image_id": str(image_id), "true_class": classes[int(label)],
                             "certified_class": classes[predicted[i]] if predicted[i] >= 0 else "abstain",
                             "radius": f"{radius[i]:.6f}",
                             "malignant_decision": "" if binary is None else ("abstain", "benign", "malignant")[binary[0][i] + 1],
                             "malignant_radius": "" if binary is None else f"{binary[1][i]:.6f}",
                             "attack_broke_at": _broke_at(found, i)})
    write_json(out / METRICS_FILE, metrics)
    title = f"{checkpoint.meta.model} smoothed at σ {metrics['sigma']:g} ({metrics['images']} test images)"
    (out / METRICS_MD).write_text(certify_markdown(metrics, title))
    binary_curves = metrics["malignant_decision"]
    panels = {"certified accuracy (abstentions wrong)": {"certified (lower bound)": metrics["certified_accuracy_curve"]}}
    if binary_curves["threshold"] is not None:
        panels[f"malignant decision p_malignant ≥ {binary_curves['threshold']:.3g}, smoothed"] = {
            "malignant images certified malignant": binary_curves["malignant_certified_malignant"],
            "benign images certified benign": binary_curves["benign_certified_benign"]}
    plot_certified(panels, metrics["empirical"], metrics["input_dim"], out / CERTIFIED_FIGURE, title)
