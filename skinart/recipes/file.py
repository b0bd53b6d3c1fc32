"""The recipe file: YAML with `--set` overrides applied, its top-level keys, and the recipe-wide `data`, `model` and
`seed` settings as the command options they become (each goes to every step whose command takes it)."""

from __future__ import annotations

import difflib
from pathlib import Path

import yaml

from skinart.errors import SkinartError

TOP_KEYS = {"name": str, "description": str, "seed": int, "data": dict, "model": dict, "steps": list, "reference": dict}
STEP_KEYS = {"name": str, "command": str, "params": dict, "grid": dict,
             "cpus": float}  # the CPUs a step holds under --executor ray (the local runner runs one step at a time)
# Recipe-wide settings: section key -> command option. Each goes to every step whose command has that option.
GLOBAL_OPTIONS = {
    "data": {"loader": "data", "root": "data_root", "size": "img_size", "resize": "resize", "split_ratios": "split_ratios",
             "balance": "balance", "malignant": "malignant",
             # loader: csv, a folder of images labelled by a CSV file (data/csv_labels.py)
             "labels": "labels", "image_column": "image_column", "label_column": "label_column", "label_map": "label_map",
             "group_column": "group_column"},
    # model.import: a model trained outside skinart, for the import step (its file, outputs, input and normalisation)
    "model": {"name": "model", "pretrained": "pretrained", "weights": "weights", "import": "weights", "classes": "classes",
              "img_size": "img_size", "mean": "mean", "std": "std"},
}
# option -> the recipe-wide key it may come from, for error messages
GLOBAL_PATHS = {option: f"{section}.{key}" for section, table in GLOBAL_OPTIONS.items() for key, option in table.items()
                if (section, key) not in (("model", "import"), ("model", "img_size"))} | {"seed": "seed"}
# the recipe-wide settings' types, checked even when no step takes the setting
GLOBAL_TYPES = {"size": int, "pretrained": bool, "loader": str, "root": str, "resize": str, "name": str, "weights": str,
                "import": str, "img_size": int, "labels": str, "image_column": str, "label_column": str, "label_map": str,
                "group_column": str}


def expect(path: str, value, kind: type) -> None:
    """`value` is a `kind` (a float may be written as an int: `cpus: 2`; true is not a number)."""
    if not isinstance(value, (int, float) if kind is float else kind) or (kind in (int, float) and isinstance(value, bool)):
        raise SkinartError(f"{path}: expected {'a number' if kind is float else kind.__name__}, got {type(value).__name__} {value!r}")


def unknown(path: str, key: str, known) -> SkinartError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return SkinartError(f"{path}.{key}: unknown key; {hint}expected one of {', '.join(known)}")


def load_recipe(path: Path, overrides: list[str] = ()) -> dict:
    """Read a recipe and apply `--set a.b.c=value` overrides (values in YAML syntax; a step by name or index)."""
    path = Path(path)
    if path.is_dir():
        raise SkinartError(f"recipe {path} is a folder; give the path of a YAML recipe file in it (see recipes/)")
    if not path.is_file():
        raise SkinartError(f"recipe {path} not found; give the path of a YAML recipe (see recipes/)")
    try:
        recipe = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SkinartError(f"recipe {path} is not valid YAML{where}: {getattr(e, 'problem', e)}; fix the syntax") from None
    if not isinstance(recipe, dict):
        raise SkinartError(f"recipe {path}: expected a mapping with name, data, model and steps at the top level")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SkinartError(f"--set {item!r}: expected key.path=value, e.g. data.size=64")
        _set(recipe, key.split("."), yaml.safe_load(text), key)
    return recipe


def _set(node, keys: list[str], value, full: str) -> None:
    for i, key in enumerate(keys):
        if isinstance(node, list):  # steps: by name or index
            match = [s for s in node if isinstance(s, dict) and s.get("name") == key]
            if not match and not (key.isdigit() and int(key) < len(node)):
                raise SkinartError(f"--set {full}: no step '{key}'")
            key_node = match[0] if match else node[int(key)]
            if i == len(keys) - 1:
                raise SkinartError(f"--set {full}: name a key inside the step, e.g. {full}.params.epochs")
            node = key_node
            continue
        if not isinstance(node, dict):
            raise SkinartError(f"--set {full}: '{'.'.join(keys[:i])}' is not a mapping")
        if i == len(keys) - 1:
            node[key] = value
        else:
            node = node.setdefault(key, {})


def recipe_globals(recipe: dict) -> dict:
    """Check the top level; the recipe-wide settings as command options (each goes to every step that takes it)."""
    for key, value in recipe.items():
        if key not in TOP_KEYS:
            raise unknown("recipe", key, TOP_KEYS)
        expect(key, value, TOP_KEYS[key])
    for key in ("name", "steps"):
        if key not in recipe:
            raise SkinartError(f"recipe: missing '{key}'")
    globals_ = {"seed": recipe["seed"]} if "seed" in recipe else {}
    given: dict[str, str] = {}  # option -> the key that set it
    for section, table in GLOBAL_OPTIONS.items():
        for key, value in recipe.get(section, {}).items():
            if key not in table:
                raise unknown(section, key, table)
            if key in GLOBAL_TYPES:  # checked here too, for a setting no step takes
                expect(f"{section}.{key}", value, GLOBAL_TYPES[key])
            if table[key] in given:  # model.import and model.weights, model.img_size and data.size
                raise SkinartError(f"{section}.{key}: {given[table[key]]} sets the same option; set one of them")
            given[table[key]] = f"{section}.{key}"
            globals_[table[key]] = value
    return globals_
