"""AutoAttack seconds per 100 images: skinart's `--method autoattack` (ART's AutoAttack, weights frozen) ÷ the sum of
its sub-attacks run alone on every image, in AutoAttack's schedule (untargeted APGD-CE, APGD-DLR, Square; targeted
APGD-CE and APGD-DLR towards each other class), both measured in this run.

Target (issue 15): ratio <= 1.2 (AutoAttack attacks only the images still standing, so it is usually well below 1).

    python benchmarks/autoattack_speed.py --checkpoint CKPT [--images 100 --max-iter 100 --square-max-iter 5000]
"""

import argparse
import os
import time

import numpy as np
import torch

from skinart.attacks import build
from skinart.checkpoints import Checkpoint
from skinart.crafting import frozen_weights, one_hot, sample_indices
from skinart.data import to_model_input
from skinart.rundir import seed_everything


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def alone(attack, classifier, x: np.ndarray, labels: np.ndarray, n_classes: int) -> dict[str, float]:
    """Each sub-attack of `attack` on every image: untargeted, then (where it has a targeted mode) towards each class
    other than the true one, as AutoAttack's targeted pass orders them."""
    others = np.array([[c for c in range(n_classes) if c != label] for label in labels])
    seconds = {}
    for sub in attack.attacks:
        name = f"{type(sub).__name__}({getattr(sub, 'loss_type', '') or ''})"
        with frozen_weights(classifier):
            seconds[name] = timed(lambda: sub.generate(x, one_hot(labels, n_classes)))
            if "targeted" in sub.attack_params:
                sub.set_params(targeted=True)
                seconds[name + " targeted"] = sum(timed(lambda: sub.generate(x, one_hot(others[:, i], n_classes)))
                                                  for i in range(n_classes - 1))
                sub.set_params(targeted=False)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--max-iter", type=int, default=100)
    parser.add_argument("--square-max-iter", type=int, default=5000)
    args = parser.parse_args()
    checkpoint = Checkpoint.load(args.checkpoint)
    test = checkpoint.dataset().splits["test"]
    keep = sample_indices(len(test), args.images, 0)
    x, labels = to_model_input(test.images[keep]), test.labels[keep]
    classifier = checkpoint.classifier("cpu")
    n_classes = len(checkpoint.classes)
    attack = build("autoattack", classifier, {"eps": args.eps}, {"max_iter": args.max_iter, "square_max_iter": args.square_max_iter})
    seed_everything(0)
    whole = timed(lambda: attack.generate(x, one_hot(labels, n_classes)))
    seed_everything(0)
    parts = alone(attack, classifier, x, labels, n_classes)
    per100 = 100 / len(x)
    print(f"{checkpoint.meta.model} @ {checkpoint.meta.img_size}px, {len(x)} test images, ε {args.eps * 255:.3g}/255, APGD {args.max_iter} iterations, "
          f"Square {args.square_max_iter} queries, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"autoattack: {whole * per100:.1f} s per 100 images")
    for name, seconds in parts.items():
        print(f"  alone {name}: {seconds * per100:.1f} s per 100 images")
    print(f"sum of sub-attacks alone: {sum(parts.values()) * per100:.1f} s per 100 images")
    print(f"ratio autoattack/sum: {whole / sum(parts.values()):.3f} (target <= 1.2)")


if __name__ == "__main__":
    main()
