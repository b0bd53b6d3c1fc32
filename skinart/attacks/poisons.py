"""Poisons: ART's `PoisoningAttackBackdoor` with one perturbation per method (an identity for a label flip, a
pattern trigger for a backdoor), which training images each may poison, and the poisoned copy of a split."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from skinart.attacks.loops import one_hot
from skinart.data import Split, from_model_input, to_model_input
from skinart.toolbox import PoisoningAttackBackdoor, add_pattern_bd

# method -> (perturbation of float NCHW images, which training labels may be poisoned given (source, target))
POISONS = {
    # ART has no label-flip attack: an identity "trigger" with the target label is one
    "poison-flip": (lambda x: x, lambda labels, source, target: labels == source),
    # add_pattern_bd, not add_single_bd: the latter has no channels_first and writes the wrong pixels on NCHW
    "poison-backdoor": (lambda x: add_pattern_bd(x, channels_first=True), lambda labels, source, target: labels != target),
}


def perturb(method: str, x: np.ndarray) -> np.ndarray:
    return POISONS[method][0](x)


def candidates(method: str, labels: np.ndarray, source: int | None, target: int) -> np.ndarray:
    """Where `labels` may be poisoned: the source class for a flip, every other class than the target for a backdoor."""
    return POISONS[method][1](labels, source, target)


def poison_split(split: Split, method: str, indices: np.ndarray, target: int, n_classes: int) -> Split:
    """A copy of `split` whose `indices` carry ART's poison (perturbed images, target label)."""
    attack = PoisoningAttackBackdoor(POISONS[method][0])
    x, y = attack.poison(to_model_input(split.images[indices]), y=one_hot(np.int64(target), n_classes), broadcast=True)
    images, labels = split.images.copy(), split.labels.copy()
    images[indices], labels[indices] = from_model_input(x), y.argmax(1)
    return replace(split, images=images, labels=labels)
