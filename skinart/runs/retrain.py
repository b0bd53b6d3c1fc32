"""`skinart defend --method retrain|madry`: adversarial (re)training from the checkpoint's own training settings;
the run directory is the retrained checkpoint with its clean test metrics."""

from __future__ import annotations

import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Callable

import numpy as np

from skinart.attacks.factories import build
from skinart.attacks.table import METHODS
from skinart.models.checkpoint import Checkpoint
from skinart.attacks.fast.gradient import FrozenProjectedGradientDescent
from skinart.attacks.loops import craft_evasion, one_hot
from skinart.data import Split, from_model_input, to_model_input
from skinart.defences.table import DEFENCES, RetrainConfig
from skinart.errors import SkinartError
from skinart.rundir import RunDir, RunOptions, resolved
from skinart.runs.scoring import evaluate
from skinart.toolbox import AdversarialTrainer
from skinart.training.loop import TrainConfig, retraining_config, train
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def _attacks(names: tuple[str, ...], classifier, options: dict) -> list:
    given = {k: v for k, v in options.items() if v is not None}
    return [build(name, classifier, {k: v for k, v in given.items() if k in METHODS[name].options}, {"verbose": False}
                  if name != "fgsm" else {}) for name in names]


def with_adversarial_copies(split: Split, attacks: list, classifier, ratio: float, seed: int) -> Split:
    """The split plus adversarial copies (true labels, rounded to uint8) of a `ratio` share of it, crafted
    once on `classifier`; with several attacks the share is divided evenly between them."""
    chosen = np.random.default_rng(seed).choice(len(split), max(1, round(ratio * len(split))), replace=False)
    parts = np.array_split(chosen, len(attacks))
    adversarial = [
        from_model_input(craft_evasion(attack, classifier, to_model_input(split.images[idx]), one_hot(split.labels[idx], classifier.nb_classes)))
        for attack, idx in zip(attacks, parts)
    ]
    idx = np.concatenate(parts)
    return Split(images=np.concatenate([split.images, *adversarial]), labels=np.concatenate([split.labels, split.labels[idx]]),
                 groups=np.concatenate([split.groups, split.groups[idx]]), ids=np.concatenate([split.ids, split.ids[idx]]))


def online_trainer(names: tuple[str, ...], options: dict, ratio: float) -> Callable:
    """ART's AdversarialTrainer regenerating adversarials per batch; skinart's attacks freeze the weights only inside
    their own `generate` (they are being trained in between)."""

    def make(classifier):
        return AdversarialTrainer(classifier, _attacks(names, classifier, options), ratio=ratio)

    return make


def madry_trainer(options: dict) -> Callable:
    """Madry's PGD training as ART's AdversarialTrainerMadryPGD builds it (ART's AdversarialTrainer, PGD at ratio 1), its ε
    given in [0, 1] units (ART's Madry defaults assume 0–255)."""
    settings = {**DEFENCES["madry"].defaults, **{k: v for k, v in options.items() if v is not None}}

    def make(classifier):
        # what ART's AdversarialTrainerMadryPGD builds as its `trainer` (the PGD at ART's defaults but for these, batch
        # 32 included), with skinart's PGD, which freezes the weights only inside its own `generate`
        attack = FrozenProjectedGradientDescent(classifier, eps=settings["eps"], eps_step=settings["eps_step"],
                                                max_iter=settings["max_iter"], num_random_init=1, verbose=False)
        return AdversarialTrainer(classifier, attack, ratio=1.0)

    return make


def retrain_run(cfg: RetrainConfig, method: str, checkpoint: Checkpoint, out: Path, options: RunOptions) -> dict | None:
    """Retrain with adversarial copies (static rounds) or per-batch adversarials (online; always for madry)."""
    cfg.check(method)
    if checkpoint.meta.preprocessing:
        raise SkinartError(f"{checkpoint} carries a preprocessing defence; retrain its source checkpoint instead")
    train_cfg = retraining_config(checkpoint, method)
    if checkpoint.meta.imported and cfg.init == "scratch":
        raise SkinartError(f"--init scratch re-initialises {checkpoint}, an imported model, so nothing of it would be left; "
                           "use --init finetune")
    train_cfg.epochs = cfg.epochs or train_cfg.epochs
    start = None
    if cfg.init == "finetune":  # from the checkpoint's own weights (verified), not from where its training started
        start, train_cfg.weights, train_cfg.pretrained = checkpoint, None, False
    run = RunDir("defend", out, options, checkpoint=checkpoint, data=options.data_ref(checkpoint.data_name()),
                 method=method, retrain=asdict(cfg), train=asdict(train_cfg), seed=train_cfg.seed)
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    defence = {"defence": {"method": method, "source": resolved(checkpoint.path), **asdict(cfg)}, **checkpoint.lineage(),
               "written_by": f"skinart defend --method {method}"}
    malignant = list(checkpoint.meta.malignant)
    with run.staged() as tmp:
        if method == "madry" or cfg.mode == "online":  # Madry's PGD training regenerates every batch by definition
            make = madry_trainer(cfg.options) if method == "madry" else online_trainer(cfg.attacks, cfg.options, cfg.ratio)
            retrained = train(dataset, train_cfg, tmp, device=options.device, malignant=malignant, trainer=make, extra_meta=defence,
                              start=start, resume=run.resume_folder)["checkpoint"]
        else:
            retrained = _static_rounds(cfg, checkpoint, dataset, train_cfg, out=tmp, device=options.device, malignant=malignant,
                                       defence=defence, start=start)
        # its own operating point, chosen for the new weights
        return evaluate(deployed(retrained, options.device, precision=options.precision), dataset.splits["test"], retrained,
                        malignant=malignant, out=tmp, title=f"{checkpoint.meta.model} + {method} on {dataset.name} test", kind="defend")


def _static_rounds(cfg: RetrainConfig, checkpoint: Checkpoint, dataset, train_cfg: TrainConfig, *, out: Path, device: str,
                   malignant: list[str], defence: dict, start: Checkpoint | None) -> Checkpoint:
    """`cfg.rounds` times: craft adversarial copies on the current model, then train on the split plus the copies;
    each round after the first continues from the one before. Returns the last round's checkpoint."""
    crafter = deployed(checkpoint, device)
    for round_ in range(cfg.rounds):
        print(f"round {round_ + 1}/{cfg.rounds}: crafting {cfg.ratio:.0%} adversarial copies with {'+'.join(cfg.attacks)}", file=sys.stderr)
        train_split = with_adversarial_copies(dataset.splits["train"], _attacks(cfg.attacks, crafter, cfg.options), crafter,
                                              cfg.ratio, train_cfg.seed + round_)
        start = train(replace(dataset, splits={**dataset.splits, "train": train_split}), train_cfg, out, device=device,
                      malignant=malignant, extra_meta=defence, start=start)["checkpoint"]
        crafter = deployed(start, device)
    return start
