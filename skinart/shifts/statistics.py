"""Image statistics that grow with a shift's severity, each a function of (clean, shifted) uint8 batches that is
0 when nothing changed. `SHIFTS` names one per shift; the tests check each shift is monotone in its own."""

from __future__ import annotations

import numpy as np

from skinart.shifts.pixels import luminance

DARK_LEVEL = 32  # luminance below which a pixel counts as dark (a lesion's darkest brown stays above it)


def _difference(clean: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    return shifted.astype(np.float64) - clean.astype(np.float64)


def noise_std(clean: np.ndarray, shifted: np.ndarray) -> float:
    """The standard deviation of shifted − clean, in uint8 levels."""
    return float(_difference(clean, shifted).std())


def mean_abs_difference(clean: np.ndarray, shifted: np.ndarray) -> float:
    return float(np.abs(_difference(clean, shifted)).mean())


def _laplacian_energy(images: np.ndarray) -> np.ndarray:
    """Per image, the mean squared 4-neighbour Laplacian of the luminance: the energy of the finest detail."""
    lum = luminance(images).astype(np.float64)
    laplacian = 4 * lum[:, 1:-1, 1:-1] - lum[:, :-2, 1:-1] - lum[:, 2:, 1:-1] - lum[:, 1:-1, :-2] - lum[:, 1:-1, 2:]
    return (laplacian**2).mean(axis=(1, 2))


def high_frequency_loss(clean: np.ndarray, shifted: np.ndarray) -> float:
    """The share of the finest detail's energy lost, averaged over images (blur: towards 1)."""
    return float(np.mean(1 - _laplacian_energy(shifted) / np.maximum(_laplacian_energy(clean), 1e-12)))


def brightness_gain(clean: np.ndarray, shifted: np.ndarray) -> float:
    return float(_difference(clean, shifted).mean())


def darkening(clean: np.ndarray, shifted: np.ndarray) -> float:
    return -brightness_gain(clean, shifted)


def _contrast_ratio(clean: np.ndarray, shifted: np.ndarray) -> np.ndarray:
    """Per image, the luminance's standard deviation after ÷ before."""
    before, after = (luminance(images).std(axis=(1, 2)) for images in (clean, shifted))
    return after / np.maximum(before, 1e-12)


def contrast_gain(clean: np.ndarray, shifted: np.ndarray) -> float:
    return float(np.mean(_contrast_ratio(clean, shifted) - 1))


def contrast_loss(clean: np.ndarray, shifted: np.ndarray) -> float:
    return float(np.mean(1 - _contrast_ratio(clean, shifted)))


def dark_share(clean: np.ndarray, shifted: np.ndarray) -> float:
    """The share of pixels turned dark (luminance under DARK_LEVEL)."""
    return float(np.mean(luminance(shifted) < DARK_LEVEL) - np.mean(luminance(clean) < DARK_LEVEL))


def _violet(images: np.ndarray) -> np.ndarray:
    """Pixels whose blue and red both clearly exceed green: violet ink, not skin (red > blue) or brown lesion."""
    rgb = images.astype(np.int64)
    return (rgb[..., 2] - rgb[..., 1] > 30) & (rgb[..., 0] - rgb[..., 1] > 15)


def violet_share(clean: np.ndarray, shifted: np.ndarray) -> float:
    return float(np.mean(_violet(shifted)) - np.mean(_violet(clean)))


STATISTICS = {f.__name__: f for f in (noise_std, mean_abs_difference, high_frequency_loss, brightness_gain, darkening,
                                      contrast_gain, contrast_loss, dark_share, violet_share)}
