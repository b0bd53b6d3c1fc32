"""`skinart defend`: the run a defence is, by its kind in the DEFENCES table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from skinart.commands.common import (
    CheckpointData, DataRoot, Deterministic, Device, Out, Overwrite, given_options, one_line_errors, skipped,
)
from skinart.options import finite_float

if TYPE_CHECKING:
    from skinart.certification.table import NoiseTrainingConfig
    from skinart.defences.table import RetrainConfig
    from skinart.rundir import RunOptions


def _defend(method: str, out: Path, options: RunOptions, *, checkpoint: Path | None, settings: dict, retrain: RetrainConfig,
            retrained: Path | None, poisoned_run: Path | None, detector: str, noise: NoiseTrainingConfig) -> dict | None:
    """The run a defence is, by its kind in the DEFENCES table; each reads its one checkpoint once."""
    from skinart.models.checkpoint import Checkpoint
    from skinart.defences.table import check_defence
    from skinart.runs.detect import detect_run
    from skinart.runs.noise_training import noise_training_run
    from skinart.runs.preprocess import combined_run, preprocess_run
    from skinart.runs.retrain import retrain_run

    runners = {
        "preprocess": lambda: preprocess_run(method, Checkpoint.load(checkpoint), out, options, settings=settings),
        "retrain": lambda: retrain_run(retrain, method, Checkpoint.load(checkpoint), out, options),
        "combined": lambda: combined_run(Checkpoint.load(retrained or checkpoint, "--retrained" if retrained else "--checkpoint"),
                                         out, options, settings=settings, source=checkpoint if retrained else None),
        "detect": lambda: detect_run(Checkpoint.load(poisoned_run, "--poisoned-run"), out, options, detector=detector),
        "noise": lambda: noise_training_run(noise, Checkpoint.load(checkpoint), out, options),
    }
    return runners[check_defence(method).kind]()


@one_line_errors
def defend(
    ctx: typer.Context,
    method: Annotated[str, typer.Option(help="llt (WebP + flip), jpeg, smoothing, squeeze, retrain, madry, combined, detect-poison "
                                        "or randomized-smoothing (training under noise, for `skinart certify`)")],
    out: Out,
    checkpoint: Annotated[Optional[Path], typer.Option(help="checkpoint to defend (written by `skinart train`)")] = None,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    quality: Annotated[int, typer.Option(help="llt/combined/jpeg: compression quality 1–100 (the thesis: WebP at 60)")] = 60,
    window: Annotated[int, typer.Option(help="smoothing: median window")] = 3,
    bits: Annotated[int, typer.Option(help="squeeze: bit depth")] = 4,
    attacks: Annotated[str, typer.Option(help="retrain: fgsm, pgd, mim or a comma-separated mix (the share is split evenly)")] = "fgsm",
    ratio: Annotated[float, typer.Option(parser=finite_float, help="retrain: adversarial share in (0, 1] (static: of the train split; online: of each batch)")] = 0.5,
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
    sigma: Annotated[float, typer.Option(parser=finite_float, help="randomized-smoothing: the Gaussian noise σ on [0, 1] pixels it trains under")] = 0.25,
    variant: Annotated[str, typer.Option(help="randomized-smoothing: gaussian (Cohen et al. 2019), smoothadv (Salman et al. "
                                         "2019, L2) or macer (Zhai et al. 2020), each through ART's class")] = "gaussian",
    balance: Annotated[Optional[str], typer.Option(help="randomized-smoothing: none, weights, sqrt-weights or oversample, as "
                                                   "`skinart train --balance` (default: the checkpoint's own training's)")] = None,
    smoothing_n: Annotated[Optional[int], typer.Option(help="randomized-smoothing: the noisy copies each prediction of the "
                                                       "checkpoint it writes votes over (recorded; default 100; evaluate "
                                                       "and attack take --smoothing-n)")] = None,
    deterministic: Deterministic = False,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Defend a checkpoint: a defended checkpoint run directory with its clean test metrics."""
    from skinart.commands.checks import defend_config

    settings, retrain, noise = defend_config(locals(), given_options(ctx))  # before the run's imports (seconds)
    from skinart.presentation.tables import metrics_markdown
    from skinart.rundir import RunOptions

    options = RunOptions(data=data, data_root=data_root, device=device, overwrite=overwrite, deterministic=deterministic)
    metrics = _defend(method, out, options, checkpoint=checkpoint, settings=settings, retrain=retrain, retrained=retrained,
                      poisoned_run=poisoned_run, detector=detector, noise=noise)
    if metrics is None:
        return skipped(out)
    if metrics["kind"] == "detect-poison":
        return typer.echo(f"{detector}: flagged {metrics['flagged']} of {metrics['train_samples']} training images; "
                          f"precision {metrics['precision']:.3f}, recall {metrics['recall']:.3f} ({metrics['poisoned']} poisoned)")
    typer.echo(metrics_markdown(metrics, f"{method} on {retrained or checkpoint}: clean test"))


