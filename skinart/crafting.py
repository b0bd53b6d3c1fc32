"""Running ART attacks fast and in bounded memory: the weights frozen while attacking, ART's slow paths bypassed
(a test checks the adversarials are unchanged), and the generate loops of evasion, universal and patch attacks."""

from __future__ import annotations

import itertools
import sys
import time
from contextlib import ExitStack, contextmanager
from typing import Callable, Iterator
from unittest import mock

import numpy as np
import torch

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


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count set for a block, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def art_uap_loop(classifier, on_pass: Callable[[int, np.ndarray], None], first_pass: int = 1, threads: int = 1) -> Iterator[None]:
    """ART's UAP loop made cheap and visible. It predicts and differentiates one image at a time, where torch's
    intra-op threads cost more than they save (on a busy 2-core machine a batch-of-one gradient took 545 ms with 2
    threads, 9 ms with 1): one thread (`threads`, for benchmarks). It also scores every pass on all fit images at batch size 1
    (`predict(x_adv, batch_size=1)`, the only call it makes with that size): that call runs batched (eval mode, the same
    decisions), and `on_pass(pass, decisions)` is told. `first_pass` 0: the targeted UAP's first such call is the clean one."""
    predict, passes = classifier.predict, itertools.count(first_pass)

    def run(x, batch_size: int = 128, **kwargs):
        if batch_size != 1:
            return predict(x, batch_size=batch_size, **kwargs)
        probs = predict(x, batch_size=256, **kwargs)
        on_pass(next(passes), probs.argmax(1))
        return probs

    with torch_threads(threads), mock.patch.object(classifier, "predict", run):
        yield


def fit_universal(attack, classifier, x_fit: np.ndarray, target: int | None, n_classes: int) -> tuple[np.ndarray, dict]:
    """Fit a universal perturbation on `x_fit` (untargeted: against the model's own predictions), printing the fit
    fooling rate after every pass: ART's loop, or skinart's batched one (an attack with `on_pass`)."""
    y = None if target is None else one_hot(np.full(len(x_fit), target), n_classes)
    clean, by_pass, start = classifier.predict(x_fit, batch_size=256).argmax(1), [], time.perf_counter()

    def on_pass(n: int, fooling: float) -> None:
        by_pass.append(round(fooling, 4))
        print(f"  pass {n}/{attack.max_iter}: fit fooling rate {fooling:.3f} ({time.perf_counter() - start:.0f} s)", file=sys.stderr)

    def art_pass(n: int, decisions: np.ndarray) -> None:
        if n:  # pass 0: the targeted UAP's clean predictions
            on_pass(n, float(np.mean(decisions != clean)))

    if hasattr(attack, "on_pass"):  # skinart's batched UAP reports its own passes; its batches of 32 small images also
        attack.on_pass, loop = on_pass, torch_threads(1)  # ran 3-6x faster on 1 thread than 2 on a busy 2-core machine
    else:
        loop = art_uap_loop(classifier, art_pass, 1 if target is None else 0)
    with attacking(classifier, attack), loop:
        attack.generate(x_fit, y)
    info = {"fit_samples": len(x_fit), "fit_fooling_rate": float(attack.fooling_rate), "fit_passes": len(by_pass),
            "fit_fooling_by_pass": by_pass, "fit_seconds": round(time.perf_counter() - start, 2)}
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
