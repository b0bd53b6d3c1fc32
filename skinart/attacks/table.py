"""Attacks: one table from method name to the ART attack that runs it, its defaults (ε in [0, 1] pixel units),
the options it takes and what the attacker reads of the model. `build` turns a row into an ART attack: skinart's
subclass of the ART class (skinart.attacks.fast: weights frozen inside `generate`, ART's slow paths replaced)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

from skinart.attacks.fast.autoattack import StandardAutoAttack
from skinart.attacks.fast.gradient import FrozenAdversarialPatchPyTorch, FrozenCarliniL2Method, FrozenCarliniLInfMethod, FrozenFastGradientMethod, FrozenHopSkipJump, FrozenMomentumIterativeMethod, FrozenProjectedGradientDescent
from skinart.attacks.fast.uap import PassScoredTargetedUniversalPerturbation, PassScoredUniversalPerturbation
from skinart.errors import SkinartError
from skinart.options import choose
from skinart.defences.preprocessors import eot_samples
from skinart.attacks.fast.square import FrozenSquareAttack
from skinart.toolbox import AdversarialPatchPyTorch, EstimatorError, UniversalPerturbation
from skinart.attacks.universal import SGDUniversalPerturbation


def check_uap_attacker(attacker: str, targeted: bool) -> None:
    if targeted and attacker != "fgsm":
        raise SkinartError("a targeted UAP supports only --attacker fgsm (ART's TargetedUniversalPerturbation)")
    choose(attacker, ("fgsm", "pgd"), "--attacker")


def check_patch_size(patch_size: float) -> None:
    if not 0 < patch_size <= 1:
        raise SkinartError(f"--patch-size {patch_size} must be in (0, 1]: the patch side as a share of the image side")


def _uap(classifier, attacker: str = "fgsm", eps_step: float = 1 / 255, targeted: bool = False, **kwargs):
    r"""Universal Adversarial Perturbation, 'Universal adversarial perturbations' [https://arxiv.org/abs/1610.08401]
    (Moosavi-Dezfooli et al., CVPR 2017); targeted: 'Simple iterative method for generating targeted universal
    adversarial perturbations' [https://arxiv.org/abs/1911.06502] (Hirano & Takemoto, Algorithms 2020). ART's
    `UniversalPerturbation` / `TargetedUniversalPerturbation` (skinart's pass-scored subclasses).

    Distance: L∞. Arguments: eps (8/255), eps_step (the sub-attacker's step, 1/255), max_iter (passes over the fit
    images, 10), delta (stop at fit fooling rate, targeted: success rate, ≥ 1 − delta; 0.2), attacker ("fgsm"; "pgd":
    10 steps of eps_step/4; targeted: fgsm only).

    ART's UAP with its sub-attacker's step set explicitly (it otherwise keeps eps=0.3 in ART's defaults). ART adds
    the sub-attacker's perturbation to δ only when it flips the image; a single FGSM step of 1/255 is what makes a pass
    count: on the quickstart model a minimal FGSM (its step grown up to ε until the image flips, as DeepFool's in the
    original UAP) fooled 0.55, 0.67, 0.67 of 1000 fit images after passes 1–3, one fixed step 0.79 of 300 after pass 1
    (a step grown up to 2/255: 0.77, in more time): large per-image steps overwrite δ with one image's direction."""
    check_uap_attacker(attacker, targeted)
    params = {"eps": eps_step, "targeted": targeted} if attacker == "fgsm" else \
        {"eps": eps_step, "eps_step": eps_step / 4, "max_iter": 10, "verbose": False}
    if targeted:
        return PassScoredTargetedUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **kwargs)
    # skinart prints each pass's fit fooling rate instead of ART's progress bar (which the targeted UAP lacks)
    return PassScoredUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **{"verbose": False, **kwargs})


def _patch(classifier, patch_size: float = 0.2, **kwargs):
    r"""Adversarial Patch, 'Adversarial Patch' [https://arxiv.org/abs/1712.09665] (Brown et al. 2017), by ART's
    `AdversarialPatchPyTorch`: a universal patch covering `patch_size` of the image side, trained over random rotations
    and scales (0.75–1 × patch_size) and places: the EOT of the slides.

    Distance: none (the patch replaces the pixels it covers; unbounded). Arguments: patch_size (0.2), max_iter
    (optimiser steps, 100), learning_rate (0.05), batch_size (32); targeted with --target-class."""
    check_patch_size(patch_size)
    return FrozenAdversarialPatchPyTorch(classifier, patch_shape=tuple(classifier.input_shape), scale_min=0.75 * patch_size,
                                         scale_max=patch_size, **kwargs)


def _autoattack(classifier, eps: float = 8 / 255, norm="inf", max_iter: int = 100, nb_random_init: int = 1,
                square_max_iter: int = 5000, batch_size: int = 128, verbose: bool | None = None):
    r"""AutoAttack (Croce & Hein, ICML 2020), version "standard" counted as the original counts it: skinart's
    `StandardAutoAttack` (skinart.attacks.fast.autoattack), a subclass of ART's `AutoAttack`, documented there.

    Distance: L∞ (default) or L2 (`--param norm=2`); ε in [0, 1] pixel units.
    Arguments: eps (8/255), norm ("inf"), max_iter (APGD iterations, 100), nb_random_init (APGD starts, 1),
    square_max_iter (Square queries, 5000), batch_size (128), verbose (bars; default: when stderr is a terminal).
    What runs, each on the images still classified correctly, any misclassification within ε counted and kept:
    APGD-CE, APGD-T (targeted DLR towards the min(9, classes − 1) classes of highest logit in turn; 3 classes:
    untargeted APGD-DLR instead; 2 classes: none), Square (p_init 0.8). FAB-T is not in ART 1.20.1 and does not run.
    APGD starts with step 2ε as in the paper; APGD and Square run on skinart's fast paths (skinart.attacks.fast.apgd,
    skinart.attacks.fast.square), with ART's answers."""
    return StandardAutoAttack(classifier, eps=eps, norm=norm, max_iter=max_iter, nb_random_init=nb_random_init,
                              square_max_iter=square_max_iter, batch_size=batch_size, verbose=verbose)


_autoattack.attack_params = ("eps", "norm", "max_iter", "nb_random_init", "square_max_iter", "batch_size", "verbose")


# What each kind of attack run takes besides the method's own ART options (AttackConfig's fields).
_CRAFTED = ("target_class", "max_samples", "params")
_FITTED = _CRAFTED + ("fit_samples",)  # fitted on train images, then applied to the test split
_POISON = ("target_class", "fraction", "retrain_epochs")


@dataclass(frozen=True)
class Method:
    """One attack: `factory(classifier, **ART keyword arguments)` builds it from `defaults` < options < --param."""

    kind: str  # evasion | universal | patch | poison
    factory: Callable | None  # skinart's subclass of the ART class (skinart.attacks.fast), or a function that builds one
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
# Each row: paper, distance, the arguments skinart sets or takes (its defaults; ε in [0, 1] pixel units, every other
# ART argument at ART's default). Rows whose factory is a function are documented there (uap, patch, autoattack).
METHODS: dict[str, Method] = {
    # Fast Gradient Sign Method, 'Explaining and Harnessing Adversarial Examples' [https://arxiv.org/abs/1412.6572]
    # (Goodfellow et al., ICLR 2015). Distance: L∞. Arguments: eps (2/255); num_random_init (0: one step from the clean
    # image; N ≥ 1: from a random point of the ε ball, and with N ≥ 2 ART keeps the start with the best success rate
    # over the batch, the clean images where no start fools any); batch_size (128).
    "fgsm": Method(kind="evasion", factory=FrozenFastGradientMethod, defaults={"eps": 2 / 255, "batch_size": 128},
                   options=("eps", "num_random_init"), bounded=True, help="Fast Gradient Sign Method (Goodfellow et al. 2015)"),
    # Projected Gradient Descent, 'Towards Deep Learning Models Resistant to Adversarial Attacks'
    # [https://arxiv.org/abs/1706.06083] (Madry et al., ICLR 2018). Distance: L∞. Arguments: eps (8/255), eps_step
    # (2/255; ε/4 when only ε is given), max_iter (20), num_random_init (1 random start; N ≥ 2: each later start
    # replaces the images it fools), batch_size (128).
    "pgd": Method(kind="evasion", factory=FrozenProjectedGradientDescent,
                  defaults={"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "num_random_init": 1, "batch_size": 128},
                  options=_ITERATIVE + ("num_random_init",), bounded=True, help="Projected Gradient Descent (Madry et al. 2018)"),
    # Momentum Iterative Method, 'Boosting Adversarial Attacks with Momentum' [https://arxiv.org/abs/1710.06081]
    # (Dong et al., CVPR 2018). Distance: L∞. Arguments: eps (8/255), eps_step (2/255; ε/4 when only ε is given),
    # max_iter (20), decay (ART's 1.0, --param decay=…), batch_size (128); no random start.
    "mim": Method(kind="evasion", factory=FrozenMomentumIterativeMethod,
                  defaults={"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "batch_size": 128},
                  options=_ITERATIVE, bounded=True, help="Momentum Iterative Method (Dong et al. 2018)"),
    # Carlini & Wagner L2, 'Towards Evaluating the Robustness of Neural Networks' [https://arxiv.org/abs/1608.04644]
    # (Carlini & Wagner, IEEE S&P 2017). Distance: L2, minimal (unbounded). Arguments: max_iter (Adam steps per
    # constant, 10), binary_search_steps (5), initial_const (1.0: ART's 0.01 leaves most images unperturbed within a few
    # search steps on [0, 1] inputs), learning_rate (0.1), confidence (ART's 0), batch_size (128).
    "cw": Method(kind="evasion", factory=FrozenCarliniL2Method,
                 defaults={"max_iter": 10, "binary_search_steps": 5, "initial_const": 1.0, "learning_rate": 0.1, "batch_size": 128},
                 options=("max_iter",), bounded=False, help="Carlini & Wagner L2, minimal perturbation (unbounded)"),
    # Carlini & Wagner L∞, the same paper. Distance: L∞, minimal (unbounded). Arguments: max_iter (10), batch_size
    # (128); ART's learning_rate 0.01, initial_const 1e-5 to largest_const 20 (×2 each time), decrease_factor 0.9.
    "cw-linf": Method(kind="evasion", factory=FrozenCarliniLInfMethod, defaults={"max_iter": 10, "batch_size": 128},
                      options=("max_iter",), bounded=False, help="Carlini & Wagner L∞, minimal perturbation (unbounded)"),
    # Square Attack, 'Square Attack: a query-efficient black-box adversarial attack via random search'
    # [https://arxiv.org/abs/1912.00049] (Andriushchenko et al., ECCV 2020). Distance: L∞. Reads scores only.
    # Arguments: eps (8/255), max_iter (queries, 300), p_init (share of pixels changed at first, 0.1), nb_restarts
    # (ART's 1), batch_size (128).
    "square": Method(kind="evasion", factory=FrozenSquareAttack, defaults={"eps": 8 / 255, "max_iter": 300, "p_init": 0.1, "batch_size": 128},
                     options=("eps", "max_iter"), bounded=True, access="scores", takes=("max_samples", "params"),
                     help="Square Attack, score-based black-box (Andriushchenko et al. 2020)"),
    # parameter-free like the original: a worst case's --max-iter (meant for PGD) must not shorten its APGD unseen
    "autoattack": Method(kind="evasion", factory=_autoattack,
                         defaults={"eps": 8 / 255, "norm": "inf", "max_iter": 100, "square_max_iter": 5000},
                         options=("eps",), bounded=True, takes=("max_samples", "params"),
                         help="AutoAttack (Croce & Hein 2020), standard version as the original counts it: APGD-CE, APGD-T "
                         "(targeted DLR towards the min(9, classes-1) next classes), Square (5000 queries), each on the images "
                         "still correct; APGD 100 iterations (--param max_iter=N); L∞ or --param norm=2; no FAB-T (not in ART 1.20.1)",
                         # APGD scores each image's own loss and gradient: no EOT rows (its passes predict one row per image)
                         eot=False),
    # HopSkipJump, 'HopSkipJumpAttack: A Query-Efficient Decision-Based Attack' [https://arxiv.org/abs/1904.02144]
    # (Chen et al., IEEE S&P 2020). Distance: L2, minimal (unbounded). Reads labels only. Arguments: max_iter (20),
    # max_eval (queries per gradient estimate, 1000), init_eval (100), batch_size (128); ART's norm 2, init_size 100.
    "hopskipjump": Method(kind="evasion", factory=FrozenHopSkipJump,
                          defaults={"max_iter": 20, "max_eval": 1000, "init_eval": 100, "batch_size": 128},
                          options=("max_iter",), bounded=False, access="labels",
                          help="HopSkipJump, decision-based black-box, minimal L2 (unbounded)"),
    "uap": Method(kind="universal", factory=_uap,
                  defaults={"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 10, "delta": 0.2, "attacker": "fgsm"},
                  options=_ITERATIVE + ("attacker",), bounded=True, takes=_FITTED, art_class=UniversalPerturbation,
                  help="Universal Adversarial Perturbation (Moosavi-Dezfooli et al. 2017), fitted on train images"),
    # documented in skinart.attacks.universal.SGDUniversalPerturbation
    "uap-sgd": Method(kind="universal", factory=SGDUniversalPerturbation,
                      defaults={"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 20, "delta": 0.1, "batch_size": 32, "patience": 5},
                      options=_ITERATIVE, bounded=True, takes=_FITTED,
                      help="stochastic-gradient UAP (Shafahi et al. 2020): one shared δ, sign steps over mini-batches of train images"),
    "patch": Method(kind="patch", factory=_patch,
                    defaults={"patch_size": 0.2, "max_iter": 100, "learning_rate": 0.05, "batch_size": 32},
                    options=("max_iter", "patch_size"), bounded=False, takes=_FITTED, art_class=AdversarialPatchPyTorch,
                    help="universal adversarial patch (Brown et al. 2017), EOT over rotation/scale/place"),
    # Poisoning by label flipping: relabel a `fraction` of the source class as the target, retrain (skinart.attacks.poisons).
    "poison-flip": Method(kind="poison", factory=None, takes=_POISON + ("source_class",),
                          requires=("source_class", "target_class", "fraction"),
                          help="label flip source→target on a share of the training set, then retrain"),
    # Backdoor, 'BadNets' [https://arxiv.org/abs/1708.06733] (Gu et al. 2017): ART's add_pattern_bd trigger on a
    # `fraction` of the training set, relabelled as the target, then retrain (skinart.attacks.poisons).
    "poison-backdoor": Method(kind="poison", factory=None, takes=_POISON, requires=("target_class", "fraction"),
                              help="backdoor trigger (ART add_pattern_bd) labelled as the target on a share "
                              "of the training set, then retrain"),
}


def check_method(name: str) -> Method:
    return METHODS[choose(name, METHODS, "attack method")]


_FLAGS = {"num_random_init": "--random-init", "random_init": "--random-init", "params": "--param"}


def flag(option: str) -> str:
    """The command-line spelling of an option given under its ART or field name."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))


def build(name: str, classifier, options: dict, extra: dict, target: int | None = None):
    """The ART attack for `name`: defaults < the skinart options given < --param extras. Its batch_size counts the
    rows the model sees: on a classifier with EOT (adaptive threat), images per batch = batch_size ÷ EOT samples."""
    method = check_method(name)
    given = {k: v for k, v in options.items() if v is not None}
    unused = [k for k in given if k not in method.options]
    if unused:
        raise SkinartError(f"{flag(unused[0])} does not apply to {name}; it takes "
                           f"{', '.join(map(flag, method.options)) or 'no such options'}")
    kwargs = {**method.defaults, **given, **extra}
    if method.kind == "evasion" and "eps_step" in kwargs and "eps" in given and "eps_step" not in {**given, **extra}:
        kwargs["eps_step"] = given["eps"] / 4  # the step follows ε (2/255 at the default 8/255) so ε sweeps stay comparable
    if "batch_size" in kwargs:  # EOT repeats every image of a batch: the batch the model sees stays the one asked for
        kwargs["batch_size"] = max(1, kwargs["batch_size"] // eot_samples(classifier))
    if target is not None:
        kwargs["targeted"] = True
    elif "targeted" in getattr(method.art_class or method.factory, "attack_params", ()):
        kwargs["targeted"] = False  # ART's patch defaults to targeted: untargeted must be said
    try:
        return method.factory(classifier, **kwargs)
    except EstimatorError as e:  # (a TypeError) skinart's fast paths read a PyTorchClassifier's internals
        raise SkinartError(f"{name} needs an ART PyTorchClassifier (skinart's fast path reads its internals), not a "
                           f"{type(classifier).__name__}; wrap the model with skinart.models.networks.wrap") from e
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
    if hasattr(value, "attack_params"):  # a sub-attack: the ART class it is (a skinart subclass may run it) and its parameters
        return {"attack": next(c.__name__ for c in type(value).__mro__ if c.__module__.startswith("art.")), **art_parameters(value)}
    return None


def art_parameters(attack) -> dict:
    """The parameters ART will run with, read back from the built attack, so what a run records is what ran
    (defaults, options and --param overrides as ART applied them)."""
    values = {name: _recordable(getattr(attack, name, None)) for name in attack.attack_params if name != "estimator"}
    return {name: value for name, value in values.items() if value is not None}
