"""What every step command shares: one-line errors (exit 2), the `skinart` group's one-line usage errors and Ctrl-C,
the options several commands take (typed, with their help), and the line a skipped run prints.

Each command imports what it runs (torch, timm, ART under it) in its body, not at the top: the signatures are all
that `--help`, `--version` and a refused option need, and they answer in a fraction of a second instead of seconds."""

from __future__ import annotations

import errno
import functools
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from skinart.data import DATASETS, csv_options
from skinart.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, SkinartError

# what to do about a file the system refused, by its errno (else: an --out that cannot be written)
_OS_ADVICE = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free disk space (the quota is full)",
              errno.ENAMETOOLONG: "a name in it is longer than the file system allows (os.pathconf PC_NAME_MAX): shorten it",
              errno.EISDIR: "it is a folder: give a file"}


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
                                 f"{_OS_ADVICE.get(e.errno, 'choose an --out you can write to')}")
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
SmoothingN = Annotated[Optional[int], typer.Option(
    help="a checkpoint trained under noise (it records σ): the noisy copies each smoothed prediction votes over "
         "(default: the n it records, 100)")]
Precision = Annotated[str, typer.Option(help="fp32, bf16 or fp16: the dtype torch.autocast computes in (logits stay fp32)")]
Deterministic = Annotated[bool, typer.Option(help="deterministic algorithms (torch, cuDNN, cuBLAS): a rerun on a GPU gives the "
                                             "same last digits, somewhat slower")]


# --data csv: a folder of images labelled by a CSV file (data/csv_labels.py); the commands that read data take these
Labels = Annotated[Optional[str], typer.Option(help="--data csv: the CSV file labelling the images under --data-root")]
ImageColumn = Annotated[Optional[str], typer.Option(help="--data csv: the column naming each image (default image)")]
LabelColumn = Annotated[Optional[str], typer.Option(help="--data csv: the column of label names (default: one-hot columns)")]
LabelMap = Annotated[Optional[str], typer.Option(help="--data csv: label names to classes, e.g. nevus=nv,ACK=akiec")]
GroupColumn = Annotated[Optional[str], typer.Option(help="--data csv: the column grouping one lesion's images, e.g. lesion_id")]


def data_options(params: dict) -> dict | None:
    """--data csv's options from a command's (or a recipe step's) parameters; None for every other dataset."""
    return csv_options(**{k: params.get(k) for k in ("labels", "image_column", "label_column", "label_map", "group_column")})


def skipped(out: Path) -> None:
    typer.echo(f"{out} already holds this run (same config): skipped; pass --overwrite to redo it", err=True)




def given_options(ctx: typer.Context) -> set[str]:
    """The options set on the command line (or by a recipe), as opposed to left at their defaults."""
    return {name for name in ctx.params if ctx.get_parameter_source(name).name != "DEFAULT"}
