"""Progress of the long attacks on stderr: a line as an attack starts and one as it ends, with the images still
standing (classified as before, or not yet at the target), and a tqdm bar while it runs when stderr is a terminal."""

from __future__ import annotations

import sys
import time

import numpy as np
from tqdm.auto import tqdm


def terminal() -> bool:
    """Whether stderr is a terminal (bars only there: a log file gets the start and end lines alone)."""
    return sys.stderr.isatty()


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def bar(total: int, desc: str, shown: bool) -> tqdm:
    """A tqdm bar on stderr that vanishes when done; `shown` False makes it a no-op."""
    return tqdm(total=total, desc=desc, leave=False, disable=not shown, file=sys.stderr)


def standing(predictions: np.ndarray, y: np.ndarray, targeted: bool) -> np.ndarray:
    """Per image: the attack has not succeeded (classified as `y`, or, targeted, not at the target `y`)."""
    at_y = predictions.argmax(1) == y.argmax(1)
    return ~at_y if targeted else at_y


class Announced:
    """Mixin for an ART evasion attack (listed before it, after `FrozenWeights`): `generate` prints a start line with the
    images standing and an end line with those still standing and the seconds; `verbose` (ART's progress bars) defaults
    to whether stderr is a terminal instead of ART's True. The two lines cost a prediction before and one after."""

    announced_as = "attack"

    def __init__(self, *args, verbose: bool | None = None, **kwargs):
        super().__init__(*args, verbose=terminal() if verbose is None else verbose, **kwargs)

    def generate(self, x: np.ndarray, y: np.ndarray | None = None, **kwargs) -> np.ndarray:
        if y is None:  # ART's labels: the model's own predictions
            y = np.eye(self.estimator.nb_classes, dtype=np.float32)[self.estimator.predict(x).argmax(1)]
        targeted = bool(getattr(self, "targeted", False))
        before = int(standing(self.estimator.predict(x), y, targeted).sum())
        say(f"  {self.announced_as}: {len(x)} images, {before} standing")
        start = time.perf_counter()
        adv = super().generate(x, y, **kwargs)
        after = int(standing(self.estimator.predict(adv), y, targeted).sum())
        say(f"  {self.announced_as}: {after} of {before} still standing ({time.perf_counter() - start:.0f} s)")
        return adv
