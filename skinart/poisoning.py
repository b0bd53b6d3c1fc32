"""Poisoning runs: ART's `PoisoningAttackBackdoor` rewrites a share of the training split (a label flip
with an identity perturbation, or a trigger pattern), the model is retrained with the checkpoint's own
training settings, and both models are compared on the clean (and triggered) test split."""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from art.attacks.poisoning import PoisoningAttackBackdoor
from art.attacks.poisoning.perturbations import add_pattern_bd

from skinart.attacks import AttackConfig, one_hot, sample_indices
from skinart.data import LesionDataset, Split, from_model_input, to_model_input
from skinart.evaluate import checkpoint_dataset, predict
from skinart.metrics import classification_metrics, parse_malignant
from skinart.models import classifier_from_checkpoint
from skinart.report import plot_confusion, plot_perturbations
from skinart.runs import needs_run, staged, write_json
from skinart.train import TrainConfig, train

PERTURBATIONS = {
    "poison-flip": lambda x: x,  # ART has no label-flip attack: an identity "trigger" with the target label is one
    # add_pattern_bd, not add_single_bd: the latter has no channels_first and writes the wrong pixels on NCHW
    "poison-backdoor": lambda x: add_pattern_bd(x, channels_first=True),
}


def poison_split(split: Split, method: str, indices: np.ndarray, target: int, n_classes: int) -> Split:
    """A copy of `split` whose `indices` carry ART's poison (perturbed images, target label)."""
    attack = PoisoningAttackBackdoor(PERTURBATIONS[method])
    x, y = attack.poison(to_model_input(split.images[indices]), y=one_hot(np.int64(target), n_classes), broadcast=True)
    images, labels = split.images.copy(), split.labels.copy()
    images[indices], labels[indices] = from_model_input(x), y.argmax(1)
    return replace(split, images=images, labels=labels)


def poison_run(cfg: AttackConfig, checkpoint: Path, meta: dict, out: Path, data: str | None, data_root: str | None,
               malignant: str | None, device: str, overwrite: bool) -> dict | None:
    """`skinart attack --method poison-*`: poison, retrain, and compare with the clean model."""
    classes = meta["classes"]
    target, source = cfg.check(classes)
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(classes))
    train_cfg = TrainConfig(**meta["train_config"])
    if cfg.retrain_epochs:
        train_cfg.epochs = cfg.retrain_epochs
    config = {
        "command": "attack", "attack": cfg.__dict__, "retrain": train_cfg.__dict__,
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
        "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None},
        "malignant": malignant_names,
    }
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    train_split, test = dataset.splits["train"], dataset.splits["test"]
    candidates = train_split.labels == source if cfg.method == "poison-flip" else train_split.labels != target
    n_poison = max(1, round(cfg.fraction * candidates.sum()))
    indices = sample_indices(len(train_split), n_poison, cfg.seed, candidates)
    poisoned = copy.copy(dataset)
    poisoned.splits = {**dataset.splits, "train": poison_split(train_split, cfg.method, indices, target, len(classes))}
    print(f"{cfg.method}: {len(indices)} of {candidates.sum()} candidate training images poisoned → {classes[target]}; retraining",
          file=sys.stderr)
    with staged(out, config) as tmp:
        train(poisoned, train_cfg, tmp, device, malignant_names)
        clean_model, _ = classifier_from_checkpoint(checkpoint, device)
        poisoned_model, _ = classifier_from_checkpoint(tmp, device)
        metrics = _compare(cfg, dataset, test, clean_model, poisoned_model, classes, malignant_names, source, target, tmp)
        metrics.update(method=cfg.method, fraction=cfg.fraction, poisoned_samples=len(indices),
                       candidate_samples=int(candidates.sum()), target_class=classes[target],
                       source_class=None if source is None else classes[source])
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "poison.npz", indices=indices, ids=train_split.ids[indices], original_labels=train_split.labels[indices],
                 target=target)
    return metrics


def _compare(cfg: AttackConfig, dataset: LesionDataset, test: Split, clean_model, poisoned_model, classes: list[str],
             malignant: list[str], source: int | None, target: int, out: Path) -> dict:
    """Both models on the clean test split; for a flip the source→target confusion, for a backdoor the
    trigger's success on triggered test images of the other classes."""
    result = {}
    for name, model in (("clean_model", clean_model), ("poisoned_model", poisoned_model)):
        result[name] = classification_metrics(test.labels, predict(model, test.images).argmax(1), tuple(classes), tuple(malignant))
    plot_confusion(result["poisoned_model"]["confusion_matrix"], classes, out / "confusion_matrix_poisoned.png",
                   f"{cfg.method} {cfg.fraction:.0%}: poisoned model on the clean test split")
    if cfg.method == "poison-flip":
        rate = lambda m: result[m]["confusion_matrix_normalized"][source][target]  # noqa: E731
        result["source_to_target"] = {m: rate(m) for m in ("clean_model", "poisoned_model")}
        return result
    others = test.labels != target
    clean_x = to_model_input(test.images[others])
    triggered = PERTURBATIONS[cfg.method](clean_x.copy())
    result["attack_success_rate"] = {}
    for name, model in (("clean_model", clean_model), ("poisoned_model", poisoned_model)):
        probs = predict(model, triggered)
        result["attack_success_rate"][name] = float(np.mean(probs.argmax(1) == target))
    clean_probs = predict(poisoned_model, clean_x[:4])
    plot_perturbations(clean_x[:4], triggered[:4], clean_probs, predict(poisoned_model, triggered[:4]), classes,
                       test.labels[others][:4], out / "perturbations.png", f"backdoor trigger → {classes[target]}")
    return result
