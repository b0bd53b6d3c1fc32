"""`skinart train`: a checkpoint run directory."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from skinart.data import CLASSES, DEFAULT_MALIGNANT, load_dataset, parse_ratios
from skinart.models.networks import check_model
from skinart.options import parse_malignant
from skinart.rundir import RunDir, RunOptions
from skinart.training.loop import TrainConfig, train
from skinart.models.weights import start_weights


def train_run(cfg: TrainConfig, out: Path, options: RunOptions, *, img_size: int | None = None, resize: str = "crop",
              split_ratios: str | None = None) -> dict | None:
    """Train and write the checkpoint into `out`; None when `out` already holds this run."""
    cfg.check()
    check_model(cfg.model, cfg.pretrained, cfg.weights)  # before a possibly long first load of the data
    malignant = parse_malignant(options.malignant or ",".join(DEFAULT_MALIGNANT), CLASSES)
    ratios = parse_ratios(split_ratios)
    run = RunDir("train", out, options,
                 data=options.data_ref(img_size=img_size, resize=resize, split_ratios=ratios), train=asdict(cfg), malignant=malignant, seed=cfg.seed,
                 # a --weights file replaced at the same path is another run (key absent without one: older runs still resume)
                 **({"weights_sha256": start_weights(cfg.weights)["sha256"]} if cfg.weights else {}))
    if run.done:
        return None
    dataset = load_dataset(options.data, options.data_root, img_size=img_size, resize=resize, split_ratios=ratios, seed=cfg.seed,
                           options=options.data_options)
    with run.staged() as tmp:
        return train(dataset, cfg, tmp, device=options.device, malignant=malignant, resume=run.resume_folder,
                     extra_meta={"written_by": "skinart train"})
