"""Readers: labels, lesion groups and image locations of each source, without decoding pixels."""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import os
import sys
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skinart import cache_root
from skinart.errors import SkinartError
from skinart.options import choose
from skinart.data.catalog import CLASS_DESCRIPTIONS, CLASSES, DATASETS, SPLIT_NAMES, IMAGE_SUFFIXES, default_root
from skinart.data.metadata import MAP_FILE, metadata_columns


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
    notes: list[str] = field(default_factory=list)
    fingerprint: str = field(init=False)

    def __post_init__(self):
        self.fingerprint = _fingerprint(self.ids, self.labels, self.groups, self.paths or [self.npz])


def _check_name(name: str) -> dict:
    return DATASETS[choose(name, DATASETS, "dataset")]


def _existing_dir(root: Path, name: str) -> Path:
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


def _read_csv(path: Path, required: tuple[str, ...], fix: str) -> list[dict[str, str]]:
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


def _walk(root: Path, pattern: str) -> list[Path]:
    """Files matching `pattern` anywhere below `root`, following symlinked folders (unlike Path.rglob)."""
    return sorted(
        Path(d) / f for d, _, files in os.walk(root, followlinks=True) for f in fnmatch.filter(files, pattern) if not f.startswith(".")
    )


def _index_images(root: Path, pattern: str) -> dict[str, Path]:
    return {p.stem: p for p in _walk(root, pattern)}


# ---------------------------------------------------------------------------------- loaders


def _read_ham10000(root: Path, spec: dict) -> Source:
    root = _existing_dir(root, "ham10000")
    found = _walk(root, spec["metadata"])
    if not found:
        raise SkinartError(f"{root} holds no {spec['metadata']}; point --data-root at the folder with it and the ISIC_*.jpg images")
    meta = found[0]
    rows = _read_csv(meta, spec["columns"], "expected the HAM10000 metadata (lesion_id,image_id,dx,...)")
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


def _read_isic2018(root: Path, spec: dict) -> Source:
    root = _existing_dir(root, "isic2018")
    truths = _walk(root, spec["ground_truth_glob"])
    if not truths:
        raise SkinartError(f"{root} holds no ISIC2018_Task3_*_GroundTruth.csv; point --data-root at the ISIC 2018 Task 3 folder")
    one_hot = spec["columns"][1:]
    labelled: dict[str, int] = {}
    for gt in truths:
        for line, row in enumerate(_read_csv(gt, spec["columns"], "expected columns image,MEL,NV,BCC,AKIEC,BKL,DF,VASC"), start=2):
            try:
                values = [float(row[c]) for c in one_hot]
            except ValueError as e:
                raise SkinartError(f"{gt.name} line {line}: non-numeric label ({e}); labels must be one-hot 0/1") from e
            if sorted(values) != [0.0] * (len(values) - 1) + [1.0]:
                raise SkinartError(f"{gt.name} line {line}: labels {values} are not one-hot; each row needs exactly one 1")
            labelled[row["image"].strip()] = CLASSES.index(one_hot[values.index(1.0)].lower())
    lesions: dict[str, str] = {}
    for grouping in _walk(root, spec["lesion_groupings_glob"]):
        for row in _read_csv(grouping, ("image", "lesion_id"), "expected columns image,lesion_id"):
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


def _read_folder(root: Path, spec: dict) -> Source:
    root = _existing_dir(root, "folder")
    if not root.is_dir():
        raise SkinartError(f"{root} is not a directory; --data folder needs one sub-directory per class")
    paths, labels = [], []
    for sub in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
        label = _class_of_folder(sub.name)
        files = [p for p in _walk(sub, "*") if p.suffix.lower() in IMAGE_SUFFIXES]
        paths += files
        labels += [label] * len(files)
    if not paths:
        raise SkinartError(f"{root} holds no images in class sub-directories ({', '.join(CLASSES)})")
    ids = np.array([_utf8_id(p.relative_to(root), root) for p in paths])
    return Source(
        name="folder", root=root, ids=ids, labels=np.array(labels, dtype=np.int64), groups=ids,
        paths=paths,
    )


def _find_npz(root: Path | None, spec: dict, img_size: int | None) -> Path:
    sizes = sorted(spec["files"])
    wanted = next((s for s in sizes if img_size is not None and s >= img_size), 28)
    if root is None:
        return _download_dermamnist(spec, wanted)
    if root.is_file():
        return root
    root = _existing_dir(root, "dermamnist")
    for size in [wanted] + sizes:
        if (root / spec["files"][size]).is_file():
            return root / spec["files"][size]
    npz = sorted(root.glob("*.npz"))
    if len(npz) == 1:
        return npz[0]
    if not npz:
        raise SkinartError(f"{root} holds no .npz file; pass --data-root pointing at dermamnist.npz (or a folder with one)")
    raise SkinartError(f"{root} holds several .npz files ({', '.join(p.name for p in npz)}); pass --data-root naming one")


def _download_dermamnist(spec: dict, size: int) -> Path:
    url, md5 = spec["downloads"][size]
    target = cache_root() / "dermamnist" / spec["files"][size]
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    print(f"downloading {url} -> {target}", file=sys.stderr)
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(partial, "wb") as out:
            digest = hashlib.md5()
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as e:
        partial.unlink(missing_ok=True)
        raise SkinartError(
            f"could not download DermaMNIST ({e.__class__.__name__}: {e}); offline, pass --data-root to a "
            "dermamnist*.npz or set SKINART_DATA to a folder holding dermamnist/"
        ) from e
    if digest.hexdigest() != md5:
        partial.unlink(missing_ok=True)
        raise SkinartError(f"downloaded {url} has MD5 {digest.hexdigest()}, expected {md5}; try again later")
    partial.rename(target)
    return target


def open_npz(path: Path):
    try:
        with open(path, "rb") as f:  # numpy reads any other file as a pickle (and refuses it as one): say what it is instead
            zipped = f.read(4) == b"PK\x03\x04"
        npz = np.load(path) if zipped else None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SkinartError(f"{path} is not a readable npz file ({e}); pass a MedMNIST-format dermamnist*.npz") from e
    if npz is None:
        raise SkinartError(f"{path} is not an npz file (an npz is a zip archive, and this file does not start like one: "
                           "another format renamed?); pass a MedMNIST-format dermamnist*.npz")
    missing = [f"{s}_{k}" for s in SPLIT_NAMES for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
    if missing:
        raise SkinartError(f"{path.name} is not a MedMNIST-format npz (missing {', '.join(missing)})")
    return npz


def _read_dermamnist(root: Path | None, spec: dict, img_size: int | None = None) -> Source:
    path = _find_npz(root, spec, img_size)
    npz = open_npz(path)
    by_name = np.array([CLASSES.index(_code_of(n)) for n in spec["label_names"]])
    ids, labels, split = [], [], []
    for s in SPLIT_NAMES:
        raw = npz[f"{s}_labels"].reshape(-1).astype(np.int64)
        if raw.size and (raw.min() < 0 or raw.max() >= len(by_name)):
            raise SkinartError(f"{path.name}: {s}_labels holds label {raw.max()}, outside DermaMNIST's 0..6")
        labels.append(by_name[raw])
        ids += [f"{s}_{i:05d}" for i in range(len(raw))]
        split += [s] * len(raw)
    with npz.zip.open("test_images.npy") as member:  # the image side from the header, without decompressing pixels
        read = {(1, 0): np.lib.format.read_array_header_1_0}.get(np.lib.format.read_magic(member), np.lib.format.read_array_header_2_0)
        shape = read(member)[0]
    ids_arr = np.array(ids)
    source = Source(
        name="dermamnist", root=path, ids=ids_arr, labels=np.concatenate(labels), groups=ids_arr,
        npz=path, official_split=np.array(split), native_size=shape[1],
    )
    source.metadata = _dermamnist_metadata(source)
    return source


def _dermamnist_metadata(source: Source) -> dict[str, np.ndarray] | None:
    """HAM10000's metadata of each DermaMNIST image, through MAP_FILE beside the npz (each split and index to its
    HAM10000 image_id) and a HAM10000 metadata CSV beside the npz or in ../ham10000/; None without either, or (with a
    note) when the map sends an image to a HAM10000 image of another class: a map of another npz."""
    folder, name = source.npz.parent, DATASETS["ham10000"]["metadata"]
    found = [folder / name] if (folder / name).is_file() else _walk(folder.parent / "ham10000", name)
    if not (folder / MAP_FILE).is_file() or not found:
        return None
    fix = f"expected columns split,index,image_id; remove {MAP_FILE} to use DermaMNIST without metadata"
    try:
        image_of = {f"{r['split'].strip()}_{int(r['index']):05d}": r["image_id"].strip()
                    for r in _read_csv(folder / MAP_FILE, ("split", "index", "image_id"), fix)}
    except ValueError as e:
        raise SkinartError(f"{folder / MAP_FILE}: an index is not a whole number ({e}); {fix}") from None
    ham = _read_csv(found[0], ("image_id", "dx"), "expected the HAM10000 metadata (lesion_id,image_id,dx,...)")
    by_image = {r["image_id"].strip(): r for r in ham}
    rows = [by_image.get(image_of.get(i, ""), {}) for i in source.ids]
    other = sum(bool(r) and (r["dx"] or "").strip().lower() != CLASSES[label] for r, label in zip(rows, source.labels))
    if other:
        source.notes.append(f"{MAP_FILE} sends {other} image(s) to HAM10000 images of another class: it is not this npz's "
                            "map, so these data carry no metadata (--by is refused)")
        return None
    return metadata_columns(rows, ham[0].keys())


def _code_of(description: str) -> str:
    return next(code for code, text in CLASS_DESCRIPTIONS.items() if text == description)


_READERS = {"ham10000": _read_ham10000, "isic2018": _read_isic2018, "folder": _read_folder}


def _root(name: str, root: str | Path | None) -> Path | None:
    return Path(root).expanduser() if root else default_root(name)


def is_present(name: str, root: str | Path | None = None) -> bool:
    """Whether dataset `name` is where `read_source` looks, found without reading or downloading anything."""
    _check_name(name)
    found = _root(name, root)
    return found is not None and found.exists()


def read_source(name: str, root: str | Path | None = None, img_size: int | None = None) -> Source:
    """Read labels, groups and image locations (no pixels) of dataset `name`."""
    spec = _check_name(name)
    root = _root(name, root)
    if name == "dermamnist":
        return _read_dermamnist(root, spec, img_size)
    if root is None:
        raise SkinartError(f"no data for --data {name}: pass --data-root DIR or set SKINART_DATA to a folder holding {spec['subdir']}/")
    return _READERS[name](root, spec)
