"""What each step command builds from its options, checked: one function per command, called by the command's body
before anything is read or written and by `check_step`, which recipes call for every task before the first one runs.
A recipe and a command line are therefore refused for the same reasons, and a recipe at once, not when a late step
is reached.

Each function takes the command's options by name (the dict click parses, or the body's own `locals()`) and reads
nothing heavier than a dataset's labels. The checkpoints a recipe step reads do not exist before the recipe runs, so
class names are checked against `data.CLASSES`, the classes every loader maps its labels to; the runs check them
again against the checkpoint's own."""

from __future__ import annotations

from dataclasses import fields

from skinart.attacks.config import AttackConfig
from skinart.attacks.table import METHODS, THREATS, check_method, flag
from skinart.certification.table import SMOOTHED_PREDICTION, CertifyConfig, NoiseTrainingConfig, parse_radii
from skinart.commands.common import data_options
from skinart.data import CHOOSABLE_SPLITS, CLASSES, DATASETS, SPLIT_NAMES, SUBGROUPS, check_data, parse_ratios
from skinart.defences.table import DEFENCES, DETECTORS, RetrainConfig, check_defence, check_setting
from skinart.shifts.config import ShiftConfig
from skinart.errors import SkinartError
from skinart.models.import_options import ImportConfig
from skinart.compute import DEVICES, PRECISIONS
from skinart.options import choose, parse_malignant, parse_params
from skinart.training.config import TrainConfig

# evaluate's options that configure its attack
_EVALUATE_ATTACK = ("threat", "eps", "eps_step", "max_iter", "max_samples", "source_checkpoint", "objective", "param")


def _common(p: dict) -> None:
    """Options several commands share: the dataset, the malignant set, the precision, the device (its name: whether CUDA
    is there is the running machine's business, not the recipe's)."""
    if p.get("precision") is not None:
        choose(p["precision"], PRECISIONS, "--precision")
    if p.get("data") is not None:
        choose(p["data"], DATASETS, "dataset")
    if p.get("malignant") is not None:
        parse_malignant(p["malignant"], CLASSES)
    choose(p["device"], DEVICES, "device")
    if p.get("smoothing_n") is not None and p["smoothing_n"] < 1:
        raise SkinartError(f"--smoothing-n must be at least 1, got {p['smoothing_n']} (the noisy copies a smoothed prediction "
                           "votes over, e.g. --smoothing-n 100)")


def train_config(p: dict, given: set[str] = frozenset()) -> TrainConfig:
    """`skinart train`: the training settings, the model and its first weights, the split and the data (size and memory
    included)."""
    _common(p)
    cfg = TrainConfig(**{f.name: p[f.name] for f in fields(TrainConfig)})
    cfg.check()
    # timm's registry of model names takes seconds to load: imported once every check that needs none has passed
    from skinart.models.networks import check_model

    check_model(cfg.model, cfg.pretrained, cfg.weights)
    parse_ratios(p["split_ratios"])
    check_data(p["data"], p["data_root"], p["img_size"], p["resize"], data_options(p))
    return cfg


def evaluate_config(p: dict, given: set[str] = frozenset()) -> tuple[list[AttackConfig], tuple[str, ...], ShiftConfig | None]:
    """`skinart evaluate`: ([], (), None) for a clean evaluation (of the checkpoint's split, or --external of every image
    of other data); with --attack, the attacks (one, or several for a worst case) and their threat models; with --shift,
    the shifts and severities."""
    p = {**p, "param": p["param"] or None}  # a recipe step gives no --param as an empty list
    _common(p)
    _check_by(p)
    _check_rechoose(p)
    shift = _shift_config(p)
    if shift is not None and not p["attack"]:
        return [], (), shift
    if p["external"] and (p["split"] is not None or p["attack"]):
        drop = "--split" if p["split"] is not None else "--attack"
        raise SkinartError(f"--external scores every image of another dataset, clean and unsplit: drop {drop}")
    if not p["attack"]:
        given = [flag(name) for name in _EVALUATE_ATTACK if p[name] is not None]
        if given:
            raise SkinartError(f"{given[0]} applies only with --attack; add --attack METHOD or drop {given[0]}")
        if p["split"] is not None and p["split"] not in SPLIT_NAMES:
            raise SkinartError(f"split '{p['split']}' does not exist; choose one of {', '.join(SPLIT_NAMES)}")
        return [], (), None
    if p["split"] is not None:
        raise SkinartError("--split applies to the clean evaluation; with --attack the test split is attacked: drop --split")
    threat = choose(p["threat"] or "all", ("all",) + THREATS, "--threat")
    cfgs = _attack_configs(p)
    if shift is not None:
        _check_shifted_attack(cfgs, shift)
    return cfgs, THREATS if threat == "all" else (threat,), shift


def _check_by(p: dict) -> None:
    """--by: a subgroup the data's metadata name (whether the data carry them is known once the run reads them), on a
    clean, shift or attack evaluation."""
    if p["by"] is not None:
        choose(p["by"], SUBGROUPS, "--by")


def _check_rechoose(p: dict) -> None:
    """--rechoose-threshold: a clean evaluation of --external data, the threshold chosen on --on (never test)."""
    if not p["rechoose_threshold"]:
        if p["on"] is not None:
            raise SkinartError("--on applies only with --rechoose-threshold; add --external --rechoose-threshold or drop --on")
        return
    choose(p["on"] or "val", CHOOSABLE_SPLITS, "--on")
    if not p["external"]:
        raise SkinartError("--rechoose-threshold chooses the threshold again on other data: add --external and "
                           "--data/--data-root naming them")
    clashing = [flag(o) for o in ("attack", "shift", "split", "by") if p[o] is not None]
    if clashing:
        raise SkinartError(f"--rechoose-threshold writes a checkpoint with a threshold re-chosen on clean data: drop "
                           f"{clashing[0]}, and evaluate the new checkpoint with it afterwards")


def _shift_config(p: dict) -> ShiftConfig | None:
    """--shift with its severities (which apply only with it), on the test split or --external data."""
    if p["shift"] is None:
        if p["severity"] != "all":  # --seed is every evaluation's (a recipe's seed reaches every step that takes it)
            raise SkinartError("--severity applies only with --shift; add --shift NAME[,NAME...]|all or drop it")
        return None
    if not p["attack"]:
        for option in ("split",) + tuple(o for o in _EVALUATE_ATTACK if o != "max_samples"):
            if p[option] is not None:
                raise SkinartError(f"{flag(option)} does not combine with --shift alone (shifts score the test split, or "
                                   f"every image with --external); drop {flag(option)}, or add --attack METHOD")
    return ShiftConfig.parse(p["shift"], p["severity"], seed=p["seed"], max_samples=p["max_samples"], by=p["by"])


# the methods whose images are crafted per test image, so they can be the shifted test images (universal and patch
# methods fit on training images, which no shift touches; poisons retrain)
_SHIFTABLE = tuple(name for name, row in METHODS.items() if row.kind == "evasion")


def _check_shifted_attack(cfgs: list[AttackConfig], shift: ShiftConfig) -> None:
    """--attack with --shift: evasion methods, each crafting on the test images under one shift at one severity."""
    if len(shift.shifts) > 1 or len(shift.severities) > 1:
        raise SkinartError("--attack with --shift attacks the test images under one shift at one severity: give one of each, "
                           "e.g. --shift jpeg_compression --severity 3 (another evaluate for each other pair)")
    for cfg in cfgs:
        if cfg.row.kind != "evasion":
            raise SkinartError(f"--attack {cfg.method} with --shift: a {cfg.row.kind} attack is fitted on unshifted training "
                               f"images, not crafted on the shifted test images; with --shift choose {', '.join(_SHIFTABLE)}")


def _attack_configs(p: dict) -> list[AttackConfig]:
    """One AttackConfig per method of --attack (comma-separated). Several make a worst case at one budget: each must be
    bounded, and an option goes to the methods that take it (one that none takes is refused)."""
    names = [name.strip() for name in p["attack"].split(",")]
    if "" in names or len(set(names)) != len(names):
        raise SkinartError(f"--attack {p['attack']!r}: give distinct methods separated by commas, e.g. fgsm,pgd,autoattack")
    methods = {name: check_method(name) for name in names}
    for name, method in methods.items():
        if method.kind == "poison":
            raise SkinartError(f"--attack {name} retrains the model; evaluate --attack takes evasion, universal and patch "
                               "methods (poison with `skinart attack`)")
        if len(names) > 1 and not method.bounded:
            raise SkinartError(f"--attack {name} is unbounded; a worst case over several attacks compares them at one ε: "
                               "choose bounded methods (fgsm, pgd, mim, square, autoattack, uap)")
    options = ("eps", "eps_step", "max_iter")
    for option in options:
        if len(names) > 1 and p[option] is not None and not any(option in m.options for m in methods.values()):
            raise SkinartError(f"{flag(option)} applies to none of {p['attack']}; drop it")
    params = _params_per_method(p["param"] or [], names)
    cfgs = [AttackConfig(method=name, max_samples=p["max_samples"], seed=p["seed"], objective=p["objective"], params=params[name],
                         **{o: p[o] for o in options if len(names) == 1 or o in methods[name].options}) for name in names]
    budgets = {cfg.method: cfg.budget for cfg in cfgs}  # each method's default where --eps is not given
    if len(set(budgets.values())) > 1:
        raise SkinartError(f"--attack {p['attack']}: a worst case compares the attacks at one budget, and their default ε "
                           f"differ ({', '.join(f'{m} {b * 255:.3g}/255' for m, b in budgets.items())}); give --eps, e.g. --eps 8/255")
    for cfg in cfgs:
        cfg.check(CLASSES)
    return cfgs


def _params_per_method(pairs: list[str], names: list[str]) -> dict[str, dict]:
    """evaluate's --param pairs per attack: METHOD.KEY=VALUE for the method named, KEY=VALUE for the one attack."""
    params = {name: {} for name in names}
    for key, value in parse_params(pairs).items():
        method, dot, art_key = key.rpartition(".")
        if not dot and len(names) > 1:
            raise SkinartError(f"--param {key}: with several attacks name the one it is for, e.g. --param {names[-1]}.{key}=VALUE")
        method, art_key = (method, art_key) if dot else (names[0], key)
        if method not in params:
            raise SkinartError(f"--param {key}: {method} is not an attack of --attack {','.join(names)}; name one of them")
        params[method][art_key] = value
    return params


def attack_config(p: dict, given: set[str] = frozenset()) -> AttackConfig:
    """`skinart attack`: the attack with its --param extras, checked against its method's row, and the options
    that do not fit the run it makes (rescoring saved images, poisoning, or crafting under a threat model)."""
    _common(p)
    poison = check_method(p["method"]).kind == "poison"
    if p["adversarial_run"] is not None and poison:
        raise SkinartError(f"--adversarial-run scores saved evasion images, and {p['method']} retrains the model: drop --adversarial-run")
    crafting = p["source_checkpoint"] or p["threat"]
    if p["adversarial_run"] is not None and crafting:
        raise SkinartError("--adversarial-run fixes the model the images were crafted on; drop --source-checkpoint/--threat")
    if poison and crafting:
        raise SkinartError(f"{p['method']} retrains the model on poisoned data; --source-checkpoint/--threat do not apply")
    if p["threat"] is not None:
        choose(p["threat"], THREATS, "--threat")
    cfg = AttackConfig(**{f.name: p[f.name] for f in fields(AttackConfig) if f.name != "params"},
                       params=parse_params(p["param"] or []))
    cfg.check(CLASSES)
    return cfg


def _preprocessor(p: dict, settings: dict, retrain: RetrainConfig) -> None:
    setting = DEFENCES[p["method"]].setting  # within the range its ART preprocessor accepts (defences.table.SETTINGS)
    check_setting(setting, settings[setting])


# what each kind of defence checks of the options it uses, once its name and input are checked
_DEFENCE_CHECKS = {
    "preprocess": _preprocessor,
    "combined": lambda p, settings, retrain: check_setting("quality", settings["quality"]),
    "retrain": lambda p, settings, retrain: retrain.check(p["method"]),
    "detect": lambda p, settings, retrain: choose(p["detector"], DETECTORS, "--detector"),
    "noise": lambda p, settings, retrain: None,  # NoiseTrainingConfig.check, for every defence (its defaults pass)
}


def defend_config(p: dict, given: set[str] = frozenset()) -> tuple[dict, RetrainConfig, NoiseTrainingConfig]:
    """`skinart defend`: (the preprocessor settings, the retraining options, the training under noise), checked for the
    defence's kind; an option `given` (not left at its default) that the defence does not take is refused."""
    _common(p)
    defence = check_defence(p["method"], given)
    given = {"checkpoint": p["checkpoint"], "retrained": p["retrained"] or p["checkpoint"], "poisoned_run": p["poisoned_run"]}
    if given[defence.needs] is None:
        raise SkinartError(f"{p['method']} needs --{defence.needs.replace('_', '-')} ({defence.help})")
    settings = {"quality": p["quality"], "window": p["window"], "bits": p["bits"]}
    options = {"eps": p["eps"], "eps_step": p["eps_step"], "max_iter": p["max_iter"]}  # RetrainConfig.check parses them
    retrain = RetrainConfig(attacks=tuple(a.strip() for a in p["attacks"].split(",") if a.strip()), ratio=p["ratio"],
                            mode=p["mode"], rounds=p["rounds"], epochs=p["retrain_epochs"], init=p["init"], options=options)
    _DEFENCE_CHECKS[defence.kind](p, settings, retrain)
    noise = NoiseTrainingConfig(variant=p["variant"], sigma=p["sigma"], epochs=p["retrain_epochs"], balance=p["balance"],
                                n=p["smoothing_n"] or SMOOTHED_PREDICTION["n"])
    noise.check()
    return settings, retrain, noise


def import_config(p: dict, given: set[str] = frozenset()) -> ImportConfig:
    """`skinart import`: the file (there, not read yet: the run reads it), the outputs by name, the input and the
    operating point, and the data."""
    _common(p)
    cfg = ImportConfig(**{f.name: p[f.name] for f in fields(ImportConfig)})
    cfg.check(p["malignant"])
    check_data(p["data"], p["data_root"], p["img_size"], p["resize"], data_options(p))
    return cfg


def report_config(p: dict, given: set[str] = frozenset()) -> list[str] | None:
    """`skinart report`: the second malignant set, if any."""
    if p["also_malignant"] is None and p["also_label"] != "alternative mapping":
        raise SkinartError("--also-label names the second mapping of --also-malignant; give --also-malignant too or drop it")
    return p["also_malignant"] and parse_malignant(p["also_malignant"], CLASSES, "--also-malignant")


def certify_config(p: dict, given: set[str] = frozenset()) -> CertifyConfig:
    """`skinart certify`: σ, Cohen's n, n0 and α (an n too small to certify anything at α refused), the sample, the
    attack's radii, steps and EOT samples."""
    _common(p)
    cfg = CertifyConfig(**{f.name: p[f.name] for f in fields(CertifyConfig) if f.name != "radii"}, radii=parse_radii(p["radii"]))
    cfg.check()
    return cfg


STEP_CONFIGS = {"import": import_config, "train": train_config, "evaluate": evaluate_config, "attack": attack_config, "defend": defend_config,
                "report": report_config, "certify": certify_config}


def check_step(command: str, params: dict, given: set[str] = frozenset()) -> None:
    """Build a step's whole configuration from its parsed options, as the command will, without running it."""
    STEP_CONFIGS[command](params, given)
