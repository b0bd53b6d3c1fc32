"""The seven commands a recipe step can be: train, evaluate, attack, defend, report, import, certify. Each typed signature is the
command's interface (and a recipe step's schema); each body is a few lines over one library call, after building
its checked configuration with `commands.checks`, as recipes do for every step before the first runs. `cli` adds
them to the `skinart` command; `recipes` validates and runs steps through them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from skinart.commands.certify import certify
from skinart.commands.common import one_line_errors
from skinart.commands.defend import defend
from skinart.commands.evaluate import attack, evaluate
from skinart.commands.train import import_model, train


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
    from skinart.commands.checks import report_config

    also_malignant = report_config(locals())  # before the report's imports (seconds)
    from skinart.report.rows import ReportOptions
    from skinart.report.study import summary, write_any_report

    options = ReportOptions(bootstrap=bootstrap, seed=seed, also_malignant=also_malignant, also_label=also_label)
    typer.echo(summary(*write_any_report(runs, out, options)))


STEP_COMMANDS = {"train": train, "evaluate": evaluate, "attack": attack, "defend": defend, "report": report, "import": import_model,
                 "certify": certify}


def add_step_commands(app: typer.Typer) -> typer.Typer:
    for name, command in STEP_COMMANDS.items():
        app.command(name)(command)
    return app


def step_group() -> TyperGroup:
    """The step commands as click sees them: a recipe step's schema, parser and runner."""
    return typer.main.get_command(add_step_commands(typer.Typer()))
