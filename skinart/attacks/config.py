"""The options of an attack run, checked against the method table: which options a method takes and which it
requires are data in `attacks.METHODS`, and the ranges of the options are data here."""

from __future__ import annotations

from dataclasses import dataclass, field

from skinart.attacks.table import METHODS, Method, check_method, check_patch_size, check_uap_attacker, flag
from skinart.errors import SkinartError
from skinart.options import choose, parse_class, parse_eps


@dataclass(frozen=True)
class Objective:
    """What an attack optimises: the method's own loss (accuracy), or the binary decision at the checkpoint's stored
    operating point t, on the images whose decision it can turn (skinart.attacks.objective)."""

    decision: int | None  # the decision at t the attacked images are moved away from: 1 malignant, 0 benign; None: classes
    attacked: str  # which test images are attacked
    measure: str  # the threat-model table's column that the objective lowers (the sanity checks compare it)
    help: str


OBJECTIVES = {
    "accuracy": Objective(None, "all", "accuracy", "the method's own loss on every image (lower accuracy)"),
    "miss": Objective(1, "malignant", "sensitivity_at_threshold", "malignant images only, p_malignant pushed below t (missed cancers, FNR@t)"),
    "alarm": Objective(0, "benign", "specificity_at_threshold", "benign images only, p_malignant pushed above t (false alarms)"),
}


def objective_words(name: str) -> str:
    """What a title adds for an objective on the decision (nothing for accuracy)."""
    return "" if name == "accuracy" else f", objective {name}: {OBJECTIVES[name].attacked} images only"

# option -> (lowest allowed value, what it is); counts and shares outside these are refused
_RANGES = {
    "max_iter": (1, "iterations"), "fit_samples": (1, "training images the perturbation is fitted on"),
    "max_samples": (1, "test images"), "retrain_epochs": (1, "retraining epochs"), "random_init": (0, "random starts"),
}
_OPTIONS = ("eps", "eps_step", "max_iter", "random_init", "attacker", "patch_size")  # a method's own ART options


def _count(low: int):
    def check(key: str, value):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SkinartError(f"--param {key}={value}: expected a whole number of at least {low}")
        return value
    return check


def _between(low: float, high: float):
    def check(key: str, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value < high:
            raise SkinartError(f"--param {key}={value}: expected a number in ({low:g}, {high:g})")
        return float(value)
    return check


def _norm(key: str, value):
    if value not in ("inf", float("inf"), 1, 2):
        raise SkinartError(f"--param {key}={value}: expected inf, 1 or 2")
    return "inf" if value in ("inf", float("inf")) else value


# --param keys that the options also set go through the same checks; the rest reach ART, which names unknown keys
_PARAMS = {
    "eps": lambda key, value: parse_eps(value, f"--param {key}"), "eps_step": lambda key, value: parse_eps(value, f"--param {key}"),
    "max_iter": _count(1), "batch_size": _count(1), "max_eval": _count(1), "init_eval": _count(1), "binary_search_steps": _count(1),
    "nb_restarts": _count(1), "patience": _count(1), "nb_random_init": _count(1), "square_max_iter": _count(1), "num_random_init": _count(0),
    "delta": _between(0, 1), "p_init": _between(0, 1),
    "learning_rate": _between(0, float("inf")), "decay": _between(0, float("inf")), "initial_const": _between(0, float("inf")),
    "norm": _norm,
}


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
    objective: str = "accuracy"

    def __post_init__(self):
        self.objective = self.objective or "accuracy"  # a command's unset option
        # parsed once, on construction, so every config hash sees the same float ε
        for name in ("eps", "eps_step"):
            if getattr(self, name) is not None:
                setattr(self, name, parse_eps(getattr(self, name), flag(name)))
        self.params = {key: _PARAMS.get(key, lambda _, value: value)(key, value) for key, value in self.params.items()}

    @property
    def row(self) -> Method:
        return check_method(self.method)

    @property
    def budget(self) -> float | None:
        """The ε the attack runs with: the option, else the method's default; None for an unbounded attack."""
        method = self.row
        return self.eps if self.eps is not None else method.defaults.get("eps") if method.bounded else None

    def options(self) -> dict:
        """The skinart options under their ART names."""
        return {"eps": self.eps, "eps_step": self.eps_step, "max_iter": self.max_iter, "num_random_init": self.random_init,
                "attacker": self.attacker, "patch_size": self.patch_size}

    def given(self) -> list[str]:
        """The run options set on the command line (not left at their defaults)."""
        default = AttackConfig(self.method)
        return [name for name in self.__dataclass_fields__ if name not in ("method", "seed", "objective")
                and getattr(self, name) not in (None, {}, getattr(default, name))]

    def check(self, classes: list[str]) -> tuple[int | None, int | None]:
        """Validate against the method's row and the checkpoint's classes; returns (target, source) class indices."""
        method = self.row
        for name, (low, what) in _RANGES.items():
            value = getattr(self, name)
            if value is not None and value < low:
                raise SkinartError(f"{flag(name)} must be at least {low} ({what}), got {value}")
        takes = set(method.takes) | {o for o in _OPTIONS if ("num_random_init" if o == "random_init" else o) in method.options}
        for name in self.given():
            if name not in takes:
                raise SkinartError(f"{flag(name)} does not apply to {self.method}; it takes "
                                   f"{', '.join(flag(t) for t in sorted(takes)) or 'no options'}")
        for name in method.requires:
            if getattr(self, name) is None:
                raise SkinartError(f"{self.method} needs {flag(name)} ({method.help})")
        if self.fraction is not None and not 0 < self.fraction < 1:
            raise SkinartError(f"{self.method} needs --fraction in (0, 1), the share of training images to poison; got {self.fraction}")
        eps, step = self.params.get("eps", self.eps), self.params.get("eps_step", self.eps_step)
        if eps is not None and step is not None and step > eps:
            raise SkinartError(f"the step {step:.4g} is larger than ε {eps:.4g}; every step would be clipped back to the budget: "
                               "give an --eps-step at most --eps")
        self._check_objective()
        target = parse_class(self.target_class, classes, "--target-class")
        source = parse_class(self.source_class, classes, "--source-class")
        if source is not None and source == target:
            raise SkinartError("--source-class and --target-class are the same class; a flip needs two different ones")
        if self.attacker is not None:  # checked here too, not only when ART builds the attack after the data are loaded
            check_uap_attacker(self.attacker, target is not None)
        if self.patch_size is not None:
            check_patch_size(self.patch_size)
        return target, source

    def _check_objective(self) -> None:
        """The objective must be one the method's row takes; a targeted attack has its own (the target class)."""
        choose(self.objective, OBJECTIVES, "--objective")
        takes = self.row.objectives
        if self.objective not in takes:
            able = ", ".join(name for name, m in METHODS.items() if self.objective in m.objectives)
            raise SkinartError(f"--objective {self.objective} does not apply to {self.method} (it takes {', '.join(takes)}); "
                               f"use one of {able}")
        if self.objective != "accuracy" and self.target_class is not None:
            raise SkinartError(f"--objective {self.objective} moves the malignant/benign decision, and --target-class a class: "
                               "drop one of them")
