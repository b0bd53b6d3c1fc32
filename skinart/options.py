"""Parsers shared by every command and recipe: ε, a finite float, ART keyword pairs, a choice from a list, class names,
a file name the file system can hold. Each failure is a SkinartError (or, inside typer's parsing, a typer.BadParameter)
naming the option and the fix."""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from pathlib import Path
from typing import Iterable

import typer
import yaml

from skinart.errors import SkinartError

# a number YAML 1.1 reads as text: an exponent without a decimal point (1e-3, 1e999)
_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def not_finite(text) -> str:
    return f"{text} is not a finite number (inf, nan, or too large for a float); give an ordinary number"


def finite_float(text) -> float:
    """The parser of every float option (typer's `parser=`): a number that is not inf or nan (1e999 overflows to inf),
    refused while click parses, before anything runs, as --eps refuses one."""
    try:
        number = float(text)
    except ValueError:
        raise typer.BadParameter(f"'{text}' is not a number") from None
    if not math.isfinite(number):
        raise typer.BadParameter(not_finite(text))
    return number


def choose(value, choices: Iterable, what: str):
    """`value` if it is one of `choices`, else the one "choose one of" error, with `what` naming the option."""
    choices = list(choices)
    if value not in choices:
        raise SkinartError(f"unknown {what} '{value}'; choose one of {', '.join(map(str, choices))}")
    return value


def parse_eps(text: str | float, option: str = "--eps") -> float:
    """'2/255', '0.2' or a number -> float in (0, 1] (pixel units, DESIGN.md)."""
    try:
        value = Fraction(str(text).strip())
    except (ValueError, ZeroDivisionError):
        raise SkinartError(f"{option} '{text}' is not a number; write a fraction like 8/255 or a decimal like 0.03") from None
    if not 0 < value <= 1:  # compared exactly: 1e999 is a Fraction no float holds
        raise SkinartError(f"{option} {text} is outside (0, 1]; epsilons are in [0, 1] pixel units, e.g. 8/255")
    return float(value)


def parse_params(pairs: list[str]) -> dict:
    """--param key=value pairs; values read as YAML (numbers, booleans, lists) or fractions like 1/255."""
    params = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise SkinartError(f"--param '{pair}' is not key=value; write e.g. --param decay=0.9")
        try:
            value = float(Fraction(text)) if "/" in text else yaml.safe_load(text)
            value = float(value) if isinstance(value, str) and _EXPONENT.fullmatch(value) else value
        except (ValueError, ZeroDivisionError, OverflowError, yaml.YAMLError):
            raise SkinartError(f"--param {pair}: cannot read the value '{text}'; write a number, true/false or a word") from None
        if isinstance(value, float) and not math.isfinite(value):  # norm takes the word inf, not a float
            raise SkinartError(f"--param {pair}: {not_finite(text)}")
        params[key.strip()] = value
    return params


def parse_class(value: str | None, classes: list[str] | tuple[str, ...], option: str) -> int | None:
    """The index of a class named by an option, or None when the option is not given."""
    if value is None:
        return None
    if value not in classes:
        raise SkinartError(f"{option} '{value}' is not a class of this checkpoint; choose one of {', '.join(classes)}")
    return list(classes).index(value)


def parse_malignant(text: str | list[str] | tuple[str, ...], classes: tuple[str, ...], option: str = "--malignant") -> list[str]:
    """The malignant set (the positive class of the binary metrics), in the classes' order."""
    names = [n.strip().lower() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise SkinartError(f"{option} is empty, so no class would count as malignant; name the malignant classes, "
                           f"comma-separated, from {', '.join(classes)} (e.g. {option} mel,bcc,akiec)")
    unknown = [n for n in names if n not in classes]
    if unknown:
        raise SkinartError(f"{option} names unknown class(es) {', '.join(unknown)}; choose from {', '.join(classes)}")
    if len(set(names)) == len(classes):
        raise SkinartError(f"{option} lists every class, so no class is benign; name only the malignant ones")
    return sorted(set(names), key=classes.index)


def name_limit(path: str | Path) -> int:
    """The longest file name (in bytes) the file system holding `path`, or its nearest existing folder, takes."""
    folder = next(p for p in [Path(path).absolute(), *Path(path).absolute().parents] if os.path.isdir(p))
    return os.pathconf(folder, "PC_NAME_MAX")


def check_names_fit(path: str | Path, option: str, added: int = 0) -> None:
    """Every name along `path` fits its file system, the last one with `added` characters more: what skinart adds to a
    run directory's name for its staging and resume folders beside it. Refused in one line with the limit, where the
    system would answer "File name too long" half-way through."""
    limit = name_limit(path)
    for name in Path(path).parts:
        if len(os.fsencode(name)) > limit:
            raise SkinartError(f"{option} {path}: the name '{name[:24]}…' is {len(os.fsencode(name))} characters, longer than "
                               f"the file system allows ({limit}, os.pathconf PC_NAME_MAX); choose a shorter name")
    length = len(os.fsencode(Path(path).name))
    if length + added > limit:
        raise SkinartError(f"{option} {path}: its name is {length} characters, and skinart stages the run beside it under "
                           f"names {added} characters longer (.NAME.partial-PID, .NAME.resume-HASH), past the {limit} the file "
                           f"system allows (os.pathconf PC_NAME_MAX); choose a name of at most {limit - added} characters")


def check_file(path: str | Path, option: str, fix: str) -> Path:
    """`path` names an existing file; refused in one line, saying which, when a name along it is too long for its file
    system, when it is a folder, or when nothing is there. `fix` says what to give instead."""
    check_names_fit(path, option)
    if os.path.isdir(path):
        raise SkinartError(f"{option} {path} is a folder, not a file; {fix}")
    if not os.path.isfile(path):
        raise SkinartError(f"{option} {path} does not exist; {fix}")
    return Path(path)
