"""Dataset loaders. One table (`DATASETS`) describes every source; the code only reads it.

Every loader yields uint8 NHWC images at the requested size, integer labels in the canonical
class order (always mapped by *name*, never by index) and per-sample group ids (the lesion id
where the source has one), so that splits never put one lesion on both sides.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import os
import sys
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from sklearn.model_selection import StratifiedGroupKFold
from sklearn.utils.class_weight import compute_class_weight

from skinart import SkinartError

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
# MedMNIST's label names (medmnist/info.py) and HAM10000's dx codes name the same classes.
CLASS_DESCRIPTIONS = {
    "akiec": "actinic keratoses and intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis-like lesions",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevi",
    "vasc": "vascular lesions",
}
DEFAULT_MALIGNANT = ("akiec", "bcc", "mel")
SPLIT_NAMES = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
RESIZE_METHODS = ("crop", "squash")
BALANCE_METHODS = ("none", "weights", "oversample")
_CACHE_VERSION = "1"

_ZENODO = "https://zenodo.org/records/10519652/files"
DATASETS: dict[str, dict] = {
    "ham10000": {
        "description": "HAM10000: ISIC_*.jpg (any resolution, any sub-folder) + HAM10000_metadata.csv",
        "subdir": "ham10000",
        "metadata": "HAM10000_metadata.csv",
        "columns": ("image_id", "lesion_id", "dx"),
        "image_glob": "ISIC_*.jpg",
        "split": "grouped by lesion_id, stratified by class",
        "native_size": None,
        "licence": "CC BY-NC 4.0",
        "citation": "Tschandl, Rosendahl & Kittler, Sci. Data 5, 180161 (2018)",
    },
    "dermamnist": {
        "description": "DermaMNIST (MedMNIST npz: {train,val,test}_{images,labels}), official split",
        "subdir": "dermamnist",
        "files": {28: "dermamnist.npz", 64: "dermamnist_64.npz", 128: "dermamnist_128.npz", 224: "dermamnist_224.npz"},
        "downloads": {
            28: (f"{_ZENODO}/dermamnist.npz?download=1", "0744692d530f8e62ec473284d019b0c7"),
            64: (f"{_ZENODO}/dermamnist_64.npz?download=1", "b70a2f5635c6199aeaa28c31d7202e1f"),
            128: (f"{_ZENODO}/dermamnist_128.npz?download=1", "2defd784463fa5243564e855ed717de1"),
            224: (f"{_ZENODO}/dermamnist_224.npz?download=1", "8974907d8e169bef5f5b96bc506ae45d"),
        },
        # medmnist INFO["dermamnist"]["label"]: index -> name; mapped to CLASSES by name
        "label_names": [
            "actinic keratoses and intraepithelial carcinoma",
            "basal cell carcinoma",
            "benign keratosis-like lesions",
            "dermatofibroma",
            "melanoma",
            "melanocytic nevi",
            "vascular lesions",
        ],
        "split": "official MedMNIST split (not lesion-disjoint)",
        "licence": "CC BY-NC 4.0",
        "citation": "Yang et al., Sci. Data 10, 41 (2023); Tschandl et al. 2018",
    },
    "isic2018": {
        "description": "ISIC 2018 Task 3: images + ISIC2018_Task3_*_GroundTruth.csv (one-hot MEL,NV,BCC,AKIEC,BKL,DF,VASC)",
        "subdir": "isic2018",
        "ground_truth_glob": "ISIC2018_Task3_*_GroundTruth.csv",
        "lesion_groupings_glob": "ISIC2018_Task3_*_LesionGroupings.csv",
        "columns": ("image", "MEL", "NV", "BCC", "AKIEC", "BKL", "DF", "VASC"),
        "split": "grouped by lesion_id when a LesionGroupings file is present, stratified by class",
        "native_size": None,
        "licence": "CC BY-NC 4.0",
        "citation": "Codella et al., arXiv:1902.03368 (2019); Tschandl et al. 2018",
    },
    "folder": {
        "description": "one sub-directory per class (akiec, bcc, bkl, df, mel, nv, vasc) holding images",
        "subdir": "folder",
        "split": "stratified by class (each image its own group)",
        "native_size": None,
        "licence": "as the images'",
        "citation": "",
    },
}
DEFAULT_IMG_SIZE = 224


@dataclass
class Source:
    """What a loader read: labels and groups for every sample and where its pixels come from."""

    name: str
    root: Path
    ids: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    fingerprint: str
    paths: list[Path] | None = None  # image files, or
    npz: Path | None = None  # a MedMNIST npz holding the pixels
    official_split: np.ndarray | None = None  # 'train'/'val'/'test' per sample
    notes: list[str] = field(default_factory=list)


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


# ---------------------------------------------------------------------------------- locations


def cache_root() -> Path:
    return Path(os.environ.get("SKINART_CACHE") or Path.home() / ".cache" / "skinart")


def default_root(name: str) -> Path | None:
    """`$SKINART_DATA/<subdir>` when SKINART_DATA is set, else None."""
    env = os.environ.get("SKINART_DATA")
    return Path(env) / DATASETS[name]["subdir"] if env else None


def _check_name(name: str) -> dict:
    if name not in DATASETS:
        raise SkinartError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def _existing_dir(root: Path, name: str) -> Path:
    if not root.exists():
        raise SkinartError(f"data root {root} does not exist; pass --data-root DIR for --data {name} (or set SKINART_DATA)")
    if root.is_dir() and not any(root.iterdir()):
        raise SkinartError(f"data root {root} is empty; pass --data-root DIR holding the {name} files")
    return root


def _fingerprint(parts: list[str], files: list[Path]) -> str:
    h = hashlib.sha256("\n".join(parts).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
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
    labels, ids, groups, paths, absent = [], [], [], [], []
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
    if absent:
        raise SkinartError(
            f"{len(absent)} image(s) listed in {meta.name} are missing under {root} (first: {absent[0]}.jpg); "
            "restore them or remove their rows"
        )
    return Source(
        name="ham10000", root=root, ids=np.array(ids), labels=np.array(labels, dtype=np.int64),
        groups=np.array(groups), paths=paths, fingerprint=_fingerprint([meta.read_text(encoding="utf-8-sig")], paths),
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
        fingerprint=_fingerprint([t.read_text() for t in truths], [images[i] for i in ids]),
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
    ids = np.array([str(p.relative_to(root)) for p in paths])
    return Source(
        name="folder", root=root, ids=ids, labels=np.array(labels, dtype=np.int64), groups=ids,
        paths=paths, fingerprint=_fingerprint([], paths),
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


def _open_npz(path: Path):
    try:
        npz = np.load(path)
    except (OSError, ValueError) as e:
        raise SkinartError(f"{path} is not a readable npz file ({e}); pass a MedMNIST-format dermamnist*.npz") from e
    missing = [f"{s}_{k}" for s in SPLIT_NAMES for k in ("images", "labels") if f"{s}_{k}" not in npz.files]
    if missing:
        raise SkinartError(f"{path.name} is not a MedMNIST-format npz (missing {', '.join(missing)})")
    return npz


def _read_dermamnist(root: Path | None, spec: dict, img_size: int | None = None) -> Source:
    path = _find_npz(root, spec, img_size)
    npz = _open_npz(path)
    by_name = np.array([CLASSES.index(_code_of(n)) for n in spec["label_names"]])
    ids, labels, split = [], [], []
    for s in SPLIT_NAMES:
        raw = npz[f"{s}_labels"].reshape(-1).astype(np.int64)
        if raw.size and (raw.min() < 0 or raw.max() >= len(by_name)):
            raise SkinartError(f"{path.name}: {s}_labels holds label {raw.max()}, outside DermaMNIST's 0..6")
        labels.append(by_name[raw])
        ids += [f"{s}_{i:05d}" for i in range(len(raw))]
        split += [s] * len(raw)
    ids_arr = np.array(ids)
    return Source(
        name="dermamnist", root=path, ids=ids_arr, labels=np.concatenate(labels), groups=ids_arr,
        npz=path, official_split=np.array(split), fingerprint=_fingerprint([path.name], [path]),
    )


def _code_of(description: str) -> str:
    return next(code for code, text in CLASS_DESCRIPTIONS.items() if text == description)


_READERS = {"ham10000": _read_ham10000, "isic2018": _read_isic2018, "folder": _read_folder}


def read_source(name: str, root: str | Path | None = None, img_size: int | None = None) -> Source:
    """Read labels, groups and image locations (no pixels) of dataset `name`."""
    spec = _check_name(name)
    root = Path(root).expanduser() if root else default_root(name)
    if name == "dermamnist":
        return _read_dermamnist(root, spec, img_size)
    if root is None:
        raise SkinartError(f"no data for --data {name}: pass --data-root DIR or set SKINART_DATA to a folder holding {spec['subdir']}/")
    return _READERS[name](root, spec)


# ---------------------------------------------------------------------------------- splits


def parse_ratios(text: str | None) -> tuple[float, ...]:
    """'0.7,0.15,0.15' -> train/val/test shares; two numbers mean train/test."""
    if text is None:
        return (0.7, 0.15, 0.15)
    fix = "--split-ratios takes 2 or 3 shares in (0, 1) that sum to 1, e.g. 0.7,0.15,0.15"
    try:
        ratios = tuple(float(r) for r in str(text).split(","))
    except ValueError as e:
        raise SkinartError(f"cannot read split ratios '{text}'; {fix}") from e
    if len(ratios) not in (2, 3) or any(not 0 < r < 1 for r in ratios) or abs(sum(ratios) - 1) > 1e-6:
        raise SkinartError(f"bad split ratios '{text}'; {fix}")
    return ratios


def split_indices(labels: np.ndarray, groups: np.ndarray, ratios: tuple[float, ...], seed: int) -> dict[str, np.ndarray]:
    """Lesion-grouped, class-stratified split by scikit-learn's StratifiedGroupKFold.

    The held-out splits are carved off one at a time (test, then val), each as one fold of
    round(remaining share / its share) folds; no group ever lands in two splits.
    """
    names = ("train", "val", "test") if len(ratios) == 3 else ("train", "test")
    assign = np.zeros(len(labels), dtype=np.int64)
    rest, share_left = np.arange(len(labels)), 1.0
    for i in range(len(ratios) - 1, 0, -1):
        k = min(max(2, round(share_left / ratios[i])), len(np.unique(groups[rest])))
        with warnings.catch_warnings():  # tiny subsets: rare classes with fewer members than folds
            warnings.filterwarnings("ignore", message="The least populated class")
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            _, held = next(folds.split(rest, labels[rest], groups[rest]))
        assign[rest[held]] = i
        rest, share_left = np.delete(rest, held), share_left - ratios[i]
    return {n: np.flatnonzero(assign == i) for i, n in enumerate(names)}


def source_splits(source: Source, ratios: tuple[float, ...], seed: int, use_cache: bool = True) -> dict[str, np.ndarray]:
    """The official split where the source has one, else `split_indices` (cached: it takes seconds)."""
    if source.official_split is not None:
        return {s: np.flatnonzero(source.official_split == s) for s in SPLIT_NAMES}
    key = f"split:{source.name}:{source.fingerprint}:{ratios}:{seed}"
    names = ("train", "val", "test") if len(ratios) == 3 else ("train", "test")

    def build() -> np.ndarray:
        parts = split_indices(source.labels, source.groups, ratios, seed)
        assign = np.empty(len(source.labels), dtype=np.int64)
        for i, n in enumerate(names):
            assign[parts[n]] = i
        return assign

    assign = _cached(f"{source.name}-split", key, build, use_cache)
    return {n: np.flatnonzero(assign == i) for i, n in enumerate(names)}


# ---------------------------------------------------------------------------------- pixels


def resize_image(img: Image.Image, size: int, method: str) -> np.ndarray:
    img = img.convert("RGB")
    if method == "crop":
        img = ImageOps.fit(img, (size, size), Image.Resampling.BILINEAR)
    else:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _decode(path: Path, size: int, method: str) -> np.ndarray:
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when much larger
            return resize_image(img, size, method)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise SkinartError(f"cannot read image {path} ({e}); replace or remove that file") from e


def _decode_all(paths: list[Path], size: int, method: str) -> np.ndarray:
    from tqdm import tqdm

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    # Pillow releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        jobs = pool.map(lambda p: _decode(p, size, method), paths)
        for i, arr in enumerate(tqdm(jobs, total=len(paths), desc=f"resize to {size}px", disable=len(paths) < 2000, file=sys.stderr)):
            out[i] = arr
    return out


def _npz_pixels(source: Source, size: int, method: str) -> np.ndarray:
    npz = _open_npz(source.npz)
    images = np.concatenate([npz[f"{s}_images"] for s in SPLIT_NAMES])
    if images.ndim == 3:  # grey-scale MedMNIST sets
        images = np.repeat(images[..., None], 3, axis=-1)
    if images.shape[1] == size:
        return images.astype(np.uint8, copy=False)
    return np.stack([resize_image(Image.fromarray(im), size, method) for im in images])


def load_pixels(source: Source, size: int, method: str = "crop", use_cache: bool = True) -> np.ndarray:
    """All of a source's images at `size`, resized once and cached by (source fingerprint, size, method)."""
    if size <= 0:
        raise SkinartError(f"--img-size must be positive, got {size}")
    if method not in RESIZE_METHODS:
        raise SkinartError(f"unknown resize method '{method}'; choose one of {', '.join(RESIZE_METHODS)}")
    key = f"pixels:{source.name}:{source.fingerprint}:{size}:{method}"
    build = (lambda: _npz_pixels(source, size, method)) if source.npz else (lambda: _decode_all(source.paths, size, method))
    return _cached(f"{source.name}-{size}-{method}", key, build, use_cache)


def _cached(stem: str, key: str, build, use_cache: bool) -> np.ndarray:
    """`build()` once per key; later calls memory-map the saved .npy (written to a temp name, then renamed)."""
    if not use_cache:
        return build()
    digest = hashlib.sha256(f"{_CACHE_VERSION}:{key}".encode()).hexdigest()[:20]
    path = cache_root() / "arrays" / f"{stem}-{digest}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    array = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.part")
    with open(partial, "wb") as f:
        np.save(f, array)
    partial.replace(path)
    return array


def load_dataset(
    name: str,
    root: str | Path | None = None,
    img_size: int | None = None,
    resize: str = "crop",
    split_ratios: tuple[float, ...] = (0.7, 0.15, 0.15),
    seed: int = 0,
    use_cache: bool = True,
) -> LesionDataset:
    if img_size is not None and img_size <= 0:
        raise SkinartError(f"--img-size must be positive, got {img_size}")
    source = read_source(name, root, img_size)
    for note in source.notes:
        print(f"note: {note}", file=sys.stderr)
    if img_size is None:
        img_size = _open_npz(source.npz)["test_images"].shape[1] if source.npz else DEFAULT_IMG_SIZE
    pixels = load_pixels(source, img_size, resize, use_cache)
    splits = {
        s: Split(images=np.ascontiguousarray(pixels[idx]), labels=source.labels[idx], groups=source.groups[idx], ids=source.ids[idx])
        for s, idx in source_splits(source, split_ratios, seed, use_cache).items()
    }
    fingerprint = hashlib.sha256(f"{source.fingerprint}:{img_size}:{resize}:{split_ratios}:{seed}".encode()).hexdigest()[:16]
    return LesionDataset(name=name, img_size=img_size, splits=splits, fingerprint=fingerprint, resize=resize,
                         split_ratios=tuple(split_ratios), seed=seed)


def to_model_input(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0, 1], the classifier's input space (epsilons live here)."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


# ---------------------------------------------------------------------------------- balance


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
