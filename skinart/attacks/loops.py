"""The generate loops of evasion, universal and patch attacks: ART's `generate` over chunks with a progress line, a
universal perturbation or a patch fitted with its fooling rate after every pass, and the seeded sample of images an
attack runs on."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def sample_indices(n: int, cap: int | None, seed: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sorted seeded sample of at most `cap` indices (of those where `mask` holds)."""
    pool = np.arange(n) if mask is None else np.flatnonzero(mask)
    if cap is None or cap >= len(pool):
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, cap, replace=False))


# ---------------------------------------------------------------------------------------------- generate loops


def craft_evasion(attack, classifier, x: np.ndarray, y: np.ndarray, *, what: str | None = None, chunk: int = 512) -> np.ndarray:
    """ART `generate` over chunks (bounded memory, visible progress); `y` true labels or targets, one-hot. Each progress
    line says `what` is crafted (default: the attack's ART class)."""
    adv = np.empty_like(x)
    start = time.perf_counter()
    for i in range(0, len(x), chunk):
        adv[i : i + chunk] = attack.generate(x[i : i + chunk], y[i : i + chunk])
        print(f"  {what or _art_name(attack)}: attacked {min(i + chunk, len(x))}/{len(x)} images "
              f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return adv


def _art_name(attack) -> str:
    """The ART class a skinart attack subclasses (FrozenProjectedGradientDescent: ProjectedGradientDescent)."""
    return next(c.__name__ for c in type(attack).__mro__ if c.__module__.startswith("art."))


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set for a block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_universal(attack, x_fit: np.ndarray, *, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Fit a universal perturbation on `x_fit` (untargeted: against the model's own predictions), printing the fit
    fooling rate (targeted: the share of fit images at the target) the attack reports after every pass (its `on_pass`:
    ART's UAPs as `PassScored`, or skinart's SGD UAP).

    On one torch thread: ART's UAP predicts and differentiates one image at a time, where torch's intra-op threads
    cost more than they save (on a busy 2-core machine a batch-of-one gradient took 545 ms with 2 threads, 9 ms with
    1); the SGD UAP's batches of 32 small images also ran 3-6x faster on 1 thread than 2."""
    y = None if target is None else one_hot(np.full(len(x_fit), target), n_classes)
    by_pass, start = [], time.perf_counter()
    rate = "fit fooling rate" if target is None else "fit share at the target"  # what the stopping rule reads

    def on_pass(n: int, value: float) -> None:
        by_pass.append(round(value, 4))
        print(f"  pass {n}/{attack.max_iter}: {rate} {value:.3f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    attack.on_pass = on_pass
    with torch_threads(1):
        attack.generate(x_fit, y)
    info = {"fit_samples": len(x_fit), "fit_fooling_rate": float(attack.fooling_rate), "fit_passes": len(by_pass),
            "fit_fooling_by_pass" if target is None else "fit_targeted_by_pass": by_pass,
            "fit_seconds": round(time.perf_counter() - start, 2)}
    if target is not None:
        info["fit_targeted_success_rate"] = float(attack.targeted_success_rate)
    return attack.noise.astype(np.float32), info


def fit_patch(attack, x_fit: np.ndarray, *, labels: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Train the patch on `x_fit` (targeted: towards `target`; untargeted: away from the true labels)."""
    y = one_hot(labels if target is None else np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    patch, _ = attack.generate(x_fit, y)
    return patch.astype(np.float32), {"fit_samples": len(x_fit), "fit_seconds": round(time.perf_counter() - start, 2)}
