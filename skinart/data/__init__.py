"""Dataset loaders. One table (`catalog.DATASETS`) describes every source; the code only reads it.

Every loader yields uint8 NHWC images at the requested size, integer labels in the canonical
class order (always mapped by *name*, never by index) and per-sample group ids (the lesion id
where the source has one), so that splits never put one lesion on both sides.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from skinart.data.catalog import (  # noqa: F401  (the public names of skinart.data)
    BALANCE_METHODS, CHOOSABLE_SPLITS, CLASS_DESCRIPTIONS, CLASSES, DATASETS, DEFAULT_IMG_SIZE, DEFAULT_MALIGNANT,
    EXTRA_CLASSES, MALIGNANT_EXTRA_CLASSES, RESIZE_METHODS, SPLIT_NAMES,
)
from skinart.data.csv_labels import csv_options  # noqa: F401
from skinart.data.metadata import SMALL_GROUP, SUBGROUPS, UNKNOWN, group_order, subgroups  # noqa: F401
from skinart.data.pixels import check_pixels, from_model_input, load_pixels, resize_image, to_model_input  # noqa: F401
from skinart.data.readers import is_present, read_source  # noqa: F401
from skinart.data.sources import Source  # noqa: F401
from skinart.data.splits import parse_ratios, source_splits, split_indices  # noqa: F401
from skinart.errors import SkinartError


@dataclass
class Split:
    images: np.ndarray  # uint8 NHWC
    labels: np.ndarray  # int64, index into CLASSES
    groups: np.ndarray
    ids: np.ndarray
    metadata: dict[str, np.ndarray] | None = None  # per image: sex, age, site, dx_type where the source has them

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class LesionDataset:
    name: str
    img_size: int
    splits: dict[str, Split]
    root: str  # the source's resolved file or folder
    source_fingerprint: str  # the source's data, wherever they lie (`sources._fingerprint`)
    resize: str
    split_ratios: tuple[float, ...] | None  # None: no split, every image is test (an external evaluation)
    seed: int
    classes: tuple[str, ...] = CLASSES
    options: dict | None = None  # the reader's options (--data csv's labels file and columns), recorded with the data

    def identity(self) -> dict:
        """Which data these are: loader, where, their fingerprint, and the pixels the model sees."""
        return {"name": self.name, "root": self.root, "source_fingerprint": self.source_fingerprint,
                "img_size": self.img_size, "resize": self.resize, **({"options": self.options} if self.options else {})}

    def settings(self) -> dict:
        """What reproduces these splits (stored in checkpoints so later commands use the same data and test split)."""
        return {**self.identity(), "split_ratios": self.split_ratios and list(self.split_ratios), "seed": self.seed}

    def relabelled(self, classes: tuple[str, ...], mapping: dict[str, str]) -> LesionDataset:
        """The same images labelled with `classes` through `mapping` (each of these classes -> one of `classes`, by name),
        e.g. benign/malignant for a binary model."""
        index = np.array([list(classes).index(mapping[c]) for c in self.classes])
        return replace(self, classes=tuple(classes), splits={n: replace(s, labels=index[s.labels]) for n, s in self.splits.items()})


def read_data(name: str, root: str | Path | None = None, img_size: int | None = None, options: dict | None = None) -> Source:
    """A source's labels, groups and files (no pixels yet), its notes shown on stderr."""
    source = read_source(name, root, img_size, options)
    for note in source.notes:
        print(f"note: {note}", file=sys.stderr)
    return source


def dataset_of(source: Source, *, img_size: int | None = None, resize: str = "crop",
               split_ratios: tuple[float, ...] | None = (0.7, 0.15, 0.15), seed: int = 0, use_cache: bool = True) -> LesionDataset:
    """The source's pixels in its splits; with `split_ratios` None every image is test (an external evaluation)."""
    img_size = _side(source, img_size)
    pixels = load_pixels(source, img_size, resize, use_cache)
    parts = {"test": np.arange(len(source.ids))} if split_ratios is None else source_splits(source, split_ratios, seed, use_cache)
    splits = {
        s: Split(images=np.ascontiguousarray(pixels[idx]), labels=source.labels[idx], groups=source.groups[idx], ids=source.ids[idx],
                 metadata=None if source.metadata is None else {k: v[idx] for k, v in source.metadata.items()})
        for s, idx in parts.items()
    }
    return LesionDataset(name=source.name, img_size=img_size, splits=splits, root=str(Path(source.root).resolve()),
                         source_fingerprint=source.fingerprint, resize=resize,
                         split_ratios=None if split_ratios is None else tuple(split_ratios), seed=seed, options=source.options)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    img_size: int | None = None,
    resize: str = "crop",
    split_ratios: tuple[float, ...] = (0.7, 0.15, 0.15),
    seed: int = 0,
    use_cache: bool = True,
    options: dict | None = None,
) -> LesionDataset:
    if img_size is not None:
        check_pixels(img_size, resize)  # before reading anything: a size that can never fit is refused at once
    return dataset_of(read_data(name, root, img_size, options), img_size=img_size, resize=resize, split_ratios=split_ratios, seed=seed,
                      use_cache=use_cache)


def check_data(name: str, root: str | Path | None = None, img_size: int | None = None, resize: str = "crop",
               options: dict | None = None) -> None:
    """What `load_dataset` refuses, found without decoding or downloading: the dataset name, the image side, the resize
    method, and pixels that cannot fit in memory. Data on this machine are counted from their labels (cheap); data not
    here (DermaMNIST before its download, a recipe checked on another machine) by the catalog's published count."""
    if root is not None and not Path(root).expanduser().exists():
        raise SkinartError(f"--data-root {root} does not exist; point it at the {name} data (see data/README.md)")
    if is_present(name, root) or options:
        source = read_source(name, root, img_size, options)
        return check_pixels(_side(source, img_size), resize, len(source.ids))
    # not here: the side asked for, against the published count (none asked for: the source's own, unknown until here)
    asked = img_size is not None
    check_pixels(img_size if asked else DEFAULT_IMG_SIZE, resize, DATASETS[name].get("images") if asked else None)


def _side(source: Source, img_size: int | None) -> int:
    return img_size if img_size is not None else source.native_size or DEFAULT_IMG_SIZE


# --balance: the power of scikit-learn's 'balanced' loss weights (n / (k n_c)); the square root trades some balanced
# accuracy back for accuracy on the common classes
CLASS_WEIGHT_POWERS = {"weights": 1.0, "sqrt-weights": 0.5}


def class_weights(labels: np.ndarray, n_classes: int = len(CLASSES), power: float = 1.0) -> np.ndarray:
    """'balanced' loss weights (scikit-learn) to the given power; classes absent from `labels` get weight 1."""
    present = np.unique(labels)
    weights = np.ones(n_classes, dtype=np.float32)
    counts = np.array([np.sum(labels == c) for c in present])
    weights[present] = (len(labels) / (len(present) * counts)) ** power  # scikit-learn's "balanced": n / (k · n_c)
    return weights


def oversample(labels: np.ndarray, seed: int) -> np.ndarray:
    """Indices that keep every sample and randomly repeat minority-class ones up to the majority count."""
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels)
    extra = [rng.choice(np.flatnonzero(labels == c), counts.max() - n) for c, n in enumerate(counts) if n]
    return np.concatenate([np.arange(len(labels))] + extra)


def describe(name: str, root: str | Path | None = None, split_ratios: str | None = None, seed: int = 0,
             options: dict | None = None) -> str:
    """`skinart data info`: classes, counts per split and lesions shared between splits (must be 0)."""
    source = read_source(name, root, options=options)
    if split_ratios is not None and source.official_split is not None:
        raise SkinartError(f"--split-ratios does not apply to {name}: it keeps its official split; drop --split-ratios")
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
