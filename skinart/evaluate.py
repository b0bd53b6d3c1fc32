"""Batched prediction and the evaluation of a checkpoint on one split."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from skinart import SkinartError
from skinart.data import LesionDataset, Split, load_dataset, to_model_input
from skinart.metrics import classification_metrics, parse_malignant
from skinart.models import classifier_from_checkpoint, read_checkpoint_meta
from skinart.report import metrics_markdown, plot_confusion
from skinart.runs import needs_run, staged, write_json


def predict(classifier, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Class probabilities for uint8 NHWC images (converted one chunk at a time) or float32 NCHW model input."""
    chunk = 4 * batch_size
    as_input = to_model_input if images.dtype == np.uint8 else np.asarray
    logits = [
        classifier.predict(as_input(images[i : i + chunk]), batch_size=batch_size)
        for i in range(0, len(images), chunk)
    ]
    if not logits:
        return np.zeros((0, classifier.nb_classes), dtype=np.float32)
    return torch.softmax(torch.from_numpy(np.concatenate(logits)), dim=1).numpy()


def write_metrics(out: Path, metrics: dict, classes: list[str], title: str) -> None:
    """metrics.json, metrics.md and the multi-class and 2×2 confusion-matrix figures."""
    write_json(out / "metrics.json", metrics)
    (out / "metrics.md").write_text(metrics_markdown(metrics, title))
    plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png", title)
    plot_confusion(metrics["binary"]["confusion_matrix"], ["benign", "malignant"], out / "confusion_matrix_binary.png", title)


def evaluate(classifier, split: Split, classes: list[str], malignant: list[str], out: Path, title: str) -> dict:
    probs = predict(classifier, split.images)
    metrics = classification_metrics(split.labels, probs.argmax(1), tuple(classes), malignant)
    np.savez_compressed(out / "predictions.npz", ids=split.ids, labels=split.labels, probabilities=probs)
    write_metrics(out, metrics, classes, title)
    return metrics


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


def evaluate_run(
    checkpoint: Path,
    out: Path,
    data: str | None = None,
    data_root: str | None = None,
    split: str = "test",
    malignant: str | None = None,
    device: str = "auto",
    overwrite: bool = False,
) -> dict | None:
    """`skinart evaluate`: metrics of a checkpoint on a split of its own data settings."""
    meta = read_checkpoint_meta(checkpoint)
    trained_on = meta["data"]
    data = data or trained_on["name"]
    malignant_names = parse_malignant(malignant or meta["malignant"], tuple(meta["classes"]))
    config = {
        "command": "evaluate",
        "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
        "data": {"name": data, "root": str(Path(data_root).resolve()) if data_root else None, "split": split},
        "malignant": malignant_names,
    }
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root, split)
    classifier, _ = classifier_from_checkpoint(checkpoint, device)
    with staged(out, config) as tmp:
        return evaluate(classifier, dataset.splits[split], meta["classes"], malignant_names, tmp,
                        f"{meta['model']} on {data} {split} ({len(dataset.splits[split])} images)")
