"""Dataset loaders. One table (`catalog.DATASETS`) describes every source; the code only reads it.

Every loader yields uint8 NHWC images at the requested size, integer labels in the canonical
class order (always mapped by *name*, never by index) and per-sample group ids (the lesion id
where the source has one), so that splits never put one lesion on both sides.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from skinart.data.catalog import (  # noqa: F401  (the public names of skinart.data)
    BALANCE_METHODS, CLASS_DESCRIPTIONS, CLASSES, DATASETS, DEFAULT_IMG_SIZE, DEFAULT_MALIGNANT, RESIZE_METHODS,
    SPLIT_NAMES, cache_root,
)
from skinart.data.pixels import check_pixels, from_model_input, load_pixels, resize_image, to_model_input  # noqa: F401
from skinart.data.sources import Source, is_present, read_source  # noqa: F401
from skinart.data.splits import parse_ratios, source_splits, split_indices  # noqa: F401


@dataclass
class Split:
    images: np.ndarray  # uint8 NHWC
    labels: np.ndarray  # int64, index into CLASSES
    groups: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LesionDataset:
    name: str
    img_size: int
    splits: dict[str, Split]
    fingerprint: str
    resize: str
    split_ratios: tuple[float, ...]
    seed: int
    classes: tuple[str, ...] = CLASSES

    def settings(self) -> dict:
        """What reproduces these splits (stored in checkpoints so evaluation uses the same test split)."""
        return {"name": self.name, "img_size": self.img_size, "resize": self.resize,
                "split_ratios": list(self.split_ratios), "seed": self.seed, "fingerprint": self.fingerprint}


def load_dataset(
    name: str,
    root: str | Path | None = None,
    img_size: int | None = None,
    resize: str = "crop",
    split_ratios: tuple[float, ...] = (0.7, 0.15, 0.15),
    seed: int = 0,
    use_cache: bool = True,
) -> LesionDataset:
    if img_size is not None:
        check_pixels(img_size, resize)
    source = read_source(name, root, img_size)
    for note in source.notes:
        print(f"note: {note}", file=sys.stderr)
    img_size = _side(source, img_size)
    pixels = load_pixels(source, img_size, resize, use_cache)
    splits = {
        s: Split(images=np.ascontiguousarray(pixels[idx]), labels=source.labels[idx], groups=source.groups[idx], ids=source.ids[idx])
        for s, idx in source_splits(source, split_ratios, seed, use_cache).items()
    }
    fingerprint = hashlib.sha256(f"{source.fingerprint}:{img_size}:{resize}:{split_ratios}:{seed}".encode()).hexdigest()[:16]
    return LesionDataset(name=name, img_size=img_size, splits=splits, fingerprint=fingerprint, resize=resize,
                         split_ratios=tuple(split_ratios), seed=seed)


def check_data(name: str, root: str | Path | None = None, img_size: int | None = None, resize: str = "crop") -> None:
    """What `load_dataset` refuses, found without decoding or downloading: the dataset name, the image side, the resize
    method, and pixels that cannot fit in memory. Data on this machine are counted from their labels (cheap); data not
    here (DermaMNIST before its download, a recipe checked on another machine) by the catalog's published count."""
    if is_present(name, root):
        source = read_source(name, root, img_size)
        return check_pixels(_side(source, img_size), resize, len(source.ids))
    # not here: the side asked for, against the published count (none asked for: the source's own, unknown until here)
    check_pixels(img_size or DEFAULT_IMG_SIZE, resize, DATASETS[name].get("images") if img_size else None)


def _side(source: Source, img_size: int | None) -> int:
    return img_size or source.native_size or DEFAULT_IMG_SIZE


def class_weights(labels: np.ndarray, n_classes: int = len(CLASSES)) -> np.ndarray:
    """'balanced' loss weights (scikit-learn); classes absent from `labels` get weight 1."""
    present = np.unique(labels)
    weights = np.ones(n_classes, dtype=np.float32)
    weights[present] = compute_class_weight("balanced", classes=present, y=labels)
    return weights


def oversample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices that keep every sample and randomly repeat minority-class ones up to the majority count."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    extra = [rng.choice(np.flatnonzero(labels == c), counts.max() - n) for c, n in enumerate(counts) if n]
    return np.concatenate([np.arange(len(labels))] + extra)


def describe(name: str, root: str | Path | None = None, split_ratios: str | None = None, seed: int = 0) -> str:
    """`skinart data info`: classes, counts per split and lesions shared between splits (must be 0)."""
    source = read_source(name, root)
    ratios = parse_ratios(split_ratios)
    splits = source_splits(source, ratios, seed)
    spec = DATASETS[name]
    width = max(len(c) for c in CLASSES) + 1
    lines = [
        f"dataset  {name}: {spec['description']}",
        f"source   {source.root}",
        f"samples  {len(source.ids)} in {len(np.unique(source.groups))} groups; split {spec['split']}"
        + ("" if source.official_split is not None else f", ratios {','.join(map(str, ratios))}, seed {seed}"),
        f"licence  {spec['licence']}" + (f"; cite {spec['citation']}" if spec["citation"] else ""),
        "",
        "split  " + "".join(f"{c:>{width}}" for c in CLASSES) + f"{'total':>8}",
    ]
    for s, idx in list(splits.items()) + [("all", np.arange(len(source.ids)))]:
        counts = np.bincount(source.labels[idx], minlength=len(CLASSES))
        lines.append(f"{s:<7}" + "".join(f"{n:>{width}}" for n in counts) + f"{len(idx):>8}")
    names = list(splits)
    shared = sum(
        len(set(source.groups[splits[a]]) & set(source.groups[splits[b]])) for i, a in enumerate(names) for b in names[i + 1 :]
    )
    lines += ["", f"groups shared between splits: {shared}" + (" (the official split is not lesion-disjoint)" if shared and source.official_split is not None else "")]
    lines += [f"note: {n}" for n in source.notes]
    return "\n".join(lines)
