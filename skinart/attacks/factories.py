"""The ART attack behind each row of `attacks.table.METHODS`: `FACTORIES` binds the name a row gives to skinart's
subclass of the ART class (skinart.attacks.fast: weights frozen inside `generate`, ART's slow paths replaced) or to the
function that builds one (documented below: uap, patch, autoattack), and `build` turns a row into the ART attack. The
table itself is pure data, so checking options against it loads neither torch nor ART; this module loads both."""

from __future__ import annotations

import math

from skinart.attacks.fast.autoattack import StandardAutoAttack
from skinart.attacks.fast.gradient import (
    FrozenAdversarialPatchPyTorch, FrozenCarliniL2Method, FrozenCarliniLInfMethod, FrozenFastGradientMethod, FrozenHopSkipJump,
    FrozenMomentumIterativeMethod, FrozenProjectedGradientDescent,
)
from skinart.attacks.fast.square import FrozenSquareAttack
from skinart.attacks.fast.uap import PassScoredTargetedUniversalPerturbation, PassScoredUniversalPerturbation
from skinart.attacks.table import METHODS, check_method, check_patch_size, check_uap_attacker, flag
from skinart.attacks.universal import SGDUniversalPerturbation
from skinart.defences.preprocessors import eot_samples
from skinart.errors import SkinartError
from skinart.toolbox import AdversarialPatchPyTorch, EstimatorError, UniversalPerturbation


def universal_perturbation(classifier, attacker: str = "fgsm", eps_step: float = 1 / 255, targeted: bool = False, **kwargs):
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
    (a step grown up to 2/255: 0.77, in more time): large per-image steps overwrite δ with one image's direction.

    Targeted, δ grows only when the sub-attacker's step sends an image to the target (not merely off its class), which
    one step of 1/255 rarely does on a model whose target is far: on the generated-data test model δ stayed 0 over 10
    passes (--target-class bkl) and the target's share where it was (mel: 16.5 % of 200 test images before and after
    3 passes on 100 fit images). So the targeted sub-attacker is a minimal targeted FGSM: a step of eps_step, then
    2 × eps_step where that does not reach the target (ART's `minimal`); mel 16.5 % → 34.5 % there, bkl on the
    quickstart 12.2 % → 28.7 % (one fixed step: 30.5 %; 500 fit images, 10 passes, 600 test images); a step grown to
    4/255 did no better (34.5 %, 26.0 %)."""
    check_uap_attacker(attacker, targeted)
    if attacker == "fgsm":
        params = {"eps": 2 * eps_step, "eps_step": eps_step, "minimal": True, "targeted": True} if targeted else \
            {"eps": eps_step, "targeted": False}
    else:
        params = {"eps": eps_step, "eps_step": eps_step / 4, "max_iter": 10, "verbose": False}
    if targeted:
        return PassScoredTargetedUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **kwargs)
    # skinart prints each pass's fit fooling rate instead of ART's progress bar (which the targeted UAP lacks)
    return PassScoredUniversalPerturbation(classifier, attacker=attacker, attacker_params=params, **{"verbose": False, **kwargs})


def adversarial_patch(classifier, patch_size: float = 0.2, **kwargs):
    r"""Adversarial Patch, 'Adversarial Patch' [https://arxiv.org/abs/1712.09665] (Brown et al. 2017), by ART's
    `AdversarialPatchPyTorch`: a universal patch covering `patch_size` of the image side, trained over random rotations
    and scales (0.75–1 × patch_size) and places: the EOT of the slides.

    Distance: none (the patch replaces the pixels it covers; unbounded). Arguments: patch_size (0.2), max_iter
    (optimiser steps, 100), learning_rate (0.05), batch_size (32); targeted with --target-class."""
    check_patch_size(patch_size)
    return FrozenAdversarialPatchPyTorch(classifier, patch_shape=tuple(classifier.input_shape), scale_min=0.75 * patch_size,
                                         scale_max=patch_size, **kwargs)


# the factories' keyword arguments are the ART class's (build names them when one is wrong, and sets `targeted` where ART has it)
universal_perturbation.attack_params = UniversalPerturbation.attack_params
adversarial_patch.attack_params = AdversarialPatchPyTorch.attack_params


def auto_attack(classifier, eps: float = 8 / 255, norm="inf", max_iter: int = 100, nb_random_init: int = 1,
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


auto_attack.attack_params = ("eps", "norm", "max_iter", "nb_random_init", "square_max_iter", "batch_size", "verbose")


# a row's `factory` name -> what builds it
FACTORIES = {factory.__name__: factory for factory in (
    FrozenFastGradientMethod, FrozenProjectedGradientDescent, FrozenMomentumIterativeMethod, FrozenCarliniL2Method,
    FrozenCarliniLInfMethod, FrozenSquareAttack, auto_attack, FrozenHopSkipJump, universal_perturbation, SGDUniversalPerturbation,
    adversarial_patch,
)}
_UNBOUND = sorted({m.factory for m in METHODS.values() if m.factory} - set(FACTORIES))
if _UNBOUND:  # a row naming a factory nothing binds fails at import, not when its attack first runs
    raise ImportError(f"attacks.table names factories that attacks.factories does not bind: {', '.join(_UNBOUND)}")


def build(name: str, classifier, options: dict, extra: dict, target: int | None = None):
    """The ART attack for `name`: defaults < the skinart options given < --param extras. Its batch_size counts the
    rows the model sees: on a classifier with EOT (adaptive threat), images per batch = batch_size ÷ EOT samples."""
    method = check_method(name)
    given = {k: v for k, v in options.items() if v is not None}
    unused = [k for k in given if k not in method.options]
    if unused:
        raise SkinartError(f"{flag(unused[0])} does not apply to {name}; it takes "
                           f"{', '.join(map(flag, method.options)) or 'no such options'}")
    factory, kwargs = FACTORIES[method.factory], {**method.defaults, **given, **extra}
    if method.kind == "evasion" and "eps_step" in kwargs and "eps" in given and "eps_step" not in {**given, **extra}:
        kwargs["eps_step"] = given["eps"] / 4  # the step follows ε (2/255 at the default 8/255) so ε sweeps stay comparable
    if "batch_size" in kwargs:  # EOT repeats every image of a batch: the batch the model sees stays the one asked for
        kwargs["batch_size"] = max(1, kwargs["batch_size"] // eot_samples(classifier))
    if target is not None:
        kwargs["targeted"] = True
    elif "targeted" in getattr(factory, "attack_params", ()):
        kwargs["targeted"] = False  # ART's patch defaults to targeted: untargeted must be said
    try:
        return factory(classifier, **kwargs)
    except EstimatorError as e:  # (a TypeError) skinart's fast paths read a PyTorchClassifier's internals
        raise SkinartError(f"{name} needs an ART PyTorchClassifier (skinart's fast path reads its internals), not a "
                           f"{type(classifier).__name__}; wrap the model with skinart.models.networks.wrap") from e
    except TypeError as e:  # an ART keyword this attack does not have
        valid = ", ".join(p for p in getattr(factory, "attack_params", []) if p != "estimator")
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
