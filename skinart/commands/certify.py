"""`skinart certify`: a checkpoint's test images certified by randomized smoothing, beside the attack on the smoothed
classifier at the same L2 radii."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from skinart.commands.common import (
    CheckpointData, CheckpointDir, DataRoot, Device, Malignant, Out, Overwrite, Precision, one_line_errors, skipped,
)
from skinart.options import finite_float


@one_line_errors
def certify(
    checkpoint: CheckpointDir,
    out: Out,
    sigma: Annotated[Optional[float], typer.Option(parser=finite_float, help="noise σ on [0, 1] pixels (default: the σ the checkpoint was trained "
                                                   "with by `defend --method randomized-smoothing`)")] = None,
    n: Annotated[int, typer.Option(help="noisy copies per image that estimate the certified class's probability "
                                   "(Cohen et al.: 100,000 on ImageNet)")] = 1000,
    n0: Annotated[int, typer.Option(help="noisy copies per image that select the class to certify")] = 100,
    alpha: Annotated[float, typer.Option(parser=finite_float, help="the chance each certificate is wrong")] = 0.001,
    max_samples: Annotated[Optional[int], typer.Option(help="a seeded sample of this many test images")] = None,
    radii: Annotated[Optional[str], typer.Option(help="L2 radii to attack the smoothed classifier at, comma-separated "
                                                 "(default: σ/2, σ, 3σ/2, 2σ; none: no attack)")] = None,
    attack_steps: Annotated[int, typer.Option(help="PGD steps of that attack")] = 10,
    eot: Annotated[int, typer.Option(help="noise samples each of its gradients averages (EOT)")] = 16,
    batch_size: Annotated[int, typer.Option(help="noisy rows per forward pass")] = 1024,
    seed: Annotated[int, typer.Option(min=0, help="seed of the sample and of the noise")] = 0,
    data: CheckpointData = None,
    data_root: DataRoot = None,
    malignant: Malignant = None,
    precision: Precision = "fp32",
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Certify the test images by randomized smoothing (Cohen et al. 2019, ART): per image the certified class or an
    abstention and its L2 radius (per_image.csv), the certified-accuracy curve in L2 and its L∞ equivalent, the
    malignant decision at the stored operating point certified, and what PGD with EOT over the noise leaves at the same
    radii (metrics.json, metrics.md, certified.png)."""
    from skinart.commands.checks import certify_config

    cfg = certify_config(locals())  # before the run's imports (seconds)
    from skinart.certification.curves import certify_markdown
    from skinart.models.checkpoint import Checkpoint
    from skinart.rundir import RunOptions
    from skinart.runs.certify import certify_run

    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision)
    metrics = certify_run(cfg, Checkpoint.load(checkpoint), out, options)
    if metrics is None:
        return skipped(out)
    typer.echo(certify_markdown(metrics, f"{checkpoint} smoothed at σ {metrics['sigma']:g}"))
