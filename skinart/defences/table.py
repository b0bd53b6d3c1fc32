"""Defences: one table from method name to what it is, the run kind that builds it and the input it defends;
plus the options of adversarial retraining. The runs themselves are in preprocess_run, retrain_run and detect_run."""

from __future__ import annotations

from dataclasses import dataclass, field

from skinart.attacks.table import METHODS
from skinart.errors import SkinartError
from skinart.options import choose, parse_eps
from skinart.defences.preprocessors import PREPROCESSORS


@dataclass(frozen=True)
class Defence:
    kind: str  # preprocess | retrain | combined | detect: the run that builds it
    help: str
    takes: tuple[str, ...]  # the `skinart defend` options that apply, besides --out, --data, --data-root, --device
    needs: str = "checkpoint"  # the option naming what it defends
    defaults: dict = field(default_factory=dict)  # attack settings of a training defence, ART names


_PGD = METHODS["pgd"].defaults
_TRAINING = ("checkpoint", "retrain_epochs", "init", "eps", "eps_step", "max_iter")
DEFENCES: dict[str, Defence] = {
    **{name: Defence("preprocess", description, ("checkpoint", setting)) for name, (_, description, setting) in PREPROCESSORS.items()},
    "retrain": Defence("retrain", "adversarial retraining with ART's AdversarialTrainer (static or online)",
                       _TRAINING + ("attacks", "ratio", "mode", "rounds")),
    # Madry et al.'s CIFAR setting: 7 steps of PGD's default step inside PGD's default ε
    "madry": Defence("retrain", "ART's AdversarialTrainerMadryPGD (PGD adversarial training, ratio 1)", _TRAINING,
                     defaults={"eps": _PGD["eps"], "eps_step": _PGD["eps_step"], "max_iter": 7}),
    "combined": Defence("combined", "retrained weights + llt (the thesis's best defence)", ("checkpoint", "retrained", "quality"),
                        needs="retrained"),
    "detect-poison": Defence("detect", "ART ActivationDefence / SpectralSignatureDefense on a poisoned run's training split",
                             ("poisoned_run", "detector"), needs="poisoned_run"),
}
_EVERY_DEFENCE = ("method", "out", "data", "data_root", "device", "deterministic", "overwrite")
RETRAIN_ATTACKS = ("fgsm", "pgd", "mim")
RETRAIN_MODES = ("static", "online")
INITS = ("scratch", "finetune")


def check_defence(name: str, given: set[str] = frozenset()) -> Defence:
    """The row of defence `name`, refusing any `given` option (set on the command line) it does not take."""
    defence = DEFENCES[choose(name, DEFENCES, "defence")]
    extra = sorted(set(given) - set(defence.takes) - set(_EVERY_DEFENCE))
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
