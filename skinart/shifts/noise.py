"""Noise (MedMNIST-C, Di Salvo et al. 2024, after ImageNet-C, Hendrycks & Dietterich 2019), per pixel at the
image's own size. Unlike the geometric shifts, noise parameters are not rescaled to 224 px: a sensor's noise is
per pixel at whatever resolution reaches the model, and σ means the same at every size. The effect: MedMNIST-C
noises 224 px images, and averaged down to 28 px that noise shrinks about 8× (gaussian severity 1 changes 16
HAM10000 images by 1.0 level on average that way, by 8.1 here), so at 28 px these rows are far harsher than
DermaMNIST-C's 224 px images averaged down to 28 px."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from skinart.shifts.draws import per_image
from skinart.shifts.pixels import to_uint8


def _standard_normal(images: np.ndarray, draws: Sequence[np.random.Generator]) -> np.ndarray:
    return per_image(draws, lambda g: g.standard_normal(images.shape[1:], dtype=np.float32))


def gaussian_noise(images: np.ndarray, sigma: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Additive Gaussian noise: x + N(0, σ²) on [0, 1] pixels, clipped (MedMNIST-C `GaussianNoise`).

    sigma: the noise's standard deviation in [0, 1] pixel units (255·σ in uint8 levels), independent per pixel
    and channel. Each image's z is drawn once, so every severity is the same field scaled."""
    return to_uint8(images + (sigma * 255) * _standard_normal(images, draws))


def speckle_noise(images: np.ndarray, sigma: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Multiplicative (speckle) noise: x + x·N(0, σ²), clipped (MedMNIST-C `SpeckleNoise`).

    sigma: the standard deviation of the relative noise; bright skin gets more of it than a dark lesion."""
    return to_uint8(images * (1 + sigma * _standard_normal(images, draws)))


def impulse_noise(images: np.ndarray, amount: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Salt-and-pepper noise: a share `amount` of the values (each channel of each pixel on its own, as
    scikit-image's `random_noise(mode="s&p")` that MedMNIST-C calls) set to 0 or 255 with equal odds.

    amount: the expected share of replaced values. One uniform per value decides both whether it is replaced
    (u < amount) and how (u < amount/2: pepper), so a value replaced at one severity stays replaced, the same
    way, at every higher one. Departure: scikit-image draws the two decisions separately; same distribution."""
    uniform = per_image(draws, lambda g: g.random(images.shape[1:], dtype=np.float32))
    out = images.copy()
    out[uniform < amount] = 255
    out[uniform < amount / 2] = 0
    return out


def shot_noise(images: np.ndarray, photons: float, draws: Sequence[np.random.Generator]) -> np.ndarray:
    """Poisson (shot) noise: Poisson(x·λ)/λ on [0, 1] pixels, clipped (MedMNIST-C `ShotNoise`).

    photons: λ, the photon count of a white pixel; fewer photons, more noise (so severity lowers it)."""
    rate = images.astype(np.float64) * (photons / 255)
    counts = np.stack([g.poisson(image_rate) for g, image_rate in zip(draws, rate)])
    return to_uint8(counts * (255 / photons))
