"""The `skinart` command. Each command parses its options and calls one library function."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Annotated, Optional

import typer

from skinart import SkinartError
from skinart.data import DATASETS, DEFAULT_MALIGNANT

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Adversarial attacks and defences for skin-lesion classifiers.")
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.")
app.add_typer(data_app, name="data")


def one_line_errors(command):
    """Show a SkinartError as one line on stderr and exit 2 instead of a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SkinartError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None

    return run


Data = Annotated[str, typer.Option("--data", help=f"dataset: {', '.join(DATASETS)}")]
DataRoot = Annotated[Optional[str], typer.Option(help="dataset file or folder (default: $SKINART_DATA/<dataset>)")]
SplitRatios = Annotated[Optional[str], typer.Option(help="train,val,test shares (or train,test); default 0.7,0.15,0.15")]
Malignant = Annotated[Optional[str], typer.Option(help="comma-separated malignant classes (binary metrics)")]
Device = Annotated[str, typer.Option(help="auto (CUDA when present), cpu or cuda")]
Out = Annotated[Path, typer.Option(help="run directory to write")]
Overwrite = Annotated[bool, typer.Option(help="replace an --out directory that holds a different run")]


def _skipped(out: Path) -> None:
    typer.echo(f"{out} already holds this run (same config): skipped; pass --overwrite to redo it", err=True)


@app.command()
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
    batch_size: int = 64,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-3,
    weight_decay: float = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd")] = "adamw",
    scheduler: Annotated[str, typer.Option(help="per-epoch LR schedule: cosine, step or none")] = "cosine",
    patience: Annotated[int, typer.Option(help="stop after this many epochs without better val macro recall (0: never)")] = 10,
    augment: Annotated[str, typer.Option(help="none, flip, rotate or full")] = "rotate",
    balance: Annotated[str, typer.Option(help="none, weights (loss weights) or oversample (random oversampling)")] = "none",
    label_smoothing: float = 0.0,
    seed: Annotated[int, typer.Option(help="seed for the split, initialisation and batches")] = 0,
    pretrained: Annotated[bool, typer.Option(help="start from timm/hub weights (needs internet)")] = False,
    weights: Annotated[Optional[str], typer.Option(help="start from a local .safetensors/.pth state dict")] = None,
    malignant: Malignant = ",".join(DEFAULT_MALIGNANT),
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Train a classifier and write a checkpoint run directory (model.safetensors + skinart.json)."""
    from skinart.train import TrainConfig, train_run

    cfg = TrainConfig(model=model, epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, optimizer=optimizer,
                      scheduler=scheduler, patience=patience, augment=augment, balance=balance,
                      label_smoothing=label_smoothing, seed=seed, pretrained=pretrained, weights=weights)
    result = train_run(out, cfg, data, data_root, img_size, resize, split_ratios, malignant, device, overwrite)
    if result is None:
        return _skipped(out)
    typer.echo(f"checkpoint {out} (best epoch {result['best_epoch']})")


@app.command()
@one_line_errors
def evaluate(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint directory written by `skinart train`")],
    out: Out,
    data: Annotated[Optional[str], typer.Option("--data", help="dataset (default: the checkpoint's)")] = None,
    data_root: DataRoot = None,
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    malignant: Malignant = None,
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Evaluate a checkpoint: metrics.json, metrics.md, confusion matrices (multi-class and 2×2)."""
    from skinart.evaluate import evaluate_run
    from skinart.report import metrics_markdown

    metrics = evaluate_run(checkpoint, out, data, data_root, split, malignant, device, overwrite)
    if metrics is None:
        return _skipped(out)
    typer.echo(metrics_markdown(metrics, f"{checkpoint} on {split}"))


@data_app.command("info")
@one_line_errors
def data_info(
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    split_ratios: SplitRatios = None,
    seed: int = 0,
):
    """Classes, counts per split and lesions shared between splits."""
    from skinart.data import describe

    typer.echo(describe(data, data_root, split_ratios, seed))


def main() -> None:
    app()
