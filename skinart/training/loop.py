"""Training: ART's `fit_generator` inside an epoch loop that adds what ART lacks (augmentation,
a per-epoch LR schedule, validation, best checkpoint by validation macro recall, early stopping,
seeds, progress, curves). The train, poison and retrain runs all train through `train`."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from skinart.training.batches import TrainBatches
from skinart.training.config import TrainConfig
from skinart.models.checkpoint import Checkpoint, CheckpointMeta, save_checkpoint
from skinart.data import CLASS_WEIGHT_POWERS, DEFAULT_MALIGNANT, LesionDataset, Split, class_weights, oversample
from skinart.metrics import choose_threshold, classification_metrics, p_malignant
from skinart.models.networks import check_input_size, create_model, data_config, predict, wrap
from skinart.presentation.figures import plot_training_curves
from skinart.rundir import (
    HISTORY_FILE, RESUME_FILE, drop_other_resume_folders, random_states, resolved, seed_everything, set_random_states, write_json,
)
from skinart.models.weights import start_weights
from skinart.models.build import network

OPTIMIZERS = {
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
}
SCHEDULERS = {
    "cosine": lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
    "step": lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
    "none": lambda opt, epochs: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
}


def retraining_config(checkpoint: Checkpoint, what: str) -> TrainConfig:
    """The settings a checkpoint is retrained with: its own training's, or, for an imported model (whose training skinart
    does not know), the defaults for its architecture."""
    checkpoint.check_trainable(what)
    if checkpoint.meta.train_config is None:
        print(f"note: {checkpoint} was trained outside skinart: {what} uses skinart's default training settings for "
              f"{checkpoint.meta.model} (recorded in the new checkpoint)", file=sys.stderr)
        return TrainConfig(model=checkpoint.meta.model)
    return TrainConfig(**checkpoint.meta.train_config)


class _LoggedLoss(nn.CrossEntropyLoss):
    """Cross-entropy that sums the training losses ART computes, so the epoch loss costs no extra pass. The sum stays
    on the device and is read once an epoch (`epoch_mean`): a read every step would wait for the GPU each time. Only
    the network's own training steps count (it is in train mode then): an adversarial trainer's attack also computes
    this loss, with gradients, on the network in eval mode, once per attack iteration."""

    def __init__(self, net: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.total = 0, None
        self._training = lambda: net.training  # not the module itself: it would become a submodule of the loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, target)
        if torch.is_grad_enabled() and self._training():
            step = loss.detach().double()
            self.steps, self.total = self.steps + 1, step if self.total is None else self.total + step
        return loss

    def epoch_mean(self) -> float:
        """The mean training loss since the last call, which starts the next epoch's sum."""
        mean = float(self.total.item() / self.steps) if self.steps else float("nan")
        self.steps, self.total = 0, None
        return mean


def _validate(classifier, split: Split, malignant: list[str]) -> dict:
    probs = predict(classifier, split.images)
    metrics = classification_metrics(split.labels, probs.argmax(1), malignant=malignant)
    picked = probs[np.arange(len(split.labels)), split.labels]
    return {
        "val_loss": float(-np.log(np.clip(picked, 1e-12, None)).mean()),
        "val_accuracy": metrics["accuracy"],
        "val_macro_recall": metrics["macro_recall"] or 0.0,
        "val_fnr": metrics["binary"]["fnr"],
    }


def operating_point(classifier, dataset: LesionDataset, malignant: list[str], target: float) -> dict | None:
    """The threshold on p_malignant for the target sensitivity, chosen once on the validation split and stored in the
    checkpoint (never re-chosen under attack or defence). Without a validation split holding both classes it is
    chosen on the train split and recorded as such (optimistic: the model has seen those images)."""
    val = dataset.splits.get("val")
    chosen_on = "val" if val is not None and len(val) else "train"
    malignant_idx = [dataset.classes.index(m) for m in malignant]
    for name in dict.fromkeys((chosen_on, "train")):
        split = dataset.splits[name]
        chosen = choose_threshold(split.labels, p_malignant(predict(classifier, split.images), malignant_idx), malignant_idx, target)
        if chosen is not None:
            break
        print(f"note: the {name} split lacks malignant or benign images, so no threshold can be chosen on it", file=sys.stderr)
    if chosen is None:
        return None
    if name != "val":
        print(f"note: no usable validation split: the operating point is chosen on the {name} split (recorded as such)", file=sys.stderr)
    print(f"operating point: p_malignant ≥ {chosen['threshold']:.4g} ({name} sensitivity {chosen['sensitivity']:.3f}, "
          f"specificity {chosen['specificity']:.3f})", file=sys.stderr)
    return {"threshold": chosen["threshold"], "target_sensitivity": target, "chosen_on": name, "malignant": list(malignant),
            f"{name}_sensitivity": chosen["sensitivity"], f"{name}_specificity": chosen["specificity"]}


@dataclass
class _Setup:
    """What one training needs: the network, its ART classifier with loss and optimiser, and the images."""

    net: nn.Module
    classifier: object
    loss: _LoggedLoss
    optimizer: torch.optim.Optimizer
    scheduler: object
    batches: TrainBatches
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _setup(dataset: LesionDataset, cfg: TrainConfig, device: str, start: Checkpoint | None) -> _Setup:
    train_split = dataset.splits["train"]
    net = network(start) if start else create_model(cfg.model, len(dataset.classes), cfg.pretrained, cfg.weights)
    check_input_size(net, cfg.model, dataset.img_size)
    mean, std = (start.meta.mean, start.meta.std) if start else data_config(net)  # an imported model's own, not timm's
    power = CLASS_WEIGHT_POWERS.get(cfg.balance)
    weights = None if power is None else class_weights(train_split.labels, len(dataset.classes), power)
    optimizer = OPTIMIZERS[cfg.optimizer](net.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = SCHEDULERS[cfg.scheduler](optimizer, cfg.epochs)
    loss = _LoggedLoss(net, weight=None if weights is None else torch.as_tensor(weights), label_smoothing=cfg.label_smoothing)
    classifier = wrap(net, dataset.img_size, mean, std, device, loss=loss, optimizer=optimizer, precision=cfg.precision)
    indices = oversample(train_split.labels, cfg.seed) if cfg.balance == "oversample" else np.arange(len(train_split))
    batches = TrainBatches(train_split, indices, cfg.augment, dataset.img_size, len(dataset.classes), batch_size=cfg.batch_size,
                           seed=cfg.seed, device=classifier.device)
    return _Setup(net=net, classifier=classifier, loss=loss, optimizer=optimizer, scheduler=scheduler, batches=batches, mean=mean, std=std)


@dataclass
class _Progress:
    """Where the epoch loop stands: the epochs done, the best so far (by validation macro recall) and its weights."""

    history: list = field(default_factory=list)
    best: float = -1.0
    best_epoch: int = 0
    best_state: dict | None = None
    stopped: bool = False  # early stop

    def add(self, record: dict, net: nn.Module, patience: int) -> None:
        self.history.append(record)
        epoch = record["epoch"]
        score = record.get("val_macro_recall", epoch)  # without a validation split, keep the last epoch
        if score > self.best:
            self.best, self.best_epoch, self.best_state = score, epoch, copy.deepcopy(net.state_dict())
        elif patience and epoch - self.best_epoch >= patience:
            self.stopped = True
            print(f"early stop: no better validation macro recall for {patience} epochs", file=sys.stderr)


def _save_epoch(folder: Path, s: _Setup, progress: _Progress) -> None:
    """Everything the next epoch starts from (weights, optimiser, schedule, the loop's progress, every random state),
    written whole or not at all; then another config's progress into the same --out, kept until now, is dropped."""
    folder.mkdir(parents=True, exist_ok=True)
    # vars, not asdict: asdict would deep-copy the best weights every epoch only to write them
    state = {"progress": vars(progress), "net": s.net.state_dict(), "optimizer": s.optimizer.state_dict(),
             "scheduler": s.scheduler.state_dict(), "batches": s.batches.random_state(), "random": random_states()}
    torch.save(state, folder / f"{RESUME_FILE}.partial")
    (folder / f"{RESUME_FILE}.partial").replace(folder / RESUME_FILE)
    drop_other_resume_folders(folder)


def _resumed(folder: Path, s: _Setup) -> _Progress:
    """The progress of an interrupted training of the same run, its state restored; a fresh start without one."""
    if not (folder / RESUME_FILE).is_file():
        return _Progress()
    state = torch.load(folder / RESUME_FILE, map_location="cpu", weights_only=True)  # tensors and plain values: no code
    s.net.load_state_dict(state["net"])
    s.optimizer.load_state_dict(state["optimizer"])
    s.scheduler.load_state_dict(state["scheduler"])
    s.batches.restore(state["batches"])
    set_random_states(state["random"])
    progress = _Progress(**state["progress"])
    print(f"resuming after epoch {len(progress.history)} (from {folder})", file=sys.stderr)
    return progress


def _epochs(s: _Setup, cfg: TrainConfig, fitter, val_split: Split | None, malignant: list[str],
            resume: Path | None) -> _Progress:
    """The epoch loop: one `fit_generator` epoch, the LR step, validation; after each epoch its state is kept in
    `resume` (if given), from which the same training continues after an interruption, to the same numbers."""
    progress = _resumed(resume, s) if resume else _Progress()
    for epoch in range(len(progress.history) + 1, cfg.epochs + 1):
        if progress.stopped:
            break
        start = time.perf_counter()
        fitter.fit_generator(s.batches.epoch(), nb_epochs=1)
        record = {"epoch": epoch, "lr": s.optimizer.param_groups[0]["lr"], "train_loss": s.loss.epoch_mean()}
        s.scheduler.step()
        if val_split is not None and len(val_split):
            record.update(_validate(s.classifier, val_split, malignant))
        record["seconds"] = round(time.perf_counter() - start, 2)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()), file=sys.stderr)
        progress.add(record, s.net, cfg.patience)
        if resume:
            _save_epoch(resume, s, progress)
    return progress


def train(dataset: LesionDataset, cfg: TrainConfig, out: Path, *, device: str = "auto", malignant=DEFAULT_MALIGNANT,
          trainer: Callable | None = None, extra_meta: dict | None = None, start: Checkpoint | None = None,
          resume: Path | None = None, deployed_as: Callable | None = None) -> dict:
    """Train on dataset.splits['train'], select on 'val' (if any), save a checkpoint into `out`; its `history`,
    `best_epoch` and the `checkpoint` written. `trainer(classifier)` may return an ART trainer (e.g.
    `AdversarialTrainer`) whose `fit_generator` replaces the classifier's own for each epoch. `start`: continue from a
    checkpoint's weights (retraining) instead of `cfg`'s model and first weights. `resume`: a folder keeping the last
    finished epoch's state, and continuing from it when it holds one. `deployed_as(classifier)`: the classifier the
    checkpoint is deployed as (a smoothed one), whose p_malignant the operating point is chosen on."""
    cfg.check()
    seed_everything(cfg.seed)
    s = _setup(dataset, cfg, device, start)  # refuses a missing --weights file in its own words
    # named before training: saving this checkpoint may overwrite that very file
    started = {"path": resolved(start.weights_path), "sha256": start.meta.weights_sha256} if start else start_weights(cfg.weights)
    fitter = trainer(s.classifier) if trainer else s.classifier
    print(f"training {cfg.model} on {len(s.batches.dataset)} images ({dataset.name} @ {dataset.img_size}px) on {s.classifier.device}", file=sys.stderr)
    progress = _epochs(s, cfg, fitter, dataset.splits.get("val"), list(malignant), resume)
    history, best_epoch = progress.history, progress.best_epoch
    s.net.load_state_dict(progress.best_state)
    point = operating_point(deployed_as(s.classifier) if deployed_as else s.classifier, dataset, list(malignant),
                            cfg.target_sensitivity)
    meta = CheckpointMeta(model=cfg.model, classes=dataset.classes, img_size=dataset.img_size, mean=s.mean, std=s.std,
                          malignant=malignant, best_epoch=best_epoch, train_config=asdict(cfg), start_weights=started,
                          data=dataset.settings(), operating_point=point, **(extra_meta or {}))
    checkpoint = save_checkpoint(out, s.net, meta, train_ids=dataset.splits["train"].ids)
    write_json(out / HISTORY_FILE, history)
    plot_training_curves(history, out / "training_curves.png")
    return {"history": history, "best_epoch": best_epoch, "checkpoint": checkpoint}
