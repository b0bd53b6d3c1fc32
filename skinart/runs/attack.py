"""`skinart attack` with an evasion, universal or patch method: craft adversarial test images under a threat model
and score them with the full (defended) model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from skinart.attacks.config import OBJECTIVES, AttackConfig
from skinart.attacks.objective import attacked_images, decision_head, decision_labels
from skinart.attacks.factories import art_parameters, build
from skinart.attacks.table import METHODS, THREATS, check_access
from skinart.certification.table import smoothing_of
from skinart.models.checkpoint import Checkpoint
from skinart.compute import resolve_device
from skinart.attacks.loops import craft_evasion, fit_patch, fit_universal, one_hot, sample_indices
from skinart.data import LesionDataset, Split, subgroups, to_model_input
from skinart.errors import SkinartError
from skinart.options import choose
from skinart.defences.preprocessors import adaptive_chain
from skinart.rundir import RunDir, RunOptions, seed_everything
from skinart.runs.scoring import AttackOutcome, shift_settings, write_attack
from skinart.shifts.apply import apply_shift
from skinart.shifts.config import ImageShift, under
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def transfer_source(checkpoint: Checkpoint, source_checkpoint: Path | None) -> Checkpoint:
    """The checkpoint a transfer attacker crafts on: the one given, else the defended checkpoint's own source."""
    path = source_checkpoint or checkpoint.source
    if not path:
        raise SkinartError("--threat transfer needs --source-checkpoint (the model the attacker crafts on)")
    source = Checkpoint.load(path, "--source-checkpoint")
    checkpoint.check_compatible(source, "--source-checkpoint")
    return source


def check_crafting(method: str, threat: str, checkpoint: Checkpoint, source: Checkpoint | None) -> None:
    """The attacker reads no more than the model it crafts on gives (its checkpoint's access: scores for an ONNX model
    onnxruntime runs): the transfer source's under transfer, else the attacked checkpoint's (adaptive included)."""
    crafted_on = source if threat == "transfer" else checkpoint
    check_access(method, crafted_on.access, f"{'--source-checkpoint ' if threat == 'transfer' else ''}{crafted_on}")


def crafting_model(threat: str, checkpoint: Checkpoint, source: Checkpoint | None, options: RunOptions, eot: bool = True,
                   head=None):
    """The model the attacker differentiates under a DESIGN.md threat model: for transfer, the `source` checkpoint's
    undefended network. On a checkpoint with preprocessing defences, white-box means oblivious (the defended weights
    without the preprocessor) and adaptive means through it (BPDA, plus EOT over random flips when every preprocessor
    is PyTorch and the method's row allows it). A checkpoint trained under noise is attacked as its smoothed classifier
    (`deployed`: each gradient averaged over the noisy copies it records, EOT over the noise). Each computes at the run's
    precision; `head` (an objective's decision at the operating point, `objective.decision_head`) goes around the network."""
    device, precision = options.device, options.precision
    if threat == "transfer":
        return deployed(source, device, defended=False, precision=precision, head=head)
    if threat == "white-box" or not checkpoint.meta.preprocessing:
        return deployed(checkpoint, device, defended=False, precision=precision, head=head, samples=options.smoothing_n)
    chain = adaptive_chain(list(checkpoint.meta.preprocessing), resolve_device(device), eot)
    return deployed(checkpoint, device, preprocessing_defences=chain, precision=precision, head=head)


def _eot(checkpoint: Checkpoint) -> int | None:
    """The noisy copies each gradient of a smoothed checkpoint averages (None: not smoothed)."""
    smoothing = smoothing_of(checkpoint.meta.defence)
    return smoothing and smoothing["eot"]


def check_smoothed_attack(method: str, checkpoint: Checkpoint) -> None:
    """Refuse an attack that would bypass a smoothed checkpoint's noise (reading its base network directly)."""
    if smoothing_of(checkpoint.meta.defence) and not METHODS[method].smoothed:
        reaching = ", ".join(name for name, row in METHODS.items() if row.smoothed)
        raise SkinartError(f"{checkpoint} is a smoothed classifier (trained under noise, it records σ), and {method} reads its "
                           f"base network, not the noisy copies it votes over; attack it with {reaching} (EOT over the noise)")


def objective_threshold(cfg: AttackConfig, checkpoint: Checkpoint, malignant: list[str]) -> float | None:
    """The operating point an objective attacks (the evaluated checkpoint's stored threshold, whoever crafts), refused in
    one line where there is none; None for accuracy."""
    threshold = checkpoint.threshold(malignant)
    if OBJECTIVES[cfg.objective].decision is not None and threshold is None:
        raise SkinartError(f"--objective {cfg.objective} attacks the decision at the stored operating point, and {checkpoint} "
                           f"stores none for malignant {','.join(malignant)}; drop --objective, or give a checkpoint with one "
                           "(train and import choose it on the validation split)")
    return threshold if OBJECTIVES[cfg.objective].decision is not None else None


def crafting_identity(threat: str, checkpoint: Checkpoint, source: Checkpoint | None, eot: bool) -> str:
    """What decides the images `crafting_model` lets an attacker craft, besides the attack and its seed: the network it
    differentiates (architecture, weights, normalisation, outputs) and the preprocessors it differentiates through.
    Threat models with the same identity craft the same images: white-box and adaptive on a checkpoint without
    preprocessing, white-box and transfer when a defence kept its source's weights (llt)."""
    network = (source if threat == "transfer" else checkpoint).meta
    chain = list(checkpoint.meta.preprocessing) if threat == "adaptive" else []
    return json.dumps([network.model, network.weights_sha256, network.mean, network.std, network.img_size, network.classes,
                       network.imported, network.labels, chain, eot and bool(chain)], sort_keys=True)


def attack_run(cfg: AttackConfig, checkpoint: Checkpoint, out: Path, options: RunOptions, *,
               source_checkpoint: Path | None = None, threat: str | None = None, crafted: dict | None = None,
               shift: ImageShift | None = None, by: str | None = None) -> dict | None:
    """Attack a checkpoint's test split under a threat model (default: transfer when a source checkpoint is given,
    else white-box); the attacked images are scored by the full defended model. `crafted` (threat models side by
    side) keeps each crafting's images by `crafting_identity`, so a threat model whose attacker is another's is scored
    on that one's images instead of crafting them again. With `shift` the test images are corrupted first
    (`test_inputs`) and the attack's clean images are the shifted ones; with `by` (sex, age, site) the metrics of the
    attacked and the unattacked images are given per subgroup too."""
    target, _ = cfg.check(checkpoint.classes)
    check_smoothed_attack(cfg.method, checkpoint)
    malignant = checkpoint.malignant_names(options.malignant)
    threshold, objective = objective_threshold(cfg, checkpoint, malignant), OBJECTIVES[cfg.objective]
    malignant_idx = [checkpoint.classes.index(c) for c in malignant]
    threat = choose(threat or ("transfer" if source_checkpoint else "white-box"), THREATS, "--threat")
    if source_checkpoint and threat != "transfer":
        raise SkinartError(f"--source-checkpoint is for --threat transfer, not {threat}")
    source = transfer_source(checkpoint, source_checkpoint) if threat == "transfer" else None
    check_crafting(cfg.method, threat, checkpoint, source)
    run = RunDir("attack", out, options, inputs=[source and source.path], checkpoint=checkpoint,
                 data=options.data_ref(checkpoint.data_name()), attack=cfg.__dict__, threat_model=threat, malignant=malignant,
                 source_checkpoint=source and source.ref(), seed=cfg.seed,
                 **shift_settings(shift, by))
    if run.done:
        return None
    crafter = crafting_model(threat, checkpoint, source, options, cfg.row.eot, decision_head(cfg.objective, malignant_idx, threshold))
    dataset = checkpoint_dataset(checkpoint, data=options.data, data_root=options.data_root)
    test = dataset.splits["test"]
    keep = sample_indices(len(test), cfg.max_samples, cfg.seed, attacked_images(objective, test.labels, malignant_idx))
    groups = None if by is None else (by, subgroups(test.metadata, by, dataset.name)[keep])  # refused before crafting
    attack = build(cfg.method, crafter, cfg.options(), cfg.params, target)  # ART checks the parameters before any work
    art_params = art_parameters(attack)  # read before generate: AutoAttack switches its sub-attacks' targeting as it runs
    start = time.perf_counter()
    x = test_inputs(test, keep, shift, cfg.seed)
    identity, crafted = crafting_identity(threat, checkpoint, source, cfg.row.eot), {} if crafted is None else crafted
    if identity in crafted:
        print(f"{cfg.method} ({threat}): the {crafted[identity][3]} attacker's images (the same model crafts them)", file=sys.stderr)
        adv, info, arrays, _ = crafted[identity]
        info = {**info, "same_images_as": crafted[identity][3]}
    else:
        aim = "" if threshold is None else f", objective {cfg.objective}: {objective.help}, t = {threshold:.4g}"
        print(f"{cfg.method} on {len(keep)} {'' if threshold is None else objective.attacked + ' '}test images of {dataset.name}"
              f"{under(shift)} ({threat}{aim})", file=sys.stderr)
        adv, info, arrays = _craft(cfg, attack, crafter, dataset, x=x, labels=test.labels[keep], target=target)
        eot = _eot(source if threat == "transfer" else checkpoint)
        info = {**info, **({"smoothing_eot": eot} if eot else {})}  # the noisy copies each gradient averaged
        crafted[identity] = (adv, info, arrays, threat)
    with run.staged() as tmp:
        return write_attack(tmp, AttackOutcome(cfg=cfg, art_params=art_params, threat=threat, target=target, x=x, adversarial=adv,
                                               labels=test.labels[keep], ids=test.ids[keep], start=start, info=info, arrays=arrays,
                                               shift=shift, groups=groups),
                            deployed(checkpoint, options.device, precision=options.precision, samples=options.smoothing_n), checkpoint, malignant)


def test_inputs(test: Split, keep: np.ndarray, shift: ImageShift | None, seed: int) -> np.ndarray:
    """The model inputs of test images `keep`, under `shift` when given: each image corrupted from its own stream (seed,
    shift, its id), exactly as `evaluate --shift` corrupts it, so both runs score the same shifted images."""
    images = test.images[keep]
    return to_model_input(images if shift is None else apply_shift(images, shift.shift, shift.severity, seed, test.ids[keep]))


def _craft(cfg: AttackConfig, attack, crafter, dataset: LesionDataset, *, x: np.ndarray, labels: np.ndarray,
           target: int | None) -> tuple[np.ndarray, dict, dict]:
    """(adversarial images, fit information, arrays to save): crafted per image, or fitted once on train images."""
    method, n_classes = cfg.row, len(dataset.classes)
    seed_everything(cfg.seed)
    if method.kind == "evasion":
        y = one_hot(labels if target is None else np.full(len(x), target), n_classes) if cfg.objective == "accuracy" else \
            decision_labels(OBJECTIVES[cfg.objective], len(x))
        adv = craft_evasion(attack, crafter, x, y, what=cfg.method)
        # AutoAttack's passes: images attacked, still standing and seconds of each (the sub-attacks' budgets are art_params)
        return adv, ({"autoattack": attack.report} if getattr(attack, "report", None) else {}), {}
    train = dataset.splits["train"]
    fit = sample_indices(len(train), cfg.fit_samples, cfg.seed, None if target is None else train.labels != target)
    x_fit = to_model_input(train.images[fit])
    if method.kind == "universal":
        noise, info = fit_universal(attack, x_fit, target=target, n_classes=n_classes)
        return np.clip(x + noise, 0.0, 1.0), info, {"noise": noise[0]}
    patch, info = fit_patch(attack, x_fit, labels=train.labels[fit], target=target, n_classes=n_classes)
    scale = cfg.patch_size or method.defaults["patch_size"]
    adv = np.concatenate([attack.apply_patch(x[i : i + 256], scale=scale) for i in range(0, len(x), 256)]).astype(np.float32)
    return adv, info, {"patch": patch}
