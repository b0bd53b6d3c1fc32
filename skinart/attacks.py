"""Attacks: one table from method name to an ART attack factory with its default parameters, and the
runs that apply them to a checkpoint (evasion, universal, patch and poisoning)."""

from __future__ import annotations

import json
import random
import sys
import time
import zipfile
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator
from unittest import mock

import numpy as np
import yaml

from skinart import SkinartError
from skinart.data import to_model_input
from skinart.evaluate import checkpoint_dataset, predict
from skinart.metrics import attack_metrics, parse_malignant, perturbation_norms
from skinart.models import _art, classifier_from_checkpoint, read_checkpoint_meta, resolve_device
from skinart.report import amplified, attack_markdown, plot_confusion, plot_perturbations, save_image, threat_label
from skinart.runs import CONFIG_FILE, needs_run, staged, write_json

_art()  # ART's data folder goes under skinart's cache before any ART module is imported
from art.attacks.evasion import (  # noqa: E402
    AdversarialPatchPyTorch, CarliniL2Method, CarliniLInfMethod, FastGradientMethod, HopSkipJump, MomentumIterativeMethod,
    ProjectedGradientDescent, SquareAttack, TargetedUniversalPerturbation, UniversalPerturbation,
)
from art.attacks.evasion import fast_gradient  # noqa: E402
from art.attacks.evasion.projected_gradient_descent import projected_gradient_descent_pytorch as pgd_pytorch  # noqa: E402


def _uap(classifier, attacker: str = "fgsm", eps_step: float = 1 / 255, targeted: bool = False, **kwargs):
    """ART's UAP with its sub-attacker's step set explicitly (it otherwise keeps eps=0.3 in ART's defaults)."""
    if targeted and attacker != "fgsm":
        raise SkinartError("a targeted UAP supports only --attacker fgsm (ART's TargetedUniversalPerturbation)")
    if attacker not in ("fgsm", "pgd"):
        raise SkinartError(f"unknown --attacker '{attacker}' for uap; choose fgsm or pgd")
    params = {"eps": eps_step, "targeted": targeted} if attacker == "fgsm" else \
        {"eps": eps_step, "eps_step": eps_step / 4, "max_iter": 10, "verbose": False}
    if targeted:
        return TargetedUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **kwargs)
    return UniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **kwargs)


def _patch(classifier, patch_size: float = 0.2, **kwargs):
    """A universal patch covering `patch_size` of the image side, trained over random rotations and
    scales (0.75–1 × patch_size) and places: the EOT of the slides."""
    if not 0 < patch_size <= 1:
        raise SkinartError(f"--patch-size {patch_size} must be in (0, 1]: the patch side as a share of the image side")
    return AdversarialPatchPyTorch(classifier, patch_shape=tuple(classifier.input_shape), scale_min=0.75 * patch_size,
                                   scale_max=patch_size, **kwargs)


@dataclass(frozen=True)
class Method:
    kind: str  # evasion | universal | patch | poison-flip | poison-backdoor
    factory: Callable | None  # (classifier, **ART keyword arguments) -> ART attack
    defaults: dict = field(default_factory=dict)  # ART keyword arguments, epsilons in [0, 1] pixel units
    options: tuple[str, ...] = ()  # skinart options the method takes (their ART names match)
    bounded: bool = False  # L∞ ≤ eps holds by construction
    help: str = ""
    access: str = "gradients"  # what the attacker reads of the model it attacks: gradients | scores | labels


METHODS: dict[str, Method] = {
    "fgsm": Method("evasion", FastGradientMethod, {"eps": 2 / 255, "batch_size": 128}, ("eps", "num_random_init"), True,
                   "Fast Gradient Sign Method (Goodfellow et al. 2015)"),
    "pgd": Method("evasion", ProjectedGradientDescent,
                  {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "num_random_init": 1, "batch_size": 128},
                  ("eps", "eps_step", "max_iter", "num_random_init"), True, "Projected Gradient Descent (Madry et al. 2018)"),
    "mim": Method("evasion", MomentumIterativeMethod, {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "batch_size": 128},
                  ("eps", "eps_step", "max_iter"), True, "Momentum Iterative Method (Dong et al. 2018)"),
    "cw": Method("evasion", CarliniL2Method,
                 # ART's initial_const 0.01 leaves most images unperturbed within a few search steps on [0, 1] inputs
                 {"max_iter": 10, "binary_search_steps": 5, "initial_const": 1.0, "learning_rate": 0.1, "batch_size": 128},
                 ("max_iter",), False, "Carlini & Wagner L2, minimal perturbation (unbounded)"),
    "cw-linf": Method("evasion", CarliniLInfMethod, {"max_iter": 10, "batch_size": 128}, ("max_iter",), False,
                      "Carlini & Wagner L∞, minimal perturbation (unbounded)"),
    "square": Method("evasion", SquareAttack, {"eps": 8 / 255, "max_iter": 300, "p_init": 0.1, "batch_size": 128},
                     ("eps", "max_iter"), True, "Square Attack, score-based black-box (Andriushchenko et al. 2020)", "scores"),
    "hopskipjump": Method("evasion", HopSkipJump, {"max_iter": 20, "max_eval": 1000, "init_eval": 100, "batch_size": 128},
                          ("max_iter",), False, "HopSkipJump, decision-based black-box, minimal L2 (unbounded)", "labels"),
    "uap": Method("universal", _uap, {"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 5, "delta": 0.2, "attacker": "fgsm"},
                  ("eps", "eps_step", "max_iter", "attacker"), True,
                  "Universal Adversarial Perturbation (Moosavi-Dezfooli et al. 2017), fitted on train images"),
    "patch": Method("patch", _patch, {"patch_size": 0.2, "max_iter": 100, "learning_rate": 0.05, "batch_size": 32},
                    ("max_iter", "patch_size"), False, "universal adversarial patch (Brown et al. 2017), EOT over rotation/scale/place"),
    "poison-flip": Method("poison-flip", None, {}, (), False, "label flip source→target on a share of the training set, then retrain"),
    "poison-backdoor": Method("poison-backdoor", None, {}, (), False,
                              "backdoor trigger (ART add_pattern_bd) labelled as the target on a share of the training set, then retrain"),
}


def check_method(name: str) -> Method:
    if name not in METHODS:
        raise SkinartError(f"unknown attack method '{name}'; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def parse_eps(text: str | float, option: str = "--eps") -> float:
    """'2/255', '0.2' or a number -> float in (0, 1] (pixel units, DESIGN.md)."""
    try:
        value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise SkinartError(f"{option} '{text}' is not a number; write a fraction like 8/255 or a decimal like 0.03") from None
    if not 0 < value <= 1:
        raise SkinartError(f"{option} {text} is outside (0, 1]; epsilons are in [0, 1] pixel units, e.g. 8/255")
    return value


def parse_params(pairs: list[str]) -> dict:
    """--param key=value pairs; values read as YAML (numbers, booleans, lists) or fractions like 1/255."""
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SkinartError(f"--param '{pair}' is not key=value; write e.g. --param decay=0.9")
        try:
            value = float(Fraction(text)) if "/" in text else yaml.safe_load(text)
        except (ValueError, ZeroDivisionError, yaml.YAMLError):
            raise SkinartError(f"--param {pair}: cannot read the value '{text}'; write a number, true/false or a word") from None
        params[key.strip()] = value
    return params


def _flag(option: str) -> str:
    """The command-line spelling of an option given under its ART name."""
    return "--random-init" if option == "num_random_init" else "--" + option.replace("_", "-")


def build(name: str, classifier, options: dict, extra: dict, target: int | None = None):
    """The ART attack for `name`: defaults < the skinart options given < --param extras."""
    method = check_method(name)
    given = {k: v for k, v in options.items() if v is not None}
    unused = [k for k in given if k not in method.options]
    if unused:
        raise SkinartError(f"{_flag(unused[0])} does not apply to {name}; it takes "
                           f"{', '.join(map(_flag, method.options)) or 'no such options'}")
    kwargs = {**method.defaults, **given, **extra}
    if method.kind == "evasion" and "eps_step" in kwargs and "eps" in given and "eps_step" not in {**given, **extra}:
        kwargs["eps_step"] = given["eps"] / 4  # the step follows ε (2/255 at the default 8/255) so ε sweeps stay comparable
    if target is not None:
        kwargs["targeted"] = True
    try:
        return method.factory(classifier, **kwargs)
    except TypeError as e:  # an ART keyword this attack does not have
        valid = ", ".join(p for p in getattr(_art_class(method), "attack_params", []) if p != "estimator")
        raise SkinartError(f"{name}: {e}; valid ART parameters are {valid}") from None
    except ValueError as e:
        raise SkinartError(f"{name}: ART rejected the parameters ({e}); fix the option or --param") from None


def _art_class(method: Method):
    return {_uap: UniversalPerturbation, _patch: AdversarialPatchPyTorch}.get(method.factory, method.factory)


# --------------------------------------------------------------------------- ART's slow paths, bypassed


def _linf_projection(values, eps, norm_p, *, suboptimal: bool = True):
    """ART's PGD projection builds a float64 ε array the size of the batch at every step; for the usual
    scalar L∞ ball a clamp is the same projection."""
    if norm_p in (np.inf, "inf") and np.ndim(eps) == 0:
        return values.clamp(-float(eps), float(eps))
    return _ART_PROJECTION(values, eps, norm_p, suboptimal=suboptimal)


_ART_PROJECTION = pgd_pytorch.ProjectedGradientDescentPyTorch._projection


def _success_not_computed(*_, **__) -> float:
    return float("nan")


@contextmanager
def attacking(classifier, attack=None) -> Iterator[None]:
    """Freeze the weights while attacking (ART's `loss_gradient` otherwise computes every weight gradient)
    and skip ART's success-rate logging, which costs two full forward passes per `generate` call."""
    frozen = [p for p in classifier.model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(pgd_pytorch.ProjectedGradientDescentPyTorch, "_projection", staticmethod(_linf_projection)))
        stack.enter_context(mock.patch.object(pgd_pytorch, "compute_success", _success_not_computed))
        if not getattr(attack, "minimal", False):  # minimal FGSM really uses the success rate
            stack.enter_context(mock.patch.object(fast_gradient, "compute_success", _success_not_computed))
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)


def seed_attack(seed: int) -> None:
    """ART draws random starts from numpy and UAP's sample order from `random`; torch for patches."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


# --------------------------------------------------------------------------- crafting


def craft_evasion(attack, classifier, x: np.ndarray, y: np.ndarray, chunk: int = 512) -> np.ndarray:
    """ART `generate` over chunks (bounded memory, visible progress); `y` true labels or targets, one-hot."""
    adv = np.empty_like(x)
    start = time.perf_counter()
    with attacking(classifier, attack):
        for i in range(0, len(x), chunk):
            adv[i : i + chunk] = attack.generate(x[i : i + chunk], y[i : i + chunk])
            print(f"  attacked {min(i + chunk, len(x))}/{len(x)} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return adv


def fit_universal(attack, classifier, x_fit: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Fit a universal perturbation on `x_fit` (untargeted: against the model's own predictions)."""
    y = None if target is None else one_hot(np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    with attacking(classifier, attack):
        attack.generate(x_fit, y)
    info = {"fit_samples": len(x_fit), "fit_fooling_rate": float(attack.fooling_rate), "fit_seconds": round(time.perf_counter() - start, 2)}
    if target is not None:
        info["fit_targeted_success_rate"] = float(attack.targeted_success_rate)
    return attack.noise.astype(np.float32), info


def fit_patch(attack, classifier, x_fit: np.ndarray, labels: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Train the patch on `x_fit` (targeted: towards `target`; untargeted: away from the true labels)."""
    y = one_hot(labels if target is None else np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    with attacking(classifier, attack):
        patch, _ = attack.generate(x_fit, y)
    return patch.astype(np.float32), {"fit_samples": len(x_fit), "fit_seconds": round(time.perf_counter() - start, 2)}


# --------------------------------------------------------------------------- runs


@dataclass
class AttackConfig:
    """Everything `skinart attack` takes besides paths; None means the method's default."""

    method: str
    eps: float | None = None
    eps_step: float | None = None
    max_iter: int | None = None
    random_init: int | None = None
    attacker: str | None = None
    patch_size: float | None = None
    target_class: str | None = None
    source_class: str | None = None
    fraction: float | None = None
    fit_samples: int = 1000
    max_samples: int | None = None
    retrain_epochs: int | None = None
    params: dict = field(default_factory=dict)
    seed: int = 0

    def __post_init__(self):
        # parsed once, on construction, so every config hash sees the same float ε
        for name in ("eps", "eps_step"):
            if getattr(self, name) is not None:
                setattr(self, name, parse_eps(getattr(self, name), f"--{name.replace('_', '-')}"))

    def options(self) -> dict:
        """The skinart options under their ART names."""
        return {"eps": self.eps, "eps_step": self.eps_step, "max_iter": self.max_iter, "num_random_init": self.random_init,
                "attacker": self.attacker, "patch_size": self.patch_size}

    def check(self, classes: list[str]) -> tuple[int | None, int | None]:
        """Validate against the checkpoint's classes; returns (target, source) class indices."""
        method = check_method(self.method)
        for name in ("max_iter", "fit_samples", "max_samples", "retrain_epochs"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SkinartError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.random_init is not None and self.random_init < 0:
            raise SkinartError(f"--random-init must be ≥ 0, got {self.random_init}")
        index = {}
        for name in ("target_class", "source_class"):
            value = getattr(self, name)
            if value is not None and value not in classes:
                raise SkinartError(f"--{name.replace('_', '-')} '{value}' is not a class of this checkpoint; choose one of {', '.join(classes)}")
            index[name] = None if value is None else classes.index(value)
        poison = method.kind.startswith("poison")
        if poison and not (self.fraction is not None and 0 < self.fraction < 1):
            raise SkinartError(f"{self.method} needs --fraction in (0, 1), the share of training images to poison; got {self.fraction}")
        if not poison and (self.fraction is not None or self.source_class or self.retrain_epochs):
            raise SkinartError(f"--fraction, --source-class and --retrain-epochs are for poison-* methods, not {self.method}")
        if poison and any(v is not None for v in self.options().values()) or poison and self.params:
            raise SkinartError(f"{self.method} retrains the model; ART evasion options (--eps, --param, …) do not apply")
        if self.method == "poison-flip" and (index["source_class"] is None or index["target_class"] is None):
            raise SkinartError("poison-flip needs --source-class and --target-class (e.g. nv and bkl, as in the thesis)")
        if self.method == "poison-flip" and index["source_class"] == index["target_class"]:
            raise SkinartError("--source-class and --target-class are the same class; a flip needs two different ones")
        if self.method == "poison-backdoor" and index["target_class"] is None:
            raise SkinartError("poison-backdoor needs --target-class, the class the trigger should force")
        return index["target_class"], index["source_class"]


def sample_indices(n: int, cap: int | None, seed: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sorted seeded sample of at most `cap` indices (of those where `mask` holds)."""
    pool = np.arange(n) if mask is None else np.flatnonzero(mask)
    if cap is None or cap >= len(pool):
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, cap, replace=False))


def _check_source(meta: dict, source_meta: dict, source: Path) -> None:
    for key in ("classes", "img_size"):
        if source_meta[key] != meta[key]:
            raise SkinartError(f"--source-checkpoint {source} has {key} {source_meta[key]} but the target has {meta[key]}; "
                               "craft on a model trained for the same classes and input size")


THREATS = ("white-box", "transfer", "adaptive")


def crafting_model(threat: str, checkpoint: Path, meta: dict, source_checkpoint: Path | None, device: str):
    """The model the attacker differentiates (DESIGN.md threat models). On a checkpoint with preprocessing
    defences, white-box means oblivious (the defended weights without the preprocessor) and adaptive means
    through it (BPDA, plus EOT over random flips when every preprocessor is PyTorch)."""
    if threat not in THREATS:
        raise SkinartError(f"unknown --threat '{threat}'; choose one of {', '.join(THREATS)}")
    if threat == "transfer":
        source = source_checkpoint or (meta.get("defence") or {}).get("source")
        if not source:
            raise SkinartError("--threat transfer needs --source-checkpoint (the model the attacker crafts on)")
        _check_source(meta, read_checkpoint_meta(source), source)
        return classifier_from_checkpoint(source, device, defended=False)[0], str(Path(source).resolve())
    if source_checkpoint:
        raise SkinartError(f"--source-checkpoint is for --threat transfer, not {threat}")
    if threat == "white-box" or not meta.get("preprocessing"):
        return classifier_from_checkpoint(checkpoint, device, defended=False)[0], None
    from skinart.defences import EoTFlips, preprocessors  # defences build on this module

    chain = preprocessors(meta["preprocessing"], resolve_device(device))
    if all(hasattr(p, "forward") for p in chain):
        chain.append(EoTFlips())
    return classifier_from_checkpoint(checkpoint, device, preprocessing_defences=chain)[0], None


def attack_run(cfg: AttackConfig, checkpoint: Path, out: Path, data: str | None = None, data_root: str | None = None,
               source_checkpoint: Path | None = None, malignant: str | None = None, device: str = "auto",
               overwrite: bool = False, threat: str | None = None, adversarial_run: Path | None = None) -> dict | None:
    """`skinart attack`: attack a checkpoint's test split under a threat model (default: transfer when a
    source checkpoint is given, else white-box); the attacked images are scored by the full defended model."""

    if adversarial_run is not None:
        if source_checkpoint or threat:
            raise SkinartError("--adversarial-run fixes the model the images were crafted on; drop --source-checkpoint/--threat")
        return rescore_run(cfg, checkpoint, Path(adversarial_run), out, data, data_root, malignant, device, overwrite)
    meta = read_checkpoint_meta(checkpoint)
    classes = meta["classes"]
    target, _ = cfg.check(classes)
    method = METHODS[cfg.method]
    if method.kind.startswith("poison"):
        from skinart.poisoning import poison_run  # poisoning builds on this module

        return poison_run(cfg, checkpoint, meta, out, data, data_root, malignant, device, overwrite)
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(classes))
    threat = threat or ("transfer" if source_checkpoint else "white-box")
    crafter, source = crafting_model(threat, checkpoint, meta, source_checkpoint, device)
    config = {
        "command": "attack", "attack": cfg.__dict__, "threat_model": threat,
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
        "source_checkpoint": source and {"path": source, "weights_sha256": read_checkpoint_meta(source)["weights_sha256"]},
        "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None},
        "malignant": malignant_names,
    }
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    test = dataset.splits["test"]
    keep = sample_indices(len(test), cfg.max_samples, cfg.seed)
    labels, ids = test.labels[keep], test.ids[keep]
    classifier, _ = classifier_from_checkpoint(checkpoint, device)
    attack = build(cfg.method, crafter, cfg.options(), cfg.params, target)
    n_classes = len(classes)
    print(f"{cfg.method} on {len(keep)} test images of {dataset.name} ({config['threat_model']})", file=sys.stderr)
    start = time.perf_counter()
    seed_attack(cfg.seed)
    x = to_model_input(test.images[keep])
    info, arrays = {}, {}
    if method.kind == "evasion":
        adv = craft_evasion(attack, crafter, x, one_hot(labels if target is None else np.full(len(x), target), n_classes))
    else:
        train = dataset.splits["train"]
        fit_mask = None if target is None else train.labels != target
        fit = sample_indices(len(train), cfg.fit_samples, cfg.seed, fit_mask)
        if method.kind == "universal":
            noise, info = fit_universal(attack, crafter, to_model_input(train.images[fit]), target, n_classes)
            adv, arrays["noise"] = np.clip(x + noise, 0.0, 1.0), noise[0]
        else:
            patch, info = fit_patch(attack, crafter, to_model_input(train.images[fit]), train.labels[fit], target, n_classes)
            scale = cfg.patch_size or method.defaults["patch_size"]
            adv = np.concatenate([attack.apply_patch(x[i : i + 256], scale=scale) for i in range(0, len(x), 256)]).astype(np.float32)
            arrays["patch"] = patch
    return scored(classifier, cfg, config, x, adv, labels, ids, target, meta, out, start, info, arrays)


def scored(classifier, cfg: AttackConfig, config: dict, x: np.ndarray, adv: np.ndarray, labels: np.ndarray, ids: np.ndarray,
           target: int | None, meta: dict, out: Path, start: float, info: dict, arrays: dict) -> dict:
    """Score clean and attacked images with the (defended) classifier and write the attack run."""
    classes, method = meta["classes"], METHODS[cfg.method]
    clean_probs, adv_probs = predict(classifier, x), predict(classifier, adv)
    metrics = attack_metrics(labels, clean_probs.argmax(1), adv_probs.argmax(1), tuple(classes), tuple(config["malignant"]), target)
    metrics.update(perturbation_norms(x, adv))
    metrics.update(threat_model=config["threat_model"], access=method.access, method=cfg.method, bounded=method.bounded,
                   images=len(x), eps=attack_eps(cfg, method), seconds=round(time.perf_counter() - start, 2), **info)
    title = f"{cfg.method} on {meta['model']} ({threat_label(config['threat_model'], method.access)}, {len(x)} test images)"
    with staged(out, config) as tmp:
        write_attack_outputs(tmp, metrics, x, adv, clean_probs, adv_probs, labels, ids, classes, arrays, title)
    return metrics


def rescore_run(cfg: AttackConfig, checkpoint: Path, run: Path, out: Path, data: str | None, data_root: str | None,
                malignant: str | None, device: str, overwrite: bool) -> dict | None:
    """`skinart attack --adversarial-run RUN`: score a checkpoint on the adversarial test images an earlier attack
    run saved: the transfer threat model with one adversarial test set crafted once for many models."""
    try:
        run_config = json.loads((run / CONFIG_FILE).read_text())
        saved = dict(np.load(run / "adversarial.npz"))
        crafted = AttackConfig(**run_config["attack"])
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise SkinartError(f"--adversarial-run {run} is not a finished evasion `skinart attack` run ({e}); give such a run directory")
    if crafted.method != cfg.method:
        raise SkinartError(f"{run} holds {crafted.method} images, not {cfg.method}; pass --method {crafted.method} or another run")
    for name, value in cfg.__dict__.items():
        if value not in (None, {}, getattr(AttackConfig(cfg.method), name)) and value != getattr(crafted, name):
            raise SkinartError(f"--{name.replace('_', '-')} {value} differs from the {getattr(crafted, name)} that {run} used; "
                               f"drop it (the run's settings apply)")
    meta = read_checkpoint_meta(checkpoint)
    target, _ = crafted.check(meta["classes"])
    config = {
        "command": "attack", "attack": crafted.__dict__, "threat_model": "transfer",
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
        "source_checkpoint": run_config.get("source_checkpoint") or run_config["checkpoint"],
        "adversarial_run": {"path": str(run.resolve()), "config_hash": run_config.get("config_hash")},
        "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None},
        "malignant": parse_malignant(malignant or meta["malignant"], tuple(meta["classes"])),
    }
    if not needs_run(out, config, overwrite):
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
    return scored(classifier, crafted, config, x, saved["adversarial"], saved["labels"], saved["ids"], target, meta, out,
                  time.perf_counter(), {}, {})


def attack_eps(cfg: AttackConfig, method: Method) -> float | None:
    return cfg.eps if cfg.eps is not None else method.defaults.get("eps") if method.bounded else None


def write_attack_outputs(out: Path, metrics: dict, x: np.ndarray, adv: np.ndarray, clean_probs: np.ndarray, adv_probs: np.ndarray,
                         labels: np.ndarray, ids: np.ndarray, classes: list[str], arrays: dict, title: str) -> None:
    write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(attack_markdown(metrics, title))
    np.savez(out / "adversarial.npz", adversarial=adv, ids=ids, labels=labels, clean_probabilities=clean_probs,
             adversarial_probabilities=adv_probs)
    changed = np.flatnonzero(clean_probs.argmax(1) != adv_probs.argmax(1))
    shown = np.concatenate([changed, np.setdiff1d(np.arange(len(x)), changed)])[:4]
    plot_perturbations(x[shown], adv[shown], clean_probs[shown], adv_probs[shown], classes, labels[shown], out / "perturbations.png", title)
    plot_confusion(metrics["adversarial"]["confusion_matrix"], classes, out / "confusion_matrix_adversarial.png", title)
    plot_confusion(metrics["adversarial"]["binary"]["confusion_matrix"], ["benign", "malignant"],
                   out / "confusion_matrix_adversarial_binary.png", title)
    for name, array in arrays.items():  # the universal noise or patch: raw values and a viewable image
        np.savez(out / f"{name}.npz", **{name: array})
        save_image(array.transpose(1, 2, 0) if name == "patch" else amplified(array), out / f"{name}.png")
