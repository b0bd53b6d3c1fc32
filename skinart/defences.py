"""Defences: the WebP+flip low-level transformation (LLT) as an ART preprocessor, and one table from
method name to ART preprocessing defence."""

from __future__ import annotations

import io
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

from skinart import SkinartError
from skinart.evaluate import checkpoint_dataset, evaluate
from skinart.models import META_FILE, WEIGHTS_FILE, _art, classifier_from_checkpoint, read_checkpoint_meta
from skinart.runs import needs_run, staged

_art()  # ART's data folder goes under skinart's cache before any ART module is imported
from art.defences.preprocessor import FeatureSqueezing, JpegCompression, SpatialSmoothing  # noqa: E402
from art.defences.preprocessor.preprocessor import PreprocessorPyTorch  # noqa: E402
from art.preprocessing.expectation_over_transformation.pytorch import EoTPyTorch  # noqa: E402


def webp_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """uint8 HWC -> WebP at `quality` -> decoded uint8 HWC (Pillow)."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="WEBP", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"))


def webp_batch(x: np.ndarray, quality: int, threads: int | None = None) -> np.ndarray:
    """float NCHW in [0, 1] -> WebP round trip per image on a thread pool (Pillow releases the GIL while
    coding) -> float32 NCHW. Pixels are rounded, not truncated, on the way to uint8."""
    images = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    with ThreadPoolExecutor(threads or os.cpu_count() or 1) as pool:
        decoded = list(pool.map(lambda im: webp_roundtrip(im, quality), images))
    return np.stack(decoded).transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)


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
        check_quality(self.quality)


class EoTFlips(EoTPyTorch):
    """Expectation over random horizontal/vertical flips, for the adaptive attacker: the perturbation must
    work whichever way the image is flipped (ART's EoT base class averages the gradient)."""

    def __init__(self, nb_samples: int = 4, clip_values: tuple[float, float] = (0.0, 1.0)):
        super().__init__(nb_samples=nb_samples, clip_values=clip_values)

    def _transform(self, x: torch.Tensor, y, **kwargs):
        dims = [d for d, flip in ((-1, torch.rand(1).item() < 0.5), (-2, torch.rand(1).item() < 0.5)) if flip]
        return (torch.flip(x, dims=dims) if dims else x), y


def check_quality(quality: int) -> int:
    if not isinstance(quality, int) or not 1 <= quality <= 100:
        raise SkinartError(f"--webp-quality {quality} is outside 1–100; the thesis used 60")
    return quality


# name -> (factory of the ART preprocessor from the defence settings, what it is)
PREPROCESSORS: dict[str, tuple[Callable[..., object], str]] = {
    "llt": (lambda s: WebPFlip(s["quality"], device_type=s["device_type"]), "WebP compression + horizontal flip (Yin et al. 2020)"),
    # ART's JpegCompression defaults to channels-last; skinart's inputs are NCHW
    "jpeg": (lambda s: JpegCompression(clip_values=(0.0, 1.0), quality=s["quality"], channels_first=True, apply_fit=False),
             "JPEG compression (ART JpegCompression; truncates to uint8)"),
    "smoothing": (lambda s: SpatialSmoothing(window_size=s["window"], channels_first=True, clip_values=(0.0, 1.0)),
                  "median filter (ART SpatialSmoothing)"),
    "squeeze": (lambda s: FeatureSqueezing(clip_values=(0.0, 1.0), bit_depth=s["bits"]), "bit-depth reduction (ART FeatureSqueezing)"),
}
PREPROCESSOR_DEFAULTS = {"quality": 60, "window": 3, "bits": 4}


def preprocessors(entries: list[dict], device: str = "cpu") -> list:
    """ART preprocessors from a checkpoint's `preprocessing` list, e.g. [{"name": "llt", "quality": 60}]."""
    built = []
    for entry in entries:
        if entry.get("name") not in PREPROCESSORS:
            raise SkinartError(f"unknown preprocessing defence '{entry.get('name')}'; choose one of {', '.join(PREPROCESSORS)}")
        settings = {**PREPROCESSOR_DEFAULTS, **entry, "device_type": "gpu" if device == "cuda" else "cpu"}
        built.append(PREPROCESSORS[entry["name"]][0](settings))
    return built


def defend_run(method: str, checkpoint: Path, out: Path, settings: dict, data: str | None = None, data_root: str | None = None,
               device: str = "auto", overwrite: bool = False) -> dict | None:
    """`skinart defend` with a preprocessing defence: a checkpoint (same weights) whose metadata attaches the
    preprocessor, plus its clean test metrics (what the defence costs on clean images)."""
    if method not in PREPROCESSORS:
        raise SkinartError(f"unknown defence '{method}'; choose one of {', '.join(PREPROCESSORS)}")
    if "quality" in settings:
        check_quality(settings["quality"])
    meta = read_checkpoint_meta(checkpoint)
    if meta.get("preprocessing"):
        raise SkinartError(f"{checkpoint} already carries the defence {meta['preprocessing']}; defend its source checkpoint instead")
    entry = {"name": method, **{k: settings.get(k, v) for k, v in PREPROCESSOR_DEFAULTS.items()}}
    preprocessors([entry])  # ART checks the settings before anything is written
    config = {"command": "defend", "method": method, "preprocessing": [entry],
              "checkpoint": {"path": str(Path(checkpoint).resolve()), "weights_sha256": meta["weights_sha256"]},
              "data": {"name": data or meta["data"]["name"], "root": str(Path(data_root).resolve()) if data_root else None}}
    if not needs_run(out, config, overwrite):
        return None
    dataset = checkpoint_dataset(checkpoint, meta, data, data_root)
    with staged(out, config) as tmp:
        shutil.copyfile(Path(checkpoint) / WEIGHTS_FILE, tmp / WEIGHTS_FILE)
        defended = {**meta, "preprocessing": [entry], "defence": {"method": method, "source": str(Path(checkpoint).resolve())}}
        (tmp / META_FILE).write_text(json.dumps(defended, indent=2))
        classifier, _ = classifier_from_checkpoint(tmp, device)
        return evaluate(classifier, dataset.splits["test"], meta["classes"], meta["malignant"], tmp,
                        f"{meta['model']} + {method} on {dataset.name} test")
