"""Attacks: one table from method name to the ART attack that runs it (by the name of skinart's subclass or
factory, bound in `attacks.factories`), its defaults (ε in [0, 1] pixel units), the options it takes and requires
and what the attacker reads of the model; the threat models an attack runs under. Pure data: the command checks
read it without loading torch or ART."""

from __future__ import annotations

from dataclasses import dataclass, field

from skinart.errors import SkinartError
from skinart.options import choose

# the threat models an attack runs under (DESIGN.md): on the model itself, crafted on another, or through its defences
THREATS = ("white-box", "transfer", "adaptive")


def check_uap_attacker(attacker: str, targeted: bool) -> None:
    if targeted and attacker != "fgsm":
        raise SkinartError("a targeted UAP supports only --attacker fgsm (ART's TargetedUniversalPerturbation)")
    choose(attacker, ("fgsm", "pgd"), "--attacker")


def check_patch_size(patch_size: float) -> None:
    if not 0 < patch_size <= 1:
        raise SkinartError(f"--patch-size {patch_size} must be in (0, 1]: the patch side as a share of the image side")


# What each kind of attack run takes besides the method's own ART options (AttackConfig's fields).
_CRAFTED = ("target_class", "max_samples", "params")
_FITTED = _CRAFTED + ("fit_samples",)  # fitted on train images, then applied to the test split
_POISON = ("target_class", "fraction", "retrain_epochs")


@dataclass(frozen=True)
class Method:
    """One attack: `factory(classifier, **ART keyword arguments)` builds it from `defaults` < options < --param."""

    kind: str  # evasion | universal | patch | poison
    factory: str | None  # the name of skinart's subclass of the ART class (skinart.attacks.fast), or of a function
    # that builds one: attacks.factories.FACTORIES binds it (None: a poison, which runs/poison.py runs)
    defaults: dict = field(default_factory=dict)  # ART keyword arguments, epsilons in [0, 1] pixel units
    options: tuple[str, ...] = ()  # skinart options the method takes (their ART names match)
    bounded: bool = False  # L∞ ≤ eps holds by construction
    help: str = ""
    access: str = "gradients"  # what the attacker reads of the model it attacks: gradients | scores | labels
    takes: tuple[str, ...] = _CRAFTED  # the run options that apply (AttackConfig fields)
    requires: tuple[str, ...] = ()  # run options that must be given
    eot: bool = True  # the adaptive attacker averages its gradients over random flips (ART's EoT preprocessor)
    # what it can optimise (attacks.config.OBJECTIVES): its own loss, or the decision at the operating point, which it
    # attacks through attacks.objective.DecisionNet (an attack that reads a two-class model's loss, margins or decisions)
    objectives: tuple[str, ...] = ("accuracy",)
    # it reaches a smoothed classifier (a checkpoint trained under noise) through ART's `loss_gradient` and `predict`,
    # which average over the noise; the others read the base network's logits directly (fast paths) or fit on them
    smoothed: bool = False


_ITERATIVE = ("eps", "eps_step", "max_iter")
_DECISION = ("accuracy", "miss", "alarm")
# Each row: paper, distance, the arguments skinart sets or takes (its defaults; ε in [0, 1] pixel units, every other
# ART argument at ART's default). Rows whose factory is a function are documented
# there, in attacks.factories (uap, patch, autoattack).
METHODS: dict[str, Method] = {
    # Fast Gradient Sign Method, 'Explaining and Harnessing Adversarial Examples' [https://arxiv.org/abs/1412.6572]
    # (Goodfellow et al., ICLR 2015). Distance: L∞. Arguments: eps (2/255); num_random_init (0: one step from the clean
    # image; N ≥ 1: from a random point of the ε ball, and with N ≥ 2 ART keeps the start with the best success rate
    # over the batch, the clean images where no start fools any); batch_size (128).
    "fgsm": Method(kind="evasion", factory="FrozenFastGradientMethod", defaults={"eps": 2 / 255, "batch_size": 128},
                   options=("eps", "num_random_init"), bounded=True, objectives=_DECISION, smoothed=True,
                   help="Fast Gradient Sign Method (Goodfellow et al. 2015)"),
    # Projected Gradient Descent, 'Towards Deep Learning Models Resistant to Adversarial Attacks'
    # [https://arxiv.org/abs/1706.06083] (Madry et al., ICLR 2018). Distance: L∞. Arguments: eps (8/255), eps_step
    # (2/255; ε/4 when only ε is given), max_iter (20), num_random_init (1 random start; N ≥ 2: each later start
    # replaces the images it fools), batch_size (128).
    "pgd": Method(kind="evasion", factory="FrozenProjectedGradientDescent",
                  defaults={"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "num_random_init": 1, "batch_size": 128},
                  options=_ITERATIVE + ("num_random_init",), bounded=True, objectives=_DECISION, smoothed=True,
                  help="Projected Gradient Descent (Madry et al. 2018)"),
    # Momentum Iterative Method, 'Boosting Adversarial Attacks with Momentum' [https://arxiv.org/abs/1710.06081]
    # (Dong et al., CVPR 2018). Distance: L∞. Arguments: eps (8/255), eps_step (2/255; ε/4 when only ε is given),
    # max_iter (20), decay (ART's 1.0, --param decay=…), batch_size (128); no random start.
    "mim": Method(kind="evasion", factory="FrozenMomentumIterativeMethod",
                  defaults={"eps": 8 / 255, "eps_step": 2 / 255, "max_iter": 20, "batch_size": 128},
                  options=_ITERATIVE, bounded=True, objectives=_DECISION, smoothed=True,
                  help="Momentum Iterative Method (Dong et al. 2018)"),
    # Carlini & Wagner L2, 'Towards Evaluating the Robustness of Neural Networks' [https://arxiv.org/abs/1608.04644]
    # (Carlini & Wagner, IEEE S&P 2017). Distance: L2, minimal (unbounded). Arguments: max_iter (Adam steps per
    # constant, 10), binary_search_steps (5), initial_const (1.0: ART's 0.01 leaves most images unperturbed within a few
    # search steps on [0, 1] inputs), learning_rate (0.1), confidence (ART's 0), batch_size (128).
    "cw": Method(kind="evasion", factory="FrozenCarliniL2Method",
                 defaults={"max_iter": 10, "binary_search_steps": 5, "initial_const": 1.0, "learning_rate": 0.1, "batch_size": 128},
                 options=("max_iter",), bounded=False, help="Carlini & Wagner L2, minimal perturbation (unbounded)"),
    # Carlini & Wagner L∞, the same paper. Distance: L∞, minimal (unbounded). Arguments: max_iter (10), batch_size
    # (128); ART's learning_rate 0.01, initial_const 1e-5 to largest_const 20 (×2 each time), decrease_factor 0.9.
    "cw-linf": Method(kind="evasion", factory="FrozenCarliniLInfMethod", defaults={"max_iter": 10, "batch_size": 128},
                      options=("max_iter",), bounded=False, help="Carlini & Wagner L∞, minimal perturbation (unbounded)"),
    # Square Attack, 'Square Attack: a query-efficient black-box adversarial attack via random search'
    # [https://arxiv.org/abs/1912.00049] (Andriushchenko et al., ECCV 2020). Distance: L∞. Reads scores only.
    # Arguments: eps (8/255), max_iter (queries, 300), p_init (share of pixels changed at first, 0.1), nb_restarts
    # (ART's 1), batch_size (128).
    "square": Method(kind="evasion", factory="FrozenSquareAttack", defaults={"eps": 8 / 255, "max_iter": 300, "p_init": 0.1, "batch_size": 128},
                     options=("eps", "max_iter"), bounded=True, objectives=_DECISION, access="scores", takes=("max_samples", "params"),
                     help="Square Attack, score-based black-box (Andriushchenko et al. 2020)"),
    # parameter-free like the original: a worst case's --max-iter (meant for PGD) must not shorten its APGD unseen
    "autoattack": Method(kind="evasion", factory="auto_attack",
                         defaults={"eps": 8 / 255, "norm": "inf", "max_iter": 100, "square_max_iter": 5000},
                         options=("eps",), bounded=True, objectives=_DECISION, takes=("max_samples", "params"),
                         help="AutoAttack (Croce & Hein 2020), standard version as the original counts it: APGD-CE, APGD-T "
                         "(targeted DLR towards the min(9, classes-1) next classes), Square (5000 queries), each on the images "
                         "still correct; APGD 100 iterations (--param max_iter=N); L∞ or --param norm=2; no FAB-T (not in ART 1.20.1)",
                         # APGD scores each image's own loss and gradient: no EOT rows (its passes predict one row per image)
                         eot=False),
    # HopSkipJump, 'HopSkipJumpAttack: A Query-Efficient Decision-Based Attack' [https://arxiv.org/abs/1904.02144]
    # (Chen et al., IEEE S&P 2020). Distance: L2, minimal (unbounded). Reads labels only. Arguments: max_iter (20),
    # max_eval (queries per gradient estimate, 1000), init_eval (100), batch_size (128); ART's norm 2, init_size 100.
    "hopskipjump": Method(kind="evasion", factory="FrozenHopSkipJump",
                          defaults={"max_iter": 20, "max_eval": 1000, "init_eval": 100, "batch_size": 128},
                          options=("max_iter",), bounded=False, access="labels",
                          help="HopSkipJump, decision-based black-box, minimal L2 (unbounded)"),
    "uap": Method(kind="universal", factory="universal_perturbation",
                  defaults={"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 10, "delta": 0.2, "attacker": "fgsm"},
                  options=_ITERATIVE + ("attacker",), bounded=True, takes=_FITTED,
                  help="Universal Adversarial Perturbation (Moosavi-Dezfooli et al. 2017), fitted on train images"),
    # documented in skinart.attacks.universal.SGDUniversalPerturbation
    "uap-sgd": Method(kind="universal", factory="SGDUniversalPerturbation",
                      defaults={"eps": 8 / 255, "eps_step": 1 / 255, "max_iter": 20, "delta": 0.1, "batch_size": 32, "patience": 5},
                      options=_ITERATIVE, bounded=True, takes=_FITTED,
                      help="stochastic-gradient UAP (Shafahi et al. 2020): one shared δ, sign steps over mini-batches of train images"),
    "patch": Method(kind="patch", factory="adversarial_patch",
                    defaults={"patch_size": 0.2, "max_iter": 100, "learning_rate": 0.05, "batch_size": 32},
                    options=("max_iter", "patch_size"), bounded=False, takes=_FITTED,
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


# what an attacker may read of a model, most first: a model that gives one gives every one after it (scores give labels)
ACCESS = ("gradients", "scores", "labels")


def reads(method: str, access: str) -> bool:
    """Whether `method` runs on a model that gives `access` (it reads that or less)."""
    return ACCESS.index(METHODS[method].access) >= ACCESS.index(access)


def readable(access: str) -> list[str]:
    """The crafting attacks (evasion, universal, patch) an attacker runs on a model that gives `access`."""
    return [name for name, m in METHODS.items() if m.kind != "poison" and reads(name, access)]


def check_access(method: str, access: str, model: str) -> None:
    """`method` crafts on `model`, which gives `access` only: refused in one line when the method reads more."""
    needs = METHODS[method].access
    if not reads(method, access):
        raise SkinartError(f"{method} reads the {needs} of the model it crafts on, and {model} gives {access} only; "
                           f"attack it with {', '.join(readable(access))}, or craft "
                           f"{method} on another model (--threat transfer --source-checkpoint)")


_FLAGS = {"num_random_init": "--random-init", "random_init": "--random-init", "params": "--param"}


def flag(option: str) -> str:
    """The command-line spelling of an option given under its ART or field name."""
    return _FLAGS.get(option, "--" + option.replace("_", "-"))
