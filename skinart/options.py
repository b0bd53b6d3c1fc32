"""Parsers shared by every command and recipe: ε, ART keyword pairs, a choice from a list, class names.
Each failure is a SkinartError naming the option and the fix."""

from __future__ import annotations

from fractions import Fraction
from typing import Iterable

import yaml

from skinart.errors import SkinartError


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
        except (ValueError, ZeroDivisionError, yaml.YAMLError):
            raise SkinartError(f"--param {pair}: cannot read the value '{text}'; write a number, true/false or a word") from None
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
    unknown = [n for n in names if n not in classes]
    if unknown or not names:
        raise SkinartError(f"{option} names unknown class(es) {', '.join(unknown) or '(none)'}; choose from {', '.join(classes)}")
    if len(set(names)) == len(classes):
        raise SkinartError(f"{option} lists every class, so no class is benign; name only the malignant ones")
    return sorted(set(names), key=classes.index)
