"""Defences: the WebP+flip low-level transformation (LLT) as an ART preprocessor, and one table from
method name to ART preprocessing defence."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import precision_recall_fscore_support

from skinart import SkinartError
from skinart.attacks import METHODS, THREATS, attack_run, attacking, build, craft_evasion, one_hot
from skinart.data import Split, from_model_input, to_model_input
from skinart.evaluate import checkpoint_dataset, evaluate
from skinart.models import (
    META_FILE, WEIGHTS_FILE, PreLogits, _art, classifier_from_checkpoint, load_checkpoint, read_checkpoint_meta, wrap,
)
from skinart.poisoning import poison_split
from skinart.runs import needs_run, staged, write_json
from skinart.train import TrainConfig, train

_art()  # ART's data folder goes under skinart's cache before any ART module is imported
from art.defences.detector.poison import ActivationDefence, SpectralSignatureDefense  # noqa: E402
from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing  # noqa: E402
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch  # noqa: E402
from art.preprocessing.expectation_over_transformation.pytorch import EoTPyTorch  # noqa: E402


def webp_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HWC -> WebP at `quality` -> decoded uint8 HWC (Pillow)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def webp_batch(x: np.ndarray, quality: int, threads: int | None = None) -> np.ndarray:
    """float NCHW in [0, 1] -> WebP round trip -> float32 NCHW. The batch is cut into one contiguous chunk
    per thread; each worker converts (rounding, not truncating, to uint8), codes and writes back one image
    at a time, so the conversions stay in cache instead of two threads streaming whole chunks through
    memory. Pillow's codec and numpy's array loops release the GIL."""
    out = np.empty(x.shape, dtype=np.float32)

    def chunk(part: np.ndarray) -> None:
        for i in part:
            out[i] = to_model_input(webp_roundtrip(from_model_input(x[i : i + 1])[0], quality)[None])[0]

    parts = [p for p in np.array_split(np.arange(len(x)), threads or os.cpu_count() or 1) if len(p)]
    with ThreadPoolExecutor(len(parts) or 1) as pool:
        list(pool.map(chunk, parts))
    return out


class WebPFlip(PreprocessorPyTorch):
    """The low-level transformation of Yin et al. (2020) used by the thesis: WebP compression, then a
    horizontal flip. Its gradient (BPDA) is the identity through WebP and the flip through the flip, so
    ART keeps its PyTorch attack paths and an adaptive attacker can differentiate through it."""

    params = ["quality", "flip"]

    def __init__(self, quality: int = 60, flip: bool = True, apply_fit: bool = False, apply_predict: bool = True,
                 device_type: str = "gpu"):
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)
        self.quality, self.flip = quality, flip
        self._check_params()

    def forward(self, x: torch.Tensor, y=None):
        compressed = torch.from_numpy(webp_batch(x.detach().cpu().numpy(), self.quality)).to(x.device)
        x = x + (compressed - x).detach()  # straight-through: WebP's value, the identity's gradient
        return (torch.flip(x, dims=[-1]) if self.flip else x), y

    def _check_params(self) -> None:
        check_quality(self.quality)


class EoTFlips(EoTPyTorch):
    """Expectation over random horizontal/vertical flips, for the adaptive attacker: the perturbation must
    work whichever way the image is flipped (ART's EoT base class averages the gradient)."""

    def __init__(self, nb_samples: int = 4, clip_values: tuple[float, float] = (0.0, 1.0)):
        super().__init__(nb_samples=nb_samples, clip_values=clip_values)

    def _transform(self, x: torch.Tensor, y, **kwargs):
        dims = [d for d, flip in ((-1, torch.rand(1).item() < 0.5), (-2, torch.rand(1).item() < 0.5)) if flip]
        return (torch.flip(x, dims=dims) if dims else x), y


def check_quality(quality: int) -> int:
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SkinartError(f"--webp-quality {quality} is outside 1–100; the thesis used 60")
    return quality


# name -> (factory of the ART preprocessor from the defence settings, what it is)
PREPROCESSORS: dict[str, tuple[Callable[..., object], str]] = {
    "llt": (lambda s: WebPFlip(s["quality"], device_type=s["device_type"]), "WebP compression + horizontal flip (Yin et al. 2020)"),
    # ART's JpegCompression defaults to channels-last; skinart's inputs are NCHW
    "jpeg": (lambda s: JpegCompression(clip_values=(0.0, 1.0), quality=s["quality"], channels_first=True, apply_fit=False),
             "JPEG compression (ART JpegCompression; truncates to uint8)"),
    "smoothing": (lambda s: SpatialSmoothing(window_size=s["window"], channels_first=True, clip_values=(0.0, 1.0)),
                  "median filter (ART SpatialSmoothing)"),
    "squeeze": (lambda s: FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=s["bits"]), "bit-depth reduction (ART FeatureSqueezing)"),
}
PREPROCESSOR_DEFAULTS = {"quality": 60, "window": 3, "bits": 4}


def preprocessors(entries: list[dict], device: str = "cpu") -> list:
    """ART preprocessors from a checkpoint's `preprocessing` list, e.g. [{"name": "llt", "quality": 60}]."""
    built = []
    for entry in entries:
        if entry.get("name") not in PREPROCESSORS:
            raise SkinartError(f"unknown preprocessing defence '{entry.get('name')}'; choose one of {', '.join(PREPROCESSORS)}")
        settings = {**PREPROCESSOR_DEFAULTS, **entry, "device_type": "gpu" if device == "cuda" else "cpu"}
        built.append(PREPROCESSORS[entry["name"]][0](settings))
    return built


def preprocess_run(method: str, checkpoint: Path, out: Path, settings: dict, data: str | None = None, data_root: str | None = None,
                   device: str = "auto", overwrite: bool = False, label: str | None = None) -> dict | None:
    """A checkpoint with the same weights whose metadata attaches the preprocessor `method`, plus its clean
    test metrics (what the defence costs on clean images)."""
    if "quality" in settings:
        check_quality(settings["quality"])
    meta = read_checkpoint_meta(checkpoint)
    if meta.get("preprocessing"):
        raise SkinartError(f"{checkpoint} already carries the defence {meta['preprocessing']}; defend its source checkpoint instead")
    entry = {"name": method, **{k: settings.get(k, v) for k, v in PREPROCESSOR_DEFAULTS.items()}}
    preprocessors([entry])  # ART checks the settings before anything is written
    config = {"command": "defend", "method": label or method, "preprocessing": [entry],
              "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
              "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None}}
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    # transfer attacks craft on the undefended model: the retrained model's own source, if it has one
    source = (meta.get("defence") or {}).get("source") or str(Path(checkpoint).resolve())
    with staged(out, config) as tmp:
        shutil.copyfile(Path(checkpoint) / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
        defended = {**meta, "preprocessing": [entry], "defence": {**(meta.get("defence") or {}), "method": label or method, "source": source}}
        (tmp / META_FILE).write_text(json.dumps(defended, indent=2))
        classifier, _ = classifier_from_checkpoint(tmp, device)
        return evaluate(classifier, dataset.splits["test"], meta["classes"], meta["malignant"], tmp,
                        f"{meta['model']} + {label or method} on {dataset.name} test")


# --------------------------------------------------------------------------- adversarial retraining

RETRAIN_MODES = ("static", "online")
INITS = ("scratch", "finetune")


@dataclass
class RetrainConfig:
    """`skinart defend --method retrain|madry`: which attacks, what share, how."""

    attacks: tuple[str, ...] = ("fgsm",)
    ratio: float = 0.5
    mode: str = "static"
    rounds: int = 1
    epochs: int | None = None  # per round; default: the checkpoint's
    init: str = "finetune"
    options: dict = field(default_factory=dict)  # eps, eps_step, max_iter of the attacks (ART names)

    def check(self) -> None:
        unknown = [a for a in self.attacks if a not in ("fgsm", "pgd", "mim")]
        if unknown or not self.attacks:
            raise SkinartError(f"--attacks names {', '.join(unknown) or 'nothing'}; choose from fgsm, pgd, mim (comma-separated)")
        if not 0 < self.ratio <= 1:
            raise SkinartError(f"--ratio {self.ratio} is outside (0, 1]; it is the adversarial share (the paper: 0.2–0.8)")
        if self.mode not in RETRAIN_MODES or self.init not in INITS:
            raise SkinartError(f"--mode must be one of {', '.join(RETRAIN_MODES)} and --init one of {', '.join(INITS)}")
        if self.rounds < 1 or (self.epochs is not None and self.epochs < 1):
            raise SkinartError("--rounds and --epochs must be at least 1")
        if self.mode == "online" and self.rounds != 1:
            raise SkinartError("--rounds is for --mode static (online mode regenerates adversarials every batch)")


def _attacks(names: tuple[str, ...], classifier, options: dict) -> list:
    given = {k: v for k, v in options.items() if v is not None}
    return [build(name, classifier, {k: v for k, v in given.items() if k in METHODS[name].options}, {"verbose": False}
                  if name != "fgsm" else {}) for name in names]


def with_adversarial_copies(split: Split, attacks: list, classifier, ratio: float, seed: int) -> Split:
    """The split plus adversarial copies (true labels, rounded to uint8) of a `ratio` share of it, crafted
    once on `classifier`; with several attacks the share is divided evenly between them."""
    chosen = np.random.default_rng(seed).choice(len(split), max(1, round(ratio * len(split))), replace=False)
    parts = np.array_split(chosen, len(attacks))
    adversarial = [
        from_model_input(craft_evasion(attack, classifier, to_model_input(split.images[idx]), one_hot(split.labels[idx], classifier.nb_classes)))
        for attack, idx in zip(attacks, parts)
    ]
    idx = np.concatenate(parts)
    return Split(images=np.concatenate([split.images, *adversarial]), labels=np.concatenate([split.labels, split.labels[idx]]),
                 groups=np.concatenate([split.groups, split.groups[idx]]), ids=np.concatenate([split.ids, split.ids[idx]]))


def online_trainer(names: tuple[str, ...], options: dict, ratio: float) -> Callable:
    """ART's AdversarialTrainer regenerating adversarials per batch; the weights are frozen only while
    each attack runs (they are being trained in between)."""
    from art.defences.trainer import AdversarialTrainer

    def make(classifier):
        attacks = _attacks(names, classifier, options)
        for attack in attacks:
            attack.generate = _frozen(attack.generate, classifier, attack)
        return AdversarialTrainer(classifier, attacks, ratio=ratio)

    return make


def madry_trainer(options: dict) -> Callable:
    """ART's AdversarialTrainerMadryPGD (PGD at ratio 1), its ε given in [0, 1] units (its defaults assume 0–255)."""
    from art.defences.trainer import AdversarialTrainerMadryPGD

    def make(classifier):
        madry = AdversarialTrainerMadryPGD(classifier, eps=options.get("eps") or 8 / 255, eps_step=options.get("eps_step") or 2 / 255,
                                           max_iter=options.get("max_iter") or 7, num_random_init=1)
        madry.attack.set_params(verbose=False)
        madry.attack.generate = _frozen(madry.attack.generate, classifier, madry.attack)
        return madry.trainer

    return make


def _frozen(generate: Callable, classifier, attack) -> Callable:
    def run(x, y=None, **kwargs):
        with attacking(classifier, attack):
            return generate(x, y, **kwargs)

    return run


def retrain_run(cfg: RetrainConfig, method: str, checkpoint: Path, out: Path, data: str | None = None,
                data_root: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """`skinart defend --method retrain|madry`: adversarial (re)training from the checkpoint's own training
    settings; the run directory is the retrained checkpoint with its clean test metrics."""
    cfg.check()
    meta = read_checkpoint_meta(checkpoint)
    if meta.get("preprocessing"):
        raise SkinartError(f"{checkpoint} carries a preprocessing defence; retrain its source checkpoint instead")
    train_cfg = TrainConfig(**meta["train_config"])
    train_cfg.epochs = cfg.epochs or train_cfg.epochs
    if cfg.init == "finetune":
        train_cfg.weights, train_cfg.pretrained = str(Path(checkpoint).resolve() / WEIGHTS_FILE), False
    config = {"command": "defend", "method": method, "retrain": asdict(cfg), "train": asdict(train_cfg),
              "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
              "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None}}
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    defence = {"defence": {"method": method, "source": str(Path(checkpoint).resolve()), **asdict(cfg)}}
    with staged(out, config) as tmp:
        if cfg.mode == "online":
            make = madry_trainer(cfg.options) if method == "madry" else online_trainer(cfg.attacks, cfg.options, cfg.ratio)
            train(dataset, train_cfg, tmp, device, meta["malignant"], make, defence)
        crafter = classifier_from_checkpoint(checkpoint, device)[0]
        for round_ in range(cfg.rounds if cfg.mode == "static" else 0):
            print(f"round {round_ + 1}/{cfg.rounds}: crafting {cfg.ratio:.0%} adversarial copies with {'+'.join(cfg.attacks)}", file=sys.stderr)
            train_split = with_adversarial_copies(dataset.splits["train"], _attacks(cfg.attacks, crafter, cfg.options), crafter,
                                                  cfg.ratio, train_cfg.seed + round_)
            train(replace(dataset, splits={**dataset.splits, "train": train_split}), train_cfg, tmp, device, meta["malignant"],
                  extra_meta=defence)
            crafter = classifier_from_checkpoint(tmp, device)[0]
            train_cfg.weights = str(tmp / WEIGHTS_FILE)  # the next round continues from this one
        classifier, _ = classifier_from_checkpoint(tmp, device)
        return evaluate(classifier, dataset.splits["test"], meta["classes"], meta["malignant"], tmp,
                        f"{meta['model']} + {method} on {dataset.name} test")


DEFENCES = {**{name: description for name, (_, description) in PREPROCESSORS.items()},
            "retrain": "adversarial retraining with ART's AdversarialTrainer (static or online)",
            "madry": "ART's AdversarialTrainerMadryPGD (PGD adversarial training, ratio 1)",
            "combined": "retrained weights + llt (the thesis's best defence)",
            "detect-poison": "ART ActivationDefence / SpectralSignatureDefense on a poisoned run's training split"}


def defend_run(method: str, checkpoint: Path | None, out: Path, settings: dict, retrain: RetrainConfig | None = None,
               retrained: Path | None = None, data: str | None = None, data_root: str | None = None, device: str = "auto",
               overwrite: bool = False, poisoned_run: Path | None = None, detector: str = "activation") -> dict | None:
    """`skinart defend`: one of DEFENCES; the run directory is the defended checkpoint with its clean metrics
    (for detect-poison: the detector's precision and recall)."""
    if method not in DEFENCES:
        raise SkinartError(f"unknown defence '{method}'; choose one of {', '.join(DEFENCES)}")
    if method == "detect-poison":
        if poisoned_run is None:
            raise SkinartError("detect-poison needs --poisoned-run, a run of `skinart attack --method poison-flip|poison-backdoor`")
        return detect_poison_run(poisoned_run, out, detector, data, data_root, device, overwrite)
    if checkpoint is None and not (method == "combined" and retrained):
        raise SkinartError(f"{method} needs --checkpoint, the model to defend")
    if method in ("retrain", "madry"):
        return retrain_run(retrain or RetrainConfig(), method, checkpoint, out, data, data_root, device, overwrite)
    if method == "combined":
        checkpoint = retrained or checkpoint
        if (read_checkpoint_meta(checkpoint).get("defence") or {}).get("method") not in ("retrain", "madry"):
            raise SkinartError(f"combined needs retrained weights and {checkpoint} has none: pass --retrained RUN, a run of "
                               "`skinart defend --method retrain` (or madry)")
        return preprocess_run("llt", checkpoint, out, settings, data, data_root, device, overwrite, label="combined")
    return preprocess_run(method, checkpoint, out, settings, data, data_root, device, overwrite)


# --------------------------------------------------------------------------- poison detection

def _pca_dims(y: np.ndarray) -> int:
    """ART's 10 PCA dimensions, or fewer when a class has fewer training images than that."""
    counts = np.bincount(y.argmax(1))
    return int(min(10, counts[counts > 0].min()))


# ART's settings otherwise: the defender does not know the poisoned share (no oracle)
DETECTORS = {
    "activation": lambda clf, x, y: ActivationDefence(clf, x, y).detect_poison(nb_clusters=2, reduce="PCA", nb_dims=_pca_dims(y)),
    "spectral": lambda clf, x, y: SpectralSignatureDefense(clf, x, y).detect_poison(),
}


def detect_poison_run(poisoned_run: Path, out: Path, detector: str = "activation", data: str | None = None,
                      data_root: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """`skinart defend --method detect-poison`: ART's detector on the poisoned model's pre-logit features of
    its own (poisoned) training split, scored against the samples the attack really poisoned."""
    if detector not in DETECTORS:
        raise SkinartError(f"unknown --detector '{detector}'; choose one of {', '.join(DETECTORS)}")
    meta = read_checkpoint_meta(poisoned_run)
    poison_file, config_file = Path(poisoned_run) / "poison.npz", Path(poisoned_run) / "config.json"
    if not poison_file.is_file() or not config_file.is_file():
        raise SkinartError(f"{poisoned_run} is not a poisoned run (no poison.npz); pass --poisoned-run, a run of "
                           "`skinart attack --method poison-flip|poison-backdoor`")
    attack = json.loads(config_file.read_text())["attack"]
    config = {"command": "defend", "method": "detect-poison", "detector": detector,
              "poisoned_run": {"path": str(Path(poisoned_run).resolve()), "weights_sha256": meta["weights_sha256"]}}
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(poisoned_run, meta, data, data_root)
    poison = np.load(poison_file)
    train_split = poison_split(dataset.splits["train"], attack["method"], poison["indices"], int(poison["target"]), len(meta["classes"]))
    net, _ = load_checkpoint(poisoned_run)
    features = wrap(PreLogits(net.eval()), meta["img_size"], tuple(meta["mean"]), tuple(meta["std"]), device)
    x, y = to_model_input(train_split.images), one_hot(train_split.labels, len(meta["classes"]))
    _, is_clean = DETECTORS[detector](features, x, y)
    flagged, poisoned = np.asarray(is_clean) == 0, np.isin(np.arange(len(train_split)), poison["indices"])
    precision, recall, f1, _ = precision_recall_fscore_support(poisoned, flagged, average="binary", zero_division=0)
    metrics = {"detector": detector, "attack": attack["method"], "fraction": attack["fraction"], "train_samples": len(flagged),
               "poisoned": int(poisoned.sum()), "flagged": int(flagged.sum()), "true_positives": int((flagged & poisoned).sum()),
               "precision": float(precision), "recall": float(recall), "f1": float(f1)}
    with staged(out, config) as tmp:
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "flagged.npz", indices=np.flatnonzero(flagged), ids=train_split.ids[flagged])
    return metrics


# --------------------------------------------------------------------------- evaluation under the three threat models

MASKING_GAP = 0.10  # adaptive accuracy this far below transfer accuracy: the transfer number overstates robustness


def robustness_flags(table: dict, preprocessed: bool) -> dict:
    """Only a preprocessor can hide gradients here: masking shows as the attack through it (BPDA, EOT) beating the
    attack that ignores it. Adaptive far below transfer, with or without one, means the transfer number overstates."""
    below = lambda a, b: a in table and b in table and table[a]["accuracy"] < table[b]["accuracy"] - MASKING_GAP  # noqa: E731
    return {"robustness_overstated": below("adaptive", "transfer"), "gradient_masking_suspected": preprocessed and below("adaptive", "white-box")}


def threats_run(cfg, checkpoint: Path, out: Path, threats: tuple[str, ...] = THREATS, source_checkpoint: Path | None = None,
                data: str | None = None, data_root: str | None = None, device: str = "auto", overwrite: bool = False) -> dict | None:
    """One attack under several threat models side by side (one sub-run each), with the gradient-masking flag."""
    config = {"command": "evaluate", "attack": cfg.__dict__, "threats": list(threats),
              "checkpoint": str(Path(checkpoint).resolve()), "source_checkpoint": source_checkpoint and str(Path(source_checkpoint).resolve()),
              "data": {"name": data, "root": str(Path(data_root).resolve()) if data_root else None}}
    if not needs_run(out, config, overwrite):
        return None
    with staged(out, config) as tmp:
        runs = {t: attack_run(cfg, checkpoint, tmp / t, data, data_root, source_checkpoint if t == "transfer" else None,
                              None, device, overwrite, t) for t in threats}
        table = {t: {"clean_accuracy": m["clean"]["accuracy"], "accuracy": m["adversarial"]["accuracy"],
                     "sensitivity": m["adversarial"]["binary"]["sensitivity"], "npv": m["adversarial"]["binary"]["npv"],
                     "fnr": m["adversarial"]["binary"]["fnr"], "fooling_rate": m["fooling_rate"]} for t, m in runs.items()}
        preprocessed = bool(read_checkpoint_meta(checkpoint).get("preprocessing"))
        metrics = {"method": cfg.method, "threats": table, **robustness_flags(table, preprocessed)}
        write_json(tmp / "metrics.json", metrics)
        (tmp / "metrics.md").write_text(threats_markdown(metrics, f"{cfg.method} on {checkpoint}"))
    return metrics


def threats_markdown(metrics: dict, title: str) -> str:
    pct = lambda v: "n/a" if v is None else f"{100 * v:.1f}"  # noqa: E731
    lines = [f"# {title}", "", "| threat model | clean accuracy | accuracy | sensitivity | NPV | FNR | fooling rate |", "|---|---|---|---|---|---|---|"]
    for threat, row in metrics["threats"].items():
        lines.append(f"| {threat} | " + " | ".join(pct(row[k]) for k in ("clean_accuracy", "accuracy", "sensitivity", "npv", "fnr", "fooling_rate")) + " |")
    if metrics["gradient_masking_suspected"]:
        lines += ["", f"**likely gradient masking**: the adaptive attack (through the preprocessor) leaves accuracy more than "
                  f"{MASKING_GAP:.0%} below the attack that ignores it; the preprocessor's robustness comes from hiding gradients."]
    if metrics.get("robustness_overstated"):
        lines += ["", f"**transfer overstates robustness**: the adaptive attack's accuracy is more than {MASKING_GAP:.0%} below "
                  "the transfer attack's; the number under the thesis's protocol (attacks crafted on the source model) "
                  "is not the defence's robustness."]
    return "\n".join(lines) + "\n\n(all values in %; binary: malignant = positive)\n"
