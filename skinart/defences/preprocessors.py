"""Preprocessing defences: the WebP+flip low-level transformation (LLT) as an ART preprocessor with a BPDA
gradient, EOT over flips for the adaptive attacker, and the ART preprocessor of each preprocessing defence of
`defences.table` (its rows, settings and their ranges are there). Checkpoints name their preprocessors by this table,
so a defended checkpoint loads with its defence."""

from __future__ import annotations

import functools
import io
import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import torch
from PIL import Image

from skinart.data import from_model_input, to_model_input
from skinart.defences.table import DEFENCES, PREPROCESSOR_DEFAULTS, check_setting
from skinart.errors import SkinartError
from skinart.options import choose
from skinart.toolbox import EoTPyTorch, FeatureSqueezing, JpegCompression, PreprocessorPyTorch, SpatialSmoothing


def webp_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HWC -> WebP at `quality` -> decoded uint8 HWC (Pillow)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", quality=quality)
    # WebP named: Pillow tries no other format's reader (at 28 px that probing is a third of the round trip)
    with Image.open(buffer, formats=["WEBP"]) as decoded:
        return np.asarray(decoded if decoded.mode == "RGB" else decoded.convert("RGB"))


def webp_batch(x: np.ndarray, quality: int, threads: int | None = None) -> np.ndarray:
    """float NCHW in [0, 1] -> WebP round trip -> float32 NCHW. The batch is cut into one contiguous chunk
    per thread (torch's thread count unless `threads`); each worker converts (rounding, not truncating, to
    uint8), codes and writes back one image at a time, so the conversions stay in cache instead of two threads
    streaming whole chunks through memory. Pillow's codec and numpy's array loops release the GIL."""
    out = np.empty(x.shape, dtype=np.float32)

    def chunk(part: np.ndarray) -> None:
        for i in part:
            out[i] = to_model_input(webp_roundtrip(from_model_input(x[i : i + 1])[0], quality)[None])[0]

    # as many threads as torch computes with: a step's CPUs under Ray (every core in a local run)
    parts = [p for p in np.array_split(np.arange(len(x)), threads or torch.get_num_threads()) if len(p)]
    list(_pool(os.getpid(), len(parts)).map(chunk, parts))
    return out


@functools.cache
def _pool(pid: int, threads: int) -> ThreadPoolExecutor:
    """One pool per process and thread count: Square queries WebP thousands of times on a few images each, and starting
    threads for every call cost a quarter of a query. By process: a forked child (a DataLoader worker) inherits the
    pool without its threads."""
    return ThreadPoolExecutor(max(threads, 1), thread_name_prefix="webp")


class WebPFlip(PreprocessorPyTorch):
    """The low-level transformation of Yin et al. (2020) used by the thesis: WebP compression, then a
    horizontal flip. Its gradient (BPDA) is the identity through WebP and the flip through the flip, so
    ART keeps its PyTorch attack paths and an adaptive attacker can differentiate through it."""

    params = ["quality", "flip"]

    def __init__(self, quality: int = 60, flip: bool = True, apply_fit: bool = False, apply_predict: bool = True,
                 device_type: str = "gpu"):
        super().__init__(device_type=device_type, is_fitted=True, apply_fit=apply_fit, apply_predict=apply_predict)
        self.quality, self.flip = quality, flip
        self._check_params()

    def forward(self, x: torch.Tensor, y=None):
        compressed = torch.from_numpy(webp_batch(x.detach().cpu().numpy(), self.quality)).to(x.device)
        x = x + (compressed - x).detach()  # straight-through: WebP's value, the identity's gradient
        return (torch.flip(x, dims=[-1]) if self.flip else x), y

    def _check_params(self) -> None:
        check_setting("quality", self.quality)


class EoTFlips(EoTPyTorch):
    """Expectation over random horizontal/vertical flips, for the adaptive attacker: the perturbation must
    work whichever way the image is flipped (ART's EoT base class averages the gradient)."""

    def __init__(self, nb_samples: int = 4, clip_values: tuple[float, float] = (0.0, 1.0)):
        super().__init__(nb_samples=nb_samples, clip_values=clip_values)

    def forward(self, x: torch.Tensor, y=None):
        """EOT where the attacker differentiates a loss (labels given); a prediction (no labels) is the deployed model's
        own, one row per image, so attacks that also predict (APGD, Square, AutoAttack) get shapes that match."""
        return (x, y) if y is None else super().forward(x, y)

    def _transform(self, x: torch.Tensor, y, **kwargs):
        dims = [d for d, flip in ((-1, torch.rand(1).item() < 0.5), (-2, torch.rand(1).item() < 0.5)) if flip]
        return (torch.flip(x, dims=dims) if dims else x), y


# name -> the ART preprocessor from the defence settings (each a row of defences.table.DEFENCES, with its setting)
PREPROCESSORS: dict[str, Callable[[dict], object]] = {
    "llt": lambda s: WebPFlip(s["quality"], device_type=s["device_type"]),
    # ART's JpegCompression defaults to channels-last; skinart's inputs are NCHW
    "jpeg": lambda s: JpegCompression(clip_values=(0.0, 1.0), quality=s["quality"], channels_first=True, apply_fit=False),
    "smoothing": lambda s: SpatialSmoothing(window_size=s["window"], channels_first=True, clip_values=(0.0, 1.0)),
    "squeeze": lambda s: FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=s["bits"]),
}


def adaptive_chain(entries: list[dict], device: str = "cpu", eot: bool = True) -> list:
    """The preprocessors an adaptive attacker differentiates through: the deployed ones (BPDA where they are not
    differentiable), plus EOT over random flips when `eot` and every one of them runs in PyTorch: ART's EoT is a
    PyTorch preprocessor, and ART runs a chain in PyTorch only when all of it is (jpeg, smoothing and squeeze are
    numpy preprocessors, so they get no EOT)."""
    chain = preprocessors(entries, device)
    if eot and all(isinstance(p, PreprocessorPyTorch) for p in chain):
        chain.append(EoTFlips())
    return chain


def eot_samples(classifier) -> int:
    """How many rows the classifier's EOT preprocessors make of each image in a batch (1 without EOT)."""
    return math.prod(p.nb_samples for p in getattr(classifier, "preprocessing_operations", ()) if isinstance(p, EoTPyTorch))


def preprocessors(entries: list[dict], device: str = "cpu") -> list:
    """ART preprocessors from a checkpoint's `preprocessing` list, e.g. [{"name": "llt", "quality": 60}]."""
    built = []
    for entry in entries:
        choose(entry.get("name"), PREPROCESSORS, "preprocessing defence")
        settings = {**PREPROCESSOR_DEFAULTS, **entry, "device_type": "gpu" if device == "cuda" else "cpu"}
        try:
            built.append(PREPROCESSORS[entry["name"]](settings))
        except ValueError as e:  # ART's own range checks (window size, bit depth), should it refuse more than SETTINGS
            setting = DEFENCES[entry["name"]].setting
            raise SkinartError(f"--{setting} {settings[setting]} is refused by ART's {entry['name']} ({e}); choose another --{setting}") from None
    return built
