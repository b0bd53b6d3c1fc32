"""`Source` and the readers of image folders (HAM10000, ISIC 2018, a folder per class): labels, lesion groups and image
locations, without decoding pixels; the helpers every reader shares. DermaMNIST's npz has its own module."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinart.errors import SkinartError
from skinart.data.catalog import CLASS_DESCRIPTIONS, CLASSES, IMAGE_SUFFIXES
from skinart.data.metadata import metadata_columns


@dataclass
class Source:
    """What a loader read: labels and groups for every sample and where its pixels come from."""

    name: str
    root: Path
    ids: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    paths: list[Path] | None = None  # image files, or
    npz: Path | None = None  # a MedMNIST npz holding the pixels
    official_split: np.ndarray | None = None  # 'train'/'val'/'test' per sample
    native_size: int | None = None  # image side when the source stores pixels at one size
    metadata: dict[str, np.ndarray] | None = None  # per sample: sex, age, site, dx_type where the source has them
    options: dict | None = None  # the reader's options (--data csv: the labels file and its columns), recorded with the data
    notes: list[str] = field(default_factory=list)
    fingerprint: str = field(init=False)

    def __post_init__(self):
        self.fingerprint = _fingerprint(self.ids, self.labels, self.groups, self.paths or [self.npz])


def existing_dir(root: Path, name: str) -> Path:
    if not root.exists():
        raise SkinartError(f"data root {root} does not exist; pass --data-root DIR for --data {name} (or set SKINART_DATA)")
    if root.is_dir() and not any(root.iterdir()):
        raise SkinartError(f"data root {root} is empty; pass --data-root DIR holding the {name} files")
    return root


def _fingerprint(ids: np.ndarray, labels: np.ndarray, groups: np.ndarray, files: list[Path]) -> str:
    """The identity of a source's data wherever they lie: every sample's id, label and lesion group, in order (the
    split depends on it), and each file's name and size. No folder and no modification time, so a copied or moved
    dataset keeps its fingerprint and a checkpoint still recognises its data, while a relabelled, added, removed or
    re-encoded image changes it."""
    h = hashlib.sha256()
    for sample in zip(ids, labels, groups):
        h.update(("\t".join(map(str, sample)) + "\n").encode())
    for f in files:
        h.update(f"{f.name}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def read_csv(path: Path, required: tuple[str, ...], fix: str) -> list[dict[str, str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
            if missing:
                raise SkinartError(f"{path.name} lacks column(s) {', '.join(missing)}; {fix}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise SkinartError(f"{path} is not a readable CSV file ({e}); {fix}") from e
    if not rows:
        raise SkinartError(f"{path} has no rows; {fix}")
    return rows


def walk_files(root: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` anywhere below `root`, following symlinked folders (unlike Path.rglob)."""
    return sorted(
        Path(d) / f for d, _, files in os.walk(root, followlinks=True) for f in fnmatch.filter(files, pattern) if not f.startswith(".")
    )


def _index_images(root: Path, pattern: str) -> dict[str, Path]:
    return {p.stem: p for p in walk_files(root, pattern)}


# ---------------------------------------------------------------------------------- loaders


def read_ham10000(root: Path, spec: dict) -> Source:
    root = existing_dir(root, "ham10000")
    found = walk_files(root, spec["metadata"])
    if not found:
        raise SkinartError(f"{root} holds no {spec['metadata']}; point --data-root at the folder with it and the ISIC_*.jpg images")
    meta = found[0]
    rows = read_csv(meta, spec["columns"], "expected the HAM10000 metadata (lesion_id,image_id,dx,...)")
    images = _index_images(root, spec["image_glob"])
    labels, ids, groups, paths, kept, absent = [], [], [], [], [], []
    for line, row in enumerate(rows, start=2):
        dx = row["dx"].strip().lower()
        if dx not in CLASSES:
            raise SkinartError(f"{meta.name} line {line}: unknown dx '{row['dx']}'; expected one of {', '.join(CLASSES)}")
        path = images.get(row["image_id"].strip())
        if path is None:
            absent.append(row["image_id"])
            continue
        labels.append(CLASSES.index(dx))
        ids.append(row["image_id"].strip())
        groups.append(row["lesion_id"].strip())
        paths.append(path)
        kept.append(row)
    if absent:
        raise SkinartError(
            f"{len(absent)} image(s) listed in {meta.name} are missing under {root} (first: {absent[0]}.jpg); "
            "restore them or remove their rows"
        )
    return Source(
        name="ham10000", root=root, ids=np.array(ids), labels=np.array(labels, dtype=np.int64),
        groups=np.array(groups), paths=paths, metadata=metadata_columns(kept, rows[0].keys()),
    )


def read_isic2018(root: Path, spec: dict) -> Source:
    root = existing_dir(root, "isic2018")
    truths = walk_files(root, spec["ground_truth_glob"])
    if not truths:
        raise SkinartError(f"{root} holds no ISIC2018_Task3_*_GroundTruth.csv; point --data-root at the ISIC 2018 Task 3 folder")
    one_hot = spec["columns"][1:]
    labelled: dict[str, int] = {}
    for gt in truths:
        for line, row in enumerate(read_csv(gt, spec["columns"], "expected columns image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"), start=2):
            try:
                values = [float(row[c]) for c in one_hot]
            except ValueError as e:
                raise SkinartError(f"{gt.name} line {line}: non-numeric label ({e}); labels must be one-hot 0/1") from e
            if sorted(values) != [0.0] * (len(values) - 1) + [1.0]:
                raise SkinartError(f"{gt.name} line {line}: labels {values} are not one-hot; each row needs exactly one 1")
            labelled[row["image"].strip()] = CLASSES.index(one_hot[values.index(1.0)].lower())
    lesions: dict[str, str] = {}
    for grouping in walk_files(root, spec["lesion_groupings_glob"]):
        for row in read_csv(grouping, ("image", "lesion_id"), "expected columns image,lesion_id"):
            lesions[row["image"].strip()] = row["lesion_id"].strip()
    images = {**_index_images(root, "ISIC_*.jpg"), **_index_images(root, "ISIC_*.png")}
    ids = [i for i in labelled if i in images]
    if not ids:
        raise SkinartError(f"none of the {len(labelled)} labelled images is present under {root}; put the ISIC_*.jpg files there")
    source = Source(
        name="isic2018", root=root, ids=np.array(ids), labels=np.array([labelled[i] for i in ids], dtype=np.int64),
        groups=np.array([lesions.get(i, i) for i in ids]), paths=[images[i] for i in ids],
    )
    if len(ids) < len(labelled):
        source.notes.append(f"{len(labelled) - len(ids)} of {len(labelled)} labelled images are missing; using the {len(ids)} present")
    if not lesions:
        source.notes.append("no LesionGroupings file: each image is its own group, so one lesion may span splits")
    return source


def _class_of_folder(name: str) -> int:
    key = name.strip().lower()
    for i, code in enumerate(CLASSES):
        if key in (code, CLASS_DESCRIPTIONS[code]):
            return i
    raise SkinartError(f"folder '{name}' is not a class; name class folders {', '.join(CLASSES)}")


def _utf8_id(relative: Path, root: Path) -> str:
    """An image's id, its path under the root: refused unless UTF-8 (ids are written to JSON, tables and the terminal)."""
    try:
        str(relative).encode()
    except UnicodeEncodeError:
        shown = os.fsencode(relative).decode("ascii", "backslashreplace")
        raise SkinartError(f"the file name {shown} in {root} is not UTF-8; rename it in UTF-8 "
                           "(e.g. convmv -f latin1 -t utf-8 -r --notest DIR)") from None
    return str(relative)


def read_folder(root: Path, spec: dict) -> Source:
    root = existing_dir(root, "folder")
    if not root.is_dir():
        raise SkinartError(f"{root} is not a directory; --data folder needs one sub-directory per class")
    paths, labels = [], []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        label = _class_of_folder(sub.name)
        files = [p for p in walk_files(sub, "*") if p.suffix.lower() in IMAGE_SUFFIXES]
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise SkinartError(f"{root} holds no images in class sub-directories ({', '.join(CLASSES)})")
    ids = np.array([_utf8_id(p.relative_to(root), root) for p in paths])
    return Source(
        name="folder", root=root, ids=ids, labels=np.array(labels, dtype=np.int64), groups=ids,
        paths=paths,
    )
