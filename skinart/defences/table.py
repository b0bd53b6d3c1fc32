"""Defences: one table from method name to what it is, the run kind that builds it and the input it defends; the
preprocessing defences' settings (their ranges, ART's own) and the poison detectors by name; plus the options of
adversarial retraining. Pure data: the command checks read it without loading torch or ART. The ART preprocessors are
bound in `defences.preprocessors`, the detectors in `runs.detect`; the runs are preprocess_run, retrain_run, detect_run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from skinart.attacks.table import METHODS
from skinart.errors import SkinartError
from skinart.options import choose, parse_eps


@dataclass(frozen=True)
class Defence:
    kind: str  # preprocess | retrain | combined | detect | noise: the run that builds it
    help: str
    takes: tuple[str, ...]  # the `skinart defend` options that apply, besides --out, --data, --data-root, --device
    needs: str = "checkpoint"  # the option naming what it defends
    defaults: dict = field(default_factory=dict)  # attack settings of a training defence, ART names
    setting: str | None = None  # a preprocessing defence's one setting (SETTINGS)


# a preprocessing defence's setting -> (lowest, highest, what it is): the ranges ART's preprocessors accept (JpegCompression's
# quality, SpatialSmoothing's window, FeatureSqueezing's bit depth; WebP's quality as JPEG's), so a refusal needs no ART
SETTINGS = {"quality": (1, 100, "the compression quality; the thesis used WebP at 60"),
            "window": (1, math.inf, "the median filter's side in pixels"), "bits": (1, 64, "the bit depth kept")}
PREPROCESSOR_DEFAULTS = {"quality": 60, "window": 3, "bits": 4}
DETECTORS = ("activation", "spectral")  # ART's ActivationDefence and SpectralSignatureDefense (runs.detect)


def check_setting(name: str, value) -> int:
    """A preprocessing defence's setting `name`, a whole number within its range."""
    low, high, what = SETTINGS[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        span = f"outside {low}–{high}" if high < math.inf else f"not a whole number of at least {low}"
        raise SkinartError(f"--{name} {value} is {span}; it is {what} (default {PREPROCESSOR_DEFAULTS[name]})")
    return value


def _preprocessing(help: str, setting: str) -> Defence:
    return Defence("preprocess", help, ("checkpoint", setting), setting=setting)


_PGD = METHODS["pgd"].defaults
_TRAINING = ("checkpoint", "retrain_epochs", "init", "eps", "eps_step", "max_iter")
DEFENCES: dict[str, Defence] = {
    # each an ART preprocessor (defences.preprocessors.PREPROCESSORS) attached to the checkpoint's weights
    "llt": _preprocessing("WebP compression + horizontal flip (Yin et al. 2020)", "quality"),
    "jpeg": _preprocessing("JPEG compression (ART JpegCompression; truncates to uint8)", "quality"),
    "smoothing": _preprocessing("median filter (ART SpatialSmoothing)", "window"),
    "squeeze": _preprocessing("bit-depth reduction (ART FeatureSqueezing)", "bits"),
    "retrain": Defence("retrain", "adversarial retraining with ART's AdversarialTrainer (static or online)",
                       _TRAINING + ("attacks", "ratio", "mode", "rounds")),
    # Madry et al.'s CIFAR setting: 7 steps of PGD's default step inside PGD's default ε
    "madry": Defence("retrain", "ART's AdversarialTrainerMadryPGD (PGD adversarial training, ratio 1)", _TRAINING,
                     defaults={"eps": _PGD["eps"], "eps_step": _PGD["eps_step"], "max_iter": 7}),
    "combined": Defence("combined", "retrained weights + llt (the thesis's best defence)", ("checkpoint", "retrained", "quality"),
                        needs="retrained"),
    # fine-tuning under Gaussian noise through ART's randomized-smoothing classes (certification.table.VARIANTS)
    "randomized-smoothing": Defence("noise", "fine-tuning under Gaussian noise of σ through ART's randomized-smoothing classes, "
                                    "for `skinart certify`",
                                    ("checkpoint", "sigma", "variant", "retrain_epochs", "balance", "smoothing_n")),
    "detect-poison": Defence("detect", "ART ActivationDefence / SpectralSignatureDefense on a poisoned run's training split",
                             ("poisoned_run", "detector"), needs="poisoned_run"),
}
_EVERY_DEFENCE = ("method", "out", "data", "data_root", "device", "deterministic", "overwrite")
RETRAIN_ATTACKS = ("fgsm", "pgd", "mim")
RETRAIN_MODES = ("static", "online")
INITS = ("scratch", "finetune")


def defence_takes(name: str) -> set[str]:
    """The options defence `name` takes: its own and every defence's."""
    return set(DEFENCES[name].takes) | set(_EVERY_DEFENCE)


def check_defence(name: str, given: set[str] = frozenset()) -> Defence:
    """The row of defence `name`, refusing any `given` option (set on the command line) it does not take."""
    defence = DEFENCES[choose(name, DEFENCES, "defence")]
    extra = sorted(set(given) - defence_takes(name))
    if extra:
        flags = lambda names: ", ".join("--" + n.replace("_", "-") for n in names)  # noqa: E731
        raise SkinartError(f"{flags(extra[:1])} does not apply to {name}; it takes {flags(defence.takes)}")
    return defence


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

    def check(self, method: str = "retrain") -> None:
        unknown = [a for a in self.attacks if a not in RETRAIN_ATTACKS]
        if unknown or not self.attacks:
            raise SkinartError(f"--attacks names {', '.join(unknown) or 'nothing'}; choose from {', '.join(RETRAIN_ATTACKS)} (comma-separated)")
        if not 0 < self.ratio <= 1:
            raise SkinartError(f"--ratio {self.ratio} is outside (0, 1]; it is the adversarial share (the paper: 0.2–0.8)")
        choose(self.mode, RETRAIN_MODES, "--mode")
        choose(self.init, INITS, "--init")
        if self.rounds < 1 or (self.epochs is not None and self.epochs < 1):
            raise SkinartError("--rounds and --retrain-epochs must be at least 1")
        for option in ("eps", "eps_step"):  # parsed here, as AttackConfig parses an attack's: "8/255" or 0.03
            if self.options.get(option) is not None:
                self.options[option] = parse_eps(self.options[option], "--" + option.replace("_", "-"))
        for option, value in self.options.items():  # an attack setting no chosen attack takes would be dropped silently
            if method == "retrain" and value is not None and not any(option in METHODS[a].options for a in self.attacks):
                raise SkinartError(f"--{option.replace('_', '-')} applies to none of --attacks {','.join(self.attacks)}; drop it")
        if self.mode == "online" and self.rounds != 1:
            raise SkinartError("--rounds is for --mode static (online mode regenerates adversarials every batch)")
