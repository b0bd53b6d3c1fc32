"""AutoAttack side by side: skinart's `--method autoattack` and an independent implementation, torchattacks 3.5.1's
`AutoAttack(model, norm='Linf', eps=ε, version='standard', n_classes=K, seed=0)` (APGD-CE, APGD-T, FAB-T, Square 5000
queries), on the same model and the same seeded test images: each one's robust accuracy and seconds, the ratio of the
seconds, each on its own line with the load average (other work on the machine slows both).

Targets (issue 24): skinart's robust accuracy ≤ torchattacks' + 1 point; skinart's seconds ≤ torchattacks'; ≤ 60 s per
100 images on a 4-epoch resnet18 at 28 px. torchattacks: `pip install --no-deps torchattacks==3.5.1`
(the `reference` extra names it; its requests pin clashes with huggingface_hub's, see pyproject.toml).

    python benchmarks/autoattack_reference.py --checkpoint CKPT [--images 100 --eps 8/255 --threads N] [--load]

--load runs both beside a fixed CPU load: a second process training a small CNN on random images with torch's
default threads for as long as the benchmark runs (issue 35: on a shared machine skinart slowed 10-20x where
torchattacks slowed ~3x). Compare each one's seconds with and without it.
"""

import argparse
import os
import time

import numpy as np
import torch
import torchattacks
from threads_under_load import cpu_load  # a second process training a CNN

from skinart.attacks.factories import build
from skinart.models.checkpoint import Checkpoint
from skinart.attacks.loops import one_hot, sample_indices
from skinart.data import to_model_input
from skinart.options import parse_eps
from skinart.rundir import seed_everything
from skinart.models.provenance import checkpoint_dataset
from skinart.defences.deployed import deployed


def line(text: str) -> None:
    print(f"{text} (load {os.getloadavg()[0]:.2f})", flush=True)


def robust_accuracy(classifier, adv: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(classifier.predict(adv, batch_size=256).argmax(1) == labels))


def skinart_autoattack(classifier, x: np.ndarray, labels: np.ndarray, eps: float) -> tuple[np.ndarray, float, dict]:
    seed_everything(0)
    attack = build("autoattack", classifier, {"eps": eps}, {})
    start = time.perf_counter()
    adv = attack.generate(x, one_hot(labels, classifier.nb_classes))
    return adv, time.perf_counter() - start, attack.report


def torchattacks_autoattack(classifier, x: np.ndarray, labels: np.ndarray, eps: float) -> tuple[np.ndarray, float]:
    model = classifier.model.eval()  # Sequential(Normalize, net): [0, 1] images in, logits out
    attack = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version="standard", n_classes=classifier.nb_classes, seed=0)
    start = time.perf_counter()
    adv = attack(torch.from_numpy(x), torch.from_numpy(labels.astype(np.int64)))
    return adv.detach().cpu().numpy(), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--eps", default="8/255")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's)")
    parser.add_argument("--load", action="store_true", help="beside a second process training a CNN")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    eps = parse_eps(args.eps, "--eps")
    checkpoint = Checkpoint.load(args.checkpoint)
    classifier = deployed(checkpoint, "cpu")
    test = checkpoint_dataset(checkpoint).splits["test"]
    keep = sample_indices(len(test), args.images, 0)
    x, labels = to_model_input(test.images[keep]), test.labels[keep]
    print(f"{checkpoint.meta.model} @ {checkpoint.meta.img_size} px, {len(checkpoint.classes)} classes, {len(x)} test images, "
          f"ε {eps * 255:.3g}/255, {torch.get_num_threads()} torch threads, {os.cpu_count()} cores")
    line(f"clean accuracy: {robust_accuracy(classifier, x, labels):.3f}")
    with cpu_load(args.load):
        ours, our_seconds, report = skinart_autoattack(classifier, x, labels, eps)
    for p in report["passes"]:
        print(f"  skinart {p['attack']} ({p['budget']}): {p['attacked']} attacked, {p['standing']} standing, "
              f"{p['seconds']:.1f} s")
    line(f"skinart robust accuracy: {robust_accuracy(classifier, ours, labels):.3f}")
    line(f"skinart seconds: {our_seconds:.1f}")
    with cpu_load(args.load):
        theirs, their_seconds = torchattacks_autoattack(classifier, x, labels, eps)
    line(f"torchattacks robust accuracy: {robust_accuracy(classifier, theirs, labels):.3f}")
    line(f"torchattacks seconds: {their_seconds:.1f}")
    line(f"ratio of seconds skinart/torchattacks: {our_seconds / their_seconds:.3f}")
    for name, adv in (("skinart", ours), ("torchattacks", theirs)):
        print(f"{name} largest change: {np.abs(adv - x).max() * 255:.3f}/255")


if __name__ == "__main__":
    main()
