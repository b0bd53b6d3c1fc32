"""`TrainConfig`: a training's settings, checked. Pure data: the command checks read it without loading torch, timm or
ART; the names of the augmentations, optimisers and schedules are bound to what builds them in `training.batches`
(`AUGMENTATIONS`) and `training.loop` (`OPTIMIZERS`, `SCHEDULERS`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from skinart.compute import PRECISIONS
from skinart.data import BALANCE_METHODS
from skinart.errors import SkinartError
from skinart.options import choose

AUGMENTATION_NAMES = ("none", "flip", "rotate", "full")
OPTIMIZER_NAMES = ("adamw", "sgd")
SCHEDULER_NAMES = ("cosine", "step", "none")

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
    precision: str = "fp32"  # torch.autocast's dtype (compute.PRECISIONS); a retraining inherits it

    def check(self) -> None:
        for value, table, option in (
            (self.augment, AUGMENTATION_NAMES, "--augment"), (self.optimizer, OPTIMIZER_NAMES, "--optimizer"),
            (self.scheduler, SCHEDULER_NAMES, "--scheduler"), (self.balance, BALANCE_METHODS, "--balance"),
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
