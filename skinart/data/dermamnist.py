"""The DermaMNIST reader: a MedMNIST npz (found, or downloaded once into the cache), its labels by name, its
official split, and, when the split-to-HAM10000 map lies beside it, each image's HAM10000 metadata."""

from __future__ import annotations

import hashlib
import sys
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from skinart import cache_root
from skinart.data.catalog import CLASS_DESCRIPTIONS, CLASSES, DATASETS, SPLIT_NAMES
from skinart.data.metadata import MAP_FILE, metadata_columns
from skinart.data.sources import Source, existing_dir, read_csv, walk_files
from skinart.errors import SkinartError


def _find_npz(root: Path | None, spec: dict, img_size: int | None) -> Path:
    sizes = sorted(spec["files"])
    wanted = next((s for s in sizes if img_size is not None and s >= img_size), 28)
    if root is None:
        return _download_dermamnist(spec, wanted)
    if root.is_file():
        return root
    root = existing_dir(root, "dermamnist")
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
        npz = np.load(path, allow_pickle=False) if zipped else None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise SkinartError(f"{path} is not a readable npz file ({e}); pass a MedMNIST-format dermamnist*.npz") from e
    if npz is None:
        raise SkinartError(f"{path} is not an npz file (an npz is a zip archive, and this file does not start like one: "
                           "another format renamed?); pass a MedMNIST-format dermamnist*.npz")
    missing = [f"{s}_{k}" for s in SPLIT_NAMES for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
    if missing:
        raise SkinartError(f"{path.name} is not a MedMNIST-format npz (missing {', '.join(missing)})")
    return npz



def read_dermamnist(root: Path | None, spec: dict, img_size: int | None = None) -> Source:
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
    found = [folder / name] if (folder / name).is_file() else walk_files(folder.parent / "ham10000", name)
    if not (folder / MAP_FILE).is_file() or not found:
        return None
    fix = f"expected columns split,index,image_id; remove {MAP_FILE} to use DermaMNIST without metadata"
    try:
        image_of = {f"{r['split'].strip()}_{int(r['index']):05d}": r["image_id"].strip()
                    for r in read_csv(folder / MAP_FILE, ("split", "index", "image_id"), fix)}
    except ValueError as e:
        raise SkinartError(f"{folder / MAP_FILE}: an index is not a whole number ({e}); {fix}") from None
    ham = read_csv(found[0], ("image_id", "dx"), "expected the HAM10000 metadata (lesion_id,image_id,dx,...)")
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
