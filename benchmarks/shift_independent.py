"""skinart's JPEG and gaussian-noise shifts against independent plain implementations, on the same test images of a
checkpoint: Pillow's own JPEG round trip (`Image.save(quality=q)`) and numpy's gaussian noise (x + N(0, σ) in [0, 1]
pixel units, clipped, rounded) with other random draws. Prints, per severity, accuracy and sensitivity at the stored
threshold with their 95 % bootstrap intervals for both, and whether each of skinart's numbers lies inside the
independent one's interval.

    python benchmarks/shift_independent.py --checkpoint CKPT [--severities 1,3,5]
"""

import argparse
import io

import numpy as np
from PIL import Image

from skinart.defences.deployed import deployed
from skinart.metrics import bootstrap_ci, p_malignant
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import predict
from skinart.models.provenance import checkpoint_dataset
from skinart.shifts.apply import apply_shift
from skinart.shifts.table import SHIFTS, parse_severities


def plain_jpeg(images: np.ndarray, quality: int) -> np.ndarray:
    def one(image):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"))
    return np.stack([one(image) for image in images])


def plain_gaussian(images: np.ndarray, sigma: float, seed: int = 12345) -> np.ndarray:
    noisy = images / 255.0 + np.random.default_rng(seed).normal(0.0, sigma, images.shape)
    return np.round(np.clip(noisy, 0, 1) * 255).astype(np.uint8)


PLAIN = {"jpeg_compression": plain_jpeg, "gaussian_noise": plain_gaussian}


def scored(classifier, images, labels, classes, malignant, threshold) -> dict:
    probs = predict(classifier, images)
    idx = [classes.index(m) for m in malignant]
    scores = p_malignant(probs, idx)
    ci = bootstrap_ci(labels, probs.argmax(1), n_classes=len(classes), malignant_idx=idx, scores=scores, threshold=threshold)
    positive = np.isin(labels, idx)
    return {"accuracy": float(np.mean(probs.argmax(1) == labels)), "accuracy_ci": ci["accuracy"],
            "sensitivity": float(np.mean(scores[positive] >= threshold)),
            "sensitivity_ci": [1 - ci["fnr_at_threshold"][1], 1 - ci["fnr_at_threshold"][0]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--severities", default="1,3,5")
    args = parser.parse_args()
    checkpoint = Checkpoint.load(args.checkpoint)
    test = checkpoint_dataset(checkpoint).splits["test"]
    malignant = list(checkpoint.meta.malignant)
    threshold = checkpoint.threshold(malignant)
    classifier = deployed(checkpoint, "cpu")
    for name, plain in PLAIN.items():
        for severity in parse_severities(args.severities):
            parameter = SHIFTS[name].parameters[severity - 1]
            ours = scored(classifier, apply_shift(test.images, name, severity, 0, test.ids), test.labels, checkpoint.classes,
                          malignant, threshold)
            theirs = scored(classifier, plain(test.images, parameter), test.labels, checkpoint.classes, malignant, threshold)
            for metric in ("accuracy", "sensitivity"):
                low, high = theirs[f"{metric}_ci"]
                inside = low <= ours[metric] <= high
                print(f"{name} severity {severity} ({parameter}) {metric}: skinart {ours[metric]:.4f}, plain {theirs[metric]:.4f} "
                      f"[{low:.4f}, {high:.4f}] inside: {inside}", flush=True)


if __name__ == "__main__":
    main()
