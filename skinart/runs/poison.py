"""`skinart attack --method poison-*`: poison a share of the training split, retrain with the checkpoint's own
training settings, and compare the clean and poisoned models on the clean (and triggered) test split."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import numpy as np

from skinart.attacks.config import AttackConfig
from skinart.models.checkpoint import Checkpoint
from skinart.attacks.loops import sample_indices
from skinart.data import Split, to_model_input
from skinart.metrics import classification_metrics
from skinart.models.networks import predict
from skinart.attacks.poisons import candidates, perturb, poison_split
from skinart.presentation.figures import plot_confusion, plot_perturbations
from skinart.errors import SkinartError
from skinart.rundir import METRICS_FILE, POISON_FILE, RunDir, RunOptions, write_json
from skinart.training.loop import TrainConfig, train
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed

MODELS = ("clean_model", "poisoned_model")


def poison_run(cfg: AttackConfig, checkpoint: Checkpoint, out: Path, options: RunOptions) -> dict | None:
    """Poison, retrain, and compare with the clean model; the run directory is the poisoned checkpoint."""
    classes = list(checkpoint.classes)
    target, source = cfg.check(classes)
    malignant = checkpoint.malignant_names(options.malignant)
    if checkpoint.meta.imported:
        raise SkinartError(f"{cfg.method} retrains the model from scratch on skinart's poisoned split, and {checkpoint} was "
                           "trained outside skinart (its training cannot be repeated); poison a model trained with `skinart train`")
    train_cfg = TrainConfig(**checkpoint.meta.train_config)
    train_cfg.epochs = cfg.retrain_epochs or train_cfg.epochs
    run = RunDir("poison", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name()),
                 attack=cfg.__dict__, retrain=train_cfg.__dict__, malignant=malignant, seed=cfg.seed)
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    train_split, test = dataset.splits["train"], dataset.splits["test"]
    allowed = candidates(cfg.method, train_split.labels, source, target)
    indices = sample_indices(len(train_split), max(1, round(cfg.fraction * allowed.sum())), cfg.seed, allowed)
    poisoned = copy.copy(dataset)
    poisoned.splits = {**dataset.splits, "train": poison_split(train_split, cfg.method, indices, target, len(classes))}
    print(f"{cfg.method}: {len(indices)} of {allowed.sum()} candidate training images poisoned → {classes[target]}; retraining",
          file=sys.stderr)
    with run.staged() as tmp:
        retrained = train(poisoned, train_cfg, tmp, device=options.device, malignant=malignant, resume=run.resume_folder,
                          extra_meta={"written_by": f"skinart attack --method {cfg.method}"})["checkpoint"]
        checkpoints = dict(zip(MODELS, (checkpoint, retrained)))
        models = {name: deployed(c, options.device, precision=options.precision) for name, c in checkpoints.items()}
        # each model at its own operating point: the poisoned one chose its threshold on val after retraining
        thresholds = {name: c.threshold(malignant) for name, c in checkpoints.items()}
        metrics = {"kind": "poison", **_compare(cfg, test, models, thresholds=thresholds, classes=classes, malignant=malignant,
                                                    source=source, target=target, out=tmp)}
        metrics.update(method=cfg.method, fraction=cfg.fraction, poisoned_samples=len(indices), candidate_samples=int(allowed.sum()),
                       target_class=classes[target], source_class=None if source is None else classes[source])
        write_json(tmp / METRICS_FILE, metrics)
        np.savez(tmp / POISON_FILE, indices=indices, ids=train_split.ids[indices], original_labels=train_split.labels[indices],
                 target=target)
    return metrics


def _compare(cfg: AttackConfig, test: Split, models: dict, *, thresholds: dict, classes: list[str], malignant: list[str],
             source: int | None, target: int, out: Path) -> dict:
    """Both models on the clean test split; for a flip the source→target confusion, for a backdoor the
    trigger's success on triggered test images of the other classes."""
    probs = {name: predict(model, test.images) for name, model in models.items()}
    result = {name: classification_metrics(test.labels, p.argmax(1), classes=tuple(classes), malignant=tuple(malignant), probs=p,
                                           threshold=thresholds[name])
              for name, p in probs.items()}
    plot_confusion(result["poisoned_model"]["confusion_matrix"], classes, out / "confusion_matrix_poisoned.png",
                   f"{cfg.method} {cfg.fraction:.0%}: poisoned model on the clean test split")
    if source is not None:  # a flip
        result["source_to_target"] = {m: result[m]["confusion_matrix_normalized"][source][target] for m in MODELS}
        return result
    others = test.labels != target
    clean_x = to_model_input(test.images[others])
    triggered = perturb(cfg.method, clean_x.copy())
    result["attack_success_rate"] = {name: float(np.mean(predict(model, triggered).argmax(1) == target)) for name, model in models.items()}
    poisoned = models["poisoned_model"]
    plot_perturbations(clean_x[:4], triggered[:4], clean_probs=predict(poisoned, clean_x[:4]),
                       adv_probs=predict(poisoned, triggered[:4]), classes=classes, labels=test.labels[others][:4],
                       path=out / "perturbations.png", title=f"backdoor trigger → {classes[target]}")
    return result
