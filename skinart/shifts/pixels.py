"""Small pixel helpers every shift family shares: rounding back to uint8, the image's size relative to the 224 px
MedMNIST-C drew at, and luminance as Pillow computes it."""

from __future__ import annotations

import numpy as np

MEDMNIST_C_SIDE = 224  # MedMNIST-C corrupts the 224 px MedMNIST+ images: its lengths are in these pixels


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Rounded and clipped to uint8. Rounded, not truncated as MedMNIST-C's `astype(np.uint8)` does: truncation
    darkens every pixel by half a level on average and makes even a zero-strength shift change the image."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def side_scale(images: np.ndarray) -> float:
    """The shorter side in units of MedMNIST-C's 224 px: lengths it gives in pixels (blur radii, font sizes) are
    multiplied by this, so a shift covers the same share of the lesion at 28 px as at 224 px."""
    return min(images.shape[1:3]) / MEDMNIST_C_SIDE


def luminance(images: np.ndarray) -> np.ndarray:
    """Pillow's convert("L") of uint8 RGB, exactly (ITU-R 601-2 weights in 16-bit fixed point), as int64."""
    rgb = images.astype(np.int64)
    return (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
