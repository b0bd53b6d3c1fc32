"""Attacks: one table from method name to the ART attack that runs it, its defaults (ε in [0, 1] pixel units),
the options it takes and what the attacker reads of the model. `build` turns a row into an ART attack."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from skinart.errors import SkinartError
from skinart.options import choose
from skinart.toolbox import (
    AdversarialPatchPyTorch, AutoAttack, AutoProjectedGradientDescent, CarliniL2Method, CarliniLInfMethod, FastGradientMethod, HopSkipJump, MomentumIterativeMethod,
    ProjectedGradientDescent, SquareAttack, TargetedUniversalPerturbation, UniversalPerturbation,
)
from skinart.universal import SGDUniversalPerturbation


def check_uap_attacker(attacker: str, targeted: bool) -> None:
    if targeted and attacker != "fgsm":
        raise SkinartError("a targeted UAP supports only --attacker fgsm (ART's TargetedUniversalPerturbation)")
    choose(attacker, ("fgsm", "pgd"), "--attacker")


def check_patch_size(patch_size: float) -> None:
    if not 0 < patch_size <= 1:
        raise SkinartError(f"--patch-size {patch_size} must be in (0, 1]: the patch side as a share of the image side")


def _uap(classifier, attacker: str = "fgsm", eps_step: float = 1 / 255, targeted: bool = False, **kwargs):
    """ART's UAP with its sub-attacker's step set explicitly (it otherwise keeps eps=0.3 in ART's defaults). ART adds
    the sub-attacker's perturbation to δ only when it flips the image; a single FGSM step of 1/255 is what makes a pass
    count: on the quickstart model a minimal FGSM (its step grown up to ε until the image flips, as DeepFool's in the
    original UAP) fooled 0.55, 0.67, 0.67 of 1000 fit images after passes 1–3, one fixed step 0.79 of 300 after pass 1
    (a step grown up to 2/255: 0.77, in more time): large per-image steps overwrite δ with one image's direction."""
    check_uap_attacker(attacker, targeted)
    params = {"eps": eps_step, "targeted": targeted} if attacker == "fgsm" else \
        {"eps": eps_step, "eps_step": eps_step / 4, "max_iter": 10, "verbose": False}
    if targeted:
        return TargetedUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **kwargs)
    # skinart prints each pass's fit fooling rate instead of ART's progress bar (which the targeted UAP lacks)
    return UniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **{"verbose": False, **kwargs})


def _patch(classifier, patch_size: float = 0.2, **kwargs):
    """A universal patch covering `patch_size` of the image side, trained over random rotations and
    scales (0.75–1 × patch_size) and places: the EOT of the slides."""
    check_patch_size(patch_size)
    return AdversarialPatchPyTorch(classifier, patch_shape=tuple(classifier.input_shape), scale_min=0.75 * patch_size,
                                   scale_max=patch_size, **kwargs)


def _autoattack(classifier, eps: float = 8 / 255, norm="inf", max_iter: int = 100, nb_random_init: int = 1,
                square_max_iter: int = 5000, batch_size: int = 128, verbose: bool = False):
    r"""AutoAttack (Croce & Hein, ICML 2020), run by ART's `AutoAttack` with its sub-attacks given explicitly.

    Distance: L∞ (default) or L2 (`--param norm=2`); ε in [0, 1] pixel units.
    Arguments: eps (8/255), norm ("inf"), max_iter (APGD iterations, 100), nb_random_init (APGD starts, 1),
    square_max_iter (Square queries, 5000), batch_size (128).
    What runs, in ART's order, each on the images still classified correctly (the per-image worst case):
    untargeted APGD-CE, APGD-DLR and Square; then, targeted, APGD-CE and APGD-DLR towards each of the other
    classes in turn (ART's targeted pass takes every sub-attack that has a targeted mode; Square has none).
    APGD starts with step 2ε as in the paper. FAB-T is not in ART 1.20.1 and does not run; ART's own default set
    (DeepFool in its place) is not used."""
    apgd = [AutoProjectedGradientDescent(classifier, norm=norm, eps=eps, eps_step=2 * eps, max_iter=max_iter, targeted=False,
                                         nb_random_init=nb_random_init, batch_size=batch_size, loss_type=loss, verbose=verbose)
            for loss in ("cross_entropy", "difference_logits_ratio")]
    square = SquareAttack(classifier, norm=norm, eps=eps, max_iter=square_max_iter, batch_size=batch_size, verbose=verbose)
    return AutoAttack(classifier, norm=norm, eps=eps, eps_step=2 * eps, attacks=[*apgd, square], batch_size=batch_size, targeted=True)


_autoattack.attack_params = ("eps", "norm", "max_iter", "nb_random_init", "square_max_iter", "batch_size", "verbose")


# What each kind of attack run takes besides the method's own ART options (AttackConfig's fields).
_CRAFTED = ("target_class", "max_samples", "params")
_FITTED = _CRAFTED + ("fit_samples",)  # fitted on train images, then applied to the test split
_POISON = ("target_class", "fraction", "retrain_epochs")


@dataclass(frozen=True)
class Method:
    """One attack: `factory(classifier, **ART keyword arguments)` builds it from `defaults` < options < --param."""

    kind: str  # evasion | universal | patch | poison
    factory: Callable | None
    defaults: dict = field(default_factory=dict)  # ART keyword arguments, epsilons in [0, 1] pixel units
    options: tuple[str, ...] = ()  # skinart options the method takes (their ART names match)
    bounded: bool = False  # L∞ ≤ eps holds by construction
    help: str = ""
    access: str = "gradients"  # what the attacker reads of the model it attacks: gradients | scores | labels
    takes: tuple[str, ...] = _CRAFTED  # the run options that apply (AttackConfig fields)
    requires: tuple[str, ...] = ()  # run options that must be given
    art_class: type | None = None  # the ART class behind a skinart factory (for its list of valid parameters)
    eot: bool = True  # the adaptive attacker averages its gradients over random flips (ART's EoT preprocessor)


_ITERATIVE = ("eps", "eps_step", "max_iter")
METHODS: dict[str, Method] = {
    "fgsm": Method("evasion", FastGradientMethod, {"eps": 2 / 255, "batch_size": 128}, ("eps", "num_random_init"), True,
                   "Fast Gradient Sign Method (Goodfellow et al. 2015)"),
    "pgd": Method("evasion", ProjectedGradientDescent,
                  {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "num_random_init": 1, "batch_size": 128},
                  _ITERATIVE + ("num_random_init",), True, "Projected Gradient Descent (Madry et al. 2018)"),
    "mim": Method("evasion", MomentumIterativeMethod, {"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "batch_size": 128},
                  _ITERATIVE, True, "Momentum Iterative Method (Dong et al. 2018)"),
    "cw": Method("evasion", CarliniL2Method,
                 # ART's initial_const 0.01 leaves most images unperturbed within a few search steps on [0, 1] inputs
                 {"max_iter": 10, "binary_search_steps": 5, "initial_const": 1.0, "learning_rate": 0.1, "batch_size": 128},
                 ("max_iter",), False, "Carlini & Wagner L2, minimal perturbation (unbounded)"),
    "cw-linf": Method("evasion", CarliniLInfMethod, {"max_iter": 10, "batch_size": 128}, ("max_iter",), False,
                      "Carlini & Wagner L∞, minimal perturbation (unbounded)"),
    "square": Method("evasion", SquareAttack, {"eps": 8 / 255, "max_iter": 300, "p_init": 0.1, "batch_size": 128},
                     ("eps", "max_iter"), True, "Square Attack, score-based black-box (Andriushchenko et al. 2020)", "scores",
                     takes=("max_samples", "params")),
    # parameter-free like the original: a worst case's --max-iter (meant for PGD) must not shorten its APGD unseen
    "autoattack": Method("evasion", _autoattack, {"eps": 8 / 255, "norm": "inf", "max_iter": 100, "square_max_iter": 5000},
                         ("eps",), True,
                         "AutoAttack (Croce & Hein 2020) via ART: APGD-CE, APGD-DLR, Square (5000 queries), then targeted "
                         "APGD-CE/APGD-DLR towards every other class; APGD 100 iterations (--param max_iter=N); L∞ or "
                         "--param norm=2; no FAB-T (not in ART 1.20.1)", takes=("max_samples", "params"),
                         # APGD scores each image's own loss (compute_loss, reduction none): EoT's extra rows break it
                         eot=False),
    "hopskipjump": Method("evasion", HopSkipJump, {"max_iter": 20, "max_eval": 1000, "init_eval": 100, "batch_size": 128},
                          ("max_iter",), False, "HopSkipJump, decision-based black-box, minimal L2 (unbounded)", "labels"),
    "uap": Method("universal", _uap, {"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 10, "delta": 0.2, "attacker": "fgsm"},
                  _ITERATIVE + ("attacker",), True,
                  "Universal Adversarial Perturbation (Moosavi-Dezfooli et al. 2017), fitted on train images",
                  takes=_FITTED, art_class=UniversalPerturbation),
    "uap-sgd": Method("universal", SGDUniversalPerturbation,
                      {"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 20, "delta": 0.1, "batch_size": 32, "patience": 5},
                      _ITERATIVE, True,
                      "stochastic-gradient UAP (Shafahi et al. 2020): one shared δ, sign steps over mini-batches of train images",
                      takes=_FITTED),
    "patch": Method("patch", _patch, {"patch_size": 0.2, "max_iter": 100, "learning_rate": 0.05, "batch_size": 32},
                    ("max_iter", "patch_size"), False, "universal adversarial patch (Brown et al. 2017), EOT over rotation/scale/place",
                    takes=_FITTED, art_class=AdversarialPatchPyTorch),
    "poison-flip": Method("poison", None, help="label flip source→target on a share of the training set, then retrain",
                          takes=_POISON + ("source_class",), requires=("source_class", "target_class", "fraction")),
    "poison-backdoor": Method("poison", None, help="backdoor trigger (ART add_pattern_bd) labelled as the target on a share "
                              "of the training set, then retrain", takes=_POISON, requires=("target_class", "fraction")),
}


def check_method(name: str) -> Method:
    return METHODS[choose(name, METHODS, "attack method")]


_FLAGS = {"num_random_init": "--random-init", "random_init": "--random-init", "params": "--param"}


def flag(option: str) -> str:
    """The command-line spelling of an option given under its ART or field name."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def build(name: str, classifier, options: dict, extra: dict, target: int | None = None):
    """The ART attack for `name`: defaults < the skinart options given < --param extras."""
    method = check_method(name)
    given = {k: v for k, v in options.items() if v is not None}
    unused = [k for k in given if k not in method.options]
    if unused:
        raise SkinartError(f"{flag(unused[0])} does not apply to {name}; it takes "
                           f"{', '.join(map(flag, method.options)) or 'no such options'}")
    kwargs = {**method.defaults, **given, **extra}
    if method.kind == "evasion" and "eps_step" in kwargs and "eps" in given and "eps_step" not in {**given, **extra}:
        kwargs["eps_step"] = given["eps"] / 4  # the step follows ε (2/255 at the default 8/255) so ε sweeps stay comparable
    if target is not None:
        kwargs["targeted"] = True
    elif "targeted" in getattr(method.art_class or method.factory, "attack_params", ()):
        kwargs["targeted"] = False  # ART's patch defaults to targeted: untargeted must be said
    try:
        return method.factory(classifier, **kwargs)
    except TypeError as e:  # an ART keyword this attack does not have
        valid = ", ".join(p for p in getattr(method.art_class or method.factory, "attack_params", []) if p != "estimator")
        raise SkinartError(f"{name}: {e}; valid ART parameters are {valid}") from None
    except ValueError as e:
        raise SkinartError(f"{name}: ART rejected the parameters ({e}); fix the option or --param") from None


def _recordable(value):
    """A parameter value as JSON can hold it (∞ as "inf"); None for what is not a plain setting (callbacks, writers)."""
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {k: _recordable(v) for k, v in value.items() if _recordable(v) is not None}
    if isinstance(value, list):  # e.g. AutoAttack's sub-attacks
        return [_recordable(v) for v in value]
    if hasattr(value, "attack_params"):  # a sub-attack: its class and its own parameters
        return {"attack": type(value).__name__, **art_parameters(value)}
    return None


def art_parameters(attack) -> dict:
    """The parameters ART will run with, read back from the built attack, so what a run records is what ran
    (defaults, options and --param overrides as ART applied them)."""
    values = {name: _recordable(getattr(attack, name, None)) for name in attack.attack_params if name != "estimator"}
    return {name: value for name, value in values.items() if value is not None}
