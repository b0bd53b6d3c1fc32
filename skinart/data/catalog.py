"""The dataset table (files, label names, splits, licences) and where data and caches live:
data as data, in the manner of MedMNIST's info.py."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from skinart import cache_root

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
# outputs of published models that no dataset here labels (ISIC 2019: squamous cell carcinoma, "none of the others"):
# predicting one is an error; a malignant one's probability counts towards p_malignant
EXTRA_CLASSES = {"scc": "squamous cell carcinoma", "unk": "none of the other classes (ISIC 2019's UNK)"}
MALIGNANT_EXTRA_CLASSES = ("scc",)
SPLIT_NAMES = ("train", "val", "test")
CHOOSABLE_SPLITS = ("val", "train")  # where an operating point may be chosen again; never test: it is judged there
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
RESIZE_METHODS = ("crop", "squash")
BALANCE_METHODS = ("none", "weights", "sqrt-weights", "oversample")
_CACHE_VERSION = "1"

_ZENODO = "https://zenodo.org/records/10519652/files"
# "images": the published number of images, to estimate memory for data not on this machine yet
DATASETS: dict[str, dict] = {
    "ham10000": {
        "description": "HAM10000: ISIC_*.jpg (any resolution, any sub-folder) + HAM10000_metadata.csv",
        "subdir": "ham10000",
        "metadata": "HAM10000_metadata.csv",
        "columns": ("image_id", "lesion_id", "dx"),
        "image_glob": "ISIC_*.jpg",
        "split": "grouped by lesion_id, stratified by class",
        "native_size": None,
        "images": 10015,
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
        "images": 10015,
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
        "images": 11720,  # training 10015 + validation 193 + test 1512
        "licence": "CC BY-NC 4.0",
        "citation": "Codella et al., arXiv:1902.03368 (2019); Tschandl et al. 2018",
    },
    "csv": {
        "description": "a folder of images labelled by a CSV file (--labels; --image-column, --label-column or one-hot "
                       "columns, --label-map, --group-column)",
        "subdir": "csv",
        "split": "grouped by --group-column (else each image its own group), stratified by class",
        "native_size": None,
        "licence": "as the images'",
        "citation": "",
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


def default_root(name: str) -> Path | None:
    """`$SKINART_DATA/<subdir>` when SKINART_DATA is set, else None."""
    env = os.environ.get("SKINART_DATA")
    return Path(env) / DATASETS[name]["subdir"] if env else None


def cached_array(stem: str, key: str, build, use_cache: bool) -> np.ndarray:
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
