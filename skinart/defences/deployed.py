"""A checkpoint as deployed: its network in eval mode as an ART classifier, behind the preprocessing defences its
metadata names, and, for a checkpoint trained under noise (it records σ), as the smoothed classifier: what every run
scores and attacks (white-box)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from skinart.certification.smoothing import smoothed
from skinart.certification.table import smoothing_of
from skinart.compute import resolve_device
from skinart.defences.preprocessors import preprocessors
from skinart.models.build import network
from skinart.models.checkpoint import Checkpoint
from skinart.models.networks import wrap


def deployed(checkpoint: Checkpoint, device: str = "auto", *, defended: bool = True,
             preprocessing_defences: list | None = None, precision: str = "fp32",
             head: Callable[[nn.Module], nn.Module] | None = None, samples: int | None = None, base: bool = False):
    """The checkpoint as an ART classifier in eval mode computing at `precision`, with the preprocessing defences its
    metadata names (unless `defended` is False or `preprocessing_defences` replaces them); `head` puts a module around
    the network (an attack objective's decision at the operating point: skinart.attacks.objective). A checkpoint that
    records σ is its smoothed classifier (`certification.smoothing.smoothed`): `samples` noisy copies per prediction
    (default: the n it records, `certification.table.SMOOTHED_PREDICTION`), the eot it records per gradient, the noise
    from its seed;
    `base` gives its base classifier instead (what `certify` smooths itself)."""
    meta = checkpoint.meta
    if preprocessing_defences is None and defended and meta.preprocessing:
        preprocessing_defences = preprocessors(list(meta.preprocessing), resolve_device(device))
    net = network(checkpoint).eval()
    classifier = wrap(net if head is None else head(net).eval(), meta.img_size, meta.mean, meta.std, device,
                      preprocessing_defences=preprocessing_defences, precision=precision)
    smoothing = None if base else smoothing_of(meta.defence, samples)
    if smoothing is None:
        return classifier
    return smoothed(classifier, sigma=smoothing["sigma"], sample_size=smoothing["eot"], votes=smoothing["n"], seed=smoothing["seed"])
