"""`skinart attack --adversarial-run RUN`: score a checkpoint on the adversarial test images an earlier attack run
saved — the transfer threat model with one adversarial test set crafted once for many models."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from skinart.attacks.config import AttackConfig
from skinart.attacks.table import flag
from skinart.models.checkpoint import Checkpoint
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.rundir import ADVERSARIAL_FILE, CONFIG_FILE, METRICS_FILE, RunDir, RunOptions
from skinart.runs.scoring import AttackOutcome, write_attack
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def _saved_run(run: Path) -> tuple[dict, dict, AttackConfig, dict]:
    """(the run's config, its adversarial.npz arrays, the attack it ran, the parameters ART ran it with)."""
    try:
        run_config = json.loads((run / CONFIG_FILE).read_text())
        saved = dict(np.load(run / ADVERSARIAL_FILE))
        art_params = json.loads((run / METRICS_FILE).read_text())["art_params"]
        return run_config, saved, AttackConfig(**run_config["attack"]), art_params
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise SkinartError(f"--adversarial-run {run} is not a finished evasion `skinart attack` run ({e}); give such a run directory")


def rescore_run(cfg: AttackConfig, checkpoint: Checkpoint, run: Path, out: Path, options: RunOptions) -> dict | None:
    """The saved images of `run` scored by `checkpoint`; `cfg` may only repeat the run's own settings."""
    run = Path(run)
    run_config, saved, crafted, art_params = _saved_run(run)
    if crafted.method != cfg.method:
        raise SkinartError(f"{run} holds {crafted.method} images, not {cfg.method}; pass --method {crafted.method} or another run")
    for name, value in cfg.__dict__.items():
        if value not in (None, {}, getattr(AttackConfig(cfg.method), name)) and value != getattr(crafted, name):
            raise SkinartError(f"{flag(name)} {value} differs from the {getattr(crafted, name)} that {run} used; "
                               f"drop it (the run's settings apply)")
    target, _ = crafted.check(checkpoint.classes)
    malignant = checkpoint.malignant_names(options.malignant)
    job = RunDir("attack", out, options, inputs=[run], checkpoint=checkpoint,
                 data=options.data_ref(checkpoint.data_name()), attack=crafted.__dict__, threat_model="transfer", malignant=malignant,
                 source_checkpoint=run_config.get("source_checkpoint") or run_config["checkpoint"],
                 adversarial_run={"path": str(run.resolve()), "config_hash": run_config.get("config_hash")})
    if job.done:
        return None
    test = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root).splits["test"]
    position = {image_id: i for i, image_id in enumerate(test.ids)}
    keep = np.array([position.get(image_id, -1) for image_id in saved["ids"]])
    x = to_model_input(test.images[keep[keep >= 0]])
    if (keep < 0).any() or x.shape != saved["adversarial"].shape or (test.labels[keep] != saved["labels"]).any():
        raise SkinartError(f"{run} was crafted on other test images than {checkpoint}'s (another dataset, split or size); "
                           "attack a checkpoint trained on the same data")
    print(f"{crafted.method} images of {run} on {len(x)} test images (transfer)", file=sys.stderr)
    outcome = AttackOutcome(cfg=crafted, art_params=art_params, threat="transfer", target=target, x=x, adversarial=saved["adversarial"],
                            labels=saved["labels"], ids=saved["ids"], start=time.perf_counter())
    with job.staged() as tmp:
        return write_attack(tmp, outcome, deployed(checkpoint, options.device, precision=options.precision,
                                                    samples=options.smoothing_n), checkpoint, malignant)
