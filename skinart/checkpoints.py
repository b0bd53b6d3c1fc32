"""Checkpoints: a directory of model.safetensors + skinart.json + train_ids.json (never pickle), loaded as an ART
classifier with the preprocessing defences its metadata names; and its data: the data it was trained on (recorded
loader, root and fingerprint, verified) with the same split settings, or an explicitly external test set."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from safetensors.torch import load_model, save_model
from torch import nn

from skinart import __version__
from skinart.data import LesionDataset, Source, Split, dataset_of, read_data
from skinart.errors import SkinartError
from skinart.models import create_model, resolve_device, wrap
from skinart.preprocessing import preprocessors

CHECKPOINT_FORMAT = "skinart-checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "skinart.json"
TRAIN_IDS_FILE = "train_ids.json"  # beside skinart.json, which stays readable: thousands of ids would swamp it


def save_checkpoint(directory: Path, net: nn.Module, meta: dict, train_ids: np.ndarray | None = None) -> dict:
    """Write model.safetensors + skinart.json (+ the training split's image ids) into `directory` (a run's
    temporary directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    save_model(net, str(weights), force_contiguous=True)  # channels-last weights (models.wrap) are not contiguous
    meta = {
        "format": CHECKPOINT_FORMAT,
        "skinart_version": __version__,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        **meta,
    }
    if train_ids is not None:
        # unique ids: adversarial copies repeat the ids of their originals
        (directory / TRAIN_IDS_FILE).write_text(json.dumps(np.unique(train_ids.astype(str)).tolist()))
        meta["train_ids"] = TRAIN_IDS_FILE
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


def derive_checkpoint(source: Path, directory: Path, meta: dict) -> None:
    """A checkpoint with `source`'s weights and training ids under new metadata (e.g. a preprocessing defence)."""
    shutil.copyfile(Path(source) / WEIGHTS_FILE, directory / WEIGHTS_FILE)
    if meta.get("train_ids"):
        shutil.copyfile(Path(source) / TRAIN_IDS_FILE, directory / TRAIN_IDS_FILE)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))


def read_train_ids(directory: Path, meta: dict) -> np.ndarray | None:
    """The image ids the checkpoint trained on; None for a checkpoint written before they were recorded."""
    if not meta.get("train_ids"):
        return None
    path = Path(directory) / TRAIN_IDS_FILE  # always this name, whatever the metadata says: no path from a file is followed
    try:
        ids = json.loads(path.read_text())
    except (OSError, ValueError):
        ids = None
    if not isinstance(ids, list):
        raise SkinartError(f"{path}, the image ids the checkpoint trained on, is missing or not a JSON list; restore it or retrain")
    return np.array(ids, dtype=str)


def read_checkpoint_meta(directory: str | Path, option: str = "--checkpoint") -> dict:
    """A checkpoint's metadata; every error names the `option` that gave the directory."""
    directory = Path(directory)
    fix = f"pass {option} pointing at a checkpoint directory (written by `skinart train`, `defend` or a poisoning attack)"
    if directory.is_file():
        raise SkinartError(f"{option} {directory} is a file; {fix}")
    if not directory.is_dir():
        raise SkinartError(f"{option} {directory} does not exist; {fix}")
    meta_path, weights = directory / META_FILE, directory / WEIGHTS_FILE
    if not meta_path.is_file() or not weights.is_file():
        raise SkinartError(f"{directory} is not a skinart checkpoint (needs {WEIGHTS_FILE} and {META_FILE}); {fix}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SkinartError(f"{meta_path} is not valid JSON ({e}); {fix}") from e
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise SkinartError(f"{meta_path} is not a {CHECKPOINT_FORMAT} file; {fix}")
    return meta


def load_checkpoint(directory: str | Path) -> tuple[nn.Module, dict]:
    """(timm net with the saved weights, checkpoint metadata); never unpickles."""
    meta = read_checkpoint_meta(directory)
    net = create_model(meta["model"], num_classes=len(meta["classes"]))
    try:
        load_model(net, str(Path(directory) / WEIGHTS_FILE))
    except Exception as e:
        raise SkinartError(f"{directory}/{WEIGHTS_FILE} does not fit model {meta['model']} ({str(e).splitlines()[0]}); retrain it") from e
    return net, meta


def classifier_from_checkpoint(directory: str | Path, device: str = "auto", preprocessing_defences=None, defended: bool = True):
    """The checkpoint as an ART classifier, with the preprocessing defences its metadata names (unless
    `defended` is False or `preprocessing_defences` replaces them)."""
    net, meta = load_checkpoint(directory)
    net.eval()
    if preprocessing_defences is None and defended and meta.get("preprocessing"):
        preprocessing_defences = preprocessors(meta["preprocessing"], resolve_device(device))
    classifier = wrap(net, meta["img_size"], tuple(meta["mean"]), tuple(meta["std"]), device, preprocessing_defences=preprocessing_defences)
    return classifier, meta


def checkpoint_dataset(checkpoint: Path, meta: dict, data: str | None, data_root: str | None, split: str = "test",
                       external: bool = False) -> LesionDataset:
    """The data the checkpoint was trained on (its recorded loader and root unless --data/--data-root name others,
    which must then hold the same data), split with its own settings (ratios, seed, resize), so its test images are
    never ones it trained on. With `external`: a whole other dataset, every image of it test."""
    trained_on = meta["data"]
    source = read_data(*_data_location(checkpoint, trained_on, data, data_root), meta["img_size"])
    _check_provenance(checkpoint, trained_on, source, external)
    ratios = None if external else tuple(trained_on["split_ratios"])
    dataset = dataset_of(source, meta["img_size"], trained_on["resize"], ratios, trained_on["seed"])
    if split not in dataset.splits:
        raise SkinartError(f"split '{split}' does not exist for {source.name} with these ratios; choose one of {', '.join(dataset.splits)}")
    _check_disjoint(checkpoint, dataset.splits["test"], read_train_ids(checkpoint, meta))
    return dataset


def _data_location(checkpoint: Path, trained_on: dict, data: str | None, data_root: str | None) -> tuple[str, str | None]:
    """(loader, root) as given, else the checkpoint's recorded ones, not $SKINART_DATA's default (a checkpoint
    written before roots were recorded gets that default, as it always did)."""
    name = data or trained_on["name"]
    recorded = trained_on.get("root") if name == trained_on["name"] else None
    if data_root or recorded is None:
        return name, data_root
    if not Path(recorded).exists():
        raise SkinartError(f"the {name} data {checkpoint} was trained on are no longer at {recorded}; "
                           "pass --data-root where they are now (their fingerprint is checked)")
    return name, recorded


def _check_provenance(checkpoint: Path, trained_on: dict, source: Source, external: bool) -> None:
    """The data must be the checkpoint's own (same loader, same fingerprint), or, for an external evaluation, not."""
    recorded = trained_on.get("source_fingerprint")
    if recorded is None:
        print(f"note: {checkpoint} predates recorded data provenance, so its data cannot be verified; retrain it to "
              "record them", file=sys.stderr)
        return
    same = source.name == trained_on["name"] and source.fingerprint == recorded
    if same and external:
        raise SkinartError(f"--external scores other data, but these are the {source.name} data {checkpoint} was trained on "
                           "(its test split is the in-distribution evaluation); drop --external, or name another dataset")
    if not same and not external:
        raise SkinartError(f"the {source.name} data at {source.root} are not the {trained_on['name']} data {checkpoint} was "
                           f"trained on (at {trained_on['root']}); drop --data/--data-root to use those, or pass --external "
                           "(`skinart evaluate`) to score these as an external test set")


def _check_disjoint(checkpoint: Path, test: Split, train_ids: np.ndarray | None) -> None:
    """No image scored as test may be one the checkpoint trained on (None: a checkpoint that recorded no ids)."""
    if train_ids is None:
        return
    shared = np.intersect1d(test.ids.astype(str), train_ids)
    if shared.size:
        raise SkinartError(f"{len(shared)} of the {len(test)} test images (first: {shared[0]}) are training images of "
                           f"{checkpoint} (its {TRAIN_IDS_FILE}); score images it did not train on, or retrain it")
