"""`--data csv`: any folder of images labelled by a CSV file (PAD-UFES-20, ISIC 2019/2020, Derm7pt, a hospital's own
export): one column naming each image, its label as a column of names (`--label-column`) or as one-hot columns (every
other column), label names mapped to the canonical classes by name (`--label-map nevus=nv,...`), lesion groups from an
optional `--group-column`. The options are recorded with the data (`options`), so later commands read the same."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skinart.data.catalog import CLASSES, IMAGE_SUFFIXES
from skinart.data.sources import Source, existing_dir, read_csv, walk_files
from skinart.errors import SkinartError

OPTION_NAMES = {"labels": "--labels", "image_column": "--image-column", "label_column": "--label-column",
                "label_map": "--label-map", "group_column": "--group-column"}
DEFAULT_IMAGE_COLUMN = "image"


def csv_options(labels: str | None = None, image_column: str | None = None, label_column: str | None = None,
                label_map: str | None = None, group_column: str | None = None) -> dict | None:
    """The --data csv options as recorded with the data (the labels file resolved, the map parsed); None when none is
    given (every other dataset)."""
    given = {"labels": labels, "image_column": image_column, "label_column": label_column, "label_map": label_map,
             "group_column": group_column}
    if all(v is None for v in given.values()):
        return None
    return {**given, "labels": labels and str(Path(labels).expanduser().resolve()),
            "label_map": label_map and parse_label_map(label_map)}


def parse_label_map(text: str | dict | None) -> dict[str, str]:
    """'nevus=nv,NEV=nv' -> {'nevus': 'nv', 'NEV': 'nv'}: each name in the file -> a canonical class."""
    if isinstance(text, dict) or text is None:
        return dict(text or {})
    pairs = [p.strip() for p in str(text).split(",") if p.strip()]
    bad = [p for p in pairs if p.count("=") != 1 or not all(s.strip() for s in p.split("="))]
    if bad or not pairs:
        raise SkinartError(f"--label-map {text!r}: write NAME=CLASS pairs separated by commas, e.g. nevus=nv,ACK=akiec")
    mapping = {name.strip(): target.strip().lower() for name, target in (p.split("=") for p in pairs)}
    wrong = sorted({t for t in mapping.values() if t not in CLASSES})
    if wrong:
        raise SkinartError(f"--label-map maps to {', '.join(wrong)}, which are not classes; map each name to one of {', '.join(CLASSES)}")
    return mapping


def read_csv_source(root: Path, options: dict | None) -> Source:
    """The images under `root` the CSV lists, labelled and grouped by its columns."""
    if not options or not options.get("labels"):
        raise SkinartError("--data csv reads its labels from a CSV file: pass --labels FILE.csv (and --image-column, "
                           "--label-column or one-hot columns, --label-map, --group-column as the file needs)")
    root = existing_dir(root, "csv")
    if not root.is_dir():
        raise SkinartError(f"--data-root {root} is not a directory; --data csv needs the folder holding the images")
    path = Path(options["labels"])
    if not path.is_file():
        raise SkinartError(f"--labels {path} does not exist; pass the CSV file that labels the images under {root}")
    image, label, group = options.get("image_column") or DEFAULT_IMAGE_COLUMN, options.get("label_column"), options.get("group_column")
    fix = "name its columns with --image-column, --label-column (or one-hot columns) and --group-column"
    rows = read_csv(path, tuple(c for c in (image, label, group) if c), fix)
    names = [row[label].strip() for row in rows] if label else _one_hot_names(rows, path, {image, group})
    labels = _classes(names, parse_label_map(options.get("label_map")), path)
    ids = [_image_id(row[image]) for row in rows]
    paths = _image_paths(root, [row[image].strip() for row in rows], path)
    duplicated = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) < len(ids) else []
    if duplicated:
        raise SkinartError(f"{path.name} lists the image {duplicated[0]} more than once ({len(duplicated)} such images); "
                           "keep one row per image")
    source = Source(name="csv", root=root, ids=np.array(ids), labels=np.array(labels, dtype=np.int64),
                    groups=np.array([row[group].strip() for row in rows] if group else ids), paths=paths, options=options)
    if not group:
        source.notes.append("no --group-column: each image is its own group, so one lesion may span splits")
    return source


def _one_hot_names(rows: list[dict], path: Path, other: set) -> list[str]:
    """Each row's label as the name of its one column holding 1 (every column but the image and group ones)."""
    columns = [c for c in rows[0] if c not in other]
    names = []
    for line, row in enumerate(rows, start=2):
        try:
            values = [float(row[c]) for c in columns]
        except (TypeError, ValueError):
            raise SkinartError(f"{path.name} line {line}: its columns {', '.join(columns)} are not one-hot 0/1; name the "
                               "column holding each image's label with --label-column") from None
        if sorted(values) != [0.0] * (len(values) - 1) + [1.0]:
            raise SkinartError(f"{path.name} line {line}: one-hot labels need exactly one 1 among {', '.join(columns)}; "
                               "fix the row, or name a column of label names with --label-column")
        names.append(columns[values.index(1.0)])
    return names


def _classes(names: list[str], mapping: dict[str, str], path: Path) -> list[int]:
    """Each label name's canonical class (mapped by name, or the class itself in any case); every unknown one refused
    together, with its count."""
    lowered = {k.lower(): v for k, v in mapping.items()}
    found = [mapping.get(n) or lowered.get(n.lower()) or n.lower() for n in names]
    unknown = sorted({n for n, c in zip(names, found) if c not in CLASSES})
    if unknown:
        counts = ", ".join(f"{n or '(empty)'} ({sum(x == n for x in names)} rows)" for n in unknown)
        raise SkinartError(f"{path.name} has labels that are no class: {counts}; map each with --label-map NAME=CLASS "
                           f"(classes: {', '.join(CLASSES)}) or remove those rows")
    return [CLASSES.index(c) for c in found]


def _image_id(value: str) -> str:
    """An image's id: the CSV's value without its image suffix (ISIC_0024306.jpg and ISIC_0024306 are one image)."""
    value = value.strip()
    return value[: -len(Path(value).suffix)] if Path(value).suffix.lower() in IMAGE_SUFFIXES else value


def _image_paths(root: Path, values: list[str], path: Path) -> list[Path]:
    """The file of each CSV value under `root`: by its relative path, its file name, or its name without suffix."""
    files = [p for p in walk_files(root, "*") if p.suffix.lower() in IMAGE_SUFFIXES]
    index: dict[str, Path | None] = {}
    for f in files:
        for key in (f.relative_to(root).as_posix(), f.name, f.stem):
            index[key] = None if key in index and index[key] != f else f  # None: two files answer to this name
    found = [index.get(v) for v in values]
    missing = [v for v, f in zip(values, found) if f is None]
    if missing:
        why = "names two files" if missing[0] in index else "is not under " + str(root)
        raise SkinartError(f"{len(missing)} image(s) listed in {path.name} cannot be found (first: {missing[0]}, which {why}); "
                           "point --data-root at the folder holding them, or name them by their path under it")
    return found
