"""`skinart attack` with an evasion, universal or patch method: craft adversarial test images under a threat model
and score them with the full (defended) model."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from skinart.attack_config import AttackConfig
from skinart.attacks import art_parameters, build
from skinart.checkpoints import checkpoint_dataset, classifier_from_checkpoint, read_checkpoint_meta
from skinart.crafting import craft_evasion, fit_patch, fit_universal, one_hot, sample_indices
from skinart.data import LesionDataset, to_model_input
from skinart.errors import SkinartError
from skinart.models import resolve_device
from skinart.options import choose, parse_malignant
from skinart.preprocessing import EoTFlips, preprocessors
from skinart.rundir import Run, checkpoint_ref, data_ref, seed_everything
from skinart.scoring import write_attack

THREATS = ("white-box", "transfer", "adaptive")


def _check_source(meta: dict, source_meta: dict, source: Path) -> None:
    for key in ("classes", "img_size"):
        if source_meta[key] != meta[key]:
            raise SkinartError(f"--source-checkpoint {source} has {key} {source_meta[key]} but the target has {meta[key]}; "
                               "craft on a model trained for the same classes and input size")


def transfer_source(meta: dict, source_checkpoint: Path | None) -> Path | str:
    """The checkpoint a transfer attacker crafts on: the one given, else the defended checkpoint's own source."""
    source = source_checkpoint or (meta.get("defence") or {}).get("source")
    if not source:
        raise SkinartError("--threat transfer needs --source-checkpoint (the model the attacker crafts on)")
    _check_source(meta, read_checkpoint_meta(source, "--source-checkpoint"), source)
    return source


def crafting_model(threat: str, checkpoint: Path, meta: dict, source_checkpoint: Path | None, device: str, eot: bool = True):
    """(the model the attacker differentiates, its source checkpoint for transfer) under a DESIGN.md threat model.
    On a checkpoint with preprocessing defences, white-box means oblivious (the defended weights without the
    preprocessor) and adaptive means through it (BPDA, plus EOT over random flips when every preprocessor is PyTorch
    and the method's row allows it)."""
    choose(threat, THREATS, "--threat")
    if threat == "transfer":
        source = transfer_source(meta, source_checkpoint)
        return classifier_from_checkpoint(source, device, defended=False)[0], source
    if source_checkpoint:
        raise SkinartError(f"--source-checkpoint is for --threat transfer, not {threat}")
    if threat == "white-box" or not meta.get("preprocessing"):
        return classifier_from_checkpoint(checkpoint, device, defended=False)[0], None
    chain = preprocessors(meta["preprocessing"], resolve_device(device))
    if eot and all(hasattr(p, "forward") for p in chain):
        chain.append(EoTFlips())
    return classifier_from_checkpoint(checkpoint, device, preprocessing_defences=chain)[0], None


def attack_run(cfg: AttackConfig, checkpoint: Path, out: Path, data: str | None = None, data_root: str | None = None,
               source_checkpoint: Path | None = None, malignant: str | None = None, device: str = "auto",
               overwrite: bool = False, threat: str | None = None) -> dict | None:
    """Attack a checkpoint's test split under a threat model (default: transfer when a source checkpoint is given,
    else white-box); the attacked images are scored by the full defended model."""
    meta = read_checkpoint_meta(checkpoint)
    target, _ = cfg.check(meta["classes"])
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(meta["classes"]))
    threat = threat or ("transfer" if source_checkpoint else "white-box")
    crafter, source = crafting_model(threat, checkpoint, meta, source_checkpoint, device, cfg.row.eot)
    run = Run("attack", out, overwrite, inputs=[source], checkpoint=checkpoint, meta=meta, data=data_ref(data, data_root, meta),
              attack=cfg.__dict__, threat_model=threat, malignant=malignant_names,
              source_checkpoint=source and checkpoint_ref(source, read_checkpoint_meta(source)))
    if run.done:
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    test = dataset.splits["test"]
    keep = sample_indices(len(test), cfg.max_samples, cfg.seed)
    attack = build(cfg.method, crafter, cfg.options(), cfg.params, target)  # ART checks the parameters before any work
    art_params = art_parameters(attack)  # read before generate: AutoAttack switches its sub-attacks' targeting as it runs
    print(f"{cfg.method} on {len(keep)} test images of {dataset.name} ({threat})", file=sys.stderr)
    start = time.perf_counter()
    x = to_model_input(test.images[keep])
    adv, info, arrays = _craft(cfg, attack, crafter, dataset, x, test.labels[keep], target)
    classifier, _ = classifier_from_checkpoint(checkpoint, device)
    with run.staged() as tmp:
        return write_attack(tmp, cfg, art_params, classifier, meta, threat, malignant_names, x, adv, test.labels[keep], test.ids[keep],
                            target, start, info, arrays)


def _craft(cfg: AttackConfig, attack, crafter, dataset: LesionDataset, x: np.ndarray, labels: np.ndarray,
           target: int | None) -> tuple[np.ndarray, dict, dict]:
    """(adversarial images, fit information, arrays to save): crafted per image, or fitted once on train images."""
    method, n_classes = cfg.row, len(dataset.classes)
    seed_everything(cfg.seed)
    if method.kind == "evasion":
        return craft_evasion(attack, crafter, x, one_hot(labels if target is None else np.full(len(x), target), n_classes)), {}, {}
    train = dataset.splits["train"]
    fit = sample_indices(len(train), cfg.fit_samples, cfg.seed, None if target is None else train.labels != target)
    x_fit = to_model_input(train.images[fit])
    if method.kind == "universal":
        noise, info = fit_universal(attack, crafter, x_fit, target, n_classes)
        return np.clip(x + noise, 0.0, 1.0), info, {"noise": noise[0]}
    patch, info = fit_patch(attack, crafter, x_fit, train.labels[fit], target, n_classes)
    scale = cfg.patch_size or method.defaults["patch_size"]
    adv = np.concatenate([attack.apply_patch(x[i : i + 256], scale=scale) for i in range(0, len(x), 256)]).astype(np.float32)
    return adv, info, {"patch": patch}
