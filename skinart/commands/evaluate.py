"""`skinart evaluate` and `skinart attack`: a checkpoint scored clean, under an attack's threat models, or attacked."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from skinart.commands.common import (
    CheckpointData, CheckpointDir, DataRoot, Deterministic, Device, GroupColumn, ImageColumn, LabelColumn, LabelMap, Labels,
    Malignant, Out, Overwrite, Precision, SmoothingN, data_options, one_line_errors, skipped,
)
from skinart.options import finite_float

if TYPE_CHECKING:
    from skinart.attacks.config import AttackConfig
    from skinart.models.checkpoint import Checkpoint
    from skinart.rundir import RunOptions


ObjectiveOption = Annotated[Optional[str], typer.Option(
    help="what the attack optimises: accuracy (default; every image), miss (malignant images only, p_malignant pushed below "
         "the stored threshold t: missed cancers) or alarm (benign images only, pushed above t); miss and alarm need a "
         "checkpoint with an operating point and a method that takes them (fgsm, pgd, mim, square, autoattack)")]


@one_line_errors
def evaluate(
    checkpoint: CheckpointDir,
    out: Out,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    labels: Labels = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
    label_map: LabelMap = None,
    group_column: GroupColumn = None,
    split: Annotated[Optional[str], typer.Option(help="without --attack: train, val or test (default test)")] = None,
    external: Annotated[bool, typer.Option(help="score every image of other data than the checkpoint's (--data/--data-root) "
                                           "as an external test set")] = False,
    malignant: Malignant = None,
    attack: Annotated[Optional[str], typer.Option(help="evaluate under this attack (see `skinart attack --method`) "
                                                  "on the test split, under the threat models side by side; several, "
                                                  "comma-separated (e.g. fgsm,pgd,autoattack): each and the per-image worst case")] = None,
    threat: Annotated[Optional[str], typer.Option(help="with --attack: white-box, transfer, adaptive or all (default all)")] = None,
    objective: ObjectiveOption = None,
    eps: Annotated[Optional[str], typer.Option(help="with --attack: budget, e.g. 8/255")] = None,
    eps_step: Annotated[Optional[str], typer.Option(help="with --attack: step (pgd, mim, uap)")] = None,
    max_iter: Annotated[Optional[int], typer.Option(help="with --attack: iterations")] = None,
    max_samples: Annotated[Optional[int], typer.Option(help="with --attack or --shift: a seeded sample of this many test images")] = None,
    param: Annotated[Optional[list[str]], typer.Option(metavar="[METHOD.]KEY=VALUE", help="with --attack: a further ART "
                                                   "parameter of its method, e.g. autoattack.max_iter=50 (repeatable; "
                                                   "METHOD may be left out with one attack)")] = None,
    source_checkpoint: Annotated[Optional[Path], typer.Option(help="with --threat transfer/all: the model the attacker crafts on "
                                                              "(default: the defended checkpoint's source)")] = None,
    shift: Annotated[Optional[str], typer.Option(help="natural shifts (corruptions, dermoscopy artefacts), comma-separated, "
                                                 "or all: every metric at the stored threshold under each (`skinart shifts` lists them); "
                                                 "with --attack (evasion methods): one shift, whose images are attacked")] = None,
    severity: Annotated[str, typer.Option(help="with --shift: severities 1-5, e.g. 1,3,5 or 2-4 or all; with --attack one, e.g. 3")] = "all",
    seed: Annotated[int, typer.Option(min=0, help="seed of --max-samples' sample, of --attack's random starts and of --shift's corruptions "
                                         "(a clean evaluation draws nothing)")] = 0,
    rechoose_threshold: Annotated[bool, typer.Option(help="with --external: choose the threshold for the checkpoint's target "
                                                     "sensitivity again on a split of these data (--on), judge it on their "
                                                     "test split, and write OUT as a checkpoint holding it")] = False,
    on: Annotated[Optional[str], typer.Option(help="with --rechoose-threshold: the split of the external data the "
                                              "threshold is chosen on, val or train (default val)")] = None,
    by: Annotated[Optional[str], typer.Option(help="clean, --shift or --attack: every metric per subgroup of the images (attacked: of the "
                                              "attacked and the unattacked images), with bootstrap CIs and the largest gap: sex, age "
                                              "or site (data with metadata: HAM10000)")] = None,
    precision: Precision = "fp32",
    smoothing_n: SmoothingN = None,
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Evaluate a checkpoint. Without --attack: its clean metrics on one split (metrics.json, metrics.md, confusion
    matrices), or with --external on every image of another dataset. With --attack: that attack on the test split
    under each threat model side by side, flagging likely gradient masking. With --shift: every metric at the stored
    threshold under natural shifts, severity by severity, and the threshold that would restore the target sensitivity."""
    from skinart.commands.checks import evaluate_config

    cfgs, threats, shifts = evaluate_config(locals())  # before the run's imports (seconds)
    from skinart.attacks.config import objective_words
    from skinart.models.checkpoint import Checkpoint
    from skinart.presentation.tables import threats_markdown, worst_case_markdown
    from skinart.rundir import RunOptions
    from skinart.runs.evaluate import evaluate_run
    from skinart.runs.scoring import evaluation_markdown
    from skinart.runs.rechoose import rechoose_run, stored_then_rechosen
    from skinart.runs.shift import shift_markdown, shift_run
    from skinart.runs.threats import threats_run
    from skinart.shifts.config import ImageShift, under
    from skinart.runs.worst_case import worst_case_run

    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic, data_options=data_options(locals()),
                         smoothing_n=smoothing_n)
    loaded = Checkpoint.load(checkpoint)
    if rechoose_threshold:
        metrics = rechoose_run(loaded, out, options, on=on or "val")
        return skipped(out) if metrics is None else typer.echo(stored_then_rechosen(metrics))
    if shifts is not None and not cfgs:
        metrics = shift_run(shifts, loaded, out, options, external=external)
        return skipped(out) if metrics is None else typer.echo(shift_markdown(metrics, f"{checkpoint} under natural shift"))
    if not cfgs:
        metrics = evaluate_run(loaded, out, options, split=split or "test", external=external, by=by)
        scored = "external data" if external else split or "test"
        return skipped(out) if metrics is None else typer.echo(evaluation_markdown(metrics, f"{checkpoint} on {scored}"))
    shifted = None if shifts is None else ImageShift(shifts.shifts[0], shifts.severities[0])  # one of each (checked)
    on = f"{checkpoint}{under(shifted)}"
    if len(cfgs) > 1:
        metrics = worst_case_run(cfgs, loaded, out, options, threats=threats, source_checkpoint=source_checkpoint,
                                 shift=shifted, by=by)
        return skipped(out) if metrics is None else typer.echo(worst_case_markdown(metrics, f"{attack} on {on}: worst case{objective_words(cfgs[0].objective)}"))
    metrics = threats_run(cfgs[0], loaded, out, options, threats=threats, source_checkpoint=source_checkpoint, shift=shifted, by=by)
    return skipped(out) if metrics is None else typer.echo(threats_markdown(metrics, f"{attack} on {on}{objective_words(cfgs[0].objective)}"))


def _attack(cfg: AttackConfig, checkpoint: Checkpoint, out: Path, options: RunOptions, *, source_checkpoint: Path | None,
            threat: str | None, adversarial_run: Path | None) -> dict | None:
    """The run an attack command is: a rescoring of saved images, a poisoning, or crafting under a threat model."""
    from skinart.runs.attack import attack_run
    from skinart.runs.poison import poison_run
    from skinart.runs.rescore import rescore_run

    if adversarial_run is not None:
        return rescore_run(cfg, checkpoint, adversarial_run, out, options)
    if cfg.row.kind == "poison":
        return poison_run(cfg, checkpoint, out, options)
    return attack_run(cfg, checkpoint, out, options, source_checkpoint=source_checkpoint, threat=threat)


@one_line_errors
def attack(
    method: Annotated[str, typer.Option(help="fgsm, pgd, mim, cw, cw-linf, square, autoattack, hopskipjump, uap, uap-sgd, patch, poison-flip or poison-backdoor")],
    checkpoint: CheckpointDir,
    out: Out,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    eps: Annotated[Optional[str], typer.Option(help="L∞ budget in [0, 1] pixel units: 2/255 or 0.2 (default per method)")] = None,
    eps_step: Annotated[Optional[str], typer.Option(help="step size per iteration (pgd, mim; uap: the sub-attacker's step; uap-sgd: δ's step)")] = None,
    max_iter: Annotated[Optional[int], typer.Option(help="iterations (uap, uap-sgd: most passes over the fit sample, ending once its fooling rate reaches 1 − delta; patch: epochs)")] = None,
    random_init: Annotated[Optional[int], typer.Option(help="random starts (fgsm, pgd)")] = None,
    attacker: Annotated[Optional[str], typer.Option(help="uap sub-attacker: fgsm or pgd")] = None,
    target_class: Annotated[Optional[str], typer.Option(help="targeted attack towards this class (uap, patch, fgsm, pgd, poison-*)")] = None,
    source_class: Annotated[Optional[str], typer.Option(help="poison-flip: the class whose labels are flipped")] = None,
    fraction: Annotated[Optional[float], typer.Option(parser=finite_float, help="poison-*: share of the candidate training images to poison, in (0, 1)")] = None,
    patch_size: Annotated[Optional[float], typer.Option(parser=finite_float, help="patch side as a share of the image side, in (0, 1]")] = None,
    fit_samples: Annotated[int, typer.Option(help="uap/patch: training images the perturbation is fitted on")] = 1000,
    max_samples: Annotated[Optional[int], typer.Option(help="attack a seeded sample of this many test images (default: all)")] = None,
    objective: ObjectiveOption = None,
    retrain_epochs: Annotated[Optional[int], typer.Option(help="poison-*: retraining epochs (default: the checkpoint's)")] = None,
    param: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="further ART parameter, e.g. decay=0.9 (repeatable)")] = None,
    source_checkpoint: Annotated[Optional[Path], typer.Option(help="craft on this model instead (transfer / black-box)")] = None,
    threat: Annotated[Optional[str], typer.Option(help="white-box (oblivious of preprocessing defences), transfer or adaptive (through them: BPDA + EOT)")] = None,
    adversarial_run: Annotated[Optional[Path], typer.Option(help="score the adversarial images an earlier attack run saved instead of crafting (transfer from its model, one fixed adversarial test set)")] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of the test sample, random starts and fit sample")] = 0,
    malignant: Malignant = None,
    precision: Precision = "fp32",
    smoothing_n: SmoothingN = None,
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Attack a checkpoint on its test split: metrics.json (clean vs attacked, fooling/error/success rates,
    measured L∞/L2), adversarial.npz and figures."""
    from skinart.commands.checks import attack_config

    cfg = attack_config(locals())  # before the run's imports (seconds)
    from skinart.attacks.config import objective_words
    from skinart.models.checkpoint import Checkpoint
    from skinart.presentation.tables import attack_markdown
    from skinart.rundir import RunOptions

    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic, smoothing_n=smoothing_n)
    metrics = _attack(cfg, Checkpoint.load(checkpoint), out, options, source_checkpoint=source_checkpoint, threat=threat,
                      adversarial_run=adversarial_run)
    if metrics is None:
        return skipped(out)
    if metrics["kind"] == "attack":
        typer.echo(attack_markdown(metrics, f"{method} on {checkpoint}{objective_words(cfg.objective)}"))
    else:
        typer.echo(f"{method}: poisoned model written to {out} (metrics.json)")


