"""Training: ART's `fit_generator` inside an epoch loop that adds what ART lacks (augmentation,
a per-epoch LR schedule, validation, best checkpoint by validation macro recall, early stopping,
seeds, progress, curves). The train, poison and retrain runs all train through `train`."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2
from tqdm import tqdm

from skinart.checkpoints import Checkpoint, save_checkpoint
from skinart.data import BALANCE_METHODS, CLASS_WEIGHT_POWERS, DEFAULT_MALIGNANT, LesionDataset, Split, class_weights, oversample
from skinart.errors import SkinartError
from skinart.metrics import choose_threshold, classification_metrics, p_malignant
from skinart.models import PRECISIONS, check_input_size, create_model, data_config, predict, wrap
from skinart.options import choose
from skinart.presentation.figures import plot_training_curves
from skinart.rundir import HISTORY_FILE, resolved, seed_everything, write_json
from skinart.toolbox import PyTorchDataGenerator
from skinart.weights import start_weights

AUGMENTATIONS = {
    "none": lambda size: [v2.Identity()],
    "flip": lambda size: [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()],
    # lesions have no canonical orientation: any rotation is a valid view
    "rotate": lambda size: [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(180)],
    "full": lambda size: [
        v2.RandomHorizontalFlip(), v2.RandomVerticalFlip(), v2.RandomRotation(180),
        v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True), v2.ColorJitter(0.1, 0.1, 0.1, 0.02),
    ],
}
OPTIMIZERS = {
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=wd),
}
SCHEDULERS = {
    "cosine": lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs),
    "step": lambda opt, epochs: torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.1),
    "none": lambda opt, epochs: torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0),
}


# TrainConfig's numbers with a bound: field -> (test, the bound in words)
BOUNDS = {
    "lr": (lambda v: v > 0, "greater than 0"),
    "weight_decay": (lambda v: v >= 0, "at least 0"),
    "label_smoothing": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "patience": (lambda v: v >= 0, "at least 0 (0: never stop early)"),
}


@dataclass
class TrainConfig:
    model: str = "resnet18"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    patience: int = 10
    augment: str = "rotate"
    balance: str = "none"
    label_smoothing: float = 0.0
    seed: int = 0
    pretrained: bool = False
    weights: str | None = None
    target_sensitivity: float = 0.90  # of the operating point chosen on the validation split after training
    precision: str = "fp32"  # torch.autocast's dtype (models.PRECISIONS); a retraining inherits it

    def check(self) -> None:
        for value, table, option in (
            (self.augment, AUGMENTATIONS, "--augment"), (self.optimizer, OPTIMIZERS, "--optimizer"),
            (self.scheduler, SCHEDULERS, "--scheduler"), (self.balance, BALANCE_METHODS, "--balance"),
            (self.precision, PRECISIONS, "--precision"),
        ):
            choose(value, table, option)
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise SkinartError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for f in fields(self):
            if f.name in BOUNDS and not BOUNDS[f.name][0](getattr(self, f.name)):  # `not`: NaN fails every bound
                option = f"--{f.name.replace('_', '-')}"
                raise SkinartError(f"{option} {getattr(self, f.name)} is not {BOUNDS[f.name][1]}; e.g. {option} {f.default} "
                                   "(the default)")
        if not 0 < self.target_sensitivity <= 1:
            raise SkinartError(f"--target-sensitivity must be in (0, 1], got {self.target_sensitivity}")


def retraining_config(checkpoint: Checkpoint, what: str) -> TrainConfig:
    """The settings a checkpoint is retrained with: its own training's, or, for an imported model (whose training skinart
    does not know), the defaults for its architecture."""
    checkpoint.check_trainable(what)
    if checkpoint.meta.train_config is None:
        print(f"note: {checkpoint} was trained outside skinart: {what} uses skinart's default training settings for "
              f"{checkpoint.meta.model} (recorded in the new checkpoint)", file=sys.stderr)
        return TrainConfig(model=checkpoint.meta.model)
    return TrainConfig(**checkpoint.meta.train_config)


class _Images(Dataset):
    """uint8 NHWC images -> (float CHW in [0, 1], one-hot label), as ART's fit_generator expects."""

    def __init__(self, split: Split, indices: np.ndarray, transform: v2.Compose, n_classes: int):
        self.images, self.labels, self.indices = split.images, split.labels, indices
        self.transform, self.eye = transform, torch.eye(n_classes)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        j = self.indices[i]
        x = self.transform(torch.from_numpy(np.ascontiguousarray(self.images[j])).permute(2, 0, 1))
        return x.float().div_(255), self.eye[self.labels[j]]


class _ProgressLoader(DataLoader):
    """A DataLoader (ART checks the type) whose iteration shows a progress bar on a terminal."""

    def __iter__(self):
        yield from tqdm(super().__iter__(), total=len(self), leave=False, file=sys.stderr, disable=None, desc="batches")


class _LoggedLoss(nn.CrossEntropyLoss):
    """Cross-entropy that keeps the training losses ART computes, so the epoch loss costs no extra pass. Only the
    network's own training steps count (it is in train mode then): an adversarial trainer's attack also computes this
    loss, with gradients, on the network in eval mode, once per attack iteration."""

    def __init__(self, net: nn.Module, **kwargs):
        super().__init__(**kwargs)
        self.seen: list[float] = []
        self._training = lambda: net.training  # not the module itself: it would become a submodule of the loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = super().forward(logits, target)
        if torch.is_grad_enabled() and self._training():
            self.seen.append(loss.item())
        return loss


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
    images: _Images
    mean: tuple[float, ...]
    std: tuple[float, ...]


def _setup(dataset: LesionDataset, cfg: TrainConfig, device: str, start: Checkpoint | None) -> _Setup:
    train_split = dataset.splits["train"]
    net = start.network() if start else create_model(cfg.model, len(dataset.classes), cfg.pretrained, cfg.weights)
    check_input_size(net, cfg.model, dataset.img_size)
    mean, std = (start.meta.mean, start.meta.std) if start else data_config(net)  # an imported model's own, not timm's
    power = CLASS_WEIGHT_POWERS.get(cfg.balance)
    weights = None if power is None else class_weights(train_split.labels, len(dataset.classes), power)
    optimizer = OPTIMIZERS[cfg.optimizer](net.parameters(), cfg.lr, cfg.weight_decay)
    scheduler = SCHEDULERS[cfg.scheduler](optimizer, cfg.epochs)
    loss = _LoggedLoss(net, weight=None if weights is None else torch.as_tensor(weights), label_smoothing=cfg.label_smoothing)
    classifier = wrap(net, dataset.img_size, mean, std, device, loss=loss, optimizer=optimizer, precision=cfg.precision)
    indices = oversample(train_split.labels, cfg.seed) if cfg.balance == "oversample" else np.arange(len(train_split))
    images = _Images(train_split, indices, v2.Compose(AUGMENTATIONS[cfg.augment](dataset.img_size)), len(dataset.classes))
    return _Setup(net=net, classifier=classifier, loss=loss, optimizer=optimizer, scheduler=scheduler, images=images, mean=mean, std=std)


def _epochs(s: _Setup, cfg: TrainConfig, fitter, val_split: Split | None, malignant: list[str]) -> tuple[list[dict], int, dict]:
    """The epoch loop: one `fit_generator` epoch, the LR step, validation; returns (history, best epoch, its weights)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    batch_size = min(cfg.batch_size, len(s.images))  # fewer images than a batch: one smaller batch (ART refuses a larger one)
    drop_last = len(s.images) > batch_size  # a batch of one breaks BatchNorm
    history, best, best_state, best_epoch = [], -1.0, None, 0
    for epoch in range(1, cfg.epochs + 1):
        start = time.perf_counter()
        loader = _ProgressLoader(s.images, batch_size=batch_size, shuffle=True, generator=generator, drop_last=drop_last)
        s.loss.seen.clear()
        fitter.fit_generator(PyTorchDataGenerator(loader, len(s.images), batch_size), nb_epochs=1)
        record = {"epoch": epoch, "lr": s.optimizer.param_groups[0]["lr"], "train_loss": float(np.mean(s.loss.seen))}
        s.scheduler.step()
        if val_split is not None and len(val_split):
            record.update(_validate(s.classifier, val_split, malignant))
        record["seconds"] = round(time.perf_counter() - start, 2)
        history.append(record)
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()), file=sys.stderr)
        score = record.get("val_macro_recall", epoch)  # without a validation split, keep the last epoch
        if score > best:
            best, best_epoch, best_state = score, epoch, copy.deepcopy(s.net.state_dict())
        elif cfg.patience and epoch - best_epoch >= cfg.patience:
            print(f"early stop: no better validation macro recall for {cfg.patience} epochs", file=sys.stderr)
            break
    return history, best_epoch, best_state


def train(dataset: LesionDataset, cfg: TrainConfig, out: Path, *, device: str = "auto", malignant=DEFAULT_MALIGNANT,
          trainer: Callable | None = None, extra_meta: dict | None = None, start: Checkpoint | None = None) -> dict:
    """Train on dataset.splits['train'], select on 'val' (if any), save a checkpoint into `out`; its `history`,
    `best_epoch` and the `checkpoint` written. `trainer(classifier)` may return an ART trainer (e.g.
    `AdversarialTrainer`) whose `fit_generator` replaces the classifier's own for each epoch. `start`: continue from a
    checkpoint's weights (retraining) instead of `cfg`'s model and first weights."""
    cfg.check()
    seed_everything(cfg.seed)
    s = _setup(dataset, cfg, device, start)  # refuses a missing --weights file in its own words
    # named before training: saving this checkpoint may overwrite that very file
    started = {"path": resolved(start.weights_path), "sha256": start.meta.weights_sha256} if start else start_weights(cfg.weights)
    fitter = trainer(s.classifier) if trainer else s.classifier
    print(f"training {cfg.model} on {len(s.images)} images ({dataset.name} @ {dataset.img_size}px) on {s.classifier.device}", file=sys.stderr)
    history, best_epoch, best_state = _epochs(s, cfg, fitter, dataset.splits.get("val"), list(malignant))
    s.net.load_state_dict(best_state)
    point = operating_point(s.classifier, dataset, list(malignant), cfg.target_sensitivity)
    checkpoint = save_checkpoint(out, s.net, {
        "model": cfg.model, "classes": list(dataset.classes), "img_size": dataset.img_size, "mean": list(s.mean),
        "std": list(s.std), "malignant": list(malignant), "best_epoch": best_epoch, "train_config": asdict(cfg),
        "start_weights": started, "data": dataset.settings(), "operating_point": point, **(extra_meta or {}),
    }, train_ids=dataset.splits["train"].ids)
    write_json(out / HISTORY_FILE, history)
    plot_training_curves(history, out / "training_curves.png")
    return {"history": history, "best_epoch": best_epoch, "checkpoint": checkpoint}
