"""Checkpoints: a directory of model.safetensors + skinart.json (never pickle), loaded as an ART classifier with the
preprocessing defences its metadata names, and the data it was trained on with the same split settings."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from safetensors.torch import load_model, save_model
from torch import nn

from skinart import __version__
from skinart.data import LesionDataset, load_dataset
from skinart.errors import SkinartError
from skinart.models import create_model, resolve_device, wrap
from skinart.preprocessing import preprocessors

CHECKPOINT_FORMAT = "skinart-checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
META_FILE = "skinart.json"


def save_checkpoint(directory: Path, net: nn.Module, meta: dict) -> dict:
    """Write model.safetensors + skinart.json into `directory` (a run's temporary directory)."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = directory / WEIGHTS_FILE
    save_model(net, str(weights))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "skinart_version": __version__,
        "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        **meta,
    }
    (directory / META_FILE).write_text(json.dumps(meta, indent=2))
    return meta


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


def checkpoint_dataset(checkpoint: Path, meta: dict, data: str | None, data_root: str | None, split: str = "test") -> LesionDataset:
    """The data with the checkpoint's own split settings (same ratios, seed and resize), so its test
    images are never ones it trained on."""
    trained_on = meta["data"]
    data = data or trained_on["name"]
    dataset = load_dataset(data, data_root, meta["img_size"], trained_on["resize"], tuple(trained_on["split_ratios"]), trained_on["seed"])
    if split not in dataset.splits:
        raise SkinartError(f"split '{split}' does not exist for {data} with these ratios; choose one of {', '.join(dataset.splits)}")
    if dataset.name == trained_on["name"] and dataset.fingerprint != trained_on["fingerprint"]:
        print(f"note: the {data} data differ from those {checkpoint} was trained on; splits may not match", file=sys.stderr)
    return dataset
