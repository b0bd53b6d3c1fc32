"""Digital corruptions (MedMNIST-C's `Pixelate`, `JPEGCompression`, `Brightness`, `Contrast`; Di Salvo et al.
2024), applied at the image's own size. Pixelate and JPEG call Pillow per image exactly as MedMNIST-C does;
brightness and contrast are Pillow's ImageEnhance computed for the whole batch at once, equal to it byte for
byte (float32 blend, truncated, as Pillow's Blend.c)."""

from __future__ import annotations

from io import BytesIO

import numpy as np
from PIL import Image

from skinart.shifts.pixels import luminance


def _per_image(images: np.ndarray, change) -> np.ndarray:
    return np.stack([np.asarray(change(Image.fromarray(image))) for image in images])


def pixelate(images: np.ndarray, factor: float, draws=None) -> np.ndarray:
    """Pixelation: shrunk by `factor` and enlarged back, both with Pillow's BOX filter (MedMNIST-C `Pixelate`).

    factor: the kept share of each side (0.25 keeps a quarter: 28 px become 7 and back). At the model's size, not
    224 px: at 28 px, 0.25 leaves 7 × 7 blocks; MedMNIST-C's 56 × 56 at 224 px survives being averaged down to
    28 px almost untouched (16 HAM10000 images change by 0.3–0.6 levels on average that way, by 3.3–7.8 here)."""
    def shrink_and_enlarge(image: Image.Image) -> Image.Image:
        small = image.resize((int(image.width * factor), int(image.height * factor)), Image.BOX)
        return small.resize(image.size, Image.BOX)
    return _per_image(images, shrink_and_enlarge)


def jpeg_round_trip(image: Image.Image, quality: int) -> Image.Image:
    buffer = BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(buffer)


def jpeg_compression(images: np.ndarray, quality: int, draws=None) -> np.ndarray:
    """JPEG compression: a Pillow JPEG round trip at `quality` (MedMNIST-C `JPEGCompression`).

    quality: Pillow's JPEG quality (1–95; lower is worse), with its default 4:2:0 chroma subsampling. At the
    model's size, so at 28 px each 8 × 8 block (16 × 16 for colour) spans a third of the lesion: 16 HAM10000
    images change by 5.4–10.2 levels on average at 28 px, by 1.7–5.9 compressed at 224 px and averaged down."""
    return _per_image(images, lambda image: jpeg_round_trip(image, quality))


def _blend_towards(images: np.ndarray, degenerate: np.ndarray, factor: float) -> np.ndarray:
    """Pillow's Image.blend(degenerate, image, factor): float32, clipped, truncated."""
    degenerate = np.float32(degenerate)
    blended = degenerate + np.float32(factor) * (images.astype(np.float32) - degenerate)
    return np.clip(blended, 0, 255).astype(np.uint8)


def brightness(images: np.ndarray, factor: float, draws=None) -> np.ndarray:
    """Brightness: Pillow's ImageEnhance.Brightness (a blend with black; MedMNIST-C `Brightness`).

    factor: the multiplier of every value (brightness_up above 1, brightness_down below)."""
    return _blend_towards(images, 0, factor)


def contrast(images: np.ndarray, factor: float, draws=None) -> np.ndarray:
    """Contrast: Pillow's ImageEnhance.Contrast (a blend with the image's mean grey; MedMNIST-C `Contrast`).

    factor: how far each value moves from the image's mean luminance (contrast_up above 1, contrast_down below)."""
    means = np.floor(luminance(images).mean(axis=(1, 2)) + 0.5)  # Pillow: int(ImageStat mean of convert("L") + 0.5)
    return _blend_towards(images, means[:, None, None, None], factor)
