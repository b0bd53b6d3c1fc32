"""`skinart train`: a checkpoint run directory."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from skinart.data import CLASSES, DEFAULT_MALIGNANT, load_dataset, parse_ratios
from skinart.models import check_model
from skinart.options import parse_malignant
from skinart.rundir import Run, data_ref
from skinart.training import TrainConfig, train
from skinart.weights import start_weights


def train_run(out: Path, cfg: TrainConfig, data: str, data_root: str | None = None, img_size: int | None = None,
              resize: str = "crop", split_ratios: str | None = None, malignant: str = ",".join(DEFAULT_MALIGNANT),
              device: str = "auto", overwrite: bool = False) -> dict | None:
    """Train and write the checkpoint into `out`; None when `out` already holds this run."""
    cfg.check()
    check_model(cfg.model, cfg.pretrained, cfg.weights)  # before a possibly long first load of the data
    malignant_names = parse_malignant(malignant, CLASSES)
    ratios = parse_ratios(split_ratios)
    run = Run("train", out, overwrite, data=data_ref(data, data_root, img_size=img_size, resize=resize, split_ratios=ratios),
              train=asdict(cfg), malignant=malignant_names,
              # a --weights file replaced at the same path is another run (key absent without one: older runs still resume)
              **({"weights_sha256": start_weights(cfg.weights)["sha256"]} if cfg.weights else {}))
    if run.done:
        return None
    dataset = load_dataset(data, data_root, img_size, resize, ratios, cfg.seed)
    with run.staged() as tmp:
        return train(dataset, cfg, tmp, device, malignant_names)
