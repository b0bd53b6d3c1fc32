"""`skinart attack --adversarial-run RUN`: score a checkpoint on the adversarial test images an earlier attack run
saved — the transfer threat model with one adversarial test set crafted once for many models."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

from skinart.attack_config import AttackConfig
from skinart.attacks import flag
from skinart.checkpoints import checkpoint_dataset, classifier_from_checkpoint, read_checkpoint_meta
from skinart.data import to_model_input
from skinart.errors import SkinartError
from skinart.options import parse_malignant
from skinart.rundir import CONFIG_FILE, Run, data_ref
from skinart.scoring import write_attack


def _saved_run(run: Path) -> tuple[dict, dict, AttackConfig, dict]:
    """(the run's config, its adversarial.npz arrays, the attack it ran, the parameters ART ran it with)."""
    try:
        run_config = json.loads((run / CONFIG_FILE).read_text())
        saved = dict(np.load(run / "adversarial.npz"))
        art_params = json.loads((run / "metrics.json").read_text())["art_params"]
        return run_config, saved, AttackConfig(**run_config["attack"]), art_params
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise SkinartError(f"--adversarial-run {run} is not a finished evasion `skinart attack` run ({e}); give such a run directory")


def rescore_run(cfg: AttackConfig, checkpoint: Path, run: Path, out: Path, data: str | None = None, data_root: str | None = None,
                malignant: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """The saved images of `run` scored by `checkpoint`; `cfg` may only repeat the run's own settings."""
    run = Path(run)
    run_config, saved, crafted, art_params = _saved_run(run)
    if crafted.method != cfg.method:
        raise SkinartError(f"{run} holds {crafted.method} images, not {cfg.method}; pass --method {crafted.method} or another run")
    for name, value in cfg.__dict__.items():
        if value not in (None, {}, getattr(AttackConfig(cfg.method), name)) and value != getattr(crafted, name):
            raise SkinartError(f"{flag(name)} {value} differs from the {getattr(crafted, name)} that {run} used; "
                               f"drop it (the run's settings apply)")
    meta = read_checkpoint_meta(checkpoint)
    target, _ = crafted.check(meta["classes"])
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(meta["classes"]))
    job = Run("attack", out, overwrite, inputs=[run], checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root, meta),
              attack=crafted.__dict__, threat_model="transfer", malignant=malignant_names,
              source_checkpoint=run_config.get("source_checkpoint") or run_config["checkpoint"],
              adversarial_run={"path": str(run.resolve()), "config_hash": run_config.get("config_hash")})
    if job.done:
        return None
    test = checkpoint_dataset(checkpoint, meta, data, data_root).splits["test"]
    position = {image_id: i for i, image_id in enumerate(test.ids)}
    keep = np.array([position.get(image_id, -1) for image_id in saved["ids"]])
    x = to_model_input(test.images[keep[keep >= 0]])
    if (keep < 0).any() or x.shape != saved["adversarial"].shape or (test.labels[keep] != saved["labels"]).any():
        raise SkinartError(f"{run} was crafted on other test images than {checkpoint}'s (another dataset, split or size); "
                           "attack a checkpoint trained on the same data")
    print(f"{crafted.method} images of {run} on {len(x)} test images (transfer)", file=sys.stderr)
    classifier, _ = classifier_from_checkpoint(checkpoint, device)
    with job.staged() as tmp:
        return write_attack(tmp, crafted, art_params, classifier, meta, "transfer", malignant_names, x, saved["adversarial"], saved["labels"],
                            saved["ids"], target, time.perf_counter(), {}, {})
