"""Running ART attacks fast and in bounded memory: the weights frozen while attacking, ART's slow paths bypassed
(a test checks the adversarials are unchanged), and the generate loops of evasion, universal and patch attacks."""

from __future__ import annotations

import sys
import time
from contextlib import ExitStack, contextmanager
from typing import Iterator
from unittest import mock

import numpy as np

from skinart.toolbox import fast_gradient, pgd_pytorch


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[labels]


def sample_indices(n: int, cap: int | None, seed: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Sorted seeded sample of at most `cap` indices (of those where `mask` holds)."""
    pool = np.arange(n) if mask is None else np.flatnonzero(mask)
    if cap is None or cap >= len(pool):
        return pool
    return np.sort(np.random.default_rng(seed).choice(pool, cap, replace=False))


_ART_PROJECTION = pgd_pytorch.ProjectedGradientDescentPyTorch._projection


def _linf_projection(values, eps, norm_p, *, suboptimal: bool = True):
    """ART's PGD projection builds a float64 ε array the size of the batch at every step; for the usual
    scalar L∞ ball a clamp is the same projection."""
    if norm_p in (np.inf, "inf") and np.ndim(eps) == 0:
        return values.clamp(-float(eps), float(eps))
    return _ART_PROJECTION(values, eps, norm_p, suboptimal=suboptimal)


def _success_not_computed(*_, **__) -> float:
    return float("nan")


@contextmanager
def attacking(classifier, attack=None) -> Iterator[None]:
    """Freeze the weights while attacking (ART's `loss_gradient` otherwise computes every weight gradient)
    and skip ART's success-rate logging, which costs two full forward passes per `generate` call."""
    frozen = [p for p in classifier.model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    with ExitStack() as stack:
        stack.enter_context(mock.patch.object(pgd_pytorch.ProjectedGradientDescentPyTorch, "_projection", staticmethod(_linf_projection)))
        stack.enter_context(mock.patch.object(pgd_pytorch, "compute_success", _success_not_computed))
        if not getattr(attack, "minimal", False):  # minimal FGSM really uses the success rate
            stack.enter_context(mock.patch.object(fast_gradient, "compute_success", _success_not_computed))
        try:
            yield
        finally:
            for p in frozen:
                p.requires_grad_(True)


def frozen_generate(attack, classifier):
    """`attack.generate` that freezes the weights only while it runs (for trainers that train in between)."""
    generate = attack.generate

    def run(x, y=None, **kwargs):
        with attacking(classifier, attack):
            return generate(x, y, **kwargs)

    return run


def craft_evasion(attack, classifier, x: np.ndarray, y: np.ndarray, chunk: int = 512) -> np.ndarray:
    """ART `generate` over chunks (bounded memory, visible progress); `y` true labels or targets, one-hot."""
    adv = np.empty_like(x)
    start = time.perf_counter()
    with attacking(classifier, attack):
        for i in range(0, len(x), chunk):
            adv[i : i + chunk] = attack.generate(x[i : i + chunk], y[i : i + chunk])
            print(f"  attacked {min(i + chunk, len(x))}/{len(x)} images ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return adv


def fit_universal(attack, classifier, x_fit: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Fit a universal perturbation on `x_fit` (untargeted: against the model's own predictions)."""
    y = None if target is None else one_hot(np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    with attacking(classifier, attack):
        attack.generate(x_fit, y)
    info = {"fit_samples": len(x_fit), "fit_fooling_rate": float(attack.fooling_rate), "fit_seconds": round(time.perf_counter() - start, 2)}
    if target is not None:
        info["fit_targeted_success_rate"] = float(attack.targeted_success_rate)
    return attack.noise.astype(np.float32), info


def fit_patch(attack, classifier, x_fit: np.ndarray, labels: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Train the patch on `x_fit` (targeted: towards `target`; untargeted: away from the true labels)."""
    y = one_hot(labels if target is None else np.full(len(x_fit), target), n_classes)
    start = time.perf_counter()
    with attacking(classifier, attack):
        patch, _ = attack.generate(x_fit, y)
    return patch.astype(np.float32), {"fit_samples": len(x_fit), "fit_seconds": round(time.perf_counter() - start, 2)}
